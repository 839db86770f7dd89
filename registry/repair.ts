/**
 * The registry's recovery command, for a data directory the server refuses to load:
 *
 * ```text
 * deno run -A jsr:@dwt/rpc/registry-repair --data DIR          # print what a repair would drop; drop nothing
 * deno run -A jsr:@dwt/rpc/registry-repair --data DIR --apply  # do it (stop the server first)
 * ```
 *
 * (In this repository: `deno task registry-repair ...`.) Exit status: 0 clean or repaired, 1 damage remains (or,
 * without `--apply`, damage found), 2 usage. {@linkcode repairDataDir} does the same from a program.
 *
 * It reads the directory exactly as `TxnLog.open` does and, for each damage found, plans the smallest cut that lets
 * a start succeed, then reads again with that cut, until nothing is refused:
 *
 * | damage                                         | repair                                                           |
 * | ---------------------------------------------- | ---------------------------------------------------------------- |
 * | the newest snapshot fails its check            | move it aside; the older snapshot and the logs after it are used |
 * | a bad record (or zxid gap) inside a log        | cut the log at that record; move every later log aside           |
 * | a bad log header, or a log starting past a gap | move that log and every later log aside                          |
 * | any of these before the newest snapshot's log  | move that log and every older one aside: no transaction is lost  |
 * | a log that a seal names is missing             | cut the seal off the log before it; move every later log aside   |
 * | every log ends before the newest snapshot      | move every log aside; create the log after it, a header only     |
 *
 * ("The newest snapshot's log" is the log holding the zxid after it: older logs only serve a fall-back to the older
 * snapshot.) Nothing is deleted: moved files and the bytes cut from a log go to `DIR/damaged-TIME/` (cut bytes as
 * `NAME.cut-at-OFFSET`). Stop the server before `--apply`. A torn tail needs no repair: the server cuts it at start,
 * and a seal a crash left unwritten the server writes.
 *
 * @module
 */

import { defaultBackend } from "../reactor/backend/default.ts";
import type { NetBackend } from "../reactor/backend/net_backend.ts";
import { parseArgs } from "../reactor/backend/parse_args.ts";
import { LOG_NAME, scanDataDir, type ScanResult, SNAPSHOT_NAME, zxidOfName } from "./storage/_data_dir.ts";
import type { Damage, TornTail } from "./storage/damage.ts";
import { checkLogHeader, encodeLogHeader, LOG_HEADER_BYTES, readRecord } from "./storage/txn_record.ts";

export type { Damage, TornTail } from "./storage/damage.ts";

/**
 * One thing the repair does (or would do) to one file.
 *
 * @example
 * ```ts
 * import type { RepairStep } from "./repair.ts";
 *
 * const describe = (step: RepairStep) =>
 *   step.action === "truncate" ? `cut ${step.file} at ${step.offset}: ${step.reason}` : `move ${step.file} aside`;
 * ```
 */
export interface RepairStep {
  /**
   * Move the whole file into the damaged directory, cut it at `offset` (saving the cut bytes there), or create it
   * holding only a log file header (the log after a snapshot whose logs are gone).
   */
  readonly action: "moveAside" | "truncate" | "create";
  /** The file's name in the data directory. */
  readonly file: string;
  /** Where a cut starts (0 for a move or a creation). */
  readonly offset: number;
  /** Bytes taken out of the data directory (for a creation: written). */
  readonly bytes: number;
  /** Whole records that still check among them (a moved log; 0 for a snapshot or a cut at damage). */
  readonly records: number;
  /** Their zxid range, when there are any. */
  readonly zxids?: readonly [bigint, bigint];
  /** Why. */
  readonly reason: string;
}

/**
 * What {@linkcode repairDataDir} found and did.
 *
 * @example
 * ```ts
 * import { defaultBackend } from "../reactor/backend/default.ts";
 * import { repairDataDir } from "./repair.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const report = await repairDataDir(defaultBackend(), dir);
 * console.log(report.damage.length === 0 ? `clean up to zxid ${report.lastZxid}` : `${report.steps.length} steps`);
 * await Deno.remove(dir);
 * ```
 */
export interface RepairReport {
  /** The damage found, in the order a start would meet it. */
  readonly damage: readonly Damage[];
  /** The steps that make the directory load. */
  readonly steps: readonly RepairStep[];
  /** The snapshot a start loads after the steps (undefined: none). */
  readonly snapshot?: string;
  /** The last zxid a start loads after the steps. */
  readonly lastZxid: bigint;
  /** A torn tail the server will cut at start. */
  readonly tornTail?: TornTail;
  /** Whether the steps were performed. */
  readonly applied: boolean;
  /** Where moved files and cut bytes went, when applied. */
  readonly damagedDir?: string;
}

/**
 * Options of {@linkcode repairDataDir}.
 *
 * @example
 * ```ts
 * import { defaultBackend } from "../reactor/backend/default.ts";
 * import { repairDataDir, type RepairOptions } from "./repair.ts";
 *
 * const options: RepairOptions = { apply: true }; // stop the server first
 * const repair = (dir: string) => repairDataDir(defaultBackend(), dir, options);
 * ```
 */
export interface RepairOptions {
  /**
   * Perform the steps; otherwise only report them.
   * @default {false}
   */
  apply?: boolean;
  /**
   * The clock for the damaged directory's name.
   * @default {Date.now}
   */
  nowMs?: () => number;
}

function recordsIn(name: string, bytes: Uint8Array): { records: number; zxids?: [bigint, bigint] } {
  const header = checkLogHeader(bytes, BigInt(`0x${name.slice(4)}`));
  if (header !== "ok" && header !== "v1" && header !== "legacy") return { records: 0 };
  const legacy = header === "legacy";
  let at = legacy ? 0 : LOG_HEADER_BYTES;
  let records = 0;
  let first: bigint | undefined;
  let last = 0n;
  for (;;) {
    const read = readRecord(bytes, at, legacy);
    if (read.kind !== "record") break;
    records++;
    first ??= read.record.zxid;
    last = read.record.zxid;
    at = read.end;
  }
  return first === undefined ? { records } : { records, zxids: [first, last] };
}

/**
 * Find the damage in data directory `dir` and the steps that make it load; with `apply`, perform them. Changes
 * nothing without `apply`.
 *
 * @example
 * ```ts
 * import { defaultBackend } from "../reactor/backend/default.ts";
 * import { repairDataDir } from "./repair.ts";
 * import assert from "node:assert/strict";
 *
 * const report = await repairDataDir(defaultBackend(), await Deno.makeTempDir());
 * assert.equal(report.damage.length, 0);
 * ```
 */
export async function repairDataDir(
  backend: NetBackend,
  dir: string,
  options: RepairOptions = {},
): Promise<RepairReport> {
  const fs = backend.fs;
  const live = new Set((await fs.readDir(dir)).filter((n) => SNAPSHOT_NAME.test(n) || LOG_NAME.test(n)));
  // The planned content of the files the steps cut or create, so each scan sees the directory as it will be.
  const cut = new Map<string, Uint8Array>();
  const read = async (name: string) => cut.get(name) ?? await fs.readFile(`${dir}/${name}`);
  const damage: Damage[] = [];
  const steps: RepairStep[] = [];
  const moveAside = async (name: string, reason: string) => {
    const bytes = await read(name);
    const counted = LOG_NAME.test(name) ? recordsIn(name, bytes) : { records: 0 };
    steps.push({ action: "moveAside", file: name, offset: 0, bytes: bytes.length, ...counted, reason });
    live.delete(name);
  };
  let scan: ScanResult;
  for (;;) {
    scan = await scanDataDir({ names: [...live], read });
    const found = scan.damage;
    if (found === undefined) break;
    const last = damage.at(-1);
    if (last !== undefined && last.file === found.file && last.offset === found.offset && last.kind === found.kind) {
      throw new Error(`A repair step did not remove the damage it was planned for: ${found.file}: ${found.reason}`);
    }
    damage.push(found);
    const where = `${found.file} is damaged at byte offset ${found.offset}: ${found.reason}`;
    if (found.kind === "snapshot") {
      await moveAside(found.file, where);
      continue;
    }
    const logs = [...live].filter((n) => LOG_NAME.test(n)).sort();
    const snapshot = scan.snapshot?.name;
    const covered = scan.coveredThrough;
    if (covered !== undefined) {
      for (const name of logs.filter((n) => n <= covered)) {
        const why = name === covered ? where : `it precedes the damage in ${covered}`;
        await moveAside(name, `${why}; ${snapshot} holds every transaction in it`);
      }
      continue;
    }
    if (found.kind === "missing") {
      for (const name of logs.filter((n) => n > found.file)) {
        await moveAside(name, `it follows the missing ${found.file}: ${found.reason}`);
      }
      const seal = scan.seal!;
      const bytes = await read(seal.file);
      steps.push({
        action: "truncate",
        file: seal.file,
        offset: seal.offset,
        bytes: bytes.length - seal.offset,
        records: 0,
        reason: `its seal, which names the missing ${found.file} as the next log; the log goes on in this file`,
      });
      cut.set(seal.file, bytes.subarray(0, seal.offset));
      continue;
    }
    if (found.kind === "behindSnapshot") {
      for (const name of logs) {
        await moveAside(name, `it ends before ${snapshot}, which holds every transaction in it: ${found.reason}`);
      }
      const header = encodeLogHeader(zxidOfName(found.file));
      steps.push({
        action: "create",
        file: found.file,
        offset: 0,
        bytes: header.length,
        records: 0,
        reason: `the log goes on after ${snapshot} from zxid ${zxidOfName(found.file)}, in a new file`,
      });
      cut.set(found.file, header);
      live.add(found.file);
      continue;
    }
    const later = logs.filter((n) => n > found.file);
    if (found.offset === 0 || found.kind === "header") {
      await moveAside(found.file, where);
    } else {
      const bytes = await read(found.file);
      steps.push({
        action: "truncate",
        file: found.file,
        offset: found.offset,
        bytes: bytes.length - found.offset,
        records: 0,
        reason: `the damaged record and all after it in the file (${where})`,
      });
      cut.set(found.file, bytes.subarray(0, found.offset));
    }
    for (const name of later) await moveAside(name, `it follows the damage in ${found.file}`);
  }
  const result = {
    damage,
    steps,
    snapshot: scan.snapshot?.name,
    lastZxid: scan.lastZxid,
    tornTail: scan.tornTail,
  };
  if (!options.apply || steps.length === 0) return { ...result, applied: false };
  const stamp = new Date((options.nowMs ?? Date.now)()).toISOString().replace(/[-:]|\.\d+/g, "");
  const damagedDir = `${dir}/damaged-${stamp}`;
  await fs.mkdir(damagedDir, { mode: 0o700 });
  for (const step of steps) {
    const path = `${dir}/${step.file}`;
    if (step.action === "moveAside") {
      await fs.rename(path, `${damagedDir}/${step.file}`);
      continue;
    }
    if (step.action === "create") {
      await fs.writeFile(path, encodeLogHeader(zxidOfName(step.file)), { mode: 0o600 });
      continue;
    }
    const bytes = await fs.readFile(path);
    await fs.writeFile(`${damagedDir}/${step.file}.cut-at-${step.offset}`, bytes.subarray(step.offset), {
      mode: 0o600,
    });
    const handle = await fs.openDurableAppend(path, { mode: 0o600 });
    try {
      await handle.truncate(step.offset);
    } finally {
      handle.close();
    }
  }
  await fs.fsyncDir(damagedDir);
  await fs.fsyncDir(dir);
  return { ...result, applied: true, damagedDir };
}

/**
 * The report as the command prints it.
 *
 * @example
 * ```ts
 * import { defaultBackend } from "../reactor/backend/default.ts";
 * import { formatRepairReport, repairDataDir } from "./repair.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * assert.match(formatRepairReport(dir, await repairDataDir(defaultBackend(), dir)), /^clean: /);
 * await Deno.remove(dir);
 * ```
 */
export function formatRepairReport(dir: string, report: RepairReport): string {
  const lines: string[] = [];
  for (const d of report.damage) {
    const what = d.kind === "missing" || d.kind === "behindSnapshot" ? "is missing" : `at byte offset ${d.offset}`;
    lines.push(`damage: ${dir}/${d.file} ${what}: ${d.reason} (last good zxid ${d.zxid})`);
  }
  const verb = report.applied
    ? { move: "moved", cut: "cut", create: "created" }
    : { move: "would move", cut: "would cut", create: "would create" };
  const aside = report.damagedDir ?? `${dir}/damaged-TIME`;
  for (const step of report.steps) {
    const zxids = step.zxids === undefined ? "" : `, zxids ${step.zxids[0]}..${step.zxids[1]}`;
    const saved = `saved as ${aside}/${step.file}.cut-at-${step.offset}`;
    lines.push(
      step.action === "moveAside"
        ? `${verb.move} ${dir}/${step.file} to ${aside}/: ${step.bytes} bytes, ${step.records} whole records` +
          `${zxids} (${step.reason})`
        : step.action === "create"
        ? `${verb.create} ${dir}/${step.file}, holding only its file header (${step.reason})`
        : `${verb.cut} ${dir}/${step.file} at offset ${step.offset}: drops ${step.bytes} bytes, ${step.reason} ` +
          `(${saved})`,
    );
  }
  if (report.tornTail !== undefined) {
    const t = report.tornTail;
    const what = t.zeros ? "zero-filled tail" : "torn tail";
    lines.push(`${what}: the server will cut ${dir}/${t.file} at offset ${t.offset} (${t.bytesCut} bytes) at start`);
  }
  const state = `${report.snapshot ?? "no snapshot"} and the records up to zxid ${report.lastZxid}`;
  if (report.damage.length === 0) {
    lines.push(`clean: ${dir} loads ${state}`);
  } else if (report.applied) {
    lines.push(`repaired: ${dir} now loads ${state}`);
  } else {
    lines.push(`after the repair ${dir} would load ${state}`);
    lines.push("nothing was changed; run again with --apply to do it (stop the server first)");
  }
  return lines.join("\n") + "\n";
}

const USAGE = "usage: registry-repair --data DIR [--apply]\n" +
  "  (deno run -A jsr:@dwt/rpc/registry-repair ...; in this repository deno task registry-repair ...)\n" +
  "  prints what a repair of the registry data directory DIR would drop; --apply does it, moving what it drops\n" +
  "  into DIR/damaged-TIME/. Exit 0: clean or repaired, 1: damage remains, 2: usage\n";

/**
 * Run the command with `args`; resolves with its exit code.
 *
 * @example
 * ```ts
 * import { main } from "./repair.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * assert.equal(await main(["--data", dir]), 0); // prints "clean: ..."
 * await Deno.remove(dir);
 * ```
 */
export async function main(args: string[], backend: NetBackend = defaultBackend()): Promise<number> {
  let values: { data?: string; apply?: boolean; help?: boolean };
  try {
    values = parseArgs({
      args,
      options: { data: { type: "string" }, apply: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    }).values;
  } catch (error) {
    backend.process.writeStderr(
      `Cannot read the command line: ${(error as Error).message} (see registry-repair --help)\n`,
    );
    return 2;
  }
  if (values.help) {
    backend.process.writeStdout(USAGE);
    return 0;
  }
  if (values.data === undefined) {
    backend.process.writeStderr("Cannot repair as '--data DIR' is missing (see registry-repair --help)\n");
    return 2;
  }
  const dir = values.data.replace(/\/+$/, "") || "/";
  try {
    const report = await repairDataDir(backend, dir, { apply: values.apply ?? false });
    backend.process.writeStdout(formatRepairReport(dir, report));
    if (report.damage.length === 0) return 0;
    if (!report.applied) return 1;
    const after = await repairDataDir(backend, dir);
    if (after.damage.length === 0) return 0;
    backend.process.writeStdout(formatRepairReport(dir, after));
    return 1;
  } catch (error) {
    backend.process.writeStderr(`Cannot repair ${dir}: ${error instanceof Error ? error.message : error}\n`);
    return 1;
  }
}

if (defaultBackend().process.isMain(import.meta)) {
  defaultBackend().process.exit(await main(defaultBackend().process.args()));
}
