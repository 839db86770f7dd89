/**
 * The reading half of `json_mapping.ts`: canonical JSON (as `JSON.parse` gives it) to a message shaped like a
 * decoded one. Well-known types are handed to `_json_well_known.ts`; this file holds the plain-message walk (JSON
 * and .proto names, oneofs, `null`), maps, enums and scalars, and names the field path in every `INVALID_ARGUMENT`
 * error.
 *
 * @module
 */

import type protobuf from "protobufjs";
import { RpcCode, RpcError } from "../rpc_error.ts";
import { type FieldPlan, planOf, type Scalar, typeName, type TypePlan } from "./_json_plan.ts";
import {
  base64Decode,
  INT32_MAX,
  INT32_MIN,
  INTEGER_LIMITS,
  integerOfText,
  type IntegerScalar,
  isZeroValue,
  JSON_NUMBER,
  named,
  PLAIN_INTEGER,
} from "./_json_scalars.ts";
import { define, FieldPath, isObject, show } from "./_json_walk.ts";
import { readWellKnown } from "./_json_well_known.ts";

/** What a reader gives for an element it drops (an unknown enum name under ignoreUnknownFields). */
const SKIP: unique symbol = Symbol("skip");

/**
 * Reads one JSON value (and all it holds) as a message; one reader per call of `messageFromJson`, its path and
 * depth following the walk.
 */
export class JsonReader {
  /** The Root an Any's type URL is looked up in. */
  readonly root: protobuf.Root;
  /** The message type read, named in errors. */
  readonly top: protobuf.Type;
  /** Skip keys that name no field and enum names the enum does not have. */
  readonly ignoreUnknown: boolean;
  /** Where the walk is, named in errors. */
  readonly path: FieldPath = new FieldPath();
  readonly #maxDepth: number;
  #depth = 0;

  constructor(top: protobuf.Type, ignoreUnknown: boolean, maxDepth: number) {
    this.top = top;
    this.root = top.root;
    this.ignoreUnknown = ignoreUnknown;
    this.#maxDepth = maxDepth;
  }

  /** An `INVALID_ARGUMENT` error saying where the walk is, what was expected and what came. */
  fail(expectation: string, value: unknown): RpcError {
    const path = this.path.toString();
    const where = path === "" ? "the value" : `'${path}'`;
    return new RpcError(
      RpcCode.INVALID_ARGUMENT,
      `Cannot read JSON as ${typeName(this.top)}: ${where} ${expectation}: current value is ${show(value)}`,
    );
  }

  /** A message of `type` from `json`, one nesting level deeper than the caller. */
  message(type: protobuf.Type, json: unknown): protobuf.Message {
    if (++this.#depth > this.#maxDepth) {
      throw this.fail(`nests messages deeper than ${this.#maxDepth} levels`, typeName(type));
    }
    const plan = planOf(type);
    const message = plan.wellKnown === undefined || plan.wellKnown === "Empty"
      ? this.#fields(type, plan, json)
      : readWellKnown(this, type, plan.wellKnown, json);
    this.#depth--;
    return message;
  }

  /**
   * A message of `type` from the keys of the JSON object `json` but `skipKey`, one nesting level deeper than the
   * caller: the fields of an Any beside its "@type".
   */
  fieldsOf(type: protobuf.Type, json: unknown, skipKey: string): protobuf.Message {
    if (++this.#depth > this.#maxDepth) {
      throw this.fail(`nests messages deeper than ${this.#maxDepth} levels`, typeName(type));
    }
    const message = this.#fields(type, planOf(type), json, skipKey);
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
      this.path.pushKey(key);
      if (field === undefined) {
        if (!this.ignoreUnknown) throw this.fail(`is not a field of ${typeName(type)}`, json[key]);
        this.path.pop();
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
        this.path.pop(); // null is the default: leave the field unset
        continue;
      }
      if (field.map) {
        if (!isObject(value)) throw this.fail("must be a JSON object (a map)", value);
        message[field.name] = this.#map(field, value);
      } else if (field.repeated) {
        if (!Array.isArray(value)) throw this.fail("must be a JSON array", value);
        const list: unknown[] = [];
        for (let i = 0; i < value.length; i++) {
          this.path.pushIndex(i);
          const item = this.#single(field, value[i]);
          if (item !== SKIP) list.push(item);
          this.path.pop();
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
      this.path.pop();
    }
    return message as unknown as protobuf.Message;
  }

  #map(field: FieldPlan, json: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(json)) {
      this.path.pushMapKey(key);
      const mapKey = this.#mapKey(field.keyScalar!, key);
      const value = json[key];
      if (value === null && !field.takesNull) throw this.fail("must not be null (a map value)", value);
      const item = this.#single(field, value);
      if (item !== SKIP) define(out, mapKey, item);
      this.path.pop();
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
      if (this.ignoreUnknown) return SKIP;
      throw this.fail(`must be a value of ${typeName(enumType)}`, json);
    }
    if (typeof json === "number" && Number.isInteger(json) && json >= INT32_MIN && json <= INT32_MAX) {
      return json === 0 ? 0 : json;
    }
    throw this.fail(`must be a name or an int32 number of ${typeName(enumType)}`, json);
  }

  /** A value of a scalar field from its JSON. */
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
}
