import assert from "node:assert/strict";
import { EventLoop } from "./event_loop.ts";
import { InetAddress } from "./inet_address.ts";
import { LengthHeaderCodec, type LengthHeaderCodecOptions, SHRINK_INPUT_ABOVE_BYTES } from "./length_header_codec.ts";
import type { TcpConnection } from "./tcp_connection.ts";
import { TcpServer } from "./tcp_server.ts";
import { until } from "./testdata/until.ts";

/** An echo server on 127.0.0.1:0 whose codec has `options`; it records frame errors and the last connection. */
async function echoServer(options: LengthHeaderCodecOptions) {
  const loop = new EventLoop();
  const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "codec-test");
  const errors: string[] = [];
  const seen = { connection: undefined as TcpConnection | undefined };
  const codec: LengthHeaderCodec = new LengthHeaderCodec((connection, body) => {
    seen.connection = connection;
    // Answer with the first bytes only, so a large frame gets a small reply.
    codec.send(connection, body.slice(0, 16));
  }, { ...options, onFrameError: (_connection, reason) => errors.push(reason) });
  server.setMessageCallback(codec.onMessage);
  server.setConnectionCallback(codec.onConnection);
  await server.start();
  return { server, codec, errors, seen, port: server.address.port };
}

function frame(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
}

/** Send one frame and read the whole reply frame. */
async function roundTrip(conn: Deno.Conn, body: Uint8Array): Promise<Uint8Array> {
  await writeAll(conn, frame(body));
  let got = new Uint8Array(0);
  for (;;) {
    if (got.length >= 4 && got.length >= 4 + new DataView(got.buffer).getUint32(0)) return got.subarray(4);
    const chunk = new Uint8Array(65536);
    const n = await conn.read(chunk);
    if (n === null) throw new Error("Connection closed before the reply");
    const joined = new Uint8Array(got.length + n);
    joined.set(got);
    joined.set(chunk.subarray(0, n), got.length);
    got = joined;
  }
}

/** Resolves with the milliseconds until the peer closes `conn` (reads to EOF or error). */
async function closedAfterMs(conn: Deno.Conn): Promise<number> {
  const start = performance.now();
  const chunk = new Uint8Array(1024);
  while ((await conn.read(chunk).catch(() => null)) !== null) { /* drain */ }
  return performance.now() - start;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("LengthHeaderCodec closes a peer stalled mid-frame, or trickling a byte at a time, after frameTimeoutMs while an honest peer is served", async () => {
  const { server, codec, errors, port } = await echoServer({ frameTimeoutMs: 300 });
  const stalled = await Deno.connect({ hostname: "127.0.0.1", port });
  const trickler = await Deno.connect({ hostname: "127.0.0.1", port });
  const honest = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    // 4 header bytes announcing 100, then 10 of them, then nothing.
    await stalled.write(frame(new Uint8Array(100)).subarray(0, 14));
    const stalledClosed = closedAfterMs(stalled);
    // A slowloris: one byte every 50 ms; each byte is progress, but the frame never completes in time.
    const trickle = frame(new Uint8Array(100));
    let trickling = true;
    const trickled = (async () => {
      for (let i = 0; trickling && i < trickle.length; i++) {
        if ((await trickler.write(trickle.subarray(i, i + 1)).catch(() => 0)) === 0) break;
        await sleep(50);
      }
    })();
    const tricklerClosed = closedAfterMs(trickler);
    // The honest peer keeps getting answers the whole time, well past the deadline.
    const start = performance.now();
    let answers = 0;
    while (performance.now() - start < 700) {
      const reply = await roundTrip(honest, new TextEncoder().encode(`ping ${answers}`));
      assert.equal(new TextDecoder().decode(reply), `ping ${answers}`);
      answers++;
      await sleep(20);
    }
    const [stalledMs, tricklerMs] = await Promise.all([stalledClosed, tricklerClosed]);
    trickling = false;
    await trickled;
    assert.ok(stalledMs >= 250 && stalledMs < 1500, `stalled peer closed after ${stalledMs} ms`);
    assert.ok(tricklerMs >= 250 && tricklerMs < 1500, `trickling peer closed after ${tricklerMs} ms`);
    assert.ok(answers >= 10, `honest peer got ${answers} answers`);
    assert.equal(codec.stats.framesTimedOut, 2);
    assert.equal(errors.length, 2);
    assert.match(errors[0]!, /not completed within 'frameTimeoutMs' of 300 ms/);
    await until(() => codec.stats.pendingConnections === 0);
    assert.equal(codec.stats.bufferedBytes, 0);
  } finally {
    stalled.close();
    trickler.close();
    honest.close();
    await server.stop();
  }
});

Deno.test("LengthHeaderCodec restarts the deadline for each new frame, so a steady stream of split frames is not cut", async () => {
  const { server, codec, port } = await echoServer({ frameTimeoutMs: 200 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    // Every write completes one frame and starts the next, so a partial frame is always pending for 600 ms.
    const body = new Uint8Array(20).fill(7);
    const whole = frame(body);
    await conn.write(whole.subarray(0, 10));
    const start = performance.now();
    while (performance.now() - start < 600) {
      await conn.write(new Uint8Array([...whole.subarray(10), ...whole.subarray(0, 10)]));
      await sleep(40);
    }
    await conn.write(whole.subarray(10));
    await until(() => codec.stats.pendingConnections === 0);
    assert.equal(codec.stats.framesTimedOut, 0);
  } finally {
    conn.close();
    await server.stop();
  }
});

Deno.test("LengthHeaderCodec closes the connections whose partial frames would push the total past maxBufferedBytes", async () => {
  const { server, codec, errors, port } = await echoServer({ maxBufferedBytes: 1000, maxFrameBytes: 10_000 });
  const stallers: Deno.Conn[] = [];
  const honest = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    for (let i = 0; i < 5; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      stallers.push(conn);
      await conn.write(frame(new Uint8Array(296)).subarray(0, 200)); // 200 bytes of a 300-byte frame
      await until(() => codec.stats.pendingConnections + codec.stats.closedForBufferCap === i + 1);
    }
    // Checked at the frame's size once whole: the fourth fits (3 x 200 held + 300 = 900), the fifth does not
    // (4 x 200 + 300 = 1100).
    assert.equal(codec.stats.closedForBufferCap, 1);
    assert.equal(codec.stats.bufferedBytes, 800);
    assert.match(
      errors[0]!,
      /would hold 1100 bytes in all once this connection's 300-byte frame is whole, over 'maxBufferedBytes' of 1000 \(200 bytes of it received\)/,
    );
    for (const closed of stallers.slice(4)) assert.ok((await closedAfterMs(closed)) < 1000);
    // An honest peer whose frames arrive whole is still served: whole frames never count against the cap.
    const reply = await roundTrip(honest, new Uint8Array(50).fill(1));
    assert.equal(reply.length, 16);
    // Closing the stalled peers releases their bytes.
    for (const conn of stallers.slice(0, 4)) conn.close();
    await until(() => codec.stats.pendingConnections === 0);
    assert.equal(codec.stats.bufferedBytes, 0);
  } finally {
    for (const conn of stallers.slice(4)) conn.close();
    honest.close();
    await server.stop();
  }
});

Deno.test("LengthHeaderCodec refuses a partial frame that cannot fit once whole at its first bytes, before its body is buffered", async () => {
  const { server, codec, errors, port } = await echoServer({ maxBufferedBytes: 64 * 1024, maxFrameBytes: 1 << 20 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    // A 1 MiB frame announced, 100 bytes sent: refused now, not after 64 KiB of it has been buffered.
    await conn.write(frame(new Uint8Array(1 << 20)).subarray(0, 104));
    assert.ok((await closedAfterMs(conn)) < 1000);
    assert.equal(codec.stats.closedForBufferCap, 1);
    assert.match(errors[0]!, /\(104 bytes of it received\)/);
  } finally {
    conn.close();
    await server.stop();
  }
});

Deno.test("LengthHeaderCodec gives back an idle connection's input buffer after a 4 MiB frame", async () => {
  const { server, seen, port } = await echoServer({ maxFrameBytes: 8 * 1024 * 1024 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await roundTrip(conn, new Uint8Array(4 * 1024 * 1024).fill(3));
    await sleep(20);
    const capacity = seen.connection!.inputBuffer.capacity;
    assert.ok(capacity <= SHRINK_INPUT_ABOVE_BYTES, `idle input buffer keeps ${capacity} bytes`);
    // And the connection still works.
    assert.equal((await roundTrip(conn, new Uint8Array([1, 2, 3]))).length, 3);
  } finally {
    conn.close();
    await server.stop();
  }
});

Deno.test("LengthHeaderCodec without the new options keeps a partial frame as before and tracks nothing", async () => {
  const { server, codec, errors, port } = await echoServer({});
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(frame(new Uint8Array(100)).subarray(0, 50));
    await sleep(100);
    assert.deepEqual(codec.stats, {
      framesTimedOut: 0,
      closedForBufferCap: 0,
      bufferedBytes: 0,
      pendingConnections: 0,
    });
    await conn.write(frame(new Uint8Array(100)).subarray(50));
    const chunk = new Uint8Array(64);
    assert.equal(await conn.read(chunk), 20);
    assert.deepEqual(errors, []);
  } finally {
    conn.close();
    await server.stop();
  }
});

Deno.test("LengthHeaderCodec refuses bad limits with a RangeError naming the option", () => {
  assert.throws(
    () => new LengthHeaderCodec(() => {}, { frameTimeoutMs: 0 }),
    /'frameTimeoutMs' must be .*: current value is 0/,
  );
  assert.throws(() => new LengthHeaderCodec(() => {}, { frameTimeoutMs: NaN }), RangeError);
  assert.throws(() => new LengthHeaderCodec(() => {}, { maxBufferedBytes: -1 }), /'maxBufferedBytes'.*-1/);
});
