/**
 * What a refused start says: the file, the byte offset, the last good zxid, what would not load, and the repair
 * command that accepts the loss.
 *
 * @module
 */

import { type ScanResult, zxidOfName } from "./_data_dir.ts";
import { StorageError } from "./storage_error.ts";

/** The refusal for the damage a scan of `dir` found; `logs` are the log files there. */
export function refusalFor(dir: string, scan: ScanResult, logs: readonly string[]): StorageError {
  const damage = scan.damage!;
  const file = `${dir}/${damage.file}`;
  const where = { file, offset: damage.offset, zxid: damage.zxid };
  const repair = `Nothing was changed. Run \`deno task registry-repair --data ${dir}\` to see what a repair would ` +
    "drop and accept the loss";
  if (damage.kind === "missing" || damage.kind === "behindSnapshot") {
    const covered = scan.coveredThrough === undefined
      ? ""
      : `; ${scan.snapshot?.name} holds every one of them (the logs before it were kept only to fall back to an ` +
        "older snapshot), so a repair would drop none that a start loads";
    return new StorageError(
      `Cannot load the registry data in ${dir}: ${file} is missing: ${damage.reason}${covered}; the last good zxid ` +
        `is ${damage.zxid}. ${repair}`,
      where,
    );
  }
  let good: string;
  if (damage.kind === "snapshot") {
    good = `it holds the tree at zxid ${zxidOfName(damage.file)}, and no state loads without it (older snapshots ` +
      "are not used silently)";
  } else if (scan.coveredThrough !== undefined) {
    good = `the last good zxid there is ${damage.zxid}, but ${scan.snapshot?.name} holds every transaction of ` +
      `${damage.file} and the logs before it (kept only to fall back to an older snapshot), so a repair would drop ` +
      "none that a start loads";
  } else {
    const later = logs.filter((n) => n > damage.file);
    good = `the last good zxid is ${damage.zxid}; the records from there on would not load` +
      (later.length === 0 ? "" : `, nor the ${later.length} later log file(s) (${later.join(", ")})`);
  }
  return new StorageError(
    `Cannot load the registry data in ${dir}: ${file} is damaged at byte offset ${damage.offset}: ${damage.reason}; ` +
      `${good}. ${repair}`,
    where,
  );
}
