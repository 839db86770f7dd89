/**
 * Durable files for write-ahead logs, shared by the Deno and Node backends (Deno runs `node:fs` natively): a log
 * file whose every write is durable when it completes (O_APPEND|O_DSYNC, so one write is one thread-pool round trip
 * instead of a write plus an fdatasync), and the directory fsync that makes a create, rename or delete durable.
 *
 * @module
 */

import * as fs from "node:fs";
import type { DurableAppendFile, FileModeOptions } from "./net_backend.ts";

class DsyncFile implements DurableAppendFile {
  readonly #fd: number;
  #closed = false;

  constructor(fd: number) {
    this.#fd = fd;
  }

  append(data: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("Cannot append to a closed file"));
    return new Promise((resolve, reject) => {
      const writeFrom = (offset: number) => {
        fs.write(this.#fd, data, offset, data.length - offset, null, (error, written) => {
          if (error) return reject(error);
          if (offset + written < data.length) writeFrom(offset + written);
          else resolve();
        });
      };
      writeFrom(0);
    });
  }

  truncate(length: number): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("Cannot truncate a closed file"));
    return new Promise((resolve, reject) => {
      fs.ftruncate(this.#fd, length, (error) => {
        if (error) return reject(error);
        // The new length is metadata that O_DSYNC does not cover: make it durable before anyone relies on it.
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
  const { O_WRONLY, O_APPEND, O_CREAT, O_DSYNC } = fs.constants;
  return new Promise((resolve, reject) => {
    fs.open(path, O_WRONLY | O_APPEND | O_CREAT | O_DSYNC, options.mode ?? 0o644, (error, fd) => {
      if (error) reject(error);
      else resolve(new DsyncFile(fd));
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
