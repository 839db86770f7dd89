/**
 * A proto3 codec for the registry's frames, built once from protobufjs's reflection of proto/registry.proto (the
 * one source of the schema) and written for the request path: no Long objects (64-bit values decode to numbers,
 * or bigints past 2^53), no Reader or Writer per message, small frames encoded into reused memory, and strict
 * UTF-8 in both directions.
 *
 * The wire primitives (varints, lengths, strict UTF-8) are in `_proto_wire.ts`, with the byte layout.
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
import {
  type BadString,
  Decoder,
  EMPTY_BYTES,
  Encoder,
  lengths,
  long64Length,
  utf8Length,
  varintLength,
} from "./_proto_wire.ts";

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

// On the prototype of decoded messages: only those may inherit a default, so only they need an own-key check.
const DECODED = Symbol("decoded");
const EMPTY_LIST: readonly unknown[] = Object.freeze([]);

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

/** The default's name in generated code: the encoder skips a default the message only inherits. */
function defaultLiteral(field: CompiledField): string {
  const value = defaultOf(field);
  return value === EMPTY_LIST ? "EMPTY_LIST" : value === EMPTY_BYTES ? "EMPTY_BYTES" : JSON.stringify(value);
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
      return `s = utf8Length(v); lengths.push(s); n += ${t} + varintLength(s) + s;`;
    case "bytes":
      return `n += ${t} + varintLength(v.length) + v.length;`;
    case "message":
      // Measured once: the write pass takes it from `lengths`, in the same order (a string's too).
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
      return `${tag}e.varint(lengths[e.next++]); code[${field.message}].write(e, v);`;
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
    encoder.next = 0;
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
