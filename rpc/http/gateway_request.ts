/**
 * One HTTP request routed to a method (`POST /<pkg.Service>/<Method>`), as both of the gateway's protocols (Connect,
 * gRPC-Web) handle it: the method's definition, the caller's metadata measured against the provider's limit, the
 * body read within the receive limit, the gateway's byte budget and the deadline, the call to the provider, and the
 * handler's response metadata as header and trailer fields.
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import type { TimerId } from "../../reactor/timer_queue.ts";
import { StreamKind } from "../_rpc_wire.ts";
import type { ServerLimits } from "../_server_limits.ts";
import { RpcCode, RpcError } from "../rpc_error.ts";
import type { RequestFrame, ServerTransportHandler } from "../server_transport.ts";
import { type MethodDefinition, MethodKind } from "../service_definition.ts";
import { type Envelope, EnvelopeReader, EnvelopeTooLarge, metadataFromHeaders } from "./connect_protocol.ts";
import type { ByteBudget } from "./gateway_budget.ts";
import { GATEWAY_CALL_ID, GatewayCall, TRAILER_PREFIX } from "./gateway_call.ts";
import { Base64Pieces } from "./grpc_web_protocol.ts";
import type { Http1Request } from "./http1_connection.ts";
import type { Http1ResponseWriter } from "./http1_response_writer.ts";

/**
 * What a routed request needs of its gateway: the provider and its limits, whether the gateway drains, and the
 * byte budget all requests share. The GatewayTransport is one.
 *
 * @example
 * ```ts
 * import type { GatewayContext } from "./gateway_request.ts";
 *
 * const describe = (context: GatewayContext) =>
 *   `${context.bodyBudget.held} bytes held, messages up to ${context.limits.maxFrameBytes} bytes`;
 * ```
 */
export interface GatewayContext {
  /** The gateway's loop. */
  readonly loop: EventLoop;
  /** The provider's dispatch. */
  readonly provider: ServerTransportHandler;
  /** The provider's limits: `maxFrameBytes` is the receive limit of a message, `maxMetadataBytes` of metadata. */
  readonly limits: ServerLimits;
  /** Whether the gateway drains: every response then closes its connection. */
  readonly draining: boolean;
  /** Bytes of request bodies held by all requests together. */
  readonly bodyBudget: ByteBudget;
}

// The wire's stream kind of each method kind.
const STREAM_KINDS: Readonly<Record<MethodKind, StreamKind>> = {
  [MethodKind.UNARY]: StreamKind.UNARY,
  [MethodKind.CLIENT_STREAMING]: StreamKind.CLIENT,
  [MethodKind.SERVER_STREAMING]: StreamKind.SERVER,
  [MethodKind.BIDI_STREAMING]: StreamKind.BIDI,
};

// Response header fields that belong to HTTP, the protocols or CORS: a handler's metadata cannot set them.
const RESERVED_RESPONSE_FIELDS = new Set([
  "accept-encoding",
  "connect-accept-encoding",
  "connect-content-encoding",
  "connection",
  "content-encoding",
  "content-length",
  "content-type",
  "date",
  "grpc-accept-encoding",
  "grpc-encoding",
  "grpc-message",
  "grpc-status",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "vary",
]);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

export { TRAILER_PREFIX } from "./gateway_call.ts";

/**
 * The metadata key of an error's details, as gRPC names it: the base64 of a `google.rpc.Status` whose details a
 * handler's {@linkcode RpcError} carries. Always a trailer (gRPC-Web sends it so); Connect turns it into its error
 * JSON's `details` instead.
 */
export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

/**
 * A handler's response metadata as HTTP fields: `headers` and `trailers` (see {@linkcode TRAILER_PREFIX};
 * {@linkcode STATUS_DETAILS_KEY} is a trailer), names lower-cased. Keys that are not tokens, values with control
 * characters and the fields of HTTP and the protocols (`content-type`, `grpc-status`, ...) are dropped.
 *
 * @example
 * ```ts
 * import { metadataFields } from "./gateway_request.ts";
 * import assert from "node:assert/strict";
 *
 * const fields = metadataFields({ "x-user": "7", "trailer-x-cost": "3", "content-type": "text/html" });
 * assert.deepEqual(fields, { headers: [["x-user", "7"]], trailers: [["x-cost", "3"]] });
 * ```
 */
export function metadataFields(
  metadata: Readonly<Record<string, string>>,
): { headers: [string, string][]; trailers: [string, string][] } {
  const headers: [string, string][] = [];
  const trailers: [string, string][] = [];
  for (const [key, value] of Object.entries(metadata)) {
    const lower = key.toLowerCase();
    const prefixed = lower.startsWith(TRAILER_PREFIX) && lower.length > TRAILER_PREFIX.length;
    const name = prefixed ? lower.slice(TRAILER_PREFIX.length) : lower;
    if (!TOKEN.test(name) || RESERVED_RESPONSE_FIELDS.has(name) || name.startsWith("access-control-")) continue;
    if (typeof value !== "string" || !FIELD_VALUE.test(value)) continue;
    (prefixed || name === STATUS_DETAILS_KEY ? trailers : headers).push([name, value]);
  }
  return { headers, trailers };
}

/**
 * A request for one method of the provider. Made by the GatewayTransport once the path names a service and
 * method; the protocol handler reads its body and opens its call, and calls {@linkcode GatewayRequest.close} when
 * the response is over.
 *
 * @example
 * ```ts
 * import type { GatewayRequest } from "./gateway_request.ts";
 *
 * const describe = (request: GatewayRequest) =>
 *   `${request.service}/${request.method} (${request.definition?.kind ?? "not served"}) from ${request.http.peer}`;
 * ```
 */
export class GatewayRequest {
  /** The HTTP request. */
  readonly http: Http1Request;
  /** Its response. */
  readonly response: Http1ResponseWriter;
  /** The service's full name, from the path. */
  readonly service: string;
  /** The method's name, from the path. */
  readonly method: string;
  /** The method, when the provider serves it. */
  readonly definition: MethodDefinition | undefined;
  /** When the request's head arrived (the loop's clock): its deadline counts from then. */
  readonly receiveTimeMs: number;
  readonly #context: GatewayContext;
  #call: GatewayCall | undefined;
  #onAbort: (() => void) | undefined;

  /** `http` routed to `service`/`method` within `context`. */
  constructor(
    context: GatewayContext,
    http: Http1Request,
    response: Http1ResponseWriter,
    route: { service: string; method: string },
  ) {
    this.#context = context;
    this.http = http;
    this.response = response;
    this.service = route.service;
    this.method = route.method;
    this.definition = context.provider.method?.(route.service, route.method);
    this.receiveTimeMs = context.loop.now();
  }

  /** The method's kind (unary for a method not served). */
  get kind(): MethodKind {
    return this.definition?.kind ?? MethodKind.UNARY;
  }

  /** The largest message taken from the client, uncompressed (the provider's frame limit). */
  get maxMessageBytes(): number {
    return this.#context.limits.maxFrameBytes;
  }

  /** A stream's window: the provider's, for a client's messages and for its own. */
  get windowBytes(): number {
    return this.#context.limits.streamWindowBytes;
  }

  /** Count a limit hit (in the provider's `/metrics`). */
  limitHit(limit: string): void {
    this.#context.provider.limitHit(limit);
  }

  /**
   * The gateway answers `code` for input it refused itself (a body that does not transcode, a message too large):
   * counted under the method like the provider's own answers, unless a call was opened (the provider counts it).
   */
  refused(code: number): void {
    if (this.#call === undefined) this.#context.provider.refused?.(this.service, this.method, code);
  }

  /** Before the head goes out: a draining gateway's (or provider's) responses close their connections. */
  prepareHead(): void {
    if (this.#context.draining || this.#call?.closeConnection === true) {
      this.response.headers.set("connection", "close");
    }
  }

  /**
   * Call the provider with `payload` (binary; empty for a client stream, whose messages follow) and the deadline
   * `timeoutMs` (0: none). The call is abandoned if the HTTP client goes away first.
   */
  open(payload: Uint8Array, timeoutMs: number): GatewayCall {
    if (this.#call !== undefined) throw new TypeError("Cannot open a second call for one request");
    const call = this.#call = new GatewayCall(this.#context.loop, this.http.peer, this.#context.provider);
    call.start(this.#frame(payload, timeoutMs), this.receiveTimeMs);
    const signal = this.http.signal;
    if (signal.aborted) {
      call.abandon();
    } else {
      this.#onAbort = () => call.abandon();
      signal.addEventListener("abort", this.#onAbort, { once: true });
    }
    return call;
  }

  /**
   * Answer at the HTTP level, before any call (415, 405, 505, ...): `status` with a plain-text reason, which
   * clients map from the status alone.
   */
  async answerPlain(status: number, reason: string, headers: Readonly<Record<string, string>> = {}): Promise<void> {
    const response = this.response;
    for (const [name, value] of Object.entries(headers)) response.headers.set(name, value);
    response.headers.set("content-type", "text/plain; charset=utf-8");
    this.prepareHead();
    response.writeHead(status);
    await response.end(`${reason}\n`);
  }

  /** The response is over: release the call. */
  close(): void {
    if (this.#onAbort !== undefined) this.http.signal.removeEventListener("abort", this.#onAbort);
    this.#onAbort = undefined;
    this.#call?.finish();
  }

  /**
   * The whole body, at most `maxBytes` (then RESOURCE_EXHAUSTED), within the gateway's byte budget (limit
   * `http_buffered_bytes`) and before the deadline `timeoutMs` passes (DEADLINE_EXCEEDED; 0: none).
   */
  async readBody(maxBytes: number, timeoutMs: number): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    let total = 0;
    const deadline = this.#watchDeadline(timeoutMs);
    try {
      for await (const chunk of this.http.body) {
        if (total + chunk.length > maxBytes) {
          throw new RpcError(
            RpcCode.RESOURCE_EXHAUSTED,
            `The request body is larger than the limit of ${maxBytes} bytes`,
          );
        }
        this.#reserve(chunk.length);
        total += chunk.length;
        chunks.push(chunk);
      }
      if (deadline.expired) throw deadlineError(timeoutMs);
    } finally {
      deadline.stop();
      this.#context.bodyBudget.release(total);
    }
    if (chunks.length === 1) return chunks[0]!;
    const whole = new Uint8Array(total);
    let offset = 0;
    for (const chunk of chunks) {
      whole.set(chunk, offset);
      offset += chunk.length;
    }
    return whole;
  }

  /**
   * The body's envelopes as they arrive (base64 text first for `text`), each at most `maxMessageBytes`
   * (RESOURCE_EXHAUSTED as soon as a header says more), partial ones within the byte budget; INVALID_ARGUMENT for
   * a body that ends inside one. Each envelope's data is valid until the next is asked for. With `timeoutMs`, the
   * reading stops at the deadline (DEADLINE_EXCEEDED).
   */
  async *envelopes(text: boolean, timeoutMs = 0): AsyncGenerator<Envelope> {
    const reader = new EnvelopeReader(this.maxMessageBytes);
    const base64 = text ? new Base64Pieces() : undefined;
    const latin1 = text ? new TextDecoder("latin1") : undefined;
    const budget = this.#context.bodyBudget;
    const deadline = this.#watchDeadline(timeoutMs);
    let held = 0;
    try {
      for await (const chunk of this.http.body) {
        let bytes = chunk;
        if (base64 !== undefined) {
          try {
            bytes = base64.push(latin1!.decode(chunk));
          } catch (error) {
            throw new RpcError(RpcCode.INVALID_ARGUMENT, "The grpc-web-text body is not base64", { cause: error });
          }
        }
        reader.push(bytes);
        for (;;) {
          if (reader.buffered > held) {
            this.#reserve(reader.buffered - held);
            held = reader.buffered;
          }
          let envelope: Envelope | undefined;
          try {
            envelope = reader.next();
          } catch (error) {
            if (!(error instanceof EnvelopeTooLarge)) throw error;
            throw new RpcError(
              RpcCode.RESOURCE_EXHAUSTED,
              `A request message of ${error.length} bytes is larger than the limit of ${error.maxBytes} bytes`,
            );
          }
          if (envelope === undefined) break;
          yield envelope;
        }
        budget.release(held - reader.buffered);
        held = reader.buffered;
      }
      if (deadline.expired) throw deadlineError(timeoutMs);
      if (reader.buffered > 0 || base64?.pending === true) {
        throw new RpcError(RpcCode.INVALID_ARGUMENT, "The request body ends inside a message");
      }
    } finally {
      deadline.stop();
      budget.release(held);
    }
  }

  #reserve(bytes: number): void {
    if (this.#context.bodyBudget.reserve(bytes)) return;
    this.#context.provider.limitHit("http_buffered_bytes");
    throw new RpcError(
      RpcCode.RESOURCE_EXHAUSTED,
      `The gateway holds ${this.#context.bodyBudget.held} bytes of requests, the most it may (maxBufferedFrameBytes)`,
    );
  }

  // The body's reading stops when the deadline passes (the body is abandoned, so its iteration ends).
  #watchDeadline(timeoutMs: number): { readonly expired: boolean; stop(): void } {
    if (timeoutMs <= 0) return NO_DEADLINE;
    const loop = this.#context.loop;
    let timer: TimerId | undefined;
    const watch = {
      expired: false,
      stop: () => {
        if (timer !== undefined) loop.cancel(timer);
        timer = undefined;
      },
    };
    timer = loop.runAt(this.receiveTimeMs + timeoutMs, () => {
      timer = undefined;
      watch.expired = true;
      this.http.body.abandon();
    });
    return watch;
  }

  #frame(payload: Uint8Array, timeoutMs: number): RequestFrame {
    const metadata = metadataFromHeaders(this.http.headers);
    let metadataBytes = 0;
    for (const key in metadata) metadataBytes += key.length + metadata[key]!.length + 32;
    const stream = this.definition === undefined ? StreamKind.UNARY : STREAM_KINDS[this.kind];
    return {
      callId: GATEWAY_CALL_ID,
      service: this.service,
      method: this.method,
      timeoutMs,
      metadata,
      payload,
      metadataBytes,
      metadataOverLimit: metadataBytes > this.#context.limits.maxMetadataBytes,
      stream,
      window: stream === StreamKind.SERVER || stream === StreamKind.BIDI ? this.windowBytes : undefined,
    };
  }
}

// The watch of a body read without a deadline (most calls): nothing to stop, never expired.
const NO_DEADLINE: { readonly expired: boolean; stop(): void } = Object.freeze({ expired: false, stop: () => {} });

function deadlineError(timeoutMs: number): RpcError {
  return new RpcError(RpcCode.DEADLINE_EXCEEDED, `The deadline of ${timeoutMs} ms passed while the request arrived`);
}
