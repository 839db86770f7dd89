import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { RpcCode, RpcError } from "../rpc_error.ts";
import { RpcProvider } from "../rpc_provider.ts";
import { parseProto, serviceDefinition } from "../service_definition.ts";
import { STATUS_DETAILS_KEY } from "./gateway_request.ts";
import { toBase64 } from "./grpc_web_protocol.ts";
import { frame, parseFrames, text } from "./testdata/gateway_client.ts";

// A handler's error with details, as gRPC carries them: grpc-status-details-bin, the base64 of a google.rpc.Status.
const root = parseProto(`syntax = "proto3"; package test.details;
  message Req { int32 before = 1; }
  message Res { int32 n = 1; }
  service Failing {
    rpc Once (Req) returns (Res);
    rpc Many (Req) returns (stream Res);
  }`);
const url = new TextEncoder().encode("type.googleapis.com/test.details.Res");
const detail = [0x0a, url.length, ...url, 0x12, 0x02, 0x08, 0x07]; // Any { Res { n: 7 } }
const STATUS = toBase64(new Uint8Array([0x08, 0x09, 0x1a, detail.length, ...detail])); // code 9 and the detail
const failure = () =>
  new RpcError(RpcCode.FAILED_PRECONDITION, "not yet", {
    metadata: { "x-why": "because", "trailer-x-when": "later", [STATUS_DETAILS_KEY]: STATUS },
  });

async function startFailing(): Promise<{ base: string; [Symbol.asyncDispose](): Promise<void> }> {
  const provider = new RpcProvider({ loop: new EventLoop(), httpPort: 0, reflection: false });
  provider.registerService(serviceDefinition(root, "test.details.Failing"), {
    Once: () => {
      throw failure();
    },
    Many: async function* (request: { before: number }) {
      for (let n = 0; n < request.before; n++) yield { n };
      throw failure();
    },
  });
  await provider.start();
  return { base: `http://${provider.httpAddress}`, [Symbol.asyncDispose]: () => provider.stop({ graceMs: 0 }) };
}

Deno.test("GatewayTransport gives a Connect error the details its handler's error carried as grpc-status-details-bin", async () => {
  await using failing = await startFailing();
  const response = await fetch(`${failing.base}/test.details.Failing/Once`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(response.status, 400);
  assert.equal(response.headers.get("x-why"), "because");
  assert.equal(response.headers.get("trailer-x-when"), "later");
  assert.equal(response.headers.get(STATUS_DETAILS_KEY), null, "details go in the JSON, not as a field");
  assert.equal(response.headers.get(`trailer-${STATUS_DETAILS_KEY}`), null);
  assert.deepEqual(await response.json(), {
    code: "failed_precondition",
    message: "not yet",
    details: [{ type: "test.details.Res", value: "CAc" }],
  });

  const stream = await fetch(`${failing.base}/test.details.Failing/Many`, {
    method: "POST",
    headers: { "content-type": "application/connect+json" },
    body: frame(0, new TextEncoder().encode('{"before":1}')),
  });
  assert.equal(stream.status, 200);
  const frames = parseFrames(new Uint8Array(await stream.arrayBuffer()));
  assert.equal(frames.length, 2);
  const end = JSON.parse(text(frames[1]!.data));
  assert.deepEqual(end.error.details, [{ type: "test.details.Res", value: "CAc" }]);
  assert.deepEqual(end.metadata, { "x-why": ["because"], "x-when": ["later"] });
});

Deno.test("GatewayTransport sends gRPC-Web a handler's error details as the grpc-status-details-bin trailer", async () => {
  await using failing = await startFailing();
  const call = (before: number) =>
    fetch(`${failing.base}/test.details.Failing/Many`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body: frame(0, before === 0 ? new Uint8Array(0) : new Uint8Array([0x08, before])),
    });
  // No message, but the handler's error has header metadata: headers, then the status in the trailers frame.
  const beforeAny = await call(0);
  assert.equal(beforeAny.headers.get("grpc-status"), null);
  const only = parseFrames(new Uint8Array(await beforeAny.arrayBuffer()));
  assert.equal(only.length, 1);
  assert.equal(only[0]!.flags, 0x80);
  assert.match(text(only[0]!.data), /^grpc-status: 9\r\n/);
  assert.ok(text(only[0]!.data).includes(`\r\n${STATUS_DETAILS_KEY}: ${STATUS}\r\n`));

  const afterMessages = await call(2);
  const frames = parseFrames(new Uint8Array(await afterMessages.arrayBuffer()));
  assert.equal(frames.length, 3);
  assert.equal(frames[2]!.flags, 0x80);
  const trailers = text(frames[2]!.data);
  assert.match(trailers, /^grpc-status: 9\r\n/);
  assert.ok(trailers.includes(`\r\n${STATUS_DETAILS_KEY}: ${STATUS}\r\n`), trailers);
});
