import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { PendingRequests } from "./_pending_requests.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";

const codeOf = (promise: Promise<unknown>) =>
  promise.then(() => "resolved", (error) => error instanceof RegistryError ? error.code : `${error}`);

Deno.test("PendingRequests matches answers by xid, decodes them and times out the rest", async () => {
  const requests = new PendingRequests<string>(new EventLoop(), 50, "the test server");
  const first = requests.nextXid();
  const answered = requests.add(first, "answer", true, undefined, (reply) => reply.toUpperCase());
  const broken = requests.add(requests.nextXid(), "break", true, undefined, () => {
    throw new Error("no");
  });
  const silent = requests.add(requests.nextXid(), "wait", true);
  requests.settle(requests.take(first)!, "yes");
  assert.equal(requests.take(first), undefined, "taken once");
  requests.settle(requests.take(first + 1)!, "x");
  assert.equal(await answered, "YES");
  assert.equal(await codeOf(broken), RegistryErrorCode.MARSHALLING_ERROR);
  await assert.rejects(silent, /Cannot wait as the test server did not answer within 50 ms/);
  assert.equal(requests.size, 0);
  assert.equal(requests.take(first + 2), undefined, "a late answer finds nothing");
});

Deno.test("PendingRequests keeps unsent requests in order across a lost connection; a close fails them", async () => {
  const requests = new PendingRequests<string>(new EventLoop(), 5_000, "the test server");
  const sent = requests.add(requests.nextXid(), "sent", true);
  const held = [1, 2, 3].map((n) => requests.add(requests.nextXid(), `held ${n}`, false, new Uint8Array([n])));
  requests.fail(RegistryErrorCode.CONNECTION_LOSS, "the connection was lost");
  assert.equal(await codeOf(sent), RegistryErrorCode.CONNECTION_LOSS);
  assert.equal(requests.size, 3, "requests not sent wait for the next connection");
  const unsent = requests.unsent();
  assert.deepEqual(unsent.map((request) => request.packet![0]), [1, 2, 3]);
  assert.deepEqual(requests.unsent(), [], "marked sent");
  requests.settle(requests.take(unsent[0]!.xid)!, "one");
  assert.equal(await held[0], "one");
  requests.fail(RegistryErrorCode.CLOSED, "the client was closed", true);
  assert.deepEqual(await Promise.all(held.slice(1).map(codeOf)), [RegistryErrorCode.CLOSED, RegistryErrorCode.CLOSED]);
  assert.equal(requests.size, 0);
});

Deno.test("PendingRequests times each request out at its own deadline, with one timer for the table", async () => {
  const loop = new EventLoop();
  const requests = new PendingRequests<string>(loop, 80, "the test server");
  const start = performance.now();
  const settledAt = (promise: Promise<unknown>) => promise.then(() => -1, () => performance.now() - start);
  const early = settledAt(requests.add(requests.nextXid(), "early", true));
  await new Promise((resolve) => setTimeout(resolve, 40));
  const answeredXid = requests.nextXid();
  const answered = requests.add(answeredXid, "answered", true);
  const late = settledAt(requests.add(requests.nextXid(), "late", true));
  assert.equal(loop.timerCount, 1, "one timer, however many requests wait");
  requests.settle(requests.take(answeredXid)!, "ok");
  assert.equal(await answered, "ok");
  const [earlyMs, lateMs] = await Promise.all([early, late]);
  assert.ok(earlyMs >= 79 && earlyMs < 400, `the first timed out at ${earlyMs} ms`);
  assert.ok(lateMs >= 79 + 40 && lateMs < 500, `the last timed out at ${lateMs} ms, its own deadline`);
  assert.equal(requests.size, 0);
  // A close with requests waiting leaves no timer behind.
  const closed = requests.add(requests.nextXid(), "closed", true);
  requests.fail(RegistryErrorCode.CLOSED, "the client was closed", true);
  assert.equal(await codeOf(closed), RegistryErrorCode.CLOSED);
  assert.equal(loop.timerCount, 0);
});
