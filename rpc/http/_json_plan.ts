/**
 * Field plans for `json_mapping.ts`: what the JSON walk needs to know of a protobufjs type (each field's JSON
 * names, scalar kind, presence, which well-known type it is), worked out once per type and cached. Kept apart from
 * the walk because both directions and the well-known types read the same plans.
 *
 * @module
 */

import protobuf from "protobufjs";

/** The JSON-relevant kind of a scalar field: `sint32`, `sfixed32` and the like are `int32`, and so on. */
export type Scalar = "double" | "float" | "int32" | "uint32" | "int64" | "uint64" | "bool" | "string" | "bytes";

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

/** The well-known types with a JSON form of their own (`Wrapper`: any of the nine wrappers). */
export type WellKnown =
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

/** What the walk needs to know of one field. */
export interface FieldPlan {
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

/** What the walk needs to know of one message type. */
export interface TypePlan {
  readonly fields: readonly FieldPlan[];
  /** Every key a JSON object may use for a field: its JSON name, its protobufjs name, its .proto name. */
  readonly byKey: ReadonlyMap<string, FieldPlan>;
  readonly wellKnown: WellKnown | undefined;
}

const plans = new WeakMap<protobuf.Type, TypePlan>();

/** The plan of `type`, worked out on first use (resolving the type) and cached. */
export function planOf(type: protobuf.Type): TypePlan {
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
export function fieldNamed(type: protobuf.Type, id: number): string {
  const field = type.fieldsById[id];
  if (field === undefined) throw new TypeError(`${typeName(type)} has no field number ${id}`);
  return field.name;
}

/** Which well-known type `type` is, if it is one. */
export function wellKnownOf(type: protobuf.Type): WellKnown | undefined {
  return planOf(type).wellKnown; // protobufjs builds fullName anew on every read
}

/** A type's full name without the leading dot, for error messages. */
export function typeName(type: protobuf.ReflectionObject): string {
  return type.fullName.startsWith(".") ? type.fullName.slice(1) : type.fullName;
}

const enumNames = new WeakMap<protobuf.Enum, ReadonlyMap<number, string>>();

/** The name JSON uses for each number of an enum: the first declared (of aliases, too). */
export function namesOf(enumType: protobuf.Enum): ReadonlyMap<number, string> {
  let names = enumNames.get(enumType);
  if (names === undefined) {
    const map = new Map<number, string>();
    for (const [name, number] of Object.entries(enumType.values)) if (!map.has(number)) map.set(number, name);
    names = map;
    enumNames.set(enumType, names);
  }
  return names;
}

/** The message type an Any's type URL names (the part after the last `/`), looked up in `root`. */
export function resolveTypeUrl(root: protobuf.Root, url: string): protobuf.Type | undefined {
  const name = url.slice(url.lastIndexOf("/") + 1);
  if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(name)) return undefined;
  const found = root.lookup(`.${name}`);
  return found instanceof protobuf.Type ? found : undefined;
}
