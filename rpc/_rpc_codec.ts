/**
 * The RPC envelope of proto/rpc.proto, encoded and decoded by hand: the same protobuf bytes any protobuf library
 * writes and reads (rpc_codec_test.ts checks both directions against protobufjs), without a message object, a
 * Writer or a copy per frame. The envelope is on every call's path twice per side; done by protobufjs it cost
 * more than the rest of a small call's framing.
 *
 * Frames go straight into the connection's output buffer: a small header (length prefix and envelope fields)
 * from a reused scratch array, then the payload bytes. Decoding reads fields in place; the payload comes back as
 * a view into the frame.
 *
 * @module
 */

import type { TcpConnection } from "../reactor/tcp_connection.ts";

/** A request as it travels. */
export interface WireRequest {
  callId: number;
  service: string;
  method: string;
  /** Milliseconds the caller still waits; 0 or absent: no deadline. */
  timeoutMs?: number;
  metadata?: Record<string, string>;
  payload?: Uint8Array;
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
}

/** What a frame carries: RpcFrame's `kind` field numbers. */
export const FrameKind = { REQUEST: 1, RESPONSE: 2, CANCEL: 3, DRAIN: 4, PING: 5 } as const;

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

const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

// Wire types.
const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;
const FIXED32 = 5;

// Tags (field number << 3 | wire type) of the envelope's fields.
const TAG_FRAME_REQUEST = 0x0a;
const TAG_FRAME_RESPONSE = 0x12;
const TAG_FRAME_CANCEL = 0x1a;
const TAG_FRAME_DRAIN = 0x22;
const TAG_FRAME_PING = 0x2a;
const TAG_REQUEST_CALL_ID = 0x08;
const TAG_REQUEST_SERVICE = 0x12;
const TAG_REQUEST_METHOD = 0x1a;
const TAG_REQUEST_TIMEOUT = 0x20;
const TAG_REQUEST_METADATA = 0x2a;
const TAG_REQUEST_PAYLOAD = 0x32;
const TAG_RESPONSE_CALL_ID = 0x08;
const TAG_RESPONSE_STATUS = 0x10;
const TAG_RESPONSE_ERROR = 0x1a;
const TAG_RESPONSE_METADATA = 0x22;
const TAG_RESPONSE_PAYLOAD = 0x2a;
const TAG_CANCEL_CALL_ID = 0x08;
const TAG_DRAIN_LAST_CALL_ID = 0x08;
const TAG_DRAIN_STATUS = 0x10;
const TAG_DRAIN_REASON = 0x1a;
const TAG_DRAIN_GRACE = 0x20;
const TAG_PING_DATA = 0x08;
const TAG_PING_ACK = 0x10;
const TAG_ENTRY_KEY = 0x0a;
const TAG_ENTRY_VALUE = 0x12;

// --- encoding ---

const textEncoder = new TextEncoder();

function varintSize(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x20_0000 ? 3 : value < 0x1000_0000 ? 4 : 5;
}

/** UTF-8 length of a string (what `TextEncoder` would produce; lone surrogates count as U+FFFD, 3 bytes). */
function utf8Length(text: string): number {
  let length = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) {
      length += 1;
    } else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        length += 2; // a pair: 2 UTF-16 units, 4 bytes
        i++;
      } else {
        length += 2;
      }
    } else {
      length += 2;
    }
  }
  return length;
}

// Strings that repeat on every call (service and method names) are encoded once.
const nameBytes = new Map<string, Uint8Array>();
const MAX_CACHED_NAMES = 1024;

function encodedName(name: string): Uint8Array {
  let bytes = nameBytes.get(name);
  if (bytes === undefined) {
    bytes = textEncoder.encode(name);
    if (nameBytes.size >= MAX_CACHED_NAMES) nameBytes.clear();
    nameBytes.set(name, bytes);
  }
  return bytes;
}

/** Writes the envelope part of frames into one reused, growing array. */
class ScratchWriter {
  bytes = new Uint8Array(512);
  view = new DataView(this.bytes.buffer);
  pos = 0;

  reset(capacity: number): void {
    capacity += COPY_PAYLOAD_BYTES; // room for a small payload behind the envelope
    if (capacity > this.bytes.length) {
      this.bytes = new Uint8Array(Math.max(capacity, this.bytes.length * 2));
      this.view = new DataView(this.bytes.buffer);
    }
    this.pos = 0;
  }

  uint32BE(value: number): void {
    this.view.setUint32(this.pos, value);
    this.pos += 4;
  }

  byte(value: number): void {
    this.bytes[this.pos++] = value;
  }

  varint(value: number): void {
    const bytes = this.bytes;
    while (value >= 0x80) {
      bytes[this.pos++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    bytes[this.pos++] = value;
  }

  raw(data: Uint8Array): void {
    this.bytes.set(data, this.pos);
    this.pos += data.length;
  }

  string(text: string, length: number): void {
    if (length === text.length) {
      // ASCII: one byte per unit.
      const bytes = this.bytes;
      for (let i = 0; i < length; i++) bytes[this.pos + i] = text.charCodeAt(i);
    } else {
      textEncoder.encodeInto(text, this.bytes.subarray(this.pos, this.pos + length));
    }
    this.pos += length;
  }
}

const scratch = new ScratchWriter();

// Lengths of the metadata being written, per entry: key, value and the entry message (filled by metadataSize,
// read by writeMetadata, so nothing is measured twice).
const lengths: number[] = [];

// Size of the metadata map's entries as fields of the message being written.
function metadataSize(metadata: Record<string, string> | undefined): number {
  lengths.length = 0;
  if (metadata === undefined) return 0;
  let size = 0;
  for (const key in metadata) {
    const value = metadata[key];
    if (typeof value !== "string") continue;
    const keyLength = utf8Length(key);
    const valueLength = utf8Length(value);
    const entry = (keyLength > 0 ? 1 + varintSize(keyLength) + keyLength : 0) +
      (valueLength > 0 ? 1 + varintSize(valueLength) + valueLength : 0);
    lengths.push(keyLength, valueLength, entry);
    size += 1 + varintSize(entry) + entry;
  }
  return size;
}

// The entries metadataSize measured, each as field `tag` (a map entry message: key = 1, value = 2).
function writeMetadata(tag: number, metadata: Record<string, string> | undefined): void {
  if (metadata === undefined) return;
  let i = 0;
  for (const key in metadata) {
    const value = metadata[key];
    if (typeof value !== "string") continue;
    const keyLength = lengths[i++]!;
    const valueLength = lengths[i++]!;
    scratch.byte(tag);
    scratch.varint(lengths[i++]!);
    if (keyLength > 0) {
      scratch.byte(TAG_ENTRY_KEY);
      scratch.varint(keyLength);
      scratch.string(key, keyLength);
    }
    if (valueLength > 0) {
      scratch.byte(TAG_ENTRY_VALUE);
      scratch.varint(valueLength);
      scratch.string(value, valueLength);
    }
  }
}

function clampUint32(value: number): number {
  return value >= 0xffff_ffff ? 0xffff_ffff : value > 0 ? value >>> 0 : 0;
}

/**
 * A request's envelope fields as the encoder reads them: a caller's TransportCall has them (no copy per call), and
 * so does a {@linkcode WireRequest}.
 */
export interface RequestHead {
  readonly callId: number;
  readonly service: string;
  readonly method: string;
  readonly metadata?: Record<string, string> | undefined;
}

/** A response's envelope fields as the encoder reads them: a served call (CallAnswer) has them. */
export interface ResponseHead {
  readonly callId: number;
  /** 0: OK. */
  readonly status: number;
  readonly errorMessage: string;
  readonly answerMetadata: Record<string, string> | undefined;
  readonly answerPayload: Uint8Array;
}

// The request frame up to the payload bytes into the scratch; returns the body size (without the length prefix).
function writeRequestHead(request: RequestHead, timeoutMs: number, payloadLength: number): number {
  const { callId, metadata } = request;
  const service = encodedName(request.service);
  const method = encodedName(request.method);
  const timeout = clampUint32(timeoutMs);
  const headSize = (callId !== 0 ? 1 + varintSize(callId) : 0) +
    (service.length > 0 ? 1 + varintSize(service.length) + service.length : 0) +
    (method.length > 0 ? 1 + varintSize(method.length) + method.length : 0) +
    (timeout > 0 ? 1 + varintSize(timeout) : 0) +
    metadataSize(metadata) +
    (payloadLength > 0 ? 1 + varintSize(payloadLength) : 0);
  const inner = headSize + payloadLength;
  const body = 1 + varintSize(inner) + inner;
  scratch.reset(4 + body - payloadLength);
  scratch.uint32BE(body);
  scratch.byte(TAG_FRAME_REQUEST);
  scratch.varint(inner);
  if (callId !== 0) {
    scratch.byte(TAG_REQUEST_CALL_ID);
    scratch.varint(callId);
  }
  if (service.length > 0) {
    scratch.byte(TAG_REQUEST_SERVICE);
    scratch.varint(service.length);
    scratch.raw(service);
  }
  if (method.length > 0) {
    scratch.byte(TAG_REQUEST_METHOD);
    scratch.varint(method.length);
    scratch.raw(method);
  }
  if (timeout > 0) {
    scratch.byte(TAG_REQUEST_TIMEOUT);
    scratch.varint(timeout);
  }
  writeMetadata(TAG_REQUEST_METADATA, metadata);
  if (payloadLength > 0) {
    scratch.byte(TAG_REQUEST_PAYLOAD);
    scratch.varint(payloadLength);
  }
  return body;
}

// The response frame up to the payload bytes into the scratch; returns the body size.
function writeResponseHead(response: ResponseHead, payloadLength: number): number {
  const { callId, status, errorMessage, answerMetadata: metadata } = response;
  const errorLength = utf8Length(errorMessage);
  const headSize = (callId !== 0 ? 1 + varintSize(callId) : 0) +
    (status !== 0 ? 1 + varintSize(status) : 0) +
    (errorLength > 0 ? 1 + varintSize(errorLength) + errorLength : 0) +
    metadataSize(metadata) +
    (payloadLength > 0 ? 1 + varintSize(payloadLength) : 0);
  const inner = headSize + payloadLength;
  const body = 1 + varintSize(inner) + inner;
  scratch.reset(4 + body - payloadLength);
  scratch.uint32BE(body);
  scratch.byte(TAG_FRAME_RESPONSE);
  scratch.varint(inner);
  if (callId !== 0) {
    scratch.byte(TAG_RESPONSE_CALL_ID);
    scratch.varint(callId);
  }
  if (status !== 0) {
    scratch.byte(TAG_RESPONSE_STATUS);
    scratch.varint(status);
  }
  if (errorLength > 0) {
    scratch.byte(TAG_RESPONSE_ERROR);
    scratch.varint(errorLength);
    scratch.string(errorMessage, errorLength);
  }
  writeMetadata(TAG_RESPONSE_METADATA, metadata);
  if (payloadLength > 0) {
    scratch.byte(TAG_RESPONSE_PAYLOAD);
    scratch.varint(payloadLength);
  }
  return body;
}

function writeCancel(callId: number): number {
  const inner = callId !== 0 ? 1 + varintSize(callId) : 0;
  const body = 1 + varintSize(inner) + inner;
  scratch.reset(4 + body);
  scratch.uint32BE(body);
  scratch.byte(TAG_FRAME_CANCEL);
  scratch.varint(inner);
  if (callId !== 0) {
    scratch.byte(TAG_CANCEL_CALL_ID);
    scratch.varint(callId);
  }
  return body;
}

function writeDrain(drain: WireDrain): number {
  const lastCallId = drain.lastCallId ?? 0;
  const status = drain.status ?? 0;
  const reason = drain.reason ?? "";
  const graceMs = clampUint32(drain.graceMs ?? 0);
  const reasonLength = utf8Length(reason);
  const inner = (lastCallId !== 0 ? 1 + varintSize(lastCallId) : 0) + (status !== 0 ? 1 + varintSize(status) : 0) +
    (reasonLength > 0 ? 1 + varintSize(reasonLength) + reasonLength : 0) +
    (graceMs !== 0 ? 1 + varintSize(graceMs) : 0);
  const body = 1 + varintSize(inner) + inner;
  scratch.reset(4 + body);
  scratch.uint32BE(body);
  scratch.byte(TAG_FRAME_DRAIN);
  scratch.varint(inner);
  if (lastCallId !== 0) {
    scratch.byte(TAG_DRAIN_LAST_CALL_ID);
    scratch.varint(lastCallId);
  }
  if (status !== 0) {
    scratch.byte(TAG_DRAIN_STATUS);
    scratch.varint(status);
  }
  if (reasonLength > 0) {
    scratch.byte(TAG_DRAIN_REASON);
    scratch.varint(reasonLength);
    scratch.string(reason, reasonLength);
  }
  if (graceMs !== 0) {
    scratch.byte(TAG_DRAIN_GRACE);
    scratch.varint(graceMs);
  }
  return body;
}

function writePing(data: number, ack: boolean): number {
  const inner = (data !== 0 ? 1 + varintSize(data) : 0) + (ack ? 2 : 0);
  const body = 1 + varintSize(inner) + inner;
  scratch.reset(4 + body);
  scratch.uint32BE(body);
  scratch.byte(TAG_FRAME_PING);
  scratch.varint(inner);
  if (data !== 0) {
    scratch.byte(TAG_PING_DATA);
    scratch.varint(data);
  }
  if (ack) {
    scratch.byte(TAG_PING_ACK);
    scratch.byte(1);
  }
  return body;
}

// Payloads up to this size are copied behind the envelope in the scratch, so the frame is one send.
const COPY_PAYLOAD_BYTES = 1024;

// The scratch's bytes and then the payload, as one frame (TcpConnection coalesces them into one write).
function sendScratch(connection: TcpConnection, payload: Uint8Array): void {
  if (payload.length <= COPY_PAYLOAD_BYTES) {
    scratch.raw(payload);
    connection.send(scratch.bytes.subarray(0, scratch.pos));
    return;
  }
  connection.send(scratch.bytes.subarray(0, scratch.pos));
  connection.send(payload);
}

/**
 * Send a request frame (length prefix included) unless its body would exceed `maxBodyBytes`. Returns the body's
 * size: compare it with `maxBodyBytes` to learn whether it was sent.
 */
export function sendRequest(
  connection: TcpConnection,
  request: RequestHead & { readonly payload: Uint8Array },
  timeoutMs: number,
  maxBodyBytes: number,
): number {
  const payload = request.payload;
  const body = writeRequestHead(request, timeoutMs, payload.length);
  if (body <= maxBodyBytes) sendScratch(connection, payload);
  return body;
}

/**
 * Send a response frame (length prefix included) unless its body would exceed `maxBodyBytes`. Returns the body's
 * size: compare it with `maxBodyBytes` to learn whether it was sent.
 */
export function sendResponse(connection: TcpConnection, response: ResponseHead, maxBodyBytes: number): number {
  const payload = response.answerPayload;
  const body = writeResponseHead(response, payload.length);
  if (body <= maxBodyBytes) sendScratch(connection, payload);
  return body;
}

/** Send a cancel frame for `callId`. */
export function sendCancel(connection: TcpConnection, callId: number): void {
  writeCancel(callId);
  sendScratch(connection, EMPTY_BYTES);
}

/** Send a drain frame (gRPC's GOAWAY): see RpcDrain in proto/rpc.proto. */
export function sendDrain(connection: TcpConnection, drain: WireDrain): void {
  writeDrain(drain);
  sendScratch(connection, EMPTY_BYTES);
}

/** Send a keepalive ping, or with `ack` the answer to one (echoing its `data`). */
export function sendPing(connection: TcpConnection, data: number, ack: boolean): void {
  writePing(data >>> 0, ack);
  sendScratch(connection, EMPTY_BYTES);
}

/** Encode a frame body (no length prefix) into a new array: for tests, tools and load generators. */
export function encodeRpcFrame(frame: WireFrame): Uint8Array {
  let payload: Uint8Array = EMPTY_BYTES;
  let body: number;
  if (frame.request) {
    const r = frame.request;
    payload = r.payload ?? EMPTY_BYTES;
    body = writeRequestHead(r, r.timeoutMs ?? 0, payload.length);
  } else if (frame.response) {
    const r = frame.response;
    payload = r.payload ?? EMPTY_BYTES;
    body = writeResponseHead({
      callId: r.callId,
      status: r.status ?? 0,
      errorMessage: r.errorMessage ?? "",
      answerMetadata: r.metadata,
      answerPayload: payload,
    }, payload.length);
  } else if (frame.cancel) {
    body = writeCancel(frame.cancel.callId);
  } else if (frame.drain) {
    body = writeDrain(frame.drain);
  } else if (frame.ping) {
    body = writePing((frame.ping.data ?? 0) >>> 0, frame.ping.ack ?? false);
  } else {
    return new Uint8Array(0);
  }
  const bytes = new Uint8Array(body);
  bytes.set(scratch.bytes.subarray(4, scratch.pos));
  bytes.set(payload, scratch.pos - 4);
  return bytes;
}

// --- decoding ---

const textDecoder = new TextDecoder();

// The reader's state: one frame is decoded at a time (decoding never yields).
let input: Uint8Array = EMPTY_BYTES;
let pos = 0;
let metadataLimit = Infinity;

function fail(what: string): never {
  throw new WireFormatError(`Cannot decode RpcFrame: ${what} at byte ${pos}`);
}

function readVarint(end: number): number {
  if (pos < end && input[pos]! < 0x80) return input[pos++]!;
  let result = 0;
  for (let shift = 0; shift < 70; shift += 7) {
    if (pos >= end) fail("truncated varint");
    const byte = input[pos++]!;
    // uint32 fields keep the low 32 bits of longer varints, as protobuf specifies.
    if (shift < 32) result |= (byte & 0x7f) << shift;
    if (byte < 0x80) return result >>> 0;
  }
  return fail("varint longer than 10 bytes");
}

function readLength(end: number): number {
  const length = readVarint(end);
  if (length > end - pos) fail(`length ${length} past the end`);
  return length;
}

function skipField(wireType: number, end: number): void {
  switch (wireType) {
    case VARINT:
      readVarint(end);
      return;
    case FIXED64:
      if (end - pos < 8) fail("truncated fixed64");
      pos += 8;
      return;
    case LEN: {
      const length = readLength(end); // not `pos += readLength(end)`: that adds to pos as it was before the read
      pos += length;
      return;
    }
    case FIXED32:
      if (end - pos < 4) fail("truncated fixed32");
      pos += 4;
      return;
    default:
      fail(`unsupported wire type ${wireType}`);
  }
}

function expectWireType(tag: number, wireType: number): void {
  if ((tag & 7) !== wireType) fail(`field ${tag >>> 3} has wire type ${tag & 7}, expected ${wireType}`);
}

// Service and method names repeat on every call: a small direct-mapped cache turns their bytes back into the
// same strings without decoding (and keeps the hash the service lookup needs).
const NAME_SLOTS = 64;
const cachedNameBytes: Array<Uint8Array | undefined> = new Array(NAME_SLOTS).fill(undefined);
const cachedNames: string[] = new Array(NAME_SLOTS).fill("");

function readName(length: number): string {
  if (length === 0) return "";
  if (length > 128) return readString(length);
  const start = pos;
  const slot = (length * 31 + input[start]! + input[start + length - 1]! * 7) & (NAME_SLOTS - 1);
  const cached = cachedNameBytes[slot];
  if (cached !== undefined && cached.length === length) {
    let same = true;
    for (let i = 0; i < length; i++) {
      if (cached[i] !== input[start + i]) {
        same = false;
        break;
      }
    }
    if (same) {
      pos += length;
      return cachedNames[slot]!;
    }
  }
  const name = readString(length);
  cachedNameBytes[slot] = input.slice(start, start + length);
  cachedNames[slot] = name;
  return name;
}

function readString(length: number): string {
  const start = pos;
  pos += length;
  if (length <= 32) {
    let text = "";
    for (let i = start; i < start + length; i++) {
      const byte = input[i]!;
      if (byte >= 0x80) return textDecoder.decode(input.subarray(start, start + length));
      text += String.fromCharCode(byte);
    }
    return text;
  }
  return textDecoder.decode(input.subarray(start, start + length));
}

function setEntry(metadata: Record<string, string>, key: string, value: string): void {
  // A key named __proto__ is data here, not the object's prototype.
  if (key === "__proto__") Object.defineProperty(metadata, key, { value, enumerable: true, writable: true });
  else metadata[key] = value;
}

// A view of the length-delimited bytes at `pos`.
function readBytes(end: number): Uint8Array {
  const length = readLength(end);
  const bytes = input.subarray(pos, pos + length);
  pos += length;
  return bytes;
}

// One map<string, string> entry (a length-delimited message) into frame.metadata.
function readMetadataEntry(frame: DecodedFrame, outerEnd: number): void {
  const length = readLength(outerEnd); // first: the entry starts where the length ends
  const end = pos + length;
  // Counted before anything is decoded: an entry past the limit is skipped whole, so a million of them cost a
  // million jumps, not a million strings.
  frame.metadataBytes += length + 32;
  if (frame.metadataBytes > metadataLimit) {
    frame.metadataOverLimit = true;
    pos = end;
    return;
  }
  let key = "";
  let value = "";
  while (pos < end) {
    const tag = readVarint(end);
    if (tag === TAG_ENTRY_KEY) key = readString(readLength(end));
    else if (tag === TAG_ENTRY_VALUE) value = readString(readLength(end));
    else if ((tag >>> 3) === 1 || (tag >>> 3) === 2) expectWireType(tag, LEN);
    else skipField(tag & 7, end);
  }
  setEntry(frame.metadata ??= {}, key, value);
}

function readRequest(frame: DecodedFrame, end: number): void {
  while (pos < end) {
    const tag = readVarint(end);
    switch (tag) {
      case TAG_REQUEST_CALL_ID:
        frame.callId = readVarint(end);
        break;
      case TAG_REQUEST_SERVICE:
        frame.service = readName(readLength(end));
        break;
      case TAG_REQUEST_METHOD:
        frame.method = readName(readLength(end));
        break;
      case TAG_REQUEST_TIMEOUT:
        frame.timeoutMs = readVarint(end);
        break;
      case TAG_REQUEST_METADATA:
        readMetadataEntry(frame, end);
        break;
      case TAG_REQUEST_PAYLOAD:
        frame.payload = readBytes(end);
        break;
      default:
        skipKnownOrUnknown(tag, 6, end);
    }
  }
}

function readResponse(frame: DecodedFrame, end: number): void {
  while (pos < end) {
    const tag = readVarint(end);
    switch (tag) {
      case TAG_RESPONSE_CALL_ID:
        frame.callId = readVarint(end);
        break;
      case TAG_RESPONSE_STATUS:
        frame.status = readVarint(end);
        break;
      case TAG_RESPONSE_ERROR:
        frame.errorMessage = readString(readLength(end));
        break;
      case TAG_RESPONSE_METADATA:
        readMetadataEntry(frame, end);
        break;
      case TAG_RESPONSE_PAYLOAD:
        frame.payload = readBytes(end);
        break;
      default:
        skipKnownOrUnknown(tag, 5, end);
    }
  }
}

function readCancel(frame: DecodedFrame, end: number): void {
  while (pos < end) {
    const tag = readVarint(end);
    if (tag === TAG_CANCEL_CALL_ID) frame.callId = readVarint(end);
    else skipKnownOrUnknown(tag, 1, end);
  }
}

function readDrain(frame: DecodedFrame, end: number): void {
  while (pos < end) {
    const tag = readVarint(end);
    if (tag === TAG_DRAIN_LAST_CALL_ID) frame.lastCallId = readVarint(end);
    else if (tag === TAG_DRAIN_STATUS) frame.status = readVarint(end);
    else if (tag === TAG_DRAIN_REASON) frame.errorMessage = readString(readLength(end));
    else if (tag === TAG_DRAIN_GRACE) frame.graceMs = readVarint(end);
    else skipKnownOrUnknown(tag, 4, end);
  }
}

function readPing(frame: DecodedFrame, end: number): void {
  while (pos < end) {
    const tag = readVarint(end);
    if (tag === TAG_PING_DATA) frame.pingData = readVarint(end);
    else if (tag === TAG_PING_ACK) frame.ack = readVarint(end) !== 0;
    else skipKnownOrUnknown(tag, 2, end);
  }
}

// A tag none of the cases took: a known field (1..lastField) with the wrong wire type does not parse; an unknown
// field is skipped, as protobuf requires.
function skipKnownOrUnknown(tag: number, lastField: number, end: number): void {
  const field = tag >>> 3;
  if (field === 0) fail("field number 0");
  if (field <= lastField) fail(`field ${field} has the wrong wire type ${tag & 7}`);
  skipField(tag & 7, end);
}

/**
 * Decode a frame body (without its length prefix). Throws a {@linkcode WireFormatError} on bytes that do not
 * parse. `kind` is 0 for a frame that carries none of the known messages (a newer peer's; ignore it). Metadata
 * entries past `maxMetadataBytes` (counted as key + value + 32 bytes per entry) are skipped undecoded and
 * `metadataOverLimit` is set.
 */
export function decodeRpcFrame(body: Uint8Array, maxMetadataBytes: number = Infinity): DecodedFrame {
  input = body;
  pos = 0;
  metadataLimit = maxMetadataBytes;
  const frame = new DecodedFrame();
  try {
    const end = body.length;
    while (pos < end) {
      const tag = readVarint(end);
      const field = tag >>> 3;
      if (field >= 1 && field <= 5) {
        expectWireType(tag, LEN);
        const length = readLength(end);
        const messageEnd = pos + length;
        // A later member of the oneof replaces an earlier one.
        if (frame.kind !== 0) Object.assign(frame, new DecodedFrame());
        frame.kind = field as FrameKind;
        if (field === 1) readRequest(frame, messageEnd);
        else if (field === 2) readResponse(frame, messageEnd);
        else if (field === 3) readCancel(frame, messageEnd);
        else if (field === 4) readDrain(frame, messageEnd);
        else readPing(frame, messageEnd);
      } else if (field === 0) {
        fail("field number 0");
      } else {
        skipField(tag & 7, end);
      }
    }
    return frame;
  } finally {
    input = EMPTY_BYTES; // do not keep the connection's buffer alive
  }
}
