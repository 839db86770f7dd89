/** Thread init for the e2e suite's multi-threaded server: echo. */
import type { TcpServer } from "../reactor/tcp_server.ts";

export function init(server: TcpServer): void {
  server.setMessageCallback((connection, buffer) => connection.send(buffer));
}
