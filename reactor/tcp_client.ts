/**
 * A TCP client (muduo's TcpClient): a Connector that establishes one TcpConnection at a time, with optional
 * reconnection when the connection is lost.
 *
 * @module
 */

import type { RawSocket } from "./backend/net_backend.ts";
import type { ConnectionCallback, HighWaterMarkCallback, MessageCallback, WriteCompleteCallback } from "./callbacks.ts";
import { Connector, type ConnectorOptions } from "./connector.ts";
import { defaultConnectionCallback, defaultMessageCallback } from "./callbacks.ts";
import type { EventLoop } from "./event_loop.ts";
import type { InetAddress } from "./inet_address.ts";
import { getLogger } from "./logger.ts";
import { DEFAULT_HIGH_WATER_MARK, TcpConnection } from "./tcp_connection.ts";

/**
 * Options of {@linkcode TcpClient}.
 *
 * @example
 * ```ts
 * import { EventLoop } from "./event_loop.ts";
 * import { InetAddress } from "./inet_address.ts";
 * import { TcpClient, type TcpClientOptions } from "./tcp_client.ts";
 *
 * const options: TcpClientOptions = { retry: true, initialRetryDelayMs: 100, maxRetryDelayMs: 5_000 };
 * const client = new TcpClient(new EventLoop(), new InetAddress("127.0.0.1", 8800), "client", options);
 * ```
 */
export interface TcpClientOptions extends ConnectorOptions {
  /**
   * Reconnect (with back-off) when an established connection is lost other than by `disconnect`/`close`.
   * @default {false}
   */
  retry?: boolean;
  /**
   * Set TCP_NODELAY on the connection.
   * @default {true}
   */
  noDelay?: boolean;
}

/**
 * Connects to one server and owns the resulting connection. The connector retries until it connects; `retry`
 * makes the client reconnect after a loss.
 *
 * @example
 * ```ts
 * import { EventLoop } from "./event_loop.ts";
 * import { InetAddress } from "./inet_address.ts";
 * import { TcpClient } from "./tcp_client.ts";
 * import { TcpServer } from "./tcp_server.ts";
 * import assert from "node:assert/strict";
 *
 * const loop = new EventLoop();
 * const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "echo");
 * server.setMessageCallback((connection, buffer) => connection.send(buffer));
 * await server.start();
 * const echoed = Promise.withResolvers<string>();
 * const client = new TcpClient(loop, server.address, "client");
 * client.setConnectionCallback((connection) => connection.connected && connection.send("ping"));
 * client.setMessageCallback((_connection, buffer) => echoed.resolve(buffer.retrieveAllAsString()));
 * client.connect();
 * assert.equal(await echoed.promise, "ping");
 * await client.close();
 * await server.stop();
 * ```
 */
export class TcpClient {
  /** The loop of the client and its connection. */
  readonly loop: EventLoop;
  /** The client's name, the prefix of its connections' names. */
  readonly name: string;
  /** The server's address. */
  readonly serverAddress: InetAddress;
  readonly #connector: Connector;
  readonly #noDelay: boolean;
  #retry: boolean;
  #connect = false;
  #connection: TcpConnection | undefined;
  #nextConnectionId = 1;
  #closedWaiters: Array<() => void> = [];

  #connectionCallback: ConnectionCallback = defaultConnectionCallback;
  #messageCallback: MessageCallback = defaultMessageCallback;
  #writeCompleteCallback: WriteCompleteCallback | undefined;
  #highWaterMarkCallback: HighWaterMarkCallback | undefined;
  #highWaterMark = DEFAULT_HIGH_WATER_MARK;

  /** Prepare a client; nothing happens until `connect`. */
  constructor(loop: EventLoop, serverAddress: InetAddress, name: string, options: TcpClientOptions = {}) {
    this.loop = loop;
    this.serverAddress = serverAddress;
    this.name = name;
    this.#retry = options.retry ?? false;
    this.#noDelay = options.noDelay ?? true;
    this.#connector = new Connector(loop, serverAddress, options);
    this.#connector.setNewConnectionCallback((socket) => this.#newConnection(socket));
  }

  /** The current connection, if any. */
  get connection(): TcpConnection | undefined {
    return this.#connection;
  }

  /** Whether a connection is up. */
  get connected(): boolean {
    return this.#connection?.connected ?? false;
  }

  /** Whether the client reconnects after a loss. */
  get retry(): boolean {
    return this.#retry;
  }

  /** Turn reconnection on. */
  enableRetry(): void {
    this.#retry = true;
  }

  /** The connector (for its state and back-off). */
  get connector(): Connector {
    return this.#connector;
  }

  /** Set the callback for the connection coming up and going down. */
  setConnectionCallback(callback: ConnectionCallback): void {
    this.#connectionCallback = callback;
  }

  /** Set the callback for arriving bytes. */
  setMessageCallback(callback: MessageCallback): void {
    this.#messageCallback = callback;
  }

  /** Set the callback for a drained output buffer. */
  setWriteCompleteCallback(callback: WriteCompleteCallback | undefined): void {
    this.#writeCompleteCallback = callback;
  }

  /** Set the high-water-mark callback. */
  setHighWaterMarkCallback(callback: HighWaterMarkCallback | undefined, highWaterMark = DEFAULT_HIGH_WATER_MARK): void {
    this.#highWaterMarkCallback = callback;
    this.#highWaterMark = highWaterMark;
  }

  /** Set the callback told when the connector gives up (after its `maxAttempts`). */
  setConnectFailedCallback(callback: (error: unknown) => void): void {
    this.#connector.setConnectFailedCallback(callback);
  }

  /** Start connecting. */
  connect(): void {
    getLogger().debug(`TcpClient '${this.name}' connecting to ${this.serverAddress}`);
    this.#connect = true;
    this.#connector.start();
  }

  /** Shut the connection down gracefully (after its output drains) and do not reconnect. */
  disconnect(): void {
    this.#connect = false;
    this.#connection?.shutdown();
  }

  /** Stop connecting (a live connection stays). */
  stop(): void {
    this.#connect = false;
    this.#connector.stop();
  }

  /** Stop connecting, close the connection now, and resolve once it has closed. */
  async close(): Promise<void> {
    this.stop();
    const connection = this.#connection;
    if (connection === undefined) return;
    const closed = new Promise<void>((resolve) => this.#closedWaiters.push(resolve));
    connection.forceClose();
    await closed;
  }

  /** Same as {@linkcode TcpClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #newConnection(socket: RawSocket): void {
    if (!this.#connect) {
      socket.close();
      return;
    }
    const peer = `${socket.remoteAddress.hostname}:${socket.remoteAddress.port}`;
    const connection = new TcpConnection(this.loop, `${this.name}:${peer}#${this.#nextConnectionId++}`, socket);
    if (this.#noDelay) connection.setTcpNoDelay(true);
    connection.setConnectionCallback(this.#connectionCallback);
    connection.setMessageCallback(this.#messageCallback);
    connection.setWriteCompleteCallback(this.#writeCompleteCallback);
    connection.setHighWaterMarkCallback(this.#highWaterMarkCallback, this.#highWaterMark);
    connection.setCloseCallback((closed) => this.#removeConnection(closed));
    this.#connection = connection;
    connection.connectEstablished();
  }

  #removeConnection(connection: TcpConnection): void {
    if (this.#connection === connection) this.#connection = undefined;
    const waiters = this.#closedWaiters;
    this.#closedWaiters = [];
    for (const waiter of waiters) waiter();
    if (this.#retry && this.#connect) {
      getLogger().info(`TcpClient '${this.name}' lost ${connection.name}; reconnecting to ${this.serverAddress}`);
      this.#connector.restart();
    }
  }
}
