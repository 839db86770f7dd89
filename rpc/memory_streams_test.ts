// Streams over the in-memory transport seam: a real RpcProvider on a MemoryServer called by a real RpcChannel, no
// socket. Each stream kind end to end, ordering, cancellation, errors, deadlines, the connection lost, a drain, flow
// control both ways, and each side played by hand to break the protocol at the other.

import assert from "node:assert/strict";
import { EventLoop } from "../reactor/event_loop.ts";
import { MemoryServer, MemoryTransport } from "./memory_transport.ts";
import { RpcChannel, type RpcChannelOptions } from "./rpc_channel.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import { type CallContext, RpcProvider, type RpcProviderOptions } from "./rpc_provider.ts";
import { FEED, feedDefaults, type FeedStub, type Msg } from "./testdata/feed_service.ts";
import type { ResponseFrame, TransportCall } from "./transport.ts";

const STREAM_CLIENT = 1;
const STREAM_SERVER = 2;
const STREAM_BIDI = 3;
const DEFAULT_WINDOW = 65_536;
const MESSAGE_OVERHEAD = 16;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A caller's endless stream: `{ n }` counting up from `first`, one every `everyMs`, for as long as the stream takes
 * them; `onReturn` runs once it is stopped.
 */
async function* endless(first: number, everyMs: number, onReturn: () => void = () => {}) {
  try {
    for (let n = first;; n++) {
      yield { n };
      await sleep(everyMs);
    }
  } finally {
    onReturn();
  }
}

/** Resolves once `signal` aborts (a handler that only waits to be stopped). */
const aborted = (signal: AbortSignal) =>
  new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));

/**
 * A provider of Feed (`handlers` over do-nothing defaults) on a MemoryServer, and a channel whose transports
 * connect to it; every caller's end it made is kept in `transports`.
 */
async function serveFeed(
  handlers: Partial<Record<keyof FeedStub, unknown>>,
  options: { provider?: RpcProviderOptions; channel?: Partial<RpcChannelOptions> } = {},
) {
  const loop = new EventLoop();
  const server = new MemoryServer({ loop, address: "memory:1" });
  const provider = new RpcProvider({ ...options.provider, loop, transport: server });
  provider.registerService(FEED, { ...feedDefaults(), ...handlers });
  await provider.start();
  const transports: MemoryTransport[] = [];
  const channel = new RpcChannel({
    ...options.channel,
    loop,
    providers: { "test.Feed": [provider.advertisedAddress] },
    transport: (address, events) => {
      const transport = server.connect({ address, events });
      transports.push(transport);
      return transport;
    },
    maxRetries: 0,
  });
  return {
    loop,
    server,
    provider,
    channel,
    transports,
    stub: channel.stub<FeedStub>(FEED),
    async [Symbol.asyncDispose]() {
      await channel.close();
      await provider.stop({ graceMs: 0 });
    },
  };
}

async function failure(promise: Promise<unknown>): Promise<RpcError> {
  const error = await promise.then(() => assert.fail("it succeeded"), (error: unknown) => error);
  assert.ok(error instanceof RpcError, `not an RpcError: ${error}`);
  return error;
}

/** Reads a stream to its end; the error it ends with, if any, is returned with the messages. */
async function drain<T>(messages: AsyncIterable<T>): Promise<{ got: T[]; error: RpcError | undefined }> {
  const got: T[] = [];
  try {
    for await (const message of messages) got.push(message);
  } catch (error) {
    assert.ok(error instanceof RpcError, `not an RpcError: ${error}`);
    return { got, error };
  }
  return { got, error: undefined };
}

Deno.test("MemoryServer carries a server stream: 10,000 messages in order, the trailers, the opening's kind and window", async () => {
  await using served = await serveFeed({
    Watch: async function* (request: Msg, context: CallContext) {
      context.responseMetadata["sent"] = String(request.n);
      for (let n = 0; n < request.n; n++) yield { n };
    },
  }, { channel: { streamWindowBytes: 131_072 } });
  let expected = 0;
  let trailers: Record<string, string> | undefined;
  for await (const update of served.stub.Watch({ n: 10_000 }, { onTrailers: (t) => trailers = t })) {
    assert.equal(update.n, expected++);
  }
  assert.equal(expected, 10_000);
  assert.equal(trailers?.["sent"], "10000");
  const [opening] = served.transports[0]!.server.requests;
  assert.equal(opening?.stream, STREAM_SERVER);
  assert.equal(opening?.window, 131_072);
  const stats = served.provider.stats();
  assert.deepEqual(stats.calls["test.Feed.Watch"], { OK: 1 });
  assert.deepEqual(stats.streamMessages["test.Feed.Watch"], { in: 0, out: 10_000 });
  assert.equal(stats.streamsOpen, 0);
  assert.equal(stats.callsInFlight, 0);
});

Deno.test("MemoryServer carries a client stream: the handler reads every message in order; answer and metadata return", async () => {
  await using served = await serveFeed({
    Upload: async (requests: AsyncIterable<Msg>, context: CallContext) => {
      let total = 0;
      let next = 0;
      for await (const request of requests) {
        assert.equal(request.n, next++);
        total += request.n;
      }
      context.responseMetadata["count"] = String(next);
      return { n: total, text: context.metadata["who"] };
    },
  });
  async function* numbers() {
    for (let n = 0; n < 10_000; n++) yield { n };
  }
  let trailers: Record<string, string> | undefined;
  const answer = await served.stub.Upload(numbers(), { metadata: { who: "me" }, onTrailers: (t) => trailers = t });
  assert.equal(answer.n, (10_000 * 9_999) / 2);
  assert.equal(answer.text, "me");
  assert.equal(trailers?.["count"], "10000");
  assert.equal((await served.stub.Upload([])).n, 0, "an empty stream is answered too");
  const openings = served.transports[0]!.server.requests;
  const opened = [STREAM_CLIENT, 0]; // a client stream with the default window
  assert.deepEqual(openings.map((request) => [request.stream, request.window]), [opened, opened]);
  assert.deepEqual(served.provider.stats().streamMessages["test.Feed.Upload"], { in: 10_000, out: 0 });
});

Deno.test("MemoryServer carries a bidirectional stream: each message answered in order, both sides end cleanly", async () => {
  await using served = await serveFeed({
    Chat: async function* (requests: AsyncIterable<Msg>) {
      for await (const request of requests) yield { text: `re: ${request.text}`, n: request.n };
    },
  });
  async function* talk() {
    for (let n = 0; n < 2_000; n++) yield { text: `m${n}`, n };
  }
  const replies: number[] = [];
  for await (const reply of served.stub.Chat(talk())) {
    assert.equal(reply.text, `re: m${reply.n}`);
    replies.push(reply.n);
  }
  assert.deepEqual(replies, Array.from({ length: 2_000 }, (_, n) => n));
  assert.equal(served.transports[0]!.server.requests[0]?.stream, STREAM_BIDI);
  assert.deepEqual(served.provider.stats().calls["test.Feed.Chat"], { OK: 1 });
});

Deno.test("MemoryServer: streams running at once on one connection, with unary calls between, each keep their order", async () => {
  await using served = await serveFeed({
    Chat: async function* (requests: AsyncIterable<Msg>) {
      for await (const request of requests) yield request;
    },
  });
  async function* talk(stream: number) {
    for (let n = 0; n < 300; n++) yield { text: `s${stream}`, n };
  }
  const one = async (stream: number) => {
    let next = 0;
    for await (const reply of served.stub.Chat(talk(stream))) {
      assert.equal(reply.text, `s${stream}`);
      assert.equal(reply.n, next++);
    }
    return next;
  };
  const streams = Array.from({ length: 10 }, (_, stream) => one(stream));
  const unary = Array.from({ length: 20 }, (_, n) => served.stub.Say({ text: `u${n}` }));
  assert.deepEqual(await Promise.all(streams), new Array(10).fill(300));
  assert.deepEqual((await Promise.all(unary)).map((answer) => answer.text), unary.map((_, n) => `u${n}`));
  assert.equal(served.transports.length, 1, "all on one connection");
});

Deno.test("MemoryServer: a break out of the caller's loop cancels the stream; the handler's signal fires, its finally runs", async () => {
  const ended = Promise.withResolvers<unknown>();
  await using served = await serveFeed({
    Watch: async function* (_request: Msg, context: CallContext) {
      try {
        for (let n = 0;; n++) {
          yield { n };
          await sleep(1);
        }
      } finally {
        ended.resolve(context.signal.aborted ? context.signal.reason : "not aborted");
      }
    },
  });
  for await (const update of served.stub.Watch({})) if (update.n === 5) break;
  const reason = await ended.promise;
  assert.ok(reason instanceof RpcError, `the handler ended ${reason}`);
  assert.equal(reason.code, RpcCode.CANCELLED);
  const end = served.transports[0]!.server;
  assert.deepEqual(end.cancels, [end.requests[0]!.callId]);
  const stats = served.provider.stats();
  assert.deepEqual(stats.calls["test.Feed.Watch"], { CANCELLED: 1 });
  assert.equal(stats.streamsOpen, 0);
  assert.equal(served.transports[0]!.outstanding, 0);
});

Deno.test("MemoryServer: a break out of a bidirectional loop stops the handler and the caller's own generator", async () => {
  const handlerEnded = Promise.withResolvers<boolean>();
  const callerEnded = Promise.withResolvers<void>();
  await using served = await serveFeed({
    Chat: async function* (requests: AsyncIterable<Msg>, context: CallContext) {
      try {
        for await (const request of requests) yield request;
      } finally {
        handlerEnded.resolve(context.signal.aborted);
      }
    },
  });
  const forever = endless(0, 1, () => callerEnded.resolve());
  for await (const reply of served.stub.Chat(forever)) if (reply.n === 3) break;
  assert.equal(await handlerEnded.promise, true, "the handler's signal aborted");
  await callerEnded.promise;
  assert.equal(served.provider.stats().streamsOpen, 0);
});

Deno.test("MemoryServer: a handler's error ends each kind of stream with its status, after the messages sent before it", async () => {
  await using served = await serveFeed({
    Watch: async function* () {
      yield { n: 1 };
      yield { n: 2 };
      throw new RpcError(RpcCode.PERMISSION_DENIED, "no more for you");
    },
    Upload: async (requests: AsyncIterable<Msg>) => {
      for await (const request of requests) {
        if (request.n === 3) throw new RpcError(RpcCode.FAILED_PRECONDITION, "not three");
      }
      return {};
    },
    Chat: async function* (requests: AsyncIterable<Msg>) {
      for await (const request of requests) {
        yield request;
        if (request.n === 2) throw new Error("boom");
      }
    },
  });
  const watched = await drain(served.stub.Watch({}));
  assert.deepEqual(watched.got.map((update) => update.n), [1, 2]);
  assert.equal(watched.error?.code, RpcCode.PERMISSION_DENIED);
  assert.equal(watched.error?.rawMessage, "no more for you");

  const uploadReturned = Promise.withResolvers<void>();
  const uploaded = await failure(served.stub.Upload(endless(1, 1, () => uploadReturned.resolve())));
  assert.equal(uploaded.code, RpcCode.FAILED_PRECONDITION);
  assert.equal(uploaded.rawMessage, "not three");
  await uploadReturned.promise; // the caller's generator is stopped, not left suspended

  const chatted = await drain(served.stub.Chat(endless(0, 1)));
  assert.deepEqual(chatted.got.map((reply) => reply.n), [0, 1, 2]);
  assert.equal(chatted.error?.code, RpcCode.UNKNOWN);
  assert.match(chatted.error?.rawMessage ?? "", /boom/);

  const stats = served.provider.stats();
  assert.deepEqual(stats.errorsByCode, { PERMISSION_DENIED: 1, FAILED_PRECONDITION: 1, UNKNOWN: 1 });
  assert.equal(stats.streamsOpen, 0);
});

Deno.test("MemoryServer: a deadline passing mid-stream fails the caller's loop and fires the handler's signal", async () => {
  const handlerSaw = Promise.withResolvers<unknown>();
  await using served = await serveFeed({
    Watch: async function* (_request: Msg, context: CallContext) {
      context.signal.addEventListener("abort", () => handlerSaw.resolve(context.signal.reason));
      for (let n = 0;; n++) {
        yield { n };
        await sleep(5);
      }
    },
  });
  const { got, error } = await drain(served.stub.Watch({}, { timeoutMs: 100 }));
  assert.equal(error?.code, RpcCode.DEADLINE_EXCEEDED);
  assert.ok(got.length > 3, `${got.length} messages before the deadline`);
  const opening = served.transports[0]!.server.requests[0]!;
  assert.ok(opening.timeoutMs > 0 && opening.timeoutMs <= 100, `sent with ${opening.timeoutMs} ms`);
  // The caller's deadline and its cancel, or the provider's own deadline: whichever came first.
  const reason = await handlerSaw.promise;
  assert.ok(reason instanceof RpcError);
  assert.ok(reason.code === RpcCode.DEADLINE_EXCEEDED || reason.code === RpcCode.CANCELLED, `${reason.code}`);
});

Deno.test("MemoryServer: a connection closed under open streams fails them UNAVAILABLE and aborts their handlers", async () => {
  const handlersAborted: Promise<void>[] = [];
  const started = Promise.withResolvers<void>();
  await using served = await serveFeed({
    Watch: async function* (_request: Msg, context: CallContext) {
      handlersAborted.push(aborted(context.signal));
      yield { n: 0 };
      started.resolve();
      await aborted(context.signal);
    },
    Upload: async (requests: AsyncIterable<Msg>, context: CallContext) => {
      handlersAborted.push(aborted(context.signal));
      for await (const _ of requests) { /* until the connection goes */ }
      return {};
    },
  });
  const watching = drain(served.stub.Watch({}));
  const uploading = failure(served.stub.Upload(endless(0, 2)));
  await started.promise;
  await sleep(10);
  assert.equal(served.provider.stats().streamsOpen, 2);
  await served.server.close(); // the provider's transport drops every connection
  const watched = await watching;
  assert.deepEqual(watched.got.map((update) => update.n), [0]);
  assert.equal(watched.error?.code, RpcCode.UNAVAILABLE);
  assert.equal((await uploading).code, RpcCode.UNAVAILABLE);
  await Promise.all(handlersAborted);
  assert.equal(handlersAborted.length, 2);
  assert.equal(served.provider.stats().streamsOpen, 0);
  assert.equal(served.provider.callsInFlight, 0);
});

Deno.test("MemoryServer: a drain lets an open stream finish within the grace period, and ends one still open after it", async () => {
  const release = Promise.withResolvers<void>();
  const started = Promise.withResolvers<void>();
  await using served = await serveFeed({
    Watch: async function* (request: Msg, context: CallContext) {
      yield { n: 0 };
      started.resolve();
      if (request.text === "finish") {
        await release.promise;
        yield { n: 1 };
      } else {
        await aborted(context.signal);
      }
    },
  });
  const finishing = drain(served.stub.Watch({ text: "finish" }));
  const stuck = drain(served.stub.Watch({ text: "stuck" }));
  await started.promise;
  await sleep(5);
  const stopped = served.provider.stop({ graceMs: 100 });
  await sleep(10);
  release.resolve();
  const finished = await finishing;
  assert.equal(finished.error, undefined);
  assert.deepEqual(finished.got.map((update) => update.n), [0, 1]);
  await stopped;
  const cut = await stuck;
  assert.equal(cut.error?.code, RpcCode.UNAVAILABLE);
  assert.match(cut.error?.rawMessage ?? "", /grace period of 100 ms ended/);
  const stats = served.provider.stats();
  assert.equal(stats.limitsHit.drain_grace_expired, 1);
  assert.equal(stats.streamsOpen, 0);
});

// Flow control: a producer faster than its reader gets at most the reader's window ahead. A message of a 1 KiB blob
// and a small `n` costs about 1024 + 16 bytes, so the default 64 KiB window holds 63 of them; one more is yielded and
// waiting for credit; a little slack for the field tags.
const MAX_AHEAD = Math.floor(DEFAULT_WINDOW / (1024 + MESSAGE_OVERHEAD)) + 2;

Deno.test("MemoryServer: a server stream's producer gets no more than the caller's window ahead of a slow reader", async () => {
  let yielded = 0;
  await using served = await serveFeed({
    Watch: async function* (request: Msg) {
      for (let n = 0; n < request.n; n++) {
        yielded++;
        yield { n, blob: new Uint8Array(1024) };
      }
    },
  });
  let taken = 0;
  let mostAhead = 0;
  for await (const update of served.stub.Watch({ n: 250 })) {
    assert.equal(update.n, taken++);
    mostAhead = Math.max(mostAhead, yielded - taken);
    assert.ok(yielded - taken <= MAX_AHEAD, `the producer got ${yielded - taken} messages ahead`);
    if (taken % 2 === 0) await sleep(1);
  }
  assert.equal(taken, 250);
  assert.ok(mostAhead >= MAX_AHEAD - 8, `the producer got only ${mostAhead} ahead: the reader was not slow`);
});

Deno.test("MemoryServer: a client stream's caller gets no more than the provider's window ahead of a slow handler", async () => {
  let yielded = 0;
  let taken = 0;
  let mostAhead = 0;
  await using served = await serveFeed({
    Upload: async (requests: AsyncIterable<Msg>) => {
      for await (const request of requests) {
        assert.equal(request.n, taken++);
        mostAhead = Math.max(mostAhead, yielded - taken);
        assert.ok(yielded - taken <= MAX_AHEAD, `the caller got ${yielded - taken} messages ahead`);
        if (taken % 2 === 0) await sleep(1);
      }
      return { n: taken };
    },
  });
  async function* fast() {
    for (let n = 0; n < 250; n++) {
      yielded++;
      yield { n, blob: new Uint8Array(1024) };
    }
  }
  assert.equal((await served.stub.Upload(fast())).n, 250);
  assert.ok(mostAhead >= MAX_AHEAD - 8, `the caller got only ${mostAhead} ahead: the handler was not slow`);
});

// A writer waiting for credit when the provider answers must be woken, or the caller's generator never finishes.
Deno.test({
  name: "MemoryServer: a client stream answered while the caller waits for credit stops the caller's generator",
  fn: async () => {
    await using served = await serveFeed({
      Upload: async () => {
        await sleep(20); // reads nothing: the caller fills the window and waits for credit
        return { n: 7 };
      },
    });
    const returned = Promise.withResolvers<void>();
    async function* many() {
      try {
        for (let n = 0; n < 1_000; n++) yield { n, blob: new Uint8Array(1024) };
      } finally {
        returned.resolve();
      }
    }
    assert.equal((await served.stub.Upload(many())).n, 7);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      returned.promise.then(() => "returned"),
      new Promise((resolve) => timer = setTimeout(() => resolve("still suspended after 1 s"), 1_000)),
    ]);
    clearTimeout(timer);
    assert.equal(outcome, "returned");
  },
});

/** A stream opened by hand on `transport`, as a caller that does not follow the rules would. */
function openByHand(transport: MemoryTransport, method: string, stream: number, payload = new Uint8Array()) {
  const credited = Promise.withResolvers<number>();
  const ended = Promise.withResolvers<ResponseFrame>();
  const messages: Uint8Array[] = [];
  const call: TransportCall = {
    callId: 0,
    service: "test.Feed",
    method,
    payload,
    metadata: undefined,
    timeoutMs: () => 5_000,
    stream,
    onMessage: (message) => messages.push(message.slice()),
    onCredit: (bytes) => credited.resolve(bytes),
    onResponse: (frame) => ended.resolve({ ...frame, payload: frame.payload.slice() }),
    onError: (error) => ended.reject(error),
  };
  transport.request(call);
  return { call, messages, credited: credited.promise, ended: ended.promise };
}

Deno.test("MemoryServer: a caller that breaks the stream rules loses that stream, not its connection", async () => {
  await using served = await serveFeed({
    Watch: async function* (_request: Msg, context: CallContext) {
      yield { n: 0 };
      await aborted(context.signal);
    },
    Upload: async (_requests: AsyncIterable<Msg>, context: CallContext) => {
      await aborted(context.signal);
      return {};
    },
    Chat: async function* (_requests: AsyncIterable<Msg>, context: CallContext) {
      await aborted(context.signal);
      yield* []; // nothing: it only waits to be stopped
    },
  });
  const transport = served.server.connect();
  const written = () => {};

  // More than the credit the provider granted: two messages that each fit the window, but not both.
  const overrun = openByHand(transport, "Upload", STREAM_CLIENT);
  assert.equal(await overrun.credited, DEFAULT_WINDOW);
  assert.equal(transport.sendMessage(overrun.call, new Uint8Array(40_000), written), 0);
  assert.equal(transport.sendMessage(overrun.call, new Uint8Array(40_000), written), 0);
  const overrunEnd = await overrun.ended;
  assert.equal(overrunEnd.status, RpcCode.RESOURCE_EXHAUSTED);
  assert.match(overrunEnd.errorMessage, /Flow control broken on Upload: a message of 40016 bytes/);

  // A message after the half-close, and a second half-close.
  const late = openByHand(transport, "Chat", STREAM_BIDI);
  await late.credited;
  transport.halfClose(late.call);
  transport.sendMessage(late.call, new Uint8Array(1), written);
  const lateEnd = await late.ended;
  assert.equal(lateEnd.status, RpcCode.INVALID_ARGUMENT);
  assert.match(lateEnd.errorMessage, /a message after the caller's half-close/);
  const twice = openByHand(transport, "Upload", STREAM_CLIENT);
  await twice.credited;
  transport.halfClose(twice.call);
  transport.halfClose(twice.call);
  assert.match((await twice.ended).errorMessage, /a second half-close/);

  // A message on a server stream, whose one request came with the opening.
  const onServer = openByHand(transport, "Watch", STREAM_SERVER);
  await sleep(1);
  transport.sendMessage(onServer.call, new Uint8Array(1), written);
  const onServerEnd = await onServer.ended;
  assert.equal(onServerEnd.status, RpcCode.INVALID_ARGUMENT);
  assert.match(onServerEnd.errorMessage, /a message on a server stream/);

  // Credit past 2^31 - 1.
  const greedy = openByHand(transport, "Watch", STREAM_SERVER);
  await sleep(1);
  transport.sendCredit(greedy.call, 0x7fff_ffff);
  const greedyEnd = await greedy.ended;
  assert.equal(greedyEnd.status, RpcCode.RESOURCE_EXHAUSTED);
  assert.match(greedyEnd.errorMessage, /past 2\^31 - 1/);

  // Frames for ids that are not open streams (never opened, or ended) are ignored.
  const end = transport.server;
  end.deliverMessage(9_999, new Uint8Array(3));
  end.deliverHalfClose(9_999);
  end.deliverCredit(9_999, 100);
  end.deliverMessage(overrun.call.callId, new Uint8Array(3));

  // The opening's kind must match the method's: a stream opened on a unary method is refused, not run.
  const wrongKind = openByHand(transport, "Say", STREAM_BIDI);
  const wrongKindEnd = await wrongKind.ended;
  assert.equal(wrongKindEnd.status, RpcCode.UNIMPLEMENTED);

  // The connection still serves, and no stream is left open.
  const answered = Promise.withResolvers<ResponseFrame>();
  transport.request({
    callId: 0,
    service: "test.Feed",
    method: "Say",
    payload: new Uint8Array(),
    metadata: undefined,
    timeoutMs: () => 1_000,
    onResponse: (frame) => answered.resolve(frame),
    onError: (error) => answered.reject(error),
  });
  assert.equal((await answered.promise).status, 0);
  assert.equal(end.closed, false);
  const stats = served.provider.stats();
  assert.equal(stats.streamsOpen, 0);
  assert.equal(stats.limitsHit.stream_frame_ignored, 3);
  assert.equal(transport.outstanding, 0);
  await transport.close();
});

/** A channel whose one provider, `memory:9`, is played by hand on `transport`'s provider end. */
function channelToHand(loop: EventLoop, transport: MemoryTransport) {
  const channel = new RpcChannel({
    loop,
    providers: { "test.Feed": ["memory:9"] },
    transport: () => transport,
    maxRetries: 0,
  });
  return { channel, stub: channel.stub<FeedStub>(FEED) };
}

Deno.test("MemoryTransport: a caller sends no more than the provider's credit, and a message over its window alone", async () => {
  const loop = new EventLoop();
  const transport = new MemoryTransport({ loop, address: "memory:9" });
  const end = transport.server;
  const costs: number[] = [];
  const halfClosed = Promise.withResolvers<number>();
  const opened = Promise.withResolvers<number>();
  end.onRequest = (request) => opened.resolve(request.callId);
  end.onMessage = (_callId, payload) => costs.push(payload.length + MESSAGE_OVERHEAD);
  end.onHalfClose = (callId) => halfClosed.resolve(callId);
  let pulled = 0;
  async function* numbers() {
    for (let n = 1; n <= 50; n++) {
      pulled++;
      yield { n };
    }
  }
  const { channel, stub } = channelToHand(loop, transport);
  try {
    const answer = stub.Upload(numbers());
    const callId = await opened.promise;
    await sleep(5);
    assert.equal(pulled, 0, "nothing is taken from the caller's messages before the provider's first credit");
    // A window of 100 bytes: each message `{n}` costs 18 bytes, so 5 fit.
    end.sendCredit(callId, 100);
    await sleep(5);
    assert.deepEqual(costs, [18, 18, 18, 18, 18]);
    assert.ok(pulled <= 6, `${pulled} messages taken for 5 sent`);
    end.sendCredit(callId, 10_000);
    assert.equal(await halfClosed.promise, callId);
    assert.equal(costs.length, 50);
    end.respond({ callId, status: 0 });
    assert.equal((await answer).n, 0);

    // A message that costs more than the provider's whole window (its first credit) goes while the caller holds all
    // of it, alone: the next waits until the provider read it and granted its cost back.
    costs.length = 0;
    const big = stub.Upload([{ n: 1 }, { blob: new Uint8Array(200) }, { n: 2 }]);
    await sleep(1);
    const bigId = end.requests.at(-1)!.callId;
    end.sendCredit(bigId, 100);
    await sleep(5);
    assert.deepEqual(costs, [18], "not with part of the window");
    end.sendCredit(bigId, 18);
    await sleep(5);
    assert.deepEqual(costs, [18, 219], "alone, with the whole window");
    end.sendCredit(bigId, 100);
    await sleep(5);
    assert.deepEqual(costs, [18, 219], "nothing more before its cost came back");
    end.sendCredit(bigId, 119);
    await sleep(5);
    assert.deepEqual(costs, [18, 219, 18]);
    end.respond({ callId: bigId, status: 0 });
    assert.equal((await big).n, 0);
  } finally {
    await channel.close();
  }
});

Deno.test("MemoryTransport: a provider that sends past the caller's window fails the stream INTERNAL and is cancelled", async () => {
  const loop = new EventLoop();
  const transport = new MemoryTransport({ loop, address: "memory:9" });
  const end = transport.server;
  end.onRequest = (request) => {
    // Two messages of 40,000 bytes with no credit given back in between: the second is past the window.
    end.sendMessage(request.callId, new Uint8Array(40_000), () => {});
    end.sendMessage(request.callId, new Uint8Array(40_000), () => {});
  };
  const { channel, stub } = channelToHand(loop, transport);
  try {
    const { got, error } = await drain(stub.Watch({}));
    assert.ok(got.length <= 1, `${got.length} messages read`);
    assert.equal(error?.code, RpcCode.INTERNAL);
    assert.match(error?.rawMessage ?? "", /broke the stream protocol: a message of 40016 bytes/);
    await sleep(1);
    assert.deepEqual(end.cancels, [end.requests[0]!.callId]);
    assert.equal(transport.outstanding, 0);
  } finally {
    await channel.close();
  }
});
