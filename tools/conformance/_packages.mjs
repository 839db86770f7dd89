// The Node side's npm packages (tools/conformance/npm/package.json, installed by `deno task conformance`), loaded by
// path as bench/*.mjs load theirs: `deno check .` reads these files too, and a bare npm specifier is one it
// cannot resolve. The path is built at run time (a literal one, even a template, Deno would follow into the
// packages' own files). The CommonJS builds, so each package is the one instance the others require.
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const packages = fileURLToPath(new URL("./npm/node_modules/", import.meta.url));
const cjs = (path) => require(packages + path);

/** @bufbuild/protobuf */
export const protobuf = cjs("@bufbuild/protobuf");
/** @bufbuild/protobuf/wkt */
export const wkt = cjs("@bufbuild/protobuf/dist/cjs/wkt/index.js");
/** @connectrpc/connect */
export const connect = cjs("@connectrpc/connect");
/** @connectrpc/connect/protocol */
export const connectProtocol = cjs(
  "@connectrpc/connect/dist/cjs/protocol/index.js",
);
/** @connectrpc/connect/protocol-connect */
export const protocolConnect = cjs(
  "@connectrpc/connect/dist/cjs/protocol-connect/index.js",
);
/** @connectrpc/connect/protocol-grpc-web */
export const protocolGrpcWeb = cjs(
  "@connectrpc/connect/dist/cjs/protocol-grpc-web/index.js",
);
/** @connectrpc/connect-node */
export const connectNode = cjs("@connectrpc/connect-node");
/** yaml */
export const yaml = cjs("yaml");
