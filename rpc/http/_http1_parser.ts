/**
 * The incremental HTTP/1.1 request parser (RFC 9112): a request head at a time, then its body piece by piece as
 * the caller asks for it, out of a reactor Buffer. It does no I/O and keeps no timers; Http1Connection drives it.
 *
 * What it reads, and what it refuses (each refusal is an {@linkcode Http1Error} thrown from the parse call):
 *
 * ```text
 * request     = request-line CRLF *( field-line CRLF ) CRLF [ body ]        one head: maxHeaderBytes, maxHeaders
 * request-line = method SP request-target SP "HTTP/" DIGIT "." DIGIT          maxRequestLineBytes (414)
 * field-line  = token ":" OWS *( VCHAR / obs-text / SP / HTAB ) OWS          no obs-fold, no CTL, no bare CR/LF
 * body        = Content-Length bytes                                          one decimal value, <= maxBodyBytes
 *             / chunked-body                                                  Transfer-Encoding: chunked (final)
 * chunked-body = *( HEX [ ext ] CRLF data CRLF ) "0" [ ext ] CRLF trailers CRLF
 *                                                                             size line <= 4 KiB, size < 2^53
 *                                                                             trailers: maxTrailerBytes
 * ```
 *
 * Bytes after a body are the next request: the parser is `reset` and reads them as a head.
 *
 * @module
 */

import type { Buffer } from "../../reactor/buffer.ts";
import { Http1Error, Http1ErrorCode } from "./http1_error.ts";
import { HttpHeaders } from "./http_headers.ts";

/** The parser's limits; Http1Connection fills them from its options. */
export interface Http1ParserLimits {
  /** Longest request line (without CRLF); longer is 414. */
  readonly maxRequestLineBytes: number;
  /** Longest head, request line and field lines with their CRLFs; longer is 431. */
  readonly maxHeaderBytes: number;
  /** Most field lines in a head or a trailer section; more is 431. */
  readonly maxHeaders: number;
  /** Longest trailer section of a chunked body; longer is 431. */
  readonly maxTrailerBytes: number;
  /** Largest body, declared or chunked; larger is 413. */
  readonly maxBodyBytes: number;
}

/** How a request's body is delimited. */
export const BodyFraming = {
  /** No body. */
  NONE: "none",
  /** Content-Length bytes. */
  LENGTH: "length",
  /** Transfer-Encoding: chunked. */
  CHUNKED: "chunked",
} as const;

/** One of the {@linkcode BodyFraming} values. */
export type BodyFraming = typeof BodyFraming[keyof typeof BodyFraming];

/** A parsed request head. */
export interface Http1RequestHead {
  /** The method as sent (case-sensitive, RFC 9110 §9.1). */
  readonly method: string;
  /** The request target as sent. */
  readonly target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1 (and any later 1.x, answered as 1.1). */
  readonly minorVersion: 0 | 1;
  /** The field lines. */
  readonly headers: HttpHeaders;
  /** How the body is delimited. */
  readonly framing: BodyFraming;
  /** The declared length when `framing` is `length`, else 0. */
  readonly contentLength: number;
  /** Whether the client lets the connection stay open after this request (RFC 9112 §9.3). */
  readonly keepAlive: boolean;
  /** `continue` for `Expect: 100-continue` on HTTP/1.1, `other` for any other expectation, else undefined. */
  readonly expect: "continue" | "other" | undefined;
}

const ParserState = {
  HEAD: "head",
  LENGTH: "length",
  CHUNK_SIZE: "chunk-size",
  CHUNK_DATA: "chunk-data",
  CHUNK_END: "chunk-end",
  TRAILERS: "trailers",
  DONE: "done",
} as const;
type ParserState = typeof ParserState[keyof typeof ParserState];

const CR = 0x0d;
const LF = 0x0a;
/** The longest chunk size line, extensions included (they are read and ignored). */
export const MAX_CHUNK_LINE_BYTES = 4096;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP\/(\d)\.(\d)$/;
const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(:\d*)?$/;
const OWS = /^[ \t]+|[ \t]+$/g;
const NOT_ASCII = /[\u0080-\uffff]/;
// ignoreBOM: keep a leading BOM as U+FEFF (not ASCII), rather than drop it and take the rest as a clean head.
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Parses requests out of one connection's input. Owned by one Http1Connection; call `parseHead` until it returns
 * a head, then `parseBody` until `bodyDone`, then `reset`.
 */
export class Http1Parser {
  readonly #limits: Http1ParserLimits;
  #state: ParserState = ParserState.HEAD;
  // Scanning a head or a trailer section that has not fully arrived: how far lines were checked, where the
  // current line starts, where the first line ended (-1: not yet). Offsets into the buffer's readable bytes.
  #scanned = 0;
  #lineStart = 0;
  #firstLineEnd = -1;
  #skippedEmptyLines = 0;
  #remaining = 0;
  #bodyBytes = 0;
  #trailers: HttpHeaders | undefined;

  /** A parser within `limits`. */
  constructor(limits: Http1ParserLimits) {
    this.#limits = limits;
  }

  /** Whether the current request's body has been read to its end (true for a request without a body). */
  get bodyDone(): boolean {
    return this.#state === ParserState.DONE;
  }

  /** Whether the parser waits for a head (nothing of the next request has been taken yet, or part of its head). */
  get readingHead(): boolean {
    return this.#state === ParserState.HEAD;
  }

  /** Body bytes of the current request read so far. */
  get bodyBytes(): number {
    return this.#bodyBytes;
  }

  /** The body bytes still to come when the length is known (Content-Length), else undefined. */
  get remainingBodyBytes(): number | undefined {
    if (this.#state === ParserState.LENGTH) return this.#remaining;
    return this.#state === ParserState.DONE ? 0 : undefined;
  }

  /** The trailer fields of a chunked body, once it is done. */
  get trailers(): HttpHeaders | undefined {
    return this.#trailers;
  }

  /** Make ready for the next request's head. */
  reset(): void {
    this.#state = ParserState.HEAD;
    this.#scanned = 0;
    this.#lineStart = 0;
    this.#firstLineEnd = -1;
    this.#skippedEmptyLines = 0;
    this.#remaining = 0;
    this.#bodyBytes = 0;
    this.#trailers = undefined;
  }

  /**
   * Take one request head out of `buffer`, or nothing (undefined) while it is incomplete; throws an Http1Error
   * for a head that breaks the rules or the limits, as soon as that shows.
   */
  parseHead(buffer: Buffer): Http1RequestHead | undefined {
    if (this.#state !== ParserState.HEAD) throw new TypeError(`Cannot parse a head while in state ${this.#state}`);
    // RFC 9112 §2.2: ignore empty lines before a request line (some clients send a CRLF after a POST body).
    while (this.#lineStart === 0 && buffer.readableBytes >= 2) {
      const bytes = buffer.peek();
      if (bytes[0] !== CR || bytes[1] !== LF) break;
      buffer.retrieve(2);
      this.#scanned = 0;
      if (++this.#skippedEmptyLines > 8) {
        throw new Http1Error(Http1ErrorCode.BAD_REQUEST_LINE, "More than 8 empty lines before a request line");
      }
    }
    const bytes = buffer.peek();
    const { maxRequestLineBytes, maxHeaderBytes } = this.#limits;
    const end = this.#scanSection(bytes, Http1ErrorCode.BAD_HEADER);
    if (this.#firstLineEnd < 0 ? bytes.length > maxRequestLineBytes : this.#firstLineEnd > maxRequestLineBytes) {
      const line = bytes.subarray(0, Math.min(bytes.length, maxRequestLineBytes));
      // A method, then a space: what is too long is the target.
      if (line.indexOf(0x20) > 0) {
        throw new Http1Error(Http1ErrorCode.URI_TOO_LONG, `Request line is over ${maxRequestLineBytes} bytes`);
      }
      throw new Http1Error(Http1ErrorCode.BAD_REQUEST_LINE, `No method in the first ${maxRequestLineBytes} bytes`);
    }
    if (end < 0 ? bytes.length > maxHeaderBytes : end > maxHeaderBytes) {
      throw new Http1Error(Http1ErrorCode.HEADERS_TOO_LARGE, `Request head is over ${maxHeaderBytes} bytes`);
    }
    if (end < 0) return undefined;
    const text = latin1(bytes, 0, end - 4);
    buffer.retrieve(end);
    this.#scanned = 0;
    this.#lineStart = 0;
    this.#firstLineEnd = -1;
    return this.#headOf(text);
  }

  /**
   * Take up to `maxBytes` of body out of `buffer` as a copy, or undefined when none is available (more bytes are
   * needed, or the body is done: see `bodyDone`); framing (chunk sizes, trailers) is consumed along the way.
   * Throws an Http1Error for a body that breaks the rules.
   */
  parseBody(buffer: Buffer, maxBytes: number): Uint8Array | undefined {
    for (;;) {
      switch (this.#state) {
        case ParserState.LENGTH:
        case ParserState.CHUNK_DATA: {
          const length = Math.min(this.#remaining, buffer.readableBytes, maxBytes);
          if (length <= 0) return undefined;
          this.#remaining -= length;
          this.#bodyBytes += length;
          if (this.#remaining === 0) {
            this.#state = this.#state === ParserState.LENGTH ? ParserState.DONE : ParserState.CHUNK_END;
          }
          return buffer.retrieveAsBytes(length);
        }
        case ParserState.CHUNK_END: {
          const bytes = buffer.peek();
          if (bytes.length >= 1 && bytes[0] !== CR || bytes.length >= 2 && bytes[1] !== LF) {
            throw new Http1Error(Http1ErrorCode.BAD_CHUNK, "Chunk data is longer than its size, or not ended by CRLF");
          }
          if (bytes.length < 2) return undefined;
          buffer.retrieve(2);
          this.#state = ParserState.CHUNK_SIZE;
          continue;
        }
        case ParserState.CHUNK_SIZE:
          if (!this.#parseChunkSize(buffer)) return undefined;
          continue;
        case ParserState.TRAILERS:
          this.#parseTrailers(buffer);
          return undefined;
        default:
          return undefined;
      }
    }
  }

  // Check the lines of a field section from where the last call stopped; the index just past its empty line, or
  // -1 while it has not arrived. Throws `bareLf` for a LF not preceded by CR.
  #scanSection(bytes: Uint8Array, bareLf: Http1ErrorCode): number {
    for (let lf = bytes.indexOf(LF, this.#scanned); lf >= 0; lf = bytes.indexOf(LF, lf + 1)) {
      if (lf === 0 || bytes[lf - 1] !== CR) throw new Http1Error(bareLf, "A line ends in a bare LF, not CRLF");
      if (lf - 1 === this.#lineStart) return lf + 1;
      if (this.#firstLineEnd < 0) this.#firstLineEnd = lf - 1;
      this.#lineStart = lf + 1;
    }
    this.#scanned = bytes.length;
    return -1;
  }

  #headOf(text: string): Http1RequestHead {
    const lines = text.split("\r\n");
    const requestLine = lines[0] ?? "";
    const match = REQUEST_LINE.exec(requestLine);
    if (match === null) {
      throw new Http1Error(Http1ErrorCode.BAD_REQUEST_LINE, `Malformed request line '${shown(requestLine)}'`);
    }
    if (match[3] !== "1") {
      throw new Http1Error(Http1ErrorCode.VERSION_NOT_SUPPORTED, "Only HTTP/1.x is served on this port");
    }
    const [, method = "", target = "", , minor] = match;
    const minorVersion = minor === "0" ? 0 : 1;
    const headers = new HttpHeaders();
    parseFieldLines(lines, 1, headers, this.#limits.maxHeaders, Http1ErrorCode.HEADERS_TOO_LARGE);

    const hosts = headers.getAll("host");
    if (minorVersion === 1 ? hosts.length !== 1 : hosts.length > 1) {
      throw new Http1Error(Http1ErrorCode.BAD_HOST, `Expected one Host header: found ${hosts.length}`);
    }
    if (hosts.length === 1 && !HOST.test(hosts[0] as string)) {
      throw new Http1Error(Http1ErrorCode.BAD_HOST, `Malformed Host '${shown(hosts[0] as string)}'`);
    }

    const { framing, contentLength } = this.#framingOf(headers, minorVersion);
    const connection = tokens(headers.get("connection"));
    const keepAlive = minorVersion === 1
      ? !connection.includes("close")
      : connection.includes("keep-alive") && !connection.includes("close");
    const expectValue = minorVersion === 1 ? headers.get("expect") : undefined;
    const expect = expectValue === undefined
      ? undefined
      : expectValue.trim().toLowerCase() === "100-continue"
      ? "continue"
      : "other";

    this.#bodyBytes = 0;
    this.#remaining = contentLength;
    this.#state = framing === BodyFraming.CHUNKED
      ? ParserState.CHUNK_SIZE
      : framing === BodyFraming.LENGTH
      ? ParserState.LENGTH
      : ParserState.DONE;
    return { method, target, minorVersion, headers, framing, contentLength, keepAlive, expect };
  }

  // RFC 9112 §6.1-6.3, strictly: any ambiguity about where the body ends is a refusal, since a proxy in front may
  // have read it the other way (request smuggling).
  #framingOf(headers: HttpHeaders, minorVersion: 0 | 1): { framing: BodyFraming; contentLength: number } {
    const transferEncodings = headers.getAll("transfer-encoding");
    const contentLengths = headers.getAll("content-length");
    if (transferEncodings.length > 0) {
      if (contentLengths.length > 0) {
        throw new Http1Error(Http1ErrorCode.SMUGGLING, "Content-Length and Transfer-Encoding in one request");
      }
      if (minorVersion === 0) {
        throw new Http1Error(Http1ErrorCode.BAD_TRANSFER_ENCODING, "Transfer-Encoding in an HTTP/1.0 request");
      }
      const codings = tokens(transferEncodings.join(","));
      const chunked = codings.filter((coding) => coding === "chunked").length;
      if (codings.length === 0 || chunked > 1 || chunked === 1 && codings.at(-1) !== "chunked") {
        throw new Http1Error(
          Http1ErrorCode.BAD_TRANSFER_ENCODING,
          `Transfer-Encoding must end in one chunked: current value is '${shown(transferEncodings.join(", "))}'`,
        );
      }
      // Any coding but chunked alone: one we do not decode (RFC 9112 §6.1 answers 501).
      if (codings.length !== 1 || chunked !== 1) {
        throw new Http1Error(
          Http1ErrorCode.UNSUPPORTED_TRANSFER_CODING,
          `Only the chunked transfer coding is served: current value is '${shown(transferEncodings.join(", "))}'`,
        );
      }
      return { framing: BodyFraming.CHUNKED, contentLength: 0 };
    }
    if (contentLengths.length === 0) return { framing: BodyFraming.NONE, contentLength: 0 };
    const first = contentLengths[0] as string;
    if (!/^\d{1,15}$/.test(first) || contentLengths.some((value) => value !== first)) {
      throw new Http1Error(
        Http1ErrorCode.BAD_CONTENT_LENGTH,
        `Content-Length must be one decimal number: current value is '${shown(contentLengths.join(", "))}'`,
      );
    }
    const contentLength = Number(first);
    if (contentLength > this.#limits.maxBodyBytes) {
      throw new Http1Error(
        Http1ErrorCode.BODY_TOO_LARGE,
        `Content-Length ${contentLength} is over the limit of ${this.#limits.maxBodyBytes} bytes`,
      );
    }
    return { framing: contentLength > 0 ? BodyFraming.LENGTH : BodyFraming.NONE, contentLength };
  }

  // A chunk size line; false while it has not fully arrived.
  #parseChunkSize(buffer: Buffer): boolean {
    const bytes = buffer.peek();
    const lf = bytes.subarray(0, MAX_CHUNK_LINE_BYTES + 2).indexOf(LF);
    if (lf < 0) {
      if (bytes.length > MAX_CHUNK_LINE_BYTES + 1) {
        throw new Http1Error(Http1ErrorCode.BAD_CHUNK, `Chunk size line is over ${MAX_CHUNK_LINE_BYTES} bytes`);
      }
      return false;
    }
    const lineEnd = lf - 1;
    if (lineEnd < 0 || bytes[lineEnd] !== CR) {
      throw new Http1Error(Http1ErrorCode.BAD_CHUNK, "Chunk size line ends in a bare LF, not CRLF");
    }
    let size = 0;
    let i = 0;
    for (; i < lineEnd; i++) {
      const digit = hexValue(bytes[i] as number);
      if (digit < 0) break;
      if (size > (Number.MAX_SAFE_INTEGER - digit) / 16) {
        throw new Http1Error(Http1ErrorCode.BAD_CHUNK, "Chunk size is too large a number");
      }
      size = size * 16 + digit;
    }
    if (i === 0) {
      throw new Http1Error(
        Http1ErrorCode.BAD_CHUNK,
        `Chunk size line '${shown(latin1(bytes, 0, lineEnd))}' is not hex`,
      );
    }
    // chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ): ignored, but no control characters.
    let j = i;
    while (j < lineEnd && (bytes[j] === 0x20 || bytes[j] === 0x09)) j++;
    if (j < lineEnd && bytes[j] !== 0x3b || !FIELD_VALUE.test(latin1(bytes, i, lineEnd))) {
      throw new Http1Error(
        Http1ErrorCode.BAD_CHUNK,
        `Chunk size line '${shown(latin1(bytes, 0, lineEnd))}' has something other than an extension after the size`,
      );
    }
    if (this.#bodyBytes + size > this.#limits.maxBodyBytes) {
      throw new Http1Error(
        Http1ErrorCode.BODY_TOO_LARGE,
        `Body is over the limit of ${this.#limits.maxBodyBytes} bytes`,
      );
    }
    buffer.retrieve(lf + 1);
    this.#remaining = size;
    this.#state = size === 0 ? ParserState.TRAILERS : ParserState.CHUNK_DATA;
    return true;
  }

  #parseTrailers(buffer: Buffer): void {
    const bytes = buffer.peek();
    const end = this.#scanSection(bytes, Http1ErrorCode.BAD_CHUNK);
    const limit = this.#limits.maxTrailerBytes;
    if (end < 0 ? bytes.length > limit : end > limit) {
      throw new Http1Error(Http1ErrorCode.TRAILERS_TOO_LARGE, `Trailer section is over ${limit} bytes`);
    }
    if (end < 0) return;
    const trailers = new HttpHeaders();
    if (end > 2) {
      const lines = latin1(bytes, 0, end - 4).split("\r\n");
      parseFieldLines(lines, 0, trailers, this.#limits.maxHeaders, Http1ErrorCode.TRAILERS_TOO_LARGE);
    }
    buffer.retrieve(end);
    this.#scanned = 0;
    this.#lineStart = 0;
    this.#firstLineEnd = -1;
    this.#trailers = trailers;
    this.#state = ParserState.DONE;
  }
}

// Field lines from `lines[from]` on into `headers`.
function parseFieldLines(
  lines: readonly string[],
  from: number,
  headers: HttpHeaders,
  maxFields: number,
  tooMany: Http1ErrorCode,
): void {
  if (lines.length - from > maxFields) {
    throw new Http1Error(tooMany, `${lines.length - from} header fields: the limit is ${maxFields}`);
  }
  for (let i = from; i < lines.length; i++) {
    const line = lines[i] as string;
    const first = line.charCodeAt(0);
    if (first === 0x20 || first === 0x09) {
      throw new Http1Error(Http1ErrorCode.OBS_FOLD, "A header line starts with whitespace (obs-fold)");
    }
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    if (!TOKEN.test(name)) {
      throw new Http1Error(Http1ErrorCode.BAD_HEADER, `Malformed header line '${shown(line)}'`);
    }
    const value = line.slice(colon + 1).replace(OWS, "");
    if (!FIELD_VALUE.test(value)) {
      throw new Http1Error(Http1ErrorCode.BAD_HEADER, `Header '${shown(name)}' has a control character in its value`);
    }
    headers.append(name, value);
  }
}

// The comma-separated tokens of a list field, lower-cased, empty elements dropped (RFC 9110 §5.6.1).
function tokens(value: string | undefined): string[] {
  if (value === undefined) return [];
  const result: string[] = [];
  for (const part of value.split(",")) {
    const token = part.trim().toLowerCase();
    if (token !== "") result.push(token);
  }
  return result;
}

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const lower = byte | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

// Bytes as a string of the same length (each byte one UTF-16 unit): field values may hold obs-text, which UTF-8
// decoding would mangle, and the WHATWG "latin1" decoder is windows-1252. ASCII (nearly every head) takes the
// native decoder: any byte above 0x7f would have decoded to a character above it, so none means all ASCII.
function latin1(bytes: Uint8Array, start: number, end: number): string {
  const ascii = utf8.decode(bytes.subarray(start, end));
  if (!NOT_ASCII.test(ascii)) return ascii;
  let text = "";
  for (let i = start; i < end; i += 4096) text += String.fromCharCode(...bytes.subarray(i, Math.min(end, i + 4096)));
  return text;
}

// A piece of a hostile value fit for a message: printable, short.
function shown(value: string): string {
  const printable = value.replace(/[^\x20-\x7e]/g, "?");
  return printable.length > 64 ? `${printable.slice(0, 64)}...` : printable;
}
