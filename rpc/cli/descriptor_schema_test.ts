// The schema of `deno task call` without processes: FileDescriptorProtos printed as .proto and parsed back give
// the Root the .proto gave; `describe`'s text; what a hostile or broken descriptor set gets.
import assert from "node:assert/strict";
import protobuf from "protobufjs";
import descriptor from "protobufjs/ext/descriptor/index.js";
import { fileDescriptorSet } from "../reflection/mod.ts";
import { parseProto, serviceDefinition } from "../service_definition.ts";
import { DescriptorSchema, SchemaError } from "./_descriptor_schema.ts";
import { describeText, fileText } from "./_proto_text.ts";

/** A type as calls see it: fields by name with their number, rule, resolved type, map key, oneof and options. */
function shape(type: protobuf.Type): unknown {
  type.resolveAll();
  return {
    fields: type.fieldsArray.map((field) => ({
      name: field.name,
      id: field.id,
      repeated: field.repeated,
      required: field.required,
      type: field.resolvedType?.fullName ?? field.type,
      keyType: field instanceof protobuf.MapField ? field.keyType : null,
      oneof: field.partOf?.name ?? null,
      options: field.options ?? null,
      presence: Boolean(field.hasPresence),
    })),
    nested: type.nestedArray.map((nested) => nested.fullName),
    reserved: type.reserved ?? null,
    extensions: type.extensions ?? null,
  };
}

function schemaOf(text: string, service: string, fileName: string): { root: protobuf.Root; schema: DescriptorSchema } {
  const root = parseProto(text, { fileName });
  const set = fileDescriptorSet([serviceDefinition(root, service)]);
  return { root, schema: DescriptorSchema.fromFileDescriptorSet(set, "a test") };
}

const PROTO3 = `syntax = "proto3"; package demo;
  import "google/protobuf/timestamp.proto";
  enum Kind { KIND_UNSPECIFIED = 0; ADMIN = 1; }
  message Msg {
    message Inner { uint64 v = 1; Kind k = 2; }
    string text_x = 1;
    google.protobuf.Timestamp at = 2;
    map<string, int64> counts = 3;
    optional int32 maybe = 4;
    oneof pick { string a = 5; Inner inner_pick = 6; }
    repeated Inner inner = 7;
    int32 renamed = 8 [json_name = "alias"];
    repeated int32 loose = 9 [packed = false];
    map<int32, Inner> by_id = 10;
    reserved 20, 22 to 25, 100 to max;
    reserved "old";
  }
  service Echo {
    rpc Say(Msg) returns (stream Msg);
    rpc Get(Msg) returns (Msg) { option idempotency_level = NO_SIDE_EFFECTS; }
    rpc Up(stream Msg) returns (Msg.Inner);
  }`;

Deno.test("DescriptorSchema.root gives the types the .proto gave: maps, oneofs, optional, json_name, packed", () => {
  const { root, schema } = schemaOf(PROTO3, "demo.Echo", "demo/echo.proto");
  const rebuilt = schema.root();
  for (const name of ["demo.Msg", "demo.Msg.Inner"]) {
    assert.deepEqual(shape(rebuilt.lookupType(name)), shape(root.lookupType(name)), name);
  }
  assert.deepEqual(rebuilt.lookupEnum("demo.Kind").values, root.lookupEnum("demo.Kind").values);
  const definition = schema.service("demo.Echo");
  assert.deepEqual([...definition.methods.values()].map((method) => [method.name, method.kind]), [
    ["Say", "server_streaming"],
    ["Get", "unary"],
    ["Up", "client_streaming"],
  ]);
  assert.equal(rebuilt.lookupService("demo.Echo").methods["Get"]!.options?.["idempotency_level"], "NO_SIDE_EFFECTS");
});

Deno.test("DescriptorSchema.root gives proto2's required, defaults, groups, extensions and enum aliases back", () => {
  const { root, schema } = schemaOf(
    `syntax = "proto2"; package legacy;
    enum Mode { option allow_alias = true; A = 0; B = 1; ALSO_B = 1; }
    message Old {
      required string id = 1;
      optional int32 n = 2 [default = -5];
      optional Mode mode = 4 [default = B];
      optional double d = 6 [default = inf];
      optional bool flag = 9 [default = true];
      repeated int32 nums = 7 [packed = true];
      optional group Result = 8 { optional string url = 1; }
      extensions 100 to 199;
      reserved 50 to 60;
    }
    extend Old { optional int32 extra = 100; }
    service Legacy { rpc Get(Old) returns (Old); }`,
    "legacy.Legacy",
    "legacy.proto",
  );
  const rebuilt = schema.root();
  assert.deepEqual(shape(rebuilt.lookupType("legacy.Old")), shape(root.lookupType("legacy.Old")));
  assert.deepEqual(rebuilt.lookupEnum("legacy.Mode").values, { A: 0, B: 1, ALSO_B: 1 });
  assert.equal(rebuilt.lookupType("legacy.Old").fields["result"]!.resolvedType?.fullName, ".legacy.Old.Result");
  assert.ok(rebuilt.lookup("legacy.extra") instanceof protobuf.Field);
  // A message encoded with one Root decodes with the other (the group stays a group on the wire).
  const Old = root.lookupType("legacy.Old");
  const bytes = Old.encode(Old.fromObject({ id: "x", result: { url: "u" }, nums: [1, 2] })).finish();
  const decoded = rebuilt.lookupType("legacy.Old").decode(bytes) as unknown as Record<string, unknown>;
  assert.deepEqual([decoded["id"], (decoded["result"] as { url: string }).url, decoded["nums"]], ["x", "u", [1, 2]]);
});

Deno.test("fileText writes type names fully qualified; describeText relative to the package", () => {
  const { schema } = schemaOf(PROTO3, "demo.Echo", "demo/echo.proto");
  const text = fileText(schema.file("demo/echo.proto")!);
  assert.match(text, /^syntax = "proto3";\npackage demo;\nimport "google\/protobuf\/timestamp.proto";\n/);
  assert.ok(text.includes("\n  map<int32, .demo.Msg.Inner> by_id = 10;\n"), text);
  assert.ok(text.includes("\n  rpc Up(stream .demo.Msg) returns (.demo.Msg.Inner);\n"), text);
  assert.equal(
    describeText(schema, schema.lookup("demo.Echo")!),
    [
      "// demo.Echo (demo/echo.proto)",
      "service Echo {",
      "  rpc Say(Msg) returns (stream Msg);",
      "  rpc Get(Msg) returns (Msg) {",
      "    option idempotency_level = NO_SIDE_EFFECTS;",
      "  }",
      "  rpc Up(stream Msg) returns (Msg.Inner);",
      "}",
      "",
    ].join("\n"),
  );
});

Deno.test("describeText of a method: its rpc line, then each message and enum it uses once, well-known types named", () => {
  const { schema } = schemaOf(PROTO3, "demo.Echo", "demo/echo.proto");
  const text = describeText(schema, schema.lookup("demo.Echo/Up")!);
  const headers = text.split("\n").filter((line) => line.startsWith("// "));
  // Msg.Inner is printed inside Msg, so not again; Timestamp is well known; map entries are `map<...>` fields.
  assert.deepEqual(headers, [
    "// demo.Echo.Up (demo/echo.proto)",
    "// demo.Msg (demo/echo.proto)",
    "// demo.Kind (demo/echo.proto)",
  ]);
  assert.ok(text.includes("\nrpc Up(stream Msg) returns (Msg.Inner);\n"), text);
  assert.ok(text.includes("\n  google.protobuf.Timestamp at = 2;\n"), text);
  assert.ok(text.includes("\n  optional int32 maybe = 4;\n"), text);
  assert.ok(text.includes("\n  oneof pick {\n    string a = 5;\n    Msg.Inner inner_pick = 6;\n  }\n"), text);
  assert.doesNotMatch(text, /Entry/);
});

Deno.test("DescriptorSchema.lookup takes full names with or without the leading dot, and Service/Method", () => {
  const { schema } = schemaOf(PROTO3, "demo.Echo", "demo/echo.proto");
  assert.equal(schema.lookup(".demo.Msg")?.kind, "message");
  assert.equal(schema.lookup("demo.Msg.Inner")?.kind, "message");
  assert.equal(schema.lookup("demo.Kind")?.kind, "enum");
  assert.equal(schema.lookup("demo.Echo/Say")?.kind, "method");
  assert.equal(schema.lookup("demo.Echo.Say")?.kind, "method");
  assert.equal(schema.lookup("demo.Echo/Nope"), undefined);
  assert.deepEqual(schema.serviceNames, ["demo.Echo"]);
});

/** A FileDescriptorSet of one file, from a plain object as descriptor.proto's JSON names it. */
function setOf(file: Record<string, unknown>): Uint8Array {
  const type = descriptor.FileDescriptorSet;
  return type.encode(type.fromObject({ file: [{ syntax: "proto3", ...file }] })).finish();
}

Deno.test("a descriptor whose names are not identifiers is refused, never printed into the .proto it parses", () => {
  const evil = [
    { name: "a.proto", package: "x", messageType: [{ name: "A { } message Evil" }] },
    { name: "a.proto", package: "x; message Evil {}", messageType: [{ name: "A" }] },
    {
      name: "a.proto",
      package: "x",
      messageType: [{ name: "A", field: [{ name: "f = 1; int32 g", number: 2, label: 1, type: 5 }] }],
    },
    {
      name: "a.proto",
      package: "x",
      messageType: [{ name: "A", field: [{ name: "f", number: 1, label: 1, type: 11, typeName: ".x.A; }" }] }],
    },
    { name: 'a.proto"; import "b.proto', package: "x", messageType: [{ name: "A" }] },
    { name: "a.proto", package: "x", dependency: ['b"\nmessage Evil {}'], messageType: [{ name: "A" }] },
  ];
  for (const file of evil) {
    const schema = DescriptorSchema.fromFileDescriptorSet(setOf(file), "--protoset evil.pb");
    assert.throws(() => schema.root(), (error: unknown) => {
      assert.ok(error instanceof SchemaError, String(error));
      assert.match(error.message, /^Cannot use the schema from --protoset evil\.pb: /);
      return true;
    }, JSON.stringify(file));
    assert.equal(schema.lookup("x.Evil"), undefined);
  }
});

Deno.test("bytes that are no FileDescriptorSet, and an empty set, are a SchemaError naming the source", () => {
  for (const bytes of [new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), new TextEncoder().encode("syntax")]) {
    assert.throws(
      () => DescriptorSchema.fromFileDescriptorSet(bytes, "--protoset junk.pb"),
      /^SchemaError: Cannot use the schema from --protoset junk\.pb as it is not a FileDescriptorSet/,
    );
  }
  assert.throws(
    () => DescriptorSchema.fromFileDescriptorSet(new Uint8Array(0), "--protoset empty.pb"),
    /holds no files/,
  );
});

Deno.test("a file that imports one the schema lacks is a SchemaError naming the import", () => {
  const bytes = setOf({ name: "a.proto", package: "x", dependency: ["missing.proto"], messageType: [{ name: "A" }] });
  const schema = DescriptorSchema.fromFileDescriptorSet(bytes, "--protoset partial.pb");
  assert.throws(() => schema.root(), /Cannot use the schema from --protoset partial\.pb: .*'missing\.proto'/);
});
