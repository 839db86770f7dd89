/**
 * Our equivalent of the conformance suite's server: `connectrpc.conformance.v1.ConformanceService` as dwt-rpc
 * handlers. Each request carries a response definition, and the handlers answer exactly that — response headers,
 * data, trailers, an error with its details, delays — and echo what they received as a `RequestInfo`: the
 * caller's headers, the deadline left, and every request message (as `Any`).
 *
 * How the definition maps onto a dwt-rpc handler's one `responseMetadata` bag (the gateway's rules,
 * rpc/http/gateway_request.ts): a response header `x-h` is the key `x-h`, a trailer `x-t` the key `trailer-x-t`,
 * repeated values joined with ", " (HTTP's list form; the suite compares values split at commas). An error is an
 * {@linkcode RpcError} whose metadata holds the headers and trailers the same way, and its details (the
 * definition's, then the RequestInfo where the suite wants one) as gRPC's `grpc-status-details-bin`: the
 * base64 of a `google.rpc.Status`, the one way a handler's error can carry details to the gateway.
 *
 * @module
 */

import type protobuf from "protobufjs";
import { type CallContext, RpcCode, RpcError } from "../../rpc/mod.ts";
import { CONFORMANCE_PACKAGE, type ConformanceSchema } from "./conformance_schema.ts";

/** The metadata key of an error's details: a base64 `google.rpc.Status`, as gRPC carries them. */
export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

const TRAILER_PREFIX = "trailer-";
const TYPE_URL_PREFIX = "type.googleapis.com/";

// The decoded messages the handlers read (protobufjs objects, camelCase fields).
interface Header {
  name: string;
  value: string[];
}

// A google.protobuf.Any as protobufjs holds it (its fields `type_url` and `value`), passed on untouched.
type AnyMessage = Readonly<Record<string, unknown>>;

interface ErrorDefinition {
  code: number;
  message?: string | null;
  details: AnyMessage[];
}

interface UnaryResponseDefinition {
  responseHeaders: Header[];
  responseData?: Uint8Array | null;
  error?: ErrorDefinition | null;
  responseTrailers: Header[];
  responseDelayMs: number;
}

interface StreamResponseDefinition {
  responseHeaders: Header[];
  responseData: Uint8Array[];
  responseDelayMs: number;
  error?: ErrorDefinition | null;
  responseTrailers: Header[];
}

interface UnaryRequest {
  responseDefinition?: UnaryResponseDefinition | null;
}

interface StreamRequest {
  responseDefinition?: StreamResponseDefinition | null;
  fullDuplex?: boolean;
}

// A RequestInfo as the response encoder takes it.
interface RequestInfo {
  requestHeaders: Header[];
  /** Milliseconds (a number: protobufjs's fromObject takes no bigint). */
  timeoutMs?: number;
  requests: AnyMessage[];
}

interface Payload {
  payload: { data: Uint8Array; requestInfo?: RequestInfo };
}

/**
 * The handlers of ConformanceService over `schema`, for `provider.registerService(schema.service, ...)`.
 * Safe to share between calls; each call's state is its own.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { RpcProvider } from "../../rpc/mod.ts";
 * import { loadConformanceSchema } from "./conformance_schema.ts";
 * import { conformanceHandlers } from "./conformance_service.ts";
 *
 * const schema = await loadConformanceSchema();
 * const provider = new RpcProvider({ loop: new EventLoop(), httpPort: 0 });
 * provider.registerService(schema.service, conformanceHandlers(schema));
 * ```
 */
export function conformanceHandlers(
  schema: ConformanceSchema,
): Record<string, unknown> {
  const types = new MessageTypes(schema.root);
  const unary = async (
    kind: string,
    request: UnaryRequest,
    context: CallContext,
  ) => {
    const info = requestInfo(context, [types.any(kind, request)]);
    return await answerUnary(
      types,
      request.responseDefinition ?? undefined,
      info,
      context,
    );
  };
  return {
    Unary: (request: UnaryRequest, context: CallContext) => unary("UnaryRequest", request, context),
    IdempotentUnary: (request: UnaryRequest, context: CallContext) => unary("IdempotentUnaryRequest", request, context),
    ClientStream: async (
      requests: AsyncIterable<UnaryRequest>,
      context: CallContext,
    ) => {
      const received: AnyMessage[] = [];
      let definition: UnaryResponseDefinition | undefined;
      for await (const request of requests) {
        if (received.length === 0) {
          definition = request.responseDefinition ?? undefined;
        }
        received.push(types.any("ClientStreamRequest", request));
      }
      return await answerUnary(
        types,
        definition,
        requestInfo(context, received),
        context,
      );
    },
    ServerStream: async function* (
      request: StreamRequest,
      context: CallContext,
    ): AsyncGenerator<Payload> {
      const info = requestInfo(context, [
        types.any("ServerStreamRequest", request),
      ]);
      const definition = request.responseDefinition ?? undefined;
      if (definition === undefined) return;
      setHeaders(context.responseMetadata, definition.responseHeaders, "");
      for (const [index, data] of definition.responseData.entries()) {
        await sleep(definition.responseDelayMs, context.signal);
        yield {
          payload: { data, requestInfo: index === 0 ? info : undefined },
        };
      }
      endStream(
        types,
        definition,
        definition.responseData.length === 0 ? info : undefined,
        context,
      );
    },
    BidiStream: async function* (
      requests: AsyncIterable<StreamRequest>,
      context: CallContext,
    ) {
      let definition: StreamResponseDefinition | undefined;
      let fullDuplex = false;
      const received: AnyMessage[] = [];
      let sent = 0;
      for await (const request of requests) {
        const message = types.any("BidiStreamRequest", request);
        if (received.length === 0) {
          definition = request.responseDefinition ?? undefined;
          fullDuplex = request.fullDuplex === true;
          if (definition !== undefined) {
            setHeaders(
              context.responseMetadata,
              definition.responseHeaders,
              "",
            );
          }
        }
        received.push(message);
        // Full duplex: one response per request, echoing that request (and, the first, the call's headers).
        if (
          fullDuplex && definition !== undefined &&
          sent < definition.responseData.length
        ) {
          await sleep(definition.responseDelayMs, context.signal);
          const info = sent === 0 ? requestInfo(context, [message]) : { requestHeaders: [], requests: [message] };
          yield {
            payload: {
              data: definition.responseData[sent]!,
              requestInfo: info,
            },
          };
          sent++;
        }
      }
      if (definition === undefined) return;
      const info = requestInfo(context, received);
      for (; sent < definition.responseData.length; sent++) {
        await sleep(definition.responseDelayMs, context.signal);
        yield {
          payload: {
            data: definition.responseData[sent]!,
            requestInfo: sent === 0 ? info : undefined,
          },
        };
      }
      endStream(
        types,
        definition,
        definition.responseData.length === 0 ? info : undefined,
        context,
      );
    },
    Unimplemented: () => {
      throw new RpcError(
        RpcCode.UNIMPLEMENTED,
        "Unimplemented is never implemented, as the suite expects",
      );
    },
  };
}

// The suite's message types this service encodes, looked up once.
class MessageTypes {
  readonly #root: protobuf.Root;
  readonly #types = new Map<string, protobuf.Type>();

  constructor(root: protobuf.Root) {
    this.#root = root;
  }

  type(fullName: string): protobuf.Type {
    let type = this.#types.get(fullName);
    if (type === undefined) {
      type = this.#root.lookupType(fullName);
      this.#types.set(fullName, type);
    }
    return type;
  }

  // `message` of the package's type `name` as an Any (re-encoded: what the server understood of it).
  any(name: string, message: unknown): AnyMessage {
    const fullName = `${CONFORMANCE_PACKAGE}.${name}`;
    const type = this.type(fullName);
    const value = type.encode(type.fromObject(message as object)).finish();
    // protobufjs declares its bundled Any with the field name `type_url` whatever the Root's case option.
    const any = this.type("google.protobuf.Any");
    return {
      [any.fieldsById[1]!.name]: `${TYPE_URL_PREFIX}${fullName}`,
      value,
    };
  }

  // An error's details as gRPC's status details: a google.rpc.Status, base64.
  statusDetails(code: number, message: string, details: AnyMessage[]): string {
    const type = this.type("google.rpc.Status");
    const bytes = type.encode(type.fromObject({ code, message, details }))
      .finish();
    return btoa(String.fromCharCode(...bytes));
  }
}

// The answer of a unary method or a client stream: the data with the RequestInfo, or the error with it.
async function answerUnary(
  types: MessageTypes,
  definition: UnaryResponseDefinition | undefined,
  info: RequestInfo,
  context: CallContext,
): Promise<Payload> {
  if (definition === undefined) {
    return { payload: { data: new Uint8Array(0), requestInfo: info } };
  }
  await sleep(definition.responseDelayMs, context.signal);
  if (definition.error != null) {
    const metadata: Record<string, string> = {};
    setHeaders(metadata, definition.responseHeaders, "");
    setHeaders(metadata, definition.responseTrailers, TRAILER_PREFIX);
    throw errorOf(types, definition.error, metadata, info);
  }
  setHeaders(context.responseMetadata, definition.responseHeaders, "");
  setHeaders(
    context.responseMetadata,
    definition.responseTrailers,
    TRAILER_PREFIX,
  );
  return {
    payload: {
      data: definition.responseData ?? new Uint8Array(0),
      requestInfo: info,
    },
  };
}

// A stream's end: the trailers, or the error (with the RequestInfo when no response carried it).
function endStream(
  types: MessageTypes,
  definition: StreamResponseDefinition,
  info: RequestInfo | undefined,
  context: CallContext,
): void {
  if (definition.error != null) {
    const metadata: Record<string, string> = {};
    setHeaders(metadata, definition.responseHeaders, "");
    setHeaders(metadata, definition.responseTrailers, TRAILER_PREFIX);
    throw errorOf(types, definition.error, metadata, info);
  }
  setHeaders(
    context.responseMetadata,
    definition.responseTrailers,
    TRAILER_PREFIX,
  );
}

function errorOf(
  types: MessageTypes,
  error: ErrorDefinition,
  metadata: Record<string, string>,
  info: RequestInfo | undefined,
): RpcError {
  const code = error.code > 0 && error.code <= 16 ? error.code as RpcCode : RpcCode.UNKNOWN;
  const message = error.message ?? "";
  const details = [...error.details];
  if (info !== undefined) details.push(requestInfoAny(types, info));
  if (details.length > 0) {
    metadata[STATUS_DETAILS_KEY] = types.statusDetails(code, message, details);
  }
  return new RpcError(code, message, { metadata });
}

function requestInfoAny(types: MessageTypes, info: RequestInfo): AnyMessage {
  return types.any("ConformancePayload.RequestInfo", info);
}

// What the call received: its metadata (the caller's headers less the protocol's), the deadline left, the requests.
function requestInfo(
  context: CallContext,
  requests: AnyMessage[],
): RequestInfo {
  const requestHeaders = Object.entries(context.metadata).map((
    [name, value],
  ) => ({ name, value: [value] }));
  const left = context.timeRemainingMs();
  const info: RequestInfo = { requestHeaders, requests };
  if (Number.isFinite(left)) info.timeoutMs = Math.max(0, Math.floor(left));
  return info;
}

// Headers (or, with prefix "trailer-", trailers) into a metadata bag: names lower-cased, values joined.
function setHeaders(
  metadata: Record<string, string>,
  headers: readonly Header[],
  prefix: string,
): void {
  for (const header of headers) {
    const key = `${prefix}${header.name.toLowerCase()}`;
    const joined = header.value.join(", ");
    metadata[key] = Object.hasOwn(metadata, key) && metadata[key] !== "" ? `${metadata[key]}, ${joined}` : joined;
  }
}

// Wait `ms`; the call's end (deadline, cancel) ends the wait with its reason.
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", aborted);
    };
    const aborted = () => {
      done();
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      done();
      resolve();
    }, ms);
    signal.addEventListener("abort", aborted, { once: true });
  });
}
