/**
 * The registry server's session lifecycle: open (logged like a write, answered once durable), resume (the secret
 * checked), close and expire (a closeSession record that removes the session's ephemeral nodes, retried until it is
 * durable), and the sessions restored at start.
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import type { InetAddress } from "../../reactor/inet_address.ts";
import { getLogger } from "../../reactor/logger.ts";
import type { TimerId } from "../../reactor/timer_queue.ts";
import { type ClientFrame, type ServerFrame, toBigInt } from "../_codec.ts";
import type { RegistryConnection } from "./_registry_connection.ts";
import type { ReplyWriter } from "./_reply_writer.ts";
import type { AccessControl } from "./access_control.ts";
import { importHeartbeatKey } from "../heartbeat.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";
import { type Session, SessionTable } from "./session_table.ts";
import type { SessionTiming } from "./session_tracker.ts";
import type { TxnRecord } from "../storage/txn_log.ts";
import type { WatchManager } from "./watch_manager.ts";
import type { WritePipeline } from "./write_pipeline.ts";

const EMPTY = new Uint8Array(0);

// Retry closing a session whose closeSession record could not be logged (disk full): its nodes must go.
const CLOSE_RETRY_MS = 1000;

/** What {@linkcode SessionKeeper} works with; all of it owned by the server. */
export interface SessionKeeperOptions {
  loop: EventLoop;
  heartbeatTimeoutMs: number;
  heartbeatMaxCount: number;
  maxSessions: number;
  maxSessionsPerIp: number;
  access: AccessControl;
  watches: WatchManager<Session>;
  replies: ReplyWriter;
  /** The write pipeline (replaced once the data directory is loaded). */
  pipeline: () => WritePipeline;
  /** The UDP heartbeat port clients are told (0 before it is bound). */
  heartbeatPort: () => number;
  sendDatagram: (datagram: Uint8Array, to: InetAddress) => void;
  /** Serve the requests that came on `state` while its session was being opened. */
  serveWaiting: (state: RegistryConnection) => void;
}

/** Opens, resumes, closes and expires sessions. Must be used from the server's loop. */
export class SessionKeeper {
  readonly #options: SessionKeeperOptions;
  #table: SessionTable;
  readonly #retryClose = new Set<bigint>();
  // Sessions gone from the table whose end (the closeSession that deletes their ephemerals) is not durable yet, with
  // what waits for it: nobody is told a session ended before everyone can see that it did.
  readonly #ending = new Map<bigint, Array<() => void>>();
  #retryTimer: TimerId | undefined;
  #stopped = false;
  #expired = 0;

  /** A keeper with `options`; {@linkcode SessionKeeper.start} sets this run's heartbeat counter floor. */
  constructor(options: SessionKeeperOptions) {
    this.#options = options;
    this.#table = this.#newTable(1n);
  }

  /** The open sessions. */
  get table(): SessionTable {
    return this.#table;
  }

  /** Sessions that expired so far. */
  get expired(): number {
    return this.#expired;
  }

  /** Start this run with heartbeat counters from `counterFloor` on. */
  start(counterFloor: bigint): void {
    this.#table = this.#newTable(counterFloor);
  }

  /** Stop tracking sessions (they stay in the log and come back at the next start). */
  stop(): void {
    this.#stopped = true;
    this.#table.clear();
    if (this.#retryTimer !== undefined) this.#options.loop.cancel(this.#retryTimer);
  }

  /** A third of the miss period: two lost datagrams in a row still do not count a miss. */
  get heartbeatIntervalMs(): number {
    return Math.max(10, Math.floor(this.#options.heartbeatTimeoutMs / 3));
  }

  /**
   * Sessions open when the server stopped come back (ZooKeeper does the same): each gets a full timeout from now
   * to resume its connection and heartbeats, and expires as usual if it does not. Ephemeral nodes whose session
   * left no record cannot be resumed: those sessions are closed, through the log.
   */
  async restore(): Promise<void> {
    const tree = this.#options.pipeline().committed;
    for (const [id, record] of tree.sessions) {
      const key = await importHeartbeatKey(record.secret);
      this.#table.add({ id, ...record, key, ip: "", lastCounter: 0n, connection: undefined });
    }
    if (this.#table.size > 0) getLogger().info(`RegistryServer: ${this.#table.size} sessions restored`);
    const owners = new Set<bigint>();
    for (const path of tree.paths()) {
      const owner = tree.exists(path)?.ephemeralOwner ?? 0n;
      if (owner !== 0n && !tree.sessions.has(owner)) owners.add(owner);
    }
    for (const owner of owners) this.#logCloseSession(owner, undefined);
  }

  /** Serve a connect request: resume the session it names, or open a new one (answered once it is durable). */
  connect(state: RegistryConnection, frame: ClientFrame): void {
    const request = frame.connect!;
    if (state.session !== undefined || state.waiting !== undefined) {
      throw new RegistryError(RegistryErrorCode.API_ERROR, "Cannot connect twice on one connection");
    }
    const requestedId = toBigInt(request.sessionId);
    if (requestedId !== 0n) return this.#resume(state, frame, requestedId, request.sessionSecret ?? EMPTY);
    const { access, replies } = this.#options;
    const credentials = access.credentials(request.authToken ?? "");
    this.#table.admit(state.ip);
    state.waiting = [];
    const slot = state.reserve();
    const secret = crypto.getRandomValues(new Uint8Array(16));
    const fail = (error: unknown) => {
      this.#table.release(state.ip);
      state.fill(slot, replies.errorFrame(frame.xid, RegistryError.from(error)));
      this.#options.serveWaiting(state);
    };
    importHeartbeatKey(secret).then((key) => {
      if (!state.connected) {
        this.#table.release(state.ip);
        state.waiting = undefined;
        return;
      }
      const id = this.#newSessionId();
      const session: Session = { id, secret, key, ...credentials, ip: state.ip, lastCounter: 0n, connection: state };
      this.#logSession(session, (error) => {
        if (error !== undefined) return fail(error);
        this.#table.add(session, true);
        if (!state.connected) {
          // Gone while its session was being logged: the session waits for a resume like any other.
          session.connection = undefined;
          return;
        }
        this.#attach(state, session);
        getLogger().debug(`RegistryServer: session ${id.toString(16)} opened by ${state.ip}`);
        state.fill(slot, this.#connectFrame(frame.xid, session, false));
        this.#options.serveWaiting(state);
      });
    }, fail);
  }

  /**
   * Open a session for a client of another protocol (a registry listener's): admitted by the same limits, logged
   * like any session (so it survives a restart), tracked by `timing`, attached to no connection. Resolves with its
   * id once durable; rejects with a RegistryError (LIMIT_EXCEEDED, AUTH_FAILED, STORAGE_FAILED, ...).
   */
  async openDetached(ip: string, token: string, secret: Uint8Array, timing: SessionTiming): Promise<bigint> {
    const credentials = this.#options.access.credentials(token);
    this.#table.admit(ip);
    let key: CryptoKey;
    try {
      key = await importHeartbeatKey(secret);
    } catch (error) {
      this.#table.release(ip);
      throw RegistryError.from(error);
    }
    const id = this.#newSessionId();
    const session: Session = { id, secret, key, ...credentials, ip, lastCounter: 0n, connection: undefined };
    return await new Promise<bigint>((resolve, reject) => {
      this.#logSession(session, (error) => {
        if (error !== undefined) {
          this.#table.release(ip);
          return reject(RegistryError.from(error));
        }
        this.#table.add(session, true, timing);
        resolve(id);
      });
    });
  }

  /** A random session id, never 0 and never one in use. */
  #newSessionId(): bigint {
    const tree = this.#options.pipeline().committed;
    let id = 0n;
    while (id === 0n || this.#table.get(id) !== undefined || tree.sessions.has(id)) {
      id = new DataView(crypto.getRandomValues(new Uint8Array(8)).buffer).getBigUint64(0);
    }
    return id;
  }

  /** Log a new session like any write (so it survives a restart); `done` hears once it is durable or failed. */
  #logSession(session: Session, done: (error: unknown) => void): void {
    const { id, secret, authorized, token } = session;
    try {
      this.#options.pipeline().propose((tree, zxid) => {
        tree.createSession(id, { secret, authorized, token }, zxid);
        const record: TxnRecord = {
          type: "createSession",
          zxid,
          timeMs: Date.now(),
          sessionId: id,
          secret,
          authorized,
          token,
        };
        return { record, events: [], result: undefined };
      }, (error) => done(error));
    } catch (error) {
      done(error);
    }
  }

  #resume(state: RegistryConnection, frame: ClientFrame, id: bigint, secret: Uint8Array): void {
    const session = this.#table.get(id);
    if (session === undefined || !sameBytes(session.secret, secret)) {
      // An unknown id and a wrong secret look alike, so a stranger learns nothing from the answer.
      return this.answerExpired(state, frame.xid, id, `Cannot resume session ${id}: it has expired`);
    }
    const previous = session.connection;
    session.connection = state;
    this.#attach(state, session);
    if (previous !== undefined && previous !== state) previous.forceClose();
    this.#table.touch(session.id);
    state.reply(this.#connectFrame(frame.xid, session, true));
  }

  #attach(state: RegistryConnection, session: Session): void {
    state.session = session;
    if (state.handshakeTimer !== undefined) this.#options.loop.cancel(state.handshakeTimer);
    state.handshakeTimer = undefined;
  }

  /**
   * Answer a request of session `id`, which has left the table, SESSION_EXPIRED once its end is durable (and, like
   * any refusal, behind the writes in flight): until then its ephemeral nodes are still there for everyone to read.
   * While the end cannot be made durable (a failing disk: it is retried) the answer waits; the client's own timeout
   * bounds that.
   */
  answerExpired(state: RegistryConnection, xid: number, id: bigint, message: string): void {
    const slot = state.reserve();
    this.#whenEnded(id, () => {
      this.#options.pipeline().afterInFlight(() => {
        const error = new RegistryError(RegistryErrorCode.SESSION_EXPIRED, message);
        state.fill(slot, this.#options.replies.errorFrame(xid, error));
      });
    });
  }

  #whenEnded(id: bigint, then: () => void): void {
    const waiting = this.#ending.get(id);
    if (waiting === undefined) then();
    else waiting.push(then);
  }

  /** Serve a close request: the session ends for everyone once its closeSession is durable; then answer. */
  close(state: RegistryConnection, session: Session, xid: number): void {
    this.#table.remove(session);
    this.#options.watches.removeWatcher(session);
    const slot = state.reserve();
    let answered = false;
    const answer = (frame: ServerFrame) => {
      if (answered) return;
      answered = true;
      state.fillLast(slot, frame);
    };
    this.#end(session.id, (error) => answer(this.#options.replies.errorFrame(xid, error)));
    this.#whenEnded(session.id, () => answer({ xid, zxid: this.#options.pipeline().lastZxid.toString(), close: {} }));
  }

  #expire(session: Session): void {
    this.#expired++;
    getLogger().info(`RegistryServer: session ${session.id.toString(16)} expired; deleting its ephemeral nodes`);
    this.#options.watches.removeWatcher(session);
    const connection = session.connection as RegistryConnection | undefined;
    session.connection = undefined;
    // Tell a still-connected client plainly, ahead of anything queued, then close; but only once its ephemeral
    // nodes are gone for everyone: a client told of its expiry must not then read its own ephemerals.
    this.#end(session.id, undefined);
    this.#whenEnded(session.id, () => {
      this.#table.ended(session.id);
      if (!connection?.connected) return;
      const error = new RegistryError(RegistryErrorCode.SESSION_EXPIRED, `Session ${session.id} has expired`);
      this.#options.replies.send(connection.connection, this.#options.replies.errorFrame(0, error));
      connection.connection.shutdown();
    });
  }

  /** End a session that has left the table: log its closeSession, and hold what waits for it until it is durable. */
  #end(sessionId: bigint, onFailure: ((error: RegistryError) => void) | undefined): void {
    if (!this.#ending.has(sessionId)) this.#ending.set(sessionId, []);
    this.#logCloseSession(sessionId, onFailure);
  }

  /**
   * Log a closeSession; its ephemeral nodes go once it is durable, and then whatever waits for the session's end
   * runs. A failed one is retried (`onFailure` hears of the first failure): the nodes must go.
   */
  #logCloseSession(sessionId: bigint, onFailure: ((error: RegistryError) => void) | undefined): void {
    const retry = (error: RegistryError) => {
      onFailure?.(error);
      this.#retryClose.add(sessionId);
      this.#retryTimer ??= this.#options.loop.runAfter(CLOSE_RETRY_MS, () => {
        this.#retryTimer = undefined;
        const ids = [...this.#retryClose];
        this.#retryClose.clear();
        if (!this.#stopped) { for (const id of ids) this.#logCloseSession(id, undefined); }
      });
    };
    try {
      this.#options.pipeline().propose((tree, zxid) => {
        const { events } = tree.killSession(sessionId, zxid);
        return { record: { type: "closeSession", zxid, timeMs: Date.now(), sessionId }, events, result: undefined };
      }, (error, proposal) => {
        if (error !== undefined) return retry(error);
        this.#options.replies.deliverEvents(proposal!.events, proposal!.record.zxid);
        const waiting = this.#ending.get(sessionId);
        this.#ending.delete(sessionId);
        for (const then of waiting ?? []) then();
      });
    } catch (error) {
      retry(RegistryError.from(error));
    }
  }

  #connectFrame(xid: number, session: Session, resumed: boolean): ServerFrame {
    const options = this.#options;
    return {
      xid,
      zxid: options.pipeline().lastZxid.toString(),
      connect: {
        sessionId: session.id.toString(),
        sessionSecret: session.secret,
        sessionTimeoutMs: options.heartbeatTimeoutMs * options.heartbeatMaxCount,
        heartbeatIntervalMs: this.heartbeatIntervalMs,
        heartbeatPort: options.heartbeatPort(),
        resumed,
        heartbeatCounterFloor: this.#table.counterFloor.toString(),
      },
    };
  }

  #newTable(counterFloor: bigint): SessionTable {
    const options = this.#options;
    return new SessionTable(options.loop, {
      heartbeatTimeoutMs: options.heartbeatTimeoutMs,
      heartbeatMaxCount: options.heartbeatMaxCount,
      graceMs: this.heartbeatIntervalMs,
      maxSessions: options.maxSessions,
      maxSessionsPerIp: options.maxSessionsPerIp,
      counterFloor,
      onExpire: (session) => this.#expire(session),
      sendDatagram: options.sendDatagram,
    });
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
