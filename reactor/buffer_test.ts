import assert from "node:assert/strict";
import { Buffer } from "./buffer.ts";

Deno.test("Buffer starts with the cheap-prepend area and the initial writable size", () => {
  const buffer = new Buffer();
  assert.equal(buffer.readableBytes, 0);
  assert.equal(buffer.writableBytes, Buffer.INITIAL_SIZE);
  assert.equal(buffer.prependableBytes, Buffer.CHEAP_PREPEND);
});

Deno.test("Buffer append and retrieve move the indices as muduo's does", () => {
  const buffer = new Buffer();
  buffer.append("x".repeat(200));
  assert.equal(buffer.readableBytes, 200);
  assert.equal(buffer.writableBytes, Buffer.INITIAL_SIZE - 200);
  assert.equal(buffer.retrieveAsString(50), "x".repeat(50));
  assert.equal(buffer.readableBytes, 150);
  assert.equal(buffer.prependableBytes, Buffer.CHEAP_PREPEND + 50);
  buffer.append("y".repeat(200));
  assert.equal(buffer.readableBytes, 350);
  assert.equal(buffer.retrieveAllAsString(), "x".repeat(150) + "y".repeat(200));
  assert.equal(buffer.readableBytes, 0);
  assert.equal(buffer.prependableBytes, Buffer.CHEAP_PREPEND);
});

Deno.test("Buffer grows at least twofold when it is full", () => {
  const buffer = new Buffer();
  buffer.append(new Uint8Array(400));
  buffer.append(new Uint8Array(1000));
  assert.equal(buffer.readableBytes, 1400);
  assert.ok(buffer.capacity >= 2 * (Buffer.INITIAL_SIZE + Buffer.CHEAP_PREPEND));
  buffer.retrieveAll();
  assert.equal(buffer.readableBytes, 0);
});

Deno.test("Buffer compacts instead of growing when the free space in total suffices", () => {
  const buffer = new Buffer();
  buffer.append("a".repeat(800));
  buffer.retrieve(500);
  const capacity = buffer.capacity;
  buffer.append("b".repeat(400)); // 224 writable + 500 reclaimable >= 400
  assert.equal(buffer.capacity, capacity);
  assert.equal(buffer.prependableBytes, Buffer.CHEAP_PREPEND);
  assert.equal(buffer.retrieveAllAsString(), "a".repeat(300) + "b".repeat(400));
});

Deno.test("Buffer integers round-trip big-endian, including the edges", () => {
  const buffer = new Buffer();
  buffer.appendInt8(-128);
  buffer.appendUint8(255);
  buffer.appendInt16(-32768);
  buffer.appendUint16(65535);
  buffer.appendInt32(-(2 ** 31));
  buffer.appendUint32(2 ** 32 - 1);
  buffer.appendBigInt64(-(2n ** 63n));
  buffer.appendBigUint64(2n ** 64n - 1n);
  buffer.appendInt32(0x01020304);
  assert.equal(buffer.readableBytes, 1 + 1 + 2 + 2 + 4 + 4 + 8 + 8 + 4);
  assert.equal(buffer.readInt8(), -128);
  assert.equal(buffer.readUint8(), 255);
  assert.equal(buffer.readInt16(), -32768);
  assert.equal(buffer.readUint16(), 65535);
  assert.equal(buffer.readInt32(), -(2 ** 31));
  assert.equal(buffer.readUint32(), 2 ** 32 - 1);
  assert.equal(buffer.readBigInt64(), -(2n ** 63n));
  assert.equal(buffer.readBigUint64(), 2n ** 64n - 1n);
  assert.deepEqual([...buffer.peek()], [1, 2, 3, 4]);
  assert.equal(buffer.peekInt32(), 0x01020304);
  assert.equal(buffer.readableBytes, 4);
});

Deno.test("Buffer prepends a length header without moving the content", () => {
  const buffer = new Buffer();
  buffer.append("payload");
  buffer.prependUint32(buffer.readableBytes);
  assert.equal(buffer.prependableBytes, Buffer.CHEAP_PREPEND - 4);
  assert.equal(buffer.readUint32(), 7);
  assert.equal(buffer.retrieveAllAsString(), "payload");
  assert.throws(() => {
    const b = new Buffer();
    b.prepend(new Uint8Array(9));
  }, { name: "RangeError", message: /prepend 9 bytes as the buffer has 8 prependable bytes/ });
});

Deno.test("Buffer findCRLF and findEOL locate line ends relative to the readable start", () => {
  const buffer = new Buffer();
  buffer.append("skip");
  buffer.retrieve(4);
  buffer.append("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  assert.equal(buffer.findCRLF(), 14);
  assert.equal(buffer.findCRLF(15), 23);
  assert.equal(buffer.findEOL(), 15);
  const empty = new Buffer();
  empty.append("no line end");
  assert.equal(empty.findCRLF(), -1);
  assert.equal(empty.findEOL(), -1);
});

Deno.test("Buffer keeps UTF-8 text intact", () => {
  const buffer = new Buffer(4);
  const text = "心跳 heartbeat 🫀 ok";
  buffer.append(text);
  assert.equal(buffer.readableBytes, new TextEncoder().encode(text).length);
  assert.equal(buffer.retrieveAllAsString(), text);
});

Deno.test("Buffer beginWrite and hasWritten commit bytes written in place; unwrite takes them back", () => {
  const buffer = new Buffer();
  buffer.ensureWritableBytes(3);
  buffer.beginWrite().set([7, 8, 9]);
  buffer.hasWritten(3);
  assert.deepEqual([...buffer.peek()], [7, 8, 9]);
  buffer.unwrite(1);
  assert.deepEqual([...buffer.retrieveAsBytes(2)], [7, 8]);
  assert.throws(() => buffer.hasWritten(buffer.writableBytes + 1), RangeError);
});

Deno.test("Buffer peeks past the readable end throw a RangeError saying what is there", () => {
  const buffer = new Buffer();
  buffer.append(new Uint8Array(3));
  assert.throws(() => buffer.peekInt32(), { name: "RangeError", message: /peekInt32 4 bytes as the buffer holds 3/ });
  assert.throws(() => buffer.retrieveAsString(10), RangeError);
  assert.throws(() => new Buffer(-1), { name: "RangeError", message: /'initialSize'.*-1/ });
});

Deno.test("Buffer swap exchanges contents; shrink keeps the content", () => {
  const a = new Buffer();
  const b = new Buffer();
  a.append("first");
  b.append("second");
  a.swap(b);
  assert.equal(a.retrieveAllAsString(), "second");
  assert.equal(b.peek().length, 5);
  b.append(new Uint8Array(100_000));
  b.retrieve(100_000);
  b.shrink(0);
  assert.ok(b.capacity < 1000);
  assert.equal(b.readableBytes, 5);
});

Deno.test("Buffer shrinkIfEmpty gives back a grown store only when empty and above the threshold", () => {
  const buffer = new Buffer();
  buffer.append(new Uint8Array(4 * 1024 * 1024));
  assert.equal(buffer.shrinkIfEmpty(256 * 1024), false, "it must not drop readable bytes");
  buffer.retrieve(4 * 1024 * 1024 - 1);
  assert.equal(buffer.shrinkIfEmpty(256 * 1024), false);
  buffer.retrieveAll();
  assert.ok(buffer.capacity > 4 * 1024 * 1024);
  assert.equal(buffer.shrinkIfEmpty(256 * 1024), true);
  assert.equal(buffer.capacity, Buffer.CHEAP_PREPEND + Buffer.INITIAL_SIZE);
  assert.equal(buffer.shrinkIfEmpty(0), false, "at its initial size it has nothing to give back");
  buffer.append("still works");
  assert.equal(buffer.retrieveAllAsString(), "still works");
  const small = new Buffer(16);
  small.append(new Uint8Array(100));
  small.retrieveAll();
  assert.equal(small.shrinkIfEmpty(1024), false, "below the threshold it keeps its store");
});

Deno.test("Buffer view shows readable bytes from an offset, shares memory, and refuses to reach past them", () => {
  const buffer = new Buffer();
  buffer.append(new Uint8Array([1, 2, 3, 4, 5, 6]));
  buffer.retrieve(1); // the view counts from the reader index, as peek() does
  assert.deepEqual([...buffer.view(1, 3)], [3, 4, 5]);
  assert.deepEqual([...buffer.view(0, 0)], []);
  buffer.view(0, 1)[0] = 9;
  assert.equal(buffer.peek()[0], 9);
  // Writable bytes behind the readable ones (and bytes already retrieved) are not readable: no view of them.
  assert.throws(() => buffer.view(2, 4), RangeError);
  assert.throws(() => buffer.view(-1, 1), RangeError);
  assert.throws(() => buffer.view(0, -1), RangeError);
});
