/**
 * The registry client library (the seed's SRCClient, grown up): one long-lived framed connection with pipelined
 * requests, a background UDP heartbeat signed with the session secret, watches as callbacks, session resumption
 * after a dropped connection, and an `expired` event (with optional re-creation of ephemeral nodes) after an
 * expiry. Promise APIs for every operation.
 *
 * @module
 */

import type { TlsClientOptions } from "../reactor/backend/net_backend.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import { InetAddress } from "../reactor/inet_address.ts";
import { LengthHeaderCodec } from "../reactor/length_header_codec.ts";
import { getLogger } from "../reactor/logger.ts";
import { TcpClient } from "../reactor/tcp_client.ts";
import type { TcpConnection } from "../reactor/tcp_connection.ts";
import type { TimerId } from "../reactor/timer_queue.ts";
import { UdpSocket } from "../reactor/udp_socket.ts";
import {
  type ClientFrame,
  decodeServerFrame,
  encodeClientFrame,
  type ServerFrame,
  statFromWire,
  toBigInt,
} from "./_codec.ts";
import { EventType, NodeType, type Stat } from "./data_tree.ts";
import { encodeHeartbeat, importHeartbeatKey } from "./heartbeat.ts";
import type { Registry } from "./registry.ts";
import { RegistryError, RegistryErrorCode } from "./registry_error.ts";

/** A watch notification. `type` is 0 for "the connection came back: re-read and re-watch". */
export interface WatchedEvent {
  /** What happened ({@linkcode EventType}), or 0 after a reconnect when changes may have been missed. */
  type: EventType | 0;
  /** The watched path. */
  path: string;
}

/** Called once when a watched path changes (watches are one-shot, as in ZooKeeper). */
export type WatchCallback = (event: WatchedEvent) => void;

/** Session state changes. */
export type SessionEvent =
  | { type: "connected"; sessionId: bigint; resumed: boolean }
  | { type: "disconnected" }
  | { type: "expired"; sessionId: bigint }
  | { type: "closed" };

/** Options of {@linkcode RegistryClient.connect}. */
export interface RegistryClientOptions {
  /**
   * The loop to run on.
   * @default {EventLoop.current()}
   */
  loop?: EventLoop;
  /**
   * How long a request may wait for its answer, in milliseconds.
   * @default {10000}
   */
  requestTimeoutMs?: number;
  /**
   * How long the first connection may take, in milliseconds.
   * @default {10000}
   */
  connectTimeoutMs?: number;
  /**
   * A shared token for servers that require one for changes.
   * @default {undefined}
   */
  authToken?: string;
  /**
   * After an expiry, open a new session and re-create the ephemeral nodes this client created (sequential ones
   * are re-created as new sequential nodes).
   * @default {false}
   */
  recreateEphemerals?: boolean;
  /**
   * The first reconnect delay in milliseconds (doubling to 2 s).
   * @default {100}
   */
  reconnectDelayMs?: number;
  /**
   * Largest frame accepted from the server, in bytes.
   * @default {8388608}
   */
  maxFrameBytes?: number;
  /**
   * Speak TLS, trusting these certificates in addition to the system's.
   * @default {undefined}
   */
  tls?: TlsClientOptions;
}

/** Options of create. */
export interface CreateOptions {
  /**
   * PERSISTENT (1) or EPHEMERAL (2).
   * @default {NodeType.PERSISTENT}
   */
  nodeType?: NodeType;
  /**
   * Append a 10-digit counter to the name.
   * @default {false}
   */
  sequential?: boolean;
}

interface PendingRequest {
  resolve: (frame: ServerFrame) => void;
  reject: (error: RegistryError) => void;
  timer: TimerId;
  what: string;
}

const encoder = new TextEncoder();
const toBytes = (data: Uint8Array | string | undefined) =>
  data === undefined ? new Uint8Array(0) : typeof data === "string" ? encoder.encode(data) : data;

/**
 * A registry session.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import { NodeType } from "./data_tree.ts";
 * import { RegistryClient } from "./registry_client.ts";
 * import { RegistryServer } from "./registry_server.ts";
 * import assert from "node:assert/strict";
 *
 * const loop = new EventLoop();
 * const server = new RegistryServer({ port: 0, loop });
 * await server.start();
 * const client = await RegistryClient.connect(server.address, { loop });
 * await client.create("/userService", "");
 * await client.create("/userService/node-1", "127.0.0.1:8000", { nodeType: NodeType.EPHEMERAL });
 * assert.deepEqual(await client.children("/userService"), ["node-1"]);
 * await client.close();
 * await server.stop();
 * ```
 */
export class RegistryClient implements Registry {
  /** The server's address. */
  readonly serverAddress: InetAddress;
  readonly #loop: EventLoop;
  readonly #options: Required<Omit<RegistryClientOptions, "loop" | "authToken" | "tls">> & {
    authToken?: string;
    tls?: TlsClientOptions;
  };
  readonly #tcp: TcpClient;
  readonly #codec: LengthHeaderCodec;
  #connection: TcpConnection | undefined;
  #sessionId = 0n;
  #secret: Uint8Array = new Uint8Array(0);
  #key: CryptoKey | undefined;
  #counter = 0n;
  #heartbeatTimer: TimerId | undefined;
  #heartbeats: Promise<void> = Promise.resolve();
  #udp: UdpSocket | undefined;
  #heartbeatTarget: InetAddress | undefined;
  #nextXid = 1;
  #pending = new Map<number, PendingRequest>();
  #watches = new Map<string, Set<WatchCallback>>();
  #listeners = new Set<(event: SessionEvent) => void>();
  #ephemerals = new Map<string, { data: Uint8Array; sequential: boolean; requested: string }>();
  #ready: PromiseWithResolvers<void> | undefined;
  #closed = false;
  #sessionTimeoutMs = 0;

  private constructor(serverAddress: InetAddress, options: RegistryClientOptions) {
    this.serverAddress = serverAddress;
    this.#loop = options.loop ?? EventLoop.current();
    this.#options = {
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      authToken: options.authToken,
      recreateEphemerals: options.recreateEphemerals ?? false,
      reconnectDelayMs: options.reconnectDelayMs ?? 100,
      maxFrameBytes: options.maxFrameBytes ?? 8 * 1024 * 1024,
      tls: options.tls,
    };
    this.#codec = new LengthHeaderCodec((_connection, body) => this.#onFrame(body), {
      maxFrameBytes: this.#options.maxFrameBytes,
    });
    this.#tcp = new TcpClient(this.#loop, serverAddress, "RegistryClient", {
      retry: true,
      initialRetryDelayMs: this.#options.reconnectDelayMs,
      maxRetryDelayMs: 2000,
      tls: this.#options.tls,
    });
    this.#tcp.setConnectionCallback((connection) => this.#onConnection(connection));
    this.#tcp.setMessageCallback(this.#codec.onMessage);
  }

  /** Connect to a server (`host:port` or an InetAddress) and open a session. */
  static async connect(server: InetAddress | string, options: RegistryClientOptions = {}): Promise<RegistryClient> {
    const address = typeof server === "string" ? InetAddress.parse(server) : server;
    const client = new RegistryClient(address, options);
    client.#udp = await UdpSocket.bind(client.#loop, new InetAddress(address.family === 6 ? "::" : "0.0.0.0", 0));
    client.#ready = Promise.withResolvers<void>();
    const timeout = client.#loop.runAfter(client.#options.connectTimeoutMs, () => {
      client.#ready?.reject(
        new RegistryError(
          RegistryErrorCode.CONNECTION_LOSS,
          `Cannot connect to the registry at ${address} within ${client.#options.connectTimeoutMs} ms`,
        ),
      );
    });
    client.#tcp.connect();
    try {
      await client.#ready.promise;
    } catch (error) {
      await client.#shutdown();
      throw error;
    } finally {
      client.#loop.cancel(timeout);
    }
    return client;
  }

  /** The session id (0n before the first session). */
  get sessionId(): bigint {
    return this.#sessionId;
  }

  /** The session timeout the server applies, in milliseconds. */
  get sessionTimeoutMs(): number {
    return this.#sessionTimeoutMs;
  }

  /** Whether the connection is up with a session. */
  get connected(): boolean {
    return this.#connection !== undefined && this.#ready === undefined && !this.#closed;
  }

  /** Listen for session events; returns a function that removes the listener. */
  onSessionEvent(listener: (event: SessionEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Create a node; resolves with its actual path (sequential nodes get a suffix). */
  async create(path: string, data?: Uint8Array | string, options: CreateOptions = {}): Promise<string> {
    const bytes = toBytes(data);
    const nodeType = options.nodeType ?? NodeType.PERSISTENT;
    const sequential = options.sequential ?? false;
    const frame = await this.#request(`create '${path}'`, { create: { path, data: bytes, nodeType, sequential } });
    const created = frame.create?.path ?? path;
    if (nodeType === NodeType.EPHEMERAL) this.#ephemerals.set(created, { data: bytes, sequential, requested: path });
    return created;
  }

  /** A node's data and stat; `watch` is told once when it changes or is deleted. */
  async get(path: string, options: { watch?: WatchCallback } = {}): Promise<{ data: Uint8Array; stat: Stat }> {
    if (options.watch) this.#addWatch("d", path, options.watch);
    const frame = await this.#request(`get '${path}'`, { get: { path, watch: options.watch !== undefined } });
    // A copy: decoded bytes are views into the connection's input buffer.
    return { data: frame.get?.data?.slice() ?? new Uint8Array(0), stat: statFromWire(frame.get?.stat) };
  }

  /** A node's data as UTF-8 text. */
  async getString(path: string): Promise<string> {
    return new TextDecoder().decode((await this.get(path)).data);
  }

  /** Replace a node's data; with `version`, only if the node is at that version (else BAD_VERSION). */
  async set(path: string, data: Uint8Array | string, options: { version?: number } = {}): Promise<Stat> {
    const frame = await this.#request(`set '${path}'`, {
      set: { path, data: toBytes(data), expectedVersion: options.version ?? -1 },
    });
    const ephemeral = this.#ephemerals.get(path);
    if (ephemeral !== undefined) ephemeral.data = toBytes(data);
    return statFromWire(frame.set?.stat);
  }

  /** Delete a childless node; with `version`, only at that version. */
  async delete(path: string, options: { version?: number } = {}): Promise<void> {
    await this.#request(`delete '${path}'`, { delete: { path, expectedVersion: options.version ?? -1 } });
    this.#ephemerals.delete(path);
  }

  /** A node's stat, or undefined when it does not exist; `watch` fires on create, change or delete. */
  async exists(path: string, options: { watch?: WatchCallback } = {}): Promise<Stat | undefined> {
    if (options.watch) this.#addWatch("d", path, options.watch);
    const frame = await this.#request(`exists '${path}'`, { exists: { path, watch: options.watch !== undefined } });
    return frame.exists?.stat ? statFromWire(frame.exists.stat) : undefined;
  }

  /** A node's stat; NO_NODE when it does not exist. */
  async stat(path: string): Promise<Stat> {
    const stat = await this.exists(path);
    if (stat === undefined) {
      throw new RegistryError(RegistryErrorCode.NO_NODE, `Cannot stat '${path}' as it does not exist`);
    }
    return stat;
  }

  /** A node's children, sorted (the seed's `ls`); `watch` fires when they change or the node is deleted. */
  async children(path: string, options: { watch?: WatchCallback } = {}): Promise<string[]> {
    if (options.watch) this.#addWatch("c", path, options.watch);
    const frame = await this.#request(`list '${path}'`, { children: { path, watch: options.watch !== undefined } });
    return frame.children?.children ?? [];
  }

  /** A round trip to the server. */
  async ping(): Promise<void> {
    await this.#request("ping", { ping: {} });
  }

  /** Close the session (its ephemeral nodes go at once) and the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#connection !== undefined && this.#ready === undefined) {
      try {
        await this.#request("close", { close: {} });
      } catch {
        // Closing anyway.
      }
    }
    await this.#shutdown();
    this.#emit({ type: "closed" });
  }

  /** Same as {@linkcode RegistryClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    this.#closed = true;
    this.#stopHeartbeats();
    this.#failPending(RegistryErrorCode.CLOSED, "the client was closed");
    await this.#heartbeats;
    await this.#tcp.close();
    await this.#udp?.close();
  }

  // --- requests ---

  #request(what: string, body: Omit<ClientFrame, "xid">): Promise<ServerFrame> {
    if (this.#closed) {
      return Promise.reject(new RegistryError(RegistryErrorCode.CLOSED, `Cannot ${what} as the client is closed`));
    }
    const connection = this.#connection;
    if (connection === undefined || (this.#ready !== undefined && body.connect === undefined)) {
      return Promise.reject(
        new RegistryError(
          RegistryErrorCode.CONNECTION_LOSS,
          `Cannot ${what} as the client is not connected to ${this.serverAddress}`,
        ),
      );
    }
    const xid = this.#nextXid;
    this.#nextXid = this.#nextXid >= 0x7fff_ffff ? 1 : this.#nextXid + 1;
    return new Promise<ServerFrame>((resolve, reject) => {
      const timer = this.#loop.runAfter(this.#options.requestTimeoutMs, () => {
        this.#pending.delete(xid);
        reject(
          new RegistryError(
            RegistryErrorCode.OPERATION_TIMEOUT,
            `Cannot ${what} as the registry did not answer within ${this.#options.requestTimeoutMs} ms`,
          ),
        );
      });
      this.#pending.set(xid, { resolve, reject, timer, what });
      this.#codec.send(connection, encodeClientFrame({ xid, ...body } as ClientFrame));
    });
  }

  #failPending(code: RegistryErrorCode, why: string): void {
    const pending = this.#pending;
    this.#pending = new Map();
    for (const request of pending.values()) {
      this.#loop.cancel(request.timer);
      request.reject(new RegistryError(code, `Cannot ${request.what} as ${why}`));
    }
  }

  #onFrame(body: Uint8Array): void {
    let frame: ServerFrame;
    try {
      frame = decodeServerFrame(body);
    } catch (error) {
      getLogger().error(`RegistryClient: a frame from ${this.serverAddress} does not parse; reconnecting`, { error });
      this.#connection?.forceClose();
      return;
    }
    if (frame.event) {
      this.#fireWatches(frame.event.type as EventType, frame.event.path ?? "");
      return;
    }
    const request = this.#pending.get(frame.xid);
    if (request === undefined) return; // timed out already
    this.#pending.delete(frame.xid);
    this.#loop.cancel(request.timer);
    if (frame.errorCode) {
      request.reject(new RegistryError(frame.errorCode as RegistryErrorCode, frame.errorMessage ?? "registry error"));
    } else {
      request.resolve(frame);
    }
  }

  // --- watches ---

  #addWatch(kind: "d" | "c", path: string, callback: WatchCallback): void {
    const key = `${kind}${path}`;
    let callbacks = this.#watches.get(key);
    if (callbacks === undefined) this.#watches.set(key, callbacks = new Set());
    callbacks.add(callback);
  }

  #fireWatches(type: EventType, path: string): void {
    const keys = type === EventType.NODE_CHILDREN_CHANGED
      ? [`c${path}`]
      : type === EventType.NODE_DELETED
      ? [`d${path}`, `c${path}`]
      : [`d${path}`];
    for (const key of keys) {
      const callbacks = this.#watches.get(key);
      if (callbacks === undefined) continue;
      this.#watches.delete(key);
      for (const callback of callbacks) this.#callWatch(callback, { type, path });
    }
  }

  #callWatch(callback: WatchCallback, event: WatchedEvent): void {
    try {
      callback(event);
    } catch (error) {
      getLogger().error(`RegistryClient: a watch callback for '${event.path}' threw`, { error });
    }
  }

  /** After a reconnect, changes may have been missed: tell every watcher to re-read (and re-watch). */
  #resyncWatches(): void {
    const watches = this.#watches;
    this.#watches = new Map();
    for (const [key, callbacks] of watches) {
      for (const callback of callbacks) this.#callWatch(callback, { type: 0, path: key.slice(1) });
    }
  }

  #emit(event: SessionEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        getLogger().error("RegistryClient: a session listener threw", { error });
      }
    }
  }

  // --- connection and session ---

  #onConnection(connection: TcpConnection): void {
    if (!connection.connected) {
      if (this.#connection === connection) this.#connection = undefined;
      this.#failPending(RegistryErrorCode.CONNECTION_LOSS, `the connection to ${this.serverAddress} was lost`);
      if (!this.#closed) {
        this.#ready ??= Promise.withResolvers<void>();
        this.#ready.promise.catch(() => {});
        this.#emit({ type: "disconnected" });
      }
      return;
    }
    this.#connection = connection;
    this.#openSession(connection);
  }

  async #openSession(connection: TcpConnection): Promise<void> {
    const resuming = this.#sessionId !== 0n;
    try {
      const frame = await this.#request(resuming ? "resume the session" : "open a session", {
        connect: {
          sessionId: this.#sessionId.toString(),
          sessionSecret: this.#secret,
          authToken: this.#options.authToken ?? "",
        },
      });
      await this.#sessionOpened(frame, resuming);
    } catch (error) {
      const registryError = RegistryError.from(error);
      if (registryError.code === RegistryErrorCode.SESSION_EXPIRED && resuming && connection.connected) {
        await this.#handleExpiry(connection);
        return;
      }
      getLogger().warn(`RegistryClient: cannot open a session on ${this.serverAddress}`, { error: registryError });
      this.#ready?.reject(registryError);
      connection.forceClose();
    }
  }

  async #sessionOpened(frame: ServerFrame, resuming: boolean): Promise<void> {
    const connect = frame.connect ?? {};
    const sessionId = toBigInt(connect.sessionId);
    if (sessionId !== this.#sessionId) {
      this.#sessionId = sessionId;
      this.#secret = connect.sessionSecret?.slice() ?? new Uint8Array(0);
      this.#key = await importHeartbeatKey(this.#secret);
      this.#counter = 0n;
    }
    this.#sessionTimeoutMs = connect.sessionTimeoutMs ?? 0;
    this.#heartbeatTarget = new InetAddress(
      this.serverAddress.hostname,
      connect.heartbeatPort || this.serverAddress.port,
    );
    this.#startHeartbeats(connect.heartbeatIntervalMs || 1000);
    const ready = this.#ready;
    this.#ready = undefined;
    ready?.resolve();
    const resumed = connect.resumed ?? false;
    getLogger().debug(`RegistryClient: session ${sessionId.toString(16)} ${resumed ? "resumed" : "opened"}`);
    this.#emit({ type: "connected", sessionId, resumed });
    if (resuming) this.#resyncWatches();
  }

  async #handleExpiry(connection: TcpConnection): Promise<void> {
    const expired = this.#sessionId;
    getLogger().warn(`RegistryClient: session ${expired.toString(16)} expired`);
    this.#stopHeartbeats();
    this.#sessionId = 0n;
    this.#secret = new Uint8Array(0);
    this.#emit({ type: "expired", sessionId: expired });
    if (!connection.connected || this.#closed) return;
    await this.#openSession(connection);
    // The expired session's watches died with it on the server: every watcher re-reads and re-watches.
    if (!this.#closed) this.#resyncWatches();
    if (!this.#options.recreateEphemerals || this.#closed) {
      this.#ephemerals.clear();
      return;
    }
    const ephemerals = [...this.#ephemerals.values()];
    this.#ephemerals.clear();
    for (const node of ephemerals) {
      try {
        await this.create(node.requested, node.data, { nodeType: NodeType.EPHEMERAL, sequential: node.sequential });
      } catch (error) {
        getLogger().error(`RegistryClient: cannot re-create ephemeral node '${node.requested}' after expiry`, {
          error,
        });
      }
    }
  }

  #startHeartbeats(intervalMs: number): void {
    this.#stopHeartbeats();
    this.#sendHeartbeat();
    this.#heartbeatTimer = this.#loop.runEvery(intervalMs, () => this.#sendHeartbeat());
  }

  #stopHeartbeats(): void {
    if (this.#heartbeatTimer !== undefined) this.#loop.cancel(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
  }

  #sendHeartbeat(): void {
    const key = this.#key;
    const udp = this.#udp;
    const target = this.#heartbeatTarget;
    if (key === undefined || udp === undefined || target === undefined || this.#sessionId === 0n) return;
    const counter = ++this.#counter;
    const sessionId = this.#sessionId;
    // Chained, so datagrams leave in counter order (the server drops a counter it has already passed).
    this.#heartbeats = this.#heartbeats.then(async () => {
      const datagram = await encodeHeartbeat(sessionId, counter, key);
      if (!this.#closed) udp.send(datagram, target);
    });
  }
}
