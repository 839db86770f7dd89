/**
 * gRPC-Web's rules that do not touch a socket (grpc/grpc, doc/PROTOCOL-WEB.md): the content types, the
 * `grpc-timeout` header, the trailers sent as the body's last frame (flag 0x80) instead of HTTP trailers, and the
 * base64 of `application/grpc-web-text` bodies, which may arrive and leave in pieces. Messages travel in the same
 * 5-byte frames as Connect's streams (`EnvelopeReader`, `envelope` in connect_protocol.ts).
 *
 * @module
 */

/** The frame flag of the trailers frame. */
export const GRPC_WEB_TRAILERS = 0x80;

/** What a gRPC-Web content type says: the message codec, and whether the body is base64 text. */
export interface GrpcWebContentType {
  /** `proto` (the default) or `json`. */
  codec: string;
  /** `application/grpc-web-text`: the body is base64. */
  text: boolean;
}

/**
 * `application/grpc-web`, `-web+proto`, `-web+json`, `-web-text`, `-web-text+proto` (parameters ignored), or
 * undefined for anything else.
 *
 * @example
 * ```ts
 * import { parseGrpcWebContentType } from "./grpc_web_protocol.ts";
 *
 * const type = parseGrpcWebContentType("application/grpc-web-text+proto; charset=utf-8");
 * if (type?.text !== true || type.codec !== "proto") throw new Error("text, proto");
 * ```
 */
export function parseGrpcWebContentType(value: string | undefined): GrpcWebContentType | undefined {
  if (value === undefined) return undefined;
  const match = /^application\/grpc-web(-text)?(?:\+([a-z0-9._-]+))?$/.exec(value.split(";")[0]!.trim().toLowerCase());
  if (match === null) return undefined;
  return { codec: match[2] ?? "proto", text: match[1] !== undefined };
}

const TIMEOUT_UNITS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/**
 * The `grpc-timeout` header (at most 8 digits and a unit: H, M, S, m, u, n) as milliseconds, rounded up so a
 * short timeout is not lost; undefined when absent. Throws a TypeError on a malformed value.
 */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^([0-9]{1,8})([HMSmun])$/.exec(value);
  if (match === null) throw new TypeError(`grpc-timeout must be 1-8 digits and a unit (H M S m u n): "${value}"`);
  return Math.ceil(Number(match[1]) * TIMEOUT_UNITS[match[2]!]!);
}

/**
 * A `grpc-message` value as gRPC specifies it: printable ASCII as is, every other byte of the UTF-8 (and `%`)
 * percent-encoded. Used in the trailers frame and in the headers of a trailers-only response.
 *
 * @example
 * ```ts
 * import { encodeGrpcMessage } from "./grpc_web_protocol.ts";
 *
 * if (encodeGrpcMessage("100% sûr") !== "100%25 s%C3%BBr") throw new Error("percent-encoded UTF-8");
 * ```
 */
export function encodeGrpcMessage(text: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(text)) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25
      ? String.fromCharCode(byte)
      : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/**
 * The trailers frame's data: `grpc-status`, `grpc-message` (percent-encoded) and the call's trailing metadata, as
 * HTTP/1-style header lines.
 */
export function grpcWebTrailers(
  status: number,
  message: string,
  trailers: Iterable<readonly [string, string]> = [],
): Uint8Array {
  const lines = [`grpc-status: ${status}`];
  if (message !== "") lines.push(`grpc-message: ${encodeGrpcMessage(message)}`);
  for (const [name, value] of trailers) lines.push(`${name.toLowerCase()}: ${value}`);
  return new TextEncoder().encode(`${lines.join("\r\n")}\r\n`);
}

const BASE64_QUANTUM = 4;

/**
 * Decodes a `grpc-web-text` body that arrives in pieces: base64 in groups of four characters, where a piece may
 * end mid-group and a padded group may end one chunk of the writer's (several padded groups in one body are
 * allowed). Throws a TypeError on characters outside the alphabet.
 */
export class Base64Pieces {
  #carry = "";

  /** The bytes of `text` together with what was left over from before; keeps an incomplete group. */
  push(text: string): Uint8Array {
    const all = this.#carry + text.replace(/\s+/g, "");
    const usable = all.length - (all.length % BASE64_QUANTUM);
    this.#carry = all.slice(usable);
    return decodeBase64Groups(all.slice(0, usable));
  }

  /** Whether characters of an incomplete group are left (a body must not end so). */
  get pending(): boolean {
    return this.#carry.length > 0;
  }
}

function decodeBase64Groups(text: string): Uint8Array {
  if (text === "") return new Uint8Array(0);
  if (!/^[A-Za-z0-9+/=]*$/.test(text)) throw new TypeError("The grpc-web-text body is not base64");
  const parts: Uint8Array[] = [];
  // Padding may end a group in the middle of the body (each writer's chunk is padded on its own).
  for (let start = 0; start < text.length;) {
    let end = text.indexOf("=", start);
    if (end < 0) end = text.length;
    else {
      while (end < text.length && text[end] === "=") end++;
      end = Math.ceil(end / BASE64_QUANTUM) * BASE64_QUANTUM;
    }
    parts.push(Uint8Array.from(atob(text.slice(start, end)), (char) => char.charCodeAt(0)));
    start = end;
  }
  if (parts.length === 1) return parts[0]!;
  const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

/** `bytes` as padded standard base64 (a grpc-web-text response writes each frame so). */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}
