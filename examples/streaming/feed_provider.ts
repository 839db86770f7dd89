/**
 * The streaming example's provider: FeedService (feed_service.ts) registered and published to the registry.
 * `deno task feed-provider -i examples/streaming/provider.json`. Prints `READY <address>` once published; stops
 * gracefully on SIGINT/SIGTERM (open streams get the drain's grace period).
 */

import { exitOnFatalError, RpcApplication } from "../../rpc/mod.ts";
import { defaultBackend } from "../../reactor/backend/mod.ts";

if (defaultBackend().process.isMain(import.meta)) {
  const { process } = defaultBackend();
  // The config's rpcserver_stream_window_bytes and rpcserver_max_streams_per_connection become provider options.
  const app = await RpcApplication.init(process.args(), { name: "feed-provider" }).catch(exitOnFatalError);
  const provider = await app.provider().catch(exitOnFatalError);
  await provider.registerModule(new URL("./feed_service.ts", import.meta.url).href);
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
