/**
 * Encoding of the registry protocol (proto/registry.proto) (with ProtoCodec, from protobufjs's reading of the .proto): the frames on the TCP connection and
 * the conversions between wire values (numbers, bigints, Longs) and the library's (bigint). The frame layout itself is
 * LengthHeaderCodec's; see proto/registry.proto for the whole protocol.
 *
 * @module
 */

import protobuf from "protobufjs";
import { REGISTRY_PROTO } from "../proto/registry_proto.ts";
import type { NodeType, Stat } from "./server/data_tree.ts";
import { InvalidStringError, ProtoCodec } from "./_proto_codec.ts";
import { RegistryError, RegistryErrorCode } from "./registry_error.ts";

const root = protobuf.parse(REGISTRY_PROTO, { keepCase: false }).root;
const clientFrames = new ProtoCodec(root.lookupType("dwt.registry.ClientFrame"));
const serverFrames = new ProtoCodec(root.lookupType("dwt.registry.ServerFrame"));

/**
 * A 64-bit value on its way to or from the wire: decoded, a number when exact and a bigint past 2^53; to encode,
 * also a decimal string or a protobufjs Long.
 */
export type WireLong = number | bigint | string | { toString(): string } | null | undefined;

/** The shape of protobufjs's Long (64 bits as two 32-bit halves). */
interface LongBits {
  low: number;
  high: number;
  unsigned: boolean;
}

function isLong(value: unknown): value is LongBits {
  return typeof (value as LongBits).low === "number" && typeof (value as LongBits).high === "number";
}

/** A wire 64-bit value as a bigint. */
export function toBigInt(value: WireLong): bigint {
  if (value === null || value === undefined) return 0n;
  if (typeof value === "number") return value === 0 ? 0n : BigInt(value);
  if (typeof value === "bigint") return value;
  // From the halves: a decimal string and its parse cost a read of a stat more than the rest of it.
  if (isLong(value)) {
    const bits = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
    return value.unsigned ? bits : BigInt.asIntN(64, bits);
  }
  return BigInt(value.toString());
}

/** A wire 64-bit value as a number (for times, which are safe integers). */
function toNumber(value: WireLong): number {
  if (value === null || value === undefined) return 0;
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  if (isLong(value)) return (value.unsigned ? value.high >>> 0 : value.high) * 2 ** 32 + (value.low >>> 0);
  return Number(value.toString());
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A 64-bit value for the wire: a number when exact (protobufjs encodes it without parsing), else decimal text. */
export function wireLong(value: bigint): number | string {
  return value <= MAX_SAFE && value >= 0n ? Number(value) : value.toString();
}

/** Stat as it travels (64-bit values as numbers when exact, else decimal strings; protobufjs takes both). */
export interface WireStat {
  czxid?: WireLong;
  mzxid?: WireLong;
  pzxid?: WireLong;
  ctime?: WireLong;
  mtime?: WireLong;
  version?: number;
  cversion?: number;
  ephemeralOwner?: WireLong;
  dataLength?: number;
  numChildren?: number;
  nodeType?: number;
}

/** A Stat for the wire. */
export function statToWire(stat: Stat): WireStat {
  return {
    czxid: wireLong(stat.czxid),
    mzxid: wireLong(stat.mzxid),
    pzxid: wireLong(stat.pzxid),
    ctime: stat.ctime,
    mtime: stat.mtime,
    version: stat.version,
    cversion: stat.cversion,
    ephemeralOwner: wireLong(stat.ephemeralOwner),
    dataLength: stat.dataLength,
    numChildren: stat.numChildren,
    nodeType: stat.nodeType,
  };
}

/** A Stat from the wire. */
export function statFromWire(wire: WireStat | null | undefined): Stat {
  const w = wire ?? {};
  return {
    czxid: toBigInt(w.czxid),
    mzxid: toBigInt(w.mzxid),
    pzxid: toBigInt(w.pzxid),
    ctime: toNumber(w.ctime),
    mtime: toNumber(w.mtime),
    version: w.version ?? 0,
    cversion: w.cversion ?? 0,
    ephemeralOwner: toBigInt(w.ephemeralOwner),
    dataLength: w.dataLength ?? 0,
    numChildren: w.numChildren ?? 0,
    nodeType: (w.nodeType ?? 1) as NodeType,
  };
}

/** A client-to-server frame body. Exactly one request field is set. */
export interface ClientFrame {
  xid: number;
  connect?: {
    sessionId?: WireLong;
    sessionSecret?: Uint8Array;
    sessionTimeoutMs?: number;
    authToken?: string;
  };
  create?: { path?: string; data?: Uint8Array; nodeType?: number; sequential?: boolean };
  get?: { path?: string; watch?: boolean };
  set?: { path?: string; data?: Uint8Array; expectedVersion?: number };
  delete?: { path?: string; expectedVersion?: number };
  exists?: { path?: string; watch?: boolean };
  children?: { path?: string; watch?: boolean };
  ping?: Record<string, never>;
  close?: Record<string, never>;
}

/** A server-to-client frame body: a response (xid > 0) or a watch event (xid 0). */
export interface ServerFrame {
  xid: number;
  errorCode?: number;
  errorMessage?: string;
  zxid?: WireLong;
  connect?: {
    sessionId?: WireLong;
    sessionSecret?: Uint8Array;
    sessionTimeoutMs?: number;
    heartbeatIntervalMs?: number;
    heartbeatPort?: number;
    resumed?: boolean;
    heartbeatCounterFloor?: WireLong;
  };
  create?: { path?: string; stat?: WireStat };
  get?: { data?: Uint8Array; stat?: WireStat };
  set?: { stat?: WireStat };
  delete?: Record<string, never>;
  exists?: { stat?: WireStat | null };
  children?: { children?: string[]; stat?: WireStat };
  ping?: Record<string, never>;
  close?: Record<string, never>;
  event?: { type?: number; path?: string; zxid?: WireLong };
}

/**
 * `frame` with its bytes fields copied: a decoded frame's bytes are views into the buffer it was decoded from,
 * which the connection reuses for its next read. For a request held past the read that brought it.
 */
export function detachClientFrame(frame: ClientFrame): ClientFrame {
  if (frame.create?.data !== undefined) frame.create.data = frame.create.data.slice();
  if (frame.set?.data !== undefined) frame.set.data = frame.set.data.slice();
  if (frame.connect?.sessionSecret !== undefined) frame.connect.sessionSecret = frame.connect.sessionSecret.slice();
  return frame;
}

/** Encode a client frame body. */
export function encodeClientFrame(frame: ClientFrame): Uint8Array {
  return clientFrames.encode(frame);
}

/**
 * Decode a client frame body. Throws on bytes that do not parse, and throws a BAD_ARGUMENTS RegistryError naming
 * the field when a string is not valid UTF-8 (a lossy decode would turn distinct bad paths into one U+FFFD path
 * after a restart); {@linkcode invalidFrameXid} gives that error's request xid, so a server can answer it and keep
 * the connection.
 */
export function decodeClientFrame(body: Uint8Array): ClientFrame {
  return decodeStrict(clientFrames, body) as unknown as ClientFrame;
}

/** Encode a server frame body. */
export function encodeServerFrame(frame: ServerFrame): Uint8Array {
  return serverFrames.encode(frame);
}

/**
 * Encode a client frame body into memory that the next encode reuses: for a frame handed at once to a send that
 * copies it (LengthHeaderCodec's), where it costs no allocation.
 */
export function encodeClientFrameTransient(frame: ClientFrame): Uint8Array {
  return clientFrames.encodeTransient(frame);
}

/** Encode a server frame body into memory that the next encode reuses (see {@linkcode encodeClientFrameTransient}). */
export function encodeServerFrameTransient(frame: ServerFrame): Uint8Array {
  return serverFrames.encodeTransient(frame);
}

/** Decode a server frame body; throws on bytes that do not parse or a string that is not valid UTF-8. */
export function decodeServerFrame(body: Uint8Array): ServerFrame {
  return decodeStrict(serverFrames, body) as unknown as ServerFrame;
}

/**
 * The xid of the request whose string field was not valid UTF-8, when `error` was thrown by
 * {@linkcode decodeClientFrame} for that reason; else undefined (the frame did not parse at all).
 */
export function invalidFrameXid(error: unknown): number | undefined {
  return error instanceof RegistryError ? invalidXids.get(error) : undefined;
}

const invalidXids = new WeakMap<RegistryError, number>();

function decodeStrict(codec: ProtoCodec, body: Uint8Array): Record<string, unknown> {
  try {
    return codec.decode(body);
  } catch (error) {
    if (!(error instanceof InvalidStringError)) throw error;
    const xid = (error.decoded.xid as number | undefined) ?? 0;
    const lossy = error.lossy;
    const registryError = new RegistryError(
      RegistryErrorCode.BAD_ARGUMENTS,
      `Cannot decode request ${xid} as '${error.field}' must be valid UTF-8: current value has invalid bytes, ` +
        `shown here as U+FFFD: ${JSON.stringify(lossy.length > 200 ? `${lossy.slice(0, 200)}...` : lossy)}`,
      { cause: error.cause },
    );
    invalidXids.set(registryError, xid);
    throw registryError;
  }
}
