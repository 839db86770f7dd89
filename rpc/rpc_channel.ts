/**
 * The channel (the seed's DwtRpcChannel, grown up): finds a service's providers in the registry and keeps them
 * current through watches, balances calls over one multiplexed connection per provider, enforces a deadline on
 * every call (inherited from a parent call's context), cancels by AbortSignal, and retries only what is safe
 * (requests that never reached a handler) with back-off and a budget. It obeys providers' drain frames, pings
 * idle connections, and ejects outliers (a provider whose calls keep missing their deadline, or that stops
 * answering pings, is skipped for a back-off period, then probed). Stubs turn it into typed method calls.
 *
 * @module
 */

import type protobuf from "protobufjs";
import { ChannelRouter } from "./_channel_router.ts";
import { messageDecoder, messageEncoder, prepareType } from "./_proto3_defaults.ts";
import { decodeAnswer, PendingCall, type ResponseDecoder } from "./_pending_call.ts";
import { encodeMessage } from "./_byte_slab.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import { definitionOf, type MethodDefinition, MethodKind, type ServiceDefinition } from "./service_definition.ts";
import { ClientStream } from "./_client_stream.ts";
import { DEFAULT_WINDOW_BYTES, MAX_CREDIT_BYTES, StreamKind } from "./_rpc_wire.ts";

const EMPTY_BYTES = new Uint8Array(0);

// Where a stream's opening carries the stream through the interceptors (a symbol: spreads keep it, users never
// see it).
const STREAM = Symbol("dwt-stream");

const STREAM_METHOD_KINDS: Record<number, MethodKind> = {
  [StreamKind.CLIENT]: MethodKind.CLIENT_STREAMING,
  [StreamKind.SERVER]: MethodKind.SERVER_STREAMING,
  [StreamKind.BIDI]: MethodKind.BIDI_STREAMING,
};

/** The longest deadline a call can have: longer ones are clamped (the host timers' range, about 24.8 days). */
export const MAX_CALL_TIMEOUT_MS = 0x7fff_ffff;

export type { CallOptions, ClientCall, ClientHandler, ClientInterceptor, ClientResult } from "./client_handler.ts";
export type { RpcChannelOptions } from "./rpc_channel_options.ts";
import type { CallOptions, ClientHandler, ClientResult } from "./client_handler.ts";
import type { RpcChannelOptions } from "./rpc_channel_options.ts";

/**
 * One method of a stub: takes a request message (or plain object), resolves with the response message.
 *
 * @example
 * ```ts
 * import type { StubMethod } from "./rpc_channel.ts";
 *
 * // Generated code gives each method its types; hand-written ones look like this.
 * interface EchoStub {
 *   Say: StubMethod<{ text?: string }, { text: string }>;
 * }
 * const shout = async (stub: EchoStub, text: string) => (await stub.Say({ text }, { timeoutMs: 500 })).text;
 * ```
 */
// `any` defaults on purpose: an untyped stub (`channel.stub(service)`) takes and returns whatever the .proto says,
// which only generated code knows; generated stubs pass the real types.
// deno-lint-ignore no-explicit-any
export type StubMethod<Req = any, Res = any> = (request?: Req, options?: CallOptions) => Promise<Res>;

/**
 * A server-streaming method of a stub: takes one request, returns the responses as an async iterable. The call
 * starts when iteration does; a `break` (or `return`) out of the loop cancels it on both sides, and a failure
 * (deadline, cancel, the provider's error, a lost connection) is thrown by the loop as an {@linkcode RpcError}.
 *
 * @example
 * ```ts
 * import type { ServerStreamingStubMethod } from "./rpc_channel.ts";
 *
 * interface FeedStub {
 *   Watch: ServerStreamingStubMethod<{ topic?: string }, { text: string }>;
 * }
 * const firstThree = async (stub: FeedStub) => {
 *   const texts: string[] = [];
 *   for await (const update of stub.Watch({ topic: "news" }, { timeoutMs: 60_000 })) {
 *     texts.push(update.text);
 *     if (texts.length === 3) break; // cancels the stream
 *   }
 *   return texts;
 * };
 * ```
 */
// `any` defaults on purpose, as for StubMethod: only generated code knows the message types.
// deno-lint-ignore no-explicit-any
export type ServerStreamingStubMethod<Req = any, Res = any> = (
  request?: Req,
  options?: CallOptions,
) => AsyncIterable<Res>;

/**
 * A client-streaming method of a stub: sends the messages `requests` yields (as fast as the provider's window lets
 * it), half-closes when it ends, and resolves with the one response.
 *
 * @example
 * ```ts
 * import type { ClientStreamingStubMethod } from "./rpc_channel.ts";
 *
 * interface SumStub {
 *   Sum: ClientStreamingStubMethod<{ n?: number }, { total: number }>;
 * }
 * const total = async (stub: SumStub) => (await stub.Sum([{ n: 1 }, { n: 2 }, { n: 3 }])).total;
 * ```
 */
// `any` defaults on purpose, as for StubMethod: only generated code knows the message types.
// deno-lint-ignore no-explicit-any
export type ClientStreamingStubMethod<Req = any, Res = any> = (
  requests: AsyncIterable<Req> | Iterable<Req>,
  options?: CallOptions,
) => Promise<Res>;

/**
 * A bidirectional-streaming method of a stub: sends what `requests` yields while the returned iterable yields the
 * provider's messages; both directions are flow-controlled on their own. Breaking out of the loop cancels the call.
 *
 * @example
 * ```ts
 * import type { BidiStreamingStubMethod } from "./rpc_channel.ts";
 *
 * interface ChatStub {
 *   Chat: BidiStreamingStubMethod<{ text?: string }, { text: string }>;
 * }
 * const echoes = async (stub: ChatStub) => {
 *   const texts: string[] = [];
 *   for await (const reply of stub.Chat([{ text: "hi" }, { text: "bye" }])) texts.push(reply.text);
 *   return texts;
 * };
 * ```
 */
// `any` defaults on purpose, as for StubMethod: only generated code knows the message types.
// deno-lint-ignore no-explicit-any
export type BidiStreamingStubMethod<Req = any, Res = any> = (
  requests: AsyncIterable<Req> | Iterable<Req>,
  options?: CallOptions,
) => AsyncIterable<Res>;

/**
 * Method calls on a service: `await stub.Login({ name, password })`. Name the methods with a type argument.
 *
 * @example
 * ```ts
 * import type { RpcChannel, Stub } from "./rpc_channel.ts";
 * import type { ServiceDefinition } from "./service_definition.ts";
 *
 * // Untyped: any method of the service, taking and returning plain objects.
 * const untyped = (channel: RpcChannel, service: ServiceDefinition): Stub => channel.stub(service);
 * ```
 */
export type Stub = Record<string, StubMethod>;

/** A call on its way to the interceptors or to a PendingCall (a {@linkcode ClientCall} before they copy metadata). */
interface OutgoingCall {
  readonly service: string;
  readonly method: string;
  readonly payload: Uint8Array;
  readonly metadata: Record<string, string> | undefined;
  readonly options: CallOptions;
}

/**
 * Calls services by name.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import { RpcChannel, type StubMethod } from "./rpc_channel.ts";
 * import { RpcProvider } from "./rpc_provider.ts";
 * import { parseProto, serviceDefinition } from "./service_definition.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo;
 *   message Msg { string text = 1; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`);
 * const echo = serviceDefinition(root, "demo.Echo");
 * const loop = new EventLoop();
 * const provider = new RpcProvider({ loop });
 * provider.registerService(echo, { Say: (request: { text: string }) => ({ text: request.text + "!" }) });
 * await provider.start();
 * const channel = new RpcChannel({ loop, providers: { "demo.Echo": [provider.advertisedAddress] } });
 * const stub = channel.stub<{ Say: StubMethod }>(echo);
 * assert.equal((await stub.Say({ text: "hi" })).text, "hi!");
 * await channel.close();
 * await provider.stop();
 * ```
 */
export class RpcChannel {
  readonly #options: RpcChannelOptions;
  // Providers, connections, ejection and the retry budget: the channel's own, told of every attempt by its calls.
  readonly #router: ChannelRouter;
  // Undefined without interceptors: calls then skip building a ClientCall and the promise layers around it.
  readonly #send: ClientHandler | undefined;
  readonly #timeoutMs: number;
  readonly #streamWindowBytes: number;

  /** Create a channel; connections open on first use. */
  constructor(options: RpcChannelOptions) {
    if (options.registry === undefined && options.providers === undefined) {
      throw new TypeError("Cannot create channel as neither 'registry' nor 'providers' is given");
    }
    const timeoutMs = options.timeoutMs ?? 5000;
    if (!(timeoutMs > 0)) {
      throw new RangeError(`Cannot create channel as 'timeoutMs' must be > 0: current value is ${timeoutMs}`);
    }
    const windowBytes = options.streamWindowBytes ?? DEFAULT_WINDOW_BYTES;
    if (!Number.isInteger(windowBytes) || windowBytes < DEFAULT_WINDOW_BYTES || windowBytes > MAX_CREDIT_BYTES) {
      throw new RangeError(
        `Cannot create channel as 'streamWindowBytes' must be an integer from 65536 to 2^31 - 1: current value is ` +
          windowBytes,
      );
    }
    this.#streamWindowBytes = windowBytes;
    this.#options = options;
    this.#router = new ChannelRouter(options, Math.min(timeoutMs, MAX_CALL_TIMEOUT_MS));
    this.#timeoutMs = timeoutMs;
    // A stream's opening reaches the end of the chain with the stream itself: it starts there with the metadata the
    // interceptors set, and the chain's promise settles when the stream ends.
    const base: ClientHandler = (call) => {
      const stream = (call as { [STREAM]?: ClientStream })[STREAM];
      if (stream === undefined) return this.#invoke(call, undefined) as Promise<ClientResult>;
      stream.metadata = call.metadata;
      stream.start();
      return stream.ended;
    };
    const interceptors = options.interceptors ?? [];
    this.#send = interceptors.length === 0
      ? undefined
      : interceptors.reduceRight((next, interceptor) => interceptor(next), base);
  }

  /** The providers skipped now by outlier ejection (after failures) or because they are draining. */
  ejectedProviders(): string[] {
    return this.#router.ejectedProviders();
  }

  /** The providers currently known for `service` (discovering them if needed). */
  providersOf(service: string): Promise<string[]> {
    return this.#router.providersOf(service);
  }

  /** Call `service.method` with a serialized request; resolves with the serialized response. */
  call(service: string, method: string, payload: Uint8Array, options: CallOptions = {}): Promise<ClientResult> {
    return this.#call({ service, method, payload, metadata: options.metadata, options }) as Promise<ClientResult>;
  }

  /**
   * A stub of a service: one async function per method (by its .proto name and in lower camel case) taking and
   * returning messages (or plain objects). Give its shape as the type argument, as generated code does:
   * `channel.stub<{ Login: StubMethod<LoginRequest, LoginResponse> }>(service)`.
   */
  stub<T extends object = Stub>(service: ServiceDefinition | protobuf.Service): T {
    const definition = "methods" in service && service.methods instanceof Map
      ? service as ServiceDefinition
      : definitionOf(service as protobuf.Service);
    const stub: Stub = {};
    for (const method of definition.methods.values()) {
      if (method.kind !== undefined && method.kind !== MethodKind.UNARY) {
        const call = this.#streamMethod(definition.fullName, method);
        stub[method.name] = call;
        stub[method.name[0]!.toLowerCase() + method.name.slice(1)] = call;
        continue;
      }
      const type = method.requestType;
      const decodeResponse = messageDecoder(method.responseType);
      const encodable = messageEncoder(type);
      const decode: ResponseDecoder = (payload) => decodeResponse(payload);
      const call = (request: unknown = {}, options: CallOptions = {}): Promise<unknown> => {
        let payload: Uint8Array;
        try {
          payload = encodeMessage(type, encodable(request));
        } catch (error) {
          return Promise.reject(
            new RpcError(RpcCode.INVALID_ARGUMENT, `Cannot encode the request of ${method.name}`, { cause: error }),
          );
        }
        return this.#call({
          service: definition.fullName,
          method: method.name,
          payload,
          metadata: options.metadata,
          options,
        }, decode);
      };
      stub[method.name] = call;
      stub[method.name[0]!.toLowerCase() + method.name.slice(1)] = call;
    }
    return stub as T;
  }

  // One streaming method of a stub: server and bidirectional streams return an iterable that starts the stream
  // when iterated; a client stream starts at once and resolves with the answer.
  #streamMethod(service: string, method: MethodDefinition): StubMethod {
    const kind = method.kind === MethodKind.CLIENT_STREAMING
      ? StreamKind.CLIENT
      : method.kind === MethodKind.SERVER_STREAMING
      ? StreamKind.SERVER
      : StreamKind.BIDI;
    const requestType = method.requestType;
    const encodable = messageEncoder(requestType);
    const encode = (value: unknown) => encodeMessage(requestType, encodable(value ?? {}));
    const decode = messageDecoder(method.responseType);
    const open = (first: unknown, options: CallOptions): ClientStream => {
      let payload: Uint8Array = EMPTY_BYTES;
      if (kind === StreamKind.SERVER) {
        try {
          payload = encode(first);
        } catch (error) {
          throw new RpcError(RpcCode.INVALID_ARGUMENT, `Cannot encode the request of ${method.name}`, { cause: error });
        }
      }
      return new ClientStream({
        router: this.#router,
        service,
        method: method.name,
        kind,
        payload,
        metadata: options.metadata,
        options,
        timeoutMs: this.#streamTimeoutMs(options),
        windowBytes: this.#streamWindowBytes,
        decode,
        encode,
        requests: kind === StreamKind.SERVER ? undefined : first as AsyncIterable<unknown> | Iterable<unknown>,
      });
    };
    if (kind === StreamKind.CLIENT) {
      return (requests: unknown, options: CallOptions = {}) => {
        const stream = open(requests, options);
        this.#startStream(stream, kind, options);
        return stream.ended.then((result) => decodeAnswer(decode, method.name, result.payload, result.metadata));
      };
    }
    return (first: unknown = {}, options: CallOptions = {}) =>
      ({
        [Symbol.asyncIterator]: () => {
          const stream = open(first, options);
          this.#startStream(stream, kind, options);
          return stream.responses![Symbol.asyncIterator]();
        },
      }) as unknown as Promise<unknown>;
  }

  // Through the interceptors when there are any (they see the opening and the end, not the messages), else at once.
  #startStream(stream: ClientStream, kind: StreamKind, options: CallOptions): void {
    this.#router.callStarted();
    if (this.#send === undefined) {
      stream.start();
      return;
    }
    const call = {
      service: stream.service,
      method: stream.method,
      payload: stream.payload,
      metadata: { ...stream.metadata },
      options,
      kind: STREAM_METHOD_KINDS[kind],
      [STREAM]: stream,
    };
    let sent: Promise<ClientResult>;
    try {
      sent = this.#send(call);
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(
      () => {
        if (!stream.started) {
          stream.fail(new RpcError(RpcCode.INTERNAL, `An interceptor answered the stream ${stream.method} without it`));
        }
      },
      (error) => stream.fail(RpcError.from(error)),
    );
  }

  // A stream's deadline covers all of it, so it has none unless the call sets one (the channel's `timeoutMs` is for
  // unary calls: a feed that runs for hours is no error) or its parent call has one.
  #streamTimeoutMs(options: CallOptions): number {
    let timeoutMs = options.timeoutMs === undefined ? Infinity : Math.min(options.timeoutMs, MAX_CALL_TIMEOUT_MS);
    if (options.parent !== undefined) timeoutMs = Math.min(timeoutMs, Math.max(0, options.parent.timeRemainingMs()));
    return timeoutMs;
  }

  /**
   * An rpcImpl for protobufjs's `Service.create(rpcImpl)` (the seed's `Service_Stub` over a channel): method
   * calls go through this channel.
   */
  rpcImpl(serviceFullName: string, options: CallOptions = {}): protobuf.RPCImpl {
    return (method, requestData, callback) => {
      // protobufjs decodes the answer itself: its omitted bytes fields at least come back as Uint8Array (64-bit
      // values stay Long on this path; stubs give bigint).
      const responseType = (method as { resolvedResponseType?: protobuf.Type | null }).resolvedResponseType;
      if (responseType) prepareType(responseType);
      this.call(serviceFullName, method.name, requestData, options).then(
        (result) => callback(null, result.payload),
        (error) => callback(error, null),
      );
    };
  }

  /** Close every connection and stop watching. Calls in flight fail with UNAVAILABLE. */
  close(): Promise<void> {
    return this.#router.close();
  }

  /** Same as {@linkcode RpcChannel.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- calls ---

  // The one road of every call (stubs, `call`, rpcImpl): through the interceptors when there are any, else
  // straight to a PendingCall; `decode` turns the answer into the stub's message (by default a ClientResult).
  #call(call: OutgoingCall, decode?: ResponseDecoder): Promise<unknown> {
    if (this.#send === undefined) return this.#invoke(call, decode);
    const { options } = call;
    let sent: Promise<ClientResult>;
    try {
      sent = this.#send({ ...call, metadata: { ...call.metadata }, options });
    } catch (error) {
      sent = Promise.reject(error); // an interceptor that throws before returning a promise
    }
    const answered = decode === undefined
      ? sent
      : sent.then((result) => decodeAnswer(decode, call.method, result.payload, result.metadata));
    return answered.catch((error) => {
      const rpcError = RpcError.from(error);
      options.controller?.setFailed(rpcError.rawMessage, rpcError.code);
      throw rpcError;
    });
  }

  // One call: a PendingCall does the rest (attempts, deadline, cancel, retries) and settles the promise.
  #invoke(call: OutgoingCall, decode: ResponseDecoder | undefined): Promise<unknown> {
    const { service, method, options } = call;
    this.#router.callStarted();
    let timeoutMs = Math.min(options.timeoutMs ?? this.#timeoutMs, MAX_CALL_TIMEOUT_MS);
    const parent = options.parent;
    if (parent !== undefined) {
      const parentLeftMs = parent.timeRemainingMs();
      if (parentLeftMs <= 0) {
        const error = new RpcError(
          RpcCode.DEADLINE_EXCEEDED,
          `The call to ${service}.${method} was not sent: the deadline of its parent call ${parent.service}.` +
            `${parent.method} has passed`,
        );
        options.controller?.setFailed(error.rawMessage, error.code);
        return Promise.reject(error);
      }
      timeoutMs = Math.min(timeoutMs, parentLeftMs);
    }
    return new Promise((resolve, reject) => {
      new PendingCall({
        router: this.#router,
        service,
        method,
        payload: call.payload,
        metadata: call.metadata,
        options,
        timeoutMs,
        resolve,
        reject,
        decode,
      }).start();
    });
  }
}
