/**
 * Reads the RPC envelope's frames (`_rpc_wire.ts`) in place: fields from the frame's bytes, the payload as a view
 * into them; names cached, unknown fields skipped, limits checked as they are read.
 *
 * @module
 */

import {
  DecodedFrame,
  EMPTY_BYTES,
  FIXED32,
  FIXED64,
  type FrameKind,
  LEN,
  TAG_CANCEL_CALL_ID,
  TAG_CREDIT_BYTES,
  TAG_CREDIT_CALL_ID,
  TAG_DRAIN_GRACE,
  TAG_DRAIN_LAST_CALL_ID,
  TAG_DRAIN_REASON,
  TAG_DRAIN_STATUS,
  TAG_ENTRY_KEY,
  TAG_ENTRY_VALUE,
  TAG_HALF_CLOSE_CALL_ID,
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
  VARINT,
  WireFormatError,
} from "./_rpc_wire.ts";

const textDecoder = new TextDecoder("utf-8", { ignoreBOM: true }); // a leading U+FEFF is part of a value

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
  // A view made from the buffer directly: cheaper than subarray (no species lookup), and one is made per frame.
  const bytes = new Uint8Array(input.buffer, input.byteOffset + pos, length);
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
      case TAG_REQUEST_STREAM:
        frame.stream = readVarint(end);
        break;
      case TAG_REQUEST_WINDOW:
        frame.window = readVarint(end);
        break;
      default:
        skipKnownOrUnknown(tag, 8, end);
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

function readMessage(frame: DecodedFrame, end: number): void {
  while (pos < end) {
    const tag = readVarint(end);
    if (tag === TAG_MESSAGE_CALL_ID) frame.callId = readVarint(end);
    else if (tag === TAG_MESSAGE_PAYLOAD) frame.payload = readBytes(end);
    else skipKnownOrUnknown(tag, 2, end);
  }
}

function readHalfClose(frame: DecodedFrame, end: number): void {
  while (pos < end) {
    const tag = readVarint(end);
    if (tag === TAG_HALF_CLOSE_CALL_ID) frame.callId = readVarint(end);
    else skipKnownOrUnknown(tag, 1, end);
  }
}

function readCredit(frame: DecodedFrame, end: number): void {
  while (pos < end) {
    const tag = readVarint(end);
    if (tag === TAG_CREDIT_CALL_ID) frame.callId = readVarint(end);
    else if (tag === TAG_CREDIT_BYTES) frame.credit = readVarint(end);
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
      if (field >= 1 && field <= 8) {
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
        else if (field === 5) readPing(frame, messageEnd);
        else if (field === 6) readMessage(frame, messageEnd);
        else if (field === 7) readHalfClose(frame, messageEnd);
        else readCredit(frame, messageEnd);
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
