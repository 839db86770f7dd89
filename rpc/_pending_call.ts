/**
 * One call of a channel, from the caller's promise to its answer: picks a provider, sends, enforces the deadline
 * over every attempt, cancels on an AbortSignal, and retries what is safe to retry (the request never reached a
 * provider) with back-off and the channel's budget. It is its transport's TransportCall and the signals'
 * listener itself, so a call is one object and one promise rather than a chain of async layers and closures,
 * which on a small call cost more than the network.
 *
 * @module
 */

import {
  type DeadlineLane,
  inLane,
  laneDeadline,
  type LaneEntry,
  laneExpire,
  laneNext,
  lanePrev,
} from "./_deadline_lane.ts";
import type { EventLoop } from "../reactor/event_loop.ts";
import type { TimerId } from "../reactor/timer_queue.ts";
import { copyBytes } from "./_byte_slab.ts";
import type { ClientResult } from "./client_handler.ts";
import type { RpcController } from "./rpc_controller.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import type { ClientTransport, ResponseFrame, TransportCall } from "./transport.ts";

/**
 * Where a call goes, as the call sees it: discovery, balancing, connections, ejection and the retry budget.
 * Implemented by the channel's ChannelRouter, which the channel owns and outlives its calls; a call asks it for a
 * provider and its transport per attempt and tells it how the attempt went.
 */
export interface CallRouter {
  readonly loop: EventLoop;
  readonly maxRetries: number;
  readonly retryBackoffMs: number;
  /** Whether the channel is closed. */
  closed(): boolean;
  /** Resolves once the service's providers are known (undefined when they already are). */
  discovered(service: string): Promise<void> | undefined;
  /** How many providers the service has now. */
  providerCount(service: string): number;
  /** A provider for the next attempt, not in `excluded`; undefined when there is none. */
  pick(service: string, hashKey: string | undefined, excluded: Set<string> | undefined): string | undefined;
  /** The connection to a provider (made on first use). */
  connection(address: string): ClientTransport;
  /** An attempt on `address` succeeded (it is healthy again) or failed. */
  attempted(address: string, connection: ClientTransport, ok: boolean): void;
  /** A call on `address` missed its deadline (outlier ejection counts these). */
  missedDeadline(address: string): void;
  /** How long to wait before looking for a provider again when none can take a call; undefined: do not wait. */
  waitForProviderMs(service: string): number | undefined;
  /** Take a retry token; false when the budget is spent. */
  takeRetryToken(): boolean;
  /** The deadlines of calls made with the channel's timeout (a call of another timeout gets a timer of its own). */
  readonly deadlines?: DeadlineLane;
}

export type { ClientResult } from "./client_handler.ts";

/** Turns the response bytes into what the caller's promise resolves with (a stub decodes its message). */
export type ResponseDecoder = (payload: Uint8Array, metadata: Record<string, string>) => unknown;

/** What a call needs besides its request (the channel's CallOptions). */
export interface PendingCallOptions {
  readonly signal?: AbortSignal;
  readonly controller?: RpcController;
  readonly hashKey?: string;
  /** The incoming call this one is made for: its cancellation cancels this call. */
  readonly parent?: { readonly signal: AbortSignal };
}

/** Everything a {@linkcode PendingCall} is made of. */
export interface PendingCallInit {
  router: CallRouter;
  service: string;
  method: string;
  payload: Uint8Array;
  metadata: Record<string, string> | undefined;
  options: PendingCallOptions;
  /** The call's deadline, in milliseconds from now. */
  timeoutMs: number;
  /** Settles the caller's promise with the decoded answer. */
  resolve: (value: unknown) => void;
  /** Settles it with the call's error. */
  reject: (error: RpcError) => void;
  /** Makes the answer from the response; by default a {@linkcode ClientResult}. */
  decode?: ResponseDecoder;
}

const NO_METADATA: Record<string, string> = Object.freeze({}) as Record<string, string>;

// The caller owns a ClientResult's metadata: never hand out the shared frozen empty object.
const asResult: ResponseDecoder = (payload, metadata): ClientResult => ({
  payload,
  metadata: metadata === NO_METADATA ? {} : metadata,
});

/**
 * The caller's answer made from the response by `decode`; a response that does not parse is an INTERNAL error (the
 * one place this is said, for every road a call takes).
 */
export function decodeAnswer(
  decode: ResponseDecoder,
  method: string,
  payload: Uint8Array,
  metadata: Record<string, string>,
): unknown {
  try {
    return decode(payload, metadata);
  } catch (error) {
    throw new RpcError(RpcCode.INTERNAL, `The response of ${method} does not parse`, { cause: error });
  }
}

/**
 * `what` (a call or stream) cancelled because its parent call was: the parent's deadline passing reads as this
 * one's deadline, anything else as a cancel.
 */
export function parentCancelError(what: string, parent: AbortSignal): RpcError {
  const reason = parent.reason;
  const code = reason instanceof RpcError && reason.code === RpcCode.DEADLINE_EXCEEDED
    ? RpcCode.DEADLINE_EXCEEDED
    : RpcCode.CANCELLED;
  const why = reason instanceof Error ? reason.message : String(reason);
  return new RpcError(code, `${what} was cancelled with its parent call: ${why}`);
}

/** No provider of `service` can take a `what` (a call or a stream) now. */
export function noProviderError(router: CallRouter, service: string, what: string): RpcError {
  const message = router.providerCount(service) === 0
    ? `No provider of ${service} is registered`
    : `No provider of ${service} could take the ${what}`;
  return new RpcError(RpcCode.UNAVAILABLE, message);
}

/** A call in progress. Start it with {@linkcode PendingCall.start}; its promise settles once. */
export class PendingCall implements TransportCall, LaneEntry {
  callId = 0;
  [laneNext]: LaneEntry | undefined = undefined;
  [lanePrev]: LaneEntry | undefined = undefined;
  [inLane] = false;
  readonly service: string;
  readonly method: string;
  readonly payload: Uint8Array;
  readonly metadata: Record<string, string> | undefined;
  readonly #router: CallRouter;
  readonly #options: PendingCallOptions;
  readonly #decode: ResponseDecoder;
  readonly #resolve: (value: unknown) => void;
  readonly #reject: (error: RpcError) => void;
  readonly #deadline: number;
  readonly #timeoutMs: number;
  #deadlineTimer: TimerId | undefined;
  #backoffTimer: TimerId | undefined;
  #backoffMs: number;
  #retries = 0;
  #excluded: Set<string> | undefined;
  #address: string | undefined;
  #connection: ClientTransport | undefined;
  #done = false;
  #starting = false;

  /** A call, not started yet. */
  constructor(init: PendingCallInit) {
    const { router, timeoutMs } = init;
    this.#router = router;
    this.service = init.service;
    this.method = init.method;
    this.payload = init.payload;
    this.metadata = init.metadata;
    this.#options = init.options;
    this.#resolve = init.resolve;
    this.#reject = init.reject;
    this.#decode = init.decode ?? asResult;
    this.#timeoutMs = timeoutMs;
    this.#deadline = router.loop.now() + timeoutMs;
    this.#backoffMs = router.retryBackoffMs;
  }

  /** Begin: wait for discovery if needed, then the first attempt. */
  start(): void {
    const router = this.#router;
    if (router.closed()) {
      this.#fail(new RpcError(RpcCode.UNAVAILABLE, "The channel is closed"));
      return;
    }
    const { signal, controller, parent } = this.#options;
    if (signal?.aborted || controller?.signal.aborted) {
      this.#fail(this.#cancelledError());
      return;
    }
    if (parent?.signal.aborted) {
      this.#fail(this.#parentError());
      return;
    }
    const lane = router.deadlines;
    if (lane !== undefined && lane.timeoutMs === this.#timeoutMs) lane.add(this);
    else this.#deadlineTimer = router.loop.runAt(this.#deadline, () => this.#expire());
    signal?.addEventListener("abort", this);
    controller?.signal.addEventListener("abort", this);
    parent?.signal.addEventListener("abort", this);
    const discovered = router.discovered(this.service);
    if (discovered === undefined) {
      this.#starting = true;
      this.#attempt();
      this.#starting = false;
    } else {
      discovered.then(() => this.#attempt(), (error) => this.#fail(RpcError.from(error, RpcCode.UNAVAILABLE)));
    }
  }

  /** When the call expires, on the loop's clock (for the channel's deadline lane). */
  get [laneDeadline](): number {
    return this.#deadline;
  }

  /** From the channel's deadline lane: the deadline has passed. */
  [laneExpire](): void {
    this.#expire();
  }

  /** Milliseconds left, sent with the request (at least 1: 0 would mean no deadline). */
  timeoutMs(): number {
    // Sent from start(): all of it is left (and the clock need not be read again).
    if (this.#starting) return Math.max(1, this.#timeoutMs);
    return Math.max(1, this.#deadline - this.#router.loop.now());
  }

  /** From the connection: the response arrived. */
  onResponse(frame: ResponseFrame): void {
    const metadata = frame.metadata ?? NO_METADATA;
    if (frame.status !== 0) {
      const error = new RpcError(frame.status as RpcCode, frame.errorMessage, { metadata });
      this.#attemptFailed(error, metadata["dwt-retry-safe"] === "1");
      return;
    }
    const connection = this.#connection;
    this.#connection = undefined;
    if (this.#done) return;
    if (connection !== undefined) this.#router.attempted(this.#address!, connection, true);
    let answer: unknown;
    try {
      // A copy: the payload is a view into the connection's input buffer.
      answer = decodeAnswer(this.#decode, this.method, copyBytes(frame.payload), metadata);
    } catch (error) {
      this.#fail(error as RpcError);
      return;
    }
    this.#finish();
    this.#resolve(answer);
  }

  /**
   * From the connection: the call failed; `retrySafe` when the provider never got it; `drained` when a drain
   * handed it back (then it goes to another provider at once, outside the retry budget).
   */
  onError(error: RpcError, retrySafe: boolean, drained = false): void {
    if (drained) {
      this.#connection = undefined;
      if (this.#done) return;
      (this.#excluded ??= new Set()).add(this.#address!);
      this.#router.loop.queueInLoop(() => this.#attempt());
      return;
    }
    this.#attemptFailed(error, retrySafe);
  }

  /** From the signals: the caller (or the parent call) cancelled. */
  handleEvent(event: Event): void {
    const parent = this.#options.parent;
    this.#giveUp(parent !== undefined && event.target === parent.signal ? this.#parentError() : this.#cancelledError());
  }

  #cancelledError(): RpcError {
    return new RpcError(RpcCode.CANCELLED, `The call to ${this.service}.${this.method} was cancelled`);
  }

  #parentError(): RpcError {
    return parentCancelError(`The call to ${this.service}.${this.method}`, this.#options.parent!.signal);
  }

  #expire(): void {
    this.#deadlineTimer = undefined;
    if (this.#connection !== undefined && this.#address !== undefined) this.#router.missedDeadline(this.#address);
    const where = this.#address === undefined ? "" : ` on ${this.#address}`;
    this.#giveUp(
      new RpcError(RpcCode.DEADLINE_EXCEEDED, `The call to ${this.service}.${this.method}${where} missed its deadline`),
    );
  }

  // Deadline or cancel: stop the attempt in flight (the provider is told) and fail.
  #giveUp(error: RpcError): void {
    if (this.#done) return;
    const connection = this.#connection;
    this.#connection = undefined;
    connection?.cancel(this);
    this.#fail(error);
  }

  #attempt(): void {
    if (this.#done) return;
    const router = this.#router;
    if (router.closed()) {
      this.#fail(new RpcError(RpcCode.UNAVAILABLE, "The channel is closed"));
      return;
    }
    const address = router.pick(this.service, this.#options.hashKey, this.#excluded);
    if (address === undefined) {
      // Lately a provider drained: another one is probably coming (a rolling restart); wait for it.
      const waitMs = router.waitForProviderMs(this.service);
      if (waitMs !== undefined && this.#deadline - router.loop.now() > waitMs) {
        this.#address = undefined;
        this.#backoffTimer = router.loop.runAfter(waitMs, () => {
          this.#backoffTimer = undefined;
          this.#excluded?.clear();
          this.#attempt();
        });
        return;
      }
      this.#address = undefined;
      this.#retryOrFail(noProviderError(router, this.service, "call"), true);
      return;
    }
    this.#address = address;
    const connection = router.connection(address);
    this.#connection = connection;
    connection.request(this);
  }

  #attemptFailed(error: RpcError, retrySafe: boolean): void {
    const connection = this.#connection;
    this.#connection = undefined;
    if (this.#done) return;
    const address = this.#address!;
    (this.#excluded ??= new Set()).add(address);
    if (connection !== undefined) this.#router.attempted(address, connection, false);
    this.#retryOrFail(error, retrySafe);
  }

  #retryOrFail(error: RpcError, retrySafe: boolean): void {
    const router = this.#router;
    const remainingMs = this.#deadline - router.loop.now();
    if (
      !retrySafe || this.#retries >= router.maxRetries || remainingMs <= this.#backoffMs || !router.takeRetryToken()
    ) {
      this.#fail(error);
      return;
    }
    this.#retries++;
    this.#backoffTimer = router.loop.runAfter(this.#backoffMs, () => {
      this.#backoffTimer = undefined;
      // Every provider may have been tried: give them another chance after the back-off.
      if (this.#excluded !== undefined && this.#excluded.size >= router.providerCount(this.service)) {
        this.#excluded.clear();
      }
      this.#attempt();
    });
    this.#backoffMs *= 2;
  }

  #finish(): void {
    this.#done = true;
    const loop = this.#router.loop;
    if (this.#deadlineTimer !== undefined) loop.cancel(this.#deadlineTimer);
    if (this[inLane]) this.#router.deadlines!.remove(this);
    if (this.#backoffTimer !== undefined) loop.cancel(this.#backoffTimer);
    this.#options.signal?.removeEventListener("abort", this);
    this.#options.controller?.signal.removeEventListener("abort", this);
    this.#options.parent?.signal.removeEventListener("abort", this);
  }

  #fail(error: RpcError): void {
    if (this.#done) return;
    this.#finish();
    this.#options.controller?.setFailed(error.rawMessage, error.code);
    this.#reject(error);
  }
}
