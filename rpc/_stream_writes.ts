/**
 * Fair writing of stream messages on one connection. Unary frames (requests, answers, cancels, credits) go
 * straight into the connection's output; a stream's message goes there only while the output holds less than a
 * mark, and otherwise waits here, one message per stream, until the output drains. Streams are served in the
 * order they came to wait, and a stream whose message was written waits at the back for its next one, so the
 * order is round robin: one busy stream cannot starve the others, and a unary answer waits behind at most the
 * mark's worth of stream bytes, never behind a window's worth of every stream.
 *
 * @module
 */

import type { TcpConnection } from "../reactor/tcp_connection.ts";
import { sendStreamMessage } from "./_rpc_encoder.ts";

/** Unsent bytes at which stream messages wait for the output to drain. */
export const STREAM_WRITE_MARK_BYTES = 64 * 1024;

interface PendingWrite {
  callId: number;
  payload: Uint8Array;
  written: () => void;
}

/** The stream messages waiting for room on one TCP connection. */
export class StreamWrites {
  readonly #connection: TcpConnection;
  readonly #maxFrameBytes: number;
  readonly #markBytes: number;
  #queue: PendingWrite[] = [];

  /** Write to `connection`, whose frames may be `maxFrameBytes` long. */
  constructor(connection: TcpConnection, maxFrameBytes: number, markBytes = STREAM_WRITE_MARK_BYTES) {
    this.#connection = connection;
    this.#maxFrameBytes = maxFrameBytes;
    this.#markBytes = markBytes;
  }

  /** Messages waiting. */
  get waiting(): number {
    return this.#queue.length;
  }

  /**
   * Write a message of stream `callId` now when there is room (calling `written` at once), else when the output
   * drains. Returns the frame's size when it exceeds the frame limit (nothing written, `written` never called),
   * else 0.
   */
  send(callId: number, payload: Uint8Array, written: () => void): number {
    const frameBytes = payload.length + 20; // a message frame's envelope is at most 18 bytes
    if (frameBytes > this.#maxFrameBytes) return frameBytes;
    if (this.#queue.length === 0 && this.#connection.pendingBytes < this.#markBytes) {
      this.#write(callId, payload, written);
      return 0;
    }
    // Kept until written: the caller's array, which a stream's writer does not reuse while it waits.
    this.#queue.push({ callId, payload, written });
    return 0;
  }

  /** The output drained: write waiting messages, in turn, until it holds the mark again. */
  drained(): void {
    const queue = this.#queue;
    let taken = 0;
    while (taken < queue.length && this.#connection.connected && this.#connection.pendingBytes < this.#markBytes) {
      const next = queue[taken++]!;
      this.#write(next.callId, next.payload, next.written);
    }
    if (taken > 0) this.#queue = queue.slice(taken);
  }

  /** Forget what stream `callId` has waiting (it ended). */
  drop(callId: number): void {
    if (this.#queue.length > 0) this.#queue = this.#queue.filter((write) => write.callId !== callId);
  }

  /** Forget everything (the connection closed; its streams fail on their own). */
  clear(): void {
    this.#queue = [];
  }

  #write(callId: number, payload: Uint8Array, written: () => void): void {
    if (this.#connection.connected) sendStreamMessage(this.#connection, callId, payload, this.#maxFrameBytes);
    written();
  }
}
