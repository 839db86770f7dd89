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
 * This file holds the entry points; the work is split by concern among private files: `_json_writer.ts` and
 * `_json_reader.ts` (the two walks), `_json_well_known.ts` (the well-known types both ways), `_json_plan.ts` (what
 * the walks know of a type), `_json_scalars.ts` and `_json_time.ts` (values and text), `_json_walk.ts` (shared).
 *
 * @module
 */

import type protobuf from "protobufjs";
import { prepareType } from "../_proto3_defaults.ts";
import { typeName, wellKnownOf } from "./_json_plan.ts";
import { JsonReader } from "./_json_reader.ts";
import { DEFAULT_MAX_DEPTH, type JsonValue } from "./_json_walk.ts";
import { JsonWriter } from "./_json_writer.ts";

export type { JsonValue } from "./_json_walk.ts";

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
  const reader = new JsonReader(type, options.ignoreUnknownFields ?? false, options.maxDepth ?? DEFAULT_MAX_DEPTH);
  if (json === null && wellKnownOf(type) !== "Value") {
    throw reader.fail(`must be a JSON object for ${typeName(type)}`, json);
  }
  return reader.message(type, json);
}
