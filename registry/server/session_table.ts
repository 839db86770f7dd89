/**
 * The registry server's open sessions: admission limits (in total and per client address), liveness through the
 * SessionTracker, signed UDP heartbeats with a replay floor that rises at every start, and expiry notices for
 * sessions that ended recently, so a client cut off from its TCP connection learns at once that its session is
 * gone.
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import type { InetAddress } from "../../reactor/inet_address.ts";
import {
  encodeHeartbeat,
  HEARTBEAT_FLAG_EXPIRED,
  HEARTBEAT_FLAG_NONE,
  importHeartbeatKey,
  parseHeartbeat,
  verifyHeartbeat,
} from "../heartbeat.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";
import { type SessionTiming, SessionTracker } from "./session_tracker.ts";

/** An open session as the server keeps it. */
export interface Session {
  readonly id: bigint;
  readonly secret: Uint8Array;
  readonly key: CryptoKey;
  readonly authorized: boolean;
  readonly token: string;
  /** The address that opened it ("" for sessions restored at start): counted against the per-address limit. */
  readonly ip: string;
  /** The highest heartbeat counter accepted. */
  lastCounter: bigint;
  /** The connection it is attached to, if any (a TcpConnection-like object owned by the server). */
  connection: { readonly connected: boolean; forceClose(): void } | undefined;
}

type ParsedHeartbeat = NonNullable<ReturnType<typeof parseHeartbeat>>;

/** A session that expired lately: its heartbeats get expiry notices once its end is durable. */
interface ExpiredSession {
  /**
   * Its secret, and its key only once a heartbeat comes after the end: 10,000 CryptoKeys cost 40 MiB of RSS (half
   * of it on the JS heap, which V8 then grows in proportion), 10,000 copies of a 16-byte secret 5 MiB, and most
   * clients send no heartbeat after their session ended.
   */
  readonly secret: Uint8Array;
  key: Promise<CryptoKey> | undefined;
  readonly atMs: number;
  ended: boolean;
  /** The latest heartbeat that came before the end was durable, answered then. */
  waiting: { heartbeat: ParsedHeartbeat; from: InetAddress } | undefined;
}

/** Options of {@linkcode SessionTable}. */
export interface SessionTableOptions {
  /** Milliseconds without a sign of life that count one miss. */
  heartbeatTimeoutMs: number;
  /** Misses that expire a session. */
  heartbeatMaxCount: number;
  /** Grace after a sign of life before the first miss period (the client's heartbeat interval). */
  graceMs: number;
  /** Sessions open at once, in total. */
  maxSessions: number;
  /** Sessions opened from one client address and open at once. */
  maxSessionsPerIp: number;
  /**
   * The heartbeat counter floor of this run: counters below it are rejected (datagrams from before a restart).
   * @default {1n}
   */
  counterFloor?: bigint;
  /** Told when a session expires; it has left the table by then. */
  onExpire: (session: Session) => void;
  /** Sends a datagram (an expiry notice) to a client. */
  sendDatagram: (datagram: Uint8Array, to: InetAddress) => void;
}

/** Counters of the table. */
export interface SessionTableStats {
  heartbeatsAccepted: number;
  heartbeatsRejected: number;
  expiryNotices: number;
  refusedSessions: number;
}

// Ended sessions remembered for expiry notices: bounded in count and age.
const REMEMBER_EXPIRED = 10_000;
const REMEMBER_EXPIRED_MS = 10 * 60_000;

/**
 * The sessions of one server. Must be used from the server's loop.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { SessionTable } from "./session_table.ts";
 * import assert from "node:assert/strict";
 *
 * const table = new SessionTable(new EventLoop(), {
 *   heartbeatTimeoutMs: 1000, heartbeatMaxCount: 5, graceMs: 0, maxSessions: 1, maxSessionsPerIp: 1,
 *   onExpire: () => {}, sendDatagram: () => {},
 * });
 * table.admit("10.0.0.1");
 * assert.equal(table.size, 0);
 * table.clear();
 * ```
 */
export class SessionTable {
  readonly #loop: EventLoop;
  readonly #options: SessionTableOptions;
  readonly #sessions = new Map<bigint, Session>();
  readonly #perIp = new Map<string, number>();
  #reserved = 0;
  readonly #tracker: SessionTracker;
  readonly #expired = new Map<bigint, ExpiredSession>();
  readonly #stats: SessionTableStats = {
    heartbeatsAccepted: 0,
    heartbeatsRejected: 0,
    expiryNotices: 0,
    refusedSessions: 0,
  };

  /** Sessions of a server running on `loop`. */
  constructor(loop: EventLoop, options: SessionTableOptions) {
    this.#loop = loop;
    this.#options = options;
    this.#tracker = new SessionTracker(loop, {
      heartbeatTimeoutMs: options.heartbeatTimeoutMs,
      heartbeatMaxCount: options.heartbeatMaxCount,
      graceMs: options.graceMs,
      onExpire: (id) => {
        const session = this.#sessions.get(id);
        if (session === undefined) return;
        this.remove(session);
        this.#remember(session);
        this.#options.onExpire(session);
      },
    });
  }

  /** Open sessions. */
  get size(): number {
    return this.#sessions.size;
  }

  /** The smallest heartbeat counter accepted in this run. */
  get counterFloor(): bigint {
    return this.#options.counterFloor ?? 1n;
  }

  /** Counters. */
  get stats(): Readonly<SessionTableStats> {
    return this.#stats;
  }

  /** An open session. */
  get(id: bigint): Session | undefined {
    return this.#sessions.get(id);
  }

  /** Every open session. */
  values(): IterableIterator<Session> {
    return this.#sessions.values();
  }

  /** Heartbeat periods a session has missed in a row (-1 when unknown). */
  misses(id: bigint): number {
    return this.#tracker.misses(id);
  }

  /**
   * Reserve room for one more session from `ip`, or throw LIMIT_EXCEEDED; then {@linkcode SessionTable.add} it
   * (admitted) or {@linkcode SessionTable.release} the room.
   */
  admit(ip: string): void {
    const total = this.#sessions.size + this.#reserved;
    const fromIp = this.#perIp.get(ip) ?? 0;
    if (total >= this.#options.maxSessions) {
      this.#stats.refusedSessions++;
      throw new RegistryError(
        RegistryErrorCode.LIMIT_EXCEEDED,
        `Cannot open a session as the server holds its limit of ${this.#options.maxSessions} sessions`,
      );
    }
    if (fromIp >= this.#options.maxSessionsPerIp) {
      this.#stats.refusedSessions++;
      throw new RegistryError(
        RegistryErrorCode.LIMIT_EXCEEDED,
        `Cannot open a session as ${ip} holds its limit of ${this.#options.maxSessionsPerIp} sessions`,
      );
    }
    this.#reserved++;
    this.#perIp.set(ip, fromIp + 1);
  }

  /** Give back the room {@linkcode SessionTable.admit} reserved (the session was not opened). */
  release(ip: string): void {
    this.#reserved--;
    this.#dropIp(ip);
  }

  /**
   * Add a session (durable by now; `admitted` when it took a room from admit) and track its liveness, by `timing`
   * when given (a session of another protocol's clients) or by the table's rule.
   */
  add(session: Session, admitted = false, timing?: SessionTiming): void {
    this.#sessions.set(session.id, session);
    if (admitted) this.#reserved--;
    else if (session.ip !== "") this.#perIp.set(session.ip, (this.#perIp.get(session.ip) ?? 0) + 1);
    if (session.lastCounter < this.counterFloor - 1n) session.lastCounter = this.counterFloor - 1n;
    this.#tracker.add(session.id, timing);
  }

  /** Track an open session's liveness by `timing` from now on (a restored session its listener claims back). */
  retime(id: bigint, timing: SessionTiming): void {
    if (this.#sessions.has(id)) this.#tracker.add(id, timing);
  }

  /** Remove a session (closed or expired). */
  remove(session: Session): void {
    if (this.#sessions.get(session.id) !== session) return;
    this.#sessions.delete(session.id);
    this.#tracker.remove(session.id);
    if (session.ip !== "") this.#dropIp(session.ip);
  }

  /**
   * The end of an expired session (its ephemeral nodes deleted) is durable and visible: its heartbeats get expiry
   * notices from now on, and the latest one that came meanwhile gets its notice now. Until then they are held, so a
   * client told of its expiry never reads its own ephemerals after.
   */
  ended(sessionId: bigint): void {
    const entry = this.#expired.get(sessionId);
    if (entry === undefined || entry.ended) return;
    entry.ended = true;
    const waiting = entry.waiting;
    entry.waiting = undefined;
    if (waiting !== undefined) this.#notifyExpired(waiting.heartbeat, entry, waiting.from);
  }

  #remember(session: Session): void {
    const now = this.#loop.now();
    // A copy: the secret may be a view into a larger buffer (a record read back from the log).
    const secret = session.secret.slice();
    this.#expired.set(session.id, { secret, key: undefined, atMs: now, ended: false, waiting: undefined });
    // Oldest first (insertion order): drop what is too old or over the count.
    for (const [id, entry] of this.#expired) {
      if (this.#expired.size <= REMEMBER_EXPIRED && now - entry.atMs < REMEMBER_EXPIRED_MS) break;
      this.#expired.delete(id);
    }
  }

  #dropIp(ip: string): void {
    const count = (this.#perIp.get(ip) ?? 1) - 1;
    if (count <= 0) this.#perIp.delete(ip);
    else this.#perIp.set(ip, count);
  }

  /** A sign of life over TCP. */
  touch(id: bigint): void {
    this.#tracker.touch(id);
  }

  /** Stop tracking everything (the server stops). */
  clear(): void {
    this.#tracker.clear();
  }

  /** Handle one UDP datagram from `from`. */
  onDatagram(datagram: Uint8Array, from: InetAddress): void {
    const heartbeat = parseHeartbeat(datagram);
    if (heartbeat === undefined || heartbeat.flags !== HEARTBEAT_FLAG_NONE) {
      this.#stats.heartbeatsRejected++;
      return;
    }
    const session = this.#sessions.get(heartbeat.sessionId);
    if (session === undefined) {
      this.#stats.heartbeatsRejected++;
      const expired = this.#expired.get(heartbeat.sessionId);
      if (expired?.ended) this.#notifyExpired(heartbeat, expired, from);
      else if (expired !== undefined) expired.waiting = { heartbeat, from };
      return;
    }
    if (heartbeat.counter <= session.lastCounter) {
      this.#stats.heartbeatsRejected++;
      return;
    }
    verifyHeartbeat(heartbeat.signed, heartbeat.proof, session.key).then((valid) => {
      // Re-check after the await: the session may have ended or a newer heartbeat counted meanwhile.
      if (!valid || this.#sessions.get(session.id) !== session || heartbeat.counter <= session.lastCounter) {
        this.#stats.heartbeatsRejected++;
        return;
      }
      session.lastCounter = heartbeat.counter;
      this.#stats.heartbeatsAccepted++;
      this.#tracker.touch(session.id);
    }, () => this.#stats.heartbeatsRejected++);
  }

  // Only a datagram signed with the ended session's secret gets a notice: a stranger cannot aim notices at others.
  #notifyExpired(
    heartbeat: { sessionId: bigint; counter: bigint; signed: Uint8Array; proof: Uint8Array },
    expired: ExpiredSession,
    from: InetAddress,
  ): void {
    expired.key ??= importHeartbeatKey(expired.secret);
    expired.key
      .then(async (key) => {
        if (!(await verifyHeartbeat(heartbeat.signed, heartbeat.proof, key))) return undefined;
        return await encodeHeartbeat(heartbeat.sessionId, heartbeat.counter, key, HEARTBEAT_FLAG_EXPIRED);
      })
      .then((notice) => {
        if (notice === undefined) return;
        this.#stats.expiryNotices++;
        this.#options.sendDatagram(notice, from);
      }, () => {});
  }
}
