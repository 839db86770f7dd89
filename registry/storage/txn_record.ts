/**
 * The transaction log's record codec and the one function that applies a record to the tree (replay and live
 * writes both use {@linkcode applyRecord}).
 *
 * A log file is a file header followed by records, and, once the log has rolled over to the next file, a seal;
 * integers are big-endian, strings UTF-8:
 *
 * | bytes | log file header field                                      |
 * | ----- | ---------------------------------------------------------- |
 * | 4     | magic `"DWL1"` (0x44574C31)                                |
 * | 1     | format version, 2 (1: written before seals, still read)    |
 * | 3     | reserved, 0                                                |
 * | 8     | startZxid u64: the zxid of the first record (also the name) |
 * | 4     | headerCrc u32: CRC-32 of the 16 bytes above                |
 *
 * | bytes  | record field                                                  |
 * | ------ | ------------------------------------------------------------- |
 * | 4      | bodyLength u32 (at least 17)                                  |
 * | 4      | bodyCrc u32: CRC-32 of the body                               |
 * | 4      | headerCrc u32: CRC-32 of the 8 bytes above                    |
 * | length | body: type u8, zxid u64, timeMs i64, then the type's fields   |
 *
 * | type             | fields after the common ones                                         |
 * | ---------------- | -------------------------------------------------------------------- |
 * | 1 create         | path, data, nodeType u8, sessionId u64                               |
 * | 2 set            | path, data                                                           |
 * | 3 delete         | path                                                                 |
 * | 4 closeSession   | sessionId u64                                                        |
 * | 5 createSession  | sessionId u64, secret, authorized u8, token                          |
 * | 6 seal           | none; its zxid is the first of the next log file (`log.ZXID`): the last thing in a file |
 *
 * (path, data, secret and token are a u32 length then the bytes.) The header CRC tells a damaged length from a
 * write cut short by a crash: a record whose header checks but whose body runs past the end of the file is torn,
 * while a header that fails its check is damage.
 *
 * The seal (29 bytes, body length 17) is not a transaction: it records, in the file that survives, that the log
 * went on in a next file, so deleting that file is detected. It is written and fsynced after the next file exists
 * (header fsynced, directory fsynced) and before any record goes there; a format-2 file that is not the newest must
 * end in one, unless the next file starts right after its last record (a crash between the two steps: the start
 * then writes the seal). Format-1 files were written without seals and may lack one. Log files without a file
 * header (written before format 1) hold records with an 8-byte header (bodyLength, bodyCrc) and are still read,
 * never appended to, never sealed.
 *
 * @module
 */

import { crc32 } from "./_crc32.ts";
import type { DataTree, NodeType } from "../server/data_tree.ts";

/** One logged transaction. Sequential names are already resolved in `path`. */
export type TxnRecord =
  | {
    type: "create";
    zxid: bigint;
    timeMs: number;
    path: string;
    data: Uint8Array;
    nodeType: NodeType;
    sessionId: bigint;
  }
  | { type: "set"; zxid: bigint; timeMs: number; path: string; data: Uint8Array }
  | { type: "delete"; zxid: bigint; timeMs: number; path: string }
  | { type: "closeSession"; zxid: bigint; timeMs: number; sessionId: bigint }
  | {
    type: "createSession";
    zxid: bigint;
    timeMs: number;
    sessionId: bigint;
    secret: Uint8Array;
    authorized: boolean;
    token: string;
  };

const TYPE_CODES = { create: 1, set: 2, delete: 3, closeSession: 4, createSession: 5 } as const;

/** Magic of a log file header: "DWL1". */
export const LOG_MAGIC = 0x44574c31;
/** The log file format written: 2, a non-newest file ends in a seal (1: no seals). */
export const LOG_VERSION = 2;
/** Bytes of a log file header. */
export const LOG_HEADER_BYTES = 20;
/** Bytes of a record header. */
export const RECORD_HEADER_BYTES = 12;
/** Bytes of a record header in log files without a file header. */
export const LEGACY_RECORD_HEADER_BYTES = 8;
/** The smallest body: type, zxid, timeMs. */
const MIN_BODY_BYTES = 17;
/** The record type of a seal. */
const SEAL_TYPE = 6;
/** Bytes of a seal: a record header and a 17-byte body. */
export const SEAL_BYTES: number = RECORD_HEADER_BYTES + MIN_BODY_BYTES;

const encoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF is part of the text (a token, say), not a mark to drop on replay.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The header of a log file whose first record is `startZxid` (`version` 1 only to test reading old files). */
export function encodeLogHeader(startZxid: bigint, version: number = LOG_VERSION): Uint8Array {
  const bytes = new Uint8Array(LOG_HEADER_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, LOG_MAGIC);
  view.setUint8(4, version);
  view.setBigUint64(8, startZxid);
  view.setUint32(16, crc32(bytes, 0, 16));
  return bytes;
}

/**
 * Check a log file's header: `"ok"` (format 2), `"v1"` (format 1, written before seals), `"legacy"` (no header:
 * records from offset 0), `"short"` (fewer bytes than a header, all of them a prefix a crash could leave), or a
 * message saying what is wrong.
 */
export function checkLogHeader(bytes: Uint8Array, startZxid: bigint): "ok" | "v1" | "legacy" | "short" | string {
  if (bytes.length < LOG_HEADER_BYTES) {
    const prefixOf = (expected: Uint8Array) => bytes.every((b, i) => b === expected[i] || b === 0);
    return prefixOf(encodeLogHeader(startZxid)) || prefixOf(encodeLogHeader(startZxid, 1))
      ? "short"
      : "the file header is cut short and damaged";
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, LOG_HEADER_BYTES);
  if (view.getUint32(0) !== LOG_MAGIC) {
    // Before format 1 a log began with a record. Only a whole one counts: damage to a header must not pass for it.
    return readRecord(bytes, 0, true).kind === "record" ? "legacy" : "the file header has a bad magic number";
  }
  if (view.getUint32(16) !== crc32(bytes, 0, 16)) return "the file header fails its CRC";
  const version = view.getUint8(4);
  if (version !== LOG_VERSION && version !== 1) return `the file header has unknown format version ${version}`;
  const zxid = view.getBigUint64(8);
  if (zxid !== startZxid) return `the file header says the first zxid is ${zxid}, the name says ${startZxid}`;
  return version === 1 ? "v1" : "ok";
}

/** The seal that ends a log file whose records went on in `log.NEXTZXID` (see the module doc). */
export function encodeSeal(nextZxid: bigint, timeMs = 0): Uint8Array {
  const bytes = new Uint8Array(SEAL_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MIN_BODY_BYTES);
  view.setUint8(RECORD_HEADER_BYTES, SEAL_TYPE);
  view.setBigUint64(RECORD_HEADER_BYTES + 1, nextZxid);
  view.setBigInt64(RECORD_HEADER_BYTES + 9, BigInt(timeMs));
  view.setUint32(4, crc32(bytes, RECORD_HEADER_BYTES));
  view.setUint32(8, crc32(bytes, 0, 8));
  return bytes;
}

/** The UTF-8 length of `text` (a lone surrogate counts the 3 bytes of the U+FFFD it is written as). */
function utf8Length(text: string): number {
  let length = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) length += 1;
    else if (c >= 0xd800 && c < 0xdc00 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      length += 2; // a pair: 4 bytes for 2 units
      i++;
    } else length += 2;
  }
  return length;
}

/** The body of `record` in bytes, given the UTF-8 length of its text field (path or token). */
function bodyLength(record: TxnRecord, textBytes: number): number {
  switch (record.type) {
    case "create":
      return MIN_BODY_BYTES + 4 + textBytes + 4 + record.data.length + 1 + 8;
    case "set":
      return MIN_BODY_BYTES + 4 + textBytes + 4 + record.data.length;
    case "delete":
      return MIN_BODY_BYTES + 4 + textBytes;
    case "closeSession":
      return MIN_BODY_BYTES + 8;
    case "createSession":
      return MIN_BODY_BYTES + 8 + 4 + record.secret.length + 1 + 4 + textBytes;
  }
}

function textOf(record: TxnRecord): string {
  return record.type === "createSession" ? record.token : record.type === "closeSession" ? "" : record.path;
}

/** The bytes `record` takes encoded, its header included. */
export function recordLength(record: TxnRecord): number {
  return RECORD_HEADER_BYTES + bodyLength(record, utf8Length(textOf(record)));
}

/**
 * Write `record` with its header into `target` at `offset` (`view` over the same memory); `target` must have
 * {@linkcode recordLength} bytes of room there. Returns the bytes written. Writing in place lets a log gather a
 * batch's records in one array, with no array per record (each costs about a microsecond on Deno).
 */
export function writeRecord(record: TxnRecord, target: Uint8Array, view: DataView, offset: number): number {
  const text = textOf(record);
  const textBytes = utf8Length(text);
  const body = bodyLength(record, textBytes);
  const putBytes = (at: number, field: Uint8Array) => {
    view.setUint32(at, field.length);
    target.set(field, at + 4);
    return at + 4 + field.length;
  };
  const putText = (at: number) => {
    view.setUint32(at, textBytes);
    if (textBytes === text.length) {
      for (let i = 0; i < text.length; i++) target[at + 4 + i] = text.charCodeAt(i); // ASCII
    } else {
      encoder.encodeInto(text, target.subarray(at + 4, at + 4 + textBytes));
    }
    return at + 4 + textBytes;
  };
  let at = offset + RECORD_HEADER_BYTES;
  view.setUint8(at, TYPE_CODES[record.type]);
  view.setBigUint64(at + 1, record.zxid);
  // A time is a safe integer of milliseconds: its two halves, with no BigInt made for it.
  const high = Math.floor(record.timeMs / 2 ** 32);
  view.setInt32(at + 9, high);
  view.setUint32(at + 13, record.timeMs - high * 2 ** 32);
  at += MIN_BODY_BYTES;
  switch (record.type) {
    case "create":
      at = putBytes(putText(at), record.data);
      view.setUint8(at, record.nodeType);
      view.setBigUint64(at + 1, record.sessionId);
      break;
    case "set":
      putBytes(putText(at), record.data);
      break;
    case "delete":
      putText(at);
      break;
    case "closeSession":
      view.setBigUint64(at, record.sessionId);
      break;
    case "createSession":
      view.setBigUint64(at, record.sessionId);
      at = putBytes(at + 8, record.secret);
      view.setUint8(at, record.authorized ? 1 : 0);
      putText(at + 1);
      break;
  }
  view.setUint32(offset, body);
  view.setUint32(offset + 4, crc32(target, offset + RECORD_HEADER_BYTES, offset + RECORD_HEADER_BYTES + body));
  view.setUint32(offset + 8, crc32(target, offset, offset + 8));
  return RECORD_HEADER_BYTES + body;
}

/** Encode a record with its header, in one allocation. */
export function encodeRecord(record: TxnRecord): Uint8Array {
  const bytes = new Uint8Array(recordLength(record));
  writeRecord(record, bytes, new DataView(bytes.buffer), 0);
  return bytes;
}

/** What {@linkcode readRecord} found at an offset. */
export type RecordRead =
  /** A whole record that checks, ending at `end`. */
  | { kind: "record"; record: TxnRecord; end: number }
  /** A seal that checks, ending at `end`: the log goes on in the file whose first zxid is `nextZxid`. */
  | { kind: "seal"; nextZxid: bigint; end: number }
  /** Fewer bytes left than a record header. */
  | { kind: "shortHeader" }
  /** The header fails its check (or, without a header CRC, its length is impossible). */
  | { kind: "badHeader"; reason: string }
  /** The header checks but the body runs past the end of the bytes. */
  | { kind: "shortBody"; end: number }
  /** The body fails its CRC; the record would end at `end`. */
  | { kind: "badCrc"; end: number }
  /** The body checks but cannot be decoded (unknown type, fields overrun the body). */
  | { kind: "badBody"; end: number; reason: string };

/** Read the record (or seal) at `offset` of a log file's bytes; `legacy` for files without a file header. */
export function readRecord(bytes: Uint8Array, offset: number, legacy = false): RecordRead {
  const headerBytes = legacy ? LEGACY_RECORD_HEADER_BYTES : RECORD_HEADER_BYTES;
  if (bytes.length - offset < headerBytes) return { kind: "shortHeader" };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(offset);
  if (!legacy && view.getUint32(offset + 8) !== crc32(bytes, offset, offset + 8)) {
    return { kind: "badHeader", reason: "its header fails its CRC" };
  }
  if (length < MIN_BODY_BYTES) return { kind: "badHeader", reason: `its length ${length} is below ${MIN_BODY_BYTES}` };
  const start = offset + headerBytes;
  const end = start + length;
  if (end > bytes.length) return { kind: "shortBody", end };
  if (view.getUint32(offset + 4) !== crc32(bytes, start, end)) return { kind: "badCrc", end };
  if (!legacy && view.getUint8(start) === SEAL_TYPE) {
    if (length !== MIN_BODY_BYTES) return { kind: "badBody", end, reason: `a seal of ${length} bytes, not 17` };
    return { kind: "seal", nextZxid: view.getBigUint64(start + 1), end };
  }
  try {
    return { kind: "record", record: decodeBody(view, start, end), end };
  } catch (error) {
    return { kind: "badBody", end, reason: error instanceof Error ? error.message : String(error) };
  }
}

function decodeBody(view: DataView, start: number, end: number): TxnRecord {
  let at = start;
  const need = (n: number) => {
    if (at + n > end) throw new Error(`its fields run ${at + n - end} bytes past its body`);
    const here = at;
    at += n;
    return here;
  };
  const u8 = () => view.getUint8(need(1));
  const u64 = () => view.getBigUint64(need(8));
  const bytes = () => {
    const length = view.getUint32(need(4));
    const from = need(length);
    return new Uint8Array(view.buffer, view.byteOffset + from, length).slice();
  };
  const text = () => decoder.decode(bytes());
  const type = u8();
  const zxid = u64();
  const timeMs = Number(view.getBigInt64(need(8)));
  let record: TxnRecord;
  switch (type) {
    case 1: {
      const path = text();
      const data = bytes();
      const nodeType = u8() as NodeType;
      record = { type: "create", zxid, timeMs, path, data, nodeType, sessionId: u64() };
      break;
    }
    case 2: {
      const path = text();
      record = { type: "set", zxid, timeMs, path, data: bytes() };
      break;
    }
    case 3:
      record = { type: "delete", zxid, timeMs, path: text() };
      break;
    case 4:
      record = { type: "closeSession", zxid, timeMs, sessionId: u64() };
      break;
    case 5: {
      const sessionId = u64();
      const secret = bytes();
      const authorized = u8() === 1;
      record = { type: "createSession", zxid, timeMs, sessionId, secret, authorized, token: text() };
      break;
    }
    default:
      throw new Error(`its type ${type} is unknown`);
  }
  if (at !== end) throw new Error(`${end - at} bytes follow its last field`);
  return record;
}

/**
 * Apply a record to a tree: the one code path of replay and of live writes (the server calls it once the record is
 * durable). Throws the tree's `RegistryError` when the record does not apply.
 */
export function applyRecord(tree: DataTree, record: TxnRecord): void {
  switch (record.type) {
    case "create":
      tree.create(
        record.path,
        record.data,
        { nodeType: record.nodeType, sessionId: record.sessionId },
        record.zxid,
        record.timeMs,
      );
      break;
    case "set":
      tree.setData(record.path, record.data, -1, record.zxid, record.timeMs);
      break;
    case "delete":
      tree.delete(record.path, -1, record.zxid);
      break;
    case "closeSession":
      tree.killSession(record.sessionId, record.zxid);
      break;
    case "createSession":
      tree.createSession(
        record.sessionId,
        { secret: record.secret, authorized: record.authorized, token: record.token },
        record.zxid,
      );
      break;
  }
}
