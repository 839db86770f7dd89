/**
 * A growable byte buffer with cheap prepend, muduo's Buffer: the framing work horse of every codec.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CR = 0x0d;
const LF = 0x0a;

/**
 * A byte buffer with three regions, as muduo's `Buffer`:
 *
 * ```text
 * +-------------------+------------------+------------------+
 * | prependable bytes |  readable bytes  |  writable bytes  |
 * |                   |     (CONTENT)    |                  |
 * +-------------------+------------------+------------------+
 * |                   |                  |                  |
 * 0      <=      readerIndex   <=   writerIndex    <=     size
 * ```
 *
 * Reading retrieves from the front of the readable region; appending writes into the writable region, compacting
 * (moving the content to the front) when that makes room, else growing at least twofold. `CHEAP_PREPEND` bytes
 * are reserved in front so a length header can be prepended without a copy. Integers are big-endian.
 *
 * @example Frame a message with a prepended length
 * ```ts
 * import { Buffer } from "./buffer.ts";
 * import assert from "node:assert/strict";
 *
 * const buffer = new Buffer();
 * buffer.append("hello");
 * buffer.prependUint32(buffer.readableBytes);
 * assert.equal(buffer.readUint32(), 5);
 * assert.equal(buffer.retrieveAllAsString(), "hello");
 * ```
 */
export class Buffer {
  /** Bytes reserved in front of the content for cheap prepends. */
  static readonly CHEAP_PREPEND = 8;
  /** The default initial writable size. */
  static readonly INITIAL_SIZE = 1024;

  readonly #initialSize: number;
  #bytes: Uint8Array;
  #view: DataView;
  #readerIndex: number;
  #writerIndex: number;

  /** Create an empty buffer with `initialSize` writable bytes. */
  constructor(initialSize: number = Buffer.INITIAL_SIZE) {
    if (!Number.isInteger(initialSize) || initialSize < 0) {
      throw new RangeError(
        `Cannot create buffer as 'initialSize' must be a non-negative integer: current value is ${initialSize}`,
      );
    }
    this.#initialSize = initialSize;
    this.#bytes = new Uint8Array(Buffer.CHEAP_PREPEND + initialSize);
    this.#view = new DataView(this.#bytes.buffer);
    this.#readerIndex = Buffer.CHEAP_PREPEND;
    this.#writerIndex = Buffer.CHEAP_PREPEND;
  }

  /** Bytes that can be read. */
  get readableBytes(): number {
    return this.#writerIndex - this.#readerIndex;
  }

  /** Bytes that can be written without growing or compacting. */
  get writableBytes(): number {
    return this.#bytes.length - this.#writerIndex;
  }

  /** Bytes in front of the content (at least CHEAP_PREPEND until something is prepended). */
  get prependableBytes(): number {
    return this.#readerIndex;
  }

  /** The total capacity of the backing store. */
  get capacity(): number {
    return this.#bytes.length;
  }

  /** A view of the readable bytes, valid until the next call that changes the buffer. */
  peek(): Uint8Array {
    return this.#bytes.subarray(this.#readerIndex, this.#writerIndex);
  }

  /**
   * A view of `length` readable bytes from `offset` (relative to `peek()`), valid until the next call that
   * changes the buffer: `peek().subarray(offset, offset + length)` without the intermediate view (a codec takes
   * one per frame). Throws a RangeError past the readable bytes.
   */
  view(offset: number, length: number): Uint8Array {
    if (offset < 0 || length < 0 || offset + length > this.#writerIndex - this.#readerIndex) {
      throw new RangeError(
        `Cannot view ${length} bytes at ${offset} as only ${this.#writerIndex - this.#readerIndex} are readable`,
      );
    }
    return new Uint8Array(this.#bytes.buffer, this.#bytes.byteOffset + this.#readerIndex + offset, length);
  }

  /** The index (relative to `peek()`) of the first "\r\n" at or after `start`, or -1. */
  findCRLF(start = 0): number {
    const bytes = this.#bytes;
    for (let i = this.#readerIndex + start; i + 1 < this.#writerIndex; i++) {
      if (bytes[i] === CR && bytes[i + 1] === LF) return i - this.#readerIndex;
    }
    return -1;
  }

  /** The index (relative to `peek()`) of the first "\n" at or after `start`, or -1. */
  findEOL(start = 0): number {
    const index = this.#bytes.subarray(0, this.#writerIndex).indexOf(LF, this.#readerIndex + start);
    return index < 0 ? -1 : index - this.#readerIndex;
  }

  /** Drop `length` readable bytes (all of them when `length` >= readableBytes). */
  retrieve(length: number): void {
    if (length < this.readableBytes) {
      this.#readerIndex += length;
    } else {
      this.retrieveAll();
    }
  }

  /** Drop everything readable and reset the indices. */
  retrieveAll(): void {
    this.#readerIndex = Buffer.CHEAP_PREPEND;
    this.#writerIndex = Buffer.CHEAP_PREPEND;
  }

  /** Take `length` readable bytes as UTF-8 text. */
  retrieveAsString(length: number): string {
    this.#checkReadable(length, "retrieveAsString");
    const text = decoder.decode(this.#bytes.subarray(this.#readerIndex, this.#readerIndex + length));
    this.retrieve(length);
    return text;
  }

  /** Take everything readable as UTF-8 text. */
  retrieveAllAsString(): string {
    return this.retrieveAsString(this.readableBytes);
  }

  /** Take `length` readable bytes as a copy. */
  retrieveAsBytes(length: number): Uint8Array {
    this.#checkReadable(length, "retrieveAsBytes");
    const copy = this.#bytes.slice(this.#readerIndex, this.#readerIndex + length);
    this.retrieve(length);
    return copy;
  }

  /** Append bytes, or a string as UTF-8. */
  append(data: Uint8Array | string): void {
    if (typeof data === "string") {
      // encodeInto avoids an intermediate array when the worst case (3 bytes per UTF-16 unit) fits already;
      // otherwise encode first, so the buffer grows by the real size, not the worst case.
      if (this.writableBytes < data.length * 3) {
        this.append(encoder.encode(data));
        return;
      }
      const { written } = encoder.encodeInto(data, this.#bytes.subarray(this.#writerIndex));
      this.#writerIndex += written;
      return;
    }
    this.ensureWritableBytes(data.length);
    this.#bytes.set(data, this.#writerIndex);
    this.#writerIndex += data.length;
  }

  /** Make sure `length` bytes can be written, compacting or growing as needed. */
  ensureWritableBytes(length: number): void {
    if (this.writableBytes < length) this.#makeSpace(length);
  }

  /** A view of the writable region, for reading straight into the buffer; then call `hasWritten`. */
  beginWrite(): Uint8Array {
    return this.#bytes.subarray(this.#writerIndex);
  }

  /** Commit `length` bytes written into `beginWrite()`'s view. */
  hasWritten(length: number): void {
    if (length < 0 || length > this.writableBytes) {
      throw new RangeError(
        `Cannot commit written bytes as 'length' must be in [0, ${this.writableBytes}]: current value is ${length}`,
      );
    }
    this.#writerIndex += length;
  }

  /** Take back the last `length` appended bytes. */
  unwrite(length: number): void {
    this.#checkReadable(length, "unwrite");
    this.#writerIndex -= length;
  }

  // --- big-endian integers ---

  /** Append a signed 8-bit integer. */
  appendInt8(value: number): void {
    this.ensureWritableBytes(1);
    this.#view.setInt8(this.#writerIndex, value);
    this.#writerIndex += 1;
  }

  /** Append a signed 16-bit integer. */
  appendInt16(value: number): void {
    this.ensureWritableBytes(2);
    this.#view.setInt16(this.#writerIndex, value);
    this.#writerIndex += 2;
  }

  /** Append a signed 32-bit integer. */
  appendInt32(value: number): void {
    this.ensureWritableBytes(4);
    this.#view.setInt32(this.#writerIndex, value);
    this.#writerIndex += 4;
  }

  /** Append an unsigned 8-bit integer. */
  appendUint8(value: number): void {
    this.ensureWritableBytes(1);
    this.#view.setUint8(this.#writerIndex, value);
    this.#writerIndex += 1;
  }

  /** Append an unsigned 16-bit integer. */
  appendUint16(value: number): void {
    this.ensureWritableBytes(2);
    this.#view.setUint16(this.#writerIndex, value);
    this.#writerIndex += 2;
  }

  /** Append an unsigned 32-bit integer. */
  appendUint32(value: number): void {
    this.ensureWritableBytes(4);
    this.#view.setUint32(this.#writerIndex, value);
    this.#writerIndex += 4;
  }

  /** Append a signed 64-bit integer. */
  appendBigInt64(value: bigint): void {
    this.ensureWritableBytes(8);
    this.#view.setBigInt64(this.#writerIndex, value);
    this.#writerIndex += 8;
  }

  /** Append an unsigned 64-bit integer. */
  appendBigUint64(value: bigint): void {
    this.ensureWritableBytes(8);
    this.#view.setBigUint64(this.#writerIndex, value);
    this.#writerIndex += 8;
  }

  /** Read a signed 8-bit integer without retrieving it. */
  peekInt8(): number {
    this.#checkReadable(1, "peekInt8");
    return this.#view.getInt8(this.#readerIndex);
  }

  /** Read a signed 16-bit integer without retrieving it. */
  peekInt16(): number {
    this.#checkReadable(2, "peekInt16");
    return this.#view.getInt16(this.#readerIndex);
  }

  /** Read a signed 32-bit integer without retrieving it. */
  peekInt32(): number {
    this.#checkReadable(4, "peekInt32");
    return this.#view.getInt32(this.#readerIndex);
  }

  /** Read an unsigned 8-bit integer without retrieving it. */
  peekUint8(): number {
    this.#checkReadable(1, "peekUint8");
    return this.#view.getUint8(this.#readerIndex);
  }

  /** Read an unsigned 16-bit integer without retrieving it. */
  peekUint16(): number {
    this.#checkReadable(2, "peekUint16");
    return this.#view.getUint16(this.#readerIndex);
  }

  /** Read an unsigned 32-bit integer without retrieving it. */
  peekUint32(): number {
    this.#checkReadable(4, "peekUint32");
    return this.#view.getUint32(this.#readerIndex);
  }

  /** Read a signed 64-bit integer without retrieving it. */
  peekBigInt64(): bigint {
    this.#checkReadable(8, "peekBigInt64");
    return this.#view.getBigInt64(this.#readerIndex);
  }

  /** Read an unsigned 64-bit integer without retrieving it. */
  peekBigUint64(): bigint {
    this.#checkReadable(8, "peekBigUint64");
    return this.#view.getBigUint64(this.#readerIndex);
  }

  /** Read and retrieve a signed 8-bit integer. */
  readInt8(): number {
    const value = this.peekInt8();
    this.#readerIndex += 1;
    return value;
  }

  /** Read and retrieve a signed 16-bit integer. */
  readInt16(): number {
    const value = this.peekInt16();
    this.#readerIndex += 2;
    return value;
  }

  /** Read and retrieve a signed 32-bit integer. */
  readInt32(): number {
    const value = this.peekInt32();
    this.#readerIndex += 4;
    return value;
  }

  /** Read and retrieve an unsigned 8-bit integer. */
  readUint8(): number {
    const value = this.peekUint8();
    this.#readerIndex += 1;
    return value;
  }

  /** Read and retrieve an unsigned 16-bit integer. */
  readUint16(): number {
    const value = this.peekUint16();
    this.#readerIndex += 2;
    return value;
  }

  /** Read and retrieve an unsigned 32-bit integer. */
  readUint32(): number {
    const value = this.peekUint32();
    this.#readerIndex += 4;
    return value;
  }

  /** Read and retrieve a signed 64-bit integer. */
  readBigInt64(): bigint {
    const value = this.peekBigInt64();
    this.#readerIndex += 8;
    return value;
  }

  /** Read and retrieve an unsigned 64-bit integer. */
  readBigUint64(): bigint {
    const value = this.peekBigUint64();
    this.#readerIndex += 8;
    return value;
  }

  /** Prepend bytes in front of the content (needs that many prependable bytes). */
  prepend(data: Uint8Array): void {
    this.#checkPrependable(data.length);
    this.#readerIndex -= data.length;
    this.#bytes.set(data, this.#readerIndex);
  }

  /** Prepend a signed 8-bit integer. */
  prependInt8(value: number): void {
    this.#checkPrependable(1);
    this.#readerIndex -= 1;
    this.#view.setInt8(this.#readerIndex, value);
  }

  /** Prepend a signed 16-bit integer. */
  prependInt16(value: number): void {
    this.#checkPrependable(2);
    this.#readerIndex -= 2;
    this.#view.setInt16(this.#readerIndex, value);
  }

  /** Prepend a signed 32-bit integer. */
  prependInt32(value: number): void {
    this.#checkPrependable(4);
    this.#readerIndex -= 4;
    this.#view.setInt32(this.#readerIndex, value);
  }

  /** Prepend an unsigned 8-bit integer. */
  prependUint8(value: number): void {
    this.#checkPrependable(1);
    this.#readerIndex -= 1;
    this.#view.setUint8(this.#readerIndex, value);
  }

  /** Prepend an unsigned 16-bit integer. */
  prependUint16(value: number): void {
    this.#checkPrependable(2);
    this.#readerIndex -= 2;
    this.#view.setUint16(this.#readerIndex, value);
  }

  /** Prepend an unsigned 32-bit integer. */
  prependUint32(value: number): void {
    this.#checkPrependable(4);
    this.#readerIndex -= 4;
    this.#view.setUint32(this.#readerIndex, value);
  }

  /** Release memory: keep the content plus `reserve` writable bytes. */
  shrink(reserve = 0): void {
    const content = this.peek();
    const bytes = new Uint8Array(Buffer.CHEAP_PREPEND + content.length + reserve);
    bytes.set(content, Buffer.CHEAP_PREPEND);
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer);
    this.#readerIndex = Buffer.CHEAP_PREPEND;
    this.#writerIndex = Buffer.CHEAP_PREPEND + content.length;
  }

  /**
   * Give memory back after a burst: when nothing is readable and the capacity is above `thresholdBytes`, replace
   * the backing store with a fresh one of the initial size. O(1) when it does nothing, so a codec can call it after
   * every message: without it a connection that once received a 4 MiB frame keeps 4 MiB while idle.
   *
   * Do not call it while a read into `beginWrite()`'s view is in flight (TcpConnection reads into its input buffer
   * between message callbacks, so calling it from a message callback is safe).
   *
   * @returns Whether the store was replaced.
   *
   * @example
   * ```ts
   * import { Buffer } from "./buffer.ts";
   * import assert from "node:assert/strict";
   *
   * const buffer = new Buffer();
   * buffer.append(new Uint8Array(4 * 1024 * 1024));
   * buffer.retrieveAll();
   * assert.ok(buffer.shrinkIfEmpty(256 * 1024));
   * assert.equal(buffer.capacity, Buffer.CHEAP_PREPEND + Buffer.INITIAL_SIZE);
   * ```
   */
  shrinkIfEmpty(thresholdBytes: number): boolean {
    const length = this.#bytes.length;
    if (this.#writerIndex !== this.#readerIndex || length <= thresholdBytes) return false;
    if (length <= Buffer.CHEAP_PREPEND + this.#initialSize) return false;
    this.#bytes = new Uint8Array(Buffer.CHEAP_PREPEND + this.#initialSize);
    this.#view = new DataView(this.#bytes.buffer);
    this.#readerIndex = Buffer.CHEAP_PREPEND;
    this.#writerIndex = Buffer.CHEAP_PREPEND;
    return true;
  }

  /** Exchange contents with another buffer in O(1). */
  swap(other: Buffer): void {
    [this.#bytes, other.#bytes] = [other.#bytes, this.#bytes];
    [this.#view, other.#view] = [other.#view, this.#view];
    [this.#readerIndex, other.#readerIndex] = [other.#readerIndex, this.#readerIndex];
    [this.#writerIndex, other.#writerIndex] = [other.#writerIndex, this.#writerIndex];
  }

  #makeSpace(length: number): void {
    const readable = this.readableBytes;
    if (this.writableBytes + this.prependableBytes - Buffer.CHEAP_PREPEND >= length) {
      // Enough room in total: move the content to the front instead of allocating.
      this.#bytes.copyWithin(Buffer.CHEAP_PREPEND, this.#readerIndex, this.#writerIndex);
      this.#readerIndex = Buffer.CHEAP_PREPEND;
      this.#writerIndex = Buffer.CHEAP_PREPEND + readable;
      return;
    }
    // Grow at least twofold, so a stream of appends costs amortised O(1) per byte.
    const needed = Buffer.CHEAP_PREPEND + readable + length;
    const bytes = new Uint8Array(Math.max(needed, this.#bytes.length * 2));
    bytes.set(this.#bytes.subarray(this.#readerIndex, this.#writerIndex), Buffer.CHEAP_PREPEND);
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer);
    this.#readerIndex = Buffer.CHEAP_PREPEND;
    this.#writerIndex = Buffer.CHEAP_PREPEND + readable;
  }

  #checkReadable(length: number, what: string): void {
    if (!(length >= 0 && length <= this.readableBytes)) {
      throw new RangeError(
        `Cannot ${what} ${length} bytes as the buffer holds ${this.readableBytes} readable bytes`,
      );
    }
  }

  #checkPrependable(length: number): void {
    if (length > this.prependableBytes) {
      throw new RangeError(
        `Cannot prepend ${length} bytes as the buffer has ${this.prependableBytes} prependable bytes`,
      );
    }
  }
}
