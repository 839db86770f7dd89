// connect-node's own server for bench/gateway_bench.ts: `connectNodeAdapter` on `node:http` (HTTP/1.1), serving
// bench.Echo/Echo (unary, echoes the request) and bench.Stream/Flood (server stream, the same pre-built Chunk
// again and again, bounded in count and time) from the schemas of bench/echo.proto and bench/stream.proto, as the
// gateway's provider (bench/gateway_server.ts) does. Prints `READY <port>`.
//
//   node bench/gateway_connect_server.mjs
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

// Loaded by path, as tools/conformance/_packages.mjs does: a bare npm specifier is one `deno check .` cannot resolve.
const require = createRequire(import.meta.url);
const packages = fileURLToPath(new URL("./connect/node_modules/", import.meta.url));
const { create, createFileRegistry } = require(packages + "@bufbuild/protobuf");
const { FileDescriptorProtoSchema } = require(packages + "@bufbuild/protobuf/dist/cjs/wkt/index.js");
const { connectNodeAdapter } = require(packages + "@connectrpc/connect-node");

// The two .proto files' messages and services, written out as their descriptor (no code generator needed).
const TYPE_UINT32 = 13;
const TYPE_BYTES = 12;
const OPTIONAL = 1;
const field = (name, number, type) => ({ name, number, type, label: OPTIONAL, jsonName: name });
const file = create(FileDescriptorProtoSchema, {
  name: "bench/gateway_bench.proto",
  package: "bench",
  syntax: "proto3",
  messageType: [
    { name: "EchoMessage", field: [field("payload", 1, TYPE_BYTES)] },
    {
      name: "FloodRequest",
      field: [
        field("size", 1, TYPE_UINT32),
        field("count", 2, TYPE_UINT32),
        { ...field("max_ms", 3, TYPE_UINT32), jsonName: "maxMs" },
      ],
    },
    { name: "Chunk", field: [field("payload", 1, TYPE_BYTES)] },
  ],
  service: [
    { name: "Echo", method: [{ name: "Echo", inputType: ".bench.EchoMessage", outputType: ".bench.EchoMessage" }] },
    {
      name: "Stream",
      method: [{ name: "Flood", inputType: ".bench.FloodRequest", outputType: ".bench.Chunk", serverStreaming: true }],
    },
  ],
});
const registry = createFileRegistry(file, () => undefined);
const echoService = registry.getService("bench.Echo");
const streamService = registry.getService("bench.Stream");

const handler = connectNodeAdapter({
  routes(router) {
    router.service(echoService, { echo: (request) => request });
    router.service(streamService, {
      // Bounded in count and time (checked every 256 Chunks), as the provider's Flood is.
      async *flood(request) {
        const chunk = { payload: new Uint8Array(request.size).fill(0x61) };
        const until = performance.now() + request.maxMs;
        for (let n = 0; n < request.count; n++) {
          if ((n & 255) === 0 && performance.now() > until) return;
          yield chunk;
        }
      },
    });
  },
});

const server = createServer(handler);
server.listen(0, "127.0.0.1", () => console.log(`READY ${server.address().port}`));
