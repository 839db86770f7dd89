/**
 * Echo server for bench/rpc_echo.ts and bench/rpc_threads.ts, on Deno, Node (tsx) or Bun. `--stack dwt
 * [--threads N]`: an RpcProvider serving bench.Echo; `--stack raw`: the runtime's plain sockets answering each
 * length-prefixed bench.EchoMessage with the message decoded and encoded again by protobufjs (the DESIGN's raw
 * baseline); `--stack bytes`: the runtime's plain sockets echoing bytes as they come. Prints `READY <port>`.
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { EventLoop } from "../reactor/mod.ts";
import { defaultBackend } from "../reactor/backend/mod.ts";
import { loadProtoFile, RpcProvider } from "../rpc/mod.ts";
import { listenEcho } from "./_echo_sockets.ts";

const backend = defaultBackend();
const { values } = parseArgsOrExit({
  args: backend.process.args(),
  options: { stack: { type: "string", default: "dwt" }, threads: { type: "string", default: "0" } },
});
// SIGTERM exits normally, so a run under --cpu-prof writes its profile.
backend.process.onSignal("SIGTERM", () => backend.process.exit(0));

if (values.stack === "bytes") {
  console.log(`READY ${await listenEcho()}`);
} else if (values.stack === "raw") {
  const root = await loadProtoFile(backend, new URL("./echo.proto", import.meta.url).pathname);
  const EchoMessage = root.lookupType("bench.EchoMessage");
  console.log(`READY ${await listenEcho((body) => EchoMessage.encode(EchoMessage.decode(body)).finish())}`);
} else {
  // --threads N: N Workers, each with its own loop, on one port (SO_REUSEPORT); 0: the main loop serves.
  const provider = new RpcProvider({ loop: EventLoop.current(), threads: Number(values.threads) });
  await provider.registerModule(new URL("./rpc_echo_service.ts", import.meta.url).href);
  await provider.start();
  console.log(`READY ${provider.address.port}`);
  await EventLoop.current().loop();
}
