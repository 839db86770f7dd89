/**
 * Log, then apply, then answer (ZooKeeper's order): the one owner of the transaction id. A write is validated and
 * turned into a record against the *proposed* tree — the committed tree plus every record still in flight — then
 * logged; once the log says it is durable, the record is applied to the *committed* tree through the same
 * `applyRecord` that replay uses, and only then do reads, watches and replies see it.
 *
 * A write that *fails* its validation (BAD_VERSION, NODE_EXISTS, ...) was judged against the same proposed tree, so
 * it is answered in the same order: only once every record in flight when it was judged is durable and applied.
 * Answering it at once would tell the client about a state nobody can read yet, and that a crash may never make
 * real: that is what keeps every reply, success or failure, linearizable. If one of those records fails to reach the
 * disk, the verdict was reached against a state that never existed, and the write gets the storage error instead
 * (it changed nothing either way).
 *
 * Without a log (memory only, the seed's semantics) both trees are one and a write is applied at once.
 *
 * @module
 */

import { getLogger } from "../../reactor/logger.ts";
import type { DataTree, TreeEvent } from "./data_tree.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";
import { applyRecord, type TxnLog, type TxnRecord } from "../storage/txn_log.ts";

/**
 * A change as `build` made it on the proposed tree: the record to log, the watch events it causes and what the
 * reply needs. The committed tree yields the same when the record is applied to it (the tree is deterministic).
 */
export interface Proposal<R> {
  /** The record to log. */
  record: TxnRecord;
  /** The watch events the change causes. */
  events: readonly TreeEvent[];
  /** What the reply needs (a stat, an actual path). */
  result: R;
}

/**
 * Told once a proposal is durable and applied (`error` undefined, `proposal` set), or has failed (nothing changed;
 * `proposal` is undefined when the write failed its validation).
 */
export type Outcome<R> = (error: RegistryError | undefined, proposal: Proposal<R> | undefined) => void;

/** Told once every write proposed before it has settled: `error` is the storage error if one of them failed. */
export type Settled = (error: RegistryError | undefined) => void;

/** Options of {@linkcode WritePipeline}. */
export interface WritePipelineOptions {
  /**
   * Answer a failed validation at once, before the writes it was judged against are durable: the old, wrong
   * order, kept only so the linearizability checker can be shown to catch it. Never set it in production.
   * @default {false}
   */
  unsafeEarlyFailures?: boolean;
}

// The writes waiting for the newest record in flight to settle; one per in-flight record, made when needed.
interface Tail {
  waiters: Settled[] | undefined;
}

/**
 * Turns requests into durable, applied records. Must be used from one loop.
 *
 * @example
 * ```ts
 * import { DataTree } from "./data_tree.ts";
 * import { WritePipeline } from "./write_pipeline.ts";
 * import assert from "node:assert/strict";
 *
 * const pipeline = new WritePipeline(new DataTree(), undefined);
 * pipeline.propose((tree, zxid) => {
 *   const { events } = tree.create("/a", new Uint8Array(), {}, zxid, 0);
 *   const record = { type: "create", zxid, timeMs: 0, path: "/a", data: new Uint8Array(), nodeType: 1, sessionId: 0n } as const;
 *   return { record, events, result: undefined };
 * }, (error) => assert.equal(error, undefined));
 * assert.ok(pipeline.committed.exists("/a"));
 * ```
 */
export class WritePipeline {
  readonly #committed: DataTree;
  readonly #log: TxnLog | undefined;
  #proposed: DataTree;
  #nextZxid: bigint;
  #generation = 0;
  #inFlight = 0;
  #failures = 0;
  #tail: Tail | undefined;
  readonly #unsafeEarlyFailures: boolean;

  /** Serve `committed` (the tree the log replayed, or a fresh one), writing through `log` when given. */
  constructor(committed: DataTree, log: TxnLog | undefined, options: WritePipelineOptions = {}) {
    this.#committed = committed;
    this.#log = log;
    this.#unsafeEarlyFailures = options.unsafeEarlyFailures ?? false;
    this.#proposed = log === undefined ? committed : committed.clone();
    // The log owns the sequence on disk: zxids follow its last durable record with no gap.
    this.#nextZxid = log?.nextZxid ?? committed.lastZxid + 1n;
  }

  /** The tree reads see: only durable, applied records. */
  get committed(): DataTree {
    return this.#committed;
  }

  /** The last transaction id applied to the committed tree. */
  get lastZxid(): bigint {
    return this.#committed.lastZxid;
  }

  /** Records logged but not yet durable. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Proposals that failed to become durable. */
  get failures(): number {
    return this.#failures;
  }

  /** Whether the log refuses writes for good (the server is read-only). */
  get readOnly(): boolean {
    return this.#log?.readOnly ?? false;
  }

  /** Why the server is read-only. */
  get readOnlyReason(): string | undefined {
    return this.#log?.readOnlyReason;
  }

  /**
   * Validate and log a change. `build` changes the proposed tree and describes the change; `outcome` is called
   * once, after the record is durable and applied to the committed tree, or when it failed. A RegistryError that
   * `build` throws leaves everything as it was and nothing is logged; it goes to `outcome` once the writes in
   * flight have settled (at once when none are), since it was judged against them. Other exceptions propagate.
   */
  propose<R>(build: (tree: DataTree, zxid: bigint) => Proposal<R>, outcome: Outcome<R>): void {
    const log = this.#log;
    if (log?.readOnly) {
      throw new RegistryError(
        RegistryErrorCode.NOT_READ_ONLY,
        `Cannot change the tree as the server is read-only: ${log.readOnlyReason ?? "its log cannot be written"}`,
      );
    }
    const zxid = this.#nextZxid;
    let proposal: Proposal<R>;
    try {
      proposal = build(this.#proposed, zxid);
    } catch (error) {
      if (!(error instanceof RegistryError)) throw error;
      if (this.#unsafeEarlyFailures) return outcome(error, undefined);
      return this.afterInFlight((storageError) => outcome(storageError ?? error, undefined));
    }
    this.#nextZxid = zxid + 1n;
    // Without a log the proposed tree is the committed one: `build` has applied the change already.
    if (log === undefined) return outcome(undefined, proposal);
    const generation = this.#generation;
    const tail: Tail = { waiters: undefined };
    const previousTail = this.#tail;
    this.#tail = tail;
    this.#inFlight++;
    try {
      this.#append(log, proposal, tail, generation, outcome);
    } catch (error) {
      // The log refused the record outright (a zxid out of sequence: a bug). Undo the bookkeeping, so nothing waits
      // for a record that will never settle; the proposed tree holds the change, so propose from the committed one
      // again as soon as that is safe (nothing else in flight: the committed tree is then the whole truth).
      this.#inFlight--;
      this.#tail = previousTail;
      if (this.#inFlight === 0) this.#rewind();
      getLogger().error("WritePipeline: the log refused a record", { error });
      throw error;
    }
  }

  #append<R>(log: TxnLog, proposal: Proposal<R>, tail: Tail, generation: number, outcome: Outcome<R>): void {
    log.append(proposal.record, (error) => {
      this.#inFlight--;
      if (this.#tail === tail) this.#tail = undefined;
      try {
        this.#settle(error, proposal, generation, outcome);
      } finally {
        // Whatever was judged against this record (and every one before it) may be answered now.
        const waiters = tail.waiters;
        if (waiters !== undefined) { for (const settled of waiters) this.#tell(settled, error); }
      }
    });
  }

  // One waiter that throws must not strand the others (their replies would never be sent).
  #tell(settled: Settled, error: RegistryError | undefined): void {
    try {
      settled(error);
    } catch (thrown) {
      getLogger().error("WritePipeline: a waiter for the writes in flight threw", { error: thrown });
    }
  }

  #settle<R>(error: RegistryError | undefined, proposal: Proposal<R>, generation: number, outcome: Outcome<R>): void {
    if (error !== undefined) {
      this.#failures++;
      // Every later record was validated against a tree holding this one, and the log fails them all with it:
      // propose from the committed tree again.
      if (generation === this.#generation) this.#rewind();
      return outcome(error, proposal);
    }
    try {
      applyRecord(this.#committed, proposal.record);
    } catch (cause) {
      // Cannot happen while both trees see the same records in the same order; if it does, say so loudly.
      return outcome(
        new RegistryError(
          RegistryErrorCode.RUNTIME_INCONSISTENCY,
          `Cannot apply durable record ${proposal.record.zxid}: ${(cause as Error)?.message}`,
          { cause },
        ),
        proposal,
      );
    }
    outcome(undefined, proposal);
  }

  /**
   * Call `settled` once every write proposed so far is durable and applied, or has failed (then with its error):
   * at once when none is in flight. For answers decided against the proposed tree, so they come in commit order.
   */
  afterInFlight(settled: Settled): void {
    const tail = this.#tail;
    if (tail === undefined) return settled(undefined);
    (tail.waiters ??= []).push(settled);
  }

  #rewind(): void {
    this.#generation++;
    this.#proposed = this.#committed.clone();
    this.#nextZxid = this.#log?.nextZxid ?? this.#committed.lastZxid + 1n;
  }
}
