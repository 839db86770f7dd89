/**
 * The error that refuses damaged registry storage: which file, where in it, and the last transaction that is
 * known good, so an operator can judge what a repair would drop.
 *
 * @module
 */

import { RegistryError, RegistryErrorCode } from "../registry_error.ts";

/**
 * Damage found in a registry data directory (a record or snapshot that fails its check, a gap in the zxids).
 * Its code is `DATA_INCONSISTENCY`.
 *
 * @example
 * ```ts
 * import { StorageError } from "./storage_error.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new StorageError("Cannot load data/log.0000000000000001: record at offset 20 fails its CRC", {
 *   file: "data/log.0000000000000001",
 *   offset: 20,
 *   zxid: 0n,
 * });
 * assert.equal(error.codeName, "DATA_INCONSISTENCY");
 * ```
 */
export class StorageError extends RegistryError {
  /** The damaged file (directory-relative path as given to `TxnLog.open`). */
  readonly file: string;
  /** Byte offset of the damage in `file`. */
  readonly offset: number;
  /** The last transaction id that loads intact before the damage (0n when none). */
  readonly zxid: bigint;

  /** Create the error; `message` names the file, offset and zxid in prose. */
  constructor(
    message: string,
    where: { file: string; offset: number; zxid: bigint },
    options?: { cause?: unknown },
  ) {
    super(RegistryErrorCode.DATA_INCONSISTENCY, message, options);
    this.name = "StorageError";
    this.file = where.file;
    this.offset = where.offset;
    this.zxid = where.zxid;
  }
}
