/**
 * Reading a registry data directory strictly: the newest snapshot, then the log records after it, with every
 * check the recovery rules of `txn_log.ts` state. Shared by `TxnLog.open` (which refuses on damage) and the
 * repair command (which plans what to drop); it only reads, through a {@linkcode DirView}, so the repair command
 * can replay its plan on a view before touching anything.
 *
 * @module
 */

import type { Damage, TornTail } from "./damage.ts";
import { DataTree, type DataTreeOptions } from "../server/data_tree.ts";
import { RegistryErrorCode } from "../registry_error.ts";
import { decodeSnapshot } from "./snapshot_file.ts";
import {
  applyRecord,
  checkLogHeader,
  LOG_HEADER_BYTES,
  readRecord,
  RECORD_HEADER_BYTES,
  type RecordRead,
} from "./txn_record.ts";

/** `snapshot.ZXID` (16 hex digits). */
export const SNAPSHOT_NAME: RegExp = /^snapshot\.([0-9a-f]{16})$/;
/** `log.ZXID` (16 hex digits): the zxid of its first record. */
export const LOG_NAME: RegExp = /^log\.([0-9a-f]{16})$/;

/** A zxid as the 16 hex digits of file names. */
export function hex(zxid: bigint): string {
  return zxid.toString(16).padStart(16, "0");
}

/** The zxid a snapshot or log file name carries. */
export function zxidOfName(name: string): bigint {
  return BigInt(`0x${name.slice(name.indexOf(".") + 1)}`);
}

/** The files of a data directory, by name. */
export interface DirView {
  readonly names: readonly string[];
  read(name: string): Promise<Uint8Array>;
}

export type { Damage, TornTail } from "./damage.ts";

/** The newest log file as the scan left it. */
export interface NewestLog {
  readonly name: string;
  readonly start: bigint;
  /** Bytes that stay after a torn tail is cut. */
  readonly goodLength: number;
  /** The zxid its next record would carry. */
  readonly nextZxid: bigint;
  /** Whether it has a file header (format 1 or 2; 0 bytes of it count as none). */
  readonly formatted: boolean;
}

/**
 * A log that is not the newest and lacks its seal (or ends in one cut short), though the next log starts right after
 * its last record: a crash while the log rolled over. Nothing is missing; the start cuts the partial seal and writes
 * the seal.
 */
export interface UnsealedLog {
  readonly file: string;
  /** The end of its last whole record, where the seal goes. */
  readonly offset: number;
  /** Bytes after `offset` (a seal cut short, or zeros) that are cut first. */
  readonly bytesCut: number;
  /** The first zxid of the next log: what the seal names. */
  readonly nextZxid: bigint;
}

/** What a scan found. */
export interface ScanResult {
  readonly tree: DataTree;
  readonly snapshot?: { readonly name: string; readonly zxid: bigint; readonly legacy: boolean };
  /** The last transaction loaded (snapshot or replayed record). */
  readonly lastZxid: bigint;
  readonly replayed: number;
  readonly damage?: Damage;
  readonly tornTail?: TornTail;
  readonly newest?: NewestLog;
  /** Log files, oldest first, that the scan read (every log, up to the damage). */
  readonly chain: readonly string[];
  /** Logs a crash left without their seal, which the start seals (oldest first). */
  readonly unsealed: readonly UnsealedLog[];
  /**
   * Set when `damage` lies only in logs older than the one holding the newest snapshot's next zxid: logs whose
   * every transaction the newest snapshot holds, kept only for a fall-back to the older snapshot. It names the
   * newest of the logs to move aside, with every older one; that drops no transaction a start loads.
   */
  readonly coveredThrough?: string;
  /** For `missing` damage: the log that ends in the seal naming the missing file, and the seal's offset. */
  readonly seal?: { readonly file: string; readonly offset: number };
}

function allZero(bytes: Uint8Array, from: number): boolean {
  for (let i = from; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

// The page cache's unit: a write cut short by a kill stops between pages of the file (the kernel copies a page at a
// time and checks for a fatal signal in between), so what it leaves ends on a page boundary.
const PAGE_BYTES = 4096;

/**
 * A record cut short inside space the log had filled with zeros ahead of its end (see `preallocateBytes`): its
 * bytes up to a page boundary, then zeros to the end of the file. The file's length no longer shows the cut, so the
 * record reads as one whose CRC fails; the zeros starting on a page boundary inside it (inside its header, or
 * before the end its header gives) tell it from a record written whole and damaged since, which is refused.
 */
function writtenInPart(read: RecordRead, bytes: Uint8Array, offset: number): boolean {
  if (read.kind !== "badCrc" && read.kind !== "badHeader") return false;
  let end = bytes.length;
  while (end > offset && bytes[end - 1] === 0) end--;
  if (end === offset || end % PAGE_BYTES !== 0) return false;
  return read.kind === "badCrc" ? end < read.end : end - offset < RECORD_HEADER_BYTES;
}

/**
 * Bytes a crash can leave after the last whole record or seal: a header or body cut short by the end, a record cut
 * short in preallocated space, or zeros.
 */
function isTorn(read: RecordRead, bytes: Uint8Array, offset: number): boolean {
  return read.kind === "shortHeader" || read.kind === "shortBody" || allZero(bytes, offset) ||
    writtenInPart(read, bytes, offset);
}

/**
 * Load the newest snapshot and the records after it, stopping at the first damage. Every log file is read and
 * checked, also those older than the newest snapshot (kept for a fall-back to the older one): their records are
 * checked, not applied.
 */
export async function scanDataDir(view: DirView, options: DataTreeOptions = {}): Promise<ScanResult> {
  const snapshots = view.names.filter((n) => SNAPSHOT_NAME.test(n)).sort();
  const logs = view.names.filter((n) => LOG_NAME.test(n)).sort();
  let tree = new DataTree(options);
  let snapshot: ScanResult["snapshot"];
  const newestSnapshot = snapshots.at(-1);
  if (newestSnapshot !== undefined) {
    const read = decodeSnapshot(await view.read(newestSnapshot), options);
    const named = zxidOfName(newestSnapshot);
    const damage = (offset: number, reason: string): ScanResult => ({
      tree,
      lastZxid: 0n,
      replayed: 0,
      damage: { kind: "snapshot", file: newestSnapshot, offset, zxid: 0n, reason },
      chain: [],
      unsealed: [],
    });
    if (!read.ok) return damage(read.offset, read.reason);
    if (read.zxid !== named) return damage(8, `it holds zxid ${read.zxid}, its name says ${named}`);
    tree = read.tree;
    snapshot = { name: newestSnapshot, zxid: read.zxid, legacy: read.legacy };
  }
  const snapshotZxid = snapshot?.zxid ?? 0n;
  /** The next zxid to apply: records before it are held by the snapshot, checked and skipped. */
  let next = snapshotZxid + 1n;
  let replayed = 0;
  const chain: string[] = [];
  const unsealed: UnsealedLog[] = [];
  const result = (extra: Partial<ScanResult> = {}): ScanResult => ({
    tree,
    snapshot,
    lastZxid: next - 1n,
    replayed,
    chain,
    unsealed,
    ...extra,
  });
  if (logs.length === 0) {
    // Versions before the snapshot header wrote the snapshot first and the next log after it.
    if (snapshot === undefined || snapshot.legacy) return result();
    const reason = `no log file is left, but ${snapshot.name} is only written once the log has gone on in ` +
      `log.${hex(next)}: that whole file (from byte offset 0) is missing, with every transaction after zxid ` +
      `${snapshotZxid} (how many is not recorded)`;
    return result({ damage: { kind: "behindSnapshot", file: `log.${hex(next)}`, offset: 0, zxid: next - 1n, reason } });
  }
  // The log holding zxid `next`: the last one starting at or before it. Older logs only serve a fall-back.
  let first = -1;
  for (let i = 0; i < logs.length; i++) if (zxidOfName(logs[i]!) <= next) first = i;
  if (first < 0) {
    const oldest = zxidOfName(logs[0]!);
    return result({
      damage: {
        kind: "gap",
        file: logs[0]!,
        offset: 0,
        zxid: next - 1n,
        reason: `the first record needed is zxid ${next} (after ${snapshot?.name ?? "no snapshot"}) but the ` +
          `oldest log starts at zxid ${oldest}: the snapshot that covered zxids up to ${oldest - 1n} is missing`,
      },
    });
  }
  /** The zxid the next record in sequence carries, within a file and across files. */
  let expected = zxidOfName(logs[0]!);
  /** How the previous log ended: in a seal, or else where (and whether cut short and how) its last record ended. */
  let ending:
    | { sealed: true; nextZxid: bigint; offset: number }
    | { sealed: false; end: number; length: number; formatted: boolean; mustSeal: boolean; torn?: string }
    | undefined;
  for (let i = 0; i < logs.length; i++) {
    const name = logs[i]!;
    const start = zxidOfName(name);
    const isNewest = i === logs.length - 1;
    // Damage in or before a log older than logs[first] costs no loaded transaction: the newest snapshot holds them.
    const inside = i < first ? { coveredThrough: name } : {};
    chain.push(name);
    if (i > 0 && ending !== undefined) {
      const before = logs[i - 1]!;
      const boundary = i <= first ? { coveredThrough: before } : {};
      if (ending.sealed) {
        if (start > ending.nextZxid) {
          const missing = `log.${hex(ending.nextZxid)}`;
          const reason = `${before} ends (at byte offset ${ending.offset}) in the seal written when the log went on ` +
            `in that file, but the next log file is ${name}, from zxid ${start}: zxids ${ending.nextZxid} to ` +
            `${start - 1n} are lost with the missing file, and ${name} and the logs after it cannot follow`;
          return result({
            damage: { kind: "missing", file: missing, offset: 0, zxid: next - 1n, reason },
            seal: { file: before, offset: ending.offset },
            ...boundary,
          });
        }
        if (start < ending.nextZxid) {
          const reason = `it starts at zxid ${start} but ${before} ends in a seal saying the next log starts at ` +
            `zxid ${ending.nextZxid}`;
          return result({ damage: { kind: "gap", file: name, offset: 0, zxid: next - 1n, reason }, ...boundary });
        }
      } else {
        if (start !== expected && ending.torn !== undefined) {
          // A log cut short that is not the newest: its lost records may have been acknowledged.
          const damage: Damage = {
            kind: "record",
            file: before,
            offset: ending.end,
            zxid: next - 1n,
            reason: ending.torn,
          };
          return result({ damage, ...(i - 1 < first ? { coveredThrough: before } : {}) });
        }
        if (start !== expected) {
          const reason = start > expected
            ? `it starts at zxid ${start} but the log before it ends at zxid ${expected - 1n}: zxids ${expected} to ` +
              `${start - 1n} are missing`
            : `it starts at zxid ${start} but the log before it already holds zxids up to ${expected - 1n}`;
          return result({ damage: { kind: "gap", file: name, offset: 0, zxid: next - 1n, reason }, ...boundary });
        }
        // The next log starts right after the last record: a crash between creating it and sealing this one.
        if (ending.formatted && (ending.mustSeal || ending.length > ending.end)) {
          unsealed.push({ file: before, offset: ending.end, bytesCut: ending.length - ending.end, nextZxid: start });
        }
      }
    }
    const bytes = await view.read(name);
    const header = checkLogHeader(bytes, start);
    if (header === "short") {
      if (!isNewest) {
        const reason = "it is shorter than its file header and is not the newest log";
        return result({ damage: { kind: "header", file: name, offset: 0, zxid: next - 1n, reason }, ...inside });
      }
      if (start < next && !snapshot?.legacy) return behind(name, start, 0);
      const tornTail = bytes.length > 0
        ? { file: name, offset: 0, bytesCut: bytes.length, zeros: allZero(bytes, 0) }
        : undefined;
      return result({ tornTail, newest: { name, start, goodLength: 0, nextZxid: start, formatted: false } });
    }
    if (header !== "ok" && header !== "v1" && header !== "legacy") {
      return result({ damage: { kind: "header", file: name, offset: 0, zxid: next - 1n, reason: header }, ...inside });
    }
    const legacy = header === "legacy";
    let offset = legacy ? 0 : LOG_HEADER_BYTES;
    let tornTail: TornTail | undefined;
    let torn: string | undefined;
    let seal: { nextZxid: bigint; offset: number } | undefined;
    while (offset < bytes.length) {
      const read = readRecord(bytes, offset, legacy);
      if (read.kind === "record") {
        const record = read.record;
        if (record.zxid !== expected) {
          const reason = `the record there has zxid ${record.zxid} where zxid ${expected} comes next`;
          return result({ damage: { kind: "gap", file: name, offset, zxid: next - 1n, reason }, ...inside });
        }
        expected++;
        if (record.zxid === next) {
          try {
            applyRecord(tree, record);
          } catch (error) {
            // Before snapshot format 1, ephemeral nodes were not in snapshots: a change to one may find nothing.
            const code = (error as { code?: number }).code;
            if (!(snapshot?.legacy && code === RegistryErrorCode.NO_NODE)) {
              const reason = `record zxid ${record.zxid} (${record.type}) does not apply: ${(error as Error).message}`;
              return result({ damage: { kind: "apply", file: name, offset, zxid: next - 1n, reason } });
            }
          }
          next++;
          replayed++;
        }
        offset = read.end;
        continue;
      }
      if (read.kind === "seal") {
        let reason: string | undefined;
        if (read.nextZxid !== expected) {
          reason = `its seal names zxid ${read.nextZxid} as the first of the next log, but its last record is ` +
            `zxid ${expected - 1n}`;
        } else if (read.end !== bytes.length) {
          reason = `${bytes.length - read.end} bytes follow the seal that ends it`;
        }
        if (reason !== undefined) {
          return result({ damage: { kind: "record", file: name, offset, zxid: next - 1n, reason }, ...inside });
        }
        seal = { nextZxid: read.nextZxid, offset };
        break;
      }
      // Torn: the end of the newest log cut short (its header CRC vouches for the length), zero-filled, or a record
      // cut short at a page boundary inside the zeros written ahead of the end. A whole record whose body fails its
      // CRC is damage even at the very end: a crash mid-write leaves a short file or zeros from a page boundary on,
      // and cutting such a record could drop an acknowledged write. An older formatted log may end so too when a
      // crash cut its seal short; whether that lost anything shows at the next log's start.
      if (isTorn(read, bytes, offset) && (isNewest || !legacy)) {
        if (isNewest) tornTail = { file: name, offset, bytesCut: bytes.length - offset, zeros: allZero(bytes, offset) };
        else torn = "the record there is cut short by the end of a log that is not the newest";
        break;
      }
      const reason = read.kind === "shortHeader" || read.kind === "shortBody"
        ? "the record there is cut short by the end of a log that is not the newest"
        : read.kind === "badCrc"
        ? "the record there fails its CRC"
        : `the record there is damaged: ${read.reason}`;
      return result({ damage: { kind: "record", file: name, offset, zxid: next - 1n, reason }, ...inside });
    }
    if (isNewest) {
      if (seal !== undefined) {
        const missing = `log.${hex(seal.nextZxid)}`;
        const reason = `${name} ends (at byte offset ${seal.offset}) in the seal written when the log went on in ` +
          `that file: every transaction from zxid ${next} on is lost with it (how many is not recorded)`;
        return result({
          damage: { kind: "missing", file: missing, offset: 0, zxid: next - 1n, reason },
          seal: { file: name, offset: seal.offset },
        });
      }
      if (expected < next && !snapshot?.legacy) return behind(name, expected, offset);
      return result({
        tornTail,
        newest: { name, start, goodLength: offset, nextZxid: expected, formatted: !legacy },
      });
    }
    ending = seal !== undefined
      ? { sealed: true, ...seal }
      : { sealed: false, end: offset, length: bytes.length, formatted: !legacy, mustSeal: header === "ok", torn };
  }
  return result();

  /** The newest log ends (at `offset`, before zxid `ends`) short of the newest snapshot: the logs after are gone. */
  function behind(name: string, ends: bigint, offset: number): ScanResult {
    const reason = `the newest log, ${name}, ends at zxid ${ends - 1n} (byte offset ${offset}), but ` +
      `${snapshot?.name} holds the tree at zxid ${snapshotZxid}, and a snapshot is only written once the log has ` +
      `gone on past it: the log from zxid ${next} on (log.${hex(next)}) is missing, with every transaction after ` +
      `zxid ${snapshotZxid} (how many is not recorded)`;
    return result({ damage: { kind: "behindSnapshot", file: `log.${hex(next)}`, offset: 0, zxid: next - 1n, reason } });
  }
}
