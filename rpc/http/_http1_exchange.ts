/**
 * One request on an `Http1Connection` and its answer: the {@linkcode Http1Request} a handler sees, the
 * {@linkcode Http1Handler} that answers it, and the `Exchange` the connection keeps per request (what the response
 * writer asks of its owner, the handler's run and the finishing of what it left undone, the body moved to the
 * handler or discarded after it), with the raw answer to a request refused at its head. Kept apart from the
 * connection's state machine, which makes one `Exchange` per request, decides when each step happens, and drops it
 * when the next request may be read.
 *
 * @module
 */

import type { Buffer } from "../../reactor/buffer.ts";
import { getLogger } from "../../reactor/logger.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import type { Http1Parser, Http1RequestHead } from "./_http1_parser.ts";
import type { Http1Settings } from "./_http1_settings.ts";
import { Http1Error, Http1ErrorCode } from "./http1_error.ts";
import type { Http1RequestBody } from "./http1_request_body.ts";
import type { Http1ResponseWriter, ResponseOwner } from "./http1_response_writer.ts";
import type { HttpHeaders } from "./http_headers.ts";

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

const CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n";

// One request and its response: what the response writer needs to know (ResponseOwner), and the connection's
// bookkeeping of the exchange.
export class Exchange implements ResponseOwner {
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
  readonly #settings: Http1Settings;
  readonly #tcp: TcpConnection;
  readonly #onSendTimeout: () => void;
  #drainBudget = 0;

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
    this.#settings = settings;
    this.#tcp = tcp;
    this.#onSendTimeout = onSendTimeout;
  }

  closeAfterResponse(asked: boolean): boolean {
    if (asked || !this.head.keepAlive || this.closeRequested) return true;
    // A client that half-closed after this request (nothing of another follows) gets its last answer: say so.
    if (this.#parser.bodyDone) return this.#tcp.peerClosed && this.#tcp.inputBuffer.readableBytes === 0;
    // The body is not all read yet. A client told to wait for 100 Continue may never send it; a body of unknown
    // or large size is not worth discarding to keep the connection.
    if (this.head.expect === "continue" && !this.continueSent) return true;
    const remaining = this.#parser.remainingBodyBytes;
    return remaining === undefined || remaining - this.#tcp.inputBuffer.readableBytes > this.#settings.maxDrainBytes;
  }

  sendTimedOut(): void {
    this.#onSendTimeout();
  }

  /** The connection went away: the handler's reads fail, its writes end, and its signal aborts if it was not done. */
  connectionClosed(): void {
    const error = new Http1Error(Http1ErrorCode.CONNECTION_CLOSED, `Connection ${this.#tcp.name} closed`);
    this.body.fail(error);
    this.writer.handleClose();
    if (!this.writer.ended) this.abort.abort(error);
  }

  /** Why the request is answered without its handler (a method not served, an unknown expectation), if it is. */
  refusal(): Http1Error | undefined {
    return !this.#settings.allowedMethods.includes(this.head.method)
      ? new Http1Error(Http1ErrorCode.METHOD_NOT_ALLOWED, `Method ${this.head.method} is not served here`)
      : this.head.expect === "other"
      ? new Http1Error(Http1ErrorCode.EXPECTATION_FAILED, "Only 'Expect: 100-continue' is understood")
      : undefined;
  }

  /** Answer `refusal` in the handler's stead, as a handler that reads no body would. */
  answerRefusal(refusal: Http1Error): void {
    const headers: Record<string, string> = { "content-type": "text/plain; charset=utf-8" };
    if (refusal.code === Http1ErrorCode.METHOD_NOT_ALLOWED) headers.allow = this.#settings.allowHeader;
    this.writer.writeHead(refusal.status, headers);
    void this.writer.end(`${refusal.rawMessage}\n`);
  }

  /** Hand the request to `handler`: settles as its promise does (a synchronous throw rejects). */
  run(handler: Http1Handler): Promise<void> {
    const request = new Request(this.head, this.body, this.abort.signal, this.#tcp);
    try {
      return Promise.resolve(handler(request, this.writer));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Whether the handler has room for body that has yet to be parsed. */
  get wantsBody(): boolean {
    return !this.#parser.bodyDone && this.body.room > 0;
  }

  /**
   * Whether the server waits on the client for body: it wants body bytes (`draining` the rest, or the handler has
   * room) and has none to parse, and has not told it to wait (Expect: 100-continue before the handler reads).
   */
  waitingForBody(draining: boolean): boolean {
    const toldToWait = this.head.expect === "continue" && !this.continueSent;
    return !this.#parser.bodyDone && !toldToWait && (draining || this.body.room > 0);
  }

  /** The handler wants body: a client told to wait (Expect: 100-continue) is told to send it, if still useful. */
  stopWaiting(): void {
    if (this.head.expect === "continue" && !this.continueSent) {
      // From now on the client is no longer told to wait (and the body deadline runs), whether it gets a 100 or,
      // the answer having begun already, has to decide by itself.
      this.continueSent = true;
      if (!this.writer.headersSent && !this.#parser.bodyDone) this.#tcp.send(CONTINUE);
    }
  }

  /**
   * Move as much body from `buffer` as the handler has room for, in one chunk per call (a body of tiny chunks is not
   * delivered as tiny arrays). Throws what the parser throws.
   */
  deliverBody(buffer: Buffer): void {
    const body = this.body;
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

  /** The handler is done with the body: what it did not read is discarded, up to `maxDrainBytes`. */
  abandonBody(): void {
    this.body.abandon();
    this.#drainBudget = this.#settings.maxDrainBytes;
  }

  /**
   * Discard body from `buffer` after {@linkcode abandonBody}; false when the body goes on past `maxDrainBytes`
   * (not worth reading to keep the connection). Throws what the parser throws.
   */
  discardBody(buffer: Buffer): boolean {
    for (let piece = this.#parser.parseBody(buffer, this.#drainBudget); piece !== undefined;) {
      this.#drainBudget -= piece.length;
      piece = this.#parser.parseBody(buffer, this.#drainBudget);
    }
    return this.#parser.bodyDone || this.#drainBudget > 0;
  }

  /**
   * Finish the response once the handler settled (with `error` if it failed): answered in its stead if it never
   * answered, ended if it left the response open. False when the response cannot be finished honestly and the
   * connection must close under it.
   */
  finishResponse(error: unknown): boolean {
    const writer = this.writer;
    try {
      if (error !== undefined) {
        if (writer.headersSent) {
          if (!writer.ended) {
            // The response cannot be finished honestly: cut short, the client sees it fail.
            getLogger().debug(`Http1Connection ${this.#tcp.name}: handler failed mid-response`, { error });
            return false;
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
      return false;
    }
    return true;
  }
}

// The Http1Request a handler gets; path and query are split from the target when first asked for.
export class Request implements Http1Request {
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

/**
 * The whole answer to a request refused at its head (it never gets an Exchange or a response writer): `error`'s
 * status and message, then `Connection: close`.
 */
export function refusalResponse(error: Http1Error): string {
  const body = `${error.rawMessage}\n`;
  return `HTTP/1.1 ${error.status} ${statusText(error.status)}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
    `content-length: ${new TextEncoder().encode(body).length}\r\nconnection: close\r\n\r\n${body}`;
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
