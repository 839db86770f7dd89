/**
 * The provider's record of one connection: the calls in flight on it (a list threaded through the calls, for
 * cancel-by-id and abort-on-close), the rules on what may arrive there (no duplicate ids, none after a drain,
 * metadata and calls-per-connection limits), and the drain state. It is the connection's
 * {@linkcode ServerConnectionHandler} for its transport and every call's {@linkcode ServerCallOwner}. Made by the
 * CallDispatcher when a transport offers a connection; it does not own the connection (the transport does).
 *
 * @module
 */

import type { EventLoop } from "../reactor/event_loop.ts";
import { getLogger } from "../reactor/logger.ts";
import type { CallLedger } from "./_call_ledger.ts";
import type { ServerLimits } from "./_server_limits.ts";
import type { ServerCall, ServerCallOwner } from "./_server_call.ts";
import type { ServerStream, ServerStreamOwner } from "./_server_stream.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import type { RequestFrame, ServerConnection, ServerConnectionHandler } from "./server_transport.ts";

/**
 * The one place "safe to retry" is set: the provider, on answers to calls no handler saw. Handlers' errors never
 * carry it (ServerCall strips the transport's keys).
 */
export const RETRY_SAFE: Record<string, string> = Object.freeze({ "dwt-retry-safe": "1" }) as Record<string, string>;

/**
 * What a connection's calls need of the provider's dispatch (the CallDispatcher): its limits and ledger, the
 * handlers, and the accounting of refusals. Named here so this file does not import the dispatcher back.
 */
export interface CallsOwner {
  readonly limits: ServerLimits;
  readonly ledger: CallLedger;
  /** Count a limit that was hit. */
  limitHit(limit: string): void;
  /** Hand a request to its handler. */
  serve(served: ServedCalls, request: RequestFrame, receiveTimeMs: number): void;
  /** Answer a request no handler will see. */
  refuse(served: ServedCalls, request: RequestFrame, error: RpcError, metadata?: Record<string, string>): void;
  /** The connection is gone. */
  forget(served: ServedCalls): void;
}

/** Calls served on one connection. */
export class ServedCalls implements ServerConnectionHandler, ServerCallOwner, ServerStreamOwner {
  /** The transport's end of the connection. */
  readonly connection: ServerConnection;
  /** The connection's loop. */
  readonly loop: EventLoop;
  /** Calls in flight, streams included. */
  callsInFlight = 0;
  /** The highest call id received: ids above it cannot be in flight (no walk to find duplicates). */
  maxCallId = 0;
  /** Set once the drain went out: requests from then on are refused, safe to retry. */
  draining = false;
  /** Whether the transport reported the connection closed. */
  isClosed = false;
  /** Told when the connection closes (a draining provider waits for it). */
  onClosed: () => void = () => {};
  readonly #dispatcher: CallsOwner;
  #head: ServerCall | undefined;
  // Open streams by id: their frames arrive often, so they are found in a Map, not by a walk.
  readonly #streams = new Map<number, ServerStream>();

  /** Record `connection`, which is up now. */
  constructor(connection: ServerConnection, dispatcher: CallsOwner) {
    this.connection = connection;
    this.loop = connection.loop;
    this.#dispatcher = dispatcher;
  }

  /** The caller's address. */
  get peer(): string {
    return this.connection.peer;
  }

  /** From the transport: a request arrived. Refused here when the connection's rules say so, else dispatched. */
  request(request: RequestFrame, receiveTimeMs: number): void {
    const callId = request.callId;
    if (callId > this.maxCallId) {
      this.maxCallId = callId;
    } else if (this.find(callId) !== undefined || this.#streams.has(callId)) {
      this.protocolError(`call id ${callId} is already in flight on this connection`, "duplicate_call_id");
      return;
    }
    const dispatcher = this.#dispatcher;
    if (this.draining) {
      // Sent before the caller saw the drain: not run, safe to retry elsewhere.
      dispatcher.limitHit("drain_refused");
      const error = new RpcError(RpcCode.UNAVAILABLE, "The provider is draining: send the call to another provider");
      dispatcher.refuse(this, request, error, RETRY_SAFE);
      return;
    }
    if (request.metadataOverLimit === true) {
      // Not run, and not safe to retry: another provider would refuse it too.
      dispatcher.limitHit("metadata");
      const error = new RpcError(
        RpcCode.RESOURCE_EXHAUSTED,
        `The provider refused the call: its metadata of ${request.metadataBytes} bytes (key + value + 32 per ` +
          `entry) exceeds the limit of ${dispatcher.limits.maxMetadataBytes} bytes`,
      );
      dispatcher.refuse(this, request, error);
      return;
    }
    if ((request.stream ?? 0) !== 0) {
      const maxStreams = dispatcher.limits.maxStreamsPerConnection;
      if (this.#streams.size >= maxStreams) {
        dispatcher.limitHit("streams");
        const why = `The provider refused the stream: ${maxStreams} streams are already open on this connection`;
        dispatcher.refuse(this, request, new RpcError(RpcCode.RESOURCE_EXHAUSTED, why), RETRY_SAFE);
        return;
      }
      dispatcher.serve(this, request, receiveTimeMs);
      return;
    }
    const maxCalls = dispatcher.limits.maxCallsPerConnection;
    if (this.callsInFlight - this.#streams.size >= maxCalls) {
      // Not run: RESOURCE_EXHAUSTED, marked safe for the caller to retry elsewhere.
      dispatcher.limitHit("calls");
      const why = `The provider refused the call: ${maxCalls} calls are already in flight on this connection`;
      dispatcher.refuse(this, request, new RpcError(RpcCode.RESOURCE_EXHAUSTED, why), RETRY_SAFE);
      return;
    }
    dispatcher.serve(this, request, receiveTimeMs);
  }

  /** From the transport: the caller cancelled a call or a stream. */
  cancel(callId: number): void {
    const call = this.#streams.get(callId) ?? this.find(callId);
    call?.abort(new RpcError(RpcCode.CANCELLED, "The caller cancelled the call"));
  }

  /** From the transport: a message of a stream (one not open is ignored: frames cross its end on the wire). */
  message(callId: number, payload: Uint8Array): void {
    const stream = this.#streams.get(callId);
    if (stream !== undefined) stream.message(payload);
    else this.#dispatcher.limitHit("stream_frame_ignored");
  }

  /** From the transport: the caller's half-close of a stream. */
  halfClose(callId: number): void {
    const stream = this.#streams.get(callId);
    if (stream !== undefined) stream.halfClose();
    else this.#dispatcher.limitHit("stream_frame_ignored");
  }

  /** From the transport: credit for a stream's messages. */
  credit(callId: number, bytes: number): void {
    this.#streams.get(callId)?.credit(bytes);
  }

  /** Streams open now. */
  get streamsOpen(): number {
    return this.#streams.size;
  }

  /** Put a stream that is starting in the table. */
  addStream(stream: ServerStream): void {
    this.#streams.set(stream.callId, stream);
    this.callsInFlight++;
  }

  /** From a stream: write one of its messages when there is room. */
  sendMessage(callId: number, payload: Uint8Array, written: () => void): number {
    return this.connection.sendMessage!(callId, payload, written);
  }

  /** From a stream: its response headers, before its first message (transports with headers take them). */
  sendHeaders(callId: number, metadata: Record<string, string>): void {
    this.connection.sendHeaders?.(callId, metadata);
  }

  /** From a stream: grant its caller credit. */
  sendCredit(callId: number, bytes: number): void {
    this.connection.sendCredit!(callId, bytes);
  }

  /** From a stream: it ended; forget its message waiting for room. */
  dropMessages(callId: number): void {
    this.connection.dropMessages?.(callId);
  }

  /** From the transport: the connection closed; nobody waits for its calls any more. */
  closed(reason = "The caller went away"): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.#dispatcher.forget(this);
    // Most connections close with nothing in flight (every gateway call does): no error to make then.
    if (this.callsInFlight > 0) this.abortAll(new RpcError(RpcCode.CANCELLED, reason));
    this.onClosed();
  }

  /** From a call or stream: send its answer or end (counted under its method). */
  answer(call: ServerCall | ServerStream): void {
    this.#dispatcher.ledger.count(call.service, call.method, call.entry, call.status);
    this.connection.answer(call);
  }

  /** From a call or stream: it settled. */
  settled(call: ServerCall | ServerStream, answered: boolean): void {
    const ledger = this.#dispatcher.ledger;
    if ("kind" in call) {
      if (!this.#streams.delete(call.callId)) return;
      this.callsInFlight--;
      ledger.streamSettled();
    } else {
      this.remove(call);
      ledger.settled();
    }
    if (!answered) ledger.count(call.service, call.method, call.entry, RpcCode.CANCELLED);
  }

  /** Tell the caller the provider drains (once): calls up to `maxCallId` are answered within `graceMs`. */
  drain(graceMs: number): void {
    if (this.draining || this.isClosed) return;
    this.draining = true;
    this.connection.drain(this.maxCallId, "The provider is shutting down", graceMs);
  }

  /** The caller broke the protocol: tell it why in a drain with a status (the transport then closes). */
  protocolError(reason: string, limit: string): void {
    this.#dispatcher.limitHit(limit);
    getLogger().warn(`RpcProvider closing the connection from ${this.peer}: ${reason}`);
    this.draining = true;
    this.connection.drain(this.maxCallId, reason, 0, RpcCode.INVALID_ARGUMENT);
    this.abortAll(new RpcError(RpcCode.CANCELLED, `Protocol error: ${reason}`));
  }

  /** Abort every call and stream in flight. */
  abortAll(reason: RpcError): number {
    const calls: Array<ServerCall | ServerStream> = [...this.#calls(), ...this.#streams.values()];
    for (const call of calls) call.abort(reason);
    return calls.length;
  }

  /** Put a call that is starting on the list. */
  add(call: ServerCall): void {
    call.next = this.#head;
    if (this.#head !== undefined) this.#head.previous = call;
    this.#head = call;
    this.callsInFlight++;
  }

  /** Take a settled call off the list. */
  remove(call: ServerCall): void {
    if (call.previous !== undefined) call.previous.next = call.next;
    else if (this.#head === call) this.#head = call.next;
    else return; // not on the list
    if (call.next !== undefined) call.next.previous = call.previous;
    // Unlinked calls point nowhere: a promoted dead call must not keep younger ones alive.
    call.previous = undefined;
    call.next = undefined;
    this.callsInFlight--;
  }

  /** The call in flight with this id (a walk: only cancels and reused ids look, and they are rare). */
  find(callId: number): ServerCall | undefined {
    for (let call = this.#head; call !== undefined; call = call.next) if (call.callId === callId) return call;
    return undefined;
  }

  // Every call in flight (a copy: aborting removes them).
  #calls(): ServerCall[] {
    const calls: ServerCall[] = [];
    for (let call = this.#head; call !== undefined; call = call.next) calls.push(call);
    return calls;
  }
}
