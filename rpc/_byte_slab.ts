/**
 * protobufjs Writers over the reactor's byte slabs (reactor/byte_slab.ts): encoded messages that cost no
 * ArrayBuffer of their own, and encodings into one reused array for bytes that are copied at once.
 *
 * @module
 */

import protobuf from "protobufjs";
import { allocateBytes } from "../reactor/byte_slab.ts";

export { copyBytes } from "../reactor/byte_slab.ts";

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
