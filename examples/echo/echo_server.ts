/**
 * The echo server of muduo's examples: a class owns its TcpServer and binds onConnection/onMessage.
 * Run alone with `deno task echo-server [--port N] [--threads N]`.
 */

import { parseArgsOrExit } from "../../reactor/backend/parse_args.ts";
import { type Buffer, EventLoop, getLogger, InetAddress, type TcpConnection, TcpServer } from "../../reactor/mod.ts";

/** Echoes every byte back to its sender. */
export class EchoServer {
  readonly #server: TcpServer;

  constructor(loop: EventLoop, listenAddress: InetAddress) {
    this.#server = new TcpServer(loop, listenAddress, "EchoServer");
    initEchoServer(this.#server);
  }

  /** The bound address (the real port when 0 was asked for). */
  get address(): InetAddress {
    return this.#server.address;
  }

  /** Run the server on `threads` Workers (0: on the caller's loop). */
  setThreadNum(threads: number): void {
    this.#server.setThreadNum(threads);
    this.#server.setThreadInit(import.meta.url, "initEchoServer");
  }

  start(): Promise<void> {
    return this.#server.start();
  }

  stop(): Promise<void> {
    return this.#server.stop();
  }
}

/** Sets the echo callbacks on a server; also the thread-init function each Worker runs. */
export function initEchoServer(server: TcpServer): void {
  server.setConnectionCallback(onConnection);
  server.setMessageCallback(onMessage);
}

function onConnection(connection: TcpConnection): void {
  getLogger().info(
    `EchoServer - ${connection.peerAddress} -> ${connection.localAddress} is ${connection.connected ? "UP" : "DOWN"}`,
  );
}

function onMessage(connection: TcpConnection, buffer: Buffer, _receiveTimeMs: number): void {
  connection.send(buffer);
}

if (import.meta.main) {
  const { values } = parseArgsOrExit({
    args: Deno.args,
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "2007" },
      threads: { type: "string", default: "0" },
    },
  });
  const loop = EventLoop.current();
  const server = new EchoServer(loop, new InetAddress(values.host, Number(values.port)));
  server.setThreadNum(Number(values.threads));
  await server.start();
  getLogger().info(`EchoServer listening on ${server.address}`);
  Deno.addSignalListener("SIGINT", () => {
    server.stop().then(() => loop.quit());
  });
  await loop.loop();
}
