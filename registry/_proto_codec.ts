/**
 * A proto3 codec for the registry's frames, built once from protobufjs's reflection of proto/registry.proto (the
 * one source of the schema) and written for the request path: no Long objects (64-bit values decode to numbers,
 * or bigints past 2^53), no Reader or Writer per message, small frames encoded into reused memory, and strict
 * UTF-8 in both directions.
 *
 * Wire rules (the protobuf encoding; only the types registry.proto uses):
 *
 * | type                              | wire type | value                                                |
 * | --------------------------------- | --------- | ---------------------------------------------------- |
 * | uint32, int32, enum, bool, uint64 | 0 varint  | int32 and enums below 0 as 10-byte two's complement |
 * | sint32                            | 0 varint  | zigzag: (n << 1) ^ (n >> 31)                         |
 * | string, bytes, message            | 2 length  | varint byte length, then the bytes                  |
 *
 * Encoding writes every field that is set (neither undefined nor null, nor a default a decoded message inherits), in
 * field-number order: protobufjs's rule, so its output and this one are byte for byte the same. Decoding skips
 * unknown fields of any valid wire type, refuses a known field with the wrong wire type, lets the last member of a
 * oneof win, and gives absent scalars their proto3 defaults through the prototype (so a decoded object's own keys
 * are the fields that were sent).
 *
 * How: each message type's length, write and read functions are compiled from the schema when the codec is made
 * (`new Function`, as protobufjs does), so every field is read and written by its own name. A loop over the fields
 * that looks each one up by a computed key was 3-5 times slower than protobufjs: such lookups go to V8's slow
 * generic path.
 *
 * @module
 */

import type protobuf from "protobufjs";

/** What a field holds, which decides its wire type and its JavaScript value. */
type FieldKind = "uint32" | "int32" | "sint32" | "uint64" | "bool" | "string" | "bytes" | "message";
const SCALAR_KINDS: readonly FieldKind[] = ["uint32", "int32", "sint32", "uint64", "bool", "string", "bytes"];

/** A string field that is not valid UTF-8 (decoding goes on with its lossy text, so the rest is known). */
export class InvalidStringError extends Error {
  /** The whole message as decoded, the bad string in its lossy form. */
  readonly decoded: Record<string, unknown>;
  /** The field's dotted name, such as `create.path` or `children.children[1]`. */
  readonly field: string;
  /** The string as a lossy decoder reads it (U+FFFD for each bad sequence). */
  readonly lossy: string;

  /** An error for `field` of `decoded`. */
  constructor(decoded: Record<string, unknown>, field: string, lossy: string, options: { cause: unknown }) {
    super(`Field '${field}' is not valid UTF-8`, options);
    this.name = "InvalidStringError";
    this.decoded = decoded;
    this.field = field;
    this.lossy = lossy;
  }
}

const EMPTY_BYTES = new Uint8Array(0);
// On the prototype of decoded messages: only those may inherit a default, so only they need an own-key check.
const DECODED = Symbol("decoded");
const EMPTY_LIST: readonly unknown[] = Object.freeze([]);
const TWO_32 = 2 ** 32;
// ignoreBOM: a string that starts with U+FEFF keeps it (a decoder drops it by default, so a child named "\uFEFFx"
// would come back as "x", another node).
const fatalDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const lossyDecoder = new TextDecoder("utf-8", { ignoreBOM: true });

// --- sizes ---

function varintLength(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : value < 0x10000000 ? 4 : 5;
}

/** The UTF-8 length of `text`; a lone surrogate counts 3 bytes, as it is written. */
function utf8Length(text: string): number {
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

function long64Length(value: unknown): number {
  if (typeof value === "number" && value >= 0 && value <= Number.MAX_SAFE_INTEGER) {
    if (value < 0x1000_0000) return varintLength(value);
    // 7 bits a byte: 2^35, 2^42 and 2^49 are the next bounds (a safe integer has at most 53 bits).
    return value < 2 ** 35 ? 5 : value < 2 ** 42 ? 6 : value < 2 ** 49 ? 7 : 8;
  }
  longBits(value);
  if (high32 === 0) return varintLength(low32);
  return high32 < 0x8 ? 5 : 5 + varintLength(high32 >>> 3);
}

// The lengths of the nested messages of the message being encoded, in the order the write pass meets them.
const lengths: number[] = [];

// --- writing ---

/** Writes into an array at least as long as what is written (the lengths are measured first). */
class Encoder {
  bytes: Uint8Array = EMPTY_BYTES;
  pos = 0;
  /** The next of `lengths` to take: the length of the next nested message to write. */
  nested = 0;

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

  string(text: string): void {
    this.varint(utf8Length(text));
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
interface BadString {
  field: string;
  lossy: string;
  cause: unknown;
}

/** Reads one message's bytes. */
class Decoder {
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
    this.skip(tag & 7);
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
        else this.skip(type);
      }
    } else {
      this.fail(`wire type ${wireType} is not valid`);
    }
  }
}

// --- compiling a message type ---

/** One message type's compiled functions. */
interface MessageCode {
  length: (message: Record<string, unknown>) => number;
  write: (encoder: Encoder, message: Record<string, unknown>) => void;
  read: (decoder: Decoder, end: number) => Record<string, unknown>;
}

interface CompiledField {
  readonly name: string;
  readonly key: string; // the name as a JavaScript string literal
  readonly kind: FieldKind;
  readonly repeated: boolean;
  readonly tag: number;
  readonly tagLength: number;
  /** Index of the nested message type's code (kind "message"). */
  readonly message: number;
  readonly oneofSiblings: readonly string[];
}

function kindOf(field: protobuf.Field): FieldKind {
  const type = field.resolvedType;
  if (type !== null && "fields" in type) return "message";
  if (type !== null) return "int32"; // an enum
  const kind = SCALAR_KINDS.find((known) => known === field.type);
  if (kind !== undefined) return kind;
  throw new TypeError(`Cannot build a codec for field '${field.fullName}' of type '${field.type}'`);
}

function defaultOf(field: CompiledField): unknown {
  if (field.repeated) return EMPTY_LIST;
  switch (field.kind) {
    case "bool":
      return false;
    case "string":
      return "";
    case "bytes":
      return EMPTY_BYTES;
    case "message":
      return undefined;
    default:
      return 0;
  }
}

/** The default's literal in generated code: the encoder skips a default the message only inherits. */
function defaultLiteral(field: CompiledField): string {
  if (field.repeated) return "EMPTY_LIST";
  switch (field.kind) {
    case "bool":
      return "false";
    case "string":
      return '""';
    case "bytes":
      return "EMPTY_BYTES";
    default:
      return "0";
  }
}

/** JavaScript that adds the length of value `v` of `field` (its tag included) to `n`. */
function lengthCode(field: CompiledField): string {
  const t = field.tagLength;
  switch (field.kind) {
    case "uint32":
      return `n += ${t} + varintLength(v >>> 0);`;
    case "int32":
      return `n += ${t} + ((v | 0) < 0 ? 10 : varintLength(v | 0));`;
    case "sint32":
      return `n += ${t} + varintLength(((v << 1) ^ (v >> 31)) >>> 0);`;
    case "uint64":
      return `n += ${t} + long64Length(v);`;
    case "bool":
      return `n += ${t + 1};`;
    case "string":
      return `s = utf8Length(v); n += ${t} + varintLength(s) + s;`;
    case "bytes":
      return `n += ${t} + varintLength(v.length) + v.length;`;
    case "message":
      // Measured once: the write pass takes it from `lengths`, in the same order.
      return `at = lengths.length; lengths.push(0); s = code[${field.message}].length(v); lengths[at] = s; ` +
        `n += ${t} + varintLength(s) + s;`;
  }
}

/** JavaScript that writes value `v` of `field` with its tag through encoder `e`. */
function writeCode(field: CompiledField): string {
  const tag = `e.varint(${field.tag}); `;
  switch (field.kind) {
    case "uint32":
      return `${tag}e.varint(v >>> 0);`;
    case "int32":
      return `${tag}e.int32(v | 0);`;
    case "sint32":
      return `${tag}e.varint(((v << 1) ^ (v >> 31)) >>> 0);`;
    case "uint64":
      return `${tag}e.uint64(v);`;
    case "bool":
      return `${tag}e.varint(v ? 1 : 0);`;
    case "string":
      return `${tag}e.string(v);`;
    case "bytes":
      return `${tag}e.bytesValue(v);`;
    case "message":
      return `${tag}e.varint(lengths[e.nested++]); code[${field.message}].write(e, v);`;
  }
}

/** JavaScript for the value of `field` read through decoder `d` (`index`: a list item's index, else -1). */
function readCode(field: CompiledField, index: string): string {
  switch (field.kind) {
    case "uint32":
      return "d.varint()";
    case "int32":
      return "d.varint() | 0";
    case "sint32":
      return "zigzag32(d.varint())";
    case "uint64":
      return "d.uint64()";
    case "bool":
      return "d.varint() !== 0";
    case "string":
      return `d.string(${field.key}, ${index})`;
    case "bytes":
      return "d.bytesValue()";
    case "message":
      return `readNested(d, ${field.key}, code[${field.message}])`;
  }
}

function zigzag32(value: number): number {
  return (value >>> 1) ^ -(value & 1);
}

function readNested(decoder: Decoder, name: string, code: MessageCode): Record<string, unknown> {
  const end = decoder.end();
  decoder.names.push(name);
  const message = code.read(decoder, end);
  decoder.names.pop();
  return message;
}

/** The code of each of `types`, in their order (the fields of messages they hold name them by index). */
function compileAll(types: protobuf.Type[]): MessageCode[] {
  const index = new Map(types.map((type, i) => [type, i]));
  const code: MessageCode[] = [];
  for (const type of types) {
    const fields: CompiledField[] = [...type.fieldsArray].sort((a, b) => a.id - b.id).map((field) => {
      const kind = kindOf(field);
      const wireType = kind === "string" || kind === "bytes" || kind === "message" ? 2 : 0;
      const tag = (field.id << 3) | wireType;
      return {
        name: field.name,
        key: JSON.stringify(field.name),
        kind,
        repeated: field.repeated,
        tag,
        tagLength: varintLength(tag),
        message: kind === "message" ? index.get(field.resolvedType as protobuf.Type)! : -1,
        oneofSiblings: field.partOf === null ? [] : field.partOf.oneof.filter((name) => name !== field.name),
      };
    });
    // Decoded messages inherit the proto3 defaults, so their own keys are the fields that were sent.
    const defaults: Record<string | symbol, unknown> = { [DECODED]: true };
    for (const field of fields) {
      const value = defaultOf(field);
      if (value !== undefined) defaults[field.name] = value;
    }
    const Message = function () {} as unknown as { new (): Record<string, unknown>; prototype: object };
    Message.prototype = defaults;

    const present = (field: CompiledField) =>
      field.kind === "message"
        ? "v !== undefined && v !== null"
        : `v !== undefined && v !== null && (v !== ${
          defaultLiteral(field)
        } || m[DECODED] !== true || hasOwn(m, ${field.key}))`;
    const perField = (field: CompiledField, body: string) =>
      `v = m[${field.key}]; if (${present(field)}) {` +
      (field.repeated ? ` for (const item of v) { const v = item; ${body} }` : ` ${body}`) + " }";
    const length = `let n = 0, v, s, at; ${fields.map((f) => perField(f, lengthCode(f))).join("\n")} return n;`;
    const write = `let v; ${fields.map((f) => perField(f, writeCode(f))).join("\n")}`;
    const known: string[] = [];
    for (const field of fields) known[field.tag >>> 3] = field.name;
    const cases = fields.map((field) => {
      const clear = field.oneofSiblings.map((name) => {
        const key = JSON.stringify(name);
        return `if (m[${key}] !== undefined) m[${key}] = undefined; `;
      }).join("");
      const set = field.repeated
        ? `{ let list = m[${field.key}]; if (list === EMPTY_LIST) m[${field.key}] = list = []; ` +
          `list.push(${readCode(field, "list.length")}); }`
        : `m[${field.key}] = ${readCode(field, "-1")};`;
      return `case ${field.tag}: ${clear}${set} break;`;
    });
    const read = "const m = new Message(); " +
      `while (d.pos < end) { const t = d.varint(); switch (t) { ${cases.join("\n")} default: d.other(t, known); } } ` +
      'if (d.pos !== end) d.fail("a field runs past the end of its message"); return m;';
    const make = new Function(
      "code",
      "Message",
      "known",
      "helpers",
      "const { varintLength, utf8Length, long64Length, readNested, zigzag32, hasOwn, lengths, EMPTY_LIST, EMPTY_BYTES, DECODED } = helpers; " +
        `return { length(m) { ${length} }, write(e, m) { ${write} }, read(d, end) { ${read} } };`,
    );
    code.push(make(code, Message, known, {
      varintLength,
      utf8Length,
      long64Length,
      readNested,
      zigzag32,
      hasOwn: Object.hasOwn,
      lengths,
      DECODED,
      EMPTY_LIST,
      EMPTY_BYTES,
    }));
  }
  return code;
}

/** Every message type `type` holds, itself first. */
function reachableTypes(type: protobuf.Type, found: protobuf.Type[] = []): protobuf.Type[] {
  if (found.includes(type)) return found;
  found.push(type);
  for (const field of type.fieldsArray) {
    const nested = field.resolvedType;
    if (nested !== null && "fields" in nested) reachableTypes(nested as protobuf.Type, found);
  }
  return found;
}

const encoder = new Encoder();
const decoder = new Decoder();
const MAX_SCRATCH_BYTES = 64 * 1024;
let scratch = new Uint8Array(4 * 1024);

/**
 * Encodes and decodes one message type of a protobufjs root. Stateless; safe to share (encodes and decodes are
 * synchronous and share one encoder and one decoder).
 */
export class ProtoCodec {
  readonly #code: MessageCode;

  /** A codec for `type` and the messages it holds. */
  constructor(type: protobuf.Type) {
    type.root.resolveAll();
    this.#code = compileAll(reachableTypes(type))[0]!;
  }

  /** The message's bytes. Values: numbers, bigints, decimal strings or Longs for uint64; Uint8Array for bytes. */
  encode(message: object): Uint8Array {
    const record = message as Record<string, unknown>;
    return this.#write(record, new Uint8Array(this.#length(record)));
  }

  /**
   * The message's bytes in memory the next encode of any codec reuses: for bytes that are copied at once (a frame
   * handed to a connection's send), so that a small message costs no memory of its own, which on Deno is about a
   * microsecond. A large message gets its own array, so the shared one stays small.
   */
  encodeTransient(message: object): Uint8Array {
    const record = message as Record<string, unknown>;
    const length = this.#length(record);
    if (length > MAX_SCRATCH_BYTES) return this.#write(record, new Uint8Array(length));
    if (length > scratch.length) scratch = new Uint8Array(MAX_SCRATCH_BYTES);
    return this.#write(record, scratch.subarray(0, length));
  }

  #length(message: Record<string, unknown>): number {
    lengths.length = 0;
    return this.#code.length(message);
  }

  #write(message: Record<string, unknown>, target: Uint8Array): Uint8Array {
    encoder.bytes = target;
    encoder.pos = 0;
    encoder.nested = 0;
    try {
      this.#code.write(encoder, message);
    } finally {
      encoder.bytes = EMPTY_BYTES;
    }
    return target;
  }

  /**
   * The message in `bytes` (bytes fields are views into it). Throws a RangeError when the bytes do not parse, and
   * an {@linkcode InvalidStringError} (after decoding the rest) when a string is not valid UTF-8.
   */
  decode(bytes: Uint8Array): Record<string, unknown> {
    decoder.bytes = bytes;
    decoder.pos = 0;
    decoder.bad = undefined;
    decoder.names.length = 0;
    let message: Record<string, unknown>;
    try {
      message = this.#code.read(decoder, bytes.length);
    } finally {
      decoder.bytes = EMPTY_BYTES; // not kept: the caller's buffer is reused
    }
    const bad = decoder.bad as BadString | undefined; // set by the read
    if (bad !== undefined) throw new InvalidStringError(message, bad.field, bad.lossy, { cause: bad.cause });
    return message;
  }
}
