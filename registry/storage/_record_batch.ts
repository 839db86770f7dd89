/**
 * The records a transaction log has taken since its last write, encoded back to back into one array with their
 * callbacks: the next batch, written with one write and made durable with one fdatasync.
 *
 * @module
 */

import { recordLength, type TxnRecord, writeRecord } from "./txn_record.ts";

// A batch's first array: a few typical records (it grows as needed).
const MIN_BATCH_BYTES = 4 * 1024;
const EMPTY = new Uint8Array(0);

/**
 * Records waiting for the next write. Each record is written in place (no array of its own); a batch taken for the
 * disk keeps its array, and the next one starts a fresh one, since the write in flight may still read the last.
 */
export class RecordBatch<Done> {
  #bytes = EMPTY;
  #view = new DataView(EMPTY.buffer);
  #length = 0;
  #dones: Done[] = [];

  /** Records waiting. */
  get size(): number {
    return this.#dones.length;
  }

  /** Encode `record` at the end of the batch; `done` is handed back with the batch. */
  add(record: TxnRecord, done: Done): void {
    const length = recordLength(record);
    if (this.#length + length > this.#bytes.length) this.#grow(length);
    this.#length += writeRecord(record, this.#bytes, this.#view, this.#length);
    this.#dones.push(done);
  }

  /** The batch's bytes and callbacks, in append order, or undefined when empty; the next batch starts empty. */
  take(): { bytes: Uint8Array; dones: Done[] } | undefined {
    if (this.#dones.length === 0) return undefined;
    const taken = { bytes: this.#bytes.subarray(0, this.#length), dones: this.#dones };
    this.#reset();
    return taken;
  }

  /** Forget the records (they will not be written); returns their callbacks, in append order. */
  drop(): Done[] {
    const dones = this.#dones;
    this.#reset();
    return dones;
  }

  #grow(length: number): void {
    const grown = new Uint8Array(Math.max(MIN_BATCH_BYTES, 2 * this.#bytes.length, this.#length + length));
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
    this.#view = new DataView(grown.buffer);
  }

  #reset(): void {
    this.#bytes = EMPTY;
    this.#view = new DataView(EMPTY.buffer);
    this.#length = 0;
    this.#dones = [];
  }
}
