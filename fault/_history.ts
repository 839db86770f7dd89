/**
 * Concurrent histories of registry operations, as the linearizability checker reads them: what each client asked,
 * when (a monotonic clock), and what came back, or that nothing definite came back. {@linkcode HistoryRecorder}
 * writes them from live {@linkcode RegistryClient}s; the checker's tests write them by hand.
 *
 * @module
 */

import type { RegistryClient } from "../registry/client/registry_client.ts";
import { NodeType, type Stat } from "../registry/registry.ts";
import { RegistryError, RegistryErrorCode, registryErrorCodeName } from "../registry/registry_error.ts";

/** What an operation asked for. Paths are `/root` or `/root/child` (the checker partitions by `/root`). */
export type OpInput =
  | {
    readonly kind: "create";
    readonly path: string;
    readonly data: string;
    readonly ephemeral?: boolean;
    /** The name is a prefix: the server appends the parent's cversion, 10 digits. */
    readonly sequential?: boolean;
  }
  /** `version` -1 or absent: any version. */
  | { readonly kind: "set"; readonly path: string; readonly data: string; readonly version?: number }
  | { readonly kind: "delete"; readonly path: string; readonly version?: number }
  | { readonly kind: "get" | "exists" | "children"; readonly path: string };

/** The parts of a Stat the checker models. `owner` is the owning session ("" for a persistent node). */
export interface StatView {
  readonly version: number;
  readonly cversion: number;
  readonly numChildren: number;
  readonly owner: string;
}

/**
 * A definite answer. On success only the fields of its kind are set: create `path`; set `stat`; get `data` and
 * `stat`; exists `stat` (null when absent); children `children` (sorted). A failure carries the code's name
 * (`BAD_VERSION`); {@linkcode NOT_SENT} marks a request the client refused before sending it.
 */
export type OpResult =
  | {
    readonly ok: true;
    readonly path?: string;
    readonly data?: string;
    readonly stat?: StatView | null;
    readonly children?: readonly string[];
  }
  | { readonly ok: false; readonly code: string };

/** The code of a request that never left the client (not connected, or closed): it did not happen. */
export const NOT_SENT = "NOT_SENT";

/** One operation of a history. Times are milliseconds from the start of the history. */
export interface HistoryOp {
  readonly id: number;
  readonly client: number;
  /** The session the request went out on (hex), or "" when none. */
  readonly session: string;
  readonly input: OpInput;
  readonly invokeMs: number;
  /**
   * When the answer came; for an operation without a definite answer, the latest moment it can have taken effect
   * (the death of the server process it was sent to), or Infinity.
   */
  responseMs: number;
  /** The answer, or undefined when none came (timed out, connection lost, expired in flight): it may or may not have happened. */
  result: OpResult | undefined;
}

/** A session of the history: who opened it, when, and when its client was told it had expired (if it was). */
export interface SessionSpan {
  readonly session: string;
  readonly client: number;
  readonly openedMs: number;
  expiredSeenMs?: number;
}

/** A recorded history. */
export interface History {
  readonly ops: readonly HistoryOp[];
  readonly sessions: readonly SessionSpan[];
  /**
   * A moment by which every session of the history had ended (closed, or expired on the server and its
   * ephemeral nodes deleted), if there is one; without it a session's end may come after the history.
   */
  readonly settledMs?: number;
}

/** A node's stat as the checker models it. */
export function statView(stat: Stat): StatView {
  return {
    version: stat.version,
    cversion: stat.cversion,
    numChildren: stat.numChildren,
    owner: stat.nodeType === NodeType.EPHEMERAL ? stat.ephemeralOwner.toString(16) : "",
  };
}

/**
 * Records the operations of several clients against one clock. Not thread-safe; one per harness, driven from one
 * event loop.
 */
export class HistoryRecorder {
  readonly #startMs: number;
  readonly #clock: () => number;
  readonly #ops: HistoryOp[] = [];
  readonly #sessions: SessionSpan[] = [];
  readonly #inFlight = new Set<HistoryOp>();
  /** Ops in flight when a server process died: if they end without an answer, they happened before that, or never. */
  readonly #boundAtDeath = new Map<HistoryOp, number>();
  /** Ops that ended without an answer and without a bound yet: the next death bounds them. */
  readonly #unbounded = new Set<HistoryOp>();
  #settledMs: number | undefined;

  /** `clock` gives monotonic milliseconds. @default performance.now */
  constructor(clock: () => number = () => performance.now()) {
    this.#clock = clock;
    this.#startMs = clock();
  }

  /** Milliseconds since the history began. */
  now(): number {
    return this.#clock() - this.#startMs;
  }

  /** The history so far (operations still in flight have no answer yet). */
  get history(): History {
    return { ops: this.#ops, sessions: this.#sessions, settledMs: this.#settledMs };
  }

  /** Operations whose answer has not come yet. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** A client opened a session (a new one, not a resumption), now or at `atMs`. */
  sessionOpened(client: number, sessionId: bigint, atMs: number = this.now()): void {
    this.#sessions.push({ session: sessionId.toString(16), client, openedMs: atMs });
  }

  /** A client was told that its session expired (the `expired` session event). */
  sessionExpired(sessionId: bigint): void {
    const session = sessionId.toString(16);
    const span = this.#sessions.find((s) => s.session === session);
    if (span !== undefined && span.expiredSeenMs === undefined) span.expiredSeenMs = this.now();
  }

  /**
   * The server process died (kill -9): what is in flight now, or ended without an answer and without a bound, can
   * only have taken effect before this moment, as no request survives its connection and nothing unlogged survives
   * the process. `atMs` (when it died) may be given again later for what has been sent since, while nothing points
   * at a new process yet.
   */
  serverDied(atMs: number = this.now()): void {
    // Never before its invocation: one sent after the death reached no process, and is placed at its start or dropped.
    for (const op of this.#inFlight) {
      if (!this.#boundAtDeath.has(op)) this.#boundAtDeath.set(op, Math.max(atMs, op.invokeMs));
    }
    // Those that ended without an answer before (timed out during a pause, say) went to this process or an earlier one.
    for (const op of this.#unbounded) op.responseMs = Math.max(atMs, op.invokeMs);
    this.#unbounded.clear();
  }

  /** From now on every session has ended (see {@linkcode History.settledMs}). */
  settled(): void {
    this.#settledMs = this.now();
  }

  /**
   * Record an operation run elsewhere (by a client process), with an interval that holds its real one: invoked no
   * earlier than `invokeMs`, answered no later than `responseMs` (Infinity and undefined `result`: no answer).
   */
  record(
    clientId: number,
    sessionId: bigint,
    input: OpInput,
    invokeMs: number,
    responseMs: number,
    result?: OpResult,
  ): void {
    const op: HistoryOp = {
      id: this.#ops.length,
      client: clientId,
      session: sessionId.toString(16),
      input,
      invokeMs,
      responseMs,
      result,
    };
    this.#ops.push(op);
    if (result === undefined && responseMs === Infinity) this.#unbounded.add(op);
  }

  /** Run `input` on `client`, recording its invocation and outcome; resolves with the result (undefined: no answer). */
  async call(clientId: number, client: RegistryClient, input: OpInput): Promise<OpResult | undefined> {
    const op: HistoryOp = {
      id: this.#ops.length,
      client: clientId,
      session: client.sessionId === 0n ? "" : client.sessionId.toString(16),
      input,
      invokeMs: this.now(),
      responseMs: Infinity,
      result: undefined,
    };
    this.#ops.push(op);
    this.#inFlight.add(op);
    let result: OpResult | undefined;
    try {
      result = await run(client, input);
    } catch (error) {
      result = classify(error);
    }
    this.#inFlight.delete(op);
    if (result !== undefined) {
      op.responseMs = this.now();
      op.result = result;
    } else {
      op.responseMs = this.#boundAtDeath.get(op) ?? Infinity;
      if (op.responseMs === Infinity) this.#unbounded.add(op);
    }
    this.#boundAtDeath.delete(op);
    return result;
  }
}

async function run(client: RegistryClient, input: OpInput): Promise<OpResult> {
  switch (input.kind) {
    case "create": {
      const path = await client.create(input.path, input.data, {
        nodeType: input.ephemeral ? NodeType.EPHEMERAL : NodeType.PERSISTENT,
        sequential: input.sequential ?? false,
      });
      return { ok: true, path };
    }
    case "set":
      return { ok: true, stat: statView(await client.set(input.path, input.data, { version: input.version ?? -1 })) };
    case "delete":
      await client.delete(input.path, { version: input.version ?? -1 });
      return { ok: true };
    case "get": {
      const { data, stat } = await client.get(input.path);
      return { ok: true, data: new TextDecoder().decode(data), stat: statView(stat) };
    }
    case "exists": {
      const stat = await client.exists(input.path);
      return { ok: true, stat: stat === undefined ? null : statView(stat) };
    }
    case "children":
      return { ok: true, children: await client.children(input.path) };
  }
}

/**
 * An error as a result: a definite failure, {@linkcode NOT_SENT}, or undefined for "no definite answer" (timed
 * out, connection lost or session expired with the request in flight, closed under it, anything unexpected).
 */
function classify(error: unknown): OpResult | undefined {
  if (!(error instanceof RegistryError)) return undefined;
  const code = error.code;
  // The client refuses these before sending ("Cannot <what> as the client is not connected / is closed").
  if (
    (code === RegistryErrorCode.CONNECTION_LOSS && /as the client is not connected/.test(error.message)) ||
    (code === RegistryErrorCode.CLOSED && /as the client is closed/.test(error.message))
  ) {
    return { ok: false, code: NOT_SENT };
  }
  if (
    code === RegistryErrorCode.CONNECTION_LOSS || code === RegistryErrorCode.OPERATION_TIMEOUT ||
    code === RegistryErrorCode.SESSION_EXPIRED || code === RegistryErrorCode.CLOSED ||
    code === RegistryErrorCode.SYSTEM_ERROR
  ) {
    return undefined;
  }
  return { ok: false, code: registryErrorCodeName(code) };
}
