/**
 * One HTTP request as the provider sees it: a {@linkcode ServerConnection} that carries exactly one call (the
 * seam's rule for a gateway: each HTTP request is a call on a connection of its own), so the provider's dispatch,
 * limits, deadlines, drain and accounting serve it as they serve a TCP caller. Towards the gateway's protocol code
 * it is a queue of what the provider sends (stream messages, then the end) and the flow control of both
 * directions: credit the provider grants for the client's messages, credit the gateway grants back once the HTTP
 * client has taken a message.
 *
 * Made by a {@linkcode GatewayRequest} for the request's lifetime; loop-confined. Its end comes once, first of: the
 * provider's answer, {@linkcode GatewayCall.fail} (the gateway refused the client's input), or
 * {@linkcode GatewayCall.abandon} (the HTTP client went away).
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import { withoutTransportKeys } from "../_server_call.ts";
import { SendCredit } from "../_stream_flow.ts";
import { RpcCode, RpcError } from "../rpc_error.ts";
import type {
  CallAnswer,
  RequestFrame,
  ServerConnection,
  ServerConnectionHandler,
  ServerTransportHandler,
} from "../server_transport.ts";

/** The one call id of a gateway call's connection. */
export const GATEWAY_CALL_ID = 1;

/**
 * How a call ended: the provider's answer (copied: the provider may reuse its bytes), or the gateway's own.
 *
 * @example
 * ```ts
 * import type { GatewayAnswer } from "./gateway_call.ts";
 *
 * const describe = (answer: GatewayAnswer) => answer.status === 0 ? "OK" : `${answer.status}: ${answer.message}`;
 * ```
 */
export interface GatewayAnswer {
  /** 0, or a gRPC status code. */
  readonly status: number;
  /** The reason, when status ≠ 0. */
  readonly message: string;
  /** The handler's response metadata (or its error's), without the transport's `dwt-` keys. */
  readonly metadata: Readonly<Record<string, string>>;
  /** A unary call's or client stream's response message (binary); empty otherwise. */
  readonly payload: Uint8Array;
}

/**
 * What the provider sent, in order: stream messages, then one end. A message's `written` is kept for callers that
 * acknowledge what they take; the call acknowledged it to the provider when it was queued.
 *
 * @example
 * ```ts
 * import type { GatewayEvent } from "./gateway_call.ts";
 *
 * const size = (event: GatewayEvent) => event.kind === "message" ? event.payload.length : 0;
 * ```
 */
export type GatewayEvent =
  | { readonly kind: "message"; readonly payload: Uint8Array; readonly written: () => void }
  | { readonly kind: "end"; readonly answer: GatewayAnswer };

const EMPTY_BYTES = new Uint8Array(0);
const NO_METADATA: Readonly<Record<string, string>> = Object.freeze({});
const NOTHING = () => {};
// What the credit of an ended call fails with: one error for every call, as nothing shows it to anyone (`reserve`
// answers false once the call ended) and an error's stack costs microseconds per call.
const CALL_ENDED = new RpcError(RpcCode.CANCELLED, "The call ended");

/**
 * Prefix of response metadata keys that are trailers. The handler API has one `responseMetadata` map, sent when
 * the call ends; a key `trailer-<name>` is trailer `<name>` (Connect unary sends it as the header `trailer-<name>`,
 * which is how Connect carries unary trailers; streams and gRPC-Web put `<name>` in their trailers), any other key
 * is a header field where the protocol still allows one, else a trailer.
 */
export const TRAILER_PREFIX = "trailer-";

/**
 * A call carried by one HTTP request.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { GatewayCall } from "./gateway_call.ts";
 * import assert from "node:assert/strict";
 *
 * // A provider that answers every call OK with one byte.
 * const call = new GatewayCall(new EventLoop(), "127.0.0.1:5000", {
 *   accept: (connection) => ({
 *     callsInFlight: 0,
 *     request: (frame) =>
 *       connection.answer({ ...frame, status: 0, errorMessage: "", answerMetadata: {}, answerPayload: new Uint8Array(1) }),
 *     cancel: () => {},
 *     closed: () => {},
 *   }),
 *   limitHit: () => {},
 * });
 * call.start({ callId: 1, service: "demo.Echo", method: "Say", timeoutMs: 0, metadata: {}, payload: new Uint8Array(0) }, 0);
 * const event = await call.next();
 * assert.equal(event.kind === "end" && event.answer.payload.length, 1);
 * call.finish();
 * ```
 */
export class GatewayCall implements ServerConnection {
  /** The HTTP client's address. */
  readonly peer: string;
  /** The loop the call runs on. */
  readonly loop: EventLoop;
  /** Set when the provider drains or closes this call's connection: the HTTP connection closes after the response. */
  closeConnection = false;
  /** A stream's response headers, as the provider gave them before its first message (undefined: none). */
  headers: Readonly<Record<string, string>> | undefined = undefined;
  readonly #provider: ServerTransportHandler;
  #calls: ServerConnectionHandler | undefined;
  readonly #events: GatewayEvent[] = [];
  #reader: ((event: GatewayEvent) => void) | undefined;
  #ended = false;
  #givenUp = false;
  #released = false;
  // The provider's credit for the client's messages; its window is its first grant.
  readonly #credit = new SendCredit(0);

  /** A call from `peer` for `provider`, on `loop`; nothing happens until {@linkcode GatewayCall.start}. */
  constructor(loop: EventLoop, peer: string, provider: ServerTransportHandler) {
    this.loop = loop;
    this.peer = peer;
    this.#provider = provider;
  }

  /** Whether the call's end is known (answered, failed or abandoned). */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Whether the gateway ended the call itself ({@linkcode GatewayCall.fail} or {@linkcode GatewayCall.abandon}):
   * no more of its messages are written, only its end.
   */
  get givenUp(): boolean {
    return this.#givenUp;
  }

  /**
   * Offer the call to the provider: its connection, then `frame` (received at `receiveTimeMs`, the loop's clock).
   * A provider that refuses the connection ends the call UNAVAILABLE.
   */
  start(frame: RequestFrame, receiveTimeMs: number): void {
    const calls = this.#provider.accept(this);
    if (calls === undefined) {
      this.#end(RpcCode.UNAVAILABLE, "The provider refused the call", NO_METADATA, EMPTY_BYTES);
      return;
    }
    this.#calls = calls;
    calls.request(frame, receiveTimeMs);
  }

  /** The next thing the provider sent (after the end: the end again). */
  next(): Promise<GatewayEvent> {
    const event = this.#events.shift();
    if (event !== undefined) {
      if (event.kind === "end") this.#events.unshift(event); // the end stays for later askers
      return Promise.resolve(event);
    }
    return new Promise((resolve) => this.#reader = resolve);
  }

  /**
   * The next stream message already queued, taken at once; undefined when none is (the end is never taken here:
   * {@linkcode GatewayCall.next} gives it). For writing the messages of one loop turn together.
   */
  poll(): GatewayEvent | undefined {
    const event = this.#events[0];
    if (event === undefined || event.kind === "end") return undefined;
    return this.#events.shift();
  }

  /** The call's end (stream messages before it are let go: for a unary call, which sends none). */
  async end(): Promise<GatewayAnswer> {
    for (;;) {
      const event = await this.next();
      if (event.kind === "end") return event.answer;
      event.written();
    }
  }

  /** The HTTP client took a stream message of `bytes` (its cost): the provider may send that much more. */
  grant(bytes: number): void {
    if (!this.#released) this.#calls?.credit?.(GATEWAY_CALL_ID, bytes);
  }

  /**
   * Wait until the provider's credit covers a client message costing `cost`, and take it: true, or false once the
   * call has ended (stop sending).
   */
  reserve(cost: number): Promise<boolean> {
    if (this.#ended) return Promise.resolve(false);
    const taken = this.#credit.take(cost);
    return taken === undefined ? Promise.resolve(true) : taken.then(() => true, () => false);
  }

  /** Hand the provider one client message (binary; copied there). Reserve its credit first. */
  send(payload: Uint8Array): void {
    if (!this.#ended) this.#calls?.message?.(GATEWAY_CALL_ID, payload);
  }

  /** The client's messages are over. */
  halfClose(): void {
    if (!this.#ended) this.#calls?.halfClose?.(GATEWAY_CALL_ID);
  }

  /**
   * The gateway refuses the client's input (a message too large, not decodable, a broken envelope): the provider's
   * side is cancelled and the call ends with `error`, which the gateway answers.
   */
  fail(error: RpcError): void {
    if (this.#ended) return;
    this.#giveUp();
    this.#end(error.code, error.rawMessage, withoutTransportKeys(error.metadata) ?? NO_METADATA, EMPTY_BYTES);
    this.#calls?.cancel(GATEWAY_CALL_ID);
  }

  /** The HTTP client went away: the provider's call is cancelled (its handler's signal fires) and released. */
  abandon(reason = "The HTTP client went away"): void {
    if (this.#released) return;
    this.#giveUp();
    this.#end(RpcCode.CANCELLED, reason, NO_METADATA, EMPTY_BYTES);
    this.#release(reason);
  }

  /** The HTTP response is over: release the call's connection (a call still running is cancelled). */
  finish(): void {
    this.#release("The HTTP response ended");
  }

  // ServerConnection: what the provider calls.

  /** From the provider: the call's answer or the stream's end (less what the stream's headers already said). */
  answer(call: CallAnswer): void {
    if (this.#ended) return;
    let metadata = withoutTransportKeys(call.answerMetadata) ?? NO_METADATA;
    const headers = this.headers;
    if (headers !== undefined) {
      // What went out as a header is not repeated as a trailer; `trailer-` keys were never headers.
      metadata = Object.fromEntries(
        Object.entries(metadata).filter(([key, value]) =>
          key.toLowerCase().startsWith(TRAILER_PREFIX) || headers[key] !== value
        ),
      );
    }
    this.#end(
      call.status,
      call.errorMessage,
      metadata,
      call.answerPayload.length === 0 ? EMPTY_BYTES : call.answerPayload.slice(),
    );
  }

  /** From the provider: a stream's response headers, before its first message. */
  sendHeaders(_callId: number, metadata: Record<string, string>): void {
    if (!this.#ended) this.headers = metadata;
  }

  /**
   * From the provider: a stream message, queued for the gateway and acknowledged at once, so the provider may make
   * the next while the gateway writes: the messages of one loop turn then go out in one write. The queue is
   * bounded by the provider's credit, which the gateway grants back only as the HTTP client takes the bytes: one
   * window at most, as on the native port, where an acknowledged message sits in the connection's output.
   */
  sendMessage(_callId: number, payload: Uint8Array, written: () => void): number {
    if (!this.#ended) this.#push({ kind: "message", payload, written: NOTHING });
    written();
    return 0;
  }

  /** From the provider: credit for the client's messages. */
  sendCredit(_callId: number, bytes: number): void {
    if (!this.#credit.grant(bytes)) {
      this.fail(new RpcError(RpcCode.INTERNAL, "The provider granted credit past 2^31 - 1"));
    }
  }

  /**
   * From the provider: the stream ended. Nothing to drop: every message queued was acknowledged (see
   * `sendMessage`), so it goes out before the end, as an acknowledged message in a TCP connection's output does.
   */
  dropMessages(): void {}

  /** From the provider: it drains. The HTTP connection closes after this response. */
  drain(_lastCallId: number, reason: string, _graceMs: number, status = 0): void {
    this.closeConnection = true;
    if (status !== 0) this.fail(new RpcError(RpcCode.INTERNAL, reason));
  }

  /** From the provider: close once answered. The connection is released when the HTTP response ends. */
  close(): void {
    this.closeConnection = true;
  }

  // The gateway ends the call itself: its queued messages are not written.
  #giveUp(): void {
    this.#givenUp = true;
    for (let i = this.#events.length - 1; i >= 0; i--) {
      if (this.#events[i]!.kind === "message") this.#events.splice(i, 1);
    }
  }

  #end(status: number, message: string, metadata: Readonly<Record<string, string>>, payload: Uint8Array): void {
    this.#ended = true;
    this.#credit.fail(CALL_ENDED);
    this.#push({ kind: "end", answer: { status, message, metadata, payload } });
  }

  #push(event: GatewayEvent): void {
    const reader = this.#reader;
    if (reader !== undefined) {
      this.#reader = undefined;
      if (event.kind === "end") this.#events.push(event);
      reader(event);
      return;
    }
    this.#events.push(event);
  }

  #release(reason: string): void {
    if (this.#released) return;
    this.#released = true;
    this.#calls?.closed(reason);
  }
}
