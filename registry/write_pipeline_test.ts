import assert from "node:assert/strict";
import { defaultBackend } from "../reactor/backend/default.ts";
import { DataTree } from "./data_tree.ts";
import { RegistryErrorCode } from "./registry_error.ts";
import { TxnLog } from "./txn_log.ts";
import { type Proposal, WritePipeline } from "./write_pipeline.ts";
import { needs } from "../reactor/testdata/permissions.ts";

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
  assert.throws(() => pipeline.propose(createNode("/a"), () => {}), (error: { code: number }) => {
    return error.code === RegistryErrorCode.NODE_EXISTS;
  });
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
    told = error === undefined && proposal.result === "/x";
  });
  assert.ok(told);
  assert.ok(tree.exists("/x"));
  assert.equal(pipeline.lastZxid, 1n);
});
