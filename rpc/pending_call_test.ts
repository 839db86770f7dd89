// PendingCall over in-memory transports (no socket): deadline, cancel, drain above the last call id, and "safe to
// retry" only for calls the provider did not run.

import assert from "node:assert/strict";
import { EventLoop } from "../reactor/event_loop.ts";
import { type CallRouter, type ClientResult, PendingCall, type PendingCallOptions } from "./_pending_call.ts";
import { MemoryTransport } from "./memory_transport.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";

/** A router over fixed in-memory providers, picked in order, skipping those the call tried. */
function routerOver(loop: EventLoop, transports: MemoryTransport[], retryTokens = 10): CallRouter {
  const byAddress = new Map(transports.map((transport) => [transport.address, transport]));
  return {
    loop,
    maxRetries: 2,
    retryBackoffMs: 5,
    closed: () => false,
    discovered: () => undefined,
    providerCount: () => transports.length,
    pick: (_service, _hashKey, excluded) => transports.find((t) => t.usable && !excluded?.has(t.address))?.address,
    connection: (address) => byAddress.get(address)!,
    attempted: () => {},
    missedDeadline: () => {},
    waitForProviderMs: () => undefined,
    takeRetryToken: () => retryTokens-- > 0,
  };
}

function startCall(
  router: CallRouter,
  options: PendingCallOptions & { timeoutMs?: number } = {},
): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    new PendingCall({
      router,
      service: "test.Echo",
      method: "Say",
      payload: new Uint8Array([1, 2, 3]),
      metadata: undefined,
      options,
      timeoutMs: options.timeoutMs ?? 5000,
      resolve: resolve as (value: unknown) => void,
      reject,
    }).start();
  });
}

async function rejection(promise: Promise<unknown>): Promise<RpcError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof RpcError, `expected an RpcError, got ${error}`);
    return error;
  }
  assert.fail("the call succeeded");
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("PendingCall answers with the response its transport delivers, deadline sent as time left", async () => {
  const loop = new EventLoop();
  const transport = new MemoryTransport({ loop, address: "a:1" });
  transport.server.onRequest = (request) =>
    transport.server.respond({ callId: request.callId, payload: request.payload, metadata: { k: "v" } });
  const result = await startCall(routerOver(loop, [transport]), { timeoutMs: 1000 });
  assert.deepEqual([...result.payload], [1, 2, 3]);
  assert.deepEqual(result.metadata, { k: "v" });
  const [request] = transport.server.requests;
  assert.ok(request !== undefined && request.timeoutMs > 0 && request.timeoutMs <= 1000);
  assert.equal(transport.outstanding, 0);
});

Deno.test("PendingCall past its deadline fails DEADLINE_EXCEEDED and cancels the call on its transport", async () => {
  const loop = new EventLoop();
  const transport = new MemoryTransport({ loop, address: "a:1" });
  const error = await rejection(startCall(routerOver(loop, [transport]), { timeoutMs: 30 }));
  assert.equal(error.code, RpcCode.DEADLINE_EXCEEDED);
  assert.match(error.message, /on a:1 missed its deadline/);
  await tick();
  assert.deepEqual(transport.server.cancels, [transport.server.requests[0]!.callId]);
  // A late answer reaches nobody.
  transport.server.respond({ callId: transport.server.requests[0]!.callId });
  await tick();
  assert.equal(transport.outstanding, 0);
});

Deno.test("PendingCall cancelled by its signal fails CANCELLED at once and sends a cancel", async () => {
  const loop = new EventLoop();
  const transport = new MemoryTransport({ loop, address: "a:1" });
  const abort = new AbortController();
  transport.server.onRequest = () => abort.abort();
  const error = await rejection(startCall(routerOver(loop, [transport]), { signal: abort.signal }));
  assert.equal(error.code, RpcCode.CANCELLED);
  await tick();
  assert.equal(transport.server.cancels.length, 1);
  // Already aborted: never sent.
  const before = transport.server.requests.length;
  const again = await rejection(startCall(routerOver(loop, [transport]), { signal: abort.signal }));
  assert.equal(again.code, RpcCode.CANCELLED);
  await tick();
  assert.equal(transport.server.requests.length, before);
});

Deno.test("PendingCall handed back by a drain above the last call id goes to another provider, outside the budget", async () => {
  const loop = new EventLoop();
  const a = new MemoryTransport({ loop, address: "a:1" });
  const b = new MemoryTransport({ loop, address: "b:1" });
  const router = routerOver(loop, [a, b], 0); // no retry tokens: a drain's hand-back must not need one
  let arrived = 0;
  const bothArrived = Promise.withResolvers<void>();
  a.server.onRequest = () => ++arrived === 2 && bothArrived.resolve();
  b.server.onRequest = (request) => b.server.respond({ callId: request.callId, payload: new Uint8Array([2]) });
  const first = startCall(router);
  const second = startCall(router);
  await bothArrived.promise;
  const [one, two] = a.server.requests;
  assert.ok(one !== undefined && two !== undefined && two.callId > one.callId);
  // a keeps the first call (it will answer it) and refuses everything above it.
  a.server.drain(one.callId);
  a.server.respond({ callId: one.callId, payload: new Uint8Array([1]) });
  assert.deepEqual([...(await first).payload], [1]);
  assert.deepEqual([...(await second).payload], [2]);
  assert.equal(b.server.requests.length, 1);
  assert.ok(!a.usable);
});

Deno.test("PendingCall retries only answers marked safe to retry: refusals, not calls that ran", async () => {
  const loop = new EventLoop();
  const a = new MemoryTransport({ loop, address: "a:1" });
  const b = new MemoryTransport({ loop, address: "b:1" });
  // a refuses unprocessed (dwt-retry-safe), b answers.
  a.server.onRequest = (request) =>
    a.server.respond({
      callId: request.callId,
      status: RpcCode.UNAVAILABLE,
      errorMessage: "draining",
      metadata: { "dwt-retry-safe": "1" },
    });
  b.server.onRequest = (request) => b.server.respond({ callId: request.callId, payload: new Uint8Array([7]) });
  assert.deepEqual([...(await startCall(routerOver(loop, [a, b]))).payload], [7]);

  // The same status without the mark: the call may have run, so it is not sent again.
  const c = new MemoryTransport({ loop, address: "c:1" });
  const d = new MemoryTransport({ loop, address: "d:1" });
  c.server.onRequest = (request) =>
    c.server.respond({ callId: request.callId, status: RpcCode.UNAVAILABLE, errorMessage: "ran, then failed" });
  const error = await rejection(startCall(routerOver(loop, [c, d])));
  assert.equal(error.code, RpcCode.UNAVAILABLE);
  assert.equal(d.server.requests.length, 0);

  // A connection that closes while the request is out: not safe either.
  const e = new MemoryTransport({ loop, address: "e:1" });
  const f = new MemoryTransport({ loop, address: "f:1" });
  e.server.onRequest = () => void e.close();
  const lost = await rejection(startCall(routerOver(loop, [e, f])));
  assert.equal(lost.code, RpcCode.UNAVAILABLE);
  assert.equal(f.server.requests.length, 0);
});
