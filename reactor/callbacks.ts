/**
 * Every user-facing callback type of the reactor, in one place as muduo keeps them in `Callbacks.h`.
 *
 * @module
 */

import type { Buffer } from "./buffer.ts";
import type { TcpConnection } from "./tcp_connection.ts";

/** Called when a connection comes up and again when it goes down (check `connection.connected`). */
export type ConnectionCallback = (connection: TcpConnection) => void;

/**
 * Called when bytes arrive. `buffer` holds everything received and not yet retrieved; take what forms whole
 * messages and leave the rest for the next call. `receiveTimeMs` is the loop's monotonic clock at arrival.
 */
export type MessageCallback = (connection: TcpConnection, buffer: Buffer, receiveTimeMs: number) => void;

/** Called when the output buffer has drained completely (everything sent was handed to the kernel). */
export type WriteCompleteCallback = (connection: TcpConnection) => void;

/** Called once each time the bytes waiting to be sent rise past the high-water mark. */
export type HighWaterMarkCallback = (connection: TcpConnection, pendingBytes: number) => void;

/** Called by a connection when it has closed, so its owner (TcpServer, TcpClient) can let go of it. */
export type CloseCallback = (connection: TcpConnection) => void;

/** The default connection callback: logs the transition at TRACE level. */
export { defaultConnectionCallback, defaultMessageCallback } from "./_default_callbacks.ts";
