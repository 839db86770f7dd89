/**
 * Writing one snapshot of the data directory, and purging what the newest two snapshots cover (the log's side of
 * `txn_log.ts`): the tree, taken copy-on-write at its zxid, is serialized a slice at a time and its CRC computed a
 * piece at a time, so the loop keeps serving; the file goes to `.tmp` in pieces, is fsynced, renamed, and the
 * directory fsynced.
 *
 * @module
 */

import type { NetBackend } from "../../reactor/backend/net_backend.ts";
import { getLogger } from "../../reactor/logger.ts";
import type { TreeSnapshot } from "../server/data_tree.ts";
import { crc32 } from "./_crc32.ts";
import { hex, LOG_NAME, SNAPSHOT_NAME, zxidOfName } from "./_data_dir.ts";
import { encodeSnapshotHeader } from "./snapshot_file.ts";

// The longest a snapshot holds the loop at a time (serializing nodes, or checking its bytes' CRC).
const SNAPSHOT_SLICE_MS = 1;

/** Where a snapshot goes, and what of the log it must know. */
export interface SnapshotTarget {
  readonly backend: NetBackend;
  readonly dir: string;
  readonly fileMode: number;
  /** Whether the log closed (a snapshot in progress is then dropped: the log holds every change). */
  closed(): boolean;
  /** The log file appended to now, never purged. */
  currentLog(): string;
}

/** Let the loop serve what is waiting (a new macrotask: I/O callbacks and timers run first). */
function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Write `snapshot` (the tree after `zxid`, `nodes` nodes) as `snapshot.ZXID`, then purge what it makes old. Resolves
 * true once the file is durable; false when the log closed first or the write failed (logged, the `.tmp` removed:
 * nothing is lost, the log holds every change).
 */
export async function writeSnapshot(
  target: SnapshotTarget,
  zxid: bigint,
  nodes: number,
  snapshot: TreeSnapshot,
): Promise<boolean> {
  const fs = target.backend.fs;
  const path = `${target.dir}/snapshot.${hex(zxid)}`;
  try {
    const bytes = await serialize(target, zxid, snapshot);
    if (bytes === undefined) return false;
    // Created with its mode and the header, then the body appended in pieces (no one copy of it all).
    await fs.writeFile(`${path}.tmp`, bytes.header, { mode: target.fileMode });
    const file = await fs.openAppend(`${path}.tmp`);
    try {
      for (const chunk of bytes.chunks) await file.write(chunk);
      await file.sync();
    } finally {
      file.close();
    }
    await fs.rename(`${path}.tmp`, path);
    await fs.fsyncDir(target.dir);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    getLogger().error(
      `TxnLog: cannot write snapshot ${path} (${message}); nothing is lost, the log holds every change`,
      { error },
    );
    await fs.remove(`${path}.tmp`).catch(() => {});
    await fs.fsyncDir(target.dir).catch(() => {});
    return false;
  }
  getLogger().info(`TxnLog: snapshot ${path} (${nodes} nodes, zxid ${zxid})`);
  try {
    await purge(target);
  } catch (error) {
    getLogger().warn(`TxnLog: cannot purge old files of ${target.dir}`, { error });
  }
  return true;
}

/** Serialize `snapshot` a slice at a time, then its header's CRC: the file's bytes, or undefined when closed. */
async function serialize(
  target: SnapshotTarget,
  zxid: bigint,
  snapshot: TreeSnapshot,
): Promise<{ header: Uint8Array; chunks: readonly Uint8Array[] } | undefined> {
  try {
    while (!snapshot.step(SNAPSHOT_SLICE_MS)) {
      await yieldToLoop();
      // Closing: not worth the wait, the log holds every change.
      if (target.closed()) return undefined;
    }
  } finally {
    snapshot.abandon();
  }
  const { chunks, length } = snapshot.body();
  let crc = 0;
  let until = performance.now() + SNAPSHOT_SLICE_MS;
  for (const chunk of chunks) {
    crc = crc32(chunk, 0, chunk.length, crc);
    if (performance.now() < until) continue;
    await yieldToLoop();
    until = performance.now() + SNAPSHOT_SLICE_MS;
  }
  return { header: encodeSnapshotHeader(zxid, length, crc), chunks };
}

/** Keep the newest two snapshots and the logs holding records after the older of them. */
async function purge(target: SnapshotTarget): Promise<void> {
  const fs = target.backend.fs;
  const names = await fs.readDir(target.dir);
  const snapshots = names.filter((n) => SNAPSHOT_NAME.test(n)).sort();
  if (snapshots.length < 2) return;
  const kept = zxidOfName(snapshots.at(-2)!);
  const doomed = snapshots.slice(0, -2);
  const logs = names.filter((n) => LOG_NAME.test(n)).sort();
  const current = target.currentLog();
  for (let i = 0; i + 1 < logs.length && logs[i] !== current; i++) {
    // Every record of logs[i] precedes the next file's first, so it is covered by the kept snapshot.
    if (zxidOfName(logs[i + 1]!) <= kept + 1n) doomed.push(logs[i]!);
  }
  for (const name of doomed) await fs.remove(`${target.dir}/${name}`);
  if (doomed.length > 0) await fs.fsyncDir(target.dir);
}
