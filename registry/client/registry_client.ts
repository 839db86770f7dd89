/**
 * The registry client library (the seed's SRCClient, grown up): one long-lived framed connection with pipelined
 * requests, a background UDP heartbeat signed with the session secret, a TCP keepalive (ping when idle, a read
 * timeout when the server falls silent), watches as callbacks, session resumption after a dropped connection, and
 * recovery after an expiry however it is learnt (an `expired` event, a new session, re-armed watches, optionally
 * re-created ephemeral nodes). Promise APIs for every operation.
 *
 * @module
 */

import { EventLoop } from "../../reactor/event_loop.ts";
import { InetAddress } from "../../reactor/inet_address.ts";
import { LengthHeaderCodec } from "../../reactor/length_header_codec.ts";
import { getLogger } from "../../reactor/logger.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import { ClientHeartbeats } from "./_client_heartbeats.ts";
import { ClientKeepalive } from "./_client_keepalive.ts";
import { ClientSession, SessionState } from "./_client_session.ts";
import {
  type ClientFrame,
  decodeServerFrame,
  encodeClientFrameTransient,
  type ServerFrame,
  statFromWire,
  toBigInt,
} from "../_codec.ts";
import { createNode, type ProtectedCreateTarget, protectedCreateTarget } from "./_protected_create.ts";
import { ServerDialer } from "./_server_dialer.ts";
import type { WatchKind } from "./_watch_registry.ts";
import { importHeartbeatKey } from "../heartbeat.ts";
import type { CreateOptions, EventType, NodeType, Registry, SessionEvent, Stat, WatchCallback } from "../registry.ts";
import {
  type RegistryClientOptions,
  type ResolvedRegistryClientOptions,
  resolveRegistryClientOptions,
} from "./registry_client_options.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";

// The contract types, where importers of this file have always found them.
export type { CreateOptions, SessionEvent, WatchCallback, WatchedEvent } from "../registry.ts";
export type { RegistryClientOptions } from "./registry_client_options.ts";

const encoder = new TextEncoder();
const toBytes = (data: Uint8Array | string | undefined) =>
  data === undefined ? new Uint8Array(0) : typeof data === "string" ? encoder.encode(data) : data;

/** A watch a read sets: held from the moment its request is written. */
interface Watch {
  kind: WatchKind;
  path: string;
  callback: WatchCallback;
}

// Answers as the caller gets them, made as they arrive (see RegistryClient#request): bytes are copied there.
const readGet = (frame: ServerFrame) => ({
  data: frame.get?.data?.slice() ?? new Uint8Array(0),
  stat: statFromWire(frame.get?.stat),
});
const readExists = (frame: ServerFrame) => frame.exists?.stat ? statFromWire(frame.exists.stat) : undefined;
// The caller's own array: a frame without children decodes to a shared, frozen empty list.
const readChildren = (frame: ServerFrame) => {
  const children = frame.children?.children;
  return children === undefined || children.length === 0 ? [] : children;
};
const readConnect = (frame: ServerFrame) => {
  if (frame.connect?.sessionSecret !== undefined) frame.connect.sessionSecret = frame.connect.sessionSecret.slice();
  return frame;
};

/**
 * A registry session.
 *
 * Liveness: UDP heartbeats (signed with the session secret) keep the session alive on the server, also while the
 * TCP connection is down. On the connection, a ping goes out when no request has been sent for
 * `pingIntervalMs`, and the connection is closed (then re-made, and the session resumed) when nothing has arrived
 * for `readTimeoutMs`; the defaults are a third and two thirds of the session timeout, as in ZooKeeper.
 *
 * Expiry. The client learns that the server expired its session from whichever of these comes first: a signed
 * UDP expiry notice (the server's answer to a heartbeat of an expired session; anything unsigned or signed with
 * another key is ignored), a SESSION_EXPIRED frame with xid 0, or a SESSION_EXPIRED answer to any request or to
 * the resumption after a reconnect. Every one of them runs the same recovery, once per session, in this order:
 *
 * 1. Heartbeats for the old session stop; requests in flight fail with SESSION_EXPIRED; new requests fail with
 *    CONNECTION_LOSS until step 3.
 * 2. `{ type: "expired", sessionId }` is emitted with the old id.
 * 3. A new session is opened: on the same connection when the resumption was refused; otherwise the connection
 *    of the old session is closed (a `disconnected` event) and the next one (made at once, then with back-off)
 *    opens it.
 * 4. `{ type: "connected", resumed: false, sessionId }` is emitted with the new id. This is the hook for
 *    re-publishing: the RPC provider (rpc/rpc_provider.ts) publishes its services again here.
 * 5. Every watcher is called with type 0 ("re-read and re-watch"): the old session's watches died with it.
 * 6. With `recreateEphemerals`, the ephemeral nodes this client created are created again, one at a time, in the
 *    order they were first created; a node that already exists and is owned by the new session (re-published by
 *    a listener of step 4) counts as re-created. Without it they are forgotten.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { NodeType } from "../server/data_tree.ts";
 * import { RegistryClient } from "./registry_client.ts";
 * import { RegistryServer } from "../server/registry_server.ts";
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
  readonly #options: ResolvedRegistryClientOptions;
  readonly #session: ClientSession<ServerFrame>;
  readonly #dialer: ServerDialer;
  readonly #codec: LengthHeaderCodec;
  readonly #keepalive: ClientKeepalive;
  readonly #protectedTarget: ProtectedCreateTarget;
  // Bound in connect(), before the first session.
  #heartbeats!: ClientHeartbeats;
  // The session's credential: what resumes it, and the heartbeats' key.
  #secret: Uint8Array = new Uint8Array(0);
  #sessionTimeoutMs = 0;

  private constructor(serverAddress: InetAddress, options: RegistryClientOptions) {
    this.serverAddress = serverAddress;
    this.#loop = options.loop ?? EventLoop.current();
    this.#options = resolveRegistryClientOptions(options);
    this.#session = new ClientSession<ServerFrame>(this.#loop, this, {
      owner: "RegistryClient",
      peer: "the registry",
      requestTimeoutMs: this.#options.requestTimeoutMs,
      recreateEphemerals: this.#options.recreateEphemerals,
    });
    this.#codec = new LengthHeaderCodec((connection, body) => this.#onFrame(connection, body), {
      maxFrameBytes: this.#options.maxFrameBytes,
    });
    this.#dialer = new ServerDialer(this.#loop, [serverAddress], "RegistryClient", {
      initialDelayMs: this.#options.reconnectDelayMs,
      maxDelayMs: 2000,
      redialLostSessionAtOnce: true,
      connectTimeoutMs: this.#options.connectTimeoutMs,
      tls: this.#options.tls,
    });
    this.#keepalive = new ClientKeepalive(this.#loop, this.#session, {
      readTimeoutMs: this.#options.readTimeoutMs,
      pingIntervalMs: this.#options.pingIntervalMs,
      peer: serverAddress.toString(),
    });
    // A ping's failures are the read timeout's business (or the expiry path's, for SESSION_EXPIRED).
    this.#keepalive.setPingCallback(() => this.ping().catch(() => {}));
    this.#dialer.setConnectionCallback((connection) => this.#onConnection(connection));
    this.#dialer.setMessageCallback((connection, buffer, receiveTimeMs) => {
      this.#keepalive.received(receiveTimeMs);
      this.#codec.onMessage(connection, buffer, receiveTimeMs);
    });
    this.#protectedTarget = protectedCreateTarget({
      createOnce: (path, data, nodeType, sequential) => this.#createOnce(path, data, nodeType, sequential),
      registry: this,
      session: this.#session,
      loop: this.#loop,
      timeoutMs: this.#options.requestTimeoutMs,
    });
  }

  /** Connect to a server (`host:port` or an InetAddress) and open a session. */
  static async connect(server: InetAddress | string, options: RegistryClientOptions = {}): Promise<RegistryClient> {
    const address = typeof server === "string" ? InetAddress.parse(server) : server;
    const client = new RegistryClient(address, options);
    client.#heartbeats = await ClientHeartbeats.bind(client.#loop, address);
    client.#heartbeats.setExpiryNoticeCallback((sessionId) =>
      client.#sessionExpired(sessionId, "the server's signed expiry notice")
    );
    client.#dialer.start();
    try {
      await client.#session.firstSession(
        client.#loop,
        client.#options.connectTimeoutMs,
        `Cannot connect to the registry at ${address} within ${client.#options.connectTimeoutMs} ms`,
      );
    } catch (error) {
      await client.#shutdown();
      throw error;
    }
    return client;
  }

  /** The session id (0n before the first session and between an expiry and the next session). */
  get sessionId(): bigint {
    return this.#session.sessionId;
  }

  /** The session timeout the server applies, in milliseconds. */
  get sessionTimeoutMs(): number {
    return this.#sessionTimeoutMs;
  }

  /** Whether the connection is up with a session. */
  get connected(): boolean {
    return this.#session.state === SessionState.CONNECTED;
  }

  /** Listen for session events; returns a function that removes the listener. */
  onSessionEvent(listener: (event: SessionEvent) => void): () => void {
    return this.#session.onSessionEvent(listener);
  }

  /**
   * Create a node; resolves with its actual path (sequential nodes get a suffix, protected ones a prefix: see
   * {@linkcode CreateOptions.protected} for creates that are safe to retry).
   *
   * @example
   * ```ts
   * import { EventLoop } from "../../reactor/event_loop.ts";
   * import { NodeType } from "../registry.ts";
   * import { RegistryClient } from "./registry_client.ts";
   * import { RegistryServer } from "../server/registry_server.ts";
   * import assert from "node:assert/strict";
   *
   * const loop = new EventLoop();
   * const server = new RegistryServer({ port: 0, loop });
   * await server.start();
   * const client = await RegistryClient.connect(server.address, { loop });
   * await client.create("/jobs", "");
   * // One node per call, even when a lost connection makes the client look for it and retry.
   * const job = await client.create("/jobs/job-", "payload", { sequential: true, protected: true });
   * assert.match(job, /^\/jobs\/_p_[0-9a-f-]{36}-job-0000000000$/);
   * await client.close();
   * await server.stop();
   * ```
   */
  create(path: string, data?: Uint8Array | string, options: CreateOptions = {}): Promise<string> {
    try {
      return createNode(this.#protectedTarget, this.#session.ephemerals, path, toBytes(data), options);
    } catch (error) {
      return Promise.reject(error); // bad arguments fail the promise, as from an async method
    }
  }

  #createOnce(path: string, data: Uint8Array, nodeType: NodeType, sequential: boolean): Promise<string> {
    return this.#request(
      `create '${path}'`,
      { create: { path, data, nodeType, sequential } },
      (frame) => frame.create?.path ?? path,
    );
  }

  /** A node's data and stat; `watch` is told once when it changes or is deleted. */
  get(path: string, options: { watch?: WatchCallback } = {}): Promise<{ data: Uint8Array; stat: Stat }> {
    const body = { get: { path, watch: options.watch !== undefined } };
    const watch = options.watch && { kind: "data" as const, path, callback: options.watch };
    return this.#request(`get '${path}'`, body, readGet, watch);
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
    this.#session.ephemerals.dataSet(path, toBytes(data));
    return statFromWire(frame.set?.stat);
  }

  /** Delete a childless node; with `version`, only at that version. */
  async delete(path: string, options: { version?: number } = {}): Promise<void> {
    await this.#request(`delete '${path}'`, { delete: { path, expectedVersion: options.version ?? -1 } });
    this.#session.ephemerals.deleted(path);
  }

  /** A node's stat, or undefined when it does not exist; `watch` fires on create, change or delete. */
  exists(path: string, options: { watch?: WatchCallback } = {}): Promise<Stat | undefined> {
    const body = { exists: { path, watch: options.watch !== undefined } };
    const watch = options.watch && { kind: "data" as const, path, callback: options.watch };
    return this.#request(`exists '${path}'`, body, readExists, watch);
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
  children(path: string, options: { watch?: WatchCallback } = {}): Promise<string[]> {
    const body = { children: { path, watch: options.watch !== undefined } };
    const watch = options.watch && { kind: "child" as const, path, callback: options.watch };
    return this.#request(`list '${path}'`, body, readChildren, watch);
  }

  /** A round trip to the server. */
  async ping(): Promise<void> {
    await this.#request("ping", { ping: {} });
  }

  /** Close the session (its ephemeral nodes go at once) and the connection. */
  async close(): Promise<void> {
    if (this.#session.closed) return;
    if (this.#session.state === SessionState.CONNECTED) {
      try {
        await this.#request("close", { close: {} });
      } catch {
        // Closing anyway.
      }
    }
    await this.#shutdown();
    this.#session.emitClosed();
  }

  /** Same as {@linkcode RegistryClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    this.#session.close("the client was closed");
    this.#keepalive.stop();
    this.#heartbeats.stop();
    await this.#dialer.close();
    await this.#heartbeats.close();
  }

  // --- requests ---

  /**
   * Send a request; resolves with its answer as `read` makes it. `read` runs as the answer arrives: the frame's
   * bytes fields are views into the connection's input buffer, which later reads reuse, so whatever is kept of them
   * must be copied there, not after an await.
   */
  #request(what: string, body: Omit<ClientFrame, "xid">): Promise<ServerFrame>;
  #request<T>(what: string, body: Omit<ClientFrame, "xid">, read: (frame: ServerFrame) => T, watch?: Watch): Promise<T>;
  #request<T>(
    what: string,
    body: Omit<ClientFrame, "xid">,
    read?: (frame: ServerFrame) => T,
    watch?: Watch,
  ): Promise<T> {
    const session = this.#session;
    if (session.closed) {
      return Promise.reject(new RegistryError(RegistryErrorCode.CLOSED, `Cannot ${what} as the client is closed`));
    }
    const connection = session.connection;
    const connect = body.connect !== undefined;
    if (connection === undefined || (session.state !== SessionState.CONNECTED && !connect)) {
      return Promise.reject(
        new RegistryError(
          RegistryErrorCode.CONNECTION_LOSS,
          `Cannot ${what} as the client is not connected to ${this.serverAddress}`,
        ),
      );
    }
    const frame = body as ClientFrame;
    frame.xid = session.requests.nextXid(); // the body is the caller's own literal
    // Encoded and checked before the request waits for an answer: one that cannot be sent must not stay pending
    // (its timeout would reject a promise nobody holds any more).
    let packet: Uint8Array;
    try {
      packet = encodeClientFrameTransient(frame);
    } catch (error) {
      return Promise.reject(error);
    }
    if (packet.length > this.#options.maxFrameBytes) {
      return Promise.reject(
        new RegistryError(
          RegistryErrorCode.LIMIT_EXCEEDED,
          `Cannot ${what} as its request of ${packet.length} bytes exceeds 'maxFrameBytes' of ` +
            `${this.#options.maxFrameBytes}`,
        ),
      );
    }
    // Held before the request is written, so an event that overtakes the answer finds it; not for a request refused
    // above, which the server never sees.
    const onSettled = watch && session.watches.holdForRead(watch.kind, watch.path, watch.callback);
    this.#keepalive.sent();
    const answer = session.requests.add<T>(frame.xid, what, true, undefined, read, connect, onSettled);
    this.#codec.send(connection, packet); // the transient bytes are copied here, before any other encode
    return answer;
  }

  #onFrame(connection: TcpConnection, body: Uint8Array): void {
    let frame: ServerFrame;
    try {
      frame = decodeServerFrame(body);
    } catch (error) {
      getLogger().error(`RegistryClient: a frame from ${this.serverAddress} does not parse; reconnecting`, { error });
      connection.forceClose();
      return;
    }
    if (frame.event) {
      this.#session.watches.trigger(frame.event.type as EventType, frame.event.path ?? "");
      return;
    }
    const expired = frame.errorCode === RegistryErrorCode.SESSION_EXPIRED;
    if (frame.xid === 0) {
      // The server expired the session this connection carries and is about to close it.
      if (expired) this.#sessionExpired(this.#session.sessionId, "the server said so on the connection");
      return;
    }
    const requests = this.#session.requests;
    const request = requests.take(frame.xid);
    if (request === undefined) return; // timed out already
    if (frame.errorCode) {
      requests.refuse(
        request,
        new RegistryError(frame.errorCode as RegistryErrorCode, frame.errorMessage ?? "registry error"),
      );
      // A refused resumption is handled where it was asked for (#openSession), on its connection.
      if (expired && !request.opensSession) {
        this.#sessionExpired(this.#session.sessionId, `the server answered '${request.what}' with SESSION_EXPIRED`);
      }
    } else {
      requests.settle(request, frame);
    }
  }

  // --- connection and session ---

  #onConnection(connection: TcpConnection): void {
    if (!connection.connected) {
      this.#keepalive.stop();
      this.#session.connectionLost(`the connection to ${this.serverAddress} was lost`);
      return;
    }
    this.#session.connectionUp(connection);
    this.#openSession(connection);
    this.#keepalive.connectionUp();
  }

  async #openSession(connection: TcpConnection): Promise<void> {
    const sessionId = this.#session.sessionId;
    try {
      const frame = await this.#request(sessionId !== 0n ? "resume the session" : "open a session", {
        connect: {
          sessionId: sessionId.toString(),
          sessionSecret: this.#secret,
          authToken: this.#options.authToken ?? "",
        },
      }, readConnect);
      await this.#sessionOpened(frame, sessionId !== 0n);
    } catch (error) {
      const registryError = RegistryError.from(error);
      if (registryError.code === RegistryErrorCode.SESSION_EXPIRED && sessionId !== 0n) {
        this.#sessionExpired(sessionId, "the server refused to resume it", connection);
        return;
      }
      getLogger().warn(`RegistryClient: cannot open a session on ${this.serverAddress}`, { error: registryError });
      this.#session.handshakeFailed(registryError);
      connection.forceClose();
    }
  }

  async #sessionOpened(frame: ServerFrame, resuming: boolean): Promise<void> {
    const connect = frame.connect ?? {};
    const sessionId = toBigInt(connect.sessionId);
    if (sessionId !== this.#session.sessionId) {
      const secret = connect.sessionSecret ?? new Uint8Array(0); // copied as it arrived
      const key = await importHeartbeatKey(secret);
      if (this.#session.closed) return;
      this.#secret = secret;
      this.#heartbeats.useKey(key);
    }
    // Counters continue across reconnects of a session, and never fall below the server's floor (it raises the
    // floor at every start, so heartbeats recorded before a restart are worthless after it).
    this.#heartbeats.raiseCounter(toBigInt(connect.heartbeatCounterFloor));
    this.#sessionTimeoutMs = connect.sessionTimeoutMs ?? 0;
    this.#keepalive.sessionTimeoutMs = this.#sessionTimeoutMs;
    const heartbeatTarget = this.#options.heartbeatAddress ??
      new InetAddress(this.serverAddress.hostname, connect.heartbeatPort || this.serverAddress.port);
    this.#dialer.sessionOpened();
    const resumed = connect.resumed ?? false;
    const opened = this.#session.sessionOpened(sessionId, resumed, resuming);
    this.#heartbeats.start(sessionId, heartbeatTarget, connect.heartbeatIntervalMs || 1000);
    // The session timeout is known now: the keepalive may need an earlier wake-up than the one armed at connect.
    this.#keepalive.arm();
    await opened;
  }

  /**
   * The one expiry path, whichever signal brought the news (see the class doc for the order of what follows).
   * Runs once per session: later signals for a session already handled find another (or no) session id.
   * `connection`, when given, is a connection with no session yet (its resumption was refused): the new session
   * opens on it.
   */
  #sessionExpired(sessionId: bigint, why: string, connection?: TcpConnection): void {
    const session = this.#session;
    if (!session.isCurrent(sessionId)) return;
    this.#heartbeats.forget();
    this.#secret = new Uint8Array(0);
    session.sessionExpired(sessionId, why);
    if (session.closed) return;
    if (connection !== undefined && connection === session.connection && connection.connected) {
      this.#openSession(connection);
    } else {
      // The connection belongs to the dead session (the server refuses a second connect on it), and may be stuck.
      this.#dialer.redialAtOnce();
      session.connection?.forceClose();
    }
  }
}
