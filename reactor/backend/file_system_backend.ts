/**
 * The files a backend provides (logs, registry durability): append files, durable append files (each append synced,
 * optionally with zero-filled space kept ahead), and the file-system calls around them. Split from net_backend.ts,
 * which re-exports these types.
 *
 * @module
 */

/**
 * An append-only file handle, for logs and write-ahead logs.
 *
 * @example
 * ```ts
 * import { defaultBackend } from "./default.ts";
 *
 * const path = await Deno.makeTempFile();
 * const file = await defaultBackend().fs.openAppend(path);
 * await file.write(new TextEncoder().encode("a line\n"));
 * file.close();
 * await Deno.remove(path);
 * ```
 */
export interface AppendFile {
  /** Append all of `data`. Resolves once the runtime has written every byte (not necessarily synced). */
  write(data: Uint8Array): Promise<void>;
  /**
   * Append all of `data` synchronously (into the page cache; no sync). For small batches on a hot path, where an
   * async write's thread-pool round trip costs more than the copy.
   */
  writeSync(data: Uint8Array): void;
  /** fdatasync: resolves once written data is durable. */
  sync(): Promise<void>;
  /** Close the handle. Idempotent. */
  close(): void;
}

/**
 * An append-only file whose appends are durable (fdatasync) when they resolve, for write-ahead logs.
 *
 * @example
 * ```ts
 * import { defaultBackend } from "./default.ts";
 *
 * const path = await Deno.makeTempFile();
 * const log = await defaultBackend().fs.openDurableAppend(path, { mode: 0o600 });
 * await log.append(new Uint8Array([1, 2, 3])); // on disk (fdatasync) when this resolves
 * console.log(await log.size()); // 3
 * log.close();
 * await Deno.remove(path);
 * ```
 */
export interface DurableAppendFile {
  /**
   * Append all of `data`; resolves once it and every earlier append are on stable storage. Appends may overlap (a
   * log writes its next batch while the previous one syncs): the bytes land in call order, each call's promise
   * settling on its own. When one rejects (ENOSPC, EIO, ...), part of its `data` and of any later append may have
   * reached the file: the owner cuts it back with {@linkcode DurableAppendFile.truncate}.
   */
  append(data: Uint8Array): Promise<void>;
  /**
   * Cut the file to `length` bytes (ftruncate, dropping any preallocated space), then fsync, so the new length is
   * durable when it resolves. The next append goes at `length`, and preallocation starts over.
   */
  truncate(length: number): Promise<void>;
  /**
   * Stop preallocating and cut the preallocated space after the bytes appended (then fsync): for a file that grows
   * no more, such as a log sealed as it rolls over. Resolves at once when there is none.
   */
  trim(): Promise<void>;
  /** The bytes appended so far (the file's size without its preallocated space). */
  size(): Promise<number>;
  /** Close the handle, cutting preallocated space first (not synced). Idempotent. */
  close(): void;
}

/**
 * How to open a {@linkcode DurableAppendFile}.
 *
 * @example
 * ```ts
 * import type { DurableAppendOptions } from "./file_system_backend.ts";
 *
 * const log: DurableAppendOptions = { mode: 0o600, preallocateBytes: 1024 * 1024 };
 * ```
 */
export interface DurableAppendOptions extends FileModeOptions {
  /**
   * Keep zero-filled space ahead of the appended bytes, written in steps of at most this many bytes (64 KiB first,
   * doubling): an fdatasync after an append into written space need not write the file's new size, which on ext4
   * saves an inode write per sync. A crash leaves the zeros after the last append; the file's reader must take
   * zeros there as the end. 0 keeps the file exactly as long as what was appended.
   * @default {0}
   */
  readonly preallocateBytes?: number;
}

/**
 * Permissions for a file or directory the backend creates.
 *
 * @example
 * ```ts
 * import type { FileModeOptions } from "./file_system_backend.ts";
 *
 * const secret: FileModeOptions = { mode: 0o600 }; // owner read/write only
 * ```
 */
export interface FileModeOptions {
  /**
   * Permission bits for a newly created file or directory (the process umask still applies); an existing one keeps
   * its mode (use {@linkcode FileSystemBackend.chmod}).
   * @default {0o644 for files, 0o777 for directories}
   */
  readonly mode?: number;
}

/**
 * The file-system facilities the framework needs (logs, registry durability). Paths are plain strings.
 *
 * @example
 * ```ts
 * import { defaultBackend } from "./default.ts";
 *
 * const fs = defaultBackend().fs;
 * const dir = await Deno.makeTempDir();
 * await fs.writeFile(`${dir}/a.tmp`, new TextEncoder().encode("x"));
 * await fs.rename(`${dir}/a.tmp`, `${dir}/a`);
 * await fs.fsyncDir(dir); // the rename is durable
 * console.log(await fs.readDir(dir)); // ["a"]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export interface FileSystemBackend {
  /** Open `path` for durable appends (every append is synced), creating it if missing; appends go at its end. */
  openDurableAppend(path: string, options?: DurableAppendOptions): Promise<DurableAppendFile>;
  /** Open `path` for appending, creating it if missing. */
  openAppend(path: string): Promise<AppendFile>;
  /** Read a whole file; rejects with an error whose `name` is `"NotFound"` when it is missing. */
  readFile(path: string): Promise<Uint8Array>;
  /** Write a whole file (create or truncate), then sync it. Sync the directory too when the file is new. */
  writeFile(path: string, data: Uint8Array, options?: FileModeOptions): Promise<void>;
  /** Atomically rename. Durable once the directory is synced ({@linkcode FileSystemBackend.fsyncDir}). */
  rename(from: string, to: string): Promise<void>;
  /** Remove a file; no error when it is missing. */
  remove(path: string): Promise<void>;
  /** Create a directory and its parents; no error when it exists. */
  mkdir(path: string, options?: FileModeOptions): Promise<void>;
  /** Names of the entries of a directory; an empty list when it is missing. */
  readDir(path: string): Promise<string[]>;
  /** Set the permission bits of a file or directory. */
  chmod(path: string, mode: number): Promise<void>;
  /** The permission bits (`mode & 0o7777`) and size of a file or directory; rejects `"NotFound"` when missing. */
  stat(path: string): Promise<{ readonly mode: number; readonly size: number; readonly isDirectory: boolean }>;
  /** fsync a directory, so the entries created, renamed or removed in it survive a crash. */
  fsyncDir(path: string): Promise<void>;
}
