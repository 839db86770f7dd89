import assert from "node:assert/strict";
import { RpcCode } from "../rpc_error.ts";
import {
  connectCodeName,
  connectErrorJson,
  connectHttpStatus,
  endOfStreamJson,
  envelope,
  EnvelopeReader,
  EnvelopeTooLarge,
  fromBase64Url,
  metadataFromHeaders,
  parseConnectContentType,
  parseConnectGet,
  parseConnectTimeout,
} from "./connect_protocol.ts";

Deno.test("Connect: every code has the spec's name and HTTP status", () => {
  const table: Array<[RpcCode, string, number]> = [
    [RpcCode.CANCELLED, "canceled", 499],
    [RpcCode.UNKNOWN, "unknown", 500],
    [RpcCode.INVALID_ARGUMENT, "invalid_argument", 400],
    [RpcCode.DEADLINE_EXCEEDED, "deadline_exceeded", 504],
    [RpcCode.NOT_FOUND, "not_found", 404],
    [RpcCode.ALREADY_EXISTS, "already_exists", 409],
    [RpcCode.PERMISSION_DENIED, "permission_denied", 403],
    [RpcCode.RESOURCE_EXHAUSTED, "resource_exhausted", 429],
    [RpcCode.FAILED_PRECONDITION, "failed_precondition", 400],
    [RpcCode.ABORTED, "aborted", 409],
    [RpcCode.OUT_OF_RANGE, "out_of_range", 400],
    [RpcCode.UNIMPLEMENTED, "unimplemented", 501],
    [RpcCode.INTERNAL, "internal", 500],
    [RpcCode.UNAVAILABLE, "unavailable", 503],
    [RpcCode.DATA_LOSS, "data_loss", 500],
    [RpcCode.UNAUTHENTICATED, "unauthenticated", 401],
  ];
  for (const [code, name, status] of table) {
    assert.equal(connectCodeName(code), name);
    assert.equal(connectHttpStatus(code), status, name);
  }
  assert.equal(connectCodeName(99), "unknown");
  assert.equal(connectHttpStatus(99), 500);
});

Deno.test("Connect: error JSON and the end-of-stream message", () => {
  assert.deepEqual(connectErrorJson(RpcCode.NOT_FOUND, "no such user"), { code: "not_found", message: "no such user" });
  assert.deepEqual(connectErrorJson(RpcCode.INTERNAL, ""), { code: "internal" });
  const end = JSON.parse(
    new TextDecoder().decode(
      endOfStreamJson(connectErrorJson(RpcCode.ABORTED, "x"), new Map([["trailer-a", ["1", "2"]]])),
    ),
  );
  assert.deepEqual(end, { error: { code: "aborted", message: "x" }, metadata: { "trailer-a": ["1", "2"] } });
  assert.equal(new TextDecoder().decode(endOfStreamJson(undefined, undefined)), "{}");
});

Deno.test("Connect: envelopes arrive in any pieces; a lying length fails before its data is held", () => {
  const one = envelope(0, new Uint8Array([1, 2, 3]));
  const two = envelope(2, new TextEncoder().encode("{}"));
  const all = new Uint8Array([...one, ...two]);
  for (let cut = 0; cut <= all.length; cut++) {
    const reader = new EnvelopeReader(1024);
    const got: string[] = [];
    for (const piece of [all.subarray(0, cut), all.subarray(cut)]) {
      reader.push(piece);
      for (let e = reader.next(); e !== undefined; e = reader.next()) got.push(`${e.flags}:${[...e.data].join(",")}`);
    }
    assert.deepEqual(got, ["0:1,2,3", "2:123,125"], `cut at ${cut}`);
    assert.equal(reader.buffered, 0);
  }
  const liar = new EnvelopeReader(1024);
  liar.push(new Uint8Array([0, 0xff, 0xff, 0xff, 0xff]));
  assert.throws(() => liar.next(), EnvelopeTooLarge);
});

Deno.test("Connect: the timeout header and which headers are metadata", () => {
  assert.equal(parseConnectTimeout(undefined), undefined);
  assert.equal(parseConnectTimeout("1500"), 1500);
  assert.equal(parseConnectTimeout("9999999999"), 9_999_999_999);
  for (const bad of ["", "-1", "1.5", "12345678901", " 1", "1e3"]) {
    assert.throws(() => parseConnectTimeout(bad), TypeError, bad);
  }
  const metadata = metadataFromHeaders([
    ["Content-Type", "application/proto"],
    ["connect-timeout-ms", "100"],
    ["x-user", "a"],
    ["x-user", "b"],
    ["token-bin", "AAEC"],
    ["dwt-retry-safe", "1"],
    ["__proto__", "p"],
  ]);
  assert.deepEqual(Object.entries(metadata), [["x-user", "a, b"], ["token-bin", "AAEC"], ["__proto__", "p"]]);
  assert.equal(Object.getPrototypeOf(metadata), Object.prototype);
});

Deno.test("Connect: content types tell unary from streaming and name the codec; GET queries decode", () => {
  assert.deepEqual(parseConnectContentType("application/proto"), { codec: "proto", streaming: false });
  assert.deepEqual(parseConnectContentType("application/json; charset=utf-8"), { codec: "json", streaming: false });
  assert.deepEqual(parseConnectContentType("application/connect+proto"), { codec: "proto", streaming: true });
  assert.deepEqual(parseConnectContentType("application/foo"), { codec: "foo", streaming: false });
  for (const other of [undefined, "application/grpc-web+proto", "application/grpc", "text/plain"]) {
    assert.equal(parseConnectContentType(other), undefined, other);
  }
  const json = parseConnectGet(new URLSearchParams("connect=v1&encoding=json&message=%7B%22a%22%3A1%7D"));
  assert.equal(new TextDecoder().decode(json.message), '{"a":1}');
  const proto = parseConnectGet(new URLSearchParams("encoding=proto&base64=1&message=-_8&compression=gzip"));
  assert.deepEqual([...proto.message], [0xfb, 0xff]);
  assert.equal(proto.compression, "gzip");
  assert.throws(() => parseConnectGet(new URLSearchParams("message=e30")), TypeError);
  assert.throws(() => parseConnectGet(new URLSearchParams("connect=v2&encoding=json")), TypeError);
  assert.throws(() => fromBase64Url("a*b"), TypeError);
  assert.deepEqual([...fromBase64Url("AAEC")], [0, 1, 2]);
  assert.deepEqual([...fromBase64Url("AAE=")], [0, 1]);
});
