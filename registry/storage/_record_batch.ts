/**
 * The records a transaction log has taken since its last write, encoded back to back into one array with their
 * callbacks: the next batch, written with one write and made durable with one fdatasync.
 *
 * @module
 */

import { recordLength, type TxnRecord, writeRecord } from "./txn_record.ts";

// Batches are cut from one array in turn, until it is used up: a batch of one record (every create at 1 in flight)
// then costs no allocation. Bytes handed out are never written again (a write in flight may still read them).
const ARENA_BYTES = 64 * 1024;
const EMPTY = new Uint8Array(0);

/**
 * Records waiting for the next write. Each record is written in place (no array of its own); a batch taken for the
 * disk keeps its bytes, and the next one starts after them (or in a fresh array), since the write in flight may
 * still read the last.
 */
export class RecordBatch<Done> {
  #arena = EMPTY;
  #view = new DataView(EMPTY.buffer);
  /** Where the batch being gathered starts in the arena, and its length. */
  #start = 0;
  #length = 0;
  #dones: Done[] = [];

  /** Records waiting. */
  get size(): number {
    return this.#dones.length;
  }

  /** Encode `record` at the end of the batch; `done` is handed back with the batch. */
  add(record: TxnRecord, done: Done): void {
    const length = recordLength(record);
    if (this.#start + this.#length + length > this.#arena.length) this.#grow(length);
    this.#length += writeRecord(record, this.#arena, this.#view, this.#start + this.#length);
    this.#dones.push(done);
  }

  /** The batch's bytes and callbacks, in append order, or undefined when empty; the next batch starts empty. */
  take(): { bytes: Uint8Array; dones: Done[] } | undefined {
    if (this.#dones.length === 0) return undefined;
    const taken = { bytes: this.#arena.subarray(this.#start, this.#start + this.#length), dones: this.#dones };
    this.#start += this.#length;
    this.#length = 0;
    this.#dones = [];
    return taken;
  }

  /** Forget the records (they will not be written); returns their callbacks, in append order. */
  drop(): Done[] {
    const dones = this.#dones;
    this.#length = 0;
    this.#dones = [];
    return dones;
  }

  // A fresh array for the batch so far and `length` more bytes (at least twice that, for the batches after it).
  #grow(length: number): void {
    const grown = new Uint8Array(Math.max(ARENA_BYTES, 2 * (this.#length + length)));
    grown.set(this.#arena.subarray(this.#start, this.#start + this.#length));
    this.#arena = grown;
    this.#view = new DataView(grown.buffer);
    this.#start = 0;
  }
}
