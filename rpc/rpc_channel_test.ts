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
