/**
 * What a service author writes and what the provider's internals call: the handler, its context and the
 * interceptor that wraps it. A file of its own so the dispatch, the calls and the ledger can name these types
 * without importing the provider that owns them.
 *
 * @module
 */

/**
 * What a handler knows about its call.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import { RpcChannel, type StubMethod } from "./rpc_channel.ts";
 * import { type CallContext, RpcProvider } from "./rpc_provider.ts";
 * import { parseProto, serviceDefinition } from "./service_definition.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo;
 *   message Msg { string text = 1; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`);
 * const echo = serviceDefinition(root, "demo.Echo");
 * const loop = new EventLoop();
 * const provider = new RpcProvider({ loop });
 * provider.registerService(echo, {
 *   Say: (request: { text: string }, context: CallContext) => {
 *     context.responseMetadata["served-by"] = "example";
 *     return { text: `${request.text} from ${context.metadata["user"]}, ${context.method}` };
 *   },
 * });
 * await provider.start();
 * const channel = new RpcChannel({ loop, providers: { "demo.Echo": [provider.advertisedAddress] } });
 * const stub = channel.stub<{ Say: StubMethod }>(echo);
 * assert.equal((await stub.Say({ text: "hi" }, { metadata: { user: "dwt" } })).text, "hi from dwt, Say");
 * await channel.close();
 * await provider.stop();
 * ```
 */
export interface CallContext {
  /** Full service name. */
  readonly service: string;
  /** Method name. */
  readonly method: string;
  /** Fires when the caller gives up (deadline, cancel, connection lost) or the provider stops. */
  readonly signal: AbortSignal;
  /** Metadata the caller sent. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Metadata to send back with the response (set entries on it). */
  readonly responseMetadata: Record<string, string>;
  /** The caller's address. */
  readonly peer: string;
  /** Milliseconds the caller still waits (Infinity without a deadline). */
  timeRemainingMs(): number;
}

/**
 * A decoded call on its way to the handler. Interceptors see streams through the same shape: for a client or
 * bidirectional stream `request` is the AsyncIterable of the caller's messages (an interceptor may wrap it), and
 * for a server or bidirectional stream the promise resolves with the handler's AsyncIterable of responses (wrap
 * it to see or change each one); a client stream's promise resolves with its one response, as for unary calls.
 * The stream ends when that iterable does; an interceptor that throws or rejects ends it with the error's status.
 *
 * @example
 * ```ts
 * import type { ServerHandler } from "./server_handler.ts";
 *
 * // What an interceptor wraps: the rest of the chain, ending in the method's handler.
 * const timed = (next: ServerHandler): ServerHandler => async (request, context) => {
 *   const start = performance.now();
 *   try {
 *     return await next(request, context);
 *   } finally {
 *     console.log(`${context.service}.${context.method} took ${(performance.now() - start).toFixed(1)} ms`);
 *   }
 * };
 * ```
 */
export type ServerHandler = (request: unknown, context: CallContext) => Promise<unknown>;

/**
 * A method implementation: takes the decoded request, returns the response (a message or a plain object).
 *
 * @example
 * ```ts
 * import type { CallContext, MethodHandler } from "./server_handler.ts";
 *
 * // A handler may return the response or a promise of it, and should stop when the caller gives up.
 * const slowEcho: MethodHandler = async (request: { text: string }, context: CallContext) => {
 *   await new Promise((resolve) => setTimeout(resolve, Math.min(100, context.timeRemainingMs())));
 *   context.signal.throwIfAborted();
 *   return { text: request.text };
 * };
 * ```
 */
// `any` on purpose: handlers declare their own request types (generated from the .proto), which a parameter of
// `unknown` would not accept without a cast in every handler.
// deno-lint-ignore no-explicit-any
export type MethodHandler = (request: any, context: CallContext) => unknown;

/**
 * A service implementation: handlers by method name (`Login` or `login`); a class instance works too.
 *
 * @example
 * ```ts
 * import type { ServiceImplementation } from "./server_handler.ts";
 *
 * // An object (or class instance) with one method per RPC, named as in the .proto.
 * class UserService {
 *   Login(request: { name: string }) {
 *     return { success: request.name !== "" };
 *   }
 * }
 * const implementation: ServiceImplementation = new UserService();
 * ```
 */
export type ServiceImplementation = object;

/**
 * Wraps the handler chain: for auth, logging, metrics.
 *
 * @example
 * ```ts
 * import { RpcCode, RpcError } from "./rpc_error.ts";
 * import { RpcProvider, type ServerInterceptor } from "./rpc_provider.ts";
 *
 * // Refuse calls without the right token before they reach a handler.
 * const requireToken: ServerInterceptor = (next) => (request, context) => {
 *   if (context.metadata["authorization"] !== "Bearer s3cret") {
 *     throw new RpcError(RpcCode.UNAUTHENTICATED, "A valid token is required");
 *   }
 *   return next(request, context);
 * };
 * const provider = new RpcProvider({ interceptors: [requireToken] });
 * ```
 */
export type ServerInterceptor = (next: ServerHandler) => ServerHandler;

/**
 * A server-streaming method's handler: an async generator of responses for one request. The stream ends OK when
 * the generator returns, with the thrown error's status when it throws; when the caller goes away (cancel,
 * deadline, a `break` out of its loop, the connection lost) `context.signal` fires and the generator's `finally`
 * runs at its next `yield`.
 *
 * @example
 * ```ts
 * import type { CallContext, ServerStreamingHandler } from "./server_handler.ts";
 *
 * const countdown: ServerStreamingHandler<{ from: number }, { n: number }> = async function* (request, context) {
 *   for (let n = request.from; n > 0 && !context.signal.aborted; n--) yield { n };
 * };
 * ```
 */
// `any` defaults on purpose, as for MethodHandler: a handler declares its own message types.
// deno-lint-ignore no-explicit-any
export type ServerStreamingHandler<Req = any, Res = any> = (
  request: Req,
  context: CallContext,
) => AsyncIterable<Res> | Iterable<Res>;

/**
 * A client-streaming method's handler: reads the caller's messages and returns the one response. The iterable
 * ends when the caller half-closes; reading it is what grants the caller credit to send more (flow control).
 *
 * @example
 * ```ts
 * import type { ClientStreamingHandler } from "./server_handler.ts";
 *
 * const sum: ClientStreamingHandler<{ n: number }, { total: number }> = async (requests) => {
 *   let total = 0;
 *   for await (const request of requests) total += request.n;
 *   return { total };
 * };
 * ```
 */
// `any` defaults on purpose, as for MethodHandler: a handler declares its own message types.
// deno-lint-ignore no-explicit-any
export type ClientStreamingHandler<Req = any, Res = any> = (
  requests: AsyncIterable<Req>,
  context: CallContext,
) => Res | Promise<Res>;

/**
 * A bidirectional-streaming method's handler: an async generator of responses that reads the caller's messages
 * as it likes (both sides flow-controlled on their own).
 *
 * @example
 * ```ts
 * import type { BidiStreamingHandler } from "./server_handler.ts";
 *
 * const echo: BidiStreamingHandler<{ text: string }, { text: string }> = async function* (requests) {
 *   for await (const request of requests) yield { text: request.text };
 * };
 * ```
 */
// `any` defaults on purpose, as for MethodHandler: a handler declares its own message types.
// deno-lint-ignore no-explicit-any
export type BidiStreamingHandler<Req = any, Res = any> = (
  requests: AsyncIterable<Req>,
  context: CallContext,
) => AsyncIterable<Res>;
