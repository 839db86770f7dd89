/**
 * The well-known types of `json_mapping.ts`, both ways: Timestamp, Duration, FieldMask, Struct, Value, ListValue,
 * the wrappers, Any and Empty, each of which has a JSON form of its own instead of an object of its fields. Kept
 * apart from the plain-message walk, which hands a well-known type here and is called back for what it holds
 * (the values of a Struct, the message in an Any) through the small walker interfaces below.
 *
 * @module
 */

import type protobuf from "protobufjs";
import type { RpcError } from "../rpc_error.ts";
import {
  fieldNamed,
  planOf,
  resolveTypeUrl,
  type Scalar,
  typeName,
  type WellKnown,
  wellKnownOf,
} from "./_json_plan.ts";
import { int64Of, isZeroValue, toLongLike } from "./_json_scalars.ts";
import {
  DURATION_MAX_SECONDS,
  durationOfText,
  durationText,
  NANOS_MAX,
  TIMESTAMP_MAX_SECONDS,
  TIMESTAMP_MIN_SECONDS,
  timestampOfText,
  timestampText,
} from "./_json_time.ts";
import { define, type FieldPath, isObject, type JsonValue } from "./_json_walk.ts";

/** What writing a well-known type needs of the walk around it (a `JsonWriter`). */
export interface WellKnownWriter {
  /** The Root an Any's type URL is looked up in. */
  readonly root: protobuf.Root;
  /** The message type written, named in errors. */
  readonly top: protobuf.Type;
  /** Where the walk is; pushed and popped around the values of a Struct or ListValue. */
  readonly path: FieldPath;
  /** An `INTERNAL` error naming where the walk is. */
  fail(expectation: string, value: unknown): RpcError;
  /** The JSON of a message, one nesting level deeper. */
  message(type: protobuf.Type, message: unknown): JsonValue;
  /** The JSON of a scalar value. */
  scalar(scalar: Scalar, value: unknown): JsonValue;
}

/** What reading a well-known type needs of the walk around it (a `JsonReader`). */
export interface WellKnownReader {
  /** The Root an Any's type URL is looked up in. */
  readonly root: protobuf.Root;
  /** The message type read, named in errors. */
  readonly top: protobuf.Type;
  /** Skip keys beside an Any's "@type" and "value" instead of failing. */
  readonly ignoreUnknown: boolean;
  /** Where the walk is; pushed and popped around the values of a Struct, ListValue or Any. */
  readonly path: FieldPath;
  /** An `INVALID_ARGUMENT` error naming where the walk is. */
  fail(expectation: string, value: unknown): RpcError;
  /** A message from its JSON, one nesting level deeper. */
  message(type: protobuf.Type, json: unknown): protobuf.Message;
  /** A scalar value from its JSON. */
  scalar(scalar: Scalar, json: unknown): unknown;
  /** A message from the keys of a JSON object but `skipKey`, one nesting level deeper. */
  fieldsOf(type: protobuf.Type, json: unknown, skipKey: string): protobuf.Message;
}

// ---------------------------------------------------------------------------------------------------------------
// Writing.

/** The JSON of `message`, a message of the well-known `type` (of `kind`). */
export function writeWellKnown(
  writer: WellKnownWriter,
  type: protobuf.Type,
  kind: WellKnown,
  message: Record<string, unknown>,
): JsonValue {
  switch (kind) {
    case "Timestamp":
      return writeTimestamp(writer, type, message);
    case "Duration":
      return writeDuration(writer, type, message);
    case "FieldMask": {
      const paths = message[fieldNamed(type, 1)] ?? [];
      if (!Array.isArray(paths)) throw writer.fail("must have a list of paths", paths);
      return paths.map((path) => camelPath(writer, path)).join(",");
    }
    case "Struct":
      return writeStruct(writer, type, message);
    case "ListValue": {
      const values = message[fieldNamed(type, 1)] ?? [];
      if (!Array.isArray(values)) throw writer.fail("must have a list of values", values);
      const valueType = planOf(type).fields[0]!.messageType!;
      return values.map((value, i) => {
        writer.path.pushIndex(i);
        const json = writer.message(valueType, value);
        writer.path.pop();
        return json;
      });
    }
    case "Value":
      return writeValue(writer, type, message);
    case "Wrapper": {
      const field = planOf(type).fields[0]!;
      const value = message[field.name];
      // An unset value is the wrapped type's zero; a plain object may leave it out.
      return value === undefined || value === null
        ? writer.scalar(field.scalar!, field.scalar === "bytes" ? [] : field.field.typeDefault)
        : writer.scalar(field.scalar!, value);
    }
    case "Any":
      return writeAny(writer, type, message);
    case "Empty":
      return {};
  }
}

function writtenSeconds(
  writer: WellKnownWriter,
  type: protobuf.Type,
  message: Record<string, unknown>,
): [number, number] {
  const seconds = int64Of(message[fieldNamed(type, 1)] ?? 0, "int64");
  const nanos = message[fieldNamed(type, 2)] ?? 0;
  if (seconds === undefined || typeof nanos !== "number" || !Number.isInteger(nanos)) {
    throw writer.fail(`must be a ${typeName(type)} with int64 seconds and int32 nanos`, message);
  }
  // Both ranges are checked by the callers; a bigint far outside them is clamped to stay a safe number.
  const clamped = seconds > 2n ** 52n ? 2 ** 52 : seconds < -(2n ** 52n) ? -(2 ** 52) : Number(seconds);
  return [clamped, nanos];
}

function writeTimestamp(writer: WellKnownWriter, type: protobuf.Type, message: Record<string, unknown>): string {
  const [seconds, nanos] = writtenSeconds(writer, type, message);
  if (seconds < TIMESTAMP_MIN_SECONDS || seconds > TIMESTAMP_MAX_SECONDS || nanos < 0 || nanos > NANOS_MAX) {
    throw writer.fail(
      "must be a Timestamp from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z (nanos in [0, 999999999])",
      message,
    );
  }
  return timestampText(seconds, nanos);
}

function writeDuration(writer: WellKnownWriter, type: protobuf.Type, message: Record<string, unknown>): string {
  const [seconds, nanos] = writtenSeconds(writer, type, message);
  if (
    Math.abs(seconds) > DURATION_MAX_SECONDS || Math.abs(nanos) > NANOS_MAX ||
    (seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0)
  ) {
    throw writer.fail(
      "must be a Duration within ±315576000000 s, nanos in [-999999999, 999999999] of the seconds' sign",
      message,
    );
  }
  return durationText(seconds, nanos);
}

/** `foo_bar.baz` → `fooBar.baz`; a path that would not come back the same is refused. */
function camelPath(writer: WellKnownWriter, path: unknown): string {
  if (typeof path !== "string" || /[A-Z]/.test(path) || /_(?![a-z])/.test(path)) {
    throw writer.fail("must hold paths of lowercase snake_case names (so camelCase maps back to them)", path);
  }
  return path.replace(/_([a-z])/g, (_match, letter: string) => letter.toUpperCase());
}

function writeStruct(writer: WellKnownWriter, type: protobuf.Type, message: Record<string, unknown>): JsonValue {
  const field = planOf(type).fields[0]!;
  const fields = message[field.name] ?? {};
  if (!isObject(fields)) throw writer.fail("must have a map of fields", fields);
  const out: Record<string, JsonValue> = {};
  for (const key of Object.keys(fields)) {
    writer.path.pushMapKey(key);
    define(out, key, writer.message(field.messageType!, fields[key]));
    writer.path.pop();
  }
  return out;
}

function writeValue(writer: WellKnownWriter, type: protobuf.Type, message: Record<string, unknown>): JsonValue {
  const plan = planOf(type);
  for (const field of plan.fields) {
    const value = message[field.name];
    if (!Object.hasOwn(message, field.name) || value === undefined || value === null) continue;
    switch (field.field.id) {
      case 1:
        return null;
      case 2:
        if (typeof value !== "number" || !Number.isFinite(value)) {
          throw writer.fail("must be a Value whose number is finite (JSON has no NaN or Infinity)", value);
        }
        return value;
      case 3:
      case 4:
        return writer.scalar(field.scalar!, value);
      default:
        return writer.message(field.messageType!, value);
    }
  }
  throw writer.fail("must be a Value with one kind set (null, number, string, bool, struct or list)", message);
}

function writeAny(writer: WellKnownWriter, type: protobuf.Type, message: Record<string, unknown>): JsonValue {
  const url = message[fieldNamed(type, 1)] ?? "";
  const bytes = message[fieldNamed(type, 2)] ?? [];
  if (typeof url !== "string") throw writer.fail("must have a string type_url", url);
  if (!(bytes instanceof Uint8Array) && !Array.isArray(bytes)) throw writer.fail("must have bytes as value", bytes);
  if (url === "" && bytes.length === 0) return {};
  const inner = resolveTypeUrl(writer.root, url);
  if (inner === undefined) {
    throw writer.fail(`must be an Any whose type is in the Root of ${typeName(writer.top)}`, url);
  }
  let decoded: protobuf.Message;
  try {
    decoded = inner.decode(bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes));
  } catch (error) {
    throw writer.fail(`must hold a valid ${typeName(inner)} (${(error as Error).message})`, bytes);
  }
  const json = writer.message(inner, decoded);
  const kind = wellKnownOf(inner);
  if (kind !== undefined) return { "@type": url, value: json };
  return { "@type": url, ...(json as Record<string, JsonValue>) };
}

// ---------------------------------------------------------------------------------------------------------------
// Reading.

/** A message of the well-known `type` (of `kind`) from its JSON. */
export function readWellKnown(
  reader: WellKnownReader,
  type: protobuf.Type,
  kind: WellKnown,
  json: unknown,
): protobuf.Message {
  const message = type.create() as unknown as Record<string, unknown>;
  switch (kind) {
    case "Timestamp":
    case "Duration": {
      const [seconds, nanos] = kind === "Timestamp" ? readTimestamp(reader, json) : readDuration(reader, json);
      if (seconds !== 0) message[fieldNamed(type, 1)] = BigInt(seconds);
      if (nanos !== 0) message[fieldNamed(type, 2)] = nanos;
      break;
    }
    case "FieldMask":
      if (typeof json !== "string") throw reader.fail("must be a string of camelCase paths joined by ','", json);
      message[fieldNamed(type, 1)] = json === "" ? [] : json.split(",").map((path) => snakePath(reader, path));
      break;
    case "Struct": {
      if (!isObject(json)) throw reader.fail("must be a JSON object (a Struct)", json);
      const valueType = planOf(type).fields[0]!.messageType!;
      const fields: Record<string, unknown> = {};
      for (const key of Object.keys(json)) {
        reader.path.pushMapKey(key);
        define(fields, key, reader.message(valueType, json[key]));
        reader.path.pop();
      }
      message[fieldNamed(type, 1)] = fields;
      break;
    }
    case "ListValue": {
      if (!Array.isArray(json)) throw reader.fail("must be a JSON array (a ListValue)", json);
      const valueType = planOf(type).fields[0]!.messageType!;
      message[fieldNamed(type, 1)] = json.map((item, i) => {
        reader.path.pushIndex(i);
        const value = reader.message(valueType, item);
        reader.path.pop();
        return value;
      });
      break;
    }
    case "Value":
      readValue(reader, type, json, message);
      break;
    case "Wrapper": {
      const field = planOf(type).fields[0]!;
      const value = reader.scalar(field.scalar!, json);
      if (!isZeroValue(value)) message[field.name] = value;
      break;
    }
    case "Any":
      readAny(reader, type, json, message);
      break;
    case "Empty":
      break; // handled as a plain message
  }
  return message as unknown as protobuf.Message;
}

function readTimestamp(reader: WellKnownReader, json: unknown): [number, number] {
  const time = timestampOfText(json);
  if (time === undefined) {
    throw reader.fail("must be an RFC 3339 time such as 1972-01-01T10:00:20.021Z, from year 0001 to 9999", json);
  }
  return time;
}

function readDuration(reader: WellKnownReader, json: unknown): [number, number] {
  const time = durationOfText(json);
  if (time === undefined) {
    throw reader.fail('must be a duration in seconds such as "1.5s" or "-0.001s", within ±315576000000s', json);
  }
  return time;
}

/** `fooBar.baz` → `foo_bar.baz`; an underscore in JSON would not come back the same and is refused. */
function snakePath(reader: WellKnownReader, path: string): string {
  if (!/^[A-Za-z0-9.]+$/.test(path)) {
    throw reader.fail("must hold camelCase paths (letters, digits and dots, no '_') joined by ','", path);
  }
  return path.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

function readValue(
  reader: WellKnownReader,
  type: protobuf.Type,
  json: unknown,
  message: Record<string, unknown>,
): void {
  if (json === null) message[fieldNamed(type, 1)] = 0;
  else if (typeof json === "number") {
    if (!Number.isFinite(json)) throw reader.fail("must be a finite number (a Value)", json);
    message[fieldNamed(type, 2)] = json;
  } else if (typeof json === "string") message[fieldNamed(type, 3)] = reader.scalar("string", json);
  else if (typeof json === "boolean") message[fieldNamed(type, 4)] = json;
  else if (Array.isArray(json)) {
    message[fieldNamed(type, 6)] = reader.message(type.fieldsById[6]!.resolvedType as protobuf.Type, json);
  } else if (isObject(json)) {
    message[fieldNamed(type, 5)] = reader.message(type.fieldsById[5]!.resolvedType as protobuf.Type, json);
  } else throw reader.fail("must be JSON (null, a number, a string, a bool, an object or an array)", json);
}

function readAny(reader: WellKnownReader, type: protobuf.Type, json: unknown, message: Record<string, unknown>): void {
  if (!isObject(json)) throw reader.fail('must be a JSON object with "@type" (an Any)', json);
  const url = json["@type"];
  if (url === undefined && Object.keys(json).length === 0) return; // the empty Any
  reader.path.pushKey("@type");
  if (typeof url !== "string") throw reader.fail("must be a type URL string", url);
  const inner = resolveTypeUrl(reader.root, url);
  if (inner === undefined) {
    throw reader.fail(`must name a message type known to the schema of ${typeName(reader.top)}`, url);
  }
  reader.path.pop();
  let value: protobuf.Message;
  const kind = wellKnownOf(inner);
  if (kind !== undefined && !(kind === "Empty" && !Object.hasOwn(json, "value"))) {
    // A well-known type has its own JSON, which cannot hold "@type": it comes under "value".
    for (const key of Object.keys(json)) {
      if (key !== "@type" && key !== "value" && !reader.ignoreUnknown) {
        reader.path.pushKey(key);
        throw reader.fail(`is not allowed beside "@type" and "value" in an Any of ${typeName(inner)}`, json[key]);
      }
    }
    if (!Object.hasOwn(json, "value")) {
      throw reader.fail(`must have "value" (the JSON of its ${typeName(inner)})`, json);
    }
    reader.path.pushKey("value");
    value = reader.message(inner, json["value"]);
    reader.path.pop();
  } else {
    value = reader.fieldsOf(inner, json, "@type");
  }
  message[fieldNamed(type, 1)] = url;
  message[fieldNamed(type, 2)] = inner.encode(wireCopy(inner, value)).finish().slice();
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
