/**
 * What a caller's interceptors see: the call on its way out, its result, and the handler chain they wrap. A file
 * of its own so the call machinery can name these types without importing the channel that owns them.
 *
 * @module
 */

import type { RpcController } from "./rpc_controller.ts";
import type { CallContext } from "./server_handler.ts";
import type { MethodKind } from "./service_definition.ts";

/**
 * Per-call options.
 *
 * @example
 * ```ts
 * import { RpcController } from "./rpc_controller.ts";
 * import type { CallOptions } from "./rpc_channel.ts";
 *
 * const controller = new RpcController();
 * const options: CallOptions = { timeoutMs: 500, metadata: { user: "dwt" }, controller };
 * // await stub.Login(request, options); then controller.failed() and controller.errorText() tell how it went
 * ```
 */
export interface CallOptions {
  /**
   * This call's deadline in milliseconds from now (overrides the channel's default). A stream's deadline covers the
   * whole stream, and a stream has none unless this sets one (or its `parent` has one): the channel's default is
   * for unary calls.
   */
  timeoutMs?: number;
  /** Cancels the call. */
  signal?: AbortSignal;
  /** Metadata sent with the request. */
  metadata?: Record<string, string>;
  /** The key for consistent hashing. */
  hashKey?: string;
  /** A seed-style controller: told of failure, and its `startCancel` cancels the call. */
  controller?: RpcController;
  /** Streams: told of the provider's trailing metadata when the stream ends OK. */
  onTrailers?: (metadata: Record<string, string>) => void;
  /**
   * The incoming call this call is made for (a handler's `context`): the call gets at most the parent's remaining
   * deadline, and is cancelled when the parent is (its caller cancelled, its deadline passed, the provider
   * stopped).
   */
  parent?: CallContext;
}

/**
 * A call on its way out, as client interceptors see it.
 *
 * @example
 * ```ts
 * import type { ClientCall } from "./rpc_channel.ts";
 *
 * const describe = (call: ClientCall) => `${call.service}.${call.method}, ${call.payload.length} bytes`;
 * ```
 */
export interface ClientCall {
  /** The full service name (`dwt.UserServiceRpc`). */
  readonly service: string;
  /** The method name (`Login`). */
  readonly method: string;
  /** The request message, serialized (an interceptor may replace it). */
  payload: Uint8Array;
  /** Metadata sent with the request (an interceptor may add entries). */
  metadata: Record<string, string>;
  /** The options the call was made with. */
  readonly options: CallOptions;
  /**
   * Absent for a unary call; for a stream, which side streams. An interceptor sees a stream's opening (its
   * `payload` is a server stream's one request, else empty; metadata set here is sent with it) and its end: the
   * promise `next` returns settles when the stream ends, with a client stream's answer as `payload` (else empty)
   * and the trailing metadata, or with the stream's error. It does not see the messages.
   */
  readonly kind?: MethodKind;
}

/**
 * A call's answer, as client interceptors see it: the serialized response and the provider's metadata.
 *
 * @example
 * ```ts
 * import type { ClientResult } from "./rpc_channel.ts";
 *
 * const describe = (result: ClientResult) =>
 *   `${result.payload.length} bytes, served by ${result.metadata["served-by"]}`;
 * ```
 */
export interface ClientResult {
  /** The response message, serialized. */
  payload: Uint8Array;
  /** Metadata the provider sent with the response. */
  metadata: Record<string, string>;
}

/**
 * Sends a call.
 *
 * @example
 * ```ts
 * import type { ClientHandler } from "./rpc_channel.ts";
 *
 * // What an interceptor wraps: the rest of the chain, ending in the network.
 * const logged = (next: ClientHandler): ClientHandler => async (call) => {
 *   const result = await next(call);
 *   console.log(`${call.service}.${call.method}: ${result.payload.length} bytes back`);
 *   return result;
 * };
 * ```
 */
export type ClientHandler = (call: ClientCall) => Promise<ClientResult>;

/**
 * Wraps sending: auth headers, logging, metrics.
 *
 * @example
 * ```ts
 * import { RpcChannel, type ClientInterceptor } from "./rpc_channel.ts";
 *
 * // Add a token to every call.
 * const withToken: ClientInterceptor = (next) => (call) => {
 *   call.metadata["authorization"] = "Bearer s3cret";
 *   return next(call);
 * };
 * const channel = new RpcChannel({ providers: { "demo.Echo": ["127.0.0.1:8800"] }, interceptors: [withToken] });
 * await channel.close();
 * ```
 */
export type ClientInterceptor = (next: ClientHandler) => ClientHandler;
