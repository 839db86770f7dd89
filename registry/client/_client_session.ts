/**
 * The session machinery both registry clients share (the built-in protocol and ZooKeeper's): the connection and
 * session state, session events and their listeners, the wait for the first session, the one expiry path and the
 * recovery after it (watchers told to re-read, ephemeral nodes re-created), and the close. The clients keep only
 * their wire protocol: how a session is opened, resumed and kept alive, and how requests and answers look.
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import { getLogger } from "../../reactor/logger.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import { EphemeralNodes, type EphemeralOwner } from "./_ephemeral_nodes.ts";
import { PendingRequests } from "./_pending_requests.ts";
import { WatchRegistry } from "./_watch_registry.ts";
import type { SessionEvent } from "../registry.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";

/** Where a client is: no connection, a connection without a session yet, a session, or closed for good. */
export const SessionState = {
  CONNECTING: 0,
  HANDSHAKING: 1,
  CONNECTED: 2,
  CLOSED: 3,
} as const;

/** One of the {@linkcode SessionState} numbers. */
export type SessionState = typeof SessionState[keyof typeof SessionState];

/** A state's name, for logs. */
export function sessionStateToString(state: SessionState): string {
  return ["CONNECTING", "HANDSHAKING", "CONNECTED", "CLOSED"][state]!;
}

/** Options of {@linkcode ClientSession}. */
export interface ClientSessionOptions {
  /** The client's name in logs ("RegistryClient"). */
  owner: string;
  /** The server's name in messages ("the registry", "ZooKeeper"). */
  peer: string;
  /** How long a request may wait for its answer, in milliseconds. */
  requestTimeoutMs: number;
  /** After an expiry, re-create the ephemeral nodes the client created. */
  recreateEphemerals: boolean;
}

/**
 * One client's session state. Called on the client's loop only. The client reports what its protocol sees
 * (a connection up or lost, a session opened, an expiry) and this class keeps the order every client promises:
 *
 * - a lost connection fails the requests sent on it with CONNECTION_LOSS and emits `disconnected`;
 * - an expiry (once per session, whichever signal brings it) fails the requests sent with SESSION_EXPIRED,
 *   forgets the ephemeral nodes unless they are to be re-created, and emits `expired` with the old id;
 * - a session opening emits `connected`; on a new session after an expiry, every watcher is then told to re-read
 *   (type 0), and the ephemeral nodes are re-created, in the order they were first created (a re-creation cut
 *   short by a lost connection goes on on the next session opened, resumed or not);
 * - a close fails everything with CLOSED and emits `closed` last.
 *
 * `Reply` is an answer as the client's protocol decodes it.
 */
export class ClientSession<Reply> {
  /** The client's watches. */
  readonly watches: WatchRegistry;
  /** The client's pending requests. */
  readonly requests: PendingRequests<Reply>;
  /** The client's ephemeral nodes. */
  readonly ephemerals: EphemeralNodes;
  readonly #options: ClientSessionOptions;
  readonly #client: EphemeralOwner;
  #state: SessionState = SessionState.CONNECTING;
  #connection: TcpConnection | undefined;
  #sessionId = 0n;
  #listeners = new Set<(event: SessionEvent) => void>();
  #firstSession: PromiseWithResolvers<void> | undefined = Promise.withResolvers<void>();
  // Callers of whenConnected: resolved by the next session opened, rejected by a close.
  #sessionWaiters = new Map<PromiseWithResolvers<void>, string>();
  // Set by an expiry, taken by the next new session: that session runs the recovery.
  #recovering = false;
  // Bumped by every expiry, so a recovery still re-creating nodes stops when its own session expires too.
  #expiries = 0;

  /** `client` is the client itself: the recovery re-creates ephemeral nodes through its create and exists. */
  constructor(loop: EventLoop, client: EphemeralOwner, options: ClientSessionOptions) {
    this.#options = options;
    this.#client = client;
    this.watches = new WatchRegistry(options.owner);
    this.requests = new PendingRequests<Reply>(loop, options.requestTimeoutMs, options.peer);
    this.ephemerals = new EphemeralNodes(options.owner);
    this.#firstSession!.promise.catch(() => {});
  }

  /** Where the client is. */
  get state(): SessionState {
    return this.#state;
  }

  /** The connection, with or without a session on it. */
  get connection(): TcpConnection | undefined {
    return this.#connection;
  }

  /** The session id: the open one, the one to resume, or 0n (none yet, or expired and none since). */
  get sessionId(): bigint {
    return this.#sessionId;
  }

  /** Whether the client was closed. */
  get closed(): boolean {
    return this.#state === SessionState.CLOSED;
  }

  /** Whether `sessionId` is the client's live (or to-be-resumed) session: what an expiry signal must name. */
  isCurrent(sessionId: bigint): boolean {
    return !this.closed && sessionId !== 0n && sessionId === this.#sessionId;
  }

  /** Listen for session events; returns a function that removes the listener. */
  onSessionEvent(listener: (event: SessionEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves at the first session; rejects after `timeoutMs` with `message`, or with why the handshake failed. */
  async firstSession(loop: EventLoop, timeoutMs: number, message: string): Promise<void> {
    const first = this.#firstSession;
    if (first === undefined) return;
    const timer = loop.runAfter(
      timeoutMs,
      () => first.reject(new RegistryError(RegistryErrorCode.CONNECTION_LOSS, message)),
    );
    try {
      await first.promise;
    } finally {
      loop.cancel(timer);
    }
  }

  /**
   * Resolves when a session is open: at once when one is, else at the next `connected` event. Rejects with
   * CLOSED when the client closes first, and with CONNECTION_LOSS when none opens within `timeoutMs` ("Cannot
   * <what> as no session opened within ..."). For a caller that must wait out a lost connection before it may
   * ask again (a protected create looking for the node its lost request may have made).
   */
  whenConnected(loop: EventLoop, timeoutMs: number, what: string): Promise<void> {
    if (this.closed) {
      return Promise.reject(new RegistryError(RegistryErrorCode.CLOSED, `Cannot ${what} as the client is closed`));
    }
    if (this.#state === SessionState.CONNECTED) return Promise.resolve();
    const waiter = Promise.withResolvers<void>();
    const timer = loop.runAfter(timeoutMs, () => {
      this.#sessionWaiters.delete(waiter);
      waiter.reject(
        new RegistryError(
          RegistryErrorCode.CONNECTION_LOSS,
          `Cannot ${what} as no session opened on ${this.#options.peer} within ${timeoutMs} ms`,
        ),
      );
    });
    this.#sessionWaiters.set(waiter, what);
    return waiter.promise.finally(() => loop.cancel(timer));
  }

  /** Start with a session to resume (ZooKeeper's clients may take over another's). */
  resumeFrom(sessionId: bigint): void {
    this.#sessionId = sessionId;
  }

  /** A connection came up: the client opens or resumes its session on it. */
  connectionUp(connection: TcpConnection): void {
    if (this.closed) return;
    this.#connection = connection;
    this.#state = SessionState.HANDSHAKING;
  }

  /** The connection went: what was sent on it fails with CONNECTION_LOSS; `disconnected` unless closed. */
  connectionLost(why: string): void {
    this.#connection = undefined;
    if (!this.closed) this.#state = SessionState.CONNECTING;
    this.requests.fail(RegistryErrorCode.CONNECTION_LOSS, why);
    if (!this.closed) this.#emit({ type: "disconnected" });
  }

  /** The first handshake failed: the first session will not come from this connection. */
  handshakeFailed(error: RegistryError): void {
    this.#firstSession?.reject(error);
  }

  /**
   * A session opened on the connection: `connected`, then, on a new session after an expiry, the recovery. With
   * `resyncWatches` the watchers are told to re-read anyway (a protocol whose resumption keeps no watches).
   */
  async sessionOpened(sessionId: bigint, resumed: boolean, resyncWatches: boolean): Promise<void> {
    if (this.closed) return;
    this.#sessionId = sessionId;
    this.#state = SessionState.CONNECTED;
    const first = this.#firstSession;
    this.#firstSession = undefined;
    first?.resolve();
    const waiters = [...this.#sessionWaiters.keys()];
    this.#sessionWaiters.clear();
    for (const waiter of waiters) waiter.resolve();
    const recovering = this.#recovering && !resumed;
    if (recovering) this.#recovering = false;
    getLogger().debug(`${this.#options.owner}: session ${sessionId.toString(16)} ${resumed ? "resumed" : "opened"}`);
    this.#emit({ type: "connected", sessionId, resumed });
    if (this.closed) return;
    if (resyncWatches || recovering) this.watches.resync();
    // A recovery cut short by a lost connection goes on on the next session, a resumed one too.
    if (this.#options.recreateEphemerals && (recovering || this.ephemerals.unfinished)) {
      const expiry = this.#expiries;
      await this.ephemerals.recreate(this.#client, () => !this.closed && expiry === this.#expiries, recovering);
    }
  }

  /**
   * The server expired `sessionId` (call only when {@linkcode ClientSession.isCurrent}): the requests sent fail
   * with SESSION_EXPIRED, `expired` is emitted, and the next session opened runs the recovery. The client then
   * opens a new session, on its connection or a new one.
   */
  sessionExpired(sessionId: bigint, why: string): void {
    if (!this.isCurrent(sessionId)) return;
    getLogger().warn(`${this.#options.owner}: session ${sessionId.toString(16)} expired (${why})`);
    this.#sessionId = 0n;
    if (this.#state === SessionState.CONNECTED) this.#state = SessionState.HANDSHAKING;
    this.#expiries++;
    this.#recovering = true;
    if (!this.#options.recreateEphemerals) this.ephemerals.clear();
    this.requests.fail(RegistryErrorCode.SESSION_EXPIRED, `session ${sessionId.toString(16)} expired`);
    this.#emit({ type: "expired", sessionId });
  }

  /** Closed for good: everything pending fails with CLOSED (`why` completes "Cannot <what> as ..."). */
  close(why: string): void {
    if (this.closed) return;
    this.#state = SessionState.CLOSED;
    this.#firstSession?.reject(new RegistryError(RegistryErrorCode.CLOSED, `Cannot open a session as ${why}`));
    this.requests.fail(RegistryErrorCode.CLOSED, why, true);
    const waiters = [...this.#sessionWaiters];
    this.#sessionWaiters.clear();
    for (const [waiter, what] of waiters) {
      waiter.reject(new RegistryError(RegistryErrorCode.CLOSED, `Cannot ${what} as ${why}`));
    }
  }

  /** The last event, after the client has let go of its sockets. */
  emitClosed(): void {
    this.#emit({ type: "closed" });
  }

  #emit(event: SessionEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        getLogger().error(`${this.#options.owner}: a session listener threw`, { error });
      }
    }
  }
}
