/**
 * The C++ seed registry's wire messages (dwt_src `messages.proto`, package `dwt_proto`, proto3), both directions:
 * a server decodes requests and encodes responses; the tests' emulations of the seed's client library and
 * `client_cli` do the reverse. Nesting, as the seed sends it (no length prefix on TCP; see seed_request_boundary.ts):
 *
 * ```text
 * WrappedRequest  { 1 requestType: MessageType, 2 requestParameters: bytes }
 *   Connection: no parameters                          → WrappedResponse { 1 Connection, 2 ConnectionResponse }
 *   Service:    ServiceRequest { 1 serviceType: ServiceType, 2 serviceParameters: bytes, 3 sessionId: uint64 }
 *               serviceParameters = <Op>NodeRequest     → WrappedResponse { 1 Service, 2 ServiceResponse }
 * ServiceResponse { 1 serviceType (echoed), 2 data: <Op>NodeResponse }
 * Error reply     WrappedResponse { 1 Error, 2 data: the reason as text }
 * UDP heartbeat   HeartbeatMessage { 1 sessionId: uint64 }            e.g. 08 <varint id>, at most 11 bytes
 * Connection request bytes: 08 01; reply 08 01 12 <len> 08 <varint sessionId>
 * ```
 *
 * | message              | fields                                                                        |
 * |----------------------|-------------------------------------------------------------------------------|
 * | CreateNodeRequest    | 1 path, 3 nodeData, 4 nodeType (no field 2)                                   |
 * | Get/Delete/Ls/Stat/ExistsNodeRequest | 1 path                                                        |
 * | SetNodeRequest       | 1 path, 3 nodeData                                                            |
 * | Create/Set/DeleteNodeResponse | 1 success, 2 errmsg                                                  |
 * | GetNodeResponse      | 1 success, 2 nodeData, 3 errmsg                                               |
 * | LsNodeResponse       | 1 success, 2 children (repeated bytes), 3 errmsg                              |
 * | StatNodeResponse     | 1 success, 2 state: NodeState, 3 errmsg                                       |
 * | NodeState            | 1 ephemeralOwner uint64, 2 numChildren int32, 3 dataLength int32, 4 NodeType  |
 * | ExistsNodeResponse   | 1 success, 2 exist, 3 errmsg                                                  |
 *
 * @module
 */

import { bytesField, ProtoWriter, readFields, repeatedBytesField, varintField } from "./_proto_wire.ts";

/** The seed's `MessageType`. */
export const SeedMessageType = { NOTHING: 0, CONNECTION: 1, SERVICE: 2, ERROR: 3 } as const;
/** One of the {@linkcode SeedMessageType} numbers. */
export type SeedMessageType = typeof SeedMessageType[keyof typeof SeedMessageType];

/** The seed's `ServiceType`: the seven operations. */
export const SeedServiceType = {
  NOTHING: 0,
  CREATE: 1,
  GET: 2,
  SET: 3,
  DELETE: 4,
  LS: 5,
  STAT: 6,
  EXISTS: 7,
} as const;
/** One of the {@linkcode SeedServiceType} numbers. */
export type SeedServiceType = typeof SeedServiceType[keyof typeof SeedServiceType];

/** The seed's `NodeType`. */
export const SeedNodeType = { NOTHING: 0, PERSISTENT: 1, EPHEMERAL: 2 } as const;

/** A `WrappedRequest` or `WrappedResponse`: a type and its nested bytes. */
export interface SeedWrapped {
  type: number;
  data: Uint8Array;
}

/** A `ServiceRequest`. */
export interface SeedServiceRequest {
  serviceType: number;
  parameters: Uint8Array;
  sessionId: bigint;
}

/** An operation request: the fields of every `<Op>NodeRequest` (path only, for most). */
export interface SeedNodeRequest {
  path: Uint8Array;
  nodeData: Uint8Array;
  nodeType: number;
}

/** The seed's `NodeState`. */
export interface SeedNodeState {
  ephemeralOwner: bigint;
  numChildren: number;
  dataLength: number;
  nodeType: number;
}

/** An operation response: the fields of every `<Op>NodeResponse` (each operation uses its own). */
export interface SeedNodeResponse {
  success: boolean;
  errmsg: string;
  nodeData?: Uint8Array;
  children?: string[];
  state?: SeedNodeState;
  exist?: boolean;
}

const decoder = new TextDecoder();

/** Encode a `WrappedRequest` or `WrappedResponse` (same field layout). */
export function encodeSeedWrapped(message: SeedWrapped): Uint8Array {
  return new ProtoWriter().varint(1, message.type).bytes(2, message.data).finish();
}

/** Decode a `WrappedRequest` or `WrappedResponse`; throws on bytes that do not parse. */
export function decodeSeedWrapped(bytes: Uint8Array): SeedWrapped {
  const fields = readFields(bytes);
  return { type: Number(varintField(fields, 1) & 0xffff_ffffn), data: bytesField(fields, 2) };
}

/** Encode a `ServiceRequest`. */
export function encodeSeedServiceRequest(request: SeedServiceRequest): Uint8Array {
  return new ProtoWriter().varint(1, request.serviceType).bytes(2, request.parameters).varint(3, request.sessionId)
    .finish();
}

/** Decode a `ServiceRequest`; throws on bytes that do not parse. */
export function decodeSeedServiceRequest(bytes: Uint8Array): SeedServiceRequest {
  const fields = readFields(bytes);
  return {
    serviceType: Number(varintField(fields, 1) & 0xffff_ffffn),
    parameters: bytesField(fields, 2),
    sessionId: varintField(fields, 3),
  };
}

/** Encode a `ServiceResponse` (same layout as the wrapped messages: type, data). */
export const encodeSeedServiceResponse: (message: SeedWrapped) => Uint8Array = encodeSeedWrapped;
/** Decode a `ServiceResponse`. */
export const decodeSeedServiceResponse: (bytes: Uint8Array) => SeedWrapped = decodeSeedWrapped;

/** Encode an `<Op>NodeRequest` (fields 3 and 4 only where the operation has them: create, set). */
export function encodeSeedNodeRequest(
  request: { path: Uint8Array | string; nodeData?: Uint8Array; nodeType?: number },
): Uint8Array {
  return new ProtoWriter().bytes(1, request.path).bytes(3, request.nodeData ?? new Uint8Array())
    .varint(4, request.nodeType ?? 0).finish();
}

/** Decode an `<Op>NodeRequest`; throws on bytes that do not parse. */
export function decodeSeedNodeRequest(bytes: Uint8Array): SeedNodeRequest {
  const fields = readFields(bytes);
  return {
    path: bytesField(fields, 1),
    nodeData: bytesField(fields, 3),
    nodeType: Number(BigInt.asIntN(32, varintField(fields, 4))),
  };
}

/** Encode a `ConnectionResponse` or `HeartbeatMessage` (both `{ 1 sessionId: uint64 }`). */
export function encodeSeedSessionId(sessionId: bigint): Uint8Array {
  return new ProtoWriter().varint(1, sessionId).finish();
}

/** Decode a `ConnectionResponse` or `HeartbeatMessage`; throws on bytes that do not parse. */
export function decodeSeedSessionId(bytes: Uint8Array): bigint {
  return varintField(readFields(bytes), 1);
}

/** Encode the response of operation `serviceType` (its own field numbers). */
export function encodeSeedNodeResponse(serviceType: number, response: SeedNodeResponse): Uint8Array {
  const writer = new ProtoWriter().varint(1, response.success);
  switch (serviceType) {
    case SeedServiceType.GET:
      return writer.bytes(2, response.nodeData ?? new Uint8Array()).bytes(3, response.errmsg).finish();
    case SeedServiceType.LS:
      for (const child of response.children ?? []) writer.bytesAlways(2, new TextEncoder().encode(child));
      return writer.bytes(3, response.errmsg).finish();
    case SeedServiceType.STAT: {
      const state = response.state;
      if (state !== undefined) {
        writer.bytes(
          2,
          new ProtoWriter().varint(1, state.ephemeralOwner).varint(2, state.numChildren).varint(3, state.dataLength)
            .varint(4, state.nodeType).finish(),
        );
      }
      return writer.bytes(3, response.errmsg).finish();
    }
    case SeedServiceType.EXISTS:
      return writer.varint(2, response.exist ?? false).bytes(3, response.errmsg).finish();
    default:
      return writer.bytes(2, response.errmsg).finish();
  }
}

/** Decode the response of operation `serviceType`; throws on bytes that do not parse. */
export function decodeSeedNodeResponse(serviceType: number, bytes: Uint8Array): SeedNodeResponse {
  const fields = readFields(bytes);
  const success = varintField(fields, 1) !== 0n;
  switch (serviceType) {
    case SeedServiceType.GET:
      return { success, nodeData: bytesField(fields, 2), errmsg: decoder.decode(bytesField(fields, 3)) };
    case SeedServiceType.LS:
      return {
        success,
        children: repeatedBytesField(fields, 2).map((name) => decoder.decode(name)),
        errmsg: decoder.decode(bytesField(fields, 3)),
      };
    case SeedServiceType.STAT: {
      const state = readFields(bytesField(fields, 2));
      return {
        success,
        state: {
          ephemeralOwner: varintField(state, 1),
          numChildren: Number(BigInt.asIntN(32, varintField(state, 2))),
          dataLength: Number(BigInt.asIntN(32, varintField(state, 3))),
          nodeType: Number(varintField(state, 4)),
        },
        errmsg: decoder.decode(bytesField(fields, 3)),
      };
    }
    case SeedServiceType.EXISTS:
      return { success, exist: varintField(fields, 2) !== 0n, errmsg: decoder.decode(bytesField(fields, 3)) };
    default:
      return { success, errmsg: decoder.decode(bytesField(fields, 2)) };
  }
}
