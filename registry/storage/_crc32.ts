/**
 * CRC-32 (IEEE 802.3, the polynomial of zip and Ethernet), to detect torn or damaged log records and snapshots.
 *
 * @module
 */

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * The CRC-32 of `bytes[start, end)`; given `previous`, the CRC-32 of what `previous` was computed over followed by
 * these bytes (a long input checked a piece at a time).
 *
 * @example
 * ```ts
 * import { crc32 } from "./_crc32.ts";
 * import assert from "node:assert/strict";
 *
 * const digits = new TextEncoder().encode("123456789");
 * assert.equal(crc32(digits), 0xcbf43926);
 * assert.equal(crc32(digits, 4, 9, crc32(digits, 0, 4)), 0xcbf43926);
 * ```
 */
export function crc32(bytes: Uint8Array, start = 0, end: number = bytes.length, previous = 0): number {
  let c = (previous ^ 0xffffffff) >>> 0;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
