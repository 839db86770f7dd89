/**
 * Ping-pong client for bench/pingpong.ts (muduo's pingpong test): each of `--conns` connections sends one block of
 * `--block` bytes and then echoes back whatever it reads, for `--seconds`. Prints one JSON line with the bytes
 * read and the elapsed time. `--stack reactor` uses TcpClient, `--stack raw` plain Deno.connect.
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { EventLoop, InetAddress, TcpClient } from "../reactor/mod.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: {
    stack: { type: "string", default: "reactor" },
    port: { type: "string" },
    conns: { type: "string", default: "1" },
    block: { type: "string", default: "16384" },
    seconds: { type: "string", default: "3" },
  },
});
const port = Number(values.port);
const conns = Number(values.conns);
const block = new Uint8Array(Number(values.block)).fill(0x61);
const durationMs = Number(values.seconds) * 1000;

let bytesRead = 0;
const start = performance.now();

if (values.stack === "raw") {
  let running = true;
  setTimeout(() => running = false, durationMs);
  const sessions = Array.from({ length: conns }, async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    const buf = new Uint8Array(64 * 1024);
    let off = 0;
    while (off < block.length) off += await conn.write(block.subarray(off));
    try {
      while (running) {
        const n = await conn.read(buf);
        if (n === null) break;
        bytesRead += n;
        let w = 0;
        while (w < n) w += await conn.write(buf.subarray(w, n));
      }
    } finally {
      conn.close();
    }
  });
  await Promise.allSettled(sessions);
} else {
  const loop = EventLoop.current();
  const clients: TcpClient[] = [];
  for (let i = 0; i < conns; i++) {
    const client = new TcpClient(loop, new InetAddress("127.0.0.1", port), `pingpong-${i}`);
    client.setConnectionCallback((connection) => {
      if (connection.connected) connection.send(block);
    });
    client.setMessageCallback((connection, buffer) => {
      bytesRead += buffer.readableBytes;
      connection.send(buffer);
    });
    client.connect();
    clients.push(client);
  }
  await new Promise((resolve) => setTimeout(resolve, durationMs));
  await Promise.all(clients.map((client) => client.close()));
}

const elapsedMs = performance.now() - start;
console.log(JSON.stringify({ stack: values.stack, conns, block: block.length, bytesRead, elapsedMs }));
Deno.exit(0);
