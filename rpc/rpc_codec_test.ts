// The hand-written envelope codec against protobufjs reading proto/rpc.proto: the bytes must be protobuf's in
// both directions, so a client in another language can be built from the .proto alone.

import assert from "node:assert/strict";
import protobuf from "protobufjs";
import { RPC_PROTO } from "../proto/rpc_proto.ts";
import { decodeRpcFrame } from "./_rpc_decoder.ts";
import { encodeRpcFrame } from "./_rpc_encoder.ts";
import { FrameKind, WireFormatError, type WireFrame } from "./_rpc_wire.ts";

const FrameType = protobuf.parse(RPC_PROTO).root.lookupType("dwt.rpc.RpcFrame");

// A small deterministic generator, so a failure names a reproducible case.
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 0x1_0000_0000;
  };
}

const SAMPLES = ["", "a", "dwt.UserServiceRpc", "Login", "ünïcødé", "日本語", "emoji 🚀", "x".repeat(300), "\u0000"];

function randomFrame(next: () => number): WireFrame {
  const pick = <T>(items: T[]) => items[Math.floor(next() * items.length)]!;
  const uint32 = () => pick([0, 1, 127, 128, 16_383, 16_384, 0x7fff_ffff, 0xffff_ffff, Math.floor(next() * 2 ** 32)]);
  const metadata = () => {
    const entries: Record<string, string> = {};
    const count = Math.floor(next() * 4);
    for (let i = 0; i < count; i++) entries[pick(SAMPLES) + i] = pick(SAMPLES);
    return entries;
  };
  const payload = () => {
    const bytes = new Uint8Array(pick([0, 1, 64, 200, 4096]));
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(next() * 256);
    return bytes;
  };
  switch (Math.floor(next() * 5)) {
    case 0:
      return {
        request: {
          callId: uint32(),
          service: pick(SAMPLES),
          method: pick(SAMPLES),
          timeoutMs: uint32(),
          metadata: metadata(),
          payload: payload(),
        },
      };
    case 1:
      return {
        response: {
          callId: uint32(),
          status: pick([0, 1, 4, 14, 16]),
          errorMessage: pick(SAMPLES),
          metadata: metadata(),
          payload: payload(),
        },
      };
    case 2:
      return {
        drain: { lastCallId: uint32(), status: pick([0, 3]), reason: pick(SAMPLES), graceMs: uint32() },
      };
    case 3:
      return { ping: { data: uint32(), ack: pick([false, true]) } };
    default:
      return { cancel: { callId: uint32() } };
  }
}

// What protobufjs makes of bytes, in the decoder's terms.
function viaProtobufjs(bytes: Uint8Array) {
  const frame = FrameType.toObject(FrameType.decode(bytes), { longs: Number, defaults: true, bytes: Array }) as {
    request?: Record<string, unknown>;
    response?: Record<string, unknown>;
    cancel?: Record<string, unknown>;
    drain?: Record<string, unknown>;
    ping?: Record<string, unknown>;
  };
  const message = frame.request ?? frame.response ?? frame.cancel ?? frame.drain ?? frame.ping ?? {};
  return {
    kind: frame.request
      ? FrameKind.REQUEST
      : frame.response
      ? FrameKind.RESPONSE
      : frame.drain
      ? FrameKind.DRAIN
      : frame.ping
      ? FrameKind.PING
      : FrameKind.CANCEL,
    callId: message.callId ?? 0,
    service: message.service ?? "",
    method: message.method ?? "",
    timeoutMs: message.timeoutMs ?? 0,
    status: message.status ?? 0,
    errorMessage: message.errorMessage ?? message.reason ?? "",
    metadata: message.metadata ?? {},
    payload: message.payload ?? [],
    lastCallId: message.lastCallId ?? 0,
    graceMs: message.graceMs ?? 0,
    pingData: message.data ?? 0,
    ack: message.ack ?? false,
  };
}

function viaOurs(bytes: Uint8Array) {
  const frame = decodeRpcFrame(bytes);
  return {
    kind: frame.kind,
    callId: frame.callId,
    service: frame.service,
    method: frame.method,
    timeoutMs: frame.timeoutMs,
    status: frame.status,
    errorMessage: frame.errorMessage,
    metadata: { ...frame.metadata },
    payload: [...frame.payload],
    lastCallId: frame.lastCallId,
    graceMs: frame.graceMs,
    pingData: frame.pingData,
    ack: frame.ack,
  };
}

Deno.test("RPC codec: our frames are protobuf (protobufjs reads them) and protobufjs's frames read back", () => {
  const next = random(20261124);
  for (let i = 0; i < 2000; i++) {
    const frame = randomFrame(next);
    const ours = encodeRpcFrame(frame);
    const theirs = FrameType.encode(FrameType.fromObject(frame)).finish();
    assert.deepEqual(viaProtobufjs(ours), viaOurs(ours), `case ${i}: ours -> protobufjs`);
    assert.deepEqual(viaOurs(theirs), viaProtobufjs(theirs), `case ${i}: protobufjs -> ours`);
    // Canonical proto3 (defaults left out, fields in order) is what protobufjs writes for the same frame, except
    // that it also writes fields explicitly set to their default; ours then is never longer.
    assert.ok(ours.length <= theirs.length, `case ${i}: ${ours.length} > ${theirs.length} bytes`);
  }
});

Deno.test("RPC codec: unknown fields are skipped, a later oneof member wins, long varints keep their low bits", () => {
  const request = FrameType.encode(
    FrameType.fromObject({ request: { callId: 7, service: "s", method: "m", payload: new Uint8Array([1, 2]) } }),
  ).finish();
  // RpcFrame field 9 (fixed32, fixed64, varint and bytes) before and after the request, and field 15 inside it.
  const unknown = [0x4d, 1, 2, 3, 4, 0x49, 1, 2, 3, 4, 5, 6, 7, 8, 0x48, 0x96, 0x01, 0x4a, 2, 0xff, 0xfe];
  const inner = [...request.subarray(2), 0x7a, 1, 0x41];
  const frame = decodeRpcFrame(new Uint8Array([...unknown, 0x0a, inner.length, ...inner, ...unknown]));
  assert.equal(frame.kind, FrameKind.REQUEST);
  assert.equal(frame.callId, 7);
  assert.equal(frame.method, "m");
  assert.deepEqual([...frame.payload], [1, 2]);

  const both = new Uint8Array([
    ...encodeRpcFrame({ request: { callId: 1, service: "s", method: "m" } }),
    0x1a,
    2,
    8,
    9,
  ]);
  const last = decodeRpcFrame(both);
  assert.equal(last.kind, FrameKind.CANCEL);
  assert.equal(last.callId, 9);
  assert.equal(last.service, "");

  // call_id as a 10-byte varint of 2^64 - 1: uint32 keeps 0xffffffff, as protobufjs does.
  const long = new Uint8Array([0x1a, 11, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  assert.equal(decodeRpcFrame(long).callId, 0xffff_ffff);
  assert.equal(viaProtobufjs(long).callId, 0xffff_ffff);

  assert.equal(decodeRpcFrame(new Uint8Array(0)).kind, 0);
});

Deno.test("RPC codec: a metadata key named __proto__ is data, not a prototype", () => {
  const bytes = encodeRpcFrame({ response: { callId: 1, metadata: { ["__proto__"]: "x", ok: "y" } } });
  const metadata = decodeRpcFrame(bytes).metadata!;
  assert.equal(Object.getPrototypeOf(metadata), Object.prototype);
  assert.deepEqual(Object.entries(metadata).sort(), [["__proto__", "x"], ["ok", "y"]]);
});

Deno.test("RPC codec: malformed bodies throw WireFormatError and nothing else", () => {
  const bad: number[][] = [
    [0x0a], // length missing
    [0x0a, 5, 0x08], // length past the end
    [0x08, 1], // field 1 as a varint
    [0x0a, 2, 0x08], // truncated varint inside
    [0x0a, 2, 0x12, 0x01], // service's length past the end
    [0x0a, 11, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // 11-byte varint
    [0x0b], // group start
    [0x4e], // wire type 6
    [0x00, 0x00], // field number 0
    [0x12, 2, 0x10, 0x80], // truncated status
    [0x0a, 2, 0x32, 0x05], // payload's length past the end
    [0x0a, 2, 0x0a, 0x00], // call_id (field 1) with wire type 2
  ];
  for (const bytes of bad) {
    assert.throws(() => decodeRpcFrame(new Uint8Array(bytes)), WireFormatError, JSON.stringify(bytes));
  }
  // Mutations of valid frames: each decodes or throws WireFormatError; never another error.
  const next = random(7);
  for (let i = 0; i < 20_000; i++) {
    const bytes = encodeRpcFrame(randomFrame(next));
    const changes = 1 + Math.floor(next() * 4);
    for (let c = 0; c < changes && bytes.length > 0; c++) {
      bytes[Math.floor(next() * bytes.length)] = Math.floor(next() * 256);
    }
    const cut = next() < 0.3 ? bytes.subarray(0, Math.floor(next() * bytes.length)) : bytes;
    try {
      decodeRpcFrame(cut);
    } catch (error) {
      assert.ok(error instanceof WireFormatError, `case ${i}: ${error}`);
    }
  }
});

Deno.test("A decoded message with a 64-bit field re-encodes its oneof as it was (the unset member is not copied)", async () => {
  const { parseProto } = await import("./service_definition.ts");
  const { messageDecoder, messageEncoder } = await import("./_proto3_defaults.ts");
  const root = parseProto(`syntax = "proto3"; package t;
    message M { int64 big = 1; oneof pick { string s = 2; int64 i = 3; } }`);
  const type = root.lookupType("t.M");
  const decode = messageDecoder(type);
  const encode = messageEncoder(type);
  const first = decode(type.encode(type.fromObject({ big: 5, s: "x" })).finish()) as unknown as Record<string, unknown>;
  const again = decode(type.encode(encode(first)).finish()) as unknown as Record<string, unknown>;
  assert.equal(again.s, "x");
  assert.equal(again.pick, "s");
  assert.equal(again.big, 5n);
});
