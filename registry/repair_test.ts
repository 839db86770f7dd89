import assert from "node:assert/strict";
import { formatRepairReport, main, repairDataDir } from "./repair.ts";
import { TxnLog } from "./storage/txn_log.ts";
import {
  appendRange,
  assertPaths,
  backend,
  dirContents,
  flipByte,
  listDir,
  recordOffsets,
  writeHistory,
} from "./testdata/storage_fixture.ts";
import { needs } from "../reactor/testdata/permissions.ts";

const LOG1 = "log.0000000000000001";

async function runMain(args: string[]): Promise<{ code: number; out: string }> {
  let out = "";
  const capture = {
    ...backend.process,
    writeStdout: (t: string) => void (out += t),
    writeStderr: (t: string) => void (out += t),
  };
  const code = await main(args, { ...backend, process: capture });
  return { code, out };
}

Deno.test("repairDataDir on a clean directory reports nothing to do and exits 0", needs("read", "write"), async () => {
  const dir = await writeHistory(12, { snapshotEveryTxns: 5 });
  const report = await repairDataDir(backend, dir);
  assert.deepEqual(report.damage, []);
  assert.deepEqual(report.steps, []);
  assert.equal(report.lastZxid, 12n);
  const { code, out } = await runMain(["--data", dir]);
  assert.equal(code, 0);
  assert.match(out, /clean: .* loads snapshot\.\w+ and the records up to zxid 12/);
});

Deno.test(
  "registry-repair dry run names the damage and drops nothing; --apply lets open load the records before it",
  needs("read", "write"),
  async () => {
    const dir = await writeHistory(20);
    const offsets = recordOffsets(await Deno.readFile(`${dir}/${LOG1}`));
    await flipByte(`${dir}/${LOG1}`, offsets[13]! + 18);
    const before = await dirContents(dir);

    const dry = await runMain(["--data", dir]);
    assert.equal(dry.code, 1);
    assert.match(dry.out, new RegExp(`damage: ${dir}/${LOG1} at byte offset ${offsets[13]}: .*last good zxid 13`));
    assert.match(dry.out, new RegExp(`would cut ${dir}/${LOG1} at offset ${offsets[13]}: drops \\d+ bytes`));
    assert.match(dry.out, /would load no snapshot and the records up to zxid 13/);
    assert.match(dry.out, /nothing was changed/);
    assert.deepEqual(await dirContents(dir), before, "a dry run changes nothing");

    const applied = await runMain(["--data", dir, "--apply"]);
    assert.equal(applied.code, 0, applied.out);
    assert.match(applied.out, /repaired: .* now loads no snapshot and the records up to zxid 13/);
    const damaged = (await listDir(dir)).filter((n) => n.startsWith("damaged-"));
    assert.equal(damaged.length, 1);
    const saved = await Deno.readFile(`${dir}/${damaged[0]}/${LOG1}.cut-at-${offsets[13]}`);
    const original = before.get(LOG1)!.split(",").map(Number);
    assert.deepEqual([...saved], original.slice(offsets[13]), "the cut bytes are saved, not lost");

    const { log, tree } = await TxnLog.open(backend, dir);
    assertPaths(tree, 13);
    await appendRange(log, tree, 3);
    await log.close();
    const again = await TxnLog.open(backend, dir);
    assertPaths(again.tree, 16);
    await again.log.close();
  },
);

Deno.test(
  "repairDataDir falls back from a damaged snapshot to the older one, dropping no record",
  needs("read", "write"),
  async () => {
    // Two sessions of 12 and 21 records, each taking exactly one snapshot (close waits for it).
    const dir = await writeHistory(12, { snapshotEveryTxns: 10 });
    const session = await TxnLog.open(backend, dir, { snapshotEveryTxns: 20 });
    await appendRange(session.log, session.tree, 21, { oneByOne: true });
    await session.log.close();
    const snapshots = (await listDir(dir)).filter((n) => n.startsWith("snapshot."));
    assert.equal(snapshots.length, 2);
    await flipByte(`${dir}/${snapshots[1]}`, 40);
    const dry = await repairDataDir(backend, dir);
    assert.equal(dry.damage[0]?.kind, "snapshot");
    assert.deepEqual(dry.steps.map((s) => [s.action, s.file]), [["moveAside", snapshots[1]]]);
    assert.equal(dry.snapshot, snapshots[0]);
    assert.equal(dry.lastZxid, 33n, "the older snapshot and the logs after it hold everything");
    const applied = await repairDataDir(backend, dir, { apply: true });
    assert.ok(applied.applied);
    const { log, tree } = await TxnLog.open(backend, dir);
    assertPaths(tree, 33);
    await log.close();
  },
);

Deno.test(
  "repairDataDir for a missing snapshot whose logs were purged says it would drop every log",
  needs("read", "write"),
  async () => {
    const dir = await writeHistory(45, { snapshotEveryTxns: 10 });
    for (const name of await listDir(dir)) if (name.startsWith("snapshot.")) await Deno.remove(`${dir}/${name}`);
    const logs = (await listDir(dir)).filter((n) => n.startsWith("log."));
    const report = await repairDataDir(backend, dir);
    assert.equal(report.damage[0]?.kind, "gap");
    assert.deepEqual(report.steps.map((s) => s.file), logs);
    assert.equal(report.lastZxid, 0n);
    const text = formatRepairReport(dir, report);
    assert.match(text, /would move .*whole records, zxids \d+\.\.\d+/);
    assert.match(text, /would load no snapshot and the records up to zxid 0/);
  },
);

Deno.test(
  "registry-repair --apply of a bad header in an older log moves it and the later logs aside",
  needs("read", "write"),
  async () => {
    const dir = await writeHistory(30, { snapshotEveryTxns: 1000 });
    // Snapshots roll the log into new files; without the snapshots every log is in the chain from zxid 1.
    const { log, tree } = await TxnLog.open(backend, dir, { snapshotEveryTxns: 1 });
    await appendRange(log, tree, 2, { oneByOne: true });
    await log.close();
    const logs = (await listDir(dir)).filter((n) => n.startsWith("log."));
    assert.ok(logs.length >= 2, logs.join(" "));
    const snapshots = (await listDir(dir)).filter((n) => n.startsWith("snapshot."));
    for (const s of snapshots) await Deno.remove(`${dir}/${s}`);
    await flipByte(`${dir}/${logs[0]}`, 2);
    const report = await repairDataDir(backend, dir, { apply: true });
    assert.equal(report.damage[0]?.kind, "header");
    assert.deepEqual(report.steps.map((s) => s.file), logs);
    const moved = (await listDir(`${report.damagedDir}`)).sort();
    assert.deepEqual(moved, logs);
    const { code } = await runMain(["--data", dir]);
    assert.equal(code, 0);
  },
);

Deno.test("registry-repair usage errors exit 2", async () => {
  assert.equal((await runMain([])).code, 2);
  assert.equal((await runMain(["--data"])).code, 2);
  assert.equal((await runMain(["--bogus", "x"])).code, 2);
});
