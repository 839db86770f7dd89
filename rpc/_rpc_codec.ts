/**
 * Encoding of the RPC envelope (proto/rpc.proto) with protobufjs. The frame layout is LengthHeaderCodec's.
 *
 * @module
 */

import protobuf from "protobufjs";
import { RPC_PROTO } from "../proto/rpc_proto.ts";

const root = protobuf.parse(RPC_PROTO).root;
const FrameType = root.lookupType("dwt.rpc.RpcFrame");

/** A request as it travels. */
export interface WireRequest {
  callId: number;
  service: string;
  method: string;
  timeoutMs?: number;
  metadata?: Record<string, string>;
  payload?: Uint8Array;
}

/** A response as it travels. */
export interface WireResponse {
  callId: number;
  status?: number;
  errorMessage?: string;
  metadata?: Record<string, string>;
  payload?: Uint8Array;
}

/** One frame body: exactly one field is set (unset ones decode as null). */
export interface WireFrame {
  request?: WireRequest | null;
  response?: WireResponse | null;
  cancel?: { callId: number } | null;
}

/** Encode a frame body. */
export function encodeRpcFrame(frame: WireFrame): Uint8Array {
  return FrameType.encode(frame as unknown as protobuf.Message).finish();
}

/** Decode a frame body; throws on bytes that do not parse. Bytes fields are views into `body`. */
export function decodeRpcFrame(body: Uint8Array): WireFrame {
  return FrameType.decode(body) as unknown as WireFrame;
}
