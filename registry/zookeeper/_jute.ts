/**
 * Jute, ZooKeeper's wire serialization: big-endian ints and longs, length-prefixed UTF-8 strings and byte
 * buffers (length -1 for null), one-byte booleans, count-prefixed vectors. Enough of it for the client
 * protocol in {@linkcode ZooKeeperRegistry}.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { ignoreBOM: true }); // a leading U+FEFF is part of a name

/** Appends jute values to a growing byte array. */
export class JuteWriter {
  #bytes = new Uint8Array(256);
  #view = new DataView(this.#bytes.buffer);
  #length = 0;

  #reserve(extra: number): void {
    if (this.#length + extra <= this.#bytes.length) return;
    const grown = new Uint8Array(Math.max(this.#bytes.length * 2, this.#length + extra));
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
    this.#view = new DataView(grown.buffer);
  }

  int(value: number): this {
    this.#reserve(4);
    this.#view.setInt32(this.#length, value);
    this.#length += 4;
    return this;
  }

  long(value: bigint): this {
    this.#reserve(8);
    this.#view.setBigInt64(this.#length, value);
    this.#length += 8;
    return this;
  }

  bool(value: boolean): this {
    this.#reserve(1);
    this.#bytes[this.#length++] = value ? 1 : 0;
    return this;
  }

  buffer(value: Uint8Array | null): this {
    if (value === null) return this.int(-1);
    this.int(value.length);
    this.#reserve(value.length);
    this.#bytes.set(value, this.#length);
    this.#length += value.length;
    return this;
  }

  string(value: string | null): this {
    return this.buffer(value === null ? null : encoder.encode(value));
  }

  strings(values: readonly string[]): this {
    this.int(values.length);
    for (const value of values) this.string(value);
    return this;
  }

  /** The bytes written, prefixed with their 4-byte length: one ZooKeeper packet. */
  packet(): Uint8Array {
    const packet = new Uint8Array(4 + this.#length);
    new DataView(packet.buffer).setInt32(0, this.#length);
    packet.set(this.#bytes.subarray(0, this.#length), 4);
    return packet;
  }
}

/** Reads jute values from one packet body; throws a RangeError past its end. */
export class JuteReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #offset = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Bytes not read yet. */
  get remaining(): number {
    return this.#bytes.length - this.#offset;
  }

  #take(length: number): number {
    if (length < 0 || this.#offset + length > this.#bytes.length) {
      throw new RangeError(
        `Cannot read ${length} bytes at offset ${this.#offset} of a ${this.#bytes.length}-byte packet`,
      );
    }
    const at = this.#offset;
    this.#offset += length;
    return at;
  }

  int(): number {
    return this.#view.getInt32(this.#take(4));
  }

  long(): bigint {
    return this.#view.getBigInt64(this.#take(8));
  }

  bool(): boolean {
    return this.#bytes[this.#take(1)] !== 0;
  }

  /** A copy (the packet's memory is reused). */
  buffer(): Uint8Array | null {
    const length = this.int();
    if (length === -1) return null;
    const at = this.#take(length);
    return this.#bytes.slice(at, at + length);
  }

  string(): string | null {
    const length = this.int();
    if (length === -1) return null;
    const at = this.#take(length);
    return decoder.decode(this.#bytes.subarray(at, at + length));
  }

  strings(): string[] {
    const count = this.int();
    const values: string[] = [];
    for (let i = 0; i < count; i++) values.push(this.string() ?? "");
    return values;
  }
}
