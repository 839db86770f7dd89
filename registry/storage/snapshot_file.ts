/**
 * The snapshot file format: a checked header around `DataTree.serialize()`, so a damaged snapshot is refused
 * instead of loaded with nodes missing. Integers are big-endian:
 *
 * | bytes      | snapshot header field                                                 |
 * | ---------- | --------------------------------------------------------------------- |
 * | 4          | magic `"DSNP"` (0x44534E50)                                           |
 * | 1          | format version, 1                                                     |
 * | 3          | reserved, 0                                                           |
 * | 8          | zxid u64: the last transaction the snapshot holds (also its name)     |
 * | 8          | bodyLength u64: bytes after the header; the file has exactly this many |
 * | 4          | bodyCrc u32: CRC-32 of the body                                       |
 * | 4          | headerCrc u32: CRC-32 of the 28 bytes above                           |
 * | bodyLength | body: `DataTree.serialize()` ("DTS1" version 2, see {@linkcode DataTree.serialize}) |
 *
 * Files that begin with "DTS1" instead are snapshots written before this header existed (body versions 1 and 2);
 * they still load, so an existing data directory upgrades in place (an info line says so). Their zxid is the
 * tree's.
 *
 * @module
 */

import { crc32 } from "./_crc32.ts";
import { DataTree, type DataTreeOptions } from "../server/data_tree.ts";

/** Magic of a snapshot header: "DSNP". */
export const SNAPSHOT_MAGIC = 0x44534e50;
/** The snapshot format written. */
export const SNAPSHOT_VERSION = 1;
/** Bytes of a snapshot header. */
export const SNAPSHOT_HEADER_BYTES = 32;
const LEGACY_MAGIC = 0x44545331; // "DTS1": a bare DataTree.serialize()

/** A snapshot file's bytes: the header, then `body` (one copy of `body`). */
export function encodeSnapshot(zxid: bigint, body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(SNAPSHOT_HEADER_BYTES + body.length);
  bytes.set(encodeSnapshotHeader(zxid, body.length, crc32(body)));
  bytes.set(body, SNAPSHOT_HEADER_BYTES);
  return bytes;
}

/** The header of a snapshot file whose body of `bodyLength` bytes has CRC-32 `bodyCrc` (a body written in pieces). */
export function encodeSnapshotHeader(zxid: bigint, bodyLength: number, bodyCrc: number): Uint8Array {
  const bytes = new Uint8Array(SNAPSHOT_HEADER_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, SNAPSHOT_MAGIC);
  view.setUint8(4, SNAPSHOT_VERSION);
  view.setBigUint64(8, zxid);
  view.setBigUint64(16, BigInt(bodyLength));
  view.setUint32(24, bodyCrc);
  view.setUint32(28, crc32(bytes, 0, 28));
  return bytes;
}

/** What {@linkcode decodeSnapshot} found. */
export type SnapshotRead =
  | { ok: true; tree: DataTree; zxid: bigint; legacy: boolean }
  /** Damage at byte `offset`, said in `reason`. */
  | { ok: false; offset: number; reason: string };

/** Check and load a snapshot file's bytes. Never throws for damaged input. */
export function decodeSnapshot(bytes: Uint8Array, options: DataTreeOptions = {}): SnapshotRead {
  if (bytes.length < SNAPSHOT_HEADER_BYTES) {
    return { ok: false, offset: bytes.length, reason: `it is ${bytes.length} bytes, shorter than its header` };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0) === LEGACY_MAGIC) {
    try {
      const tree = DataTree.deserialize(bytes, options);
      return { ok: true, tree, zxid: tree.lastZxid, legacy: true };
    } catch (error) {
      return { ok: false, offset: 0, reason: `its body does not load: ${(error as Error).message}` };
    }
  }
  if (view.getUint32(0) !== SNAPSHOT_MAGIC) return { ok: false, offset: 0, reason: "its magic number is wrong" };
  if (view.getUint32(28) !== crc32(bytes, 0, 28)) return { ok: false, offset: 0, reason: "its header fails its CRC" };
  const version = view.getUint8(4);
  if (version !== SNAPSHOT_VERSION) return { ok: false, offset: 4, reason: `its format version ${version} is unknown` };
  const zxid = view.getBigUint64(8);
  const bodyLength = view.getBigUint64(16);
  const actual = BigInt(bytes.length - SNAPSHOT_HEADER_BYTES);
  if (bodyLength !== actual) {
    return {
      ok: false,
      offset: Number(bodyLength < actual ? BigInt(SNAPSHOT_HEADER_BYTES) + bodyLength : BigInt(bytes.length)),
      reason: `its header says the body is ${bodyLength} bytes, the file holds ${actual}`,
    };
  }
  if (view.getUint32(24) !== crc32(bytes, SNAPSHOT_HEADER_BYTES)) {
    return { ok: false, offset: SNAPSHOT_HEADER_BYTES, reason: "its body fails its CRC" };
  }
  let tree: DataTree;
  try {
    tree = DataTree.deserialize(bytes.subarray(SNAPSHOT_HEADER_BYTES), options);
  } catch (error) {
    return { ok: false, offset: SNAPSHOT_HEADER_BYTES, reason: `its body does not load: ${(error as Error).message}` };
  }
  if (tree.lastZxid > zxid) {
    return { ok: false, offset: 8, reason: `its tree holds zxid ${tree.lastZxid}, beyond its header's ${zxid}` };
  }
  return { ok: true, tree, zxid, legacy: false };
}
