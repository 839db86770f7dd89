/**
 * The front door every listener of a provider shares: the connection caps (in all and per peer address) and the
 * rule for connections that never speak. Any {@linkcode ServerTransport} that takes connections (the TCP one now;
 * an HTTP gateway or a compatibility port later) keeps its connections' books here instead of its own, so each
 * port inherits the same limits, deadline and counters.
 *
 * A connection is silent until its first whole frame arrives. Silent connections are kept in arrival order:
 *
 * - one past `handshakeTimeoutMs` is closed (limit `handshake_timeout`), by one timer armed for the oldest;
 * - at `maxConnections`, a new connection takes the place of the oldest silent one (limit `silent_evicted`) when
 *   `evictSilentAtCap` is on; only when every connection has spoken is the new one refused (limit `connections`).
 *
 * So idle sockets that fill the cap cost an honest caller nothing: its connection evicts one of them, and its
 * first frame makes it safe from eviction. (An attacker opening connections faster than `maxConnections` per
 * honest caller's first round trip could evict it before it speaks; the per-address cap bounds one host's share.)
 * A silent connection counts against `maxConnectionsPerAddress` like any other.
 *
 * @module
 */

import type { EventLoop } from "../reactor/event_loop.ts";
import { getLogger } from "../reactor/logger.ts";
import type { TimerId } from "../reactor/timer_queue.ts";
import type { ServerLimits } from "./_server_limits.ts";
import type { ServerTransportHandler } from "./server_transport.ts";

/** A connection as the gate sees it; owned by its transport. */
export interface GatedConnection {
  /** A name for logs. */
  readonly name: string;
  /** The peer's host, for the per-address cap. */
  readonly peerHost: string;
  /** Whether its first whole frame arrived (set by {@linkcode ConnectionGate.spoke}). */
  spoke: boolean;
  /**
   * Close at once, dropping what is unsent; the gate has already let go of it. Its transport reports the close
   * to the provider as for any other.
   */
  forceClose(): void;
}

/**
 * Admits, counts and forgets one listener's connections, and closes the silent ones as the module doc says.
 * Everything runs on `loop`; the transport calls `admit` then `add` as a connection comes, `spoke` when a whole
 * frame arrives on it, `remove` when it closes, and `close` when the listener stops.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import { ConnectionGate, type GatedConnection } from "./_connection_gate.ts";
 * import { serverLimits } from "./_server_limits.ts";
 * import assert from "node:assert/strict";
 *
 * const closed: string[] = [];
 * const connection = (name: string): GatedConnection => ({
 *   name,
 *   peerHost: "127.0.0.2",
 *   spoke: false,
 *   forceClose: () => closed.push(name),
 * });
 * const gate = new ConnectionGate(new EventLoop(), serverLimits({ maxConnections: 2 }), {
 *   accept: () => undefined,
 *   limitHit: () => {},
 * });
 * const [a, b, c] = [connection("a"), connection("b"), connection("c")];
 * gate.add(a);
 * gate.add(b);
 * gate.spoke(a);
 * assert.ok(gate.admit(c.peerHost, c.name)); // at the cap, but b never spoke: c takes its place
 * gate.add(c);
 * assert.deepEqual(closed, ["b"]);
 * gate.close();
 * ```
 */
export class ConnectionGate<C extends GatedConnection> {
  readonly #loop: EventLoop;
  readonly #limits: ServerLimits;
  readonly #provider: ServerTransportHandler;
  readonly #open = new Set<C>();
  readonly #byAddress = new Map<string, number>();
  // Connections with no whole frame yet, oldest first, with when each came (the loop's clock).
  readonly #silent = new Map<C, number>();
  #handshakeTimer: TimerId | undefined;
  #closed = false;

  /** Guard connections on `loop` within `limits`, counting the limits hit on `provider`. */
  constructor(loop: EventLoop, limits: ServerLimits, provider: ServerTransportHandler) {
    this.#loop = loop;
    this.#limits = limits;
    this.#provider = provider;
  }

  /** Connections admitted and not yet removed. */
  get size(): number {
    return this.#open.size;
  }

  /** Connections that have not sent a whole frame yet. */
  get silent(): number {
    return this.#silent.size;
  }

  /** The connections admitted, in arrival order (removing one while iterating is safe). */
  connections(): IterableIterator<C> {
    return this.#open.values();
  }

  /**
   * Whether a connection from `host` may come in: false (counted and logged) when the per-address cap is reached,
   * or the global one is and no silent connection can make room. Call `add` next if it may (and the transport
   * takes it).
   */
  admit(host: string, name: string): boolean {
    const { maxConnections, maxConnectionsPerAddress, evictSilentAtCap } = this.#limits;
    if (this.#open.size >= maxConnections && !(evictSilentAtCap && this.#silent.size > 0)) {
      this.#refuse(name, "connections", `${maxConnections} connections already, all of which have spoken`);
      return false;
    }
    if ((this.#byAddress.get(host) ?? 0) >= maxConnectionsPerAddress) {
      this.#refuse(name, "connections_per_address", `${maxConnectionsPerAddress} connections from ${host} already`);
      return false;
    }
    return true;
  }

  /** Count an admitted connection (silent until `spoke`), first evicting the oldest silent one at the cap. */
  add(connection: C): void {
    if (this.#open.size >= this.#limits.maxConnections) this.#evictOldestSilent(connection.name);
    this.#open.add(connection);
    this.#byAddress.set(connection.peerHost, (this.#byAddress.get(connection.peerHost) ?? 0) + 1);
    if (connection.spoke) return;
    this.#silent.set(connection, this.#loop.now());
    if (this.#handshakeTimer === undefined) this.#armHandshakeTimer();
  }

  /** A whole frame arrived on `connection`: it is no longer silent (callers may skip this once `spoke` is set). */
  spoke(connection: C): void {
    if (connection.spoke) return;
    connection.spoke = true;
    this.#silent.delete(connection);
  }

  /** Forget `connection` (closed, or closed by its transport for a limit); false if it was not counted. */
  remove(connection: C): boolean {
    if (!this.#open.delete(connection)) return false;
    this.#silent.delete(connection);
    const left = (this.#byAddress.get(connection.peerHost) ?? 1) - 1;
    if (left <= 0) this.#byAddress.delete(connection.peerHost);
    else this.#byAddress.set(connection.peerHost, left);
    return true;
  }

  /** Stop the handshake timer (the listener is stopping; its transport closes what is left). */
  close(): void {
    this.#closed = true;
    if (this.#handshakeTimer !== undefined) this.#loop.cancel(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
  }

  #refuse(name: string, limit: string, why: string): void {
    this.#provider.limitHit(limit);
    getLogger().warn(`RpcProvider refusing ${name}: ${why}`);
  }

  #evictOldestSilent(newcomer: string): void {
    const oldest = this.#silent.keys().next();
    if (oldest.done) return;
    const connection = oldest.value;
    this.remove(connection);
    this.#provider.limitHit("silent_evicted");
    // Debug, not warn: under attack this is once per connection the attacker opens.
    getLogger().debug(
      `RpcProvider closing ${connection.name}: it never spoke and ${newcomer} needs its place at the cap of ` +
        `${this.#limits.maxConnections} connections`,
    );
    connection.forceClose();
  }

  // One timer for all silent connections, due when the oldest one's deadline is. A connection that spoke or closed
  // in the meantime leaves it early; it then finds nothing due and re-arms for the next.
  #armHandshakeTimer(): void {
    const oldest = this.#silent.values().next();
    if (oldest.done || this.#closed) return;
    const dueMs = oldest.value + this.#limits.handshakeTimeoutMs;
    this.#handshakeTimer = this.#loop.runAt(dueMs, () => this.#closeLateSilent());
  }

  #closeLateSilent(): void {
    this.#handshakeTimer = undefined;
    const timeoutMs = this.#limits.handshakeTimeoutMs;
    const now = this.#loop.now();
    for (const [connection, arrivedMs] of this.#silent) {
      if (now - arrivedMs < timeoutMs) break;
      this.remove(connection);
      this.#provider.limitHit("handshake_timeout");
      getLogger().debug(`RpcProvider closing ${connection.name}: no whole frame within ${timeoutMs} ms`);
      connection.forceClose();
    }
    this.#armHandshakeTimer();
  }
}
