/**
 * Active connection establishment with retry (muduo's Connector): connect, and on failure try again after a
 * delay that starts at 500 ms and doubles up to 30 s.
 *
 * @module
 */

import type { TlsClientOptions } from "./backend/net_backend.ts";
import type { RawSocket } from "./backend/net_backend.ts";
import type { EventLoop } from "./event_loop.ts";
import type { InetAddress } from "./inet_address.ts";
import { getLogger } from "./logger.ts";
import type { TimerId } from "./timer_queue.ts";

/**
 * The states of a {@linkcode Connector}.
 *
 * @example
 * ```ts
 * import { Connector, ConnectorState } from "./connector.ts";
 * import { EventLoop } from "./event_loop.ts";
 * import { InetAddress } from "./inet_address.ts";
 * import assert from "node:assert/strict";
 *
 * const connector = new Connector(new EventLoop(), new InetAddress("127.0.0.1", 9));
 * assert.equal(connector.state, ConnectorState.DISCONNECTED); // until start()
 * ```
 */
export const ConnectorState = {
  DISCONNECTED: "disconnected",
  CONNECTING: "connecting",
  CONNECTED: "connected",
} as const;

/** One of the {@linkcode ConnectorState} values. */
export type ConnectorState = typeof ConnectorState[keyof typeof ConnectorState];

/**
 * Options of {@linkcode Connector}.
 *
 * @example
 * ```ts
 * import { Connector, type ConnectorOptions } from "./connector.ts";
 * import { EventLoop } from "./event_loop.ts";
 * import { InetAddress } from "./inet_address.ts";
 *
 * const options: ConnectorOptions = { connectTimeoutMs: 3_000, maxAttempts: 5 };
 * const connector = new Connector(new EventLoop(), new InetAddress("127.0.0.1", 8800), options);
 * ```
 */
export interface ConnectorOptions {
  /**
   * The first retry delay, in milliseconds.
   * @default {500}
   */
  initialRetryDelayMs?: number;
  /**
   * The longest retry delay, in milliseconds.
   * @default {30000}
   */
  maxRetryDelayMs?: number;
  /**
   * How long one attempt may take, in milliseconds.
   * @default {10000}
   */
  connectTimeoutMs?: number;
  /**
   * Give up after this many failed attempts in a row and report it to the connect-failed callback.
   * @default {Infinity}
   */
  maxAttempts?: number;
  /**
   * Speak TLS to the server, verifying its certificate.
   * @default {undefined}
   */
  tls?: TlsClientOptions;
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`Cannot create connector as '${name}' must be a positive number: current value is ${value}`);
  }
  return value;
}

/**
 * Connects to one address, retrying until it succeeds or `stop()` is called; hands the socket to the
 * new-connection callback. Used by TcpClient; use it directly to own the raw socket yourself.
 *
 * @example
 * ```ts
 * import { Connector } from "./connector.ts";
 * import { EventLoop } from "./event_loop.ts";
 * import { InetAddress } from "./inet_address.ts";
 * import { TcpServer } from "./tcp_server.ts";
 * import assert from "node:assert/strict";
 *
 * const loop = new EventLoop();
 * const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "sink");
 * await server.start();
 * const connected = Promise.withResolvers<void>();
 * const connector = new Connector(loop, server.address);
 * connector.setNewConnectionCallback((socket) => {
 *   socket.close(); // the socket is ours now
 *   connected.resolve();
 * });
 * connector.start();
 * await connected.promise;
 * connector.stop();
 * assert.equal(connector.attempts, 1);
 * await server.stop();
 * ```
 */
export class Connector {
  /** The loop whose timers drive the retries. */
  readonly loop: EventLoop;
  /** Where to connect. */
  readonly serverAddress: InetAddress;
  readonly #initialRetryDelayMs: number;
  readonly #maxRetryDelayMs: number;
  readonly #connectTimeoutMs: number;
  #state: ConnectorState = ConnectorState.DISCONNECTED;
  #wanted = false;
  #retryDelayMs: number;
  #retryTimer: TimerId | undefined;
  #attempt: AbortController | undefined;
  #attemptTimer: TimerId | undefined;
  #attempts = 0;
  #callback: ((socket: RawSocket) => void) | undefined;
  #failedCallback: ((error: unknown) => void) | undefined;
  readonly #maxAttempts: number;
  readonly #tls: TlsClientOptions | undefined;
  #failuresInARow = 0;

  /** Prepare a connector; nothing happens until `start`. */
  constructor(loop: EventLoop, serverAddress: InetAddress, options: ConnectorOptions = {}) {
    this.loop = loop;
    this.serverAddress = serverAddress;
    this.#initialRetryDelayMs = positive("initialRetryDelayMs", options.initialRetryDelayMs ?? 500);
    this.#maxRetryDelayMs = positive("maxRetryDelayMs", options.maxRetryDelayMs ?? 30_000);
    this.#connectTimeoutMs = positive("connectTimeoutMs", options.connectTimeoutMs ?? 10_000);
    this.#retryDelayMs = this.#initialRetryDelayMs;
    this.#maxAttempts = options.maxAttempts ?? Infinity;
    this.#tls = options.tls;
  }

  /** The current state. */
  get state(): ConnectorState {
    return this.#state;
  }

  /** The delay the next retry will wait, in milliseconds. */
  get retryDelayMs(): number {
    return this.#retryDelayMs;
  }

  /** Connection attempts made so far. */
  get attempts(): number {
    return this.#attempts;
  }

  /** Set the callback that receives the connected socket. */
  setNewConnectionCallback(callback: (socket: RawSocket) => void): void {
    this.#callback = callback;
  }

  /** Set the callback told when `maxAttempts` attempts in a row have failed (the connector then stops). */
  setConnectFailedCallback(callback: (error: unknown) => void): void {
    this.#failedCallback = callback;
  }

  /** Start connecting (retrying until connected or stopped). */
  start(): void {
    this.#wanted = true;
    if (this.#state === ConnectorState.DISCONNECTED && this.#retryTimer === undefined) this.#connect();
  }

  /** Reset the back-off and connect again (after a connection was lost). */
  restart(): void {
    this.#state = ConnectorState.DISCONNECTED;
    this.#retryDelayMs = this.#initialRetryDelayMs;
    this.start();
  }

  /** Stop: cancel the scheduled retry and abandon an attempt in flight (its socket is closed if it arrives). */
  stop(): void {
    this.#wanted = false;
    if (this.#retryTimer !== undefined) {
      this.loop.cancel(this.#retryTimer);
      this.#retryTimer = undefined;
    }
    if (this.#attemptTimer !== undefined) {
      this.loop.cancel(this.#attemptTimer);
      this.#attemptTimer = undefined;
    }
    this.#attempt?.abort();
    this.#attempt = undefined;
    if (this.#state === ConnectorState.CONNECTING) this.#state = ConnectorState.DISCONNECTED;
  }

  #connect(): void {
    this.#state = ConnectorState.CONNECTING;
    this.#attempts++;
    const attempt = new AbortController();
    this.#attempt = attempt;
    const timeout = this.loop.runAfter(this.#connectTimeoutMs, () => attempt.abort(new Error("connect timed out")));
    this.#attemptTimer = timeout;
    this.loop.backend.connect({
      hostname: this.serverAddress.hostname,
      port: this.serverAddress.port,
      signal: attempt.signal,
      tls: this.#tls,
    }).then(
      (socket) => {
        this.loop.cancel(timeout);
        if (this.#attemptTimer === timeout) this.#attemptTimer = undefined;
        if (attempt !== this.#attempt || !this.#wanted) {
          socket.close();
          return;
        }
        this.#attempt = undefined;
        this.#state = ConnectorState.CONNECTED;
        this.#retryDelayMs = this.#initialRetryDelayMs;
        this.#failuresInARow = 0;
        if (this.#callback === undefined) socket.close();
        else this.#callback(socket);
      },
      (error) => {
        this.loop.cancel(timeout);
        if (this.#attemptTimer === timeout) this.#attemptTimer = undefined;
        if (attempt !== this.#attempt || !this.#wanted) return;
        this.#attempt = undefined;
        this.#retry(error);
      },
    );
  }

  #retry(error: unknown): void {
    this.#state = ConnectorState.DISCONNECTED;
    if (++this.#failuresInARow >= this.#maxAttempts) {
      this.#failuresInARow = 0;
      this.#wanted = false;
      this.#failedCallback?.(error);
      return;
    }
    const delayMs = this.#retryDelayMs;
    getLogger().info(
      `Connector to ${this.serverAddress} failed (${error instanceof Error ? error.message : error}), ` +
        `retrying in ${delayMs} ms`,
    );
    this.#retryTimer = this.loop.runAfter(delayMs, () => {
      this.#retryTimer = undefined;
      if (this.#wanted) this.#connect();
    });
    this.#retryDelayMs = Math.min(delayMs * 2, this.#maxRetryDelayMs);
  }
}
