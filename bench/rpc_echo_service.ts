/**
 * bench.Echo as a service module (for providers with threads: each Worker loads it). With DWT_BENCH_WORK_US
 * set, each call first spins that many microseconds of CPU, standing in for a handler that does real work.
 */

import { defaultBackend } from "../reactor/backend/mod.ts";
import { loadProtoFile, type RpcProvider, serviceDefinition } from "../rpc/mod.ts";

export async function registerServices(provider: RpcProvider): Promise<void> {
  const backend = defaultBackend();
  const workMs = Number(backend.process.env("DWT_BENCH_WORK_US") ?? "0") / 1000;
  const root = await loadProtoFile(backend, new URL("./echo.proto", import.meta.url).pathname);
  provider.registerService(serviceDefinition(root, "bench.Echo"), {
    Echo: (request: unknown) => {
      if (workMs > 0) {
        const until = performance.now() + workMs;
        while (performance.now() < until) {
          // busy: the CPU a real handler would use
        }
      }
      return request;
    },
  });
}
