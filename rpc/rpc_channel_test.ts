// RpcChannel's one road for every call: a stub's call takes the same path with interceptors and without, and a
// response that does not parse fails the same way on both. And a channel over another transport (in memory).

import assert from "node:assert/strict";
import { EventLoop } from "../reactor/event_loop.ts";
import { type ClientInterceptor, RpcChannel, type StubMethod } from "./rpc_channel.ts";
import { type MemoryServerEnd, MemoryTransport } from "./memory_transport.ts";
import { RpcController } from "./rpc_controller.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import { RpcProvider } from "./rpc_provider.ts";
import { parseProto, serviceDefinition } from "./service_definition.ts";

// The provider answers Strict with an empty message; the caller's .proto says its answer has a required field.
const SERVED = serviceDefinition(
  parseProto(`syntax = "proto3"; package road; message Msg { string text = 1; }
    service Echo { rpc Say (Msg) returns (Msg); rpc Strict (Msg) returns (Msg); }`),
  "road.Echo",
);
const CALLED = serviceDefinition(
  parseProto(`syntax = "proto2"; package road; message Msg { optional string text = 1; }
    message Strict { required string text = 1; }
    service Echo { rpc Say (Msg) returns (Msg); rpc Strict (Msg) returns (Strict); }`),
  "road.Echo",
);

for (const withInterceptor of [false, true]) {
  Deno.test(`RpcChannel stub ${withInterceptor ? "with" : "without"} interceptors: answers, and a response that does not parse is INTERNAL`, async () => {
    const loop = new EventLoop();
    const provider = new RpcProvider({ loop });
    provider.registerService(SERVED, {
      Say: (request: { text: string }) => ({ text: request.text + "!" }),
      Strict: () => ({}),
    });
    await provider.start();
    const seen: string[] = [];
    const interceptors: ClientInterceptor[] = withInterceptor
      ? [(next) => (call) => (seen.push(call.method), next(call))]
      : [];
    const channel = new RpcChannel({ loop, providers: { "road.Echo": [provider.advertisedAddress] }, interceptors });
    try {
      const stub = channel.stub<{ Say: StubMethod; Strict: StubMethod }>(CALLED);
      assert.equal((await stub.Say({ text: "hi" })).text, "hi!");
      const controller = new RpcController();
      const error = await stub.Strict({ text: "x" }, { controller }).then(
        () => assert.fail("Strict answered"),
        (error: unknown) => error,
      );
      assert.ok(error instanceof RpcError);
      assert.equal(error.code, RpcCode.INTERNAL);
      assert.match(error.message, /The response of Strict does not parse/);
      assert.ok(controller.failed());
      assert.deepEqual(seen, withInterceptor ? ["Say", "Strict"] : []);
    } finally {
      await channel.close();
      await provider.stop();
    }
  });
}

Deno.test("RpcChannel over in-memory transports: calls balance, a drain sends the rest elsewhere, no socket", async () => {
  const loop = new EventLoop();
  const ends = new Map<string, MemoryServerEnd>();
  const channel = new RpcChannel({
    loop,
    providers: { "road.Echo": ["a:1", "b:1"] },
    transport: (address, events) => {
      const transport = new MemoryTransport({ loop, address, events });
      ends.set(address, transport.server);
      // Each provider answers with its own name.
      transport.server.onRequest = (request) =>
        transport.server.respond({ callId: request.callId, payload: new TextEncoder().encode(address) });
      return transport;
    },
  });
  try {
    const answers = new Set<string>();
    for (let i = 0; i < 4; i++) {
      answers.add(new TextDecoder().decode((await channel.call("road.Echo", "Say", new Uint8Array())).payload));
    }
    assert.deepEqual([...answers].sort(), ["a:1", "b:1"]);
    // a drains: the channel stops picking it, every call goes to b.
    ends.get("a:1")!.drain(ends.get("a:1")!.requests.at(-1)!.callId, "rolling restart", 1000);
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.deepEqual(channel.ejectedProviders(), ["a:1"]);
    for (let i = 0; i < 3; i++) {
      assert.equal(new TextDecoder().decode((await channel.call("road.Echo", "Say", new Uint8Array())).payload), "b:1");
    }
  } finally {
    await channel.close();
  }
});

Deno.test("RpcChannel: calls with the channel's timeout expire on time through its deadline list, and leave no timer", async () => {
  const loop = new EventLoop();
  const timersBefore = loop.timerCount;
  // A provider that never answers: every call must end by its deadline.
  const channel = new RpcChannel({
    loop,
    providers: { "road.Echo": ["silent:1"] },
    timeoutMs: 60,
    keepaliveIntervalMs: 0,
    transport: (address, events) => new MemoryTransport({ loop, address, events }),
  });
  try {
    const start = performance.now();
    const settle = (promise: Promise<unknown>) =>
      promise.then(
        () => assert.fail("answered"),
        (error: RpcError) => ({ code: error.code, ms: performance.now() - start }),
      );
    // Three with the channel's timeout (the list), one with its own (a timer), one cancelled, one answered never.
    const controller = new AbortController();
    const results = Promise.all([
      settle(channel.call("road.Echo", "Say", new Uint8Array())),
      settle(channel.call("road.Echo", "Say", new Uint8Array())),
      settle(channel.call("road.Echo", "Say", new Uint8Array(), { timeoutMs: 20 })),
      settle(channel.call("road.Echo", "Say", new Uint8Array(), { signal: controller.signal })),
      settle(channel.call("road.Echo", "Say", new Uint8Array())),
    ]);
    controller.abort();
    // The four calls of the channel's timeout share one timer; the call with its own timeout has another.
    assert.equal(loop.timerCount, timersBefore + 2);
    const [a, b, own, cancelled, c] = await results;
    for (const result of [a!, b!, c!]) {
      assert.equal(result.code, RpcCode.DEADLINE_EXCEEDED);
      assert.ok(result.ms >= 59, `expired early: ${result.ms} ms`);
    }
    assert.equal(own!.code, RpcCode.DEADLINE_EXCEEDED);
    assert.ok(own!.ms >= 19 && own!.ms < a!.ms, `a per-call timeout waited for the list: ${own!.ms} ms`);
    assert.equal(cancelled!.code, RpcCode.CANCELLED);
    // Every call settled: no deadline timer is left to keep the process alive.
    assert.equal(loop.timerCount, timersBefore);
    // The list's last call ends before its deadline (cancelled): its timer goes with it.
    const last = new AbortController();
    const lastCall = settle(channel.call("road.Echo", "Say", new Uint8Array(), { signal: last.signal }));
    assert.equal(loop.timerCount, timersBefore + 1);
    last.abort();
    assert.equal((await lastCall).code, RpcCode.CANCELLED);
    assert.equal(loop.timerCount, timersBefore);
  } finally {
    await channel.close();
  }
});
