import assert from "node:assert/strict";
import protobuf from "protobufjs";
import { REGISTRY_PROTO } from "../proto/registry_proto.ts";
import { InvalidStringError, ProtoCodec } from "./_proto_codec.ts";

const root = protobuf.parse(REGISTRY_PROTO, { keepCase: false }).root;
root.resolveAll();
const FRAME_TYPES = ["dwt.registry.ClientFrame", "dwt.registry.ServerFrame"].map((name) => root.lookupType(name));

// A small deterministic generator, so a failure names a seed that reproduces it.
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const TEXTS = ["", "/", "/services/echo/providers/127.0.0.1:8000", "caf\u00e9", "\u4e2d/\u{1F600}", "x".repeat(300)];

function randomValue(field: protobuf.Field, next: () => number, depth: number): unknown {
  const type = field.resolvedType;
  if (type instanceof protobuf.Type) return randomMessage(type, next, depth + 1);
  if (type instanceof protobuf.Enum) return Math.floor(next() * 5) - (next() < 0.1 ? 3 : 0);
  const pick = next();
  switch (field.type) {
    case "uint32":
      return pick < 0.3 ? Math.floor(next() * 128) : Math.floor(next() * 2 ** 32);
    case "int32":
      return pick < 0.3 ? -Math.floor(next() * 2 ** 31) : Math.floor(next() * 2 ** 31);
    case "sint32":
      return Math.floor(next() * 2 ** 32) - 2 ** 31;
    case "uint64":
      // Numbers up to 2^53, and past it as decimal text (what wireLong gives).
      if (pick < 0.5) return Math.floor(next() * 2 ** 20);
      if (pick < 0.8) return Math.floor(next() * 2 ** 53);
      return (BigInt(Math.floor(next() * 2 ** 32)) << 32n | BigInt(Math.floor(next() * 2 ** 32))).toString();
    case "bool":
      return pick < 0.5;
    case "string":
      return TEXTS[Math.floor(pick * TEXTS.length)];
    case "bytes":
      return Uint8Array.from({ length: Math.floor(pick * (pick < 0.9 ? 20 : 500)) }, () => next() * 256);
  }
  throw new Error(`no generator for ${field.type}`);
}

function randomMessage(type: protobuf.Type, next: () => number, depth = 0): Record<string, unknown> {
  const message: Record<string, unknown> = {};
  const oneofMembers = new Set(type.oneofsArray.flatMap((oneof) => oneof.oneof));
  const chosen = type.oneofsArray.map((oneof) => oneof.oneof[Math.floor(next() * oneof.oneof.length)]);
  for (const field of type.fieldsArray) {
    if (oneofMembers.has(field.name) ? !chosen.includes(field.name) : next() < 0.3) continue;
    if (depth > 3 && field.resolvedType instanceof protobuf.Type) continue;
    message[field.name] = field.repeated
      ? Array.from({ length: Math.floor(next() * 4) }, () => randomValue(field, next, depth))
      : randomValue(field, next, depth);
  }
  return message;
}

Deno.test("ProtoCodec encodes random frames byte for byte as protobufjs does, and decodes them back", () => {
  for (const type of FRAME_TYPES) {
    const codec = new ProtoCodec(type);
    for (let seed = 1; seed <= 2000; seed++) {
      const message = randomMessage(type, random(seed));
      const expected = type.encode(message as unknown as protobuf.Message).finish();
      const actual = codec.encode(message);
      assert.deepEqual(actual, new Uint8Array(expected), `${type.name} seed ${seed}`);
      // What it decodes encodes to the same bytes again, and protobufjs reads it alike.
      const decoded = codec.decode(actual);
      assert.deepEqual(codec.encode(decoded), actual, `${type.name} seed ${seed} round trip`);
      assert.deepEqual(
        type.toObject(type.decode(actual), { longs: String, defaults: false }),
        type.toObject(type.decode(codec.encode(decoded)), { longs: String, defaults: false }),
      );
    }
  }
});

Deno.test("ProtoCodec gives 64-bit values as numbers when exact and as bigints past 2^53", () => {
  const codec = new ProtoCodec(root.lookupType("dwt.registry.Stat"));
  for (const value of [0n, 1n, 127n, 128n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n]) {
    const decoded = codec.decode(codec.encode({ czxid: value }));
    assert.equal(BigInt(decoded.czxid as number | bigint), value);
    assert.equal(typeof decoded.czxid, value < 2n ** 53n ? "number" : "bigint");
  }
  // A negative int32 travels as ten bytes and comes back.
  const negative = codec.encode({ version: -1 });
  assert.equal(negative.length, 11);
  assert.equal(codec.decode(negative).version, -1);
});

Deno.test("ProtoCodec decodes defaults from the prototype, skips unknown fields, and lets a oneof's last member win", () => {
  const codec = new ProtoCodec(root.lookupType("dwt.registry.ClientFrame"));
  const empty = codec.decode(new Uint8Array(0));
  assert.deepEqual(Object.keys(empty), []);
  assert.equal(empty.xid, 0);
  assert.equal(empty.get, undefined);
  // xid 5, unknown fields 99 (varint), 100 (length 2), 101 (fixed32), 102 (fixed64), 103 (a group), then get.
  const bytes = new Uint8Array([
    0x08,
    0x05, //
    0x98,
    0x06,
    0x01, //
    0xa2,
    0x06,
    0x02,
    0xaa,
    0xbb, //
    0xad,
    0x06,
    1,
    2,
    3,
    4, //
    0xb1,
    0x06,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8, //
    0xbb,
    0x06,
    0x08,
    0x01,
    0xbc,
    0x06, //
    0x62,
    0x03,
    0x0a,
    0x01,
    0x2f, // get { path: "/" }
    0x8a,
    0x01,
    0x00, // ping {}
  ]);
  const frame = codec.decode(bytes);
  assert.equal(frame.xid, 5);
  assert.deepEqual(frame.ping, {});
  assert.equal(frame.get, undefined, "ping came last: the oneof holds ping");
});

Deno.test("ProtoCodec refuses bytes that do not parse with a RangeError saying where", () => {
  const codec = new ProtoCodec(root.lookupType("dwt.registry.ClientFrame"));
  const valid = codec.encode({ xid: 300, create: { path: "/a/b", data: new Uint8Array(40), nodeType: 2 } });
  // Every cut of a valid frame either parses (cut at a field's end) or is refused; none hangs or reads past.
  let refused = 0;
  for (let length = 0; length < valid.length; length++) {
    try {
      codec.decode(valid.subarray(0, length));
    } catch (error) {
      assert.ok(error instanceof RangeError, String(error));
      refused++;
    }
  }
  assert.ok(refused >= valid.length - 3);
  const cases: [string, number[], RegExp][] = [
    ["a known field with the wrong wire type", [0x0a, 0x01, 0x05], /field 'xid' has wire type 2/],
    ["wire type 7", [0x9f, 0x06], /wire type 7 is not valid/],
    ["a varint of 11 bytes", [0x08, ...new Array(10).fill(0xff), 0x01], /longer than 10 bytes/],
    ["a length past the end", [0x62, 0x7f, 0x0a], /runs past the end/],
    ["a fixed64 past the end", [0xb1, 0x06, 1, 2], /fixed-size field runs past the end/],
    ["a nested field past its message", [0x62, 0x02, 0x0a, 0x05, 0x61, 0x62, 0x63, 0x64, 0x65], /past the end/],
  ];
  for (const [what, bytes, message] of cases) {
    assert.throws(() => codec.decode(new Uint8Array(bytes)), message, what);
  }
});

Deno.test("ProtoCodec refuses invalid UTF-8 after decoding the rest, naming the field", () => {
  const codec = new ProtoCodec(root.lookupType("dwt.registry.ServerFrame"));
  // children { children: ["a", "b\xFF", "\xC0"] }, then xid 9 after it.
  const body = new Uint8Array([
    0x82,
    0x01,
    0x0a,
    0x0a,
    0x01,
    0x61,
    0x0a,
    0x02,
    0x62,
    0xff,
    0x0a,
    0x01,
    0xc0, //
    0x08,
    0x09,
  ]);
  assert.throws(
    () => codec.decode(body),
    (error: unknown) =>
      error instanceof InvalidStringError && error.field === "children.children[1]" && error.lossy === "b\uFFFD" &&
      error.decoded.xid === 9,
  );
  // A lone surrogate is written as its three bytes (not replaced), so the receiver refuses it.
  const encoded = codec.encode({ xid: 1, errorMessage: "a\uD800" });
  assert.throws(
    () => codec.decode(encoded),
    (error: unknown) => (error as InvalidStringError).field === "errorMessage",
  );
});

Deno.test("ProtoCodec refuses a value of the wrong type with a TypeError instead of writing zeros", () => {
  const codec = new ProtoCodec(root.lookupType("dwt.registry.ClientFrame"));
  assert.throws(() => codec.encode({ xid: 1, create: { path: "/a", data: "not bytes" } }), /as bytes: a Uint8Array/);
  assert.throws(() => codec.encode({ xid: 1, get: { path: 7 } }), /number as a string field/);
  assert.throws(() => codec.encode({ xid: 1, connect: { sessionId: "x1" } }), SyntaxError);
});

Deno.test("ProtoCodec keeps a leading U+FEFF: it is part of the text, not a mark to drop", () => {
  const codec = new ProtoCodec(root.lookupType("dwt.registry.ServerFrame"));
  const frame = { xid: 1, errorMessage: "\uFEFFwhy", children: { children: ["\uFEFFx", "\uFEFF"] } };
  assert.deepEqual(codec.decode(codec.encode(frame)), frame);
});

Deno.test("ProtoCodec skips groups nested to any depth without running the stack out", () => {
  const codec = new ProtoCodec(root.lookupType("dwt.registry.ClientFrame"));
  // xid 3, then field 99 as 100,000 nested groups and their ends, then the xid again as 4.
  const open = [0x9b, 0x06];
  const close = [0x9c, 0x06];
  const depth = 100_000;
  const bytes = new Uint8Array(2 + depth * 4 + 2);
  bytes.set([0x08, 0x03]);
  for (let i = 0; i < depth; i++) bytes.set(open, 2 + i * 2);
  for (let i = 0; i < depth; i++) bytes.set(close, 2 + depth * 2 + i * 2);
  bytes.set([0x08, 0x04], 2 + depth * 4);
  assert.equal(codec.decode(bytes).xid, 4);
  // Unclosed, they are cut short: a RangeError, as for any truncated frame.
  assert.throws(() => codec.decode(bytes.subarray(0, 2 + depth * 2)), RangeError);
});
