/**
 * The registry client's TCP keepalive: a ping when nothing has been sent for a while, and the connection closed
 * (so the client reconnects and resumes) when nothing has arrived for the read timeout.
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import { getLogger } from "../../reactor/logger.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import type { TimerId } from "../../reactor/timer_queue.ts";
import { SessionState } from "./_client_session.ts";

/** What the keepalive reads of the client's session. */
export interface KeepaliveSession {
  readonly closed: boolean;
  readonly connection: TcpConnection | undefined;
  readonly state: SessionState;
}

/** Options of {@linkcode ClientKeepalive}. */
export interface ClientKeepaliveOptions {
  /** The read timeout in milliseconds; undefined for two thirds of the session timeout. */
  readTimeoutMs?: number;
  /** The ping interval in milliseconds; undefined for half the read timeout. */
  pingIntervalMs?: number;
  /** The server, in log lines. */
  peer: string;
}

/**
 * One timer per client, due at the earlier of the next ping and the read deadline. Called on the client's loop
 * only. Sends and receives only record their times ({@linkcode ClientKeepalive.sent},
 * {@linkcode ClientKeepalive.received}); the timer reads them. Before the session timeout is known (before the
 * first session), only an explicit `readTimeoutMs` applies. The keepalive closes a silent connection; it owns
 * nothing else.
 */
export class ClientKeepalive {
  readonly #loop: EventLoop;
  readonly #session: KeepaliveSession;
  readonly #options: ClientKeepaliveOptions;
  #pingCallback: () => void = () => {};
  #sessionTimeoutMs = 0;
  #timer: TimerId | undefined;
  #dueMs = 0;
  #stallGraceUsed = false;
  #lastSentMs = 0;
  #lastReceivedMs = 0;

  constructor(loop: EventLoop, session: KeepaliveSession, options: ClientKeepaliveOptions) {
    this.#loop = loop;
    this.#session = session;
    this.#options = options;
  }

  /** Told when a ping is due (the client sends one; its failures are the read timeout's business). */
  setPingCallback(callback: () => void): void {
    this.#pingCallback = callback;
  }

  /** The session timeout the server granted, in milliseconds: the base of the default timings. */
  set sessionTimeoutMs(value: number) {
    this.#sessionTimeoutMs = value;
  }

  /** The read timeout in force: the option, else two thirds of the granted session timeout, else none yet. */
  get readTimeoutMs(): number | undefined {
    if (this.#options.readTimeoutMs !== undefined) return this.#options.readTimeoutMs;
    return this.#sessionTimeoutMs > 0 ? Math.max(1, Math.floor(this.#sessionTimeoutMs * 2 / 3)) : undefined;
  }

  /** The ping interval in force: the option, else half the read timeout, else none yet. */
  get pingIntervalMs(): number | undefined {
    if (this.#options.pingIntervalMs !== undefined) return this.#options.pingIntervalMs;
    const readTimeoutMs = this.readTimeoutMs;
    return readTimeoutMs === undefined ? undefined : Math.max(1, Math.floor(readTimeoutMs / 2));
  }

  /** A request went out. */
  sent(): void {
    this.#lastSentMs = this.#loop.now();
  }

  /** Bytes arrived (any bytes count as hearing from the server, a partial frame too). */
  received(receiveTimeMs: number): void {
    this.#lastReceivedMs = receiveTimeMs;
    this.#stallGraceUsed = false;
  }

  /** A connection came up: its silence is counted from now. */
  connectionUp(): void {
    this.#lastReceivedMs = this.#lastSentMs = this.#loop.now();
    this.#stallGraceUsed = false;
    this.arm();
  }

  /** (Re)schedule the timer for the earlier of the next ping and the read deadline. */
  arm(): void {
    this.stop();
    if (this.#session.closed || this.#session.connection === undefined) return;
    const readTimeoutMs = this.readTimeoutMs;
    const pingIntervalMs = this.pingIntervalMs;
    let dueMs = Infinity;
    if (readTimeoutMs !== undefined) dueMs = this.#lastReceivedMs + readTimeoutMs;
    // No pings before the session is open: the server answers anything but connect with an error there.
    if (pingIntervalMs !== undefined && this.#session.state === SessionState.CONNECTED) {
      dueMs = Math.min(dueMs, this.#lastSentMs + pingIntervalMs);
    }
    if (dueMs === Infinity) return;
    this.#dueMs = dueMs;
    this.#timer = this.#loop.runAfter(Math.max(1, dueMs - this.#loop.now()), () => this.#check());
  }

  /** Stop the timer (the connection went, or the client closes). */
  stop(): void {
    if (this.#timer !== undefined) this.#loop.cancel(this.#timer);
    this.#timer = undefined;
  }

  #check(): void {
    this.#timer = undefined;
    const connection = this.#session.connection;
    if (this.#session.closed || connection === undefined || !connection.connected) return;
    const now = this.#loop.now();
    const readTimeoutMs = this.readTimeoutMs;
    if (readTimeoutMs !== undefined && now - this.#lastReceivedMs >= readTimeoutMs) {
      // Woken late, this process was the one stalled (GC, a busy CPU): answers may be waiting unread, or the ping
      // may not have left. Grant half a read timeout more, once per silence, before blaming the server.
      if (now - this.#dueMs > readTimeoutMs / 4 && !this.#stallGraceUsed) {
        this.#stallGraceUsed = true;
        this.#lastReceivedMs = now - readTimeoutMs / 2;
        this.arm();
        return;
      }
      getLogger().warn(
        `RegistryClient: nothing from ${this.#options.peer} for ${Math.round(now - this.#lastReceivedMs)} ms ` +
          `(read timeout ${readTimeoutMs} ms); reconnecting`,
      );
      connection.forceClose();
      return;
    }
    const pingIntervalMs = this.pingIntervalMs;
    if (
      pingIntervalMs !== undefined && this.#session.state === SessionState.CONNECTED &&
      now - this.#lastSentMs >= pingIntervalMs
    ) {
      this.#pingCallback();
    }
    this.arm();
  }
}
