/**
 * The registry server (the seed's SRCServer): the node tree served over one framed, pipelined TCP connection per
 * client, sessions kept alive by signed UDP heartbeats, watches pushed in order, and writes made durable before
 * they are acknowledged. Written on the reactor.
 *
 * @module
 */

import { EventLoop } from "../../reactor/event_loop.ts";
import { DEFAULT_PAUSE_AT_BYTES } from "../../reactor/flow_control.ts";
import { InetAddress } from "../../reactor/inet_address.ts";
import { LengthHeaderCodec } from "../../reactor/length_header_codec.ts";
import { getLogger } from "../../reactor/logger.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import { TcpServer } from "../../reactor/tcp_server.ts";
import { UdpSocket } from "../../reactor/udp_socket.ts";
import {
  type ClientFrame,
  decodeClientFrame,
  detachClientFrame,
  invalidFrameXid,
  type ServerFrame,
  wireLong,
} from "../_codec.ts";
import { RegistryConnection, type ReplySlot, type WaitingRequest } from "./_registry_connection.ts";
import { ReplyWriter } from "./_reply_writer.ts";
import { SessionKeeper } from "./_session_keeper.ts";
import {
  operationOf,
  READ_HANDLERS,
  type ReadHandler,
  type ReadScope,
  WRITE_HANDLERS,
  type WriteHandler,
} from "./_request_handlers.ts";
import { AccessControl } from "./access_control.ts";
import { DataTree } from "./data_tree.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";
import type { Session } from "./session_table.ts";
import { TxnLog } from "../storage/txn_log.ts";
import { WatchManager } from "./watch_manager.ts";
import { WritePipeline } from "./write_pipeline.ts";
import { ListenerHost } from "./_listener_host.ts";
import type { RegistryListener } from "./registry_listener.ts";
import { nextBootEpoch } from "./_boot_epoch.ts";
import {
  REGISTRY_SERVER_DEFAULTS,
  type RegistryServerOptions,
  type RegistryServerStats,
  type ResolvedRegistryServerOptions,
  type SessionInfo,
} from "./registry_server_options.ts";

export type { RegistryServerOptions, RegistryServerStats, SessionInfo } from "./registry_server_options.ts";

/**
 * A registry server.
 *
 * Writes follow ZooKeeper's order: validated against the tree plus the writes in flight, logged and fsynced,
 * applied, and only then visible to reads, watches and replies (write_pipeline.ts). Sessions, access rules and
 * the reply order of a connection live in their own modules; this class wires them to the sockets.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
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
  readonly #access: AccessControl;
  readonly #watches = new WatchManager<Session>();
  readonly #replies: ReplyWriter;
  readonly #keeper: SessionKeeper;
  readonly #connectionsPerIp = new Map<string, number>();
  #stopped = false;
  #stats = {
    requests: 0,
    badFrames: 0,
    rejectedConnections: 0,
    handshakeTimeouts: 0,
  };
  readonly #requestsByOp = new Map<string, number>();
  #startedAt = 0;
  readonly #readScope: ReadScope;
  // Listeners of other protocols' clients (the seed's): started once the server listens, stopped first.
  readonly #listeners: readonly RegistryListener[];
  readonly #startedListeners: RegistryListener[] = [];

  /** Configure a server; nothing listens until {@linkcode RegistryServer.start}. */
  constructor(options: RegistryServerOptions = {}) {
    const defined = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
    this.#options = { ...REGISTRY_SERVER_DEFAULTS, ...defined } as ResolvedRegistryServerOptions;
    this.#loop = options.loop ?? EventLoop.current();
    this.#listeners = [...(options.listeners ?? [])];
    this.#access = new AccessControl({
      authToken: this.#options.authToken,
      acl: this.#options.acl,
      maxAuthTokenBytes: this.#options.maxAuthTokenBytes,
    });
    this.#pipeline = new WritePipeline(new DataTree({ maxDataBytes: this.#options.maxDataBytes }), undefined);
    const pipeline = () => this.#pipeline;
    this.#replies = new ReplyWriter({
      maxReplyBytes: this.#options.maxReplyBytes,
      watches: this.#watches,
      lastZxid: () => this.#pipeline.lastZxid,
    });
    this.#keeper = new SessionKeeper({
      loop: this.#loop,
      heartbeatTimeoutMs: this.#options.heartbeatTimeoutMs,
      heartbeatMaxCount: this.#options.heartbeatMaxCount,
      maxSessions: this.#options.maxSessions,
      maxSessionsPerIp: this.#options.maxSessionsPerIp,
      access: this.#access,
      watches: this.#watches,
      replies: this.#replies,
      pipeline,
      heartbeatPort: () => this.#udp?.address.port ?? 0,
      sendDatagram: (datagram, to) => this.#udp?.send(datagram, to),
      serveWaiting: (state) => this.#serveWaiting(state),
    });
    this.#codec = new LengthHeaderCodec((connection, body) => this.#onFrame(connection, body), {
      maxFrameBytes: this.#options.maxFrameBytes,
      frameTimeoutMs: this.#options.frameTimeoutMs,
      maxBufferedBytes: this.#options.maxBufferedBytes,
      onFrameError: (connection, reason) => {
        this.#stats.badFrames++;
        getLogger().warn(`RegistryServer closing ${connection.name}: ${reason}`);
      },
    });
    const watches = this.#watches;
    const maxWatches = this.#options.maxWatchesPerSession;
    const maxTotal = this.#options.maxWatches;
    this.#readScope = {
      get tree() {
        return pipeline().committed;
      },
      maxReplyBytes: this.#options.maxReplyBytes,
      countOversized: () => this.#replies.stats.oversizedReplies++,
      refuseIfTooBig: (xid, reply) =>
        this.#replies.refuseIfTooBig({ ...reply, xid, zxid: wireLong(this.#pipeline.lastZxid) }),
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
    const sessions = this.#keeper.table.stats;
    return {
      connections: this.#server?.connectionCount ?? 0,
      sessions: this.#keeper.table.size,
      nodes: this.tree.nodeCount,
      watches: this.#watches.size,
      zxid: this.#pipeline.lastZxid,
      syncs: this.#log?.syncs ?? 0,
      ...this.#stats,
      expiredSessions: this.#keeper.expired,
      ...this.#replies.stats,
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
      errorsByCode: Object.fromEntries(this.#replies.errorsByCode),
      listeners: Object.fromEntries(this.#startedListeners.map((listener) => [listener.name, listener.stats()])),
    };
  }

  /** The open sessions, for status pages. */
  sessions(): SessionInfo[] {
    return [...this.#keeper.table.values()].map((session) => ({
      id: session.id,
      connected: session.connection?.connected ?? false,
      misses: this.#keeper.table.misses(session.id),
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
    this.#keeper.start(counterFloor);
    this.#startedAt = this.#loop.now();
    try {
      await this.#listen();
    } catch (error) {
      await this.#log?.close();
      this.#log = undefined;
      throw error;
    }
    const udp = this.#udp!;
    udp.setMessageCallback((data, from) => this.#keeper.table.onDatagram(data, from));
    await this.#keeper.restore();
    await this.#startListeners();
    getLogger().info(
      `RegistryServer listening on ${this.#server!.address} (heartbeats on udp ${udp.address.port}), ` +
        `${this.tree.nodeCount} nodes, zxid ${this.#pipeline.lastZxid}`,
    );
  }

  /**
   * Listen on TCP, then on UDP at the same port number unless told another. With port 0 the kernel picks a TCP port
   * whose UDP twin may be taken by someone else: then another TCP port is picked (a few times).
   */
  async #listen(): Promise<void> {
    const twinPicked = this.#options.port === 0 && this.#options.heartbeatPort === undefined;
    for (let attempt = 1;; attempt++) {
      const server = new TcpServer(
        this.#loop,
        new InetAddress(this.#options.host, this.#options.port),
        "RegistryServer",
        { tls: this.#options.tls },
      );
      server.setConnectionCallback((connection) => this.#onConnection(connection));
      server.setMessageCallback(this.#codec.onMessage);
      // Flow control as reactor/flow_control.ts's applyFlowControl, plus one duty: a client that never reads stops
      // being read once its answers back up, and the reads it sent meanwhile wait until its output drains
      // (RegistryConnection); one that still backs up (watch events it did not ask for this moment) past the hard
      // limit is closed by the ReplyWriter.
      server.setHighWaterMarkCallback((connection) => {
        if (connection.connected) connection.stopRead();
      }, DEFAULT_PAUSE_AT_BYTES);
      server.setWriteCompleteCallback((connection) =>
        (connection.context as RegistryConnection | undefined)?.drained()
      );
      await server.start();
      const udpPort = this.#options.heartbeatPort ?? server.address.port;
      try {
        this.#udp = await UdpSocket.bind(this.#loop, new InetAddress(this.#options.host, udpPort));
        this.#server = server;
        return;
      } catch (error) {
        await server.stop();
        if (!twinPicked || attempt >= 16) throw error;
      }
    }
  }

  async #startListeners(): Promise<void> {
    if (this.#listeners.length === 0) return;
    const host = new ListenerHost({
      loop: this.#loop,
      hostname: this.#options.host,
      pipeline: () => this.#pipeline,
      keeper: this.#keeper,
      access: this.#access,
      readScope: this.#readScope,
      replies: this.#replies,
      countRequest: (op) => {
        this.#stats.requests++;
        this.#requestsByOp.set(op, (this.#requestsByOp.get(op) ?? 0) + 1);
      },
    });
    for (const listener of this.#listeners) {
      try {
        await listener.start(host);
      } catch (error) {
        await this.stop();
        throw error;
      }
      this.#startedListeners.push(listener);
    }
  }

  /** Stop serving: close every connection, stop tracking sessions, flush the log. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const listener of this.#startedListeners.splice(0)) await listener.stop();
    this.#keeper.stop();
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

  // --- connections ---

  #onConnection(connection: TcpConnection): void {
    if (!connection.connected) {
      this.#onDisconnected(connection);
      return;
    }
    const ip = connection.peerAddress.hostname;
    const count = (this.#connectionsPerIp.get(ip) ?? 0) + 1;
    this.#connectionsPerIp.set(ip, count);
    const state = new RegistryConnection(connection, ip, (c, frame) => this.#replies.send(c, frame));
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
    state.closed();
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
      request = { rejected: this.#replies.errorFrame(xid, RegistryError.from(error)) };
    }
    this.#stats.requests++;
    if (state.waiting !== undefined) {
      // The session is being opened: serve this once it is, with its own copy of its bytes (later reads reuse the
      // input buffer they are in).
      if (request.frame !== undefined) detachClientFrame(request.frame);
      state.wait(request);
      return;
    }
    this.#serveRequest(state, request);
  }

  #serveRequest(state: RegistryConnection, request: WaitingRequest): void {
    if (request.frame !== undefined) this.#serve(state, request.frame);
    else state.reply(request.rejected!);
  }

  /** Serve the requests that came while the connection's session was being opened, then read on. */
  #serveWaiting(state: RegistryConnection): void {
    const waiting = state.waiting ?? [];
    state.waiting = undefined;
    for (const request of waiting) {
      if (!state.connected) return;
      this.#serveRequest(state, request);
    }
    state.readIfClear();
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
    if (this.#pipeline.inFlight === 0) return state.reply(this.#replies.errorFrame(xid, error));
    const slot = state.reserve();
    this.#pipeline.afterInFlight(() => state.fill(slot, this.#replies.errorFrame(xid, error)));
  }

  #dispatch(state: RegistryConnection, frame: ClientFrame, op: string): void {
    if (op === "connect") return this.#keeper.connect(state, frame);
    const session = state.session;
    if (session === undefined) {
      state.replyLast(
        this.#replies.errorFrame(
          frame.xid,
          new RegistryError(
            RegistryErrorCode.API_ERROR,
            "Cannot serve the request as the first request must be connect",
          ),
        ),
      );
      return;
    }
    if (this.#keeper.table.get(session.id) !== session) {
      const why = `Cannot serve the request as session ${session.id} has expired`;
      return this.#keeper.answerExpired(state, frame.xid, session.id, why);
    }
    // Any request is a sign of life too.
    this.#keeper.table.touch(session.id);
    if (op === "create" || op === "set" || op === "delete") {
      return this.#change(state, session, frame, WRITE_HANDLERS[op]);
    }
    if (op === "get" || op === "exists" || op === "children" || op === "ping") {
      // Behind an unanswered request of this connection (its own write, say), a read waits for its turn.
      if (state.clear) state.reply(this.#read(session, frame, READ_HANDLERS[op]));
      else state.defer(() => this.#read(session, frame, READ_HANDLERS[op]));
      return;
    }
    if (op === "close") return this.#keeper.close(state, session, frame.xid);
    throw new RegistryError(RegistryErrorCode.UNIMPLEMENTED, "Cannot serve the request as its operation is unknown");
  }

  /** The answer to a read, made now (the tree as it is when the read's turn comes). */
  #read(session: Session, frame: ClientFrame, handler: ReadHandler): ServerFrame {
    try {
      const reply = handler(this.#readScope, session, frame) as ServerFrame;
      reply.xid = frame.xid; // the handler's own literal: no spread into a new object
      reply.zxid = wireLong(this.#pipeline.lastZxid);
      return reply;
    } catch (error) {
      return this.#replies.errorFrame(frame.xid, RegistryError.from(error));
    }
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
          ? this.#replies.errorFrame(xid, error!)
          : { xid, zxid: wireLong(proposal.record.zxid), ...handler.reply(proposal) };
        // The reply first, then the events it caused, then whatever waits behind it on this connection.
        if (slot === undefined) state.reply(reply);
        else state.fill(slot, reply, false);
        if (error === undefined) this.#replies.deliverEvents(proposal!.events, proposal!.record.zxid);
        state.flush();
      },
    );
    // Still on its way to disk (memory only settles at once): the reply keeps its place.
    if (!settled) slot = state.reserve();
  }
}
