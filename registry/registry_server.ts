/**
 * The registry server (the seed's SRCServer): the node tree served over one framed, pipelined TCP connection per
 * client, sessions kept alive by signed UDP heartbeats, watches pushed in order, and writes made durable before
 * they are acknowledged. Written on the reactor.
 *
 * @module
 */

import { EventLoop } from "../reactor/event_loop.ts";
import { applyFlowControl, closeIfBacklogged } from "../reactor/flow_control.ts";
import { InetAddress } from "../reactor/inet_address.ts";
import { LengthHeaderCodec } from "../reactor/length_header_codec.ts";
import { getLogger } from "../reactor/logger.ts";
import type { TcpConnection } from "../reactor/tcp_connection.ts";
import { TcpServer } from "../reactor/tcp_server.ts";
import type { TimerId } from "../reactor/timer_queue.ts";
import { UdpSocket } from "../reactor/udp_socket.ts";
import {
  type ClientFrame,
  decodeClientFrame,
  encodeServerFrame,
  invalidFrameXid,
  type ServerFrame,
  toBigInt,
} from "./_codec.ts";
import { RegistryConnection, type ReplySlot, type WaitingRequest } from "./_registry_connection.ts";
import { operationOf, READ_HANDLERS, type ReadScope, WRITE_HANDLERS, type WriteHandler } from "./_request_handlers.ts";
import { AccessControl } from "./access_control.ts";
import { DataTree, type TreeEvent } from "./data_tree.ts";
import { importHeartbeatKey } from "./heartbeat.ts";
import { RegistryError, RegistryErrorCode } from "./registry_error.ts";
import { type Session, SessionTable } from "./session_table.ts";
import { TxnLog, type TxnRecord } from "./txn_log.ts";
import { WatchManager } from "./watch_manager.ts";
import { WritePipeline } from "./write_pipeline.ts";
import { nextBootEpoch } from "./_boot_epoch.ts";
import {
  REGISTRY_SERVER_DEFAULTS,
  type RegistryServerOptions,
  type RegistryServerStats,
  type ResolvedRegistryServerOptions,
  type SessionInfo,
} from "./registry_server_options.ts";

export type { RegistryServerOptions, RegistryServerStats, SessionInfo } from "./registry_server_options.ts";

const EMPTY = new Uint8Array(0);

// Requests held while a connection's session is being opened, past which it is not read until they are served.
const MAX_WAITING_FRAMES = 4096;

// Retry closing a session whose closeSession record could not be logged (disk full): its nodes must go.
const CLOSE_RETRY_MS = 1000;

/**
 * A registry server.
 *
 * Writes follow ZooKeeper's order: validated against the tree plus the writes in flight, logged and fsynced,
 * applied, and only then visible to reads, watches and replies (write_pipeline.ts). Sessions, access rules and
 * the reply order of a connection live in their own modules; this class wires them to the sockets.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import { RegistryServer } from "./registry_server.ts";
 * import assert from "node:assert/strict";
 *
 * const server = new RegistryServer({ port: 0, loop: new EventLoop() });
 * await server.start();
 * assert.ok(server.address.port > 0);
 * assert.equal(server.stats().nodes, 1);
 * await server.stop();
 * ```
 */
export class RegistryServer {
  readonly #options: ResolvedRegistryServerOptions;
  readonly #loop: EventLoop;
  #pipeline: WritePipeline;
  #log: TxnLog | undefined;
  #server: TcpServer | undefined;
  #udp: UdpSocket | undefined;
  readonly #codec: LengthHeaderCodec;
  readonly #replyCodec: LengthHeaderCodec;
  readonly #access: AccessControl;
  readonly #watches = new WatchManager<Session>();
  #sessions: SessionTable;
  readonly #connectionsPerIp = new Map<string, number>();
  readonly #retryClose = new Set<bigint>();
  #retryTimer: TimerId | undefined;
  #stopped = false;
  #stats = {
    requests: 0,
    badFrames: 0,
    rejectedConnections: 0,
    expiredSessions: 0,
    handshakeTimeouts: 0,
    oversizedReplies: 0,
    sendFailures: 0,
  };
  readonly #requestsByOp = new Map<string, number>();
  readonly #errorsByCode = new Map<string, number>();
  #startedAt = 0;
  readonly #readScope: ReadScope;

  /** Configure a server; nothing listens until {@linkcode RegistryServer.start}. */
  constructor(options: RegistryServerOptions = {}) {
    const defined = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
    this.#options = { ...REGISTRY_SERVER_DEFAULTS, ...defined } as ResolvedRegistryServerOptions;
    this.#loop = options.loop ?? EventLoop.current();
    this.#access = new AccessControl({
      authToken: this.#options.authToken,
      acl: this.#options.acl,
      maxAuthTokenBytes: this.#options.maxAuthTokenBytes,
    });
    this.#pipeline = new WritePipeline(new DataTree({ maxDataBytes: this.#options.maxDataBytes }), undefined);
    this.#sessions = this.#newSessionTable(1n);
    this.#codec = new LengthHeaderCodec((connection, body) => this.#onFrame(connection, body), {
      maxFrameBytes: this.#options.maxFrameBytes,
      frameTimeoutMs: this.#options.frameTimeoutMs,
      maxBufferedBytes: this.#options.maxBufferedBytes,
      onFrameError: (connection, reason) => {
        this.#stats.badFrames++;
        getLogger().warn(`RegistryServer closing ${connection.name}: ${reason}`);
      },
    });
    this.#replyCodec = new LengthHeaderCodec(() => {}, { maxFrameBytes: this.#options.maxReplyBytes });
    const watches = this.#watches;
    const maxWatches = this.#options.maxWatchesPerSession;
    const maxTotal = this.#options.maxWatches;
    const pipeline = () => this.#pipeline;
    this.#readScope = {
      get tree() {
        return pipeline().committed;
      },
      maxReplyBytes: this.#options.maxReplyBytes,
      countOversized: () => this.#stats.oversizedReplies++,
      watch(session, path, kind) {
        if (watches.has(path, kind, session)) return;
        if (watches.countOf(session) >= maxWatches) {
          throw new RegistryError(
            RegistryErrorCode.LIMIT_EXCEEDED,
            `Cannot watch '${path}' as this session holds its limit of ${maxWatches} watches`,
          );
        }
        if (watches.size >= maxTotal) {
          throw new RegistryError(
            RegistryErrorCode.LIMIT_EXCEEDED,
            `Cannot watch '${path}' as the server holds its limit of ${maxTotal} watches`,
          );
        }
        watches.add(path, kind, session);
      },
    };
  }

  /** The TCP address (real port after start). */
  get address(): InetAddress {
    if (this.#server === undefined) throw new TypeError("Cannot get the address of a registry server before start");
    return this.#server.address;
  }

  /** The UDP heartbeat address. */
  get heartbeatAddress(): InetAddress {
    if (this.#udp === undefined) {
      throw new TypeError("Cannot get the heartbeat address of a registry server before start");
    }
    return this.#udp.address;
  }

  /**
   * The tree as reads see it: durable, applied changes only (read it; do not change it from outside). For the
   * status pages and tests; not part of the public API (clients read through {@linkcode RegistryClient}).
   *
   * @ignore
   */
  get tree(): DataTree {
    return this.#pipeline.committed;
  }

  /** Whether the server refuses changes because its log cannot be written (reads still work). */
  get readOnly(): boolean {
    return this.#pipeline.readOnly;
  }

  /** Counters. */
  stats(): RegistryServerStats {
    const sessions = this.#sessions.stats;
    return {
      connections: this.#server?.connectionCount ?? 0,
      sessions: this.#sessions.size,
      nodes: this.tree.nodeCount,
      watches: this.#watches.size,
      zxid: this.#pipeline.lastZxid,
      syncs: this.#log?.syncs ?? 0,
      ...this.#stats,
      heartbeatsAccepted: sessions.heartbeatsAccepted,
      heartbeatsRejected: sessions.heartbeatsRejected,
      expiryNotices: sessions.expiryNotices,
      refusedSessions: sessions.refusedSessions,
      writeFailures: this.#pipeline.failures,
      readOnly: this.#pipeline.readOnly,
      framesTimedOut: this.#codec.stats.framesTimedOut,
      closedForBufferedBytes: this.#codec.stats.closedForBufferCap,
      uptimeMs: this.#startedAt === 0 ? 0 : this.#loop.now() - this.#startedAt,
      requestsByOp: Object.fromEntries(this.#requestsByOp),
      errorsByCode: Object.fromEntries(this.#errorsByCode),
    };
  }

  /** The open sessions, for status pages. */
  sessions(): SessionInfo[] {
    return [...this.#sessions.values()].map((session) => ({
      id: session.id,
      connected: session.connection?.connected ?? false,
      misses: this.#sessions.misses(session.id),
      ephemerals: this.tree.ephemeralsOf(session.id),
      peer: session.connection?.connected ? (session.connection as RegistryConnection).ip : undefined,
    }));
  }

  /** Load the data directory (if any), listen on TCP and UDP, and start serving. */
  async start(): Promise<void> {
    let counterFloor = 1n;
    if (this.#options.dataDir !== undefined) {
      const { log, tree } = await TxnLog.open(this.#loop.backend, this.#options.dataDir, {
        maxDataBytes: this.#options.maxDataBytes,
        snapshotEveryTxns: this.#options.snapshotEveryTxns,
      });
      this.#log = log;
      this.#pipeline = new WritePipeline(tree, log, { unsafeEarlyFailures: this.#options.unsafeEarlyFailures });
      counterFloor = await nextBootEpoch(this.#loop.backend, this.#options.dataDir) << 32n;
    }
    this.#sessions = this.#newSessionTable(counterFloor);
    this.#startedAt = this.#loop.now();
    const server = new TcpServer(
      this.#loop,
      new InetAddress(this.#options.host, this.#options.port),
      "RegistryServer",
      { tls: this.#options.tls },
    );
    server.setConnectionCallback((connection) => this.#onConnection(connection));
    server.setMessageCallback(this.#codec.onMessage);
    // A client that never reads stops being read once its answers back up; one that still backs up (watch
    // events it did not ask for this moment) past the hard limit is closed in #write.
    applyFlowControl(server);
    await server.start();
    this.#server = server;
    const udpPort = this.#options.heartbeatPort ?? server.address.port;
    try {
      this.#udp = await UdpSocket.bind(this.#loop, new InetAddress(this.#options.host, udpPort));
    } catch (error) {
      await server.stop();
      await this.#log?.close();
      this.#log = undefined;
      throw error;
    }
    this.#udp.setMessageCallback((data, from) => this.#sessions.onDatagram(data, from));
    await this.#restoreSessions();
    getLogger().info(
      `RegistryServer listening on ${server.address} (heartbeats on udp ${this.#udp.address.port}), ` +
        `${this.tree.nodeCount} nodes, zxid ${this.#pipeline.lastZxid}`,
    );
  }

  /** Stop serving: close every connection, stop tracking sessions, flush the log. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#sessions.clear();
    if (this.#retryTimer !== undefined) this.#loop.cancel(this.#retryTimer);
    await this.#server?.stop();
    await this.#udp?.close();
    await this.#log?.close();
  }

  /** Close every client connection (sessions stay until they expire). For tests of resumption. */
  async dropConnectionsForTesting(): Promise<void> {
    await this.#server?.closeConnections();
  }

  /** Same as {@linkcode RegistryServer.stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  #newSessionTable(counterFloor: bigint): SessionTable {
    return new SessionTable(this.#loop, {
      heartbeatTimeoutMs: this.#options.heartbeatTimeoutMs,
      heartbeatMaxCount: this.#options.heartbeatMaxCount,
      graceMs: this.#heartbeatIntervalMs(),
      maxSessions: this.#options.maxSessions,
      maxSessionsPerIp: this.#options.maxSessionsPerIp,
      counterFloor,
      onExpire: (session) => this.#expire(session),
      sendDatagram: (datagram, to) => this.#udp?.send(datagram, to),
    });
  }

  /**
   * Sessions open when the server stopped come back (ZooKeeper does the same): each gets a full timeout from now
   * to resume its connection and heartbeats, and expires as usual if it does not. Ephemeral nodes whose session
   * left no record cannot be resumed: those sessions are closed, through the log.
   */
  async #restoreSessions(): Promise<void> {
    for (const [id, record] of this.tree.sessions) {
      const key = await importHeartbeatKey(record.secret);
      this.#sessions.add({ id, ...record, key, ip: "", lastCounter: 0n, connection: undefined });
    }
    if (this.#sessions.size > 0) getLogger().info(`RegistryServer: ${this.#sessions.size} sessions restored`);
    const owners = new Set<bigint>();
    for (const path of this.tree.paths()) {
      const owner = this.tree.exists(path)?.ephemeralOwner ?? 0n;
      if (owner !== 0n && !this.tree.sessions.has(owner)) owners.add(owner);
    }
    for (const owner of owners) this.#logCloseSession(owner, undefined);
  }

  // --- connections ---

  #onConnection(connection: TcpConnection): void {
    if (!connection.connected) {
      this.#onDisconnected(connection);
      return;
    }
    const ip = connection.peerAddress.hostname;
    const count = (this.#connectionsPerIp.get(ip) ?? 0) + 1;
    this.#connectionsPerIp.set(ip, count);
    const state = new RegistryConnection(connection, ip, (c, frame) => this.#send(c, frame));
    connection.context = state;
    if (count > this.#options.maxConnectionsPerIp) {
      this.#stats.rejectedConnections++;
      getLogger().warn(`RegistryServer refusing ${connection.name}: ${count} connections from ${ip} exceed the limit`);
      connection.forceClose();
      return;
    }
    state.handshakeTimer = this.#loop.runAfter(this.#options.handshakeTimeoutMs, () => {
      state.handshakeTimer = undefined;
      if (state.session === undefined && state.waiting === undefined && connection.connected) {
        this.#stats.handshakeTimeouts++;
        getLogger().debug(`RegistryServer closing ${connection.name}: no session after the handshake timeout`);
        connection.forceClose();
      }
    });
  }

  #onDisconnected(connection: TcpConnection): void {
    // The codec lets go of the connection's partial frame and its deadline timer.
    this.#codec.onConnection(connection);
    const state = connection.context as RegistryConnection | undefined;
    if (state === undefined) return;
    const count = (this.#connectionsPerIp.get(state.ip) ?? 1) - 1;
    if (count <= 0) this.#connectionsPerIp.delete(state.ip);
    else this.#connectionsPerIp.set(state.ip, count);
    // Nothing of a closed connection may stay reachable from a timer.
    if (state.handshakeTimer !== undefined) this.#loop.cancel(state.handshakeTimer);
    state.handshakeTimer = undefined;
    state.waiting = undefined;
    // The session outlives its connection until it expires, so the client can resume it elsewhere.
    if (state.session !== undefined && state.session.connection === state) state.session.connection = undefined;
  }

  #onFrame(connection: TcpConnection, body: Uint8Array): void {
    const state = connection.context as RegistryConnection;
    let request: WaitingRequest;
    try {
      request = { frame: decodeClientFrame(body) };
    } catch (error) {
      const xid = invalidFrameXid(error);
      if (xid === undefined) {
        this.#stats.badFrames++;
        getLogger().warn(`RegistryServer closing ${connection.name}: a frame does not parse`, { error });
        connection.forceClose();
        return;
      }
      // Well framed, but a string is not UTF-8: answer that request in its turn and keep the connection.
      request = { rejected: this.#errorFrame(xid, RegistryError.from(error)) };
    }
    this.#stats.requests++;
    if (state.waiting !== undefined) {
      // The session is being opened: serve this once it is (and read no more while many wait).
      state.waiting.push(request);
      if (state.waiting.length >= MAX_WAITING_FRAMES && connection.reading) connection.stopRead();
      return;
    }
    this.#serveRequest(state, request);
  }

  #serveRequest(state: RegistryConnection, request: WaitingRequest): void {
    if (request.frame !== undefined) this.#serve(state, request.frame);
    else state.reply(request.rejected!);
  }

  #serve(state: RegistryConnection, frame: ClientFrame): void {
    const op = operationOf(frame) ?? "unknown";
    this.#requestsByOp.set(op, (this.#requestsByOp.get(op) ?? 0) + 1);
    try {
      this.#dispatch(state, frame, op);
    } catch (error) {
      this.#answerInOrder(state, frame.xid, RegistryError.from(error));
    }
  }

  /**
   * Answer a refused request once the writes in flight have settled, like a failed write: a refusal can depend on
   * them (an expired session's closeSession, say), and a client must not learn of a state before anyone can read it.
   */
  #answerInOrder(state: RegistryConnection, xid: number, error: RegistryError): void {
    if (this.#pipeline.inFlight === 0) return state.reply(this.#errorFrame(xid, error));
    const slot = state.reserve();
    this.#pipeline.afterInFlight(() => state.fill(slot, this.#errorFrame(xid, error)));
  }

  #dispatch(state: RegistryConnection, frame: ClientFrame, op: string): void {
    if (op === "connect") return this.#connect(state, frame);
    const session = state.session;
    if (session === undefined) {
      state.reply(
        this.#errorFrame(
          frame.xid,
          new RegistryError(
            RegistryErrorCode.API_ERROR,
            "Cannot serve the request as the first request must be connect",
          ),
        ),
      );
      state.connection.shutdown();
      return;
    }
    if (this.#sessions.get(session.id) !== session) {
      throw new RegistryError(
        RegistryErrorCode.SESSION_EXPIRED,
        `Cannot serve the request as session ${session.id} has expired`,
      );
    }
    // Any request is a sign of life too.
    this.#sessions.touch(session.id);
    if (op === "create" || op === "set" || op === "delete") {
      return this.#change(state, session, frame, WRITE_HANDLERS[op]);
    }
    if (op === "get" || op === "exists" || op === "children" || op === "ping") {
      const read = READ_HANDLERS[op];
      const xid = frame.xid;
      // Behind an unanswered request of this connection (its own write, say), a read waits for its turn.
      state.defer(() => {
        try {
          return { xid, zxid: this.#pipeline.lastZxid.toString(), ...read(this.#readScope, session, frame) };
        } catch (error) {
          return this.#errorFrame(xid, RegistryError.from(error));
        }
      });
      return;
    }
    if (op === "close") return this.#close(state, session, frame.xid);
    throw new RegistryError(RegistryErrorCode.UNIMPLEMENTED, "Cannot serve the request as its operation is unknown");
  }

  #change(state: RegistryConnection, session: Session, frame: ClientFrame, handler: WriteHandler): void {
    const { path, ephemeral } = handler.target(frame);
    this.#access.checkChange(session, operationOf(frame)!, path, ephemeral);
    const xid = frame.xid;
    let slot: ReplySlot | undefined;
    let settled = false;
    this.#pipeline.propose(
      (tree, zxid) => handler.build(frame, session, tree, zxid, Date.now()),
      (error, proposal) => {
        settled = true;
        const reply = error !== undefined || proposal === undefined
          ? this.#errorFrame(xid, error!)
          : { xid, zxid: proposal.record.zxid.toString(), ...handler.reply(proposal) };
        // The reply first, then the events it caused, then whatever waits behind it on this connection.
        if (slot === undefined) state.reply(reply);
        else state.fill(slot, reply, false);
        if (error === undefined) this.#deliverEvents(proposal!.events, proposal!.record.zxid);
        state.flush();
      },
    );
    // Still on its way to disk (memory only settles at once): the reply keeps its place.
    if (!settled) slot = state.reserve();
  }

  // --- sessions ---

  #connect(state: RegistryConnection, frame: ClientFrame): void {
    const request = frame.connect!;
    if (state.session !== undefined || state.waiting !== undefined) {
      throw new RegistryError(RegistryErrorCode.API_ERROR, "Cannot connect twice on one connection");
    }
    const requestedId = toBigInt(request.sessionId);
    if (requestedId !== 0n) {
      const session = this.#sessions.get(requestedId);
      if (session === undefined || !sameBytes(session.secret, request.sessionSecret ?? EMPTY)) {
        // An unknown id and a wrong secret look alike, so a stranger learns nothing from the answer.
        throw new RegistryError(
          RegistryErrorCode.SESSION_EXPIRED,
          `Cannot resume session ${requestedId}: it has expired`,
        );
      }
      const previous = session.connection;
      session.connection = state;
      this.#attach(state, session);
      if (previous !== undefined && previous !== state) previous.forceClose();
      this.#sessions.touch(session.id);
      state.reply(this.#connectFrame(frame.xid, session, true));
      return;
    }
    const credentials = this.#access.credentials(request.authToken ?? "");
    this.#sessions.admit(state.ip);
    state.waiting = [];
    const slot = state.reserve();
    const secret = crypto.getRandomValues(new Uint8Array(16));
    const fail = (error: unknown) => {
      this.#sessions.release(state.ip);
      state.fill(slot, this.#errorFrame(frame.xid, RegistryError.from(error)));
      this.#serveWaiting(state);
    };
    importHeartbeatKey(secret).then((key) => {
      if (!state.connected) {
        this.#sessions.release(state.ip);
        state.waiting = undefined;
        return;
      }
      let id = 0n;
      while (id === 0n || this.#sessions.get(id) !== undefined || this.tree.sessions.has(id)) {
        id = new DataView(crypto.getRandomValues(new Uint8Array(8)).buffer).getBigUint64(0);
      }
      const session: Session = { id, secret, key, ...credentials, ip: state.ip, lastCounter: 0n, connection: state };
      try {
        // Logged like any write, so the session survives a restart; answered once durable.
        this.#pipeline.propose((tree, zxid) => {
          tree.createSession(id, { secret, ...credentials }, zxid);
          const record: TxnRecord = {
            type: "createSession",
            zxid,
            timeMs: Date.now(),
            sessionId: id,
            secret,
            ...credentials,
          };
          return { record, events: [], result: undefined };
        }, (error) => {
          if (error !== undefined) return fail(error);
          this.#sessions.add(session, true);
          if (!state.connected) {
            // Gone while its session was being logged: the session waits for a resume like any other.
            session.connection = undefined;
            return;
          }
          this.#attach(state, session);
          getLogger().debug(`RegistryServer: session ${id.toString(16)} opened by ${state.ip}`);
          state.fill(slot, this.#connectFrame(frame.xid, session, false));
          this.#serveWaiting(state);
        });
      } catch (error) {
        fail(error);
      }
    }, fail);
  }

  #attach(state: RegistryConnection, session: Session): void {
    state.session = session;
    if (state.handshakeTimer !== undefined) this.#loop.cancel(state.handshakeTimer);
    state.handshakeTimer = undefined;
  }

  #serveWaiting(state: RegistryConnection): void {
    const waiting = state.waiting ?? [];
    state.waiting = undefined;
    for (const request of waiting) {
      if (!state.connected) return;
      this.#serveRequest(state, request);
    }
    if (!state.connection.reading && state.connected) state.connection.startRead();
  }

  #close(state: RegistryConnection, session: Session, xid: number): void {
    this.#sessions.remove(session, false);
    this.#watches.removeWatcher(session);
    const slot = state.reserve();
    this.#logCloseSession(session.id, (error) => {
      state.fill(
        slot,
        error === undefined
          ? { xid, zxid: this.#pipeline.lastZxid.toString(), close: {} }
          : this.#errorFrame(xid, error),
      );
      state.connection.shutdown();
    });
  }

  #expire(session: Session): void {
    this.#stats.expiredSessions++;
    getLogger().info(`RegistryServer: session ${session.id.toString(16)} expired; deleting its ephemeral nodes`);
    this.#watches.removeWatcher(session);
    const connection = session.connection as RegistryConnection | undefined;
    session.connection = undefined;
    // Tell a still-connected client plainly, ahead of anything queued, then close; but only once its ephemeral
    // nodes are gone for everyone (or their removal failed and is being retried): a client told of its expiry must
    // not then read its own ephemerals.
    this.#logCloseSession(session.id, () => {
      if (!connection?.connected) return;
      const error = new RegistryError(RegistryErrorCode.SESSION_EXPIRED, `Session ${session.id} has expired`);
      this.#send(connection.connection, this.#errorFrame(0, error));
      connection.connection.shutdown();
    });
  }

  /** Log a closeSession; its ephemeral nodes go once it is durable. A failed one is retried: the nodes must go. */
  #logCloseSession(sessionId: bigint, done: ((error: RegistryError | undefined) => void) | undefined): void {
    const retry = (error: RegistryError) => {
      done?.(error);
      this.#retryClose.add(sessionId);
      this.#retryTimer ??= this.#loop.runAfter(CLOSE_RETRY_MS, () => {
        this.#retryTimer = undefined;
        const ids = [...this.#retryClose];
        this.#retryClose.clear();
        if (!this.#stopped) { for (const id of ids) this.#logCloseSession(id, undefined); }
      });
    };
    try {
      this.#pipeline.propose((tree, zxid) => {
        const { events } = tree.killSession(sessionId, zxid);
        return { record: { type: "closeSession", zxid, timeMs: Date.now(), sessionId }, events, result: undefined };
      }, (error, proposal) => {
        if (error !== undefined) return retry(error);
        done?.(undefined);
        this.#deliverEvents(proposal!.events, proposal!.record.zxid);
      });
    } catch (error) {
      retry(RegistryError.from(error));
    }
  }

  /** A third of the miss period: two lost datagrams in a row still do not count a miss. */
  #heartbeatIntervalMs(): number {
    return Math.max(10, Math.floor(this.#options.heartbeatTimeoutMs / 3));
  }

  #connectFrame(xid: number, session: Session, resumed: boolean): ServerFrame {
    return {
      xid,
      zxid: this.#pipeline.lastZxid.toString(),
      connect: {
        sessionId: session.id.toString(),
        sessionSecret: session.secret,
        sessionTimeoutMs: this.#options.heartbeatTimeoutMs * this.#options.heartbeatMaxCount,
        heartbeatIntervalMs: this.#heartbeatIntervalMs(),
        heartbeatPort: this.#udp?.address.port ?? 0,
        resumed,
        heartbeatCounterFloor: this.#sessions.counterFloor.toString(),
      },
    };
  }

  // --- replies ---

  #deliverEvents(events: readonly TreeEvent[], zxid: bigint): void {
    if (events.length === 0) return;
    const zxidText = zxid.toString();
    for (const { watcher, event } of this.#watches.trigger(events)) {
      const connection = watcher.connection as RegistryConnection | undefined;
      if (connection === undefined || !connection.connected) continue;
      connection.notify({ xid: 0, zxid: zxidText, event: { ...event, zxid: zxidText } });
    }
  }

  /** Encode and send one frame. Never throws: a reply too big for a frame becomes an error answer. */
  #send(connection: TcpConnection, frame: ServerFrame): void {
    try {
      let bytes = encodeServerFrame(frame);
      if (bytes.length > this.#options.maxReplyBytes) {
        this.#stats.oversizedReplies++;
        const error = new RegistryError(
          RegistryErrorCode.LIMIT_EXCEEDED,
          `Cannot answer request ${frame.xid} as its reply of ${bytes.length} bytes exceeds the limit of ` +
            `${this.#options.maxReplyBytes} bytes (maxReplyBytes)`,
        );
        bytes = encodeServerFrame(this.#errorFrame(frame.xid, error));
      }
      this.#replyCodec.send(connection, bytes);
      closeIfBacklogged(connection);
    } catch (error) {
      this.#stats.sendFailures++;
      getLogger().error(`RegistryServer: cannot send to ${connection.name}; closing it`, { error });
      connection.forceClose();
    }
  }

  #errorFrame(xid: number, error: RegistryError): ServerFrame {
    this.#errorsByCode.set(error.codeName, (this.#errorsByCode.get(error.codeName) ?? 0) + 1);
    return { xid, errorCode: error.code, errorMessage: error.message, zxid: this.#pipeline.lastZxid.toString() };
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
