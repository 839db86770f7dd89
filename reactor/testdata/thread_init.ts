/** Thread init fixture: each Worker answers a new connection with its name, then echoes. */
import type { EventLoop } from "../event_loop.ts";
import type { TcpServer } from "../tcp_server.ts";

export function init(server: TcpServer, _loop: EventLoop, data: { greeting: string }): void {
  server.setConnectionCallback((connection) => {
    if (connection.connected) connection.send(`${data.greeting} from ${server.name}\n`);
  });
  server.setMessageCallback((connection, buffer) => connection.send(buffer));
}

export const notAFunction = 42;
