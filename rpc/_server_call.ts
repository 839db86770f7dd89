/**
 * One call being served. A ServerCall is the handler's CallContext and the call's state machine at once (running →
 * settled by the handler's answer or by an abort), so a call costs one object and no Map entry; the provider's
 * record of each connection (ServedCalls) threads its calls on a list for cancel-by-id and abort-on-close.
 *
 * Why not an object literal with a `signal` getter per call, as before: V8 gives every literal whose accessor is
 * a fresh closure a hidden class of its own, and those live in old space, so each call's whole state was promoted
 * by minor GCs (about 900 bytes a call, and scavenges that copied megabytes).
 *
 * @module
 */

import type { EventLoop } from "../reactor/event_loop.ts";
import { getLogger } from "../reactor/logger.ts";
import type { TimerId } from "../reactor/timer_queue.ts";
import { encodeTransient } from "./_byte_slab.ts";
import type { CallAnswer, RequestFrame } from "./server_transport.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import type { MethodDefinition } from "./service_definition.ts";
import type { CallContext } from "./server_handler.ts";
import type protobuf from "protobufjs";

// The handler's view of a call is public API, defined with the provider.
export type { CallContext, ServerHandler } from "./server_handler.ts";

/** A registered method: its types, its handler chain and its answer counters. */
export interface HandlerEntry {
  method: MethodDefinition;
  /** The request bytes as a message with typed proto3 defaults. */
  decodeRequest: (bytes: Uint8Array) => unknown;
  /** The handler's answer (a message or a plain object) as a message ready to encode. */
  encodableResponse: (value: unknown) => protobuf.Message;
  /** The interceptor chain (which returns a promise), or without interceptors the method's own handler. */
  handler: (request: unknown, context: CallContext) => unknown;
  /** Answers by status code (shared with the provider's table; made on first use). */
  counts: number[] | undefined;
  /** Stream messages received from callers and sent to them (streaming methods). */
  messagesIn: number;
  messagesOut: number;
}

/** The longest deadline a provider keeps: longer ones are clamped to it (the host timers' range, about 24.8 days). */
export const MAX_DEADLINE_MS = 0x7fff_ffff;

const NO_METADATA: Readonly<Record<string, string>> = Object.freeze({});

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === "object" && typeof (value as { then?: unknown }).then === "function";
}
const EMPTY_BYTES = new Uint8Array(0);

/**
 * Metadata keys starting with this belong to the transport of one hop (`dwt-retry-safe`): a handler's error or a
 * downstream answer cannot carry them to the caller.
 */
export const TRANSPORT_METADATA_PREFIX = "dwt-";

/** `metadata` without the transport's keys (the same object when it has none). */
export function withoutTransportKeys(
  metadata: Readonly<Record<string, string>> | undefined,
): Record<string, string> | undefined {
  if (metadata === undefined) return undefined;
  let copy: Record<string, string> | undefined;
  for (const key in metadata) {
    if (key.startsWith(TRANSPORT_METADATA_PREFIX)) {
      copy ??= { ...metadata };
      delete copy[key];
    }
  }
  return copy ?? metadata as Record<string, string>;
}

/**
 * Where a served call answers and settles: the provider's record of the connection it came on, which owns it
 * while it runs (and tells the provider's accounting).
 */
export interface ServerCallOwner {
  /** The caller's address. */
  readonly peer: string;
  /** The loop the call runs on (its deadline timer too). */
  readonly loop: EventLoop;
  /** Send the call's answer (its `status`, `errorMessage`, `answerMetadata`, `answerPayload`). */
  answer(call: ServerCall): void;
  /** The call settled (answered or aborted): no longer in flight. `answered`: false when no answer follows. */
  settled(call: ServerCall, answered: boolean): void;
}

/**
 * A call being served; the handler sees it as its {@linkcode CallContext}, its transport as its
 * {@linkcode CallAnswer}. It answers through its owner, the record of the connection it came on.
 */
export class ServerCall implements CallContext, CallAnswer {
  readonly service: string;
  readonly method: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly callId: number;
  readonly entry: HandlerEntry;
  /** Neighbours on the connection's list. */
  previous: ServerCall | undefined;
  next: ServerCall | undefined;
  /** The answer, set just before it goes to the transport. */
  status = 0;
  errorMessage = "";
  answerMetadata: Record<string, string> | undefined = undefined;
  answerPayload: Uint8Array = EMPTY_BYTES;
  readonly #owner: ServerCallOwner;
  readonly #deadline: number;
  readonly #timeoutMs: number;
  #timer: TimerId | undefined;
  #controller: AbortController | undefined;
  #abortReason: RpcError | undefined;
  #responseMetadata: Record<string, string> | undefined;
  #settled = false;

  /** `receiveTimeMs`: when the request arrived; its deadline counts from then. */
  constructor(
    owner: ServerCallOwner,
    frame: RequestFrame,
    entry: HandlerEntry,
    receiveTimeMs: number,
  ) {
    this.#owner = owner;
    this.entry = entry;
    this.callId = frame.callId;
    this.service = frame.service;
    this.method = frame.method;
    this.metadata = frame.metadata ?? NO_METADATA;
    // Longer deadlines are clamped (and counted by the provider): the host's timers go no further.
    const timeoutMs = this.#timeoutMs = Math.min(frame.timeoutMs, MAX_DEADLINE_MS);
    this.#deadline = timeoutMs > 0 ? receiveTimeMs + timeoutMs : Infinity;
  }

  // The abort machinery is made only if the handler looks at the signal: most calls never do, and an
  // AbortController per call is a measurable share of a small call's cost.
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  get responseMetadata(): Record<string, string> {
    return this.#responseMetadata ??= {};
  }

  get peer(): string {
    return this.#owner.peer;
  }

  timeRemainingMs(): number {
    return this.#deadline - this.#owner.loop.now();
  }

  /** Run the handler on the decoded request; the call settles with its answer unless aborted first. */
  run(request: unknown): void {
    let result: unknown;
    try {
      result = this.entry.handler(request, this);
    } catch (error) {
      this.#onError(error ?? new Error("thrown"));
      return;
    }
    if (!isThenable(result)) {
      // Answered at once: no deadline to watch.
      this.#onResult(result);
      return;
    }
    if (this.#deadline !== Infinity) {
      const timeoutMs = this.#timeoutMs;
      this.#timer = this.#owner.loop.runAt(
        this.#deadline,
        () => this.abort(new RpcError(RpcCode.DEADLINE_EXCEEDED, `The deadline of ${timeoutMs} ms passed`)),
      );
    }
    result.then(
      (value) => this.#onResult(value),
      (error) => this.#onError(error ?? new Error("rejected")),
    );
  }

  /** Stop the call (deadline, the caller's cancel, the connection lost, the provider stopping). */
  abort(reason: RpcError): void {
    if (this.#settled) return;
    this.#abortReason = reason;
    this.#controller?.abort(reason);
    this.#onError(reason);
  }

  #settle(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    if (this.#timer !== undefined) this.#owner.loop.cancel(this.#timer);
    return true;
  }

  // Through the owner: the call leaves its list, then its answer goes out.
  #answer(status: number, errorMessage: string, metadata: Record<string, string> | undefined, payload: Uint8Array) {
    this.status = status;
    this.errorMessage = errorMessage;
    this.answerMetadata = metadata;
    this.answerPayload = payload;
    this.#owner.settled(this, true);
    this.#owner.answer(this);
    this.answerPayload = EMPTY_BYTES; // it may be a reused array
  }

  #onResult(result: unknown): void {
    if (!this.#settle()) return;
    let payload: Uint8Array;
    try {
      const message = this.entry.encodableResponse(result);
      // Copied into the connection's output at once (owner.answer), so a reused array will do.
      payload = encodeTransient(this.entry.method.responseType, message);
    } catch (error) {
      const message = `The response of ${this.service}.${this.method} does not encode`;
      getLogger().warn(`RpcProvider: ${message}`, { error });
      this.#answer(RpcCode.INTERNAL, message, undefined, EMPTY_BYTES);
      return;
    }
    this.#answer(0, "", this.#responseMetadata, payload);
  }

  #onError(error: unknown): void {
    if (!this.#settle()) return;
    const rpcError = RpcError.from(error);
    if (rpcError.code === RpcCode.UNKNOWN) {
      getLogger().warn(`RpcProvider: ${this.service}.${this.method} threw`, { error });
    }
    // A call cancelled by its caller (or its connection's end) has nobody to answer; a handler that itself ends
    // its call CANCELLED is answered so, or its caller would wait for nothing.
    if (rpcError.code === RpcCode.CANCELLED && this.#abortReason !== undefined) {
      this.#owner.settled(this, false);
      return;
    }
    // At most once: the handler ran, so whatever its error says (a downstream call's "safe to retry" included),
    // this hop's answer is not safe to retry. The transport's keys are this hop's to set, never a handler's.
    const metadata = withoutTransportKeys(rpcError.metadata);
    this.#answer(rpcError.code, rpcError.rawMessage, metadata, EMPTY_BYTES);
  }
}
