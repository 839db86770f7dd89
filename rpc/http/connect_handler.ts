/**
 * The Connect protocol on the gateway (connectrpc.com, "Connect Protocol Reference"), over HTTP/1.1, for one
 * request routed to a method:
 *
 * | request                                               | answer                                               |
 * |-------------------------------------------------------|------------------------------------------------------|
 * | `POST`, `application/proto` or `application/json`     | unary: the message, or `{code, message}` JSON with the spec's HTTP status |
 * | `GET ?encoding=&message=[&base64=1][&compression=]`   | the same, for methods with `idempotency_level = NO_SIDE_EFFECTS`; else 405 |
 * | `POST`, `application/connect+proto` or `+json`        | server or client stream: 200, enveloped messages, then the end-of-stream message (error and trailers) |
 * | a bidirectional method                                | 505 (HTTP/1.1 cannot carry both directions at once, as connect-es answers) |
 * | another content type, or one of the wrong kind        | 415                                                  |
 * | a method not served                                   | 404 with code `unimplemented`                        |
 *
 * An error's details are those its handler's error carried as gRPC's `grpc-status-details-bin` metadata (the
 * base64 of a `google.rpc.Status`), in the error JSON's `details`.
 * `Connect-Timeout-Ms` is the deadline; request headers other than the protocol's are the call's metadata; the
 * handler's response metadata goes out as headers (keys `trailer-<name>`: as Connect's unary trailer fields
 * `trailer-<name>`; in a stream, whatever is not sent before the first message goes in the end-of-stream
 * message). gzip both ways: `Content-Encoding` / `Accept-Encoding` for unary, `Connect-Content-Encoding` /
 * `Connect-Accept-Encoding` per stream message; another encoding is `unimplemented`. The receive limit
 * (the provider's `maxFrameBytes`) applies to each message uncompressed: past it, `resource_exhausted`.
 *
 * @module
 */

import protobuf from "protobufjs";
import { RpcCode, RpcError } from "../rpc_error.ts";
import { type MethodDefinition, MethodKind } from "../service_definition.ts";
import {
  connectErrorDetails,
  type ConnectErrorJson,
  connectErrorJson,
  connectHttpStatus,
  endOfStreamJson,
  type Envelope,
  envelope,
  ENVELOPE_COMPRESSED,
  ENVELOPE_END_STREAM,
  parseConnectContentType,
  parseConnectGet,
  parseConnectTimeout,
} from "./connect_protocol.ts";
import type { GatewayAnswer, GatewayCall } from "./gateway_call.ts";
import { GatewayCodec, isGatewayCodec } from "./gateway_codec.ts";
import {
  ACCEPTED_ENCODINGS,
  acceptsGzip,
  COMPRESS_MIN_BYTES,
  GatewayEncoding,
  gunzip,
  gzip,
  requestEncoding,
} from "./gateway_compression.ts";
import { type GatewayRequest, metadataFields, STATUS_DETAILS_KEY, TRAILER_PREFIX } from "./gateway_request.ts";
import { concatBytes, readOneMessage, readRequestEnvelope, relayMessages, uploadMessages } from "./gateway_streams.ts";
import type { RequestEnvelopeRules } from "./gateway_streams.ts";
import { Http1Error } from "./http1_error.ts";
import type { HttpHeaders } from "./http_headers.ts";

const EMPTY_BYTES = new Uint8Array(0);
const NO_METADATA: Readonly<Record<string, string>> = Object.freeze({});
const ACCEPT_POST = "application/proto, application/json, application/connect+proto, application/connect+json, " +
  "application/grpc-web+proto, application/grpc-web+json, application/grpc-web-text+proto";

/**
 * Serves requests in the Connect protocol (see the module doc). Stateless: one per gateway.
 *
 * @example
 * ```ts
 * import { ConnectHandler } from "./connect_handler.ts";
 * import type { GatewayRequest } from "./gateway_request.ts";
 *
 * const connect = new ConnectHandler();
 * const serve = (request: GatewayRequest) => connect.serve(request);
 * ```
 */
export class ConnectHandler {
  /** Answer `request` (its caller releases it after). Rethrows only Http1Errors, which the HTTP layer answers. */
  async serve(request: GatewayRequest): Promise<void> {
    const http = request.http;
    if (http.method === "GET") return await this.#get(request);
    const type = parseConnectContentType(http.headers.get("content-type"));
    if (type === undefined || !isGatewayCodec(type.codec)) {
      return await request.answerPlain(415, "The content type is not one this server speaks", {
        "accept-post": ACCEPT_POST,
      });
    }
    if (request.definition === undefined) return await this.#notServed(request);
    const kind = request.kind;
    if (kind === MethodKind.BIDI_STREAMING) {
      return await request.answerPlain(
        505,
        `${request.service}.${request.method} is bidirectional: call it over HTTP/2, or on the native port`,
      );
    }
    if (type.streaming !== (kind !== MethodKind.UNARY)) {
      const wanted = kind === MethodKind.UNARY ? "application/<codec>" : "application/connect+<codec>";
      return await request.answerPlain(415, `${request.service}.${request.method} is ${kind}: send ${wanted}`);
    }
    const codec = new GatewayCodec(type.codec, request.definition);
    if (type.streaming) return await this.#stream(request, codec);
    await this.#unary(request, codec, async () => {
      const headers = http.headers;
      checkVersion(headers);
      const timeoutMs = timeoutOf(headers);
      const encoding = requestEncoding(headers.get("content-encoding"));
      if (encoding === undefined) throw unknownEncoding("Content-Encoding", headers.get("content-encoding"));
      const max = request.maxMessageBytes;
      let body = await request.readBody(max, timeoutMs);
      if (encoding === GatewayEncoding.GZIP) body = await gunzip(body, max);
      return { binary: codec.requestToBinary(body), timeoutMs };
    });
  }

  // A unary GET: the request in the query, for methods the .proto marks free of side effects.
  async #get(request: GatewayRequest): Promise<void> {
    const definition = request.definition;
    if (definition === undefined) return await this.#notServed(request);
    if (request.kind !== MethodKind.UNARY || !hasNoSideEffects(request.service, definition)) {
      return await request.answerPlain(
        405,
        `${request.service}.${request.method} is called with POST (GET only for methods with ` +
          `'option idempotency_level = NO_SIDE_EFFECTS')`,
        { allow: "POST" },
      );
    }
    let query: ReturnType<typeof parseConnectGet>;
    try {
      query = parseConnectGet(request.http.query);
    } catch (error) {
      request.refused(RpcCode.INVALID_ARGUMENT);
      return await writeUnaryError(request, errorAnswer(new RpcError(RpcCode.INVALID_ARGUMENT, message(error))));
    }
    if (!isGatewayCodec(query.codec)) {
      return await request.answerPlain(415, `The encoding '${query.codec}' is not one this server speaks`);
    }
    const codec = new GatewayCodec(query.codec, definition);
    await this.#unary(request, codec, async () => {
      const timeoutMs = timeoutOf(request.http.headers);
      const encoding = requestEncoding(query.compression);
      if (encoding === undefined) throw unknownEncoding("compression", query.compression);
      const max = request.maxMessageBytes;
      let bytes = query.message;
      if (bytes.length > max) throw tooLarge(bytes.length, max);
      if (encoding === GatewayEncoding.GZIP) bytes = await gunzip(bytes, max);
      return { binary: codec.requestToBinary(bytes), timeoutMs };
    });
  }

  // A unary call: `prepare` reads the request; the answer is the message or the error JSON.
  async #unary(
    request: GatewayRequest,
    codec: GatewayCodec,
    prepare: () => Promise<{ binary: Uint8Array; timeoutMs: number }>,
  ): Promise<void> {
    const response = request.response;
    response.headers.set("accept-encoding", ACCEPTED_ENCODINGS);
    let answer: GatewayAnswer;
    let body: Uint8Array = EMPTY_BYTES;
    try {
      const { binary, timeoutMs } = await prepare();
      answer = await request.open(binary, timeoutMs).end();
      if (answer.status === 0) body = codec.responseFromBinary(answer.payload);
    } catch (error) {
      if (error instanceof Http1Error) throw error;
      answer = errorAnswer(error);
      request.refused(answer.status);
    }
    if (answer.status !== 0) return await writeUnaryError(request, answer);
    setUnaryMetadata(response.headers, answer.metadata);
    response.headers.set("content-type", `application/${codec.name}`);
    if (body.length >= COMPRESS_MIN_BYTES && acceptsGzip(request.http.headers.get("accept-encoding"))) {
      body = await gzip(body);
      response.headers.set("content-encoding", GatewayEncoding.GZIP);
    }
    request.prepareHead();
    response.writeHead(200);
    await response.end(body);
  }

  // A method not served: the provider refuses it (and counts it); unimplemented is a 404, as for any unknown path.
  async #notServed(request: GatewayRequest): Promise<void> {
    const answer = await request.open(EMPTY_BYTES, 0).end();
    await writeUnaryError(request, answer, answer.status === RpcCode.UNIMPLEMENTED ? 404 : undefined);
  }

  // A server or client stream: enveloped messages as they come, then the end-of-stream message.
  async #stream(request: GatewayRequest, codec: GatewayCodec): Promise<void> {
    const headers = request.http.headers;
    const response = request.response;
    response.headers.set("content-type", `application/connect+${codec.name}`);
    response.headers.set("connect-accept-encoding", ACCEPTED_ENCODINGS);
    const gzipOut = acceptsGzip(headers.get("connect-accept-encoding"));
    if (gzipOut) response.headers.set("connect-content-encoding", GatewayEncoding.GZIP);
    // Synchronous unless the message is compressed (relayMessages awaits only a promise).
    const frame = (payload: Uint8Array): Uint8Array | Promise<Uint8Array> => {
      const data = codec.responseFromBinary(payload);
      if (!gzipOut || data.length < COMPRESS_MIN_BYTES) return envelope(0, data);
      return gzip(data).then((zipped) => envelope(ENVELOPE_COMPRESSED, zipped));
    };
    let answer: GatewayAnswer;
    let last: Uint8Array | undefined;
    try {
      checkVersion(headers);
      const timeoutMs = timeoutOf(headers);
      const encoding = requestEncoding(headers.get("connect-content-encoding"));
      if (encoding === undefined) {
        throw unknownEncoding("Connect-Content-Encoding", headers.get("connect-content-encoding"));
      }
      const read = (envelope: Envelope) =>
        readRequestEnvelope(envelope, CONNECT_ENVELOPE, encoding, codec, request.maxMessageBytes);
      let call: GatewayCall;
      if (request.kind === MethodKind.SERVER_STREAMING) {
        call = request.open(await readOneMessage(request.envelopes(false, timeoutMs), read), timeoutMs);
      } else {
        call = request.open(EMPTY_BYTES, timeoutMs);
        void uploadMessages(call, request.envelopes(false), read);
      }
      answer = await relayMessages(call, response, frame, () => request.prepareHead());
      if (answer.status === 0 && request.kind === MethodKind.CLIENT_STREAMING) last = await frame(answer.payload);
    } catch (error) {
      if (error instanceof Http1Error) throw error;
      answer = errorAnswer(error);
      request.refused(answer.status);
      last = undefined;
    }
    const { headers: fields, trailers } = metadataFields(withoutDetails(answer.metadata));
    if (!response.headersSent) {
      for (const [name, value] of fields) response.headers.append(name, value);
      request.prepareHead();
    } else {
      trailers.unshift(...fields);
    }
    const error = answer.status === 0 ? undefined : errorJson(answer);
    const end = envelope(ENVELOPE_END_STREAM, endOfStreamJson(error, listMap(trailers)));
    await response.end(last === undefined ? end : concatBytes(last, end));
  }
}

/** The HTTP status and JSON body of a unary call that failed (`status` overrides the spec's). */
async function writeUnaryError(request: GatewayRequest, answer: GatewayAnswer, status?: number): Promise<void> {
  const response = request.response;
  setUnaryMetadata(response.headers, answer.metadata);
  response.headers.set("content-type", "application/json");
  request.prepareHead();
  response.writeHead(status ?? connectHttpStatus(answer.status));
  await response.end(JSON.stringify(errorJson(answer)));
}

// A failed call's error JSON, with the details its handler's error carried (as grpc-status-details-bin).
function errorJson(answer: GatewayAnswer): ConnectErrorJson {
  return connectErrorJson(answer.status, answer.message, connectErrorDetails(answer.metadata[STATUS_DETAILS_KEY]));
}

// The metadata less the error details, which Connect sends in its error JSON, not as a field.
function withoutDetails(metadata: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  if (!Object.hasOwn(metadata, STATUS_DETAILS_KEY)) return metadata;
  const { [STATUS_DETAILS_KEY]: _details, ...rest } = metadata;
  return rest;
}

// Unary metadata: headers, and trailers as Connect's `trailer-` header fields.
function setUnaryMetadata(headers: HttpHeaders, metadata: Readonly<Record<string, string>>): void {
  const fields = metadataFields(withoutDetails(metadata));
  for (const [name, value] of fields.headers) headers.append(name, value);
  for (const [name, value] of fields.trailers) headers.append(`${TRAILER_PREFIX}${name}`, value);
}

// What a Connect client's envelope may not be.
const CONNECT_ENVELOPE: RequestEnvelopeRules = {
  endFlag: ENVELOPE_END_STREAM,
  endName: "an end-of-stream message",
  unit: "message",
  encodingName: "the stream's Connect-Content-Encoding",
};

function errorAnswer(error: unknown): GatewayAnswer {
  const rpcError = RpcError.from(error, RpcCode.INTERNAL);
  return { status: rpcError.code, message: rpcError.rawMessage, metadata: NO_METADATA, payload: EMPTY_BYTES };
}

function checkVersion(headers: HttpHeaders): void {
  const version = headers.get("connect-protocol-version");
  if (version !== undefined && version !== "1") {
    throw new RpcError(RpcCode.INVALID_ARGUMENT, `Connect-Protocol-Version must be 1: current value is ${version}`);
  }
}

function timeoutOf(headers: HttpHeaders): number {
  try {
    return parseConnectTimeout(headers.get("connect-timeout-ms")) ?? 0;
  } catch (error) {
    throw new RpcError(RpcCode.INVALID_ARGUMENT, message(error));
  }
}

function unknownEncoding(header: string, value: string | undefined): RpcError {
  return new RpcError(
    RpcCode.UNIMPLEMENTED,
    `${header} ${JSON.stringify(value)} is not supported: this server speaks ${ACCEPTED_ENCODINGS} and identity`,
  );
}

function tooLarge(length: number, maxBytes: number): RpcError {
  return new RpcError(
    RpcCode.RESOURCE_EXHAUSTED,
    `A request message of ${length} bytes is larger than the limit of ${maxBytes} bytes`,
  );
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function listMap(fields: readonly [string, string][]): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const [name, value] of fields) {
    const values = map.get(name);
    if (values === undefined) map.set(name, [value]);
    else values.push(value);
  }
  return map;
}

// Methods whose .proto says `option idempotency_level = NO_SIDE_EFFECTS;` (protobufjs keeps method options),
// looked up once per method.
const noSideEffects = new WeakMap<MethodDefinition, boolean>();

function hasNoSideEffects(service: string, definition: MethodDefinition): boolean {
  let known = noSideEffects.get(definition);
  if (known === undefined) {
    const found = (definition.requestType.root as protobuf.NamespaceBase | null)?.lookup(`.${service}`);
    const options = found instanceof protobuf.Service ? found.methods[definition.name]?.options : undefined;
    known = options?.["idempotency_level"] === "NO_SIDE_EFFECTS";
    noSideEffects.set(definition, known);
  }
  return known;
}
