/**
 * Small byte arrays carved out of shared slabs, as Node's Buffer pool does: the payload copies a call needs (its
 * bytes must outlive the connection's reused input buffer) and the encoded messages it sends then cost no
 * ArrayBuffer of their own, which on the hot path is a measurable share of a call. A piece keeps its slab alive
 * while it lives, so only pieces up to 8 KiB come from slabs (1/16 of one); larger ones get their own memory.
 *
 * @module
 */

import protobuf from "protobufjs";

const SLAB_BYTES = 128 * 1024;
const MAX_SLAB_PIECE = 8 * 1024;

let slab = new Uint8Array(SLAB_BYTES);
let used = 0;

/** `length` bytes of fresh, zeroed memory: a piece of a slab when small (slabs are never reused), else its own. */
export function allocateBytes(length: number): Uint8Array {
  if (length > MAX_SLAB_PIECE) return new Uint8Array(length);
  if (used + length > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    used = 0;
  }
  const piece = new Uint8Array(slab.buffer, used, length); // cheaper than subarray, which looks up a species
  used += (length + 7) & ~7; // 8-byte aligned, like allocations
  return piece;
}

/** A copy of `bytes` that does not share memory with them (it may share a slab with other copies). */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  const copy = allocateBytes(bytes.length);
  copy.set(bytes);
  return copy;
}

/**
 * A protobufjs Writer whose `finish()` result comes from the slabs (protobufjs's own Writer allocates per message
 * above Node's 4 KiB pool limit).
 */
class SlabWriter extends protobuf.Writer {
  static override alloc(size: number): Uint8Array {
    return allocateBytes(size);
  }
}

/** Encode `message` with `type` into slab memory. */
export function encodeMessage(type: protobuf.Type, message: protobuf.Message | Record<string, unknown>): Uint8Array {
  return type.encode(message, new SlabWriter()).finish();
}

let scratch = new Uint8Array(16 * 1024);

/** A protobufjs Writer whose `finish()` result is a view into one reused array. */
class ScratchWriter extends protobuf.Writer {
  static override alloc(size: number): Uint8Array {
    if (size > scratch.length) scratch = new Uint8Array(Math.max(size, scratch.length * 2));
    return scratch.subarray(0, size);
  }
}

/**
 * Encode `message` with `type` into memory that the next call reuses: for bytes that are copied at once (a
 * response written to the connection), so they cost no allocation at all.
 */
export function encodeTransient(
  type: protobuf.Type,
  message: protobuf.Message | Record<string, unknown>,
): Uint8Array {
  return type.encode(message, new ScratchWriter()).finish();
}
