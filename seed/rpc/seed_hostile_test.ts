// The seed port under hostile input (issue 22): frames of 1–3 bytes, a header length of 0xFFFFFFFF, args_size
// beyond the frame and beyond the limit, unparsable headers, bytes after the frame, slowloris, a request in
// one-byte writes, and 10,000 connections opened and left idle. Each gets a clean close within the read deadline and
// a counted refusal, never a crash, a hang or held memory; an honest native caller and an honest seed caller are
// served throughout, and the native port is unaffected.
import assert from "node:assert/strict";
import net from "node:net";
import { EventLoop } from "../../reactor/event_loop.ts";
import { RpcChannel, type StubMethod } from "../../rpc/rpc_channel.ts";
import { RpcProvider, type RpcProviderOptions } from "../../rpc/rpc_provider.ts";
import { parseProto, serviceDefinition } from "../../rpc/service_definition.ts";
import { bytesField, seedCall, seedFrame, varint } from "../testdata/seed_rpc_emulation.ts";

const root = parseProto(`syntax = "proto3"; package demo;
  message Msg { bytes text = 1; }
  service Echo { rpc Say (Msg) returns (Msg); }`);
const ECHO = serviceDefinition(root, "demo.Echo");
const HANDSHAKE_MS = 1000;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function echoProvider(options: RpcProviderOptions = {}): Promise<RpcProvider> {
  const provider = new RpcProvider({
    loop: new EventLoop(),
    seedPort: 0,
    handshakeTimeoutMs: HANDSHAKE_MS,
    ...options,
  });
  provider.registerService(ECHO, { Say: (request: { text: Uint8Array }) => request });
  await provider.start();
  return provider;
}

/**
 * An honest native caller and an honest seed caller, calling in turn until `stop`; resolves with the calls made. Any
 * failure rejects.
 */
function honestCallers(provider: RpcProvider): { stop: () => Promise<number> } {
  const channel = new RpcChannel({
    loop: EventLoop.current(),
    providers: { "demo.Echo": [provider.advertisedAddress] },
    timeoutMs: 5000,
  });
  const stub = channel.stub<{ Say: StubMethod }>(ECHO);
  const { hostname, port } = provider.seedAddress!;
  let running = true;
  const done = (async () => {
    let calls = 0;
    try {
      while (running) {
        const text = new TextEncoder().encode(`call ${calls}`);
        assert.deepEqual((await stub.Say({ text })).text, text);
        const args = Uint8Array.from(bytesField(1, text));
        assert.deepEqual(await seedCall(hostname, port, seedFrame("Echo", "Say", args)), { kind: "read", bytes: args });
        calls += 2;
        await sleep(20);
      }
      return calls;
    } finally {
      await channel.close();
    }
  })();
  return {
    stop: () => {
      running = false;
      return done;
    },
  };
}

/** Milliseconds until the provider closes `conn` (EOF or reset) and the bytes it sent first; undefined: still open. */
async function closedWithin(conn: Deno.TcpConn, waitMs: number): Promise<{ ms: number; bytes: number } | undefined> {
  const start = performance.now();
  const buffer = new Uint8Array(4096);
  let bytes = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"open">((resolve) => timer = setTimeout(() => resolve("open"), waitMs));
  try {
    while (true) {
      const read = conn.read(buffer).then((n) => n, () => null);
      const result = await Promise.race([read, timeout]);
      if (result === "open") {
        conn.close();
        await read;
        return undefined;
      }
      if (result === null) return { ms: performance.now() - start, bytes };
      bytes += result;
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed above */ }
  }
}

const le32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];

Deno.test("seed port: hostile frames are closed within the read deadline and counted; honest callers are served meanwhile", async () => {
  const provider = await echoProvider();
  const honest = honestCallers(provider);
  try {
    const { hostname, port } = provider.seedAddress!;
    const header = (service: string, method: string, argsSize: number) =>
      Uint8Array.from([...bytesField(1, service), ...bytesField(2, method), 0x18, ...varint(argsSize)]);
    const withLength = (body: Uint8Array) => Uint8Array.from([...le32(body.length), ...body]);
    const cases: { name: string; bytes: Uint8Array; limit: string; at: "once" | "deadline" }[] = [
      { name: "1 byte", bytes: Uint8Array.of(7), limit: "seed_handshake_timeout", at: "deadline" },
      { name: "2 bytes", bytes: Uint8Array.of(7, 0), limit: "seed_handshake_timeout", at: "deadline" },
      { name: "3 bytes", bytes: Uint8Array.of(7, 0, 0), limit: "seed_handshake_timeout", at: "deadline" },
      {
        name: "header length 0xFFFFFFFF",
        bytes: Uint8Array.of(0xff, 0xff, 0xff, 0xff, 1, 2, 3),
        limit: "seed_frame",
        at: "once",
      },
      {
        name: "args_size beyond the frame",
        bytes: Uint8Array.from([...withLength(header("Echo", "Say", 1000)), 1, 2, 3]),
        limit: "seed_handshake_timeout",
        at: "deadline",
      },
      {
        name: "args_size beyond the frame limit",
        bytes: withLength(header("Echo", "Say", 0xffff_fff0)),
        limit: "seed_frame",
        at: "once",
      },
      {
        name: "an unparsable header",
        bytes: Uint8Array.from([...le32(6), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        limit: "seed_frame",
        at: "once",
      },
      {
        name: "a header of the wrong wire types",
        bytes: Uint8Array.from([...le32(2), 0x08, 0x01]),
        limit: "seed_frame",
        at: "once",
      },
      {
        name: "bytes after the frame",
        bytes: Uint8Array.from([...seedFrame("Echo", "Say", Uint8Array.of(0x0a, 0x00)), 0x00]),
        limit: "seed_frame",
        at: "once",
      },
    ];
    for (const { name, bytes, limit, at } of cases) {
      const before = provider.stats().limitsHit[limit] ?? 0;
      const conn = await Deno.connect({ hostname, port });
      await conn.write(bytes);
      const closed = await closedWithin(conn, HANDSHAKE_MS + 4000);
      assert.ok(closed !== undefined, `${name}: still open`);
      assert.equal(closed.bytes, 0, `${name}: no answer`);
      if (at === "deadline") assert.ok(closed.ms >= HANDSHAKE_MS * 0.8, `${name}: closed after ${closed.ms} ms`);
      else assert.ok(closed.ms < HANDSHAKE_MS, `${name}: closed after ${closed.ms} ms, not at once`);
      assert.equal(provider.stats().limitsHit[limit], before + 1, `${name}: counted as ${limit}`);
    }

    // Slowloris: an honest frame's first bytes, one every 100 ms, never whole before the deadline.
    const slow = await Deno.connect({ hostname, port });
    const frame = seedFrame("Echo", "Say", new Uint8Array(64).fill(0x61));
    const started = performance.now();
    const dripping = (async () => {
      for (const byte of frame) {
        if (performance.now() - started > HANDSHAKE_MS + 2000) break;
        if (await slow.write(Uint8Array.of(byte)).then(() => false, () => true)) break;
        await sleep(100);
      }
    })();
    const dripped = await closedWithin(slow, HANDSHAKE_MS + 4000);
    await dripping;
    assert.ok(dripped !== undefined && dripped.ms < HANDSHAKE_MS + 1500, `slowloris closed after ${dripped?.ms} ms`);

    // An honest request in one-byte writes within the deadline: reassembled and answered.
    const args = Uint8Array.from(bytesField(1, "split"));
    const split = await Deno.connect({ hostname, port });
    split.setNoDelay(true);
    for (const byte of seedFrame("Echo", "Say", args)) {
      await split.write(Uint8Array.of(byte));
      await sleep(1);
    }
    const answer = new Uint8Array(1024);
    const n = await split.read(answer);
    assert.deepEqual(answer.subarray(0, n ?? 0), args);
    assert.equal(await split.read(answer), null); // then the half-close
    split.close();

    assert.equal(provider.seedAddress && provider.stats().connections >= 0, true);
  } finally {
    const calls = await honest.stop();
    assert.ok(calls > 0);
    await provider.stop();
  }
});

Deno.test("seed port: 10,000 connections opened and left idle are closed and counted, never more held than the cap, honest callers served", async () => {
  // 10 source addresses of 1,000 sockets each (the per-address cap) against a cap of 2,000 connections: newcomers
  // evict the oldest idle ones, the rest go at the read deadline. (The cap keeps the provider's descriptors, which
  // share this process's limit with the 10,000 attacking sockets, well below it.)
  const provider = await echoProvider({ maxConnections: 2000 });
  const { port } = provider.seedAddress!;
  const attackers = Array.from({ length: 10 }, (_, i) => `127.0.0.${i + 2}`);
  const sockets = new Set<net.Socket>();
  let closedByProvider = 0;
  const open = (localAddress: string) =>
    new Promise<void>((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port, localAddress });
      sockets.add(socket);
      socket.once("connect", () => resolve());
      socket.on("error", () => resolve());
      socket.once("close", () => {
        sockets.delete(socket);
        closedByProvider++;
        resolve();
      });
    });
  const honest = honestCallers(provider);
  try {
    const started = performance.now();
    let most = 0;
    for (let batch = 0; batch < 20; batch++) {
      await Promise.all(Array.from({ length: 500 }, (_, i) => open(attackers[(batch * 500 + i) % attackers.length]!)));
      most = Math.max(most, provider.stats().connections); // never above the cap (+ the honest seed caller's)
    }
    const openedAt = performance.now();
    assert.ok(most <= 2000 + 1, `${most} connections held`);
    while (closedByProvider < 10_000 && performance.now() - openedAt < HANDSHAKE_MS + 15_000) await sleep(50);
    assert.equal(closedByProvider, 10_000, `${sockets.size} sockets still open`);
    const limits = provider.stats().limitsHit;
    const counted = (limits.seed_handshake_timeout ?? 0) + (limits.seed_silent_evicted ?? 0) +
      (limits.seed_connections_per_address ?? 0) + (limits.seed_connections ?? 0);
    assert.equal(counted, 10_000, JSON.stringify(limits));
    console.log(
      `10,000 idle sockets opened in ${Math.round(openedAt - started)} ms, all closed ` +
        `${Math.round(performance.now() - openedAt)} ms later; at most ${most} held; ${JSON.stringify(limits)}`,
    );
  } finally {
    for (const socket of sockets) socket.destroy();
    const calls = await honest.stop();
    assert.ok(calls > 0);
    await provider.stop();
  }
});

Deno.test("seed port: partial frames of all connections together are bounded by maxBufferedFrameBytes", async () => {
  // Frames of up to 64 KiB, at most 100 KiB held in partial frames at once: the second big partial frame is refused.
  const provider = await echoProvider({
    maxFrameBytes: 65_536,
    maxBufferedFrameBytes: 100_000,
    handshakeTimeoutMs: 10_000,
  });
  const { hostname, port } = provider.seedAddress!;
  const partial = () => {
    const frame = seedFrame("Echo", "Say", Uint8Array.from(bytesField(1, new Uint8Array(60_000).fill(0x61))));
    return frame.subarray(0, frame.length - 10); // all but its last bytes
  };
  const first = await Deno.connect({ hostname, port });
  const second = await Deno.connect({ hostname, port });
  try {
    await first.write(partial());
    await sleep(100);
    await second.write(partial());
    const closed = await closedWithin(second, 3000);
    assert.ok(closed !== undefined && closed.bytes === 0, "the second partial frame closes its connection");
    assert.equal(provider.stats().limitsHit.seed_partial_frame_bytes, 1);
    // The first still completes and is answered once its last bytes come.
    await first.write(new Uint8Array(10).fill(0x61));
    const answered = await closedWithin(first, 3000);
    assert.ok(answered !== undefined && answered.bytes > 60_000, `answered ${answered?.bytes} bytes`);
  } finally {
    for (const conn of [first, second]) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    await provider.stop();
  }
});
