/**
 * Length-prefixed framing on a TcpConnection (muduo's LengthHeaderCodec, with a size limit): the framing both the
 * registry and the RPC protocol use.
 *
 * Byte layout of one frame, integers big-endian:
 *
 * ```text
 * +----------------------+-------------------------------+
 * | length: uint32 (4 B) | body: `length` bytes           |
 * +----------------------+-------------------------------+
 * ```
 *
 * `length` counts the body only. A length above the limit is rejected as soon as the 4 header bytes arrive,
 * before any allocation, and the connection is closed.
 *
 * Partial frames (a header, or a header and part of a body, waiting for the rest) are what a slow or hostile peer
 * makes a server hold. Two opt-in limits bound them: `frameTimeoutMs`, a deadline for each partial frame, and
 * `maxBufferedBytes`, a cap on the partial-frame bytes of all the codec's connections together, checked at the
 * size each partial frame will have once whole. Both need the codec's {@linkcode LengthHeaderCodec.onConnection}
 * to be called on connection changes, so a closed connection's timer and bytes are released at once.
 *
 * @module
 */

import type { Buffer } from "./buffer.ts";
import { getLogger } from "./logger.ts";
import type { TcpConnection } from "./tcp_connection.ts";
import type { TimerId } from "./timer_queue.ts";

/** The size of the length header in bytes. */
export const FRAME_HEADER_BYTES = 4;

/** The default largest frame body: 64 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

/**
 * Receives one whole frame body. `body` is a view into the connection's input buffer, valid only during the call:
 * decode it (or copy it) before returning.
 *
 * @example
 * ```ts
 * import type { FrameCallback } from "./length_header_codec.ts";
 *
 * const onFrame: FrameCallback = (connection, body, receiveTimeMs) =>
 *   console.log(`${connection.name}: a ${body.length}-byte frame at ${receiveTimeMs} ms`);
 * ```
 */
export type FrameCallback = (connection: TcpConnection, body: Uint8Array, receiveTimeMs: number) => void;

/**
 * An idle input buffer above this capacity is given back (see {@linkcode Buffer.shrinkIfEmpty}): a connection
 * keeps at most this much after a large frame. It is above the (at most) 64 KiB TcpConnection reads into, so ordinary
 * traffic never reallocates.
 */
export const SHRINK_INPUT_ABOVE_BYTES = 256 * 1024;

/** The `frameTimeoutMs` recommended for servers: a peer has 30 s to finish a frame it started. */
export const RECOMMENDED_FRAME_TIMEOUT_MS = 30_000;

/**
 * Counters of {@linkcode LengthHeaderCodec}, for `/metrics`.
 *
 * @example
 * ```ts
 * import type { LengthHeaderCodec } from "./length_header_codec.ts";
 *
 * const partialFrames = (codec: LengthHeaderCodec) => `${codec.stats.bufferedBytes} bytes in partial frames`;
 * ```
 */
export interface LengthHeaderCodecStats {
  /** Connections closed because a partial frame outlived `frameTimeoutMs`. */
  readonly framesTimedOut: number;
  /** Connections closed because their partial frame would have pushed the total past `maxBufferedBytes`. */
  readonly closedForBufferCap: number;
  /** Partial-frame bytes held now, all connections together (counted only when a limit is set). */
  readonly bufferedBytes: number;
  /** Connections holding a partial frame now (counted only when a limit is set). */
  readonly pendingConnections: number;
}

/**
 * Called when a frame is rejected (over the size limit, too slow to complete, or over the buffered-bytes cap);
 * the connection is closed right after.
 *
 * @example
 * ```ts
 * import { getLogger } from "./logger.ts";
 * import type { FrameErrorCallback } from "./length_header_codec.ts";
 *
 * const onFrameError: FrameErrorCallback = (connection, reason) => getLogger().warn(`${connection.name}: ${reason}`);
 * ```
 */
export type FrameErrorCallback = (connection: TcpConnection, reason: string) => void;

/**
 * Options of {@linkcode LengthHeaderCodec}.
 *
 * @example
 * ```ts
 * import { LengthHeaderCodec, type LengthHeaderCodecOptions } from "./length_header_codec.ts";
 *
 * const options: LengthHeaderCodecOptions = { maxFrameBytes: 1024 * 1024, frameTimeoutMs: 30_000 };
 * const codec = new LengthHeaderCodec((connection, body) => codec.send(connection, body), options);
 * ```
 */
export interface LengthHeaderCodecOptions {
  /**
   * The largest frame body accepted, in bytes; a larger length closes the connection.
   * @default {DEFAULT_MAX_FRAME_BYTES}
   */
  maxFrameBytes?: number;
  /**
   * Told when a frame is rejected (to count it in metrics, say).
   * @default {logs a warning}
   */
  onFrameError?: FrameErrorCallback;
  /**
   * Read deadline of a partial frame, in milliseconds: a connection that holds part of a frame (even a part of its
   * header) for longer is told to `onFrameError` and closed. It must cover the largest frame at the slowest honest
   * link speed. One loop timer per connection, only while a partial frame is pending. Requires `onConnection`.
   * Recommended for servers: {@linkcode RECOMMENDED_FRAME_TIMEOUT_MS}.
   * @default {undefined (no deadline)}
   */
  frameTimeoutMs?: number;
  /**
   * Cap on the partial-frame bytes held by all the connections of this codec together: a connection whose partial
   * frame would push the total past it once whole (its header tells its size) is told to `onFrameError` and closed
   * as its first bytes arrive (an honest connection's whole frames never count). Requires `onConnection`.
   * Recommended for servers: a few times `maxFrameBytes`, such as 4 × `maxFrameBytes`, within the memory the
   * process may spend on incoming requests.
   * @default {undefined (no cap)}
   */
  maxBufferedBytes?: number;
}

// What the codec remembers of a connection holding a partial frame.
interface Pending {
  bytes: number;
  // Loop time the current partial frame began; its deadline is this plus frameTimeoutMs.
  sinceMs: number;
  timer: TimerId | undefined;
}

/**
 * Splits a byte stream into frames and writes frames with their headers.
 *
 * @example Frame round trip over a real connection
 * ```ts
 * import { EventLoop } from "./event_loop.ts";
 * import { InetAddress } from "./inet_address.ts";
 * import { LengthHeaderCodec } from "./length_header_codec.ts";
 * import { TcpClient } from "./tcp_client.ts";
 * import { TcpServer } from "./tcp_server.ts";
 * import assert from "node:assert/strict";
 *
 * const loop = new EventLoop();
 * const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "frames");
 * const serverCodec = new LengthHeaderCodec((connection, body) => serverCodec.send(connection, body));
 * server.setMessageCallback(serverCodec.onMessage);
 * await server.start();
 *
 * const reply = Promise.withResolvers<string>();
 * const client = new TcpClient(loop, server.address, "client");
 * const clientCodec = new LengthHeaderCodec((_connection, body) => reply.resolve(new TextDecoder().decode(body)));
 * client.setMessageCallback(clientCodec.onMessage);
 * client.setConnectionCallback((connection) => {
 *   if (connection.connected) clientCodec.send(connection, new TextEncoder().encode("hello"));
 * });
 * client.connect();
 * assert.equal(await reply.promise, "hello");
 * await client.close();
 * await server.stop();
 * ```
 */
export class LengthHeaderCodec {
  readonly #onFrame: FrameCallback;
  readonly #maxFrameBytes: number;
  readonly #onFrameError: FrameErrorCallback;
  readonly #header = new Uint8Array(FRAME_HEADER_BYTES);
  readonly #headerView = new DataView(this.#header.buffer);
  readonly #frameTimeoutMs: number | undefined;
  readonly #maxBufferedBytes: number | undefined;
  // Whether partial frames are tracked at all: off by default, so the hot path is as it was.
  readonly #tracking: boolean;
  readonly #pending = new Map<TcpConnection, Pending>();
  #bufferedBytes = 0;
  #framesTimedOut = 0;
  #closedForBufferCap = 0;

  /** Create a codec that hands each whole frame to `onFrame`. */
  constructor(onFrame: FrameCallback, options: LengthHeaderCodecOptions = {}) {
    const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 0 || maxFrameBytes > 0xffff_ffff) {
      throw new RangeError(
        `Cannot create codec as 'maxFrameBytes' must be an integer in [0, 4294967295]: current value is ${maxFrameBytes}`,
      );
    }
    const { frameTimeoutMs, maxBufferedBytes } = options;
    if (frameTimeoutMs !== undefined && !(Number.isFinite(frameTimeoutMs) && frameTimeoutMs > 0)) {
      throw new RangeError(
        `Cannot create codec as 'frameTimeoutMs' must be a finite number > 0: current value is ${frameTimeoutMs}`,
      );
    }
    if (maxBufferedBytes !== undefined && !(Number.isSafeInteger(maxBufferedBytes) && maxBufferedBytes > 0)) {
      throw new RangeError(
        `Cannot create codec as 'maxBufferedBytes' must be an integer > 0: current value is ${maxBufferedBytes}`,
      );
    }
    this.#frameTimeoutMs = frameTimeoutMs;
    this.#maxBufferedBytes = maxBufferedBytes;
    this.#tracking = frameTimeoutMs !== undefined || maxBufferedBytes !== undefined;
    this.#onFrame = onFrame;
    this.#maxFrameBytes = maxFrameBytes;
    this.#onFrameError = options.onFrameError ??
      ((connection, reason) => getLogger().warn(`Closing ${connection.name}: ${reason}`));
  }

  /** The largest frame body accepted, in bytes. */
  get maxFrameBytes(): number {
    return this.#maxFrameBytes;
  }

  /** The counters, as of now. */
  get stats(): LengthHeaderCodecStats {
    return {
      framesTimedOut: this.#framesTimedOut,
      closedForBufferCap: this.#closedForBufferCap,
      bufferedBytes: this.#bufferedBytes,
      pendingConnections: this.#pending.size,
    };
  }

  /** The message callback to install on a TcpServer or TcpClient (already bound). */
  readonly onMessage = (connection: TcpConnection, buffer: Buffer, receiveTimeMs: number): void => {
    let completed = false;
    while (buffer.readableBytes >= FRAME_HEADER_BYTES && connection.connected) {
      const length = buffer.peekUint32();
      if (length > this.#maxFrameBytes) {
        this.#reject(connection, `frame of ${length} bytes exceeds the limit of ${this.#maxFrameBytes} bytes`);
        return;
      }
      if (buffer.readableBytes < FRAME_HEADER_BYTES + length) break;
      const body = buffer.view(FRAME_HEADER_BYTES, length);
      completed = true;
      // Retrieve after the callback: `body` stays valid during it, and a throwing callback still consumes the frame.
      try {
        this.#onFrame(connection, body, receiveTimeMs);
      } finally {
        buffer.retrieve(FRAME_HEADER_BYTES + length);
      }
    }
    if (buffer.readableBytes === 0) buffer.shrinkIfEmpty(SHRINK_INPUT_ABOVE_BYTES);
    if (this.#tracking) this.#track(connection, buffer, receiveTimeMs, completed);
  };

  /**
   * The connection callback part of the codec (already bound): call it from the connection callback of the server
   * or client (or install it as that callback) when `frameTimeoutMs` or `maxBufferedBytes` is set, so a closed
   * connection's timer and counted bytes are released at once. Safe to call for every connection change; it does
   * nothing for a connection that is up or holds no partial frame.
   */
  readonly onConnection = (connection: TcpConnection): void => {
    if (connection.connected) return;
    const pending = this.#pending.get(connection);
    if (pending !== undefined) this.#release(connection, pending);
  };

  /** Send `body` as one frame. Throws a RangeError when it is over the limit (nothing is sent). */
  send(connection: TcpConnection, body: Uint8Array): void {
    if (body.length > this.#maxFrameBytes) {
      throw new RangeError(
        `Cannot send frame as its body of ${body.length} bytes exceeds 'maxFrameBytes' of ${this.#maxFrameBytes}`,
      );
    }
    this.#headerView.setUint32(0, body.length);
    // Both parts land in the output buffer and leave in one write (TcpConnection coalesces a tick's sends).
    connection.send(this.#header);
    connection.send(body);
  }

  // Account for the partial frame `connection` holds after a message, and check the two limits.
  #track(connection: TcpConnection, buffer: Buffer, nowMs: number, completed: boolean): void {
    let pending = this.#pending.get(connection);
    const bytes = connection.connected ? buffer.readableBytes : 0;
    if (bytes === 0) {
      if (pending !== undefined) this.#release(connection, pending);
      return;
    }
    const max = this.#maxBufferedBytes;
    if (max !== undefined) {
      // Checked at the size the frame will have once whole, not at what has come so far: a frame that cannot fit
      // is refused at its first bytes, before its body has grown a buffer that is garbage the moment it is
      // refused (thousands of hostile half-sent frames a second otherwise churn gigabytes through the allocator).
      const whole = bytes >= FRAME_HEADER_BYTES ? FRAME_HEADER_BYTES + buffer.peekUint32() : bytes;
      const others = this.#bufferedBytes - (pending?.bytes ?? 0);
      if (others + whole > max && this.#sweep() - (pending?.bytes ?? 0) + whole > max) {
        this.#closedForBufferCap++;
        this.#reject(
          connection,
          `partial frames would hold ${this.#bufferedBytes - (pending?.bytes ?? 0) + whole} bytes in all once ` +
            `this connection's ${whole}-byte frame is whole, over 'maxBufferedBytes' of ${max} (${bytes} bytes ` +
            `of it received)`,
        );
        return;
      }
    }
    if (pending === undefined) {
      pending = { bytes: 0, sinceMs: nowMs, timer: undefined };
      this.#pending.set(connection, pending);
      if (this.#frameTimeoutMs !== undefined) {
        pending.timer = connection.loop.runAfter(this.#frameTimeoutMs, () => this.#handleTimeout(connection));
      }
    } else if (completed) {
      // A new partial frame began in this message: its deadline starts now. The timer armed for the earlier one
      // re-arms itself for the rest when it wakes, so streaming costs no timer per message.
      pending.sinceMs = nowMs;
    }
    this.#bufferedBytes += bytes - pending.bytes;
    pending.bytes = bytes;
  }

  #handleTimeout(connection: TcpConnection): void {
    const pending = this.#pending.get(connection);
    if (pending === undefined) return;
    pending.timer = undefined;
    if (!connection.connected) {
      // Nobody called onConnection: let go now.
      this.#release(connection, pending);
      return;
    }
    const timeoutMs = this.#frameTimeoutMs!;
    const leftMs = pending.sinceMs + timeoutMs - connection.loop.now();
    if (leftMs > 0) {
      pending.timer = connection.loop.runAfter(leftMs, () => this.#handleTimeout(connection));
      return;
    }
    this.#framesTimedOut++;
    this.#reject(
      connection,
      `a frame was not completed within 'frameTimeoutMs' of ${timeoutMs} ms (${pending.bytes} bytes of it received)`,
    );
  }

  // Report, forget and close.
  #reject(connection: TcpConnection, reason: string): void {
    const pending = this.#pending.get(connection);
    if (pending !== undefined) this.#release(connection, pending);
    this.#onFrameError(connection, reason);
    // No shrink here: from a timer, a read into the buffer may be in flight. The closed connection is dropped whole.
    connection.inputBuffer.retrieveAll();
    connection.forceClose();
  }

  #release(connection: TcpConnection, pending: Pending): void {
    if (pending.timer !== undefined) connection.loop.cancel(pending.timer);
    this.#bufferedBytes -= pending.bytes;
    this.#pending.delete(connection);
  }

  // Release connections that closed without onConnection being called; returns the total left.
  #sweep(): number {
    for (const [connection, pending] of this.#pending) {
      if (!connection.connected) this.#release(connection, pending);
    }
    return this.#bufferedBytes;
  }
}
