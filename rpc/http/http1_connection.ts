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
 * A client that half-closes (sends FIN after its last request: `nc -N`, some HTTP/1.0 tools) is answered: every
 * request received whole before the FIN gets its response (the last says `Connection: close`), then the
 * connection closes. A request cut short by the FIN can never be answered: the connection closes at once and its
 * handler's signal aborts, as when the client goes away. A FIN looks the same whether the client waits for the
 * answer or has gone, so the answer's state decides: a FIN while a streamed answer is under way (its head sent) is
 * a client that went away (an aborted stream; one that half-closes does so after its request, before the answer
 * starts), closed at once so the handler's signal fires now and not at its next message, which may be minutes
 * away; before that, one that has gone is seen at the first write that meets its reset, or at the call's deadline.
 *
 * Memory per connection is bounded by the head limit, `maxBufferedBodyBytes` of body waiting for the handler, 64 KiB
 * read ahead while the handler is busy, and `highWaterMarkBytes` of unsent output (plus one write).
 *
 * This file is the state machine; what is kept per request is in `_http1_exchange.ts`, the timers behind each
 * deadline in `_http1_deadlines.ts`.
 *
 * @module
 */

import type { Buffer } from "../../reactor/buffer.ts";
import { getLogger } from "../../reactor/logger.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import { DeadlineKind, Http1Deadlines } from "./_http1_deadlines.ts";
import { Exchange, type Http1Handler, refusalResponse } from "./_http1_exchange.ts";
import { BodyFraming, Http1Parser, type Http1RequestHead } from "./_http1_parser.ts";
import { type Http1ConnectionOptions, type Http1Settings, resolveHttp1Settings } from "./_http1_settings.ts";
import { Http1Error, Http1ErrorCode, type Http1Refusal } from "./http1_error.ts";
import { Http1RequestBody } from "./http1_request_body.ts";
import { Http1ResponseWriter } from "./http1_response_writer.ts";
import { Http1Counters } from "./http1_stats.ts";

export type { Http1ConnectionOptions } from "./_http1_settings.ts";
export type { Http1Handler, Http1Request } from "./_http1_exchange.ts";

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
  readonly #deadlines: Http1Deadlines;
  #exchange: Exchange | undefined;
  #requests = 0;
  #closeRequested = false;
  #processing = false;
  #processAgain = false;
  #peerEnded = false;

  /** Serve HTTP/1.1 on `connection` (connected); the head deadline of the first request starts now. */
  constructor(connection: TcpConnection, init: Http1ConnectionInit) {
    this.#tcp = connection;
    this.#handler = init.handler;
    this.#settings = resolveHttp1Settings(init, "Http1Connection");
    this.#deadlines = new Http1Deadlines(connection, this.#settings, (kind) => this.#onDeadline(kind));
    this.#counters = init.counters ?? new Http1Counters();
    this.#parser = new Http1Parser(this.#settings);
    this.#counters.connectionOpened();
    this.#deadlines.arm(DeadlineKind.HEAD);
    connection.setHalfCloseCallback(() => this.handleHalfClose());
  }

  /** The current state. */
  get state(): Http1ConnectionState {
    return this.#state;
  }

  /** Requests handed to the handler so far (a gate's "first whole frame" is the first of them). */
  get requestCount(): number {
    return this.#requests;
  }

  /** Bytes this connection holds for its client: unparsed input, body waiting for the handler, unsent output. */
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
    this.#deadlines.outputDrained();
    this.#process();
  }

  /**
   * Internal reaction: the client half-closed (sent FIN); nothing more will arrive. The constructor installs it as
   * the TCP connection's half-close callback, so the connection stays open to answer what was received.
   */
  handleHalfClose(): void {
    if (this.#state === Http1ConnectionState.CLOSED) return;
    this.#peerEnded = true;
    if (this.#exchange?.writer.streaming) {
      this.#tcp.forceClose(); // gone mid-stream (see the module doc)
      return;
    }
    this.#process();
  }

  /** Internal reaction: the TCP connection closed (from its connection callback). Safe to call twice. */
  handleClose(): void {
    if (this.#state === Http1ConnectionState.CLOSED) return;
    this.#state = Http1ConnectionState.CLOSED;
    this.#deadlines.disarm();
    this.#deadlines.stopBody();
    this.#counters.connectionClosed();
    const exchange = this.#exchange;
    this.#exchange = undefined;
    exchange?.connectionClosed();
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
    if (this.#peerEnded) this.#closeIfPeerDone();
    this.#updateReading();
  }

  #step(): void {
    const buffer = this.#tcp.inputBuffer;
    for (;;) {
      switch (this.#state) {
        case Http1ConnectionState.IDLE:
          if (buffer.readableBytes === 0) return;
          if (this.#deadlines.outputBlocked()) return;
          this.#state = Http1ConnectionState.READING_HEAD;
          this.#deadlines.disarm();
          continue;
        case Http1ConnectionState.READING_HEAD: {
          if (this.#deadlines.outputBlocked()) return;
          let head: Http1RequestHead | undefined;
          try {
            head = this.#parser.parseHead(buffer);
          } catch (error) {
            this.#refuse(error);
            return;
          }
          if (head === undefined) {
            if (this.#deadlines.kind !== DeadlineKind.HEAD) this.#deadlines.arm(DeadlineKind.HEAD);
            return;
          }
          this.#deadlines.disarm();
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

  #startExchange(head: Http1RequestHead): void {
    this.#state = Http1ConnectionState.ACTIVE;
    const exchange = new Exchange(head, this.#parser, this.#settings, this.#tcp, () => this.#onSendTimeout());
    exchange.closeRequested = this.#closeRequested || this.#requests + 1 >= this.#settings.maxRequestsPerConnection;
    exchange.body = new Http1RequestBody(() => this.#onBodyDemand(exchange), this.#settings.maxBufferedBodyBytes);
    exchange.writer = new Http1ResponseWriter(this.#tcp, exchange);
    this.#exchange = exchange;
    if (head.framing === BodyFraming.NONE) exchange.body.end(undefined);

    const refusal = exchange.refusal();
    if (refusal !== undefined) {
      // Answered as a handler that reads no body would be: the body is then discarded or the connection closed.
      this.#counters.refused(refusal.code as Http1Refusal);
      exchange.answerRefusal(refusal);
      this.#onHandlerSettled(exchange, undefined);
      return;
    }

    this.#requests++;
    this.#counters.requested();
    exchange.run(this.#handler).then(
      () => this.#onHandlerSettled(exchange, undefined),
      (error: unknown) => this.#onHandlerSettled(exchange, error ?? new Error("The handler rejected with nothing")),
    );
  }

  #onBodyDemand(exchange: Exchange): void {
    if (exchange !== this.#exchange || this.#state !== Http1ConnectionState.ACTIVE) return;
    exchange.stopWaiting();
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
        if (!draining) exchange.deliverBody(buffer);
        else if (!exchange.discardBody(buffer)) {
          getLogger().debug(`Http1Connection ${this.#tcp.name}: unread body past maxDrainBytes, closing`);
          this.#closeGracefully();
          return false;
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

  #onHandlerSettled(exchange: Exchange, error: unknown): void {
    if (exchange !== this.#exchange || this.#state !== Http1ConnectionState.ACTIVE) return;
    const writer = exchange.writer;
    if (!exchange.finishResponse(error) || !writer.complete || writer.closesConnection) {
      this.#closeGracefully();
      return;
    }
    this.#state = Http1ConnectionState.DRAINING;
    exchange.abandonBody();
    this.#process();
  }

  #nextRequest(): void {
    this.#deadlines.stopBody();
    this.#exchange = undefined;
    this.#parser.reset();
    this.#state = Http1ConnectionState.IDLE;
    this.#deadlines.arm(DeadlineKind.IDLE);
  }

  // A head that breaks the rules, or a head deadline: answered, then closed.
  #refuse(reason: unknown): void {
    const error = Http1Error.from(reason);
    if (error.code !== Http1ErrorCode.CONNECTION_CLOSED) this.#counters.refused(error.code as Http1Refusal);
    getLogger().debug(`Http1Connection ${this.#tcp.name} refused a request: ${error.message}`);
    if (error.status > 0) this.#tcp.send(refusalResponse(error));
    this.#closeGracefully();
  }

  // A body that breaks the rules, or comes too slowly: the handler's reads fail; answered in its stead if it has
  // not answered, else the connection closes under the response.
  #bodyFailed(exchange: Exchange, reason: unknown): void {
    const error = Http1Error.from(reason);
    this.#counters.refused(error.code as Http1Refusal);
    getLogger().debug(`Http1Connection ${this.#tcp.name} refused a body: ${error.message}`);
    exchange.body.fail(error);
    this.#deadlines.stopBody();
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
    this.#deadlines.stopBody();
    this.#tcp.inputBuffer.retrieveAll();
    this.#tcp.shutdown();
    this.#tcp.startRead();
    this.#deadlines.arm(DeadlineKind.CLOSING);
  }

  // After the client's FIN (#step has taken all it could): close once no whole request is left to answer. Input
  // left over is a request the handler has not taken yet (its body waits for room), which may still be whole.
  #closeIfPeerDone(): void {
    const input = this.#tcp.inputBuffer.readableBytes;
    switch (this.#state) {
      case Http1ConnectionState.IDLE:
        if (input === 0) this.#closeGracefully();
        return;
      case Http1ConnectionState.READING_HEAD:
        // A head cut short by the FIN (unless it waits for the output to drain, to be parsed after).
        if (!this.#deadlines.outputBlocked()) this.#closeGracefully();
        return;
      case Http1ConnectionState.ACTIVE:
      case Http1ConnectionState.DRAINING:
        if (!this.#parser.bodyDone && input === 0) this.#closeGracefully();
    }
  }

  // The connection keeps reading while a handler runs so that a client going away (an aborted stream) is seen at
  // once; a client's FIN is taken for going away only while a streamed answer is under way (see the module doc).
  #updateReading(): void {
    if (this.#state === Http1ConnectionState.CLOSED) return;
    const exchange = this.#exchange;
    // A client that does not read its answers is not read from either (beyond READ_AHEAD_BYTES), so one that
    // pipelines requests without reading costs at most the high-water mark of answers and that much of requests.
    const answering = this.#tcp.pendingBytes <= this.#settings.highWaterMarkBytes;
    const consuming = answering && this.#state === Http1ConnectionState.READING_HEAD ||
      this.#state === Http1ConnectionState.DRAINING ||
      this.#state === Http1ConnectionState.CLOSING ||
      this.#state === Http1ConnectionState.ACTIVE && exchange !== undefined && exchange.wantsBody;
    if (consuming || this.#tcp.inputBuffer.readableBytes < READ_AHEAD_BYTES) this.#tcp.startRead();
    else this.#tcp.stopRead();
  }

  // The body deadline runs only while the server waits on the client for body.
  #updateBodyTimer(exchange: Exchange): void {
    if (!exchange.waitingForBody(this.#state === Http1ConnectionState.DRAINING)) {
      this.#deadlines.stopBody();
      return;
    }
    this.#deadlines.startBody((tooSlow) => {
      if (this.#exchange !== exchange) return;
      if (tooSlow !== undefined) this.#bodyFailed(exchange, tooSlow);
      else this.#updateBodyTimer(exchange);
    });
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
