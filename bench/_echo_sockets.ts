/**
 * The plain-socket halves of the raw and byte echoes (bench/rpc_echo_server.ts, rpc_echo_client.ts), on the
 * current runtime's own sockets: `Deno.listen`/`Deno.connect` on Deno, `node:net` on Node and Bun. They are the
 * floor each runtime's backend is measured against, so they use nothing of the framework.
 */

import * as net from "node:net";
import { frameAll, FrameReader } from "./_length_prefixed.ts";

const onDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

/**
 * Listen on 127.0.0.1 and answer every connection. With `answer`, each whole length-prefixed frame of a read is
 * answered with `answer(body)` and the answers to one read go back in one write; without, bytes are echoed as
 * they come. Resolves with the port.
 */
export function listenEcho(answer?: (body: Uint8Array) => Uint8Array): Promise<number> {
  return onDeno ? listenDeno(answer) : listenNode(answer);
}

/**
 * Length-prefixed frames pipelined on one connection: each call queues `encode()`'s frame body and resolves with
 * the body of the reply that comes back in its turn (replies arrive in order). Everything queued in one tick goes
 * out in one write, as everything read in one read is answered at once.
 */
export function pipelined(port: number, encode: () => Uint8Array): Promise<() => Promise<Uint8Array>> {
  return onDeno ? pipelinedDeno(port, encode) : pipelinedNode(port, encode);
}

function listenDeno(answer?: (body: Uint8Array) => Uint8Array): Promise<number> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const writeAll = async (conn: Deno.Conn, bytes: Uint8Array) => {
    let off = 0;
    while (off < bytes.length) off += await conn.write(bytes.subarray(off));
  };
  (async () => {
    for await (const conn of listener) {
      conn.setNoDelay(true);
      (async () => {
        try {
          if (answer === undefined) {
            const buf = new Uint8Array(256 * 1024);
            for (;;) {
              const n = await conn.read(buf);
              if (n === null) break;
              await writeAll(conn, buf.subarray(0, n));
            }
          } else {
            const reader = new FrameReader();
            for (;;) {
              const n = await conn.read(reader.space());
              if (n === null) break;
              const replies: Uint8Array[] = [];
              reader.added(n, (body) => replies.push(answer(body)));
              if (replies.length > 0) await writeAll(conn, frameAll(replies));
            }
          }
        } catch {
          // peer gone
        }
        conn.close();
      })();
    }
  })();
  return Promise.resolve((listener.addr as Deno.NetAddr).port);
}

function listenNode(answer?: (body: Uint8Array) => Uint8Array): Promise<number> {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on("error", () => socket.destroy());
    if (answer === undefined) {
      socket.on("data", (chunk: Uint8Array) => socket.write(chunk));
      return;
    }
    const reader = new FrameReader();
    socket.on("data", (chunk: Uint8Array) => {
      const replies: Uint8Array[] = [];
      for (let at = 0; at < chunk.length;) {
        const space = reader.space();
        const n = Math.min(space.length, chunk.length - at);
        space.set(chunk.subarray(at, at + n));
        at += n;
        reader.added(n, (body) => replies.push(answer(body)));
      }
      if (replies.length > 0) socket.write(frameAll(replies));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
  });
}

async function pipelinedDeno(port: number, encode: () => Uint8Array): Promise<() => Promise<Uint8Array>> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const waiting: Array<(body: Uint8Array) => void> = [];
  (async () => {
    // Replies may differ in size from requests (RPC responses): walk their length headers.
    const reader = new FrameReader();
    for (;;) {
      const n = await conn.read(reader.space()).catch(() => null);
      if (n === null) break;
      reader.added(n, (body) => waiting.shift()?.(body));
    }
  })();
  let queued: Uint8Array[] = [];
  let writing = false;
  const flush = async () => {
    writing = true;
    while (queued.length > 0) {
      const batch = queued;
      queued = [];
      const bytes = frameAll(batch);
      let off = 0;
      while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    }
    writing = false;
  };
  return () =>
    new Promise<Uint8Array>((resolve) => {
      waiting.push(resolve);
      queued.push(encode());
      if (!writing) {
        writing = true;
        queueMicrotask(flush);
      }
    });
}

function pipelinedNode(port: number, encode: () => Uint8Array): Promise<() => Promise<Uint8Array>> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port }, () => {
      socket.setNoDelay(true);
      const waiting: Array<(body: Uint8Array) => void> = [];
      const reader = new FrameReader();
      socket.on("data", (chunk: Uint8Array) => {
        for (let at = 0; at < chunk.length;) {
          const space = reader.space();
          const n = Math.min(space.length, chunk.length - at);
          space.set(chunk.subarray(at, at + n));
          at += n;
          reader.added(n, (body) => waiting.shift()?.(body));
        }
      });
      let queued: Uint8Array[] = [];
      const flush = () => {
        const batch = queued;
        queued = [];
        socket.write(frameAll(batch));
      };
      resolve(() =>
        new Promise<Uint8Array>((resolve) => {
          waiting.push(resolve);
          if (queued.length === 0) queueMicrotask(flush);
          queued.push(encode());
        })
      );
    });
    socket.once("error", reject);
  });
}
