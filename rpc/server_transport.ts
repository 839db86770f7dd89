/**
 * The provider's side of the seam between calls and sockets (the caller's side is in transport.ts): a
 * {@linkcode ServerTransport} is where a provider's connections come from, a {@linkcode ServerConnection} is one
 * of them as the provider's calls see it, and a {@linkcode ServerTransportHandler} is the provider as the
 * transport sees it. The reactor's TCP with the envelope of proto/rpc.proto is one implementation (the default;
 * the keepalive pings, frame limits and per-address connection caps live there); `MemoryServer` is another, in
 * one process with no socket, so a unit test drives a real provider's dispatch.
 *
 * What crosses, and why it is shaped so: a call is a stream in both directions, named by an id unique among the
 * calls in flight on its connection. Towards the provider it is a head (service, method, metadata, deadline), its
 * messages and the caller's half-close, or a cancel; towards the caller it is headers, messages, and trailers
 * (status, reason, metadata). A unary request arrives as one {@linkcode RequestFrame} (head, one message and the
 * half-close at once) and its answer leaves as one {@linkcode CallAnswer} (one message and trailers at once). A
 * stream opens with a RequestFrame whose `stream` names its kind; its messages, half-close and credit arrive
 * through the handler's optional `message`, `halfClose` and `credit`, its messages and credit leave through the
 * connection's optional `sendMessage` (fair among the connection's streams) and `sendCredit`, and its end leaves
 * as a CallAnswer. The HTTP gateway (`http/gateway_transport.ts`: Connect and gRPC-Web) is one more
 * {@linkcode ServerTransport}: each HTTP request is a call on a connection of its own (`Connect-Timeout-Ms` is the
 * deadline, headers the metadata, an aborted request the cancel, `drain` a `Connection: close`), so the provider's
 * dispatch, limits on calls and accounting serve it unchanged; it asks the provider for a method's definition
 * (`method`) to transcode JSON and tell a stream's kind before it frames the request.
 *
 * The provider owns the calls and everything about them (which ones run, limits on calls and metadata, deadlines,
 * drain, counting); a transport owns its connections and its bytes (framing, flow control, keepalive, idle
 * connections). Limits either side hits are counted through {@linkcode ServerTransportHandler.limitHit}.
 * Everything happens on the connection's loop.
 *
 * Every port is a front door: a transport that takes connections from the network (TCP, the HTTP gateway, the C++
 * seed's frame in seed/rpc/seed_server_transport.ts) keeps them in a `ConnectionGate` (`_connection_gate.ts`), which holds the connection
 * caps (in all and per address), closes a connection whose first whole frame does not come within
 * `handshakeTimeoutMs`, and at `maxConnections` makes room by evicting the oldest connection that never spoke. A
 * transport only tells it when a connection comes, first speaks (for the gateway: its first whole HTTP request)
 * and goes, so each port gets the same limits and counters without code of its own.
 *
 * @module
 */

import type { EventLoop } from "../reactor/event_loop.ts";
import type { InetAddress } from "../reactor/inet_address.ts";
import type { MethodDefinition } from "./service_definition.ts";

/**
 * A request as a provider's transport hands it to the provider: a unary call's head, its one message and its
 * half-close.
 *
 * @example
 * ```ts
 * import type { RequestFrame } from "./server_transport.ts";
 *
 * const describe = (request: RequestFrame) =>
 *   `${request.service}.${request.method} #${request.callId}, deadline ${request.timeoutMs || "none"}`;
 * ```
 */
export interface RequestFrame {
  /** The caller's id of the call, unique among its calls in flight on the connection. */
  readonly callId: number;
  /** Full service name, with its package. */
  readonly service: string;
  /** Method name. */
  readonly method: string;
  /** Milliseconds the caller waits from when the request arrived; 0: no deadline. */
  readonly timeoutMs: number;
  /** Metadata the caller sent. */
  readonly metadata: Record<string, string> | undefined;
  /** The serialized request message; may be a view into the transport's input: valid only during `request`. */
  readonly payload: Uint8Array;
  /**
   * Set by a transport that measured the metadata against the provider's limit and stopped reading it (the
   * provider then refuses the call).
   */
  readonly metadataOverLimit?: boolean;
  /** The metadata's size as counted against the limit (key + value + 32 per entry), when measured. */
  readonly metadataBytes?: number;
  /** 0 or absent: a unary call; else the kind of stream it opens (1 client, 2 server, 3 bidirectional). */
  readonly stream?: number;
  /** A stream's receive window of the caller in bytes (0 or absent: 65536). */
  readonly window?: number;
}

/**
 * A served call's answer, as its provider-side transport reads it: headers, one message and trailers at once.
 *
 * @example
 * ```ts
 * import type { CallAnswer } from "./server_transport.ts";
 *
 * const describe = (call: CallAnswer) =>
 *   call.status === 0 ? `${call.method}: ${call.answerPayload.length} bytes` : `${call.method}: ${call.errorMessage}`;
 * ```
 */
export interface CallAnswer {
  /** The call it answers. */
  readonly callId: number;
  /** Full service name. */
  readonly service: string;
  /** Method name. */
  readonly method: string;
  /** 0 for success, else a gRPC status code. */
  readonly status: number;
  /** A human-readable reason (status ≠ 0). */
  readonly errorMessage: string;
  /** Response metadata (transport keys already removed, or the transport's own `dwt-retry-safe`). */
  readonly answerMetadata: Record<string, string> | undefined;
  /** The serialized response; may be a reused array: valid only during `answer`. */
  readonly answerPayload: Uint8Array;
}

/**
 * A provider's end of one connection, as the provider and its calls use it. Implemented by each transport, which
 * owns it; the provider holds it from `accept` until the transport reports it `closed`.
 *
 * @example
 * ```ts
 * import type { CallAnswer, ServerConnection } from "./server_transport.ts";
 *
 * // A connection that records answers instead of sending them (as a test might).
 * const answers: CallAnswer[] = [];
 * const recording = (base: ServerConnection): ServerConnection => ({
 *   peer: base.peer,
 *   loop: base.loop,
 *   answer: (call) => answers.push(call),
 *   drain: (lastCallId, reason, graceMs, status) => base.drain(lastCallId, reason, graceMs, status),
 *   close: () => base.close(),
 * });
 * ```
 */
export interface ServerConnection {
  /** The caller's address. */
  readonly peer: string;
  /** The loop the connection and its calls run on (their deadline timers too). */
  readonly loop: EventLoop;
  /** Send a call's answer. Nothing is sent once the connection is closed. */
  answer(call: CallAnswer): void;
  /**
   * Tell the caller to send no more calls here (gRPC's GOAWAY): calls above `lastCallId` were not run and will not
   * be (safe to retry elsewhere); the others are answered within `graceMs`. `status` ≠ 0: a protocol error, and
   * the transport closes the connection itself.
   */
  drain(lastCallId: number, reason: string, graceMs: number, status?: number): void;
  /**
   * Streams: write a message of stream `callId` when the connection has room (fairly among streams), calling
   * `written` once it is in the output. Returns 0, or the frame's size when it exceeds the frame limit (nothing is
   * written). Absent on a transport that carries no streams (streaming calls are then refused).
   */
  sendMessage?(callId: number, payload: Uint8Array, written: () => void): number;
  /** Streams: grant the caller `bytes` more credit on stream `callId`. */
  sendCredit?(callId: number, bytes: number): void;
  /**
   * Streams: the handler's response metadata as it stood when the stream's first message went out, for a transport
   * whose protocol has response headers (HTTP); the stream's end carries all of it again, so a transport without
   * headers (the native TCP one) leaves this out and sends it all with the end.
   */
  sendHeaders?(callId: number, metadata: Record<string, string>): void;
  /** Streams: forget stream `callId`'s message still waiting for room (the stream ended). */
  dropMessages?(callId: number): void;
  /**
   * Close once the answers sent so far are delivered (a half-close: the caller closes its side once its calls are
   * answered); the transport then reports `closed` to the connection's handler.
   */
  close(): void;
}

/**
 * The provider's side of one connection: what its transport tells it. Made by
 * {@linkcode ServerTransportHandler.accept}; the transport calls it from the loop until `closed`.
 *
 * @example
 * ```ts
 * import type { RequestFrame, ServerConnectionHandler } from "./server_transport.ts";
 *
 * // A handler that keeps what arrives (a provider answers it instead).
 * const received: RequestFrame[] = [];
 * const handler: ServerConnectionHandler = {
 *   callsInFlight: 0,
 *   request: (request) => received.push({ ...request, payload: request.payload.slice() }),
 *   cancel: () => {},
 *   closed: () => {},
 * };
 * ```
 */
export interface ServerConnectionHandler {
  /** Calls running on the connection now (a connection with none may be closed as idle). */
  readonly callsInFlight: number;
  /** A request arrived at `receiveTimeMs` (the loop's clock; its deadline counts from then). */
  request(request: RequestFrame, receiveTimeMs: number): void;
  /** The caller gave up on a call (no answer will reach it). */
  cancel(callId: number): void;
  /** Streams: a message of stream `callId` arrived (`payload` may be a view: valid only during the call). */
  message?(callId: number, payload: Uint8Array): void;
  /** Streams: the caller sent its last message on stream `callId`. */
  halfClose?(callId: number): void;
  /** Streams: the caller grants `bytes` more credit on stream `callId`. */
  credit?(callId: number, bytes: number): void;
  /** The connection closed (idempotent): calls still running are cancelled with `reason`. */
  closed(reason?: string): void;
}

/**
 * The provider as its transport sees it. Implemented by the provider's dispatch; given to
 * {@linkcode ServerTransport.listen}.
 *
 * @example
 * ```ts
 * import type { ServerTransportHandler } from "./server_transport.ts";
 *
 * // A provider that takes no connections and counts the limits its transport hits.
 * const limits = new Map<string, number>();
 * const refuseAll: ServerTransportHandler = {
 *   accept: () => undefined,
 *   limitHit: (limit) => limits.set(limit, (limits.get(limit) ?? 0) + 1),
 * };
 * ```
 */
export interface ServerTransportHandler {
  /** A connection came up: the handler of its calls, or undefined to refuse it (the transport closes it). */
  accept(connection: ServerConnection): ServerConnectionHandler | undefined;
  /** The transport hit one of its limits (`connections`, `keepalive`, `unsent_bytes`, ...): counted in `/metrics`. */
  limitHit(limit: string): void;
  /**
   * A call the transport answered itself with `code`, its input refused before the provider saw it (an HTTP body
   * that does not transcode, a message over the limit): counted under its method, as the provider counts the
   * answers it gives.
   */
  refused?(service: string, method: string, code: number): void;
  /**
   * The definition of `method` of `service` when it is served here (its kind, request and response types), else
   * undefined. For a transport that must know a method before it can frame a request (the HTTP gateway: JSON to
   * transcode, a stream kind to tell from the content type, a GET allowed or not); one that frames bytes as they
   * come (TCP, memory) needs none.
   */
  method?(service: string, method: string): MethodDefinition | undefined;
}

/**
 * Where a provider's connections come from: the reactor's TCP by default (the provider's `transport` option
 * replaces it). Owned by the provider, which calls `listen` once at start and `close` at the end of its stop.
 *
 * @example
 * ```ts
 * import type { ServerTransport } from "./server_transport.ts";
 *
 * const describe = (transport: ServerTransport) => `${transport.connections} connections at ${transport.address}`;
 * ```
 */
export interface ServerTransport {
  /** The listen address (after `listen`). */
  readonly address: InetAddress;
  /** Connections open now. */
  readonly connections: number;
  /** Connections open now that have not sent a whole frame yet (a transport with no such notion leaves it out). */
  readonly silentConnections?: number;
  /** Start taking connections; each is offered to `handler`. */
  listen(handler: ServerTransportHandler): Promise<void>;
  /** Stop taking connections and close those left (dropping what is unsent). */
  close(): Promise<void>;
  /** Limits the transport counts itself rather than through `limitHit` (added to the provider's counts). */
  limitsHit?(): Record<string, number>;
}
