/**
 * The deadlines of an `Http1Connection`: one connection deadline at a time (head, idle, output or closing, as the
 * connection's module doc draws them) and, beside it, the body deadline, which judges a body by the bytes that
 * came in each window of `bodyTimeoutMs`. Kept apart from the state machine, which decides when each runs and what
 * an expiry does; this file holds the timers, their delays and the rate arithmetic.
 *
 * @module
 */

import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import type { TimerId } from "../../reactor/timer_queue.ts";
import type { Http1Settings } from "./_http1_settings.ts";
import { Http1Error, Http1ErrorCode } from "./http1_error.ts";

/** The connection deadlines, one running at a time. */
export const DeadlineKind = {
  /** A request head is due: `headerTimeoutMs`. */
  HEAD: "head",
  /** Between requests: `idleTimeoutMs`. */
  IDLE: "idle",
  /** Output above the high-water mark: `sendTimeoutMs`. */
  OUTPUT: "output",
  /** Answered for the last time, waiting for the client to close: `idleTimeoutMs`. */
  CLOSING: "closing",
} as const;

/** One of the {@linkcode DeadlineKind} values. */
export type DeadlineKind = typeof DeadlineKind[keyof typeof DeadlineKind];

/**
 * The timers of one connection, on its loop. The connection owns it, calls it from the loop only, and is told of
 * an expiry through the callbacks it passes; it does not own the TcpConnection.
 */
export class Http1Deadlines {
  readonly #tcp: TcpConnection;
  readonly #settings: Http1Settings;
  readonly #onExpired: (kind: DeadlineKind) => void;
  #deadline: TimerId | undefined;
  #kind: DeadlineKind | undefined;
  #bodyTimer: TimerId | undefined;
  #bodyWindowStartBytes = 0;

  /** Timers for `tcp`'s loop; `onExpired` hears of a connection deadline that passed (not of the body's). */
  constructor(tcp: TcpConnection, settings: Http1Settings, onExpired: (kind: DeadlineKind) => void) {
    this.#tcp = tcp;
    this.#settings = settings;
    this.#onExpired = onExpired;
  }

  /** The connection deadline running, if any. */
  get kind(): DeadlineKind | undefined {
    return this.#kind;
  }

  /** Run the connection deadline `kind` from now, in place of the one running. */
  arm(kind: DeadlineKind): void {
    this.disarm();
    this.#kind = kind;
    this.#deadline = this.#tcp.loop.runAfter(this.#delayMs(kind), () => {
      this.#deadline = undefined;
      this.#kind = undefined;
      this.#onExpired(kind);
    });
  }

  /** Stop the connection deadline running, if any. */
  disarm(): void {
    if (this.#deadline !== undefined) this.#tcp.loop.cancel(this.#deadline);
    this.#deadline = undefined;
    this.#kind = undefined;
  }

  /**
   * Whether the client is not reading its answers (unsent output past the high-water mark): then nothing more is
   * parsed until the output drains, and the output deadline runs.
   */
  outputBlocked(): boolean {
    if (this.#tcp.pendingBytes <= this.#settings.highWaterMarkBytes) return false;
    if (this.#kind !== DeadlineKind.OUTPUT) this.arm(DeadlineKind.OUTPUT);
    return true;
  }

  /** The output drained: the output deadline, if it runs, stops. */
  outputDrained(): void {
    if (this.#kind === DeadlineKind.OUTPUT) this.disarm();
  }

  /**
   * Start a body window of `bodyTimeoutMs` unless one runs. When it ends, `onWindowEnd` gets an Http1Error
   * `body_timeout` if fewer bytes than `minBodyBytesPerSecond` over the window (at least one) came in it, else
   * undefined (the caller starts the next window if it still waits).
   */
  startBody(onWindowEnd: (tooSlow: Http1Error | undefined) => void): void {
    if (this.#bodyTimer !== undefined) return;
    this.#bodyWindowStartBytes = this.#tcp.bytesReceived;
    this.#bodyTimer = this.#tcp.loop.runAfter(this.#settings.bodyTimeoutMs, () => {
      this.#bodyTimer = undefined;
      const { bodyTimeoutMs, minBodyBytesPerSecond } = this.#settings;
      const least = Math.max(1, Math.floor(minBodyBytesPerSecond * bodyTimeoutMs / 1000));
      const received = this.#tcp.bytesReceived - this.#bodyWindowStartBytes;
      onWindowEnd(
        received < least
          ? new Http1Error(
            Http1ErrorCode.BODY_TIMEOUT,
            `Body came at ${received} bytes in ${bodyTimeoutMs} ms: at least ${least} are expected`,
          )
          : undefined,
      );
    });
  }

  /** Stop the body window running, if any. */
  stopBody(): void {
    if (this.#bodyTimer !== undefined) this.#tcp.loop.cancel(this.#bodyTimer);
    this.#bodyTimer = undefined;
  }

  #delayMs(kind: DeadlineKind): number {
    switch (kind) {
      case DeadlineKind.HEAD:
        return this.#settings.headerTimeoutMs;
      case DeadlineKind.OUTPUT:
        return this.#settings.sendTimeoutMs;
      case DeadlineKind.IDLE:
      case DeadlineKind.CLOSING:
        return this.#settings.idleTimeoutMs;
    }
  }
}
