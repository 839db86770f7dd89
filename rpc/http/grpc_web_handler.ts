/**
 * gRPC-Web on the gateway (grpc/grpc `doc/PROTOCOL-WEB.md`), over HTTP/1.1, for one request routed to a method:
 * `application/grpc-web`, `-web+proto`, `-web+json` and `-web-text` (base64 both ways); unary calls, server streams
 * and (half-duplex) client streams. The request body is frames (one message for unary and server streams); the
 * response is 200 with the message frames, then the trailers frame (flag 0x80: `grpc-status`, `grpc-message`, the
 * trailing metadata). An error before any message is a trailers-only response: `grpc-status` and `grpc-message`
 * in the headers, no body. `grpc-timeout` is the deadline; `grpc-encoding: gzip` compressed messages are read,
 * and messages are compressed for a client whose `grpc-accept-encoding` has gzip. A bidirectional method is 505,
 * as for Connect; a codec other than proto and json is 415.
 *
 * @module
 */

import { RpcCode, RpcError } from "../rpc_error.ts";
import { MethodKind } from "../service_definition.ts";
import { type Envelope, envelope, ENVELOPE_COMPRESSED } from "./connect_protocol.ts";
import type { GatewayAnswer, GatewayCall } from "./gateway_call.ts";
import { GatewayCodec, isGatewayCodec } from "./gateway_codec.ts";
import {
  ACCEPTED_ENCODINGS,
  acceptsGzip,
  COMPRESS_MIN_BYTES,
  GatewayEncoding,
  gzip,
  requestEncoding,
} from "./gateway_compression.ts";
import { type GatewayRequest, metadataFields } from "./gateway_request.ts";
import { concatBytes, readOneMessage, readRequestEnvelope, relayMessages, uploadMessages } from "./gateway_streams.ts";
import type { RequestEnvelopeRules } from "./gateway_streams.ts";
import {
  encodeGrpcMessage,
  GRPC_WEB_TRAILERS,
  type GrpcWebContentType,
  grpcWebTrailers,
  parseGrpcTimeout,
  toBase64,
} from "./grpc_web_protocol.ts";
import { Http1Error } from "./http1_error.ts";

const EMPTY_BYTES = new Uint8Array(0);
const NO_METADATA: Readonly<Record<string, string>> = Object.freeze({});
const encoder = new TextEncoder();

/**
 * Serves requests in gRPC-Web (see the module doc). Stateless: one per gateway.
 *
 * @example
 * ```ts
 * import { GrpcWebHandler } from "./grpc_web_handler.ts";
 * import type { GatewayRequest } from "./gateway_request.ts";
 * import { parseGrpcWebContentType } from "./grpc_web_protocol.ts";
 *
 * const grpcWeb = new GrpcWebHandler();
 * const serve = (request: GatewayRequest) =>
 *   grpcWeb.serve(request, parseGrpcWebContentType(request.http.headers.get("content-type"))!);
 * ```
 */
export class GrpcWebHandler {
  /** Answer `request`, whose content type is `type` (its caller releases it after). Rethrows only Http1Errors. */
  async serve(request: GatewayRequest, type: GrpcWebContentType): Promise<void> {
    if (!isGatewayCodec(type.codec)) {
      return await request.answerPlain(415, `The gRPC-Web codec '${type.codec}' is not one this server speaks`);
    }
    if (request.kind === MethodKind.BIDI_STREAMING) {
      return await request.answerPlain(
        505,
        `${request.service}.${request.method} is bidirectional: call it over HTTP/2, or on the native port`,
      );
    }
    const headers = request.http.headers;
    const response = request.response;
    response.headers.set("content-type", `application/grpc-web${type.text ? "-text" : ""}+${type.codec}`);
    response.headers.set("grpc-accept-encoding", ACCEPTED_ENCODINGS);
    const gzipOut = acceptsGzip(headers.get("grpc-accept-encoding"));
    if (gzipOut) response.headers.set("grpc-encoding", GatewayEncoding.GZIP);
    const codec = request.definition === undefined ? undefined : new GatewayCodec(type.codec, request.definition);
    const framed = (flags: number, data: Uint8Array): Uint8Array => {
      const bytes = envelope(flags, data);
      return type.text ? encoder.encode(toBase64(bytes)) : bytes;
    };
    // Synchronous unless the message is compressed (relayMessages awaits only a promise).
    const frame = (payload: Uint8Array): Uint8Array | Promise<Uint8Array> => {
      const data = codec!.responseFromBinary(payload);
      if (!gzipOut || data.length < COMPRESS_MIN_BYTES) return framed(0, data);
      return gzip(data).then((zipped) => framed(ENVELOPE_COMPRESSED, zipped));
    };
    let answer: GatewayAnswer;
    let last: Uint8Array | undefined;
    try {
      if (codec === undefined) {
        answer = await request.open(EMPTY_BYTES, 0).end(); // not served: the provider refuses (and counts) it
      } else {
        let timeoutMs: number;
        try {
          timeoutMs = parseGrpcTimeout(headers.get("grpc-timeout")) ?? 0;
        } catch (error) {
          throw new RpcError(RpcCode.INVALID_ARGUMENT, (error as Error).message);
        }
        const encoding = requestEncoding(headers.get("grpc-encoding"));
        if (encoding === undefined) {
          throw new RpcError(
            RpcCode.UNIMPLEMENTED,
            `grpc-encoding ${JSON.stringify(headers.get("grpc-encoding"))} is not supported: this server speaks ` +
              `${ACCEPTED_ENCODINGS} and identity`,
          );
        }
        const read = (envelope: Envelope) =>
          readRequestEnvelope(envelope, GRPC_WEB_FRAME, encoding, codec, request.maxMessageBytes);
        let call: GatewayCall;
        if (request.kind === MethodKind.CLIENT_STREAMING) {
          call = request.open(EMPTY_BYTES, timeoutMs);
          void uploadMessages(call, request.envelopes(type.text), read);
        } else {
          call = request.open(await readOneMessage(request.envelopes(type.text, timeoutMs), read), timeoutMs);
        }
        answer = await relayMessages(call, response, frame, () => request.prepareHead());
        if (answer.status === 0 && request.kind !== MethodKind.SERVER_STREAMING) last = await frame(answer.payload);
      }
    } catch (error) {
      if (error instanceof Http1Error) throw error;
      const rpcError = RpcError.from(error, RpcCode.INTERNAL);
      answer = { status: rpcError.code, message: rpcError.rawMessage, metadata: NO_METADATA, payload: EMPTY_BYTES };
      request.refused(answer.status);
      last = undefined;
    }
    const { headers: fields, trailers } = metadataFields(answer.metadata);
    if (!response.headersSent && last === undefined && answer.status !== 0 && fields.length === 0) {
      // Trailers-only: the status in the headers, no body (only when there are no headers of the handler's, which a
      // client would otherwise read as trailers).
      for (const [name, value] of [...fields, ...trailers]) response.headers.append(name, value);
      response.headers.set("grpc-status", String(answer.status));
      if (answer.message !== "") response.headers.set("grpc-message", encodeGrpcMessage(answer.message));
      request.prepareHead();
      response.writeHead(200);
      await response.end();
      return;
    }
    if (!response.headersSent) {
      for (const [name, value] of fields) response.headers.append(name, value);
      request.prepareHead();
    } else {
      trailers.unshift(...fields);
    }
    let end = envelope(GRPC_WEB_TRAILERS, grpcWebTrailers(answer.status, answer.message, trailers));
    if (type.text) end = encoder.encode(toBase64(end));
    await response.end(last === undefined ? end : concatBytes(last, end));
  }
}

// What a gRPC-Web client's frame may not be.
const GRPC_WEB_FRAME: RequestEnvelopeRules = {
  endFlag: GRPC_WEB_TRAILERS,
  endName: "a trailers frame",
  unit: "frame",
  encodingName: "grpc-encoding",
};
