/**
 * Copies of small byte arrays carved out of shared 64 KiB slabs, as Node's Buffer pool does: the payload copies a
 * call needs (its bytes must outlive the connection's reused input buffer) then cost no allocation of their own,
 * which on the hot path is a measurable share of a small call. A copy keeps its slab alive while it lives, so
 * only copies up to 4 KiB come from slabs; larger ones get their own memory.
 *
 * @module
 */

const SLAB_BYTES = 64 * 1024;
const MAX_SLAB_COPY = 4 * 1024;

let slab = new Uint8Array(SLAB_BYTES);
let used = 0;

/** A copy of `bytes` that does not share memory with them (it may share a slab with other copies). */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  const length = bytes.length;
  if (length > MAX_SLAB_COPY) return bytes.slice();
  if (used + length > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    used = 0;
  }
  const copy = slab.subarray(used, used + length);
  copy.set(bytes);
  used += (length + 7) & ~7; // 8-byte aligned, like allocations
  return copy;
}
