/**
 * Echo server for bench/rpc_echo.ts and bench/rpc_threads.ts. `--stack dwt [--threads N]`: an RpcProvider
 * serving bench.Echo; `--stack raw`: plain Deno sockets answering each length-prefixed bench.EchoMessage with the
 * message decoded and encoded again by protobufjs (the DESIGN's raw baseline); `--stack bytes`: plain Deno
 * sockets echoing bytes as they come. Prints `READY <port>`.
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { EventLoop } from "../reactor/mod.ts";
import { defaultBackend } from "../reactor/backend/mod.ts";
import { loadProtoFile, RpcProvider } from "../rpc/mod.ts";
import { frameAll, FrameReader } from "./_length_prefixed.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: { stack: { type: "string", default: "dwt" }, threads: { type: "string", default: "0" } },
});

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

if (values.stack === "bytes") {
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
          await writeAll(conn, buf.subarray(0, n));
        }
      } catch {
        // peer gone
      }
      conn.close();
    })();
  }
} else if (values.stack === "raw") {
  const root = await loadProtoFile(defaultBackend(), new URL("./echo.proto", import.meta.url).pathname);
  const EchoMessage = root.lookupType("bench.EchoMessage");
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  console.log(`READY ${(listener.addr as Deno.NetAddr).port}`);
  for await (const conn of listener) {
    conn.setNoDelay(true);
    // Every whole frame of a read is decoded and answered; the answers to one read go back in one write.
    (async () => {
      const reader = new FrameReader();
      try {
        for (;;) {
          const n = await conn.read(reader.space());
          if (n === null) break;
          const replies: Uint8Array[] = [];
          reader.added(n, (body) => replies.push(EchoMessage.encode(EchoMessage.decode(body)).finish()));
          if (replies.length > 0) await writeAll(conn, frameAll(replies));
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
