import assert from "node:assert/strict";
import descriptor from "protobufjs/ext/descriptor/index.js";
import { parseRpcConfig } from "../rpc_application.ts";
import { until } from "../../reactor/testdata/until.ts";
import { RpcCode, RpcError } from "../rpc_error.ts";
import type { ServerInterceptor } from "../rpc_provider.ts";
import {
  decode,
  demoType,
  encode,
  gunzipBytes,
  gzipBytes,
  jsonBytes,
  RawHttpClient,
  startDemoProvider,
  text,
} from "./testdata/gateway_client.ts";
import { needs } from "../../reactor/testdata/permissions.ts";

const ECHO = "/test.gateway.Demo/Echo";
const json = { "content-type": "application/json" };

Deno.test("GatewayTransport answers Connect unary calls in JSON, 64-bit integers as strings, metadata both ways", async () => {
  await using demo = await startDemoProvider();
  const response = await fetch(`${demo.base}${ECHO}`, {
    method: "POST",
    headers: { ...json, "connect-protocol-version": "1", "x-tenant": "blue" },
    body: JSON.stringify({ text: "hi", big: "9007199254740993", blob: "3q2+7w==" }),
  });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/json");
  assert.equal(response.headers.get("x-echo"), "hi");
  assert.equal(response.headers.get("trailer-x-count"), "1"); // the handler's trailer, as Connect sends unary ones
  const body = await response.json();
  assert.equal(body.text, "hi");
  assert.equal(body.big, "9007199254740993"); // past 2^53: a string, exact
  assert.equal(body.blob, "3q2+7w==");
  assert.equal(body.metadata["x-tenant"], "blue");
  assert.equal(body.metadata["content-type"], undefined, "the protocol's headers are not metadata");
});

Deno.test("GatewayTransport answers Connect unary calls in binary proto", async () => {
  await using demo = await startDemoProvider();
  const request = encode(demoType("Echo", "request"), { text: "bin", big: "-9223372036854775808" });
  const response = await fetch(`${demo.base}${ECHO}`, {
    method: "POST",
    headers: { "content-type": "application/proto" },
    body: request,
  });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/proto");
  const reply = decode(demoType("Echo", "response"), new Uint8Array(await response.arrayBuffer()));
  assert.equal(reply.text, "bin");
  assert.equal(reply.big, "-9223372036854775808");
});

Deno.test("GatewayTransport calls the seed's UserServiceRpc with JSON (bytes as base64)", async () => {
  await using demo = await startDemoProvider();
  const response = await fetch(`${demo.base}/dwt.UserServiceRpc/Login`, {
    method: "POST",
    headers: json,
    body: JSON.stringify({ name: btoa("dwt"), password: btoa("pw") }),
  });
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.success, true);
  assert.equal(atob(body.result.errmsg), "hello dwt");
});

Deno.test("GatewayTransport answers a handler's error with the Connect spec's HTTP status and JSON", async () => {
  await using demo = await startDemoProvider();
  const statuses: [number, string, number][] = [
    [RpcCode.INVALID_ARGUMENT, "invalid_argument", 400],
    [RpcCode.UNAUTHENTICATED, "unauthenticated", 401],
    [RpcCode.PERMISSION_DENIED, "permission_denied", 403],
    [RpcCode.NOT_FOUND, "not_found", 404],
    [RpcCode.ALREADY_EXISTS, "already_exists", 409],
    [RpcCode.RESOURCE_EXHAUSTED, "resource_exhausted", 429],
    [RpcCode.INTERNAL, "internal", 500],
    [RpcCode.UNAVAILABLE, "unavailable", 503],
    [RpcCode.DEADLINE_EXCEEDED, "deadline_exceeded", 504],
  ];
  for (const [code, name, status] of statuses) {
    const response = await fetch(`${demo.base}${ECHO}`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ text: "x", failCode: code }),
    });
    assert.equal(response.status, status, name);
    assert.equal(response.headers.get("content-type"), "application/json");
    assert.equal(response.headers.get("x-fail"), "1", "the error's metadata goes out as headers");
    assert.deepEqual(await response.json(), { code: name, message: "failed as asked: x" });
  }
  const stats = demo.provider.stats();
  assert.equal(stats.calls["test.gateway.Demo.Echo"]?.NOT_FOUND, 1, "counted by the provider, as on its own port");
});

Deno.test("GatewayTransport refuses what is not a call it serves, each with its HTTP status", async () => {
  await using demo = await startDemoProvider();
  const call = async (path: string, init: RequestInit) => {
    const response = await fetch(`${demo.base}${path}`, init);
    return { status: response.status, type: response.headers.get("content-type"), body: await response.text() };
  };
  const post = (headers: Record<string, string>, body: BodyInit = "{}") => ({ method: "POST", headers, body });

  const unknown = await call("/test.gateway.Demo/Nope", post(json));
  assert.equal(unknown.status, 404);
  assert.equal(JSON.parse(unknown.body).code, "unimplemented");
  assert.equal((await call("/no/such/path/here", post(json))).status, 404);
  // Paths that are not exactly /<service>/<method> (the route is parsed by index: its edges).
  for (const path of ["/test.gateway.Demo", "/test.gateway.Demo/", "//Echo", "/test.gateway.Demo/Echo/", "/"]) {
    const answer = await call(path, post(json));
    assert.equal(answer.status, 404, path);
    assert.match(answer.body, /^No service method at /, path);
  }
  assert.equal((await call(ECHO, { method: "GET" })).status, 405, "GET only for NO_SIDE_EFFECTS methods");
  assert.equal((await call(ECHO, { method: "DELETE" })).status, 405);
  const jpeg = await call(ECHO, post({ "content-type": "image/jpeg" }));
  assert.equal(jpeg.status, 415);
  assert.match(jpeg.type ?? "", /^text\/plain/, "a plain body: clients map 415 to unknown by its status");
  assert.equal((await call(ECHO, post({ "content-type": "application/xml" }))).status, 415);
  assert.equal(
    (await call(ECHO, post({ "content-type": "application/connect+json" }))).status,
    415,
    "unary as a stream",
  );

  const compression = await call(ECHO, post({ ...json, "content-encoding": "br" }));
  assert.equal(compression.status, 501);
  assert.equal(JSON.parse(compression.body).code, "unimplemented");
  const version = await call(ECHO, post({ ...json, "connect-protocol-version": "2" }));
  assert.equal(version.status, 400);
  assert.equal(JSON.parse(version.body).code, "invalid_argument");
  const timeout = await call(ECHO, post({ ...json, "connect-timeout-ms": "-5" }));
  assert.equal(JSON.parse(timeout.body).code, "invalid_argument");

  const notJson = await call(ECHO, post(json, "{not json"));
  assert.equal(notJson.status, 400);
  assert.equal(JSON.parse(notJson.body).code, "invalid_argument");
  const wrongField = await call(ECHO, post(json, JSON.stringify({ delayMs: "many" })));
  assert.equal(JSON.parse(wrongField.body).code, "invalid_argument");
  const notUtf8 = await call(ECHO, post(json, new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d])));
  assert.equal(JSON.parse(notUtf8.body).code, "invalid_argument");
  const notProto = await call(ECHO, post({ "content-type": "application/proto" }, new Uint8Array([0x0a, 0x7f])));
  assert.equal(JSON.parse(notProto.body).code, "invalid_argument");

  // An honest call still works after all that.
  const ok = await call(ECHO, post(json, JSON.stringify({ text: "still here" })));
  assert.equal(JSON.parse(ok.body).text, "still here");
});

Deno.test("GatewayTransport takes Connect-Timeout-Ms as the deadline: a slow handler ends deadline_exceeded (504)", async () => {
  await using demo = await startDemoProvider();
  const started = performance.now();
  const response = await fetch(`${demo.base}${ECHO}`, {
    method: "POST",
    headers: { ...json, "connect-timeout-ms": "100" },
    body: JSON.stringify({ text: "slow", delayMs: 10_000 }),
  });
  assert.equal(response.status, 504);
  assert.equal((await response.json()).code, "deadline_exceeded");
  assert.ok(performance.now() - started < 5000, "answered at the deadline, not when the handler would finish");
  assert.ok(demo.record.abortedAt !== undefined, "the handler's signal fired");

  // The deadline reaches the handler as time remaining.
  const quick = await fetch(`${demo.base}${ECHO}`, {
    method: "POST",
    headers: { ...json, "connect-timeout-ms": "60000" },
    body: JSON.stringify({ text: "quick" }),
  });
  const remaining = Number((await quick.json()).timeRemainingMs);
  assert.ok(remaining > 0 && remaining <= 60_000, `time remaining ${remaining}`);
});

Deno.test("GatewayTransport answers unary GET for NO_SIDE_EFFECTS methods, JSON or base64 proto in the query", async () => {
  await using demo = await startDemoProvider();
  const message = encodeURIComponent(JSON.stringify({ text: "got", big: "42" }));
  const viaJson = await fetch(`${demo.base}/test.gateway.Demo/Lookup?connect=v1&encoding=json&message=${message}`);
  assert.equal(viaJson.status, 200);
  const body = await viaJson.json();
  assert.equal(body.text, "got");
  assert.equal(body.big, "42");

  const binary = encode(demoType("Lookup", "request"), { text: "b64" });
  const base64url = btoa(String.fromCharCode(...binary)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const viaProto = await fetch(
    `${demo.base}/test.gateway.Demo/Lookup?connect=v1&encoding=proto&base64=1&message=${base64url}`,
  );
  assert.equal(viaProto.status, 200);
  assert.equal(decode(demoType("Lookup", "response"), new Uint8Array(await viaProto.arrayBuffer())).text, "b64");

  const badQuery = await fetch(`${demo.base}/test.gateway.Demo/Lookup?connect=v1`);
  assert.equal(badQuery.status, 400);
  assert.equal((await badQuery.json()).code, "invalid_argument");
  const post = await fetch(`${demo.base}/test.gateway.Demo/Lookup`, { method: "POST", headers: json, body: "{}" });
  assert.equal(post.status, 200, "POST works for them too");
  await post.body?.cancel();
});

Deno.test("GatewayTransport speaks gzip both ways and bounds what a compressed body inflates to", async () => {
  await using demo = await startDemoProvider({ maxFrameBytes: 64 * 1024 });
  const client = await RawHttpClient.connect(demo.address);
  try {
    const head = `POST ${ECHO} HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json`;
    // A gzip request, and a response large enough to be compressed for a client that accepts gzip.
    await client.request(
      `${head}\r\ncontent-encoding: gzip\r\naccept-encoding: gzip`,
      await gzipBytes(jsonBytes({ text: "zipped", size: 20_000 })),
    );
    const zipped = await client.response();
    assert.equal(zipped.status, 200);
    assert.equal(zipped.headers.get("content-encoding"), "gzip");
    assert.ok(zipped.body.length < 2000, `compressed: ${zipped.body.length} bytes for 20 kB of "a"`);
    const reply = JSON.parse(text(await gunzipBytes(zipped.body)));
    assert.equal(reply.text, "zipped");
    assert.equal(atob(reply.blob).length, 20_000);

    // Without Accept-Encoding the same answer is sent as it is.
    await client.request(head, jsonBytes({ text: "plain", size: 20_000 }));
    const plain = await client.response();
    assert.equal(plain.headers.get("content-encoding"), undefined);
    assert.equal(JSON.parse(text(plain.body)).text, "plain");

    // A gzip bomb: 16 kB on the wire, 16 MB inflated. Refused at the limit, the connection stays usable.
    const bomb = await gzipBytes(new Uint8Array(16 * 1024 * 1024));
    assert.ok(bomb.length < 32 * 1024);
    await client.request(`${head}\r\ncontent-encoding: gzip`, bomb);
    const refused = await client.response();
    assert.equal(refused.status, 429);
    assert.match(JSON.parse(text(refused.body)).message, /inflates past the limit of 65536 bytes/);

    // A body over the receive limit, uncompressed.
    await client.request(head, jsonBytes({ text: "x".repeat(70 * 1024) }));
    const large = await client.response();
    assert.equal(large.status, 429);
    assert.equal(JSON.parse(text(large.body)).code, "resource_exhausted");

    // Not gzip at all.
    await client.request(`${head}\r\ncontent-encoding: gzip`, jsonBytes({ text: "not zipped" }));
    assert.equal(JSON.parse(text((await client.response()).body)).code, "invalid_argument");
  } finally {
    client.close();
  }
  // And an honest client meanwhile.
  const ok = await fetch(`${demo.base}${ECHO}`, { method: "POST", headers: json, body: '{"text":"fine"}' });
  assert.equal((await ok.json()).text, "fine");
});

Deno.test("GatewayTransport keeps a connection alive across calls and refuses metadata over the provider's limit", async () => {
  await using demo = await startDemoProvider({ maxMetadataBytes: 200 });
  const client = await RawHttpClient.connect(demo.address);
  try {
    const head = `POST ${ECHO} HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json`;
    for (let i = 0; i < 3; i++) {
      await client.request(head, jsonBytes({ text: `call ${i}` }));
      const response = await client.response();
      assert.equal(JSON.parse(text(response.body)).text, `call ${i}`);
      assert.notEqual(response.headers.get("connection"), "close");
    }
    await client.request(`${head}\r\nx-big: ${"v".repeat(300)}`, jsonBytes({ text: "big metadata" }));
    const refused = await client.response();
    assert.equal(refused.status, 429);
    assert.equal(JSON.parse(text(refused.body)).code, "resource_exhausted");
  } finally {
    client.close();
  }
  assert.equal(demo.provider.stats().limitsHit.metadata, 1);
});

Deno.test("GatewayTransport answers CORS preflights with connect-es's headers and marks responses to allowed origins", async () => {
  await using demo = await startDemoProvider({
    httpCors: { allowedOrigins: ["https://app.example"], exposedHeaders: ["x-echo"], maxAgeMs: 3_600_000 },
  });
  const preflight = await fetch(`${demo.base}${ECHO}`, {
    method: "OPTIONS",
    headers: {
      origin: "https://app.example",
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type,x-tenant",
    },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "https://app.example");
  assert.equal(preflight.headers.get("access-control-allow-methods"), "POST, GET");
  const allowed = preflight.headers.get("access-control-allow-headers")!.split(", ");
  for (
    const name of [
      "Content-Type",
      "Connect-Protocol-Version",
      "Connect-Timeout-Ms",
      "Grpc-Timeout",
      "X-Grpc-Web",
      "X-User-Agent",
      "x-tenant",
    ]
  ) {
    assert.ok(allowed.includes(name), `${name} in ${allowed}`);
  }
  assert.equal(preflight.headers.get("access-control-max-age"), "3600");
  assert.match(preflight.headers.get("vary") ?? "", /Origin/);
  await preflight.body?.cancel();

  const call = await fetch(`${demo.base}${ECHO}`, {
    method: "POST",
    headers: { ...json, origin: "https://app.example" },
    body: '{"text":"cors"}',
  });
  assert.equal(call.headers.get("access-control-allow-origin"), "https://app.example");
  assert.equal(
    call.headers.get("access-control-expose-headers"),
    "Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin, x-echo",
  );
  assert.equal((await call.json()).text, "cors");

  const stranger = await fetch(`${demo.base}${ECHO}`, {
    method: "OPTIONS",
    headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
  });
  assert.equal(stranger.status, 403);
  assert.equal(stranger.headers.get("access-control-allow-origin"), null);
  await stranger.body?.cancel();
  const strangerCall = await fetch(`${demo.base}${ECHO}`, {
    method: "POST",
    headers: { ...json, origin: "https://evil.example" },
    body: "{}",
  });
  assert.equal(strangerCall.headers.get("access-control-allow-origin"), null, "the browser will refuse it");
  await strangerCall.body?.cancel();
});

Deno.test("GatewayTransport serves the services' FileDescriptorSet at GET /dwt.rpc.Reflection/FileDescriptorSet", async () => {
  await using demo = await startDemoProvider();
  const response = await fetch(`${demo.base}/dwt.rpc.Reflection/FileDescriptorSet`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/octet-stream");
  const set = descriptor.FileDescriptorSet.decode(new Uint8Array(await response.arrayBuffer())) as unknown as {
    file: { name: string; service: { name: string }[] }[];
  };
  const names = set.file.map((file) => file.name);
  assert.ok(names.includes("test/gateway/demo.proto"), names.join(", "));
  assert.ok(names.includes("user.proto"), names.join(", "));
  const services = set.file.flatMap((file) => file.service.map((service) => service.name));
  assert.ok(services.includes("Demo") && services.includes("UserServiceRpc"));
  assert.ok(!services.includes("ServerReflection"), "the provider's own reflection services are not in it");
  const post = await fetch(`${demo.base}/dwt.rpc.Reflection/FileDescriptorSet`, { method: "POST", body: "" });
  assert.equal(post.status, 405);
  await post.body?.cancel();
});

Deno.test(
  "GatewayTransport is called by curl: JSON unary and a hand-built enveloped server stream",
  needs("run"),
  async () => {
    const version = new Deno.Command("curl", { args: ["--version"], stdout: "null", stderr: "null" });
    if (!(await version.output().then((output) => output.success, () => false))) {
      console.log("skipped: curl is not installed");
      return;
    }
    await using demo = await startDemoProvider();
    const curl = async (args: string[]) => {
      const output = await new Deno.Command("curl", { args: ["-sS", ...args], stdout: "piped", stderr: "piped" })
        .output();
      assert.ok(output.success, new TextDecoder().decode(output.stderr));
      return output.stdout;
    };
    const login = await curl([
      "-H",
      "content-type: application/json",
      "-d",
      JSON.stringify({ name: btoa("curl"), password: btoa("pw") }),
      `${demo.base}/dwt.UserServiceRpc/Login`,
    ]);
    const body = JSON.parse(text(login));
    assert.equal(atob(body.result.errmsg), "hello curl");

    const file = await Deno.makeTempFile();
    try {
      const request = jsonBytes({ n: 3, size: 1 });
      const enveloped = new Uint8Array(5 + request.length);
      new DataView(enveloped.buffer).setUint32(1, request.length);
      enveloped.set(request, 5);
      await Deno.writeFile(file, enveloped);
      const stream = await curl([
        "-H",
        "content-type: application/connect+json",
        "--data-binary",
        `@${file}`,
        `${demo.base}/test.gateway.Demo/Count`,
      ]);
      const messages: { flags: number; json: unknown }[] = [];
      for (let at = 0; at < stream.length;) {
        const length = new DataView(stream.buffer, at + 1, 4).getUint32(0);
        messages.push({ flags: stream[at]!, json: JSON.parse(text(stream.subarray(at + 5, at + 5 + length))) });
        at += 5 + length;
      }
      assert.deepEqual(messages.map((m) => m.flags), [0, 0, 0, 2]);
      assert.deepEqual(messages[2]!.json, { index: 2, blob: "Yg==" });
      assert.deepEqual(messages[3]!.json, { metadata: { "x-count": ["3"] } });
    } finally {
      await Deno.remove(file);
    }
  },
);

Deno.test("rpcserver_http_port, rpcserver_http_ip and rpcserver_http_cors_origins configure the gateway", () => {
  const base = { rpcserver_ip: "127.0.0.1", rpcserver_port: 8800, dwt_src_ip: "127.0.0.1", dwt_src_port: 10606 };
  const on = parseRpcConfig({
    ...base,
    rpcserver_http_port: "8080",
    rpcserver_http_ip: "0.0.0.0",
    rpcserver_http_cors_origins: "https://a.example, https://b.example",
  }, "provider.json");
  assert.equal(on.rpcserverHttpPort, 8080);
  assert.equal(on.rpcserverHttpIp, "0.0.0.0");
  assert.deepEqual(on.rpcserverHttpCorsOrigins, ["https://a.example", "https://b.example"]);
  assert.equal(parseRpcConfig({ ...base, rpcserver_http_port: 0 }, "provider.json").rpcserverHttpPort, undefined);
  assert.equal(parseRpcConfig(base, "provider.json").rpcserverHttpPort, undefined);
  assert.equal(
    parseRpcConfig({ ...base, rpcserver_http_cors_origins: "*" }, "provider.json").rpcserverHttpCorsOrigins,
    "*",
  );
  assert.throws(() => parseRpcConfig({ ...base, rpcserver_http_port: 70000 }, "provider.json"), /rpcserver_http_port/);
});

Deno.test("GatewayTransport calls pass through the provider's interceptors, as calls on its own port do", async () => {
  const requireToken: ServerInterceptor = (next) => (request, context) => {
    if (context.metadata["authorization"] !== "Bearer s3cret") {
      throw new RpcError(RpcCode.UNAUTHENTICATED, "A valid token is required");
    }
    return next(request, context);
  };
  await using demo = await startDemoProvider({ interceptors: [requireToken] });
  const refused = await fetch(`${demo.base}${ECHO}`, { method: "POST", headers: json, body: "{}" });
  assert.equal(refused.status, 401);
  assert.deepEqual(await refused.json(), { code: "unauthenticated", message: "A valid token is required" });
  const allowed = await fetch(`${demo.base}${ECHO}`, {
    method: "POST",
    headers: { ...json, authorization: "Bearer s3cret" },
    body: '{"text":"in"}',
  });
  assert.equal((await allowed.json()).text, "in");
});

Deno.test("GatewayTransport is a front door like the native port: silent and hostile connections closed and counted", async () => {
  await using demo = await startDemoProvider({ handshakeTimeoutMs: 300 });
  const silent = await RawHttpClient.connect(demo.address);
  const smuggler = await RawHttpClient.connect(demo.address);
  try {
    await until(() => demo.provider.stats().connections >= 2, 5000, "the gateway to count its connections");
    assert.ok(demo.provider.stats().silentConnections >= 2);
    await smuggler.send(
      `POST ${ECHO} HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: 4\r\n` +
        "transfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert.equal((await smuggler.response()).status, 400);
    assert.ok(await silent.closedByServer(5000), "a connection that never sends a request is closed");
    // An honest client meanwhile.
    const ok = await fetch(`${demo.base}${ECHO}`, { method: "POST", headers: json, body: '{"text":"honest"}' });
    assert.equal((await ok.json()).text, "honest");
  } finally {
    silent.close();
    smuggler.close();
  }
  const limits = demo.provider.stats().limitsHit;
  assert.equal(limits.http_smuggling, 1);
  assert.ok((limits.handshake_timeout ?? 0) >= 1, JSON.stringify(limits));
});
