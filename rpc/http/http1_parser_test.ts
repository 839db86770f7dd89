import assert from "node:assert/strict";
import { Buffer } from "../../reactor/buffer.ts";
import { Http1Parser, type Http1ParserLimits, type Http1RequestHead } from "./_http1_parser.ts";
import { Http1Error, type Http1ErrorCode } from "./http1_error.ts";

const LIMITS: Http1ParserLimits = {
  maxRequestLineBytes: 8192,
  maxHeaderBytes: 65536,
  maxHeaders: 100,
  maxTrailerBytes: 16384,
  maxBodyBytes: Number.MAX_SAFE_INTEGER,
};
const decoder = new TextDecoder();

interface Parsed {
  head: Http1RequestHead;
  body: string;
  trailers: [string, string][];
}

/** Feeds `input` `step` bytes at a time; returns every whole request (head, body, trailers) parsed. */
function parseAll(input: string | Uint8Array, step = Infinity, limits: Partial<Http1ParserLimits> = {}): Parsed[] {
  const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
  const parser = new Http1Parser({ ...LIMITS, ...limits });
  const buffer = new Buffer();
  const parsed: Parsed[] = [];
  let current: Parsed | undefined;
  for (let offset = 0; offset < bytes.length; offset += Math.min(step, bytes.length)) {
    buffer.append(bytes.subarray(offset, offset + Math.min(step, bytes.length)));
    for (;;) {
      if (current === undefined) {
        const head = parser.parseHead(buffer);
        if (head === undefined) break;
        current = { head, body: "", trailers: [] };
      }
      for (let piece = parser.parseBody(buffer, 7); piece !== undefined; piece = parser.parseBody(buffer, 7)) {
        current.body += decoder.decode(piece);
      }
      if (!parser.bodyDone) break;
      current.trailers = [...parser.trailers ?? []];
      parsed.push(current);
      current = undefined;
      parser.reset();
    }
  }
  return parsed;
}

function refusal(input: string, limits: Partial<Http1ParserLimits> = {}): Http1ErrorCode {
  for (const step of [Infinity, 1]) {
    try {
      parseAll(input, step, limits);
    } catch (error) {
      if (!(error instanceof Http1Error)) throw error;
      if (step === 1) return error.code;
      continue;
    }
    throw new Error(`Expected a refusal of ${JSON.stringify(input.slice(0, 80))} fed ${step} bytes at a time`);
  }
  throw new Error("unreachable");
}

Deno.test("Http1Parser reads a head: method, target, version, lower-cased names, duplicates in order", () => {
  const [request] = parseAll("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nAccept: a\r\nACCEPT:  b \r\n\r\n");
  assert.ok(request !== undefined);
  const { head } = request;
  assert.equal(head.method, "GET");
  assert.equal(head.target, "/a?b=1");
  assert.equal(head.minorVersion, 1);
  assert.equal(head.framing, "none");
  assert.equal(head.keepAlive, true);
  assert.deepEqual(head.headers.getAll("accept"), ["a", "b"]);
  assert.deepEqual([...head.headers].map(([name]) => name), ["host", "accept", "accept"]);
});

Deno.test("Http1Parser gives the same requests whether bytes come whole or one at a time, pipelined included", () => {
  const input = "\r\nPOST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
    "5;name=value\r\nhello\r\n0007 ; ext\r\n, world\r\n0\r\nX-Sum: 12\r\nX-Sum: again\r\n\r\n" +
    "POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" +
    "GET /three HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  const whole = parseAll(input);
  const byByte = parseAll(input, 1);
  for (const parsed of [whole, byByte]) {
    assert.deepEqual(parsed.map((request) => [request.head.target, request.body]), [
      ["/up", "hello, world"],
      ["/two", "abc"],
      ["/three", ""],
    ]);
    assert.deepEqual(parsed[0]?.trailers, [["x-sum", "12"], ["x-sum", "again"]]);
    assert.equal(parsed[2]?.head.keepAlive, true);
    assert.equal(parsed[2]?.head.minorVersion, 0);
  }
});

Deno.test("Http1Parser keeps obs-text bytes of a value as they came", () => {
  const head = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\nX-Name: caf");
  const bytes = new Uint8Array([...head, 0xe9, ...new TextEncoder().encode("\r\n\r\n")]);
  const [request] = parseAll(bytes);
  assert.equal(request?.head.headers.get("x-name"), "caf\u00e9");
});

Deno.test("Http1Parser refuses each framing ambiguity with its code", () => {
  const head = (fields: string) => `POST / HTTP/1.1\r\nHost: x\r\n${fields}\r\n`;
  const cases: [string, string, Http1ErrorCode][] = [
    ["CL and TE", head("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), "smuggling"],
    ["TE and CL", head("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"), "smuggling"],
    ["two different CLs", head("Content-Length: 5\r\nContent-Length: 6\r\n"), "bad_content_length"],
    ["a CL list", head("Content-Length: 5, 5\r\n"), "bad_content_length"],
    ["a signed CL", head("Content-Length: +5\r\n"), "bad_content_length"],
    ["a huge CL", head("Content-Length: 99999999999999999999\r\n"), "bad_content_length"],
    ["gzip as final coding", head("Transfer-Encoding: gzip\r\n"), "unsupported_transfer_coding"],
    ["gzip then chunked", head("Transfer-Encoding: gzip, chunked\r\n"), "unsupported_transfer_coding"],
    ["chunked then gzip", head("Transfer-Encoding: chunked, gzip\r\n"), "bad_transfer_encoding"],
    ["chunked twice", head("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), "bad_transfer_encoding"],
    ["an empty TE", head("Transfer-Encoding: ,\r\n"), "bad_transfer_encoding"],
    ["TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "bad_transfer_encoding"],
    ["obs-fold", head("X-A: 1\r\n  continued\r\n"), "obs_fold"],
    ["whitespace before the colon", head("X-A : 1\r\n"), "bad_header"],
    ["a name with a slash", head("X/A: 1\r\n"), "bad_header"],
    ["a NUL in a value", head("X-A: 1\x002\r\n"), "bad_header"],
    ["a bare CR in a value", head("X-A: 1\r2\r\n"), "bad_header"],
    ["a bare LF", "GET / HTTP/1.1\nHost: x\n\n", "bad_header"],
    ["no Host", "GET / HTTP/1.1\r\n\r\n", "bad_host"],
    ["two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "bad_host"],
    ["a Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "bad_host"],
    ["HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", "version_not_supported"],
    ["HTTP/0.9", "GET /\r\n\r\n", "bad_request_line"],
    ["a space in the target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", "bad_request_line"],
    ["a lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n", "bad_request_line"],
    ["empty lines forever", "\r\n".repeat(20), "bad_request_line"],
    ["a byte-order mark first", "\ufeffGET / HTTP/1.1\r\nHost: x\r\n\r\n", "bad_request_line"],
  ];
  for (const [name, input, code] of cases) assert.equal(refusal(input), code, name);
});

Deno.test("Http1Parser refuses bad chunks: hex-huge, overflowing, not hex, overlong, data past its size", () => {
  const chunked = (body: string) => `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${body}`;
  assert.equal(refusal(chunked("fffffffffffffffffffffff\r\n")), "bad_chunk");
  assert.equal(refusal(chunked("20000000000000\r\n")), "bad_chunk"); // 2^53
  assert.equal(refusal(chunked("zz\r\n")), "bad_chunk");
  assert.equal(refusal(chunked("-1\r\n")), "bad_chunk");
  assert.equal(refusal(chunked("5 x\r\nhello\r\n")), "bad_chunk");
  assert.equal(refusal(chunked(`5;${"e".repeat(5000)}\r\n`)), "bad_chunk");
  assert.equal(refusal(chunked("5\r\nhello!\r\n0\r\n\r\n")), "bad_chunk");
  assert.equal(refusal(chunked("5\nhello\r\n")), "bad_chunk");
  assert.equal(refusal(chunked(`0\r\nX-T: ${"t".repeat(20_000)}\r\n\r\n`)), "trailers_too_large");
  assert.equal(refusal(chunked("0\r\n  folded\r\n\r\n")), "obs_fold");
  // Leading zeros are a long way of writing a small number.
  assert.equal(parseAll(chunked(`${"0".repeat(100)}3\r\nabc\r\n0\r\n\r\n`))[0]?.body, "abc");
});

Deno.test("Http1Parser refuses heads and bodies over the limits as soon as that shows", () => {
  assert.equal(refusal(`GET /${"a".repeat(9000)} HTTP/1.1\r\nHost: x\r\n\r\n`), "uri_too_long");
  assert.equal(refusal("A".repeat(9000)), "bad_request_line");
  assert.equal(refusal(`GET / HTTP/1.1\r\nHost: x\r\n${"X-A: 1234567890\r\n".repeat(5000)}`), "headers_too_large");
  assert.equal(refusal(`GET / HTTP/1.1\r\nHost: x\r\n${"X-A: 1\r\n".repeat(100)}\r\n`), "headers_too_large");
  const limits = { maxBodyBytes: 10 };
  assert.equal(refusal("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", limits), "body_too_large");
  const chunks = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n";
  assert.equal(refusal(chunks, limits), "body_too_large");
  // An incomplete head past the limit is refused without waiting for its end.
  const parser = new Http1Parser({ ...LIMITS, maxHeaderBytes: 1024 });
  const buffer = new Buffer();
  buffer.append(`GET / HTTP/1.1\r\nHost: x\r\nX-A: ${"a".repeat(2000)}`);
  assert.throws(() => parser.parseHead(buffer), (error) => error instanceof Http1Error && error.status === 431);
});

Deno.test("Http1Parser reads Connection and Expect: keep-alive rules of 1.0 and 1.1, 100-continue", () => {
  const heads = parseAll(
    "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" +
      "GET / HTTP/1.0\r\n\r\n" +
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, Upgrade\r\nExpect: 100-Continue\r\n\r\n" +
      "GET / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n" +
      "GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
  ).map((request) => request.head);
  assert.deepEqual(heads.map((head) => head.keepAlive), [false, false, true, true, false]);
  assert.deepEqual(heads.map((head) => head.expect), [undefined, undefined, "continue", "other", undefined]);
});
