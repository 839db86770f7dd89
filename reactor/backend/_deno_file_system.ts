/**
 * The Deno backend's files: a durable append-only file whose fdatasync runs on Deno's thread pool, plain append
 * files, and the rest of {@linkcode FileSystemBackend} on Deno's file API.
 *
 * @module
 */

import type { AppendFile, FileSystemBackend } from "./net_backend.ts";
import { fsyncDir } from "./_durable_file.ts";
import { DurableLogFile, type LogFileOps } from "./_durable_log_file.ts";

/**
 * A durable log file's operations on Deno's own file ops: the write goes to the page cache on the loop (microseconds
 * for a log batch), the fdatasync runs on Deno's thread pool. One pool round trip per append, not two (measured: about
 * 260 us an append instead of 380), and the loop stays free to take the next batch while the disk works. Deno's
 * `node:fs` would run an O_DSYNC write inside the call, on the loop, stalling every connection for each sync.
 */
class DenoLogFileOps implements LogFileOps {
  readonly #file: Deno.FsFile;
  /** The handle's offset, when known (no seek before a write that goes there). */
  #position = Number.NaN;

  constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  writeAt(data: Uint8Array, position: number): void {
    if (this.#position !== position) {
      this.#position = Number.NaN;
      this.#file.seekSync(position, Deno.SeekMode.Start);
    }
    this.#position = Number.NaN;
    for (let offset = 0; offset < data.length;) offset += this.#file.writeSync(data.subarray(offset));
    this.#position = position + data.length;
  }

  syncData(): Promise<void> {
    return this.#file.syncData();
  }

  async truncate(length: number): Promise<void> {
    await this.#file.truncate(length);
    // The new length is metadata that fdatasync may not cover: make it durable before anyone relies on it.
    await this.#file.sync();
  }

  truncateSync(length: number): void {
    this.#file.truncateSync(length);
  }

  close(): void {
    this.#file.close();
  }
}

class DenoAppendFile implements AppendFile {
  readonly #file: Deno.FsFile;
  #closed = false;

  constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  async write(data: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < data.length) offset += await this.#file.write(data.subarray(offset));
  }

  writeSync(data: Uint8Array): void {
    let offset = 0;
    while (offset < data.length) offset += this.#file.writeSync(data.subarray(offset));
  }

  sync(): Promise<void> {
    return this.#file.syncData();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }
}

export const denoFileSystem: FileSystemBackend = {
  async openDurableAppend(path, options = {}) {
    // Not O_APPEND: preallocated space lies past the end of what was appended.
    const file = await Deno.open(path, { write: true, create: true, mode: options.mode ?? 0o644 });
    try {
      const size = (await file.stat()).size;
      return new DurableLogFile(new DenoLogFileOps(file), size, options.preallocateBytes ?? 0);
    } catch (error) {
      file.close();
      throw error;
    }
  },
  async openAppend(path) {
    return new DenoAppendFile(await Deno.open(path, { append: true, create: true, write: true }));
  },
  readFile(path) {
    return Deno.readFile(path);
  },
  async writeFile(path, data, options = {}) {
    const file = await Deno.open(path, { write: true, create: true, truncate: true, mode: options.mode ?? 0o644 });
    try {
      let offset = 0;
      while (offset < data.length) offset += await file.write(data.subarray(offset));
      await file.syncData();
    } finally {
      file.close();
    }
  },
  rename(from, to) {
    return Deno.rename(from, to);
  },
  async remove(path) {
    try {
      await Deno.remove(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  },
  async mkdir(path, options = {}) {
    await Deno.mkdir(path, { recursive: true, mode: options.mode ?? 0o777 });
  },
  async readDir(path) {
    const names: string[] = [];
    try {
      for await (const entry of Deno.readDir(path)) names.push(entry.name);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return [];
      throw error;
    }
    return names;
  },
  chmod(path, mode) {
    return Deno.chmod(path, mode);
  },
  async stat(path) {
    try {
      const info = await Deno.stat(path);
      return { mode: (info.mode ?? 0) & 0o7777, size: info.size, isDirectory: info.isDirectory };
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        const notFound = new Error(`No such file: ${path}`, { cause: error });
        notFound.name = "NotFound";
        throw notFound;
      }
      throw error;
    }
  },
  fsyncDir,
};
