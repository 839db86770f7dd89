/**
 * Writes the RPC envelope's frames (`_rpc_wire.ts`) straight into a connection's output buffer, from a reused
 * scratch array, with no message object and no copy of large payloads.
 *
 * @module
 */

import type { TcpConnection } from "../reactor/tcp_connection.ts";
import {
  EMPTY_BYTES,
  TAG_CANCEL_CALL_ID,
  TAG_CREDIT_BYTES,
  TAG_DRAIN_GRACE,
  TAG_DRAIN_LAST_CALL_ID,
  TAG_DRAIN_REASON,
  TAG_DRAIN_STATUS,
  TAG_ENTRY_KEY,
  TAG_ENTRY_VALUE,
  TAG_FRAME_CANCEL,
  TAG_FRAME_CREDIT,
  TAG_FRAME_DRAIN,
  TAG_FRAME_HALF_CLOSE,
  TAG_FRAME_MESSAGE,
  TAG_FRAME_PING,
  TAG_FRAME_REQUEST,
  TAG_FRAME_RESPONSE,
  TAG_MESSAGE_CALL_ID,
  TAG_MESSAGE_PAYLOAD,
  TAG_PING_ACK,
  TAG_PING_DATA,
  TAG_REQUEST_CALL_ID,
  TAG_REQUEST_METADATA,
  TAG_REQUEST_METHOD,
  TAG_REQUEST_PAYLOAD,
  TAG_REQUEST_SERVICE,
  TAG_REQUEST_STREAM,
  TAG_REQUEST_TIMEOUT,
  TAG_REQUEST_WINDOW,
  TAG_RESPONSE_CALL_ID,
  TAG_RESPONSE_ERROR,
  TAG_RESPONSE_METADATA,
  TAG_RESPONSE_PAYLOAD,
  TAG_RESPONSE_STATUS,
  type WireDrain,
  type WireFrame,
} from "./_rpc_wire.ts";

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
  if (lengths.length !== 0) lengths.length = 0; // a store to length is a slow path on JavaScriptCore (Bun)
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
function writeRequestHead(
  request: RequestHead,
  timeoutMs: number,
  payloadLength: number,
  stream = 0,
  window = 0,
): number {
  const { callId, metadata } = request;
  const service = encodedName(request.service);
  const method = encodedName(request.method);
  const timeout = clampUint32(timeoutMs);
  const headSize = (callId !== 0 ? 1 + varintSize(callId) : 0) +
    (service.length > 0 ? 1 + varintSize(service.length) + service.length : 0) +
    (method.length > 0 ? 1 + varintSize(method.length) + method.length : 0) +
    (timeout > 0 ? 1 + varintSize(timeout) : 0) +
    metadataSize(metadata) +
    (payloadLength > 0 ? 1 + varintSize(payloadLength) : 0) +
    (stream !== 0 ? 1 + varintSize(stream) : 0) +
    (window !== 0 ? 1 + varintSize(window) : 0);
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
  // The stream fields before the payload, so the payload stays last (it may be sent as a second piece).
  if (stream !== 0) {
    scratch.byte(TAG_REQUEST_STREAM);
    scratch.varint(stream);
  }
  if (window !== 0) {
    scratch.byte(TAG_REQUEST_WINDOW);
    scratch.varint(window);
  }
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

// A frame of one call id and at most one more field: a uint32 (`valueTag`) or a payload that follows (`payloadTag`).
function writeStreamFrame(frameTag: number, callId: number, valueTag: number, value: number, payloadLength: number) {
  const inner = (callId !== 0 ? 1 + varintSize(callId) : 0) + (value !== 0 ? 1 + varintSize(value) : 0) +
    (payloadLength > 0 ? 1 + varintSize(payloadLength) + payloadLength : 0);
  const body = 1 + varintSize(inner) + inner;
  scratch.reset(4 + body - payloadLength);
  scratch.uint32BE(body);
  scratch.byte(frameTag);
  scratch.varint(inner);
  if (callId !== 0) {
    scratch.byte(TAG_MESSAGE_CALL_ID); // field 1 (a varint) in every stream frame
    scratch.varint(callId);
  }
  if (value !== 0) {
    scratch.byte(valueTag);
    scratch.varint(value);
  }
  if (payloadLength > 0) {
    scratch.byte(TAG_MESSAGE_PAYLOAD);
    scratch.varint(payloadLength);
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
// `gathered`: let it wait for the next turn of the loop, so a stream's messages share writes (sendGathered).
function sendScratch(connection: TcpConnection, payload: Uint8Array, gathered = false): void {
  if (payload.length <= COPY_PAYLOAD_BYTES) {
    scratch.raw(payload);
    const frame = new Uint8Array(scratch.bytes.buffer, 0, scratch.pos); // cheaper than subarray
    if (gathered) connection.sendGathered(frame);
    else connection.send(frame);
    return;
  }
  if (gathered) {
    connection.sendGathered(scratch.bytes.subarray(0, scratch.pos));
    connection.sendGathered(payload);
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
 * Send a request that opens a stream of `stream` kind (see StreamKind), with the caller's receive `window`, unless
 * its body would exceed `maxBodyBytes`. Returns the body's size.
 */
export function sendStreamRequest(
  connection: TcpConnection,
  request: RequestHead & { readonly payload: Uint8Array },
  timeoutMs: number,
  stream: number,
  window: number,
  maxBodyBytes: number,
): number {
  const payload = request.payload;
  const body = writeRequestHead(request, timeoutMs, payload.length, stream, window);
  if (body <= maxBodyBytes) sendScratch(connection, payload);
  return body;
}

/**
 * Send one message of a stream unless its body would exceed `maxBodyBytes`; it waits for the loop's next turn
 * (see TcpConnection.sendGathered), so a stream's messages share writes. Returns the body's size.
 */
export function sendStreamMessage(
  connection: TcpConnection,
  callId: number,
  payload: Uint8Array,
  maxBodyBytes: number,
): number {
  const body = writeStreamFrame(TAG_FRAME_MESSAGE, callId, 0, 0, payload.length);
  if (body <= maxBodyBytes) sendScratch(connection, payload, true);
  return body;
}

/** Send a half-close: the caller's last message on the stream was sent. */
export function sendHalfClose(connection: TcpConnection, callId: number): void {
  writeStreamFrame(TAG_FRAME_HALF_CLOSE, callId, 0, 0, 0);
  sendScratch(connection, EMPTY_BYTES);
}

/** Grant the peer `bytes` more credit on a stream (gathered, like messages: a reader grants as it reads). */
export function sendCredit(connection: TcpConnection, callId: number, bytes: number): void {
  writeStreamFrame(TAG_FRAME_CREDIT, callId, TAG_CREDIT_BYTES, bytes >>> 0, 0);
  sendScratch(connection, EMPTY_BYTES, true);
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
    body = writeRequestHead(r, r.timeoutMs ?? 0, payload.length, r.stream ?? 0, r.window ?? 0);
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
  } else if (frame.message) {
    payload = frame.message.payload ?? EMPTY_BYTES;
    body = writeStreamFrame(TAG_FRAME_MESSAGE, frame.message.callId, 0, 0, payload.length);
  } else if (frame.halfClose) {
    body = writeStreamFrame(TAG_FRAME_HALF_CLOSE, frame.halfClose.callId, 0, 0, 0);
  } else if (frame.credit) {
    body = writeStreamFrame(TAG_FRAME_CREDIT, frame.credit.callId, TAG_CREDIT_BYTES, frame.credit.bytes ?? 0, 0);
  } else {
    return new Uint8Array(0);
  }
  const bytes = new Uint8Array(body);
  bytes.set(scratch.bytes.subarray(4, scratch.pos));
  bytes.set(payload, scratch.pos - 4);
  return bytes;
}
