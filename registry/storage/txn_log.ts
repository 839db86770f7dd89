/**
 * Durability for the registry: an append-only transaction log written before a change is applied (group commit:
 * one write and fdatasync per batch of records appended while the previous batch synced; the next batch is handed
 * to the disk before the previous one's records are applied and answered), and periodic snapshots
 * of the tree. Damaged storage is refused, never half-loaded; a failed write loses nothing and stalls nothing.
 *
 * Files in the data directory (mode 0700; files 0600, as they hold session secrets; `ZXID` is 16 hex digits):
 *
 * | name                | content                                                                                  |
 * | ------------------- | ---------------------------------------------------------------------------------------- |
 * | `log.ZXID`          | a header, records from zxid ZXID on, a seal naming the next log if any (`txn_record.ts`) |
 * | `snapshot.ZXID`     | a checked header, then the tree after transaction ZXID (`snapshot_file.ts`)              |
 * | `snapshot.ZXID.tmp` | a snapshot being written; removed at start                                               |
 * | `damaged-TIME/`     | what `registry-repair --apply` moved aside; never read                                   |
 *
 * What survives the loss of a file, so that the loss is seen: the seal at the end of the log before it (a log
 * rolls over only at a snapshot; the new file is created, its header fsynced and the directory fsynced, then the
 * seal is appended to the old file and fsynced, and only then does any record go to the new file), and a snapshot,
 * which is written only after the log has rolled over past its zxid. Both cost a sync per roll or snapshot, none per
 * batch. They cannot show the loss of the whole directory, of the one log there is before any roll, or a roll
 * back of every file to an older consistent state (the newest log cut at a record boundary is one: it reads as a
 * crash mid-write).
 *
 * Recovery at {@linkcode TxnLog.open}, strict:
 * - The newest snapshot is loaded; if it fails its check (header CRC, length, body CRC, content) the start is
 *   refused. There is no silent fall-back to an older one: that is the repair command's decision.
 * - Every log file is read and checked, also the older ones kept for a fall-back to the older snapshot. Records
 *   after the snapshot's zxid are replayed. Zxids must be consecutive (snapshot zxid + 1, + 2, ...) within and
 *   across files; a gap refuses the start, including "the snapshot is missing and the logs before it were already
 *   purged" (the first needed record is in no file).
 * - A missing log refuses the start, naming the file and what is lost with it: a log that the seal ending the log
 *   before it names (the newest, or one in the middle of the chain), or the log after the newest snapshot when every
 *   log ends before the snapshot's zxid (they were deleted, or restored from an older backup).
 * - A bad record is a torn tail (a crash mid-write) only in the newest log and only when it runs to the end of the
 *   file: a header or body cut short by the end, a last record whose CRC fails and which ends at the end (or is
 *   followed only by zero bytes), a last record whose bytes turn to zeros on a page boundary before its end and stay
 *   zero to the end of the file (a write cut short inside the zero-filled space kept ahead of the log's end), or
 *   zero bytes after the last whole record. The file is then cut at the end of the last whole record, fsynced, a
 *   WARN names the file, offset and bytes cut (an INFO when they are all zeros, which every stop without a close
 *   leaves), and appends go on in that file. A write whose pages reached the disk out of order (a power loss that
 *   kept a later page and lost an earlier one) reads as damage and is refused.
 *   An older log may lack its seal, or end in one cut short, only when the next log starts right after its last
 *   record (a crash during a roll); the start then writes the seal, with a WARN. No log file is ever deleted at
 *   start. Any other bad record, in any log, refuses the start.
 * - A refusal throws a {@linkcode StorageError} (code `DATA_INCONSISTENCY`) naming the file, the byte offset and
 *   the last good zxid, and pointing to `deno task registry-repair --data DIR`. That command (`repair.ts`) prints
 *   what it would drop and drops nothing; with `--apply` it moves damaged files to `DIR/damaged-TIME/`, cuts a
 *   log at its bad record or its seal naming a lost file (saving the cut bytes there too), and starts the log
 *   after a snapshot whose logs are gone.
 * - Log files of format 1 (written before seals) still load, may lack a seal, and are appended to; the roll seals
 *   them. Older versions refuse format-2 files (no downgrade).
 *
 * A snapshot is the tree at one zxid exactly: it is started when the tree holds exactly the durable records (no
 * batch on its way), and the log continues in a new file from the next zxid; the tree is then serialized a slice of
 * a few milliseconds at a time, between which the loop serves requests and applies records, copy-on-write
 * (`server/_tree_snapshot.ts`: the bytes are the tree as it was at the start, whatever changes meanwhile). Replay
 * stays strict, since nothing in a snapshot is newer than its zxid. The snapshot is then written to `.tmp`,
 * fsynced, renamed, then the directory is fsynced. The newest two snapshots are kept, and the logs holding records
 * after the older of them, so the repair command can fall back to it when the newest is damaged. A snapshot that
 * cannot be written is logged and removed; nothing is lost, since the log still holds every change. A seal that
 * cannot be written undoes the roll (the old file is cut back, the new one removed); if that fails too, the log
 * goes on in the new file and the next start writes the seal.
 *
 * @module
 */

import type { DurableAppendFile, NetBackend } from "../../reactor/backend/net_backend.ts";
import { getLogger } from "../../reactor/logger.ts";
import { hex, LOG_NAME, scanDataDir, SNAPSHOT_NAME, type UnsealedLog } from "./_data_dir.ts";
import type { DataTree, DataTreeOptions } from "../server/data_tree.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";
import { type SnapshotTarget, writeSnapshot } from "./_snapshot_writer.ts";
import { refusalFor } from "./_refusal.ts";
import { encodeLogHeader, encodeSeal, LOG_HEADER_BYTES, type TxnRecord } from "./txn_record.ts";
import { RecordBatch } from "./_record_batch.ts";

export { applyRecord, type TxnRecord } from "./txn_record.ts";
export { StorageError } from "./storage_error.ts";

/** A batch of records handed to the file: its size, its records' callbacks, and how its fdatasync ended. */
interface WrittenBatch {
  bytes: number;
  dones: AppendCallback[];
  synced: Promise<{ cause: unknown } | undefined>;
}

/** What {@linkcode TxnLog.open} found and opened: the state a log starts from. */
interface OpenedLog {
  backend: NetBackend;
  dir: string;
  /** The tree rebuilt from the snapshot and the replayed records. */
  tree: DataTree;
  /** The log file appends go to, and the end of its last whole record. */
  file: { handle: DurableAppendFile; name: string; size: number };
  /** The last durable record's zxid. */
  lastZxid: bigint;
  snapshotEveryTxns: number;
}

/** Called once per appended record: `undefined` once it is durable, else why it will never be. */
export type AppendCallback = (error: RegistryError | undefined) => void;

/** Options of {@linkcode TxnLog.open}. */
export interface TxnLogOptions extends DataTreeOptions {
  /**
   * Take a snapshot after this many logged transactions.
   * @default {100000}
   */
  snapshotEveryTxns?: number;
}

const FILE_MODE = 0o600;
// The log being appended to keeps up to this much zero-filled space ahead of its end (written a step at a time, the
// first 64 KiB), so a sync writes the records and not the file's new size: 177-197 µs a sync instead of 214-236 on
// the development VM. A clean close cuts it; a crash leaves it, and the next start cuts it as zero bytes at the end.
const LIVE_LOG = { mode: FILE_MODE, preallocateBytes: 1024 * 1024 } as const;
// Batches on their way to the disk at once: a second one is written and synced while the first syncs, so a write
// that comes during a sync waits for one sync, not for the rest of that one and then its own.
const MAX_BATCHES_IN_FLIGHT = 2;
const DIR_MODE = 0o700;
const TMP_SNAPSHOT_NAME = /^snapshot\.[0-9a-f]{16}\.tmp$/;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The transaction log of one data directory. The server owns it: it appends each change, applies the change to
 * the tree in the append's callback (the change is durable by then), and answers the client after that.
 *
 * @example
 * ```ts
 * import { defaultBackend } from "../../reactor/backend/default.ts";
 * import { applyRecord, TxnLog } from "./txn_log.ts";
 * import assert from "node:assert/strict";
 *
 * const backend = defaultBackend();
 * const dir = await Deno.makeTempDir();
 * const { log, tree } = await TxnLog.open(backend, dir);
 * const record = { type: "create", zxid: log.nextZxid, timeMs: 0, path: "/a", data: new Uint8Array(), nodeType: 1, sessionId: 0n } as const;
 * const durable = Promise.withResolvers<void>();
 * log.append(record, (error) => {
 *   if (error === undefined) applyRecord(tree, record);
 *   durable.resolve();
 * });
 * await durable.promise;
 * await log.close();
 * assert.deepEqual((await TxnLog.open(backend, dir)).tree.paths(), ["/", "/a"]);
 * ```
 */
export class TxnLog {
  readonly #backend: NetBackend;
  readonly #dir: string;
  readonly #tree: DataTree;
  readonly #snapshotEveryTxns: number;
  #file: DurableAppendFile;
  #fileName: string;
  /** End of the last durable record in the current file: where a failed write is cut back to. */
  #fileSize: number;
  // The records appended since the last write.
  #pending = new RecordBatch<AppendCallback>();
  #durableZxid: bigint;
  #nextZxid: bigint;
  #flushing: Promise<void> | undefined;
  /** Batches written and not yet settled, oldest first. */
  #batches: WrittenBatch[] = [];
  #topUpQueued = false;
  /** While a failed batch is cut back or the log rolls over, nothing new goes to the file. */
  #holding = false;
  #snapshotting: Promise<void> | undefined;
  #sinceSnapshot = 0;
  #readOnlyReason: string | undefined;
  #closed = false;
  #syncs = 0;
  #writeFailures = 0;
  readonly #snapshotTarget: SnapshotTarget;

  private constructor(opened: OpenedLog) {
    this.#backend = opened.backend;
    this.#dir = opened.dir;
    this.#tree = opened.tree;
    this.#file = opened.file.handle;
    this.#fileName = opened.file.name;
    this.#fileSize = opened.file.size;
    this.#durableZxid = opened.lastZxid;
    this.#nextZxid = opened.lastZxid + 1n;
    this.#snapshotEveryTxns = opened.snapshotEveryTxns;
    this.#snapshotTarget = {
      backend: this.#backend,
      dir: this.#dir,
      fileMode: FILE_MODE,
      closed: () => this.#closed,
      currentLog: () => this.#fileName,
    };
  }

  /**
   * Load the newest snapshot, replay the logs after it (strictly checked, see the module doc), and open the log
   * for appends. Returns the log and the rebuilt tree, which the server then applies records to. Throws a
   * {@linkcode StorageError} on damage, changing nothing but a torn tail.
   */
  static async open(
    backend: NetBackend,
    dir: string,
    options: TxnLogOptions = {},
  ): Promise<{ log: TxnLog; tree: DataTree }> {
    const fs = backend.fs;
    const logger = getLogger();
    await fs.mkdir(dir, { mode: DIR_MODE });
    await fs.chmod(dir, DIR_MODE);
    let names = await fs.readDir(dir);
    const stale = names.filter((n) => TMP_SNAPSHOT_NAME.test(n));
    for (const name of stale) {
      logger.info(`TxnLog: removing ${dir}/${name}, a snapshot whose writing was interrupted`);
      await fs.remove(`${dir}/${name}`);
    }
    if (stale.length > 0) {
      await fs.fsyncDir(dir);
      names = names.filter((n) => !stale.includes(n));
    }
    const scan = await scanDataDir({ names, read: (name) => fs.readFile(`${dir}/${name}`) }, options);
    if (scan.damage !== undefined) throw refusalFor(dir, scan, names.filter((n) => LOG_NAME.test(n)).sort());
    if (scan.snapshot?.legacy) {
      logger.info(`TxnLog: ${dir}/${scan.snapshot.name} has no checked header (written by an older version); loaded`);
    }
    for (const name of names) {
      if (SNAPSHOT_NAME.test(name) || LOG_NAME.test(name)) await fs.chmod(`${dir}/${name}`, FILE_MODE);
    }
    if (scan.tornTail !== undefined) {
      const { file, offset, bytesCut, zeros } = scan.tornTail;
      const handle = await fs.openDurableAppend(`${dir}/${file}`, { mode: FILE_MODE });
      try {
        await handle.truncate(offset);
      } finally {
        handle.close();
      }
      // Zeros are what a stop without close leaves of the space written ahead of the end: no news.
      const report = zeros ? logger.info.bind(logger) : logger.warn.bind(logger);
      report(
        `TxnLog: ${dir}/${file} ends in ${
          zeros
            ? "zero bytes (space written ahead of the log's end, or a write " +
              "that did not reach the disk)"
            : "a torn record (a crash mid-write)"
        }: cut ${bytesCut} bytes at offset ` +
          `${offset}; the last whole record is zxid ${scan.lastZxid}`,
      );
    }
    const next = scan.lastZxid + 1n;
    const newest = scan.newest;
    let file: { handle: DurableAppendFile; name: string; size: number };
    if (newest !== undefined && newest.formatted && newest.nextZxid === next) {
      const handle = await fs.openDurableAppend(`${dir}/${newest.name}`, LIVE_LOG);
      file = { handle, name: newest.name, size: newest.goodLength };
    } else {
      // A file of this name can only be the newest one holding no whole record (else lastZxid would be higher).
      const name = `log.${hex(next)}`;
      const handle = await fs.openDurableAppend(`${dir}/${name}`, LIVE_LOG);
      try {
        if (newest?.name === name) await handle.truncate(0);
        await handle.append(encodeLogHeader(next));
        await fs.fsyncDir(dir);
      } catch (error) {
        handle.close();
        throw error;
      }
      file = { handle, name, size: LOG_HEADER_BYTES };
    }
    try {
      await TxnLog.#seal(backend, dir, scan.unsealed);
    } catch (error) {
      file.handle.close();
      throw error;
    }
    logger.info(
      `TxnLog: loaded ${dir}: ${scan.snapshot?.name ?? "no snapshot"}, ${scan.replayed} transactions replayed, ` +
        `${scan.tree.nodeCount} nodes, zxid ${scan.lastZxid}`,
    );
    const log = new TxnLog({
      backend,
      dir,
      tree: scan.tree,
      file,
      lastZxid: scan.lastZxid,
      snapshotEveryTxns: options.snapshotEveryTxns ?? 100_000,
    });
    log.#sinceSnapshot = scan.replayed;
    return { log, tree: scan.tree };
  }

  /** Finish the rolls a crash interrupted: cut each log's partial seal and write the seal (see the module doc). */
  static async #seal(backend: NetBackend, dir: string, unsealed: readonly UnsealedLog[]): Promise<void> {
    if (unsealed.length === 0) return;
    const fs = backend.fs;
    // The next log's directory entry must be durable before a seal names it.
    await fs.fsyncDir(dir);
    for (const { file, offset, bytesCut, nextZxid } of unsealed) {
      const handle = await fs.openDurableAppend(`${dir}/${file}`, { mode: FILE_MODE });
      try {
        if (bytesCut > 0) await handle.truncate(offset);
        await handle.append(encodeSeal(nextZxid, Date.now()));
      } finally {
        handle.close();
      }
      const cut = bytesCut > 0 ? `cut ${bytesCut} bytes at offset ${offset}, ` : "";
      getLogger().warn(
        `TxnLog: ${dir}/${file} ended without its seal (a crash while the log went on in log.${hex(nextZxid)}, ` +
          `which starts right after its last record): ${cut}sealed it`,
      );
    }
  }

  /** Durable writes made so far: batches (a batch of concurrent appends shares one) and snapshots. */
  get syncs(): number {
    return this.#syncs;
  }

  /** Batch writes that failed so far (for `/metrics`). */
  get writeFailures(): number {
    return this.#writeFailures;
  }

  /** Whether appends fail at once, because a failed write could not be cut back. */
  get readOnly(): boolean {
    return this.#readOnlyReason !== undefined;
  }

  /** Why the log is read-only, or `undefined`. */
  get readOnlyReason(): string | undefined {
    return this.#readOnlyReason;
  }

  /** The zxid of the last durable record (of the loaded state before any append). */
  get lastZxid(): bigint {
    return this.#durableZxid;
  }

  /**
   * The zxid the next {@linkcode TxnLog.append} must carry: one past the last record appended. After a failed
   * write it falls back to {@linkcode TxnLog.lastZxid} + 1 before the first failure callback runs, so the server
   * takes its next zxid from here.
   */
  get nextZxid(): bigint {
    return this.#nextZxid;
  }

  /**
   * Queue `record` for the log. `done(undefined)` is called synchronously, in append order, right after the write
   * holding the record is durable (the server applies the record inside `done`). If the write fails, the file is
   * cut back to its last whole record and `done` gets a `STORAGE_FAILED` error for every record of the failed batch
   * and every record appended after it that is not yet durable, in order; the next append tries the disk again.
   * When the log is read-only (or closed), `done` gets `NOT_READ_ONLY` (or `CLOSED`) on a later microtask.
   * Throws a `RangeError` when `record.zxid` is not {@linkcode TxnLog.nextZxid} (zxids on disk are consecutive).
   * Call from the event loop only.
   */
  append(record: TxnRecord, done: AppendCallback): void {
    if (this.#closed || this.#readOnlyReason !== undefined) {
      const error = this.#closed
        ? new RegistryError(RegistryErrorCode.CLOSED, "Cannot append to a closed transaction log")
        : new RegistryError(
          RegistryErrorCode.NOT_READ_ONLY,
          `Cannot change the registry as its log is read-only: ${this.#readOnlyReason}`,
        );
      queueMicrotask(() => done(error));
      return;
    }
    if (record.zxid !== this.#nextZxid) {
      throw new RangeError(
        `Cannot append a record as its zxid must be ${this.#nextZxid} (the log's nextZxid): current value is ` +
          `${record.zxid}`,
      );
    }
    this.#pending.add(record, done);
    this.#nextZxid++;
    if (this.#flushing === undefined) {
      this.#flushing = this.#flushLoop();
    } else if (!this.#topUpQueued && this.#batches.length < MAX_BATCHES_IN_FLIGHT) {
      // Once this task's appends are all queued (a read's worth of requests), so they go as one batch.
      this.#topUpQueued = true;
      queueMicrotask(() => {
        this.#topUpQueued = false;
        this.#topUp();
      });
    }
  }

  /** Write what is queued (and a snapshot being written), then close. Appends after this call fail. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#flushing;
    await this.#snapshotting;
    this.#file.close();
  }

  /** Same as {@linkcode TxnLog.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #flushLoop(): Promise<void> {
    try {
      this.#writeNext();
      while (this.#batches.length > 0) {
        const batch = this.#batches[0]!;
        const failure = await batch.synced;
        if (failure !== undefined) {
          this.#holding = true;
          try {
            // The batches written after it hold records validated against it: they fail with it, once settled (the
            // file is cut back past them).
            const later = this.#batches.slice(1);
            for (const written of later) await written.synced;
            this.#batches = [];
            await this.#failBatch(batch.dones.concat(...later.map((written) => written.dones)), failure.cause);
          } finally {
            this.#holding = false;
          }
          this.#writeNext();
          continue;
        }
        this.#batches.shift();
        this.#fileSize += batch.bytes;
        this.#durableZxid += BigInt(batch.dones.length);
        this.#syncs++;
        this.#sinceSnapshot += batch.dones.length;
        // The tree holds exactly the durable records once these callbacks have run: the one moment a snapshot may
        // be taken, and the log may roll to a new file, so nothing else may be on its way to the disk then (#topUp
        // writes no batch past the one that makes a snapshot due).
        const snapshotDue = this.#sinceSnapshot >= this.#snapshotEveryTxns && this.#snapshotting === undefined &&
          this.#batches.length === 0;
        // Otherwise the next batch goes to the disk before this one's callbacks apply and answer it: the disk
        // syncs while the loop works, instead of idling through every reply.
        if (!snapshotDue) this.#topUp();
        for (const done of batch.dones) this.#call(done, undefined);
        if (snapshotDue) {
          this.#holding = true;
          try {
            await this.#startSnapshot();
          } finally {
            this.#holding = false;
          }
        }
        this.#topUp();
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  /** Write what is queued as a batch if fewer than the most are in flight and no snapshot would start behind it. */
  #topUp(): void {
    if (this.#holding || this.#flushing === undefined || this.#batches.length >= MAX_BATCHES_IN_FLIGHT) return;
    let records = this.#sinceSnapshot;
    for (const written of this.#batches) records += written.dones.length;
    // A batch in flight makes a snapshot due: the next must wait until the snapshot has started.
    if (this.#batches.length > 0 && records >= this.#snapshotEveryTxns) return;
    this.#writeNext();
  }

  #writeNext(): void {
    if (this.#holding || this.#batches.length >= MAX_BATCHES_IN_FLIGHT) return;
    const batch = this.#writeBatch();
    if (batch !== undefined) this.#batches.push(batch);
  }

  /** Write every queued record as one batch (one fdatasync), or return `undefined` when none is queued. */
  #writeBatch(): WrittenBatch | undefined {
    const taken = this.#pending.take();
    if (taken === undefined) return undefined;
    const synced = this.#file.append(taken.bytes).then(() => undefined, (cause: unknown) => ({ cause }));
    return { bytes: taken.bytes.length, dones: taken.dones, synced };
  }

  #call(done: AppendCallback, error: RegistryError | undefined): void {
    try {
      done(error);
    } catch (thrown) {
      getLogger().error("TxnLog: an append callback threw", { error: thrown });
    }
  }

  async #failBatch(dones: AppendCallback[], cause: unknown): Promise<void> {
    this.#writeFailures++;
    const path = `${this.#dir}/${this.#fileName}`;
    try {
      await this.#file.truncate(this.#fileSize);
    } catch {
      try {
        this.#file.close();
        this.#file = await this.#backend.fs.openDurableAppend(path, LIVE_LOG);
        await this.#file.truncate(this.#fileSize);
      } catch (error) {
        this.#readOnlyReason = `after a failed write (${messageOf(cause)}) ${path} cannot be cut back to its last ` +
          `whole record at offset ${this.#fileSize}: ${messageOf(error)}`;
      }
    }
    // Records appended while the write was in flight were validated against a state that included the failed ones.
    const failed = dones.concat(this.#pending.drop());
    this.#nextZxid = this.#durableZxid + 1n;
    const error = new RegistryError(
      RegistryErrorCode.STORAGE_FAILED,
      `Cannot make ${failed.length} change(s) durable as writing ${path} failed: ${messageOf(cause)}; ` +
        (this.#readOnlyReason === undefined
          ? `nothing of them was applied and the log was cut back to zxid ${this.#durableZxid}`
          : `nothing of them was applied and the log is now read-only`),
      { cause },
    );
    getLogger().error(`TxnLog: ${error.message}`, {
      error: cause,
      ...(this.#readOnlyReason === undefined ? {} : { readOnlyReason: this.#readOnlyReason }),
    });
    for (const done of failed) this.#call(done, error);
  }

  async #startSnapshot(): Promise<void> {
    const zxid = this.#durableZxid;
    const nodes = this.#tree.nodeCount;
    // Taken now, while the tree holds exactly the records up to zxid; written later, a slice at a time.
    const snapshot = this.#tree.startSnapshot();
    this.#sinceSnapshot = 0;
    await this.#roll(zxid + 1n);
    this.#snapshotting = writeSnapshot(this.#snapshotTarget, zxid, nodes, snapshot)
      .then((written) => {
        if (written) this.#syncs++;
      })
      .finally(() => this.#snapshotting = undefined);
  }

  /** Continue the log in `log.START`, so older files can be purged once snapshots cover them. */
  async #roll(start: bigint): Promise<void> {
    const fs = this.#backend.fs;
    const name = `log.${hex(start)}`;
    if (name === this.#fileName) return;
    const path = `${this.#dir}/${name}`;
    let file: DurableAppendFile | undefined;
    let ours = false;
    try {
      file = await fs.openDurableAppend(path, LIVE_LOG);
      const size = await file.size();
      if (size !== 0) throw new Error(`${path} exists and holds ${size} bytes`);
      ours = true;
      await file.append(encodeLogHeader(start));
      await fs.fsyncDir(this.#dir);
    } catch (error) {
      file?.close();
      // A header cut short by a full disk would read as damage after the records that go on in the old file.
      if (ours) await fs.remove(path).then(() => fs.fsyncDir(this.#dir)).catch(() => {});
      getLogger().error(`TxnLog: cannot start ${path}; the log goes on in ${this.#fileName}`, { error });
      return;
    }
    // The seal, in the file that stays, is what tells a start that the new file existed: written once that file's
    // entry is durable and before any record goes there.
    try {
      // A seal must end its file: the space written ahead of the old file's end goes first.
      await this.#file.trim();
      await this.#file.append(encodeSeal(start, Date.now()));
    } catch (error) {
      if (await this.#undoRoll(path, file)) {
        getLogger().error(`TxnLog: cannot seal ${this.#dir}/${this.#fileName}; the log goes on in it`, { error });
        return;
      }
      // The old file keeps a partial seal or none, and the new one stays: the next start, finding the new file
      // starting right after the old file's last record, cuts the partial seal and writes it.
      getLogger().error(
        `TxnLog: cannot seal ${this.#dir}/${this.#fileName} nor undo the roll; the log goes on in ${path}`,
        { error },
      );
    }
    this.#file.close();
    this.#file = file;
    this.#fileName = name;
    this.#fileSize = LOG_HEADER_BYTES;
  }

  /** After a failed seal: cut the old file back to its last record and remove the new one. Whether both worked. */
  async #undoRoll(path: string, file: DurableAppendFile): Promise<boolean> {
    const fs = this.#backend.fs;
    try {
      await this.#file.truncate(this.#fileSize);
    } catch {
      return false;
    }
    try {
      await fs.remove(path);
    } catch {
      return false;
    }
    file.close();
    await fs.fsyncDir(this.#dir).catch(() => {});
    return true;
  }
}
