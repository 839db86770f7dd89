import assert from "node:assert/strict";
import { until } from "../../reactor/testdata/until.ts";
import { RpcCode } from "../rpc_error.ts";
import {
  decode,
  demoType,
  encode,
  frame,
  frames,
  gunzipBytes,
  gzipBytes,
  jsonBytes,
  parseFrames,
  RawHttpClient,
  startDemoProvider,
  text,
} from "./testdata/gateway_client.ts";

const COUNT = "/test.gateway.Demo/Count";
const SUM = "/test.gateway.Demo/Sum";
const ECHO = "/test.gateway.Demo/Echo";
const connectProto = { "content-type": "application/connect+proto" };

async function post(url: string, headers: Record<string, string>, body: Uint8Array<ArrayBuffer>) {
  const response = await fetch(url, { method: "POST", headers, body });
  return { response, body: new Uint8Array(await response.arrayBuffer()) };
}

Deno.test("GatewayTransport streams a Connect server stream as envelopes, then the end-of-stream message", async () => {
  await using demo = await startDemoProvider();
  const request = frame(0, encode(demoType("Count", "request"), { n: 3, size: 4 }));
  const { response, body } = await post(`${demo.base}${COUNT}`, connectProto, request);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/connect+proto");
  const received = parseFrames(body);
  assert.deepEqual(received.map((f) => f.flags), [0, 0, 0, 2]);
  const items = received.slice(0, 3).map((f) => decode(demoType("Count", "response"), f.data));
  assert.deepEqual(items.map((item) => item.index ?? 0), [0, 1, 2]);
  assert.deepEqual(JSON.parse(text(received[3]!.data)), { metadata: { "x-count": ["3"] } });
});

Deno.test("GatewayTransport ends a failing Connect stream with its error in the end-of-stream message (HTTP 200)", async () => {
  await using demo = await startDemoProvider();
  const request = frame(0, jsonBytes({ n: 2, failCode: RpcCode.FAILED_PRECONDITION }));
  const { response, body } = await post(
    `${demo.base}${COUNT}`,
    { "content-type": "application/connect+json" },
    request,
  );
  assert.equal(response.status, 200);
  const received = parseFrames(body);
  assert.deepEqual(received.map((f) => f.flags), [0, 0, 2]);
  assert.deepEqual(JSON.parse(text(received[1]!.data)), { index: 1 });
  const end = JSON.parse(text(received[2]!.data));
  assert.deepEqual(end.error, { code: "failed_precondition", message: "failed after the items" });
});

Deno.test("GatewayTransport writes every message a stream yielded before its error, several windows of them", async () => {
  await using demo = await startDemoProvider();
  // 64-byte messages as fast as the handler yields them: the provider runs ahead of the writes (a window at a time,
  // whose messages share a write), and what it yielded before it failed all goes out, in order, before the error.
  const n = 3000;
  const request = frame(0, encode(demoType("Count", "request"), { n, size: 64, failCode: RpcCode.ABORTED }));
  const { response, body } = await post(`${demo.base}${COUNT}`, connectProto, request);
  assert.equal(response.status, 200);
  const received = parseFrames(body);
  assert.equal(received.length, n + 1);
  const items = received.slice(0, n).map((f) => decode(demoType("Count", "response"), f.data));
  assert.ok(items.every((item, i) => (item.index ?? 0) === i), "every message, in order");
  assert.equal(received[n]!.flags, 2);
  assert.equal(JSON.parse(text(received[n]!.data)).error.code, "aborted");
});

Deno.test("GatewayTransport speaks Connect-Content-Encoding gzip per stream message", async () => {
  await using demo = await startDemoProvider();
  const request = frame(1, await gzipBytes(jsonBytes({ n: 2, size: 4000 })));
  const { response, body } = await post(`${demo.base}${COUNT}`, {
    "content-type": "application/connect+json",
    "connect-content-encoding": "gzip",
    "connect-accept-encoding": "gzip",
  }, request);
  assert.equal(response.headers.get("connect-content-encoding"), "gzip");
  const received = parseFrames(body);
  assert.deepEqual(received.map((f) => f.flags), [1, 1, 2], "large messages compressed, the end not");
  const second = JSON.parse(text(await gunzipBytes(received[1]!.data)));
  assert.equal(second.index, 1);
  assert.equal(atob(second.blob).length, 4000);
});

Deno.test("GatewayTransport feeds a Connect client stream from the request's envelopes", async () => {
  await using demo = await startDemoProvider();
  const itemType = demoType("Sum", "request");
  const body = frames(
    frame(0, encode(itemType, { index: 0, blob: new Uint8Array(10) })),
    frame(0, encode(itemType, { index: 1, blob: new Uint8Array(20) })),
    frame(1, await gzipBytes(encode(itemType, { index: 2, blob: new Uint8Array(30) }))),
  );
  const { response, body: answer } = await post(`${demo.base}${SUM}`, {
    ...connectProto,
    "connect-content-encoding": "gzip",
  }, body);
  assert.equal(response.status, 200);
  const received = parseFrames(answer);
  assert.deepEqual(received.map((f) => f.flags), [0, 2]);
  assert.deepEqual(decode(demoType("Sum", "response"), received[0]!.data), { count: 3, bytes: "60" });
  assert.deepEqual(JSON.parse(text(received[1]!.data)), {});
});

Deno.test("GatewayTransport refuses Connect streams that break the rules, as the conformance suite expects", async () => {
  await using demo = await startDemoProvider();
  const countRequest = frame(0, encode(demoType("Count", "request"), { n: 1 }));
  const endError = async (path: string, headers: Record<string, string>, body: Uint8Array<ArrayBuffer>) => {
    const { response, body: answer } = await post(`${demo.base}${path}`, headers, body);
    assert.equal(response.status, 200);
    const last = parseFrames(answer).at(-1)!;
    assert.equal(last.flags, 2);
    return JSON.parse(text(last.data)).error?.code;
  };
  assert.equal(await endError(COUNT, connectProto, new Uint8Array(0)), "unimplemented", "no request message");
  assert.equal(await endError(COUNT, connectProto, frames(countRequest, countRequest)), "unimplemented", "two");
  assert.equal(
    await endError(COUNT, connectProto, frame(1, encode(demoType("Count", "request"), { n: 1 }))),
    "internal",
    "a compressed flag with identity",
  );
  assert.equal(
    await endError(COUNT, connectProto, countRequest.subarray(0, countRequest.length - 1)),
    "invalid_argument",
    "cut short",
  );
  assert.equal(
    await endError(COUNT, { ...connectProto, "connect-content-encoding": "snappy" }, countRequest),
    "unimplemented",
  );
  const lying = new Uint8Array([0, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3]);
  assert.equal(await endError(SUM, connectProto, lying), "resource_exhausted", "a lying envelope length");

  const bidi = await fetch(`${demo.base}/test.gateway.Demo/Chat`, {
    method: "POST",
    headers: connectProto,
    body: countRequest,
  });
  assert.equal(bidi.status, 505, "bidirectional streams need HTTP/2, as connect-es answers");
  await bidi.body?.cancel();
  const unaryAsStream = await fetch(`${demo.base}${COUNT}`, {
    method: "POST",
    headers: { "content-type": "application/proto" },
    body: new Uint8Array(0),
  });
  assert.equal(unaryAsStream.status, 415);
  await unaryAsStream.body?.cancel();
});

Deno.test("GatewayTransport ends a Connect server stream at Connect-Timeout-Ms with deadline_exceeded", async () => {
  await using demo = await startDemoProvider();
  const request = frame(0, encode(demoType("Count", "request"), { n: 0, intervalMs: 20 }));
  const { body } = await post(`${demo.base}${COUNT}`, { ...connectProto, "connect-timeout-ms": "200" }, request);
  const received = parseFrames(body);
  assert.ok(received.length >= 2, `${received.length} frames`);
  assert.equal(JSON.parse(text(received.at(-1)!.data)).error.code, "deadline_exceeded");
});

Deno.test("GatewayTransport answers gRPC-Web unary calls with the message and the trailers frame", async () => {
  await using demo = await startDemoProvider();
  const request = frame(0, encode(demoType("Echo", "request"), { text: "web", big: "12345678901234" }));
  const { response, body } = await post(`${demo.base}${ECHO}`, {
    "content-type": "application/grpc-web+proto",
    "x-grpc-web": "1",
  }, request);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/grpc-web+proto");
  assert.equal(response.headers.get("x-echo"), "web");
  const received = parseFrames(body);
  assert.deepEqual(received.map((f) => f.flags), [0, 0x80]);
  const reply = decode(demoType("Echo", "response"), received[0]!.data);
  assert.equal(reply.text, "web");
  assert.equal(reply.big, "12345678901234");
  const trailers = text(received[1]!.data);
  assert.match(trailers, /^grpc-status: 0\r\n/);
  assert.match(trailers, /x-count: 1\r\n/);
});

Deno.test("GatewayTransport answers a gRPC-Web error before any message as trailers-only, unless it has headers", async () => {
  await using demo = await startDemoProvider();
  const grpcWeb = { "content-type": "application/grpc-web" };
  const failing = frame(0, encode(demoType("Echo", "request"), { text: "no", failCode: RpcCode.NOT_FOUND }));
  // The handler's error carries a header (x-fail): headers, then the status in the trailers frame, so a client does
  // not read the header as a trailer.
  const { response, body } = await post(`${demo.base}${ECHO}`, grpcWeb, failing);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("x-fail"), "1");
  assert.equal(response.headers.get("grpc-status"), null);
  assert.equal(body[0], 0x80, "a trailers frame");
  const trailers = new TextDecoder().decode(body.subarray(5));
  assert.match(trailers, new RegExp(`grpc-status: ${RpcCode.NOT_FOUND}\r\n`));
  assert.match(trailers, /grpc-message: failed as asked: no\r\n/);

  const slow = frame(0, encode(demoType("Echo", "request"), { delayMs: 10_000 }));
  const late = await post(`${demo.base}${ECHO}`, { ...grpcWeb, "grpc-timeout": "100m" }, slow);
  assert.equal(late.response.headers.get("grpc-status"), String(RpcCode.DEADLINE_EXCEEDED));

  const unknown = await post(`${demo.base}/test.gateway.Demo/Nope`, grpcWeb, failing);
  assert.equal(unknown.response.headers.get("grpc-status"), String(RpcCode.UNIMPLEMENTED));
  const none = await post(`${demo.base}${ECHO}`, grpcWeb, new Uint8Array(0));
  assert.equal(none.response.headers.get("grpc-status"), String(RpcCode.UNIMPLEMENTED), "no request message");
  const compressed = await post(`${demo.base}${ECHO}`, grpcWeb, frame(1, new Uint8Array(0)));
  assert.equal(compressed.response.headers.get("grpc-status"), String(RpcCode.INTERNAL), "compressed, identity");
  const codec = await post(`${demo.base}${ECHO}`, { "content-type": "application/grpc-web+thrift" }, failing);
  assert.equal(codec.response.status, 415);
});

Deno.test("GatewayTransport streams gRPC-Web server streams, in binary and as grpc-web-text", async () => {
  await using demo = await startDemoProvider();
  const countRequest = encode(demoType("Count", "request"), { n: 3, size: 2 });
  const binary = await post(
    `${demo.base}${COUNT}`,
    { "content-type": "application/grpc-web+proto" },
    frame(0, countRequest),
  );
  const received = parseFrames(binary.body);
  assert.deepEqual(received.map((f) => f.flags), [0, 0, 0, 0x80]);
  assert.match(text(received[3]!.data), /grpc-status: 0\r\nx-count: 3\r\n/);

  const base64 = new TextEncoder().encode(btoa(String.fromCharCode(...frame(0, countRequest))));
  const textual = await post(`${demo.base}${COUNT}`, { "content-type": "application/grpc-web-text" }, base64);
  assert.equal(textual.response.headers.get("content-type"), "application/grpc-web-text+proto");
  // Each frame is its own padded base64 piece; decoded in order they are the same frames.
  const pieces = text(textual.body).match(/[A-Za-z0-9+/]*={0,2}/g)!.filter((piece) => piece !== "");
  const decoded = frames(...pieces.map((piece) => Uint8Array.from(atob(piece), (c) => c.charCodeAt(0))));
  assert.deepEqual(parseFrames(decoded).map((f) => f.flags), [0, 0, 0, 0x80]);

  const failing = encode(demoType("Count", "request"), { n: 1, failCode: RpcCode.ABORTED });
  const failed = parseFrames(
    (await post(`${demo.base}${COUNT}`, {
      "content-type": "application/grpc-web+proto",
    }, frame(0, failing))).body,
  );
  assert.deepEqual(failed.map((f) => f.flags), [0, 0x80]);
  assert.match(text(failed[1]!.data), /^grpc-status: 10\r\ngrpc-message: failed after the items\r\n/);
});

Deno.test("GatewayTransport drains: calls in flight finish, new ones are unavailable, connections close", async () => {
  const demo = await startDemoProvider();
  const head = `POST ${ECHO} HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json`;
  const idle = await RawHttpClient.connect(demo.address);
  const slow = await RawHttpClient.connect(demo.address);
  let late: RawHttpClient | undefined;
  try {
    await idle.request(head, jsonBytes({ text: "before" }));
    assert.equal((await idle.response()).status, 200);
    await slow.request(head, jsonBytes({ text: "in flight", delayMs: 1500 }));
    await until(() => demo.record.running === 1, 5000, "the slow call to start");
    const stopping = demo.provider.stop({ graceMs: 10_000 });
    assert.ok(await idle.closedByServer(), "an idle keep-alive connection is closed at once");

    late = await RawHttpClient.connect(demo.address); // a new connection while the provider drains
    await late.request(head, jsonBytes({ text: "too late" }));
    const refused = await late.response();
    assert.equal(refused.status, 503);
    assert.equal(JSON.parse(text(refused.body)).code, "unavailable");
    assert.equal(refused.headers.get("connection"), "close");

    const finished = await slow.response();
    assert.equal(finished.status, 200, "the call in flight finished within the grace");
    assert.equal(JSON.parse(text(finished.body)).text, "in flight");
    assert.equal(finished.headers.get("connection"), "close");
    await stopping;
    assert.equal(demo.provider.stats().limitsHit.drain_refused, 1);
  } finally {
    idle.close();
    slow.close();
    late?.close();
    await demo.provider.stop();
  }
});

Deno.test("GatewayTransport feeds a gRPC-Web client stream, in JSON", async () => {
  await using demo = await startDemoProvider();
  const body = frames(frame(0, jsonBytes({ blob: "AAAA" })), frame(0, jsonBytes({ index: 1, blob: "AAAAAA==" })));
  const { response, body: answer } = await post(`${demo.base}${SUM}`, {
    "content-type": "application/grpc-web+json",
  }, body);
  assert.equal(response.headers.get("content-type"), "application/grpc-web+json");
  const received = parseFrames(answer);
  assert.deepEqual(received.map((f) => f.flags), [0, 0x80]);
  assert.deepEqual(JSON.parse(text(received[0]!.data)), { count: 2, bytes: "7" });
  assert.match(text(received[1]!.data), /^grpc-status: 0\r\n/);
});
