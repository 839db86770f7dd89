// Helpers shared by txn_log_test.ts and repair_test.ts: real files in temp dirs, records, damage.
import assert from "node:assert/strict";
import { defaultBackend } from "../../reactor/backend/default.ts";
import { Logger, type LogOutput, setLogger } from "../../reactor/logger.ts";
import type { DataTree } from "../server/data_tree.ts";
import type { RegistryError } from "../registry_error.ts";
import { applyRecord, TxnLog, type TxnLogOptions, type TxnRecord } from "../storage/txn_log.ts";
import { LOG_HEADER_BYTES, readRecord } from "../storage/txn_record.ts";

export const backend = defaultBackend();

/** The i-th record of a test history: mostly creates, some sets and sessions, all deterministic. */
export function recordAt(zxid: bigint): TxnRecord {
  const n = Number(zxid);
  if (n % 7 === 0) {
    return {
      type: "createSession",
      zxid,
      timeMs: n,
      sessionId: BigInt(1000 + n),
      secret: new Uint8Array([n & 255, 1, 2, 3]),
      authorized: true,
      token: `t${n}`,
    };
  }
  if (n % 5 === 0) return { type: "set", zxid, timeMs: n, path: "/", data: new TextEncoder().encode(`s${n}`) };
  return {
    type: "create",
    zxid,
    timeMs: n,
    path: `/n${n}`,
    data: new TextEncoder().encode(`data of ${n}`.repeat(1 + (n % 3))),
    nodeType: 1,
    sessionId: 0n,
  };
}

/** Append records n..m through `log` (one by one or all at once), applying each in its callback. */
export async function appendRange(
  log: TxnLog,
  tree: DataTree,
  count: number,
  { oneByOne = false } = {},
): Promise<Array<RegistryError | undefined>> {
  const results: Promise<RegistryError | undefined>[] = [];
  for (let i = 0; i < count; i++) {
    const record = recordAt(log.nextZxid);
    const result = new Promise<RegistryError | undefined>((resolve) => {
      log.append(record, (error) => {
        if (error === undefined) applyRecord(tree, record);
        resolve(error);
      });
    });
    results.push(result);
    if (oneByOne) await result;
  }
  return await Promise.all(results);
}

/** A fresh data dir with `count` records written (one write each) and closed. */
export async function writeHistory(count: number, options: TxnLogOptions = {}): Promise<string> {
  const dir = `${await Deno.makeTempDir({ prefix: "txnlog-" })}/data`;
  const { log, tree } = await TxnLog.open(backend, dir, options);
  await appendRange(log, tree, count, { oneByOne: true });
  await log.close();
  return dir;
}

/** The paths and zxid a clean replay of records 1..n gives. */
export function expectedPaths(n: number): string[] {
  const paths = ["/"];
  for (let i = 1; i <= n; i++) {
    const r = recordAt(BigInt(i));
    if (r.type === "create") paths.push(r.path);
  }
  return paths.sort();
}

/** Byte offsets of the records in a format-1 log file. */
export function recordOffsets(bytes: Uint8Array): number[] {
  const offsets: number[] = [];
  let at = LOG_HEADER_BYTES;
  while (at < bytes.length) {
    const read = readRecord(bytes, at);
    if (read.kind !== "record") break;
    offsets.push(at);
    at = read.end;
  }
  return offsets;
}

/** The bytes of a log up to the end of its last whole record: its size without the zeros written ahead. */
export function loggedBytesSync(path: string): number {
  const bytes = Deno.readFileSync(path);
  const offsets = recordOffsets(bytes);
  if (offsets.length === 0) return Math.min(bytes.length, LOG_HEADER_BYTES);
  return (readRecord(bytes, offsets.at(-1)!) as { end: number }).end;
}

export async function listDir(dir: string): Promise<string[]> {
  return (await backend.fs.readDir(dir)).sort();
}

export async function flipByte(path: string, offset: number, mask = 0x40): Promise<void> {
  const bytes = await Deno.readFile(path);
  bytes[offset]! ^= mask;
  await Deno.writeFile(path, bytes);
}

/** A copy of every file of `dir` (to prove nothing changed). */
export async function dirContents(dir: string): Promise<Map<string, string>> {
  const contents = new Map<string, string>();
  for (const name of await listDir(dir)) {
    const info = await Deno.stat(`${dir}/${name}`);
    contents.set(name, info.isDirectory ? "<dir>" : Array.from(await Deno.readFile(`${dir}/${name}`)).join(","));
  }
  return contents;
}

/** Run `fn` with the logger's lines captured (WARN and up, plus INFO). */
export async function withLogLines<T>(fn: (lines: string[]) => Promise<T>): Promise<T> {
  const lines: string[] = [];
  const output: LogOutput = {
    write: (line) => void lines.push(line),
    flush: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  const previous = setLogger(new Logger({ outputs: [output] }));
  try {
    return await fn(lines);
  } finally {
    setLogger(previous);
  }
}

export function assertPaths(tree: DataTree, n: number): void {
  assert.deepEqual(tree.paths().sort(), expectedPaths(n));
}
