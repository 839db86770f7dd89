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
 * @module
 */

import type { Buffer } from "./buffer.ts";
import { getLogger } from "./logger.ts";
import type { TcpConnection } from "./tcp_connection.ts";

/** The size of the length header in bytes. */
export const FRAME_HEADER_BYTES = 4;

/** The default largest frame body: 64 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

/**
 * Receives one whole frame body. `body` is a view into the connection's input buffer, valid only during the call:
 * decode it (or copy it) before returning.
 */
export type FrameCallback = (connection: TcpConnection, body: Uint8Array, receiveTimeMs: number) => void;

/** Called when a peer sends a frame over the limit; the connection is closed right after. */
export type FrameErrorCallback = (connection: TcpConnection, reason: string) => void;

/** Options of {@linkcode LengthHeaderCodec}. */
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

  /** Create a codec that hands each whole frame to `onFrame`. */
  constructor(onFrame: FrameCallback, options: LengthHeaderCodecOptions = {}) {
    const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 0 || maxFrameBytes > 0xffff_ffff) {
      throw new RangeError(
        `Cannot create codec as 'maxFrameBytes' must be an integer in [0, 4294967295]: current value is ${maxFrameBytes}`,
      );
    }
    this.#onFrame = onFrame;
    this.#maxFrameBytes = maxFrameBytes;
    this.#onFrameError = options.onFrameError ??
      ((connection, reason) => getLogger().warn(`Closing ${connection.name}: ${reason}`));
  }

  /** The largest frame body accepted, in bytes. */
  get maxFrameBytes(): number {
    return this.#maxFrameBytes;
  }

  /** The message callback to install on a TcpServer or TcpClient (already bound). */
  readonly onMessage = (connection: TcpConnection, buffer: Buffer, receiveTimeMs: number): void => {
    while (buffer.readableBytes >= FRAME_HEADER_BYTES && connection.connected) {
      const length = buffer.peekUint32();
      if (length > this.#maxFrameBytes) {
        this.#onFrameError(connection, `frame of ${length} bytes exceeds the limit of ${this.#maxFrameBytes} bytes`);
        buffer.retrieveAll();
        connection.forceClose();
        return;
      }
      if (buffer.readableBytes < FRAME_HEADER_BYTES + length) return;
      const body = buffer.peek().subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length);
      // Retrieve after the callback: `body` stays valid during it, and a throwing callback still consumes the frame.
      try {
        this.#onFrame(connection, body, receiveTimeMs);
      } finally {
        buffer.retrieve(FRAME_HEADER_BYTES + length);
      }
    }
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
}
