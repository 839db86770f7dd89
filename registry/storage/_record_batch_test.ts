import assert from "node:assert/strict";
import { RecordBatch } from "./_record_batch.ts";
import { encodeRecord, type TxnRecord } from "./txn_record.ts";

const create = (zxid: bigint, size: number): TxnRecord => ({
  type: "create",
  zxid,
  timeMs: 1_765_000_000_000,
  path: `/b/n${zxid}-\u00e9`,
  data: new Uint8Array(size).fill(Number(zxid) & 0xff),
  nodeType: 1,
  sessionId: 0n,
});

Deno.test("RecordBatch holds records as encodeRecord writes them, growing past its first array, and lets a taken batch be", () => {
  const batch = new RecordBatch<number>();
  assert.equal(batch.take(), undefined, "an empty batch gives nothing to write");
  const records = [create(1n, 10), create(2n, 6000), create(3n, 0), create(4n, 70_000)];
  records.forEach((record, i) => batch.add(record, i));
  const taken = batch.take()!;
  assert.deepEqual(taken.dones, [0, 1, 2, 3]);
  const expected = records.map(encodeRecord);
  assert.deepEqual(taken.bytes, new Uint8Array(expected.flatMap((bytes) => [...bytes])));
  // The next batch writes into memory of its own: the taken bytes (a write in flight may read them) stay as they were.
  const copy = taken.bytes.slice();
  batch.add(create(5n, 100), 4);
  assert.deepEqual(taken.bytes, copy);
  assert.equal(batch.size, 1);
  assert.deepEqual(batch.drop(), [4]);
  assert.equal(batch.size, 0);
  assert.equal(batch.take(), undefined);
});

Deno.test("RecordBatch: batches taken one after another keep their bytes while later ones are written", () => {
  const batch = new RecordBatch<number>();
  const taken: Array<{ bytes: Uint8Array; expected: Uint8Array }> = [];
  // Small batches share an array; a batch growing past its end moves to a fresh one with its records so far.
  for (let i = 1; i <= 400; i++) {
    const records = [create(BigInt(i), i % 7 === 0 ? 900 : 20)];
    if (i % 50 === 0) records.push(create(BigInt(i) + 10_000n, 40_000));
    records.forEach((record) => batch.add(record, i));
    if (i % 3 === 0) batch.drop(); // dropped records are never handed out
    else {taken.push({
        bytes: batch.take()!.bytes,
        expected: new Uint8Array(records.flatMap((r) => [...encodeRecord(r)])),
      });}
  }
  for (const { bytes, expected } of taken) assert.deepEqual(bytes, expected);
});
