/**
 * The seed's callee: the UserService (user_service.ts) registered with a provider and published to the
 * registry. `deno task callee -i examples/rpc/provider.json`; `rpcserver_threads` in the config serves it on
 * that many Workers. Prints `READY <address>` once published; stops gracefully on SIGINT/SIGTERM.
 */

import { exitOnFatalError, RpcApplication } from "../../rpc/mod.ts";
import { defaultBackend } from "../../reactor/backend/mod.ts";

if (defaultBackend().process.isMain(import.meta)) {
  // Through the backend rather than Deno.*, so the example runs on Bun and Node too.
  const { process } = defaultBackend();
  const app = await RpcApplication.init(process.args(), { name: "callee" }).catch(exitOnFatalError);
  const provider = await app.provider().catch(exitOnFatalError);
  await provider.registerModule(new URL("./user_service.ts", import.meta.url).href);
  await provider.start().catch(exitOnFatalError);
  console.log(`READY ${provider.advertisedAddress}`);
  const stop = async () => {
    await provider.stop();
    await app.close();
    process.exit(0);
  };
  process.onSignal("SIGINT", stop);
  process.onSignal("SIGTERM", stop);
}
