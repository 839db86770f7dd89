/**
 * Every user-facing callback type of the reactor, in one place as muduo keeps them in `Callbacks.h`.
 *
 * @module
 */

import type { Buffer } from "./buffer.ts";
import { getLogger } from "./logger.ts";
import type { TcpConnection } from "./tcp_connection.ts";

/**
 * Called when a connection comes up and again when it goes down (check `connection.connected`).
 *
 * @example
 * ```ts
 * import type { ConnectionCallback } from "./callbacks.ts";
 *
 * const onConnection: ConnectionCallback = (connection) => {
 *   if (connection.connected) connection.send("welcome\n");
 * };
 * ```
 */
export type ConnectionCallback = (connection: TcpConnection) => void;

/**
 * Called when bytes arrive. `buffer` holds everything received and not yet retrieved; take what forms whole
 * messages and leave the rest for the next call. `receiveTimeMs` is the loop's monotonic clock at arrival.
 *
 * @example
 * ```ts
 * import type { MessageCallback } from "./callbacks.ts";
 *
 * // A line protocol: answer each whole line, keep a partial one for the next call.
 * const onMessage: MessageCallback = (connection, buffer) => {
 *   for (let eol = buffer.findEOL(); eol >= 0; eol = buffer.findEOL()) {
 *     const line = buffer.retrieveAsString(eol + 1);
 *     connection.send(line.toUpperCase());
 *   }
 * };
 * ```
 */
export type MessageCallback = (connection: TcpConnection, buffer: Buffer, receiveTimeMs: number) => void;

/**
 * Called when the output buffer has drained completely (everything sent was handed to the kernel).
 *
 * @example
 * ```ts
 * import type { WriteCompleteCallback } from "./callbacks.ts";
 *
 * // Send the next chunk of a large reply only once the previous one has left.
 * const onWriteComplete: WriteCompleteCallback = (connection) => {
 *   if (connection.connected) connection.send(new Uint8Array(64 * 1024));
 * };
 * ```
 */
export type WriteCompleteCallback = (connection: TcpConnection) => void;

/**
 * Called once each time the bytes waiting to be sent rise past the high-water mark.
 *
 * @example
 * ```ts
 * import type { HighWaterMarkCallback } from "./callbacks.ts";
 *
 * // The peer is not reading: stop reading from it too (applyFlowControl does this for a whole server).
 * const onHighWaterMark: HighWaterMarkCallback = (connection, _pendingBytes) => connection.stopRead();
 * ```
 */
export type HighWaterMarkCallback = (connection: TcpConnection, pendingBytes: number) => void;

/**
 * Called when the peer half-closes (sends FIN) on a connection that asked to hear of it: the connection stays
 * connected for writing, and its owner decides when to `shutdown` (the socket then closes once the output drains)
 * or `forceClose`. Without this callback a connection closes itself on the peer's FIN once its output drains.
 *
 * @example
 * ```ts
 * import type { HalfCloseCallback } from "./callbacks.ts";
 *
 * // The peer sent its last request: answer it (sent elsewhere), then close.
 * const onHalfClose: HalfCloseCallback = (connection) => connection.shutdown();
 * ```
 */
export type HalfCloseCallback = (connection: TcpConnection) => void;

/**
 * Called by a connection when it has closed, so its owner (TcpServer, TcpClient) can let go of it.
 *
 * @example
 * ```ts
 * import type { CloseCallback } from "./callbacks.ts";
 * import type { TcpConnection } from "./tcp_connection.ts";
 *
 * const open = new Set<TcpConnection>();
 * const onClose: CloseCallback = (connection) => open.delete(connection);
 * ```
 */
export type CloseCallback = (connection: TcpConnection) => void;

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
