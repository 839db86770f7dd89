/**
 * The gateway's side of bench/gateway_bench.ts: an RpcProvider with the HTTP gateway on (`httpPort: 0`) serving
 * bench.Echo/Echo (bench/rpc_echo_service.ts) and bench.Stream/Flood (the same pre-built Chunk again and again,
 * bounded in count and time, as bench/stream_server.ts and connect-node's server in gateway_connect_server.mjs
 * do). Prints `READY <gateway port>`.
 *
 *   deno run -A bench/gateway_server.ts
 */

import { EventLoop } from "../reactor/mod.ts";
import { defaultBackend } from "../reactor/backend/mod.ts";
import { loadProtoFile, RpcProvider, serviceDefinition } from "../rpc/mod.ts";
import { registerServices } from "./rpc_echo_service.ts";

interface FloodRequest {
  size: number;
  count: number;
  maxMs: number;
}

const root = await loadProtoFile(defaultBackend(), new URL("./stream.proto", import.meta.url).pathname);
const provider = new RpcProvider({ loop: EventLoop.current(), httpPort: 0 });
await registerServices(provider);
provider.registerService(serviceDefinition(root, "bench.Stream"), {
  Flood: async function* (request: FloodRequest) {
    const chunk = { payload: new Uint8Array(request.size).fill(0x61) };
    const until = performance.now() + request.maxMs;
    for (let n = 0; n < request.count; n++) {
      if ((n & 255) === 0 && performance.now() > until) return;
      yield chunk;
    }
  },
  Chat: async function* (requests: AsyncIterable<unknown>) {
    yield* requests;
  },
});
await provider.start();
console.log(`READY ${provider.httpAddress!.port}`);
await EventLoop.current().loop();
