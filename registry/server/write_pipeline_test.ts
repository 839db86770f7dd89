import assert from "node:assert/strict";
import { defaultBackend } from "../../reactor/backend/default.ts";
import { DataTree } from "./data_tree.ts";
import { RegistryErrorCode } from "../registry_error.ts";
import { TxnLog } from "../storage/txn_log.ts";
import { type Proposal, WritePipeline } from "./write_pipeline.ts";
import { needs } from "../../reactor/testdata/permissions.ts";
import type { NetBackend } from "../../reactor/backend/net_backend.ts";
import type { RegistryError } from "../registry_error.ts";

const EMPTY = new Uint8Array(0);

function createNode(path: string): (tree: DataTree, zxid: bigint) => Proposal<string> {
  return (tree, zxid) => {
    const result = tree.create(path, EMPTY, {}, zxid, 0);
    return {
      record: { type: "create", zxid, timeMs: 0, path: result.path, data: EMPTY, nodeType: 1, sessionId: 0n },
      events: result.events,
      result: result.path,
    };
  };
}

Deno.test("WritePipeline shows a change only once the log has made it durable", needs("read", "write"), async () => {
  const dir = await Deno.makeTempDir();
  const { log, tree } = await TxnLog.open(defaultBackend(), dir);
  const pipeline = new WritePipeline(tree, log);
  const durable = Promise.withResolvers<void>();
  pipeline.propose(createNode("/a"), (error) => {
    assert.equal(error, undefined);
    assert.ok(pipeline.committed.exists("/a"), "applied before the outcome is told");
    durable.resolve();
  });
  // Validated against the writes in flight: /a/b may be created under the /a still on its way to disk.
  pipeline.propose(createNode("/a/b"), (error) => assert.equal(error, undefined));
  assert.equal(pipeline.committed.exists("/a"), undefined, "nobody sees /a while it is in flight");
  assert.equal(pipeline.inFlight, 2);
  await durable.promise;
  await log.close();
  const reopened = await TxnLog.open(defaultBackend(), dir);
  assert.ok(reopened.tree.exists("/a/b"));
  assert.equal(reopened.tree.lastZxid, 2n);
  await reopened.log.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("WritePipeline without a log applies at once, on one tree", () => {
  const tree = new DataTree();
  const pipeline = new WritePipeline(tree, undefined);
  let told = false;
  pipeline.propose(createNode("/x"), (error, proposal) => {
    told = error === undefined && proposal?.result === "/x";
  });
  assert.ok(told);
  assert.ok(tree.exists("/x"));
  assert.equal(pipeline.lastZxid, 1n);
});

Deno.test(
  "WritePipeline tells a failed validation only once the writes it was judged against are durable and applied",
  needs("read", "write"),
  async () => {
    const dir = await Deno.makeTempDir();
    const { log, tree } = await TxnLog.open(defaultBackend(), dir);
    const pipeline = new WritePipeline(tree, log);
    const told: string[] = [];
    const done = Promise.withResolvers<void>();
    pipeline.propose(createNode("/a"), (error) => told.push(`create /a: ${error?.codeName ?? "ok"}`));
    pipeline.propose(createNode("/b"), (error) => told.push(`create /b: ${error?.codeName ?? "ok"}`));
    // Lost to the /a still in flight: a client told NODE_EXISTS now could read /a and find nothing.
    pipeline.propose(createNode("/a"), (error, proposal) => {
      told.push(`create /a again: ${error?.codeName}`);
      assert.equal(proposal, undefined);
      assert.ok(pipeline.committed.exists("/a") && pipeline.committed.exists("/b"), "both writes visible by now");
      done.resolve();
    });
    assert.deepEqual(told, [], "nothing is told before the disk has spoken");
    await done.promise;
    assert.deepEqual(told, ["create /a: ok", "create /b: ok", "create /a again: NODE_EXISTS"]);
    // Judged against the committed tree alone, a failure is told at once.
    let atOnce: RegistryError | undefined;
    pipeline.propose(createNode("/a"), (error) => atOnce = error);
    assert.equal(atOnce?.code, RegistryErrorCode.NODE_EXISTS);
    await log.close();
    await Deno.remove(dir, { recursive: true });
  },
);

/** The real backend, with appends to the log failing while `disk.broken` is set. */
function breakableDisk(disk: { broken: boolean }): NetBackend {
  const real = defaultBackend();
  const openDurableAppend: NetBackend["fs"]["openDurableAppend"] = async (path, options) => {
    const file = await real.fs.openDurableAppend(path, options);
    return {
      append: (data) => disk.broken ? Promise.reject(new Error("EIO: injected")) : file.append(data),
      truncate: (length) => file.truncate(length),
      trim: () => file.trim(),
      size: () => file.size(),
      close: () => file.close(),
    };
  };
  return { ...real, fs: { ...real.fs, openDurableAppend } };
}

Deno.test(
  "WritePipeline: a verdict reached against a write that never reaches the disk becomes that storage error",
  needs("read", "write"),
  async () => {
    const dir = await Deno.makeTempDir();
    const disk = { broken: false };
    const { log, tree } = await TxnLog.open(breakableDisk(disk), dir);
    const pipeline = new WritePipeline(tree, log);
    disk.broken = true;
    const outcomes = Promise.withResolvers<Array<string | undefined>>();
    const codes: Array<string | undefined> = [];
    pipeline.propose(createNode("/a"), (error) => codes.push(error?.codeName));
    // NODE_EXISTS was judged against a /a that the disk refuses: it never existed, so the verdict cannot stand.
    pipeline.propose(createNode("/a"), (error) => {
      codes.push(error?.codeName);
      outcomes.resolve(codes);
    });
    assert.deepEqual(await outcomes.promise, ["STORAGE_FAILED", "STORAGE_FAILED"]);
    assert.equal(pipeline.committed.exists("/a"), undefined);
    disk.broken = false;
    const retried = Promise.withResolvers<RegistryError | undefined>();
    pipeline.propose(createNode("/a"), retried.resolve);
    assert.equal(await retried.promise, undefined, "the disk works again and so does the write");
    await log.close();
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test(
  "WritePipeline with unsafeEarlyFailures answers a failure at once (the wrong order the checker must catch)",
  needs("read", "write"),
  async () => {
    const dir = await Deno.makeTempDir();
    const { log, tree } = await TxnLog.open(defaultBackend(), dir);
    const pipeline = new WritePipeline(tree, log, { unsafeEarlyFailures: true });
    const applied = Promise.withResolvers<void>();
    pipeline.propose(createNode("/a"), () => applied.resolve());
    let early: RegistryError | undefined;
    pipeline.propose(createNode("/a"), (error) => early = error);
    assert.equal(early?.code, RegistryErrorCode.NODE_EXISTS);
    assert.equal(pipeline.committed.exists("/a"), undefined, "told NODE_EXISTS while nobody can read /a");
    await applied.promise;
    await log.close();
    await Deno.remove(dir, { recursive: true });
  },
);
