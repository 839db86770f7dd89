/**
 * One stream being served (a server, client or bidirectional streaming method): the handler's CallContext, the
 * caller's messages as an async iterable it reads (granting credit as it does), the handler's messages written as
 * the caller's credit and the connection's fair write queue allow, and the end: the handler's return (with a
 * client stream's one answer), its error, or an abort (deadline, the caller's cancel, the connection lost, the
 * drain's grace period over), after which its generator's `finally` runs. Made by the dispatch for a request that
 * opens a stream; owned, like a ServerCall, by the record of its connection.
 *
 * @module
 */

import type { EventLoop } from "../reactor/event_loop.ts";
import { getLogger } from "../reactor/logger.ts";
import type { TimerId } from "../reactor/timer_queue.ts";
import { encodeMessage, encodeTransient } from "./_byte_slab.ts";
import { StreamKind } from "./_rpc_wire.ts";
import { type HandlerEntry, MAX_DEADLINE_MS, withoutTransportKeys } from "./_server_call.ts";
import { messageCost, MessageInbox, SendCredit } from "./_stream_flow.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import type { CallContext } from "./server_handler.ts";
import type { CallAnswer, RequestFrame } from "./server_transport.ts";

const EMPTY_BYTES = new Uint8Array(0);
const NO_METADATA: Readonly<Record<string, string>> = Object.freeze({});

/** What a served stream needs of the record of its connection. */
export interface ServerStreamOwner {
  /** The caller's address. */
  readonly peer: string;
  /** The loop the stream runs on. */
  readonly loop: EventLoop;
  /** Send the stream's end (its `status`, `errorMessage`, `answerMetadata`, `answerPayload`). */
  answer(stream: ServerStream): void;
  /** The stream settled (ended or aborted). `answered`: false when no end is sent (a cancel). */
  settled(stream: ServerStream, answered: boolean): void;
  /** Write a message when the connection has room; 0, or the frame's size when it exceeds the frame limit. */
  sendMessage(callId: number, payload: Uint8Array, written: () => void): number;
  /** Grant the caller credit. */
  sendCredit(callId: number, bytes: number): void;
  /** The response metadata set before the first message (transports with headers send them then). */
  sendHeaders(callId: number, metadata: Record<string, string>): void;
  /** Forget the stream's message waiting for room. */
  dropMessages(callId: number): void;
}

/** A stream being served; the handler sees it as its {@linkcode CallContext}, its transport as a CallAnswer. */
export class ServerStream implements CallContext, CallAnswer {
  readonly service: string;
  readonly method: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly callId: number;
  readonly entry: HandlerEntry;
  /** Which side streams ({@linkcode StreamKind}). */
  readonly kind: StreamKind;
  /** The end, set just before it goes to the transport. */
  status = 0;
  errorMessage = "";
  answerMetadata: Record<string, string> | undefined = undefined;
  answerPayload: Uint8Array = EMPTY_BYTES;
  readonly #owner: ServerStreamOwner;
  readonly #deadline: number;
  readonly #timeoutMs: number;
  readonly #controller = new AbortController();
  readonly #credit: SendCredit;
  readonly #inbox: MessageInbox<unknown> | undefined;
  #timer: TimerId | undefined;
  #responseMetadata: Record<string, string> | undefined;
  #iterator: AsyncIterator<unknown> | Iterator<unknown> | undefined;
  #halfClosed: boolean;
  #headersSent = false;
  #settled = false;

  /**
   * A stream opened by `frame` at `receiveTimeMs`; `windowBytes` is this provider's receive window (the credit it
   * grants a client or bidirectional stream's caller at the start).
   */
  constructor(
    owner: ServerStreamOwner,
    frame: RequestFrame,
    entry: HandlerEntry,
    receiveTimeMs: number,
    kind: StreamKind,
    windowBytes: number,
  ) {
    this.#owner = owner;
    this.entry = entry;
    this.kind = kind;
    this.callId = frame.callId;
    this.service = frame.service;
    this.method = frame.method;
    this.metadata = frame.metadata ?? NO_METADATA;
    const timeoutMs = this.#timeoutMs = Math.min(frame.timeoutMs, MAX_DEADLINE_MS);
    this.#deadline = timeoutMs > 0 ? receiveTimeMs + timeoutMs : Infinity;
    this.#credit = new SendCredit(frame.window || 65_536);
    this.#halfClosed = kind === StreamKind.SERVER; // its one request came with the open
    if (kind !== StreamKind.SERVER) {
      this.#inbox = new MessageInbox(windowBytes, (payload) => this.#decode(payload), (bytes) => {
        if (!this.#settled) owner.sendCredit(this.callId, bytes);
      });
    }
  }

  get signal(): AbortSignal {
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

  /** Run the handler: with the decoded request (a server stream), else with the caller's messages. */
  start(request: unknown): void {
    if (this.#deadline !== Infinity) {
      const timeoutMs = this.#timeoutMs;
      this.#timer = this.#owner.loop.runAt(
        this.#deadline,
        () => this.abort(new RpcError(RpcCode.DEADLINE_EXCEEDED, `The deadline of ${timeoutMs} ms passed`)),
      );
    }
    const inbox = this.#inbox;
    if (inbox !== undefined) this.#owner.sendCredit(this.callId, inbox.window);
    let result: unknown;
    try {
      result = this.entry.handler(inbox ?? request, this);
    } catch (error) {
      this.#fail(error ?? new Error("thrown"));
      return;
    }
    if (this.kind === StreamKind.CLIENT) {
      Promise.resolve(result).then(
        (value) => this.#finish(value),
        (error) => this.#fail(error ?? new Error("rejected")),
      );
    } else {
      Promise.resolve(result).then((value) => this.#pump(value), (error) => this.#fail(error ?? new Error("rejected")));
    }
  }

  /** From the caller: one message. */
  message(payload: Uint8Array): void {
    if (this.#settled) return;
    if (this.#halfClosed) {
      const why = this.kind === StreamKind.SERVER
        ? "a message on a server stream (its one request came with the open)"
        : "a message after the caller's half-close";
      this.abort(new RpcError(RpcCode.INVALID_ARGUMENT, `Protocol error on ${this.method}: ${why}`));
      return;
    }
    if (!this.#inbox!.push(payload)) {
      this.abort(
        new RpcError(
          RpcCode.RESOURCE_EXHAUSTED,
          `Flow control broken on ${this.method}: a message of ${messageCost(payload.length)} bytes with ` +
            this.#inbox!.creditHeld,
        ),
      );
      return;
    }
    this.entry.messagesIn++;
  }

  /** From the caller: its last message was sent. */
  halfClose(): void {
    if (this.#settled) return;
    if (this.#halfClosed) {
      // A server stream's open is its half-close: say so rather than "second", which would puzzle its caller.
      const why = this.kind === StreamKind.SERVER
        ? "a half-close on a server stream (its one request came with the open)"
        : "a second half-close";
      this.abort(new RpcError(RpcCode.INVALID_ARGUMENT, `Protocol error on ${this.method}: ${why}`));
      return;
    }
    this.#halfClosed = true;
    this.#inbox!.end();
  }

  /** From the caller: credit for this stream's messages. */
  credit(bytes: number): void {
    if (this.#settled) return;
    if (!this.#credit.grant(bytes)) {
      this.abort(
        new RpcError(
          RpcCode.RESOURCE_EXHAUSTED,
          `Flow control broken on ${this.method}: a credit of ${bytes} bytes takes the stream's credit past 2^31 - 1`,
        ),
      );
    }
  }

  /** Stop the stream (deadline, the caller's cancel, a protocol error, the connection lost, the drain's end). */
  abort(reason: RpcError): void {
    if (this.#settled) return;
    this.#controller.abort(reason);
    this.#fail(reason);
  }

  #decode(payload: Uint8Array): unknown {
    try {
      return this.entry.decodeRequest(payload);
    } catch (error) {
      throw new RpcError(RpcCode.INVALID_ARGUMENT, `A request message of ${this.method} does not parse`, {
        cause: error,
      });
    }
  }

  // Write what the handler yields, each message once the caller's credit and the connection let it, then end OK.
  async #pump(responses: unknown): Promise<void> {
    const iterable = responses as Partial<AsyncIterable<unknown> & Iterable<unknown>> | null | undefined;
    const iterator = iterable?.[Symbol.asyncIterator]?.() ?? iterable?.[Symbol.iterator]?.();
    if (iterator === undefined) {
      this.#fail(new TypeError(`The handler of ${this.method} returned no iterable of responses`));
      return;
    }
    this.#iterator = iterator;
    if (this.#settled) {
      // Ended before the handler's generator started (a cancel or a protocol error in the same read as the open):
      // #fail found no iterator to close, so close it here; its body never runs, as no message could go out.
      void this.#closeIterator();
      return;
    }
    try {
      for (;;) {
        const step = await iterator.next();
        if (this.#settled) return;
        if (step.done) break;
        await this.#send(step.value);
        if (this.#settled) return;
      }
    } catch (error) {
      this.#fail(error ?? new Error("thrown"));
      return;
    }
    this.#finish(undefined);
  }

  async #send(value: unknown): Promise<void> {
    const entry = this.entry;
    let payload: Uint8Array;
    try {
      payload = encodeMessage(entry.method.responseType, entry.encodableResponse(value));
    } catch (error) {
      throw new RpcError(RpcCode.INTERNAL, `A response message of ${this.service}.${this.method} does not encode`, {
        cause: error,
      });
    }
    const credit = this.#credit.take(messageCost(payload.length));
    if (credit !== undefined) await credit;
    if (this.#settled) return;
    if (!this.#headersSent) {
      this.#headersSent = true;
      const headers = withoutTransportKeys(this.#responseMetadata);
      if (headers !== undefined && Object.keys(headers).length > 0) {
        this.#owner.sendHeaders(this.callId, { ...headers });
      }
    }
    const written = Promise.withResolvers<void>();
    const tooLarge = this.#owner.sendMessage(this.callId, payload, written.resolve);
    if (tooLarge > 0) {
      throw new RpcError(
        RpcCode.RESOURCE_EXHAUSTED,
        `A response message of ${this.service}.${this.method} of ${tooLarge} bytes exceeds the frame limit`,
      );
    }
    await written.promise;
    entry.messagesOut++;
  }

  async #closeIterator(): Promise<void> {
    try {
      await this.#iterator?.return?.();
    } catch { /* a generator that throws from its finally: the stream is over anyway */ }
  }

  #settle(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    if (this.#timer !== undefined) this.#owner.loop.cancel(this.#timer);
    return true;
  }

  // Through the owner: the stream leaves its connection's table, then its end goes out.
  #end(status: number, errorMessage: string, metadata: Record<string, string> | undefined, payload: Uint8Array) {
    this.status = status;
    this.errorMessage = errorMessage;
    this.answerMetadata = metadata;
    this.answerPayload = payload;
    this.#owner.settled(this, true);
    this.#owner.answer(this);
    this.answerPayload = EMPTY_BYTES;
  }

  // The handler returned: a client stream's answer, or the end of a server or bidirectional stream.
  #finish(answer: unknown): void {
    if (!this.#settle()) return;
    this.#inbox?.fail(new RpcError(RpcCode.CANCELLED, "The stream ended"));
    let payload: Uint8Array = EMPTY_BYTES;
    if (this.kind === StreamKind.CLIENT) {
      try {
        payload = encodeTransient(this.entry.method.responseType, this.entry.encodableResponse(answer));
      } catch (error) {
        const message = `The response of ${this.service}.${this.method} does not encode`;
        getLogger().warn(`RpcProvider: ${message}`, { error });
        this.#end(RpcCode.INTERNAL, message, undefined, EMPTY_BYTES);
        return;
      }
    }
    this.#end(0, "", withoutTransportKeys(this.#responseMetadata), payload);
  }

  #fail(error: unknown): void {
    if (!this.#settle()) return;
    const rpcError = RpcError.from(error);
    this.#credit.fail(rpcError);
    this.#inbox?.fail(rpcError);
    this.#owner.dropMessages(this.callId);
    // The generator's `finally` runs now if it waits at a `yield`, else at its next one.
    void this.#closeIterator();
    if (rpcError.code === RpcCode.UNKNOWN) {
      getLogger().warn(`RpcProvider: ${this.service}.${this.method} threw`, { error });
    }
    // Cancelled by the caller (or the connection's end): nobody to answer. A handler that ends its stream
    // CANCELLED itself is answered so.
    if (rpcError.code === RpcCode.CANCELLED && this.#controller.signal.aborted) {
      this.#owner.settled(this, false);
      return;
    }
    this.#end(rpcError.code, rpcError.rawMessage, withoutTransportKeys(rpcError.metadata), EMPTY_BYTES);
  }
}
