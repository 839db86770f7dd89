/**
 * One call being served, and the connection it came on. A ServerCall is the handler's CallContext and the
 * call's state machine at once (running → settled by the handler's answer or by an abort), so a call costs one
 * object and no Map entry; each connection threads its calls on a list for cancel-by-id and abort-on-close.
 *
 * Why not an object literal with a `signal` getter per call, as before: V8 gives every literal whose accessor is
 * a fresh closure a hidden class of its own, and those live in old space, so each call's whole state was promoted
 * by minor GCs (about 900 bytes a call, and scavenges that copied megabytes).
 *
 * @module
 */

import type { EventLoop } from "../reactor/event_loop.ts";
import { getLogger } from "../reactor/logger.ts";
import type { TcpConnection } from "../reactor/tcp_connection.ts";
import type { TimerId } from "../reactor/timer_queue.ts";
import { sendResponse } from "./_rpc_codec.ts";
import { encodeTransient } from "./_byte_slab.ts";
import type { CallLedger } from "./_call_ledger.ts";
import type { CallAnswer, RequestFrame, ServerTransport } from "./transport.ts";
import { closeIfBacklogged } from "../reactor/flow_control.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import type { MethodDefinition } from "./service_definition.ts";
import type { CallContext } from "./rpc_provider.ts";
import type protobuf from "protobufjs";

// The handler's view of a call is public API, defined with the provider.
export type { CallContext, ServerHandler } from "./rpc_provider.ts";

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
}

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

/** What every connection a provider serves shares: its loop, its accounting and its answer limits. */
export interface ServedConnectionOptions {
  readonly loop: EventLoop;
  /** The provider's accounting (answers, calls in flight, limits hit). */
  readonly ledger: CallLedger;
  /** The largest response frame body, in bytes. */
  readonly maxFrameBytes: number;
  /** Close a caller whose unsent answers exceed this many bytes. */
  readonly maxUnsentBytes: number;
}

/**
 * A connection being served, the {@linkcode ServerTransport} of the calls that came on it over the reactor's TCP:
 * it owns its calls in flight (a list, for cancel-by-id and abort-on-close), sends their answers within the
 * frame limit, and tells the provider's {@linkcode CallLedger}. Made and dropped by the RpcProvider; it does not
 * own the TcpConnection (the TcpServer does).
 */
export class ServedConnection implements ServerTransport<ServerCall> {
  readonly connection: TcpConnection;
  /** The peer's host, for the per-address connection limit. */
  readonly peerHost: string;
  readonly loop: EventLoop;
  /** When a frame last arrived (any frame: a ping answer proves the peer alive). */
  lastActivityMs: number;
  /** When a request or cancel last arrived (pings do not keep a connection from being idle). */
  lastCallMs: number;
  /** When the unanswered keepalive ping was sent; 0 when none is outstanding. */
  pingSentMs = 0;
  /**
   * Whether the caller ever answered a ping: only then does a missed answer close the connection (a caller that
   * never did may predate pings; the idle limit still bounds it).
   */
  answersPings = false;
  /** The highest call id received: ids above it cannot be in flight (no walk to find duplicates). */
  maxCallId = 0;
  /** Set once the drain frame went out: requests from then on are refused, safe to retry. */
  draining = false;
  /** Told when the connection closes (a draining provider waits for it). */
  onClosed: () => void = () => {};
  /** Calls in flight. */
  count = 0;
  #head: ServerCall | undefined;
  readonly #options: ServedConnectionOptions;

  /** Serve `connection`, which is up now. */
  constructor(connection: TcpConnection, options: ServedConnectionOptions) {
    this.connection = connection;
    this.#options = options;
    this.loop = options.loop;
    this.peerHost = connection.peerAddress.hostname;
    this.lastActivityMs = this.lastCallMs = options.loop.now();
  }

  /** The caller's address. */
  get peer(): string {
    return this.connection.peerAddress.toString();
  }

  /** From a call: send its answer. */
  answer(call: ServerCall): void {
    this.respond(call, call.entry);
  }

  /** From a call: it settled. */
  settled(call: ServerCall, answered: boolean): void {
    this.remove(call);
    const ledger = this.#options.ledger;
    ledger.settled();
    if (!answered) ledger.count(call.service, call.method, call.entry, RpcCode.CANCELLED);
  }

  /**
   * Send an answer and count it under `entry` (undefined: a name not served here): a served call's, or the
   * provider's refusal of a call it did not run.
   */
  respond(answer: CallAnswer, entry: HandlerEntry | undefined): void {
    const { ledger, maxFrameBytes, maxUnsentBytes } = this.#options;
    const { callId, status } = answer;
    ledger.count(answer.service, answer.method, entry, status);
    const connection = this.connection;
    if (!connection.connected) return;
    const size = sendResponse(connection, answer, maxFrameBytes);
    if (size > maxFrameBytes) {
      const error = `The response of ${answer.service}.${answer.method} of ${size} bytes exceeds the limit of ` +
        `${maxFrameBytes} bytes per frame`;
      getLogger().warn(`RpcProvider: ${error}`);
      sendResponse(connection, {
        callId,
        status: RpcCode.RESOURCE_EXHAUSTED,
        errorMessage: error,
        answerMetadata: undefined,
        answerPayload: EMPTY_BYTES,
      }, maxFrameBytes);
    }
    // A caller that does not read its answers: closed once they back up past the hard limit.
    if (connection.pendingBytes > maxUnsentBytes) {
      ledger.limitHit("unsent_bytes");
      closeIfBacklogged(connection, maxUnsentBytes);
    }
  }

  add(call: ServerCall): void {
    call.next = this.#head;
    if (this.#head !== undefined) this.#head.previous = call;
    this.#head = call;
    this.count++;
  }

  remove(call: ServerCall): void {
    if (call.previous !== undefined) call.previous.next = call.next;
    else if (this.#head === call) this.#head = call.next;
    else return; // not on the list
    if (call.next !== undefined) call.next.previous = call.previous;
    // Unlinked calls point nowhere: a promoted dead call must not keep younger ones alive.
    call.previous = undefined;
    call.next = undefined;
    this.count--;
  }

  /** The call in flight with this id (a walk: only cancels look, and they are rare). */
  find(callId: number): ServerCall | undefined {
    for (let call = this.#head; call !== undefined; call = call.next) if (call.callId === callId) return call;
    return undefined;
  }

  /** Every call in flight (a copy: aborting removes them). */
  calls(): ServerCall[] {
    const calls: ServerCall[] = [];
    for (let call = this.#head; call !== undefined; call = call.next) calls.push(call);
    return calls;
  }
}

/**
 * A call being served; the handler sees it as its {@linkcode CallContext}, its transport as its
 * {@linkcode CallAnswer}. It answers through the transport it came on, which owns it while it runs.
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
  readonly #transport: ServerTransport<ServerCall>;
  readonly #deadline: number;
  readonly #timeoutMs: number;
  #timer: TimerId | undefined;
  #controller: AbortController | undefined;
  #abortReason: RpcError | undefined;
  #responseMetadata: Record<string, string> | undefined;
  #settled = false;

  /** `receiveTimeMs`: when the request arrived; its deadline counts from then. */
  constructor(
    transport: ServerTransport<ServerCall>,
    frame: RequestFrame,
    entry: HandlerEntry,
    receiveTimeMs: number,
  ) {
    this.#transport = transport;
    this.entry = entry;
    this.callId = frame.callId;
    this.service = frame.service;
    this.method = frame.method;
    this.metadata = frame.metadata ?? NO_METADATA;
    this.#timeoutMs = frame.timeoutMs;
    this.#deadline = frame.timeoutMs > 0 ? receiveTimeMs + frame.timeoutMs : Infinity;
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
    return this.#transport.peer;
  }

  timeRemainingMs(): number {
    return this.#deadline - this.#transport.loop.now();
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
      this.#timer = this.#transport.loop.runAt(
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
    if (this.#timer !== undefined) this.#transport.loop.cancel(this.#timer);
    return true;
  }

  // Through the transport: the call leaves its list, then its answer goes out.
  #answer(status: number, errorMessage: string, metadata: Record<string, string> | undefined, payload: Uint8Array) {
    this.status = status;
    this.errorMessage = errorMessage;
    this.answerMetadata = metadata;
    this.answerPayload = payload;
    this.#transport.settled(this, true);
    this.#transport.answer(this);
    this.answerPayload = EMPTY_BYTES; // it may be a reused array
  }

  #onResult(result: unknown): void {
    if (!this.#settle()) return;
    let payload: Uint8Array;
    try {
      const message = this.entry.encodableResponse(result);
      // Copied into the connection's output at once (transport.answer), so a reused array will do.
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
    // A cancelled call's caller is gone: nothing to answer.
    if (rpcError.code === RpcCode.CANCELLED) {
      this.#transport.settled(this, false);
      return;
    }
    // At most once: the handler ran, so whatever its error says (a downstream call's "safe to retry" included),
    // this hop's answer is not safe to retry. The transport's keys are this hop's to set, never a handler's.
    const metadata = withoutTransportKeys(rpcError.metadata);
    this.#answer(rpcError.code, rpcError.rawMessage, metadata, EMPTY_BYTES);
  }
}
