// The proto3 JSON mapping against the ProtoJSON rules: exact strings for the values implementations get wrong,
// both directions, the well-known types, and every refusal with its message.

import assert from "node:assert/strict";
import protobuf from "protobufjs";
import { decodeMessage, encodableMessage } from "../_proto3_defaults.ts";
import { RpcCode, RpcError } from "../rpc_error.ts";
import { parseProto } from "../service_definition.ts";
import { type JsonValue, messageFromJson, messageToJson } from "./json_mapping.ts";
import { needs } from "../../reactor/testdata/permissions.ts";
import { CONFORMANCE_MESSAGES_PROTO, JSON_MAPPING_TEST_PROTO } from "./testdata/json_mapping_protos.ts";

const root = parseProto(JSON_MAPPING_TEST_PROTO);
const Scalars = root.lookupType("jsontest.Scalars");
const Nested = root.lookupType("jsontest.Nested");
const Presence = root.lookupType("jsontest.Presence");
const Collections = root.lookupType("jsontest.Collections");
const WellKnown = root.lookupType("jsontest.WellKnown");
const Timestamp = root.lookupType("google.protobuf.Timestamp");
const Duration = root.lookupType("google.protobuf.Duration");
const FieldMask = root.lookupType("google.protobuf.FieldMask");
const Value = root.lookupType("google.protobuf.Value");
const Struct = root.lookupType("google.protobuf.Struct");
const Any = root.lookupType("google.protobuf.Any");

type Fields = Record<string, unknown>;

function text(type: protobuf.Type, message: unknown): string {
  return JSON.stringify(messageToJson(type, message));
}

function read(type: protobuf.Type, json: unknown): Fields {
  return messageFromJson(type, json) as unknown as Fields;
}

/** JSON → message → protobuf binary (as the RPC layer encodes) → message → JSON. */
function throughBinary(type: protobuf.Type, json: JsonValue): { viaBigint: JsonValue; viaLong: JsonValue } {
  const bytes = type.encode(encodableMessage(type, messageFromJson(type, json))).finish();
  return {
    viaBigint: messageToJson(type, decodeMessage(type, bytes)),
    viaLong: messageToJson(type, type.decode(bytes)),
  };
}

function readFails(type: protobuf.Type, json: unknown, message: string, options = {}): void {
  assert.throws(() => messageFromJson(type, json, options), (error: unknown) => {
    assert.ok(error instanceof RpcError, `not an RpcError: ${error}`);
    assert.equal(error.code, RpcCode.INVALID_ARGUMENT);
    assert.equal(error.rawMessage, message);
    return true;
  });
}

function writeFails(type: protobuf.Type, message: unknown, expected: string): void {
  assert.throws(() => messageToJson(type, message), (error: unknown) => {
    assert.ok(error instanceof RpcError, `not an RpcError: ${error}`);
    assert.equal(error.code, RpcCode.INTERNAL);
    assert.equal(error.rawMessage, expected);
    return true;
  });
}

function readFailsWith(type: protobuf.Type, json: unknown, part: string, options = {}): void {
  assert.throws(() => messageFromJson(type, json, options), (error: unknown) => {
    assert.ok(error instanceof RpcError && error.code === RpcCode.INVALID_ARGUMENT, `${error}`);
    assert.ok(error.rawMessage.includes(part), `'${error.rawMessage}' lacks '${part}'`);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Field names and presence.

Deno.test("messageToJson writes lowerCamelCase names and json_name, and leaves proto3 zero values out", () => {
  const message = Scalars.create({ fInt32: 1, renamed: 2, fString: "", fBool: false, fDouble: 0, color: 0 });
  assert.equal(text(Scalars, message), '{"fInt32":1,"customName":2}');
  assert.equal(text(Scalars, Scalars.create()), "{}");
  assert.equal(text(Scalars, { fInt64: 0n, fUint64: "0", fBytes: new Uint8Array(0), nested: null }), "{}");
  assert.equal(text(Scalars, { nested: {} }), '{"nested":{}}'); // a set message is written even when empty
});

Deno.test(
  "messageFromJson accepts the JSON name, the .proto name and the json_name, not two of them at once",
  () => {
    const message = read(Scalars, { f_int32: 1, fInt64: "2", customName: 3 });
    assert.equal(message.fInt32, 1);
    assert.equal(message.fInt64, 2n);
    assert.equal(message.renamed, 3);
    assert.equal(read(Scalars, { renamed: 4 }).renamed, 4);
    readFails(
      Scalars,
      { fInt32: 1, f_int32: 2 },
      "Cannot read JSON as jsontest.Scalars: 'f_int32' names the same field as 'fInt32': current value is 2",
    );
  },
);

Deno.test("messageToJson names fields as protoc does in a Root parsed with keepCase", () => {
  const kept = protobuf.parse(`syntax = "proto3"; message K { int32 foo_3bar = 1; int32 a_b_c = 2; int32 _x = 3; }`, {
    keepCase: true,
  }).root.lookupType("K");
  assert.equal(text(kept, { foo_3bar: 1, a_b_c: 2, _x: 3 }), '{"foo3bar":1,"aBC":2,"X":3}');
  const message = messageFromJson(kept, { foo3bar: 1, a_b_c: 2 }) as unknown as Fields;
  assert.equal(message.foo_3bar, 1);
  assert.equal(message.a_b_c, 2);
});

Deno.test("messageToJson writes optional fields and oneof members that are set, zero or not", () => {
  assert.equal(text(Presence, Presence.create()), "{}");
  assert.equal(
    text(Presence, Presence.create({ optInt32: 0, optString: "", optColor: 0, optInt64: 0n, optDouble: 0 })),
    '{"optInt32":0,"optString":"","optColor":"COLOR_UNSPECIFIED","optDouble":0,"optInt64":"0"}',
  );
  assert.equal(text(Presence, Presence.create({ pickInt64: 0n })), '{"pickInt64":"0"}');
  assert.equal(text(Presence, Presence.create({ pickNull: 0 })), '{"pickNull":null}');
  assert.equal(text(Presence, { pickValue: { nullValue: 0 } }), '{"pickValue":null}');
  assert.equal(text(Presence, { pickNested: {} }), '{"pickNested":{}}');

  // Decoded: unset members answer from the prototype ("" for pickString), set ones are own properties.
  const bytes = Presence.encode(Presence.create({ optInt32: 0, pickString: "" })).finish();
  assert.equal(text(Presence, decodeMessage(Presence, bytes)), '{"optInt32":0,"pickString":""}');
  assert.equal(text(Presence, Presence.decode(bytes)), '{"optInt32":0,"pickString":""}');
});

Deno.test(
  "messageFromJson sets optional fields and oneof members even at zero, and refuses two members of a oneof",
  () => {
    const message = read(Presence, { optInt32: 0, optString: "", pickString: "" });
    assert.ok(Object.hasOwn(message, "optInt32") && message.optInt32 === 0);
    assert.ok(Object.hasOwn(message, "optString") && Object.hasOwn(message, "pickString"));
    assert.ok(!Object.hasOwn(message, "plainDouble"));
    assert.ok(!Object.hasOwn(read(Presence, { plainDouble: 0 }), "plainDouble")); // implicit zero: stays unset
    assert.ok(!Object.hasOwn(read(Presence, { optInt32: null }), "optInt32"));

    readFails(
      Presence,
      { pickInt64: "5", pickString: "x" },
      "Cannot read JSON as jsontest.Presence: 'pickString' is a member of oneof 'choice', which 'pickInt64' already set: " +
        'current value is "x"',
    );
    // null is no value, so it does not take the oneof...
    assert.equal(read(Presence, { pickInt64: null, pickString: "x" }).pickString, "x");
    // ...except for NullValue and Value, whose value null is.
    const nullMember = read(Presence, { pickNull: null });
    assert.ok(Object.hasOwn(nullMember, "pickNull") && nullMember.pickNull === 0);
    assert.equal(text(Presence, nullMember), '{"pickNull":null}');
    assert.equal(text(Presence, read(Presence, { pickValue: null })), '{"pickValue":null}');
    readFailsWith(Presence, { pickNull: null, pickString: "x" }, "which 'pickNull' already set");
  },
);

// ---------------------------------------------------------------------------------------------------------------
// Numbers.

Deno.test("messageToJson writes 64-bit integers as decimal strings from bigint, Long, number or string", () => {
  const extremes = Scalars.create({
    fInt64: 9223372036854775807n,
    fUint64: 18446744073709551615n,
    fSint64: -9223372036854775808n,
    fFixed64: 18446744073709551615n,
    fSfixed64: -1n,
  });
  const expected = '{"fInt64":"9223372036854775807","fUint64":"18446744073709551615",' +
    '"fSint64":"-9223372036854775808","fFixed64":"18446744073709551615","fSfixed64":"-1"}';
  assert.equal(text(Scalars, extremes), expected);

  const bytes = Scalars.encode(encodableMessage(Scalars, extremes)).finish();
  assert.equal(text(Scalars, decodeMessage(Scalars, bytes)), expected); // bigint, as the RPC layer decodes
  assert.equal(text(Scalars, Scalars.decode(bytes)), expected); // protobufjs's Long
  const Long = protobuf.util.Long as unknown as { fromString(text: string, unsigned?: boolean): object };
  assert.equal(
    text(Scalars, { fInt64: Long.fromString("-5"), fUint64: Long.fromString("18446744073709551615", true) }),
    '{"fInt64":"-5","fUint64":"18446744073709551615"}',
  );
  assert.equal(text(Scalars, { fInt64: 42, fSint64: "-7" }), '{"fInt64":"42","fSint64":"-7"}');
  assert.equal(text(Scalars, { fInt64: 2 ** 60 }), '{"fInt64":"1152921504606846976"}');
});

Deno.test("messageFromJson reads 64-bit integers from strings, safe numbers and exponent forms", () => {
  const message = read(Scalars, {
    fInt64: "-9223372036854775808",
    fUint64: "18446744073709551615",
    fSint64: 1e3,
    fFixed64: "1.5e3",
    fSfixed64: "-42",
  });
  assert.equal(message.fInt64, -9223372036854775808n);
  assert.equal(message.fUint64, 18446744073709551615n);
  assert.equal(message.fSint64, 1000n);
  assert.equal(message.fFixed64, 1500n);
  assert.equal(message.fSfixed64, -42n);
  assert.equal(read(Scalars, { fInt64: "1000e-3" }).fInt64, 1n);
  assert.equal(read(Scalars, { fInt64: 9007199254740991 }).fInt64, 9007199254740991n);
  assert.ok(!Object.hasOwn(read(Scalars, { fInt64: "0e999999999999" }), "fInt64"));

  const int64 = "an int64 in [-9223372036854775808, 9223372036854775807]";
  readFails(
    Scalars,
    { fInt64: "9223372036854775808" },
    `Cannot read JSON as jsontest.Scalars: 'fInt64' must be ${int64}: current value is "9223372036854775808"`,
  );
  readFails(
    Scalars,
    { fUint64: "-1" },
    "Cannot read JSON as jsontest.Scalars: 'fUint64' must be a uint64 in [0, 18446744073709551615]: " +
      'current value is "-1"',
  );
  readFails(
    Scalars,
    { fInt64: 9007199254740992 },
    `Cannot read JSON as jsontest.Scalars: 'fInt64' must be ${int64}, sent as a string beyond ±2^53 ` +
      "(a JSON number loses precision): current value is 9007199254740992",
  );
  readFails(
    Scalars,
    { fInt64: "15e-1" },
    `Cannot read JSON as jsontest.Scalars: 'fInt64' must be ${int64} (an integer): current value is "15e-1"`,
  );
  readFails(
    Scalars,
    { fInt64: "0x10" },
    `Cannot read JSON as jsontest.Scalars: 'fInt64' must be ${int64} (as a number or decimal string): ` +
      'current value is "0x10"',
  );
  readFailsWith(Scalars, { fInt64: "1" + "0".repeat(100_000) }, `'fInt64' must be ${int64}: current value is "1000`);
  readFailsWith(Scalars, { fInt64: "1e999999999999999999" }, `'fInt64' must be ${int64}:`);
  readFailsWith(Scalars, { fInt64: "1e-999999999999999999" }, "(an integer)");
});

Deno.test("messageFromJson checks 32-bit integers: range, sign, integrality, numeric strings", () => {
  const message = read(Scalars, { fInt32: "12", fUint32: 1e2, fSint32: "-1E1", fFixed32: 100.0, fSfixed32: "-0" });
  assert.deepEqual(
    [message.fInt32, message.fUint32, message.fSint32, message.fFixed32, message.fSfixed32],
    [12, 100, -10, 100, 0],
  );
  assert.ok(!Object.hasOwn(message, "fSfixed32"));

  const int32 = "an int32 in [-2147483648, 2147483647]";
  readFails(
    Scalars,
    { fInt32: 2147483648 },
    `Cannot read JSON as jsontest.Scalars: 'fInt32' must be ${int32}: current value is 2147483648`,
  );
  readFails(
    Scalars,
    { fSint32: "-2147483649" },
    `Cannot read JSON as jsontest.Scalars: 'fSint32' must be ${int32}: current value is "-2147483649"`,
  );
  readFails(
    Scalars,
    { fUint32: -1 },
    "Cannot read JSON as jsontest.Scalars: 'fUint32' must be a uint32 in [0, 4294967295]: current value is -1",
  );
  readFails(
    Scalars,
    { fFixed32: 4294967296 },
    "Cannot read JSON as jsontest.Scalars: 'fFixed32' must be a uint32 in [0, 4294967295]: current value is 4294967296",
  );
  readFails(
    Scalars,
    { fInt32: 1.5 },
    `Cannot read JSON as jsontest.Scalars: 'fInt32' must be ${int32} (an integer): current value is 1.5`,
  );
  for (const bad of ["abc", "", " 1", "1 ", "+1", "01", "1.", ".5", true, [1], { n: 1 }]) {
    readFailsWith(Scalars, { fInt32: bad }, `'fInt32' must be ${int32} (as a number or decimal string)`);
  }
});

Deno.test("messageToJson writes NaN and infinities as strings, floats by their shortest form, -0 as zero", () => {
  assert.equal(
    text(Scalars, { fDouble: NaN, fFloat: Infinity }),
    '{"fDouble":"NaN","fFloat":"Infinity"}',
  );
  assert.equal(text(Scalars, { fDouble: -Infinity }), '{"fDouble":"-Infinity"}');
  assert.equal(text(Scalars, { fFloat: Math.fround(0.1), fDouble: 0.1 }), '{"fDouble":0.1,"fFloat":0.1}');
  assert.equal(text(Scalars, { fFloat: Math.fround(3.4028234663852886e38) }), '{"fFloat":3.4028235e+38}');
  assert.equal(text(Scalars, { fFloat: Math.fround(1e-45) }), '{"fFloat":1e-45}');
  assert.equal(text(Scalars, { fDouble: 1.7976931348623157e308 }), '{"fDouble":1.7976931348623157e+308}');

  // The mapping deems -0 equal to 0: a plain field holding it is left out; where written, JSON.stringify says 0.
  assert.equal(text(Presence, { plainDouble: -0 }), "{}");
  const written = messageToJson(Presence, Presence.create({ optDouble: -0 })) as Record<string, JsonValue>;
  assert.ok(Object.is(written.optDouble, -0));
  assert.equal(JSON.stringify(written), '{"optDouble":0}');
  const decoded = Scalars.decode(Scalars.encode(Scalars.create({ fFloat: 0.1 })).finish());
  assert.equal(text(Scalars, decoded), '{"fFloat":0.1}'); // not 0.10000000149011612
});

Deno.test(
  "messageFromJson reads floats from numbers, numeric strings and NaN/Infinity, and refuses overflow",
  () => {
    const message = read(Scalars, { fDouble: "NaN", fFloat: "-Infinity" });
    assert.ok(Number.isNaN(message.fDouble));
    assert.equal(message.fFloat, -Infinity);
    assert.equal(read(Scalars, { fDouble: "Infinity" }).fDouble, Infinity);
    assert.equal(read(Scalars, { fDouble: "1.5" }).fDouble, 1.5);
    assert.equal(read(Scalars, { fDouble: "-2e3" }).fDouble, -2000);
    assert.equal(read(Scalars, { fFloat: 0.1 }).fFloat, Math.fround(0.1));
    assert.equal(read(Scalars, { fFloat: 3.4028234663852886e38 }).fFloat, 3.4028234663852886e38);
    assert.equal(read(Scalars, { fFloat: "-3.4028235e38" }).fFloat, -3.4028234663852886e38); // rounds to the max
    readFailsWith(Scalars, { fFloat: 3.4028236e38 }, "'fFloat' must be a float in range");

    readFails(
      Scalars,
      { fFloat: 3.5e38 },
      "Cannot read JSON as jsontest.Scalars: 'fFloat' must be a float in range (infinities are written \"Infinity\" " +
        'and "-Infinity"): current value is 3.5e+38',
    );
    readFailsWith(Scalars, JSON.parse('{"fDouble": 1e999}'), "'fDouble' must be a double in range");
    readFailsWith(Scalars, { fDouble: "1e999" }, "'fDouble' must be a double in range");
    for (const bad of ["nan", "inf", "0x10", "", " 1", true]) {
      readFails(
        Scalars,
        { fDouble: bad },
        "Cannot read JSON as jsontest.Scalars: 'fDouble' must be a double (a number, a numeric string, \"NaN\", " +
          `"Infinity" or "-Infinity"): current value is ${JSON.stringify(bad)}`,
      );
    }
  },
);

// ---------------------------------------------------------------------------------------------------------------
// Bool, string, bytes, enums.

Deno.test("messageFromJson takes bool and string values only as JSON booleans and well-formed strings", () => {
  assert.equal(read(Scalars, { fBool: true, fString: "héllo 😀" }).fString, "héllo 😀");
  readFails(
    Scalars,
    { fBool: "true" },
    "Cannot read JSON as jsontest.Scalars: 'fBool' must be true or false: current value is \"true\"",
  );
  readFails(
    Scalars,
    { fString: 5 },
    "Cannot read JSON as jsontest.Scalars: 'fString' must be a string: current value is 5",
  );
  readFailsWith(Scalars, { fString: "a\ud800b" }, "'fString' must be a string of whole Unicode characters");
});

Deno.test("messageToJson writes bytes as standard base64 with padding", () => {
  assert.equal(text(Scalars, { fBytes: Uint8Array.of(0xfb, 0xff, 0xbf) }), '{"fBytes":"+/+/"}');
  assert.equal(text(Scalars, { fBytes: Uint8Array.of(0xfb, 0xff) }), '{"fBytes":"+/8="}');
  assert.equal(text(Scalars, { fBytes: Uint8Array.of(0xfb) }), '{"fBytes":"+w=="}');
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  assert.equal(
    (messageToJson(Scalars, { fBytes: all }) as Record<string, string>).fBytes,
    btoa(String.fromCharCode(...all)),
  );
});

Deno.test(
  "messageFromJson reads bytes as standard or URL-safe base64, padded or not, and refuses the rest",
  () => {
    for (const encoded of ["+/8=", "+/8", "-_8=", "-_8"]) {
      assert.deepEqual([...read(Scalars, { fBytes: encoded }).fBytes as Uint8Array], [0xfb, 0xff], encoded);
    }
    assert.deepEqual([...read(Scalars, { fBytes: "-_-_" }).fBytes as Uint8Array], [0xfb, 0xff, 0xbf]);
    assert.deepEqual([...read(Scalars, { fBytes: "AQ" }).fBytes as Uint8Array], [1]);
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    assert.deepEqual(read(Scalars, { fBytes: btoa(String.fromCharCode(...all)) }).fBytes, all);
    assert.ok(!Object.hasOwn(read(Scalars, { fBytes: "" }), "fBytes"));
    for (const bad of ["A", "AB=", "A===", "====", "a*bc", "ab c", "ab==c", "AQ==AQ==", "AQ\n"]) {
      readFails(
        Scalars,
        { fBytes: bad },
        "Cannot read JSON as jsontest.Scalars: 'fBytes' must be base64 (standard or URL-safe, padding optional): " +
          `current value is ${JSON.stringify(bad)}`,
      );
    }
    readFailsWith(Scalars, { fBytes: [1] }, "'fBytes' must be a base64 string");
  },
);

Deno.test(
  "messageToJson writes enums by the first name of their number, and numbers it does not name as numbers",
  () => {
    assert.equal(text(Scalars, { color: 1 }), '{"color":"RED"}'); // not its alias CRIMSON
    assert.equal(text(Scalars, { color: 2 }), '{"color":"GREEN"}');
    assert.equal(text(Scalars, { color: 7 }), '{"color":7}');
    assert.equal(text(Scalars, { color: -3 }), '{"color":-3}');
    assert.equal(text(Collections, { rColor: [0, 1, 9] }), '{"rColor":["COLOR_UNSPECIFIED","RED",9]}');
  },
);

Deno.test("messageFromJson reads enums by name or number; an unknown name fails or, if asked, is skipped", () => {
  assert.equal(read(Scalars, { color: "CRIMSON" }).color, 1);
  assert.equal(read(Scalars, { color: 2 }).color, 2);
  assert.equal(read(Scalars, { color: 12 }).color, 12); // open enum
  readFails(
    Scalars,
    { color: "PURPLE" },
    "Cannot read JSON as jsontest.Scalars: 'color' must be a value of jsontest.Color: current value is \"PURPLE\"",
  );
  for (const bad of ["__proto__", "constructor", "toString", "1"]) {
    readFailsWith(Scalars, { color: bad }, "'color' must be a value of jsontest.Color");
  }
  readFails(
    Scalars,
    { color: 1.5 },
    "Cannot read JSON as jsontest.Scalars: 'color' must be a name or an int32 number of jsontest.Color: " +
      "current value is 1.5",
  );
  const lenient = { ignoreUnknownFields: true };
  assert.ok(!Object.hasOwn(messageFromJson(Scalars, { color: "PURPLE" }, lenient), "color"));
  const list = messageFromJson(Collections, { rColor: ["RED", "PURPLE", 2], colors: { a: "PURPLE", b: "GREEN" } }, {
    ignoreUnknownFields: true,
  }) as unknown as Fields;
  assert.deepEqual(list.rColor, [1, 2]);
  assert.deepEqual(list.colors, { b: 2 });
});

// ---------------------------------------------------------------------------------------------------------------
// Repeated fields and maps.

Deno.test("messageToJson writes lists and maps, keys as strings, zero elements kept", () => {
  const message = Collections.create({
    rInt32: [1, 0, -1],
    rInt64: [0n, -1n],
    rString: ["", "a"],
    rBytes: [new Uint8Array(0), Uint8Array.of(255)],
    rNested: [Nested.create(), Nested.create({ name: "x" })],
    byName: { a: 0n, "": 5n },
    byInt32: { "-5": "m", "7": "" },
    byUint64: { "18446744073709551615": "max" },
    byBool: { true: "t", false: "f" },
    colors: { c: 2 },
    blobs: { b: Uint8Array.of(1) },
    byInt64: { "-1": Nested.create({ name: "n" }) },
  });
  assert.deepEqual(messageToJson(Collections, message), {
    rInt32: [1, 0, -1],
    rInt64: ["0", "-1"],
    rString: ["", "a"],
    rBytes: ["", "/w=="],
    rNested: [{}, { name: "x" }],
    byName: { a: "0", "": "5" },
    byInt32: { "-5": "m", "7": "" },
    byInt64: { "-1": { name: "n" } },
    byUint64: { "18446744073709551615": "max" },
    byBool: { true: "t", false: "f" },
    colors: { c: "GREEN" },
    blobs: { b: "AQ==" },
  });
  assert.equal(text(Collections, Collections.create({ rInt32: [], byName: {} })), "{}");
});

Deno.test("messageToJson writes the 64-bit map keys protobufjs decodes as 8-character hashes in decimal", () => {
  const message = Collections.create({
    byInt64: { "-1": Nested.create({ name: "minus one" }), "9223372036854775807": Nested.create() },
    byUint64: { "18446744073709551615": "max", "5": "five" },
    bySint64: { "-9223372036854775808": "min" },
  });
  const bytes = Collections.encode(encodableMessage(Collections, message)).finish();
  const decoded = decodeMessage(Collections, bytes) as unknown as Fields;
  assert.ok(Object.keys(decoded.byUint64 as object).every((key) => key.length === 8)); // protobufjs's hashes
  const expected = {
    byInt64: { "-1": { name: "minus one" }, "9223372036854775807": {} },
    byUint64: { "18446744073709551615": "max", "5": "five" },
    bySint64: { "-9223372036854775808": "min" },
  };
  assert.deepEqual(messageToJson(Collections, decoded), expected);
  assert.deepEqual(messageToJson(Collections, message), expected);
});

Deno.test(
  "messageFromJson reads lists and maps, checks map keys, and takes null as empty but not as an element",
  () => {
    const message = read(Collections, {
      rInt64: ["1", 2],
      byInt32: { "1": "a", "-2": "b" },
      byUint64: { "18446744073709551615": "max" },
      byBool: { true: "t", false: "f" },
      byInt64: { "-3": { name: "n" } },
      rNested: null,
      byName: null,
    });
    assert.deepEqual(message.rInt64, [1n, 2n]);
    assert.deepEqual(message.byInt32, { "1": "a", "-2": "b" });
    assert.deepEqual(message.byUint64, { "18446744073709551615": "max" });
    assert.deepEqual(message.byBool, { true: "t", false: "f" });
    assert.deepEqual(messageToJson(Nested, (message.byInt64 as Record<string, unknown>)["-3"]), { name: "n" });
    assert.deepEqual(message.rNested, []);

    readFails(
      Collections,
      { byInt32: { x: "a" } },
      "Cannot read JSON as jsontest.Collections: 'byInt32[\"x\"]' must be an int32 map key in [-2147483648, 2147483647]: " +
        'current value is "x"',
    );
    readFailsWith(Collections, { byInt32: { "2147483648": "a" } }, `'byInt32["2147483648"]' must be an int32 map key`);
    readFailsWith(Collections, { byInt32: { "01": "a" } }, "must be an int32 map key");
    readFailsWith(Collections, { byUint32: { "-1": "a" } }, "must be a uint32 map key in [0, 4294967295]");
    readFailsWith(Collections, { byUint64: { "-1": "a" } }, "must be a uint64 map key in [0, 18446744073709551615]");
    readFailsWith(Collections, { byBool: { yes: "a" } }, `'byBool["yes"]' must be a bool map key ("true" or "false")`);
    readFails(
      Collections,
      { byName: { a: null } },
      "Cannot read JSON as jsontest.Collections: 'byName[\"a\"]' must not be null (a map value): current value is null",
    );
    readFails(
      Collections,
      { rInt32: [1, null] },
      "Cannot read JSON as jsontest.Collections: 'rInt32[1]' must not be null (a list or map element): " +
        "current value is null",
    );
    readFails(
      Collections,
      { rInt32: 5 },
      "Cannot read JSON as jsontest.Collections: 'rInt32' must be a JSON array: current value is 5",
    );
    readFailsWith(Collections, { byName: [] }, "'byName' must be a JSON object (a map)");
  },
);

Deno.test("messageFromJson keeps a map key or Struct key named __proto__ as data and pollutes nothing", () => {
  const json = JSON.parse('{"byName": {"__proto__": "5"}, "colors": {"constructor": "RED"}}');
  const message = read(Collections, json);
  assert.ok(Object.hasOwn(message.byName as object, "__proto__"));
  assert.deepEqual(messageToJson(Collections, message), {
    byName: JSON.parse('{"__proto__": "5"}'),
    colors: { constructor: "RED" },
  });
  const struct = JSON.parse('{"st": {"__proto__": {"polluted": true}}}');
  assert.deepEqual(messageToJson(WellKnown, messageFromJson(WellKnown, struct)), struct);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  readFailsWith(Scalars, JSON.parse('{"__proto__": 1}'), "'__proto__' is not a field of jsontest.Scalars");
  readFailsWith(Scalars, { hasOwnProperty: 1 }, "'hasOwnProperty' is not a field of jsontest.Scalars");
});

// ---------------------------------------------------------------------------------------------------------------
// Well-known types.

Deno.test("messageToJson writes a Timestamp in RFC 3339 UTC with 0, 3, 6 or 9 fraction digits", () => {
  const at = (seconds: bigint, nanos = 0) => text(Timestamp, { seconds, nanos });
  assert.equal(at(0n), '"1970-01-01T00:00:00Z"');
  assert.equal(at(1n, 500_000_000), '"1970-01-01T00:00:01.500Z"');
  assert.equal(at(1n, 1_000), '"1970-01-01T00:00:01.000001Z"');
  assert.equal(at(1n, 1), '"1970-01-01T00:00:01.000000001Z"');
  assert.equal(at(1n, 123_456_789), '"1970-01-01T00:00:01.123456789Z"');
  assert.equal(at(-1n), '"1969-12-31T23:59:59Z"');
  assert.equal(at(BigInt(Date.UTC(2020, 1, 29, 13, 14, 15) / 1000)), '"2020-02-29T13:14:15Z"');
  assert.equal(at(-62135596800n), '"0001-01-01T00:00:00Z"');
  assert.equal(at(253402300799n, 999_999_999), '"9999-12-31T23:59:59.999999999Z"');
  assert.equal(text(Timestamp, Timestamp.create()), '"1970-01-01T00:00:00Z"');
  assert.equal(
    text(WellKnown, { stamps: [{ seconds: 86400n }, {}] }),
    '{"stamps":["1970-01-02T00:00:00Z","1970-01-01T00:00:00Z"]}',
  );
  const range = "must be a Timestamp from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z " +
    "(nanos in [0, 999999999])";
  writeFails(
    WellKnown,
    { ts: { seconds: 253402300800n } },
    `Cannot write jsontest.WellKnown as JSON: 'ts' ${range}: current value is {"seconds":"253402300800"}`,
  );
  writeFails(
    Timestamp,
    { seconds: -62135596801n },
    `Cannot write google.protobuf.Timestamp as JSON: the message ${range}: current value is {"seconds":"-62135596801"}`,
  );
  writeFails(
    Timestamp,
    { nanos: -1 },
    `Cannot write google.protobuf.Timestamp as JSON: the message ${range}: current value is {"nanos":-1}`,
  );
});

Deno.test(
  "messageFromJson reads a Timestamp with an offset and 1 to 9 fraction digits, and refuses bad dates",
  () => {
    const stamp = (json: string) => {
      const message = read(Timestamp, json);
      return [message.seconds, message.nanos];
    };
    assert.deepEqual(stamp("1972-01-01T10:00:20.021Z"), [63108020n, 21_000_000]);
    assert.deepEqual(stamp("1970-01-01T01:00:00+01:00"), [0n, 0]);
    assert.deepEqual(stamp("1970-01-01T00:00:00.5-00:30"), [1800n, 500_000_000]);
    assert.deepEqual(stamp("0001-01-01T00:00:00Z"), [-62135596800n, 0]);
    assert.deepEqual(stamp("9999-12-31T23:59:59.999999999Z"), [253402300799n, 999_999_999]);
    assert.deepEqual(stamp("2000-02-29T00:00:00.000001Z"), [951782400n, 1000]);
    assert.equal(text(Timestamp, read(Timestamp, "1970-01-01T01:00:00.100+01:00")), '"1970-01-01T00:00:00.100Z"');

    const expected = "must be an RFC 3339 time such as 1972-01-01T10:00:20.021Z, from year 0001 to 9999";
    readFails(
      WellKnown,
      { ts: "1970-01-01t00:00:00Z" },
      `Cannot read JSON as jsontest.WellKnown: 'ts' ${expected}: current value is "1970-01-01t00:00:00Z"`,
    );
    for (
      const bad of [
        "1970-01-01T00:00:00z",
        "1970-02-30T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "0000-12-31T00:00:00Z",
        "1970-01-01T00:00:00",
        "1970-01-01T00:00:00.Z",
        "1970-01-01T00:00:00.1234567890Z",
        "1970-01-01T24:00:00Z",
        "1970-01-01T00:60:00Z",
        "1970-01-01T00:00:60Z",
        "1970-13-01T00:00:00Z",
        "1970-01-01T00:00:00+24:00",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+00:01",
        " 1970-01-01T00:00:00Z",
        0,
      ]
    ) {
      readFailsWith(WellKnown, { ts: bad }, `'ts' ${expected}`);
    }
  },
);

Deno.test(
  "messageToJson writes a Duration in seconds with 0, 3, 6 or 9 fraction digits, negative ones too",
  () => {
    const span = (seconds: bigint, nanos = 0) => text(Duration, { seconds, nanos });
    assert.equal(span(1n, 500_000_000), '"1.500s"');
    assert.equal(span(-1n, -500_000_000), '"-1.500s"');
    assert.equal(span(0n, -500_000_000), '"-0.500s"');
    assert.equal(span(0n), '"0s"');
    assert.equal(span(3n), '"3s"');
    assert.equal(span(-3n), '"-3s"');
    assert.equal(span(0n, 1), '"0.000000001s"');
    assert.equal(span(1n, 10_000), '"1.000010s"');
    assert.equal(span(315576000000n, 999_999_999), '"315576000000.999999999s"');
    assert.equal(span(-315576000000n, -999_999_999), '"-315576000000.999999999s"');
    const range = "must be a Duration within ±315576000000 s, nanos in [-999999999, 999999999] of the seconds' sign";
    writeFails(
      Duration,
      { seconds: 1n, nanos: -1 },
      `Cannot write google.protobuf.Duration as JSON: the message ${range}: current value is {"seconds":"1","nanos":-1}`,
    );
    writeFails(
      WellKnown,
      { dur: { seconds: 315576000001n } },
      `Cannot write jsontest.WellKnown as JSON: 'dur' ${range}: current value is {"seconds":"315576000001"}`,
    );
    writeFails(
      Duration,
      { nanos: 1_000_000_000 },
      `Cannot write google.protobuf.Duration as JSON: the message ${range}: current value is {"nanos":1000000000}`,
    );
  },
);

Deno.test("messageFromJson reads a Duration of 0 to 9 fraction digits and refuses other forms", () => {
  const span = (json: string) => {
    const message = read(Duration, json);
    return [message.seconds, message.nanos];
  };
  assert.deepEqual(span("1.5s"), [1n, 500_000_000]);
  assert.deepEqual(span("-1.5s"), [-1n, -500_000_000]);
  assert.deepEqual(span("-0.5s"), [0n, -500_000_000]);
  assert.deepEqual(span("0.000000001s"), [0n, 1]);
  assert.deepEqual(span("315576000000s"), [315576000000n, 0]);
  assert.deepEqual(span("-315576000000.999999999s"), [-315576000000n, -999_999_999]);
  const expected = 'must be a duration in seconds such as "1.5s" or "-0.001s", within ±315576000000s';
  readFails(
    WellKnown,
    { dur: "1.5" },
    `Cannot read JSON as jsontest.WellKnown: 'dur' ${expected}: current value is "1.5"`,
  );
  for (
    const bad of [
      "1.5S",
      "1.0000000001s",
      "+1s",
      "315576000001s",
      "315576000001.5s",
      "99999999999999999999s",
      "1e3s",
      ".5s",
      "-s",
      "1 s",
      1.5,
    ]
  ) {
    readFailsWith(WellKnown, { dur: bad }, `'dur' ${expected}`);
  }
});

Deno.test("FieldMask paths are camelCase joined by commas in JSON and snake_case in the message", () => {
  assert.equal(text(FieldMask, { paths: ["foo_bar.baz_qux", "a", "x2"] }), '"fooBar.bazQux,a,x2"');
  assert.equal(text(FieldMask, FieldMask.create()), '""');
  assert.deepEqual(read(FieldMask, "fooBar.bazQux,a").paths, ["foo_bar.baz_qux", "a"]);
  assert.deepEqual(read(FieldMask, "").paths, []);
  writeFails(
    WellKnown,
    { mask: { paths: ["a", "fooBar"] } },
    "Cannot write jsontest.WellKnown as JSON: 'mask' must hold paths of lowercase snake_case names (so camelCase " +
      'maps back to them): current value is "fooBar"',
  );
  writeFails(
    FieldMask,
    { paths: ["foo__bar"] },
    'Cannot write google.protobuf.FieldMask as JSON: the message must hold paths of lowercase snake_case names (so camelCase maps back to them): current value is "foo__bar"',
  );
  writeFails(
    FieldMask,
    { paths: ["foo_1"] },
    'Cannot write google.protobuf.FieldMask as JSON: the message must hold paths of lowercase snake_case names (so camelCase maps back to them): current value is "foo_1"',
  );
  readFails(
    WellKnown,
    { mask: "foo_bar" },
    "Cannot read JSON as jsontest.WellKnown: 'mask' must hold camelCase paths (letters, digits and dots, no '_') " +
      "joined by ',': current value is \"foo_bar\"",
  );
  readFailsWith(WellKnown, { mask: "a,,b" }, "'mask' must hold camelCase paths");
  readFailsWith(WellKnown, { mask: ["a"] }, "'mask' must be a string of camelCase paths joined by ','");
});

Deno.test("Struct, Value and ListValue are the JSON itself, null included", () => {
  const json = {
    st: { a: 1, b: [true, null, "x", { c: {} }], d: -0.5 },
    val: null,
    list: [1, "a", [], {}],
    values: [null, 1.5, "s", false],
    valueMap: { k: null, n: { deep: [[]] } },
  };
  const message = messageFromJson(WellKnown, json);
  assert.deepEqual(messageToJson(WellKnown, message), json);
  assert.notEqual((message as unknown as Fields).val, null); // a Value holding null is set
  assert.deepEqual(throughBinary(WellKnown, json).viaBigint, json);
  assert.deepEqual(throughBinary(WellKnown, json).viaLong, json);
  assert.equal(text(WellKnown, { nullValue: 0 }), "{}");
  assert.equal(text(Value, messageFromJson(Value, null)), "null");
  assert.equal(text(Value, messageFromJson(Value, { a: [1] })), '{"a":[1]}');
  assert.equal(text(Struct, Struct.create()), "{}");

  writeFails(
    WellKnown,
    { val: {} },
    "Cannot write jsontest.WellKnown as JSON: 'val' must be a Value with one kind set (null, number, string, bool, " +
      "struct or list): current value is {}",
  );
  writeFails(
    WellKnown,
    { st: { fields: { a: { numberValue: NaN } } } },
    "Cannot write jsontest.WellKnown as JSON: 'st[\"a\"]' must be a Value whose number is finite (JSON has no NaN " +
      "or Infinity): current value is NaN",
  );
  readFailsWith(WellKnown, { st: [1] }, "'st' must be a JSON object (a Struct)");
  readFailsWith(WellKnown, { list: { a: 1 } }, "'list' must be a JSON array (a ListValue)");
  readFailsWith(WellKnown, { values: [1, undefined] }, "'values[1]' must be JSON (null, a number, a string");
  readFailsWith(WellKnown, { st: { a: [1, NaN] } }, `'st["a"][1]' must be a finite number (a Value)`);
});

Deno.test("wrapper types are their plain values, zero included once set, and null is unset", () => {
  const json = {
    wDouble: "NaN",
    wFloat: 1.5,
    wInt64: "9223372036854775807",
    wUint64: "5",
    wInt32: 0,
    wUint32: 7,
    wBool: false,
    wString: "",
    wBytes: "AQ==",
  };
  assert.deepEqual(messageToJson(WellKnown, messageFromJson(WellKnown, { ...json, wUint64: 5, wUint32: "7" })), json);
  assert.deepEqual(throughBinary(WellKnown, json).viaLong, json);
  assert.equal(text(WellKnown, read(WellKnown, { wInt32: null })), "{}");
  assert.equal(text(root.lookupType("google.protobuf.Int64Value"), { value: 5n }), '"5"');
  assert.equal(text(root.lookupType("google.protobuf.BoolValue"), {}), "false");
  readFailsWith(WellKnown, { wInt32: "x" }, "'wInt32' must be an int32");
  readFailsWith(WellKnown, { wBool: "true" }, "'wBool' must be true or false");
});

Deno.test("Empty is {} and refuses fields", () => {
  assert.equal(text(WellKnown, read(WellKnown, { empty: {} })), '{"empty":{}}');
  readFails(
    WellKnown,
    { empty: { x: 1 } },
    "Cannot read JSON as jsontest.WellKnown: 'empty.x' is not a field of google.protobuf.Empty: current value is 1",
  );
});

Deno.test("Any carries a message's fields beside @type, and a well-known type's JSON under value", () => {
  const cases: JsonValue[] = [
    { "@type": "type.googleapis.com/jsontest.Nested", name: "n", count: "5", children: [{ name: "c" }] },
    { "@type": "type.googleapis.com/google.protobuf.Duration", value: "-1.500s" },
    { "@type": "type.googleapis.com/google.protobuf.Timestamp", value: "2020-02-29T00:00:00.000000001Z" },
    { "@type": "type.googleapis.com/google.protobuf.Struct", value: { a: [1, null] } },
    { "@type": "type.googleapis.com/google.protobuf.Value", value: null },
    { "@type": "type.googleapis.com/google.protobuf.Int64Value", value: "-9223372036854775808" },
    { "@type": "type.googleapis.com/google.protobuf.FieldMask", value: "a.bC" },
    { "@type": "type.googleapis.com/google.protobuf.Empty", value: {} },
    { "@type": "example.com/a/b/jsontest.Presence", optInt32: 0, pickNull: null },
    { "@type": "jsontest.Scalars", fUint64: "18446744073709551615", fBytes: "+/8=" },
    {},
  ];
  for (const any of cases) {
    assert.deepEqual(messageToJson(WellKnown, messageFromJson(WellKnown, { any })), { any }, JSON.stringify(any));
    assert.deepEqual(throughBinary(WellKnown, { any }).viaLong, { any }, JSON.stringify(any));
  }
  // The inner message is protobuf binary in the Any's value.
  const message = read(Any, { "@type": "type.googleapis.com/jsontest.Nested", name: "n", count: 5 });
  assert.equal(message.type_url, "type.googleapis.com/jsontest.Nested");
  assert.deepEqual(Nested.toObject(Nested.decode(message.value as Uint8Array), { longs: String }), {
    name: "n",
    count: "5",
  });
  // Empty may also come with no value.
  assert.equal(
    text(Any, read(Any, { "@type": "type.googleapis.com/google.protobuf.Empty" })),
    '{"@type":"type.googleapis.com/google.protobuf.Empty","value":{}}',
  );
});

Deno.test("messageToJson writes an Any nested in an Any under value, with the exact text", () => {
  const json = {
    anys: [
      {
        "@type": "type.googleapis.com/google.protobuf.Any",
        value: { "@type": "type.googleapis.com/jsontest.Nested", name: "inner", count: "-1" },
      },
    ],
  };
  const message = messageFromJson(WellKnown, json);
  assert.equal(
    text(WellKnown, message),
    '{"anys":[{"@type":"type.googleapis.com/google.protobuf.Any","value":' +
      '{"@type":"type.googleapis.com/jsontest.Nested","name":"inner","count":"-1"}}]}',
  );
  assert.deepEqual(throughBinary(WellKnown, json).viaBigint, json);
});

Deno.test("Any refuses a type its Root does not have, a missing @type, and stray keys beside value", () => {
  readFails(
    WellKnown,
    { any: { "@type": "type.googleapis.com/jsontest.Missing", name: "x" } },
    "Cannot read JSON as jsontest.WellKnown: 'any.@type' must name a message type known to the schema of " +
      'jsontest.WellKnown: current value is "type.googleapis.com/jsontest.Missing"',
  );
  readFailsWith(WellKnown, { any: { "@type": "type.googleapis.com/jsontest.Color" } }, "must name a message type");
  readFailsWith(WellKnown, { any: { "@type": "type.googleapis.com/" } }, "must name a message type");
  readFailsWith(WellKnown, { any: { "@type": "a/b/../jsontest.Nested/" } }, "must name a message type");
  readFails(
    WellKnown,
    { any: { name: "x" } },
    "Cannot read JSON as jsontest.WellKnown: 'any.@type' must be a type URL string: current value is undefined",
  );
  readFails(
    WellKnown,
    { any: { "@type": "type.googleapis.com/jsontest.Nested", bogus: 1 } },
    "Cannot read JSON as jsontest.WellKnown: 'any.bogus' is not a field of jsontest.Nested: current value is 1",
  );
  readFails(
    WellKnown,
    { any: { "@type": "type.googleapis.com/google.protobuf.Duration" } },
    "Cannot read JSON as jsontest.WellKnown: 'any' must have \"value\" (the JSON of its google.protobuf.Duration): " +
      'current value is {"@type":"type.googleapis.com/google.protobuf.Duration"}',
  );
  readFails(
    WellKnown,
    { any: { "@type": "type.googleapis.com/google.protobuf.Duration", value: "1s", seconds: 1 } },
    'Cannot read JSON as jsontest.WellKnown: \'any.seconds\' is not allowed beside "@type" and "value" in an Any ' +
      "of google.protobuf.Duration: current value is 1",
  );
  readFailsWith(
    WellKnown,
    { any: { "@type": "type.googleapis.com/google.protobuf.Duration", value: "1" } },
    "'any.value' must be a duration",
  );
  readFailsWith(WellKnown, { any: { "@type": "type.googleapis.com/jsontest.Nested", count: "x" } }, "'any.count'");

  writeFails(
    WellKnown,
    { any: { type_url: "type.googleapis.com/jsontest.Missing", value: Uint8Array.of(8, 1) } },
    "Cannot write jsontest.WellKnown as JSON: 'any' must be an Any whose type is in the Root of jsontest.WellKnown: " +
      'current value is "type.googleapis.com/jsontest.Missing"',
  );
  assert.throws(
    () => messageToJson(WellKnown, { any: { type_url: "x/jsontest.Nested", value: Uint8Array.of(0x0a, 5, 1) } }),
    (error: unknown) =>
      error instanceof RpcError && error.code === RpcCode.INTERNAL &&
      error.rawMessage.startsWith("Cannot write jsontest.WellKnown as JSON: 'any' must hold a valid jsontest.Nested ("),
  );
});

// ---------------------------------------------------------------------------------------------------------------
// Errors, paths and hostile input.

Deno.test("messageFromJson names the full path of a bad value, through lists, maps and Anys", () => {
  readFails(
    Collections,
    { rNested: [{}, { children: [{ count: "x" }] }] },
    "Cannot read JSON as jsontest.Collections: 'rNested[1].children[0].count' must be an int64 in " +
      '[-9223372036854775808, 9223372036854775807] (as a number or decimal string): current value is "x"',
  );
  readFailsWith(
    Collections,
    { byInt64: { "7": { children: [{}, { bogus: 1 }] } } },
    `'byInt64["7"].children[1].bogus'`,
  );
  readFailsWith(
    WellKnown,
    { anys: [{}, { "@type": "type.googleapis.com/jsontest.Nested", children: [{ name: 5 }] }] },
    "'anys[1].children[0].name' must be a string",
  );
  readFailsWith(WellKnown, { st: { "a key": { b: [0, { c: NaN }] } } }, `'st["a key"]["b"][1]["c"]'`);
});

Deno.test("messageFromJson refuses unknown fields unless told to ignore them", () => {
  readFails(
    Scalars,
    { fInt32: 1, colour: "red" },
    "Cannot read JSON as jsontest.Scalars: 'colour' is not a field of jsontest.Scalars: current value is \"red\"",
  );
  readFailsWith(Scalars, { nested: { bogus: 1 } }, "'nested.bogus' is not a field of jsontest.Nested");
  const lenient = messageFromJson(Scalars, { fInt32: 1, colour: "red", nested: { bogus: 1, name: "n" } }, {
    ignoreUnknownFields: true,
  });
  assert.equal(text(Scalars, lenient), '{"fInt32":1,"nested":{"name":"n"}}');
  const any = messageFromJson(WellKnown, {
    any: { "@type": "type.googleapis.com/google.protobuf.Duration", value: "1s", extra: 1 },
  }, { ignoreUnknownFields: true });
  assert.equal(text(WellKnown, any), '{"any":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1s"}}');
});

Deno.test("messageFromJson refuses a body that is not an object and values of the wrong JSON type", () => {
  for (const bad of [null, [], "x", 5, true, undefined]) {
    readFails(
      Scalars,
      bad,
      `Cannot read JSON as jsontest.Scalars: the value must be a JSON object for jsontest.Scalars: current value is ${
        bad === undefined ? "undefined" : JSON.stringify(bad)
      }`,
    );
  }
  readFails(
    Scalars,
    { nested: 5 },
    "Cannot read JSON as jsontest.Scalars: 'nested' must be a JSON object for jsontest.Nested: current value is 5",
  );
  readFailsWith(Scalars, { nested: [] }, "'nested' must be a JSON object for jsontest.Nested");
  readFailsWith(Timestamp, null, "the value must be a JSON object for google.protobuf.Timestamp");
});

Deno.test("messageFromJson bounds nesting, so a deep body is refused, not a stack overflow", () => {
  let deep: Record<string, unknown> = {};
  for (let i = 0; i < 100_000; i++) deep = { children: [deep] };
  readFailsWith(Nested, deep, "nests messages deeper than 100 levels");
  let struct: unknown = 1;
  for (let i = 0; i < 100_000; i++) struct = { a: struct };
  readFailsWith(WellKnown, { st: struct }, "nests messages deeper than 100 levels");
  let list: unknown = 1;
  for (let i = 0; i < 100_000; i++) list = [list];
  readFailsWith(Value, list, "nests messages deeper than 100 levels");
  let anys: Record<string, unknown> = { "@type": "type.googleapis.com/jsontest.Nested" };
  for (let i = 0; i < 1_000; i++) anys = { "@type": "type.googleapis.com/google.protobuf.Any", value: anys };
  readFailsWith(Any, anys, "nests messages deeper than 100 levels");

  let shallow: Record<string, unknown> = {};
  for (let i = 0; i < 5; i++) shallow = { children: [shallow] };
  assert.doesNotThrow(() => messageFromJson(Nested, shallow, { maxDepth: 6 }));
  readFailsWith(Nested, shallow, "nests messages deeper than 5 levels", { maxDepth: 5 });

  let message = Nested.create();
  for (let i = 0; i < 200; i++) message = Nested.create({ children: [message] });
  assert.throws(
    () => messageToJson(Nested, message),
    (error: unknown) =>
      error instanceof RpcError && error.code === RpcCode.INTERNAL &&
      error.rawMessage.includes("nests messages deeper than 100 levels"),
  );
});

Deno.test("messageFromJson keeps error messages short for huge keys and values", () => {
  const key = "k".repeat(1_000_000);
  assert.throws(() => messageFromJson(Scalars, { [key]: "v".repeat(1_000_000) }), (error: unknown) => {
    assert.ok(error instanceof RpcError);
    assert.ok(error.message.length < 400, `${error.message.length} characters`);
    return true;
  });
  assert.throws(() => messageFromJson(Collections, { byInt32: { [key]: "v" } }), (error: unknown) => {
    assert.ok(error instanceof RpcError);
    assert.ok(error.message.length < 400, `${error.message.length} characters`);
    return true;
  });
});

Deno.test("messageToJson refuses values of the wrong JS type, naming the field", () => {
  writeFails(
    Scalars,
    { fInt32: "1" },
    "Cannot write jsontest.Scalars as JSON: 'fInt32' must be an int32 in [-2147483648, 2147483647]: " +
      'current value is "1"',
  );
  writeFails(
    Scalars,
    { fUint64: -1n },
    "Cannot write jsontest.Scalars as JSON: 'fUint64' must be a uint64: current value is -1",
  );
  writeFails(
    Scalars,
    { fInt64: 1.5 },
    "Cannot write jsontest.Scalars as JSON: 'fInt64' must be an int64: current value is 1.5",
  );
  writeFails(
    Scalars,
    { fBytes: "AQ==" },
    "Cannot write jsontest.Scalars as JSON: 'fBytes' must be bytes: current value is \"AQ==\"",
  );
  writeFails(
    Scalars,
    { color: "PURPLE" },
    "Cannot write jsontest.Scalars as JSON: 'color' must be a value of jsontest.Color: current value is \"PURPLE\"",
  );
  writeFails(
    Collections,
    { rNested: [{}, 5] },
    "Cannot write jsontest.Collections as JSON: 'rNested[1]' must be a jsontest.Nested message: current value is 5",
  );
  writeFails(
    Collections,
    { byInt32: { x: "a" } },
    'Cannot write jsontest.Collections as JSON: \'byInt32["x"]\' must be an int32 map key: current value is "x"',
  );
  writeFails(
    Scalars,
    5,
    "Cannot write jsontest.Scalars as JSON: the message must be a jsontest.Scalars message: current value is 5",
  );
});

// ---------------------------------------------------------------------------------------------------------------
// Round trips.

Deno.test("every field kind survives JSON → message → protobuf binary → message → JSON unchanged", () => {
  const scalars: JsonValue = {
    fDouble: -1.25e-300,
    fFloat: -3.4028235e38,
    fInt32: -2147483648,
    fInt64: "-9223372036854775808",
    fUint32: 4294967295,
    fUint64: "18446744073709551615",
    fSint32: -1,
    fSint64: "9223372036854775807",
    fFixed32: 1,
    fFixed64: "18446744073709551614",
    fSfixed32: 2147483647,
    fSfixed64: "-2",
    fBool: true,
    fString: 'ünïcødé \u0000 "quoted" 😀',
    fBytes: "AAEC/f7/",
    color: "GREEN",
    customName: 9,
    nested: { name: "n", count: "1", children: [{}, { count: "-1" }] },
  };
  assert.deepEqual(throughBinary(Scalars, scalars), { viaBigint: scalars, viaLong: scalars });
  const collections: JsonValue = {
    rInt32: [0, 1, -1],
    rInt64: ["0", "9223372036854775807"],
    rString: ["", "a"],
    rBytes: ["", "AA=="],
    rColor: ["COLOR_UNSPECIFIED", "RED", 42],
    rNested: [{}, { name: "x" }],
    rDouble: [0, "NaN", "Infinity", "-Infinity", 1.5],
    byName: { "": "0", b: "-1" },
    byInt32: { "-2147483648": "min", "0": "" },
    byInt64: { "-9223372036854775808": { name: "min" }, "0": {} },
    byUint64: { "18446744073709551615": "max" },
    colors: { a: "RED", b: 77 },
    blobs: { x: "/w==" },
    bySint64: { "-1": "m" },
    byUint32: { "4294967295": "max" },
  };
  assert.deepEqual(throughBinary(Collections, collections), { viaBigint: collections, viaLong: collections });
  const wellKnown: JsonValue = {
    ts: "1972-01-01T10:00:20.021Z",
    dur: "-0.000001s",
    mask: "a.bC,d",
    st: { x: [1, "y", null, true, { z: {} }] },
    val: [],
    list: [null],
    any: { "@type": "type.googleapis.com/jsontest.Collections", byInt64: { "5": { count: "5" } } },
    empty: {},
    wDouble: 0,
    wUint64: "0",
    anys: [{ "@type": "type.googleapis.com/google.protobuf.Timestamp", value: "1970-01-01T00:00:00Z" }],
    values: [{}, []],
    valueMap: { "": "" },
    stamps: ["0001-01-01T00:00:00Z"],
  };
  assert.deepEqual(throughBinary(WellKnown, wellKnown), { viaBigint: wellKnown, viaLong: wellKnown });
});

Deno.test(
  "a message read from JSON has the shape a decoded message has (bigint, Uint8Array, own fields only)",
  () => {
    const fromJson = read(Scalars, { fInt64: "5", fBytes: "AQ==", nested: { count: "2" } });
    const decoded = decodeMessage(
      Scalars,
      Scalars.encode(encodableMessage(Scalars, fromJson)).finish(),
    ) as unknown as Fields;
    assert.equal(fromJson.fInt64, 5n);
    assert.ok(fromJson.fBytes instanceof Uint8Array);
    assert.deepEqual(Object.keys(fromJson).sort(), ["fBytes", "fInt64", "nested"]);
    assert.deepEqual([...fromJson.fBytes as Uint8Array], [...decoded.fBytes as Uint8Array]);
    assert.equal(fromJson.fInt64, decoded.fInt64);
    assert.equal((fromJson.nested as Fields).count, (decoded.nested as Fields).count);
    assert.equal(fromJson.fUint64, 0n); // the prototype default, as for a decoded message
    assert.deepEqual(fromJson.fString, decoded.fString);
    assert.ok(fromJson instanceof Scalars.ctor);
  },
);

// ---------------------------------------------------------------------------------------------------------------
// Cases of the Connect conformance suite: its request messages and expected errors are proto3 JSON (read from
// ../shared/conformance/*.yaml, file and test name given for each; our own stand-in .proto for the types).

const conformance = parseProto(CONFORMANCE_MESSAGES_PROTO);
const ConformanceAny = conformance.lookupType("google.protobuf.Any");

const CONFORMANCE_CASES: ReadonlyArray<{ source: string; json: JsonValue }> = [
  {
    source: "basic.yaml unary/success requestMessages[0]",
    json: {
      "@type": "type.googleapis.com/connectrpc.conformance.v1.UnaryRequest",
      responseDefinition: {
        responseHeaders: [{ name: "x-custom-header", value: ["foo"] }],
        responseData: "dGVzdCByZXNwb25zZQ==",
        responseTrailers: [{ name: "x-custom-trailer", value: ["bing"] }],
      },
    },
  },
  {
    source: "basic.yaml server-stream/success requestMessages[0]",
    json: {
      "@type": "type.googleapis.com/connectrpc.conformance.v1.ServerStreamRequest",
      responseDefinition: {
        responseHeaders: [{ name: "x-custom-header", value: ["foo"] }],
        responseData: ["dGVzdCByZXNwb25zZQ==", "dGVzdCByZXNwb25zZQ=="],
        responseTrailers: [{ name: "x-custom-trailer", value: ["bing"] }],
      },
    },
  },
  {
    source: "timeouts.yaml unary requestMessages[0]",
    json: {
      "@type": "type.googleapis.com/connectrpc.conformance.v1.UnaryRequest",
      responseDefinition: { responseData: "dGVzdCByZXNwb25zZQ==", responseDelayMs: 1500 },
    },
  },
  {
    source: "errors.yaml unary/canceled requestMessages[0]",
    json: {
      "@type": "type.googleapis.com/connectrpc.conformance.v1.UnaryRequest",
      responseDefinition: { error: { code: "CODE_CANCELED", message: "canceled" } },
    },
  },
];

Deno.test("conformance suite request messages read and write back unchanged", () => {
  for (const { source, json } of CONFORMANCE_CASES) {
    const message = messageFromJson(ConformanceAny, json);
    assert.deepEqual(messageToJson(ConformanceAny, message), json, source);
  }
  const first = messageFromJson(ConformanceAny, CONFORMANCE_CASES[0]!.json) as unknown as Fields;
  const request = conformance.lookupType("connectrpc.conformance.v1.UnaryRequest").decode(first.value as Uint8Array);
  const definition = (request as unknown as { responseDefinition: { responseData: Uint8Array } }).responseDefinition;
  assert.equal(new TextDecoder().decode(definition.responseData), "test response");
});

Deno.test("a conformance suite expected error with a nested Any reads and writes back unchanged", () => {
  // connect_client_code_to_http_code.yaml unary/canceled, expectedResponse.error.
  const Error = conformance.lookupType("connectrpc.conformance.v1.Error");
  const expected = {
    code: "CODE_CANCELED",
    details: [{
      "@type": "type.googleapis.com/connectrpc.conformance.v1.ConformancePayload.RequestInfo",
      requests: [{
        "@type": "type.googleapis.com/connectrpc.conformance.v1.UnaryRequest",
        responseDefinition: { error: { code: "CODE_CANCELED" } },
      }],
    }],
  };
  assert.deepEqual(messageToJson(Error, messageFromJson(Error, expected)), expected);
  assert.equal(
    (messageFromJson(Error, { code: 4 }) as unknown as Fields).code,
    4,
  );
  assert.deepEqual(messageToJson(Error, { code: 4 }), { code: "CODE_DEADLINE_EXCEEDED" });
});

Deno.test("conformance suite files, when present, still hold the cases this test copies", needs("read"), async () => {
  const dir = new URL("../../../shared/conformance/", import.meta.url);
  let basic: string;
  try {
    basic = await Deno.readTextFile(new URL("basic.yaml", dir));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    console.log(`skipped: ${dir.pathname} is not on this machine (the cases above are copies)`);
    return;
  }
  assert.ok(basic.includes('responseData: "dGVzdCByZXNwb25zZQ=="'));
  assert.ok(basic.includes("testName: server-stream/success"));
  const codes = await Deno.readTextFile(new URL("connect_client_code_to_http_code.yaml", dir));
  assert.ok(codes.includes("type.googleapis.com/connectrpc.conformance.v1.ConformancePayload.RequestInfo"));
});
