import assert from "node:assert/strict";
import { DataTree, NodeType } from "./data_tree.ts";
import { RegistryError } from "../registry_error.ts";

const NOW = 1_700_000_000_000;
const bytes = (text: string) => new TextEncoder().encode(text);

/** Every node's path, data and stat, and the sessions: what a snapshot must reproduce. */
function contentOf(tree: DataTree): unknown {
  const nodes = tree.paths().map((path) => {
    const { data, stat } = tree.getData(path);
    return [path, [...data], stat];
  });
  return { nodes, sessions: [...tree.sessions].sort((a, b) => (a[0] < b[0] ? -1 : 1)), zxid: tree.lastZxid };
}

// A small deterministic generator, so a failure repeats.
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state / 0x80000000;
  };
}

Deno.test("A snapshot written while the tree changes holds the tree as it was when it started", () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const next = random(seed);
    const tree = new DataTree();
    let zxid = 1n;
    const paths: string[] = [];
    for (let i = 0; i < 40; i++) {
      tree.create(`/d${i}`, bytes(`d${i}`), {}, zxid++, NOW);
      paths.push(`/d${i}`);
      for (let j = 0; j < 100; j++) {
        tree.create(`/d${i}/n${j}`, bytes(`${j}`), {}, zxid++, NOW);
        paths.push(`/d${i}/n${j}`);
      }
    }
    tree.createSession(7n, { secret: bytes("s"), authorized: true, token: "" }, zxid++);
    for (let i = 0; i < 20; i++) {
      tree.create(`/d${i}/e`, bytes("e"), { nodeType: NodeType.EPHEMERAL, sessionId: 7n }, zxid++, NOW);
    }
    const before = contentOf(tree);
    const snapshot = tree.startSnapshot();
    // Change the tree between slices in every way it can change: data, new children (some under names just
    // removed), removed children (some before the snapshot reached them, some after), a whole session's nodes.
    let changes = 0;
    while (!snapshot.step(0)) {
      for (let k = 0; k < 60; k++, changes++) {
        const path = paths[Math.floor(next() * paths.length)]!;
        try {
          const choice = next();
          if (choice < 0.3) tree.setData(path, bytes(`v${zxid}`), -1, zxid, NOW + 1);
          else if (choice < 0.55) tree.delete(path, -1, zxid);
          else if (choice < 0.8) tree.create(path, bytes("again"), {}, zxid, NOW + 2);
          else tree.create(`${path}/c${zxid}`, bytes("new"), {}, zxid, NOW + 3);
          zxid++;
        } catch (error) {
          if (!(error instanceof RegistryError)) throw error;
        }
      }
      if (changes === 600) tree.killSession(7n, zxid++);
    }
    assert.ok(changes >= 600, `only ${changes} changes were made while the snapshot ran`);
    assert.notDeepEqual(contentOf(tree), before);
    const { chunks, length } = snapshot.body();
    const body = new Uint8Array(length);
    let offset = 0;
    for (const chunk of chunks) body.set(chunk, (offset += chunk.length) - chunk.length);
    assert.deepEqual(contentOf(DataTree.deserialize(body)), before, `seed ${seed}`);
    // Once done, the tree tells it nothing more; the next snapshot sees the tree as it is now.
    const now = contentOf(tree);
    assert.deepEqual(contentOf(DataTree.deserialize(tree.serialize())), now);
  }
});

Deno.test("A snapshot abandoned halfway leaves the tree free for the next one", () => {
  const tree = new DataTree();
  for (let i = 0; i < 2000; i++) tree.create(`/n${i}`, bytes("x"), {}, BigInt(i + 1), NOW);
  const first = tree.startSnapshot();
  assert.equal(first.step(0), false);
  assert.throws(() => tree.startSnapshot(), /another one/);
  first.abandon();
  tree.delete("/n0", -1, 2001n);
  assert.deepEqual(contentOf(DataTree.deserialize(tree.serialize())), contentOf(tree));
});
