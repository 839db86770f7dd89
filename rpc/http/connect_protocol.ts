/**
 * The Connect protocol's rules that do not touch a socket (connectrpc.com, "Connect Protocol Reference"): error
 * codes by name and the HTTP status of each, the JSON error body and a stream's end-of-stream message, the timeout
 * header, and which request headers are the protocol's and which are the caller's metadata. The gateway
 * (`gateway_transport.ts`) applies them; they are here alone so the protocol can be read, and tested, by itself.
 *
 * @module
 */

import protobuf from "protobufjs";
import { RpcCode } from "../rpc_error.ts";
import { toBase64 } from "./grpc_web_protocol.ts";
import { HttpHeaders } from "./http_headers.ts";

/** Connect's name of each status code (gRPC's names in lower snake case; CANCELLED is spelled `canceled`). */
export const CONNECT_CODE_NAMES: Readonly<Record<number, string>> = Object.freeze({
  [RpcCode.CANCELLED]: "canceled",
  [RpcCode.UNKNOWN]: "unknown",
  [RpcCode.INVALID_ARGUMENT]: "invalid_argument",
  [RpcCode.DEADLINE_EXCEEDED]: "deadline_exceeded",
  [RpcCode.NOT_FOUND]: "not_found",
  [RpcCode.ALREADY_EXISTS]: "already_exists",
  [RpcCode.PERMISSION_DENIED]: "permission_denied",
  [RpcCode.RESOURCE_EXHAUSTED]: "resource_exhausted",
  [RpcCode.FAILED_PRECONDITION]: "failed_precondition",
  [RpcCode.ABORTED]: "aborted",
  [RpcCode.OUT_OF_RANGE]: "out_of_range",
  [RpcCode.UNIMPLEMENTED]: "unimplemented",
  [RpcCode.INTERNAL]: "internal",
  [RpcCode.UNAVAILABLE]: "unavailable",
  [RpcCode.DATA_LOSS]: "data_loss",
  [RpcCode.UNAUTHENTICATED]: "unauthenticated",
});

// The HTTP status of a unary error with each code (the spec's table, as amended by its RFC 003).
const HTTP_STATUS: Readonly<Record<number, number>> = {
  [RpcCode.CANCELLED]: 499,
  [RpcCode.UNKNOWN]: 500,
  [RpcCode.INVALID_ARGUMENT]: 400,
  [RpcCode.DEADLINE_EXCEEDED]: 504,
  [RpcCode.NOT_FOUND]: 404,
  [RpcCode.ALREADY_EXISTS]: 409,
  [RpcCode.PERMISSION_DENIED]: 403,
  [RpcCode.RESOURCE_EXHAUSTED]: 429,
  [RpcCode.FAILED_PRECONDITION]: 400,
  [RpcCode.ABORTED]: 409,
  [RpcCode.OUT_OF_RANGE]: 400,
  [RpcCode.UNIMPLEMENTED]: 501,
  [RpcCode.INTERNAL]: 500,
  [RpcCode.UNAVAILABLE]: 503,
  [RpcCode.DATA_LOSS]: 500,
  [RpcCode.UNAUTHENTICATED]: 401,
};

/**
 * The HTTP status a unary error with `code` is answered with (500 for a code outside the table).
 *
 * @example
 * ```ts
 * import { connectHttpStatus } from "./connect_protocol.ts";
 * import { RpcCode } from "../rpc_error.ts";
 *
 * if (connectHttpStatus(RpcCode.NOT_FOUND) !== 404) throw new Error("the spec says 404");
 * ```
 */
export function connectHttpStatus(code: number): number {
  return HTTP_STATUS[code] ?? 500;
}

/** Connect's name of `code` (`unknown` for a code outside the table). */
export function connectCodeName(code: number): string {
  return CONNECT_CODE_NAMES[code] ?? "unknown";
}

/** One entry of an error's `details`: a protobuf `Any`, its value in base64 without padding. */
export interface ConnectErrorDetail {
  /** The message's full name, without the `type.googleapis.com/` prefix. */
  type: string;
  /** The serialized message, base64 (standard alphabet, no padding). */
  value: string;
  /** The message as JSON, for people reading the error (optional). */
  debug?: unknown;
}

/** The JSON of a Connect error: the body of a unary error, the `error` of a stream's end. */
export interface ConnectErrorJson {
  code: string;
  message?: string;
  details?: ConnectErrorDetail[];
}

/** The error JSON of status `code` with `message` (and `details`, when there are any). */
export function connectErrorJson(code: number, message: string, details?: ConnectErrorDetail[]): ConnectErrorJson {
  const json: ConnectErrorJson = { code: connectCodeName(code) };
  if (message !== "") json.message = message;
  if (details !== undefined && details.length > 0) json.details = details;
  return json;
}

/**
 * An error's details as Connect's JSON carries them, from gRPC's `grpc-status-details-bin` (the base64 of a
 * `google.rpc.Status`, whose field 3 is its details as `google.protobuf.Any`s): how a handler's error brings
 * details through the provider, as metadata under that key. Undefined when `statusDetailsBin` is absent, has no
 * details, or is not base64 of a Status (the error then goes out without details).
 *
 * @example
 * ```ts
 * import { connectErrorDetails } from "./connect_protocol.ts";
 * import assert from "node:assert/strict";
 *
 * // Status { details: [Any { type_url: "type.googleapis.com/x.Y" (23 bytes), value: 0x08 0x01 }] }
 * const url = new TextEncoder().encode("type.googleapis.com/x.Y");
 * const any = [0x0a, url.length, ...url, 0x12, 0x02, 0x08, 0x01];
 * const status = btoa(String.fromCharCode(0x1a, any.length, ...any));
 * assert.deepEqual(connectErrorDetails(status), [{ type: "x.Y", value: "CAE" }]);
 * assert.equal(connectErrorDetails("not a status!"), undefined);
 * ```
 */
export function connectErrorDetails(statusDetailsBin: string | undefined): ConnectErrorDetail[] | undefined {
  if (statusDetailsBin === undefined) return undefined;
  try {
    const reader = protobuf.Reader.create(fromBase64Url(statusDetailsBin));
    const details: ConnectErrorDetail[] = [];
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      if (tag !== ((3 << 3) | 2)) {
        reader.skipType(tag & 7);
        continue;
      }
      const any = protobuf.Reader.create(reader.bytes());
      let typeUrl = "";
      let value: Uint8Array = new Uint8Array(0);
      while (any.pos < any.len) {
        const anyTag = any.uint32();
        if (anyTag === ((1 << 3) | 2)) typeUrl = any.string();
        else if (anyTag === ((2 << 3) | 2)) value = any.bytes();
        else any.skipType(anyTag & 7);
      }
      details.push({ type: typeUrl.slice(typeUrl.lastIndexOf("/") + 1), value: toBase64(value).replace(/=+$/, "") });
    }
    return details.length > 0 ? details : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A stream's end-of-stream message (the envelope with flag 0x02): the error, if the stream failed, and the
 * trailers as a map of header names to value lists.
 */
export function endOfStreamJson(
  error: ConnectErrorJson | undefined,
  trailers: ReadonlyMap<string, readonly string[]> | undefined,
): Uint8Array {
  const json: { error?: ConnectErrorJson; metadata?: Record<string, string[]> } = {};
  if (error !== undefined) json.error = error;
  if (trailers !== undefined && trailers.size > 0) {
    json.metadata = Object.fromEntries([...trailers].map(([name, values]) => [name, [...values]]));
  }
  return new TextEncoder().encode(JSON.stringify(json));
}

/** Envelope flags of Connect streams (gRPC-Web uses 0x01 and 0x80). */
export const ENVELOPE_COMPRESSED = 0x01;
/** The end-of-stream message of a Connect stream. */
export const ENVELOPE_END_STREAM = 0x02;

/** One envelope: its flags and its data. */
export interface Envelope {
  flags: number;
  data: Uint8Array;
}

/** The 5-byte header of an envelope of `length` bytes with `flags`, then the data, as one array. */
export function envelope(flags: number, data: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(5 + data.length);
  const length = data.length;
  bytes[0] = flags;
  bytes[1] = length >>> 24;
  bytes[2] = (length >>> 16) & 0xff;
  bytes[3] = (length >>> 8) & 0xff;
  bytes[4] = length & 0xff;
  bytes.set(data, 5);
  return bytes;
}

/**
 * Reads envelopes from a body that arrives in pieces. `push` each piece; `next` gives whole envelopes in order.
 * An envelope longer than `maxBytes` is an error before its data is buffered (the gateway answers
 * resource_exhausted): a lying length costs nothing.
 */
export class EnvelopeReader {
  readonly #maxBytes: number;
  #bytes = new Uint8Array(0);
  #start = 0;
  #end = 0;

  /** Read envelopes of at most `maxBytes` of data each. */
  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes held that are not a whole envelope yet. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** More of the body (copied). */
  push(piece: Uint8Array): void {
    if (piece.length === 0) return;
    if (this.#end + piece.length > this.#bytes.length) {
      const held = this.#end - this.#start;
      const bytes = held + piece.length <= this.#bytes.length
        ? this.#bytes
        : new Uint8Array(Math.max(held + piece.length, this.#bytes.length * 2, 1024));
      bytes.set(this.#bytes.subarray(this.#start, this.#end), 0);
      this.#bytes = bytes;
      this.#start = 0;
      this.#end = held;
    }
    this.#bytes.set(piece, this.#end);
    this.#end += piece.length;
  }

  /**
   * The next whole envelope (its data a view, valid until the next `push`), or undefined until more arrives.
   * Throws {@linkcode EnvelopeTooLarge} as soon as a header declares too much.
   */
  next(): Envelope | undefined {
    if (this.buffered < 5) return undefined;
    const at = this.#start;
    const length = new DataView(this.#bytes.buffer, this.#bytes.byteOffset + at, 5).getUint32(1);
    if (length > this.#maxBytes) throw new EnvelopeTooLarge(length, this.#maxBytes);
    if (this.buffered < 5 + length) return undefined;
    this.#start += 5 + length;
    return { flags: this.#bytes[at]!, data: this.#bytes.subarray(at + 5, at + 5 + length) };
  }
}

/** An envelope declared longer than the receive limit. */
export class EnvelopeTooLarge extends Error {
  /** The length it declared. */
  readonly length: number;
  /** The limit. */
  readonly maxBytes: number;

  /** An envelope of `length` bytes against a limit of `maxBytes`. */
  constructor(length: number, maxBytes: number) {
    super(`A message of ${length} bytes is larger than the limit of ${maxBytes} bytes`);
    this.name = "EnvelopeTooLarge";
    this.length = length;
    this.maxBytes = maxBytes;
  }
}

/**
 * The `Connect-Timeout-Ms` header as milliseconds: a positive integer of at most 10 digits. Undefined when absent;
 * throws a TypeError on a value the spec does not allow (the gateway answers invalid_argument).
 */
export function parseConnectTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]{1,10}$/.test(value)) {
    throw new TypeError(`Connect-Timeout-Ms must be a positive integer of at most 10 digits: "${value}"`);
  }
  return Number(value);
}

// Request headers that are the protocol's or HTTP's, never the caller's metadata.
const PROTOCOL_HEADERS = new Set([
  "accept",
  "accept-encoding",
  "connection",
  "content-encoding",
  "content-length",
  "content-type",
  "connect-accept-encoding",
  "connect-content-encoding",
  "connect-protocol-version",
  "connect-timeout-ms",
  "expect",
  "grpc-accept-encoding",
  "grpc-encoding",
  "grpc-timeout",
  "host",
  "keep-alive",
  "origin",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "user-agent",
  "x-grpc-web",
  "x-user-agent",
  "access-control-request-headers",
  "access-control-request-method",
]);

/**
 * The caller's metadata among request headers: every header that is not the protocol's or HTTP's. Repeated
 * headers are joined with ", " (HTTP's rule for lists); `-bin` headers keep their base64 text.
 */
export function metadataFromHeaders(headers: Iterable<readonly [string, string]>): Record<string, string> {
  const metadata: Record<string, string> = {};
  const add = (value: string, rawName: string) => {
    const name = rawName.toLowerCase();
    if (PROTOCOL_HEADERS.has(name) || name.startsWith(":") || name.startsWith("dwt-")) return;
    if (name === "__proto__") {
      Object.defineProperty(metadata, name, { value, enumerable: true, writable: true });
      return;
    }
    metadata[name] = Object.hasOwn(metadata, name) ? `${metadata[name]}, ${value}` : value;
  };
  // Every request's fields: walked without an iterator when they are an HttpHeaders.
  if (headers instanceof HttpHeaders) headers.forEach(add);
  else for (const [name, value] of headers) add(value, name);
  return metadata;
}

/** What a Connect content type says: the codec, and whether the call streams (enveloped messages). */
export interface ConnectContentType {
  /** `proto` or `json` (another name is a codec this gateway does not speak: 415). */
  codec: string;
  /** `application/connect+<codec>`: a streaming call; `application/<codec>`: unary. */
  streaming: boolean;
}

/**
 * `application/<codec>` (unary) or `application/connect+<codec>` (streaming), parameters such as charset ignored;
 * undefined for a type that is neither (say gRPC-Web's, or none).
 *
 * @example
 * ```ts
 * import { parseConnectContentType } from "./connect_protocol.ts";
 *
 * const type = parseConnectContentType("application/connect+json; charset=utf-8");
 * if (type?.codec !== "json" || !type.streaming) throw new Error("a JSON stream");
 * ```
 */
export function parseConnectContentType(value: string | undefined): ConnectContentType | undefined {
  if (value === undefined) return undefined;
  const type = value.split(";")[0]!.trim().toLowerCase();
  const streaming = /^application\/connect\+([a-z0-9._-]+)$/.exec(type);
  if (streaming !== null) return { codec: streaming[1]!, streaming: true };
  const unary = /^application\/([a-z0-9._-]+)$/.exec(type);
  if (unary === null || unary[1]!.startsWith("grpc")) return undefined;
  return { codec: unary[1]!, streaming: false };
}

/** A unary GET request's query (`connect=v1&encoding=...&message=...[&base64=1][&compression=...]`), decoded. */
export interface ConnectGetRequest {
  codec: string;
  /** The message bytes: base64url-decoded when `base64=1`, else the query value's UTF-8 (JSON). */
  message: Uint8Array;
  /** `compression`, when given. */
  compression: string | undefined;
}

/**
 * The request of a unary GET (for methods with `idempotency_level = NO_SIDE_EFFECTS`) from its query. Throws a
 * TypeError naming what is missing or malformed (the gateway answers invalid_argument).
 */
export function parseConnectGet(query: URLSearchParams): ConnectGetRequest {
  const version = query.get("connect");
  if (version !== null && version !== "v1") throw new TypeError(`connect must be "v1": "${version}"`);
  const codec = query.get("encoding");
  if (codec === null) throw new TypeError("A GET request needs the 'encoding' query parameter");
  const text = query.get("message") ?? "";
  const compression = query.get("compression") ?? undefined;
  if (query.get("base64") === "1") return { codec, message: fromBase64Url(text), compression };
  return { codec, message: new TextEncoder().encode(text), compression };
}

/** Bytes from base64, standard or URL-safe alphabet, padded or not. Throws a TypeError on other characters. */
export function fromBase64Url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text)) throw new TypeError("The value is not base64");
  const standard = text.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  if (standard.length % 4 === 1) throw new TypeError("The value is not base64 (a stray character at its end)");
  const padded = standard + "=".repeat((4 - (standard.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (char) => char.charCodeAt(0));
}
