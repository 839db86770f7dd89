import assert from "node:assert/strict";
import type { NetBackend } from "./backend/net_backend.ts";
import { denoBackend } from "./backend/deno.ts";
import { nodeBackend } from "./backend/node.ts";
import { EventLoop } from "./event_loop.ts";
import { InetAddress } from "./inet_address.ts";
import type { TcpConnection } from "./tcp_connection.ts";
import { TcpServer } from "./tcp_server.ts";

const MiB = 1024 * 1024;

/** Read from `conn` until EOF or until `limit` bytes, returning the byte count and a checksum. */
async function readAll(conn: Deno.Conn, limit = Infinity): Promise<{ bytes: number; sum: number }> {
  const buf = new Uint8Array(64 * 1024);
  let bytes = 0;
  let sum = 0;
  while (bytes < limit) {
    const n = await conn.read(buf);
    if (n === null) break;
    for (let i = 0; i < n; i++) sum = (sum + buf[i]!) % 1_000_000_007;
    bytes += n;
  }
  return { bytes, sum };
}

function pattern(size: number): Uint8Array {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + 7) & 0xff;
  return data;
}

function checksum(data: Uint8Array): number {
  let sum = 0;
  for (const byte of data) sum = (sum + byte) % 1_000_000_007;
  return sum;
}

async function startServer(
  backend: NetBackend,
  setup: (server: TcpServer) => void,
): Promise<{ loop: EventLoop; server: TcpServer; port: number }> {
  const loop = new EventLoop({ backend, name: `test-${backend.name}` });
  const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "test");
  setup(server);
  await server.start();
  return { loop, server, port: server.address.port };
}

for (const backend of [denoBackend, nodeBackend]) {
  Deno.test(`TcpConnection echoes 1 MiB intact on the ${backend.name} backend`, async () => {
    const { loop, server, port } = await startServer(backend, (s) => s.setMessageCallback((c, b) => c.send(b)));
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const data = pattern(MiB);
    const [, echoed] = await Promise.all([
      (async () => {
        let off = 0;
        while (off < data.length) off += await conn.write(data.subarray(off));
      })(),
      readAll(conn, data.length),
    ]);
    conn.close();
    assert.equal(echoed.bytes, data.length);
    assert.equal(echoed.sum, checksum(data));
    await server.stop();
    loop.quit();
  });

  Deno.test(`TcpConnection shutdown after drain delivers every byte on the ${backend.name} backend`, async () => {
    const data = pattern(8 * MiB);
    const { loop, server, port } = await startServer(backend, (s) =>
      s.setConnectionCallback((c) => {
        if (!c.connected) return;
        // Send far more than the socket buffers hold, then shut down at once: the FIN must wait for the data.
        c.send(data);
        c.shutdown();
      }));
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const received = await readAll(conn);
    conn.close();
    assert.equal(received.bytes, data.length);
    assert.equal(received.sum, checksum(data));
    await server.stop();
    loop.quit();
  });

  Deno.test(`TcpConnection high-water mark pauses a slow reader's peer on the ${backend.name} backend`, async () => {
    // An echo server whose client writes but does not read: the echo output piles up. With the muduo recipe
    // (stop reading at the high-water mark, resume on write complete) the server's memory stays bounded.
    const highWaterMark = 256 * 1024;
    let highWaterHits = 0;
    let maxPending = 0;
    let serverConnection: TcpConnection | undefined;
    const { loop, server, port } = await startServer(backend, (s) => {
      s.setConnectionCallback((c) => {
        if (c.connected) serverConnection = c;
      });
      s.setMessageCallback((c, b) => {
        c.send(b);
        maxPending = Math.max(maxPending, c.pendingBytes);
      });
      s.setHighWaterMarkCallback((c) => {
        highWaterHits++;
        c.stopRead();
      }, highWaterMark);
      s.setWriteCompleteCallback((c) => c.startRead());
    });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const total = 32 * MiB;
    const chunk = pattern(64 * 1024);
    let written = 0;
    // Write until the kernel buffers on both sides are full and our writes stall (the server stopped reading).
    const writer = (async () => {
      while (written < total) {
        let off = 0;
        while (off < chunk.length) off += await conn.write(chunk.subarray(off));
        written += chunk.length;
      }
    })();
    const stallDeadline = performance.now() + 5000;
    let last = -1;
    while (performance.now() < stallDeadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      if (written === last && highWaterHits > 0) break;
      last = written;
    }
    assert.ok(highWaterHits >= 1, "the high-water mark callback fired");
    assert.equal(serverConnection?.reading, false, "the server stopped reading");
    assert.ok(written < total, `the client's writes stalled (wrote ${written} of ${total})`);
    // Bounded: at most the mark plus one read's worth of bytes were ever pending on the server.
    assert.ok(maxPending < highWaterMark + 4 * MiB, `server pending bytes peaked at ${maxPending}`);
    // Now drain: everything written comes back, the server resumes reading and the rest flows.
    const echoed = await readAll(conn, total);
    await writer;
    conn.close();
    assert.equal(echoed.bytes, total);
    await server.stop();
    loop.quit();
  });

  Deno.test(`TcpServer survives a peer that resets mid-write on the ${backend.name} backend`, async () => {
    const big = pattern(16 * MiB);
    let downs = 0;
    const { loop, server, port } = await startServer(backend, (s) => {
      s.setConnectionCallback((c) => {
        if (!c.connected) {
          downs++;
          return;
        }
      });
      s.setMessageCallback((c, b) => {
        const text = b.retrieveAllAsString();
        if (text.includes("big")) c.send(big);
        else c.send(text);
      });
    });
    // Client 1 asks for 16 MiB, reads a little, then closes with unread data, which makes the kernel send RST.
    const rude = await Deno.connect({ hostname: "127.0.0.1", port });
    await rude.write(new TextEncoder().encode("big"));
    await readAll(rude, 64 * 1024);
    rude.close();
    // Client 2 is still served.
    const polite = await Deno.connect({ hostname: "127.0.0.1", port });
    await polite.write(new TextEncoder().encode("ping"));
    const buf = new Uint8Array(16);
    const n = await polite.read(buf);
    assert.equal(new TextDecoder().decode(buf.subarray(0, n ?? 0)), "ping");
    polite.close();
    const deadline = performance.now() + 3000;
    while (downs < 2 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(downs, 2);
    assert.equal(server.connectionCount, 0);
    await server.stop();
    loop.quit();
  });
}

// A server that answers "pong:<request>" in two writes, `delayMs` and twice that after the request (and the peer's
// FIN), as a slow handler would, then shuts down.
async function startHalfCloseServer(backend: NetBackend, keepWriting: boolean, delayMs: number) {
  const seen = { halfCloses: 0, downs: 0, sentAfterFin: false };
  const started = await startServer(backend, (s) => {
    s.setConnectionCallback((c) => {
      if (!c.connected) {
        seen.downs++;
        return;
      }
      if (!keepWriting) return;
      c.setHalfCloseCallback((connection) => {
        seen.halfCloses++;
        assert.ok(connection.peerClosed && connection.connected, "still connected for writing after the FIN");
      });
    });
    s.setMessageCallback((c, b) => {
      const request = b.retrieveAllAsString();
      setTimeout(() => {
        seen.sentAfterFin = c.connected;
        if (c.connected) c.send("pong:");
      }, delayMs);
      setTimeout(() => {
        if (!c.connected) return;
        c.send(request);
        c.shutdown();
      }, 2 * delayMs);
    });
  });
  return { ...started, seen };
}

for (const backend of [denoBackend, nodeBackend]) {
  Deno.test(`TcpConnection with a half-close callback answers a peer that half-closed on the ${backend.name} backend`, async () => {
    const { loop, server, port, seen } = await startHalfCloseServer(backend, true, 100);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("ping"));
    await conn.closeWrite(); // `nc -N`: the request is whole, the answer is still wanted
    let answer = "";
    const buf = new Uint8Array(64);
    const decoder = new TextDecoder();
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      answer += decoder.decode(buf.subarray(0, n), { stream: true });
    }
    conn.close();
    assert.equal(answer, "pong:ping", "answered, then EOF");
    assert.equal(seen.halfCloses, 1);
    assert.ok(seen.sentAfterFin);
    const deadline = performance.now() + 3000;
    while (seen.downs < 1 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(server.connectionCount, 0, "closed once both sides were done");
    await server.stop();
    loop.quit();
  });

  Deno.test(`TcpConnection without a half-close callback closes on the peer's FIN as before on the ${backend.name} backend`, async () => {
    const { loop, server, port, seen } = await startHalfCloseServer(backend, false, 200);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("ping"));
    await conn.closeWrite();
    assert.equal(await conn.read(new Uint8Array(64)), null, "closed with nothing to send: the late answer is lost");
    conn.close();
    await new Promise((resolve) => setTimeout(resolve, 300)); // the late send, dropped on a closed connection
    assert.equal(seen.sentAfterFin, false);
    assert.equal(seen.downs, 1);
    await server.stop();
    loop.quit();
  });
}

Deno.test("TcpConnection closes a connection whose message callback throws and keeps serving", async () => {
  const { loop, server, port } = await startServer(denoBackend, (s) =>
    s.setMessageCallback((c, b) => {
      const text = b.retrieveAllAsString();
      if (text === "throw") throw new Error("handler bug");
      c.send(text);
    }));
  const bad = await Deno.connect({ hostname: "127.0.0.1", port });
  await bad.write(new TextEncoder().encode("throw"));
  assert.equal(await bad.read(new Uint8Array(8)), null);
  bad.close();
  const good = await Deno.connect({ hostname: "127.0.0.1", port });
  await good.write(new TextEncoder().encode("ok"));
  const buf = new Uint8Array(8);
  const n = await good.read(buf);
  assert.equal(new TextDecoder().decode(buf.subarray(0, n ?? 0)), "ok");
  good.close();
  await server.stop();
  loop.quit();
});

/** `backend` with the sizes of the writes its accepted sockets make recorded in `writes`. */
function countingWrites(backend: NetBackend, writes: number[]): NetBackend {
  return {
    ...backend,
    listen: async (options) => {
      const listener = await backend.listen(options);
      return {
        address: listener.address,
        close: () => listener.close(),
        accept: async () => {
          const socket = await listener.accept();
          const write = socket.write.bind(socket);
          socket.write = (chunk, done) => {
            writes.push(chunk.length);
            write(chunk, done);
          };
          return socket;
        },
      };
    },
  };
}

for (const backend of [denoBackend, nodeBackend]) {
  Deno.test(`TcpConnection writes a turn's small frames early once 512 bytes gather, the rest at the turn's end, on the ${backend.name} backend`, async () => {
    const writes: number[] = [];
    // Each request byte asks for a turn of that many frames of 100 bytes, each sent from a microtask of its own (as
    // the answers to a read's requests go out); 200 asks for two frames of 4 KiB.
    const { loop, server, port } = await startServer(
      countingWrites(backend, writes),
      (s) =>
        s.setMessageCallback((c, b) => {
          for (const count of b.retrieveAsBytes(b.readableBytes)) {
            const size = count === 200 ? 4096 : 100;
            const frames = count === 200 ? 2 : count;
            for (let i = 0; i < frames; i++) queueMicrotask(() => c.send(new Uint8Array(size).fill(count)));
          }
        }),
    );
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const ask = async (count: number, expected: number) => {
      const before = writes.length;
      await conn.write(new Uint8Array([count]));
      const got = await readAll(conn, expected);
      assert.equal(got.bytes, expected);
      assert.equal(got.sum, (count * expected) % 1_000_000_007);
      return writes.slice(before);
    };
    // Under 512 bytes: one write at the turn's end.
    assert.deepEqual(await ask(4, 400), [400]);
    // 20 frames: the first 6 (600 bytes, past 512) at once, the other 14 in one write.
    assert.deepEqual(await ask(20, 2000), [600, 1400]);
    // Large frames already reach the peer in parts: no early write.
    assert.deepEqual(await ask(200, 8192), [8192]);
    // An early write that takes a whole turn ends with the turn: the next turn writes early again.
    assert.deepEqual(await ask(6, 600), [600]);
    assert.deepEqual(await ask(20, 2000), [600, 1400]);
    conn.close();
    await server.stop();
    loop.quit();
  });
}
