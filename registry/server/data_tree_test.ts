import assert from "node:assert/strict";
import { DataTree, EventType, NodeType } from "./data_tree.ts";
import { RegistryErrorCode } from "../registry_error.ts";
import { WatchKind, WatchManager } from "./watch_manager.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const NOW = 1_700_000_000_000;

function codeOf(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: number }).code;
  }
  return undefined;
}

Deno.test("DataTree create, get, set, delete and stat keep ZooKeeper's versions and zxids", () => {
  const tree = new DataTree();
  tree.create("/node01", bytes("v0"), {}, 1n, NOW);
  tree.create("/node01/func01", bytes(""), {}, 2n, NOW + 1);
  const { data, stat } = tree.getData("/node01");
  assert.equal(new TextDecoder().decode(data), "v0");
  assert.deepEqual(
    {
      version: stat.version,
      cversion: stat.cversion,
      numChildren: stat.numChildren,
      czxid: stat.czxid,
      pzxid: stat.pzxid,
    },
    { version: 0, cversion: 1, numChildren: 1, czxid: 1n, pzxid: 2n },
  );
  const set = tree.setData("/node01", bytes("v1!"), 0, 3n, NOW + 2);
  assert.equal(set.stat.version, 1);
  assert.equal(set.stat.dataLength, 3);
  assert.equal(set.stat.mzxid, 3n);
  assert.equal(set.stat.mtime, NOW + 2);
  assert.equal(set.stat.ctime, NOW);
  assert.equal(set.stat.nodeType, NodeType.PERSISTENT);
  assert.equal(tree.lastZxid, 3n);
  assert.equal(tree.nodeCount, 3);
  tree.delete("/node01/func01", -1, 4n);
  assert.equal(tree.exists("/node01/func01"), undefined);
  assert.equal(tree.exists("/node01")?.cversion, 2);
});

Deno.test("DataTree errors carry the ZooKeeper codes and leave the tree unchanged", () => {
  const tree = new DataTree({ maxDataBytes: 10 });
  tree.create("/a", bytes(""), {}, 1n, NOW);
  tree.create("/a/b", bytes(""), {}, 2n, NOW);
  const before = tree.serialize();
  assert.equal(codeOf(() => tree.create("/missing/x", bytes(""), {}, 3n, NOW)), RegistryErrorCode.NO_NODE);
  assert.equal(codeOf(() => tree.create("/a", bytes(""), {}, 3n, NOW)), RegistryErrorCode.NODE_EXISTS);
  assert.equal(codeOf(() => tree.delete("/a", -1, 3n)), RegistryErrorCode.NOT_EMPTY);
  assert.equal(codeOf(() => tree.delete("/", -1, 3n)), RegistryErrorCode.BAD_ARGUMENTS);
  assert.equal(codeOf(() => tree.setData("/a", bytes("x"), 5, 3n, NOW)), RegistryErrorCode.BAD_VERSION);
  assert.equal(codeOf(() => tree.delete("/a/b", 7, 3n)), RegistryErrorCode.BAD_VERSION);
  assert.equal(codeOf(() => tree.getData("/nope")), RegistryErrorCode.NO_NODE);
  assert.equal(codeOf(() => tree.create("/big", new Uint8Array(11), {}, 3n, NOW)), RegistryErrorCode.BAD_ARGUMENTS);
  assert.equal(codeOf(() => tree.create("relative", bytes(""), {}, 3n, NOW)), RegistryErrorCode.BAD_ARGUMENTS);
  assert.equal(codeOf(() => tree.create("/a//b", bytes(""), {}, 3n, NOW)), RegistryErrorCode.BAD_ARGUMENTS);
  assert.equal(codeOf(() => tree.create("/a/", bytes(""), {}, 3n, NOW)), RegistryErrorCode.BAD_ARGUMENTS);
  assert.equal(
    codeOf(() => tree.create("/e", bytes(""), { nodeType: NodeType.EPHEMERAL }, 3n, NOW)),
    RegistryErrorCode.BAD_ARGUMENTS,
  );
  assert.equal(
    codeOf(() => tree.create("/t", bytes(""), { nodeType: 3 as NodeType }, 3n, NOW)),
    RegistryErrorCode.BAD_ARGUMENTS,
  );
  assert.deepEqual(tree.serialize(), before);
  assert.equal(tree.lastZxid, 2n);
});

Deno.test("DataTree ephemeral nodes belong to a session, cannot have children and die with it", () => {
  const tree = new DataTree();
  tree.create("/node01", bytes(""), {}, 1n, NOW);
  tree.create("/node02", bytes("e"), { nodeType: NodeType.EPHEMERAL, sessionId: 42n }, 2n, NOW);
  tree.create("/node01/e", bytes(""), { nodeType: NodeType.EPHEMERAL, sessionId: 42n }, 3n, NOW);
  assert.equal(tree.exists("/node02")?.ephemeralOwner, 42n);
  assert.equal(tree.exists("/node02")?.nodeType, NodeType.EPHEMERAL);
  assert.equal(
    codeOf(() => tree.create("/node02/child", bytes(""), {}, 4n, NOW)),
    RegistryErrorCode.NO_CHILDREN_FOR_EPHEMERALS,
  );
  assert.deepEqual(tree.ephemeralsOf(42n), ["/node01/e", "/node02"]);
  const { deleted, events } = tree.killSession(42n, 5n);
  assert.deepEqual(deleted, ["/node01/e", "/node02"]);
  assert.deepEqual(events.map((e) => `${e.type} ${e.path}`), [
    `${EventType.NODE_DELETED} /node01/e`,
    `${EventType.NODE_CHILDREN_CHANGED} /node01`,
    `${EventType.NODE_DELETED} /node02`,
    `${EventType.NODE_CHILDREN_CHANGED} /`,
  ]);
  assert.deepEqual(tree.getChildren("/").children, ["node01"]);
  assert.deepEqual(tree.ephemeralsOf(42n), []);
});

Deno.test("DataTree sequential nodes count up from the parent's cversion", () => {
  const tree = new DataTree();
  tree.create("/q", bytes(""), {}, 1n, NOW);
  const a = tree.create("/q/job-", bytes(""), { sequential: true }, 2n, NOW).path;
  tree.create("/q/other", bytes(""), {}, 3n, NOW);
  const b = tree.create("/q/job-", bytes(""), { sequential: true }, 4n, NOW).path;
  assert.equal(a, "/q/job-0000000000");
  assert.equal(b, "/q/job-0000000002");
  assert.deepEqual(tree.getChildren("/q").children, ["job-0000000000", "job-0000000002", "other"]);
});

Deno.test("DataTree snapshots keep nodes, stats, ephemeral nodes and open sessions", () => {
  const tree = new DataTree();
  tree.create("/a", bytes("alpha"), {}, 1n, NOW);
  tree.create("/a/b", bytes(""), {}, 2n, NOW);
  tree.createSession(9n, { secret: bytes("secret-of-nine!!"), authorized: true, token: "t9" }, 3n);
  tree.create("/eph", bytes(""), { nodeType: NodeType.EPHEMERAL, sessionId: 9n }, 4n, NOW);
  tree.setData("/a", bytes("beta"), -1, 5n, NOW + 5);
  const loaded = DataTree.deserialize(tree.serialize());
  assert.deepEqual(loaded.paths(), ["/", "/a", "/a/b", "/eph"]);
  assert.deepEqual(loaded.getData("/a").stat, tree.getData("/a").stat);
  assert.equal(new TextDecoder().decode(loaded.getData("/a").data), "beta");
  assert.equal(loaded.lastZxid, 5n);
  assert.equal(loaded.nodeCount, 4);
  assert.deepEqual(loaded.ephemeralsOf(9n), ["/eph"]);
  assert.equal(new TextDecoder().decode(loaded.sessions.get(9n)?.secret), "secret-of-nine!!");
  assert.equal(loaded.sessions.get(9n)?.authorized, true);
  assert.equal(loaded.sessions.get(9n)?.token, "t9");
  // Killing the session removes its nodes and its record.
  assert.deepEqual(loaded.killSession(9n, 6n).deleted, ["/eph"]);
  assert.equal(loaded.sessions.size, 0);
  const corrupt = tree.serialize().slice(0, 20);
  assert.equal(codeOf(() => DataTree.deserialize(corrupt)), RegistryErrorCode.DATA_INCONSISTENCY);
});

Deno.test("DataTree still loads version-1 snapshots (no ephemeral nodes, no sessions)", () => {
  // magic "DTS1" | version 1 | lastZxid 2 | 2 nodes: "/" and "/a" with data "x"
  const node = (path: string, data: string) => {
    const p = bytes(path);
    const d = bytes(data);
    const out = new Uint8Array(4 + p.length + 4 + d.length + 8 * 5 + 8);
    const view = new DataView(out.buffer);
    view.setUint32(0, p.length);
    out.set(p, 4);
    view.setUint32(4 + p.length, d.length);
    out.set(d, 8 + p.length);
    return out;
  };
  const header = new Uint8Array(17);
  const view = new DataView(header.buffer);
  view.setUint32(0, 0x44545331);
  view.setUint8(4, 1);
  view.setBigUint64(5, 2n);
  view.setUint32(13, 2);
  const v1 = new Uint8Array([...header, ...node("/", ""), ...node("/a", "x")]);
  const loaded = DataTree.deserialize(v1);
  assert.deepEqual(loaded.paths(), ["/", "/a"]);
  assert.equal(new TextDecoder().decode(loaded.getData("/a").data), "x");
  assert.equal(loaded.sessions.size, 0);
});

Deno.test("DataTree handles 100,000 nodes quickly", () => {
  const tree = new DataTree();
  const start = performance.now();
  for (let i = 0; i < 100; i++) tree.create(`/s${i}`, bytes(""), {}, BigInt(i + 1), NOW);
  let zxid = 101n;
  for (let i = 0; i < 100; i++) {
    for (let j = 0; j < 1000; j++) tree.create(`/s${i}/n${j}`, bytes("x"), {}, zxid++, NOW);
  }
  for (let i = 0; i < 100_000; i++) tree.getData(`/s${i % 100}/n${i % 1000}`);
  assert.equal(tree.nodeCount, 100_101);
  const elapsedMs = performance.now() - start;
  assert.ok(elapsedMs < 3000, `took ${elapsedMs} ms`);
});

Deno.test("WatchManager fires one-shot data and child watches in event order", () => {
  const tree = new DataTree();
  const watches = new WatchManager<string>();
  watches.add("/svc", WatchKind.DATA, "exists-watcher"); // exists on a missing node: fires on create
  watches.add("/", WatchKind.CHILDREN, "root-children");
  watches.add("/", WatchKind.CHILDREN, "root-children"); // armed twice, told once
  let deliveries = watches.trigger(tree.create("/svc", bytes(""), {}, 1n, NOW).events);
  assert.deepEqual(deliveries.map((d) => `${d.watcher}:${d.event.type}:${d.event.path}`), [
    `exists-watcher:${EventType.NODE_CREATED}:/svc`,
    `root-children:${EventType.NODE_CHILDREN_CHANGED}:/`,
  ]);
  assert.equal(watches.size, 0);
  watches.add("/svc", WatchKind.CHILDREN, "a");
  watches.add("/svc", WatchKind.DATA, "b");
  deliveries = watches.trigger(tree.delete("/svc", -1, 2n).events);
  assert.deepEqual(deliveries.map((d) => d.watcher).sort(), ["a", "b"]);
  watches.add("/x", WatchKind.DATA, "gone");
  watches.add("/y", WatchKind.CHILDREN, "gone");
  assert.equal(watches.countOf("gone"), 2);
  watches.removeWatcher("gone");
  assert.equal(watches.size, 0);
  assert.deepEqual(watches.trigger([{ type: EventType.NODE_DELETED, path: "/x" }]), []);
});
