/**
 * The C++ seed's RPC frame (`../shared/seed/seed-spec.md` §3.4), both directions, with the limits the seed lacks.
 * One TCP connection carries one call.
 *
 * Request, as the seed's DwtRpcChannel writes it in one `write`:
 *
 * ```text
 * +-----------------------------+---------------------------+-------------------------------+
 * | header_len: uint32 LE (4 B) | RpcHeader (header_len B)  | request message (args_size B) |
 * +-----------------------------+---------------------------+-------------------------------+
 *
 * RpcHeader (proto3, package dwt):  service_name: bytes = 1   (tag 0x0a) the SIMPLE name: `UserServiceRpc`
 *                                   method_name:  bytes = 2   (tag 0x12) `Login`
 *                                   args_size:    uint32 = 3  (tag 0x18) bytes of the request message
 * ```
 *
 * `header_len` is the seed's raw host-order `memcpy`, little-endian on the x86 machines it runs on. The answer is
 * the raw serialized response message with no length, no header and no status; the provider half-closes after it,
 * which is the only end-of-message mark. There is no error frame.
 *
 * Limits the seed has not (its provider crashes on 1–3 bytes and on lying lengths, §4.3.5): the header is at most
 * {@linkcode MAX_SEED_HEADER_BYTES}, checked as soon as its 4 length bytes arrive and before anything is allocated;
 * `args_size` at most the provider's `maxFrameBytes`, checked as soon as the header parses. The header parses as
 * protobuf does (fields in any order, the last of a repeated one wins, unknown fields skipped) and names must be
 * UTF-8.
 *
 * @module
 */

/** Bytes of the length before the header. */
export const SEED_LENGTH_BYTES = 4;

/**
 * The largest RpcHeader accepted, in bytes: two names and a varint; the seed's own are under 100 bytes. A larger
 * `header_len` is refused the moment it arrives (0xFFFFFFFF included).
 */
export const MAX_SEED_HEADER_BYTES = 4096;

/** What the seed's caller reads of an answer: one `read` into a 1,024-byte buffer (seed-spec §3.6). */
export const SEED_CALLER_READ_BYTES = 1024;

/**
 * The decoded RpcHeader.
 *
 * @example
 * ```ts
 * import type { SeedHeader } from "./seed_frame.ts";
 *
 * const describe = (header: SeedHeader) => `${header.service}.${header.method}, ${header.argsSize} bytes of args`;
 * ```
 */
export interface SeedHeader {
  /** The simple service name (`UserServiceRpc`, no package). */
  readonly service: string;
  /** The method name. */
  readonly method: string;
  /** Bytes of the request message after the header. */
  readonly argsSize: number;
}

/**
 * How far the bytes at hand go towards one request frame: `partial` (wait for `needBytes` in all), `whole`
 * (header and args: the frame is `frameBytes` long), or `refused` (`reason` says why; close the connection).
 *
 * @example
 * ```ts
 * import type { SeedFrameProgress } from "./seed_frame.ts";
 *
 * const done = (progress: SeedFrameProgress) => progress.state !== "partial";
 * ```
 */
export type SeedFrameProgress =
  | { readonly state: "partial"; readonly needBytes: number }
  | { readonly state: "whole"; readonly header: SeedHeader; readonly args: Uint8Array; readonly frameBytes: number }
  | { readonly state: "refused"; readonly reason: string };

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/**
 * Read one request frame from the start of `bytes` (a connection's input so far), checking every length before
 * trusting it. `args` is a view into `bytes`.
 *
 * @example
 * ```ts
 * import { encodeSeedRequest, readSeedFrame } from "./seed_frame.ts";
 * import assert from "node:assert/strict";
 *
 * const frame = encodeSeedRequest("UserServiceRpc", "Login", new Uint8Array([0x0a, 0x03, 0x64, 0x77, 0x74]));
 * assert.equal(readSeedFrame(frame.subarray(0, 3), 1024).state, "partial");
 * const whole = readSeedFrame(frame, 1024);
 * assert.ok(whole.state === "whole" && whole.header.method === "Login" && whole.args.length === 5);
 * ```
 */
export function readSeedFrame(bytes: Uint8Array, maxArgsBytes: number): SeedFrameProgress {
  if (bytes.length < SEED_LENGTH_BYTES) return { state: "partial", needBytes: SEED_LENGTH_BYTES };
  const headerBytes = new DataView(bytes.buffer, bytes.byteOffset, SEED_LENGTH_BYTES).getUint32(0, true);
  if (headerBytes > MAX_SEED_HEADER_BYTES) {
    return { state: "refused", reason: `a header length of ${headerBytes} bytes (at most ${MAX_SEED_HEADER_BYTES})` };
  }
  const headerEnd = SEED_LENGTH_BYTES + headerBytes;
  if (bytes.length < headerEnd) return { state: "partial", needBytes: headerEnd };
  let header: SeedHeader;
  try {
    header = decodeSeedHeader(bytes.subarray(SEED_LENGTH_BYTES, headerEnd));
  } catch (error) {
    return { state: "refused", reason: `a header that does not parse (${(error as Error).message})` };
  }
  if (header.argsSize > maxArgsBytes) {
    return { state: "refused", reason: `args of ${header.argsSize} bytes (at most ${maxArgsBytes})` };
  }
  const frameBytes = headerEnd + header.argsSize;
  if (bytes.length < frameBytes) return { state: "partial", needBytes: frameBytes };
  return { state: "whole", header, args: bytes.subarray(headerEnd, frameBytes), frameBytes };
}

/**
 * Decode an RpcHeader; a RangeError when it is not one (truncated, a wire type it cannot have, names not UTF-8, a
 * field of the wrong wire type).
 *
 * @example
 * ```ts
 * import { decodeSeedHeader, encodeSeedHeader } from "./seed_frame.ts";
 * import assert from "node:assert/strict";
 *
 * const header = { service: "UserServiceRpc", method: "Register", argsSize: 24 };
 * assert.deepEqual(decodeSeedHeader(encodeSeedHeader(header)), header);
 * ```
 */
export function decodeSeedHeader(bytes: Uint8Array): SeedHeader {
  let service = "";
  let method = "";
  let argsSize = 0;
  let at = 0;
  const varint = (): number => {
    // Up to 10 bytes; a uint32 field keeps the low 32 bits of a longer varint, as protobuf does.
    let value = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      if (at >= bytes.length) throw new RangeError("a varint runs past the end");
      const byte = bytes[at++]!;
      if (shift < 32) value = (value | ((byte & 0x7f) << shift)) >>> 0;
      if ((byte & 0x80) === 0) return value;
    }
    throw new RangeError("a varint longer than 10 bytes");
  };
  const lengthDelimited = (): Uint8Array => {
    const length = varint();
    if (length > bytes.length - at) throw new RangeError(`a field of ${length} bytes runs past the end`);
    const value = bytes.subarray(at, at + length);
    at += length;
    return value;
  };
  while (at < bytes.length) {
    const key = varint();
    const field = key >>> 3;
    const wireType = key & 7;
    if (field === 0) throw new RangeError("field number 0");
    if ((field === 1 || field === 2) && wireType !== 2) {
      throw new RangeError(`field ${field} with wire type ${wireType}`);
    }
    if (field === 3 && wireType !== 0) throw new RangeError(`field 3 with wire type ${wireType}`);
    if (wireType === 0) {
      const value = varint();
      if (field === 3) argsSize = value;
    } else if (wireType === 2) {
      const value = lengthDelimited();
      if (field === 1) service = utf8.decode(value);
      else if (field === 2) method = utf8.decode(value);
    } else if (wireType === 1 || wireType === 5) {
      const width = wireType === 1 ? 8 : 4;
      if (at + width > bytes.length) throw new RangeError("a fixed-width field runs past the end");
      at += width;
    } else {
      throw new RangeError(`wire type ${wireType}`);
    }
  }
  return { service, method, argsSize };
}

/**
 * Encode an RpcHeader as protobuf does (proto3: an empty name or a zero size is left out).
 *
 * @example
 * ```ts
 * import { encodeSeedHeader } from "./seed_frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([...encodeSeedHeader({ service: "S", method: "M", argsSize: 1 })], [10, 1, 83, 18, 1, 77, 24, 1]);
 * ```
 */
export function encodeSeedHeader(header: SeedHeader): Uint8Array {
  const service = encoder.encode(header.service);
  const method = encoder.encode(header.method);
  const out: number[] = [];
  const varint = (value: number) => {
    for (let rest = value >>> 0;; rest >>>= 7) {
      if (rest < 0x80) return void out.push(rest);
      out.push((rest & 0x7f) | 0x80);
    }
  };
  const bytesField = (tag: number, value: Uint8Array) => {
    if (value.length === 0) return;
    out.push(tag);
    varint(value.length);
    for (const byte of value) out.push(byte);
  };
  bytesField(0x0a, service);
  bytesField(0x12, method);
  if (header.argsSize !== 0) {
    out.push(0x18);
    varint(header.argsSize);
  }
  return Uint8Array.from(out);
}

/**
 * A whole request frame, as the seed's DwtRpcChannel builds it: the simple service name, the method, the serialized
 * request. A RangeError when the request is larger than a uint32 can say.
 *
 * @example
 * ```ts
 * import { encodeSeedRequest } from "./seed_frame.ts";
 * import assert from "node:assert/strict";
 *
 * const frame = encodeSeedRequest("S", "M", new Uint8Array([0x08, 0x01]));
 * assert.deepEqual([...frame], [8, 0, 0, 0, 10, 1, 83, 18, 1, 77, 24, 2, 8, 1]);
 * ```
 */
export function encodeSeedRequest(service: string, method: string, args: Uint8Array): Uint8Array {
  if (args.length > 0xffff_ffff) throw new RangeError(`Cannot frame args of ${args.length} bytes in a uint32`);
  const header = encodeSeedHeader({ service, method, argsSize: args.length });
  const frame = new Uint8Array(SEED_LENGTH_BYTES + header.length + args.length);
  new DataView(frame.buffer).setUint32(0, header.length, true);
  frame.set(header, SEED_LENGTH_BYTES);
  frame.set(args, SEED_LENGTH_BYTES + header.length);
  return frame;
}

/** The seed's name of a service: the simple name, its package dropped (`dwt.UserServiceRpc` → `UserServiceRpc`). */
export function seedServiceName(fullName: string): string {
  return fullName.slice(fullName.lastIndexOf(".") + 1);
}
