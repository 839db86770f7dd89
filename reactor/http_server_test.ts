import assert from "node:assert/strict";
import { EventLoop } from "./event_loop.ts";
import { HttpServer, type HttpServerOptions } from "./http_server.ts";
import { InetAddress } from "./inet_address.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const encoder = new TextEncoder();

async function startServer(options: HttpServerOptions = {}): Promise<HttpServer> {
  const server = new HttpServer(new EventLoop(), {
    ...options,
    address: new InetAddress("127.0.0.1", 0),
    name: "http-test",
    handler: (request) => ({ body: request.path === "/ruok" ? "imok" : `path ${request.path}` }),
  });
  await server.start();
  return server;
}

/** Reads one response (head and Content-Length body) from `conn`, or what came before the peer closed. */
async function readResponse(conn: Deno.Conn): Promise<{ status: number; text: string; closed: boolean }> {
  let text = "";
  const chunk = new Uint8Array(4096);
  for (;;) {
    const headEnd = text.indexOf("\r\n\r\n");
    if (headEnd >= 0) {
      const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? 0);
      if (text.length >= headEnd + 4 + length) break;
    }
    const n = await conn.read(chunk).catch(() => null);
    if (n === null) return { status: Number(text.slice(9, 12)) || 0, text, closed: true };
    text += new TextDecoder().decode(chunk.subarray(0, n));
  }
  return { status: Number(text.slice(9, 12)), text, closed: false };
}

/** Milliseconds until the server closes `conn`. */
async function closedAfterMs(conn: Deno.Conn): Promise<number> {
  const start = performance.now();
  const chunk = new Uint8Array(4096);
  while ((await conn.read(chunk).catch(() => null)) !== null) { /* drain */ }
  return performance.now() - start;
}

async function request(port: number, head: string): Promise<{ status: number; text: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(encoder.encode(head));
    return await readResponse(conn);
  } finally {
    conn.close();
  }
}

Deno.test("HttpServer closes a slowloris client after headerTimeoutMs while honest requests are answered", async () => {
  const server = await startServer({ headerTimeoutMs: 400 });
  const slow = await Deno.connect({ hostname: "127.0.0.1", port: server.address.port });
  try {
    await slow.write(encoder.encode("GET /status HTTP/1.1\r\n"));
    let sending = true;
    const trickle = (async () => {
      // A header byte every 50 ms: always progress, never a whole head.
      while (sending && (await slow.write(encoder.encode("X")).catch(() => 0)) > 0) await sleep(50);
    })();
    const slowClosed = closedAfterMs(slow);
    const start = performance.now();
    let answers = 0;
    while (performance.now() - start < 800) {
      const response = await fetch(`http://${server.address}/ruok`);
      assert.equal(await response.text(), "imok");
      answers++;
      await sleep(30);
    }
    const slowMs = await slowClosed;
    sending = false;
    await trickle;
    assert.ok(slowMs >= 350 && slowMs < 1500, `slowloris closed after ${slowMs} ms`);
    assert.ok(answers >= 5, `${answers} honest answers`);
    assert.equal(server.stats.headerTimeouts, 1);
  } finally {
    slow.close();
    await server.stop();
  }
});

Deno.test("HttpServer closes a silent connection after headerTimeoutMs and an idle keep-alive one after idleTimeoutMs", async () => {
  const server = await startServer({ headerTimeoutMs: 300, idleTimeoutMs: 200 });
  const port = server.address.port;
  const silent = await Deno.connect({ hostname: "127.0.0.1", port });
  const idle = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await idle.write(encoder.encode(`GET /ruok HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`));
    const answer = await readResponse(idle);
    assert.equal(answer.status, 200);
    assert.match(answer.text, /keep-alive/);
    const [silentMs, idleMs] = await Promise.all([closedAfterMs(silent), closedAfterMs(idle)]);
    assert.ok(silentMs >= 250 && silentMs < 1200, `silent closed after ${silentMs} ms`);
    assert.ok(idleMs >= 150 && idleMs < 1200, `idle closed after ${idleMs} ms`);
    assert.equal(server.stats.idleTimeouts, 1);
    assert.equal(server.stats.headerTimeouts, 1);
  } finally {
    silent.close();
    idle.close();
    await server.stop();
  }
});

Deno.test("HttpServer refuses a Host it does not serve (DNS rebinding) and accepts local and allowed ones", async () => {
  const server = await startServer({ allowedHosts: ["Status.Example.Internal"] });
  const port = server.address.port;
  try {
    const get = (host: string | undefined, version = "1.1") =>
      request(
        port,
        `GET /ruok HTTP/${version}\r\n${host === undefined ? "" : `Host: ${host}\r\n`}Connection: close\r\n\r\n`,
      );
    for (const bad of ["evil.example", `evil.example:${port}`, "localhost.evil.example", "127.0.0.1.nip.io", "a b"]) {
      const response = await get(bad);
      assert.equal(response.status, 403, bad);
      assert.match(response.text, /is not served here: expected the listen address, localhost/);
    }
    for (
      const good of [
        `127.0.0.1:${port}`,
        "127.0.0.1",
        `localhost:${port}`,
        "LOCALHOST",
        `[::1]:${port}`,
        "10.1.2.3",
        "status.example.internal:80",
      ]
    ) {
      const response = await get(good);
      assert.equal(response.status, 200, `${good}: ${response.text}`);
      assert.match(response.text, /imok$/);
    }
    assert.equal((await get(undefined)).status, 200, "HTTP/1.1 without Host: no browser sends that");
    const old = await get(undefined, "1.0");
    assert.equal(old.status, 200, `HTTP/1.0 without Host: ${old.text}`);
    assert.equal(server.stats.badHosts, 5);
  } finally {
    await server.stop();
  }
});

Deno.test("HttpServer closes connections over maxConnections at once and serves again when one leaves", async () => {
  const server = await startServer({ maxConnections: 3 });
  const port = server.address.port;
  const held: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 3; i++) held.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    const over = await Deno.connect({ hostname: "127.0.0.1", port });
    assert.ok((await closedAfterMs(over)) < 500);
    over.close();
    assert.equal(server.stats.rejectedConnections, 1);
    assert.equal(server.stats.connections, 3);
    held.pop()!.close();
    const deadline = performance.now() + 2000;
    while (server.stats.connections > 2 && performance.now() < deadline) await sleep(5);
    const response = await request(port, `GET /ruok HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    assert.equal(response.status, 200);
  } finally {
    for (const conn of held) conn.close();
    await server.stop();
  }
});

Deno.test("HttpServer answers 413 to a request head over maxRequestBytes", async () => {
  const server = await startServer({ maxRequestBytes: 1024 });
  const port = server.address.port;
  try {
    const big = await request(port, `GET /ruok HTTP/1.1\r\nHost: localhost\r\nX-Pad: ${"a".repeat(2000)}\r\n\r\n`);
    assert.equal(big.status, 413);
    const unfinished = await request(port, `GET /ruok HTTP/1.1\r\nX-Pad: ${"a".repeat(2000)}`);
    assert.equal(unfinished.status, 413);
    const fine = await request(port, `GET /ruok HTTP/1.1\r\nHost: localhost\r\nX-Pad: ${"a".repeat(500)}\r\n\r\n`);
    assert.equal(fine.status, 200);
  } finally {
    await server.stop();
  }
});

Deno.test("HttpServer refuses bad limits with a RangeError naming the option", () => {
  const make = (options: HttpServerOptions) =>
    new HttpServer(new EventLoop(), {
      ...options,
      address: new InetAddress("127.0.0.1", 0),
      name: "x",
      handler: () => ({ body: "" }),
    });
  assert.throws(() => make({ maxConnections: 0 }), /'maxConnections' must be an integer > 0: current value is 0/);
  assert.throws(() => make({ headerTimeoutMs: -1 }), RangeError);
  assert.throws(() => make({ allowedHosts: [""] }), /'allowedHosts'/);
});
