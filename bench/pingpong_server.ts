/**
 * Ping-pong server for bench/pingpong.ts: echoes every byte. `--stack reactor` uses TcpServer, `--stack raw`
 * plain Deno.listen. Prints `READY <port>` once listening; exits on SIGTERM.
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { EventLoop, InetAddress, TcpServer } from "../reactor/mod.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: { stack: { type: "string", default: "reactor" }, threads: { type: "string", default: "0" } },
});

if (values.stack === "raw") {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  console.log(`READY ${(listener.addr as Deno.NetAddr).port}`);
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
  for await (const conn of listener) {
    conn.setNoDelay(true);
    (async () => {
      const buf = new Uint8Array(64 * 1024);
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
      try {
        conn.close();
      } catch {
        // already closed
      }
    })();
  }
} else {
  const loop = EventLoop.current();
  const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "pingpong");
  server.setMessageCallback((connection, buffer) => connection.send(buffer));
  const threads = Number(values.threads);
  if (threads > 0) {
    server.setThreadNum(threads);
    server.setThreadInit(new URL("./pingpong_thread_init.ts", import.meta.url).href, "init");
  }
  await server.start();
  console.log(`READY ${server.address.port}`);
  Deno.addSignalListener("SIGTERM", () => {
    server.stop().then(() => Deno.exit(0));
  });
  await loop.loop();
}
