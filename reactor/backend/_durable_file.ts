/**
 * Durable files for write-ahead logs on `node:fs` (the Node and Bun backends): a log file whose appends are written
 * to the page cache at once, in call order, then made durable by an fdatasync on the thread pool (so the loop takes
 * the next batch while the disk works), and the directory fsync that makes a create, rename or delete durable.
 *
 * @module
 */

import * as fs from "node:fs";
import type { DurableAppendFile, DurableAppendOptions } from "./net_backend.ts";
import { DurableLogFile, type LogFileOps } from "./_durable_log_file.ts";

/** A durable log file's operations on `node:fs`: positional writes on the loop, syncs on libuv's thread pool. */
class NodeLogFileOps implements LogFileOps {
  readonly #fd: number;

  constructor(fd: number) {
    this.#fd = fd;
  }

  writeAt(data: Uint8Array, position: number): void {
    // A log batch is a few KiB: copying it to the page cache takes microseconds, and doing it here keeps
    // overlapping appends in call order.
    for (let offset = 0; offset < data.length;) {
      offset += fs.writeSync(this.#fd, data, offset, data.length - offset, position + offset);
    }
  }

  syncData(): Promise<void> {
    return new Promise((resolve, reject) => fs.fdatasync(this.#fd, (error) => error ? reject(error) : resolve()));
  }

  truncate(length: number): Promise<void> {
    return new Promise((resolve, reject) => {
      fs.ftruncate(this.#fd, length, (error) => {
        if (error) return reject(error);
        // The new length is metadata that fdatasync may not cover: make it durable before anyone relies on it.
        fs.fsync(this.#fd, (error) => error ? reject(error) : resolve());
      });
    });
  }

  truncateSync(length: number): void {
    fs.ftruncateSync(this.#fd, length);
  }

  close(): void {
    fs.close(this.#fd, () => {});
  }
}

/** Open (create with `options.mode`, default 0o644) `path` for durable appends. */
export function openDurableAppend(path: string, options: DurableAppendOptions = {}): Promise<DurableAppendFile> {
  // Not O_APPEND: positional writes would go to the end anyway, past preallocated space.
  const { O_WRONLY, O_CREAT } = fs.constants;
  return new Promise((resolve, reject) => {
    fs.open(path, O_WRONLY | O_CREAT, options.mode ?? 0o644, (error, fd) => {
      if (error) return reject(error);
      fs.fstat(fd, (statError, stats) => {
        if (statError) {
          fs.close(fd, () => {});
          return reject(statError);
        }
        resolve(new DurableLogFile(new NodeLogFileOps(fd), stats.size, options.preallocateBytes ?? 0));
      });
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
