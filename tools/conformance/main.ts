/**
 * `deno task conformance [--suites DIR] [--run TEXT] [--concurrency N]`: the Connect conformance suite's server
 * cases against our HTTP gateway. This side (Deno) is the server under test: a dwt-rpc provider serving our
 * ConformanceService (conformance_service.ts) with its gateway on a free port, the receive limit the suite
 * assumes (200 KiB). The client side runs on Node (run_cases.mjs, with the real connect-node client): it reads
 * the suites' YAML, calls the gateway for every case and combination that applies, prints each case by the
 * suite's naming with pass or fail, and ends with `N passed, M failed`; its exit status is this program's.
 *
 * The YAML files are the suite's data, read where they lie (default `../shared/conformance/` beside the project
 * root); none are copied here.
 *
 * @module
 */

import { parseArgsOrExit } from "../../reactor/backend/parse_args.ts";
import { EventLoop } from "../../reactor/event_loop.ts";
import { getLogger, LogLevel } from "../../reactor/logger.ts";
import { RpcProvider } from "../../rpc/mod.ts";
import { loadConformanceSchema } from "./conformance_schema.ts";
import { conformanceHandlers } from "./conformance_service.ts";

/** The server's receive limit the suite's message-size cases are written against (its `serverReceiveLimit`). */
export const SERVER_RECEIVE_LIMIT_BYTES = 200 * 1024;

const here = new URL(".", import.meta.url);
const { values } = parseArgsOrExit({
  args: Deno.args,
  options: {
    suites: {
      type: "string",
      default: new URL("../../../shared/conformance/", import.meta.url).pathname,
    },
    run: { type: "string" },
    concurrency: { type: "string", default: "8" },
  },
});

// The suite's data is not the project's (it is never committed): where it is absent there is nothing to run, said
// so plainly, rather than a failure of the gateway.
try {
  await Deno.stat(values.suites);
} catch {
  console.log(`The conformance suite's data is not at ${values.suites}: nothing to run (give --suites DIR)`);
  console.log("0 passed, 0 failed");
  Deno.exit(0);
}

const nodeModules = new URL(
  "npm/node_modules/@connectrpc/connect-node/package.json",
  here,
);
try {
  await Deno.stat(nodeModules);
} catch {
  console.error(
    "The Node side's packages are missing: run `npm ci --prefix tools/conformance/npm` (deno task conformance does)",
  );
  Deno.exit(2);
}

getLogger().level = LogLevel.ERROR; // handlers' errors are the point here, not news
const schema = await loadConformanceSchema();
const provider = new RpcProvider({
  loop: new EventLoop(),
  httpPort: 0,
  maxFrameBytes: SERVER_RECEIVE_LIMIT_BYTES,
  // A client stream's message must fit its stream's window: let every message the limit allows fit.
  streamWindowBytes: 2 * SERVER_RECEIVE_LIMIT_BYTES,
  // Room for every concurrent case's request body at once (the default, 2 × maxFrameBytes, is 400 KiB).
  maxBufferedFrameBytes: 64 * 1024 * 1024,
  reflection: false,
});
provider.registerService(schema.service, conformanceHandlers(schema));
await provider.start();

const descriptors = await Deno.makeTempFile({
  prefix: "conformance-",
  suffix: ".binpb",
});
let status = 1;
try {
  await Deno.writeFile(descriptors, schema.descriptorSet);
  const args = [
    new URL("run_cases.mjs", here).pathname,
    "--base-url",
    `http://${provider.httpAddress}`,
    "--descriptors",
    descriptors,
    "--suites",
    values.suites,
    "--receive-limit",
    String(SERVER_RECEIVE_LIMIT_BYTES),
    "--concurrency",
    values.concurrency,
  ];
  if (values.run !== undefined) args.push("--run", values.run);
  const child = new Deno.Command("node", {
    args,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  status = (await child.status).code;
} finally {
  await Deno.remove(descriptors);
  await provider.stop({ graceMs: 0 });
}
Deno.exit(status);
