/**
 * The few protobuf wire rules the seed's messages.proto needs (varints and length-delimited fields), written out
 * so a hostile byte string is judged field by field: every length is checked against what is there before
 * anything is allocated, and nothing a peer sends can make the reader loop or grow without bound.
 *
 * @module
 */

/** A decoded field: a varint (as bigint, so 64-bit ids stay exact) or the bytes of a length-delimited field. */
export type WireValue = bigint | Uint8Array;

/** Field number → its values in wire order (a repeated field has several; for a singular one the last wins). */
export type WireFields = Map<number, WireValue[]>;

// The longest varint: ten bytes carry 64 bits.
const MAX_VARINT_BYTES = 10;

/**
 * Read a varint at `offset`: its value and the offset after it, `undefined` when the bytes end inside it. Throws
 * on a varint longer than ten bytes.
 */
export function readVarint(bytes: Uint8Array, offset: number): { value: bigint; next: number } | undefined {
  let value = 0n;
  for (let i = 0; i < MAX_VARINT_BYTES; i++) {
    if (offset + i >= bytes.length) return undefined;
    const byte = bytes[offset + i]!;
    value |= BigInt(byte & 0x7f) << BigInt(7 * i);
    if ((byte & 0x80) === 0) return { value: value & 0xffff_ffff_ffff_ffffn, next: offset + i + 1 };
  }
  throw new RangeError(`Cannot read a varint at offset ${offset} as it is longer than ${MAX_VARINT_BYTES} bytes`);
}

/**
 * Every field of one whole message. Throws on a truncated field, a group or an unknown wire type; unknown fields
 * of fixed width are skipped, as any protobuf parser does.
 */
export function readFields(bytes: Uint8Array): WireFields {
  const fields: WireFields = new Map();
  let offset = 0;
  while (offset < bytes.length) {
    const tag = readVarint(bytes, offset);
    if (tag === undefined) throw new RangeError(`Cannot parse a message as it ends inside a tag at ${offset}`);
    offset = tag.next;
    const field = Number(tag.value >> 3n);
    const wireType = Number(tag.value & 7n);
    if (field === 0 || tag.value >> 3n > 0x1fff_ffffn) {
      throw new RangeError(`Cannot parse a message as it holds field number ${tag.value >> 3n}`);
    }
    let value: WireValue | undefined;
    if (wireType === 0) {
      const varint = readVarint(bytes, offset);
      if (varint === undefined) throw new RangeError(`Cannot parse a message as it ends inside field ${field}`);
      value = varint.value;
      offset = varint.next;
    } else if (wireType === 2) {
      const length = readVarint(bytes, offset);
      if (length === undefined || length.value > BigInt(bytes.length - length.next)) {
        throw new RangeError(`Cannot parse a message as field ${field} claims more bytes than it holds`);
      }
      value = bytes.subarray(length.next, length.next + Number(length.value));
      offset = length.next + Number(length.value);
    } else if (wireType === 1 || wireType === 5) {
      offset += wireType === 1 ? 8 : 4;
      if (offset > bytes.length) throw new RangeError(`Cannot parse a message as it ends inside field ${field}`);
    } else {
      throw new RangeError(`Cannot parse a message as field ${field} has wire type ${wireType}`);
    }
    if (value === undefined) continue;
    let values = fields.get(field);
    if (values === undefined) fields.set(field, values = []);
    values.push(value);
  }
  return fields;
}

/** The last varint of `field` (0n when absent); throws when it was sent as bytes. */
export function varintField(fields: WireFields, field: number): bigint {
  const value = fields.get(field)?.at(-1);
  if (value === undefined) return 0n;
  if (typeof value !== "bigint") throw new TypeError(`Cannot read field ${field} as a number: it holds bytes`);
  return value;
}

const EMPTY = new Uint8Array(0);

/** The bytes of `field` (empty when absent; a repeated one gives its last); throws when it was sent as a varint. */
export function bytesField(fields: WireFields, field: number): Uint8Array {
  const value = fields.get(field)?.at(-1);
  if (value === undefined) return EMPTY;
  if (typeof value === "bigint") throw new TypeError(`Cannot read field ${field} as bytes: it holds a number`);
  return value;
}

/** Every value of a repeated bytes `field`. */
export function repeatedBytesField(fields: WireFields, field: number): Uint8Array[] {
  return (fields.get(field) ?? []).map((value) => {
    if (typeof value === "bigint") throw new TypeError(`Cannot read field ${field} as bytes: it holds a number`);
    return value;
  });
}

const encoder = new TextEncoder();

/** Writes a message in field-number order, leaving out proto3 defaults (0, false, empty) as every encoder does. */
export class ProtoWriter {
  readonly #parts: Uint8Array[] = [];
  #length = 0;

  /** A varint field (enum, bool, int32, uint64); negative int32 values take ten bytes, as protobuf says. */
  varint(field: number, value: bigint | number | boolean): this {
    let v = typeof value === "boolean" ? (value ? 1n : 0n) : BigInt(value);
    if (v === 0n) return this;
    if (v < 0n) v &= 0xffff_ffff_ffff_ffffn;
    this.#rawVarint(BigInt(field << 3));
    this.#rawVarint(v);
    return this;
  }

  /** A length-delimited field (bytes, string, nested message). */
  bytes(field: number, value: Uint8Array | string): this {
    const bytes = typeof value === "string" ? encoder.encode(value) : value;
    if (bytes.length === 0) return this;
    return this.bytesAlways(field, bytes);
  }

  /** A length-delimited field written even when empty (an element of a repeated field). */
  bytesAlways(field: number, bytes: Uint8Array): this {
    this.#rawVarint(BigInt((field << 3) | 2));
    this.#rawVarint(BigInt(bytes.length));
    this.#push(bytes);
    return this;
  }

  /** The message. */
  finish(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let at = 0;
    for (const part of this.#parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  #push(bytes: Uint8Array): void {
    this.#parts.push(bytes);
    this.#length += bytes.length;
  }

  #rawVarint(value: bigint): void {
    const bytes: number[] = [];
    let v = value;
    while (v >= 0x80n) {
      bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    bytes.push(Number(v));
    this.#push(Uint8Array.from(bytes));
  }
}
