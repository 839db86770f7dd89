/**
 * The canonical proto3 JSON mapping (protobuf.dev, "ProtoJSON format") for messages described by protobufjs
 * reflection: what the HTTP gateway speaks as `application/json`. protobufjs's own `toObject`/`fromObject` are not
 * that mapping (64-bit values as Long, no well-known types, enums by number), so this file walks `type.fieldsArray`
 * itself and uses protobufjs only for field metadata and to create messages.
 *
 * | proto3                         | JSON written                          | JSON read besides               |
 * |--------------------------------|---------------------------------------|---------------------------------|
 * | message                        | object; lowerCamelCase or `json_name` | the .proto name; `null`: unset  |
 * | int32, uint32, (s)(fixed)32    | number                                | decimal string, `1e3` if whole  |
 * | int64, uint64, (s)(fixed)64    | decimal string                        | number (up to 2^53), `1e3`      |
 * | float, double                  | number, `"NaN"`, `"Infinity"`, `"-Infinity"` | numeric string           |
 * | bool, string                   | `true`/`false`, string                |                                 |
 * | bytes                          | standard base64, padded               | URL-safe, padding optional      |
 * | enum                           | name; a number it does not name as is | number                          |
 * | repeated, map                  | array; object with string keys        | `null`: empty                   |
 * | Timestamp                      | RFC 3339 UTC, 0/3/6/9 fraction digits | offsets, 1 to 9 digits          |
 * | Duration                       | `"-1.500s"`, 0/3/6/9 fraction digits  | 1 to 9 digits                   |
 * | FieldMask                      | camelCase paths joined by `,`         |                                 |
 * | Struct, Value, ListValue       | the JSON itself (NullValue: `null`)   |                                 |
 * | wrappers (`Int64Value`, ...)   | the wrapped value as above            |                                 |
 * | Any                            | `{"@type": url, ...fields}`; a well-known type under `"value"` |        |
 *
 * Fields of implicit presence (plain proto3 scalars and enums) are left out when they hold their zero value;
 * `optional` fields and oneof members are written whenever they are set. Messages read from JSON have the shape
 * `rpc/_proto3_defaults.ts` gives decoded messages: 64-bit values as bigint, bytes as Uint8Array, and own
 * properties only for fields the JSON set.
 *
 * @module
 */

import protobuf from "protobufjs";
import { prepareType } from "../_proto3_defaults.ts";
import { RpcCode, RpcError } from "../rpc_error.ts";

/**
 * A value `JSON.stringify` writes as it is and `JSON.parse` gives back: what {@linkcode messageToJson} returns.
 *
 * @example
 * ```ts
 * import type { JsonValue } from "./json_mapping.ts";
 *
 * const body: JsonValue = { name: "ZHd0", ids: ["9007199254740993"], active: true };
 * ```
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * Options of {@linkcode messageFromJson}.
 *
 * @example
 * ```ts
 * import type { MessageFromJsonOptions } from "./json_mapping.ts";
 *
 * // A gateway that lets newer clients send fields this server does not know yet.
 * const lenient: MessageFromJsonOptions = { ignoreUnknownFields: true };
 * ```
 */
export interface MessageFromJsonOptions {
  /**
   * Skip object keys that name no field, and enum names the enum does not have (the field stays unset, a list or
   * map loses that element), instead of failing.
   * @default {false}
   */
  ignoreUnknownFields?: boolean;
  /**
   * How deep messages (and Struct values) may nest before the JSON is refused; it bounds the recursion a hostile
   * body can cause. protobuf's own parsers use 100.
   * @default {100}
   */
  maxDepth?: number;
}

/**
 * The canonical JSON of `message`, a message of `type` (a protobufjs message, decoded or created, or a plain object
 * with its fields), ready for `JSON.stringify`. 64-bit values may be bigint, Long, number or decimal string.
 * Throws an {@linkcode RpcError} `INTERNAL` naming the field when a value has no JSON form: a Timestamp or
 * Duration out of range, an Any whose type is not in `type`'s Root or whose bytes do not decode, a Value with no
 * kind or a non-finite number, a FieldMask path that would not survive the trip, a value of the wrong JS type.
 *
 * A `-0` float or double in a plain proto3 field counts as its zero value and is left out (the mapping deems `-0`
 * equal to `0`); where it is written (`optional`, oneof, lists) it stays the number `-0`, which `JSON.stringify`
 * writes as `0`.
 *
 * @example
 * ```ts
 * import { parseProto } from "../service_definition.ts";
 * import { messageToJson } from "./json_mapping.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo;
 *   import "google/protobuf/timestamp.proto";
 *   enum Kind { KIND_UNSPECIFIED = 0; ADMIN = 1; }
 *   message User { int64 user_id = 1; bytes avatar = 2; Kind kind = 3; google.protobuf.Timestamp seen = 4; }`);
 * const User = root.lookupType("demo.User");
 * const seen = root.lookupType("google.protobuf.Timestamp").create({ seconds: 0n, nanos: 5_000_000 });
 * const user = User.create({ userId: 9007199254740993n, avatar: new Uint8Array([251, 255]), kind: 1, seen });
 * assert.equal(
 *   JSON.stringify(messageToJson(User, user)),
 *   '{"userId":"9007199254740993","avatar":"+/8=","kind":"ADMIN","seen":"1970-01-01T00:00:00.005Z"}',
 * );
 * ```
 */
export function messageToJson(type: protobuf.Type, message: unknown): JsonValue {
  const writer = new JsonWriter(type);
  return writer.message(type, message);
}

/**
 * A message of `type` from its canonical JSON (a value `JSON.parse` gave). Both the JSON name and the .proto name
 * of a field are accepted; `null` means a field's default. The message has the shape of one decoded by
 * `rpc/_proto3_defaults.ts` (64-bit values as bigint). Throws an {@linkcode RpcError} `INVALID_ARGUMENT` whose
 * message names the field path, says what was expected and what came (`'items[2].count' must be an int32 in
 * [-2147483648, 2147483647]: current value is 3000000000`); a type URL of an Any that names no message in `type`'s
 * Root is such an error too.
 *
 * @example
 * ```ts
 * import { parseProto } from "../service_definition.ts";
 * import { messageFromJson } from "./json_mapping.ts";
 * import { RpcCode, RpcError } from "../rpc_error.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo;
 *   message Order { int64 total_cents = 1; repeated uint32 item_ids = 2; }`);
 * const Order = root.lookupType("demo.Order");
 * const order = messageFromJson(Order, { total_cents: "1250", itemIds: [7, "8"] }) as unknown as {
 *   totalCents: bigint;
 *   itemIds: number[];
 * };
 * assert.equal(order.totalCents, 1250n);
 * assert.deepEqual(order.itemIds, [7, 8]);
 * assert.throws(
 *   () => messageFromJson(Order, { itemIds: [1, -1] }),
 *   (error) => error instanceof RpcError && error.code === RpcCode.INVALID_ARGUMENT,
 * );
 * ```
 */
export function messageFromJson(
  type: protobuf.Type,
  json: unknown,
  options: MessageFromJsonOptions = {},
): protobuf.Message {
  prepareType(type); // the same prototype defaults as a decoded message
  const reader = new JsonReader(type, options);
  if (json === null && wellKnownOf(type) !== "Value") {
    throw reader.fail(`must be a JSON object for ${typeName(type)}`, json);
  }
  return reader.message(type, json);
}

// ---------------------------------------------------------------------------------------------------------------
// Field plans: what the walk needs to know of a type, worked out once per type.

type Scalar = "double" | "float" | "int32" | "uint32" | "int64" | "uint64" | "bool" | "string" | "bytes";

const SCALARS: Readonly<Record<string, Scalar>> = {
  double: "double",
  float: "float",
  int32: "int32",
  sint32: "int32",
  sfixed32: "int32",
  uint32: "uint32",
  fixed32: "uint32",
  int64: "int64",
  sint64: "int64",
  sfixed64: "int64",
  uint64: "uint64",
  fixed64: "uint64",
  bool: "bool",
  string: "string",
  bytes: "bytes",
};

type WellKnown =
  | "Any"
  | "Timestamp"
  | "Duration"
  | "FieldMask"
  | "Struct"
  | "Value"
  | "ListValue"
  | "Empty"
  | "Wrapper";

const WELL_KNOWN: ReadonlyMap<string, WellKnown> = new Map([
  [".google.protobuf.Any", "Any"],
  [".google.protobuf.Timestamp", "Timestamp"],
  [".google.protobuf.Duration", "Duration"],
  [".google.protobuf.FieldMask", "FieldMask"],
  [".google.protobuf.Struct", "Struct"],
  [".google.protobuf.Value", "Value"],
  [".google.protobuf.ListValue", "ListValue"],
  [".google.protobuf.Empty", "Empty"],
  [".google.protobuf.DoubleValue", "Wrapper"],
  [".google.protobuf.FloatValue", "Wrapper"],
  [".google.protobuf.Int64Value", "Wrapper"],
  [".google.protobuf.UInt64Value", "Wrapper"],
  [".google.protobuf.Int32Value", "Wrapper"],
  [".google.protobuf.UInt32Value", "Wrapper"],
  [".google.protobuf.BoolValue", "Wrapper"],
  [".google.protobuf.StringValue", "Wrapper"],
  [".google.protobuf.BytesValue", "Wrapper"],
]);

interface FieldPlan {
  readonly field: protobuf.Field;
  /** The property on a message object (protobufjs's field name). */
  readonly name: string;
  readonly jsonName: string;
  /** The element's scalar kind; undefined for enums and messages. */
  readonly scalar: Scalar | undefined;
  readonly enumType: protobuf.Enum | undefined;
  readonly messageType: protobuf.Type | undefined;
  readonly repeated: boolean;
  readonly map: boolean;
  /** A map's key kind. */
  readonly keyScalar: Scalar | undefined;
  /** Written whenever set (oneof member, `optional`, proto2), not only when it differs from zero. */
  readonly explicitPresence: boolean;
  /** The oneof (not the synthetic one of a proto3 `optional`) the field belongs to. */
  readonly oneof: string | undefined;
  /** JSON `null` is a value of the field (google.protobuf.Value, NullValue), not "unset". */
  readonly takesNull: boolean;
  /** Every key that names the field in JSON (filled in with the type's plan). */
  readonly keys: string[];
}

interface TypePlan {
  readonly fields: readonly FieldPlan[];
  /** Every key a JSON object may use for a field: its JSON name, its protobufjs name, its .proto name. */
  readonly byKey: ReadonlyMap<string, FieldPlan>;
  readonly wellKnown: WellKnown | undefined;
}

const plans = new WeakMap<protobuf.Type, TypePlan>();

function planOf(type: protobuf.Type): TypePlan {
  let plan = plans.get(type);
  if (plan !== undefined) return plan;
  type.resolveAll();
  const fields = type.fieldsArray.map(fieldPlan);
  const byKey = new Map<string, FieldPlan>();
  for (const field of fields) byKey.set(field.jsonName, field);
  for (const field of fields) if (!byKey.has(field.name)) byKey.set(field.name, field);
  // A Root parsed with keepCase: false (as parseProto does) has `fooBar` for the .proto's `foo_bar`: accept the
  // snake_case spelling too, which is the .proto name whenever protobufjs camel-cased it.
  for (const field of fields) {
    const snake = field.name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
    if (!byKey.has(snake)) byKey.set(snake, field);
  }
  for (const [key, field] of byKey) field.keys.push(key);
  plan = { fields, byKey, wellKnown: WELL_KNOWN.get(type.fullName) };
  plans.set(type, plan);
  return plan;
}

function fieldPlan(field: protobuf.Field): FieldPlan {
  field.resolve();
  const resolved = field.resolvedType;
  const messageType = resolved instanceof protobuf.Type ? resolved : undefined;
  const enumType = resolved instanceof protobuf.Enum ? resolved : undefined;
  const keyType = (field as protobuf.Field & { keyType?: string }).keyType;
  const jsonOption = field.options?.["json_name"];
  const oneof = field.partOf !== null && field.options?.["proto3_optional"] !== true ? field.partOf.name : undefined;
  return {
    field,
    name: field.name,
    jsonName: typeof jsonOption === "string" ? jsonOption : jsonNameOf(field.name),
    scalar: resolved === null ? SCALARS[field.type] : undefined,
    enumType,
    messageType,
    repeated: field.repeated,
    map: field.map,
    keyScalar: keyType === undefined ? undefined : SCALARS[keyType],
    explicitPresence: !field.repeated && !field.map && Boolean(field.hasPresence) && messageType === undefined,
    oneof,
    takesNull: messageType?.fullName === ".google.protobuf.Value" ||
      enumType?.fullName === ".google.protobuf.NullValue",
    keys: [],
  };
}

/** protoc's json_name: underscores dropped, the letter after one upper-cased. */
function jsonNameOf(name: string): string {
  let out = "";
  let upper = false;
  for (const char of name) {
    if (char === "_") upper = true;
    else {
      out += upper ? char.toUpperCase() : char;
      upper = false;
    }
  }
  return out;
}

/** A well-known type's field by number (its protobufjs name differs with how the Root was built). */
function fieldNamed(type: protobuf.Type, id: number): string {
  const field = type.fieldsById[id];
  if (field === undefined) throw new TypeError(`${typeName(type)} has no field number ${id}`);
  return field.name;
}

function wellKnownOf(type: protobuf.Type): WellKnown | undefined {
  return planOf(type).wellKnown; // protobufjs builds fullName anew on every read
}

function typeName(type: protobuf.ReflectionObject): string {
  return type.fullName.startsWith(".") ? type.fullName.slice(1) : type.fullName;
}

const enumNames = new WeakMap<protobuf.Enum, ReadonlyMap<number, string>>();

/** The name JSON uses for each number of an enum: the first declared (of aliases, too). */
function namesOf(enumType: protobuf.Enum): ReadonlyMap<number, string> {
  let names = enumNames.get(enumType);
  if (names === undefined) {
    const map = new Map<number, string>();
    for (const [name, number] of Object.entries(enumType.values)) if (!map.has(number)) map.set(number, name);
    names = map;
    enumNames.set(enumType, names);
  }
  return names;
}

// ---------------------------------------------------------------------------------------------------------------
// Shared by both directions.

const DEFAULT_MAX_DEPTH = 100;
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const UINT32_MAX = 4294967295;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the Timestamp range.
const TIMESTAMP_MIN_SECONDS = -62135596800;
const TIMESTAMP_MAX_SECONDS = 253402300799;
// About 10,000 years, the Duration range.
const DURATION_MAX_SECONDS = 315576000000;
const NANOS_MAX = 999_999_999;

const SEGMENT_LIMIT = 64;

/** A field path as a reader of the JSON sees it: `items[2].labels["a"].count`. */
class FieldPath {
  readonly #segments: string[] = [];

  pushKey(key: string): void {
    this.#segments.push(key.length > SEGMENT_LIMIT ? `${key.slice(0, SEGMENT_LIMIT)}…` : key);
  }

  pushIndex(index: number): void {
    this.#segments.push(`[${index}]`);
  }

  pushMapKey(key: string): void {
    this.#segments.push(`[${JSON.stringify(key.length > SEGMENT_LIMIT ? `${key.slice(0, SEGMENT_LIMIT)}…` : key)}]`);
  }

  pop(): void {
    this.#segments.pop();
  }

  toString(): string {
    let out = "";
    for (const segment of this.#segments) out += segment.startsWith("[") || out === "" ? segment : `.${segment}`;
    // A path 100 levels deep says enough in its last few.
    return out.length > 240 ? `…${out.slice(-240)}` : out;
  }
}

/** A short rendering of a value for an error message. */
function show(value: unknown): string {
  let text: string;
  if (typeof value === "bigint") text = `${value}`;
  else if (typeof value === "number") text = Object.is(value, -0) ? "-0" : String(value);
  else if (value === undefined) text = "undefined";
  else if (value instanceof Uint8Array) text = `${value.length} bytes`;
  else {
    try {
      text = JSON.stringify(value, (_key, item) => typeof item === "bigint" ? `${item}` : item) ?? String(value);
    } catch {
      text = Object.prototype.toString.call(value);
    }
  }
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

/** An own property, safe for keys like `__proto__` that a plain assignment would treat specially. */
function define(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

interface LongLike {
  low: number;
  high: number;
}

function isLongLike(value: unknown): value is LongLike {
  return typeof value === "object" && value !== null && typeof (value as LongLike).low === "number" &&
    typeof (value as LongLike).high === "number";
}

/**
 * A 64-bit value, however protobufjs or a caller holds it (bigint, Long, number, decimal string), as a bigint in
 * range for `scalar`; undefined if it is none of those.
 */
function int64Of(value: unknown, scalar: "int64" | "uint64"): bigint | undefined {
  let big: bigint;
  if (typeof value === "bigint") big = value;
  else if (typeof value === "number") {
    if (!Number.isInteger(value)) return undefined;
    big = BigInt(value);
  } else if (typeof value === "string") {
    if (!/^-?(0|[1-9][0-9]*)$/.test(value)) return undefined;
    big = BigInt(value);
  } else if (isLongLike(value)) {
    // A Long's bits are the value's; read them with the field's signedness, whatever the Long's `unsigned` says.
    const bits = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
    return scalar === "uint64" ? bits : BigInt.asIntN(64, bits);
  } else return undefined;
  const [min, max] = scalar === "uint64" ? [0n, UINT64_MAX] : [INT64_MIN, INT64_MAX];
  return big < min || big > max ? undefined : big;
}

/** protobufjs keys a decoded map with 64-bit keys by an 8-character "hash" of the Long; others use decimal. */
function int64KeyOf(key: string, scalar: "int64" | "uint64"): bigint | undefined {
  // FIXME: a hash whose 8 characters are all ASCII digits (a key near 4e18 of that exact byte pattern) reads as
  // decimal; protobufjs gives nothing to tell the two apart.
  const decimal = int64Of(key, scalar);
  if (decimal !== undefined) return decimal;
  if (key.length !== 8) return undefined;
  let bits = 0n;
  for (let i = 7; i >= 0; i--) {
    const code = key.charCodeAt(i);
    if (code > 0xff) return undefined;
    bits = (bits << 8n) | BigInt(code);
  }
  return scalar === "uint64" ? bits : BigInt.asIntN(64, bits);
}

// ---------------------------------------------------------------------------------------------------------------
// Base64: written standard with padding; read standard or URL-safe, padded or not.

const BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_VALUES: Int8Array = (() => {
  const values = new Int8Array(128).fill(-1);
  for (let i = 0; i < 64; i++) values[BASE64_ALPHABET.charCodeAt(i)] = i;
  values["-".charCodeAt(0)] = 62;
  values["_".charCodeAt(0)] = 63;
  return values;
})();

function base64Encode(bytes: ArrayLike<number>): string {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += BASE64_ALPHABET[n >> 18]! + BASE64_ALPHABET[(n >> 12) & 63]! + BASE64_ALPHABET[(n >> 6) & 63]! +
      BASE64_ALPHABET[n & 63]!;
  }
  if (bytes.length - i === 1) {
    const n = bytes[i]! << 16;
    out += BASE64_ALPHABET[n >> 18]! + BASE64_ALPHABET[(n >> 12) & 63]! + "==";
  } else if (bytes.length - i === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += BASE64_ALPHABET[n >> 18]! + BASE64_ALPHABET[(n >> 12) & 63]! + BASE64_ALPHABET[(n >> 6) & 63]! + "=";
  }
  return out;
}

/** The bytes of base64 text, or undefined if it is not base64. */
function base64Decode(text: string): Uint8Array | undefined {
  let end = text.length;
  if (end > 0 && text.charCodeAt(end - 1) === 61 /* = */) {
    // Padding, if any, makes the text a whole number of quads and is one or two characters.
    if (end % 4 !== 0) return undefined;
    end--;
    if (text.charCodeAt(end - 1) === 61) end--;
  }
  if (end % 4 === 1) return undefined;
  const out = new Uint8Array(Math.floor((end * 3) / 4));
  let bits = 0;
  let count = 0;
  let at = 0;
  for (let i = 0; i < end; i++) {
    const code = text.charCodeAt(i);
    const value = code < 128 ? BASE64_VALUES[code]! : -1;
    if (value < 0) return undefined;
    bits = (bits << 6) | value;
    count += 6;
    if (count >= 8) {
      count -= 8;
      out[at++] = (bits >> count) & 0xff;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Numbers in JSON text: integers exactly (as bigint), with exponent forms like "1.5e3".

const JSON_NUMBER = /^-?(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$/;

/** The integer a JSON number's text denotes, "fraction" if it has one, or undefined if it is no number. */
function integerOfText(text: string): bigint | "fraction" | "huge" | undefined {
  const match = JSON_NUMBER.exec(text);
  if (match === null) return undefined;
  const negative = text.startsWith("-");
  const fraction = (match[2] ?? "").replace(/0+$/, "");
  let digits = (match[1]! + fraction).replace(/^0+/, "");
  if (digits === "") return 0n;
  const exponent = match[3] === undefined ? 0 : Number(match[3]);
  if (!Number.isSafeInteger(exponent)) return exponent > 0 ? "huge" : "fraction";
  let scale = exponent - fraction.length;
  if (scale < 0) {
    const zeros = digits.length - digits.replace(/0+$/, "").length;
    if (zeros < -scale) return "fraction";
    digits = digits.slice(0, digits.length + scale);
    scale = 0;
  }
  if (digits.length + scale > 40) return "huge"; // beyond any 64-bit value; no need to build it
  const magnitude = BigInt(digits) * 10n ** BigInt(scale);
  return negative ? -magnitude : magnitude;
}

/** The shortest decimal that reads back as the same float32 (as protoc's JSON writers print floats). */
function shortestFloat32(value: number): number {
  for (let precision = 1; precision < 10; precision++) {
    const candidate = Number(value.toPrecision(precision));
    if (Math.fround(candidate) === value) return candidate;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------------------
// Timestamps: days since 1970-01-01 to and from proleptic Gregorian dates (the classic era-based algorithm).

function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146097 + dayOfEra - 719468;
}

function civilFromDays(days: number): [number, number, number] {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const dayOfEra = z - era * 146097;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36524) - Math.floor(dayOfEra / 146096)) / 365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const shifted = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * shifted + 2) / 5) + 1;
  const month = shifted < 10 ? shifted + 3 : shifted - 9;
  return [yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day];
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** `an int32`, `a uint64`: a scalar's name with its article, for error messages. */
function named(scalar: Scalar): string {
  return `${scalar.startsWith("int") ? "an" : "a"} ${scalar}`;
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, "0");
}

/** 0, 3, 6 or 9 fraction digits, as few as the nanoseconds need, with the point. */
function nanosText(nanos: number): string {
  if (nanos === 0) return "";
  if (nanos % 1_000_000 === 0) return `.${pad(nanos / 1_000_000, 3)}`;
  if (nanos % 1_000 === 0) return `.${pad(nanos / 1_000, 6)}`;
  return `.${pad(nanos, 9)}`;
}

const TIMESTAMP_TEXT =
  /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})$/;
const DURATION_TEXT = /^(-)?([0-9]+)(?:\.([0-9]{1,9}))?s$/;

// ---------------------------------------------------------------------------------------------------------------
// Writing.

class JsonWriter {
  readonly #root: protobuf.Root;
  readonly #top: protobuf.Type;
  readonly #path = new FieldPath();
  #depth = 0;

  constructor(top: protobuf.Type) {
    this.#top = top;
    this.#root = top.root;
  }

  fail(expectation: string, value: unknown): RpcError {
    const path = this.#path.toString();
    const where = path === "" ? "the message" : `'${path}'`;
    return new RpcError(
      RpcCode.INTERNAL,
      `Cannot write ${typeName(this.#top)} as JSON: ${where} ${expectation}: current value is ${show(value)}`,
    );
  }

  message(type: protobuf.Type, message: unknown): JsonValue {
    if (!isObject(message)) throw this.fail(`must be a ${typeName(type)} message`, message);
    if (++this.#depth > DEFAULT_MAX_DEPTH) {
      throw this.fail(`nests messages deeper than ${DEFAULT_MAX_DEPTH} levels`, typeName(type));
    }
    const plan = planOf(type);
    const out = plan.wellKnown === undefined || plan.wellKnown === "Empty"
      ? this.#fields(plan, message)
      : this.#wellKnown(type, plan.wellKnown, message);
    this.#depth--;
    return out;
  }

  #fields(plan: TypePlan, message: Record<string, unknown>): JsonValue {
    const out: Record<string, JsonValue> = {};
    for (const field of plan.fields) {
      const value = message[field.name];
      if (value === undefined || value === null) continue;
      this.#path.pushKey(field.jsonName);
      if (field.map) {
        if (!isObject(value)) throw this.fail("must be an object (a map)", value);
        const keys = Object.keys(value);
        if (keys.length > 0) define(out, field.jsonName, this.#map(field, value, keys));
      } else if (field.repeated) {
        if (!Array.isArray(value)) throw this.fail("must be an array", value);
        if (value.length > 0) {
          const list: JsonValue[] = [];
          for (let i = 0; i < value.length; i++) {
            this.#path.pushIndex(i);
            list.push(this.#single(field, value[i]));
            this.#path.pop();
          }
          define(out, field.jsonName, list);
        }
      } else if (field.explicitPresence) {
        // A decoded message answers unset members from its prototype: only own properties are set.
        if (Object.hasOwn(message, field.name)) define(out, field.jsonName, this.#single(field, value));
      } else if (field.messageType !== undefined || !this.#isZero(field, value)) {
        define(out, field.jsonName, this.#single(field, value));
      }
      this.#path.pop();
    }
    return out;
  }

  #map(field: FieldPlan, map: Record<string, unknown>, keys: string[]): JsonValue {
    const out: Record<string, JsonValue> = {};
    for (const key of keys) {
      this.#path.pushMapKey(key);
      define(out, this.#mapKey(field.keyScalar!, key), this.#single(field, map[key]));
      this.#path.pop();
    }
    return out;
  }

  #mapKey(scalar: Scalar, key: string): string {
    switch (scalar) {
      case "string":
        return key;
      case "bool":
        if (key !== "true" && key !== "false") throw this.fail("must be a bool map key", key);
        return key;
      case "int64":
      case "uint64": {
        const value = int64KeyOf(key, scalar);
        if (value === undefined) throw this.fail(`must be ${named(scalar)} map key`, key);
        return `${value}`;
      }
      default: {
        const value = Number(key);
        const [min, max] = scalar === "uint32" ? [0, UINT32_MAX] : [INT32_MIN, INT32_MAX];
        if (!/^-?[0-9]+$/.test(key) || value < min || value > max) {
          throw this.fail(`must be ${named(scalar)} map key`, key);
        }
        return `${value === 0 ? 0 : value}`;
      }
    }
  }

  #isZero(field: FieldPlan, value: unknown): boolean {
    if (field.enumType !== undefined) return value === 0 || value === namesOf(field.enumType).get(0);
    switch (field.scalar) {
      case "int64":
      case "uint64":
        return int64Of(value, field.scalar) === 0n;
      case "bytes":
        return (value as ArrayLike<number>).length === 0;
      case "bool":
        return value === false;
      case "string":
        return value === "";
      default:
        return value === 0; // -0 too: the mapping deems -0 equal to 0
    }
  }

  #single(field: FieldPlan, value: unknown): JsonValue {
    if (field.messageType !== undefined) {
      // A map's message values may be absent from a plain object; they are empty messages on the wire.
      return this.message(field.messageType, value ?? {});
    }
    if (field.enumType !== undefined) return field.takesNull ? null : this.#enum(field.enumType, value);
    return this.scalar(field.scalar!, value);
  }

  #enum(enumType: protobuf.Enum, value: unknown): JsonValue {
    if (typeof value === "string" && Object.hasOwn(enumType.values, value)) return value;
    if (typeof value !== "number" || !Number.isInteger(value) || value < INT32_MIN || value > INT32_MAX) {
      throw this.fail(`must be a value of ${typeName(enumType)}`, value);
    }
    // An open enum keeps numbers it does not name; JSON writes those as numbers.
    return namesOf(enumType).get(value) ?? value;
  }

  scalar(scalar: Scalar, value: unknown): JsonValue {
    switch (scalar) {
      case "int64":
      case "uint64": {
        const big = int64Of(value, scalar);
        if (big === undefined) throw this.fail(`must be ${named(scalar)}`, value);
        return `${big}`;
      }
      case "int32":
      case "uint32": {
        const [min, max] = scalar === "uint32" ? [0, UINT32_MAX] : [INT32_MIN, INT32_MAX];
        if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
          throw this.fail(`must be ${named(scalar)} in [${min}, ${max}]`, value);
        }
        return value;
      }
      case "double":
      case "float":
        if (typeof value !== "number") throw this.fail(`must be ${named(scalar)}`, value);
        if (Number.isNaN(value)) return "NaN";
        if (value === Infinity) return "Infinity";
        if (value === -Infinity) return "-Infinity";
        return scalar === "float" ? shortestFloat32(Math.fround(value)) : value;
      case "bool":
        if (typeof value !== "boolean") throw this.fail("must be a bool", value);
        return value;
      case "string":
        if (typeof value !== "string") throw this.fail("must be a string", value);
        return value;
      case "bytes":
        // protobufjs answers an unset bytes field with [] from the prototype unless the type was prepared.
        if (!(value instanceof Uint8Array) && !Array.isArray(value)) throw this.fail("must be bytes", value);
        return base64Encode(value);
    }
  }

  #wellKnown(type: protobuf.Type, kind: WellKnown, message: Record<string, unknown>): JsonValue {
    switch (kind) {
      case "Timestamp":
        return this.#timestamp(type, message);
      case "Duration":
        return this.#duration(type, message);
      case "FieldMask": {
        const paths = message[fieldNamed(type, 1)] ?? [];
        if (!Array.isArray(paths)) throw this.fail("must have a list of paths", paths);
        return paths.map((path) => this.#camelPath(path)).join(",");
      }
      case "Struct":
        return this.#struct(type, message);
      case "ListValue": {
        const values = message[fieldNamed(type, 1)] ?? [];
        if (!Array.isArray(values)) throw this.fail("must have a list of values", values);
        const valueType = planOf(type).fields[0]!.messageType!;
        return values.map((value, i) => {
          this.#path.pushIndex(i);
          const json = this.message(valueType, value);
          this.#path.pop();
          return json;
        });
      }
      case "Value":
        return this.#value(type, message);
      case "Wrapper": {
        const field = planOf(type).fields[0]!;
        const value = message[field.name];
        // An unset value is the wrapped type's zero; a plain object may leave it out.
        return value === undefined || value === null
          ? this.scalar(field.scalar!, field.scalar === "bytes" ? [] : field.field.typeDefault)
          : this.scalar(field.scalar!, value);
      }
      case "Any":
        return this.#any(type, message);
      case "Empty":
        return {};
    }
  }

  #seconds(type: protobuf.Type, message: Record<string, unknown>): [number, number] {
    const seconds = int64Of(message[fieldNamed(type, 1)] ?? 0, "int64");
    const nanos = message[fieldNamed(type, 2)] ?? 0;
    if (seconds === undefined || typeof nanos !== "number" || !Number.isInteger(nanos)) {
      throw this.fail(`must be a ${typeName(type)} with int64 seconds and int32 nanos`, message);
    }
    // Both ranges are checked by the callers; a bigint far outside them is clamped to stay a safe number.
    const clamped = seconds > 2n ** 52n ? 2 ** 52 : seconds < -(2n ** 52n) ? -(2 ** 52) : Number(seconds);
    return [clamped, nanos];
  }

  #timestamp(type: protobuf.Type, message: Record<string, unknown>): string {
    const [seconds, nanos] = this.#seconds(type, message);
    if (seconds < TIMESTAMP_MIN_SECONDS || seconds > TIMESTAMP_MAX_SECONDS || nanos < 0 || nanos > NANOS_MAX) {
      throw this.fail(
        "must be a Timestamp from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z (nanos in [0, 999999999])",
        message,
      );
    }
    const days = Math.floor(seconds / 86400);
    const secondOfDay = seconds - days * 86400;
    const [year, month, day] = civilFromDays(days);
    const hour = Math.floor(secondOfDay / 3600);
    const minute = Math.floor((secondOfDay % 3600) / 60);
    return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(hour, 2)}:${pad(minute, 2)}:` +
      `${pad(secondOfDay % 60, 2)}${nanosText(nanos)}Z`;
  }

  #duration(type: protobuf.Type, message: Record<string, unknown>): string {
    const [seconds, nanos] = this.#seconds(type, message);
    if (
      Math.abs(seconds) > DURATION_MAX_SECONDS || Math.abs(nanos) > NANOS_MAX ||
      (seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0)
    ) {
      throw this.fail(
        "must be a Duration within ±315576000000 s, nanos in [-999999999, 999999999] of the seconds' sign",
        message,
      );
    }
    const sign = seconds < 0 || nanos < 0 ? "-" : "";
    return `${sign}${Math.abs(seconds)}${nanosText(Math.abs(nanos))}s`;
  }

  /** `foo_bar.baz` → `fooBar.baz`; a path that would not come back the same is refused. */
  #camelPath(path: unknown): string {
    if (typeof path !== "string" || /[A-Z]/.test(path) || /_(?![a-z])/.test(path)) {
      throw this.fail("must hold paths of lowercase snake_case names (so camelCase maps back to them)", path);
    }
    return path.replace(/_([a-z])/g, (_match, letter: string) => letter.toUpperCase());
  }

  #struct(type: protobuf.Type, message: Record<string, unknown>): JsonValue {
    const field = planOf(type).fields[0]!;
    const fields = message[field.name] ?? {};
    if (!isObject(fields)) throw this.fail("must have a map of fields", fields);
    const out: Record<string, JsonValue> = {};
    for (const key of Object.keys(fields)) {
      this.#path.pushMapKey(key);
      define(out, key, this.message(field.messageType!, fields[key]));
      this.#path.pop();
    }
    return out;
  }

  #value(type: protobuf.Type, message: Record<string, unknown>): JsonValue {
    const plan = planOf(type);
    for (const field of plan.fields) {
      const value = message[field.name];
      if (!Object.hasOwn(message, field.name) || value === undefined || value === null) continue;
      switch (field.field.id) {
        case 1:
          return null;
        case 2:
          if (typeof value !== "number" || !Number.isFinite(value)) {
            throw this.fail("must be a Value whose number is finite (JSON has no NaN or Infinity)", value);
          }
          return value;
        case 3:
        case 4:
          return this.scalar(field.scalar!, value);
        default:
          return this.message(field.messageType!, value);
      }
    }
    throw this.fail("must be a Value with one kind set (null, number, string, bool, struct or list)", message);
  }

  #any(type: protobuf.Type, message: Record<string, unknown>): JsonValue {
    const url = message[fieldNamed(type, 1)] ?? "";
    const bytes = message[fieldNamed(type, 2)] ?? [];
    if (typeof url !== "string") throw this.fail("must have a string type_url", url);
    if (!(bytes instanceof Uint8Array) && !Array.isArray(bytes)) throw this.fail("must have bytes as value", bytes);
    if (url === "" && bytes.length === 0) return {};
    const inner = resolveTypeUrl(this.#root, url);
    if (inner === undefined) {
      throw this.fail(`must be an Any whose type is in the Root of ${typeName(this.#top)}`, url);
    }
    let decoded: protobuf.Message;
    try {
      decoded = inner.decode(bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes));
    } catch (error) {
      throw this.fail(`must hold a valid ${typeName(inner)} (${(error as Error).message})`, bytes);
    }
    const json = this.message(inner, decoded);
    const kind = wellKnownOf(inner);
    if (kind !== undefined) return { "@type": url, value: json };
    return { "@type": url, ...(json as Record<string, JsonValue>) };
  }
}

/** The message type an Any's type URL names (the part after the last `/`), looked up in `root`. */
function resolveTypeUrl(root: protobuf.Root, url: string): protobuf.Type | undefined {
  const name = url.slice(url.lastIndexOf("/") + 1);
  if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(name)) return undefined;
  const found = root.lookup(`.${name}`);
  return found instanceof protobuf.Type ? found : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading.

/** What a reader gives for an element it drops (an unknown enum name under ignoreUnknownFields). */
const SKIP: unique symbol = Symbol("skip");

class JsonReader {
  readonly #root: protobuf.Root;
  readonly #top: protobuf.Type;
  readonly #ignoreUnknown: boolean;
  readonly #maxDepth: number;
  readonly #path = new FieldPath();
  #depth = 0;

  constructor(top: protobuf.Type, options: MessageFromJsonOptions) {
    this.#top = top;
    this.#root = top.root;
    this.#ignoreUnknown = options.ignoreUnknownFields ?? false;
    this.#maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  }

  fail(expectation: string, value: unknown): RpcError {
    const path = this.#path.toString();
    const where = path === "" ? "the value" : `'${path}'`;
    return new RpcError(
      RpcCode.INVALID_ARGUMENT,
      `Cannot read JSON as ${typeName(this.#top)}: ${where} ${expectation}: current value is ${show(value)}`,
    );
  }

  message(type: protobuf.Type, json: unknown): protobuf.Message {
    if (++this.#depth > this.#maxDepth) {
      throw this.fail(`nests messages deeper than ${this.#maxDepth} levels`, typeName(type));
    }
    const plan = planOf(type);
    const message = plan.wellKnown === undefined || plan.wellKnown === "Empty"
      ? this.#fields(type, plan, json)
      : this.#wellKnown(type, plan.wellKnown, json);
    this.#depth--;
    return message;
  }

  #fields(type: protobuf.Type, plan: TypePlan, json: unknown, skipKey?: string): protobuf.Message {
    if (!isObject(json)) throw this.fail(`must be a JSON object for ${typeName(type)}`, json);
    const message = type.create() as unknown as Record<string, unknown>;
    let oneofs: Map<string, string> | undefined;
    for (const key of Object.keys(json)) {
      if (key === skipKey) continue;
      const field = plan.byKey.get(key);
      this.#path.pushKey(key);
      if (field === undefined) {
        if (!this.#ignoreUnknown) throw this.fail(`is not a field of ${typeName(type)}`, json[key]);
        this.#path.pop();
        continue;
      }
      if (key !== field.jsonName) {
        // Object keys are unique, so a field is named twice only if one of the names is an alias.
        for (const other of field.keys) {
          if (other !== key && Object.hasOwn(json, other)) {
            throw this.fail(`names the same field as '${other}'`, json[key]);
          }
        }
      }
      const value = json[key];
      if (value === null && !field.takesNull) {
        this.#path.pop(); // null is the default: leave the field unset
        continue;
      }
      if (field.map) {
        if (!isObject(value)) throw this.fail("must be a JSON object (a map)", value);
        message[field.name] = this.#map(field, value);
      } else if (field.repeated) {
        if (!Array.isArray(value)) throw this.fail("must be a JSON array", value);
        const list: unknown[] = [];
        for (let i = 0; i < value.length; i++) {
          this.#path.pushIndex(i);
          const item = this.#single(field, value[i]);
          if (item !== SKIP) list.push(item);
          this.#path.pop();
        }
        message[field.name] = list;
      } else {
        const item = this.#single(field, value);
        if (item !== SKIP) {
          if (field.oneof !== undefined) {
            oneofs ??= new Map();
            const other = oneofs.get(field.oneof);
            if (other !== undefined) {
              throw this.fail(`is a member of oneof '${field.oneof}', which '${other}' already set`, value);
            }
            oneofs.set(field.oneof, key);
          }
          // Implicit-presence fields stay unset at zero, as a decoder leaves them, so they are not encoded.
          if (field.explicitPresence || field.messageType !== undefined || !isZeroValue(item)) {
            message[field.name] = item;
          }
        }
      }
      this.#path.pop();
    }
    return message as unknown as protobuf.Message;
  }

  #map(field: FieldPlan, json: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(json)) {
      this.#path.pushMapKey(key);
      const mapKey = this.#mapKey(field.keyScalar!, key);
      const value = json[key];
      if (value === null && !field.takesNull) throw this.fail("must not be null (a map value)", value);
      const item = this.#single(field, value);
      if (item !== SKIP) define(out, mapKey, item);
      this.#path.pop();
    }
    return out;
  }

  /** A map key as protobufjs keys maps: the key's decimal text, `true`/`false`, or the string. */
  #mapKey(scalar: Scalar, key: string): string {
    switch (scalar) {
      case "string":
        return key;
      case "bool":
        if (key !== "true" && key !== "false") throw this.fail('must be a bool map key ("true" or "false")', key);
        return key;
      default: {
        const limits = INTEGER_LIMITS[scalar as IntegerScalar];
        const value = /^-?(0|[1-9][0-9]*)$/.test(key) ? BigInt(key) : undefined;
        if (value === undefined || value < limits.min || value > limits.max) {
          throw this.fail(`must be ${named(scalar)} map key in [${limits.min}, ${limits.max}]`, key);
        }
        return `${value}`;
      }
    }
  }

  #single(field: FieldPlan, json: unknown): unknown {
    if (json === null && !field.takesNull) throw this.fail("must not be null (a list or map element)", json);
    if (field.messageType !== undefined) return this.message(field.messageType, json);
    if (field.enumType !== undefined) return field.takesNull && json === null ? 0 : this.#enum(field.enumType, json);
    return this.scalar(field.scalar!, json);
  }

  #enum(enumType: protobuf.Enum, json: unknown): number | typeof SKIP {
    if (typeof json === "string") {
      if (Object.hasOwn(enumType.values, json)) return enumType.values[json]!;
      if (this.#ignoreUnknown) return SKIP;
      throw this.fail(`must be a value of ${typeName(enumType)}`, json);
    }
    if (typeof json === "number" && Number.isInteger(json) && json >= INT32_MIN && json <= INT32_MAX) {
      return json === 0 ? 0 : json;
    }
    throw this.fail(`must be a name or an int32 number of ${typeName(enumType)}`, json);
  }

  scalar(scalar: Scalar, json: unknown): unknown {
    switch (scalar) {
      case "int32":
      case "uint32":
      case "int64":
      case "uint64":
        return this.#integer(scalar, json);
      case "double":
      case "float":
        return this.#float(scalar, json);
      case "bool":
        if (typeof json !== "boolean") throw this.fail("must be true or false", json);
        return json;
      case "string":
        if (typeof json !== "string") throw this.fail("must be a string", json);
        // A lone surrogate has no UTF-8 form; the binary encoding would carry garbage.
        if (!json.isWellFormed()) throw this.fail("must be a string of whole Unicode characters", json);
        return json;
      case "bytes": {
        if (typeof json !== "string") throw this.fail("must be a base64 string", json);
        const bytes = base64Decode(json);
        if (bytes === undefined) throw this.fail("must be base64 (standard or URL-safe, padding optional)", json);
        return bytes;
      }
    }
  }

  #integer(scalar: IntegerScalar, json: unknown): number | bigint {
    const limits = INTEGER_LIMITS[scalar];
    const wide = scalar === "int64" || scalar === "uint64";
    const fail = (why = "") => this.fail(`must be ${named(scalar)} in [${limits.min}, ${limits.max}]${why}`, json);
    if (typeof json === "number") {
      if (!Number.isInteger(json)) throw fail(" (an integer)");
      if (!wide) {
        if (json < limits.minNumber || json > limits.maxNumber) throw fail();
        return json === 0 ? 0 : json; // not -0
      }
      if (!Number.isSafeInteger(json)) throw fail(", sent as a string beyond ±2^53 (a JSON number loses precision)");
      const value = BigInt(json);
      if (value < limits.min) throw fail();
      return value;
    }
    if (typeof json !== "string") throw fail(" (as a number or decimal string)");
    // Plain decimal text, the form nearly every client sends, skips the exponent and fraction arithmetic.
    const parsed = PLAIN_INTEGER.test(json) ? BigInt(json) : integerOfText(json);
    if (parsed === undefined) throw fail(" (as a number or decimal string)");
    if (parsed === "fraction") throw fail(" (an integer)");
    if (parsed === "huge" || parsed < limits.min || parsed > limits.max) throw fail();
    return wide ? parsed : Number(parsed);
  }

  #float(scalar: "double" | "float", json: unknown): number {
    let value: number;
    if (typeof json === "number") value = json;
    else if (json === "NaN") return NaN;
    else if (json === "Infinity") return Infinity;
    else if (json === "-Infinity") return -Infinity;
    else if (typeof json === "string" && JSON_NUMBER.test(json)) value = Number(json);
    else {throw this.fail(
        `must be ${named(scalar)} (a number, a numeric string, "NaN", "Infinity" or "-Infinity")`,
        json,
      );}
    // A finite JSON number too large for the type is an error, not Infinity.
    if (!Number.isFinite(value) || (scalar === "float" && !Number.isFinite(Math.fround(value)))) {
      throw this.fail(`must be ${named(scalar)} in range (infinities are written "Infinity" and "-Infinity")`, json);
    }
    return scalar === "float" ? Math.fround(value) : value;
  }

  #wellKnown(type: protobuf.Type, kind: WellKnown, json: unknown): protobuf.Message {
    const message = type.create() as unknown as Record<string, unknown>;
    switch (kind) {
      case "Timestamp":
      case "Duration": {
        const [seconds, nanos] = kind === "Timestamp" ? this.#timestamp(json) : this.#duration(json);
        if (seconds !== 0) message[fieldNamed(type, 1)] = BigInt(seconds);
        if (nanos !== 0) message[fieldNamed(type, 2)] = nanos;
        break;
      }
      case "FieldMask":
        if (typeof json !== "string") throw this.fail("must be a string of camelCase paths joined by ','", json);
        message[fieldNamed(type, 1)] = json === "" ? [] : json.split(",").map((path) => this.#snakePath(path));
        break;
      case "Struct": {
        if (!isObject(json)) throw this.fail("must be a JSON object (a Struct)", json);
        const valueType = planOf(type).fields[0]!.messageType!;
        const fields: Record<string, unknown> = {};
        for (const key of Object.keys(json)) {
          this.#path.pushMapKey(key);
          define(fields, key, this.message(valueType, json[key]));
          this.#path.pop();
        }
        message[fieldNamed(type, 1)] = fields;
        break;
      }
      case "ListValue": {
        if (!Array.isArray(json)) throw this.fail("must be a JSON array (a ListValue)", json);
        const valueType = planOf(type).fields[0]!.messageType!;
        message[fieldNamed(type, 1)] = json.map((item, i) => {
          this.#path.pushIndex(i);
          const value = this.message(valueType, item);
          this.#path.pop();
          return value;
        });
        break;
      }
      case "Value":
        this.#value(type, json, message);
        break;
      case "Wrapper": {
        const field = planOf(type).fields[0]!;
        const value = this.scalar(field.scalar!, json);
        if (!isZeroValue(value)) message[field.name] = value;
        break;
      }
      case "Any":
        this.#any(type, json, message);
        break;
      case "Empty":
        break; // handled as a plain message
    }
    return message as unknown as protobuf.Message;
  }

  #timestamp(json: unknown): [number, number] {
    const expected = "must be an RFC 3339 time such as 1972-01-01T10:00:20.021Z, from year 0001 to 9999";
    const match = typeof json === "string" ? TIMESTAMP_TEXT.exec(json) : null;
    if (match === null) throw this.fail(expected, json);
    const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    if (
      year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 ||
      minute > 59 || second > 59
    ) {
      throw this.fail(expected, json);
    }
    let offset = 0;
    const zone = match[8]!;
    if (zone !== "Z") {
      const zoneHours = Number(zone.slice(1, 3));
      const zoneMinutes = Number(zone.slice(4, 6));
      if (zoneHours > 23 || zoneMinutes > 59) throw this.fail(expected, json);
      offset = (zone.startsWith("-") ? -1 : 1) * (zoneHours * 3600 + zoneMinutes * 60);
    }
    const seconds = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset;
    if (seconds < TIMESTAMP_MIN_SECONDS || seconds > TIMESTAMP_MAX_SECONDS) throw this.fail(expected, json);
    return [seconds, Number((match[7] ?? "").padEnd(9, "0"))];
  }

  #duration(json: unknown): [number, number] {
    const expected = 'must be a duration in seconds such as "1.5s" or "-0.001s", within ±315576000000s';
    const match = typeof json === "string" ? DURATION_TEXT.exec(json) : null;
    if (match === null || match[2]!.length > 12) throw this.fail(expected, json);
    const sign = match[1] === undefined ? 1 : -1;
    const seconds = Number(match[2]);
    const nanos = Number((match[3] ?? "").padEnd(9, "0"));
    if (seconds > DURATION_MAX_SECONDS) throw this.fail(expected, json);
    return [seconds === 0 ? 0 : sign * seconds, nanos === 0 ? 0 : sign * nanos];
  }

  /** `fooBar.baz` → `foo_bar.baz`; an underscore in JSON would not come back the same and is refused. */
  #snakePath(path: string): string {
    if (!/^[A-Za-z0-9.]+$/.test(path)) {
      throw this.fail("must hold camelCase paths (letters, digits and dots, no '_') joined by ','", path);
    }
    return path.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
  }

  #value(type: protobuf.Type, json: unknown, message: Record<string, unknown>): void {
    if (json === null) message[fieldNamed(type, 1)] = 0;
    else if (typeof json === "number") {
      if (!Number.isFinite(json)) throw this.fail("must be a finite number (a Value)", json);
      message[fieldNamed(type, 2)] = json;
    } else if (typeof json === "string") message[fieldNamed(type, 3)] = this.scalar("string", json);
    else if (typeof json === "boolean") message[fieldNamed(type, 4)] = json;
    else if (Array.isArray(json)) {
      message[fieldNamed(type, 6)] = this.message(type.fieldsById[6]!.resolvedType as protobuf.Type, json);
    } else if (isObject(json)) {
      message[fieldNamed(type, 5)] = this.message(type.fieldsById[5]!.resolvedType as protobuf.Type, json);
    } else throw this.fail("must be JSON (null, a number, a string, a bool, an object or an array)", json);
  }

  #any(type: protobuf.Type, json: unknown, message: Record<string, unknown>): void {
    if (!isObject(json)) throw this.fail('must be a JSON object with "@type" (an Any)', json);
    const url = json["@type"];
    if (url === undefined && Object.keys(json).length === 0) return; // the empty Any
    this.#path.pushKey("@type");
    if (typeof url !== "string") throw this.fail("must be a type URL string", url);
    const inner = resolveTypeUrl(this.#root, url);
    if (inner === undefined) {
      throw this.fail(`must name a message type known to the schema of ${typeName(this.#top)}`, url);
    }
    this.#path.pop();
    let value: protobuf.Message;
    const kind = wellKnownOf(inner);
    if (kind !== undefined && !(kind === "Empty" && !Object.hasOwn(json, "value"))) {
      // A well-known type has its own JSON, which cannot hold "@type": it comes under "value".
      for (const key of Object.keys(json)) {
        if (key !== "@type" && key !== "value" && !this.#ignoreUnknown) {
          this.#path.pushKey(key);
          throw this.fail(`is not allowed beside "@type" and "value" in an Any of ${typeName(inner)}`, json[key]);
        }
      }
      if (!Object.hasOwn(json, "value")) {
        throw this.fail(`must have "value" (the JSON of its ${typeName(inner)})`, json);
      }
      this.#path.pushKey("value");
      value = this.message(inner, json["value"]);
      this.#path.pop();
    } else {
      if (++this.#depth > this.#maxDepth) {
        throw this.fail(`nests messages deeper than ${this.#maxDepth} levels`, typeName(inner));
      }
      value = this.#fields(inner, planOf(inner), json, "@type");
      this.#depth--;
    }
    message[fieldNamed(type, 1)] = url;
    message[fieldNamed(type, 2)] = inner.encode(wireCopy(inner, value)).finish().slice();
  }
}

type IntegerScalar = "int32" | "uint32" | "int64" | "uint64";

interface IntegerLimits {
  readonly min: bigint;
  readonly max: bigint;
  readonly minNumber: number;
  readonly maxNumber: number;
}

const INTEGER_LIMITS: Readonly<Record<IntegerScalar, IntegerLimits>> = {
  int32: { min: BigInt(INT32_MIN), max: BigInt(INT32_MAX), minNumber: INT32_MIN, maxNumber: INT32_MAX },
  uint32: { min: 0n, max: BigInt(UINT32_MAX), minNumber: 0, maxNumber: UINT32_MAX },
  int64: { min: INT64_MIN, max: INT64_MAX, minNumber: -(2 ** 63), maxNumber: 2 ** 63 },
  uint64: { min: 0n, max: UINT64_MAX, minNumber: 0, maxNumber: 2 ** 64 },
};

/** A decimal integer of at most 20 digits: BigInt reads it directly. */
const PLAIN_INTEGER = /^-?(0|[1-9][0-9]{0,19})$/;

/** Whether a value read from JSON is its field's zero (then an implicit-presence field stays unset). */
function isZeroValue(value: unknown): boolean {
  if (value instanceof Uint8Array) return value.length === 0;
  return value === 0 || value === 0n || value === false || value === "";
}

/**
 * A copy of a message read from JSON that protobufjs's encoder takes: only the fields set (own properties), 64-bit
 * bigints as Long-like objects (the encoder would write a bigint as 0).
 */
function wireCopy(type: protobuf.Type, message: unknown): Record<string, unknown> {
  const source = message as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const field of planOf(type).fields) {
    if (!Object.hasOwn(source, field.name)) continue;
    const value = source[field.name];
    if (value === null || value === undefined) continue;
    const convert: ((item: unknown) => unknown) | undefined = field.messageType !== undefined
      ? (item) => wireCopy(field.messageType!, item)
      : field.scalar === "int64" || field.scalar === "uint64"
      ? (item) => toLongLike(item as bigint)
      : undefined;
    if (convert === undefined) out[field.name] = value;
    else if (field.map) {
      const map: Record<string, unknown> = {};
      for (const key of Object.keys(value as object)) {
        define(map, key, convert((value as Record<string, unknown>)[key]));
      }
      out[field.name] = map;
    } else if (field.repeated) out[field.name] = (value as unknown[]).map(convert);
    else out[field.name] = convert(value);
  }
  return out;
}

function toLongLike(value: bigint): LongLike {
  const bits = BigInt.asUintN(64, value);
  return { low: Number(bits & 0xffff_ffffn) | 0, high: Number(bits >> 32n) | 0 };
}
