/**
 * What a registry data directory can hold that stops a start, as the server's load and the repair command
 * (`registry/repair.ts`) report it.
 *
 * @module
 */

/**
 * Damage that stops a start. `zxid` is the last transaction that loads intact before it.
 *
 * @example
 * ```ts
 * import type { Damage } from "./damage.ts";
 *
 * const damage: Damage = { kind: "record", file: "log.0000000000000001", offset: 20, zxid: 0n, reason: "bad CRC" };
 * console.log(`${damage.file} at byte ${damage.offset}: ${damage.reason}`);
 * ```
 */
export interface Damage {
  /**
   * What is damaged: the newest snapshot fails its check, a log header is bad, a record fails its check, the
   * zxids do not follow one by one, a record that checks cannot be applied to the tree, a log that the seal ending
   * the log before it names is missing (`file` is the missing one), or the logs end before the newest snapshot's
   * zxid, so the log written before that snapshot, `file`, is missing.
   */
  readonly kind: "snapshot" | "header" | "record" | "gap" | "apply" | "missing" | "behindSnapshot";
  /** The file's name in the data directory (for `missing` and `behindSnapshot`: the name it would have). */
  readonly file: string;
  /** The byte offset in the file where the damage starts. */
  readonly offset: number;
  /** The last transaction that loads intact before the damage (0 for none). */
  readonly zxid: bigint;
  /** Why it does not load. */
  readonly reason: string;
}

/**
 * A cut-short or zero-filled end of the newest log (a crash mid-write, or the space kept ahead of the log's end), to
 * be truncated at `offset`; the server does it at start.
 *
 * @example
 * ```ts
 * import type { TornTail } from "./damage.ts";
 *
 * const tail: TornTail = { file: "log.0000000000000001", offset: 4096, bytesCut: 17 };
 * console.log(`${tail.file}: ${tail.bytesCut} bytes cut at ${tail.offset}`);
 * ```
 */
export interface TornTail {
  /** The log's name in the data directory. */
  readonly file: string;
  /** Where the torn record starts: the log keeps the bytes before it. */
  readonly offset: number;
  /** How many bytes are cut off. */
  readonly bytesCut: number;
  /**
   * Whether they are all zero: the space a log keeps written ahead of its end (see `preallocateBytes`), or a write
   * whose data never reached the disk. Either way no whole record is in them.
   */
  readonly zeros?: boolean;
}
