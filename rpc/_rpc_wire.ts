/**
 * The RPC envelope of proto/rpc.proto, encoded and decoded by hand: the same protobuf bytes any protobuf library
 * writes and reads (rpc_codec_test.ts checks both directions against protobufjs), without a message object, a
 * Writer or a copy per frame. The envelope is on every call's path twice per side; done by protobufjs it cost
 * more than the rest of a small call's framing.
 *
 * This file holds the wire's types and field tags; `_rpc_encoder.ts` writes frames, `_rpc_decoder.ts` reads them.
 *
 * Frames go straight into the connection's output buffer: a small header (length prefix and envelope fields)
 * from a reused scratch array, then the payload bytes. Decoding reads fields in place; the payload comes back as
 * a view into the frame.
 *
 * @module
 */

/** A request as it travels. */
export interface WireRequest {
  callId: number;
  service: string;
  method: string;
  /** Milliseconds the caller still waits; 0 or absent: no deadline. */
  timeoutMs?: number;
  metadata?: Record<string, string>;
  payload?: Uint8Array;
  /** 0 or absent: unary; else the {@linkcode StreamKind} this request opens. */
  stream?: number;
  /** A stream's receive window of the caller, in bytes; 0 or absent: {@linkcode DEFAULT_WINDOW_BYTES}. */
  window?: number;
}

/** A response as it travels. */
export interface WireResponse {
  callId: number;
  /** 0 or absent: OK; else a gRPC status code. */
  status?: number;
  errorMessage?: string;
  metadata?: Record<string, string>;
  payload?: Uint8Array;
}

/** A drain (GOAWAY) as it travels. */
export interface WireDrain {
  /** The highest call id the sender received (and will still answer); 0: none. */
  lastCallId?: number;
  /** 0: a graceful drain; else the gRPC status of a protocol error, and the connection closes. */
  status?: number;
  reason?: string;
  /** How long calls in flight may still take, in milliseconds; 0: unknown. */
  graceMs?: number;
}

/** A keepalive ping (or its answer) as it travels. */
export interface WirePing {
  /** Opaque: echoed in the ack. */
  data?: number;
  ack?: boolean;
}

/** One frame body: exactly one field is set. */
export interface WireFrame {
  request?: WireRequest | null;
  response?: WireResponse | null;
  cancel?: { callId: number } | null;
  drain?: WireDrain | null;
  ping?: WirePing | null;
  message?: { callId: number; payload?: Uint8Array } | null;
  halfClose?: { callId: number } | null;
  credit?: { callId: number; bytes?: number } | null;
}

/** What a frame carries: RpcFrame's `kind` field numbers. */
export const FrameKind = {
  REQUEST: 1,
  RESPONSE: 2,
  CANCEL: 3,
  DRAIN: 4,
  PING: 5,
  MESSAGE: 6,
  HALF_CLOSE: 7,
  CREDIT: 8,
} as const;

/** A request's `stream` field: which kind of stream it opens (0: a unary call). */
export const StreamKind = { UNARY: 0, CLIENT: 1, SERVER: 2, BIDI: 3 } as const;

/** One of {@linkcode StreamKind}. */
export type StreamKind = typeof StreamKind[keyof typeof StreamKind];

/** A stream's receive window when the opening request names none (HTTP/2's initial window, rounded). */
export const DEFAULT_WINDOW_BYTES = 65_536;

/** What a stream's message costs its receiver's credit besides its payload (proto/rpc.proto, "Streams"). */
export const MESSAGE_OVERHEAD_BYTES = 16;

/** The most credit a sender may hold on one stream (HTTP/2's limit too). */
export const MAX_CREDIT_BYTES = 0x7fff_ffff;

/** One of {@linkcode FrameKind}. */
export type FrameKind = typeof FrameKind[keyof typeof FrameKind];

/**
 * A decoded frame: the fields of whichever message it carries (the others keep their defaults). `payload` is a
 * view into the frame body, valid while the body is.
 */
export class DecodedFrame {
  kind: FrameKind | 0 = 0;
  callId = 0;
  service = "";
  method = "";
  timeoutMs = 0;
  /** Request: the {@linkcode StreamKind} it opens (0: unary). */
  stream = 0;
  /** Request: the caller's receive window for the stream (0: the default). */
  window = 0;
  /** Credit: how many more bytes the peer may send. */
  credit = 0;
  status = 0;
  errorMessage = "";
  metadata: Record<string, string> | undefined = undefined;
  /** Bytes of metadata as counted against the limit (key + value + 32 per entry, HTTP/2's measure). */
  metadataBytes = 0;
  /** Entries past the decoder's `maxMetadataBytes` were skipped, not decoded. */
  metadataOverLimit = false;
  payload: Uint8Array = EMPTY_BYTES;
  /** Drain: the highest call id the peer will still answer. */
  lastCallId = 0;
  /** Drain: how long the peer gives calls in flight, in milliseconds. */
  graceMs = 0;
  /** Ping: the opaque data, and whether this is the answer. */
  pingData = 0;
  ack = false;
}

/** The bytes of a frame body do not parse as an RpcFrame. */
export class WireFormatError extends Error {
  /** Create the error. */
  constructor(message: string) {
    super(message);
    this.name = "WireFormatError";
  }
}

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

// Wire types.
export const VARINT = 0;
export const FIXED64 = 1;
export const LEN = 2;
export const FIXED32 = 5;

// Tags (field number << 3 | wire type) of the envelope's fields.
export const TAG_FRAME_REQUEST = 0x0a;
export const TAG_FRAME_RESPONSE = 0x12;
export const TAG_FRAME_CANCEL = 0x1a;
export const TAG_FRAME_DRAIN = 0x22;
export const TAG_FRAME_PING = 0x2a;
export const TAG_FRAME_MESSAGE = 0x32;
export const TAG_FRAME_HALF_CLOSE = 0x3a;
export const TAG_FRAME_CREDIT = 0x42;
export const TAG_REQUEST_CALL_ID = 0x08;
export const TAG_REQUEST_SERVICE = 0x12;
export const TAG_REQUEST_METHOD = 0x1a;
export const TAG_REQUEST_TIMEOUT = 0x20;
export const TAG_REQUEST_METADATA = 0x2a;
export const TAG_REQUEST_PAYLOAD = 0x32;
export const TAG_REQUEST_STREAM = 0x38;
export const TAG_REQUEST_WINDOW = 0x40;
export const TAG_RESPONSE_CALL_ID = 0x08;
export const TAG_RESPONSE_STATUS = 0x10;
export const TAG_RESPONSE_ERROR = 0x1a;
export const TAG_RESPONSE_METADATA = 0x22;
export const TAG_RESPONSE_PAYLOAD = 0x2a;
export const TAG_CANCEL_CALL_ID = 0x08;
export const TAG_DRAIN_LAST_CALL_ID = 0x08;
export const TAG_DRAIN_STATUS = 0x10;
export const TAG_DRAIN_REASON = 0x1a;
export const TAG_DRAIN_GRACE = 0x20;
export const TAG_PING_DATA = 0x08;
export const TAG_PING_ACK = 0x10;
export const TAG_MESSAGE_CALL_ID = 0x08;
export const TAG_MESSAGE_PAYLOAD = 0x12;
export const TAG_HALF_CLOSE_CALL_ID = 0x08;
export const TAG_CREDIT_CALL_ID = 0x08;
export const TAG_CREDIT_BYTES = 0x10;
export const TAG_ENTRY_KEY = 0x0a;
export const TAG_ENTRY_VALUE = 0x12;
