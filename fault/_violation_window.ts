/**
 * How the linearizability checker shows a violation: the operations around the point where no order exists, one per
 * line, as `[0.0515 .. 0.0569] client 0: set /k0 'w0-4'  -> ok v3` (seconds from the start of the history).
 *
 * @module
 */

import type { StatView } from "./_history.ts";
import type { CheckedOp } from "./_linearizability_checker.ts";

const seconds = (ms: number) => (ms / 1000).toFixed(4);

function describeInput(op: CheckedOp): string {
  const input = op.input;
  const ifVersion = (version: number | undefined) => version === undefined || version === -1 ? "" : ` if v${version}`;
  switch (input.kind) {
    case "end":
      return `end of session ${op.session} (implicit: its ephemeral nodes go)`;
    case "create":
      return `create ${input.path} '${input.data}'${input.ephemeral ? " ephemeral" : ""}${
        input.sequential ? " sequential" : ""
      }`;
    case "set":
      return `set ${input.path} '${input.data}'${ifVersion(input.version)}`;
    case "delete":
      return `delete ${input.path}${ifVersion(input.version)}`;
    default:
      return `${input.kind} ${input.path}`;
  }
}

function describeStat(stat: StatView): string {
  return `v${stat.version}${stat.cversion > 0 || stat.numChildren > 0 ? ` c${stat.cversion}/${stat.numChildren}` : ""}${
    stat.owner === "" ? "" : ` owner ${stat.owner}`
  }`;
}

function describeResult(op: CheckedOp): string {
  const result = op.result;
  if (result === undefined) return op.input.kind === "end" ? "" : "(no answer)";
  if (!result.ok) return result.code;
  switch (op.input.kind) {
    case "create":
      return result.path === undefined || result.path === op.input.path ? "ok" : `ok ${result.path}`;
    case "set":
      return result.stat ? `ok ${describeStat(result.stat)}` : "ok";
    case "get":
      return `'${result.data}'${result.stat ? ` ${describeStat(result.stat)}` : ""}`;
    case "exists":
      return result.stat ? describeStat(result.stat) : "absent";
    case "children":
      return `[${(result.children ?? []).join(", ")}]`;
    default:
      return "ok";
  }
}

/** One line per op, as `[0.0515 .. 0.0569] client 0: set /k0 'w0-4'  -> ok v3`. */
function describe(op: CheckedOp, endMs: number): string {
  const answered = Number.isFinite(op.responseMs) && (op.result !== undefined || op.input.kind === "end");
  const later = answered && op.responseMs > endMs;
  const end = answered && !later ? seconds(op.responseMs) : "     ?";
  const who = op.input.kind === "end" ? "registry" : `client ${op.client}`;
  const what = `${who}: ${describeInput(op)}`;
  let result = describeResult(op);
  if (later) result = `(pending; ${result === "" ? "done" : result} at ${seconds(op.responseMs)})`;
  else if (op.result === undefined && Number.isFinite(op.responseMs) && op.input.kind !== "end") {
    result += ` (if at all, before ${seconds(op.responseMs)})`;
  }
  return `[${seconds(op.invokeMs)} .. ${end}] ${what.padEnd(44)}${result === "" ? "" : ` -> ${result}`}`;
}

/**
 * The ops around `blocked`: those concurrent with it, the last few answered before it began and those concurrent
 * with these, at most `limit` lines, in invocation order; the blocked op is marked.
 */
export function violationWindow(ops: readonly CheckedOp[], blocked: number, limit = 14): string {
  const target = ops[blocked]!;
  const overlaps = (a: CheckedOp, fromMs: number, toMs: number) => a.invokeMs <= toMs && a.responseMs >= fromMs;
  // The last answers before it: on its own path (what it contradicts, most often), and on any path.
  const answeredBefore = ops
    .map((op, i) => ({ op, i }))
    .filter(({ op }) => op.result !== undefined && op.responseMs < target.invokeMs)
    .sort((a, b) => b.op.responseMs - a.op.responseMs);
  const samePath = (op: CheckedOp) =>
    op.input.kind !== "end" && target.input.kind !== "end" &&
    op.input.path === target.input.path;
  const before = [
    ...answeredBefore.filter(({ op }) => samePath(op)).slice(0, 2),
    ...answeredBefore.slice(0, 2),
  ];
  // Everything concurrent with the blocked op or with the last answers on any path; the older ones on its path alone.
  const beforeEndMs = Math.min(target.invokeMs, ...answeredBefore.slice(0, 2).map(({ op }) => op.invokeMs));
  const picked = ops
    .map((op, i) => ({ op, i }))
    .filter(({ op, i }) =>
      i === blocked || before.some((b) => b.i === i) || overlaps(op, beforeEndMs, target.responseMs)
    )
    .sort((a, b) => a.op.invokeMs - b.op.invokeMs || a.i - b.i);
  // Keep the blocked op and the ones nearest to it.
  let lines = picked;
  if (lines.length > limit) {
    const at = lines.findIndex(({ i }) => i === blocked);
    const start = Math.max(0, Math.min(at - (limit - 3), lines.length - limit));
    lines = lines.slice(start, start + limit);
  }
  return lines
    .map(({ op, i }) =>
      describe(op, target.responseMs) + (i === blocked ? "      <- no linearization explains this" : "")
    )
    .join("\n");
}
