/**
 * The callbacks a TcpServer or TcpClient uses until the user sets their own (muduo's defaults).
 *
 * @module
 */

import type { Buffer } from "./buffer.ts";
import { getLogger } from "./logger.ts";
import type { TcpConnection } from "./tcp_connection.ts";

/** Logs the connection's transition at TRACE level. */
export function defaultConnectionCallback(connection: TcpConnection): void {
  getLogger().trace(
    `${connection.localAddress} -> ${connection.peerAddress} is ${connection.connected ? "UP" : "DOWN"}`,
  );
}

/** Discards whatever arrived, so an unconfigured server does not buffer without bound. */
export function defaultMessageCallback(_connection: TcpConnection, buffer: Buffer, _receiveTimeMs: number): void {
  buffer.retrieveAll();
}
