/**
 * The reactor's callbacks in one place, as muduo gathers them in `Callbacks.h`: the callback types (declared
 * beside {@linkcode TcpConnection}, which calls them, and re-exported here) and the defaults a TcpServer or TcpClient
 * uses until one is set. The types live with the connection so that it needs nothing from this file.
 *
 * @module
 */

import type { Buffer } from "./buffer.ts";
import { getLogger } from "./logger.ts";
import type { TcpConnection } from "./tcp_connection.ts";

export type {
  CloseCallback,
  ConnectionCallback,
  HalfCloseCallback,
  HighWaterMarkCallback,
  MessageCallback,
  WriteCompleteCallback,
} from "./tcp_connection.ts";

/**
 * The connection callback a TcpServer or TcpClient uses until one is set (muduo's default): logs the transition
 * at TRACE level.
 *
 * @example
 * ```ts
 * import { defaultConnectionCallback } from "./callbacks.ts";
 * import { EventLoop } from "./event_loop.ts";
 * import { InetAddress } from "./inet_address.ts";
 * import { TcpServer } from "./tcp_server.ts";
 *
 * const server = new TcpServer(new EventLoop(), new InetAddress("127.0.0.1", 0), "quiet");
 * server.setConnectionCallback(defaultConnectionCallback); // what a server does when none is set
 * ```
 */
export function defaultConnectionCallback(connection: TcpConnection): void {
  getLogger().trace(
    `${connection.localAddress} -> ${connection.peerAddress} is ${connection.connected ? "UP" : "DOWN"}`,
  );
}

/**
 * The message callback a TcpServer or TcpClient uses until one is set (muduo's default): discards whatever
 * arrived, so an unconfigured server does not buffer without bound.
 *
 * @example
 * ```ts
 * import { Buffer } from "./buffer.ts";
 * import { defaultMessageCallback } from "./callbacks.ts";
 * import type { TcpConnection } from "./tcp_connection.ts";
 * import assert from "node:assert/strict";
 *
 * const buffer = new Buffer();
 * buffer.append("ignored");
 * defaultMessageCallback({} as TcpConnection, buffer, 0);
 * assert.equal(buffer.readableBytes, 0);
 * ```
 */
export function defaultMessageCallback(_connection: TcpConnection, buffer: Buffer, _receiveTimeMs: number): void {
  buffer.retrieveAll();
}
