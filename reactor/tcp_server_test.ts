import assert from "node:assert/strict";
import { denoBackend } from "./backend/deno.ts";
import type { NetBackend } from "./backend/net_backend.ts";
import { EventLoop } from "./event_loop.ts";
import { InetAddress } from "./inet_address.ts";
import { TcpServer } from "./tcp_server.ts";
import { needs } from "./testdata/permissions.ts";

const FIXTURE = new URL("./testdata/thread_init.ts", import.meta.url).href;

/** Connect, read the greeting line, check an echo, and return the greeting. */
async function greetAndEcho(port: number, payload: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const decoder = new TextDecoder();
    const buf = new Uint8Array(1024);
    let text = "";
    while (!text.includes("\n")) {
      const n = await conn.read(buf);
      if (n === null) throw new Error("closed before the greeting");
      text += decoder.decode(buf.subarray(0, n));
    }
    const greeting = text.slice(0, text.indexOf("\n"));
    await conn.write(new TextEncoder().encode(payload));
    let echoed = text.slice(text.indexOf("\n") + 1);
    while (echoed.length < payload.length) {
      const n = await conn.read(buf);
      if (n === null) break;
      echoed += decoder.decode(buf.subarray(0, n));
    }
    assert.equal(echoed, payload);
    return greeting;
  } finally {
    conn.close();
  }
}

Deno.test("TcpServer serves many clients on one loop and names connections server-ip:port#N", async () => {
  const loop = new EventLoop();
  const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "single");
  const names: string[] = [];
  server.setConnectionCallback((connection) => {
    if (connection.connected) {
      names.push(connection.name);
      connection.send(`hello from ${server.name}\n`);
    }
  });
  server.setMessageCallback((connection, buffer) => connection.send(buffer));
  await server.start();
  const greetings = await Promise.all(Array.from({ length: 8 }, (_, i) => greetAndEcho(server.address.port, `p${i}`)));
  assert.deepEqual(new Set(greetings), new Set(["hello from single"]));
  assert.equal(names.length, 8);
  assert.match(names[0]!, new RegExp(`^single-127\\.0\\.0\\.1:${server.address.port}#\\d+$`));
  await server.stop();
  assert.equal(server.connectionCount, 0);
});

Deno.test("TcpServer stop closes open connections", async () => {
  const loop = new EventLoop();
  const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "stopper");
  let up = 0;
  server.setConnectionCallback((connection) => connection.connected && up++);
  await server.start();
  const conns = await Promise.all(
    [1, 2, 3].map(() => Deno.connect({ hostname: "127.0.0.1", port: server.address.port })),
  );
  const deadline = performance.now() + 2000;
  while (up < 3 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(server.connectionCount, 3);
  await server.stop();
  assert.equal(server.connectionCount, 0);
  for (const conn of conns) {
    assert.equal(await conn.read(new Uint8Array(8)), null);
    conn.close();
  }
});

Deno.test("TcpServer with 2 threads serves connections from both Workers", needs("read"), async () => {
  const loop = new EventLoop();
  const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "threaded");
  server.setThreadNum(2);
  server.setThreadInit(FIXTURE, "init", { greeting: "hi" });
  await server.start();
  assert.equal(server.runningThreads, 2);
  const greetings = new Set<string>();
  // SO_REUSEPORT hashes each connection's 4-tuple: over 32 connections both Workers get some (all in one has
  // probability 2^-31).
  for (let batch = 0; batch < 4; batch++) {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => greetAndEcho(server.address.port, `batch ${batch} conn ${i}`)),
    );
    for (const greeting of results) greetings.add(greeting);
  }
  assert.deepEqual([...greetings].sort(), ["hi from threaded#0", "hi from threaded#1"]);
  await server.stop();
  assert.equal(server.runningThreads, 0);
});

Deno.test("TcpServer falls back to one loop where the backend has no SO_REUSEPORT", needs("read"), async () => {
  const noReusePort: NetBackend = { ...denoBackend, supportsReusePort: false };
  const loop = new EventLoop({ backend: noReusePort });
  const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "fallback");
  server.setThreadNum(2);
  server.setThreadInit(FIXTURE, "init", { greeting: "single" });
  await server.start();
  assert.equal(server.runningThreads, 0);
  assert.equal(await greetAndEcho(server.address.port, "echo me"), "single from fallback");
  await server.stop();
});

Deno.test("TcpServer rejects bad thread settings with clear errors", needs("read"), async () => {
  const loop = new EventLoop();
  const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "bad");
  assert.throws(() => server.setThreadNum(-1), {
    name: "RangeError",
    message: "Cannot set thread number as 'threadNum' must be an integer in [0, 256]: current value is -1",
  });
  server.setThreadNum(1);
  await assert.rejects(server.start(), { name: "TypeError", message: /without setThreadInit/ });

  const missing = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "missing");
  missing.setThreadNum(1);
  missing.setThreadInit(FIXTURE, "notAFunction");
  await assert.rejects(missing.start(), { message: /'notAFunction' of .*thread_init\.ts is not a function/ });
  assert.equal(missing.runningThreads, 0);
  await missing.stop();
});

Deno.test("TcpServer reports a port already in use", async () => {
  const loop = new EventLoop();
  const first = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "first");
  await first.start();
  const second = new TcpServer(loop, new InetAddress("127.0.0.1", first.address.port), "second");
  await assert.rejects(second.start(), (error: Error) => /in use|AddrInUse/i.test(`${error.name} ${error.message}`));
  await second.stop();
  await first.stop();
});
