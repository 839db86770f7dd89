/**
 * The protobuf wire primitives under `ProtoCodec` (`_proto_codec.ts`): sizes, an encoder that writes into an
 * array measured beforehand, and a decoder with strict UTF-8. Only the types registry.proto uses:
 *
 * | type                              | wire type | value                                                |
 * | --------------------------------- | --------- | ---------------------------------------------------- |
 * | uint32, int32, enum, bool, uint64 | 0 varint  | int32 and enums below 0 as 10-byte two's complement |
 * | sint32                            | 0 varint  | zigzag: (n << 1) ^ (n >> 31)                         |
 * | string, bytes, message            | 2 length  | varint byte length, then the bytes                  |
 *
 * Fields of wire types 1 (8 bytes), 5 (4 bytes) and 3/4 (a proto2 group and its end) are only skipped.
 *
 * @module
 */

/** The empty bytes value every empty field shares (a zero-length array cannot be written to). */
export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);
const TWO_32 = 2 ** 32;
// ignoreBOM: a string that starts with U+FEFF keeps it (a decoder drops it by default, so a child named "\uFEFFx"
// would come back as "x", another node).
const fatalDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const lossyDecoder = new TextDecoder("utf-8", { ignoreBOM: true });

// --- sizes ---

export function varintLength(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : value < 0x10000000 ? 4 : 5;
}

/** The UTF-8 length of `text`; a lone surrogate counts 3 bytes, as it is written. */
export function utf8Length(text: string): number {
  if (typeof text !== "string") throw new TypeError(`Cannot encode ${typeof text} as a string field`);
  let length = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) length += 1;
    else if (c < 0x800) length += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      length += 4;
      i++;
    } else length += 3;
  }
  return length;
}

// A 64-bit value's low and high 32 bits, set by longBits (one pair: encodes never nest).
let low32 = 0;
let high32 = 0;

/** Split a 64-bit value, in any form the frames carry, into low32 and high32 (unsigned). */
function longBits(value: unknown): void {
  if (typeof value === "number" && value >= 0 && value <= Number.MAX_SAFE_INTEGER) {
    // Division and a floor, not %: a floating-point remainder is a slow instruction, and this runs per field.
    high32 = value < TWO_32 ? 0 : Math.floor(value / TWO_32);
    low32 = (value - high32 * TWO_32) >>> 0;
    return;
  }
  if (typeof value === "object" && value !== null && "low" in value && "high" in value) {
    low32 = (value as { low: number }).low >>> 0; // a protobufjs Long
    high32 = (value as { high: number }).high >>> 0;
    return;
  }
  let big: bigint;
  if (typeof value === "bigint") big = value;
  else if (typeof value === "string") big = BigInt(value);
  else if (typeof value === "number" && Number.isFinite(value)) big = BigInt(Math.trunc(value));
  else throw new TypeError(`Cannot encode ${String(value)} as a 64-bit integer`);
  const bits = BigInt.asUintN(64, big);
  low32 = Number(bits & 0xffff_ffffn);
  high32 = Number(bits >> 32n);
}

/** The varint length of a 64-bit value in any form the frames carry. */
export function long64Length(value: unknown): number {
  if (typeof value === "number" && value >= 0 && value <= Number.MAX_SAFE_INTEGER) {
    if (value < 0x1000_0000) return varintLength(value);
    // 7 bits a byte: 2^35, 2^42 and 2^49 are the next bounds (a safe integer has at most 53 bits).
    return value < 2 ** 35 ? 5 : value < 2 ** 42 ? 6 : value < 2 ** 49 ? 7 : 8;
  }
  longBits(value);
  if (high32 === 0) return varintLength(low32);
  return high32 < 0x8 ? 5 : 5 + varintLength(high32 >>> 3);
}

/**
 * The byte lengths of the nested messages and strings of the message being encoded, in the order both passes meet
 * them: the length pass measures each once, the write pass takes them from here (the encoder's `next`).
 */
export const lengths: number[] = [];

// --- writing ---

/** Writes into an array at least as long as what is written (the lengths are measured first). */
export class Encoder {
  bytes: Uint8Array = EMPTY_BYTES;
  pos = 0;
  /** The next of `lengths` to take: the length of the next nested message or string to write. */
  next = 0;

  varint(value: number): void {
    const bytes = this.bytes;
    while (value > 0x7f) {
      bytes[this.pos++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    bytes[this.pos++] = value;
  }

  int32(value: number): void {
    if (value >= 0) this.varint(value);
    else this.#long(value >>> 0, 0xffff_ffff);
  }

  uint64(value: unknown): void {
    longBits(value);
    this.#long(low32, high32);
  }

  #long(low: number, high: number): void {
    const bytes = this.bytes;
    while (high > 0) {
      bytes[this.pos++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    this.varint(low);
  }

  /** A string, whose UTF-8 length the length pass measured (`lengths`). */
  string(text: string): void {
    this.varint(lengths[this.next++]!);
    const bytes = this.bytes;
    let pos = this.pos;
    for (let i = 0; i < text.length; i++) {
      let c = text.charCodeAt(i);
      if (c < 0x80) {
        bytes[pos++] = c;
      } else if (c < 0x800) {
        bytes[pos++] = (c >> 6) | 0xc0;
        bytes[pos++] = (c & 0x3f) | 0x80;
      } else if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        c = 0x10000 + ((c & 0x3ff) << 10) + (text.charCodeAt(++i) & 0x3ff);
        bytes[pos++] = (c >> 18) | 0xf0;
        bytes[pos++] = ((c >> 12) & 0x3f) | 0x80;
        bytes[pos++] = ((c >> 6) & 0x3f) | 0x80;
        bytes[pos++] = (c & 0x3f) | 0x80;
      } else {
        // A lone surrogate too: the receiver refuses it as invalid UTF-8 rather than read a U+FFFD we put there.
        bytes[pos++] = (c >> 12) | 0xe0;
        bytes[pos++] = ((c >> 6) & 0x3f) | 0x80;
        bytes[pos++] = (c & 0x3f) | 0x80;
      }
    }
    this.pos = pos;
  }

  bytesValue(data: Uint8Array): void {
    // Not any array-like: set() would write a string's characters, or anything else, as zeros without a word.
    if (!(data instanceof Uint8Array)) {
      throw new TypeError(`Cannot encode ${typeof data} as bytes: a Uint8Array is needed`);
    }
    this.varint(data.length);
    this.bytes.set(data, this.pos);
    this.pos += data.length;
  }
}

// --- reading ---

/** The first bad string of a message being decoded: where it was and what a lossy decoder makes of it. */
export interface BadString {
  field: string;
  lossy: string;
  cause: unknown;
}

/** Reads one message's bytes. */
export class Decoder {
  bytes: Uint8Array = EMPTY_BYTES;
  pos = 0;
  bad: BadString | undefined;
  // The names of the messages being decoded, outermost first: a bad string's field is named from them.
  readonly names: string[] = [];

  fail(what: string): never {
    throw new RangeError(`Cannot decode the frame as ${what} at offset ${this.pos} of ${this.bytes.length}`);
  }

  /** A varint's low 32 bits (as protobuf reads a uint32: the high bits of a longer varint are dropped). */
  varint(): number {
    const bytes = this.bytes;
    let byte = bytes[this.pos];
    if (byte !== undefined && byte < 0x80) {
      this.pos++;
      return byte;
    }
    let value = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      byte = bytes[this.pos++];
      if (byte === undefined) this.fail("a varint is cut short");
      if (shift < 32) value |= (byte & 0x7f) << shift;
      if (byte < 0x80) return value >>> 0;
    }
    return this.fail("a varint is longer than 10 bytes");
  }

  /** A uint64 varint: a number when exact, else a bigint. */
  uint64(): number | bigint {
    const bytes = this.bytes;
    let low = 0;
    let high = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      const byte = bytes[this.pos++];
      if (byte === undefined) this.fail("a varint is cut short");
      const bits = byte & 0x7f;
      if (shift < 28) {
        low |= bits << shift;
      } else if (shift === 28) {
        low |= bits << 28;
        high = bits >>> 4;
      } else {
        high |= bits << (shift - 32);
      }
      if (byte < 0x80) {
        low >>>= 0;
        high >>>= 0;
        return high < 0x20_0000 ? high * TWO_32 + low : (BigInt(high) << 32n) | BigInt(low);
      }
    }
    return this.fail("a varint is longer than 10 bytes");
  }

  /** Reads a length; returns where the field it prefixes ends. */
  end(): number {
    const length = this.varint();
    const end = this.pos + length;
    if (end > this.bytes.length) this.fail(`a field of ${length} bytes runs past the end`);
    return end;
  }

  bytesValue(): Uint8Array {
    const end = this.end();
    const start = this.pos;
    this.pos = end;
    return start === end ? EMPTY_BYTES : this.bytes.subarray(start, end);
  }

  /** A string field (`name`, with `index` for a list's item, or -1) that must be valid UTF-8. */
  string(name: string, index: number): string {
    const end = this.end();
    const bytes = this.bytes;
    const start = this.pos;
    this.pos = end;
    let text = "";
    // ASCII, the usual case for paths, is read here; anything else goes to the strict native decoder.
    if (end - start <= 64) {
      for (let i = start; i < end; i++) {
        const c = bytes[i]!;
        if (c >= 0x80) return this.#utf8(bytes.subarray(start, end), name, index);
        text += String.fromCharCode(c);
      }
      return text;
    }
    return this.#utf8(bytes.subarray(start, end), name, index);
  }

  #utf8(view: Uint8Array, name: string, index: number): string {
    try {
      return fatalDecoder.decode(view);
    } catch (cause) {
      const lossy = lossyDecoder.decode(view);
      if (this.bad === undefined) {
        const field = [...this.names, name].join(".") + (index >= 0 ? `[${index}]` : "");
        this.bad = { field, lossy, cause };
      }
      return lossy;
    }
  }

  /** A field this message does not know by `tag`: skipped, unless its number is known (`known`) with another type. */
  other(tag: number, known: readonly string[]): void {
    const name = known[tag >>> 3];
    if (name !== undefined) this.fail(`field '${name}' has wire type ${tag & 7}`);
    this.skip(tag & 7); // unknown: proto3 passes over a newer peer's field; skip still bounds-checks its bytes
  }

  skip(wireType: number): void {
    if (wireType === 0) {
      this.varint();
    } else if (wireType === 2) {
      this.pos = this.end();
    } else if (wireType === 1 || wireType === 5) {
      this.pos += wireType === 1 ? 8 : 4;
      if (this.pos > this.bytes.length) this.fail("a fixed-size field runs past the end");
    } else if (wireType === 3) {
      // A group (proto2): its fields up to its end tag. Groups in groups are counted, not recursed into, so a frame of
      // nested group starts cannot run the stack out (a group's fields are skipped whatever its depth).
      let depth = 1;
      while (depth > 0) {
        const tag = this.varint();
        const type = tag & 7;
        if (type === 3) depth++;
        else if (type === 4) depth--;
        else this.skip(type); // a field inside the group: passed over like any unknown field, bounds-checked
      }
    } else {
      this.fail(`wire type ${wireType} is not valid`);
    }
  }
}
