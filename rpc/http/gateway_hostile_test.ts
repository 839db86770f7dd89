// Hostile input on a provider's HTTP port (issue 20): each attack from a raw socket of its own, answered with its
// HTTP error (or, where HTTP cannot answer, a clean close) and counted in `stats()` and `/metrics`, while an honest
// client keeps getting answers within a bound.

import assert from "node:assert/strict";
import { until } from "../../reactor/testdata/until.ts";
import type { RpcProviderOptions } from "../rpc_provider.ts";
import {
  type DemoProvider,
  demoType,
  encode,
  frame,
  jsonBytes,
  parseFrames,
  RawHttpClient,
  startDemoProvider,
  text,
} from "./testdata/gateway_client.ts";

const ECHO = "/test.gateway.Demo/Echo";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const encoder = new TextEncoder();

// How fast an honest call must be answered while attacks run, on a shared 2-core machine (alone, one takes a few
// ms; the slowest come when an attack begins, and the code it runs is compiled): the median, and the slowest.
const HONEST_MEDIAN_MS = 250;
const HONEST_MAX_MS = 2500;

// A provider with its status pages on (for `/metrics`).
function startProvider(options: RpcProviderOptions = {}): Promise<DemoProvider> {
  return startDemoProvider({ statusPort: 0, ...options });
}

/** The provider's `/metrics` values by series (`name{labels}`). */
async function scrape(demo: DemoProvider): Promise<Map<string, number>> {
  const body = await (await fetch(`http://${demo.provider.statusAddress}/metrics`)).text();
  const values = new Map<string, number>();
  for (const match of body.matchAll(/^([^#\s]\S*) (\S+)$/gm)) values.set(match[1]!, Number(match[2]));
  return values;
}

/** The `dwt_rpc_limit_hits_total` series of the provider's `/metrics`, by limit. */
async function scrapeLimits(demo: DemoProvider): Promise<Record<string, number>> {
  const limits: Record<string, number> = {};
  for (const [series, value] of await scrape(demo)) {
    const match = /^dwt_rpc_limit_hits_total\{limit="([^"]+)"\}$/.exec(series);
    if (match !== null) limits[match[1]!] = value;
  }
  return limits;
}

/** An honest caller: one Connect JSON call after another until stopped, each answer checked, each timed. */
class HonestClient {
  readonly latenciesMs: number[] = [];
  readonly failures: string[] = [];
  #stopped = false;
  readonly #done: Promise<void>;

  constructor(base: string) {
    this.#done = this.#run(base);
  }

  async #run(base: string): Promise<void> {
    // The first call (a new connection, code not yet compiled) is a warm-up: not timed.
    for (let i = 0; !this.#stopped; i++) {
      const started = performance.now();
      try {
        const response = await fetch(`${base}${ECHO}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ text: `honest ${i}` }),
          signal: AbortSignal.timeout(10_000),
        });
        const body = await response.json();
        if (response.status !== 200 || body.text !== `honest ${i}`) {
          this.failures.push(`${response.status} ${JSON.stringify(body)}`);
        }
      } catch (error) {
        this.failures.push(String(error));
      }
      if (i > 0) this.latenciesMs.push(performance.now() - started);
      await sleep(10);
    }
  }

  /** Stop (once at least `minCalls` were made); assert every call was answered right and in time. */
  async stop(minCalls = 5): Promise<{ calls: number; medianMs: number; maxMs: number }> {
    await until(() => this.latenciesMs.length >= minCalls, 10_000, `${minCalls} honest calls`);
    this.#stopped = true;
    await this.#done;
    const sorted = [...this.latenciesMs].sort((a, b) => a - b);
    const medianMs = sorted[Math.floor(sorted.length / 2)] ?? 0;
    const maxMs = sorted.at(-1) ?? 0;
    assert.deepEqual(this.failures, [], "every honest call is answered");
    assert.ok(sorted.length >= minCalls, `only ${sorted.length} honest calls were made`);
    const times = `median ${medianMs.toFixed(0)} ms, slowest ${maxMs.toFixed(0)} ms`;
    assert.ok(medianMs < HONEST_MEDIAN_MS && maxMs < HONEST_MAX_MS, `honest calls took too long: ${times}`);
    return { calls: sorted.length, medianMs, maxMs };
  }
}

// Send `bytes` on a connection of its own; the response's status, and whether the server then closed.
async function attack(demo: DemoProvider, bytes: string | Uint8Array): Promise<{ status: number; closed: boolean }> {
  const client = await RawHttpClient.connect(demo.address);
  try {
    await client.send(bytes);
    const { status } = await client.response();
    return { status, closed: await client.closedByServer(3000) };
  } finally {
    client.close();
  }
}

const post = (headers: string) => `POST ${ECHO} HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n${headers}`;

Deno.test("Gateway refuses smuggling, oversized heads and bad chunks with their HTTP status, counts each, serves an honest client meanwhile", async () => {
  await using demo = await startProvider();
  const honest = new HonestClient(demo.base);
  const cases: [string, string | Uint8Array, number, string][] = [
    [
      "Content-Length with Transfer-Encoding",
      post("content-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"),
      400,
      "http_smuggling",
    ],
    ["two Content-Lengths", post("content-length: 2\r\ncontent-length: 3\r\n\r\n{}x"), 400, "http_bad_content_length"],
    ["obs-fold", post("x-folded: a\r\n  b\r\ncontent-length: 2\r\n\r\n{}"), 400, "http_obs_fold"],
    [
      "a header block over the limit",
      post(`x-big: ${"a".repeat(70_000)}\r\ncontent-length: 2\r\n\r\n{}`),
      431,
      "http_headers_too_large",
    ],
    [
      "too many header fields",
      post(`${"x-f: 1\r\n".repeat(150)}content-length: 2\r\n\r\n{}`),
      431,
      "http_headers_too_large",
    ],
    [
      "an enormous chunk size",
      post(`transfer-encoding: chunked\r\n\r\n${"f".repeat(40)}\r\n{}`),
      400,
      "http_bad_chunk",
    ],
    [
      "a chunk size that is not hex",
      post("transfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
      400,
      "http_bad_chunk",
    ],
  ];
  await Promise.all(cases.map(async ([name, bytes, status]) => {
    const outcome = await attack(demo, bytes);
    assert.equal(outcome.status, status, name);
    assert.ok(outcome.closed, `${name}: the connection is closed after the refusal`);
  }));

  // A body longer than its Content-Length: the request is answered, the rest is read as the next request, which
  // does not parse (400, closed): the extra bytes never reach the handler.
  const longer = await RawHttpClient.connect(demo.address);
  try {
    const body = '{"text":"short"}';
    await longer.send(post(`content-length: ${body.length}\r\n\r\n${body}, "smuggled": "GET / HTTP/1.1"}\r\n\r\n`));
    const first = await longer.response();
    assert.equal(first.status, 200);
    assert.equal(JSON.parse(text(first.body)).text, "short");
    assert.equal((await longer.response()).status, 400);
    assert.ok(await longer.closedByServer(3000));
  } finally {
    longer.close();
  }

  const expected: Record<string, number> = {};
  for (const [, , , limit] of cases) expected[limit] = (expected[limit] ?? 0) + 1;
  expected.http_bad_request_line = 1;
  await honest.stop();
  const limits = demo.provider.stats().limitsHit;
  for (const [limit, count] of Object.entries(expected)) {
    assert.equal(limits[limit], count, `${limit}: ${JSON.stringify(limits)}`);
  }
  const scraped = await scrapeLimits(demo);
  for (const [limit, count] of Object.entries(expected)) assert.equal(scraped[limit], count, `/metrics ${limit}`);
});

// A raw connection that sends `start`, then one byte of `rest` every `everyMs` until the server answers; the status,
// and whether the server then closed.
async function slowloris(
  demo: DemoProvider,
  start: string,
  rest: string,
  everyMs: number,
): Promise<{ status: number; closed: boolean }> {
  const client = await RawHttpClient.connect(demo.address);
  let answered = false;
  const drip = (async () => {
    await client.send(start);
    for (let i = 0; !answered; i++) {
      await sleep(everyMs);
      if (!answered) await client.send(rest[i % rest.length]!);
    }
  })().catch(() => {}); // the server closed under a write
  try {
    const { status } = await client.response();
    answered = true;
    return { status, closed: await client.closedByServer(3000) };
  } finally {
    answered = true;
    client.close();
    await drip;
  }
}

Deno.test("Gateway answers 200 slowloris heads and 10 slow bodies 408 at their deadlines, counted, while an honest client is served", async () => {
  const headerTimeoutMs = 1000;
  await using demo = await startProvider({ httpServer: { headerTimeoutMs, bodyTimeoutMs: 1000 } });
  const honest = new HonestClient(demo.base);
  const started = performance.now();
  const heads = Array.from(
    { length: 200 },
    () => slowloris(demo, post(""), "x-slow: lorisxxxxxxxxxxxxxxxxxx\r\n", 200),
  );
  const bodies = Array.from(
    { length: 10 },
    () => slowloris(demo, post("content-length: 1000\r\n\r\n"), '{"text":"' + "a".repeat(1000), 300),
  );
  const outcomes = await Promise.all([...heads, ...bodies]);
  const elapsedMs = performance.now() - started;
  for (const [index, outcome] of outcomes.entries()) {
    assert.equal(outcome.status, 408, `connection ${index}`);
    assert.ok(outcome.closed, `connection ${index} closed after its 408`);
  }
  assert.ok(elapsedMs < headerTimeoutMs + 4000, `the last 408 came after ${elapsedMs.toFixed(0)} ms`);
  await honest.stop(20);
  const limits = demo.provider.stats().limitsHit;
  assert.equal(limits.http_head_timeout, 200);
  assert.equal(limits.http_body_timeout, 10);
  const scraped = await scrapeLimits(demo);
  assert.equal(scraped.http_head_timeout, 200);
  assert.equal(scraped.http_body_timeout, 10);
});

// A request head without its blank line (for RawHttpClient.request, which adds Content-Length).
const requestHead = (method: string, type: string) =>
  `POST /test.gateway.Demo/${method} HTTP/1.1\r\nhost: gw\r\ncontent-type: ${type}`;

// The 5-byte header of an envelope (Connect) or frame (gRPC-Web) that claims `length` bytes.
function envelopeHeader(flags: number, length: number): Uint8Array<ArrayBuffer> {
  const header = new Uint8Array(5);
  header[0] = flags;
  new DataView(header.buffer).setUint32(1, length);
  return header;
}

function join(...parts: (string | Uint8Array)[]): Uint8Array<ArrayBuffer> {
  const bytes = parts.map((part) => typeof part === "string" ? encoder.encode(part) : part);
  const out = new Uint8Array(bytes.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of bytes) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

Deno.test("Gateway refuses lying envelope lengths, invalid UTF-8 and invalid JSON with their RPC codes, before buffering, counted", async () => {
  await using demo = await startProvider({ maxFrameBytes: 64 * 1024 });
  const honest = new HonestClient(demo.base);
  const item = encode(demoType("Sum", "request"), { index: 1, blob: new Uint8Array(10) });

  // A Connect client stream whose envelope claims 4 GiB: refused at the header, with 1 KiB of it sent.
  const huge = await RawHttpClient.connect(demo.address);
  try {
    const body = join(envelopeHeader(0, 0xffff_ffff), new Uint8Array(1024));
    await huge.send(
      join(`${requestHead("Sum", "application/connect+proto")}\r\ncontent-length: 4294967300\r\n\r\n`, body),
    );
    const response = await huge.response();
    assert.equal(response.status, 200);
    const end = parseFrames(response.body).at(-1)!;
    assert.equal(end.flags, 2);
    assert.equal(JSON.parse(text(end.data)).error.code, "resource_exhausted");
  } finally {
    huge.close();
  }

  // An envelope that claims more than the body holds: the body ends inside it.
  const short = await RawHttpClient.connect(demo.address);
  try {
    await short.request(
      requestHead("Sum", "application/connect+proto"),
      join(envelopeHeader(0, item.length + 100), item),
    );
    const response = await short.response();
    const end = parseFrames(response.body).at(-1)!;
    assert.equal(JSON.parse(text(end.data)).error.code, "invalid_argument");
  } finally {
    short.close();
  }

  // gRPC-Web unary with lying lengths: longer than the body, and 4 GiB.
  const echoRequest = encode(demoType("Echo", "request"), { text: "liar" });
  for (const [length, status] of [[echoRequest.length + 50, "3"], [0xffff_ffff, "8"]] as const) {
    const web = await RawHttpClient.connect(demo.address);
    try {
      await web.request(
        requestHead("Echo", "application/grpc-web+proto"),
        join(envelopeHeader(0, length), echoRequest),
      );
      const response = await web.response();
      assert.equal(response.status, 200);
      const grpcStatus = response.headers.get("grpc-status") ??
        /grpc-status:\s*(\d+)/.exec(text(parseFrames(response.body).at(-1)?.data ?? new Uint8Array()))?.[1];
      assert.equal(grpcStatus, status, `gRPC-Web frame of ${length}`);
    } finally {
      web.close();
    }
  }

  // Unary Connect bodies that are not UTF-8, not JSON, not the message's JSON, and a body over the limit.
  const bodies: [Uint8Array, number, string][] = [
    [
      new Uint8Array([0x7b, 0x22, 0x74, 0x65, 0x78, 0x74, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
      400,
      "invalid_argument",
    ],
    [encoder.encode('{"text": "unterminated'), 400, "invalid_argument"],
    [encoder.encode('{"delayMs": {"no": 1}}'), 400, "invalid_argument"],
    [jsonBytes({ text: "x".repeat(70 * 1024) }), 429, "resource_exhausted"],
  ];
  for (const [body, status, code] of bodies) {
    const raw = await RawHttpClient.connect(demo.address);
    try {
      await raw.request(requestHead("Echo", "application/json"), body);
      const response = await raw.response();
      assert.equal(response.status, status, code);
      assert.equal(JSON.parse(text(response.body)).code, code);
    } finally {
      raw.close();
    }
  }
  // A chunk that claims 1 TiB: read only up to the message limit, then refused (the rest never read).
  const terabyte = await RawHttpClient.connect(demo.address);
  try {
    await terabyte.send(
      `${requestHead("Echo", "application/json")}\r\ntransfer-encoding: chunked\r\n\r\n10000000000\r\n`,
    );
    const sending = terabyte.send(new Uint8Array(70 * 1024).fill(0x20)).catch(() => {});
    const response = await terabyte.response();
    await sending;
    assert.equal(response.status, 429);
    assert.equal(JSON.parse(text(response.body)).code, "resource_exhausted");
    assert.ok(await terabyte.closedByServer(3000), "closed: the rest of the chunk is not worth reading");
  } finally {
    terabyte.close();
  }

  await honest.stop();
  // Counted under their methods: the unary ones the gateway refused itself with the code it answered (the lying
  // gRPC-Web frames too); the client streams, whose provider side had begun, as cancelled there.
  const calls = demo.provider.stats().calls;
  assert.equal(calls["test.gateway.Demo.Echo"]?.INVALID_ARGUMENT, 4, JSON.stringify(calls));
  assert.equal(calls["test.gateway.Demo.Echo"]?.RESOURCE_EXHAUSTED, 3, JSON.stringify(calls));
  assert.equal(calls["test.gateway.Demo.Sum"]?.CANCELLED, 2, JSON.stringify(calls));
  const metrics = await scrape(demo);
  const series = (status: string) => `dwt_rpc_calls_total{method="test.gateway.Demo.Echo",code="${status}"}`;
  assert.equal(metrics.get(series("INVALID_ARGUMENT")), 4);
  assert.equal(metrics.get(series("RESOURCE_EXHAUSTED")), 3);
});

// Until `read()` gives the same value twice, 300 ms apart (and more than zero).
async function stalled(read: () => number, what: string): Promise<number> {
  let last = -1;
  const deadline = performance.now() + 15_000;
  for (;;) {
    const now = read();
    if (now > 0 && now === last) return now;
    if (performance.now() > deadline) throw new Error(`${what} never stalled (at ${now})`);
    last = now;
    await sleep(300);
  }
}

const MiB = 1024 * 1024;

// Whether `conn` ends (EOF or reset) within `timeoutMs`, reading and dropping whatever comes before (RawHttpClient
// would keep it all).
async function closedAfterAll(conn: Deno.TcpConn, timeoutMs: number): Promise<boolean> {
  const buffer = new Uint8Array(256 * 1024);
  const deadline = performance.now() + timeoutMs;
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    while ((await conn.read(buffer)) !== null) { /* dropped */ }
    return performance.now() < deadline;
  } catch {
    return performance.now() < deadline; // reset, or closed by the timer
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("Gateway stalls a server stream and a pipelining client that never read, holds bounded memory, closes both at sendTimeoutMs, counted", async () => {
  const sendTimeoutMs = 3000;
  await using demo = await startProvider({ httpServer: { sendTimeoutMs } });
  const honest = new HonestClient(demo.base);
  const rssBefore = Deno.memoryUsage().rss;

  // A server stream of 32 KiB messages, for ever, whose client reads the head and nothing more.
  const size = 32 * 1024;
  const reader = await RawHttpClient.connect(demo.address);
  // A client that pipelines calls for 16 KiB answers (each with 4 KiB of text), 64 to a write, up to 64 MiB of
  // them, and reads none of the answers.
  const pipeliner = await RawHttpClient.connect(demo.address);
  const callBody = jsonBytes({ size: 16 * 1024, text: "p".repeat(4096) });
  const call = join(post(`content-length: ${callBody.length}\r\n\r\n`), callBody);
  const batch = join(...Array.from({ length: 64 }, () => call));
  const batches = Math.ceil(64 * MiB / batch.length);
  let pipelined = 0;
  const pipelining = (async () => {
    for (; pipelined < batches; pipelined++) await pipeliner.send(batch);
  })().catch(() => {}); // closed under a write
  try {
    await reader.request(
      requestHead("Count", "application/connect+proto"),
      frame(0, encode(demoType("Count", "request"), { n: 0, size })),
    );
    assert.equal((await reader.head()).status, 200);
    const produced = await stalled(() => demo.record.produced, "the stream's producer");
    const echoes = () => demo.provider.stats().calls["test.gateway.Demo.Echo"]?.OK ?? 0;
    await stalled(() => pipelined, "the pipelined writes");
    const rssGrowth = Deno.memoryUsage().rss - rssBefore;
    // What the stream's producer made is all the gateway can hold of it: the window, the HTTP high-water mark and
    // what the sockets take.
    assert.ok(produced * size < 8 * MiB, `the producer made ${produced} messages of ${size} bytes before it stalled`);
    assert.ok(pipelined < batches / 4, `${pipelined} of ${batches} batches of pipelined calls were taken`);
    // Answered calls wait in the gateway's output (its high-water mark) and the two sockets' kernel buffers, which
    // loopback autotunes to several MiB: 1,024 answers of 16 KiB is 16 MiB, against the 16,000 calls sent.
    assert.ok(echoes() < 1024, `${echoes()} pipelined calls answered while their answers are not read`);
    assert.ok(rssGrowth < 96 * MiB, `the process grew by ${(rssGrowth / MiB).toFixed(1)} MiB`);
    // A second later, nothing more was made or taken, and the process did not grow by more than noise.
    const rssStalled = Deno.memoryUsage().rss;
    await sleep(1000);
    assert.equal(demo.record.produced, produced, "the producer is still stalled");
    const laterGrowth = Deno.memoryUsage().rss - rssStalled;
    assert.ok(laterGrowth < 16 * MiB, `the process grew by ${(laterGrowth / MiB).toFixed(1)} MiB while stalled`);

    // Neither output moves: both connections are closed at sendTimeoutMs, the stream's handler cancelled.
    await until(
      () => (demo.provider.stats().limitsHit.http_send_timeout ?? 0) >= 2,
      sendTimeoutMs + 5000,
      "both connections to reach their send timeout",
    );
    await until(() => demo.record.running === 0, 3000, "the stream's handler to end");
    assert.ok(await closedAfterAll(reader.conn, 3000), "the stream's connection is closed");
    assert.ok(await closedAfterAll(pipeliner.conn, 3000), "the pipelining connection is closed");
  } finally {
    reader.close();
    pipeliner.close();
    await pipelining;
  }
  await honest.stop(20);
  assert.equal(demo.provider.stats().limitsHit.http_send_timeout, 2);
  assert.equal((await scrapeLimits(demo)).http_send_timeout, 2);
});

Deno.test("Gateway answers a client that half-closes after its requests, and closes at once on one cut short by its FIN", async () => {
  await using demo = await startProvider();
  const honest = new HonestClient(demo.base);
  // `nc -N`: a slow call, then FIN; and two pipelined calls, then FIN. Every whole request is answered, then EOF.
  const halfClosers = [[{ text: "slow", delayMs: 400 }], [{ text: "first", delayMs: 100 }, { text: "second" }]];
  await Promise.all(halfClosers.map(async (requests) => {
    const client = await RawHttpClient.connect(demo.address);
    try {
      for (const request of requests) await client.request(requestHead("Echo", "application/json"), jsonBytes(request));
      await client.conn.closeWrite();
      for (const [index, request] of requests.entries()) {
        const response = await client.response();
        assert.equal(response.status, 200);
        assert.equal(JSON.parse(text(response.body)).text, request.text);
        if (index === requests.length - 1) assert.equal(response.headers.get("connection"), "close");
      }
      assert.ok(await client.closedByServer(3000), "closed after the last answer");
    } finally {
      client.close();
    }
  }));

  // A head cut short by the FIN: nothing to answer, closed.
  const cut = await RawHttpClient.connect(demo.address);
  try {
    await cut.send(`POST ${ECHO} HTTP/1.1\r\nhost: gw\r\ncontent-`);
    await cut.conn.closeWrite();
    assert.equal(await cut.conn.read(new Uint8Array(64)), null, "closed with no answer");
  } finally {
    cut.close();
  }

  // A client stream whose handler never reads, and whose client goes away mid-body: cancelled at once.
  const leaver = await RawHttpClient.connect(demo.address);
  let closedAt = 0;
  try {
    await leaver.send(
      `${requestHead("Sum", "application/connect+proto")}\r\nx-mode: hold\r\ncontent-length: 100000\r\n\r\n`,
    );
    await leaver.send(frame(0, encode(demoType("Sum", "request"), { blob: new Uint8Array(1000) })));
    await until(() => demo.record.running === 1, 5000, "the handler to start");
    closedAt = performance.now();
  } finally {
    leaver.close();
  }
  await until(() => demo.record.abortedAt !== undefined, 5000, "the handler's signal");
  const abortedAfterMs = demo.record.abortedAt! - closedAt;
  assert.ok(abortedAfterMs < 500, `the handler was cancelled ${abortedAfterMs.toFixed(0)} ms after its client left`);
  await until(() => demo.record.running === 0, 3000, "the handler to end");
  await honest.stop();
});

Deno.test("Gateway holds a client stream whose handler never reads: the upload stalls, memory stays bounded, no body timeout, the deadline ends it", async () => {
  // The body deadline (here 500 ms at 256 B/s) runs only while the server waits on the client: a handler that
  // holds back stops the reading, and the call's deadline, not the body deadline, ends it.
  await using demo = await startProvider({ httpServer: { bodyTimeoutMs: 500 } });
  const honest = new HonestClient(demo.base);
  const client = await RawHttpClient.connect(demo.address);
  const item = frame(0, encode(demoType("Sum", "request"), { blob: new Uint8Array(16 * 1024) }));
  const messages = 2048; // 32 MiB: far more than the socket buffers take
  let sent = 0;
  const writing = (async () => {
    await client.send(
      `${requestHead("Sum", "application/connect+proto")}\r\nx-mode: hold\r\nconnect-timeout-ms: 2500\r\n` +
        `content-length: ${item.length * messages}\r\n\r\n`,
    );
    for (; sent < messages; sent++) await client.send(item);
  })().catch(() => {}); // closed under a write
  try {
    const startedAt = performance.now();
    await until(() => demo.record.running === 1, 5000, "the handler to start");
    await stalled(() => sent, "the client's upload");
    assert.ok(sent * item.length < 8 * MiB, `${sent} messages of ${item.length} bytes were taken`);
    assert.equal(demo.record.taken, 0);
    const response = await client.response();
    const elapsedMs = performance.now() - startedAt;
    assert.equal(response.status, 200);
    assert.equal(JSON.parse(text(parseFrames(response.body).at(-1)!.data)).error.code, "deadline_exceeded");
    assert.ok(elapsedMs > 2000, `answered after ${elapsedMs.toFixed(0)} ms`);
    assert.equal(demo.provider.stats().limitsHit.http_body_timeout, undefined, "no body timeout while held back");
    await until(() => demo.record.running === 0, 3000, "the handler to end");
    assert.match(String(demo.record.abortReason), /DEADLINE_EXCEEDED/);
  } finally {
    client.close();
    await writing;
  }
  await honest.stop();
  assert.equal(demo.provider.stats().calls["test.gateway.Demo.Sum"]?.DEADLINE_EXCEEDED, 1);
});
