/**
 * Encoding of the registry protocol (proto/registry.proto) with protobufjs: the frames on the TCP connection and
 * the conversions between wire values (Long, numbers) and the library's (bigint). The frame layout itself is
 * LengthHeaderCodec's; see proto/registry.proto for the whole protocol.
 *
 * @module
 */

import protobuf from "protobufjs";
import { REGISTRY_PROTO } from "../proto/registry_proto.ts";
import type { NodeType, Stat } from "./data_tree.ts";

const root = protobuf.parse(REGISTRY_PROTO, { keepCase: false }).root;
const ClientFrameType = root.lookupType("dwt.registry.ClientFrame");
const ServerFrameType = root.lookupType("dwt.registry.ServerFrame");

/** A 64-bit value as protobufjs gives it (a Long, or a number for small values). */
export type WireLong = number | string | { toString(): string } | null | undefined;

/** A wire 64-bit value as a bigint. */
export function toBigInt(value: WireLong): bigint {
  if (value === null || value === undefined) return 0n;
  if (typeof value === "number") return BigInt(value);
  return BigInt(value.toString());
}

/** Stat as it travels (64-bit values as decimal strings, which protobufjs accepts). */
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
    czxid: stat.czxid.toString(),
    mzxid: stat.mzxid.toString(),
    pzxid: stat.pzxid.toString(),
    ctime: stat.ctime,
    mtime: stat.mtime,
    version: stat.version,
    cversion: stat.cversion,
    ephemeralOwner: stat.ephemeralOwner.toString(),
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
    ctime: Number(toBigInt(w.ctime)),
    mtime: Number(toBigInt(w.mtime)),
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

/** Encode a client frame body. */
export function encodeClientFrame(frame: ClientFrame): Uint8Array {
  return ClientFrameType.encode(frame as unknown as protobuf.Message).finish();
}

/** Decode a client frame body; throws on bytes that do not parse. */
export function decodeClientFrame(body: Uint8Array): ClientFrame {
  return ClientFrameType.decode(body) as unknown as ClientFrame;
}

/** Encode a server frame body. */
export function encodeServerFrame(frame: ServerFrame): Uint8Array {
  return ServerFrameType.encode(frame as unknown as protobuf.Message).finish();
}

/** Decode a server frame body; throws on bytes that do not parse. */
export function decodeServerFrame(body: Uint8Array): ServerFrame {
  return ServerFrameType.decode(body) as unknown as ServerFrame;
}
