/** Thread init for the ping-pong server's Workers: echo. */
import type { TcpServer } from "../reactor/mod.ts";

export function init(server: TcpServer): void {
  server.setMessageCallback((connection, buffer) => connection.send(buffer));
}
