/**
 * The seed's callee2: InfoServiceRpc (GetInfo) as a plain object of handlers.
 * `deno task callee2 -i examples/rpc/provider2.json`. Prints `READY <address>` once published.
 */

import { exitOnFatalError, RpcApplication } from "../../rpc/mod.ts";
import { defaultBackend } from "../../reactor/backend/mod.ts";
import { type InfoRequest, type InfoResponse, InfoServiceRpc } from "./info_pb.ts";

/** GetInfo(uid, type): five entries "uid__t", "uid__tt", ... as the seed returns. */
export const infoService = {
  GetInfo(request: InfoRequest): Partial<InfoResponse> {
    const info = Array.from(
      { length: 5 },
      (_, i) => new TextEncoder().encode(`${request.uid}__${String(request.type).repeat(i + 1)}`),
    );
    return { success: true, size: info.length, info };
  },
};

if (defaultBackend().process.isMain(import.meta)) {
  // Through the backend rather than Deno.*, so the example runs on Bun and Node too.
  const { process } = defaultBackend();
  const app = await RpcApplication.init(process.args(), { name: "callee2" }).catch(exitOnFatalError);
  const provider = await app.provider().catch(exitOnFatalError);
  provider.registerService(InfoServiceRpc, infoService);
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
