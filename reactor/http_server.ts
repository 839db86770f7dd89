/**
 * A small HTTP/1.1 server on the reactor, for status pages and metrics (muduo has one for the same purpose):
 * GET and HEAD, one response per request, keep-alive, no request bodies, bounded header size. Not a general
 * web server: anything else gets a clear 4xx and the connection closes.
 *
 * @module
 */

import type { Buffer } from "./buffer.ts";
import type { EventLoop } from "./event_loop.ts";
import type { InetAddress } from "./inet_address.ts";
import { getLogger } from "./logger.ts";
import type { TcpConnection } from "./tcp_connection.ts";
import { TcpServer } from "./tcp_server.ts";

/** A parsed request. */
export interface HttpRequest {
  /** `GET` or `HEAD`. */
  readonly method: string;
  /** The path without the query, such as `/status`. */
  readonly path: string;
  /** Query parameters. */
  readonly query: URLSearchParams;
  /** Header names in lower case. */
  readonly headers: ReadonlyMap<string, string>;
}

/** What a handler answers. */
export interface HttpResponse {
  /** Default 200. */
  status?: number;
  /** Default `text/plain; charset=utf-8`. */
  contentType?: string;
  body: string | Uint8Array;
  /** Extra headers. */
  headers?: Record<string, string>;
}

/** Answers one request (may throw: that is a 500). */
export type HttpHandler = (request: HttpRequest) => HttpResponse | Promise<HttpResponse>;

const MAX_HEADER_BYTES = 16 * 1024;
const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Request Header Fields Too Large",
  500: "Internal Server Error",
};
const encoder = new TextEncoder();

/**
 * Serves `handler` over HTTP/1.1.
 *
 * @example
 * ```ts
 * import { EventLoop } from "./event_loop.ts";
 * import { HttpServer } from "./http_server.ts";
 * import { InetAddress } from "./inet_address.ts";
 * import assert from "node:assert/strict";
 *
 * const server = new HttpServer(new EventLoop(), new InetAddress("127.0.0.1", 0), "status", (request) => ({
 *   body: request.path === "/ruok" ? "imok" : "?",
 * }));
 * await server.start();
 * const response = await fetch(`http://${server.address}/ruok`);
 * assert.equal(await response.text(), "imok");
 * await server.stop();
 * ```
 */
export class HttpServer {
  readonly #server: TcpServer;
  readonly #handler: HttpHandler;

  constructor(loop: EventLoop, address: InetAddress, name: string, handler: HttpHandler) {
    this.#handler = handler;
    this.#server = new TcpServer(loop, address, name);
    this.#server.setMessageCallback((connection, buffer) => this.#onMessage(connection, buffer));
  }

  /** The bound address (after start). */
  get address(): InetAddress {
    return this.#server.address;
  }

  /** Listen. */
  start(): Promise<void> {
    return this.#server.start();
  }

  /** Stop listening and close every connection. */
  stop(): Promise<void> {
    return this.#server.stop();
  }

  #onMessage(connection: TcpConnection, buffer: Buffer): void {
    // One request at a time per connection: the next is parsed after this one is answered.
    if (connection.context === "busy") return;
    const bytes = buffer.peek();
    let end = -1;
    for (let i = 0; i + 3 < bytes.length; i++) {
      if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
        end = i;
        break;
      }
    }
    if (end < 0) {
      if (bytes.length > MAX_HEADER_BYTES) this.#fail(connection, 413, "request headers too large");
      return;
    }
    const head = buffer.retrieveAsString(end + 4);
    const [requestLine = "", ...headerLines] = head.slice(0, end).split("\r\n");
    const match = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/.exec(requestLine);
    if (match === null) {
      this.#fail(connection, 400, "malformed request line");
      return;
    }
    const [, method = "", target = "", minor] = match;
    const headers = new Map<string, string>();
    for (const line of headerLines) {
      const colon = line.indexOf(":");
      if (colon <= 0) {
        this.#fail(connection, 400, "malformed header");
        return;
      }
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    if (method !== "GET" && method !== "HEAD") {
      this.#fail(connection, 405, `method ${method} is not served here`);
      return;
    }
    if (headers.has("content-length") && headers.get("content-length") !== "0" || headers.has("transfer-encoding")) {
      this.#fail(connection, 400, "request bodies are not accepted");
      return;
    }
    const keepAlive = minor === "1" ? headers.get("connection")?.toLowerCase() !== "close" : false;
    let url: URL;
    try {
      url = new URL(target, "http://localhost");
    } catch {
      this.#fail(connection, 400, "malformed request target");
      return;
    }
    connection.context = "busy";
    const request: HttpRequest = { method, path: url.pathname, query: url.searchParams, headers };
    Promise.resolve()
      .then(() => this.#handler(request))
      .catch((error): HttpResponse => {
        getLogger().warn(`HttpServer: ${method} ${url.pathname} failed`, { error });
        return { status: 500, body: "internal error\n" };
      })
      .then((response) => {
        connection.context = undefined;
        if (!connection.connected) return;
        this.#send(connection, response, method === "HEAD", keepAlive);
        if (!keepAlive) connection.shutdown();
        else if (buffer.readableBytes > 0) this.#onMessage(connection, buffer);
      });
  }

  #send(connection: TcpConnection, response: HttpResponse, headOnly: boolean, keepAlive: boolean): void {
    const body = typeof response.body === "string" ? encoder.encode(response.body) : response.body;
    const status = response.status ?? 200;
    const lines = [
      `HTTP/1.1 ${status} ${REASONS[status] ?? "Unknown"}`,
      `Content-Type: ${response.contentType ?? "text/plain; charset=utf-8"}`,
      `Content-Length: ${body.length}`,
      `Connection: ${keepAlive ? "keep-alive" : "close"}`,
      "Cache-Control: no-store",
      ...Object.entries(response.headers ?? {}).map(([name, value]) => `${name}: ${value}`),
    ];
    connection.send(`${lines.join("\r\n")}\r\n\r\n`);
    if (!headOnly) connection.send(body);
  }

  #fail(connection: TcpConnection, status: number, reason: string): void {
    this.#send(connection, { status, body: `${reason}\n` }, false, false);
    connection.inputBuffer.retrieveAll();
    connection.shutdown();
  }
}
