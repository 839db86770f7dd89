/**
 * The {@linkcode Registry} on a ZooKeeper ensemble: ZooKeeper's client protocol written on the reactor (one TCP
 * connection, jute packets, pings at a third of the session timeout), so it runs on every runtime the reactor
 * runs on. Sessions move between the servers of the connect string, watches are re-registered after a
 * reconnect (SetWatches), and after an expiry a new session is opened, the ephemeral nodes this client created
 * are re-created if asked, and every watcher is told (type 0) to re-read and re-watch.
 *
 * Connect strings are ZooKeeper's: `host:port[,host:port...][/chroot]`.
 *
 * @module
 */

import { EventLoop } from "../../reactor/event_loop.ts";
import type { InetAddress } from "../../reactor/inet_address.ts";
import { LengthHeaderCodec } from "../../reactor/length_header_codec.ts";
import { getLogger } from "../../reactor/logger.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import type { TimerId } from "../../reactor/timer_queue.ts";
import { ClientSession, SessionState } from "../client/_client_session.ts";
import { JuteReader, JuteWriter } from "./_jute.ts";
import { createNode, type ProtectedCreateTarget, protectedCreateTarget } from "../client/_protected_create.ts";
import { ServerDialer } from "../client/_server_dialer.ts";
import type { WatchKind } from "../client/_watch_registry.ts";
import { validatePath } from "../path.ts";
import {
  type CreateOptions,
  type EventType,
  NodeType,
  type Registry,
  type SessionEvent,
  type Stat,
  type WatchCallback,
} from "../registry.ts";
import { RegistryError, RegistryErrorCode, registryErrorCodeName } from "../registry_error.ts";
import { parseConnectString, type ZooKeeperConnectString } from "./connect_string.ts";

export { parseConnectString, ZOOKEEPER_DEFAULT_PORT, type ZooKeeperConnectString } from "./connect_string.ts";

/** The defaults of {@linkcode ZooKeeperRegistryOptions}, in one place (the RPC config's keys take them too). */
export const ZOOKEEPER_REGISTRY_DEFAULTS = {
  sessionTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  recreateEphemerals: false,
} as const;

/**
 * Options of {@linkcode ZooKeeperRegistry.connect}.
 *
 * @example
 * ```ts
 * import { ZooKeeperRegistry, type ZooKeeperRegistryOptions } from "./zookeeper_registry.ts";
 *
 * const options: ZooKeeperRegistryOptions = { sessionTimeoutMs: 10_000, requestTimeoutMs: 3_000 };
 * const connect = () => ZooKeeperRegistry.connect("127.0.0.1:2181/apps/rpc", options);
 * ```
 */
export interface ZooKeeperRegistryOptions {
  /**
   * The loop to run on.
   * @default {EventLoop.current()}
   */
  loop?: EventLoop;
  /**
   * The session timeout asked for, in milliseconds (the server bounds it to 2-20 of its ticks).
   * @default {10000}
   */
  sessionTimeoutMs?: number;
  /**
   * How long a request may wait for its answer (including while reconnecting), in milliseconds.
   * @default {10000}
   */
  requestTimeoutMs?: number;
  /**
   * How long the first session may take to open, in milliseconds.
   * @default {10000}
   */
  connectTimeoutMs?: number;
  /**
   * After an expiry, re-create the ephemeral nodes this client created on the new session.
   * @default {false}
   */
  recreateEphemerals?: boolean;
  /**
   * Resume this session (its id and password, from another client's `sessionId` and `sessionPassword`) instead of
   * opening a new one, as ZooKeeper's own clients allow.
   * @default {undefined}
   */
  session?: { id: bigint; password: Uint8Array };
}

// Operation codes and special xids of the ZooKeeper protocol.
const OP = { create: 1, delete: 2, exists: 3, getData: 4, setData: 5, getChildren2: 12, ping: 11, close: -11 };
const SET_WATCHES_OP = 101;
const XID_NOTIFICATION = -1;
const XID_PING = -2;
const XID_SET_WATCHES = -8;
const PERMS_ALL = 31;
const CREATE_EPHEMERAL = 1;
const CREATE_SEQUENTIAL = 2;

const encoder = new TextEncoder();
const toBytes = (data: Uint8Array | string | undefined) =>
  data === undefined ? new Uint8Array(0) : typeof data === "string" ? encoder.encode(data) : data;

function readStat(reader: JuteReader): Stat {
  const czxid = reader.long();
  const mzxid = reader.long();
  const ctime = Number(reader.long());
  const mtime = Number(reader.long());
  const version = reader.int();
  const cversion = reader.int();
  reader.int(); // aversion
  const ephemeralOwner = reader.long();
  const dataLength = reader.int();
  const numChildren = reader.int();
  const pzxid = reader.long();
  return {
    czxid,
    mzxid,
    pzxid,
    ctime,
    mtime,
    version,
    cversion,
    ephemeralOwner,
    dataLength,
    numChildren,
    nodeType: ephemeralOwner !== 0n ? NodeType.EPHEMERAL : NodeType.PERSISTENT,
  };
}

/**
 * A ZooKeeper session behind the {@linkcode Registry} interface.
 *
 * @example
 * ```ts ignore
 * import { ZooKeeperRegistry } from "@dwt/rpc/registry";
 *
 * const registry = await ZooKeeperRegistry.connect("127.0.0.1:2181/apps", { recreateEphemerals: true });
 * console.log(await registry.children("/"));
 * await registry.close();
 * ```
 */
export class ZooKeeperRegistry implements Registry {
  /** The servers and chroot in use. */
  readonly connectString: ZooKeeperConnectString;
  readonly #loop: EventLoop;
  readonly #options: Required<Omit<ZooKeeperRegistryOptions, "loop" | "session">>;
  readonly #session: ClientSession<JuteReader>;
  readonly #dialer: ServerDialer;
  readonly #codec: LengthHeaderCodec;
  readonly #protectedTarget: ProtectedCreateTarget;
  #pingTimer: TimerId | undefined;
  #handshakeTimer: TimerId | undefined;
  #password: Uint8Array = new Uint8Array(16);
  #negotiatedTimeoutMs = 0;
  #lastZxid = 0n;
  // Loop times of the last packet received and sent on the current connection (the read timeout and the pings).
  #lastReceiveMs = 0;
  #lastSendMs = 0;

  private constructor(connectString: ZooKeeperConnectString, options: ZooKeeperRegistryOptions) {
    this.connectString = connectString;
    this.#loop = options.loop ?? EventLoop.current();
    this.#options = {
      sessionTimeoutMs: options.sessionTimeoutMs ?? ZOOKEEPER_REGISTRY_DEFAULTS.sessionTimeoutMs,
      requestTimeoutMs: options.requestTimeoutMs ?? ZOOKEEPER_REGISTRY_DEFAULTS.requestTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs ?? ZOOKEEPER_REGISTRY_DEFAULTS.connectTimeoutMs,
      recreateEphemerals: options.recreateEphemerals ?? ZOOKEEPER_REGISTRY_DEFAULTS.recreateEphemerals,
    };
    this.#session = new ClientSession<JuteReader>(this.#loop, this, {
      owner: "ZooKeeperRegistry",
      peer: "ZooKeeper",
      requestTimeoutMs: this.#options.requestTimeoutMs,
      recreateEphemerals: this.#options.recreateEphemerals,
    });
    if (options.session !== undefined) {
      this.#session.resumeFrom(options.session.id);
      this.#password = options.session.password.slice();
    }
    this.#codec = new LengthHeaderCodec((_connection, body) => this.#onPacket(body), {
      maxFrameBytes: 16 * 1024 * 1024,
    });
    this.#dialer = new ServerDialer(this.#loop, connectString.servers, "ZooKeeper", {
      initialDelayMs: 100,
      maxDelayMs: 2000,
      redialLostSessionAtOnce: false,
      connectTimeoutMs: Math.max(1000, Math.floor(this.#options.sessionTimeoutMs / 3)),
      // As ZooKeeper's client does: each client starts somewhere else, so one bad server is not everyone's first.
      shuffle: true,
    });
    this.#dialer.setConnectionCallback((connection) => {
      if (connection.connected) this.#onConnected(connection);
      else this.#onLost(`the connection to ${connection.peerAddress} was lost`);
    });
    this.#dialer.setMessageCallback(this.#codec.onMessage);
    this.#protectedTarget = protectedCreateTarget({
      createOnce: (path, data, nodeType, sequential) => this.#createOnce(path, data, nodeType, sequential),
      registry: this,
      session: this.#session,
      loop: this.#loop,
      timeoutMs: this.#options.requestTimeoutMs,
    });
  }

  /** Open a session on one of the servers of `connectString`; rejects if none answers in time. */
  static async connect(connectString: string, options: ZooKeeperRegistryOptions = {}): Promise<ZooKeeperRegistry> {
    const registry = new ZooKeeperRegistry(parseConnectString(connectString), options);
    registry.#dialer.start();
    try {
      await registry.#session.firstSession(
        registry.#loop,
        registry.#options.connectTimeoutMs,
        `Cannot open a ZooKeeper session on ${connectString} within ${registry.#options.connectTimeoutMs} ms`,
      );
    } catch (error) {
      await registry.close();
      throw error;
    }
    return registry;
  }

  /** The session id (0n while none is open). */
  get sessionId(): bigint {
    return this.#session.sessionId;
  }

  /** The session's password (with `sessionId`, what resumes it elsewhere: keep it secret). */
  get sessionPassword(): Uint8Array {
    return this.#password.slice();
  }

  /** The session timeout the server granted, in milliseconds. */
  get sessionTimeoutMs(): number {
    return this.#negotiatedTimeoutMs;
  }

  /** The server of the current connection, if connected. */
  get server(): InetAddress | undefined {
    return this.#dialer.server;
  }

  /** Listen for session events; returns a function that removes the listener. */
  onSessionEvent(listener: (event: SessionEvent) => void): () => void {
    return this.#session.onSessionEvent(listener);
  }

  /**
   * Create a node (open ACL); resolves with its actual path (sequential nodes get ZooKeeper's suffix, protected
   * ones a prefix: see {@linkcode CreateOptions.protected} for creates that are safe to retry, the names Curator's
   * protected mode makes being alike in purpose, not in spelling).
   *
   * @example
   * ```ts ignore
   * import { NodeType, ZooKeeperRegistry } from "@dwt/rpc/registry";
   *
   * const registry = await ZooKeeperRegistry.connect("127.0.0.1:2181");
   * // `/election/_p_<uuid>-n-0000000003`: one node, however often the connection drops while it is made.
   * const me = await registry.create("/election/n-", "", { nodeType: NodeType.EPHEMERAL, sequential: true, protected: true });
   * await registry.close();
   * ```
   */
  async create(path: string, data?: Uint8Array | string, options: CreateOptions = {}): Promise<string> {
    validatePath(path);
    return await createNode(this.#protectedTarget, this.#session.ephemerals, path, toBytes(data), options);
  }

  #createOnce(path: string, data: Uint8Array, nodeType: NodeType, sequential: boolean): Promise<string> {
    const flags = (nodeType === NodeType.EPHEMERAL ? CREATE_EPHEMERAL : 0) | (sequential ? CREATE_SEQUENTIAL : 0);
    return this.#request(`create '${path}'`, OP.create, (w) => {
      w.string(this.#serverPath(path)).buffer(data);
      w.int(1).int(PERMS_ALL).string("world").string("anyone"); // OPEN_ACL_UNSAFE
      w.int(flags);
    }, (r) => this.#clientPath(r.string() ?? path));
  }

  /** A node's data and stat; `watch` is told once when it changes or is deleted. */
  async get(path: string, options: { watch?: WatchCallback } = {}): Promise<{ data: Uint8Array; stat: Stat }> {
    validatePath(path);
    // Held before the request is written: the notification may come in the same read as the answer, before the
    // code after an `await` runs (see #onReply). Let go of if the server refuses the read (it set no watch then).
    const watch = options.watch;
    return await this.#request(
      `get '${path}'`,
      OP.getData,
      (w) => {
        w.string(this.#serverPath(path)).bool(watch !== undefined);
      },
      (r) => ({ data: r.buffer() ?? new Uint8Array(0), stat: readStat(r) }),
      this.#holdWatch("data", path, watch),
    );
  }

  /** Replace a node's data; with `version`, only if the node is at that version (else BAD_VERSION). */
  async set(path: string, data: Uint8Array | string, options: { version?: number } = {}): Promise<Stat> {
    validatePath(path);
    const bytes = toBytes(data);
    const stat = await this.#request(`set '${path}'`, OP.setData, (w) => {
      w.string(this.#serverPath(path)).buffer(bytes).int(options.version ?? -1);
    }, readStat);
    this.#session.ephemerals.dataSet(path, bytes);
    return stat;
  }

  /** Delete a childless node; with `version`, only at that version. */
  async delete(path: string, options: { version?: number } = {}): Promise<void> {
    validatePath(path);
    await this.#request(`delete '${path}'`, OP.delete, (w) => {
      w.string(this.#serverPath(path)).int(options.version ?? -1);
    });
    this.#session.ephemerals.deleted(path);
  }

  /** A node's stat, or undefined when it does not exist; `watch` fires on create, change or delete. */
  async exists(path: string, options: { watch?: WatchCallback } = {}): Promise<Stat | undefined> {
    validatePath(path);
    // ZooKeeper keeps an exists watch on a missing node (it fires when the node is created) and a data watch on one
    // that exists; held as the first before the request is written, made the second when the answer says so.
    const watch = options.watch;
    const watches = this.#session.watches;
    try {
      return await this.#request(`exists '${path}'`, OP.exists, (w) => {
        w.string(this.#serverPath(path)).bool(watch !== undefined);
      }, (r) => {
        if (watch) watches.move("exist", "data", path, watch);
        return readStat(r);
      }, this.#holdWatch("exist", path, watch, RegistryErrorCode.NO_NODE));
    } catch (error) {
      if (!(error instanceof RegistryError && error.code === RegistryErrorCode.NO_NODE)) throw error;
      return undefined;
    }
  }

  /** A node's children, sorted; `watch` fires when they change or the node is deleted. */
  async children(path: string, options: { watch?: WatchCallback } = {}): Promise<string[]> {
    validatePath(path);
    const watch = options.watch;
    const children = await this.#request(
      `list '${path}'`,
      OP.getChildren2,
      (w) => {
        w.string(this.#serverPath(path)).bool(watch !== undefined);
      },
      (r) => r.strings(),
      this.#holdWatch("child", path, watch),
    );
    return children.sort();
  }

  /** Close the session (its ephemeral nodes go at once) and the connection. */
  async close(): Promise<void> {
    const session = this.#session;
    if (session.closed) return;
    if (session.state === SessionState.CONNECTED) {
      await this.#request("close the session", OP.close, () => {}).catch(() => {});
    }
    session.close("the registry was closed");
    this.#stopTimers();
    await this.#dialer.close();
    session.emitClosed();
  }

  /** Same as {@linkcode ZooKeeperRegistry.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- paths ---

  #serverPath(path: string): string {
    const chroot = this.connectString.chroot;
    return chroot === "" ? path : path === "/" ? chroot : chroot + path;
  }

  #clientPath(serverPath: string): string {
    const chroot = this.connectString.chroot;
    if (chroot === "" || !serverPath.startsWith(chroot)) return serverPath;
    return serverPath.length === chroot.length ? "/" : serverPath.slice(chroot.length);
  }

  // --- requests ---

  // ZooKeeper sets no watch for a read it refuses, except an exists watch on a missing node (`armedBy`).
  #holdWatch(kind: WatchKind, path: string, callback: WatchCallback | undefined, armedBy?: RegistryErrorCode) {
    return callback && this.#session.watches.holdForRead(kind, path, callback, armedBy);
  }

  /** A request, sent now on a session or held (until its timeout) for the next one. */
  #request<T = undefined>(
    what: string,
    type: number,
    writeBody: (writer: JuteWriter) => void,
    // Without one the request resolves with undefined, not the reader: its bytes are reused once the answer is read.
    readBody: (reader: JuteReader) => T = () => undefined as T,
    onSettled?: (error: RegistryError | undefined) => void,
  ): Promise<T> {
    const session = this.#session;
    if (session.closed) {
      return Promise.reject(new RegistryError(RegistryErrorCode.CLOSED, `Cannot ${what} as the registry is closed`));
    }
    const xid = session.requests.nextXid();
    const writer = new JuteWriter().int(xid).int(type);
    writeBody(writer);
    const packet = writer.packet();
    const connection = session.connection;
    if (connection === undefined || session.state !== SessionState.CONNECTED) {
      return session.requests.add(xid, what, false, packet, readBody, false, onSettled);
    }
    const answer = session.requests.add(xid, what, true, undefined, readBody, false, onSettled);
    this.#send(connection, packet);
    return answer;
  }

  // --- the connection and the session ---

  #send(connection: TcpConnection, packet: Uint8Array): void {
    this.#lastSendMs = this.#loop.now();
    connection.send(packet);
  }

  #onConnected(connection: TcpConnection): void {
    this.#session.connectionUp(connection);
    this.#lastReceiveMs = this.#loop.now();
    const request = new JuteWriter()
      .int(0) // protocol version
      .long(this.#lastZxid)
      .int(this.#options.sessionTimeoutMs)
      .long(this.#session.sessionId)
      .buffer(this.#password)
      .bool(false); // read-only not allowed
    this.#send(connection, request.packet());
    // As ZooKeeper's own clients do: a server that accepts and never answers the handshake (one still starting,
    // one cut off) is given up on, and the next one tried.
    const handshakeTimeoutMs = Math.max(1000, Math.floor(this.#options.sessionTimeoutMs / 3));
    this.#handshakeTimer = this.#loop.runAfter(handshakeTimeoutMs, () => {
      this.#handshakeTimer = undefined;
      if (this.#session.connection === connection && this.#session.state === SessionState.HANDSHAKING) {
        getLogger().warn(`ZooKeeperRegistry: no answer to the handshake within ${handshakeTimeoutMs} ms; reconnecting`);
        connection.forceClose();
      }
    });
  }

  #onLost(reason: string): void {
    this.#stopTimers();
    if (this.#session.state === SessionState.CONNECTED) getLogger().warn(`ZooKeeperRegistry: ${reason}; reconnecting`);
    this.#session.connectionLost(reason);
  }

  #onPacket(body: Uint8Array): void {
    this.#lastReceiveMs = this.#loop.now();
    const reader = new JuteReader(body);
    try {
      if (this.#session.state === SessionState.HANDSHAKING) this.#onConnectResponse(reader);
      else this.#onReply(reader);
    } catch (error) {
      getLogger().error("ZooKeeperRegistry: a packet from the server does not parse; reconnecting", { error });
      this.#session.connection?.forceClose();
    }
  }

  #onConnectResponse(reader: JuteReader): void {
    reader.int(); // protocol version
    const timeoutMs = reader.int();
    const sessionId = reader.long();
    const password = reader.buffer() ?? new Uint8Array(16);
    // Servers from 3.4 on add whether they are read-only; this client asks for a read-write session, which such a
    // server cannot give (it closes the connection itself; this only says why sooner).
    const readOnly = reader.remaining > 0 && reader.bool();
    const session = this.#session;
    if (readOnly) {
      getLogger().warn(`ZooKeeperRegistry: ${this.#dialer.server} is read-only (no quorum); trying the next server`);
      session.connection?.forceClose();
      return;
    }
    if (timeoutMs <= 0) {
      // The session we tried to resume is gone, its ephemeral nodes and watches with it. ZooKeeper closes the
      // connection after saying so: a new session opens at once on a new one.
      const expired = session.sessionId;
      this.#password = new Uint8Array(16);
      this.#lastZxid = 0n;
      session.sessionExpired(expired, "ZooKeeper refused to resume it");
      this.#dialer.redialAtOnce();
      session.connection?.forceClose();
      return;
    }
    const resumed = session.sessionId !== 0n && session.sessionId === sessionId;
    this.#password = password;
    this.#negotiatedTimeoutMs = timeoutMs;
    this.#dialer.sessionOpened();
    this.#startPings();
    const connection = session.connection!;
    if (resumed) this.#sendSetWatches(connection);
    for (const request of session.requests.unsent()) {
      this.#send(connection, request.packet!);
      request.packet = undefined;
    }
    getLogger().debug(
      `ZooKeeperRegistry: session ${sessionId.toString(16)} ${resumed ? "resumed" : "opened"} on ` +
        `${this.#dialer.server} (timeout ${timeoutMs} ms)`,
    );
    // ZooKeeper re-arms the watches of a resumed session (SetWatches): only a new session needs them re-read.
    session.sessionOpened(sessionId, resumed, false);
  }

  #onReply(reader: JuteReader): void {
    const xid = reader.int();
    const zxid = reader.long();
    const err = reader.int();
    if (zxid > this.#lastZxid) this.#lastZxid = zxid;
    if (xid === XID_PING) return;
    if (xid === XID_NOTIFICATION) {
      const type = reader.int();
      reader.int(); // keeper state
      const path = reader.string() ?? "/";
      this.#session.watches.trigger(type as EventType, this.#clientPath(path));
      return;
    }
    if (xid === XID_SET_WATCHES) {
      if (err !== 0) {
        getLogger().warn(`ZooKeeperRegistry: re-registering watches failed: ${registryErrorCodeName(err)}`);
      }
      return;
    }
    const requests = this.#session.requests;
    const request = requests.take(xid);
    if (err === RegistryErrorCode.SESSION_MOVED) {
      // The session was taken over by a connection to another server (this one is stale): this connection's answers
      // can no longer be trusted, so resume on a fresh connection, as ZooKeeper's client does.
      getLogger().warn(`ZooKeeperRegistry: the session moved away from ${this.server ?? "?"}; reconnecting`);
      this.#loop.queueInLoop(() => this.#session.connection?.forceClose());
    }
    if (request === undefined) return; // timed out
    if (err !== 0) {
      requests.refuse(
        request,
        new RegistryError(
          err as RegistryErrorCode,
          `Cannot ${request.what}: ${registryErrorCodeName(err)} (ZooKeeper ${this.server ?? "?"})`,
        ),
      );
      return;
    }
    requests.settle(request, reader);
  }

  // --- pings and watches ---

  /**
   * ZooKeeper's client timing: a ping once nothing was sent for a third of the session timeout (so the server,
   * which answers every ping, is never silent for longer), and the connection given up once nothing was received
   * for two thirds of it (the read timeout): a hung or frozen server then costs the session nothing, since the
   * client resumes it on the next server with a third of the timeout to spare.
   */
  #startPings(): void {
    this.#stopTimers();
    const timeoutMs = this.#negotiatedTimeoutMs;
    const pingAfterMs = Math.max(100, Math.floor(timeoutMs / 3));
    const readTimeoutMs = Math.max(200, Math.floor((timeoutMs * 2) / 3));
    this.#pingTimer = this.#loop.runEvery(Math.max(20, Math.floor(timeoutMs / 20)), () => {
      const connection = this.#session.connection;
      if (!connection?.connected || this.#session.state !== SessionState.CONNECTED) return;
      const now = this.#loop.now();
      if (now - this.#lastReceiveMs >= readTimeoutMs) {
        getLogger().warn(
          `ZooKeeperRegistry: nothing from ${this.#dialer.server} for ${now - this.#lastReceiveMs} ms (read ` +
            `timeout ${readTimeoutMs} ms); resuming the session on the next server`,
        );
        connection.forceClose();
        return;
      }
      if (now - this.#lastSendMs >= pingAfterMs) {
        this.#send(connection, new JuteWriter().int(XID_PING).int(OP.ping).packet());
      }
    });
  }

  #stopTimers(): void {
    if (this.#pingTimer !== undefined) this.#loop.cancel(this.#pingTimer);
    this.#pingTimer = undefined;
    if (this.#handshakeTimer !== undefined) this.#loop.cancel(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
  }

  /** Re-register the watches on a resumed session (ZooKeeper fires those whose paths changed since `lastZxid`). */
  #sendSetWatches(connection: TcpConnection): void {
    const watches = this.#session.watches;
    const paths = (kind: "data" | "exist" | "child") => watches.paths(kind).map((path) => this.#serverPath(path));
    const data = paths("data");
    const exist = paths("exist");
    const child = paths("child");
    if (data.length + exist.length + child.length === 0) return;
    const writer = new JuteWriter().int(XID_SET_WATCHES).int(SET_WATCHES_OP).long(this.#lastZxid);
    writer.strings(data).strings(exist).strings(child);
    this.#send(connection, writer.packet());
  }
}
