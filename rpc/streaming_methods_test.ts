// Streaming methods are not served or called yet: they must fail cleanly as UNIMPLEMENTED on both sides (issue 19),
// never be taken for unary calls, which would hand a client-streaming handler one message.
import assert from "node:assert/strict";
import { EventLoop } from "../reactor/event_loop.ts";
import { RpcChannel, type StubMethod } from "./rpc_channel.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import { RpcProvider } from "./rpc_provider.ts";
import { MethodKind, parseProto, serviceDefinition } from "./service_definition.ts";

const FEED = serviceDefinition(
  parseProto(`
    syntax = "proto3";
    package test;
    message Msg { string text = 1; }
    service Feed {
      rpc Say (Msg) returns (Msg);
      rpc Watch (Msg) returns (stream Msg);
      rpc Upload (stream Msg) returns (Msg);
      rpc Chat (stream Msg) returns (stream Msg);
    }
  `),
  "test.Feed",
);

type FeedStub = { Say: StubMethod; Watch: StubMethod; Upload: StubMethod; Chat: StubMethod };

Deno.test("serviceDefinition tells each method's kind from its 'stream' keywords", () => {
  const kinds = [...FEED.methods.values()].map((method) => [method.name, method.kind]);
  assert.deepEqual(kinds, [
    ["Say", MethodKind.UNARY],
    ["Watch", MethodKind.SERVER_STREAMING],
    ["Upload", MethodKind.CLIENT_STREAMING],
    ["Chat", MethodKind.BIDI_STREAMING],
  ]);
});

Deno.test("A provider answers a streaming method UNIMPLEMENTED, and a stub refuses to call one; unary still works", async () => {
  const loop = new EventLoop();
  const provider = new RpcProvider({ loop });
  let uploads = 0;
  // Handlers for the streaming methods are not required, and one that is given is never run as a unary call.
  provider.registerService(FEED, {
    Say: (request: { text: string }) => ({ text: `${request.text}!` }),
    Upload: () => {
      uploads++;
      return { text: "taken as unary" };
    },
  });
  await provider.start();
  const channel = new RpcChannel({ loop, providers: { "test.Feed": [provider.advertisedAddress] } });
  try {
    const stub = channel.stub<FeedStub>(FEED);
    assert.equal((await stub.Say({ text: "hi" })).text, "hi!");
    for (const method of ["Watch", "Upload", "Chat"] as const) {
      await assert.rejects(stub[method]({ text: "x" }), (error: RpcError) => {
        assert.equal(error.code, RpcCode.UNIMPLEMENTED);
        assert.match(error.message, /streaming is not supported yet/);
        return true;
      });
    }
    // A peer that sends one anyway (an older or foreign caller) gets UNIMPLEMENTED, not a handler run.
    const answer = await channel.call("test.Feed", "Upload", new Uint8Array(0)).then(() => "ok", (error) => error);
    assert.ok(answer instanceof RpcError && answer.code === RpcCode.UNIMPLEMENTED, String(answer));
    assert.match(answer.message, /client streaming, which is not served yet/);
    assert.equal(uploads, 0);
  } finally {
    await channel.close();
    await provider.stop({ graceMs: 100 });
  }
});
