/**
 * The registry server (the seed's SRCServer): the node tree served over one framed, pipelined TCP connection per
 * client, sessions kept alive by signed UDP heartbeats, watches pushed in order, and writes made durable before
 * they are acknowledged. Written on the reactor.
 *
 * @module
 */

import type { TlsServerOptions } from "../reactor/backend/net_backend.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import { InetAddress } from "../reactor/inet_address.ts";
import { LengthHeaderCodec } from "../reactor/length_header_codec.ts";
import { getLogger } from "../reactor/logger.ts";
import type { TcpConnection } from "../reactor/tcp_connection.ts";
import { applyFlowControl, closeIfBacklogged } from "../reactor/flow_control.ts";
import { TcpServer } from "../reactor/tcp_server.ts";
import { UdpSocket } from "../reactor/udp_socket.ts";
import {
  type ClientFrame,
  decodeClientFrame,
  encodeServerFrame,
  type ServerFrame,
  statToWire,
  toBigInt,
} from "./_codec.ts";
import { DataTree, NodeType, type TreeEvent } from "./data_tree.ts";
import { importHeartbeatKey, parseHeartbeat, verifyHeartbeat } from "./heartbeat.ts";
import { RegistryError, RegistryErrorCode } from "./registry_error.ts";
import { SessionTracker } from "./session_tracker.ts";
import { TxnLog, type TxnRecord } from "./txn_log.ts";
import { WatchKind, WatchManager } from "./watch_manager.ts";

/** Options of {@linkcode RegistryServer}; the seed's config keys map onto them. */
export interface RegistryServerOptions {
  /**
   * The address to listen on (the seed's `ip`).
   * @default {"127.0.0.1"}
   */
  host?: string;
  /**
   * The TCP port (the seed's `port`); 0 picks one.
   * @default {10606}
   */
  port?: number;
  /**
   * The UDP heartbeat port; `undefined` means the same number as the TCP port, as in the seed.
   * @default {undefined}
   */
  heartbeatPort?: number;
  /**
   * Milliseconds without a heartbeat that count as one miss (the seed's `heartbeatTimeout`).
   * @default {2000}
   */
  heartbeatTimeoutMs?: number;
  /**
   * Consecutive misses that expire a session (the seed's `heartbeatMaxCount`).
   * @default {5}
   */
  heartbeatMaxCount?: number;
  /**
   * Directory for the transaction log and snapshots; without one the tree lives in memory only.
   * @default {undefined}
   */
  dataDir?: string;
  /**
   * Take a snapshot after this many logged transactions.
   * @default {10000}
   */
  snapshotEveryTxns?: number;
  /**
   * The largest frame body accepted from a client, in bytes.
   * @default {4194304}
   */
  maxFrameBytes?: number;
  /**
   * The largest node data, in bytes.
   * @default {1048576}
   */
  maxDataBytes?: number;
  /**
   * Connections accepted from one IP address at a time.
   * @default {1024}
   */
  maxConnectionsPerIp?: number;
  /**
   * When set, create/set/delete need a session that connected with this token.
   * @default {undefined}
   */
  authToken?: string;
  /**
   * Close a connection that has not opened or resumed a session this long after it came, in milliseconds (it
   * holds a slot of the per-IP limit for nothing). Connections with a session are kept alive by heartbeats.
   * @default {10000}
   */
  handshakeTimeoutMs?: number;
  /**
   * Per-path ACLs: changes (create, set, delete) at or under a prefix need a session that connected with one of
   * its tokens; the longest matching prefix decides. Reads stay open. Example: `{ "/dwt.UserServiceRpc": ["t1"] }`.
   * @default {{}}
   */
  acl?: Record<string, string[]>;
  /**
   * The loop to run on.
   * @default {EventLoop.current()}
   */
  loop?: EventLoop;
  /**
   * Serve TLS with this PEM certificate and key.
   * @default {undefined}
   */
  tls?: TlsServerOptions;
}

/** Counters for the status endpoint and tests. */
export interface RegistryServerStats {
  connections: number;
  sessions: number;
  nodes: number;
  watches: number;
  zxid: bigint;
  requests: number;
  heartbeatsAccepted: number;
  heartbeatsRejected: number;
  badFrames: number;
  rejectedConnections: number;
  expiredSessions: number;
  /** Connections closed for opening no session in time. */
  handshakeTimeouts: number;
  syncs: number;
  /** Milliseconds since start. */
  uptimeMs: number;
  /** Requests by operation (`create`, `get`, ...). */
  requestsByOp: Record<string, number>;
  /** Error answers by code name (`NO_NODE`, ...). */
  errorsByCode: Record<string, number>;
}

/** One session as the status pages show it. */
export interface SessionInfo {
  id: bigint;
  /** Whether a TCP connection is attached now. */
  connected: boolean;
  /** Heartbeat periods missed in a row. */
  misses: number;
  /** Its ephemeral nodes. */
  ephemerals: string[];
  /** The client's address, while connected. */
  peer?: string;
}

const OPS = ["connect", "create", "set", "delete", "get", "exists", "children", "ping", "close"] as const;

interface Session {
  readonly id: bigint;
  readonly secret: Uint8Array;
  readonly key: CryptoKey;
  readonly authorized: boolean;
  readonly token: string;
  lastCounter: bigint;
  connection: TcpConnection | undefined;
}

/** One answer or event waiting for its turn on a connection: responses leave in request order. */
interface Slot {
  bytes: Uint8Array | undefined;
}

interface ConnectionState {
  session: Session | undefined;
  slots: Slot[];
  ip: string;
  connecting: boolean;
}

const EMPTY = new Uint8Array(0);

/**
 * A registry server.
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
  readonly #options:
    & Required<Omit<RegistryServerOptions, "dataDir" | "authToken" | "heartbeatPort" | "loop" | "tls">>
    & {
      tls?: TlsServerOptions;
      dataDir?: string;
      authToken?: string;
      heartbeatPort?: number;
    };
  readonly #loop: EventLoop;
  #tree: DataTree;
  #log: TxnLog | undefined;
  #server: TcpServer | undefined;
  #udp: UdpSocket | undefined;
  readonly #codec: LengthHeaderCodec;
  readonly #watches = new WatchManager<Session>();
  readonly #sessions = new Map<bigint, Session>();
  readonly #tracker: SessionTracker;
  readonly #connectionsPerIp = new Map<string, number>();
  #zxid = 0n;
  #stopped = false;
  #stats = {
    requests: 0,
    heartbeatsAccepted: 0,
    heartbeatsRejected: 0,
    badFrames: 0,
    rejectedConnections: 0,
    expiredSessions: 0,
    handshakeTimeouts: 0,
  };
  readonly #requestsByOp = new Map<string, number>();
  readonly #errorsByCode = new Map<string, number>();
  #startedAt = 0;

  /** Configure a server; nothing listens until {@linkcode RegistryServer.start}. */
  constructor(options: RegistryServerOptions = {}) {
    this.#options = {
      host: options.host ?? "127.0.0.1",
      port: options.port ?? 10606,
      heartbeatPort: options.heartbeatPort,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 2000,
      heartbeatMaxCount: options.heartbeatMaxCount ?? 5,
      dataDir: options.dataDir,
      snapshotEveryTxns: options.snapshotEveryTxns ?? 10_000,
      maxFrameBytes: options.maxFrameBytes ?? 4 * 1024 * 1024,
      maxDataBytes: options.maxDataBytes ?? 1024 * 1024,
      maxConnectionsPerIp: options.maxConnectionsPerIp ?? 1024,
      authToken: options.authToken,
      acl: options.acl ?? {},
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
      tls: options.tls,
    };
    this.#loop = options.loop ?? EventLoop.current();
    this.#tree = new DataTree({ maxDataBytes: this.#options.maxDataBytes });
    this.#tracker = new SessionTracker(this.#loop, {
      heartbeatTimeoutMs: this.#options.heartbeatTimeoutMs,
      heartbeatMaxCount: this.#options.heartbeatMaxCount,
      graceMs: this.#heartbeatIntervalMs(),
      onExpire: (id) => this.#expire(id),
    });
    this.#codec = new LengthHeaderCodec((connection, body) => this.#onFrame(connection, body), {
      maxFrameBytes: this.#options.maxFrameBytes,
      onFrameError: (connection, reason) => {
        this.#stats.badFrames++;
        getLogger().warn(`RegistryServer closing ${connection.name}: ${reason}`);
      },
    });
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

  /** The tree (read it; do not change it from outside). */
  get tree(): DataTree {
    return this.#tree;
  }

  /** Counters. */
  stats(): RegistryServerStats {
    return {
      connections: this.#server?.connectionCount ?? 0,
      sessions: this.#sessions.size,
      nodes: this.#tree.nodeCount,
      watches: this.#watches.size,
      zxid: this.#zxid,
      syncs: this.#log?.syncs ?? 0,
      ...this.#stats,
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
      misses: this.#tracker.misses(session.id),
      ephemerals: this.#tree.ephemeralsOf(session.id),
      peer: session.connection?.connected ? session.connection.peerAddress.toString() : undefined,
    }));
  }

  /** Load the data directory (if any), listen on TCP and UDP, and start serving. */
  async start(): Promise<void> {
    if (this.#options.dataDir !== undefined) {
      const { log, tree } = await TxnLog.open(this.#loop.backend, this.#options.dataDir, {
        maxDataBytes: this.#options.maxDataBytes,
        snapshotEveryTxns: this.#options.snapshotEveryTxns,
      });
      this.#log = log;
      this.#tree = tree;
      this.#zxid = tree.lastZxid;
    }
    this.#startedAt = this.#loop.now();
    const server = new TcpServer(
      this.#loop,
      new InetAddress(this.#options.host, this.#options.port),
      "RegistryServer",
      {
        tls: this.#options.tls,
      },
    );
    server.setConnectionCallback((connection) => this.#onConnection(connection));
    server.setMessageCallback(this.#codec.onMessage);
    // A client that never reads stops being read once its answers back up; one that still backs up (watch
    // events it did not ask for this moment) past the hard limit is closed in #answer.
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
    this.#udp.setMessageCallback((data) => this.#onHeartbeat(data));
    await this.#restoreSessions();
    // Ephemeral nodes whose session left no record cannot be resumed: close those sessions, through the log.
    for (const owner of this.#danglingSessions()) {
      const zxid = ++this.#zxid;
      this.#tree.killSession(owner, zxid);
      this.#commit({ type: "closeSession", zxid, timeMs: Date.now(), sessionId: owner }, undefined);
    }
    getLogger().info(
      `RegistryServer listening on ${server.address} (heartbeats on udp ${this.#udp.address.port}), ` +
        `${this.#tree.nodeCount} nodes, zxid ${this.#zxid}`,
    );
  }

  /** Stop serving: close every connection, stop tracking sessions, flush the log. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#tracker.clear();
    await this.#server?.stop();
    await this.#udp?.close();
    await this.#log?.close();
  }

  /** Close every client connection (sessions stay until they expire). For tests of resumption. */
  async dropConnectionsForTesting(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    await server.closeConnections();
  }

  /** Same as {@linkcode RegistryServer.stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  // The ACL rule with the longest prefix that covers `path` ("/a" covers "/a" and "/a/b", not "/ab").
  #aclFor(path: string): { prefix: string; tokens: string[] } | undefined {
    let best: { prefix: string; tokens: string[] } | undefined;
    for (const [prefix, tokens] of Object.entries(this.#options.acl)) {
      const covers = prefix === "/" || path === prefix || path.startsWith(`${prefix}/`);
      if (covers && (best === undefined || prefix.length > best.prefix.length)) best = { prefix, tokens };
    }
    return best;
  }

  // Owners of ephemeral nodes with no session record (logs written before sessions were logged).
  #danglingSessions(): bigint[] {
    const owners = new Set<bigint>();
    for (const path of this.#tree.paths()) {
      const owner = this.#tree.exists(path)?.ephemeralOwner ?? 0n;
      if (owner !== 0n && !this.#tree.sessions.has(owner)) owners.add(owner);
    }
    return [...owners];
  }

  /**
   * Sessions open when the server stopped come back (ZooKeeper does the same): each gets a full timeout from now
   * to resume its connection and heartbeats, and expires as usual if it does not.
   */
  async #restoreSessions(): Promise<void> {
    for (const [id, record] of this.#tree.sessions) {
      const key = await importHeartbeatKey(record.secret);
      const session: Session = {
        id,
        secret: record.secret,
        key,
        authorized: record.authorized,
        token: record.token,
        lastCounter: 0n,
        connection: undefined,
      };
      this.#sessions.set(id, session);
      this.#tracker.add(id);
    }
    if (this.#sessions.size > 0) getLogger().info(`RegistryServer: ${this.#sessions.size} sessions restored`);
  }

  // --- connections ---

  #onConnection(connection: TcpConnection): void {
    const ip = connection.peerAddress.hostname;
    if (connection.connected) {
      const count = (this.#connectionsPerIp.get(ip) ?? 0) + 1;
      this.#connectionsPerIp.set(ip, count);
      const state: ConnectionState = { session: undefined, slots: [], ip, connecting: false };
      connection.context = state;
      if (count > this.#options.maxConnectionsPerIp) {
        this.#stats.rejectedConnections++;
        getLogger().warn(
          `RegistryServer refusing ${connection.name}: ${count} connections from ${ip} exceed the limit`,
        );
        connection.forceClose();
        return;
      }
      this.#loop.runAfter(this.#options.handshakeTimeoutMs, () => {
        if (state.session === undefined && !state.connecting && connection.connected) {
          this.#stats.handshakeTimeouts++;
          getLogger().debug(`RegistryServer closing ${connection.name}: no session after the handshake timeout`);
          connection.forceClose();
        }
      });
      return;
    }
    const count = (this.#connectionsPerIp.get(ip) ?? 1) - 1;
    if (count <= 0) this.#connectionsPerIp.delete(ip);
    else this.#connectionsPerIp.set(ip, count);
    const state = connection.context as ConnectionState | undefined;
    // The session outlives its connection until it expires, so the client can resume it elsewhere.
    if (state?.session !== undefined && state.session.connection === connection) state.session.connection = undefined;
  }

  #onFrame(connection: TcpConnection, body: Uint8Array): void {
    const state = connection.context as ConnectionState;
    let frame: ClientFrame;
    try {
      frame = decodeClientFrame(body);
    } catch (error) {
      this.#stats.badFrames++;
      getLogger().warn(`RegistryServer closing ${connection.name}: a frame does not parse`, { error });
      connection.forceClose();
      return;
    }
    this.#stats.requests++;
    const slot: Slot = { bytes: undefined };
    state.slots.push(slot);
    try {
      this.#handle(connection, state, frame, slot);
    } catch (error) {
      this.#answer(connection, slot, this.#errorFrame(frame.xid, RegistryError.from(error)));
    }
  }

  #handle(connection: TcpConnection, state: ConnectionState, frame: ClientFrame, slot: Slot): void {
    const xid = frame.xid;
    const op = OPS.find((name) => (frame as unknown as Record<string, unknown>)[name]) ?? "unknown";
    this.#requestsByOp.set(op, (this.#requestsByOp.get(op) ?? 0) + 1);
    if (frame.connect) {
      this.#connect(connection, state, frame, slot);
      return;
    }
    const session = state.session;
    if (session === undefined || this.#sessions.get(session.id) !== session) {
      const code = session === undefined ? RegistryErrorCode.API_ERROR : RegistryErrorCode.SESSION_EXPIRED;
      const why = session === undefined ? "the first request must be connect" : `session ${session.id} has expired`;
      this.#answer(
        connection,
        slot,
        this.#errorFrame(xid, new RegistryError(code, `Cannot serve the request as ${why}`)),
      );
      if (session === undefined) connection.shutdown();
      return;
    }
    // Any request is a sign of life too.
    this.#tracker.touch(session.id);
    // Unset message fields decode as null, not undefined.
    const mutation = Boolean(frame.create || frame.set || frame.delete);
    if (mutation && !session.authorized) {
      throw new RegistryError(RegistryErrorCode.NO_AUTH, "Cannot change the tree as this session is not authorized");
    }
    if (mutation) {
      const path = frame.create?.path ?? frame.set?.path ?? frame.delete?.path ?? "";
      const rule = this.#aclFor(path);
      if (rule !== undefined && !rule.tokens.includes(session.token)) {
        const what = frame.create ? "create" : frame.set ? "set" : "delete";
        throw new RegistryError(
          RegistryErrorCode.NO_AUTH,
          `Cannot ${what} '${path}' as the ACL of '${rule.prefix}' does not admit this session's token`,
        );
      }
    }
    if (frame.create) {
      const { path = "", nodeType = NodeType.PERSISTENT, sequential = false } = frame.create;
      // Decoded bytes are views into the connection's input buffer: the tree keeps a copy.
      const data = frame.create.data?.slice() ?? EMPTY;
      const zxid = this.#zxid + 1n;
      const now = Date.now();
      const result = this.#tree.create(
        path,
        data,
        { nodeType: nodeType as NodeType, sequential, sessionId: session.id },
        zxid,
        now,
      );
      this.#zxid = zxid;
      const record: TxnRecord = {
        type: "create",
        zxid,
        timeMs: now,
        path: result.path,
        data,
        nodeType: nodeType as NodeType,
        sessionId: result.stat.ephemeralOwner,
      };
      this.#commitAndAnswer(record, result.events, connection, slot, {
        xid,
        zxid: zxid.toString(),
        create: { path: result.path, stat: statToWire(result.stat) },
      });
    } else if (frame.set) {
      const { path = "", expectedVersion = -1 } = frame.set;
      const data = frame.set.data?.slice() ?? EMPTY;
      const zxid = this.#zxid + 1n;
      const now = Date.now();
      const result = this.#tree.setData(path, data, expectedVersion, zxid, now);
      this.#zxid = zxid;
      this.#commitAndAnswer({ type: "set", zxid, timeMs: now, path, data }, result.events, connection, slot, {
        xid,
        zxid: zxid.toString(),
        set: { stat: statToWire(result.stat) },
      });
    } else if (frame.delete) {
      const { path = "", expectedVersion = -1 } = frame.delete;
      const zxid = this.#zxid + 1n;
      const result = this.#tree.delete(path, expectedVersion, zxid);
      this.#zxid = zxid;
      this.#commitAndAnswer({ type: "delete", zxid, timeMs: Date.now(), path }, result.events, connection, slot, {
        xid,
        zxid: zxid.toString(),
        delete: {},
      });
    } else if (frame.get) {
      const { path = "", watch = false } = frame.get;
      const { data, stat } = this.#tree.getData(path);
      if (watch) this.#watches.add(path, WatchKind.DATA, session);
      this.#answer(connection, slot, { xid, zxid: this.#zxid.toString(), get: { data, stat: statToWire(stat) } });
    } else if (frame.exists) {
      const { path = "", watch = false } = frame.exists;
      const stat = this.#tree.exists(path);
      // An exists watch on a missing node fires when it is created (ZooKeeper's semantics).
      if (watch) this.#watches.add(path, WatchKind.DATA, session);
      this.#answer(connection, slot, {
        xid,
        zxid: this.#zxid.toString(),
        exists: { stat: stat === undefined ? null : statToWire(stat) },
      });
    } else if (frame.children) {
      const { path = "", watch = false } = frame.children;
      const { children, stat } = this.#tree.getChildren(path);
      if (watch) this.#watches.add(path, WatchKind.CHILDREN, session);
      this.#answer(connection, slot, {
        xid,
        zxid: this.#zxid.toString(),
        children: { children, stat: statToWire(stat) },
      });
    } else if (frame.ping) {
      this.#answer(connection, slot, { xid, zxid: this.#zxid.toString(), ping: {} });
    } else if (frame.close) {
      this.#closeSession(session, { connection, slot, xid });
    } else {
      throw new RegistryError(RegistryErrorCode.UNIMPLEMENTED, "Cannot serve the request as its operation is unknown");
    }
  }

  #connect(connection: TcpConnection, state: ConnectionState, frame: ClientFrame, slot: Slot): void {
    const request = frame.connect!;
    if (state.session !== undefined || state.connecting) {
      throw new RegistryError(RegistryErrorCode.API_ERROR, "Cannot connect twice on one connection");
    }
    const requestedId = toBigInt(request.sessionId);
    const authorized = this.#options.authToken === undefined || request.authToken === this.#options.authToken;
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
      session.connection = connection;
      state.session = session;
      if (previous !== undefined && previous !== connection) previous.forceClose();
      this.#tracker.touch(session.id);
      this.#answer(connection, slot, this.#connectFrame(frame.xid, session, true));
      return;
    }
    state.connecting = true;
    const secret = crypto.getRandomValues(new Uint8Array(16));
    importHeartbeatKey(secret).then((key) => {
      state.connecting = false;
      if (!connection.connected) return;
      let id = 0n;
      while (id === 0n || this.#sessions.has(id)) {
        id = new DataView(crypto.getRandomValues(new Uint8Array(8)).buffer).getBigUint64(0);
      }
      const token = request.authToken ?? "";
      const session: Session = { id, secret, key, authorized, token, lastCounter: 0n, connection };
      this.#sessions.set(id, session);
      state.session = session;
      this.#tracker.add(id);
      getLogger().debug(`RegistryServer: session ${id.toString(16)} opened by ${connection.peerAddress}`);
      // Logged like any write, so the session survives a restart; answered once durable.
      const zxid = ++this.#zxid;
      this.#tree.createSession(id, { secret, authorized, token }, zxid);
      this.#commit(
        { type: "createSession", zxid, timeMs: Date.now(), sessionId: id, secret, authorized, token },
        () => this.#answer(connection, slot, this.#connectFrame(frame.xid, session, false)),
        (error) => this.#answer(connection, slot, this.#errorFrame(frame.xid, RegistryError.from(error))),
      );
    }, (error) => this.#answer(connection, slot, this.#errorFrame(frame.xid, RegistryError.from(error))));
  }

  /** A third of the miss period: two lost datagrams in a row still do not count a miss. */
  #heartbeatIntervalMs(): number {
    return Math.max(10, Math.floor(this.#options.heartbeatTimeoutMs / 3));
  }

  #connectFrame(xid: number, session: Session, resumed: boolean): ServerFrame {
    const timeoutMs = this.#options.heartbeatTimeoutMs * this.#options.heartbeatMaxCount;
    return {
      xid,
      zxid: this.#zxid.toString(),
      connect: {
        sessionId: session.id.toString(),
        sessionSecret: session.secret,
        sessionTimeoutMs: timeoutMs,
        heartbeatIntervalMs: this.#heartbeatIntervalMs(),
        heartbeatPort: this.#udp?.address.port ?? 0,
        resumed,
      },
    };
  }

  // --- writes: durable before they are answered; their watch events follow their answers ---

  #commitAndAnswer(
    record: TxnRecord,
    events: TreeEvent[],
    connection: TcpConnection,
    slot: Slot,
    response: ServerFrame,
  ): void {
    const eventSlots = this.#reserveEvents(events, record.zxid);
    this.#commit(record, () => {
      this.#answer(connection, slot, response);
      this.#fillEvents(eventSlots);
    }, (error) => this.#answer(connection, slot, this.#errorFrame(response.xid, RegistryError.from(error))));
  }

  #commit(record: TxnRecord, onDurable: (() => void) | undefined, onError?: (error: unknown) => void): void {
    if (this.#log === undefined) {
      onDurable?.();
      return;
    }
    this.#log.append(record).then(() => onDurable?.(), (error) => onError?.(error));
  }

  #reserveEvents(
    events: TreeEvent[],
    zxid: bigint,
  ): Array<{ connection: TcpConnection; slot: Slot; frame: ServerFrame }> {
    const reserved: Array<{ connection: TcpConnection; slot: Slot; frame: ServerFrame }> = [];
    for (const { watcher, event } of this.#watches.trigger(events)) {
      const connection = watcher.connection;
      if (connection === undefined || !connection.connected) continue;
      const slot: Slot = { bytes: undefined };
      (connection.context as ConnectionState).slots.push(slot);
      reserved.push({
        connection,
        slot,
        frame: { xid: 0, zxid: zxid.toString(), event: { ...event, zxid: zxid.toString() } },
      });
    }
    return reserved;
  }

  #fillEvents(reserved: Array<{ connection: TcpConnection; slot: Slot; frame: ServerFrame }>): void {
    for (const { connection, slot, frame } of reserved) this.#answer(connection, slot, frame);
  }

  #answer(connection: TcpConnection, slot: Slot, frame: ServerFrame): void {
    slot.bytes = encodeServerFrame(frame);
    const state = connection.context as ConnectionState;
    while (state.slots.length > 0 && state.slots[0]!.bytes !== undefined) {
      const bytes = state.slots.shift()!.bytes!;
      if (connection.connected) this.#codec.send(connection, bytes);
    }
    if (connection.connected) closeIfBacklogged(connection);
  }

  #errorFrame(xid: number, error: RegistryError): ServerFrame {
    this.#errorsByCode.set(error.codeName, (this.#errorsByCode.get(error.codeName) ?? 0) + 1);
    return { xid, errorCode: error.code, errorMessage: error.message, zxid: this.#zxid.toString() };
  }

  // --- sessions ---

  #closeSession(session: Session, reply?: { connection: TcpConnection; slot: Slot; xid: number }): void {
    this.#sessions.delete(session.id);
    this.#tracker.remove(session.id);
    this.#watches.removeWatcher(session);
    const zxid = ++this.#zxid;
    const { events } = this.#tree.killSession(session.id, zxid);
    const eventSlots = this.#reserveEvents(events, zxid);
    this.#commit({ type: "closeSession", zxid, timeMs: Date.now(), sessionId: session.id }, () => {
      if (reply !== undefined) {
        this.#answer(reply.connection, reply.slot, { xid: reply.xid, zxid: zxid.toString(), close: {} });
        reply.connection.shutdown();
      }
      this.#fillEvents(eventSlots);
    });
  }

  #expire(sessionId: bigint): void {
    const session = this.#sessions.get(sessionId);
    if (session === undefined) return;
    this.#stats.expiredSessions++;
    getLogger().info(`RegistryServer: session ${sessionId.toString(16)} expired; deleting its ephemeral nodes`);
    this.#closeSession(session);
    // Tell a still-connected client plainly, then drop it.
    session.connection?.forceClose();
  }

  #onHeartbeat(datagram: Uint8Array): void {
    const heartbeat = parseHeartbeat(datagram);
    const session = heartbeat === undefined ? undefined : this.#sessions.get(heartbeat.sessionId);
    if (heartbeat === undefined || session === undefined || heartbeat.counter <= session.lastCounter) {
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
    });
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
