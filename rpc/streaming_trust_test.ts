// Streams under a hostile caller (issue 19): frames a raw socket sends against proto/rpc.proto "Streams", each
// answered as the .proto documents (the stream ended with its status, the connection kept; or a protocol error's
// drain and close), never a crash, never unbounded memory, while an honest caller on its own connection keeps
// working. Real sockets on 127.0.0.1; every wait is bounded.
import assert from "node:assert/strict";
import { EventLoop } from "../reactor/event_loop.ts";
import { FrameKind, MAX_CREDIT_BYTES, StreamKind, type WireFrame } from "./_rpc_wire.ts";
import { RpcChannel } from "./rpc_channel.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import type { RpcProvider, RpcProviderOptions } from "./rpc_provider.ts";
import { FEED, type FeedStub } from "./testdata/feed_service.ts";
import { type FeedCounters, startFeedProvider } from "./testdata/stream_feed.ts";
import { MSG, msg, open, RawPeer } from "./testdata/raw_peer.ts";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/**
 * An honest caller on a connection of its own: a unary call, a server stream of 20 and a client stream of 3, in a
 * loop until stopped. Every round must succeed.
 */
function honestCaller(stub: FeedStub): { stop: () => Promise<{ rounds: number; errors: string[] }> } {
  let stopping = false;
  const errors: string[] = [];
  let rounds = 0;
  const running = (async () => {
    while (!stopping) {
      try {
        const reply = await stub.Say({ text: "honest" }, { timeoutMs: 2000 });
        assert.equal(reply.text, "honest");
        let got = 0;
        for await (const update of stub.Watch({ text: "count", n: 20 }, { timeoutMs: 2000 })) {
          assert.equal(update.n, got++);
        }
        assert.equal(got, 20);
        assert.equal((await stub.Upload([{}, {}, {}], { timeoutMs: 2000 })).n, 3);
        rounds++;
      } catch (error) {
        errors.push(String(error));
      }
      await sleep(2);
    }
  })();
  return {
    stop: async () => {
      stopping = true;
      await running;
      return { rounds, errors };
    },
  };
}

interface Rig {
  provider: RpcProvider;
  counters: FeedCounters;
  port: number;
  /** A raw caller on a new connection (closed by the rig). */
  raw(read?: boolean): Promise<RawPeer>;
}

/** A provider of test.Feed, raw callers for `use` to attack it with, and an honest caller that must keep working. */
async function underAttack(use: (rig: Rig) => Promise<void>, options: Partial<RpcProviderOptions> = {}) {
  const loop = new EventLoop();
  const { provider, counters } = await startFeedProvider({ loop, ...options });
  const channel = new RpcChannel({ loop, providers: { "test.Feed": [provider.advertisedAddress] }, maxRetries: 0 });
  const honest = honestCaller(channel.stub<FeedStub>(FEED));
  const raws: RawPeer[] = [];
  try {
    await use({
      provider,
      counters,
      port: provider.address.port,
      raw: async (read = true) => {
        const raw = await RawPeer.connect(provider.address.port, read);
        raws.push(raw);
        return raw;
      },
    });
    await sleep(20); // at least a round or two of the honest caller after the last attack
    const { rounds, errors } = await honest.stop();
    assert.deepEqual(errors, [], "the honest caller kept working");
    assert.ok(rounds > 0, "the honest caller got through");
  } finally {
    await honest.stop();
    for (const raw of raws) await raw.close();
    await channel.close();
    await provider.stop({ graceMs: 100 });
  }
}

/** Resolves once `condition` holds, checking every 5 ms for up to `timeoutMs`. */
async function eventually(condition: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`Not within ${timeoutMs} ms: ${what}`);
    await sleep(5);
  }
}

Deno.test("Hostile stream frames: a credit past 2^31 - 1 ends that stream RESOURCE_EXHAUSTED; up to it is fine", async () => {
  await underAttack(async ({ raw: connect, counters }) => {
    const raw = await connect();
    // Starting credit 65536 (window 0): a credit up to exactly 2^31 - 1 is allowed, one byte more is not.
    await raw.send(open(1, "Watch", StreamKind.SERVER, { payload: msg({ text: "hold" }) }));
    await raw.send({ credit: { callId: 1, bytes: MAX_CREDIT_BYTES - 65_536 } });
    await raw.alive(2);
    assert.equal(raw.framesOf(1, FrameKind.RESPONSE).length, 0, "a credit that reaches 2^31 - 1 exactly is fine");
    await raw.send({ credit: { callId: 1, bytes: 1 } });
    const end = await raw.endOf(1);
    assert.equal(end.status, RpcCode.RESOURCE_EXHAUSTED);
    assert.match(end.errorMessage, /past 2\^31 - 1/);
    // The largest uint32 at once, and a window that already starts at the limit.
    await raw.send(
      open(3, "Watch", StreamKind.SERVER, { payload: msg({ text: "hold" }) }),
      { credit: { callId: 3, bytes: 0xffff_ffff } },
      open(4, "Chat", StreamKind.BIDI, { window: MAX_CREDIT_BYTES }),
      { credit: { callId: 4, bytes: 1 } },
    );
    assert.equal((await raw.endOf(3)).status, RpcCode.RESOURCE_EXHAUSTED);
    assert.equal((await raw.endOf(4)).status, RpcCode.RESOURCE_EXHAUSTED);
    await raw.alive(5);
    // The handlers saw their streams end (their signals fired), and nothing stays open.
    await eventually(() => counters.running === 0, "the handlers ended");
    await eventually(() => counters.running === 0, "no hostile stream left open");
  });
});

Deno.test("Hostile stream frames: after the caller's half-close, and on a server stream, messages are INVALID_ARGUMENT", async () => {
  await underAttack(async ({ raw: connect, counters }) => {
    const raw = await connect();
    // A client stream that reads everything, then holds: a message after its half-close.
    await raw.send(open(1, "Upload", StreamKind.CLIENT, { metadata: { mode: "read-then-hold" } }));
    const credit = await raw.waitFor((f) => f.kind === FrameKind.CREDIT && f.callId === 1);
    assert.equal(credit?.credit, 65_536, "the provider's window comes at once");
    await raw.send({ message: { callId: 1, payload: msg({ n: 1 }) } }, { halfClose: { callId: 1 } });
    await raw.alive(2);
    await raw.send({ message: { callId: 1, payload: msg({ n: 2 }) } });
    let end = await raw.endOf(1);
    assert.equal(end.status, RpcCode.INVALID_ARGUMENT);
    assert.match(end.errorMessage, /after the caller's half-close/);
    // A bidirectional stream half-closed twice.
    await raw.send(open(3, "Chat", StreamKind.BIDI, { metadata: { mode: "hold" } }), { halfClose: { callId: 3 } });
    await raw.alive(4);
    await raw.send({ halfClose: { callId: 3 } });
    end = await raw.endOf(3);
    assert.equal(end.status, RpcCode.INVALID_ARGUMENT);
    assert.match(end.errorMessage, /second half-close/);
    // A message on a server stream (its one request came with the open), and a half-close on one.
    await raw.send(
      open(5, "Watch", StreamKind.SERVER, { payload: msg({ text: "hold" }) }),
      { message: { callId: 5, payload: msg({}) } },
      open(6, "Watch", StreamKind.SERVER, { payload: msg({ text: "hold" }) }),
      { halfClose: { callId: 6 } },
    );
    end = await raw.endOf(5);
    assert.equal(end.status, RpcCode.INVALID_ARGUMENT);
    assert.match(end.errorMessage, /server stream/);
    end = await raw.endOf(6);
    assert.equal(end.status, RpcCode.INVALID_ARGUMENT);
    assert.match(end.errorMessage, /server stream/);
    await raw.alive(7);
    await eventually(() => counters.running === 0, "no hostile stream left open");
  });
});

Deno.test("Hostile stream frames: frames for ids never opened, finished, refused or cancelled are ignored", async () => {
  await underAttack(async ({ raw: connect, counters, provider }) => {
    const raw = await connect();
    const junk = (callId: number): WireFrame[] => [
      { message: { callId, payload: msg({ text: "junk" }) } },
      { halfClose: { callId } },
      { credit: { callId, bytes: 0xffff_ffff } },
    ];
    // Finished (answered OK), refused (UNIMPLEMENTED, a wrong kind) and cancelled streams.
    await raw.send(open(1, "Watch", StreamKind.SERVER, { payload: msg({ text: "count", n: 2 }) }));
    assert.equal((await raw.endOf(1)).status, 0);
    assert.equal(raw.framesOf(1, FrameKind.MESSAGE).length, 2);
    await raw.send(open(2, "Watch", StreamKind.CLIENT));
    assert.equal((await raw.endOf(2)).status, RpcCode.UNIMPLEMENTED);
    await raw.send(open(3, "Chat", StreamKind.BIDI, { metadata: { mode: "hold" } }), { cancel: { callId: 3 } });
    await eventually(() => counters.running === 0, "the cancelled handler ended");
    const ignoredBefore = provider.stats().limitsHit["stream_frame_ignored"] ?? 0;
    await raw.send(...junk(1), ...junk(2), ...junk(3), ...junk(1000), ...junk(0));
    // A flood of them: 30,000 frames in one write, handled in bounded time, keeping nothing.
    const flood: WireFrame[] = [];
    for (let i = 0; i < 10_000; i++) flood.push(...junk(10_000 + i));
    const start = performance.now();
    await raw.send(...flood);
    await raw.alive(4);
    const elapsedMs = performance.now() - start;
    assert.ok(elapsedMs < 2000, `the flood took ${Math.round(elapsedMs)} ms`);
    // Nothing answered them: the only responses are the three ends above and the one unary call.
    assert.deepEqual(
      raw.frames.filter((f) => f.kind === FrameKind.RESPONSE).map((f) => f.callId),
      [1, 2, 4],
    );
    assert.ok(!raw.frames.some((f) => f.kind === FrameKind.DRAIN), "no protocol error");
    // Messages and half-closes are counted, so an operator sees a caller that sends them.
    const ignored = (provider.stats().limitsHit["stream_frame_ignored"] ?? 0) - ignoredBefore;
    assert.equal(ignored, 2 * 5 + 2 * 10_000);
    await eventually(() => counters.running === 0, "no hostile stream left open");
  });
});

Deno.test("Hostile stream frames: a kind that does not match the method is UNIMPLEMENTED, not run, and gets no credit", async () => {
  await underAttack(async ({ raw: connect, counters }) => {
    const raw = await connect();
    const wrong: Array<[string, number]> = [
      ["Say", StreamKind.SERVER], // a stream opened on a unary method
      ["Say", StreamKind.BIDI],
      ["Watch", StreamKind.UNARY], // a unary request for a streaming method
      ["Upload", StreamKind.UNARY],
      ["Chat", StreamKind.UNARY],
      ["Watch", StreamKind.CLIENT], // another kind
      ["Upload", StreamKind.BIDI],
      ["Chat", StreamKind.SERVER],
      ["Watch", 7], // no kind at all
      ["Chat", 0xffff_ffff],
    ];
    await raw.send(
      ...wrong.map(([method, stream], i) =>
        open(i + 1, method, stream, { payload: msg({ text: "hold" }), metadata: { mode: "hold" } })
      ),
    );
    for (let i = 0; i < wrong.length; i++) {
      const end = await raw.endOf(i + 1);
      assert.equal(end.status, RpcCode.UNIMPLEMENTED, `${wrong[i]}: ${end.errorMessage}`);
      // Not safe to retry: every provider of this .proto would say the same.
      assert.equal(end.metadata?.["dwt-retry-safe"], undefined);
    }
    await raw.alive(100);
    assert.equal(raw.frames.filter((f) => f.kind === FrameKind.CREDIT).length, 0, "a refused stream gets no credit");
    await eventually(() => counters.running === 0, "no hostile stream left open");
    assert.equal(counters.running, 0, "no handler ran");
  });
});

Deno.test("Hostile stream frames: messages past the credit granted are RESOURCE_EXHAUSTED; one larger than the window only comes alone", async () => {
  await underAttack(async ({ raw: connect, counters }) => {
    const raw = await connect();
    // A handler that never reads: 15 messages of 4096 bytes (4112 each) fit the 65536-byte window, the 16th not.
    await raw.send(open(1, "Upload", StreamKind.CLIENT, { metadata: { mode: "hold" } }));
    await raw.waitFor((f) => f.kind === FrameKind.CREDIT && f.callId === 1);
    const blob = new Uint8Array(4096 - 3); // a Msg of one 4096-byte field... minus its tag and length
    const payload = msg({ blob });
    assert.equal(payload.length, 4096);
    await raw.send(...Array.from({ length: 15 }, () => ({ message: { callId: 1, payload } })));
    await raw.alive(2);
    assert.equal(raw.framesOf(1, FrameKind.RESPONSE).length, 0, "within the credit: still open");
    await raw.send({ message: { callId: 1, payload } });
    let end = await raw.endOf(1);
    assert.equal(end.status, RpcCode.RESOURCE_EXHAUSTED);
    assert.match(end.errorMessage, /4112 bytes with only 3856 bytes of credit/);
    // One message that costs exactly the window is fine; one larger comes alone, while the peer holds the whole
    // window, and nothing more before the handler read it; one larger sent with credit in use breaks the rules.
    const exact = msg({ blob: new Uint8Array(65_516) });
    assert.equal(exact.length, 65_536 - 16);
    const larger = new Uint8Array(65_536 - 15);
    await raw.send(
      open(3, "Upload", StreamKind.CLIENT),
      { message: { callId: 3, payload: exact } },
      { halfClose: { callId: 3 } },
      open(4, "Chat", StreamKind.BIDI, { metadata: { mode: "hold" } }),
      { message: { callId: 4, payload: larger } },
      open(6, "Chat", StreamKind.BIDI, { metadata: { mode: "hold" } }),
      { message: { callId: 6, payload: new Uint8Array(84) } },
      { message: { callId: 6, payload: larger } },
    );
    end = await raw.endOf(3);
    assert.equal(end.status, 0, end.errorMessage);
    assert.equal(MSG.decode(end.payload).toJSON().n, 1, "the message costing the whole window was taken");
    end = await raw.endOf(6);
    assert.equal(end.status, RpcCode.RESOURCE_EXHAUSTED);
    assert.match(end.errorMessage, /65537 bytes with only 65436 bytes of credit granted/);
    await raw.alive(7);
    assert.equal(raw.framesOf(4, FrameKind.RESPONSE).length, 0, "the larger message alone keeps the rules");
    await raw.send({ message: { callId: 4, payload: new Uint8Array(0) } });
    end = await raw.endOf(4);
    assert.equal(end.status, RpcCode.RESOURCE_EXHAUSTED);
    assert.match(end.errorMessage, /16 bytes with no credit \(a message larger than the window is still unread\)/);
    await raw.alive(5);
    await eventually(() => counters.running === 0, "no hostile stream left open");
  });
});

Deno.test("Hostile stream frames: more streams than maxStreamsPerConnection are refused, safe to retry; calls still run", async () => {
  await underAttack(async ({ raw: connect, counters }) => {
    const raw = await connect();
    // The default limit, 100: they all open; the 101st stream of any kind is refused without running.
    const hold = { payload: msg({ text: "hold" }), metadata: { mode: "hold" } };
    await raw.send(...Array.from({ length: 100 }, (_, i) => open(i + 1, "Watch", StreamKind.SERVER, hold)));
    await raw.alive(101);
    assert.equal(counters.running, 100);
    await raw.send(open(102, "Watch", StreamKind.SERVER, hold), open(103, "Upload", StreamKind.CLIENT, hold));
    for (const callId of [102, 103]) {
      const end = await raw.endOf(callId);
      assert.equal(end.status, RpcCode.RESOURCE_EXHAUSTED);
      assert.match(end.errorMessage, /100 streams are already open/);
      assert.equal(end.metadata?.["dwt-retry-safe"], "1");
    }
    assert.equal(raw.framesOf(103, FrameKind.CREDIT).length, 0, "the refused client stream got no credit");
    // Unary calls have their own limit; a cancelled stream frees its slot.
    await raw.alive(104);
    await raw.send(
      { cancel: { callId: 1 } },
      open(105, "Watch", StreamKind.SERVER, { payload: msg({ text: "count", n: 1 }) }),
    );
    const end = await raw.endOf(105);
    assert.equal(end.status, 0, end.errorMessage);
    assert.equal(raw.framesOf(105, FrameKind.MESSAGE).length, 1);
  });
  // A lower limit applies the same way.
  await underAttack(async ({ raw: connect }) => {
    const raw = await connect();
    await raw.send(
      ...Array.from({ length: 3 }, (_, i) => open(i + 1, "Chat", StreamKind.BIDI, { metadata: { mode: "hold" } })),
    );
    const end = await raw.endOf(3);
    assert.equal(end.status, RpcCode.RESOURCE_EXHAUSTED);
    assert.equal(end.metadata?.["dwt-retry-safe"], "1");
    assert.equal(raw.framesOf(1, FrameKind.CREDIT).length + raw.framesOf(2, FrameKind.CREDIT).length, 2);
  }, { maxStreamsPerConnection: 2 });
});

Deno.test("Hostile stream frames: a request with the id of an open stream is a protocol error: drain, then close", async () => {
  await underAttack(async ({ raw: connect, counters }) => {
    // A second stream with the id of an open one.
    let raw = await connect();
    await raw.send(open(5, "Watch", StreamKind.SERVER, { payload: msg({ text: "hold" }) }));
    await raw.alive(6);
    await raw.send(open(5, "Watch", StreamKind.SERVER, { payload: msg({ text: "count", n: 1 }) }));
    let drain = await raw.waitFor((f) => f.kind === FrameKind.DRAIN);
    assert.ok(drain !== null, "a drain frame");
    assert.equal(drain.status, RpcCode.INVALID_ARGUMENT);
    assert.match(drain.errorMessage, /call id 5 is already in flight/);
    assert.equal(await raw.waitFor(() => false, 3000, raw.frames.length), null, "then the connection closes");
    await eventually(() => counters.running === 0, "the open stream's handler was aborted");
    // A unary call with the id of an open client stream.
    raw = await connect();
    await raw.send(open(7, "Upload", StreamKind.CLIENT, { metadata: { mode: "hold" } }));
    await raw.waitFor((f) => f.kind === FrameKind.CREDIT && f.callId === 7);
    await raw.send(open(7, "Say", StreamKind.UNARY, { payload: msg({}) }));
    drain = await raw.waitFor((f) => f.kind === FrameKind.DRAIN);
    assert.equal(drain?.status, RpcCode.INVALID_ARGUMENT);
    assert.equal(await raw.waitFor(() => false, 3000, raw.frames.length), null, "then the connection closes");
    assert.equal(raw.framesOf(7, FrameKind.RESPONSE).length, 0, "the lost stream is not answered");
    await eventually(() => counters.running === 0, "the open stream's handler was aborted");
  });
});

Deno.test("A caller's window smaller than one message: each message comes alone, the next once its credit is back", async () => {
  await underAttack(async ({ raw: connect, counters }) => {
    const raw = await connect();
    await raw.send(open(1, "Watch", StreamKind.SERVER, { payload: msg({ text: "flood", n: 4096 }), window: 100 }));
    const first = await raw.waitFor((f) => f.kind === FrameKind.MESSAGE && f.callId === 1);
    assert.ok(first !== null, "the first message, larger than the window, is sent alone");
    const cost = first.payload.length + 16;
    assert.ok(cost > 100, `a message of ${cost} bytes`);
    await raw.alive(2);
    assert.equal(raw.framesOf(1, FrameKind.MESSAGE).length, 1, "nothing more until the caller read it");
    await raw.send({ credit: { callId: 1, bytes: cost } });
    assert.ok(await raw.waitFor((f) => f.kind === FrameKind.MESSAGE && f.callId === 1, 5000, raw.frames.length));
    await raw.alive(3);
    assert.equal(raw.framesOf(1, FrameKind.MESSAGE).length, 2, "one more per credit of a whole message");
    await raw.send({ cancel: { callId: 1 } });
    await eventually(() => counters.running === 0, "no stream left open");
  });
});

Deno.test("Hostile stream frames: a caller that grants all the credit there is and never reads stalls its streams, bounded", async () => {
  await underAttack(async ({ raw: connect, counters }) => {
    // 20 flood streams with a window of 2^31 - 1, on a socket the caller never reads.
    const raw = await connect(false);
    await raw.send(
      ...Array.from(
        { length: 20 },
        (_, i) =>
          open(i + 1, "Watch", StreamKind.SERVER, {
            payload: msg({ text: "flood", n: 4096 }),
            window: MAX_CREDIT_BYTES,
          }),
      ),
    );
    // The provider writes until the socket's buffers fill, then its producers wait: production stops.
    let last = -1;
    const deadline = performance.now() + 5000;
    while (counters.produced !== last && performance.now() < deadline) {
      last = counters.produced;
      await sleep(200);
    }
    assert.equal(counters.produced, last, "production stopped");
    await sleep(300);
    assert.equal(counters.produced, last, "and stays stopped");
    // Bounded by the kernel's socket buffers (a few MiB on loopback) plus one message per stream here.
    console.log(`a caller that never reads got ${last} messages of 4 KiB written before its streams stalled`);
    assert.ok(last * 4112 < 32 * 1024 * 1024, `${last} messages produced`);
    assert.equal(counters.running, 20);
  });
});

Deno.test("Hostile stream frames: a stream cancelled in the read that opened it never leaves its generator suspended", async () => {
  await underAttack(async ({ raw: connect, counters }) => {
    const raw = await connect();
    // Open and end in one write: the stream ends before its handler's generator started. Whether its body runs
    // or not, it must not be left suspended at a yield with its `finally` never run.
    const tick = { payload: msg({ text: "tick", n: 5 }) };
    await raw.send(
      open(1, "Watch", StreamKind.SERVER, tick),
      { cancel: { callId: 1 } },
      open(2, "Watch", StreamKind.SERVER, tick),
      { message: { callId: 2, payload: msg({}) } }, // a protocol error: ended INVALID_ARGUMENT
      open(3, "Watch", StreamKind.SERVER, tick),
      { credit: { callId: 3, bytes: MAX_CREDIT_BYTES } }, // ended RESOURCE_EXHAUSTED
    );
    assert.equal((await raw.endOf(2)).status, RpcCode.INVALID_ARGUMENT);
    assert.equal((await raw.endOf(3)).status, RpcCode.RESOURCE_EXHAUSTED);
    await raw.alive(4);
    await eventually(() => counters.running === 0, `every generator closed (${counters.running} suspended)`);
    assert.equal(raw.framesOf(1, FrameKind.MESSAGE).length + raw.framesOf(2, FrameKind.MESSAGE).length, 0);
    await eventually(() => counters.running === 0, "no hostile stream left open");
  });
});

Deno.test("Hostile stream frames: a request or message that does not parse is INVALID_ARGUMENT for that stream only", async () => {
  await underAttack(async ({ raw: connect }) => {
    const raw = await connect();
    const garbage = new Uint8Array([0xff, 0xff, 0xff]); // a field of wire type 7: no protobuf parses it
    await raw.send(
      open(1, "Watch", StreamKind.SERVER, { payload: garbage }), // refused before its handler runs
      open(2, "Chat", StreamKind.BIDI),
      { message: { callId: 2, payload: msg({ n: 1 }) } },
      { message: { callId: 2, payload: garbage } },
    );
    let end = await raw.endOf(1);
    assert.equal(end.status, RpcCode.INVALID_ARGUMENT);
    assert.match(end.errorMessage, /does not parse/);
    end = await raw.endOf(2);
    assert.equal(end.status, RpcCode.INVALID_ARGUMENT);
    assert.match(end.errorMessage, /does not parse/);
    assert.equal(raw.framesOf(2, FrameKind.MESSAGE).length, 1, "the message before it was echoed");
    await raw.alive(3);
  });
});

Deno.test("Hostile stream frames: credit dribbled a byte at a time adds up exactly; the provider stays responsive", async () => {
  await underAttack(async ({ raw: connect, counters }) => {
    const raw = await connect();
    // A window of exactly one message (a Msg of 4096 bytes of blob costs 4115): one goes out, then the producer
    // waits for credit, which comes as 4115 frames of 1 byte each: exactly one more message, not two, not none.
    await raw.send(open(1, "Watch", StreamKind.SERVER, { payload: msg({ text: "flood", n: 4096 }), window: 4115 }));
    await raw.waitFor((f) => f.kind === FrameKind.MESSAGE && f.callId === 1);
    await raw.send(...Array.from({ length: 4114 }, () => ({ credit: { callId: 1, bytes: 1 } })));
    await raw.alive(2);
    assert.equal(raw.framesOf(1, FrameKind.MESSAGE).length, 1, "4114 bytes of credit are not enough");
    await raw.send({ credit: { callId: 1, bytes: 1 } });
    await raw.waitFor(
      (f) => f.kind === FrameKind.MESSAGE && f.callId === 1,
      3000,
      raw.frames.indexOf(raw.framesOf(1, FrameKind.MESSAGE)[0]!) + 1,
    );
    await raw.alive(3);
    assert.equal(raw.framesOf(1, FrameKind.MESSAGE).length, 2);
    await raw.send({ cancel: { callId: 1 } });
    await eventually(() => counters.running === 0, "the cancelled producer ended");
  });
});

Deno.test("Hostile stream frames: a caller that drops its connection with 60 streams open ends every handler", async () => {
  await underAttack(async ({ raw: connect, counters }) => {
    const raw = await connect();
    const kinds: Array<[string, number]> = [["Watch", StreamKind.SERVER], ["Upload", StreamKind.CLIENT], [
      "Chat",
      StreamKind.BIDI,
    ]];
    const hold = { payload: msg({ text: "hold" }), metadata: { mode: "hold" } };
    await raw.send(...Array.from({ length: 60 }, (_, i) => open(i + 1, kinds[i % 3]![0], kinds[i % 3]![1], hold)));
    // Half of them with a half-full window of messages the handlers never read.
    const blob = msg({ blob: new Uint8Array(4093) });
    await raw.send(
      ...Array.from({ length: 20 }, (_, i) => i * 3 + 2).flatMap((callId) =>
        Array.from({ length: 8 }, () => ({ message: { callId, payload: blob } }))
      ),
    );
    await raw.alive(100);
    assert.equal(counters.running, 60);
    await raw.close();
    await eventually(() => counters.running === 0, `every handler ended (${counters.running} left)`);
  });
});

/**
 * A channel to test.Feed whose one provider is a socket listening on 127.0.0.1, for the test to accept and play
 * the provider on by hand (a RawPeer).
 */
function channelToListener() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const channel = new RpcChannel({
    loop: EventLoop.current(),
    providers: { "test.Feed": [`127.0.0.1:${listener.addr.port}`] },
    maxRetries: 0,
  });
  return { listener, channel, stub: channel.stub<FeedStub>(FEED) };
}

Deno.test("A provider that breaks a stream's rules: the caller fails that stream INTERNAL and cancels it; others go on", async () => {
  // A fake provider on a raw socket; the channel's one connection goes to it.
  const { listener, channel, stub } = channelToListener();
  let peer: RawPeer | undefined;
  try {
    const accepted = listener.accept();
    // A server stream whose caller has taken one message and waits for the next.
    const flooded = stub.Watch({ text: "flood" })[Symbol.asyncIterator]();
    const first = flooded.next();
    // Their failures are asserted later: caught now, so none is an unhandled rejection meanwhile.
    const overCredited = stub.Chat([{ n: 1 }])[Symbol.asyncIterator]().next().then(() => undefined, (e) => e);
    const upload = stub.Upload([{ n: 1 }]).then(() => undefined, (e) => e);
    const fine = (async () => {
      const got: number[] = [];
      for await (const update of stub.Watch({ text: "fine" })) got.push(update.n);
      return got;
    })();
    peer = new RawPeer(await accepted);
    const requests = new Map<string, number>();
    await peer.waitFor((frame) => {
      if (frame.kind === FrameKind.REQUEST) {
        requests.set(`${frame.method}:${MSG.decode(frame.payload).toJSON().text ?? ""}`, frame.callId);
      }
      return requests.size === 4;
    });
    const id = (key: string) => requests.get(key)!;
    const blob = msg({ blob: new Uint8Array(4093) }); // 4096 bytes: costs 4112, 15 fit the caller's window
    await peer.send(
      // 40 messages in one go, far past the window whatever credit the caller gave back for the one it took.
      ...Array.from({ length: 40 }, () => ({ message: { callId: id("Watch:flood"), payload: blob } })),
      { credit: { callId: id("Chat:"), bytes: MAX_CREDIT_BYTES } },
      { credit: { callId: id("Chat:"), bytes: 1 } }, // past 2^31 - 1
      { credit: { callId: id("Upload:"), bytes: 65_536 } },
      { message: { callId: id("Upload:"), payload: msg({ n: 7 }) } }, // a message on a client stream
      { message: { callId: id("Watch:fine"), payload: msg({ n: 0 }) } },
      { message: { callId: id("Watch:fine"), payload: msg({ n: 1 }) } },
      { response: { callId: id("Watch:fine") } },
    );
    const internal = (what: RegExp) => (error: unknown) => {
      assert.ok(error instanceof RpcError, String(error));
      assert.equal(error.code, RpcCode.INTERNAL, error.message);
      assert.match(error.message, /broke the stream protocol/);
      assert.match(error.message, what);
      return true;
    };
    assert.equal((await first).done, false);
    // Each broken stream is cancelled towards the provider.
    for (const key of ["Watch:flood", "Chat:", "Upload:"]) {
      const cancel = await peer.waitFor((frame) => frame.kind === FrameKind.CANCEL && frame.callId === id(key));
      assert.ok(cancel !== null, `${key} was cancelled`);
    }
    // What the flooded stream's loop had not taken is dropped: its next step throws.
    await assert.rejects(flooded.next(), internal(/a message of 4112 bytes with only \d+ bytes of credit granted/));
    internal(/past 2\^31 - 1/)(await overCredited);
    internal(/a message on a client stream/)(await upload);
    assert.deepEqual(await fine, [0, 1], "the stream that kept the rules went on");
  } finally {
    await channel.close();
    await peer?.close();
    listener.close();
  }
});

Deno.test("A client stream that ends while its message waits for room in the output still closes the caller's generator", async () => {
  // A provider that grants all the credit there is and never reads: the caller's messages fill the sockets, then
  // wait in the connection's write queue; the caller then gives up on the stream.
  const { listener, channel, stub } = channelToListener();
  let peer: RawPeer | undefined;
  try {
    const accepted = listener.accept();
    let made = 0;
    let closed = false;
    const blob = new Uint8Array(4096);
    const requests = async function* () {
      try {
        for (; made < 50_000; made++) yield { blob };
      } finally {
        closed = true;
      }
    };
    const controller = new AbortController();
    const upload = stub.Upload(requests(), { signal: controller.signal }).then(() => undefined, (e) => e);
    peer = new RawPeer(await accepted, false);
    await peer.send({ credit: { callId: 1, bytes: MAX_CREDIT_BYTES } }); // the first stream's id on a connection
    // Until the writer is stuck: nothing more is made for 200 ms.
    let last = -1;
    const deadline = performance.now() + 5000;
    while (made !== last && performance.now() < deadline) {
      last = made;
      await sleep(200);
    }
    assert.ok(made < 50_000, `the writer was held back (${made} made)`);
    controller.abort();
    const error = await upload;
    assert.ok(error instanceof RpcError && error.code === RpcCode.CANCELLED, String(error));
    await eventually(() => closed, "the caller's generator was closed (its finally ran)");
  } finally {
    await channel.close();
    await peer?.close();
    listener.close();
  }
});
