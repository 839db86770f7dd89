/**
 * Flow control for servers, muduo's high-water-mark idiom: a connection whose peer does not read its replies
 * stops being read once its unsent output passes a mark, and is read again when the output drains. A client that
 * never reads then costs the server at most about the mark (plus the kernel's buffers), not memory without bound.
 * A connection whose output passes a hard limit anyway (say, events it did not ask for) is closed.
 *
 * @module
 */

import { getLogger } from "./logger.ts";
import type { TcpConnection } from "./tcp_connection.ts";
import type { TcpServer } from "./tcp_server.ts";

/**
 * Options of {@linkcode applyFlowControl}.
 *
 * @example
 * ```ts
 * import type { FlowControlOptions } from "./flow_control.ts";
 *
 * const options: FlowControlOptions = { pauseAtBytes: 1024 * 1024, closeAtBytes: 16 * 1024 * 1024 };
 * ```
 */
export interface FlowControlOptions {
  /**
   * Unsent bytes at which a connection stops being read.
   * @default {8 MiB}
   */
  pauseAtBytes?: number;
  /**
   * Unsent bytes at which a connection is closed (by the servers that check it after sending what the peer did
   * not ask for).
   * @default {64 MiB}
   */
  closeAtBytes?: number;
  /** Also told when a connection's output has drained (say, to write what waited for room). */
  onWriteComplete?: (connection: TcpConnection) => void;
}

/** Unsent bytes at which {@linkcode applyFlowControl} stops reading a connection by default. */
export const DEFAULT_PAUSE_AT_BYTES = 8 * 1024 * 1024;
/** Unsent bytes at which a connection is closed by default (see {@linkcode closeIfBacklogged}). */
export const DEFAULT_CLOSE_AT_BYTES = 64 * 1024 * 1024;

/**
 * Pause reading connections of `server` whose output backs up; resume once it drains. It sets the server's
 * high-water-mark and write-complete callbacks.
 *
 * @example
 * ```ts
 * import { EventLoop } from "./event_loop.ts";
 * import { applyFlowControl } from "./flow_control.ts";
 * import { InetAddress } from "./inet_address.ts";
 * import { TcpServer } from "./tcp_server.ts";
 *
 * const server = new TcpServer(new EventLoop(), new InetAddress("127.0.0.1", 0), "echo");
 * server.setMessageCallback((connection, buffer) => connection.send(buffer)); // a peer that never reads...
 * applyFlowControl(server, { pauseAtBytes: 1024 * 1024 }); // ...is not read from past 1 MiB unsent
 * ```
 */
export function applyFlowControl(server: TcpServer, options: FlowControlOptions = {}): void {
  server.setHighWaterMarkCallback((connection) => {
    if (connection.connected) connection.stopRead();
  }, options.pauseAtBytes ?? DEFAULT_PAUSE_AT_BYTES);
  const onWriteComplete = options.onWriteComplete;
  server.setWriteCompleteCallback((connection) => {
    if (!connection.reading && connection.connected) connection.startRead();
    onWriteComplete?.(connection);
  });
}

/**
 * Close `connection` when its unsent output is past `closeAtBytes`; call after sending what the peer did not ask
 * for. Returns whether it closed.
 */
export function closeIfBacklogged(connection: TcpConnection, closeAtBytes = DEFAULT_CLOSE_AT_BYTES): boolean {
  if (connection.pendingBytes <= closeAtBytes) return false;
  getLogger().warn(
    `Closing ${connection.name}: ${connection.pendingBytes} bytes unsent (limit ${closeAtBytes}); the peer is not reading`,
  );
  connection.forceClose();
  return true;
}
