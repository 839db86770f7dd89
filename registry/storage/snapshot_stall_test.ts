import assert from "node:assert/strict";
import { DataTree, NodeType } from "../server/data_tree.ts";
import { applyRecord, TxnLog, type TxnRecord } from "./txn_log.ts";
import { decodeSnapshot, encodeSnapshot } from "./snapshot_file.ts";
import { backend } from "../testdata/storage_fixture.ts";
import { needs } from "../../reactor/testdata/permissions.ts";

const DIRS = 200;
const PER_DIR = 1000;
const bytes = (text: string) => new TextEncoder().encode(text);
type WithoutZxid<T> = T extends unknown ? Omit<T, "zxid"> : never;

function contentOf(tree: DataTree): unknown {
  const nodes = tree.paths().map((path) => {
    const { data, stat } = tree.getData(path);
    return [path, [...data], stat];
  });
  return { nodes, zxid: tree.lastZxid };
}

Deno.test(
  "A snapshot of a large tree does not hold the loop, and holds the tree at its zxid exactly",
  needs("read", "write"),
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "snapshot-stall-" });
    try {
      await fillSnapshotAndCheck(dir);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

async function fillSnapshotAndCheck(dir: string): Promise<void> {
  const fill = DIRS + DIRS * PER_DIR;
  // The snapshot is due once the last record of the fill is durable.
  const { log, tree } = await TxnLog.open(backend, dir, { snapshotEveryTxns: fill });
  const errors: unknown[] = [];
  const append = (record: WithoutZxid<TxnRecord>, then?: () => void) => {
    const full = { ...record, zxid: log.nextZxid } as TxnRecord;
    log.append(full, (error) => {
      try {
        if (error !== undefined) throw error;
        applyRecord(tree, full);
        then?.();
      } catch (thrown) {
        errors.push(thrown);
      }
    });
  };
  const create = (path: string, then?: () => void) =>
    append({ type: "create", timeMs: 1, path, data: bytes("x"), nodeType: NodeType.PERSISTENT, sessionId: 0n }, then);
  const filled = Promise.withResolvers<void>();
  for (let d = 0; d < DIRS; d++) create(`/d${d}`);
  for (let n = 0; n < PER_DIR; n++) {
    for (let d = 0; d < DIRS; d++) if (d + n > 0) create(`/d${d}/n${n}`);
  }
  create("/d0/n0", filled.resolve);
  await filled.promise;

  // What holding the loop for a snapshot would cost: the whole file made at once (the old way).
  const start = performance.now();
  encodeSnapshot(tree.lastZxid, tree.serialize());
  const wholeMs = performance.now() - start;

  // Once the snapshot has started, change the tree on every turn, and time the gaps between turns.
  const snapshotZxid = tree.lastZxid;
  // The tree as the snapshot must hold it (a copy: cheaper to keep than its listing, which is made at the end).
  const expected = tree.clone();
  let ticks = 0;
  let longestGapMs = 0;
  let last = performance.now();
  const deadline = last + 120_000;
  let written = false;
  while (!written && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1));
    const now = performance.now();
    longestGapMs = Math.max(longestGapMs, now - last);
    last = now;
    const t = ticks++;
    append({ type: "set", timeMs: 2, path: `/d${t % DIRS}/n${PER_DIR - 1}`, data: bytes(`v${t}`) });
    append({ type: "delete", timeMs: 2, path: `/d${t % DIRS}/n${Math.floor(t / DIRS)}` });
    create(`/d${t % DIRS}/new${t}`);
    if (t % 25 === 0) written = await snapshotExists(dir);
    last = performance.now();
  }
  const settled = Promise.withResolvers<void>();
  create("/last", settled.resolve);
  await settled.promise;
  assert.deepEqual(errors, []);
  assert.ok(written, "the snapshot was written within 120 s");
  assert.ok(ticks >= 20, `the loop turned ${ticks} times while the snapshot was written`);
  assert.ok(
    longestGapMs < wholeMs / 2,
    `the loop was held ${longestGapMs.toFixed(1)} ms at once while the snapshot was written; serializing the ` +
      `whole tree at once takes ${wholeMs.toFixed(1)} ms`,
  );

  // The snapshot is the tree at its zxid, whatever changed while it was written ...
  const name = `snapshot.${snapshotZxid.toString(16).padStart(16, "0")}`;
  const read = decodeSnapshot(await Deno.readFile(`${dir}/${name}`));
  assert.ok(read.ok);
  assert.equal(read.zxid, snapshotZxid);
  assert.deepEqual(contentOf(read.tree), contentOf(expected));
  // ... and a start loads it and replays the log after it to the tree as it is now.
  const live = contentOf(tree);
  await log.close();
  const reopened = await TxnLog.open(backend, dir);
  await reopened.log.close();
  assert.deepEqual(contentOf(reopened.tree), live);
}

async function snapshotExists(dir: string): Promise<boolean> {
  for await (const entry of Deno.readDir(dir)) if (/^snapshot\.[0-9a-f]{16}$/.test(entry.name)) return true;
  return false;
}

Deno.test("A snapshot's body is DataTree.serialize()'s bytes", () => {
  const tree = new DataTree();
  tree.create("/a", bytes("1"), {}, 1n, 1);
  const snapshot = tree.startSnapshot();
  assert.equal(snapshot.step(Infinity), true);
  assert.deepEqual(snapshot.body().chunks.length, 1);
  assert.deepEqual(snapshot.body().chunks[0], tree.serialize());
});
