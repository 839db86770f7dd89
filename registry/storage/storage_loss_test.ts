// Lost and damaged log files: each refuses the start naming the file, and the repair is the one way to accept it.
import assert from "node:assert/strict";
import type { NetBackend } from "../../reactor/backend/net_backend.ts";
import { hex, zxidOfName } from "./_data_dir.ts";
import { RegistryErrorCode } from "../registry_error.ts";
import { formatRepairReport, repairDataDir, type RepairReport } from "../repair.ts";
import { StorageError, TxnLog, type TxnLogOptions } from "./txn_log.ts";
import { encodeLogHeader, encodeRecord, encodeSeal, LOG_HEADER_BYTES, readRecord, SEAL_BYTES } from "./txn_record.ts";
import {
  appendRange,
  assertPaths,
  backend,
  dirContents,
  flipByte,
  listDir,
  recordAt,
  recordOffsets,
  withLogLines,
  writeHistory,
} from "../testdata/storage_fixture.ts";
import { needs } from "../../reactor/testdata/permissions.ts";

const logsOf = async (dir: string) => (await listDir(dir)).filter((n) => n.startsWith("log."));
const snapshotsOf = async (dir: string) => (await listDir(dir)).filter((n) => n.startsWith("snapshot."));

/** The real backend, but every snapshot write fails (a full disk for them): the log still rolls at each one. */
const noSnapshots: NetBackend = {
  ...backend,
  fs: {
    ...backend.fs,
    writeFile: (path, data, options) =>
      /snapshot\./.test(path)
        ? Promise.reject(Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" }))
        : backend.fs.writeFile(path, data, options),
  },
};

/** A data dir of `count` records in log files of `every` records each, and no snapshot. */
async function writeSegments(count: number, every: number): Promise<string> {
  const dir = `${await Deno.makeTempDir({ prefix: "storage-loss-" })}/data`;
  await withLogLines(async () => {
    const { log, tree } = await TxnLog.open(noSnapshots, dir, { snapshotEveryTxns: every });
    await appendRange(log, tree, count, { oneByOne: true });
    await log.close();
  });
  return dir;
}

/** Open must refuse `dir` with a StorageError naming `file`, changing nothing. */
async function assertRefused(dir: string, file: string): Promise<StorageError> {
  const before = await dirContents(dir);
  const error = await TxnLog.open(backend, dir).then(
    async ({ log }) => {
      await log.close();
      return undefined;
    },
    (error: unknown) => error,
  );
  assert.ok(error instanceof StorageError, `expected a StorageError, got ${error}`);
  assert.equal(error.code, RegistryErrorCode.DATA_INCONSISTENCY);
  assert.equal(error.file, `${dir}/${file}`, error.message);
  assert.ok(error.message.includes(`${dir}/${file}`), error.message);
  assert.match(error.message, /registry-repair --data/);
  // What the fault suite asks of every refusal: the file, a byte offset and a zxid.
  assert.match(error.message, /byte offset \d+/);
  assert.match(error.message, /zxid/);
  assert.deepEqual(await dirContents(dir), before, "a refused open changes nothing");
  return error;
}

/**
 * Run the repair dry (it changes nothing and says what a start would load), apply it, and open: the start must
 * load exactly what the repair said it keeps, and go on from there.
 */
async function repairAndOpen(
  dir: string,
  options: TxnLogOptions = {},
): Promise<{ report: RepairReport; text: string }> {
  const before = await dirContents(dir);
  const dry = await repairDataDir(backend, dir);
  assert.equal(dry.applied, false);
  assert.ok(dry.damage.length > 0);
  assert.deepEqual(await dirContents(dir), before, "a dry run changes nothing");
  const text = formatRepairReport(dir, dry);
  const report = await repairDataDir(backend, dir, { apply: true });
  assert.ok(report.applied);
  assert.equal(report.lastZxid, dry.lastZxid);
  assert.equal(report.snapshot, dry.snapshot);
  assert.deepEqual((await repairDataDir(backend, dir)).damage, [], "clean after --apply");
  const { log, tree } = await TxnLog.open(backend, dir, options);
  assert.equal(log.lastZxid, report.lastZxid);
  assertPaths(tree, Number(report.lastZxid));
  await appendRange(log, tree, 3, { oneByOne: true });
  await log.close();
  const again = await TxnLog.open(backend, dir);
  assertPaths(again.tree, Number(report.lastZxid) + 3);
  await again.log.close();
  return { report, text };
}

/** Whole records in a log file (the fixture's recordOffsets stops at a seal). */
async function recordsIn(path: string): Promise<number> {
  return recordOffsets(await Deno.readFile(path)).length;
}

/** Whether the log file ends in a seal naming `next`. */
async function endsInSeal(path: string, next: bigint): Promise<boolean> {
  const bytes = await Deno.readFile(path);
  const read = readRecord(bytes, bytes.length - SEAL_BYTES);
  return read.kind === "seal" && read.nextZxid === next;
}

Deno.test(
  "TxnLog.open refuses a deleted newest log, named by the seal before it; repair --apply keeps the rest",
  needs("read", "write"),
  async () => {
    // With snapshots (the seal and the snapshot both outlive the file), and with none (only the seal does).
    for (const dir of [await writeHistory(47, { snapshotEveryTxns: 10 }), await writeSegments(30, 8)]) {
      const logs = await logsOf(dir);
      const newest = logs.at(-1)!;
      const held = await recordsIn(`${dir}/${newest}`);
      assert.ok(logs.length >= 2 && held > 0, logs.join(" "));
      assert.ok(await endsInSeal(`${dir}/${logs.at(-2)}`, zxidOfName(newest)), "the log before it is sealed");
      await Deno.remove(`${dir}/${newest}`);

      const error = await assertRefused(dir, newest);
      assert.match(error.message, new RegExp(`${newest} is missing: ${logs.at(-2)} ends \\(at byte offset \\d+\\)`));
      assert.match(error.message, new RegExp(`every transaction from zxid ${zxidOfName(newest)} on is lost`));

      const { report, text } = await repairAndOpen(dir);
      assert.equal(report.lastZxid, zxidOfName(newest) - 1n, "everything before the lost file is kept");
      assert.deepEqual(report.steps.map((s) => [s.action, s.file]), [["truncate", logs.at(-2)]]);
      assert.match(text, new RegExp(`damage: ${dir}/${newest} .*every transaction from zxid \\d+ on is lost`));
      assert.match(text, /would cut .* drops 29 bytes, its seal, which names the missing/);
    }
  },
);

Deno.test(
  "TxnLog.open refuses a deleted log in the middle of the chain, naming it and the zxids lost with it",
  needs("read", "write"),
  async () => {
    const dir = await writeSegments(38, 8);
    const logs = await logsOf(dir);
    assert.deepEqual(logs.map(zxidOfName), [1n, 9n, 17n, 25n, 33n]);
    await Deno.remove(`${dir}/${logs[2]}`);
    const error = await assertRefused(dir, logs[2]!);
    assert.match(error.message, /zxids 17 to 24 are lost with the missing file/);
    assert.equal(error.zxid, 16n);
    const { report } = await repairAndOpen(dir);
    assert.equal(report.lastZxid, 16n);
    assert.deepEqual(report.steps.map((s) => [s.action, s.file]), [
      ["moveAside", logs[3]],
      ["moveAside", logs[4]],
      ["truncate", logs[1]],
    ]);
    assert.deepEqual(report.steps.map((s) => s.records), [8, 6, 0], "the moved logs' records are counted");

    // A deleted log older than the one the newest snapshot goes on in costs no transaction, but still refuses.
    const covered = await writeSegments(38, 8);
    const session = await TxnLog.open(backend, covered, { snapshotEveryTxns: 1 });
    await appendRange(session.log, session.tree, 1);
    await session.log.close();
    assert.deepEqual(await snapshotsOf(covered), ["snapshot.0000000000000027"]);
    await Deno.remove(`${covered}/${logs[2]}`);
    const refused = await assertRefused(covered, logs[2]!);
    assert.match(refused.message, /zxids 17 to 24 are lost/);
    assert.match(refused.message, /snapshot\.0000000000000027 holds every one of them .* a repair would drop none/);
    const repaired = await repairAndOpen(covered);
    assert.equal(repaired.report.lastZxid, 39n, "nothing a start loads is dropped");
    assert.deepEqual(repaired.report.steps.map((s) => s.file), [logs[0], logs[1]]);
  },
);

Deno.test(
  "TxnLog.open refuses a flipped byte in an older log, not only in the newest; repair --apply keeps what precedes it",
  needs("read", "write"),
  async () => {
    const dir = await writeSegments(38, 8);
    const logs = await logsOf(dir);
    const offsets = recordOffsets(await Deno.readFile(`${dir}/${logs[1]}`));
    await flipByte(`${dir}/${logs[1]}`, offsets[3]! + 16);
    const error = await assertRefused(dir, logs[1]!);
    assert.equal(error.offset, offsets[3]);
    assert.equal(error.zxid, 11n);
    assert.match(error.message, new RegExp(`nor the 3 later log file\\(s\\) \\(${logs[2]}, ${logs[3]}, ${logs[4]}\\)`));
    const { report } = await repairAndOpen(dir);
    assert.equal(report.lastZxid, 11n);

    // Older than the newest snapshot: the snapshot holds all of it, and the repair drops no loaded transaction.
    const older = await writeHistory(47, { snapshotEveryTxns: 10 });
    const oldest = (await logsOf(older))[0]!;
    assert.ok(zxidOfName(oldest) <= zxidOfName((await snapshotsOf(older)).at(-1)!), "a log before the snapshot");
    await flipByte(`${older}/${oldest}`, recordOffsets(await Deno.readFile(`${older}/${oldest}`))[1]! + 14);
    const covered = await assertRefused(older, oldest);
    assert.match(covered.message, /last good zxid there is \d+, but snapshot\.\w+ holds every transaction of /);
    assert.match(covered.message, /so a repair would drop none that a start loads/);
    const repaired = await repairAndOpen(older);
    assert.equal(repaired.report.lastZxid, 47n);
    assert.deepEqual(repaired.report.steps.map((s) => [s.action, s.file]), [["moveAside", oldest]]);
  },
);

Deno.test(
  "TxnLog.open refuses a snapshot newer than every log; repair --apply starts the log after it",
  needs("read", "write"),
  async () => {
    // Every log deleted.
    const dir = await writeHistory(47, { snapshotEveryTxns: 10 });
    const snapshot = (await snapshotsOf(dir)).at(-1)!;
    const zxid = zxidOfName(snapshot);
    for (const name of await logsOf(dir)) await Deno.remove(`${dir}/${name}`);
    const error = await assertRefused(dir, `log.${hex(zxid + 1n)}`);
    assert.match(error.message, new RegExp(`no log file is left, but ${snapshot} is only written once`));
    const { report, text } = await repairAndOpen(dir);
    assert.equal(report.lastZxid, zxid);
    assert.equal(report.snapshot, snapshot);
    assert.deepEqual(report.steps.map((s) => [s.action, s.file]), [["create", `log.${hex(zxid + 1n)}`]]);
    assert.match(text, /would create .*holding only its file header/);

    // The logs restored from a backup taken before the snapshot: they end before its zxid.
    const restored = await writeHistory(15, { snapshotEveryTxns: 1000 });
    const backup = await Deno.readFile(`${restored}/log.0000000000000001`);
    const session = await TxnLog.open(backend, restored, { snapshotEveryTxns: 10 });
    await appendRange(session.log, session.tree, 20, { oneByOne: true });
    await session.log.close();
    const newestSnapshot = (await snapshotsOf(restored)).at(-1)!;
    for (const name of await logsOf(restored)) await Deno.remove(`${restored}/${name}`);
    await Deno.writeFile(`${restored}/log.0000000000000001`, backup);
    const behind = await assertRefused(restored, `log.${hex(zxidOfName(newestSnapshot) + 1n)}`);
    assert.match(behind.message, /the newest log, log\.0000000000000001, ends at zxid 15 \(byte offset \d+\)/);
    const repaired = await repairAndOpen(restored);
    assert.equal(repaired.report.lastZxid, zxidOfName(newestSnapshot));
    assert.deepEqual(repaired.report.steps.map((s) => s.action), ["moveAside", "create"]);
  },
);

/** A data dir as a crash during the roll from log.1 (records 1..5) to log.6 leaves it. */
async function interruptedRoll(log1Tail: Uint8Array, log6: Uint8Array): Promise<string> {
  const dir = `${await Deno.makeTempDir({ prefix: "storage-loss-" })}/data`;
  await Deno.mkdir(dir);
  const records = [1n, 2n, 3n, 4n, 5n].map((z) => encodeRecord(recordAt(z)));
  await Deno.writeFile(`${dir}/log.0000000000000001`, concat([encodeLogHeader(1n), ...records, log1Tail]));
  await Deno.writeFile(`${dir}/log.0000000000000006`, log6);
  return dir;
}

Deno.test(
  "TxnLog.open accepts every state a crash during a roll leaves, and finishes the roll by sealing the old log",
  needs("read", "write"),
  async () => {
    const header = encodeLogHeader(6n);
    const seal = encodeSeal(6n);
    const states = {
      "new log created, empty": [new Uint8Array(), new Uint8Array()],
      "new log's header cut short": [new Uint8Array(), header.subarray(0, 9)],
      "new log whole, old not yet sealed": [new Uint8Array(), header],
      "seal cut short": [seal.subarray(0, 20), header],
      "seal cut in its header": [seal.subarray(0, 5), header],
      "seal zero-filled": [new Uint8Array(SEAL_BYTES), header],
      "sealed, new log empty": [seal, header],
    } as const;
    for (const [what, [tail, log6]] of Object.entries(states)) {
      const dir = await interruptedRoll(tail, log6);
      await withLogLines(async (lines) => {
        const { log, tree } = await TxnLog.open(backend, dir);
        assertPaths(tree, 5);
        assert.equal(log.nextZxid, 6n, what);
        if (what !== "sealed, new log empty") assert.ok(lines.some((l) => l.includes("sealed it")), what);
        await appendRange(log, tree, 2);
        await log.close();
      });
      assert.ok(await endsInSeal(`${dir}/log.0000000000000001`, 6n), what);
      assert.deepEqual(await logsOf(dir), ["log.0000000000000001", "log.0000000000000006"], what);
      assert.equal(await recordsIn(`${dir}/log.0000000000000006`), 2, `${what}: appends go on in the new log`);
      // Now the seal is there, losing the new log is detected.
      const copy = await Deno.readFile(`${dir}/log.0000000000000006`);
      await Deno.remove(`${dir}/log.0000000000000006`);
      await assertRefused(dir, "log.0000000000000006");
      await Deno.writeFile(`${dir}/log.0000000000000006`, copy);
      const again = await TxnLog.open(backend, dir);
      assertPaths(again.tree, 7);
      await again.log.close();
    }

    // The same shape with a record cut off the old log is not a crash: that record may have been acknowledged.
    const records = [1n, 2n, 3n, 4n].map((z) => encodeRecord(recordAt(z)));
    const fifth = encodeRecord(recordAt(5n));
    const cut = `${await Deno.makeTempDir({ prefix: "storage-loss-" })}/data`;
    await Deno.mkdir(cut);
    await Deno.writeFile(
      `${cut}/log.0000000000000001`,
      concat([encodeLogHeader(1n), ...records, fifth.subarray(0, 9)]),
    );
    await Deno.writeFile(`${cut}/log.0000000000000006`, header);
    const error = await assertRefused(cut, "log.0000000000000001");
    assert.match(error.message, /cut short by the end of a log that is not the newest/);
  },
);

Deno.test(
  "TxnLog: a seal that cannot be written undoes the roll, or the start finishes it; nothing is lost",
  needs("read", "write"),
  async () => {
    for (const truncateFails of [false, true]) {
      const dir = `${await Deno.makeTempDir({ prefix: "storage-loss-" })}/data`;
      let failSeals = true;
      const faulty: NetBackend = {
        ...noSnapshots,
        fs: {
          ...noSnapshots.fs,
          async openDurableAppend(path, options) {
            const file = await noSnapshots.fs.openDurableAppend(path, options);
            const eio = () => Object.assign(new Error("EIO: i/o error"), { code: "EIO" });
            return {
              append: async (data) => {
                if (!failSeals || data.length !== SEAL_BYTES) return await file.append(data);
                await file.append(data.subarray(0, 11));
                throw eio();
              },
              truncate: (length) => truncateFails && failSeals ? Promise.reject(eio()) : file.truncate(length),
              trim: () => file.trim(),
              size: () => file.size(),
              close: () => file.close(),
            };
          },
        },
      };
      await withLogLines(async () => {
        const { log, tree } = await TxnLog.open(faulty, dir, { snapshotEveryTxns: 5 });
        await appendRange(log, tree, 12, { oneByOne: true });
        failSeals = false;
        await log.close();
      });
      const logs = await logsOf(dir);
      // Undone: every record stays in the first file. Not undone: the log went on in the new files.
      assert.deepEqual(logs.length, truncateFails ? 3 : 1, logs.join(" "));
      const { log, tree } = await withLogLines(() => TxnLog.open(backend, dir));
      assertPaths(tree, 12);
      await log.close();
      for (const [i, name] of logs.slice(0, -1).entries()) {
        assert.ok(await endsInSeal(`${dir}/${name}`, zxidOfName(logs[i + 1]!)), `${name} is sealed by the start`);
      }
    }
  },
);

Deno.test(
  "TxnLog opens log files of format 1 (no seals), appends to them, and seals them when the log rolls",
  needs("read", "write"),
  async () => {
    const dir = `${await Deno.makeTempDir({ prefix: "storage-loss-" })}/data`;
    await Deno.mkdir(dir);
    const records = (from: number, to: number) =>
      Array.from({ length: to - from + 1 }, (_, i) => encodeRecord(recordAt(BigInt(from + i))));
    await Deno.writeFile(`${dir}/log.0000000000000001`, concat([encodeLogHeader(1n, 1), ...records(1, 4)]));
    await Deno.writeFile(`${dir}/log.0000000000000005`, concat([encodeLogHeader(5n, 1), ...records(5, 7)]));
    const { log, tree } = await TxnLog.open(backend, dir, { snapshotEveryTxns: 5 });
    assertPaths(tree, 7);
    await appendRange(log, tree, 3, { oneByOne: true });
    await log.close();
    // The first append finds 7 transactions since the last snapshot: one is taken at 8 and the log rolls to log.9.
    assert.deepEqual(await logsOf(dir), ["log.0000000000000001", "log.0000000000000005", "log.0000000000000009"]);
    assert.ok(!(await endsInSeal(`${dir}/log.0000000000000001`, 5n)), "an old file that was not rolled stays as is");
    assert.ok(await endsInSeal(`${dir}/log.0000000000000005`, 9n), "the old file the log rolled from is sealed");
    const again = await TxnLog.open(backend, dir);
    assertPaths(again.tree, 10);
    await again.log.close();
    const newest = await Deno.readFile(`${dir}/log.0000000000000009`);
    assert.equal(newest[4], 2, "new files are format 2");
    assert.equal(recordOffsets(newest).length, 2);
    assert.equal(recordOffsets(newest)[0], LOG_HEADER_BYTES);
  },
);

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

Deno.test(
  "TxnLog: kill -9 at random moments while the log rolls after every batch never refuses a start nor loses a record",
  needs("read", "write", "run"),
  async () => {
    const dir = `${await Deno.makeTempDir({ prefix: "storage-loss-" })}/data`;
    const writer = new URL("../testdata/log_writer.ts", import.meta.url).pathname;
    let acked = 0n;
    let rolls = 0;
    let sealedAtStart = 0;
    let tornAtStart = 0;
    for (let round = 0; round < 20; round++) {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", writer, dir, "1"],
        stdout: "piped",
        stderr: "null",
      }).spawn();
      const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let buffered = "";
      let ready = false;
      const killAt = performance.now() + 1_000_000;
      let deadline = killAt;
      while (performance.now() < deadline) {
        const { value, done } = await lines.read();
        if (done) break;
        buffered += value;
        const parts = buffered.split("\n");
        buffered = parts.pop()!;
        for (const line of parts) {
          const [word, zxid] = line.split(" ");
          if (word === "READY" && !ready) {
            ready = true;
            // Kill somewhere in the next 5..60 ms: dozens of rolls, snapshots and purges happen in that time.
            deadline = performance.now() + 5 + ((round * 37) % 56);
          }
          if (word === "acked") acked = BigInt(zxid!) > acked ? BigInt(zxid!) : acked;
        }
      }
      child.kill("SIGKILL");
      await child.status;
      await lines.cancel().catch(() => {});
      assert.ok(ready, `round ${round}: the writer never got ready`);
      const { log, tree } = await withLogLines(async (logged) => {
        const opened = await TxnLog.open(backend, dir);
        if (logged.some((l) => l.includes("sealed it"))) sealedAtStart++;
        if (logged.some((l) => l.includes("torn record"))) tornAtStart++;
        return opened;
      });
      assert.ok(log.lastZxid >= acked, `round ${round}: zxid ${log.lastZxid} loaded, ${acked} was acknowledged`);
      assertPaths(tree, Number(log.lastZxid));
      await log.close();
      rolls = (await logsOf(dir)).length;
    }
    assert.ok(acked > 20n, `only ${acked} records written`);
    assert.ok(rolls >= 1);
    console.log(`${acked} records acknowledged; ${sealedAtStart} starts sealed a log, ${tornAtStart} cut a torn tail`);
  },
);
