import assert from "node:assert/strict";
import type { NetBackend } from "../../reactor/backend/net_backend.ts";
import { type RegistryError, RegistryErrorCode } from "../registry_error.ts";
import { repairDataDir } from "../repair.ts";
import { encodeSnapshot } from "./snapshot_file.ts";
import { applyRecord, StorageError, TxnLog } from "./txn_log.ts";
import { encodeLogHeader, encodeRecord, LOG_HEADER_BYTES, readRecord } from "./txn_record.ts";
import { DataTree } from "../server/data_tree.ts";
import {
  appendRange,
  assertPaths,
  backend,
  dirContents,
  flipByte,
  listDir,
  loggedBytesSync,
  recordAt,
  recordOffsets,
  withLogLines,
  writeHistory,
} from "../testdata/storage_fixture.ts";
import { needs } from "../../reactor/testdata/permissions.ts";

const LOG1 = "log.0000000000000001";

async function refusal(dir: string): Promise<StorageError> {
  const before = await dirContents(dir);
  let caught: unknown;
  try {
    const { log } = await TxnLog.open(backend, dir);
    await log.close();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof StorageError, `expected a StorageError, got ${caught}`);
  assert.equal(caught.code, RegistryErrorCode.DATA_INCONSISTENCY);
  assert.match(caught.message, /registry-repair --data/);
  assert.deepEqual(await dirContents(dir), before, "a refused open changes nothing");
  return caught;
}

async function reopen(dir: string) {
  return await TxnLog.open(backend, dir);
}

Deno.test("TxnLog reopens with every durable record, zxids continuing", needs("read", "write"), async () => {
  const dir = await writeHistory(30);
  const { log, tree } = await reopen(dir);
  assertPaths(tree, 30);
  assert.equal(log.lastZxid, 30n);
  assert.equal(log.nextZxid, 31n);
  await appendRange(log, tree, 5);
  await log.close();
  const again = await reopen(dir);
  assertPaths(again.tree, 35);
  await again.log.close();
});

Deno.test(
  "TxnLog.append groups concurrent appends into one write and calls done in order",
  needs("read", "write"),
  async () => {
    const dir = `${await Deno.makeTempDir()}/d`;
    const { log, tree } = await TxnLog.open(backend, dir);
    const order: bigint[] = [];
    const results = await Promise.all(Array.from({ length: 50 }, () => {
      const record = recordAt(log.nextZxid);
      return new Promise<RegistryError | undefined>((resolve) =>
        log.append(record, (error) => {
          order.push(record.zxid);
          applyRecord(tree, record);
          resolve(error);
        })
      );
    }));
    assert.ok(results.every((r) => r === undefined));
    assert.deepEqual(order, Array.from({ length: 50 }, (_, i) => BigInt(i + 1)));
    assert.ok(log.syncs <= 2, `50 concurrent appends took ${log.syncs} writes`);
    await log.close();
  },
);

Deno.test("TxnLog.append throws a RangeError for a zxid that is not nextZxid", needs("read", "write"), async () => {
  const dir = `${await Deno.makeTempDir()}/d`;
  const { log } = await TxnLog.open(backend, dir);
  assert.throws(() => log.append(recordAt(2n), () => {}), RangeError);
  await log.close();
  const closed = await new Promise<RegistryError | undefined>((resolve) => log.append(recordAt(1n), resolve));
  assert.equal(closed?.code, RegistryErrorCode.CLOSED);
});

Deno.test(
  "TxnLog.open refuses a flipped byte in a middle record, naming file, offset and zxid, deleting nothing",
  needs("read", "write"),
  async () => {
    const dir = await writeHistory(20);
    const offsets = recordOffsets(await Deno.readFile(`${dir}/${LOG1}`));
    assert.equal(offsets.length, 20);
    await flipByte(`${dir}/${LOG1}`, offsets[9]! + 20);
    const error = await refusal(dir);
    assert.equal(error.file, `${dir}/${LOG1}`);
    assert.equal(error.offset, offsets[9]);
    assert.equal(error.zxid, 9n);
    assert.match(error.message, new RegExp(`${LOG1} is damaged at byte offset ${offsets[9]}`));
    assert.match(error.message, /last good zxid is 9/);
  },
);

Deno.test(
  "TxnLog.open refuses a flipped length byte in a middle record of the newest log",
  needs("read", "write"),
  async () => {
    const dir = await writeHistory(20);
    const offsets = recordOffsets(await Deno.readFile(`${dir}/${LOG1}`));
    // The length grows past the end of the file: without the header CRC this would pass for a torn tail.
    await flipByte(`${dir}/${LOG1}`, offsets[12]! + 1, 0x10);
    const error = await refusal(dir);
    assert.equal(error.offset, offsets[12]);
    assert.equal(error.zxid, 12n);
  },
);

Deno.test(
  "TxnLog.open refuses a bad first record of the newest log that is not at its end",
  needs("read", "write"),
  async () => {
    const dir = await writeHistory(5);
    await flipByte(`${dir}/${LOG1}`, LOG_HEADER_BYTES + 14);
    const error = await refusal(dir);
    assert.equal(error.offset, LOG_HEADER_BYTES);
    assert.equal(error.zxid, 0n);
  },
);

Deno.test(
  "TxnLog.open cuts a torn tail, warns, and appends go on in the same file",
  needs("read", "write"),
  async () => {
    const dir = await writeHistory(10);
    const path = `${dir}/${LOG1}`;
    const good = (await Deno.stat(path)).size;
    const torn = encodeRecord(recordAt(11n));
    await Deno.writeFile(path, torn.subarray(0, torn.length - 3), { append: true });
    await withLogLines(async (lines) => {
      const { log, tree } = await reopen(dir);
      assertPaths(tree, 10);
      assert.equal((await Deno.stat(path)).size, good);
      const warn = lines.find((l) => l.includes("torn record"));
      assert.ok(
        warn?.includes(path) && warn.includes(`offset ${good}`) && warn.includes(`cut ${torn.length - 3} bytes`),
      );
      await appendRange(log, tree, 4);
      await log.close();
    });
    assert.deepEqual(await listDir(dir), [LOG1]);
    const { log, tree } = await reopen(dir);
    assertPaths(tree, 14);
    await log.close();
  },
);

Deno.test(
  "TxnLog writes zeros ahead of its records; a clean close cuts them, a start after a crash cuts them without a warning",
  needs("read", "write"),
  async () => {
    const dir = `${await Deno.makeTempDir()}/d`;
    const path = `${dir}/${LOG1}`;
    const { log, tree } = await TxnLog.open(backend, dir);
    await appendRange(log, tree, 20);
    const logged = loggedBytesSync(path);
    const crashImage = await Deno.readFile(path); // what a crash now leaves: every record is durable
    assert.ok(crashImage.length >= logged + 32 * 1024, "zeros written ahead of the records");
    assert.ok(crashImage.subarray(logged).every((b) => b === 0));
    await log.close();
    assert.equal((await Deno.stat(path)).size, logged, "a clean close cuts them");
    await Deno.writeFile(path, crashImage);
    await withLogLines(async (lines) => {
      const again = await reopen(dir);
      assertPaths(again.tree, 20);
      assert.equal((await Deno.stat(path)).size, logged);
      const line = lines.find((l) => l.includes("zero bytes"));
      assert.ok(line?.includes(`cut ${crashImage.length - logged} bytes at offset ${logged}`), lines.join("\n"));
      assert.ok(line?.includes("INFO"), line);
      assert.ok(!lines.some((l) => l.includes("WARN")), lines.join("\n"));
      await appendRange(again.log, again.tree, 5);
      await again.log.close();
    });
    const last = await reopen(dir);
    assertPaths(last.tree, 25);
    await last.log.close();
  },
);

Deno.test(
  "TxnLog.open cuts a record cut short at a page boundary inside the zeros ahead, and refuses one damaged otherwise",
  needs("read", "write"),
  async () => {
    // The crash image of a log holding 20 records and the zeros written ahead of them, with part of a 21st record
    // (10 KB, not acknowledged) in those zeros: as a kill in the middle of its write leaves it.
    const big = encodeRecord({
      type: "create",
      zxid: 21n,
      timeMs: 21,
      path: "/big",
      data: new Uint8Array(10_000).fill(7),
      nodeType: 1,
      sessionId: 0n,
    });
    const image = async (written: (logged: number) => Uint8Array) => {
      const dir = `${await Deno.makeTempDir()}/d`;
      const path = `${dir}/${LOG1}`;
      const { log, tree } = await TxnLog.open(backend, dir);
      await appendRange(log, tree, 20);
      const logged = loggedBytesSync(path);
      const bytes = await Deno.readFile(path);
      await log.close();
      bytes.set(written(logged), logged);
      await Deno.writeFile(path, bytes);
      return { dir, path, logged, size: bytes.length };
    };
    // Its bytes up to the second page boundary after the last record, then the zeros: a torn tail, cut with a WARN.
    const toPage = (logged: number) => big.subarray(0, 2 * 4096 - (logged % 4096));
    const torn = await image(toPage);
    await withLogLines(async (lines) => {
      const { log, tree } = await reopen(torn.dir);
      assertPaths(tree, 20);
      assert.equal((await Deno.stat(torn.path)).size, torn.logged);
      assert.ok(lines.some((l) => l.includes("WARN") && l.includes("torn record")), lines.join("\n"));
      await log.close();
    });
    // Written whole and damaged since (a flipped byte, zeros after it): refused, however the zeros fall.
    const flipped = await image(() => {
      const copy = big.slice();
      copy[100] = copy[100]! ^ 0x40;
      return copy;
    });
    await assert.rejects(TxnLog.open(backend, flipped.dir), /fails its CRC/);
    // Zeros from a point that is no page boundary: no write stops there, so it is damage too.
    const midPage = await image((logged) => toPage(logged).subarray(0, 2 * 4096 - (logged % 4096) - 10));
    await assert.rejects(TxnLog.open(backend, midPage.dir), /fails its CRC/);
  },
);

Deno.test(
  "TxnLog.open treats trailing zero bytes and a cut-short last record as a torn tail, a bad whole last record as damage",
  needs("read", "write"),
  async () => {
    const zeros = await writeHistory(8);
    await Deno.writeFile(`${zeros}/${LOG1}`, new Uint8Array(4096), { append: true });
    const a = await reopen(zeros);
    assertPaths(a.tree, 8);
    await a.log.close();

    // A whole last record with a flipped body byte was written in full, so it may have been acknowledged: refused.
    const badLast = await writeHistory(8);
    const bytes = await Deno.readFile(`${badLast}/${LOG1}`);
    await flipByte(`${badLast}/${LOG1}`, bytes.length - 2);
    await assert.rejects(TxnLog.open(backend, badLast), /fails its CRC/);
    assert.equal((await Deno.stat(`${badLast}/${LOG1}`)).size, bytes.length, "nothing cut");

    // The same record cut short by the end of the file is a crash mid-write: cut away.
    const cut = await writeHistory(8);
    const offsets = recordOffsets(bytes);
    await Deno.truncate(`${cut}/${LOG1}`, bytes.length - 3);
    const b = await reopen(cut);
    assertPaths(b.tree, 7);
    assert.equal((await Deno.stat(`${cut}/${LOG1}`)).size, offsets[7]);
    await b.log.close();

    // A header cut short by the end of the file.
    const shortHeader = await writeHistory(3);
    await Deno.writeFile(`${shortHeader}/${LOG1}`, encodeRecord(recordAt(4n)).subarray(0, 5), { append: true });
    const c = await reopen(shortHeader);
    assertPaths(c.tree, 3);
    await c.log.close();
  },
);

Deno.test(
  "TxnLog.open refuses a gap in the zxids, within a file and across files",
  needs("read", "write"),
  async () => {
    const within = `${await Deno.makeTempDir()}/d`;
    await Deno.mkdir(within);
    const parts = [encodeLogHeader(1n), ...[1n, 2n, 3n, 5n, 6n].map((z) => encodeRecord(recordAt(z)))];
    await Deno.writeFile(`${within}/${LOG1}`, concat(parts));
    const error = await refusal(within);
    assert.equal(error.zxid, 3n);
    assert.match(error.message, /zxid 5 where zxid 4 comes next/);

    const across = `${await Deno.makeTempDir()}/d`;
    await Deno.mkdir(across);
    await Deno.writeFile(`${across}/${LOG1}`, concat([encodeLogHeader(1n), encodeRecord(recordAt(1n))]));
    await Deno.writeFile(
      `${across}/log.0000000000000003`,
      concat([encodeLogHeader(3n), encodeRecord(recordAt(3n))]),
    );
    const gap = await refusal(across);
    assert.equal(gap.file, `${across}/log.0000000000000003`);
    assert.equal(gap.zxid, 1n);
    assert.match(gap.message, /zxids 2 to 2 are missing/);
  },
);

Deno.test(
  "TxnLog snapshots: the newest two kept with the logs after the older, a reopen holds everything",
  needs("read", "write"),
  async () => {
    const dir = await writeHistory(47, { snapshotEveryTxns: 10 });
    const names = await listDir(dir);
    const snapshots = names.filter((n) => n.startsWith("snapshot."));
    // A snapshot due while the previous one is still being written waits, so how many were taken depends on timing.
    assert.ok(snapshots.length >= 1 && snapshots.length <= 2, names.join(" "));
    assert.ok(names.every((n) => !n.endsWith(".tmp")));
    const { log, tree } = await TxnLog.open(backend, dir, { snapshotEveryTxns: 10 });
    assertPaths(tree, 47);
    await log.close();
  },
);

Deno.test(
  "TxnLog.open refuses a flipped data byte or length byte in the newest snapshot, without falling back",
  needs("read", "write"),
  async () => {
    for (const where of ["data", "length", "tail"] as const) {
      const dir = await writeHistory(25, { snapshotEveryTxns: 10 });
      const snapshot = (await listDir(dir)).filter((n) => n.startsWith("snapshot.")).at(-1)!;
      const path = `${dir}/${snapshot}`;
      const size = (await Deno.stat(path)).size;
      if (where === "data") await flipByte(path, size - 10);
      if (where === "length") await flipByte(path, 22, 0x01);
      if (where === "tail") await Deno.truncate(path, size - 1);
      const error = await refusal(dir);
      assert.equal(error.file, path);
      assert.match(error.message, new RegExp(snapshot));
    }
  },
);

Deno.test(
  "TxnLog.open refuses when the snapshot is deleted and the logs before it were purged",
  needs("read", "write"),
  async () => {
    const dir = await writeHistory(45, { snapshotEveryTxns: 10 });
    for (const name of await listDir(dir)) if (name.startsWith("snapshot.")) await Deno.remove(`${dir}/${name}`);
    const error = await refusal(dir);
    assert.match(error.message, /first record needed is zxid 1 .*snapshot that covered zxids up to \d+ is missing/);
  },
);

Deno.test(
  "TxnLog loads a snapshot written before the checked header (upgrade), saying so",
  needs("read", "write"),
  async () => {
    const dir = `${await Deno.makeTempDir()}/d`;
    await Deno.mkdir(dir);
    const tree = new DataTree();
    for (let z = 1n; z <= 6n; z++) applyRecord(tree, recordAt(z));
    await Deno.writeFile(`${dir}/snapshot.0000000000000006`, tree.serialize());
    await withLogLines(async (lines) => {
      const { log, tree: loaded } = await reopen(dir);
      assertPaths(loaded, 6);
      assert.ok(lines.some((l) => l.includes("no checked header")));
      await appendRange(log, loaded, 2);
      await log.close();
    });
    const { log, tree: again } = await reopen(dir);
    assertPaths(again, 8);
    await log.close();
    // The new format refuses what the old one would have served.
    const damaged = encodeSnapshot(6n, tree.serialize());
    damaged[damaged.length - 1]! ^= 1;
    await Deno.writeFile(`${dir}/snapshot.0000000000000006`, damaged);
    await refusal(dir);
  },
);

Deno.test(
  "TxnLog makes its directory 0700 and its files 0600, tightening an existing directory",
  needs("read", "write"),
  async () => {
    const dir = `${await Deno.makeTempDir()}/d`;
    await Deno.mkdir(dir, { mode: 0o755 });
    await Deno.chmod(dir, 0o755);
    const { log, tree } = await TxnLog.open(backend, dir, { snapshotEveryTxns: 5 });
    await appendRange(log, tree, 12, { oneByOne: true });
    await log.close();
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
    for (const name of await listDir(dir)) {
      assert.equal((await Deno.stat(`${dir}/${name}`)).mode! & 0o777, 0o600, name);
    }
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

interface Faults {
  /** Write this many bytes of the next appends, then fail them with EIO. */
  appendFailsAfter?: number;
  truncateFails?: boolean;
  writeFileFails?: boolean;
}

/** The real backend with faults injected into its file writes (for what a tmpfs cannot show). */
function faultyBackend(faults: Faults): NetBackend {
  const fs = backend.fs;
  return {
    ...backend,
    fs: {
      ...fs,
      async openDurableAppend(path, options) {
        const file = await fs.openDurableAppend(path, options);
        const eio = (what: string) => Object.assign(new Error(`EIO: i/o error, ${what}`), { code: "EIO" });
        return {
          append: async (data) => {
            if (faults.appendFailsAfter === undefined) return await file.append(data);
            await file.append(data.subarray(0, Math.min(faults.appendFailsAfter, data.length)));
            throw eio("write");
          },
          truncate: (length) => faults.truncateFails ? Promise.reject(eio("ftruncate")) : file.truncate(length),
          trim: () => faults.truncateFails ? Promise.reject(eio("ftruncate")) : file.trim(),
          size: () => file.size(),
          close: () => file.close(),
        };
      },
      async writeFile(path, data, options) {
        if (!faults.writeFileFails) return await fs.writeFile(path, data, options);
        await fs.writeFile(path, data.subarray(0, 10), options);
        throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
      },
    },
  };
}

Deno.test(
  "TxnLog write failure: the batch and later appends fail, the file is cut back, the next append works",
  needs("read", "write"),
  async () => {
    const dir = `${await Deno.makeTempDir()}/d`;
    const faults: Faults = {};
    const { log, tree } = await TxnLog.open(faultyBackend(faults), dir);
    assert.deepEqual(await appendRange(log, tree, 5), Array(5).fill(undefined));
    const size = loggedBytesSync(`${dir}/${LOG1}`);
    assert.ok((await Deno.stat(`${dir}/${LOG1}`)).size > size, "zeros are written ahead of the records");
    faults.appendFailsAfter = 7;
    const failed = await appendRange(log, tree, 3);
    assert.ok(failed.every((e) => e?.code === RegistryErrorCode.STORAGE_FAILED), String(failed));
    assert.match(failed[0]!.message, /EIO: i\/o error, write/);
    // Cut back with the zeros ahead: the next append writes them again.
    assert.equal((await Deno.stat(`${dir}/${LOG1}`)).size, size, "cut back to the last whole record");
    assert.equal(log.writeFailures, 1);
    assert.equal(log.nextZxid, 6n);
    assert.equal(log.readOnly, false);
    faults.appendFailsAfter = undefined;
    assert.deepEqual(await appendRange(log, tree, 4), Array(4).fill(undefined));
    await log.close();
    const again = await reopen(dir);
    assertPaths(again.tree, 9);
    await again.log.close();
  },
);

Deno.test(
  "TxnLog hands the next batch to the disk before the previous batch's callbacks run; a failure of it fails only it",
  needs("read", "write"),
  async () => {
    const dir = `${await Deno.makeTempDir()}/d`;
    const faults: Faults = {};
    const { log, tree } = await TxnLog.open(faultyBackend(faults), dir);
    const path = `${dir}/${LOG1}`;
    const outcomes: Array<RegistryError | undefined> = [];
    let bytesInFirstCallback = new Uint8Array();
    const append = (onDone?: () => void) =>
      new Promise<void>((resolve) => {
        const record = recordAt(log.nextZxid);
        log.append(record, (error) => {
          if (error === undefined) applyRecord(tree, record);
          outcomes.push(error);
          onDone?.();
          resolve();
        });
      });
    const sizeBefore = loggedBytesSync(path);
    // The first record goes to the disk alone, at once; the next two queue behind it and form the next batch,
    // whose write gets 9 bytes through and then fails.
    const first = append(() => bytesInFirstCallback = Deno.readFileSync(path));
    faults.appendFailsAfter = 9;
    await Promise.all([first, append(), append()]);
    const firstBytes = encodeRecord(recordAt(1n)).length;
    assert.deepEqual(
      bytesInFirstCallback.subarray(sizeBefore + firstBytes, sizeBefore + firstBytes + 9),
      encodeRecord(recordAt(2n)).subarray(0, 9),
      "the next batch was written before the callback",
    );
    assert.equal(outcomes[0], undefined);
    assert.deepEqual(outcomes.slice(1).map((e) => e?.code), [
      RegistryErrorCode.STORAGE_FAILED,
      RegistryErrorCode.STORAGE_FAILED,
    ]);
    assert.equal((await Deno.stat(path)).size, sizeBefore + firstBytes, "cut back to the end of the first batch");
    assert.equal(log.nextZxid, 2n);
    faults.appendFailsAfter = undefined;
    assert.deepEqual(await appendRange(log, tree, 2), [undefined, undefined]);
    await log.close();
    const again = await reopen(dir);
    assertPaths(again.tree, 3);
    await again.log.close();
  },
);

Deno.test(
  "TxnLog.close with batches on their way to the disk makes every earlier append durable, then refuses",
  needs("read", "write"),
  async () => {
    const dir = `${await Deno.makeTempDir()}/d`;
    const { log, tree } = await TxnLog.open(backend, dir);
    // One record syncs at once; the rest queue behind it and go out early or at close.
    const appended = appendRange(log, tree, 20, { oneByOne: false });
    const closed = log.close();
    const late = new Promise<RegistryError | undefined>((resolve) => log.append(recordAt(log.nextZxid), resolve));
    assert.deepEqual(await appended, Array(20).fill(undefined));
    await closed;
    assert.equal((await late)?.code, RegistryErrorCode.CLOSED);
    const again = await reopen(dir);
    assertPaths(again.tree, 20);
    await again.log.close();
  },
);

Deno.test(
  "TxnLog becomes read-only when a failed write cannot be cut back; later appends fail at once",
  needs("read", "write"),
  async () => {
    const dir = `${await Deno.makeTempDir()}/d`;
    const faults: Faults = {};
    const { log, tree } = await TxnLog.open(faultyBackend(faults), dir);
    await appendRange(log, tree, 4);
    Object.assign(faults, { appendFailsAfter: 9, truncateFails: true });
    const [failed] = await appendRange(log, tree, 1);
    assert.equal(failed?.code, RegistryErrorCode.STORAGE_FAILED);
    assert.equal(log.readOnly, true);
    assert.match(log.readOnlyReason ?? "", /cannot be cut back to its last whole record at offset \d+/);
    let sync = true;
    const later = new Promise<RegistryError | undefined>((resolve) => log.append(recordAt(log.nextZxid), resolve));
    later.then(() => assert.equal(sync, false, "done comes on a later microtask"));
    sync = false;
    assert.equal((await later)?.code, RegistryErrorCode.NOT_READ_ONLY);
    await log.close();
    // The partial record left behind is a torn tail at the next start: every durable record is there.
    const again = await reopen(dir);
    assertPaths(again.tree, 4);
    await again.log.close();
  },
);

Deno.test(
  "TxnLog: a snapshot that cannot be written is removed and nothing is lost",
  needs("read", "write"),
  async () => {
    const dir = `${await Deno.makeTempDir()}/d`;
    const { log, tree } = await TxnLog.open(faultyBackend({ writeFileFails: true }), dir, { snapshotEveryTxns: 5 });
    await appendRange(log, tree, 17, { oneByOne: true });
    await log.close();
    assert.ok((await listDir(dir)).every((n) => !n.startsWith("snapshot.")), (await listDir(dir)).join(" "));
    const again = await reopen(dir);
    assertPaths(again.tree, 17);
    await again.log.close();
  },
);

Deno.test(
  "TxnLog on a full disk (1 MiB tmpfs): ENOSPC fails the batch, keeps whole records, recovers when space frees",
  needs("read", "write", "run", "sys"),
  async () => {
    if (Deno.uid() !== 0) {
      console.log("skipped: mounting a tmpfs needs root");
      return;
    }
    const mountPoint = await Deno.makeTempDir({ prefix: "txnlog-tmpfs-" });
    const mount = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mountPoint] })
      .output();
    if (!mount.success) {
      console.log(`skipped: cannot mount a tmpfs: ${new TextDecoder().decode(mount.stderr).trim()}`);
      return;
    }
    try {
      const dir = `${mountPoint}/data`;
      const { log, tree } = await TxnLog.open(backend, dir, { snapshotEveryTxns: 1_000_000 });
      await Deno.writeFile(`${mountPoint}/ballast`, new Uint8Array(160 * 1024));
      const big = (zxid: bigint) =>
        ({
          type: "create",
          zxid,
          timeMs: 0,
          path: `/big${zxid}`,
          data: new Uint8Array(20_000).fill(Number(zxid % 251n)),
          nodeType: 1,
          sessionId: 0n,
        }) as const;
      const durable = new Set<string>();
      const appendBig = (count: number) =>
        Promise.all(Array.from({ length: count }, () => {
          const record = big(log.nextZxid);
          return new Promise<RegistryError | undefined>((resolve) =>
            log.append(record, (error) => {
              if (error === undefined) {
                applyRecord(tree, record);
                durable.add(record.path);
              }
              resolve(error);
            })
          );
        }));
      let failure: RegistryError | undefined;
      for (let round = 0; round < 100 && failure === undefined; round++) {
        failure = (await appendBig(3)).find((e) => e !== undefined);
      }
      assert.ok(failure !== undefined, "the disk never filled");
      assert.equal(failure.code, RegistryErrorCode.STORAGE_FAILED);
      assert.match(failure.message, /ENOSPC|No space/i);
      const bytes = await Deno.readFile(`${dir}/${LOG1}`);
      const offsets = recordOffsets(bytes);
      assert.equal(offsets.length, durable.size, "the file holds exactly the durable records");
      const end = offsets.length === 0 ? LOG_HEADER_BYTES : readEnd(bytes, offsets.at(-1)!);
      assert.equal(bytes.length, end, "and nothing after them");
      await Deno.remove(`${mountPoint}/ballast`);
      const after = await appendBig(3);
      assert.deepEqual(after, [undefined, undefined, undefined]);
      await log.close();
      const again = await reopen(dir);
      assert.deepEqual(again.tree.paths().filter((p) => p !== "/").sort(), [...durable].sort());
      await again.log.close();
    } finally {
      await new Deno.Command("umount", { args: [mountPoint] }).output();
      await Deno.remove(mountPoint);
    }
  },
);

function readEnd(bytes: Uint8Array, offset: number): number {
  const read = readRecord(bytes, offset);
  assert.equal(read.kind, "record");
  return (read as { end: number }).end;
}

/** A small deterministic PRNG (mulberry32), so a failing round can be replayed from its printed seed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function treeAfter(count: number): Uint8Array {
  const tree = new DataTree();
  for (let z = 1n; z <= BigInt(count); z++) applyRecord(tree, recordAt(z));
  return tree.serialize();
}

Deno.test(
  "TxnLog.open after random flips and truncations loads an exact prefix (short only for a torn tail) or refuses",
  needs("read", "write", "env"),
  async () => {
    const seed = Number(Deno.env.get("TXNLOG_SEED") ?? Date.now() % 1_000_000);
    const rand = random(seed);
    const rounds = 60;
    let refused = 0;
    let torn = 0;
    for (let round = 0; round < rounds; round++) {
      const count = 10 + Math.floor(rand() * 40);
      const dir = await writeHistory(count, { snapshotEveryTxns: 4 + Math.floor(rand() * 12) });
      const names = (await listDir(dir)).filter((n) => n.startsWith("log.") || n.startsWith("snapshot."));
      const victim = names[Math.floor(rand() * names.length)]!;
      const path = `${dir}/${victim}`;
      const original = await Deno.readFile(path);
      if (original.length === 0) continue;
      const truncate = rand() < 0.4;
      const position = Math.floor(rand() * original.length);
      if (truncate) await Deno.truncate(path, position);
      else await flipByte(path, position, 1 << Math.floor(rand() * 8));
      const what = `seed ${seed} round ${round}: ${
        truncate ? "truncated" : "flipped a byte of"
      } ${victim} at ${position}`;
      const before = await dirContents(dir);
      let opened: Awaited<ReturnType<typeof reopen>> | undefined;
      try {
        opened = await reopen(dir);
      } catch (error) {
        assert.ok(error instanceof StorageError, `${what}: ${error}`);
        assert.match(error.message, /damaged at byte offset \d+/, what);
        assert.deepEqual(await dirContents(dir), before, `${what}: a refusal changes nothing`);
        refused++;
        // The repair then makes it load an exact prefix.
        const report = await repairDataDir(backend, dir, { apply: true });
        assert.ok(report.applied, what);
        const repaired = await reopen(dir);
        await repaired.log.close();
        assert.equal(repaired.log.lastZxid, report.lastZxid, what);
        assert.deepEqual(
          repaired.tree.serialize(),
          treeAfter(Number(report.lastZxid)),
          `${what}: repaired to a prefix`,
        );
        continue;
      }
      const loaded = opened.log.lastZxid;
      await opened.log.close();
      assert.deepEqual(opened.tree.serialize(), treeAfter(Number(loaded)), `${what}: an exact prefix`);
      if (loaded < BigInt(count)) {
        // Short only when the damage is a torn tail: in the newest log, at or after the first record missing.
        torn++;
        const newestLog = names.filter((n) => n.startsWith("log.")).at(-1);
        assert.equal(victim, newestLog, `${what}: lost records ${loaded + 1n}..${count}`);
        if (!truncate) {
          assert.equal(loaded, BigInt(count - 1), `${what}: a flip loses only a last record`);
          assert.ok(position >= recordOffsets(original).at(-1)!, `${what}: a flip outside the last record`);
        }
      }
    }
    console.log(`seed ${seed}: ${rounds} rounds, ${refused} refused, ${torn} torn tails cut`);
  },
);
