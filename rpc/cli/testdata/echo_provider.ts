/**
 * `deno task call`'s test provider: test.cli.Echo (echo.proto, which imports types.proto) loaded from its .proto
 * at start, so the schema reflection serves is that of the files. `deno run -A echo_provider.ts -i provider.json`;
 * prints `READY <address>` once published, `Sleep cancelled` when a Sleep's caller goes away.
 */

import { type CallContext, exitOnFatalError, RpcApplication, RpcCode, RpcError } from "../../mod.ts";
import { loadProtoFile, serviceDefinition } from "../../service_definition.ts";
import { defaultBackend } from "../../../reactor/backend/mod.ts";

const backend = defaultBackend();
const { process } = backend;
const app = await RpcApplication.init(process.args(), { name: "echo-provider" }).catch(exitOnFatalError);
const provider = await app.provider().catch(exitOnFatalError);
const root = await loadProtoFile(backend, new URL("./echo.proto", import.meta.url).pathname);
provider.registerService(serviceDefinition(root, "test.cli.Echo"), {
  Echo: (request: unknown, context: CallContext) => ({ sample: request, metadata: { ...context.metadata } }),
  Sleep: (request: { ms: number }, context: CallContext) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => resolve({ sleptMs: request.ms }), request.ms);
      context.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        console.log("Sleep cancelled");
        reject(context.signal.reason);
      }, { once: true });
    }),
  Fail: (request: { code: number; message: string }) => {
    throw new RpcError((request.code || RpcCode.UNKNOWN) as RpcCode, request.message);
  },
});
await provider.start().catch(exitOnFatalError);
console.log(`READY ${provider.advertisedAddress}`);
const stop = async () => {
  await provider.stop();
  await app.close();
  process.exit(0);
};
process.onSignal("SIGINT", stop);
process.onSignal("SIGTERM", stop);
