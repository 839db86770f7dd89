import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { InetAddress } from "../../reactor/inet_address.ts";
import { until } from "../../reactor/testdata/until.ts";
import type { Http1Handler } from "./http1_connection.ts";
import { Http1Error } from "./http1_error.ts";
import { Http1Server, type Http1ServerOptions } from "./http1_server.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The routes most tests use. */
const routes: Http1Handler = async (request, response) => {
  switch (request.path) {
    case "/hello":
      await response.end("hello");
      return;
    case "/echo": {
      response.writeHead(200, { "content-type": "application/octet-stream" });
      for await (const chunk of request.body) await response.write(chunk);
      await response.end();
      return;
    }
    case "/count": {
      let bytes = 0;
      for await (const chunk of request.body) bytes += chunk.length;
      const trailers = Object.fromEntries(request.body.trailers ?? []);
      await response.end(JSON.stringify({ bytes, trailers, query: request.query.get("q") }));
      return;
    }
    case "/big":
      await response.end(new Uint8Array(64 * 1024).fill(0x62));
      return;
    case "/ignore":
      await response.end("ignored");
      return;
    case "/stream": {
      const n = Number(request.query.get("n") ?? 3);
      for (let i = 0; i < n; i++) await response.write(`message ${i}\n`);
      await response.end(undefined, request.query.has("trailers") ? { "grpc-status": "0", "grpc-message": "ok" } : {});
      return;
    }
    case "/throw":
      throw new Error("handler bug");
    case "/throw-after-head":
      await response.write("partial");
      throw new Error("handler bug mid-response");
    default:
      await response.end(`no route ${request.path}`);
  }
};

async function startServer(options: Http1ServerOptions = {}, handler: Http1Handler = routes): Promise<Http1Server> {
  const server = new Http1Server(new EventLoop(), {
    ...options,
    address: new InetAddress("127.0.0.1", 0),
    name: "http1-test",
    handler,
  });
  await server.start();
  return server;
}

interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: string;
  trailers: Map<string, string>;
  /** Whether the body ended with the connection (no length, no chunks) or the connection ended inside it. */
  endedByClose: boolean;
}

/** A client on a raw socket: hostile bytes out, responses parsed by hand. */
class RawClient {
  readonly conn: Deno.Conn;
  #pending = new Uint8Array(0);
  #eof = false;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  static async open(server: Http1Server): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port: server.address.port }));
  }

  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    for (let offset = 0; offset < bytes.length;) offset += await this.conn.write(bytes.subarray(offset));
  }

  /** One response (interim 1xx ones are returned as such); `head`: it answers a HEAD request. */
  async read(head = false): Promise<RawResponse> {
    const headText = await this.#readUntil("\r\n\r\n");
    const [statusLine = "", ...lines] = headText.split("\r\n");
    const status = Number(statusLine.slice(9, 12));
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(":");
      headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
    }
    const response: RawResponse = { status, headers, body: "", trailers: new Map(), endedByClose: false };
    if (head || status < 200 || status === 204 || status === 304) return response;
    if (headers.get("transfer-encoding") === "chunked") {
      for (;;) {
        const sizeLine = await this.#readUntil("\r\n", true);
        if (sizeLine === undefined) {
          response.endedByClose = true;
          return response;
        }
        const size = parseInt(sizeLine, 16);
        if (size === 0) break;
        const data = await this.#readBytes(size + 2);
        if (data === undefined) {
          response.endedByClose = true;
          return response;
        }
        response.body += decoder.decode(data.subarray(0, size));
      }
      const trailerText = await this.#readUntil("\r\n", false);
      let line = trailerText;
      while (line !== "") {
        const colon = line.indexOf(":");
        response.trailers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
        line = await this.#readUntil("\r\n", false);
      }
      return response;
    }
    const length = headers.get("content-length");
    if (length !== undefined) {
      response.body = decoder.decode(await this.#readBytes(Number(length)) ?? new Uint8Array());
      return response;
    }
    while (await this.#fill()) { /* until the server closes */ }
    response.body = decoder.decode(this.#pending);
    this.#pending = new Uint8Array(0);
    response.endedByClose = true;
    return response;
  }

  /** Whether the server closes the connection within `timeoutMs` (anything it sends meanwhile is dropped). */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs));
    const closed = (async () => {
      while (await this.#fill()) this.#pending = new Uint8Array(0);
      return true;
    })();
    const result = await Promise.race([closed, timeout]);
    clearTimeout(timer);
    if (!result) {
      this.close();
      await closed;
    }
    return result;
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* closed already */ }
  }

  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(65536);
    const n = await this.conn.read(chunk).catch(() => null);
    if (n === null) {
      this.#eof = true;
      return false;
    }
    const joined = new Uint8Array(this.#pending.length + n);
    joined.set(this.#pending);
    joined.set(chunk.subarray(0, n), this.#pending.length);
    this.#pending = joined;
    return true;
  }

  async #readUntil(delimiter: string, orEof: true): Promise<string | undefined>;
  async #readUntil(delimiter: string, orEof?: false): Promise<string>;
  async #readUntil(delimiter: string, orEof = false): Promise<string | undefined> {
    for (;;) {
      const text = latin1(this.#pending);
      const at = text.indexOf(delimiter);
      if (at >= 0) {
        this.#pending = this.#pending.slice(at + delimiter.length);
        return text.slice(0, at);
      }
      if (!(await this.#fill())) {
        if (orEof) return undefined;
        throw new Error(`The server closed before '${JSON.stringify(delimiter)}'; got ${JSON.stringify(text)}`);
      }
    }
  }

  async #readBytes(length: number): Promise<Uint8Array | undefined> {
    while (this.#pending.length < length) if (!(await this.#fill())) return undefined;
    const bytes = this.#pending.slice(0, length);
    this.#pending = this.#pending.slice(length);
    return bytes;
  }
}

function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 4096) text += String.fromCharCode(...bytes.subarray(i, i + 4096));
  return text;
}

/** An honest client asking all along; `stop` checks every answer was right and returns how many there were. */
function honestClient(server: Http1Server): { stop(): Promise<number> } {
  let running = true;
  const loop = (async () => {
    let answers = 0;
    while (running) {
      const hello = await fetch(`http://${server.address}/hello`);
      assert.equal(await hello.text(), "hello");
      const echo = await fetch(`http://${server.address}/echo`, { method: "POST", body: `honest ${answers}` });
      assert.equal(await echo.text(), `honest ${answers}`);
      answers++;
      await sleep(5);
    }
    return answers;
  })();
  return {
    stop: () => {
      running = false;
      return loop;
    },
  };
}

Deno.test("Http1Server serves fetch: GET, POST with a length, a streamed (chunked) upload, HEAD, a streamed answer", async () => {
  await using server = await startServer();
  const hello = await fetch(`http://${server.address}/hello`);
  assert.equal(hello.status, 200);
  assert.equal(hello.headers.get("content-length"), "5");
  assert.ok(hello.headers.get("date")?.endsWith("GMT"));
  assert.equal(await hello.text(), "hello");

  const posted = await fetch(`http://${server.address}/count?q=x%20y`, { method: "POST", body: "12345" });
  assert.deepEqual(await posted.json(), { bytes: 5, trailers: {}, query: "x y" });

  const pieces = ["first ", "second ", "third"];
  const upload = new ReadableStream<Uint8Array>({
    pull(controller) {
      const piece = pieces.shift();
      if (piece === undefined) controller.close();
      else controller.enqueue(encoder.encode(piece));
    },
  });
  const echoed = await fetch(`http://${server.address}/echo`, { method: "POST", body: upload });
  assert.equal(echoed.headers.get("transfer-encoding"), "chunked");
  assert.equal(await echoed.text(), "first second third");

  const head = await fetch(`http://${server.address}/hello`, { method: "HEAD" });
  assert.equal(head.headers.get("content-length"), "5");
  assert.equal(await head.text(), "");

  const stream = await fetch(`http://${server.address}/stream?n=4`);
  assert.equal(await stream.text(), "message 0\nmessage 1\nmessage 2\nmessage 3\n");
  assert.equal(server.stats.requests, 5);
});

Deno.test("Http1Server keeps connections alive: sequential fetches reuse one, a raw client sends three on one", async () => {
  const peers = new Set<string>();
  await using server = await startServer({}, async (request, response) => {
    peers.add(request.peer);
    await routes(request, response);
  });
  for (let i = 0; i < 20; i++) assert.equal(await (await fetch(`http://${server.address}/hello`)).text(), "hello");
  assert.equal(peers.size, 1, `${peers.size} connections for 20 sequential fetches`);

  const client = await RawClient.open(server);
  try {
    for (let i = 0; i < 3; i++) {
      await client.write(`POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: ${i}\r\n\r\n${"z".repeat(i)}`);
      const response = await client.read();
      assert.equal(response.status, 200);
      assert.equal(JSON.parse(response.body).bytes, i);
      assert.equal(response.headers.get("connection"), undefined);
    }
  } finally {
    client.close();
  }
});

Deno.test("Http1Server answers pipelined requests in order, chunked bodies and trailers included", async () => {
  await using server = await startServer();
  const client = await RawClient.open(server);
  try {
    await client.write(
      "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" +
        "POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
        "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Check: yes\r\n\r\n" +
        "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n" +
        "GET /stream?n=2&trailers HTTP/1.1\r\nHost: x\r\n\r\n" +
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nlast",
    );
    assert.equal((await client.read()).body, "hello");
    assert.deepEqual(JSON.parse((await client.read()).body), { bytes: 5, trailers: { "x-check": "yes" }, query: null });
    const head = await client.read(true);
    assert.equal(head.headers.get("content-length"), "5");
    const stream = await client.read();
    assert.equal(stream.body, "message 0\nmessage 1\n");
    assert.deepEqual([...stream.trailers], [["grpc-status", "0"], ["grpc-message", "ok"]]);
    const last = await client.read();
    assert.equal(last.body, "last");
    assert.equal(last.headers.get("connection"), "close");
    assert.ok(await client.closedWithin(2000), "closed after Connection: close");
  } finally {
    client.close();
  }
  assert.equal(server.stats.requests, 5);
});

/** A hostile request, what it must be answered with, and whether the connection must close. */
interface HostileCase {
  name: string;
  send: string;
  status: number;
  reason: keyof Http1Server["stats"]["refusals"];
  closes: boolean;
}

const HOSTILE: HostileCase[] = [
  {
    name: "Content-Length with Transfer-Encoding (smuggling)",
    send: "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    status: 400,
    reason: "smuggling",
    closes: true,
  },
  {
    name: "two different Content-Lengths",
    send: "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
    status: 400,
    reason: "bad_content_length",
    closes: true,
  },
  {
    name: "a Content-Length list",
    send: "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\nabcd",
    status: 400,
    reason: "bad_content_length",
    closes: true,
  },
  {
    name: "obs-fold",
    send: "GET /hello HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
    status: 400,
    reason: "obs_fold",
    closes: true,
  },
  {
    name: "gzip as the final transfer coding",
    send: "POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    status: 501,
    reason: "unsupported_transfer_coding",
    closes: true,
  },
  {
    name: "chunked not the final coding",
    send: "POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
    status: 400,
    reason: "bad_transfer_encoding",
    closes: true,
  },
  {
    name: "an invalid header name",
    send: "GET /hello HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",
    status: 400,
    reason: "bad_header",
    closes: true,
  },
  {
    name: "a control character in a value",
    send: "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    status: 400,
    reason: "bad_header",
    closes: true,
  },
  {
    name: "a request line over 8 KiB",
    send: `GET /${"a".repeat(9000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    status: 414,
    reason: "uri_too_long",
    closes: true,
  },
  {
    name: "a header block over 64 KiB",
    send: `GET /hello HTTP/1.1\r\nHost: x\r\n${`X-Big: ${"b".repeat(8000)}\r\n`.repeat(9)}\r\n`,
    status: 431,
    reason: "headers_too_large",
    closes: true,
  },
  {
    name: "a hex-huge chunk size",
    send: "POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\n",
    status: 400,
    reason: "bad_chunk",
    closes: true,
  },
  {
    name: "a chunk longer than its size",
    send: "POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcdef\r\n0\r\n\r\n",
    status: 400,
    reason: "bad_chunk",
    closes: true,
  },
  {
    name: "HTTP/2.0 on the HTTP/1.1 port",
    send: "GET /hello HTTP/2.0\r\nHost: x\r\n\r\n",
    status: 505,
    reason: "version_not_supported",
    closes: true,
  },
  {
    name: "no Host",
    send: "GET /hello HTTP/1.1\r\n\r\n",
    status: 400,
    reason: "bad_host",
    closes: true,
  },
  {
    name: "a bare LF",
    send: "GET /hello HTTP/1.1\nHost: x\n\n",
    status: 400,
    reason: "bad_header",
    closes: true,
  },
  {
    name: "an unknown method without a body",
    send: "DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n",
    status: 405,
    reason: "method_not_allowed",
    closes: false,
  },
  {
    name: "an unknown method with a small body (discarded)",
    send: "PUT /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789",
    status: 405,
    reason: "method_not_allowed",
    closes: false,
  },
  {
    name: "an unknown expectation",
    send: "GET /hello HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n",
    status: 417,
    reason: "expectation_failed",
    closes: false,
  },
];

Deno.test("Http1Server refuses each hostile request with its status, counts it, closes as RFC 9112 says, serves an honest client meanwhile", async () => {
  await using server = await startServer();
  const honest = honestClient(server);
  const expected: Record<string, number> = {};
  try {
    for (const hostile of HOSTILE) {
      const client = await RawClient.open(server);
      try {
        await client.write(hostile.send);
        const response = await client.read();
        assert.equal(response.status, hostile.status, hostile.name);
        expected[hostile.reason] = (expected[hostile.reason] ?? 0) + 1;
        assert.equal(server.stats.refusals[hostile.reason], expected[hostile.reason], hostile.name);
        if (hostile.status === 405) assert.equal(response.headers.get("allow"), "GET, HEAD, POST, OPTIONS");
        if (hostile.closes) {
          assert.equal(response.headers.get("connection"), "close", hostile.name);
          assert.ok(await client.closedWithin(2000), `${hostile.name}: the connection stays open`);
        } else {
          await client.write("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
          assert.equal((await client.read()).body, "hello", `${hostile.name}: the connection is not reusable`);
        }
      } finally {
        client.close();
      }
    }
  } finally {
    assert.ok(await honest.stop() > 0);
  }
});

Deno.test("Http1Server reads bytes past a body's declared length as the next request, and closes when they do not parse", async () => {
  await using server = await startServer();
  const client = await RawClient.open(server);
  try {
    await client.write("POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /smuggled\r\n\r\n");
    assert.equal(JSON.parse((await client.read()).body).bytes, 5);
    assert.equal((await client.read()).status, 400);
    assert.ok(await client.closedWithin(2000));
  } finally {
    client.close();
  }
  assert.equal(server.stats.refusals.bad_request_line, 1);
  assert.equal(server.stats.requests, 1);
});

Deno.test("Http1Server answers HTTP/1.0: closes unless asked to keep alive, streams without chunks", async () => {
  await using server = await startServer();
  let client = await RawClient.open(server);
  try {
    await client.write("GET /hello HTTP/1.0\r\n\r\n");
    const response = await client.read();
    assert.equal(response.body, "hello");
    assert.equal(response.headers.get("connection"), "close");
    assert.ok(await client.closedWithin(2000));
  } finally {
    client.close();
  }
  client = await RawClient.open(server);
  try {
    await client.write("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    const first = await client.read();
    assert.equal(first.headers.get("connection"), "keep-alive");
    await client.write("GET /stream?n=2&trailers HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    const stream = await client.read();
    assert.equal(stream.headers.get("transfer-encoding"), undefined);
    assert.equal(stream.body, "message 0\nmessage 1\n");
    assert.ok(stream.endedByClose, "an HTTP/1.0 stream ends with the connection");
  } finally {
    client.close();
  }
});

Deno.test("Http1Server closes a slowloris head after headerTimeoutMs with 408 while honest requests are answered", async () => {
  await using server = await startServer({ headerTimeoutMs: 400 });
  const honest = honestClient(server);
  const slow = await RawClient.open(server);
  const silent = await RawClient.open(server);
  try {
    await slow.write("GET /hello HTTP/1.1\r\n");
    let sending = true;
    const trickle = (async () => {
      for (let i = 0; sending; i++) {
        const wrote = await slow.conn.write(encoder.encode(`X-${i}: 1\r\n`)).catch(() => 0);
        if (wrote === 0) return;
        await sleep(50);
      }
    })();
    const start = performance.now();
    const response = await slow.read();
    const elapsed = performance.now() - start;
    sending = false;
    await trickle;
    assert.equal(response.status, 408);
    assert.ok(elapsed >= 300 && elapsed < 1500, `slowloris answered after ${elapsed} ms`);
    assert.ok(await slow.closedWithin(2000));
    // A connection that never sends a byte is closed without an answer.
    assert.ok(await silent.closedWithin(2000));
  } finally {
    slow.close();
    silent.close();
    assert.ok(await honest.stop() >= 3);
  }
  assert.equal(server.stats.refusals.head_timeout, 1);
  assert.ok(server.stats.idleTimeouts >= 1);
});

Deno.test("Http1Server answers 408 to a body slower than minBodyBytesPerSecond, and to one that stops", async () => {
  const failures: string[] = [];
  await using server = await startServer(
    { bodyTimeoutMs: 300, minBodyBytesPerSecond: 100 },
    async (request, response) => {
      try {
        for await (const _ of request.body) { /* read */ }
      } catch (error) {
        failures.push(error instanceof Http1Error ? error.code : String(error));
        throw error;
      }
      await response.end("read");
    },
  );
  // 1 byte per 100 ms: 3 bytes a window, 30 required.
  const dribble = await RawClient.open(server);
  const stalled = await RawClient.open(server);
  try {
    await dribble.write("POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
    let sending = true;
    const trickle = (async () => {
      while (sending && (await dribble.conn.write(encoder.encode("z")).catch(() => 0)) > 0) await sleep(100);
    })();
    await stalled.write("POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc");
    const [slowResponse, stalledResponse] = await Promise.all([dribble.read(), stalled.read()]);
    sending = false;
    await trickle;
    assert.equal(slowResponse.status, 408);
    assert.equal(stalledResponse.status, 408);
    assert.ok(await dribble.closedWithin(2000));
    assert.ok(await stalled.closedWithin(2000));
  } finally {
    dribble.close();
    stalled.close();
  }
  assert.equal(server.stats.refusals.body_timeout, 2);
  assert.deepEqual(failures, ["body_timeout", "body_timeout"]);
});

Deno.test("Http1Server reads a chunked upload only as fast as the handler consumes it: buffered bytes stay bounded", async () => {
  const totalBytes = 64 * 1024 * 1024;
  let slow = true;
  let maxBuffered = 0;
  let server: Http1Server | undefined = undefined;
  server = await startServer({}, async (request, response) => {
    let bytes = 0;
    for await (const chunk of request.body) {
      bytes += chunk.length;
      maxBuffered = Math.max(maxBuffered, server?.stats.bufferedBytes ?? 0);
      if (slow) await sleep(10);
    }
    await response.end(String(bytes));
  });
  const client = await RawClient.open(server);
  try {
    const rssBefore = Deno.memoryUsage().rss;
    let sent = 0;
    const upload = (async () => {
      await client.write("POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
      const piece = new Uint8Array(64 * 1024).fill(0x61);
      const frame = encoder.encode(`${piece.length.toString(16)}\r\n`);
      for (; sent < totalBytes; sent += piece.length) {
        await client.write(frame);
        await client.write(piece);
        await client.write("\r\n");
      }
      await client.write("0\r\n\r\n");
    })();
    await sleep(1500);
    const sentWhileSlow = sent;
    const rssWhileSlow = Deno.memoryUsage().rss;
    slow = false;
    await upload;
    const response = await client.read();
    assert.equal(response.body, String(totalBytes));
    assert.ok(sentWhileSlow < 16 * 1024 * 1024, `the client sent ${sentWhileSlow} bytes to a handler reading slowly`);
    assert.ok(maxBuffered <= 256 * 1024, `the server held ${maxBuffered} bytes`);
    const grown = rssWhileSlow - rssBefore;
    assert.ok(grown < 32 * 1024 * 1024, `RSS grew ${grown} bytes while the handler read slowly`);
  } finally {
    client.close();
    await server.stop();
  }
});

Deno.test("Http1Server stalls a streamed response's producer when the client never reads, and ends it when the client goes", async () => {
  let written = 0;
  let outcome: string | undefined;
  let aborted = false;
  await using server = await startServer({}, async (request, response) => {
    if (request.path !== "/firehose") return await routes(request, response);
    const message = new Uint8Array(16 * 1024).fill(0x62);
    try {
      for (;;) {
        await response.write(message);
        written += message.length;
      }
    } catch (error) {
      outcome = error instanceof Http1Error ? error.code : String(error);
      aborted = request.signal.aborted;
    }
  });
  const honest = honestClient(server);
  const client = await RawClient.open(server);
  try {
    await client.write("GET /firehose HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => written > 0, 2000, "the first write");
    await sleep(1000);
    const stalledAt = written;
    const buffered = server.stats.bufferedBytes;
    await sleep(500);
    assert.equal(written, stalledAt, "the producer kept writing to a client that does not read");
    assert.ok(stalledAt < 32 * 1024 * 1024, `${stalledAt} bytes written before the stall`);
    assert.ok(buffered <= 256 * 1024 + 64 * 1024, `the server held ${buffered} bytes for the client`);
  } finally {
    client.close();
  }
  await until(() => outcome !== undefined, 3000, "the producer to see the client go");
  assert.equal(outcome, "connection_closed");
  assert.ok(aborted, "request.signal is aborted");
  assert.ok(await honest.stop() > 0);
});

Deno.test("Http1Server closes a connection whose output does not drain for sendTimeoutMs", async () => {
  let outcome: string | undefined;
  await using server = await startServer({ sendTimeoutMs: 300 }, async (_request, response) => {
    try {
      for (;;) await response.write(new Uint8Array(64 * 1024));
    } catch (error) {
      outcome = error instanceof Http1Error ? error.code : String(error);
    }
  });
  const client = await RawClient.open(server);
  try {
    await client.write("GET /firehose HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => outcome !== undefined, 5000, "the send deadline");
    assert.equal(outcome, "connection_closed");
    assert.equal(server.stats.sendTimeouts, 1);
  } finally {
    client.close();
  }
});

Deno.test("Http1Server sends 100 Continue when the handler starts reading, and closes rather than wait for a body it never asked for", async () => {
  await using server = await startServer();
  const client = await RawClient.open(server);
  try {
    await client.write("POST /count HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    const interim = await client.read();
    assert.equal(interim.status, 100);
    await client.write("hello");
    assert.equal(JSON.parse((await client.read()).body).bytes, 5);
    // The handler of /ignore never reads: no 100, the answer closes the connection.
    await client.write("POST /ignore HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    const ignored = await client.read();
    assert.equal(ignored.status, 200);
    assert.equal(ignored.headers.get("connection"), "close");
    assert.ok(await client.closedWithin(2000));
  } finally {
    client.close();
  }
});

Deno.test("Http1Server discards a small unread body to keep the connection, and closes on a large one", async () => {
  await using server = await startServer();
  const client = await RawClient.open(server);
  try {
    await client.write(`POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n${"x".repeat(1024)}`);
    assert.equal((await client.read()).body, "ignored");
    await client.write("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal((await client.read()).body, "hello");
    await client.write("POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n");
    const response = await client.read();
    assert.equal(response.body, "ignored");
    assert.equal(response.headers.get("connection"), "close");
    assert.ok(await client.closedWithin(2000));
  } finally {
    client.close();
  }
});

Deno.test("Http1Server answers 500 to a handler that throws before answering, and cuts a response it broke off", async () => {
  await using server = await startServer();
  const client = await RawClient.open(server);
  try {
    await client.write("GET /throw HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal((await client.read()).status, 500);
    await client.write("GET /throw-after-head HTTP/1.1\r\nHost: x\r\n\r\n");
    const broken = await client.read();
    assert.equal(broken.status, 200);
    assert.ok(broken.endedByClose, "a broken-off stream must not look complete");
  } finally {
    client.close();
  }
});

Deno.test("Http1Server caps connections and closes idle keep-alive connections after idleTimeoutMs", async () => {
  await using server = await startServer({ maxConnections: 2, idleTimeoutMs: 300 });
  const first = await RawClient.open(server);
  const second = await RawClient.open(server);
  const third = await RawClient.open(server);
  try {
    await first.write("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal((await first.read()).body, "hello");
    assert.ok(await third.closedWithin(2000), "the connection over the cap is closed");
    assert.equal(server.stats.rejectedConnections, 1);
    const start = performance.now();
    assert.ok(await first.closedWithin(2000), "an idle keep-alive connection is closed");
    const idleMs = performance.now() - start;
    assert.ok(idleMs >= 200 && idleMs < 1500, `closed after ${idleMs} ms idle`);
    assert.ok(server.stats.idleTimeouts >= 1);
    second.close();
    await until(() => server.stats.connections === 0, 2000, "every connection to close");
    assert.equal(await (await fetch(`http://${server.address}/hello`)).text(), "hello");
  } finally {
    first.close();
    second.close();
    third.close();
  }
});

Deno.test("Http1Server.drain answers the request in progress with Connection: close and closes idle connections", async () => {
  const release = Promise.withResolvers<void>();
  await using server = await startServer({}, async (request, response) => {
    if (request.path === "/wait") await release.promise;
    await response.end("done");
  });
  const busy = await RawClient.open(server);
  const idle = await RawClient.open(server);
  try {
    await idle.write("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    await idle.read();
    await busy.write("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => server.stats.requests === 2, 2000, "the waiting request");
    server.drain();
    assert.ok(await idle.closedWithin(2000), "an idle connection closes on drain");
    release.resolve();
    const response = await busy.read();
    assert.equal(response.headers.get("connection"), "close");
    assert.ok(await busy.closedWithin(2000));
  } finally {
    busy.close();
    idle.close();
  }
});

Deno.test("Http1Server refuses bodies over maxBodyBytes (413), declared or chunked, and closes after maxRequestsPerConnection", async () => {
  await using server = await startServer({ maxBodyBytes: 1000, maxRequestsPerConnection: 2 });
  let client = await RawClient.open(server);
  try {
    await client.write("POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n");
    assert.equal((await client.read()).status, 413);
    assert.ok(await client.closedWithin(2000));
  } finally {
    client.close();
  }
  client = await RawClient.open(server);
  try {
    await client.write("POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (let i = 0; i < 3; i++) await client.write(`190\r\n${"c".repeat(400)}\r\n`);
    const response = await client.read();
    assert.equal(response.status, 413);
    assert.ok(await client.closedWithin(2000));
  } finally {
    client.close();
  }
  assert.equal(server.stats.refusals.body_too_large, 2);
  client = await RawClient.open(server);
  try {
    await client.write("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal((await client.read()).headers.get("connection"), undefined);
    await client.write("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal((await client.read()).headers.get("connection"), "close");
    assert.ok(await client.closedWithin(2000));
  } finally {
    client.close();
  }
});

Deno.test("Http1Server serves 64 concurrent clients, each on keep-alive, with bodies both ways", async () => {
  await using server = await startServer();
  const clients = await Promise.all(Array.from({ length: 64 }, () => RawClient.open(server)));
  try {
    await Promise.all(clients.map(async (client, c) => {
      for (let i = 0; i < 20; i++) {
        const body = `client ${c} request ${i} `.repeat(i + 1);
        await client.write(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
        assert.equal((await client.read()).body, body);
      }
    }));
  } finally {
    for (const client of clients) client.close();
  }
  assert.equal(server.stats.requests, 64 * 20);
});

Deno.test("Http1Server closes under a response already started when the body then breaks the rules", async () => {
  let failure: string | undefined;
  await using server = await startServer({}, async (request, response) => {
    response.flushHeaders();
    try {
      for await (const chunk of request.body) await response.write(chunk);
    } catch (error) {
      failure = error instanceof Http1Error ? error.code : String(error);
      throw error;
    }
    await response.end();
  });
  const client = await RawClient.open(server);
  try {
    await client.write("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n");
    const response = await client.read();
    assert.equal(response.status, 200);
    assert.ok(response.endedByClose, "the stream must not look complete");
  } finally {
    client.close();
  }
  assert.equal(failure, "bad_chunk");
  assert.equal(server.stats.refusals.bad_chunk, 1);
});

Deno.test("Http1Server holds a bounded amount for a client pipelining requests it never reads the answers of", async () => {
  let bigAnswers = 0;
  await using server = await startServer({}, async (request, response) => {
    if (request.path === "/big") bigAnswers++;
    await routes(request, response);
  });
  const honest = honestClient(server);
  const flooder = await RawClient.open(server);
  let maxBuffered = 0;
  try {
    const request = encoder.encode("GET /big HTTP/1.1\r\nHost: x\r\n\r\n".repeat(100));
    let sent = 0;
    const flood = (async () => {
      for (let i = 0; i < 2000; i++) {
        if ((await flooder.conn.write(request).catch(() => 0)) === 0) return;
        sent += request.length;
      }
    })();
    for (let i = 0; i < 30; i++) {
      await sleep(50);
      maxBuffered = Math.max(maxBuffered, server.stats.bufferedBytes);
    }
    const answersWhileStalled = bigAnswers;
    await sleep(300);
    assert.equal(bigAnswers, answersWhileStalled, "requests kept being answered to a non-reader");
    assert.ok(maxBuffered < 512 * 1024, `the server held ${maxBuffered} bytes for the flooder`);
    assert.ok(sent < 64 * 1024 * 1024, `the flooder got ${sent} bytes of requests in`);
    flooder.close();
    await flood;
  } finally {
    flooder.close();
    assert.ok(await honest.stop() > 0);
  }
});

Deno.test("Http1Server does not time out a body it told the client to hold back (Expect: 100-continue)", async () => {
  await using server = await startServer({ bodyTimeoutMs: 200 }, async (request, response) => {
    await sleep(600); // say, authorising the upload before reading it
    await routes(request, response);
  });
  const client = await RawClient.open(server);
  try {
    await client.write("POST /count HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    assert.equal((await client.read()).status, 100);
    await client.write("abc");
    assert.equal(JSON.parse((await client.read()).body).bytes, 3);
  } finally {
    client.close();
  }
  assert.equal(server.stats.refusals.body_timeout, 0);
});

Deno.test("Http1ResponseWriter refuses to send a header that would split the response, and framing fields it owns", async () => {
  const errors: string[] = [];
  await using server = await startServer({}, async (request, response) => {
    try {
      if (request.path === "/split") response.writeHead(200, { "x-a": "1\r\nSet-Cookie: stolen=1" });
      else response.writeHead(200, { "transfer-encoding": "gzip" });
      await response.end("never");
    } catch (error) {
      errors.push(error instanceof TypeError ? "TypeError" : String(error));
      throw error;
    }
  });
  const client = await RawClient.open(server);
  try {
    for (const path of ["/split", "/framing"]) {
      await client.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      const response = await client.read();
      assert.equal(response.status, 500);
      assert.equal(response.headers.get("set-cookie"), undefined);
    }
  } finally {
    client.close();
  }
  assert.deepEqual(errors, ["TypeError", "TypeError"]);
});
