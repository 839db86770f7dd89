/**
 * Log, then apply, then answer (ZooKeeper's order): the one owner of the transaction id. A write is validated and
 * turned into a record against the *proposed* tree — the committed tree plus every record still in flight — then
 * logged; once the log says it is durable, the record is applied to the *committed* tree through the same
 * `applyRecord` that replay uses, and only then do reads, watches and replies see it.
 *
 * Without a log (memory only, the seed's semantics) both trees are one and a write is applied at once.
 *
 * @module
 */

import type { DataTree, TreeEvent } from "./data_tree.ts";
import { RegistryError, RegistryErrorCode } from "./registry_error.ts";
import { applyRecord, type TxnLog, type TxnRecord } from "./txn_log.ts";

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

/** Told once a proposal is durable and applied (`error` undefined), or has failed (nothing changed). */
export type Outcome<R> = (error: RegistryError | undefined, proposal: Proposal<R>) => void;

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

  /** Serve `committed` (the tree the log replayed, or a fresh one), writing through `log` when given. */
  constructor(committed: DataTree, log: TxnLog | undefined) {
    this.#committed = committed;
    this.#log = log;
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
   * Validate and log a change. `build` changes the proposed tree (a RegistryError it throws leaves everything as
   * it was: nothing is logged and the error goes to the caller) and describes the change; `outcome` is called
   * once, after the record is durable and applied to the committed tree, or when it failed.
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
    const proposal = build(this.#proposed, zxid);
    this.#nextZxid = zxid + 1n;
    // Without a log the proposed tree is the committed one: `build` has applied the change already.
    if (log === undefined) return outcome(undefined, proposal);
    const generation = this.#generation;
    this.#inFlight++;
    log.append(proposal.record, (error) => {
      this.#inFlight--;
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
    });
  }

  #rewind(): void {
    this.#generation++;
    this.#proposed = this.#committed.clone();
    this.#nextZxid = this.#log?.nextZxid ?? this.#committed.lastZxid + 1n;
  }
}
