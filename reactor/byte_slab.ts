/**
 * Small byte arrays carved out of shared slabs, as Node's Buffer pool does: the copies a protocol makes of what it
 * reads (bytes that must outlive the connection's reused input buffer) and the messages it encodes then cost no
 * ArrayBuffer of their own. On Deno a small ArrayBuffer costs about a microsecond with its garbage, a measurable
 * share of an RPC call or a registry read. A piece keeps its slab alive while it lives, so only pieces up to 8 KiB
 * come from slabs (1/16 of one); larger ones get their own memory.
 *
 * @module
 */

const SLAB_BYTES = 128 * 1024;
const MAX_SLAB_PIECE = 8 * 1024;

let slab = new Uint8Array(SLAB_BYTES);
let used = 0;

/**
 * `length` bytes of fresh, zeroed memory: a piece of a slab when small (slabs are never reused), else its own.
 *
 * @example
 * ```ts
 * import { allocateBytes } from "./byte_slab.ts";
 *
 * const bytes = allocateBytes(16);
 * if (bytes.length !== 16 || bytes.some((byte) => byte !== 0)) throw new Error("not 16 zeroed bytes");
 * ```
 */
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

/**
 * A copy of `bytes` that does not share memory with them (it may share a slab with other copies).
 *
 * @example
 * ```ts
 * import { copyBytes } from "./byte_slab.ts";
 *
 * const input = new Uint8Array([1, 2, 3]);
 * const copy = copyBytes(input.subarray(1));
 * input.fill(0);
 * if (copy.join() !== "2,3") throw new Error(copy.join());
 * ```
 */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  const copy = allocateBytes(bytes.length);
  copy.set(bytes);
  return copy;
}
