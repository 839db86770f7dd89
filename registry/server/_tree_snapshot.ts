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

import type { SessionRecord } from "./session_record.ts";

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
  children: ReadonlyMap<string, SnapshotNode>;
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

/** A node being listed: its path's UTF-8 and a slash (its children's paths start so), and where the listing stands. */
interface Frame {
  node: SnapshotNode;
  prefix: Uint8Array;
  kept: Kept | undefined;
  children: Iterator<[string, SnapshotNode]>;
  /** Past the live children: the removed ones still to visit. */
  removedChildren: Iterator<[string, SnapshotNode]> | undefined;
}

const SNAPSHOT_MAGIC = 0x44545331; // "DTS1"
const SLASH = 0x2f;
const TWO_TO_32 = 2 ** 32;
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
  // Undefined for a snapshot written at once: it marks no node, so one written meanwhile is not disturbed.
  readonly #detach: (() => void) | undefined;
  readonly #encoder = new TextEncoder();
  readonly #chunks: Uint8Array[] = [];
  #bytes = new Uint8Array(CHUNK_BYTES);
  #view = new DataView(this.#bytes.buffer);
  #at = 0;
  // Where the last node's path was written (the piece may have been cut since).
  readonly #lastPath = { chunk: this.#bytes, start: 0, end: 0 };
  #length = 0;
  #written = 0;
  #done = false;

  /**
   * Start a snapshot of the tree under `root` as it is now. With `detach`, the tree calls the hooks until `detach`
   * is called (when the snapshot is done or abandoned); without, the snapshot must be written at once.
   */
  constructor(
    root: SnapshotNode,
    state: { lastZxid: bigint; nodeCount: number; sessions: ReadonlyMap<bigint, SessionRecord> },
    detach?: () => void,
  ) {
    this.#nodeCount = state.nodeCount;
    // Sessions are few next to nodes and their records never change: a copy of the list is the snapshot of them.
    this.#sessions = [...state.sessions];
    this.#detach = detach;
    this.#reserve(17);
    this.#view.setUint32(this.#at, SNAPSHOT_MAGIC);
    this.#view.setUint8(this.#at + 4, SNAPSHOT_VERSION);
    this.#view.setBigUint64(this.#at + 5, state.lastZxid);
    this.#view.setUint32(this.#at + 13, state.nodeCount);
    this.#at += 17;
    this.#enter(root, new Uint8Array(0), "/");
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
    if (this.#detach === undefined && budgetMs !== Infinity) {
      throw new Error("Cannot write an untracked snapshot a slice at a time");
    }
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
      this.#enter(next[1], frame.prefix, next[0]);
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

  // Write `node`, whose path is `prefix` + `name`; list its children next if it has any (or had, at the start).
  #enter(node: SnapshotNode, prefix: Uint8Array, name: string): void {
    const kept = this.#kept.get(node);
    this.#writeNode(prefix, name, kept?.fields ?? node);
    this.#written++;
    if (this.#detach === undefined) {
      if (node.children.size === 0) return;
    } else {
      node.snap = this.#id;
      // A leaf (then) is done once written: children added later are not the snapshot's.
      if (node.children.size === 0 && kept?.removed === undefined) return;
      this.#listing.add(node);
    }
    const own = this.#lastPath.chunk.subarray(this.#lastPath.start, this.#lastPath.end);
    let childPrefix: Uint8Array;
    if (own.length === 1) {
      childPrefix = own.slice(); // the root: "/name"
    } else {
      childPrefix = new Uint8Array(own.length + 1);
      childPrefix.set(own);
      childPrefix[own.length] = SLASH;
    }
    this.#stack.push({
      node,
      prefix: childPrefix,
      kept,
      children: node.children.entries(),
      removedChildren: undefined,
    });
  }

  // Room for `bytes` more in the current piece (a new piece if need be, as big as needed).
  #reserve(bytes: number): void {
    if (this.#bytes.length - this.#at >= bytes) return;
    this.#cut();
    if (this.#bytes.length < bytes) {
      this.#bytes = new Uint8Array(bytes);
      this.#view = new DataView(this.#bytes.buffer);
    }
  }

  // Write one node, and say where its path went (#lastPath).
  #writeNode(prefix: Uint8Array, name: string, node: Fields): void {
    const data = node.data;
    this.#reserve(4 + prefix.length + name.length * 3 + 4 + data.length + 56);
    const bytes = this.#bytes;
    const view = this.#view;
    const start = this.#at;
    let at = start + 4;
    bytes.set(prefix, at);
    at += prefix.length;
    // Names are nearly always ASCII: copied by hand, without a view to encode into.
    let ascii = true;
    for (let i = 0; i < name.length; i++) {
      const code = name.charCodeAt(i);
      if (code >= 0x80) {
        ascii = false;
        break;
      }
      bytes[at + i] = code;
    }
    at += ascii ? name.length : this.#encoder.encodeInto(name, bytes.subarray(at)).written;
    view.setUint32(start, at - start - 4);
    this.#lastPath.chunk = bytes;
    this.#lastPath.start = start + 4;
    this.#lastPath.end = at;
    view.setUint32(at, data.length);
    bytes.set(data, at + 4);
    at += 4 + data.length;
    view.setBigUint64(at, node.czxid);
    view.setBigUint64(at + 8, node.mzxid);
    view.setBigUint64(at + 16, node.pzxid);
    // i64 times as two halves: no bigint made per node.
    const ctimeHigh = Math.floor(node.ctime / TWO_TO_32);
    view.setInt32(at + 24, ctimeHigh);
    view.setUint32(at + 28, node.ctime - ctimeHigh * TWO_TO_32);
    const mtimeHigh = Math.floor(node.mtime / TWO_TO_32);
    view.setInt32(at + 32, mtimeHigh);
    view.setUint32(at + 36, node.mtime - mtimeHigh * TWO_TO_32);
    view.setInt32(at + 40, node.version);
    view.setInt32(at + 44, node.cversion);
    view.setBigUint64(at + 48, node.ephemeralOwner);
    this.#at = at + 56;
    if (this.#at >= CHUNK_BYTES) this.#cut();
  }

  #cut(): void {
    if (this.#at === 0) return;
    this.#chunks.push(this.#bytes.subarray(0, this.#at));
    this.#length += this.#at;
    this.#at = 0;
    this.#bytes = new Uint8Array(CHUNK_BYTES);
    this.#view = new DataView(this.#bytes.buffer);
  }

  #finish(): void {
    this.#release();
    if (this.#written !== this.#nodeCount) {
      throw new Error(`snapshot wrote ${this.#written} nodes, the tree held ${this.#nodeCount} at its start`);
    }
    this.#reserve(4);
    this.#view.setUint32(this.#at, this.#sessions.length);
    this.#at += 4;
    for (const [id, record] of this.#sessions) {
      const token = this.#encoder.encode(record.token);
      this.#reserve(8 + 4 + record.secret.length + 1 + 4 + token.length);
      const view = this.#view;
      let at = this.#at;
      view.setBigUint64(at, id);
      view.setUint32(at + 8, record.secret.length);
      this.#bytes.set(record.secret, at + 12);
      at += 12 + record.secret.length;
      view.setUint8(at, record.authorized ? 1 : 0);
      view.setUint32(at + 1, token.length);
      this.#bytes.set(token, at + 5);
      this.#at = at + 5 + token.length;
    }
    this.#cut();
  }

  #release(): void {
    this.#done = true;
    this.#detach?.();
    this.#kept.clear();
    this.#listing.clear();
  }
}
