// Hostile input on a provider's HTTP port (issue 20): each attack from a raw socket of its own, answered with its
// HTTP error (or, where HTTP cannot answer, a clean close) and counted in `stats()` and `/metrics`, while an honest
// client keeps getting answers within a bound.

import assert from "node:assert/strict";
import { until } from "../../reactor/testdata/until.ts";
import type { RpcProviderOptions } from "../rpc_provider.ts";
import {
  decode,
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

// The slowest an honest call may be answered while attacks run, on a shared 2-core machine (they take a few ms).
const HONEST_MAX_MS = 1500;

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
      this.latenciesMs.push(performance.now() - started);
      await sleep(10);
    }
  }

  /** Stop (once at least `minCalls` were made); assert every call was answered right and in time. */
  async stop(minCalls = 5): Promise<{ calls: number; p99Ms: number; maxMs: number }> {
    await until(() => this.latenciesMs.length >= minCalls, 10_000, `${minCalls} honest calls`);
    this.#stopped = true;
    await this.#done;
    const sorted = [...this.latenciesMs].sort((a, b) => a - b);
    const p99Ms = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0;
    const maxMs = sorted.at(-1) ?? 0;
    assert.deepEqual(this.failures, [], "every honest call is answered");
    assert.ok(sorted.length >= minCalls, `only ${sorted.length} honest calls were made`);
    assert.ok(maxMs < HONEST_MAX_MS, `an honest call took ${maxMs.toFixed(0)} ms (p99 ${p99Ms.toFixed(0)} ms)`);
    return { calls: sorted.length, p99Ms, maxMs };
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
  const latency = await honest.stop(20);
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
  await honest.stop();
  // Counted under their methods: the unary ones the gateway refused itself with the code it answered (the lying
  // gRPC-Web frames too); the client streams, whose provider side had begun, as cancelled there.
  const calls = demo.provider.stats().calls;
  assert.equal(calls["test.gateway.Demo.Echo"]?.INVALID_ARGUMENT, 4, JSON.stringify(calls));
  assert.equal(calls["test.gateway.Demo.Echo"]?.RESOURCE_EXHAUSTED, 2, JSON.stringify(calls));
  assert.equal(calls["test.gateway.Demo.Sum"]?.CANCELLED, 2, JSON.stringify(calls));
  const metrics = await scrape(demo);
  const series = (status: string) => `dwt_rpc_calls_total{method="test.gateway.Demo.Echo",code="${status}"}`;
  assert.equal(metrics.get(series("INVALID_ARGUMENT")), 4);
  assert.equal(metrics.get(series("RESOURCE_EXHAUSTED")), 2);
});
