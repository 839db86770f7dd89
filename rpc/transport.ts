/**
 * The seam between calls and sockets, the caller's side: what a call needs from the connection that carries it.
 * The reactor's TCP connection (`ProviderConnection`) implements it with the framing of proto/rpc.proto;
 * {@linkcode MemoryTransport} implements it in one process with no socket, for tests. The provider's side of the
 * same seam is in server_transport.ts.
 *
 * Everything that crosses the seam names its call by id (unique per connection, chosen by the caller's transport)
 * and are one of the envelope's frame kinds (request, response, cancel, drain, ping; for streams message,
 * half-close and credit): calls never see bytes or sockets, transports never see messages or handlers. A stream is a
 * {@linkcode TransportCall} with `stream` set: its response ends it, `onMessage` and `onCredit` bring the rest, and
 * the transport's optional `sendMessage`, `halfClose` and `sendCredit` send its side. An HTTP gateway (Connect
 * protocol) is one more pair of implementations, one HTTP request per call id.
 *
 * @module
 */

import type { RpcError } from "./rpc_error.ts";

/**
 * A response frame as a caller's transport delivers it. `payload` may be a view into the transport's input
 * buffer: valid only during `onResponse`.
 *
 * @example
 * ```ts
 * import type { ResponseFrame } from "./transport.ts";
 *
 * const ok = (frame: ResponseFrame) => frame.status === 0 ? frame.payload : new Error(frame.errorMessage);
 * ```
 */
export interface ResponseFrame {
  /** The call it answers. */
  readonly callId: number;
  /** 0 for success, else a gRPC status code. */
  readonly status: number;
  /** A human-readable reason (status ≠ 0). */
  readonly errorMessage: string;
  /** The provider's metadata; `dwt-retry-safe: 1` when the provider did not run the call. */
  readonly metadata: Record<string, string> | undefined;
  /** The serialized response message (status 0). */
  readonly payload: Uint8Array;
}

/**
 * A call as a caller's transport carries it: what to send, and where its frames go. Implemented by the call
 * itself (the channel's `PendingCall`); the transport holds it from `request` until it answers it, fails it or the
 * call is cancelled, and never after.
 *
 * @example
 * ```ts
 * import type { TransportCall } from "./transport.ts";
 *
 * // A call with no deadline whose answer settles a promise.
 * const answered = Promise.withResolvers<Uint8Array>();
 * const call: TransportCall = {
 *   callId: 0,
 *   service: "demo.Echo",
 *   method: "Say",
 *   payload: new Uint8Array(),
 *   metadata: undefined,
 *   timeoutMs: () => 0,
 *   // A copy: the payload is a view into the connection's input, which the next read reuses.
 *   onResponse: (frame) => answered.resolve(frame.payload.slice()),
 *   onError: (error) => answered.reject(error),
 * };
 * ```
 */
export interface TransportCall {
  /** Set by the transport when the request is written: unique among the calls in flight on it. */
  callId: number;
  /** Full service name, with its package. */
  readonly service: string;
  /** Method name. */
  readonly method: string;
  /** The serialized request message. */
  readonly payload: Uint8Array;
  /** Metadata sent with the request. */
  readonly metadata: Record<string, string> | undefined;
  /** Milliseconds the caller still waits, read when the request is written (0: no deadline). */
  timeoutMs(): number;
  /** Absent or 0: a unary call; else the kind of stream it opens (1 client, 2 server, 3 bidirectional). */
  readonly stream?: number;
  /** A stream's receive window of the caller in bytes (absent or 0: 65536). */
  readonly window?: number;
  /**
   * Streams: a message arrived (`payload` may be a view into the transport's input: valid only during the call;
   * copy what is kept).
   */
  onMessage?(payload: Uint8Array): void;
  /** Streams: the provider granted `bytes` more credit. */
  onCredit?(bytes: number): void;
  /** The response arrived. */
  onResponse(frame: ResponseFrame): void;
  /**
   * The call failed on this transport. `retrySafe`: the provider never got it (or refused it unprocessed);
   * `drained`: a drain handed it back unprocessed (the caller resends it elsewhere at once).
   */
  onError(error: RpcError, retrySafe: boolean, drained?: boolean): void;
}

/**
 * A caller's end of one connection to one provider: calls multiplexed by id. Owned by the channel, which makes
 * one per provider address, replaces it once it is not `usable`, and closes it.
 *
 * @example
 * ```ts
 * import type { ClientTransport } from "./transport.ts";
 *
 * // Stop taking calls on a transport, and close it once its calls are answered.
 * const retire = async (transport: ClientTransport): Promise<void> => {
 *   if (transport.outstanding === 0) await transport.close();
 *   else transport.closeWhenIdle();
 * };
 * ```
 */
export interface ClientTransport {
  /** The provider, `host:port`. */
  readonly address: string;
  /** Whether it takes new calls (not failed, closed or draining). */
  readonly usable: boolean;
  /** Whether the provider sent a drain frame on it. */
  readonly draining: boolean;
  /** Calls sent or queued and not yet answered. */
  readonly outstanding: number;
  /**
   * Send the call's request frame (now, or once connected). Every call sent gets exactly one `onResponse` or
   * `onError`, unless it is cancelled first.
   */
  request(call: TransportCall): void;
  /** The caller gave up on the call: forget it (no answer will reach it) and send a cancel frame. */
  cancel(call: TransportCall): void;
  /**
   * Streams: write a message of `call` when the connection has room (fairly among its streams), calling `written`
   * once it is in the output. Returns 0, or the frame's size when it exceeds the frame limit (nothing written).
   * Absent on a transport that carries no streams.
   */
  sendMessage?(call: TransportCall, payload: Uint8Array, written: () => void): number;
  /** Streams: the caller sent its last message. */
  halfClose?(call: TransportCall): void;
  /** Streams: grant the provider `bytes` more credit. */
  sendCredit?(call: TransportCall, bytes: number): void;
  /** Close once nothing is outstanding. */
  closeWhenIdle(): void;
  /** Close now: calls outstanding fail UNAVAILABLE. */
  close(): Promise<void>;
  /**
   * Keepalive, from the owner's sweep timer: ping a provider silent for `intervalMs`, close one whose ping went
   * unanswered for `timeoutMs`. Absent where the medium needs none (in memory).
   */
  checkKeepalive?(nowMs: number, intervalMs: number, timeoutMs: number): void;
}

/**
 * What a caller's transport tells its owner besides its calls' answers. Implemented by the channel (its router),
 * which owns the transport.
 *
 * @example
 * ```ts
 * import type { ClientTransportEvents } from "./transport.ts";
 *
 * const events: ClientTransportEvents = {
 *   onDrain: (transport, graceMs) => console.log(`${transport.address} drains within ${graceMs} ms`),
 *   onUnresponsive: (transport) => console.log(`${transport.address} stopped answering pings`),
 * };
 * ```
 */
export interface ClientTransportEvents {
  /** The provider drained the transport: pick it no more; it answers its calls for up to `graceMs`. */
  onDrain(transport: ClientTransport, graceMs: number): void;
  /** The provider stopped answering keepalive pings: the transport closed and failed its calls. */
  onUnresponsive(transport: ClientTransport): void;
}

/**
 * Makes the transport to one provider address (the channel's `transport` option; by default TCP with the
 * envelope of proto/rpc.proto). `events` is the channel: tell it of drains and dead providers.
 */
export type ClientTransportFactory = (address: string, events: ClientTransportEvents) => ClientTransport;
