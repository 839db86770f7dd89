/**
 * The body of one TcpServer Worker: its own EventLoop and TcpServer listening with SO_REUSEPORT, set up by the
 * user's thread-init function. Driven by ServerThreadPool's messages.
 *
 * @module
 */

import { defaultBackend } from "./backend/default.ts";
import { EventLoop } from "./event_loop.ts";
import { InetAddress } from "./inet_address.ts";
import type { WorkerStartMessage } from "./_server_thread_pool.ts";
import { TcpServer } from "./tcp_server.ts";

const port = defaultBackend().workers.parentPort();
if (port === undefined) throw new Error("_tcp_server_worker.ts must run in a Worker");

let loop: EventLoop | undefined;
let server: TcpServer | undefined;

port.onMessage(async (raw) => {
  const message = raw as { type: string };
  if (message.type === "start") {
    const start = message as WorkerStartMessage;
    try {
      loop = new EventLoop({ name: `${start.name}#${start.index}` });
      server = new TcpServer(loop, new InetAddress(start.hostname, start.port), `${start.name}#${start.index}`, {
        reusePort: true,
      });
      const module = await import(start.init.moduleUrl);
      const init = module[start.init.exportName];
      if (typeof init !== "function") {
        throw new TypeError(`'${start.init.exportName}' of ${start.init.moduleUrl} is not a function`);
      }
      await init(server, loop, start.init.data);
      await server.start();
      port.postMessage({ type: "listening", port: server.address.port });
    } catch (error) {
      port.postMessage({ type: "error", message: error instanceof Error ? error.message : String(error) });
    }
  } else if (message.type === "stats") {
    port.postMessage({ type: "stats", connections: server?.connectionCount ?? 0 });
  } else if (message.type === "stop") {
    await server?.stop();
    loop?.quit();
    port.postMessage({ type: "stopped" });
    port.close();
  }
});
