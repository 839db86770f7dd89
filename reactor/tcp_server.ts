/**
 * A TCP server (muduo's TcpServer): owns an Acceptor and its connections, and dispatches their callbacks.
 * With `setThreadNum(n)` it runs n Workers, each with its own EventLoop listening on the same port with
 * SO_REUSEPORT, so the kernel spreads connections over the cores ("one loop per thread").
 *
 * @module
 */

import type { TlsServerOptions } from "./backend/net_backend.ts";
import type { RawSocket } from "./backend/net_backend.ts";
import { Acceptor } from "./acceptor.ts";
import type { ConnectionCallback, HighWaterMarkCallback, MessageCallback, WriteCompleteCallback } from "./callbacks.ts";
import { defaultConnectionCallback, defaultMessageCallback } from "./callbacks.ts";
import type { EventLoop } from "./event_loop.ts";
import type { InetAddress } from "./inet_address.ts";
import { getLogger } from "./logger.ts";
import { DEFAULT_HIGH_WATER_MARK, TcpConnection } from "./tcp_connection.ts";
import { ServerThreadPool, type ThreadInit } from "./_server_thread_pool.ts";

/**
 * Options of {@linkcode TcpServer}.
 *
 * @example
 * ```ts
 * import { EventLoop } from "./event_loop.ts";
 * import { InetAddress } from "./inet_address.ts";
 * import { TcpServer, type TcpServerOptions } from "./tcp_server.ts";
 *
 * const options: TcpServerOptions = { noDelay: true };
 * const server = new TcpServer(new EventLoop(), new InetAddress("127.0.0.1", 0), "echo", options);
 * ```
 */
export interface TcpServerOptions {
  /**
   * Listen with SO_REUSEPORT (muduo's `kReusePort`). Worker threads always do.
   * @default {false}
   */
  reusePort?: boolean;
  /**
   * Set TCP_NODELAY on every accepted connection (request/response protocols want it).
   * @default {true}
   */
  noDelay?: boolean;
  /**
   * Serve TLS with this PEM certificate and key (on the main loop; Worker threads do not take TLS yet).
   * @default {undefined}
   */
  tls?: TlsServerOptions;
}

/**
 * A TCP server on one address.
 *
 * Thread model: with `setThreadNum(0)` (the default) everything runs on the given loop. With n > 0 the server
 * starts n Workers that each load the module given to `setThreadInit` and call its init function with their own
 * TcpServer, which is where the callbacks are set (a function cannot cross isolates). Where the backend has no
 * SO_REUSEPORT it logs why and runs the init function on this loop instead.
 *
 * @example An echo server
 * ```ts
 * import { EventLoop } from "./event_loop.ts";
 * import { InetAddress } from "./inet_address.ts";
 * import { TcpServer } from "./tcp_server.ts";
 * import assert from "node:assert/strict";
 *
 * const loop = new EventLoop();
 * const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "echo");
 * server.setMessageCallback((connection, buffer) => connection.send(buffer));
 * await server.start();
 * assert.ok(server.address.port > 0);
 * await server.stop();
 * ```
 */
export class TcpServer {
  /** The loop that accepts connections (the "base loop"). */
  readonly loop: EventLoop;
  /** The server's name, the prefix of its connections' names. */
  readonly name: string;
  #listenAddress: InetAddress;
  #options: Required<Omit<TcpServerOptions, "tls">> & Pick<TcpServerOptions, "tls">;
  #acceptor: Acceptor | undefined;
  #connections = new Map<string, TcpConnection>();
  #nextConnectionId = 1;
  #started = false;
  #stopped = false;
  #threadNum = 0;
  #threadInit: ThreadInit | undefined;
  #pool: ServerThreadPool | undefined;
  #boundAddress: InetAddress | undefined;

  #connectionCallback: ConnectionCallback = defaultConnectionCallback;
  #messageCallback: MessageCallback = defaultMessageCallback;
  #writeCompleteCallback: WriteCompleteCallback | undefined;
  #highWaterMarkCallback: HighWaterMarkCallback | undefined;
  #highWaterMark = DEFAULT_HIGH_WATER_MARK;

  /** Prepare a server; nothing listens until {@linkcode TcpServer.start}. */
  constructor(loop: EventLoop, listenAddress: InetAddress, name: string, options: TcpServerOptions = {}) {
    this.loop = loop;
    this.#listenAddress = listenAddress;
    this.name = name;
    this.#options = { reusePort: options.reusePort ?? false, noDelay: options.noDelay ?? true, tls: options.tls };
  }

  /** The bound address, with the real port when 0 was asked for. Throws before `start` resolves. */
  get address(): InetAddress {
    if (this.#boundAddress === undefined) {
      throw new TypeError(`Cannot get the address of server '${this.name}' as it has not started`);
    }
    return this.#boundAddress;
  }

  /** Connections open on this loop (Workers' connections are counted in their own isolates). */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /** The number of Worker threads set by `setThreadNum`. */
  get threadNum(): number {
    return this.#threadNum;
  }

  /** How many Workers are actually running (0 before start, or after a fallback to one loop). */
  get runningThreads(): number {
    return this.#pool?.size ?? 0;
  }

  /**
   * Run the server on `threadNum` Worker threads, each with its own EventLoop. Must be called before `start`;
   * needs {@linkcode TcpServer.setThreadInit} when > 0.
   */
  setThreadNum(threadNum: number): void {
    if (!Number.isInteger(threadNum) || threadNum < 0 || threadNum > 256) {
      throw new RangeError(
        `Cannot set thread number as 'threadNum' must be an integer in [0, 256]: current value is ${threadNum}`,
      );
    }
    if (this.#started) throw new TypeError(`Cannot set thread number of server '${this.name}' after start`);
    this.#threadNum = threadNum;
  }

  /**
   * Name the module and exported function that sets up each Worker's server (muduo's ThreadInitCallback).
   * The function is called as `init(server, loop, data)` and sets the server's callbacks.
   *
   * @param moduleUrl The module's URL, usually `import.meta.url` of the file that exports the function.
   * @param exportName The exported function's name.
   * @param data Structured-cloneable data passed to every init call.
   */
  setThreadInit(moduleUrl: string, exportName: string, data?: unknown): void {
    this.#threadInit = { moduleUrl, exportName, data };
  }

  /** Set the callback for connections coming up and going down. */
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

  /** Set the high-water-mark callback every connection gets. */
  setHighWaterMarkCallback(callback: HighWaterMarkCallback | undefined, highWaterMark = DEFAULT_HIGH_WATER_MARK): void {
    this.#highWaterMarkCallback = callback;
    this.#highWaterMark = highWaterMark;
  }

  /** Listen and start accepting (or start the Workers). Resolves once the server is reachable. */
  async start(): Promise<void> {
    if (this.#started) throw new TypeError(`Cannot start server '${this.name}' twice`);
    this.#started = true;
    if (this.#threadNum > 0) {
      if (this.#threadInit === undefined) {
        throw new TypeError(`Cannot start server '${this.name}' on ${this.#threadNum} threads without setThreadInit`);
      }
      if (this.loop.backend.supportsReusePort) {
        this.#pool = new ServerThreadPool(this.loop, this.name, this.#threadInit);
        this.#boundAddress = await this.#pool.start(this.#listenAddress, this.#threadNum).catch((error) =>
          this.#failedToListen(error)
        );
        getLogger().info(`TcpServer '${this.name}' listening on ${this.#boundAddress} with ${this.#threadNum} threads`);
        return;
      }
      getLogger().warn(
        `TcpServer '${this.name}': the ${this.loop.backend.name} backend has no SO_REUSEPORT, running one loop ` +
          `instead of ${this.#threadNum} threads`,
      );
      const module = await import(this.#threadInit.moduleUrl);
      const init = module[this.#threadInit.exportName];
      if (typeof init !== "function") {
        throw new TypeError(
          `Cannot start server '${this.name}' as '${this.#threadInit.exportName}' of ${this.#threadInit.moduleUrl} ` +
            `is not a function`,
        );
      }
      await init(this, this.loop, this.#threadInit.data);
    }
    this.#acceptor = new Acceptor(this.loop, this.#listenAddress, {
      reusePort: this.#options.reusePort,
      tls: this.#options.tls,
    });
    this.#acceptor.setNewConnectionCallback((socket) => this.#newConnection(socket));
    await this.#acceptor.listen().catch((error) => this.#failedToListen(error));
    this.#boundAddress = this.#acceptor.address;
    getLogger().debug(`TcpServer '${this.name}' listening on ${this.#boundAddress}`);
  }

  // The runtime's error says what ("Address already in use") but not where; a program's one-line report needs both.
  // The error keeps its class, so callers still tell an address in use from other failures.
  #failedToListen(error: unknown): never {
    if (error instanceof Error) error.message = `Cannot listen on ${this.#listenAddress}: ${error.message}`;
    throw error;
  }

  /**
   * Stop accepting, close every connection (dropping unsent output) and stop the Workers. Resolves when all is
   * closed. Safe to call more than once.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#acceptor?.close();
    await this.closeConnections();
    await this.#pool?.stop();
  }

  /** Close every open connection now (dropping unsent output) but keep accepting. */
  async closeConnections(): Promise<void> {
    await Promise.all([...this.#connections.values()].map((connection) =>
      new Promise<void>((resolve) => {
        connection.setCloseCallback((closed) => {
          this.#removeConnection(closed);
          resolve();
        });
        connection.forceClose();
      })
    ));
  }

  /** Same as {@linkcode TcpServer.stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  #newConnection(socket: RawSocket): void {
    const name = `${this.name}-${this.#boundAddress}#${this.#nextConnectionId++}`;
    let connection: TcpConnection;
    try {
      connection = new TcpConnection(this.loop, name, socket);
    } catch (error) {
      getLogger().error(`TcpServer '${this.name}' dropped a connection it could not set up`, { error });
      socket.close();
      return;
    }
    getLogger().trace(`TcpServer '${this.name}' new connection ${name} from ${connection.peerAddress}`);
    if (this.#options.noDelay) connection.setTcpNoDelay(true);
    this.#connections.set(name, connection);
    connection.setConnectionCallback(this.#connectionCallback);
    connection.setMessageCallback(this.#messageCallback);
    connection.setWriteCompleteCallback(this.#writeCompleteCallback);
    connection.setHighWaterMarkCallback(this.#highWaterMarkCallback, this.#highWaterMark);
    connection.setCloseCallback((closed) => this.#removeConnection(closed));
    connection.connectEstablished();
  }

  #removeConnection(connection: TcpConnection): void {
    this.#connections.delete(connection.name);
  }
}
