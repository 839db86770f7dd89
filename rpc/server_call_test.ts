// Served calls through a real provider's dispatch over the in-memory transport, the caller played by hand (its
// transport end, no channel): the answer and its accounting, the deadline, the caller's cancel, "safe to retry"
// never passed on from a handler's error, an answer that does not encode, and the connection's rules (a reused
// call id, calls per connection).

import assert from "node:assert/strict";
import { EventLoop } from "../reactor/event_loop.ts";
import { messageDecoder } from "./_proto3_defaults.ts";
import { MemoryServer, type MemoryTransport } from "./memory_transport.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import { type CallContext, RpcProvider, type RpcProviderOptions } from "./rpc_provider.ts";
import { parseProto, serviceDefinition } from "./service_definition.ts";
import type { ResponseFrame, TransportCall } from "./transport.ts";

const ECHO = serviceDefinition(
  parseProto(`syntax = "proto3"; package served; message Msg { string text = 1; }
    service Echo { rpc Say (Msg) returns (Msg); }`),
  "served.Echo",
);
const SAY = ECHO.methods.get("Say")!;
const decodeMsg = messageDecoder(SAY.responseType);

type Handler = (request: { text: string }, context: CallContext) => unknown;

/** A provider serving `handler` as served.Echo.Say over a MemoryServer, and one connection to it. */
async function provide(handler: Handler, options: RpcProviderOptions = {}) {
  const loop = new EventLoop();
  const server = new MemoryServer({ loop });
  const provider = new RpcProvider({ ...options, loop, transport: server });
  provider.registerService(ECHO, { Say: handler });
  await provider.start();
  const transport = server.connect();
  return {
    provider,
    transport,
    [Symbol.asyncDispose]: async () => {
      await transport.close();
      await provider.stop({ graceMs: 0 });
    },
  };
}

/** Send one call on `transport`; resolves with the response frame the caller's end received. */
function send(transport: MemoryTransport, options: { timeoutMs?: number; text?: string } = {}) {
  const answered = Promise.withResolvers<ResponseFrame>();
  const call: TransportCall = {
    callId: 0,
    service: "served.Echo",
    method: "Say",
    payload: SAY.requestType.encode({ text: options.text ?? "hi" }).finish(),
    metadata: undefined,
    timeoutMs: () => options.timeoutMs ?? 0,
    onResponse: (frame) => answered.resolve(frame),
    onError: (error) => answered.reject(error),
  };
  transport.request(call);
  return { call, answered: answered.promise };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("ServerCall answers through its connection and is counted once", async () => {
  await using served = await provide((request) => ({ text: request.text + "!" }));
  const frame = await send(served.transport).answered;
  assert.equal(frame.status, 0);
  assert.equal((decodeMsg(frame.payload) as unknown as { text: string }).text, "hi!");
  assert.equal(served.provider.callsServed, 1);
  assert.equal(served.provider.callsInFlight, 0);
  assert.deepEqual(served.provider.stats().calls, { "served.Echo.Say": { OK: 1 } });
});

Deno.test("ServerCall past its deadline aborts the handler's signal and answers DEADLINE_EXCEEDED", async () => {
  let signal: AbortSignal | undefined;
  await using served = await provide((_request, context) => {
    signal = context.signal;
    assert.ok(context.timeRemainingMs() <= 30);
    return new Promise(() => {}); // never answers by itself
  });
  const frame = await send(served.transport, { timeoutMs: 30 }).answered;
  assert.equal(frame.status, RpcCode.DEADLINE_EXCEEDED);
  assert.match(frame.errorMessage, /deadline of 30 ms passed/);
  assert.ok(signal?.aborted);
  assert.equal(served.provider.callsInFlight, 0);
});

Deno.test("ServerCall cancelled by its caller aborts the handler and answers nothing", async () => {
  const started = Promise.withResolvers<AbortSignal>();
  await using served = await provide((_request, context) => {
    started.resolve(context.signal);
    return new Promise(() => {});
  });
  const { call, answered } = send(served.transport);
  const signal = await started.promise;
  served.transport.cancel(call);
  await tick();
  assert.ok(signal.aborted);
  assert.equal((signal.reason as RpcError).code, RpcCode.CANCELLED);
  assert.equal(served.provider.callsInFlight, 0);
  assert.deepEqual(served.provider.stats().calls, { "served.Echo.Say": { CANCELLED: 1 } });
  // Nothing was sent back: the caller's end has no call left and got no frame.
  assert.equal(served.transport.outstanding, 0);
  const none = await Promise.race([answered.then(() => "answered", () => "failed"), tick().then(() => "none")]);
  assert.equal(none, "none");
});

Deno.test("ServerCall of a caller that went away is cancelled", async () => {
  const started = Promise.withResolvers<AbortSignal>();
  await using served = await provide((_request, context) => {
    started.resolve(context.signal);
    return new Promise(() => {});
  });
  send(served.transport).answered.catch(() => {}); // fails UNAVAILABLE on close
  const signal = await started.promise;
  await served.transport.close();
  await tick();
  assert.equal((signal.reason as RpcError).code, RpcCode.CANCELLED);
  assert.match((signal.reason as RpcError).rawMessage, /The caller went away/);
  assert.equal(served.provider.stats().connections, 0);
});

Deno.test("ServerCall never passes a handler's 'safe to retry' on: the transport's keys are this hop's", async () => {
  await using served = await provide(() => {
    // A downstream call refused unprocessed: safe for *that* hop only.
    throw new RpcError(RpcCode.UNAVAILABLE, "downstream drained", {
      metadata: { "dwt-retry-safe": "1", "x-why": "drain" },
    });
  });
  const frame = await send(served.transport).answered;
  assert.equal(frame.status, RpcCode.UNAVAILABLE);
  assert.equal(frame.errorMessage, "downstream drained");
  assert.deepEqual(frame.metadata, { "x-why": "drain" });
});

Deno.test("ServerCall whose answer does not encode answers INTERNAL", async () => {
  await using served = await provide(() => ({
    text: {
      toString() {
        throw new TypeError("not a string");
      },
    },
  }));
  const frame = await send(served.transport).answered;
  assert.equal(frame.status, RpcCode.INTERNAL);
  assert.match(frame.errorMessage, /does not encode/);
});

Deno.test("A provider refuses calls past maxCallsPerConnection unprocessed, marked safe to retry", async () => {
  await using served = await provide(() => new Promise(() => {}), { maxCallsPerConnection: 1 });
  send(served.transport).answered.catch(() => {}); // fills the connection
  const frame = await send(served.transport).answered;
  assert.equal(frame.status, RpcCode.RESOURCE_EXHAUSTED);
  assert.deepEqual(frame.metadata, { "dwt-retry-safe": "1" });
  assert.equal(served.provider.stats().limitsHit.calls, 1);
});

Deno.test("A provider treats a reused call id as a protocol error: drain with a status, then close", async () => {
  const started = Promise.withResolvers<AbortSignal>();
  await using served = await provide((_request, context) => {
    started.resolve(context.signal);
    return new Promise(() => {});
  });
  const first = send(served.transport);
  first.answered.catch(() => {});
  const signal = await started.promise;
  // The same id again, as a broken caller would send it (past the caller's end, which never reuses ids).
  served.transport.server.deliverRequest({ ...served.transport.server.requests[0]!, payload: new Uint8Array() });
  await tick();
  assert.match((signal.reason as RpcError).rawMessage, /Protocol error: call id 1 is already in flight/);
  assert.equal(served.provider.stats().limitsHit.duplicate_call_id, 1);
  assert.equal(served.transport.usable, false);
});
