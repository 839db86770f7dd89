// Byte order and integrity across send / sendGathered / send(Buffer) / the echo swap, sends from sync code,
// microtasks and promise chains, turns separated in different ways (early writes among them), and a shutdown while
// an early write is in flight. Every byte of the stream is a function of its position, so any
// loss, duplication or reordering shows.
import assert from "node:assert/strict";
import { denoBackend } from "./backend/deno.ts";
import { nodeBackend } from "./backend/node.ts";
import { Buffer } from "./buffer.ts";
import { EventLoop } from "./event_loop.ts";
import { InetAddress } from "./inet_address.ts";
import { nextTurn } from "./next_turn.ts";
import type { TcpConnection } from "./tcp_connection.ts";
import { TcpServer } from "./tcp_server.ts";

const at = (k: number) => (k * 7 + (k >>> 9) * 13 + 1) & 0xff;

function rng(seed: number): () => number {
  return () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
}

const SIZES = [1, 20, 50, 100, 300, 511, 512, 513, 600, 1000, 1500, 2047, 2048, 2049, 4096, 20000];

async function readToEnd(conn: Deno.Conn): Promise<{ bytes: number; firstBad: number }> {
  const buf = new Uint8Array(64 * 1024);
  let bytes = 0;
  let firstBad = -1;
  while (true) {
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch {
      break;
    }
    if (n === null) break;
    for (let i = 0; i < n; i++) if (firstBad < 0 && buf[i] !== at(bytes + i)) firstBad = bytes + i;
    bytes += n;
  }
  return { bytes, firstBad };
}

async function produce(c: TcpConnection, seed: number): Promise<number> {
  const random = rng(seed);
  let pos = 0;
  const chunk = (size: number) => {
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = at(pos + i);
    pos += size;
    return data;
  };
  const op = (): Promise<void> | void => {
    const size = SIZES[Math.floor(random() * SIZES.length)]!;
    const kind = Math.floor(random() * 6);
    switch (kind) {
      case 0:
        c.send(chunk(size));
        return;
      case 1:
        c.sendGathered(chunk(size));
        return;
      case 2: {
        const b = new Buffer();
        b.append(chunk(size));
        c.send(b);
        return;
      }
      case 3:
        return new Promise((resolve) => queueMicrotask(() => (c.send(chunk(size)), resolve())));
      case 4: {
        const depth = 1 + Math.floor(random() * 4);
        let p = Promise.resolve();
        for (let i = 0; i < depth; i++) p = p.then(() => {});
        return p.then(() => c.send(chunk(size)));
      }
      default:
        return new Promise((resolve) => queueMicrotask(() => (c.sendGathered(chunk(size)), resolve())));
    }
  };
  for (let turn = 0; turn < 300; turn++) {
    const ops = 1 + Math.floor(random() * 30);
    const pending: Promise<void>[] = [];
    for (let i = 0; i < ops; i++) {
      const r = op();
      if (r) pending.push(r);
    }
    await Promise.all(pending);
    const gap = Math.floor(random() * 3);
    if (gap === 0) await new Promise((r) => setTimeout(r, 0));
    else if (gap === 1) await new Promise<void>((r) => nextTurn(r));
  }
  // The end: a turn whose frames start an early write, then shut down while it is in flight.
  for (let i = 0; i < 8; i++) c.send(chunk(100));
  c.shutdown();
  return pos;
}

for (const backend of [denoBackend, nodeBackend]) {
  for (const seed of [1, 2, 3, 4]) {
    Deno.test(`TcpConnection keeps the stream in order and intact under mixed sends and early writes, ${backend.name}, seed ${seed}`, async () => {
      const loop = new EventLoop({ backend, name: `order-${backend.name}` });
      const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "order");
      const total = Promise.withResolvers<number>();
      server.setConnectionCallback((c) => {
        if (c.connected) produce(c, seed).then(total.resolve, total.reject);
      });
      await server.start();
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.address.port });
      const got = await readToEnd(conn);
      conn.close();
      const sent = await total.promise;
      assert.equal(got.firstBad, -1, `first wrong byte at ${got.firstBad}`);
      assert.equal(got.bytes, sent);
      await server.stop();
      loop.quit();
    });
  }

  Deno.test(`TcpConnection echoes in order when it sends its input Buffer (swapped) beside other sends, ${backend.name}`, async () => {
    const loop = new EventLoop({ backend, name: `order-echo-${backend.name}` });
    const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "order-echo");
    const random = rng(99);
    server.setMessageCallback((c, b) => {
      // Sometimes send a prefix as a copy first (so the swap does not apply), sometimes split by a microtask.
      const r = random();
      if (r < 0.3 && b.readableBytes > 1) {
        c.send(b.retrieveAsBytes(Math.floor(b.readableBytes / 2)));
        c.send(b);
      } else if (r < 0.5 && b.readableBytes > 1) {
        const head = b.retrieveAsBytes(Math.floor(b.readableBytes / 3));
        c.send(head);
        c.send(b);
      } else {
        c.send(b);
      }
    });
    await server.start();
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.address.port });
    const total = 2 * 1024 * 1024;
    const reading = (async () => {
      const buf = new Uint8Array(64 * 1024);
      let bytes = 0;
      let firstBad = -1;
      while (bytes < total) {
        const n = await conn.read(buf);
        if (n === null) break;
        for (let i = 0; i < n; i++) if (firstBad < 0 && buf[i] !== at(bytes + i)) firstBad = bytes + i;
        bytes += n;
      }
      return { bytes, firstBad };
    })();
    let pos = 0;
    const wr = rng(7);
    while (pos < total) {
      const size = Math.min(total - pos, SIZES[Math.floor(wr() * SIZES.length)]!);
      const data = new Uint8Array(size);
      for (let i = 0; i < size; i++) data[i] = at(pos + i);
      pos += size;
      let off = 0;
      while (off < size) off += await conn.write(data.subarray(off));
      if (wr() < 0.2) await new Promise((r) => setTimeout(r, 0));
    }
    const got = await reading;
    conn.close();
    assert.equal(got.firstBad, -1, `first wrong byte at ${got.firstBad}`);
    assert.equal(got.bytes, total);
    await server.stop();
    loop.quit();
  });
}
