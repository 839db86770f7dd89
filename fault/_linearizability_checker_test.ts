import assert from "node:assert/strict";
import type { History, HistoryOp, OpInput, OpResult, SessionSpan, StatView } from "./_history.ts";
import { NOT_SENT } from "./_history.ts";
import { checkHistory } from "./_linearizability_checker.ts";

/** A hand-written history: times in milliseconds; `response` undefined = no answer (unbounded unless `bound`). */
class Builder {
  readonly ops: HistoryOp[] = [];
  readonly sessions: SessionSpan[] = [];

  op(
    client: number,
    input: OpInput,
    invokeMs: number,
    responseMs: number | undefined,
    result?: OpResult,
    session = `s${client}`,
  ): this {
    this.ops.push({
      id: this.ops.length,
      client,
      session,
      input,
      invokeMs,
      responseMs: responseMs ?? Infinity,
      result: responseMs === undefined ? undefined : result,
    });
    return this;
  }

  /** An op without an answer that, if it happened, did so before `boundMs` (its server died then). */
  lost(client: number, input: OpInput, invokeMs: number, boundMs = Infinity, session = `s${client}`): this {
    this.ops.push({ id: this.ops.length, client, session, input, invokeMs, responseMs: boundMs, result: undefined });
    return this;
  }

  history(settledMs?: number): History {
    return { ops: this.ops, sessions: this.sessions, settledMs };
  }
}

const ok = (fields: Omit<Extract<OpResult, { ok: true }>, "ok"> = {}): OpResult => ({ ok: true, ...fields });
const err = (code: string): OpResult => ({ ok: false, code });
const v = (version: number, extra: Partial<StatView> = {}): StatView => ({
  version,
  cversion: 0,
  numChildren: 0,
  owner: "",
  ...extra,
});
const got = (data: string, version: number, extra: Partial<StatView> = {}) => ok({ data, stat: v(version, extra) });

/** /k0 at v3 'w0-4' by client 0, as the first window of issue 18 begins. */
function kAtV3(): Builder {
  return new Builder()
    .op(0, { kind: "create", path: "/k0", data: "c0-0" }, 0, 5, ok({ path: "/k0" }))
    .op(0, { kind: "set", path: "/k0", data: "w0-1" }, 10, 15, ok({ stat: v(1) }))
    .op(0, { kind: "set", path: "/k0", data: "w0-2" }, 20, 25, ok({ stat: v(2) }))
    .op(0, { kind: "set", path: "/k0", data: "w0-4" }, 51.5, 56.9, ok({ stat: v(3) }));
}

function issueWindow1(pendingAnswer: "none" | "later"): History {
  const b = kAtV3();
  if (pendingAnswer === "none") b.lost(3, { kind: "set", path: "/k0", data: "w3-3" }, 59.2);
  else b.op(3, { kind: "set", path: "/k0", data: "w3-3" }, 59.2, 70, ok({ stat: v(4) }));
  return b
    .op(0, { kind: "set", path: "/k0", data: "w0-6", version: 3 }, 59.3, 60.6, err("BAD_VERSION"))
    .op(1, { kind: "get", path: "/k0" }, 60.0, 61.4, got("w0-4", 3))
    .op(0, { kind: "get", path: "/k0" }, 60.7, 61.9, got("w0-4", 3))
    .history();
}

function issueWindow2(pendingAnswer: "none" | "later"): History {
  const b = new Builder();
  if (pendingAnswer === "none") b.lost(0, { kind: "create", path: "/k0", data: "c0-4" }, 90.0);
  else b.op(0, { kind: "create", path: "/k0", data: "c0-4" }, 90.0, 95, ok({ path: "/k0" }));
  return b
    .op(2, { kind: "create", path: "/k0", data: "c2-3" }, 90.2, 91.7, err("NODE_EXISTS"))
    .op(2, { kind: "get", path: "/k0" }, 91.75, 93.5, err("NO_NODE"))
    .history();
}

Deno.test("checkHistory finds issue 18's first window (a BAD_VERSION before the write it lost to), answered or not", () => {
  for (const pending of ["none", "later"] as const) {
    const report = checkHistory(issueWindow1(pending));
    assert.equal(report.ok, false, pending);
    assert.equal(report.violations, 1);
    const window = report.partitions[0]!.window!;
    assert.match(window, /client 0: get \/k0 +-> 'w0-4' v3 +<- no linearization explains this/);
    assert.match(window, /client 0: set \/k0 'w0-6' if v3 +-> BAD_VERSION/);
    assert.match(
      window,
      /\[0\.0592 \.\. +\?\] client 3: set \/k0 .w3-3. +-> \((no answer\)|pending; ok v4 at 0\.0700\))/,
    );
  }
});

Deno.test("checkHistory finds issue 18's second window (NODE_EXISTS, then NO_NODE), answered or not", () => {
  for (const pending of ["none", "later"] as const) {
    const report = checkHistory(issueWindow2(pending));
    assert.equal(report.ok, false, pending);
    assert.match(report.partitions[0]!.window!, /client 2: get \/k0 +-> NO_NODE +<- no linearization explains this/);
  }
});

Deno.test("checkHistory passes the same windows once the failure waits for the write it lost to", () => {
  // The BAD_VERSION answered after the competing set: then the reads must see w3-3, and do.
  const b = kAtV3()
    .op(3, { kind: "set", path: "/k0", data: "w3-3" }, 59.2, 60.5, ok({ stat: v(4) }))
    .op(0, { kind: "set", path: "/k0", data: "w0-6", version: 3 }, 59.3, 60.6, err("BAD_VERSION"))
    .op(1, { kind: "get", path: "/k0" }, 60.0, 61.4, got("w3-3", 4))
    .op(0, { kind: "get", path: "/k0" }, 60.7, 61.9, got("w3-3", 4));
  assert.equal(checkHistory(b.history()).ok, true);
  // A read concurrent with the set may still see the old value.
  const c = kAtV3()
    .op(3, { kind: "set", path: "/k0", data: "w3-3" }, 59.2, 62, ok({ stat: v(4) }))
    .op(1, { kind: "get", path: "/k0" }, 60.0, 61.4, got("w0-4", 3))
    .op(0, { kind: "set", path: "/k0", data: "w0-6", version: 3 }, 60.5, 62.5, err("BAD_VERSION"));
  assert.equal(checkHistory(c.history()).ok, true);
});

Deno.test("checkHistory passes simple concurrent histories and rejects a stale read after a write", () => {
  const b = new Builder()
    .op(0, { kind: "create", path: "/a", data: "x" }, 0, 10, ok({ path: "/a" }))
    .op(1, { kind: "create", path: "/a", data: "y" }, 1, 9, err("NODE_EXISTS"))
    .op(2, { kind: "get", path: "/a" }, 2, 3, got("x", 0))
    .op(1, { kind: "set", path: "/a", data: "z", version: 0 }, 11, 20, ok({ stat: v(1) }))
    .op(0, { kind: "set", path: "/a", data: "q", version: 0 }, 12, 21, err("BAD_VERSION"))
    .op(2, { kind: "exists", path: "/a" }, 13, 14, ok({ stat: v(0) }))
    .op(2, { kind: "exists", path: "/b" }, 13, 14, ok({ stat: null }))
    .op(0, { kind: "delete", path: "/a", version: 1 }, 22, 30, ok())
    .op(1, { kind: "get", path: "/a" }, 23, 24, got("z", 1))
    .op(2, { kind: "delete", path: "/a" }, 25, 31, err("NO_NODE"));
  const report = checkHistory(b.history());
  assert.equal(report.ok, true);
  assert.equal(report.partitions.length, 2);
  assert.equal(report.opsChecked, 10);

  const stale = new Builder()
    .op(0, { kind: "create", path: "/a", data: "x" }, 0, 1, ok({ path: "/a" }))
    .op(0, { kind: "set", path: "/a", data: "y" }, 2, 3, ok({ stat: v(1) }))
    .op(1, { kind: "get", path: "/a" }, 4, 5, got("x", 0));
  assert.equal(checkHistory(stale.history()).ok, false);
});

Deno.test("checkHistory lets an unanswered write have happened, or not, but not both", () => {
  const base = () =>
    new Builder()
      .op(0, { kind: "create", path: "/a", data: "x" }, 0, 1, ok({ path: "/a" }))
      .lost(1, { kind: "set", path: "/a", data: "lost" }, 2);
  // Seen: it happened.
  assert.equal(checkHistory(base().op(2, { kind: "get", path: "/a" }, 50, 51, got("lost", 1)).history()).ok, true);
  // Never seen: it did not (or not yet).
  assert.equal(checkHistory(base().op(2, { kind: "get", path: "/a" }, 50, 51, got("x", 0)).history()).ok, true);
  // Seen, then gone with nothing else writing: no order explains it.
  const both = base()
    .op(2, { kind: "get", path: "/a" }, 50, 51, got("lost", 1))
    .op(2, { kind: "get", path: "/a" }, 52, 53, got("x", 0));
  assert.equal(checkHistory(both.history()).ok, false);
  // Unanswered reads say nothing; requests never sent did not happen.
  const noise = base()
    .op(3, { kind: "get", path: "/a" }, 3, undefined)
    .op(3, { kind: "set", path: "/a", data: "never" }, 4, 4.5, err(NOT_SENT))
    .op(3, { kind: "set", path: "/a", data: "full" }, 5, 6, err("STORAGE_FAILED"))
    .op(2, { kind: "get", path: "/a" }, 50, 51, got("x", 0));
  const report = checkHistory(noise.history());
  assert.equal(report.ok, true);
  assert.equal(report.leftOut, 3);
  assert.equal(report.indeterminate, 1);
});

Deno.test("checkHistory across a crash: acknowledged writes stay, ones in flight at the kill happened before it or never", () => {
  const killedAt = 30;
  const base = () =>
    new Builder()
      .op(0, { kind: "create", path: "/a", data: "x" }, 0, 1, ok({ path: "/a" }))
      .op(0, { kind: "set", path: "/a", data: "acked" }, 10, 11, ok({ stat: v(1) }))
      .lost(1, { kind: "set", path: "/a", data: "in-flight" }, 20, killedAt);
  // After the restart (at 40), the acknowledged write is there; the one in flight may or may not be.
  const kept = base().op(2, { kind: "get", path: "/a" }, 40, 41, got("acked", 1));
  assert.equal(checkHistory(kept.history()).ok, true);
  const landed = base().op(2, { kind: "get", path: "/a" }, 40, 41, got("in-flight", 2));
  assert.equal(checkHistory(landed.history()).ok, true);
  // An acknowledged write lost in the crash.
  const lost = base().op(2, { kind: "get", path: "/a" }, 40, 41, got("x", 0));
  assert.equal(checkHistory(lost.history()).ok, false);
  // The write in flight cannot appear after the process it was sent to died.
  const late = base()
    .op(2, { kind: "get", path: "/a" }, 40, 41, got("acked", 1))
    .op(2, { kind: "get", path: "/a" }, 50, 51, got("in-flight", 2));
  assert.equal(checkHistory(late.history()).ok, false);
});

Deno.test("checkHistory models sequential names from the parent's cversion, children, NOT_EMPTY and ephemeral parents", () => {
  const b = new Builder()
    .op(0, { kind: "create", path: "/d", data: "" }, 0, 1, ok({ path: "/d" }))
    // Two concurrent sequential creates: either may get 0.
    .op(0, { kind: "create", path: "/d/s-", data: "a", sequential: true }, 2, 10, ok({ path: "/d/s-0000000001" }))
    .op(1, { kind: "create", path: "/d/s-", data: "b", sequential: true }, 3, 9, ok({ path: "/d/s-0000000000" }))
    .op(2, { kind: "delete", path: "/d" }, 11, 12, err("NOT_EMPTY"))
    .op(2, { kind: "delete", path: "/d/s-0000000000" }, 13, 14, ok())
    .op(2, { kind: "children", path: "/d" }, 15, 16, ok({ children: ["s-0000000001"] }))
    .op(2, { kind: "get", path: "/d" }, 17, 18, got("", 0, { cversion: 3, numChildren: 1 }))
    .op(1, { kind: "create", path: "/d/s-", data: "c", sequential: true }, 19, 20, ok({ path: "/d/s-0000000003" }))
    .op(0, { kind: "create", path: "/e", data: "", ephemeral: true }, 21, 22, ok({ path: "/e" }))
    .op(0, { kind: "create", path: "/e/x", data: "" }, 23, 24, err("NO_CHILDREN_FOR_EPHEMERALS"))
    .op(1, { kind: "exists", path: "/e" }, 25, 26, ok({ stat: v(0, { owner: "s0" }) }));
  assert.equal(checkHistory(b.history()).ok, true);

  const wrongNumber = new Builder()
    .op(0, { kind: "create", path: "/d", data: "" }, 0, 1, ok({ path: "/d" }))
    .op(0, { kind: "create", path: "/d/c", data: "" }, 2, 3, ok({ path: "/d/c" }))
    .op(0, { kind: "delete", path: "/d/c" }, 4, 5, ok())
    .op(1, { kind: "create", path: "/d/s-", data: "", sequential: true }, 6, 7, ok({ path: "/d/s-0000000000" }));
  assert.equal(checkHistory(wrongNumber.history()).ok, false);
});

Deno.test("checkHistory: a session's end deletes its ephemeral nodes some time before the history settles", () => {
  const base = () =>
    new Builder()
      .op(0, { kind: "create", path: "/d", data: "" }, 0, 1, ok({ path: "/d" }))
      .op(0, { kind: "create", path: "/d/e", data: "mine", ephemeral: true }, 2, 3, ok({ path: "/d/e" }))
      .op(1, { kind: "exists", path: "/d/e" }, 4, 5, ok({ stat: v(0, { owner: "s0" }) }));
  // Gone at some point (the expiry), with the parent's cversion moved by it.
  const gone = base()
    .op(1, { kind: "exists", path: "/d/e" }, 100, 101, ok({ stat: null }))
    .op(1, { kind: "get", path: "/d" }, 102, 103, got("", 0, { cversion: 2 }));
  assert.equal(checkHistory(gone.history(200)).ok, true);
  // Still there before the settle point is fine; after it, not.
  const lingering = base().op(1, { kind: "exists", path: "/d/e" }, 100, 101, ok({ stat: v(0, { owner: "s0" }) }));
  assert.equal(checkHistory(lingering.history(200)).ok, true);
  assert.equal(checkHistory(lingering.history(90)).ok, false);
  // Held to the moment its client was told of the expiry, with strictSessionEnds.
  const told = lingering.history(200);
  const strict = { ...told, sessions: [{ session: "s0", client: 0, openedMs: 0, expiredSeenMs: 50 }] };
  assert.equal(checkHistory(strict).ok, true);
  assert.equal(checkHistory(strict, { strictSessionEnds: true }).ok, false);
  // Gone, then back with nobody re-creating it.
  const back = base()
    .op(1, { kind: "exists", path: "/d/e" }, 100, 101, ok({ stat: null }))
    .op(1, { kind: "exists", path: "/d/e" }, 102, 103, ok({ stat: v(0, { owner: "s0" }) }));
  assert.equal(checkHistory(back.history()).ok, false);
  // A session that is over creates nothing: a success of it after a read that saw its nodes gone.
  const afterEnd = base()
    .op(1, { kind: "exists", path: "/d/e" }, 100, 101, ok({ stat: null }))
    .op(0, { kind: "create", path: "/d/f", data: "", ephemeral: true }, 102, 103, ok({ path: "/d/f" }));
  assert.equal(checkHistory(afterEnd.history()).ok, false);
});

Deno.test("checkHistory stops at its step budget with 'unknown', never a pass", () => {
  const b = new Builder().op(0, { kind: "create", path: "/a", data: "x" }, 0, 1, ok({ path: "/a" }));
  for (let i = 0; i < 12; i++) b.lost(i + 1, { kind: "set", path: "/a", data: `w${i}` }, 2 + i);
  b.op(0, { kind: "get", path: "/a" }, 100, 101, got("nobody wrote this", 3));
  const report = checkHistory(b.history(), { maxStepsPerPartition: 500 });
  assert.equal(report.ok, false);
  assert.equal(report.unknown, 1);
  assert.equal(report.partitions[0]!.outcome, "unknown");
});

Deno.test("checkHistory checks several thousand concurrent ops of a linearizable register quickly", () => {
  // A simulated registry: each op takes effect at a random point of its interval, 6 clients, 3 keys.
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x80000000;
  };
  const keys = new Map<string, { data: string; version: number } | undefined>();
  const events: { at: number; apply: () => void }[] = [];
  const b = new Builder();
  const clientFree = new Array(6).fill(0);
  for (let i = 0; i < 6000; i++) {
    const client = i % 6;
    const invokeMs = clientFree[client] + random() * 2;
    const responseMs = invokeMs + 0.5 + random() * 5;
    clientFree[client] = responseMs;
    const path = `/k${Math.floor(random() * 3)}`;
    const roll = random();
    const input: OpInput = roll < 0.15
      ? { kind: "create", path, data: `c${i}` }
      : roll < 0.45
      ? { kind: "set", path, data: `w${i}`, version: random() < 0.5 ? -1 : Math.floor(random() * 4) }
      : roll < 0.55
      ? { kind: "delete", path }
      : { kind: "get", path };
    const op: HistoryOp = { id: i, client, session: `s${client}`, input, invokeMs, responseMs, result: undefined };
    b.ops.push(op);
    events.push({
      at: invokeMs + random() * (responseMs - invokeMs),
      apply: () => {
        const node = keys.get(path);
        if (input.kind === "create") {
          if (node) op.result = err("NODE_EXISTS");
          else keys.set(path, { data: input.data, version: 0 }), op.result = ok({ path });
        } else if (!node) {
          op.result = err("NO_NODE");
        } else if (input.kind === "set") {
          if ((input.version ?? -1) !== -1 && input.version !== node.version) op.result = err("BAD_VERSION");
          else {keys.set(path, { data: input.data, version: node.version + 1 }),
              op.result = ok({ stat: v(node.version + 1) });}
        } else if (input.kind === "delete") {
          keys.set(path, undefined), op.result = ok();
        } else {
          op.result = got(node.data, node.version);
        }
      },
    });
  }
  events.sort((a, b) => a.at - b.at).forEach((event) => event.apply());
  const started = performance.now();
  const report = checkHistory(b.history());
  const elapsedMs = performance.now() - started;
  assert.equal(report.ok, true);
  assert.equal(report.opsChecked, 6000);
  assert.ok(elapsedMs < 5000, `took ${elapsedMs} ms`);

  // One read changed to a value no write left there: found.
  const read = b.ops.find((op) => op.input.kind === "get" && op.result?.ok && op.id > 3000)!;
  read.result = got("forged", 99);
  assert.equal(checkHistory(b.history()).violations, 1);
});
