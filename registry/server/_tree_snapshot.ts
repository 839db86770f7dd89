/**
 * A consistent snapshot of a live tree, serialized a slice at a time so a large tree never holds the loop: the
 * bytes are exactly those of the tree as it was when the snapshot started (copy-on-write), however the tree changes
 * while the slices run.
 *
 * Why copy-on-write and not ZooKeeper's fuzzy snapshot plus replay: a fuzzy snapshot holds some changes made after
 * its zxid, and replaying the log over it must then tolerate records that already applied (a create of a node that
 * exists, a version bumped twice). Our replay is strict (a record that does not apply is damage, see
 * `storage/_data_dir.ts`), so a snapshot must be the tree at one zxid exactly.
 *
 * How: nodes are written parents first, depth first. Before the tree changes a node the snapshot has not reached
 * yet, it keeps the node's fields as they were ({@linkcode TreeSnapshot.changing}); a child added to or removed
 * from a node whose children the snapshot has not finished listing is remembered by name
 * ({@linkcode TreeSnapshot.childAdded}, {@linkcode TreeSnapshot.childRemoved}), so the listing skips the new ones
 * and still visits the removed ones (a removed node has no children left, but the ones it had at the start were
 * removed before it, and are remembered on it the same way). Each change costs the tree one check while a
 * snapshot runs and nothing otherwise; the copies kept are of changed nodes only, dropped as soon as the snapshot
 * has passed them.
 *
 * @module
 */

import { Buffer } from "../../reactor/buffer.ts";
import { joinPath } from "../path.ts";
import type { SessionRecord } from "./data_tree.ts";

/** A node as the snapshot reads it; `snap` is the id of the last snapshot that reached it. */
export interface SnapshotNode {
  data: Uint8Array;
  czxid: bigint;
  mzxid: bigint;
  pzxid: bigint;
  ctime: number;
  mtime: number;
  version: number;
  cversion: number;
  ephemeralOwner: bigint;
  children: Map<string, SnapshotNode>;
  snap: number;
}

type Fields = Omit<SnapshotNode, "children" | "snap">;

/** What a snapshot keeps of a node the tree changed before the snapshot was done with it. */
interface Kept {
  /** Its fields at the start (unset when the snapshot had written them before the change). */
  fields: Fields | undefined;
  /** Children added since the start: not in the snapshot. */
  added: Set<string> | undefined;
  /** Children removed since the start, that the snapshot had not reached: still in it. */
  removed: Map<string, SnapshotNode> | undefined;
}

/** A node being listed: its path, and where the listing of its children stands. */
interface Frame {
  node: SnapshotNode;
  path: string;
  kept: Kept | undefined;
  children: Iterator<[string, SnapshotNode]>;
  /** Past the live children: the removed ones still to visit. */
  removedChildren: Iterator<[string, SnapshotNode]> | undefined;
}

const SNAPSHOT_MAGIC = 0x44545331; // "DTS1"
const SNAPSHOT_VERSION = 2;
/** The size of each piece of output: small enough that one piece's CRC is a short step. */
const CHUNK_BYTES = 256 * 1024;
// Snapshot ids, unique across trees (a cloned tree copies its nodes' marks).
let lastSnapshotId = 0;

/** What a finished snapshot produced: the body in pieces (concatenated, `DataTree.serialize()`'s bytes). */
export interface SnapshotBody {
  readonly chunks: readonly Uint8Array[];
  readonly length: number;
}

/**
 * One snapshot in progress. The tree calls the change hooks while it is attached; {@linkcode TreeSnapshot.step}
 * writes a slice; `detach` (given by the tree) ends the hooks once done or abandoned.
 */
export class TreeSnapshot {
  readonly #id = ++lastSnapshotId;
  readonly #kept = new Map<SnapshotNode, Kept>();
  readonly #listing = new Set<SnapshotNode>();
  readonly #stack: Frame[] = [];
  readonly #sessions: Array<[bigint, SessionRecord]>;
  readonly #nodeCount: number;
  readonly #detach: () => void;
  readonly #encoder = new TextEncoder();
  readonly #chunks: Uint8Array[] = [];
  #buffer = new Buffer(CHUNK_BYTES + 4096);
  #length = 0;
  #written = 0;
  #done = false;

  /** Start a snapshot of the tree under `root` as it is now; the tree calls `detach`'s target no more hooks after. */
  constructor(
    root: SnapshotNode,
    state: { lastZxid: bigint; nodeCount: number; sessions: ReadonlyMap<bigint, SessionRecord> },
    detach: () => void,
  ) {
    this.#nodeCount = state.nodeCount;
    // Sessions are few next to nodes and their records never change: a copy of the list is the snapshot of them.
    this.#sessions = [...state.sessions];
    this.#detach = detach;
    this.#buffer.appendUint32(SNAPSHOT_MAGIC);
    this.#buffer.appendUint8(SNAPSHOT_VERSION);
    this.#buffer.appendBigUint64(state.lastZxid);
    this.#buffer.appendUint32(state.nodeCount);
    this.#enter(root, "/");
  }

  /** Whether every node is written. */
  get done(): boolean {
    return this.#done;
  }

  /** Stop: the tree calls no more hooks and the work so far is dropped. */
  abandon(): void {
    if (this.#done) return;
    this.#done = true;
    this.#release();
  }

  /** The tree is about to change `node`'s fields or children. */
  changing(node: SnapshotNode): void {
    if (node.snap === this.#id || this.#kept.has(node)) return;
    const { data, czxid, mzxid, pzxid, ctime, mtime, version, cversion, ephemeralOwner } = node;
    const fields = { data, czxid, mzxid, pzxid, ctime, mtime, version, cversion, ephemeralOwner };
    this.#kept.set(node, { fields, added: undefined, removed: undefined });
  }

  /** The tree added child `name` to `parent` (after {@linkcode TreeSnapshot.changing} on it). */
  childAdded(parent: SnapshotNode, name: string): void {
    const kept = this.#keptForChildren(parent);
    if (kept !== undefined) (kept.added ??= new Set()).add(name);
  }

  /** The tree removed `child`, named `name`, from `parent` (after {@linkcode TreeSnapshot.changing} on it). */
  childRemoved(parent: SnapshotNode, name: string, child: SnapshotNode): void {
    const kept = this.#keptForChildren(parent);
    if (kept === undefined) return;
    // Added after the start and gone again: never part of the snapshot.
    if (kept.added?.delete(name)) return;
    // Reached already (written, or being listed): the snapshot has it.
    if (child.snap === this.#id) return;
    (kept.removed ??= new Map()).set(name, child);
  }

  /**
   * Write nodes for about `budgetMs` (at least a few), then return whether the snapshot is complete; `Infinity`
   * writes it all at once.
   */
  step(budgetMs: number): boolean {
    if (this.#done) return true;
    const until = budgetMs === Infinity ? Infinity : performance.now() + budgetMs;
    let count = 0;
    const stack = this.#stack;
    while (stack.length > 0) {
      if ((++count & 255) === 0 && performance.now() >= until) return false;
      const frame = stack[stack.length - 1]!;
      const next = this.#nextChild(frame);
      if (next === undefined) {
        stack.pop();
        this.#listing.delete(frame.node);
        this.#kept.delete(frame.node);
        continue;
      }
      this.#enter(next[1], joinPath(frame.path, next[0]));
    }
    this.#finish();
    return true;
  }

  /** The body, once {@linkcode TreeSnapshot.step} has returned true. */
  body(): SnapshotBody {
    if (!this.#done || this.#stack.length > 0) throw new Error("Cannot read a snapshot that is not complete");
    return { chunks: this.#chunks, length: this.#length };
  }

  // The record kept of `parent`'s children, made if the snapshot still has to list them; undefined once listed.
  #keptForChildren(parent: SnapshotNode): Kept | undefined {
    if (parent.snap === this.#id && !this.#listing.has(parent)) return undefined;
    let kept = this.#kept.get(parent);
    if (kept === undefined) this.#kept.set(parent, kept = { fields: undefined, added: undefined, removed: undefined });
    return kept;
  }

  #nextChild(frame: Frame): [string, SnapshotNode] | undefined {
    if (frame.removedChildren === undefined) {
      for (;;) {
        const next = frame.children.next();
        if (next.done) break;
        // Added after the start (the kept record is looked up afresh: the tree may have made it meanwhile).
        const kept = frame.kept ??= this.#kept.get(frame.node);
        if (kept?.added?.has(next.value[0])) continue;
        return next.value;
      }
      const removed = (frame.kept ??= this.#kept.get(frame.node))?.removed;
      frame.removedChildren = removed === undefined ? [][Symbol.iterator]() : removed.entries();
    }
    const next = frame.removedChildren.next();
    return next.done ? undefined : next.value;
  }

  #enter(node: SnapshotNode, path: string): void {
    const kept = this.#kept.get(node);
    this.#writeNode(path, kept?.fields ?? node);
    node.snap = this.#id;
    this.#listing.add(node);
    this.#written++;
    this.#stack.push({ node, path, kept, children: node.children.entries(), removedChildren: undefined });
  }

  #writeNode(path: string, node: Fields): void {
    const buffer = this.#buffer;
    const pathBytes = this.#encoder.encode(path);
    buffer.appendUint32(pathBytes.length);
    buffer.append(pathBytes);
    buffer.appendUint32(node.data.length);
    buffer.append(node.data);
    buffer.appendBigUint64(node.czxid);
    buffer.appendBigUint64(node.mzxid);
    buffer.appendBigUint64(node.pzxid);
    buffer.appendBigInt64(BigInt(node.ctime));
    buffer.appendBigInt64(BigInt(node.mtime));
    buffer.appendInt32(node.version);
    buffer.appendInt32(node.cversion);
    buffer.appendBigUint64(node.ephemeralOwner);
    if (buffer.readableBytes >= CHUNK_BYTES) this.#cut();
  }

  #cut(): void {
    const bytes = this.#buffer.retrieveAsBytes(this.#buffer.readableBytes);
    this.#chunks.push(bytes);
    this.#length += bytes.length;
  }

  #finish(): void {
    this.#release();
    if (this.#written !== this.#nodeCount) {
      throw new Error(`snapshot wrote ${this.#written} nodes, the tree held ${this.#nodeCount} at its start`);
    }
    const buffer = this.#buffer;
    buffer.appendUint32(this.#sessions.length);
    for (const [id, record] of this.#sessions) {
      buffer.appendBigUint64(id);
      buffer.appendUint32(record.secret.length);
      buffer.append(record.secret);
      buffer.appendUint8(record.authorized ? 1 : 0);
      const token = this.#encoder.encode(record.token);
      buffer.appendUint32(token.length);
      buffer.append(token);
    }
    this.#cut();
  }

  #release(): void {
    this.#done = true;
    this.#detach();
    this.#kept.clear();
    this.#listing.clear();
  }
}
