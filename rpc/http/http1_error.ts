/**
 * The HTTP/1.1 layer's one error class: every request the server refuses, and a connection that went away under a
 * handler, carry one of a closed set of codes, each with the status the server answers with.
 *
 * @module
 */

/**
 * Why a request was refused (the counters of `Http1Stats.refusals` use the same names), plus `connection_closed`
 * for a handler whose connection went away. The comment of each gives its status.
 *
 * @example
 * ```ts
 * import { Http1ErrorCode, http1ErrorStatus } from "./http1_error.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(http1ErrorStatus(Http1ErrorCode.SMUGGLING), 400);
 * assert.equal(http1ErrorStatus(Http1ErrorCode.HEAD_TIMEOUT), 408);
 * ```
 */
export const Http1ErrorCode = {
  /** 400: the request line is not `method SP target SP HTTP/x.y`, or its target is not visible ASCII. */
  BAD_REQUEST_LINE: "bad_request_line",
  /** 414: the request line is longer than `maxRequestLineBytes`. */
  URI_TOO_LONG: "uri_too_long",
  /** 431: the head is longer than `maxHeaderBytes`, or has more than `maxHeaders` fields. */
  HEADERS_TOO_LARGE: "headers_too_large",
  /** 400: a field name that is not a token, a value with a control character, a bare CR or LF. */
  BAD_HEADER: "bad_header",
  /** 400: a field line folded onto the one before (obs-fold, RFC 9112 §5.2). */
  OBS_FOLD: "obs_fold",
  /** 400: an HTTP/1.1 request without exactly one Host. */
  BAD_HOST: "bad_host",
  /** 400: Content-Length together with Transfer-Encoding (RFC 9112 §6.1: a smuggling attempt); closes. */
  SMUGGLING: "smuggling",
  /** 400: a Content-Length that is not one decimal number (a list, two different values, a sign, overflow). */
  BAD_CONTENT_LENGTH: "bad_content_length",
  /** 400: chunked not the final coding, chunked twice, an empty coding, or Transfer-Encoding on HTTP/1.0. */
  BAD_TRANSFER_ENCODING: "bad_transfer_encoding",
  /** 501: a transfer coding other than chunked. */
  UNSUPPORTED_TRANSFER_CODING: "unsupported_transfer_coding",
  /** 400: a chunk size line that is not hex (or too long, or too large a number), or chunk data not ended by CRLF. */
  BAD_CHUNK: "bad_chunk",
  /** 431: the trailer section of a chunked body is longer than `maxTrailerBytes` or has too many fields. */
  TRAILERS_TOO_LARGE: "trailers_too_large",
  /** 413: a body larger than `maxBodyBytes`. */
  BODY_TOO_LARGE: "body_too_large",
  /** 505: an HTTP version other than 1.x. */
  VERSION_NOT_SUPPORTED: "version_not_supported",
  /** 405 (with Allow): a method the server does not serve. */
  METHOD_NOT_ALLOWED: "method_not_allowed",
  /** 417: an Expect other than 100-continue. */
  EXPECTATION_FAILED: "expectation_failed",
  /** 408: the head did not arrive within `headerTimeoutMs`; closes. */
  HEAD_TIMEOUT: "head_timeout",
  /** 408: the body came slower than `minBodyBytesPerSecond` over a `bodyTimeoutMs` window; closes. */
  BODY_TIMEOUT: "body_timeout",
  /** No answer (status 0): the connection closed, or was closed, while a handler read or wrote. */
  CONNECTION_CLOSED: "connection_closed",
} as const;

/** One of the {@linkcode Http1ErrorCode} values. */
export type Http1ErrorCode = typeof Http1ErrorCode[keyof typeof Http1ErrorCode];

/** The codes that are refusals of a request (all but `connection_closed`). */
export type Http1Refusal = Exclude<Http1ErrorCode, typeof Http1ErrorCode.CONNECTION_CLOSED>;

const STATUS: Record<Http1ErrorCode, number> = {
  bad_request_line: 400,
  uri_too_long: 414,
  headers_too_large: 431,
  bad_header: 400,
  obs_fold: 400,
  bad_host: 400,
  smuggling: 400,
  bad_content_length: 400,
  bad_transfer_encoding: 400,
  unsupported_transfer_coding: 501,
  bad_chunk: 400,
  trailers_too_large: 431,
  body_too_large: 413,
  version_not_supported: 505,
  method_not_allowed: 405,
  expectation_failed: 417,
  head_timeout: 408,
  body_timeout: 408,
  connection_closed: 0,
};

/**
 * The status the server answers a refusal with (0 for `connection_closed`, which has no answer).
 *
 * @example
 * ```ts
 * import { http1ErrorStatus } from "./http1_error.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(http1ErrorStatus("unsupported_transfer_coding"), 501);
 * ```
 */
export function http1ErrorStatus(code: Http1ErrorCode): number {
  return STATUS[code];
}

/**
 * A refused request, or a connection gone under a handler. A handler reading a body that breaks the rules gets
 * one from the body's iterator; rethrowing it lets the connection answer with its status.
 *
 * @example
 * ```ts
 * import { Http1Error, Http1ErrorCode } from "./http1_error.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new Http1Error(Http1ErrorCode.BAD_CHUNK, "Chunk size line 'zz' is not hexadecimal");
 * assert.equal(error.status, 400);
 * assert.equal(error.message, "[bad_chunk] Chunk size line 'zz' is not hexadecimal");
 * assert.equal(Http1Error.from(new Error("boom")).code, Http1ErrorCode.CONNECTION_CLOSED);
 * ```
 */
export class Http1Error extends Error {
  /** Why. */
  readonly code: Http1ErrorCode;
  /** The message without the code prefix. */
  readonly rawMessage: string;

  /** Create an error. */
  constructor(code: Http1ErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(`[${code}] ${message}`, { cause: options.cause });
    this.name = "Http1Error";
    this.code = code;
    this.rawMessage = message;
  }

  /** The status the server answers with (0: none). */
  get status(): number {
    return STATUS[this.code];
  }

  /** Normalise anything thrown: Http1Errors pass through, anything else is a lost connection. */
  static from(reason: unknown): Http1Error {
    if (reason instanceof Http1Error) return reason;
    const message = reason instanceof Error ? reason.message : String(reason);
    return new Http1Error(Http1ErrorCode.CONNECTION_CLOSED, message, { cause: reason });
  }
}
