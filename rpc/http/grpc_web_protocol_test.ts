import assert from "node:assert/strict";
import {
  Base64Pieces,
  grpcWebTrailers,
  parseGrpcTimeout,
  parseGrpcWebContentType,
  toBase64,
} from "./grpc_web_protocol.ts";

Deno.test("gRPC-Web: content types name the codec and the text form; others are not gRPC-Web", () => {
  assert.deepEqual(parseGrpcWebContentType("application/grpc-web"), { codec: "proto", text: false });
  assert.deepEqual(parseGrpcWebContentType("application/grpc-web+proto"), { codec: "proto", text: false });
  assert.deepEqual(parseGrpcWebContentType("application/grpc-web+json"), { codec: "json", text: false });
  assert.deepEqual(parseGrpcWebContentType("Application/GRPC-Web-Text; x=1"), { codec: "proto", text: true });
  for (const other of [undefined, "application/grpc", "application/proto", "application/grpc-webby", "text/plain"]) {
    assert.equal(parseGrpcWebContentType(other), undefined, other);
  }
});

Deno.test("gRPC-Web: grpc-timeout in every unit, rounded up; malformed values refused", () => {
  assert.equal(parseGrpcTimeout(undefined), undefined);
  assert.equal(parseGrpcTimeout("1H"), 3_600_000);
  assert.equal(parseGrpcTimeout("2M"), 120_000);
  assert.equal(parseGrpcTimeout("3S"), 3000);
  assert.equal(parseGrpcTimeout("250m"), 250);
  assert.equal(parseGrpcTimeout("1500u"), 2);
  assert.equal(parseGrpcTimeout("1n"), 1);
  for (const bad of ["", "1", "S", "123456789S", "1s", "-1S", "1.5S"]) {
    assert.throws(() => parseGrpcTimeout(bad), TypeError);
  }
});

Deno.test("gRPC-Web: the trailers frame holds status, the percent-encoded message and the trailers", () => {
  const text = new TextDecoder().decode(grpcWebTrailers(5, "no such user: ä 100%", [["X-Trace", "t1"]]));
  assert.equal(text, "grpc-status: 5\r\ngrpc-message: no such user: %C3%A4 100%25\r\nx-trace: t1\r\n");
  assert.equal(new TextDecoder().decode(grpcWebTrailers(0, "")), "grpc-status: 0\r\n");
});

Deno.test("gRPC-Web text: base64 in any pieces, with padding between the writer's chunks", () => {
  const a = new Uint8Array([0, 1, 2, 3, 4]);
  const b = new Uint8Array([250, 251]);
  const body = toBase64(a) + toBase64(b); // "AAECAwQ=" + "+vs="
  for (let cut = 0; cut <= body.length; cut++) {
    const pieces = new Base64Pieces();
    const got = [...pieces.push(body.slice(0, cut)), ...pieces.push(body.slice(cut))];
    assert.deepEqual(got, [...a, ...b], `cut at ${cut}`);
    assert.equal(pieces.pending, false);
  }
  const partial = new Base64Pieces();
  partial.push("AAE");
  assert.equal(partial.pending, true);
  assert.throws(() => new Base64Pieces().push("AA*A"), TypeError);
});
