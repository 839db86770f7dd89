// Streaming RPC end to end on real sockets (issue 19): each kind, ordering, cancellation both ways, deadlines,
// errors with status, metadata both ways, and the method kinds checked against the opening request.
import assert from "node:assert/strict";
import { EventLoop } from "../reactor/event_loop.ts";
import { RpcChannel, type ServerStreamingStubMethod } from "./rpc_channel.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import { RpcProvider, type RpcProviderOptions } from "./rpc_provider.ts";
import type { CallContext } from "./server_handler.ts";
import { MethodKind, parseProto, serviceDefinition } from "./service_definition.ts";
import { FEED, feedDefaults, type FeedStub, type Msg } from "./testdata/feed_service.ts";

/** A provider of Feed with `handlers` over the defaults, and a channel to it; `use` runs with both. */
async function withFeed(
  handlers: Partial<Record<keyof FeedStub, unknown>>,
  use: (stub: FeedStub, rig: { provider: RpcProvider; channel: RpcChannel; loop: EventLoop }) => Promise<void>,
  options: Partial<RpcProviderOptions> = {},
): Promise<void> {
  const loop = new EventLoop();
  const provider = new RpcProvider({ loop, ...options });
  provider.registerService(FEED, { ...feedDefaults(), ...handlers });
  await provider.start();
  const channel = new RpcChannel({ loop, providers: { "test.Feed": [provider.advertisedAddress] } });
  try {
    await use(channel.stub<FeedStub>(FEED), { provider, channel, loop });
  } finally {
    await channel.close();
    await provider.stop();
  }
}

Deno.test("serviceDefinition tells each method's kind from its 'stream' keywords", () => {
  const kinds = [...FEED.methods.values()].map((method) => [method.name, method.kind]);
  assert.deepEqual(kinds, [
    ["Say", MethodKind.UNARY],
    ["Watch", MethodKind.SERVER_STREAMING],
    ["Upload", MethodKind.CLIENT_STREAMING],
    ["Chat", MethodKind.BIDI_STREAMING],
  ]);
});

Deno.test("Server streaming: 100,000 messages arrive in order, none lost or duplicated; trailers arrive", async () => {
  const count = 100_000;
  await withFeed({
    Watch: async function* (request: Msg, context: CallContext) {
      context.responseMetadata["sent"] = String(request.n);
      for (let n = 0; n < request.n; n++) yield { n };
    },
  }, async (stub) => {
    let expected = 0;
    let trailers: Record<string, string> | undefined;
    for await (const update of stub.Watch({ n: count }, { timeoutMs: 60_000, onTrailers: (t) => trailers = t })) {
      assert.equal(update.n, expected++);
    }
    assert.equal(expected, count);
    assert.equal(trailers?.["sent"], String(count));
  });
});

Deno.test("Client streaming: the handler reads every message in order; the answer and metadata come back", async () => {
  await withFeed({
    Upload: async (requests: AsyncIterable<Msg>, context: CallContext) => {
      let total = 0;
      let next = 0;
      for await (const request of requests) {
        assert.equal(request.n, next++);
        total += request.n;
      }
      return { n: total, text: context.metadata["who"] };
    },
  }, async (stub) => {
    async function* numbers() {
      for (let n = 0; n < 10_000; n++) yield { n };
    }
    const answer = await stub.Upload(numbers(), { metadata: { who: "me" }, timeoutMs: 30_000 });
    assert.equal(answer.n, (10_000 * 9_999) / 2);
    assert.equal(answer.text, "me");
    assert.equal((await stub.Upload([])).n, 0, "an empty stream answers too");
  });
});

Deno.test("Bidirectional: each message is answered as it comes; both sides end cleanly", async () => {
  await withFeed({
    Chat: async function* (requests: AsyncIterable<Msg>) {
      for await (const request of requests) yield { text: `re: ${request.text}`, n: request.n };
    },
  }, async (stub) => {
    const replies: string[] = [];
    async function* talk() {
      for (let n = 0; n < 1000; n++) yield { text: `m${n}`, n };
    }
    for await (const reply of stub.Chat(talk())) replies.push(reply.text);
    assert.equal(replies.length, 1000);
    assert.equal(replies[999], "re: m999");
  });
});

Deno.test("A break out of the caller's loop cancels the handler: its signal fires and its finally runs", async () => {
  const ended = Promise.withResolvers<string>();
  await withFeed({
    Watch: async function* (_request: Msg, context: CallContext) {
      try {
        for (let n = 0;; n++) {
          yield { n };
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      } finally {
        ended.resolve(context.signal.aborted ? "aborted" : "not aborted");
      }
    },
  }, async (stub) => {
    for await (const update of stub.Watch({})) if (update.n === 5) break;
    const start = performance.now();
    assert.equal(await ended.promise, "aborted");
    assert.ok(performance.now() - start < 500, "within a round trip or so");
  });
});

Deno.test("A handler's error ends the stream with its status; the caller's loop throws it after the messages", async () => {
  await withFeed({
    Watch: async function* () {
      yield { n: 1 };
      yield { n: 2 };
      throw new RpcError(RpcCode.PERMISSION_DENIED, "no more for you");
    },
    Upload: () => {
      throw new RpcError(RpcCode.FAILED_PRECONDITION, "not today");
    },
  }, async (stub) => {
    const got: number[] = [];
    await assert.rejects(
      async () => {
        for await (const update of stub.Watch({})) got.push(update.n);
      },
      (error: RpcError) => error.code === RpcCode.PERMISSION_DENIED && /no more for you/.test(error.message),
    );
    assert.deepEqual(got, [1, 2]);
    await assert.rejects(stub.Upload([{ n: 1 }]), (error: RpcError) => error.code === RpcCode.FAILED_PRECONDITION);
  });
});

Deno.test("A deadline passing mid-stream fails the caller's loop and fires the handler's signal", async () => {
  const handlerSaw = Promise.withResolvers<unknown>();
  await withFeed({
    Watch: async function* (_request: Msg, context: CallContext) {
      context.signal.addEventListener("abort", () => handlerSaw.resolve(context.signal.reason));
      for (let n = 0;; n++) {
        yield { n };
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
  }, async (stub) => {
    let got = 0;
    await assert.rejects(
      async () => {
        for await (const _ of stub.Watch({}, { timeoutMs: 200 })) got++;
      },
      (error: RpcError) => error.code === RpcCode.DEADLINE_EXCEEDED,
    );
    assert.ok(got > 3, `${got} messages before the deadline`);
    const reason = await handlerSaw.promise;
    assert.ok(reason instanceof RpcError);
  });
});

Deno.test("An AbortSignal cancels a bidirectional stream on both sides", async () => {
  const handlerAborted = Promise.withResolvers<void>();
  await withFeed({
    Chat: async function* (requests: AsyncIterable<Msg>, context: CallContext) {
      context.signal.addEventListener("abort", () => handlerAborted.resolve());
      for await (const request of requests) yield request;
    },
  }, async (stub) => {
    const controller = new AbortController();
    async function* forever() {
      for (let n = 0;; n++) {
        yield { n };
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    await assert.rejects(
      async () => {
        for await (const reply of stub.Chat(forever(), { signal: controller.signal })) {
          if (reply.n === 3) controller.abort();
        }
      },
      (error: RpcError) => error.code === RpcCode.CANCELLED,
    );
    await handlerAborted.promise;
  });
});

Deno.test("The method's kind and the opening must agree: a mismatch is answered UNIMPLEMENTED", async () => {
  await withFeed({}, async (_stub, { channel }) => {
    // A unary call of a streaming method (as an old or foreign caller would send it).
    await assert.rejects(
      channel.call("test.Feed", "Watch", new Uint8Array()),
      (error: RpcError) => error.code === RpcCode.UNIMPLEMENTED && /server streaming/.test(error.message),
    );
    // A stream opened on a unary method: a stub whose .proto says Say streams.
    const wrong = serviceDefinition(
      parseProto(`syntax = "proto3"; package test; message Msg { string text = 1; }
        service Feed { rpc Say (Msg) returns (stream Msg); }`),
      "test.Feed",
    );
    const stub = channel.stub<{ Say: ServerStreamingStubMethod }>(wrong);
    await assert.rejects(
      async () => {
        for await (const _ of stub.Say({})) { /* nothing comes */ }
      },
      (error: RpcError) => error.code === RpcCode.UNIMPLEMENTED && /is unary/.test(error.message),
    );
  });
});

Deno.test("/metrics and stats count open streams and messages in and out per method", async () => {
  const holding = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  await withFeed({
    Chat: async function* (requests: AsyncIterable<Msg>) {
      let n = 0;
      for await (const request of requests) {
        yield request;
        if (++n === 3) {
          holding.resolve();
          await release.promise;
        }
      }
    },
  }, async (stub, { provider }) => {
    async function* three() {
      for (let n = 0; n < 3; n++) yield { n };
    }
    const replies: number[] = [];
    const done = (async () => {
      for await (const reply of stub.Chat(three())) replies.push(reply.n);
    })();
    await holding.promise;
    const open = provider.stats();
    assert.equal(open.streamsOpen, 1);
    release.resolve();
    await done;
    const stats = provider.stats();
    assert.equal(stats.streamsOpen, 0);
    assert.deepEqual(stats.streamMessages["test.Feed.Chat"], { in: 3, out: 3 });
    const { providerMetrics } = await import("./provider_status.ts");
    const metrics = providerMetrics(provider);
    assert.match(metrics, /dwt_rpc_streams_open 0/);
    assert.match(metrics, /dwt_rpc_stream_messages_total\{method="test.Feed.Chat",direction="out"\} 3/);
  });
});

Deno.test("Interceptors see streams: the server's wraps the responses, the client's sets metadata and sees the end", async () => {
  const loop = new EventLoop();
  const provider = new RpcProvider({
    loop,
    interceptors: [(next) => async (request, context) => {
      if (context.metadata["token"] !== "s3cret") throw new RpcError(RpcCode.UNAUTHENTICATED, "no token");
      const result = await next(request, context);
      if (context.method !== "Watch") return result;
      return (async function* () {
        for await (const message of result as AsyncIterable<Msg>) yield { n: message.n * 10 };
      })();
    }],
  });
  provider.registerService(FEED, {
    Say: (request: Msg) => request,
    Watch: async function* () {
      yield { n: 1 };
      yield { n: 2 };
    },
    Upload: async (requests: AsyncIterable<Msg>) => {
      let n = 0;
      for await (const _ of requests) n++;
      return { n };
    },
    Chat: async function* () {},
  });
  await provider.start();
  const seen: string[] = [];
  const channel = new RpcChannel({
    loop,
    providers: { "test.Feed": [provider.advertisedAddress] },
    interceptors: [(next) => async (call) => {
      call.metadata["token"] = "s3cret";
      const result = await next(call);
      seen.push(`${call.method}:${call.kind ?? "unary"}:${result.payload.length}`);
      return result;
    }],
  });
  try {
    const stub = channel.stub<FeedStub>(FEED);
    const got: number[] = [];
    for await (const update of stub.Watch({})) got.push(update.n);
    assert.deepEqual(got, [10, 20]);
    assert.equal((await stub.Upload([{}, {}, {}])).n, 3);
    assert.deepEqual(seen, ["Watch:server_streaming:0", "Upload:client_streaming:2"]);
    const bare = new RpcChannel({ loop, providers: { "test.Feed": [provider.advertisedAddress] } });
    await assert.rejects(
      async () => {
        for await (const _ of bare.stub<FeedStub>(FEED).Watch({})) { /* refused */ }
      },
      (error: RpcError) => error.code === RpcCode.UNAUTHENTICATED,
    );
    await bare.close();
  } finally {
    await channel.close();
    await provider.stop();
  }
});

Deno.test("A handler that itself ends its call CANCELLED is answered so (unary and stream), not left unanswered", async () => {
  await withFeed({
    Say: () => {
      throw new RpcError(RpcCode.CANCELLED, "the handler gave up");
    },
    Watch: async function* () {
      yield { n: 1 };
      throw new RpcError(RpcCode.CANCELLED, "the stream gave up");
    },
  }, async (stub) => {
    await assert.rejects(
      stub.Say({}, { timeoutMs: 5000 }),
      (error: RpcError) => error.code === RpcCode.CANCELLED && /the handler gave up/.test(error.message),
    );
    const got: number[] = [];
    await assert.rejects(
      async () => {
        for await (const update of stub.Watch({}, { timeoutMs: 5000 })) got.push(update.n);
      },
      (error: RpcError) => error.code === RpcCode.CANCELLED && /the stream gave up/.test(error.message),
    );
    assert.deepEqual(got, [1]);
  });
});
