import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { type CallContext, RpcCode, RpcError, RpcProvider } from "../../rpc/mod.ts";
import { loadConformanceSchema } from "./conformance_schema.ts";
import { conformanceHandlers, STATUS_DETAILS_KEY } from "./conformance_service.ts";
import { needs } from "../../reactor/testdata/permissions.ts";

const UNARY = "/connectrpc.conformance.v1.ConformanceService/Unary";
const b64 = (text: string) => btoa(text);

Deno.test(
  "ConformanceService answers a unary definition through the gateway and echoes what it received",
  needs("read"),
  async () => {
    const schema = await loadConformanceSchema();
    const provider = new RpcProvider({ loop: new EventLoop(), httpPort: 0, reflection: false });
    provider.registerService(schema.service, conformanceHandlers(schema));
    await provider.start();
    try {
      const request = {
        responseDefinition: {
          responseHeaders: [{ name: "x-custom-header", value: ["foo", "bar"] }],
          responseData: b64("test response"),
          responseTrailers: [{ name: "x-custom-trailer", value: ["bing"] }],
        },
      };
      const response = await fetch(`http://${provider.httpAddress}${UNARY}`, {
        method: "POST",
        headers: { "content-type": "application/json", "connect-timeout-ms": "5000", "x-conformance-test": "Value1" },
        body: JSON.stringify(request),
      });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("x-custom-header"), "foo, bar");
      assert.equal(response.headers.get("trailer-x-custom-trailer"), "bing");
      const { payload } = await response.json();
      assert.equal(atob(payload.data), "test response");
      const info = payload.requestInfo;
      assert.deepEqual(info.requestHeaders.find((h: { name: string }) => h.name === "x-conformance-test").value, [
        "Value1",
      ]);
      const timeoutMs = Number(info.timeoutMs);
      assert.ok(timeoutMs > 4000 && timeoutMs <= 5000, `the deadline left, ${timeoutMs} ms`);
      assert.equal(info.requests.length, 1);
      assert.equal(info.requests[0]["@type"], "type.googleapis.com/connectrpc.conformance.v1.UnaryRequest");
      assert.equal(atob(info.requests[0].responseDefinition.responseData), "test response");
    } finally {
      await provider.stop({ graceMs: 0 });
    }
  },
);

Deno.test(
  "ConformanceService fails as defined, its headers, trailers and details (with the RequestInfo) in the error's metadata",
  needs("read"),
  async () => {
    const schema = await loadConformanceSchema();
    const unaryType = schema.root.lookupType("connectrpc.conformance.v1.UnaryRequest");
    const request = unaryType.decode(
      unaryType.encode(unaryType.fromObject({
        responseDefinition: {
          responseHeaders: [{ name: "x-custom-header", value: ["foo"] }],
          error: { code: 16, message: "unauthenticated" },
          responseTrailers: [{ name: "x-custom-trailer", value: ["bing", "quux"] }],
        },
      })).finish(),
    );
    const context: CallContext = {
      service: "connectrpc.conformance.v1.ConformanceService",
      method: "Unary",
      signal: new AbortController().signal,
      metadata: { "x-conformance-test": "Value1, Value2" },
      responseMetadata: {},
      peer: "127.0.0.1:1",
      timeRemainingMs: () => Infinity,
    };
    const unary = conformanceHandlers(schema).Unary as (request: unknown, context: CallContext) => Promise<unknown>;
    const error = await unary(request, context).then(() => undefined, (thrown) => thrown);
    assert.ok(error instanceof RpcError);
    assert.equal(error.code, RpcCode.UNAUTHENTICATED);
    assert.equal(error.rawMessage, "unauthenticated");
    assert.equal(error.metadata["x-custom-header"], "foo");
    assert.equal(error.metadata["trailer-x-custom-trailer"], "bing, quux");

    const statusType = schema.root.lookupType("google.rpc.Status");
    const status = statusType.toObject(
      statusType.decode(Uint8Array.from(atob(error.metadata[STATUS_DETAILS_KEY]!), (c) => c.charCodeAt(0))),
    ) as { code: number; message: string; details: { type_url: string; value: Uint8Array }[] };
    assert.equal(status.code, RpcCode.UNAUTHENTICATED);
    assert.equal(status.details.length, 1);
    assert.equal(
      status.details[0]!.type_url,
      "type.googleapis.com/connectrpc.conformance.v1.ConformancePayload.RequestInfo",
    );
    const infoType = schema.root.lookupType("connectrpc.conformance.v1.ConformancePayload.RequestInfo");
    const info = infoType.toObject(infoType.decode(status.details[0]!.value)) as {
      requestHeaders: { name: string; value: string[] }[];
      timeoutMs?: unknown;
      requests: unknown[];
    };
    assert.deepEqual(info.requestHeaders, [{ name: "x-conformance-test", value: ["Value1, Value2"] }]);
    assert.equal(info.timeoutMs, undefined, "no deadline, no timeout echoed");
    assert.equal(info.requests.length, 1);
  },
);
