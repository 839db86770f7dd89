/**
 * Where one seed request ends. The seed's TCP protocol has no framing: its server takes whatever one read returns
 * as one `WrappedRequest`, which breaks when TCP splits a request or joins two. This server finds the end from the
 * message itself instead, which works because a `WrappedRequest` has only two fields and every protobuf encoder
 * writes them in field-number order (the C++ seed client among them):
 *
 * ```text
 * 08 <varint requestType>                                    field 1, always first (the seed never sends type 0)
 * requestType 1 (Connection): the request ends here           (the seed sends exactly 08 01)
 * requestType 2 (Service):    12 <varint length> <length bytes: ServiceRequest>   field 2 ends the request
 * ```
 *
 * Field 2 is length-delimited, so a request split anywhere is recognised as incomplete (wait for more) and two
 * requests joined are cut apart; a request that cannot be one of these shapes is refused at once, before its
 * bytes are held, and a length past the limit is refused before anything is allocated.
 *
 * @module
 */

import { readVarint } from "./_proto_wire.ts";
import { SeedMessageType } from "./seed_messages.ts";

/** Why bytes cannot start a seed request (each a counter of the listener). */
export type SeedRequestRefusal = "garbage" | "too_large" | "illegal_type";

/** The outcome of {@linkcode seedRequestBoundary}. */
export type SeedRequestBoundary =
  /** A whole request of `length` bytes starts the buffer. */
  | { kind: "whole"; length: number; requestType: number }
  /** The buffer holds the start of a request: wait for more bytes. */
  | { kind: "partial" }
  /** The buffer cannot start a seed request. */
  | { kind: "refused"; reason: SeedRequestRefusal; detail: string };

/**
 * Find the end of the request at the start of `bytes`, a request being at most `maxBytes` long.
 *
 * @example
 * ```ts
 * import { seedRequestBoundary } from "./seed_request_boundary.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(seedRequestBoundary(Uint8Array.of(0x08, 0x01, 0x08), 1024), {
 *   kind: "whole",
 *   length: 2,
 *   requestType: 1,
 * });
 * assert.equal(seedRequestBoundary(Uint8Array.of(0x08, 0x02, 0x12), 1024).kind, "partial");
 * assert.equal(seedRequestBoundary(Uint8Array.of(0xff, 0xff), 1024).kind, "refused");
 * ```
 */
export function seedRequestBoundary(bytes: Uint8Array, maxBytes: number): SeedRequestBoundary {
  if (bytes.length === 0) return { kind: "partial" };
  if (bytes[0] !== 0x08) {
    return { kind: "refused", reason: "garbage", detail: `a request starts with 08, not ${hex(bytes[0]!)}` };
  }
  let type;
  try {
    type = readVarint(bytes, 1);
  } catch {
    return { kind: "refused", reason: "garbage", detail: "the request type is not a varint" };
  }
  if (type === undefined) return { kind: "partial" };
  const requestType = Number(type.value & 0xffff_ffffn);
  if (type.value === BigInt(SeedMessageType.CONNECTION)) return { kind: "whole", length: type.next, requestType };
  if (type.value !== BigInt(SeedMessageType.SERVICE)) {
    return { kind: "refused", reason: "illegal_type", detail: `request type ${type.value} is not 1 or 2` };
  }
  if (bytes.length <= type.next) return { kind: "partial" };
  if (bytes[type.next] !== 0x12) {
    return { kind: "refused", reason: "garbage", detail: "a service request has no parameters (field 2)" };
  }
  let length;
  try {
    length = readVarint(bytes, type.next + 1);
  } catch {
    return { kind: "refused", reason: "garbage", detail: "the parameters' length is not a varint" };
  }
  if (length === undefined) return { kind: "partial" };
  if (length.value > BigInt(maxBytes - length.next)) {
    return {
      kind: "refused",
      reason: "too_large",
      detail: `a request of ${length.value + BigInt(length.next)} bytes passes the limit of ${maxBytes}`,
    };
  }
  const total = length.next + Number(length.value);
  return bytes.length < total ? { kind: "partial" } : { kind: "whole", length: total, requestType };
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}
