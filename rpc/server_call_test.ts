// ServerCall over an in-memory transport (no socket): the answer, the deadline, the caller's cancel, and "safe to
// retry" never passed on from a handler's error.

import assert from "node:assert/strict";
import { EventLoop } from "../reactor/event_loop.ts";
import { messageDecoder, messageEncoder } from "./_proto3_defaults.ts";
import type { CallContext, HandlerEntry } from "./_server_call.ts";
import { ServerCall } from "./_server_call.ts";
import { type MemoryRequest, MemoryTransport } from "./memory_transport.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import { parseProto, serviceDefinition } from "./service_definition.ts";
import type { ResponseFrame, TransportCall } from "./transport.ts";

const ECHO = serviceDefinition(
  parseProto(`syntax = "proto3"; package served; message Msg { string text = 1; }
    service Echo { rpc Say (Msg) returns (Msg); }`),
  "served.Echo",
);
const SAY = ECHO.methods.get("Say")!;
const decodeMsg = messageDecoder(SAY.responseType);

function entry(
  handler: (request: unknown, context: CallContext) => unknown,
  encodableResponse: HandlerEntry["encodableResponse"] = messageEncoder(SAY.responseType),
): HandlerEntry {
  return {
    method: SAY,
    decodeRequest: messageDecoder(SAY.requestType),
    encodableResponse,
    handler,
    counts: undefined,
  };
}

/**
 * One call from a caller's end to the provider's end, served there by a ServerCall running `handler`; resolves
 * with the response frame (or an error) the caller's end received.
 */
function serve(
  handler: (request: unknown, context: CallContext) => unknown,
  options: { timeoutMs?: number; encodableResponse?: HandlerEntry["encodableResponse"] } = {},
) {
  const loop = new EventLoop();
  const transport = new MemoryTransport({ loop });
  const served: ServerCall[] = [];
  transport.server.onRequest = (request: MemoryRequest) => {
    const handlerEntry = entry(handler, options.encodableResponse);
    const call = new ServerCall(transport.server, request, handlerEntry, loop.now());
    served.push(call);
    call.run(handlerEntry.decodeRequest(request.payload));
  };
  transport.server.onCancel = (callId) =>
    served.find((call) => call.callId === callId)?.abort(new RpcError(RpcCode.CANCELLED, "The caller cancelled"));
  const answered = Promise.withResolvers<ResponseFrame>();
  const call: TransportCall = {
    callId: 0,
    service: "served.Echo",
    method: "Say",
    payload: SAY.requestType.encode({ text: "hi" }).finish(),
    metadata: undefined,
    timeoutMs: () => options.timeoutMs ?? 0,
    onResponse: (frame) => answered.resolve(frame),
    onError: (error) => answered.reject(error),
  };
  transport.request(call);
  return { transport, call, served, answered: answered.promise };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("ServerCall answers through its transport and settles there once", async () => {
  const { transport, answered } = serve((request) => ({ text: (request as { text: string }).text + "!" }));
  const frame = await answered;
  assert.equal(frame.status, 0);
  assert.equal((decodeMsg(frame.payload) as unknown as { text: string }).text, "hi!");
  assert.deepEqual(transport.server.settledCalls, [{ callId: frame.callId, answered: true }]);
});

Deno.test("ServerCall past its deadline aborts the handler's signal and answers DEADLINE_EXCEEDED", async () => {
  let signal: AbortSignal | undefined;
  const { transport, answered } = serve((_request, context) => {
    signal = context.signal;
    assert.ok(context.timeRemainingMs() <= 30);
    return new Promise(() => {}); // never answers by itself
  }, { timeoutMs: 30 });
  const frame = await answered;
  assert.equal(frame.status, RpcCode.DEADLINE_EXCEEDED);
  assert.match(frame.errorMessage, /deadline of 30 ms passed/);
  assert.ok(signal?.aborted);
  assert.deepEqual(transport.server.settledCalls, [{ callId: frame.callId, answered: true }]);
});

Deno.test("ServerCall cancelled by its caller aborts the handler and answers nothing", async () => {
  const started = Promise.withResolvers<AbortSignal>();
  const { transport, call, answered } = serve((_request, context) => {
    started.resolve(context.signal);
    return new Promise(() => {});
  });
  const signal = await started.promise;
  transport.cancel(call);
  await tick();
  assert.ok(signal.aborted);
  assert.equal((signal.reason as RpcError).code, RpcCode.CANCELLED);
  assert.deepEqual(transport.server.settledCalls, [{ callId: call.callId, answered: false }]);
  // Nothing was sent back: the caller's end has no call left and got no frame.
  assert.equal(transport.outstanding, 0);
  const none = await Promise.race([answered.then(() => "answered", () => "failed"), tick().then(() => "none")]);
  assert.equal(none, "none");
});

Deno.test("ServerCall never passes a handler's 'safe to retry' on: the transport's keys are this hop's", async () => {
  const { answered } = serve(() => {
    // A downstream call refused unprocessed: safe for *that* hop only.
    throw new RpcError(RpcCode.UNAVAILABLE, "downstream drained", {
      metadata: { "dwt-retry-safe": "1", "x-why": "drain" },
    });
  });
  const frame = await answered;
  assert.equal(frame.status, RpcCode.UNAVAILABLE);
  assert.equal(frame.errorMessage, "downstream drained");
  assert.deepEqual(frame.metadata, { "x-why": "drain" });
});

Deno.test("ServerCall whose answer does not encode answers INTERNAL", async () => {
  const { answered } = serve(() => ({ text: "fine" }), {
    encodableResponse: () => {
      throw new TypeError("not a Msg");
    },
  });
  const frame = await answered;
  assert.equal(frame.status, RpcCode.INTERNAL);
  assert.match(frame.errorMessage, /does not encode/);
});
