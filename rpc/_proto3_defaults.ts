/**
 * proto3 defaults with the right JS types, whatever the sender omitted. Standard encoders leave out fields that
 * hold their default; protobufjs then answers from the message prototype, where an omitted `bytes` field is `[]`
 * (not a Uint8Array) and a 64-bit field a `Long`. This file fixes the prototypes once per type and converts
 * 64-bit values, so handlers and callers see:
 *
 * | proto3 type                    | omitted         | present                 |
 * |--------------------------------|-----------------|-------------------------|
 * | bytes                          | `Uint8Array(0)` | `Uint8Array`            |
 * | string                         | `""`            | `string`                |
 * | bool                           | `false`         | `boolean`               |
 * | 32-bit ints, float, double     | `0`             | `number`                |
 * | enum                           | `0`             | `number`                |
 * | int64, uint64, sint64, (s)fixed64 | `0n`         | `bigint` (the one type for 64-bit values) |
 * | repeated                       | `[]` (own)      | array                   |
 * | map                            | `{}` (own)      | object                  |
 * | message                        | `null`          | message                 |
 * | oneof member, `optional`       | unset (`null`/prototype) | value          |
 *
 * Encoding takes 64-bit fields as bigint, number, decimal string or Long.
 *
 * @module
 */

import protobuf from "protobufjs";

const INT64_TYPES = new Set(["int64", "uint64", "sint64", "fixed64", "sfixed64"]);
const EMPTY_BYTES: Uint8Array = Object.freeze(new Uint8Array(0)) as Uint8Array;

interface LongLike {
  low: number;
  high: number;
  unsigned?: boolean;
}

// What a type needs after decode and before encode; `undefined` while it is being worked out (recursion).
interface TypePlan {
  // Whether a 64-bit field is reachable from this type (then values are converted both ways).
  has64: boolean;
  fields: protobuf.Field[];
}

const plans = new WeakMap<protobuf.Type, TypePlan>();

function toBigInt(value: unknown, unsigned: boolean): unknown {
  if (typeof value === "bigint") return value;
  if (typeof value === "number") return unsigned ? BigInt.asUintN(64, BigInt(value)) : BigInt(value);
  if (typeof value === "string") return BigInt(value);
  if (value !== null && typeof value === "object" && "low" in value) {
    const long = value as LongLike;
    const bits = (BigInt(long.high >>> 0) << 32n) | BigInt(long.low >>> 0);
    return unsigned ? bits : BigInt.asIntN(64, bits);
  }
  return value;
}

function toLong(value: unknown, unsigned: boolean): unknown {
  if (typeof value !== "bigint") return value;
  const bits = BigInt.asUintN(64, value);
  return { low: Number(bits & 0xffff_ffffn) | 0, high: Number(bits >> 32n) | 0, unsigned };
}

/**
 * Fix the prototype defaults of `type` and every message type it reaches (once per type), and say whether a
 * 64-bit field is reachable.
 */
export function prepareType(type: protobuf.Type): TypePlan {
  let plan = plans.get(type);
  if (plan !== undefined) return plan;
  type.resolveAll();
  plan = { has64: false, fields: type.fieldsArray };
  plans.set(type, plan); // before recursing: a type may contain itself
  const prototype = type.ctor.prototype as Record<string, unknown>;
  for (const field of type.fieldsArray) {
    field.resolve();
    if (INT64_TYPES.has(field.type)) plan.has64 = true;
    if (!field.repeated && !field.map && field.partOf === null) {
      if (field.type === "bytes") prototype[field.name] = EMPTY_BYTES;
      else if (INT64_TYPES.has(field.type)) prototype[field.name] = 0n;
    }
    if (field.resolvedType instanceof protobuf.Type && prepareType(field.resolvedType).has64) plan.has64 = true;
  }
  return plan;
}

function isMessageField(field: protobuf.Field): field is protobuf.Field & { resolvedType: protobuf.Type } {
  return field.resolvedType instanceof protobuf.Type;
}

// In place on a freshly decoded message: 64-bit values to bigint, in nested messages too.
function convertDecoded(type: protobuf.Type, message: Record<string, unknown>): void {
  for (const field of prepareType(type).fields) {
    if (!Object.hasOwn(message, field.name)) continue;
    const value = message[field.name];
    if (value === null || value === undefined) continue;
    const unsigned = field.type === "uint64" || field.type === "fixed64";
    if (INT64_TYPES.has(field.type)) {
      if (field.map) {
        const map = value as Record<string, unknown>;
        for (const key of Object.keys(map)) map[key] = toBigInt(map[key], unsigned);
      } else if (field.repeated) {
        const list = value as unknown[];
        for (let i = 0; i < list.length; i++) list[i] = toBigInt(list[i], unsigned);
      } else {
        message[field.name] = toBigInt(value, unsigned);
      }
    } else if (isMessageField(field) && prepareType(field.resolvedType).has64) {
      const nested = field.resolvedType;
      if (field.map) {
        for (const item of Object.values(value as Record<string, Record<string, unknown>>)) {
          convertDecoded(nested, item);
        }
      } else if (field.repeated) {
        for (const item of value as Array<Record<string, unknown>>) convertDecoded(nested, item);
      } else {
        convertDecoded(nested, value as Record<string, unknown>);
      }
    }
  }
}

// A copy of `value` (a message or plain object) whose bigint 64-bit values are Long-like objects, which
// protobufjs's fromObject and encoder take (a bigint would be written as 0).
function convertForEncode(type: protobuf.Type, value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of prepareType(type).fields) {
    // Own fields only: a decoded message's unset fields are its prototype's defaults, and copying them would set
    // every member of a oneof (the last one encoded wins on the other side).
    if (!Object.hasOwn(value, field.name)) continue;
    const item = value[field.name];
    if (item === null || item === undefined) {
      out[field.name] = item;
      continue;
    }
    const unsigned = field.type === "uint64" || field.type === "fixed64";
    if (INT64_TYPES.has(field.type)) {
      if (field.map) {
        out[field.name] = Object.fromEntries(
          Object.entries(item as Record<string, unknown>).map(([k, v]) => [k, toLong(v, unsigned)]),
        );
      } else if (field.repeated) out[field.name] = (item as unknown[]).map((v) => toLong(v, unsigned));
      else out[field.name] = toLong(item, unsigned);
    } else if (isMessageField(field) && prepareType(field.resolvedType).has64) {
      const nested = field.resolvedType;
      if (field.map) {
        out[field.name] = Object.fromEntries(
          Object.entries(item as Record<string, Record<string, unknown>>).map(([k, v]) => [
            k,
            convertForEncode(nested, v),
          ]),
        );
      } else if (field.repeated) {
        out[field.name] = (item as Array<Record<string, unknown>>).map((v) => convertForEncode(nested, v));
      } else {
        out[field.name] = convertForEncode(nested, item as Record<string, unknown>);
      }
    } else {
      out[field.name] = item;
    }
  }
  return out;
}

/** Decode `bytes` as `type` with every proto3 default typed (see the table above). */
export function decodeMessage(type: protobuf.Type, bytes: Uint8Array): protobuf.Message {
  return messageDecoder(type)(bytes);
}

/** A message of `type` ready for `type.encode`, from a message or a plain object (64-bit values may be bigint). */
export function encodableMessage(type: protobuf.Type, value: unknown): protobuf.Message {
  return messageEncoder(type)(value);
}

/** {@linkcode decodeMessage} for one type, with the type's preparation done once, up front. */
export function messageDecoder(type: protobuf.Type): (bytes: Uint8Array) => protobuf.Message {
  const plan = prepareType(type);
  return (bytes) => {
    const message = type.decode(bytes);
    if (plan.has64) convertDecoded(type, message as unknown as Record<string, unknown>);
    return message;
  };
}

/** {@linkcode encodableMessage} for one type, with the type's preparation done once, up front. */
export function messageEncoder(type: protobuf.Type): (value: unknown) => protobuf.Message {
  const plan = prepareType(type);
  const ctor = type.ctor;
  return (value) => {
    if (plan.has64) return type.fromObject(convertForEncode(type, (value ?? {}) as Record<string, unknown>));
    return value instanceof ctor
      ? value as protobuf.Message
      : type.fromObject((value ?? {}) as Record<string, unknown>);
  };
}
