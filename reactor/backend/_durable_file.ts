/**
 * A log file whose every write is durable when it completes: opened with O_APPEND|O_DSYNC, so one write is one
 * thread-pool round trip instead of a write plus an fdatasync. Shared by the Deno and Node backends (Deno runs
 * `node:fs` natively).
 *
 * @module
 */

import * as fs from "node:fs";
import type { DurableAppendFile } from "./net_backend.ts";

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

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    fs.close(this.#fd, () => {});
  }
}

/** Open (create) `path` for durable appends. */
export function openDurableAppend(path: string): Promise<DurableAppendFile> {
  const { O_WRONLY, O_APPEND, O_CREAT, O_DSYNC } = fs.constants;
  return new Promise((resolve, reject) => {
    fs.open(path, O_WRONLY | O_APPEND | O_CREAT | O_DSYNC, 0o644, (error, fd) => {
      if (error) reject(error);
      else resolve(new DsyncFile(fd));
    });
  });
}
