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

import { getLogger } from "../reactor/logger.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import type { TimerId } from "../reactor/timer_queue.ts";
import { InetAddress } from "../reactor/inet_address.ts";
import { LengthHeaderCodec } from "../reactor/length_header_codec.ts";
import { TcpClient } from "../reactor/tcp_client.ts";
import type { TcpConnection } from "../reactor/tcp_connection.ts";
import { JuteReader, JuteWriter } from "./_jute.ts";
import { NodeType, type Stat } from "./data_tree.ts";
import { validatePath } from "./path.ts";
import type { Registry } from "./registry.ts";
import type { CreateOptions, SessionEvent, WatchCallback, WatchedEvent } from "./registry_client.ts";
import { RegistryError, RegistryErrorCode, registryErrorCodeName } from "./registry_error.ts";

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

/**
 * A parsed connect string.
 *
 * @example
 * ```ts
 * import type { ZooKeeperRegistry } from "./zookeeper_registry.ts";
 *
 * // "10.0.0.1:2181,10.0.0.2:2181/apps/rpc"
 * const where = (registry: ZooKeeperRegistry) =>
 *   `${registry.connectString.servers.join(",")}${registry.connectString.chroot}`;
 * ```
 */
export interface ZooKeeperConnectString {
  /** The ensemble's servers, in the order given. */
  servers: InetAddress[];
  /** The chroot, such as `/apps/rpc`, or "" for none. */
  chroot: string;
}

/** Parse `host:port[,host:port...][/chroot]`; throws a TypeError naming what is wrong. */
export function parseConnectString(text: string): ZooKeeperConnectString {
  const slash = text.indexOf("/");
  const hosts = slash < 0 ? text : text.slice(0, slash);
  let chroot = slash < 0 ? "" : text.slice(slash);
  if (chroot === "/") chroot = "";
  if (chroot !== "") {
    try {
      validatePath(chroot);
    } catch (error) {
      throw new TypeError(`Cannot parse ZooKeeper connect string '${text}': bad chroot: ${(error as Error).message}`);
    }
  }
  const servers = hosts.split(",").map((host) => host.trim()).filter((host) => host !== "").map((host) => {
    try {
      return InetAddress.parse(host, 2181);
    } catch (error) {
      throw new TypeError(`Cannot parse ZooKeeper connect string '${text}': ${(error as Error).message}`);
    }
  });
  if (servers.length === 0) throw new TypeError(`Cannot parse ZooKeeper connect string '${text}': no server`);
  return { servers, chroot };
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

interface Pending {
  xid: number;
  packet: Uint8Array;
  what: string;
  timer: TimerId;
  sent: boolean;
  resolve(reader: JuteReader): void;
  reject(error: RegistryError): void;
}

type WatchKind = "data" | "exist" | "child";

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
  readonly #codec: LengthHeaderCodec;
  #client: TcpClient | undefined;
  #connection: TcpConnection | undefined;
  #handshaking = false;
  #serverIndex = 0;
  #reconnectDelayMs = 100;
  #reconnectTimer: TimerId | undefined;
  #pingTimer: TimerId | undefined;
  #sessionId = 0n;
  #password: Uint8Array = new Uint8Array(16);
  #negotiatedTimeoutMs = 0;
  #lastZxid = 0n;
  #nextXid = 1;
  #queue: Pending[] = [];
  #inFlight = new Map<number, Pending>();
  #watches: Record<WatchKind, Map<string, Set<WatchCallback>>> = {
    data: new Map(),
    exist: new Map(),
    child: new Map(),
  };
  #ephemerals = new Map<string, { requested: string; data: Uint8Array; sequential: boolean }>();
  #listeners = new Set<(event: SessionEvent) => void>();
  #ready: PromiseWithResolvers<void> | undefined = Promise.withResolvers<void>();
  #expiredBefore = false;
  #closed = false;

  private constructor(connectString: ZooKeeperConnectString, options: ZooKeeperRegistryOptions) {
    this.connectString = connectString;
    this.#loop = options.loop ?? EventLoop.current();
    this.#options = {
      sessionTimeoutMs: options.sessionTimeoutMs ?? 10_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      recreateEphemerals: options.recreateEphemerals ?? false,
    };
    if (options.session !== undefined) {
      this.#sessionId = options.session.id;
      this.#password = options.session.password.slice();
    }
    this.#codec = new LengthHeaderCodec((_connection, body) => this.#onPacket(body), {
      maxFrameBytes: 16 * 1024 * 1024,
    });
  }

  /** Open a session on one of the servers of `connectString`; rejects if none answers in time. */
  static async connect(connectString: string, options: ZooKeeperRegistryOptions = {}): Promise<ZooKeeperRegistry> {
    const registry = new ZooKeeperRegistry(parseConnectString(connectString), options);
    const ready = registry.#ready!;
    const timer = registry.#loop.runAfter(registry.#options.connectTimeoutMs, () =>
      ready.reject(
        new RegistryError(
          RegistryErrorCode.CONNECTION_LOSS,
          `Cannot open a ZooKeeper session on ${connectString} within ${registry.#options.connectTimeoutMs} ms`,
        ),
      ));
    registry.#dial();
    try {
      await ready.promise;
    } catch (error) {
      await registry.close();
      throw error;
    } finally {
      registry.#loop.cancel(timer);
    }
    return registry;
  }

  /** The session id (0n while none is open). */
  get sessionId(): bigint {
    return this.#sessionId;
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
    return this.#connection === undefined ? undefined : this.connectString.servers[this.#serverIndex];
  }

  onSessionEvent(listener: (event: SessionEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Create a node (open ACL); resolves with its actual path (sequential nodes get ZooKeeper's suffix). */
  async create(path: string, data?: Uint8Array | string, options: CreateOptions = {}): Promise<string> {
    validatePath(path);
    const bytes = toBytes(data);
    const ephemeral = (options.nodeType ?? NodeType.PERSISTENT) === NodeType.EPHEMERAL;
    const sequential = options.sequential ?? false;
    const flags = (ephemeral ? CREATE_EPHEMERAL : 0) | (sequential ? CREATE_SEQUENTIAL : 0);
    const created = await this.#request(`create '${path}'`, OP.create, (w) => {
      w.string(this.#serverPath(path)).buffer(bytes);
      w.int(1).int(PERMS_ALL).string("world").string("anyone"); // OPEN_ACL_UNSAFE
      w.int(flags);
    }, (r) => this.#clientPath(r.string() ?? path));
    if (ephemeral) this.#ephemerals.set(created, { requested: path, data: bytes, sequential });
    return created;
  }

  /** A node's data and stat; `watch` is told once when it changes or is deleted. */
  async get(path: string, options: { watch?: WatchCallback } = {}): Promise<{ data: Uint8Array; stat: Stat }> {
    validatePath(path);
    const result = await this.#request(`get '${path}'`, OP.getData, (w) => {
      w.string(this.#serverPath(path)).bool(options.watch !== undefined);
    }, (r) => ({ data: r.buffer() ?? new Uint8Array(0), stat: readStat(r) }));
    if (options.watch) this.#addWatch("data", path, options.watch);
    return result;
  }

  /** Replace a node's data; with `version`, only if the node is at that version (else BAD_VERSION). */
  async set(path: string, data: Uint8Array | string, options: { version?: number } = {}): Promise<Stat> {
    validatePath(path);
    const bytes = toBytes(data);
    const stat = await this.#request(`set '${path}'`, OP.setData, (w) => {
      w.string(this.#serverPath(path)).buffer(bytes).int(options.version ?? -1);
    }, readStat);
    const ephemeral = this.#ephemerals.get(path);
    if (ephemeral !== undefined) ephemeral.data = bytes;
    return stat;
  }

  /** Delete a childless node; with `version`, only at that version. */
  async delete(path: string, options: { version?: number } = {}): Promise<void> {
    validatePath(path);
    await this.#request(`delete '${path}'`, OP.delete, (w) => {
      w.string(this.#serverPath(path)).int(options.version ?? -1);
    }, () => undefined);
    this.#ephemerals.delete(path);
  }

  /** A node's stat, or undefined when it does not exist; `watch` fires on create, change or delete. */
  async exists(path: string, options: { watch?: WatchCallback } = {}): Promise<Stat | undefined> {
    validatePath(path);
    try {
      const stat = await this.#request(`exists '${path}'`, OP.exists, (w) => {
        w.string(this.#serverPath(path)).bool(options.watch !== undefined);
      }, readStat);
      if (options.watch) this.#addWatch("data", path, options.watch);
      return stat;
    } catch (error) {
      if (!(error instanceof RegistryError && error.code === RegistryErrorCode.NO_NODE)) throw error;
      // ZooKeeper keeps an exists watch on a missing node: it fires when the node is created.
      if (options.watch) this.#addWatch("exist", path, options.watch);
      return undefined;
    }
  }

  /** A node's children, sorted; `watch` fires when they change or the node is deleted. */
  async children(path: string, options: { watch?: WatchCallback } = {}): Promise<string[]> {
    validatePath(path);
    const children = await this.#request(`list '${path}'`, OP.getChildren2, (w) => {
      w.string(this.#serverPath(path)).bool(options.watch !== undefined);
    }, (r) => r.strings());
    if (options.watch) this.#addWatch("child", path, options.watch);
    return children.sort();
  }

  /** Close the session (its ephemeral nodes go at once) and the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#connection?.connected && this.#sessionId !== 0n && !this.#handshaking) {
      await this.#request("close the session", OP.close, () => {}, () => undefined).catch(() => {});
    }
    this.#closed = true;
    this.#ready?.reject(new RegistryError(RegistryErrorCode.CLOSED, "The ZooKeeper registry was closed"));
    this.#ready?.promise.catch(() => {});
    if (this.#reconnectTimer !== undefined) this.#loop.cancel(this.#reconnectTimer);
    this.#stopPings();
    this.#failAll(RegistryErrorCode.CLOSED, "the registry was closed");
    const client = this.#client;
    this.#client = undefined;
    this.#connection = undefined;
    await client?.close();
    this.#emit({ type: "closed" });
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

  #request<T>(
    what: string,
    type: number,
    writeBody: (writer: JuteWriter) => void,
    readBody: (reader: JuteReader) => T,
  ): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new RegistryError(RegistryErrorCode.CLOSED, `Cannot ${what} as the registry is closed`));
    }
    const xid = this.#nextXid;
    this.#nextXid = this.#nextXid >= 0x7fff_ffff ? 1 : this.#nextXid + 1;
    const writer = new JuteWriter().int(xid).int(type);
    writeBody(writer);
    return new Promise<T>((resolve, reject) => {
      const pending: Pending = {
        xid,
        packet: writer.packet(),
        what,
        sent: false,
        timer: this.#loop.runAfter(this.#options.requestTimeoutMs, () => {
          this.#inFlight.delete(xid);
          const queued = this.#queue.indexOf(pending);
          if (queued >= 0) this.#queue.splice(queued, 1);
          reject(
            new RegistryError(
              RegistryErrorCode.OPERATION_TIMEOUT,
              `Cannot ${what} as ZooKeeper did not answer within ${this.#options.requestTimeoutMs} ms`,
            ),
          );
        }),
        resolve: (reader) => {
          try {
            resolve(readBody(reader));
          } catch (error) {
            reject(
              new RegistryError(RegistryErrorCode.MARSHALLING_ERROR, `Cannot ${what}: the answer does not parse`, {
                cause: error,
              }),
            );
          }
        },
        reject,
      };
      if (this.#connection !== undefined && !this.#handshaking) this.#send(pending);
      else this.#queue.push(pending);
    });
  }

  #send(pending: Pending): void {
    pending.sent = true;
    this.#inFlight.set(pending.xid, pending);
    this.#connection!.send(pending.packet);
  }

  #failAll(code: RegistryErrorCode, reason: string): void {
    const all = [...this.#inFlight.values(), ...(code === RegistryErrorCode.CONNECTION_LOSS ? [] : this.#queue)];
    this.#inFlight.clear();
    if (code !== RegistryErrorCode.CONNECTION_LOSS) this.#queue = [];
    for (const pending of all) {
      this.#loop.cancel(pending.timer);
      pending.reject(new RegistryError(code, `Cannot ${pending.what} as ${reason}`));
    }
  }

  // --- the connection ---

  #dial(): void {
    if (this.#closed) return;
    const server = this.connectString.servers[this.#serverIndex]!;
    const client = new TcpClient(this.#loop, server, `ZooKeeper->${server}`, {
      maxAttempts: 1,
      connectTimeoutMs: Math.max(1000, Math.floor(this.#options.sessionTimeoutMs / 3)),
    });
    this.#client = client;
    client.setConnectionCallback((connection) => {
      if (client !== this.#client) return;
      if (connection.connected) this.#onConnected(connection);
      else this.#onLost(`the connection to ${server} was lost`);
    });
    client.setMessageCallback(this.#codec.onMessage);
    client.setConnectFailedCallback((error) => {
      if (client !== this.#client) return;
      getLogger().debug(`ZooKeeperRegistry: cannot connect to ${server}`, { error });
      this.#scheduleReconnect();
    });
    client.connect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnectTimer !== undefined) return;
    const old = this.#client;
    this.#client = undefined;
    old?.close().catch(() => {});
    this.#serverIndex = (this.#serverIndex + 1) % this.connectString.servers.length;
    // A full pass over the servers without luck backs off; the next server is tried at once otherwise.
    const delayMs = this.#serverIndex === 0 ? this.#reconnectDelayMs : 0;
    if (this.#serverIndex === 0) this.#reconnectDelayMs = Math.min(this.#reconnectDelayMs * 2, 2000);
    this.#reconnectTimer = this.#loop.runAfter(delayMs, () => {
      this.#reconnectTimer = undefined;
      this.#dial();
    });
  }

  #onConnected(connection: TcpConnection): void {
    this.#connection = connection;
    this.#handshaking = true;
    const request = new JuteWriter()
      .int(0) // protocol version
      .long(this.#lastZxid)
      .int(this.#options.sessionTimeoutMs)
      .long(this.#sessionId)
      .buffer(this.#password)
      .bool(false); // read-only not allowed
    connection.send(request.packet());
  }

  #onLost(reason: string): void {
    const wasConnected = this.#connection !== undefined && !this.#handshaking;
    this.#connection = undefined;
    this.#handshaking = false;
    this.#stopPings();
    this.#failAll(RegistryErrorCode.CONNECTION_LOSS, reason);
    if (this.#closed) return;
    if (wasConnected) {
      getLogger().warn(`ZooKeeperRegistry: ${reason}; reconnecting`);
      this.#emit({ type: "disconnected" });
    }
    this.#scheduleReconnect();
  }

  #onPacket(body: Uint8Array): void {
    const reader = new JuteReader(body);
    try {
      if (this.#handshaking) this.#onConnectResponse(reader);
      else this.#onReply(reader);
    } catch (error) {
      getLogger().error("ZooKeeperRegistry: a packet from the server does not parse; reconnecting", { error });
      this.#connection?.forceClose();
    }
  }

  #onConnectResponse(reader: JuteReader): void {
    reader.int(); // protocol version
    const timeoutMs = reader.int();
    const sessionId = reader.long();
    const password = reader.buffer() ?? new Uint8Array(16);
    if (timeoutMs <= 0) {
      // The session we tried to resume is gone: its ephemeral nodes and watches with it.
      this.#onExpired();
      return;
    }
    const resumed = this.#sessionId !== 0n && this.#sessionId === sessionId;
    const fresh = !resumed;
    this.#sessionId = sessionId;
    this.#password = password;
    this.#negotiatedTimeoutMs = timeoutMs;
    this.#handshaking = false;
    this.#reconnectDelayMs = 100;
    this.#startPings();
    if (resumed) this.#sendSetWatches();
    const queue = this.#queue;
    this.#queue = [];
    for (const pending of queue) this.#send(pending);
    getLogger().debug(
      `ZooKeeperRegistry: session ${sessionId.toString(16)} ${resumed ? "resumed" : "opened"} on ` +
        `${this.connectString.servers[this.#serverIndex]} (timeout ${timeoutMs} ms)`,
    );
    const ready = this.#ready;
    this.#ready = undefined;
    ready?.resolve();
    this.#emit({ type: "connected", sessionId, resumed });
    if (fresh && this.#expiredBefore) {
      this.#expiredBefore = false;
      this.#afterExpiry();
    }
  }

  #onExpired(): void {
    const expired = this.#sessionId;
    getLogger().warn(`ZooKeeperRegistry: session ${expired.toString(16)} expired`);
    this.#sessionId = 0n;
    this.#password = new Uint8Array(16);
    this.#lastZxid = 0n;
    this.#expiredBefore = true;
    this.#emit({ type: "expired", sessionId: expired });
    // ZooKeeper closes the connection after saying so; open a new session at once on a fresh one.
    const connection = this.#connection;
    this.#connection = undefined;
    this.#handshaking = false;
    this.#reconnectDelayMs = 100;
    connection?.forceClose();
    if (this.#closed) return;
    const old = this.#client;
    this.#client = undefined;
    old?.close().catch(() => {});
    this.#dial();
  }

  async #afterExpiry(): Promise<void> {
    // The expired session's watches died with it: every watcher re-reads and re-watches.
    const watches = this.#watches;
    this.#watches = { data: new Map(), exist: new Map(), child: new Map() };
    for (const byPath of Object.values(watches)) {
      for (const [path, callbacks] of byPath) for (const callback of callbacks) this.#callWatch(callback, 0, path);
    }
    const ephemerals = [...this.#ephemerals.values()];
    this.#ephemerals.clear();
    if (!this.#options.recreateEphemerals) return;
    for (const node of ephemerals) {
      try {
        await this.create(node.requested, node.data, { nodeType: NodeType.EPHEMERAL, sequential: node.sequential });
      } catch (error) {
        getLogger().error(`ZooKeeperRegistry: cannot re-create ephemeral node '${node.requested}' after expiry`, {
          error,
        });
      }
    }
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
      this.#onWatchEvent(type, this.#clientPath(path));
      return;
    }
    if (xid === XID_SET_WATCHES) {
      if (err !== 0) {
        getLogger().warn(`ZooKeeperRegistry: re-registering watches failed: ${registryErrorCodeName(err)}`);
      }
      return;
    }
    const pending = this.#inFlight.get(xid);
    if (pending === undefined) return; // timed out
    this.#inFlight.delete(xid);
    this.#loop.cancel(pending.timer);
    if (err !== 0) {
      pending.reject(
        new RegistryError(
          err as RegistryErrorCode,
          `Cannot ${pending.what}: ${registryErrorCodeName(err)} (ZooKeeper ${this.server ?? "?"})`,
        ),
      );
      return;
    }
    pending.resolve(reader);
  }

  // --- pings ---

  #startPings(): void {
    this.#stopPings();
    const intervalMs = Math.max(100, Math.floor(this.#negotiatedTimeoutMs / 3));
    this.#pingTimer = this.#loop.runEvery(intervalMs, () => {
      if (this.#connection?.connected && !this.#handshaking) {
        this.#connection.send(new JuteWriter().int(XID_PING).int(OP.ping).packet());
      }
    });
  }

  #stopPings(): void {
    if (this.#pingTimer !== undefined) this.#loop.cancel(this.#pingTimer);
    this.#pingTimer = undefined;
  }

  // --- watches ---

  #addWatch(kind: WatchKind, path: string, callback: WatchCallback): void {
    const byPath = this.#watches[kind];
    let callbacks = byPath.get(path);
    if (callbacks === undefined) byPath.set(path, callbacks = new Set());
    callbacks.add(callback);
  }

  #onWatchEvent(type: number, path: string): void {
    // Which watches a change triggers, as ZooKeeper's own clients decide.
    const kinds: WatchKind[] = type === 4 ? ["child"] : type === 2 ? ["data", "exist", "child"] : ["data", "exist"];
    for (const kind of kinds) {
      const callbacks = this.#watches[kind].get(path);
      if (callbacks === undefined) continue;
      this.#watches[kind].delete(path);
      for (const callback of callbacks) this.#callWatch(callback, type, path);
    }
  }

  #callWatch(callback: WatchCallback, type: number, path: string): void {
    try {
      callback({ type, path } as WatchedEvent);
    } catch (error) {
      getLogger().error(`ZooKeeperRegistry: a watch callback for '${path}' threw`, { error });
    }
  }

  #sendSetWatches(): void {
    const paths = (kind: WatchKind) => [...this.#watches[kind].keys()].map((path) => this.#serverPath(path));
    const data = paths("data");
    const exist = paths("exist");
    const child = paths("child");
    if (data.length + exist.length + child.length === 0) return;
    const writer = new JuteWriter().int(XID_SET_WATCHES).int(SET_WATCHES_OP).long(this.#lastZxid);
    writer.strings(data).strings(exist).strings(child);
    this.#connection!.send(writer.packet());
  }

  #emit(event: SessionEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        getLogger().error("ZooKeeperRegistry: a session listener threw", { error });
      }
    }
  }
}
