/**
 * The response side of one HTTP/1.1 exchange: a status line and header fields, then either a fixed body
 * (`Content-Length`) or a streamed one (chunked, each write flushed at once, trailers in the last chunk), with
 * back-pressure from the connection's unsent output.
 *
 * What goes on the wire, by how the handler answers:
 *
 * ```text
 * end(body)                          -> Content-Length: n, body                     (HEAD: the head only)
 * write(a), write(b), end()          -> Transfer-Encoding: chunked, a, b, 0 CRLF CRLF  (HTTP/1.1)
 *                                    -> no length, body until the connection closes (HTTP/1.0)
 * headers has content-length, write  -> Content-Length: n, the writes (n bytes in all, else the connection closes)
 * end(body, trailers) / end(undefined, trailers) after writes
 *                                    -> chunked, trailers in the last chunk (dropped for HTTP/1.0)
 * 204 / 304                          -> no body, no framing fields
 * ```
 *
 * @module
 */

import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import type { TimerId } from "../../reactor/timer_queue.ts";
import { Http1Error, Http1ErrorCode } from "./http1_error.ts";
import { HttpHeaders, type HttpHeadersInit } from "./http_headers.ts";

/** What a response needs of its request and connection; Http1Connection provides it. */
export interface ResponseOwner {
  /** The request was HEAD: send heads, never body bytes. */
  readonly headOnly: boolean;
  /** The request's HTTP minor version: 1.0 clients get no chunked framing. */
  readonly minorVersion: 0 | 1;
  /** Unsent output bytes above which `write` and `end` wait for the output to drain. */
  readonly highWaterMarkBytes: number;
  /** Milliseconds the output may stay above the mark before the connection is given up. */
  readonly sendTimeoutMs: number;
  /**
   * Asked once, as the head goes out: whether the connection closes after this response (`Connection: close`);
   * `asked` says the handler (or the framing) wants it.
   */
  closeAfterResponse(asked: boolean): boolean;
  /** The output did not drain within `sendTimeoutMs`: the owner closes the connection. */
  sendTimedOut(): void;
}

const BodyMode = {
  /** No head sent yet. */
  UNDECIDED: "undecided",
  /** Content-Length: the bytes still owed are in `#remaining`. */
  FIXED: "fixed",
  CHUNKED: "chunked",
  /** HTTP/1.0 streaming: the body ends when the connection does. */
  UNTIL_CLOSE: "until-close",
  /** 204 and 304. */
  NONE: "none",
} as const;
type BodyMode = typeof BodyMode[keyof typeof BodyMode];

const REASONS: Readonly<Record<number, string>> = {
  100: "Continue",
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  206: "Partial Content",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  422: "Unprocessable Content",
  426: "Upgrade Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const NOT_ASCII = /[\x80-\xff]/;
const CRLF = "\r\n";
const LAST_CHUNK = "0\r\n";
const encoder = new TextEncoder();
const RESOLVED: Promise<void> = Promise.resolve();

let dateSecond = -1;
let dateText = "";

// The Date field, rebuilt once a second (RFC 9110 §6.6.1: an origin server with a clock sends it).
function httpDate(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}

/**
 * Writes one response. Handlers get one per request; use it from the handler's own code, on the loop.
 *
 * The head is sent with the first `write`, `end` or `flushHeaders`, so `writeHead` followed by `end(body)` still
 * gets a Content-Length. `write` and `end` resolve at once while the connection's unsent output is under the
 * high-water mark, and otherwise when it has drained: a client that does not read stalls its producer. A `write`
 * on a connection gone (or given up after `sendTimeoutMs` without progress) rejects with an {@linkcode Http1Error}
 * `connection_closed`; `end` then resolves, so a handler need not await it.
 *
 * @example A fixed body, then a stream with trailers
 * ```ts
 * import type { Http1ResponseWriter } from "./http1_response_writer.ts";
 *
 * async function answer(response: Http1ResponseWriter, stream: boolean): Promise<void> {
 *   if (!stream) {
 *     await response.end("imok\n");
 *     return;
 *   }
 *   response.writeHead(200, { "content-type": "application/x-ndjson" });
 *   for (let i = 0; i < 3; i++) await response.write(`{"n":${i}}\n`);
 *   await response.end(undefined, { "x-count": "3" });
 * }
 * ```
 */
export class Http1ResponseWriter {
  readonly #connection: TcpConnection;
  readonly #owner: ResponseOwner;
  #status = 200;
  #headers = new HttpHeaders();
  #mode: BodyMode = BodyMode.UNDECIDED;
  #remaining = 0;
  #ended = false;
  #closeAfter = false;
  #closed = false;
  #preempted: Http1Error | undefined;
  #drain: PromiseWithResolvers<boolean> | undefined;
  #drainTimer: TimerId | undefined;

  /** Internal: Http1Connection makes one per request. */
  constructor(connection: TcpConnection, owner: ResponseOwner) {
    this.#connection = connection;
    this.#owner = owner;
  }

  /** The status (200 until `writeHead` says otherwise). */
  get status(): number {
    return this.#status;
  }

  /** The header fields to send; change them freely until the head is sent. */
  get headers(): HttpHeaders {
    return this.#headers;
  }

  /** Whether the head has been sent. */
  get headersSent(): boolean {
    return this.#mode !== BodyMode.UNDECIDED;
  }

  /** Whether a body of open length (chunked, or until close) is under way: its head sent, its end not yet. */
  get streaming(): boolean {
    return !this.#ended && (this.#mode === BodyMode.CHUNKED || this.#mode === BodyMode.UNTIL_CLOSE);
  }

  /** Whether `end` has been called (or the connection answered in the handler's stead). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Whether the connection closes after this response (known once the head is sent). */
  get closesConnection(): boolean {
    return this.#closeAfter;
  }

  /**
   * Internal: whether the response went out whole (ended, and a declared Content-Length fully written), so the
   * connection may carry another.
   */
  get complete(): boolean {
    return this.#ended && !(this.#mode === BodyMode.FIXED && this.#remaining > 0);
  }

  /**
   * Set the status and replace the header fields; nothing is sent yet. `transfer-encoding` is the writer's to set
   * (a TypeError); `content-length` declares a streamed body's size; `connection: close` closes after.
   */
  writeHead(status: number, headers?: HttpHeadersInit): void {
    if (this.#preempted !== undefined) return;
    if (this.headersSent) throw new TypeError(`Cannot write the head as it was sent already (status ${this.#status})`);
    if (!Number.isInteger(status) || status < 200 || status > 999) {
      throw new RangeError(
        `Cannot write the head as 'status' must be an integer in [200, 999]: current value is ${status}`,
      );
    }
    this.#status = status;
    if (headers !== undefined) this.#headers = new HttpHeaders(headers);
  }

  /** Send the head now, for a stream whose first message is not ready yet. */
  flushHeaders(): void {
    if (this.#preempted !== undefined || this.headersSent) return;
    this.#startStream();
  }

  /**
   * Send `chunk` as the next piece of a streamed body (the head first, if not sent). Resolves when the output is
   * under the high-water mark; rejects with `connection_closed` when the connection is gone.
   */
  write(chunk: Uint8Array | string): Promise<void> {
    if (this.#preempted !== undefined) return Promise.reject(this.#preempted);
    if (this.#ended) throw new TypeError("Cannot write as the response has ended");
    if (this.#closed || !this.#connection.connected) return Promise.reject(this.#closedError());
    if (!this.headersSent) this.#startStream();
    const bytes = typeof chunk === "string" ? encoder.encode(chunk) : chunk;
    this.#sendBody(bytes);
    return this.#backPressure();
  }

  /**
   * End the response: with `body` as the whole body if nothing was sent yet (a Content-Length response), else as
   * a last piece; `trailers` go in the last chunk (a response not yet sent is then chunked). Resolves when the
   * output is under the high-water mark, or the connection is gone.
   */
  end(body?: Uint8Array | string, trailers?: HttpHeadersInit): Promise<void> {
    if (this.#preempted !== undefined) return RESOLVED;
    if (this.#ended) throw new TypeError("Cannot end the response twice");
    const bytes = body === undefined ? undefined : typeof body === "string" ? encoder.encode(body) : body;
    const trailerFields = trailers === undefined ? undefined : new HttpHeaders(trailers);
    if (this.#closed || !this.#connection.connected) {
      this.#ended = true;
      return RESOLVED;
    }
    if (!this.headersSent) {
      const declared = this.#headers.get("content-length");
      if (trailerFields !== undefined && declared === undefined && this.#owner.minorVersion === 1) {
        this.#startStream();
      } else {
        const length = bytes?.length ?? 0;
        if (declared !== undefined && declared !== String(length)) {
          throw new TypeError(`Cannot end with a ${length}-byte body as content-length says ${declared}`);
        }
        this.#sendHead(noBody(this.#status) ? BodyMode.NONE : BodyMode.FIXED, length);
      }
    }
    if (bytes !== undefined) this.#sendBody(bytes);
    this.#ended = true;
    if (this.#mode === BodyMode.CHUNKED && !this.#owner.headOnly) this.#sendLastChunk(trailerFields);
    return this.#backPressure();
  }

  /**
   * Internal: the connection answers `error` in the handler's stead (the body broke the rules before the handler
   * answered); later calls by the handler do nothing, and its writes reject with `error`. False when the head was
   * already sent (the connection must then close instead).
   */
  preempt(error: Http1Error, headers: HttpHeadersInit = {}): boolean {
    if (this.headersSent || this.#preempted !== undefined) return false;
    this.#status = error.status;
    this.#headers = new HttpHeaders(headers);
    this.#headers.set("content-type", "text/plain; charset=utf-8");
    this.#headers.set("connection", "close");
    this.#ended = false;
    this.end(`${error.rawMessage}\n`);
    this.#preempted = error;
    return true;
  }

  /** Internal: the connection's output drained. */
  handleWriteComplete(): void {
    this.#settleDrain(true);
  }

  /** Internal: the connection closed. */
  handleClose(): void {
    this.#closed = true;
    this.#settleDrain(false);
  }

  #startStream(): void {
    const declared = this.#headers.get("content-length");
    if (noBody(this.#status)) {
      this.#sendHead(BodyMode.NONE, 0);
    } else if (declared !== undefined) {
      if (!/^\d{1,15}$/.test(declared)) {
        throw new TypeError(
          `Cannot send the head as content-length must be a decimal number: current value is ${declared}`,
        );
      }
      this.#sendHead(BodyMode.FIXED, Number(declared));
    } else {
      this.#sendHead(this.#owner.minorVersion === 1 ? BodyMode.CHUNKED : BodyMode.UNTIL_CLOSE, 0);
    }
  }

  #sendHead(mode: BodyMode, contentLength: number): void {
    let asked = mode === BodyMode.UNTIL_CLOSE;
    let hasDate = false;
    let head = `HTTP/1.1 ${this.#status} ${REASONS[this.#status] ?? ""}\r\n`;
    for (const [name, value] of this.#headers) {
      if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) {
        throw new TypeError(
          `Cannot send header '${name.replace(/[^\x21-\x7e]/g, "?")}' as its name must be a token and its value ` +
            `free of control characters`,
        );
      }
      switch (name) {
        case "transfer-encoding":
          throw new TypeError("Cannot send transfer-encoding: the writer chooses the framing");
        case "content-length":
          continue;
        case "connection":
          asked ||= value.toLowerCase().includes("close");
          continue;
        case "date":
          hasDate = true;
      }
      head += `${name}: ${value}\r\n`;
    }
    if (!hasDate) head += `date: ${httpDate()}\r\n`;
    if (mode === BodyMode.FIXED) head += `content-length: ${contentLength}\r\n`;
    if (mode === BodyMode.CHUNKED) head += "transfer-encoding: chunked\r\n";
    this.#closeAfter = this.#owner.closeAfterResponse(asked);
    if (this.#closeAfter) head += "connection: close\r\n";
    else if (this.#owner.minorVersion === 0) head += "connection: keep-alive\r\n";
    head += CRLF;
    this.#mode = mode;
    this.#remaining = contentLength;
    this.#connection.send(NOT_ASCII.test(head) ? latin1Bytes(head) : head);
  }

  #sendBody(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    switch (this.#mode) {
      case BodyMode.NONE:
        throw new TypeError(`Cannot send a body with status ${this.#status}`);
      case BodyMode.FIXED:
        if (bytes.length > this.#remaining) {
          throw new RangeError(
            `Cannot write ${bytes.length} bytes as only ${this.#remaining} remain of the declared content-length`,
          );
        }
        this.#remaining -= bytes.length;
        if (!this.#owner.headOnly) this.#connection.send(bytes);
        return;
      case BodyMode.CHUNKED:
        if (this.#owner.headOnly) return;
        this.#connection.send(`${bytes.length.toString(16)}\r\n`);
        this.#connection.send(bytes);
        this.#connection.send(CRLF);
        return;
      default:
        if (!this.#owner.headOnly) this.#connection.send(bytes);
    }
  }

  #sendLastChunk(trailers: HttpHeaders | undefined): void {
    let last = LAST_CHUNK;
    for (const [name, value] of trailers ?? []) {
      if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) {
        throw new TypeError(`Cannot send trailer '${name.replace(/[^\x21-\x7e]/g, "?")}': not a token, or a bad value`);
      }
      last += `${name}: ${value}\r\n`;
    }
    last += CRLF;
    this.#connection.send(NOT_ASCII.test(last) ? latin1Bytes(last) : last);
  }

  #backPressure(): Promise<void> {
    if (this.#connection.pendingBytes <= this.#owner.highWaterMarkBytes) return RESOLVED;
    if (this.#drain === undefined) {
      this.#drain = Promise.withResolvers();
      this.#drainTimer = this.#connection.loop.runAfter(this.#owner.sendTimeoutMs, () => {
        this.#drainTimer = undefined;
        this.#owner.sendTimedOut();
      });
    }
    const ended = this.#ended;
    return this.#drain.promise.then((drained) => {
      if (!drained && !ended) throw this.#closedError();
    });
  }

  #settleDrain(drained: boolean): void {
    if (this.#drainTimer !== undefined) this.#connection.loop.cancel(this.#drainTimer);
    this.#drainTimer = undefined;
    const drain = this.#drain;
    this.#drain = undefined;
    drain?.resolve(drained);
  }

  #closedError(): Http1Error {
    return new Http1Error(Http1ErrorCode.CONNECTION_CLOSED, `Connection ${this.#connection.name} is closed`);
  }
}

function noBody(status: number): boolean {
  return status === 204 || status === 304;
}

function latin1Bytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}
