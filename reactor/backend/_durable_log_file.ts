/**
 * The durable append-only file both backends return, over a handful of primitive file operations: appends written
 * at once in call order at the end of what was appended, each made durable by an fdatasync on a thread pool, and,
 * when asked for, zero-filled space kept ahead of that end.
 *
 * Why keep space ahead: an fdatasync after a write that grows a file must also write the file's new size (on ext4 an
 * inode write and a wait for it, besides the data and the cache flush), while one after a write into space that was
 * already written and synced has only the data to write. On the development VM a 62-byte append with fdatasync took
 * 214-236 µs growing the file and 177-197 µs inside zero-filled space. ZooKeeper preallocates its logs for the same
 * reason. The zeros are written from the loop, in call order with the appends, a step at a time (64 KiB, doubling
 * up to the caller's limit), so nothing written later can land under them; a step the disk refuses (full) is cut
 * back at once and preallocation stops until the next truncate, so it never takes the space an append needs.
 *
 * @module
 */

import type { DurableAppendFile } from "./net_backend.ts";

/** What a backend provides for a {@linkcode DurableLogFile}. All synchronous calls run on the loop. */
export interface LogFileOps {
  /** Write all of `data` at byte `position` (may throw after writing part of it). */
  writeAt(data: Uint8Array, position: number): void;
  /** Make the file's data durable (fdatasync), off the loop. */
  syncData(): Promise<void>;
  /** Cut the file to `length` bytes and fsync, off the loop. */
  truncate(length: number): Promise<void>;
  /** Cut the file to `length` bytes now (no sync). */
  truncateSync(length: number): void;
  /** Close the handle. */
  close(): void;
}

const FIRST_STEP = 64 * 1024;
// Zeros are written ahead once fewer than this many are left: room for a few batches of records.
const LOW_WATER = 32 * 1024;

/** A durable append-only file (see the module doc). */
export class DurableLogFile implements DurableAppendFile {
  readonly #ops: LogFileOps;
  /** Where the next append goes: the bytes appended so far. */
  #end: number;
  /** The file's size: `#end` plus the zeros written ahead of it. */
  #allocated: number;
  #step: number;
  readonly #maxStep: number;
  #closed = false;

  /** Over a file of `size` bytes; `preallocateBytes` (0: none) bounds each step of zeros written ahead. */
  constructor(ops: LogFileOps, size: number, preallocateBytes: number) {
    this.#ops = ops;
    this.#end = size;
    this.#allocated = size;
    this.#maxStep = Math.max(0, Math.floor(preallocateBytes));
    this.#step = this.#firstStep();
  }

  // 0 (none) when the limit is below the low-water mark: such steps would not keep a batch's room ahead.
  #firstStep(): number {
    const step = Math.min(FIRST_STEP, this.#maxStep);
    return step < LOW_WATER ? 0 : step;
  }

  append(data: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("Cannot append to a closed file"));
    try {
      this.#ops.writeAt(data, this.#end);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#end += data.length;
    if (this.#allocated < this.#end) this.#allocated = this.#end;
    if (this.#step > 0 && this.#allocated - this.#end < LOW_WATER) this.#extend();
    return this.#ops.syncData();
  }

  /** Write the next step of zeros after the file's end; a refusal is cut back and ends preallocation. */
  #extend(): void {
    const zeros = new Uint8Array(this.#step);
    try {
      this.#ops.writeAt(zeros, this.#allocated);
      this.#allocated += zeros.length;
      this.#step = Math.min(this.#step * 2, this.#maxStep);
    } catch {
      this.#step = 0;
      try {
        this.#ops.truncateSync(this.#allocated);
      } catch {
        // Zeros past the end cost space, not data: a start cuts them as the log's tail.
      }
    }
  }

  async truncate(length: number): Promise<void> {
    if (this.#closed) throw new Error("Cannot truncate a closed file");
    await this.#ops.truncate(length);
    this.#end = length;
    this.#allocated = length;
    // Preallocation starts over (after a failed step, the disk may have room again; after trim, the file grows on).
    this.#step = this.#firstStep();
  }

  async trim(): Promise<void> {
    if (this.#closed) throw new Error("Cannot trim a closed file");
    this.#step = 0;
    if (this.#allocated === this.#end) return;
    await this.#ops.truncate(this.#end);
    this.#allocated = this.#end;
  }

  size(): Promise<number> {
    if (this.#closed) return Promise.reject(new Error("Cannot stat a closed file"));
    return Promise.resolve(this.#end);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      // Not synced: if this is lost, the next start cuts the zeros as the log's tail.
      if (this.#allocated > this.#end) this.#ops.truncateSync(this.#end);
    } catch {
      // As above.
    }
    this.#ops.close();
  }
}
