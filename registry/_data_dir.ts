/**
 * Reading a registry data directory strictly: the newest snapshot, then the log records after it, with every
 * check the recovery rules of `txn_log.ts` state. Shared by `TxnLog.open` (which refuses on damage) and the
 * repair command (which plans what to drop); it only reads, through a {@linkcode DirView}, so the repair command
 * can replay its plan on a view before touching anything.
 *
 * @module
 */

import type { Damage, TornTail } from "./damage.ts";
import { DataTree, type DataTreeOptions } from "./data_tree.ts";
import { RegistryErrorCode } from "./registry_error.ts";
import { decodeSnapshot } from "./snapshot_file.ts";
import { applyRecord, checkLogHeader, LOG_HEADER_BYTES, readRecord } from "./txn_record.ts";

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
  /** Whether it has a format-1 header (0 bytes of it count as none). */
  readonly formatted: boolean;
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
  /** Log files, oldest first, that the scan read (the chain from the snapshot on). */
  readonly chain: readonly string[];
}

function allZero(bytes: Uint8Array, from: number): boolean {
  for (let i = from; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** Load the newest snapshot and the records after it, stopping at the first damage. */
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
    });
    if (!read.ok) return damage(read.offset, read.reason);
    if (read.zxid !== named) return damage(8, `it holds zxid ${read.zxid}, its name says ${named}`);
    tree = read.tree;
    snapshot = { name: newestSnapshot, zxid: read.zxid, legacy: read.legacy };
  }
  const snapshotZxid = snapshot?.zxid ?? 0n;
  let next = snapshotZxid + 1n;
  let replayed = 0;
  const chain: string[] = [];
  const result = (extra: Partial<ScanResult> = {}): ScanResult => ({
    tree,
    snapshot,
    lastZxid: next - 1n,
    replayed,
    chain,
    ...extra,
  });
  let first = -1;
  for (let i = 0; i < logs.length; i++) if (zxidOfName(logs[i]!) <= next) first = i;
  if (first < 0) {
    if (logs.length === 0) return result();
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
  for (let i = first; i < logs.length; i++) {
    const name = logs[i]!;
    const start = zxidOfName(name);
    const isNewest = i === logs.length - 1;
    chain.push(name);
    if (i > first && start !== next) {
      const reason = start > next
        ? `it starts at zxid ${start} but the log before it ends at zxid ${next - 1n}: zxids ${next} to ` +
          `${start - 1n} are missing`
        : `it starts at zxid ${start} but the log before it already holds zxids up to ${next - 1n}`;
      return result({ damage: { kind: "gap", file: name, offset: 0, zxid: next - 1n, reason } });
    }
    const bytes = await view.read(name);
    const header = checkLogHeader(bytes, start);
    if (header === "short") {
      if (!isNewest) {
        const reason = "it is shorter than its file header and is not the newest log";
        return result({ damage: { kind: "header", file: name, offset: 0, zxid: next - 1n, reason } });
      }
      const tornTail = bytes.length > 0 ? { file: name, offset: 0, bytesCut: bytes.length } : undefined;
      return result({ tornTail, newest: { name, start, goodLength: 0, nextZxid: start, formatted: false } });
    }
    if (header !== "ok" && header !== "legacy") {
      return result({ damage: { kind: "header", file: name, offset: 0, zxid: next - 1n, reason: header } });
    }
    const legacy = header === "legacy";
    let offset = legacy ? 0 : LOG_HEADER_BYTES;
    let expected = start;
    let tornTail: TornTail | undefined;
    while (offset < bytes.length) {
      const read = readRecord(bytes, offset, legacy);
      if (read.kind === "record") {
        const record = read.record;
        if (record.zxid !== expected) {
          const reason = `the record there has zxid ${record.zxid} where zxid ${expected} comes next`;
          return result({ damage: { kind: "gap", file: name, offset, zxid: next - 1n, reason } });
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
      // Torn: the end of the newest log cut short (its header CRC vouches for the length) or zero-filled. A whole
      // record whose body fails its CRC is damage even at the very end: a crash mid-write leaves a short file on a
      // journaling file system, and cutting such a record could drop an acknowledged write.
      const torn = isNewest && (read.kind === "shortHeader" || read.kind === "shortBody" || allZero(bytes, offset));
      if (torn) {
        tornTail = { file: name, offset, bytesCut: bytes.length - offset };
        break;
      }
      const reason = read.kind === "shortHeader" || read.kind === "shortBody"
        ? "the record there is cut short by the end of a log that is not the newest"
        : read.kind === "badCrc"
        ? "the record there fails its CRC"
        : `the record there is damaged: ${read.reason}`;
      return result({ damage: { kind: "record", file: name, offset, zxid: next - 1n, reason } });
    }
    if (isNewest) {
      return result({
        tornTail,
        newest: { name, start, goodLength: offset, nextZxid: expected, formatted: !legacy },
      });
    }
  }
  return result();
}
