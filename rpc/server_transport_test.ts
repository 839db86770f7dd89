// A real RpcProvider (its handler table, limits, accounting and drain) called by a real RpcChannel over the
// in-memory transport seam: no socket, no frame bytes. A unary call, a handler's error, a deadline, and a drain
// with a call in flight (finished within the grace period, or cut off after it).

import assert from "node:assert/strict";
import { EventLoop } from "../reactor/event_loop.ts";
import { MemoryServer } from "./memory_transport.ts";
import { RpcChannel, type StubMethod } from "./rpc_channel.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import { type CallContext, RpcProvider, type RpcProviderOptions, type ServiceImplementation } from "./rpc_provider.ts";
import { parseProto, serviceDefinition } from "./service_definition.ts";

const ECHO = serviceDefinition(
  parseProto(`syntax = "proto3"; package seam; message Msg { string text = 1; }
    service Echo { rpc Say (Msg) returns (Msg); }`),
  "seam.Echo",
);

type EchoStub = { Say: StubMethod<{ text: string }, { text: string }> };

/** A provider serving `implementation` on a MemoryServer, and a channel whose transports connect to it. */
async function serveInMemory(implementation: ServiceImplementation, options: RpcProviderOptions = {}) {
  const loop = new EventLoop();
  const server = new MemoryServer({ loop, address: "memory:1" });
  const provider = new RpcProvider({ ...options, loop, transport: server });
  provider.registerService(ECHO, implementation);
  await provider.start();
  const channel = new RpcChannel({
    loop,
    providers: { "seam.Echo": [provider.advertisedAddress] },
    transport: (address, events) => server.connect({ address, events }),
    maxRetries: 0,
  });
  const stub = channel.stub<EchoStub>(ECHO);
  return {
    server,
    provider,
    channel,
    stub,
    async [Symbol.asyncDispose]() {
      await channel.close();
      await provider.stop({ graceMs: 0 });
    },
  };
}

async function failure(promise: Promise<unknown>): Promise<RpcError> {
  const error = await promise.then(() => assert.fail("the call succeeded"), (error: unknown) => error);
  assert.ok(error instanceof RpcError, `not an RpcError: ${error}`);
  return error;
}

Deno.test("RpcProvider over MemoryServer answers a unary call from a real RpcChannel, with metadata both ways", async () => {
  await using served = await serveInMemory({
    Say: (request: { text: string }, context: CallContext) => {
      context.responseMetadata["served-by"] = context.peer;
      return { text: `${request.text} from ${context.metadata["user"]}` };
    },
  });
  assert.equal(served.provider.advertisedAddress, "memory:1");
  const answer = await served.stub.Say({ text: "hi" }, { metadata: { user: "dwt" } });
  assert.equal(answer.text, "hi from dwt");
  const stats = served.provider.stats();
  assert.deepEqual(stats.calls, { "seam.Echo.Say": { OK: 1 } });
  assert.equal(stats.connections, 1);
  assert.equal(stats.callsInFlight, 0);
  assert.equal(served.server.connections, 1);
});

Deno.test("RpcProvider over MemoryServer: a handler's error reaches the caller with its code and message", async () => {
  await using served = await serveInMemory({
    Say: (request: { text: string }) => {
      if (request.text === "typed") throw new RpcError(RpcCode.NOT_FOUND, "No user 'typed'");
      throw new Error("boom");
    },
  });
  const typed = await failure(served.stub.Say({ text: "typed" }));
  assert.equal(typed.code, RpcCode.NOT_FOUND);
  assert.equal(typed.rawMessage, "No user 'typed'");
  const untyped = await failure(served.stub.Say({ text: "other" }));
  assert.equal(untyped.code, RpcCode.UNKNOWN);
  assert.match(untyped.rawMessage, /boom/);
  assert.deepEqual(served.provider.stats().errorsByCode, { NOT_FOUND: 1, UNKNOWN: 1 });
});

Deno.test("RpcProvider over MemoryServer: past the caller's deadline the handler's signal aborts", async () => {
  const aborted = Promise.withResolvers<unknown>();
  await using served = await serveInMemory({
    Say: (_request: unknown, context: CallContext) => {
      assert.ok(context.timeRemainingMs() <= 50);
      context.signal.addEventListener("abort", () => aborted.resolve(context.signal.reason));
      return new Promise(() => {}); // never answers by itself
    },
  });
  const error = await failure(served.stub.Say({ text: "slow" }, { timeoutMs: 50 }));
  assert.equal(error.code, RpcCode.DEADLINE_EXCEEDED);
  // Both ends keep the deadline: the provider's timer aborts the handler, unless the caller's fired first and
  // its cancel got there before (the provider's deadline counts from the request's arrival, a loop turn later).
  const reason = await aborted.promise;
  assert.ok(reason instanceof RpcError);
  assert.ok(
    reason.code === RpcCode.DEADLINE_EXCEEDED || reason.code === RpcCode.CANCELLED,
    `aborted with ${reason.code}`,
  );
  assert.equal(served.provider.callsInFlight, 0);
});

Deno.test("RpcProvider.stop over MemoryServer finishes the call in flight, then refuses new ones", async () => {
  const started = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  await using served = await serveInMemory({
    Say: async (request: { text: string }) => {
      started.resolve();
      await release.promise;
      return { text: `${request.text} done` };
    },
  });
  const inFlight = served.stub.Say({ text: "long" });
  await started.promise;
  const stopped = served.provider.stop({ graceMs: 5_000 });
  await new Promise((resolve) => setTimeout(resolve, 10));
  // The caller heard the drain: the provider is no longer picked.
  assert.deepEqual(served.channel.ejectedProviders(), ["memory:1"]);
  // A caller connecting now learns of the drain at once: its call comes back unprocessed, to go elsewhere.
  const late = Promise.withResolvers<{ error: RpcError; retrySafe: boolean; drained?: boolean }>();
  served.server.connect().request({
    callId: 0,
    service: "seam.Echo",
    method: "Say",
    payload: new Uint8Array(),
    metadata: undefined,
    timeoutMs: () => 1000,
    onResponse: () => assert.fail("a call sent to a draining provider was answered"),
    onError: (error, retrySafe, drained) => late.resolve({ error, retrySafe, drained }),
  });
  const refused = await late.promise;
  assert.equal(refused.error.code, RpcCode.UNAVAILABLE);
  assert.equal(refused.retrySafe, true);
  assert.equal(refused.drained, true);
  release.resolve();
  assert.equal((await inFlight).text, "long done");
  await stopped;
  const stats = served.provider.stats();
  assert.equal(stats.calls["seam.Echo.Say"]?.OK, 1);
  assert.equal(stats.limitsHit.drain_grace_expired, undefined);
  assert.equal(served.server.connections, 0);
});

Deno.test("RpcProvider.stop over MemoryServer cuts off a call still running when the grace period ends", async () => {
  const started = Promise.withResolvers<AbortSignal>();
  await using served = await serveInMemory({
    Say: (_request: unknown, context: CallContext) => {
      started.resolve(context.signal);
      return new Promise(() => {});
    },
  });
  const inFlight = failure(served.stub.Say({ text: "stuck" }));
  const signal = await started.promise;
  await served.provider.stop({ graceMs: 20 });
  const error = await inFlight;
  assert.equal(error.code, RpcCode.UNAVAILABLE);
  assert.match(error.rawMessage, /drain grace period of 20 ms ended/);
  assert.ok(signal.aborted);
  assert.equal(served.provider.stats().limitsHit.drain_grace_expired, 1);
});
