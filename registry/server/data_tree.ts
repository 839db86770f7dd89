/**
 * The registry's tree of nodes (ZooKeeper's DataTree; the seed's DNode/Services): persistent and ephemeral nodes
 * with data, versions and stats, sequential names, and the changes each operation makes, reported as events
 * for watches. Pure and deterministic: the server passes in the transaction id and the time, so replaying a log
 * rebuilds the same tree.
 *
 * @module
 */

import type { SessionRecord } from "./session_record.ts";
import { Buffer } from "../../reactor/buffer.ts";
import { basename, DEFAULT_MAX_PATH_LENGTH, joinPath, parentOf, validatePath } from "../path.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";
import { EventType, NodeType, type Stat } from "../registry.ts";
import { TreeSnapshot } from "./_tree_snapshot.ts";

// The types a node shows outside are the clients' contract (registry.ts); the tree speaks them too.
export { EventType, NodeType, type Stat } from "../registry.ts";

/** A change to one path, as watches see it. */
export interface TreeEvent {
  /** What changed. */
  type: EventType;
  /** Where. */
  path: string;
}

/** How to create a node. */
export interface CreateMode {
  /**
   * PERSISTENT or EPHEMERAL.
   * @default {NodeType.PERSISTENT}
   */
  nodeType?: NodeType;
  /**
   * Append a 10-digit counter from the parent (ZooKeeper's sequential nodes).
   * @default {false}
   */
  sequential?: boolean;
  /** The creating session; required for ephemeral nodes. */
  sessionId?: bigint;
}

/** Options of {@linkcode DataTree}. */
export interface DataTreeOptions {
  /**
   * The largest node data, in bytes (ZooKeeper's jute.maxbuffer is 1 MiB).
   * @default {1048576}
   */
  maxDataBytes?: number;
  /**
   * The longest path, in characters.
   * @default {1024}
   */
  maxPathLength?: number;
}

// A node keeps its stat but for what its data, children and owner already say; `snap` marks the last snapshot
// that reached it (see _tree_snapshot.ts).
interface TreeNode extends Omit<Stat, "dataLength" | "numChildren" | "nodeType"> {
  data: Uint8Array;
  /** NO_CHILDREN until the first child comes (most nodes are leaves): change it through childrenToChange. */
  children: ReadonlyMap<string, TreeNode>;
  snap: number;
}

// One empty map shared by every leaf: a map per node would cost a leaf about as much memory as the rest of it. Typed
// read-only, so only childrenToChange can add to a node's children, and it never adds to this one.
const NO_CHILDREN: ReadonlyMap<string, TreeNode> = new Map();

function childrenToChange(node: TreeNode): Map<string, TreeNode> {
  if (node.children === NO_CHILDREN) node.children = new Map();
  return node.children as Map<string, TreeNode>;
}

export type { SnapshotBody, TreeSnapshot } from "./_tree_snapshot.ts";

const EMPTY = new Uint8Array(0);
const SNAPSHOT_MAGIC = 0x44545331; // "DTS1"

export type { SessionRecord } from "./session_record.ts";

function newNode(data: Uint8Array, zxid: bigint, nowMs: number, owner: bigint): TreeNode {
  return {
    data,
    czxid: zxid,
    mzxid: zxid,
    pzxid: zxid,
    ctime: nowMs,
    mtime: nowMs,
    version: 0,
    cversion: 0,
    ephemeralOwner: owner,
    children: NO_CHILDREN,
    snap: 0,
  };
}

function statOf(node: TreeNode): Stat {
  return {
    czxid: node.czxid,
    mzxid: node.mzxid,
    pzxid: node.pzxid,
    ctime: node.ctime,
    mtime: node.mtime,
    version: node.version,
    cversion: node.cversion,
    ephemeralOwner: node.ephemeralOwner,
    dataLength: node.data.length,
    numChildren: node.children.size,
    nodeType: node.ephemeralOwner === 0n ? NodeType.PERSISTENT : NodeType.EPHEMERAL,
  };
}

/**
 * The tree. Every operation validates fully before it changes anything, so a failed operation leaves the tree
 * as it was.
 *
 * @example
 * ```ts
 * import { DataTree, NodeType } from "./data_tree.ts";
 * import assert from "node:assert/strict";
 *
 * const tree = new DataTree();
 * tree.create("/services", new Uint8Array(), {}, 1n, Date.now());
 * const { path } = tree.create("/services/p-", new Uint8Array([1]), {
 *   nodeType: NodeType.EPHEMERAL,
 *   sequential: true,
 *   sessionId: 7n,
 * }, 2n, Date.now());
 * assert.equal(path, "/services/p-0000000000");
 * assert.deepEqual(tree.getChildren("/services").children, ["p-0000000000"]);
 * assert.deepEqual(tree.killSession(7n, 3n).deleted, ["/services/p-0000000000"]);
 * ```
 */
export class DataTree {
  readonly #root: TreeNode = newNode(EMPTY, 0n, 0, 0n);
  readonly #ephemerals = new Map<bigint, Set<string>>();
  readonly #sessions = new Map<bigint, SessionRecord>();
  readonly #maxDataBytes: number;
  readonly #maxPathLength: number;
  #nodeCount = 1;
  #lastZxid = 0n;
  // The snapshot being written, told of every change before it is made.
  #snapshot: TreeSnapshot | undefined;

  /** An empty tree holding only the root `/`. */
  constructor(options: DataTreeOptions = {}) {
    this.#maxDataBytes = options.maxDataBytes ?? 1024 * 1024;
    this.#maxPathLength = options.maxPathLength ?? DEFAULT_MAX_PATH_LENGTH;
  }

  /** Nodes in the tree, the root included. */
  get nodeCount(): number {
    return this.#nodeCount;
  }

  /** The highest transaction id applied. */
  get lastZxid(): bigint {
    return this.#lastZxid;
  }

  /** The largest data accepted, in bytes. */
  get maxDataBytes(): number {
    return this.#maxDataBytes;
  }

  /** Create a node; returns its actual path (sequential nodes get a suffix), its stat and the events. */
  // Positional, not an options object: it runs once per write request and per replayed log record.
  create(
    path: string,
    data: Uint8Array,
    mode: CreateMode,
    zxid: bigint,
    nowMs: number,
  ): { path: string; stat: Stat; events: TreeEvent[] } {
    validatePath(path, this.#maxPathLength);
    if (path === "/") throw new RegistryError(RegistryErrorCode.NODE_EXISTS, "Cannot create '/' as it always exists");
    this.#checkData(path, data);
    const nodeType = mode.nodeType ?? NodeType.PERSISTENT;
    if (nodeType !== NodeType.PERSISTENT && nodeType !== NodeType.EPHEMERAL) {
      throw new RegistryError(
        RegistryErrorCode.BAD_ARGUMENTS,
        `Cannot create '${path}' as the node type must be 1 (persistent) or 2 (ephemeral): current value is ${nodeType}`,
      );
    }
    const owner = nodeType === NodeType.EPHEMERAL ? (mode.sessionId ?? 0n) : 0n;
    if (nodeType === NodeType.EPHEMERAL && owner === 0n) {
      throw new RegistryError(RegistryErrorCode.BAD_ARGUMENTS, `Cannot create ephemeral '${path}' without a session`);
    }
    const parentPath = parentOf(path);
    const parent = this.#find(parentPath);
    if (parent === undefined) {
      throw new RegistryError(
        RegistryErrorCode.NO_NODE,
        `Cannot create '${path}' as its parent '${parentPath}' does not exist`,
      );
    }
    if (parent.ephemeralOwner !== 0n) {
      throw new RegistryError(
        RegistryErrorCode.NO_CHILDREN_FOR_EPHEMERALS,
        `Cannot create '${path}' as its parent '${parentPath}' is ephemeral`,
      );
    }
    let name = basename(path);
    if (mode.sequential) name += String(parent.cversion).padStart(10, "0");
    const actualPath = joinPath(parentPath, name);
    if (actualPath.length > this.#maxPathLength) validatePath(actualPath, this.#maxPathLength);
    if (parent.children.has(name)) {
      throw new RegistryError(RegistryErrorCode.NODE_EXISTS, `Cannot create '${actualPath}' as it already exists`);
    }
    const node = newNode(data, zxid, nowMs, owner);
    this.#snapshot?.changing(parent);
    childrenToChange(parent).set(name, node);
    this.#snapshot?.childAdded(parent, name);
    parent.cversion++;
    parent.pzxid = zxid;
    this.#nodeCount++;
    if (owner !== 0n) {
      let paths = this.#ephemerals.get(owner);
      if (paths === undefined) this.#ephemerals.set(owner, paths = new Set());
      paths.add(actualPath);
    }
    this.#advance(zxid);
    return {
      path: actualPath,
      stat: statOf(node),
      events: [
        { type: EventType.NODE_CREATED, path: actualPath },
        { type: EventType.NODE_CHILDREN_CHANGED, path: parentPath },
      ],
    };
  }

  /** A node's data and stat. */
  getData(path: string): { data: Uint8Array; stat: Stat } {
    const node = this.#require(path, "get");
    return { data: node.data, stat: statOf(node) };
  }

  /** Replace a node's data if its version is `expectedVersion` (-1: any). */
  // Positional, not an options object: it runs once per write request and per replayed log record.
  setData(
    path: string,
    data: Uint8Array,
    expectedVersion: number,
    zxid: bigint,
    nowMs: number,
  ): { stat: Stat; events: TreeEvent[] } {
    const node = this.#require(path, "set");
    this.#checkData(path, data);
    this.#checkVersion(path, node, expectedVersion, "set");
    this.#snapshot?.changing(node);
    node.data = data;
    node.version++;
    node.mzxid = zxid;
    node.mtime = nowMs;
    this.#advance(zxid);
    return { stat: statOf(node), events: [{ type: EventType.NODE_DATA_CHANGED, path }] };
  }

  /** Delete a childless node if its version is `expectedVersion` (-1: any). */
  delete(path: string, expectedVersion: number, zxid: bigint): { events: TreeEvent[] } {
    validatePath(path, this.#maxPathLength);
    if (path === "/") throw new RegistryError(RegistryErrorCode.BAD_ARGUMENTS, "Cannot delete '/' as it is the root");
    const node = this.#require(path, "delete");
    this.#checkVersion(path, node, expectedVersion, "delete");
    if (node.children.size > 0) {
      throw new RegistryError(
        RegistryErrorCode.NOT_EMPTY,
        `Cannot delete '${path}' as it has ${node.children.size} ${node.children.size === 1 ? "child" : "children"}`,
      );
    }
    this.#remove(path, node, zxid);
    this.#advance(zxid);
    const parentPath = parentOf(path);
    return {
      events: [
        { type: EventType.NODE_DELETED, path },
        { type: EventType.NODE_CHILDREN_CHANGED, path: parentPath },
      ],
    };
  }

  /** A node's children, sorted, and its stat. */
  getChildren(path: string): { children: string[]; stat: Stat } {
    const node = this.#require(path, "list");
    return { children: [...node.children.keys()].sort(), stat: statOf(node) };
  }

  /** A node's stat, or undefined when it does not exist. */
  exists(path: string): Stat | undefined {
    validatePath(path, this.#maxPathLength);
    const node = this.#find(path);
    return node === undefined ? undefined : statOf(node);
  }

  /** Record an open session (logged as a transaction, so it survives a restart). */
  createSession(sessionId: bigint, record: SessionRecord, zxid: bigint): void {
    this.#sessions.set(sessionId, record);
    this.#advance(zxid);
  }

  /** The open sessions, as recorded by createSession and not yet killed. */
  get sessions(): ReadonlyMap<bigint, SessionRecord> {
    return this.#sessions;
  }

  /** The paths of a session's ephemeral nodes. */
  ephemeralsOf(sessionId: bigint): string[] {
    return [...(this.#ephemerals.get(sessionId) ?? [])].sort();
  }

  /** Delete every ephemeral node of a session (its session expired or closed). */
  killSession(sessionId: bigint, zxid: bigint): { deleted: string[]; events: TreeEvent[] } {
    const paths = this.ephemeralsOf(sessionId);
    const events: TreeEvent[] = [];
    for (const path of paths) {
      const node = this.#find(path);
      if (node === undefined) continue;
      this.#remove(path, node, zxid);
      events.push({ type: EventType.NODE_DELETED, path }, {
        type: EventType.NODE_CHILDREN_CHANGED,
        path: parentOf(path),
      });
    }
    this.#ephemerals.delete(sessionId);
    this.#sessions.delete(sessionId);
    // Every logged transaction advances the tree, found or not, so zxids stay continuous across a restart.
    this.#advance(zxid);
    return { deleted: paths, events };
  }

  /**
   * The tree and its open sessions as bytes, for snapshots: ephemeral nodes are kept with their sessions, so a
   * session that resumes after a restart still has them. Layout, integers big-endian:
   *
   * ```text
   * magic u32 "DTS1" | version u8 = 2 | lastZxid u64 | nodeCount u32 | node * nodeCount
   *   | sessionCount u32 | session * sessionCount
   * node: pathLength u32 | path UTF-8 | dataLength u32 | data | czxid u64 | mzxid u64 | pzxid u64
   *       | ctime i64 | mtime i64 | version i32 | cversion i32 | ephemeralOwner u64
   * session: id u64 | secretLength u32 | secret | authorized u8 | tokenLength u32 | token UTF-8
   * ```
   * Nodes come parents first, so loading can create each under an existing parent. Version 1 (no ephemeral
   * nodes, no owner field, no sessions) still loads.
   */
  serialize(): Uint8Array {
    const snapshot = new TreeSnapshot(this.#root, {
      lastZxid: this.#lastZxid,
      nodeCount: this.#nodeCount,
      sessions: this.#sessions,
    });
    snapshot.step(Infinity);
    const { chunks, length } = snapshot.body();
    const bytes = new Uint8Array(length);
    let offset = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, offset);
      offset += chunk.length;
    }
    return bytes;
  }

  /**
   * Start a snapshot of the tree as it is now, written a slice at a time ({@linkcode TreeSnapshot.step}) while the
   * tree goes on changing; its body is {@linkcode DataTree.serialize}'s bytes of the tree at this moment. One at a
   * time: abandon a snapshot (or let it finish) before the next.
   */
  startSnapshot(): TreeSnapshot {
    if (this.#snapshot !== undefined && !this.#snapshot.done) {
      throw new Error("Cannot start a snapshot while another one is being written");
    }
    const snapshot = new TreeSnapshot(
      this.#root,
      { lastZxid: this.#lastZxid, nodeCount: this.#nodeCount, sessions: this.#sessions },
      () => {
        if (this.#snapshot === snapshot) this.#snapshot = undefined;
      },
    );
    this.#snapshot = snapshot;
    return snapshot;
  }

  /** Rebuild a tree from {@linkcode DataTree.serialize}'s bytes. Throws DATA_INCONSISTENCY on bad input. */
  static deserialize(bytes: Uint8Array, options: DataTreeOptions = {}): DataTree {
    const tree = new DataTree(options);
    const buffer = new Buffer(bytes.length);
    buffer.append(bytes);
    const decoder = new TextDecoder("utf-8", { ignoreBOM: true }); // names keep a leading U+FEFF
    try {
      if (buffer.readUint32() !== SNAPSHOT_MAGIC) throw new Error("bad magic");
      const version = buffer.readUint8();
      if (version !== 1 && version !== 2) throw new Error(`unknown version ${version}`);
      tree.#lastZxid = buffer.readBigUint64();
      const count = buffer.readUint32();
      for (let i = 0; i < count; i++) {
        const path = decoder.decode(buffer.retrieveAsBytes(buffer.readUint32()));
        const data = buffer.retrieveAsBytes(buffer.readUint32());
        const node: TreeNode = {
          data,
          czxid: buffer.readBigUint64(),
          mzxid: buffer.readBigUint64(),
          pzxid: buffer.readBigUint64(),
          ctime: Number(buffer.readBigInt64()),
          mtime: Number(buffer.readBigInt64()),
          version: buffer.readInt32(),
          cversion: buffer.readInt32(),
          ephemeralOwner: version >= 2 ? buffer.readBigUint64() : 0n,
          children: NO_CHILDREN,
          snap: 0,
        };
        if (path === "/") {
          Object.assign(tree.#root, { ...node, children: tree.#root.children });
          continue;
        }
        const parent = tree.#find(parentOf(path));
        if (parent === undefined) throw new Error(`node '${path}' comes before its parent`);
        childrenToChange(parent).set(basename(path), node);
        tree.#nodeCount++;
        if (node.ephemeralOwner !== 0n) {
          let paths = tree.#ephemerals.get(node.ephemeralOwner);
          if (paths === undefined) tree.#ephemerals.set(node.ephemeralOwner, paths = new Set());
          paths.add(path);
        }
      }
      if (version >= 2) {
        for (let i = 0, n = buffer.readUint32(); i < n; i++) {
          const id = buffer.readBigUint64();
          const secret = buffer.retrieveAsBytes(buffer.readUint32());
          const authorized = buffer.readUint8() === 1;
          const token = decoder.decode(buffer.retrieveAsBytes(buffer.readUint32()));
          tree.#sessions.set(id, { secret, authorized, token });
        }
      }
      if (buffer.readableBytes !== 0) throw new Error(`${buffer.readableBytes} trailing bytes`);
    } catch (error) {
      throw new RegistryError(
        RegistryErrorCode.DATA_INCONSISTENCY,
        `Cannot load snapshot: ${error instanceof Error ? error.message : error}`,
        { cause: error },
      );
    }
    return tree;
  }

  /**
   * A deep copy (data bytes shared: nodes never change them in place), for the server's proposed tree, which
   * runs ahead of this one by the records in flight.
   */
  clone(): DataTree {
    const copy = new DataTree({ maxDataBytes: this.#maxDataBytes, maxPathLength: this.#maxPathLength });
    const copyNode = (node: TreeNode): TreeNode => {
      if (node.children.size === 0) return { ...node, children: NO_CHILDREN, snap: 0 };
      const children = new Map<string, TreeNode>();
      for (const [name, child] of node.children) children.set(name, copyNode(child));
      return { ...node, children, snap: 0 };
    };
    Object.assign(copy.#root, copyNode(this.#root));
    for (const [owner, paths] of this.#ephemerals) copy.#ephemerals.set(owner, new Set(paths));
    for (const [id, record] of this.#sessions) copy.#sessions.set(id, record);
    copy.#nodeCount = this.#nodeCount;
    copy.#lastZxid = this.#lastZxid;
    return copy;
  }

  /** Every path in the tree, parents first (for `tree` listings and tests). */
  paths(from = "/"): string[] {
    const start = this.#require(from, "list");
    const result: string[] = [];
    const visit = (path: string, node: TreeNode) => {
      result.push(path);
      for (const name of [...node.children.keys()].sort()) visit(joinPath(path, name), node.children.get(name)!);
    };
    visit(from, start);
    return result;
  }

  #find(path: string): TreeNode | undefined {
    if (path === "/") return this.#root;
    let node: TreeNode | undefined = this.#root;
    let start = 1;
    while (node !== undefined) {
      const end = path.indexOf("/", start);
      const name = end < 0 ? path.slice(start) : path.slice(start, end);
      node = node.children.get(name);
      if (end < 0) return node;
      start = end + 1;
    }
    return undefined;
  }

  #require(path: string, what: string): TreeNode {
    validatePath(path, this.#maxPathLength);
    const node = this.#find(path);
    if (node === undefined) {
      throw new RegistryError(RegistryErrorCode.NO_NODE, `Cannot ${what} '${path}' as it does not exist`);
    }
    return node;
  }

  #remove(path: string, node: TreeNode, zxid: bigint): void {
    const parent = this.#find(parentOf(path))!;
    const name = basename(path);
    this.#snapshot?.changing(parent);
    childrenToChange(parent).delete(name);
    this.#snapshot?.childRemoved(parent, name, node);
    parent.cversion++;
    parent.pzxid = zxid;
    this.#nodeCount--;
    if (node.ephemeralOwner !== 0n) {
      const paths = this.#ephemerals.get(node.ephemeralOwner);
      paths?.delete(path);
      if (paths?.size === 0) this.#ephemerals.delete(node.ephemeralOwner);
    }
  }

  #checkData(path: string, data: Uint8Array): void {
    if (data.length > this.#maxDataBytes) {
      throw new RegistryError(
        RegistryErrorCode.BAD_ARGUMENTS,
        `Cannot write '${path}' as its data of ${data.length} bytes exceeds the limit of ${this.#maxDataBytes} bytes`,
      );
    }
  }

  #checkVersion(path: string, node: TreeNode, expectedVersion: number, what: string): void {
    if (expectedVersion !== -1 && expectedVersion !== node.version) {
      throw new RegistryError(
        RegistryErrorCode.BAD_VERSION,
        `Cannot ${what} '${path}' as its version is ${node.version}, not the expected ${expectedVersion}`,
      );
    }
  }

  #advance(zxid: bigint): void {
    if (zxid > this.#lastZxid) this.#lastZxid = zxid;
  }
}
