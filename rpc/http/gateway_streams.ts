/**
 * A stream's messages across the gateway, the same for Connect and gRPC-Web (they differ only in how a message is
 * framed and how the end is written), with flow control end to end:
 *
 * - provider → HTTP client ({@linkcode relayMessages}): each message costs the provider stream's credit; the
 *   gateway grants that credit back only once the HTTP response writer has taken the bytes below its high-water
 *   mark (its `write` promise). A client that reads slowly stalls the writer, the credit stops, and the handler's
 *   generator waits at its `yield`: the gateway holds at most one window of messages beyond the socket's buffers.
 * - HTTP client → provider ({@linkcode uploadMessages}): the request body is read one message at a time, and only
 *   as the provider's credit allows; a handler that does not read stops the body being read, and the HTTP layer
 *   then stops reading the socket.
 *
 * @module
 */

import { nextTurn } from "../../reactor/next_turn.ts";
import { messageCost } from "../_stream_flow.ts";
import { RpcCode, RpcError } from "../rpc_error.ts";
import { type Envelope, ENVELOPE_COMPRESSED } from "./connect_protocol.ts";
import type { GatewayCodec } from "./gateway_codec.ts";
import { GatewayEncoding, gunzip } from "./gateway_compression.ts";
import type { GatewayAnswer, GatewayCall, GatewayEvent } from "./gateway_call.ts";
import { metadataFields } from "./gateway_request.ts";
import type { Http1ResponseWriter } from "./http1_response_writer.ts";

/**
 * Turns a request envelope into the binary message the provider reads (checking its flags, decompressing,
 * transcoding); throws an RpcError the client is answered with.
 *
 * @example
 * ```ts
 * import type { ReadEnvelope } from "./gateway_streams.ts";
 *
 * const uncompressedOnly: ReadEnvelope = (envelope) => {
 *   if (envelope.flags !== 0) throw new TypeError("compressed");
 *   return envelope.data;
 * };
 * ```
 */
export type ReadEnvelope = (envelope: Envelope) => Uint8Array | Promise<Uint8Array>;

/** How a protocol names what a client's envelope may not be, for {@linkcode readRequestEnvelope}'s errors. */
export interface RequestEnvelopeRules {
  /** The flag only the server's last envelope carries (Connect's end-of-stream, gRPC-Web's trailers). */
  readonly endFlag: number;
  /** What that envelope is called: "an end-of-stream message". */
  readonly endName: string;
  /** What one envelope is called: "message", "frame". */
  readonly unit: string;
  /** Where the stream's compression was named: "the stream's Connect-Content-Encoding". */
  readonly encodingName: string;
}

/**
 * A client's envelope as the binary message the provider reads: its flags checked by `rules`, inflated (to at most
 * `maxBytes`) when marked compressed, and transcoded by `codec`.
 */
export async function readRequestEnvelope(
  { flags, data }: Envelope,
  rules: RequestEnvelopeRules,
  encoding: GatewayEncoding,
  codec: GatewayCodec,
  maxBytes: number,
): Promise<Uint8Array> {
  if ((flags & rules.endFlag) !== 0) throw new RpcError(RpcCode.INVALID_ARGUMENT, `A client sent ${rules.endName}`);
  if ((flags & ~ENVELOPE_COMPRESSED) !== 0) {
    throw new RpcError(RpcCode.INVALID_ARGUMENT, `A request ${rules.unit} has unknown flags 0x${flags.toString(16)}`);
  }
  if ((flags & ENVELOPE_COMPRESSED) !== 0) {
    if (encoding === GatewayEncoding.IDENTITY) {
      throw new RpcError(
        RpcCode.INTERNAL,
        `A request message is marked compressed, but ${rules.encodingName} is identity`,
      );
    }
    data = await gunzip(data, maxBytes);
  }
  return codec.requestToBinary(data);
}

/**
 * Turns the provider's binary message into the bytes the response carries (transcoded, compressed, framed).
 *
 * @example
 * ```ts
 * import { envelope } from "./connect_protocol.ts";
 * import type { FrameMessage } from "./gateway_streams.ts";
 *
 * const plain: FrameMessage = (payload) => envelope(0, payload);
 * ```
 */
export type FrameMessage = (payload: Uint8Array) => Uint8Array | Promise<Uint8Array>;

/**
 * The one request message of a unary gRPC-Web call or a server stream. Zero messages or more than one is
 * UNIMPLEMENTED (what the Connect conformance suite expects of a server).
 *
 * @example
 * ```ts
 * import { envelope } from "./connect_protocol.ts";
 * import { readOneMessage } from "./gateway_streams.ts";
 * import assert from "node:assert/strict";
 *
 * async function* one() {
 *   yield { flags: 0, data: new Uint8Array([8, 1]) };
 * }
 * assert.deepEqual(await readOneMessage(one(), (e) => e.data), new Uint8Array([8, 1]));
 * ```
 */
export async function readOneMessage(envelopes: AsyncIterable<Envelope>, read: ReadEnvelope): Promise<Uint8Array> {
  let message: Uint8Array | undefined;
  for await (const envelope of envelopes) {
    if (message !== undefined) {
      throw new RpcError(RpcCode.UNIMPLEMENTED, "The method takes exactly one request message: a second one came");
    }
    // A copy: the envelope's data is a view into the reader's buffer, reused as more of the body arrives.
    message = (await read(envelope)).slice();
  }
  if (message === undefined) {
    throw new RpcError(RpcCode.UNIMPLEMENTED, "The method takes exactly one request message: the body had none");
  }
  return message;
}

/**
 * Write the provider's stream messages to `response` as they come, those of one loop turn in one write (`frame`
 * makes each one's bytes; `beforeFirst` runs before the first is written, to finish the head), granting credit
 * back as the writer takes them, until the call's end, which it returns (the end is not written). A message that cannot be framed fails
 * the call INTERNAL; a client gone abandons it.
 */
export async function relayMessages(
  call: GatewayCall,
  response: Http1ResponseWriter,
  frame: FrameMessage,
  beforeFirst: () => void,
): Promise<GatewayAnswer> {
  const gone = () => call.abandon();
  for (;;) {
    const first = await call.next();
    if (first.kind === "end") return first.answer;
    // The provider may run ahead until the loop's next turn (its credit stops it within one window): the messages
    // of one turn go out as one chunk, one write and one grant. A lone message waits for no more than that turn.
    await new Promise<void>((resolve) => nextTurn(resolve));
    const pieces: Uint8Array[] = [];
    let cost = 0;
    let length = 0;
    for (
      let event: GatewayEvent | undefined = call.givenUp ? undefined : first;
      event?.kind === "message";
      event = call.poll()
    ) {
      let bytes: Uint8Array;
      try {
        // Awaited only when framing is asynchronous (gzip): a plain message saves the promise hops.
        const framed = frame(event.payload);
        bytes = framed instanceof Uint8Array ? framed : await framed;
      } catch (error) {
        call.fail(RpcError.from(error, RpcCode.INTERNAL));
        break;
      }
      event.written();
      pieces.push(bytes);
      length += bytes.length;
      cost += messageCost(event.payload.length);
    }
    if (call.givenUp) continue; // failed or abandoned meanwhile: the end is next
    if (!response.headersSent) {
      // The stream's headers (trailer- keys stay for the end).
      if (call.headers !== undefined) {
        for (const [name, value] of metadataFields(call.headers).headers) response.headers.append(name, value);
      }
      beforeFirst();
    }
    response.write(pieces.length === 1 ? pieces[0]! : concatAll(pieces, length)).then(() => call.grant(cost), gone);
  }
}

/**
 * Hand the client's messages to the provider as its credit allows (`read` makes each one's binary message), then
 * half-close. Stops reading once the call ended (the provider answered before the client finished); fails the
 * call with the error when the body breaks the rules. A message larger than the provider's window waits until the
 * provider read all before it, as on the native port; the receive limit bounds its size.
 */
export async function uploadMessages(
  call: GatewayCall,
  envelopes: AsyncIterable<Envelope>,
  read: ReadEnvelope,
): Promise<void> {
  try {
    for await (const envelope of envelopes) {
      const payload = await read(envelope);
      if (!(await call.reserve(messageCost(payload.length)))) return;
      call.send(payload);
    }
    call.halfClose();
  } catch (error) {
    call.fail(RpcError.from(error, RpcCode.INTERNAL));
  }
}

/**
 * `a` then `b` in one array (a last message and the end, sent in one write).
 *
 * @example
 * ```ts
 * import { concatBytes } from "./gateway_streams.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(concatBytes(new Uint8Array([1]), new Uint8Array([2, 3])), new Uint8Array([1, 2, 3]));
 * ```
 */
export function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(a.length + b.length);
  bytes.set(a);
  bytes.set(b, a.length);
  return bytes;
}

// `pieces` (`length` bytes in all) in one array.
function concatAll(pieces: readonly Uint8Array[], length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const piece of pieces) {
    bytes.set(piece, offset);
    offset += piece.length;
  }
  return bytes;
}
