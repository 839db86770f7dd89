/**
 * A linearizability checker for registry histories ({@linkcode History}): is there one order of the operations,
 * respecting real time, in which every answer is what a single registry would have given?
 *
 * The search is Wing & Gong's, with Lowe's memoization as Porcupine does it: depth first over the operations that
 * may come next (those invoked before the earliest answer still outstanding), each tried against a model; a
 * configuration (the set of operations placed, the model state) already seen is not explored again. One search per
 * partition, as the model allows (P-compositionality): a partition is a top-level node `/r` with its children
 * `/r/x`, so sequential names (the parent's cversion) and `children` stay inside one. Its state: the root absent or
 * {data, version, cversion, ephemeral owner}, the children the same way, and the sessions whose end has been placed.
 *
 * Operations without a definite answer may or may not have happened: they are placed anywhere after their
 * invocation and before their bound (the death of the server process they went to, else never), or not at all.
 * Reads without an answer say nothing and are left out, as are requests that never left the client and writes
 * refused without effect (STORAGE_FAILED, NOT_READ_ONLY, limits: the registry promises these change nothing).
 *
 * Sessions and ephemeral nodes: a session's end (closed, or expired on the server) is an implicit operation
 * that deletes its ephemeral nodes, added to every partition where the session created any. It comes after the
 * invocation of every operation the session saw succeed, and before {@linkcode History.settledMs} (when the
 * harness knows every session has ended), or, without it, at any later time or never. After it the session can do
 * nothing that succeeds. Its timing is otherwise free: an expiry notice is not a reply, and the server may send
 * it before the closeSession is durable. So ephemeral nodes are checked strictly for everything they show
 * (data, versions, who owns them, the sequence numbers and cversions their deletion moves) and only eventually
 * for their disappearance.
 *
 * Bounded: each partition's search stops after a budget of steps with the outcome "unknown" (never a pass).
 * Deterministic: the same history gives the same answer and the same report. The memo keys a configuration by a
 * 64-bit Zobrist hash of its set of placed operations and an interned state (exact keys would cost a bitset of the
 * whole history per step); a violation is searched again with other hash values before it is reported, so a false
 * one would need a collision, among some 10^6 keys in 2^64, in both searches.
 *
 * @module
 */

import type { History, HistoryOp, OpInput, OpResult, StatView } from "./_history.ts";
import { NOT_SENT } from "./_history.ts";
import { violationWindow } from "./_violation_window.ts";

/** Failures decided against the tree: answers the model must reproduce. */
const SEMANTIC_CODES = new Set(["NO_NODE", "NODE_EXISTS", "BAD_VERSION", "NOT_EMPTY", "NO_CHILDREN_FOR_EPHEMERALS"]);

/** Options of {@linkcode checkHistory}. */
export interface CheckOptions {
  /**
   * Search steps per partition before its outcome is "unknown".
   * @default {1000000 + 10 per op of the partition: a linearizable history takes about 1.5 per op}
   */
  maxStepsPerPartition?: number;
  /**
   * Hold a session's end to the moment its client was told it expired (`SessionSpan.expiredSeenMs`), not
   * only to {@linkcode History.settledMs}: "an expired client is told so only after its ephemeral nodes are gone".
   * @default {false}
   */
  strictSessionEnds?: boolean;
}

/** The outcome of one partition's search. */
export interface PartitionReport {
  /** Its root path (`/k0`). */
  readonly partition: string;
  /** Operations checked, implicit session ends included. */
  readonly ops: number;
  /** Of those, operations without a definite answer. */
  readonly indeterminate: number;
  /** "ok": an order exists; "violation": none does; "unknown": the step budget ran out first. */
  readonly outcome: "ok" | "violation" | "unknown";
  /** Search steps taken. */
  readonly steps: number;
  /** For a violation: the operations around the point where no order exists, one per line. */
  readonly window?: string;
}

/** The outcome of {@linkcode checkHistory}. */
export interface CheckReport {
  /** Every partition linearizable. */
  readonly ok: boolean;
  readonly partitions: readonly PartitionReport[];
  /** Operations checked in all, implicit session ends included. */
  readonly opsChecked: number;
  /** Of those, operations without a definite answer. */
  readonly indeterminate: number;
  /** Operations left out: unanswered reads, requests never sent, writes refused without effect. */
  readonly leftOut: number;
  readonly violations: number;
  readonly unknown: number;
}

// --- the model ---

interface ModelNode {
  readonly data: string;
  readonly version: number;
  readonly cversion: number;
  readonly owner: string;
}

interface ModelState {
  readonly root: ModelNode | undefined;
  readonly children: ReadonlyMap<string, ModelNode>;
  /** Sessions whose end has been placed, sorted. */
  readonly ended: readonly string[];
}

const EMPTY: ModelState = { root: undefined, children: new Map(), ended: [] };

function stateKey(state: ModelState): string {
  const node = (n: ModelNode) => `${n.version}\u0001${n.cversion}\u0001${n.owner}\u0001${n.data}`;
  let key = state.root === undefined ? "-" : node(state.root);
  for (const name of [...state.children.keys()].sort()) key += `\u0002${name}\u0003${node(state.children.get(name)!)}`;
  return `${key}\u0004${state.ended.join(",")}`;
}

/** An operation as the search sees it: a recorded one, or the implicit end of a session. */
export interface CheckedOp {
  readonly input: OpInput | { readonly kind: "end" };
  readonly session: string;
  readonly client: number;
  readonly invokeMs: number;
  readonly responseMs: number;
  /** Undefined: no definite answer (optional, bounded by responseMs). */
  readonly result: OpResult | undefined;
}

const fail = (code: string): OpResult => ({ ok: false, code });

function split(path: string): { root: string; child: string | undefined } {
  const parts = path.split("/");
  if (parts[0] !== "" || parts.length < 2 || parts.length > 3 || parts.some((p, i) => i > 0 && p === "")) {
    throw new RangeError(`Cannot check '${path}' as paths must be '/root' or '/root/child'`);
  }
  return { root: `/${parts[1]}`, child: parts[2] };
}

function statOf(node: ModelNode, numChildren: number): StatView {
  return { version: node.version, cversion: node.cversion, numChildren, owner: node.owner };
}

/** What a single registry in `state` answers to `op`, and the state after it. */
function step(state: ModelState, op: CheckedOp): { result: OpResult; next: ModelState } {
  const input = op.input;
  if (input.kind === "end") {
    const children = new Map(state.children);
    let removed = 0;
    for (const [name, node] of children) {
      if (node.owner === op.session) {
        children.delete(name);
        removed++;
      }
    }
    let root = state.root;
    if (root?.owner === op.session) root = undefined;
    else if (root !== undefined && removed > 0) root = { ...root, cversion: root.cversion + removed };
    const ended = [...state.ended, op.session].sort();
    return { result: { ok: true }, next: { root, children, ended } };
  }
  if (state.ended.includes(op.session)) return { result: fail("SESSION_EXPIRED"), next: state };
  const { root: rootPath, child } = split(input.path);
  const node = child === undefined ? state.root : state.children.get(child);
  switch (input.kind) {
    case "create": {
      const created: ModelNode = {
        data: input.data,
        version: 0,
        cversion: 0,
        owner: input.ephemeral ? op.session : "",
      };
      if (child === undefined) {
        if (input.sequential) {
          throw new RangeError(`Cannot check a sequential create at the top level: '${input.path}'`);
        }
        if (state.root !== undefined) return { result: fail("NODE_EXISTS"), next: state };
        return { result: { ok: true, path: input.path }, next: { ...state, root: created } };
      }
      const root = state.root;
      if (root === undefined) return { result: fail("NO_NODE"), next: state };
      if (root.owner !== "") return { result: fail("NO_CHILDREN_FOR_EPHEMERALS"), next: state };
      const name = input.sequential ? child + String(root.cversion).padStart(10, "0") : child;
      if (state.children.has(name)) return { result: fail("NODE_EXISTS"), next: state };
      const children = new Map(state.children).set(name, created);
      return {
        result: { ok: true, path: `${rootPath}/${name}` },
        next: { ...state, root: { ...root, cversion: root.cversion + 1 }, children },
      };
    }
    case "set": {
      if (node === undefined) return { result: fail("NO_NODE"), next: state };
      const version = input.version ?? -1;
      if (version !== -1 && version !== node.version) return { result: fail("BAD_VERSION"), next: state };
      const updated = { ...node, data: input.data, version: node.version + 1 };
      const stat = statOf(updated, child === undefined ? state.children.size : 0);
      return {
        result: { ok: true, stat },
        next: child === undefined
          ? { ...state, root: updated }
          : { ...state, children: new Map(state.children).set(child, updated) },
      };
    }
    case "delete": {
      if (node === undefined) return { result: fail("NO_NODE"), next: state };
      const version = input.version ?? -1;
      if (version !== -1 && version !== node.version) return { result: fail("BAD_VERSION"), next: state };
      if (child === undefined) {
        if (state.children.size > 0) return { result: fail("NOT_EMPTY"), next: state };
        return { result: { ok: true }, next: { ...state, root: undefined } };
      }
      const children = new Map(state.children);
      children.delete(child);
      const root = state.root!;
      return { result: { ok: true }, next: { ...state, root: { ...root, cversion: root.cversion + 1 }, children } };
    }
    case "get":
      if (node === undefined) return { result: fail("NO_NODE"), next: state };
      return {
        result: { ok: true, data: node.data, stat: statOf(node, child === undefined ? state.children.size : 0) },
        next: state,
      };
    case "exists":
      return {
        result: {
          ok: true,
          stat: node === undefined ? null : statOf(node, child === undefined ? state.children.size : 0),
        },
        next: state,
      };
    case "children":
      if (node === undefined) return { result: fail("NO_NODE"), next: state };
      return {
        result: { ok: true, children: child === undefined ? [...state.children.keys()].sort() : [] },
        next: state,
      };
  }
}

function sameStat(a: StatView | null | undefined, b: StatView | null): boolean {
  if (a === null || a === undefined || b === null) return a === b;
  return a.version === b.version && a.cversion === b.cversion && a.numChildren === b.numChildren &&
    a.owner === b.owner;
}

/** Whether the recorded answer is the model's (comparing what was recorded). */
function matches(model: OpResult, recorded: OpResult): boolean {
  if (!recorded.ok || !model.ok) return !recorded.ok && !model.ok && recorded.code === model.code;
  if (recorded.path !== undefined && recorded.path !== model.path) return false;
  if (recorded.data !== undefined && recorded.data !== model.data) return false;
  if (recorded.stat !== undefined && !sameStat(model.stat, recorded.stat)) return false;
  if (recorded.children !== undefined) {
    const children = model.children ?? [];
    if (recorded.children.length !== children.length || recorded.children.some((c, i) => c !== children[i])) {
      return false;
    }
  }
  return true;
}

// --- the search ---

interface Entry {
  readonly op: number;
  readonly call: boolean;
  readonly time: number;
  prev: Entry | undefined;
  next: Entry | undefined;
  /** The call's return entry (undefined for an op without a bound), or the return's call. */
  other: Entry | undefined;
}

interface SearchResult {
  outcome: "ok" | "violation" | "unknown";
  steps: number;
  /** For a violation: the op whose answer could not be explained at the deepest point reached. */
  blocked?: number;
}

/** A small deterministic generator (xorshift32) for the Zobrist values. */
function zobristValues(count: number, seed: number): Uint32Array {
  const values = new Uint32Array(count);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    values[i] = x;
  }
  return values;
}

function search(ops: readonly CheckedOp[], maxSteps: number, seeds: readonly [number, number]): SearchResult {
  // The entries: a call per op, a return per op with a bound, by time; at equal times calls first (concurrent).
  const entries: Entry[] = [];
  ops.forEach((op, i) => {
    const call: Entry = { op: i, call: true, time: op.invokeMs, prev: undefined, next: undefined, other: undefined };
    entries.push(call);
    if (Number.isFinite(op.responseMs)) {
      const ret: Entry = { op: i, call: false, time: op.responseMs, prev: undefined, next: undefined, other: call };
      call.other = ret;
      entries.push(ret);
    }
  });
  entries.sort((a, b) => a.time - b.time || (a.call === b.call ? a.op - b.op : a.call ? -1 : 1));
  const head: Entry = { op: -1, call: true, time: -Infinity, prev: undefined, next: undefined, other: undefined };
  let last = head;
  for (const entry of entries) {
    last.next = entry;
    entry.prev = last;
    last = entry;
  }
  const lift = (call: Entry) => {
    call.prev!.next = call.next;
    if (call.next !== undefined) call.next.prev = call.prev;
    const ret = call.other;
    if (ret !== undefined) {
      ret.prev!.next = ret.next;
      if (ret.next !== undefined) ret.next.prev = ret.prev;
    }
  };
  const unlift = (call: Entry) => {
    const ret = call.other;
    if (ret !== undefined) {
      ret.prev!.next = ret;
      if (ret.next !== undefined) ret.next.prev = ret;
    }
    call.prev!.next = call;
    if (call.next !== undefined) call.next.prev = call;
  };

  const z1 = zobristValues(ops.length, seeds[0]);
  const z2 = zobristValues(ops.length, seeds[1]);
  let h1 = 0;
  let h2 = 0;
  const toggle = (i: number) => {
    h1 ^= z1[i]!;
    h2 ^= z2[i]!;
  };
  const stateIds = new Map<string, number>();
  const idOf = (state: ModelState) => {
    const key = stateKey(state);
    let id = stateIds.get(key);
    if (id === undefined) stateIds.set(key, id = stateIds.size);
    return id;
  };
  const seen = new Set<string>();
  const configKey = (state: ModelState) => `${h1.toString(36)},${h2.toString(36)},${idOf(state)}`;

  let remaining = ops.filter((op) => op.result !== undefined).length;
  const stack: { entry: Entry; state: ModelState; dropped: boolean }[] = [];
  let state = EMPTY;
  let entry = head.next;
  let steps = 0;
  let deepest = -1;
  let blocked: number | undefined;
  for (;;) {
    if (remaining === 0) return { outcome: "ok", steps };
    if (++steps > maxSteps) return { outcome: "unknown", steps };
    let backtrack = false;
    if (entry === undefined) {
      backtrack = true; // only unbounded optional calls were left to try
    } else if (entry.call) {
      const op = ops[entry.op]!;
      const { result, next } = step(state, op);
      if (op.result === undefined || matches(result, op.result)) {
        toggle(entry.op);
        const key = configKey(next);
        if (!seen.has(key)) {
          seen.add(key);
          stack.push({ entry, state, dropped: false });
          state = next;
          if (op.result !== undefined) remaining--;
          lift(entry);
          entry = head.next;
          continue;
        }
        toggle(entry.op);
      }
      entry = entry.next;
      continue;
    } else {
      const op = ops[entry.op]!;
      if (op.result === undefined) {
        // Its bound has passed: from here on it cannot happen any more.
        const call = entry.other!;
        toggle(call.op);
        const key = configKey(state);
        if (!seen.has(key)) {
          seen.add(key);
          stack.push({ entry: call, state, dropped: true });
          lift(call);
          entry = head.next;
          continue;
        }
        toggle(call.op);
      } else if (stack.length > deepest) {
        deepest = stack.length;
        blocked = entry.op;
      }
      backtrack = true;
    }
    if (backtrack) {
      for (;;) {
        const frame = stack.pop();
        if (frame === undefined) return { outcome: "violation", steps, blocked };
        state = frame.state;
        toggle(frame.entry.op);
        if (ops[frame.entry.op]!.result !== undefined) remaining++;
        unlift(frame.entry);
        if (frame.dropped) continue; // dropping was its last alternative
        entry = frame.entry.next;
        break;
      }
    }
  }
}

// --- the entry point ---

/**
 * Check a history: one search per partition (see the module doc), each bounded by `maxStepsPerPartition`.
 *
 * @example
 * ```ts
 * import { checkHistory } from "./_linearizability_checker.ts";
 *
 * const report = checkHistory({
 *   sessions: [],
 *   ops: [
 *     { id: 0, client: 0, session: "a", input: { kind: "create", path: "/k", data: "x" }, invokeMs: 0, responseMs: 1, result: { ok: true } },
 *     { id: 1, client: 1, session: "b", input: { kind: "get", path: "/k" }, invokeMs: 2, responseMs: 3, result: { ok: false, code: "NO_NODE" } },
 *   ],
 * });
 * console.log(report.ok); // false: the create was answered before the get began
 * ```
 */
export function checkHistory(history: History, options: CheckOptions = {}): CheckReport {
  const byPartition = new Map<string, CheckedOp[]>();
  const add = (partition: string, op: CheckedOp) => {
    let list = byPartition.get(partition);
    if (list === undefined) byPartition.set(partition, list = []);
    list.push(op);
  };
  let leftOut = 0;
  // A session is alive at the invocation of every op it saw succeed; its ephemeral creates name its partitions.
  const lastSuccessMs = new Map<string, number>();
  const ephemeralPartitions = new Map<string, Set<string>>();
  for (const op of history.ops) {
    const { root } = split(op.input.path);
    if (op.input.kind === "create" && op.input.ephemeral && op.session !== "") {
      let partitions = ephemeralPartitions.get(op.session);
      if (partitions === undefined) ephemeralPartitions.set(op.session, partitions = new Set());
      partitions.add(root);
    }
    if (op.result?.ok) lastSuccessMs.set(op.session, Math.max(lastSuccessMs.get(op.session) ?? 0, op.invokeMs));
    if (!include(op)) {
      leftOut++;
      continue;
    }
    add(root, checked(op));
  }
  const spans = new Map(history.sessions.map((s) => [s.session, s]));
  for (const [session, partitions] of ephemeralPartitions) {
    const span = spans.get(session);
    const seenMs = options.strictSessionEnds ? span?.expiredSeenMs ?? Infinity : Infinity;
    const byMs = Math.min(history.settledMs ?? Infinity, seenMs);
    for (const partition of partitions) {
      add(partition, {
        input: { kind: "end" },
        session,
        client: -1,
        invokeMs: Math.min(byMs, Math.max(span?.openedMs ?? 0, lastSuccessMs.get(session) ?? 0)),
        responseMs: byMs,
        result: Number.isFinite(byMs) ? { ok: true } : undefined,
      });
    }
  }

  const partitions: PartitionReport[] = [];
  for (const partition of [...byPartition.keys()].sort()) {
    const ops = byPartition.get(partition)!.sort((a, b) => a.invokeMs - b.invokeMs);
    const maxSteps = options.maxStepsPerPartition ?? 1_000_000 + 10 * ops.length;
    let result = search(ops, maxSteps, [0x9e3779b9, 0x85ebca6b]);
    if (result.outcome === "violation") {
      // Confirm with other hash values: a collision may have pruned a configuration never explored.
      const again = search(ops, maxSteps, [0x7f4a7c15, 0x2545f491]);
      result = { ...again, blocked: result.blocked ?? again.blocked, steps: result.steps + again.steps };
    }
    partitions.push({
      partition,
      ops: ops.length,
      indeterminate: ops.filter((op) => op.result === undefined).length,
      outcome: result.outcome,
      steps: result.steps,
      window: result.outcome === "violation" && result.blocked !== undefined
        ? violationWindow(ops, result.blocked)
        : undefined,
    });
  }
  const count = (outcome: PartitionReport["outcome"]) => partitions.filter((p) => p.outcome === outcome).length;
  return {
    ok: partitions.every((p) => p.outcome === "ok"),
    partitions,
    opsChecked: partitions.reduce((sum, p) => sum + p.ops, 0),
    indeterminate: partitions.reduce((sum, p) => sum + p.indeterminate, 0),
    leftOut,
    violations: count("violation"),
    unknown: count("unknown"),
  };
}

/** Whether an op constrains the order: answered, or an unanswered write. */
function include(op: HistoryOp): boolean {
  const result = op.result;
  if (result === undefined) return op.input.kind === "create" || op.input.kind === "set" || op.input.kind === "delete";
  if (result.ok) return true;
  if (result.code === NOT_SENT) return false;
  return SEMANTIC_CODES.has(result.code);
}

function checked(op: HistoryOp): CheckedOp {
  const { input, session, client, invokeMs, responseMs, result } = op;
  return { input, session, client, invokeMs, responseMs, result };
}
