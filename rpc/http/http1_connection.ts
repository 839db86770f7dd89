/**
 * One HTTP/1.1 connection on the reactor: requests parsed as their bytes arrive, handed to a handler one at a time
 * (pipelined ones wait their turn), their bodies streamed to it and their responses streamed back, with every
 * resource a client can hold bounded in time and bytes.
 *
 * The connection's states, and the deadline each runs:
 *
 * ```text
 *            first byte                head parsed                handler done, body read
 *   IDLE ---------------> READING_HEAD ------------> ACTIVE ----------------------------> IDLE (keep-alive)
 *   idleTimeoutMs         headerTimeoutMs             body: bodyTimeoutMs / min rate       or CLOSING
 *                                                     (only while waiting on the client)
 *                                                       | handler done, body not read
 *                                                       v
 *                                                    DRAINING (discard up to maxDrainBytes) --> IDLE or CLOSING
 *
 *   any refusal: answered with its status, then CLOSING (output flushed, write side shut, input discarded until the
 *   client closes or idleTimeoutMs passes) --> CLOSED
 * ```
 *
 * Memory per connection is bounded by the head limit, `maxBufferedBodyBytes` of body waiting for the handler, 64 KiB
 * read ahead while the handler is busy, and `highWaterMarkBytes` of unsent output (plus one write).
 *
 * @module
 */

import type { Buffer } from "../../reactor/buffer.ts";
import { getLogger } from "../../reactor/logger.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import type { TimerId } from "../../reactor/timer_queue.ts";
import { BodyFraming, Http1Parser, type Http1RequestHead } from "./_http1_parser.ts";
import { type Http1ConnectionOptions, type Http1Settings, resolveHttp1Settings } from "./_http1_settings.ts";
import { Http1Error, Http1ErrorCode, type Http1Refusal } from "./http1_error.ts";
import { Http1RequestBody } from "./http1_request_body.ts";
import { Http1ResponseWriter, type ResponseOwner } from "./http1_response_writer.ts";
import { Http1Counters } from "./http1_stats.ts";
import type { HttpHeaders } from "./http_headers.ts";

export type { Http1ConnectionOptions } from "./_http1_settings.ts";

/**
 * A request as a handler sees it.
 *
 * @example
 * ```ts
 * import type { Http1Request } from "./http1_connection.ts";
 *
 * const describe = (request: Http1Request) =>
 *   `${request.method} ${request.path}?${request.query} HTTP/${request.httpVersion}, ` +
 *   `${request.headers.get("content-type") ?? "no content type"}`;
 * ```
 */
export interface Http1Request {
  /** The method, one of the allowed ones (`GET`, `HEAD`, `POST`, `OPTIONS` by default). */
  readonly method: string;
  /** The request target as sent (origin form `/path?query` for all but proxies and `OPTIONS *`). */
  readonly target: string;
  /** The target's path, as sent (not percent-decoded); `*` for `OPTIONS *`. */
  readonly path: string;
  /** The target's query. */
  readonly query: URLSearchParams;
  /** `1.1` or `1.0`. */
  readonly httpVersion: "1.1" | "1.0";
  /** The header fields, names lower-cased, duplicates kept. */
  readonly headers: HttpHeaders;
  /** The body, delivered as it arrives (empty for a request without one). */
  readonly body: Http1RequestBody;
  /** Aborted, with an Http1Error `connection_closed`, if the connection goes away before the response ends. */
  readonly signal: AbortSignal;
  /** The client's address, `host:port`. */
  readonly peer: string;
}

/**
 * Answers one request through `response`. It may read the body, write the response in pieces, and take its time;
 * the next request on the connection waits until the returned promise settles. A rejection before the head was
 * sent is answered 500 (or the status of an {@linkcode Http1Error} it rethrows); after, the connection is closed so
 * the client sees the response fail.
 *
 * @example
 * ```ts
 * import type { Http1Handler } from "./http1_connection.ts";
 *
 * const echo: Http1Handler = async (request, response) => {
 *   if (request.method !== "POST") return void await response.end("POST something\n");
 *   response.writeHead(200, { "content-type": request.headers.get("content-type") ?? "application/octet-stream" });
 *   for await (const chunk of request.body) await response.write(chunk);
 *   await response.end();
 * };
 * ```
 */
export type Http1Handler = (request: Http1Request, response: Http1ResponseWriter) => Promise<void>;

/**
 * What an {@linkcode Http1Connection} serves, with its limits.
 *
 * @example
 * ```ts
 * import type { Http1ConnectionInit } from "./http1_connection.ts";
 * import { Http1Counters } from "./http1_stats.ts";
 *
 * const init: Http1ConnectionInit = {
 *   handler: async (_request, response) => await response.end("ok"),
 *   counters: new Http1Counters(),
 *   idleTimeoutMs: 30_000,
 * };
 * ```
 */
export interface Http1ConnectionInit extends Http1ConnectionOptions {
  /** Answers each request. */
  readonly handler: Http1Handler;
  /** Where the connection counts requests and refusals (share one among a server's connections). @default {a new one} */
  readonly counters?: Http1Counters;
}

/**
 * The states of an {@linkcode Http1Connection} (see the module doc for the diagram).
 *
 * @example
 * ```ts
 * import { Http1ConnectionState } from "./http1_connection.ts";
 * import type { Http1Connection } from "./http1_connection.ts";
 *
 * const busy = (connection: Http1Connection) => connection.state === Http1ConnectionState.ACTIVE;
 * ```
 */
export const Http1ConnectionState = {
  /** Between requests on a keep-alive connection. */
  IDLE: "idle",
  /** Waiting for (the rest of) a request head. */
  READING_HEAD: "reading-head",
  /** A handler is answering a request. */
  ACTIVE: "active",
  /** Answered; the rest of an unread body is being discarded. */
  DRAINING: "draining",
  /** Answered for the last time; waiting for the client to close. */
  CLOSING: "closing",
  /** Gone. */
  CLOSED: "closed",
} as const;

/** One of the {@linkcode Http1ConnectionState} values. */
export type Http1ConnectionState = typeof Http1ConnectionState[keyof typeof Http1ConnectionState];

/** Bytes read off the socket ahead of a handler that is not taking them (the next pipelined requests, say). */
const READ_AHEAD_BYTES = 64 * 1024;
const CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n";

const DeadlineKind = { HEAD: "head", IDLE: "idle", OUTPUT: "output", CLOSING: "closing" } as const;
type DeadlineKind = typeof DeadlineKind[keyof typeof DeadlineKind];

/**
 * HTTP/1.1 on one TcpConnection. The owner (an {@linkcode Http1Server}, or a gateway's transport with its own
 * connection gate) creates one when the TCP connection comes up, keeps it as the connection's context, and calls
 * its `handle*` methods from the TCP connection's callbacks, on the connection's loop. It does not own the
 * TcpConnection, but closes it when HTTP says to.
 *
 * @example Serve one connection of a TcpServer
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { InetAddress } from "../../reactor/inet_address.ts";
 * import { TcpServer } from "../../reactor/tcp_server.ts";
 * import { Http1Connection } from "./http1_connection.ts";
 * import assert from "node:assert/strict";
 *
 * const server = new TcpServer(new EventLoop(), new InetAddress("127.0.0.1", 0), "http");
 * server.setConnectionCallback((connection) => {
 *   if (connection.connected) {
 *     connection.context = new Http1Connection(connection, {
 *       handler: async (request, response) => await response.end(`hello ${request.path}`),
 *     });
 *   } else {
 *     (connection.context as Http1Connection).handleClose();
 *   }
 * });
 * server.setMessageCallback((connection, buffer) => (connection.context as Http1Connection).handleMessage(buffer));
 * server.setWriteCompleteCallback((connection) => (connection.context as Http1Connection).handleWriteComplete());
 * await server.start();
 * const response = await fetch(`http://${server.address}/there`);
 * assert.equal(await response.text(), "hello /there");
 * await server.stop();
 * ```
 */
export class Http1Connection {
  readonly #tcp: TcpConnection;
  readonly #handler: Http1Handler;
  readonly #settings: Http1Settings;
  readonly #counters: Http1Counters;
  readonly #parser: Http1Parser;
  #state: Http1ConnectionState = Http1ConnectionState.READING_HEAD;
  #deadline: TimerId | undefined;
  #deadlineKind: DeadlineKind | undefined;
  #bodyTimer: TimerId | undefined;
  #bodyWindowStartBytes = 0;
  #exchange: Exchange | undefined;
  #requests = 0;
  #drainBudget = 0;
  #closeRequested = false;
  #processing = false;
  #processAgain = false;

  /** Serve HTTP/1.1 on `connection` (connected); the head deadline of the first request starts now. */
  constructor(connection: TcpConnection, init: Http1ConnectionInit) {
    this.#tcp = connection;
    this.#handler = init.handler;
    this.#settings = resolveHttp1Settings(init, "Http1Connection");
    this.#counters = init.counters ?? new Http1Counters();
    this.#parser = new Http1Parser(this.#settings);
    this.#counters.connectionOpened();
    this.#arm(DeadlineKind.HEAD, this.#settings.headerTimeoutMs);
  }

  /** The current state. */
  get state(): Http1ConnectionState {
    return this.#state;
  }

  /** Requests handed to the handler so far (a gate's "first whole frame" is the first of them). */
  get requestCount(): number {
    return this.#requests;
  }

  /**
   * Bytes this connection holds for its client: unparsed input, body waiting for the handler, unsent output.
   */
  get bufferedBytes(): number {
    return this.#tcp.inputBuffer.readableBytes + (this.#exchange?.body.bufferedBytes ?? 0) + this.#tcp.pendingBytes;
  }

  /** Internal reaction: bytes arrived (from the TCP connection's message callback). */
  handleMessage(_buffer: Buffer): void {
    this.#process();
  }

  /** Internal reaction: the TCP connection's output drained (from its write-complete callback). */
  handleWriteComplete(): void {
    this.#exchange?.writer.handleWriteComplete();
    if (this.#deadlineKind === DeadlineKind.OUTPUT) this.#disarm();
    this.#process();
  }

  /** Internal reaction: the TCP connection closed (from its connection callback). Safe to call twice. */
  handleClose(): void {
    if (this.#state === Http1ConnectionState.CLOSED) return;
    this.#state = Http1ConnectionState.CLOSED;
    this.#disarm();
    this.#stopBodyTimer();
    this.#counters.connectionClosed();
    const exchange = this.#exchange;
    this.#exchange = undefined;
    if (exchange === undefined) return;
    const error = new Http1Error(Http1ErrorCode.CONNECTION_CLOSED, `Connection ${this.#tcp.name} closed`);
    exchange.body.fail(error);
    exchange.writer.handleClose();
    if (!exchange.writer.ended) exchange.abort.abort(error);
  }

  /**
   * Finish gracefully (a server draining): an idle connection closes now; a busy one answers its current request
   * with `Connection: close` (if its head is not sent yet) and closes after it.
   */
  drain(): void {
    this.#closeRequested = true;
    if (this.#exchange !== undefined) this.#exchange.closeRequested = true;
    if (this.#state === Http1ConnectionState.IDLE) this.#closeGracefully();
    else if (this.#state === Http1ConnectionState.READING_HEAD && this.#tcp.inputBuffer.readableBytes === 0) {
      this.#closeGracefully();
    }
  }

  // Parse and deliver whatever the input allows; re-entered calls (a handler reading synchronously) loop instead.
  #process(): void {
    if (this.#processing) {
      this.#processAgain = true;
      return;
    }
    this.#processing = true;
    try {
      do {
        this.#processAgain = false;
        this.#step();
      } while (this.#processAgain);
    } catch (error) {
      getLogger().error(`Http1Connection ${this.#tcp.name} failed; closing it`, { error });
      this.#tcp.forceClose();
    } finally {
      this.#processing = false;
    }
    this.#updateReading();
  }

  #step(): void {
    const buffer = this.#tcp.inputBuffer;
    for (;;) {
      switch (this.#state) {
        case Http1ConnectionState.IDLE:
          if (buffer.readableBytes === 0) return;
          if (this.#outputBlocked()) return;
          this.#state = Http1ConnectionState.READING_HEAD;
          this.#disarm();
          continue;
        case Http1ConnectionState.READING_HEAD: {
          if (this.#outputBlocked()) return;
          let head: Http1RequestHead | undefined;
          try {
            head = this.#parser.parseHead(buffer);
          } catch (error) {
            this.#refuse(error);
            return;
          }
          if (head === undefined) {
            if (this.#deadlineKind !== DeadlineKind.HEAD) this.#arm(DeadlineKind.HEAD, this.#settings.headerTimeoutMs);
            return;
          }
          this.#disarm();
          this.#startExchange(head);
          continue;
        }
        case Http1ConnectionState.ACTIVE:
        case Http1ConnectionState.DRAINING:
          if (!this.#pumpBody()) return;
          continue;
        default:
          buffer.retrieveAll();
          return;
      }
    }
  }

  // Whether the client is not reading its answers: then nothing more is parsed until the output drains (and the
  // output deadline runs).
  #outputBlocked(): boolean {
    if (this.#tcp.pendingBytes <= this.#settings.highWaterMarkBytes) return false;
    if (this.#deadlineKind !== DeadlineKind.OUTPUT) this.#arm(DeadlineKind.OUTPUT, this.#settings.sendTimeoutMs);
    return true;
  }

  #startExchange(head: Http1RequestHead): void {
    this.#state = Http1ConnectionState.ACTIVE;
    const exchange = new Exchange(head, this.#parser, this.#settings, this.#tcp, () => this.#onSendTimeout());
    exchange.closeRequested = this.#closeRequested || this.#requests + 1 >= this.#settings.maxRequestsPerConnection;
    exchange.body = new Http1RequestBody(() => this.#onBodyDemand(exchange), this.#settings.maxBufferedBodyBytes);
    exchange.writer = new Http1ResponseWriter(this.#tcp, exchange);
    this.#exchange = exchange;
    if (head.framing === BodyFraming.NONE) exchange.body.end(undefined);

    const refusal = !this.#settings.allowedMethods.includes(head.method)
      ? new Http1Error(Http1ErrorCode.METHOD_NOT_ALLOWED, `Method ${head.method} is not served here`)
      : head.expect === "other"
      ? new Http1Error(Http1ErrorCode.EXPECTATION_FAILED, "Only 'Expect: 100-continue' is understood")
      : undefined;
    if (refusal !== undefined) {
      // Answered as a handler that reads no body would be: the body is then discarded or the connection closed.
      this.#counters.refused(refusal.code as Http1Refusal);
      const headers: Record<string, string> = { "content-type": "text/plain; charset=utf-8" };
      if (refusal.code === Http1ErrorCode.METHOD_NOT_ALLOWED) headers.allow = this.#settings.allowHeader;
      exchange.writer.writeHead(refusal.status, headers);
      void exchange.writer.end(`${refusal.rawMessage}\n`);
      this.#onHandlerSettled(exchange, undefined);
      return;
    }

    this.#requests++;
    this.#counters.requested();
    const request = new Request(head, exchange.body, exchange.abort.signal, this.#tcp);
    let settled: Promise<void>;
    try {
      settled = Promise.resolve(this.#handler(request, exchange.writer));
    } catch (error) {
      settled = Promise.reject(error);
    }
    settled.then(
      () => this.#onHandlerSettled(exchange, undefined),
      (error: unknown) => this.#onHandlerSettled(exchange, error ?? new Error("The handler rejected with nothing")),
    );
  }

  #onBodyDemand(exchange: Exchange): void {
    if (exchange !== this.#exchange || this.#state !== Http1ConnectionState.ACTIVE) return;
    if (exchange.head.expect === "continue" && !exchange.continueSent) {
      // From now on the client is no longer told to wait (and the body deadline runs), whether it gets a 100 or,
      // the answer having begun already, has to decide by itself.
      exchange.continueSent = true;
      if (!exchange.writer.headersSent && !this.#parser.bodyDone) this.#tcp.send(CONTINUE);
    }
    this.#process();
  }

  // Move body bytes from the input to the handler (ACTIVE) or to nowhere (DRAINING). True when the exchange is
  // over and the next request may be read.
  #pumpBody(): boolean {
    const exchange = this.#exchange as Exchange;
    const buffer = this.#tcp.inputBuffer;
    const parser = this.#parser;
    const draining = this.#state === Http1ConnectionState.DRAINING;
    if (!parser.bodyDone) {
      try {
        if (draining) {
          for (let piece = parser.parseBody(buffer, this.#drainBudget); piece !== undefined;) {
            this.#drainBudget -= piece.length;
            piece = parser.parseBody(buffer, this.#drainBudget);
          }
          if (!parser.bodyDone && this.#drainBudget <= 0) {
            getLogger().debug(`Http1Connection ${this.#tcp.name}: unread body past maxDrainBytes, closing`);
            this.#closeGracefully();
            return false;
          }
        } else {
          this.#deliverBody(exchange.body, buffer);
        }
      } catch (error) {
        this.#bodyFailed(exchange, error);
        return false;
      }
      if (parser.bodyDone && !draining) exchange.body.end(parser.trailers);
    }
    this.#updateBodyTimer(exchange);
    if (!parser.bodyDone || !draining) return false;
    this.#nextRequest();
    return true;
  }

  // As much body as the handler has room for, in one chunk per call (a body of tiny chunks is not delivered as
  // tiny arrays).
  #deliverBody(body: Http1RequestBody, buffer: Buffer): void {
    let room = body.room;
    let first = this.#parser.parseBody(buffer, room);
    if (first === undefined) return;
    room -= first.length;
    let more: Uint8Array[] | undefined;
    let total = first.length;
    for (let piece = this.#parser.parseBody(buffer, room); piece !== undefined;) {
      (more ??= []).push(piece);
      total += piece.length;
      room -= piece.length;
      piece = this.#parser.parseBody(buffer, room);
    }
    if (more !== undefined) {
      const joined = new Uint8Array(total);
      joined.set(first);
      let offset = first.length;
      for (const piece of more) {
        joined.set(piece, offset);
        offset += piece.length;
      }
      first = joined;
    }
    body.push(first);
  }

  #onHandlerSettled(exchange: Exchange, error: unknown): void {
    if (exchange !== this.#exchange || this.#state !== Http1ConnectionState.ACTIVE) return;
    const writer = exchange.writer;
    try {
      if (error !== undefined) {
        if (writer.headersSent) {
          if (!writer.ended) {
            // The response cannot be finished honestly: cut short, the client sees it fail.
            getLogger().debug(`Http1Connection ${this.#tcp.name}: handler failed mid-response`, { error });
            this.#closeGracefully();
            return;
          }
        } else {
          const status = error instanceof Http1Error && error.status > 0 ? error.status : 500;
          if (status === 500) getLogger().warn(`Http1Connection ${this.#tcp.name}: handler failed`, { error });
          const message = status === 500 ? "internal error" : (error as Http1Error).rawMessage;
          writer.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
          void writer.end(`${message}\n`);
        }
      } else if (!writer.ended) {
        if (!writer.headersSent) {
          getLogger().warn(`Http1Connection ${this.#tcp.name}: handler returned without answering`);
          writer.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
          void writer.end("internal error: no answer\n");
        } else {
          void writer.end();
        }
      }
    } catch (fixError) {
      getLogger().warn(`Http1Connection ${this.#tcp.name}: could not finish a response`, { error: fixError });
      this.#closeGracefully();
      return;
    }
    if (!writer.complete || writer.closesConnection) {
      this.#closeGracefully();
      return;
    }
    this.#state = Http1ConnectionState.DRAINING;
    exchange.body.abandon();
    this.#drainBudget = this.#settings.maxDrainBytes;
    this.#process();
  }

  #nextRequest(): void {
    this.#stopBodyTimer();
    this.#exchange = undefined;
    this.#parser.reset();
    this.#state = Http1ConnectionState.IDLE;
    this.#arm(DeadlineKind.IDLE, this.#settings.idleTimeoutMs);
  }

  // A head that breaks the rules, or a head deadline: answered, then closed.
  #refuse(reason: unknown): void {
    const error = Http1Error.from(reason);
    if (error.code !== Http1ErrorCode.CONNECTION_CLOSED) this.#counters.refused(error.code as Http1Refusal);
    getLogger().debug(`Http1Connection ${this.#tcp.name} refused a request: ${error.message}`);
    if (error.status > 0) {
      const body = `${error.rawMessage}\n`;
      this.#tcp.send(
        `HTTP/1.1 ${error.status} ${statusText(error.status)}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
          `content-length: ${new TextEncoder().encode(body).length}\r\nconnection: close\r\n\r\n${body}`,
      );
    }
    this.#closeGracefully();
  }

  // A body that breaks the rules, or comes too slowly: the handler's reads fail; answered in its stead if it has
  // not answered, else the connection closes under the response.
  #bodyFailed(exchange: Exchange, reason: unknown): void {
    const error = Http1Error.from(reason);
    this.#counters.refused(error.code as Http1Refusal);
    getLogger().debug(`Http1Connection ${this.#tcp.name} refused a body: ${error.message}`);
    exchange.body.fail(error);
    this.#stopBodyTimer();
    // Whole (the handler's response, or the refusal answered in its stead) or cut short (a response under way:
    // the client sees it end without its last chunk or short of its length), what was sent reaches the client.
    if (this.#state !== Http1ConnectionState.DRAINING) exchange.writer.preempt(error);
    this.#closeGracefully();
  }

  #onSendTimeout(): void {
    this.#counters.sendTimedOut();
    getLogger().debug(`Http1Connection ${this.#tcp.name}: output stuck for ${this.#settings.sendTimeoutMs} ms`);
    this.#tcp.forceClose();
  }

  // Flush what was sent, shut the write side, and discard input until the client closes (RFC 9112 §9.6: closing
  // with unread input would reset the connection and could destroy the response before the client reads it).
  #closeGracefully(): void {
    if (this.#state === Http1ConnectionState.CLOSED || this.#state === Http1ConnectionState.CLOSING) return;
    this.#state = Http1ConnectionState.CLOSING;
    this.#stopBodyTimer();
    this.#tcp.inputBuffer.retrieveAll();
    this.#tcp.shutdown();
    this.#tcp.startRead();
    this.#arm(DeadlineKind.CLOSING, this.#settings.idleTimeoutMs);
  }

  // FIXME: the connection keeps reading while a handler runs so that a client going away (an aborted stream) is
  // seen at once. But TcpConnection closes the socket on the peer's FIN when no output is pending, so a client that
  // half-closes after its request (`nc -N`, some HTTP/1.0 tools) loses the answer of any handler that takes a
  // moment. Needs a reactor option to keep writing after the peer's FIN (and tell the owner of it).
  #updateReading(): void {
    if (this.#state === Http1ConnectionState.CLOSED) return;
    const exchange = this.#exchange;
    // A client that does not read its answers is not read from either (beyond READ_AHEAD_BYTES), so one that
    // pipelines requests without reading costs at most the high-water mark of answers and that much of requests.
    const answering = this.#tcp.pendingBytes <= this.#settings.highWaterMarkBytes;
    const consuming = answering && this.#state === Http1ConnectionState.READING_HEAD ||
      this.#state === Http1ConnectionState.DRAINING ||
      this.#state === Http1ConnectionState.CLOSING ||
      this.#state === Http1ConnectionState.ACTIVE && exchange !== undefined && !this.#parser.bodyDone &&
        exchange.body.room > 0;
    if (consuming || this.#tcp.inputBuffer.readableBytes < READ_AHEAD_BYTES) this.#tcp.startRead();
    else this.#tcp.stopRead();
  }

  // The body deadline runs only while the server waits on the client: it wants body bytes and has none to parse,
  // and has not told it to wait (Expect: 100-continue before the handler reads).
  #updateBodyTimer(exchange: Exchange): void {
    const toldToWait = exchange.head.expect === "continue" && !exchange.continueSent;
    const waiting = !this.#parser.bodyDone && !toldToWait &&
      (this.#state === Http1ConnectionState.DRAINING || exchange.body.room > 0);
    if (!waiting) {
      this.#stopBodyTimer();
      return;
    }
    if (this.#bodyTimer !== undefined) return;
    this.#bodyWindowStartBytes = this.#tcp.bytesReceived;
    this.#bodyTimer = this.#tcp.loop.runAfter(this.#settings.bodyTimeoutMs, () => {
      this.#bodyTimer = undefined;
      if (this.#exchange !== exchange) return;
      const { bodyTimeoutMs, minBodyBytesPerSecond } = this.#settings;
      const least = Math.max(1, Math.floor(minBodyBytesPerSecond * bodyTimeoutMs / 1000));
      const received = this.#tcp.bytesReceived - this.#bodyWindowStartBytes;
      if (received < least) {
        this.#bodyFailed(
          exchange,
          new Http1Error(
            Http1ErrorCode.BODY_TIMEOUT,
            `Body came at ${received} bytes in ${bodyTimeoutMs} ms: at least ${least} are expected`,
          ),
        );
        return;
      }
      this.#updateBodyTimer(exchange);
    });
  }

  #stopBodyTimer(): void {
    if (this.#bodyTimer !== undefined) this.#tcp.loop.cancel(this.#bodyTimer);
    this.#bodyTimer = undefined;
  }

  #arm(kind: DeadlineKind, delayMs: number): void {
    this.#disarm();
    this.#deadlineKind = kind;
    this.#deadline = this.#tcp.loop.runAfter(delayMs, () => {
      this.#deadline = undefined;
      this.#deadlineKind = undefined;
      this.#onDeadline(kind);
    });
  }

  #disarm(): void {
    if (this.#deadline !== undefined) this.#tcp.loop.cancel(this.#deadline);
    this.#deadline = undefined;
    this.#deadlineKind = undefined;
  }

  #onDeadline(kind: DeadlineKind): void {
    if (this.#state === Http1ConnectionState.CLOSED) return;
    switch (kind) {
      case DeadlineKind.HEAD:
        if (this.#state !== Http1ConnectionState.READING_HEAD) return;
        if (this.#tcp.bytesReceived === 0) {
          // A connection that never sent a byte (a browser's spare socket): no request to answer.
          this.#counters.idleTimedOut();
          this.#tcp.forceClose();
          return;
        }
        this.#refuse(
          new Http1Error(
            Http1ErrorCode.HEAD_TIMEOUT,
            `Request head not received in ${this.#settings.headerTimeoutMs} ms`,
          ),
        );
        return;
      case DeadlineKind.IDLE:
        if (this.#state !== Http1ConnectionState.IDLE) return;
        this.#counters.idleTimedOut();
        this.#closeGracefully();
        return;
      case DeadlineKind.OUTPUT:
        this.#onSendTimeout();
        return;
      case DeadlineKind.CLOSING:
        this.#tcp.forceClose();
    }
  }
}

// One request and its response: what the response writer needs to know (ResponseOwner), and the connection's
// bookkeeping of the exchange.
class Exchange implements ResponseOwner {
  readonly head: Http1RequestHead;
  readonly abort: AbortController = new AbortController();
  readonly headOnly: boolean;
  readonly minorVersion: 0 | 1;
  readonly highWaterMarkBytes: number;
  readonly sendTimeoutMs: number;
  body!: Http1RequestBody;
  writer!: Http1ResponseWriter;
  closeRequested = false;
  continueSent = false;
  readonly #parser: Http1Parser;
  readonly #maxDrainBytes: number;
  readonly #tcp: TcpConnection;
  readonly #onSendTimeout: () => void;

  constructor(
    head: Http1RequestHead,
    parser: Http1Parser,
    settings: Http1Settings,
    tcp: TcpConnection,
    onSendTimeout: () => void,
  ) {
    this.head = head;
    this.headOnly = head.method === "HEAD";
    this.minorVersion = head.minorVersion;
    this.highWaterMarkBytes = settings.highWaterMarkBytes;
    this.sendTimeoutMs = settings.sendTimeoutMs;
    this.#parser = parser;
    this.#maxDrainBytes = settings.maxDrainBytes;
    this.#tcp = tcp;
    this.#onSendTimeout = onSendTimeout;
  }

  closeAfterResponse(asked: boolean): boolean {
    if (asked || !this.head.keepAlive || this.closeRequested) return true;
    if (this.#parser.bodyDone) return false;
    // The body is not all read yet. A client told to wait for 100 Continue may never send it; a body of unknown
    // or large size is not worth discarding to keep the connection.
    if (this.head.expect === "continue" && !this.continueSent) return true;
    const remaining = this.#parser.remainingBodyBytes;
    return remaining === undefined || remaining - this.#tcp.inputBuffer.readableBytes > this.#maxDrainBytes;
  }

  sendTimedOut(): void {
    this.#onSendTimeout();
  }
}

class Request implements Http1Request {
  readonly method: string;
  readonly target: string;
  readonly httpVersion: "1.1" | "1.0";
  readonly headers: HttpHeaders;
  readonly body: Http1RequestBody;
  readonly signal: AbortSignal;
  readonly #tcp: TcpConnection;
  #path: string | undefined;
  #query: URLSearchParams | undefined;

  constructor(head: Http1RequestHead, body: Http1RequestBody, signal: AbortSignal, tcp: TcpConnection) {
    this.method = head.method;
    this.target = head.target;
    this.httpVersion = head.minorVersion === 1 ? "1.1" : "1.0";
    this.headers = head.headers;
    this.body = body;
    this.signal = signal;
    this.#tcp = tcp;
  }

  get path(): string {
    if (this.#path === undefined) this.#split();
    return this.#path as string;
  }

  get query(): URLSearchParams {
    if (this.#query === undefined) this.#split();
    return this.#query as URLSearchParams;
  }

  get peer(): string {
    return this.#tcp.peerAddress.toString();
  }

  #split(): void {
    let target = this.target;
    if (!target.startsWith("/") && target !== "*") {
      // absolute-form (RFC 9112 §3.2.2): keep the path and query.
      try {
        const url = new URL(target);
        target = `${url.pathname}${url.search}`;
      } catch {
        target = "/";
      }
    }
    const question = target.indexOf("?");
    this.#path = question < 0 ? target : target.slice(0, question);
    this.#query = new URLSearchParams(question < 0 ? "" : target.slice(question + 1));
  }
}

function statusText(status: number): string {
  switch (status) {
    case 400:
      return "Bad Request";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 501:
      return "Not Implemented";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "";
  }
}
