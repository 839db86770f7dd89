/**
 * Both ends of one in-process connection, with no socket: the caller's {@linkcode ClientTransport} and the
 * provider's {@linkcode ServerConnection}, and {@linkcode MemoryServer}, a provider's {@linkcode ServerTransport}
 * whose connections are made by `connect` (a channel's `transport` factory). Frames cross on the event loop
 * (`queueInLoop`), in order, one loop turn later, as they would over a socket; payloads are copied. Streams cross
 * too (their messages, half-closes and credits): with no output buffer, a message is handed over as it is sent,
 * so its `written` callback runs at once, and one queue for every frame keeps a stream's messages before its end.
 * There is no frame limit. For unit tests of calls and streams, of a real provider's dispatch, and for a test that
 * plays the other side by hand.
 *
 * @module
 */

import type { EventLoop } from "../reactor/event_loop.ts";
import { InetAddress } from "../reactor/inet_address.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import type {
  CallAnswer,
  RequestFrame,
  ServerConnection,
  ServerConnectionHandler,
  ServerTransport,
  ServerTransportHandler,
} from "./server_transport.ts";
import type { ClientTransport, ClientTransportEvents, ResponseFrame, TransportCall } from "./transport.ts";

/**
 * Options of {@linkcode MemoryTransport}.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import { MemoryTransport, type MemoryTransportOptions } from "./memory_transport.ts";
 *
 * const options: MemoryTransportOptions = { loop: new EventLoop(), address: "memory:1" };
 * const transport = new MemoryTransport(options);
 * ```
 */
export interface MemoryTransportOptions {
  /** The loop both ends run on. */
  loop: EventLoop;
  /**
   * The provider's address as callers name it.
   * @default {"memory:0"}
   */
  address?: string;
  /**
   * Told when the provider's end drains (a channel's `transport` factory passes its events on).
   * @default {undefined}
   */
  events?: ClientTransportEvents;
}

/**
 * One in-memory connection. It is the caller's end itself; its provider's end is {@linkcode MemoryTransport.server}.
 * The owner of each end is whoever uses it: a channel (or a test) the caller's, a provider (or a test) the other.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import { MemoryTransport } from "./memory_transport.ts";
 * import assert from "node:assert/strict";
 *
 * const loop = new EventLoop();
 * const transport = new MemoryTransport({ loop });
 * const answered = Promise.withResolvers<number>();
 * transport.server.onRequest = (request) => transport.server.respond({ callId: request.callId, status: 5 });
 * transport.request({
 *   callId: 0, service: "demo.Echo", method: "Say", payload: new Uint8Array(), metadata: undefined,
 *   timeoutMs: () => 0,
 *   onResponse: (frame) => answered.resolve(frame.status),
 *   onError: (error) => answered.reject(error),
 * });
 * assert.equal(await answered.promise, 5);
 * ```
 */
export class MemoryTransport implements ClientTransport {
  /** The provider's address as callers name it. */
  readonly address: string;
  /** The provider's end. */
  readonly server: MemoryServerEnd;
  readonly #loop: EventLoop;
  readonly #calls = new Map<number, TransportCall>();
  #nextId = 1;
  #closed = false;
  #draining = false;
  #onIdle: (() => void) | undefined;
  readonly #events: ClientTransportEvents | undefined;

  /** Both ends, connected. */
  constructor(options: MemoryTransportOptions) {
    this.address = options.address ?? "memory:0";
    this.#loop = options.loop;
    this.#events = options.events;
    this.server = new MemoryServerEnd(this, options.loop);
  }

  /** Whether it takes new calls. */
  get usable(): boolean {
    return !this.#closed && !this.#draining;
  }

  /** Whether the provider's end drained it. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Calls sent and not answered. */
  get outstanding(): number {
    return this.#calls.size;
  }

  /** Send the call's request to the provider's end (delivered one loop turn later). */
  request(call: TransportCall): void {
    if (!this.usable) {
      const why = this.#draining ? "is draining" : "is closed";
      call.onError(new RpcError(RpcCode.UNAVAILABLE, `The connection to ${this.address} ${why}`), true, this.#draining);
      return;
    }
    call.callId = this.#nextId++;
    this.#calls.set(call.callId, call);
    const request: RequestFrame = {
      callId: call.callId,
      service: call.service,
      method: call.method,
      timeoutMs: Math.ceil(call.timeoutMs()),
      metadata: call.metadata === undefined ? undefined : { ...call.metadata },
      payload: call.payload.slice(),
      stream: call.stream ?? 0,
      window: call.window ?? 0,
    };
    this.#loop.queueInLoop(() => this.server.deliverRequest(request));
  }

  /** Forget the call and send a cancel to the provider's end. */
  cancel(call: TransportCall): void {
    if (this.#calls.get(call.callId) !== call) return;
    this.#calls.delete(call.callId);
    const callId = call.callId;
    this.#loop.queueInLoop(() => this.server.deliverCancel(callId));
    this.#checkIdle();
  }

  /**
   * Send a message of stream `call` to the provider's end (delivered one loop turn later, after the frames sent
   * before it). `written` runs at once: nothing waits for room. Returns 0: there is no frame limit.
   */
  sendMessage(call: TransportCall, payload: Uint8Array, written: () => void): number {
    if (this.#calls.get(call.callId) === call) {
      const callId = call.callId;
      const copy = payload.slice(); // the sender may reuse its array once `written` ran
      this.#loop.queueInLoop(() => this.server.deliverMessage(callId, copy));
    }
    // Also for a stream that ended (its message is dropped, as a closed socket drops it): the sender then goes on
    // and finds the stream over, rather than waiting for ever.
    written();
    return 0;
  }

  /** Send stream `call`'s half-close to the provider's end. */
  halfClose(call: TransportCall): void {
    if (this.#calls.get(call.callId) !== call) return;
    const callId = call.callId;
    this.#loop.queueInLoop(() => this.server.deliverHalfClose(callId));
  }

  /** Grant the provider `bytes` more credit on stream `call`. */
  sendCredit(call: TransportCall, bytes: number): void {
    if (this.#calls.get(call.callId) !== call) return;
    const callId = call.callId;
    this.#loop.queueInLoop(() => this.server.deliverCredit(callId, bytes));
  }

  /** Close once no call is outstanding. */
  closeWhenIdle(): void {
    this.#onIdle = () => void this.close();
    this.#checkIdle();
  }

  /** Close now: calls outstanding fail UNAVAILABLE (not safe to retry: they were sent); the provider's end learns. */
  close(): Promise<void> {
    if (this.deliverClose()) this.#loop.queueInLoop(() => this.server.deliverClose());
    return Promise.resolve();
  }

  /** Internal, from the provider's end (or `close`): the connection closed; false when it already was. */
  deliverClose(): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    const error = new RpcError(RpcCode.UNAVAILABLE, `The connection to ${this.address} was closed`);
    const calls = [...this.#calls.values()];
    this.#calls.clear();
    for (const call of calls) call.onError(error, false);
    return true;
  }

  /** Internal, from the provider's end: a response arrived. */
  deliverResponse(frame: ResponseFrame): void {
    const call = this.#calls.get(frame.callId);
    if (call === undefined) return; // cancelled or timed out
    this.#calls.delete(frame.callId);
    call.onResponse(frame);
    this.#checkIdle();
  }

  /** Internal, from the provider's end: a message of a stream (one that ended is ignored: it crossed the end). */
  deliverMessage(callId: number, payload: Uint8Array): void {
    this.#calls.get(callId)?.onMessage?.(payload);
  }

  /** Internal, from the provider's end: credit for a stream's messages. */
  deliverCredit(callId: number, bytes: number): void {
    this.#calls.get(callId)?.onCredit?.(bytes);
  }

  /** Internal, from the provider's end: a drain; calls above `lastCallId` are handed back unprocessed. */
  deliverDrain(lastCallId: number, reason: string, graceMs: number): void {
    this.#draining = true;
    this.#events?.onDrain(this, graceMs);
    const error = new RpcError(RpcCode.UNAVAILABLE, `The provider ${this.address} is draining (${reason})`);
    const handedBack = [...this.#calls.values()].filter((call) => call.callId > lastCallId);
    for (const call of handedBack) this.#calls.delete(call.callId);
    for (const call of handedBack) call.onError(error, true, true);
    this.closeWhenIdle();
  }

  #checkIdle(): void {
    if (this.#onIdle !== undefined && this.#calls.size === 0) {
      const onIdle = this.#onIdle;
      this.#onIdle = undefined;
      this.#loop.queueInLoop(onIdle);
    }
  }
}

/**
 * The provider's end of a {@linkcode MemoryTransport}: requests and cancels arrive on its callbacks (and are
 * kept in `requests` and `cancels`), as do streams' messages, half-closes and credits (not kept), and all go to
 * the provider that accepted it, if any ({@linkcode MemoryServer}); answers go back by `respond`, or as a served
 * call's {@linkcode ServerConnection}, and streams' messages and credits by `sendMessage` and `sendCredit`.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import { MemoryTransport } from "./memory_transport.ts";
 *
 * // The provider's end drains: the caller's end stops taking calls.
 * const transport = new MemoryTransport({ loop: new EventLoop() });
 * transport.server.drain(0);
 * ```
 */
export class MemoryServerEnd implements ServerConnection {
  /** The caller's address. */
  readonly peer = "memory:caller";
  /** Every request received, in order. */
  readonly requests: RequestFrame[] = [];
  /** The ids of every cancel received, in order. */
  readonly cancels: number[] = [];
  /** Told of each request as it arrives. */
  onRequest: (request: RequestFrame) => void = () => {};
  /** Told of each cancel as it arrives. */
  onCancel: (callId: number) => void = () => {};
  /** Told of each stream message as it arrives (`payload` is the end's own copy). */
  onMessage: (callId: number, payload: Uint8Array) => void = () => {};
  /** Told of each stream half-close as it arrives. */
  onHalfClose: (callId: number) => void = () => {};
  /** Told of each stream credit as it arrives. */
  onCredit: (callId: number, bytes: number) => void = () => {};
  /** The loop both ends run on. */
  readonly loop: EventLoop;
  readonly #client: MemoryTransport;
  #calls: ServerConnectionHandler | undefined;
  #closed = false;

  /** Made by {@linkcode MemoryTransport}. */
  constructor(client: MemoryTransport, loop: EventLoop) {
    this.#client = client;
    this.loop = loop;
  }

  /** Whether either end closed the connection. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Send a response frame to the caller (one loop turn later). */
  respond(response: Partial<ResponseFrame> & { callId: number }): void {
    if (this.#closed) return;
    const frame: ResponseFrame = {
      callId: response.callId,
      status: response.status ?? 0,
      errorMessage: response.errorMessage ?? "",
      metadata: response.metadata === undefined ? undefined : { ...response.metadata },
      payload: (response.payload ?? new Uint8Array(0)).slice(),
    };
    this.loop.queueInLoop(() => this.#client.deliverResponse(frame));
  }

  /**
   * Send a drain frame: calls up to `lastCallId` will be answered (within `graceMs`), the others handed back.
   * With a `status` (a protocol error) the connection closes next.
   */
  drain(lastCallId: number, reason = "draining", graceMs = 0, status = 0): void {
    if (this.#closed) return;
    this.loop.queueInLoop(() => this.#client.deliverDrain(lastCallId, reason, graceMs));
    if (status !== 0) this.close();
  }

  /** A served call's answer: sent as its response frame. */
  answer(call: CallAnswer): void {
    this.respond({
      callId: call.callId,
      status: call.status,
      errorMessage: call.errorMessage,
      metadata: call.answerMetadata,
      payload: call.answerPayload,
    });
  }

  /**
   * Send a message of stream `callId` to the caller (one loop turn later, after the frames sent before it).
   * `written` runs at once: nothing waits for room. Returns 0: there is no frame limit.
   */
  sendMessage(callId: number, payload: Uint8Array, written: () => void): number {
    if (!this.#closed) {
      const copy = payload.slice(); // the sender may reuse its array once `written` ran
      this.loop.queueInLoop(() => this.#client.deliverMessage(callId, copy));
    }
    written(); // also once closed: the message is dropped, as a closed socket drops it
    return 0;
  }

  /** Grant the caller `bytes` more credit on stream `callId`. */
  sendCredit(callId: number, bytes: number): void {
    if (this.#closed) return;
    this.loop.queueInLoop(() => this.#client.deliverCredit(callId, bytes));
  }

  /** Nothing to forget: every message was handed over as it was sent (what crosses the end is ignored there). */
  dropMessages(_callId: number): void {}

  /** Close after the frames sent so far: the caller's end fails what is still outstanding. */
  close(): void {
    if (this.#closed) return;
    this.loop.queueInLoop(() => this.closeNow());
  }

  /** Internal: close both ends now (the caller's calls outstanding fail, the provider's are cancelled). */
  closeNow(): void {
    this.#client.deliverClose();
    this.deliverClose();
  }

  /** Internal, from {@linkcode MemoryServer}: the provider's side of this connection. */
  attach(calls: ServerConnectionHandler): void {
    this.#calls = calls;
  }

  /** Internal, from the caller's end. */
  deliverRequest(request: RequestFrame): void {
    if (this.#closed) return;
    this.requests.push(request);
    this.onRequest(request);
    this.#calls?.request(request, this.loop.now());
  }

  /** Internal, from the caller's end. */
  deliverCancel(callId: number): void {
    if (this.#closed) return;
    this.cancels.push(callId);
    this.onCancel(callId);
    this.#calls?.cancel(callId);
  }

  /** Internal, from the caller's end. */
  deliverMessage(callId: number, payload: Uint8Array): void {
    if (this.#closed) return;
    this.onMessage(callId, payload);
    this.#calls?.message?.(callId, payload);
  }

  /** Internal, from the caller's end. */
  deliverHalfClose(callId: number): void {
    if (this.#closed) return;
    this.onHalfClose(callId);
    this.#calls?.halfClose?.(callId);
  }

  /** Internal, from the caller's end. */
  deliverCredit(callId: number, bytes: number): void {
    if (this.#closed) return;
    this.onCredit(callId, bytes);
    this.#calls?.credit?.(callId, bytes);
  }

  /** Internal: the connection closed (from either end). */
  deliverClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#calls?.closed();
  }
}

/**
 * Options of {@linkcode MemoryServer}.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import { MemoryServer, type MemoryServerOptions } from "./memory_transport.ts";
 *
 * const options: MemoryServerOptions = { loop: new EventLoop(), address: "memory:7" };
 * const server = new MemoryServer(options);
 * ```
 */
export interface MemoryServerOptions {
  /** The loop the provider and its callers run on. */
  loop: EventLoop;
  /**
   * The provider's address as callers name it (`host:port`).
   * @default {"memory:0"}
   */
  address?: string;
}

/**
 * A provider's transport in memory (its `transport` option): each `connect` makes one connection, its caller's end
 * returned, its provider's end offered to the provider. No socket, no frame bytes: a test drives a real
 * provider's dispatch (handler table, limits on calls, deadlines, drain) with a real channel.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import { MemoryServer } from "./memory_transport.ts";
 * import { RpcChannel, type StubMethod } from "./rpc_channel.ts";
 * import { RpcProvider } from "./rpc_provider.ts";
 * import { parseProto, serviceDefinition } from "./service_definition.ts";
 * import assert from "node:assert/strict";
 *
 * const echo = serviceDefinition(
 *   parseProto(`syntax = "proto3"; package demo; message Msg { string text = 1; }
 *     service Echo { rpc Say (Msg) returns (Msg); }`),
 *   "demo.Echo",
 * );
 * const loop = new EventLoop();
 * const server = new MemoryServer({ loop });
 * const provider = new RpcProvider({ loop, transport: server });
 * provider.registerService(echo, { Say: (request: { text: string }) => ({ text: `${request.text}!` }) });
 * await provider.start();
 * const channel = new RpcChannel({
 *   loop,
 *   providers: { "demo.Echo": [provider.advertisedAddress] },
 *   transport: (address, events) => server.connect({ address, events }),
 * });
 * assert.equal((await channel.stub<{ Say: StubMethod }>(echo).Say({ text: "hi" })).text, "hi!");
 * await channel.close();
 * await provider.stop();
 * ```
 */
export class MemoryServer implements ServerTransport {
  /** The provider's address as callers name it. */
  readonly address: InetAddress;
  readonly #loop: EventLoop;
  readonly #ends = new Set<MemoryServerEnd>();
  #provider: ServerTransportHandler | undefined;
  #closed = false;

  /** A transport that takes connections once its provider listens. */
  constructor(options: MemoryServerOptions) {
    this.#loop = options.loop;
    this.address = InetAddress.parse(options.address ?? "memory:0");
  }

  /** Connections open now. */
  get connections(): number {
    let open = 0;
    for (const end of this.#ends) if (!end.closed) open++;
    return open;
  }

  /** Offer each connection made from now on to `provider`. */
  listen(provider: ServerTransportHandler): Promise<void> {
    this.#provider = provider;
    return Promise.resolve();
  }

  /**
   * A new connection: its caller's end (a channel's transport; `events` from the channel's factory). Before the
   * provider listens, or after it closed, the connection is closed at once and calls on it fail UNAVAILABLE.
   */
  connect(options: { address?: string; events?: ClientTransportEvents } = {}): MemoryTransport {
    const transport = new MemoryTransport({
      loop: this.#loop,
      address: options.address ?? this.address.toString(),
      events: options.events,
    });
    for (const closed of this.#ends) if (closed.closed) this.#ends.delete(closed);
    const end = transport.server;
    const calls = this.#closed ? undefined : this.#provider?.accept(end);
    if (calls === undefined) {
      end.closeNow();
      return transport;
    }
    end.attach(calls);
    this.#ends.add(end);
    return transport;
  }

  /** Take no more connections and close those left (both ends learn at once). */
  close(): Promise<void> {
    this.#closed = true;
    for (const end of this.#ends) end.closeNow();
    this.#ends.clear();
    return Promise.resolve();
  }
}
