/**
 * Both ends of one in-process connection, with no socket: the caller's {@linkcode ClientTransport} and the
 * provider's {@linkcode ServerTransport}. Frames cross on the event loop (`queueInLoop`), in order, one loop turn
 * later, as they would over a socket; payloads are copied. For unit tests of calls, and for a test that plays the
 * other side by hand.
 *
 * @module
 */

import type { EventLoop } from "../reactor/event_loop.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import type {
  CallAnswer,
  ClientTransport,
  ClientTransportEvents,
  RequestFrame,
  ResponseFrame,
  ServerTransport,
  TransportCall,
} from "./transport.ts";

/**
 * A request as it reached the provider's end.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import { MemoryTransport } from "./memory_transport.ts";
 *
 * const transport = new MemoryTransport({ loop: new EventLoop() });
 * transport.server.onRequest = (request) => console.log(`${request.method}: ${request.payload.length} bytes`);
 * ```
 */
export interface MemoryRequest extends RequestFrame {
  /** The serialized request message (a copy). */
  readonly payload: Uint8Array;
}

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
    const request: MemoryRequest = {
      callId: call.callId,
      service: call.service,
      method: call.method,
      timeoutMs: Math.ceil(call.timeoutMs()),
      metadata: call.metadata === undefined ? undefined : { ...call.metadata },
      payload: call.payload.slice(),
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

  /** Close once no call is outstanding. */
  closeWhenIdle(): void {
    this.#onIdle = () => void this.close();
    this.#checkIdle();
  }

  /** Close now: calls outstanding fail UNAVAILABLE (not safe to retry: they were sent). */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    const error = new RpcError(RpcCode.UNAVAILABLE, `The connection to ${this.address} was closed`);
    const calls = [...this.#calls.values()];
    this.#calls.clear();
    for (const call of calls) call.onError(error, false);
    return Promise.resolve();
  }

  /** Internal, from the provider's end: a response arrived. */
  deliverResponse(frame: ResponseFrame): void {
    const call = this.#calls.get(frame.callId);
    if (call === undefined) return; // cancelled or timed out
    this.#calls.delete(frame.callId);
    call.onResponse(frame);
    this.#checkIdle();
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
 * kept in `requests` and `cancels`); answers go back by `respond`, or as a served call's {@linkcode ServerTransport}.
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
export class MemoryServerEnd implements ServerTransport {
  /** The caller's address. */
  readonly peer = "memory:caller";
  /** Every request received, in order. */
  readonly requests: MemoryRequest[] = [];
  /** The ids of every cancel received, in order. */
  readonly cancels: number[] = [];
  /** The calls settled through this end, and whether each was answered. */
  readonly settledCalls: Array<{ callId: number; answered: boolean }> = [];
  /** Told of each request as it arrives. */
  onRequest: (request: MemoryRequest) => void = () => {};
  /** Told of each cancel as it arrives. */
  onCancel: (callId: number) => void = () => {};
  /** The loop both ends run on. */
  readonly loop: EventLoop;
  readonly #client: MemoryTransport;

  /** Made by {@linkcode MemoryTransport}. */
  constructor(client: MemoryTransport, loop: EventLoop) {
    this.#client = client;
    this.loop = loop;
  }

  /** Send a response frame to the caller (one loop turn later). */
  respond(response: Partial<ResponseFrame> & { callId: number }): void {
    const frame: ResponseFrame = {
      callId: response.callId,
      status: response.status ?? 0,
      errorMessage: response.errorMessage ?? "",
      metadata: response.metadata === undefined ? undefined : { ...response.metadata },
      payload: (response.payload ?? new Uint8Array(0)).slice(),
    };
    this.loop.queueInLoop(() => this.#client.deliverResponse(frame));
  }

  /** Send a drain frame: calls up to `lastCallId` will be answered (within `graceMs`), the others handed back. */
  drain(lastCallId: number, reason = "draining", graceMs = 0): void {
    this.loop.queueInLoop(() => this.#client.deliverDrain(lastCallId, reason, graceMs));
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

  /** A served call settled. */
  settled(call: CallAnswer, answered: boolean): void {
    this.settledCalls.push({ callId: call.callId, answered });
  }

  /** Internal, from the caller's end. */
  deliverRequest(request: MemoryRequest): void {
    this.requests.push(request);
    this.onRequest(request);
  }

  /** Internal, from the caller's end. */
  deliverCancel(callId: number): void {
    this.cancels.push(callId);
    this.onCancel(callId);
  }
}
