/**
 * Durable files for write-ahead logs on `node:fs` (the Node and Bun backends): a log file whose appends are written
 * to the page cache at once, in call order, then made durable by an fdatasync on the thread pool (so the loop takes
 * the next batch while the disk works), and the directory fsync that makes a create, rename or delete durable.
 *
 * @module
 */

import * as fs from "node:fs";
import type { DurableAppendFile, FileModeOptions } from "./net_backend.ts";

class SyncedAppendFile implements DurableAppendFile {
  readonly #fd: number;
  #closed = false;

  constructor(fd: number) {
    this.#fd = fd;
  }

  append(data: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("Cannot append to a closed file"));
    try {
      // A log batch is a few KiB: copying it to the page cache takes microseconds, and doing it here keeps
      // overlapping appends in call order.
      for (let offset = 0; offset < data.length;) {
        offset += fs.writeSync(this.#fd, data, offset, data.length - offset);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => fs.fdatasync(this.#fd, (error) => error ? reject(error) : resolve()));
  }

  truncate(length: number): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("Cannot truncate a closed file"));
    return new Promise((resolve, reject) => {
      fs.ftruncate(this.#fd, length, (error) => {
        if (error) return reject(error);
        // The new length is metadata that fdatasync may not cover: make it durable before anyone relies on it.
        fs.fsync(this.#fd, (error) => error ? reject(error) : resolve());
      });
    });
  }

  size(): Promise<number> {
    if (this.#closed) return Promise.reject(new Error("Cannot stat a closed file"));
    return new Promise((resolve, reject) => {
      fs.fstat(this.#fd, (error, stats) => error ? reject(error) : resolve(stats.size));
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    fs.close(this.#fd, () => {});
  }
}

/** Open (create with `options.mode`, default 0o644) `path` for durable appends. */
export function openDurableAppend(path: string, options: FileModeOptions = {}): Promise<DurableAppendFile> {
  const { O_WRONLY, O_APPEND, O_CREAT } = fs.constants;
  return new Promise((resolve, reject) => {
    fs.open(path, O_WRONLY | O_APPEND | O_CREAT, options.mode ?? 0o644, (error, fd) => {
      if (error) reject(error);
      else resolve(new SyncedAppendFile(fd));
    });
  });
}

/** fsync the directory `path`, so the entries created, renamed or removed in it survive a crash. */
export function fsyncDir(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.open(path, fs.constants.O_RDONLY, (error, fd) => {
      if (error) return reject(error);
      fs.fsync(fd, (syncError) => {
        fs.close(fd, (closeError) => {
          const failure = syncError ?? closeError;
          if (failure) reject(failure);
          else resolve();
        });
      });
    });
  });
}
