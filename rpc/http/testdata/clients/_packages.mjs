// The npm packages of the gateway's client tests (npm/package.json, installed by those tests), loaded by path as
// tools/conformance/_packages.mjs loads its own: `deno check .` reads .mjs files too and cannot resolve a bare npm
// specifier, so the path is built at run time. The CommonJS builds, so each package is the one instance the
// others require.
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
/** @connectrpc/connect-node */
export const connectNode = cjs("@connectrpc/connect-node");
