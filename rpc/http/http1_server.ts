/**
 * An HTTP/1.1 server on the reactor: a TcpServer whose connections each speak HTTP/1.1 through an
 * {@linkcode Http1Connection}, with a cap on connections and the counters of them all.
 *
 * @module
 */

import type { TlsServerOptions } from "../../reactor/backend/net_backend.ts";
import type { EventLoop } from "../../reactor/event_loop.ts";
import type { InetAddress } from "../../reactor/inet_address.ts";
import { getLogger } from "../../reactor/logger.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import { TcpServer } from "../../reactor/tcp_server.ts";
import { type Http1ConnectionOptions, type Http1Settings, resolveHttp1Settings } from "./_http1_settings.ts";
import { Http1Connection, type Http1Handler } from "./http1_connection.ts";
import { Http1Counters, type Http1Stats } from "./http1_stats.ts";

/**
 * Options of {@linkcode Http1Server}: those of each connection, and the server's own.
 *
 * @example
 * ```ts
 * import type { Http1ServerOptions } from "./http1_server.ts";
 *
 * const options: Http1ServerOptions = { maxConnections: 256, idleTimeoutMs: 30_000, maxBodyBytes: 16 << 20 };
 * ```
 */
export interface Http1ServerOptions extends Http1ConnectionOptions {
  /** Connections open at most; one over it is closed at once, before anything is read. @default {1024} */
  maxConnections?: number;
  /** Serve HTTPS with this PEM certificate and key. @default {undefined} */
  tls?: TlsServerOptions;
}

/**
 * What an {@linkcode Http1Server} serves, where, and its limits.
 *
 * @example
 * ```ts
 * import { InetAddress } from "../../reactor/inet_address.ts";
 * import type { Http1ServerInit } from "./http1_server.ts";
 *
 * const init: Http1ServerInit = {
 *   address: new InetAddress("127.0.0.1", 8080),
 *   name: "gateway",
 *   handler: async (_request, response) => await response.end("ok"),
 * };
 * ```
 */
export interface Http1ServerInit extends Http1ServerOptions {
  /** Where to listen (port 0: any free port; {@linkcode Http1Server.address} tells which). */
  readonly address: InetAddress;
  /** The server's name in logs. */
  readonly name: string;
  /** Answers each request. */
  readonly handler: Http1Handler;
}

/**
 * {@linkcode Http1Stats} and what the server holds now.
 *
 * @example
 * ```ts
 * import type { Http1ServerStats } from "./http1_server.ts";
 *
 * const load = (stats: Http1ServerStats) => `${stats.connections} connections hold ${stats.bufferedBytes} bytes`;
 * ```
 */
export interface Http1ServerStats extends Http1Stats {
  /** Bytes held for clients now: unparsed input, bodies waiting for handlers, unsent output. */
  readonly bufferedBytes: number;
}

const DEFAULT_MAX_CONNECTIONS = 1024;

/**
 * Serves a handler over HTTP/1.1 (see {@linkcode Http1Connection} for what each connection does and bounds). Runs
 * on one loop; everything is called on it.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { InetAddress } from "../../reactor/inet_address.ts";
 * import { Http1Server } from "./http1_server.ts";
 * import assert from "node:assert/strict";
 *
 * await using server = new Http1Server(new EventLoop(), {
 *   address: new InetAddress("127.0.0.1", 0),
 *   name: "upper",
 *   handler: async (request, response) => await response.end((await request.body.text(1024)).toUpperCase()),
 * });
 * await server.start();
 * const response = await fetch(`http://${server.address}/`, { method: "POST", body: "dwt" });
 * assert.equal(await response.text(), "DWT");
 * assert.equal(server.stats.requests, 1);
 * ```
 */
export class Http1Server {
  readonly #server: TcpServer;
  readonly #settings: Http1Settings;
  readonly #handler: Http1Handler;
  readonly #maxConnections: number;
  readonly #counters = new Http1Counters();
  readonly #connections = new Set<Http1Connection>();

  /** Create a server; nothing listens until {@linkcode Http1Server.start}. A RangeError or TypeError for a bad option. */
  constructor(loop: EventLoop, init: Http1ServerInit) {
    this.#settings = resolveHttp1Settings(init, "Http1Server");
    this.#handler = init.handler;
    if (typeof init.handler !== "function") {
      throw new TypeError(
        `Cannot create Http1Server as 'handler' must be a function: current value is ${init.handler}`,
      );
    }
    const maxConnections = init.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    if (!Number.isSafeInteger(maxConnections) || maxConnections < 1) {
      throw new RangeError(
        `Cannot create Http1Server as 'maxConnections' must be an integer >= 1: current value is ${maxConnections}`,
      );
    }
    this.#maxConnections = maxConnections;
    this.#server = new TcpServer(loop, init.address, init.name, { tls: init.tls });
    this.#server.setConnectionCallback((connection) => this.#onConnection(connection));
    this.#server.setMessageCallback((connection, buffer) => {
      const http = connection.context as Http1Connection | undefined;
      if (http === undefined) buffer.retrieveAll();
      else http.handleMessage(buffer);
    });
    this.#server.setWriteCompleteCallback((connection) => {
      (connection.context as Http1Connection | undefined)?.handleWriteComplete();
    });
  }

  /** The bound address (after start). */
  get address(): InetAddress {
    return this.#server.address;
  }

  /** The counters, as of now. */
  get stats(): Http1ServerStats {
    let bufferedBytes = 0;
    for (const connection of this.#connections) bufferedBytes += connection.bufferedBytes;
    return { ...this.#counters.snapshot(), bufferedBytes };
  }

  /** Listen. */
  start(): Promise<void> {
    return this.#server.start();
  }

  /**
   * Let every connection finish its current request and close (`Connection: close` on the answers); idle ones close
   * now. The server keeps listening; new connections are served as usual.
   */
  drain(): void {
    for (const connection of this.#connections) connection.drain();
  }

  /** Stop listening and close every connection (dropping unsent output). Safe to call more than once. */
  stop(): Promise<void> {
    return this.#server.stop();
  }

  /** Same as {@linkcode Http1Server.stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  #onConnection(connection: TcpConnection): void {
    if (!connection.connected) {
      const http = connection.context as Http1Connection | undefined;
      if (http === undefined) return; // one closed over the cap
      connection.context = undefined;
      this.#connections.delete(http);
      http.handleClose();
      return;
    }
    if (this.#connections.size >= this.#maxConnections) {
      this.#counters.connectionRejected();
      getLogger().debug(`Http1Server closing ${connection.name}: ${this.#maxConnections} connections are open`);
      connection.forceClose();
      return;
    }
    const http = new Http1Connection(connection, {
      ...this.#settings,
      handler: this.#handler,
      counters: this.#counters,
    });
    connection.context = http;
    this.#connections.add(http);
  }
}
