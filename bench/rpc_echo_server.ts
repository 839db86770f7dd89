/**
 * Echo server for bench/rpc_echo.ts and bench/rpc_threads.ts. `--stack dwt [--threads N]`: an RpcProvider
 * serving bench.Echo; `--stack raw`: plain
 * Deno sockets echoing length-prefixed frames. Prints `READY <port>`.
 */

import { parseArgs } from "node:util";
import { EventLoop } from "../reactor/mod.ts";
import { RpcProvider } from "../rpc/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { stack: { type: "string", default: "dwt" }, threads: { type: "string", default: "0" } },
});

if (values.stack === "raw") {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  console.log(`READY ${(listener.addr as Deno.NetAddr).port}`);
  for await (const conn of listener) {
    conn.setNoDelay(true);
    // Echo bytes as they come: frames stay frames, and a batch of pipelined frames goes back in one write.
    (async () => {
      const buf = new Uint8Array(256 * 1024);
      try {
        for (;;) {
          const n = await conn.read(buf);
          if (n === null) break;
          let off = 0;
          while (off < n) off += await conn.write(buf.subarray(off, n));
        }
      } catch {
        // peer gone
      }
      conn.close();
    })();
  }
} else {
  // --threads N: N Workers, each with its own loop, on one port (SO_REUSEPORT); 0: the main loop serves.
  const provider = new RpcProvider({ loop: EventLoop.current(), threads: Number(values.threads) });
  await provider.registerModule(new URL("./rpc_echo_service.ts", import.meta.url).href);
  await provider.start();
  console.log(`READY ${provider.address.port}`);
  await EventLoop.current().loop();
}
