/**
 * The writing half of `json_mapping.ts`: a message (decoded, created or plain) to its canonical JSON, walking the
 * type's field plans. Well-known types are handed to `_json_well_known.ts`; this file holds the plain-message walk,
 * maps, enums and scalars, and names the field path in every `INTERNAL` error.
 *
 * @module
 */

import type protobuf from "protobufjs";
import { RpcCode, RpcError } from "../rpc_error.ts";
import { type FieldPlan, namesOf, planOf, type Scalar, typeName, type TypePlan } from "./_json_plan.ts";
import {
  base64Encode,
  INT32_MAX,
  INT32_MIN,
  int64KeyOf,
  int64Of,
  named,
  shortestFloat32,
  UINT32_MAX,
} from "./_json_scalars.ts";
import { DEFAULT_MAX_DEPTH, define, FieldPath, isObject, type JsonValue, show } from "./_json_walk.ts";
import { writeWellKnown } from "./_json_well_known.ts";

/**
 * Writes one message (and all it holds) as JSON; one writer per call of `messageToJson`, its path and depth
 * following the walk.
 */
export class JsonWriter {
  /** The Root an Any's type URL is looked up in. */
  readonly root: protobuf.Root;
  /** The message type written, named in errors. */
  readonly top: protobuf.Type;
  /** Where the walk is, named in errors. */
  readonly path: FieldPath = new FieldPath();
  #depth = 0;

  constructor(top: protobuf.Type) {
    this.top = top;
    this.root = top.root;
  }

  /** An `INTERNAL` error saying where the walk is, what was expected and what the value is. */
  fail(expectation: string, value: unknown): RpcError {
    const path = this.path.toString();
    const where = path === "" ? "the message" : `'${path}'`;
    return new RpcError(
      RpcCode.INTERNAL,
      `Cannot write ${typeName(this.top)} as JSON: ${where} ${expectation}: current value is ${show(value)}`,
    );
  }

  /** The JSON of `message`, a message of `type`, one nesting level deeper than the caller. */
  message(type: protobuf.Type, message: unknown): JsonValue {
    if (!isObject(message)) throw this.fail(`must be a ${typeName(type)} message`, message);
    if (++this.#depth > DEFAULT_MAX_DEPTH) {
      throw this.fail(`nests messages deeper than ${DEFAULT_MAX_DEPTH} levels`, typeName(type));
    }
    const plan = planOf(type);
    const out = plan.wellKnown === undefined || plan.wellKnown === "Empty"
      ? this.#fields(plan, message)
      : writeWellKnown(this, type, plan.wellKnown, message);
    this.#depth--;
    return out;
  }

  #fields(plan: TypePlan, message: Record<string, unknown>): JsonValue {
    const out: Record<string, JsonValue> = {};
    for (const field of plan.fields) {
      const value = message[field.name];
      if (value === undefined || value === null) continue;
      this.path.pushKey(field.jsonName);
      if (field.map) {
        if (!isObject(value)) throw this.fail("must be an object (a map)", value);
        const keys = Object.keys(value);
        if (keys.length > 0) define(out, field.jsonName, this.#map(field, value, keys));
      } else if (field.repeated) {
        if (!Array.isArray(value)) throw this.fail("must be an array", value);
        if (value.length > 0) {
          const list: JsonValue[] = [];
          for (let i = 0; i < value.length; i++) {
            this.path.pushIndex(i);
            list.push(this.#single(field, value[i]));
            this.path.pop();
          }
          define(out, field.jsonName, list);
        }
      } else if (field.explicitPresence) {
        // A decoded message answers unset members from its prototype: only own properties are set.
        if (Object.hasOwn(message, field.name)) define(out, field.jsonName, this.#single(field, value));
      } else if (field.messageType !== undefined || !this.#isZero(field, value)) {
        define(out, field.jsonName, this.#single(field, value));
      }
      this.path.pop();
    }
    return out;
  }

  #map(field: FieldPlan, map: Record<string, unknown>, keys: string[]): JsonValue {
    const out: Record<string, JsonValue> = {};
    for (const key of keys) {
      this.path.pushMapKey(key);
      define(out, this.#mapKey(field.keyScalar!, key), this.#single(field, map[key]));
      this.path.pop();
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

  /** The JSON of a value of a scalar field. */
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
}
