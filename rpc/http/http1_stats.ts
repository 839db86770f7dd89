/**
 * The counters of an HTTP/1.1 server: connections, requests, and every refusal by its reason, shared by the
 * server's connections and read as one snapshot (for `/status` and `/metrics`).
 *
 * @module
 */

import { Http1ErrorCode, type Http1Refusal } from "./http1_error.ts";

/**
 * A snapshot of {@linkcode Http1Counters}.
 *
 * @example
 * ```ts
 * import type { Http1Stats } from "./http1_stats.ts";
 *
 * const summary = (stats: Http1Stats) =>
 *   `${stats.requests} requests, ${stats.refusals.smuggling} smuggling attempts, ${stats.connections} open`;
 * ```
 */
export interface Http1Stats {
  /** Connections open now. */
  readonly connections: number;
  /** Connections closed at once because the server was at its connection limit. */
  readonly rejectedConnections: number;
  /** Requests handed to the handler. */
  readonly requests: number;
  /** Requests refused, by reason (every reason present, 0 when it never happened). */
  readonly refusals: Readonly<Record<Http1Refusal, number>>;
  /** Keep-alive connections closed after their idle time without a request (and silent new ones). */
  readonly idleTimeouts: number;
  /** Connections closed because a response could not be sent for `sendTimeoutMs` (a client not reading). */
  readonly sendTimeouts: number;
}

/**
 * Options of {@linkcode Http1Counters}.
 *
 * @example
 * ```ts
 * import type { Http1CountersOptions } from "./http1_stats.ts";
 *
 * const refusals: string[] = [];
 * const options: Http1CountersOptions = { onRefusal: (reason) => refusals.push(reason) };
 * ```
 */
export interface Http1CountersOptions {
  /** Also told of each refusal as it is counted (say, to count it as a provider's limit hit too). */
  onRefusal?: (reason: Http1Refusal) => void;
}

/**
 * The live counters behind {@linkcode Http1Stats}. One per server; its connections count into it, all on one loop.
 *
 * @example
 * ```ts
 * import { Http1Counters } from "./http1_stats.ts";
 * import assert from "node:assert/strict";
 *
 * const counters = new Http1Counters();
 * counters.refused("obs_fold");
 * counters.requested();
 * assert.equal(counters.snapshot().refusals.obs_fold, 1);
 * assert.equal(counters.snapshot().requests, 1);
 * ```
 */
export class Http1Counters {
  #connections = 0;
  #rejectedConnections = 0;
  #requests = 0;
  #idleTimeouts = 0;
  #sendTimeouts = 0;
  readonly #refusals = Object.fromEntries(
    Object.values(Http1ErrorCode).filter((code) => code !== Http1ErrorCode.CONNECTION_CLOSED).map((code) => [code, 0]),
  ) as Record<Http1Refusal, number>;
  readonly #onRefusal: ((reason: Http1Refusal) => void) | undefined;

  /** Counters at zero. */
  constructor(options: Http1CountersOptions = {}) {
    this.#onRefusal = options.onRefusal;
  }

  /** A connection opened. */
  connectionOpened(): void {
    this.#connections++;
  }

  /** A connection (one that was opened) closed. */
  connectionClosed(): void {
    this.#connections--;
  }

  /** A connection was refused at the connection limit. */
  connectionRejected(): void {
    this.#rejectedConnections++;
  }

  /** A request went to the handler. */
  requested(): void {
    this.#requests++;
  }

  /** A request was refused for `reason`. */
  refused(reason: Http1Refusal): void {
    this.#refusals[reason]++;
    this.#onRefusal?.(reason);
  }

  /** An idle connection was closed. */
  idleTimedOut(): void {
    this.#idleTimeouts++;
  }

  /** A connection whose output did not move was closed. */
  sendTimedOut(): void {
    this.#sendTimeouts++;
  }

  /** The counters as of now. */
  snapshot(): Http1Stats {
    return {
      connections: this.#connections,
      rejectedConnections: this.#rejectedConnections,
      requests: this.#requests,
      refusals: { ...this.#refusals },
      idleTimeouts: this.#idleTimeouts,
      sendTimeouts: this.#sendTimeouts,
    };
  }
}
