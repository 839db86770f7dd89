/**
 * One stream of a channel, the caller's side: picks a provider, opens the stream, sends the caller's messages as
 * the provider's credit and the connection's fair write queue allow (then the half-close), hands the provider's
 * messages to the caller's loop (granting credit as it reads them), and ends with the provider's status and
 * trailers. The deadline covers the whole stream; an AbortSignal, the parent call's cancel, or a `break` out of the
 * caller's loop cancel it on both sides. A stream is retried on another provider only while that is safe: it was
 * refused unprocessed (or handed back by a drain) before the caller's loop saw a message and before a request
 * message was taken from the caller's iterable (client and bidirectional streams take none until the provider's
 * first credit says it accepted the stream).
 *
 * @module
 */

import type { TimerId } from "../reactor/timer_queue.ts";
import { type CallRouter, noProviderError, parentCancelError, type PendingCallOptions } from "./_pending_call.ts";
import { copyBytes } from "./_byte_slab.ts";
import { DEFAULT_WINDOW_BYTES, StreamKind } from "./_rpc_wire.ts";
import { messageCost, MessageInbox, SendCredit } from "./_stream_flow.ts";
import type { ClientResult } from "./client_handler.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import type { ClientTransport, ResponseFrame, TransportCall } from "./transport.ts";

const EMPTY_BYTES = new Uint8Array(0);

/** Everything a {@linkcode ClientStream} is made of. */
export interface ClientStreamInit {
  router: CallRouter;
  service: string;
  method: string;
  /** Which side streams: client, server or bidirectional. */
  kind: StreamKind;
  /** A server stream's one request, serialized; empty for the other kinds. */
  payload: Uint8Array;
  metadata: Record<string, string> | undefined;
  options: PendingCallOptions & { readonly onTrailers?: (metadata: Record<string, string>) => void };
  /** The whole stream's deadline, in milliseconds from when it starts; Infinity: none. */
  timeoutMs: number;
  /** This caller's receive window for the provider's messages. */
  windowBytes: number;
  /** A response message from its bytes (throws when they do not parse). */
  decode: (payload: Uint8Array) => unknown;
  /** A request message's bytes (throws when it does not encode). */
  encode: (value: unknown) => Uint8Array;
  /** The caller's messages (client and bidirectional streams). */
  requests?: AsyncIterable<unknown> | Iterable<unknown>;
}

/** A stream in progress. Start it with {@linkcode ClientStream.start}. */
export class ClientStream implements TransportCall {
  callId = 0;
  readonly service: string;
  readonly method: string;
  readonly payload: Uint8Array;
  metadata: Record<string, string> | undefined;
  readonly stream: StreamKind;
  readonly window: number;
  /** The provider's messages, for the caller's loop (server and bidirectional streams). */
  readonly responses: MessageInbox<unknown> | undefined;
  readonly #init: ClientStreamInit;
  readonly #router: CallRouter;
  #deadline = 0;
  #deadlineTimer: TimerId | undefined;
  #retryTimer: TimerId | undefined;
  #retries = 0;
  #excluded: Set<string> | undefined;
  #address: string | undefined;
  #connection: ClientTransport | undefined;
  #credit = new SendCredit(0, 0);
  #accepted = false;
  #pulled = false;
  #started = false;
  #done = false;
  #ended: PromiseWithResolvers<ClientResult> | undefined;
  #failure: RpcError | undefined;
  // The writer's wait for its message to leave the connection's write queue (see #sendRequests).
  #writeWaiting: (() => void) | undefined;

  /** A stream, not started yet. */
  constructor(init: ClientStreamInit) {
    this.#init = init;
    this.#router = init.router;
    this.service = init.service;
    this.method = init.method;
    this.payload = init.payload;
    this.metadata = init.metadata;
    this.stream = init.kind;
    this.window = init.windowBytes === DEFAULT_WINDOW_BYTES ? 0 : init.windowBytes;
    if (init.kind !== StreamKind.CLIENT) {
      const inbox = new MessageInbox(init.windowBytes, (payload) => this.#decode(payload), (bytes) => {
        if (!this.#done) this.#connection?.sendCredit?.(this, bytes);
      });
      inbox.onAbandon = () => this.#giveUp(new RpcError(RpcCode.CANCELLED, "The caller stopped reading the stream"));
      this.responses = inbox;
    }
  }

  /**
   * Settles when the stream ends: with a client stream's answer (else an empty payload) and the provider's trailing
   * metadata, or with the stream's error.
   */
  get ended(): Promise<ClientResult> {
    if (this.#ended === undefined) {
      this.#ended = Promise.withResolvers();
      if (this.#failure !== undefined) this.#ended.reject(this.#failure);
    }
    return this.#ended.promise;
  }

  /** Whether the stream started (interceptors may end a call without starting it). */
  get started(): boolean {
    return this.#started;
  }

  /** Begin: wait for discovery if needed, then open the stream on a provider. */
  start(): void {
    if (this.#started || this.#done) return;
    this.#started = true;
    const router = this.#router;
    if (router.closed()) {
      this.#fail(new RpcError(RpcCode.UNAVAILABLE, "The channel is closed"));
      return;
    }
    const { signal, controller, parent } = this.#init.options;
    if (signal?.aborted || controller?.signal.aborted || parent?.signal.aborted) {
      this.#fail(this.#cancelledError(parent?.signal.aborted ? parent.signal : undefined));
      return;
    }
    this.#deadline = router.loop.now() + this.#init.timeoutMs;
    if (this.#deadline !== Infinity) this.#armDeadline();
    signal?.addEventListener("abort", this);
    controller?.signal.addEventListener("abort", this);
    parent?.signal.addEventListener("abort", this);
    const discovered = router.discovered(this.service);
    if (discovered === undefined) this.#attempt();
    else discovered.then(() => this.#attempt(), (error) => this.#fail(RpcError.from(error, RpcCode.UNAVAILABLE)));
  }

  #armDeadline(): void {
    this.#deadlineTimer = this.#router.loop.runAt(this.#deadline, () => {
      this.#deadlineTimer = undefined;
      const where = this.#address === undefined ? "" : ` on ${this.#address}`;
      this.#giveUp(
        new RpcError(
          RpcCode.DEADLINE_EXCEEDED,
          `The stream ${this.service}.${this.method}${where} missed its deadline`,
        ),
      );
    });
  }

  /** Fail the stream from outside (an interceptor refused it, or answered it without sending it). */
  fail(error: RpcError): void {
    this.#giveUp(error);
  }

  /** Milliseconds left, sent with the opening request: at least 1, or 0 for a stream without a deadline. */
  timeoutMs(): number {
    if (this.#deadline === Infinity) return 0;
    return Math.max(1, this.#deadline - this.#router.loop.now());
  }

  /** From the signals: the caller (or the parent call) cancelled. */
  handleEvent(event: Event): void {
    const parent = this.#init.options.parent;
    this.#giveUp(
      this.#cancelledError(parent !== undefined && event.target === parent.signal ? parent.signal : undefined),
    );
  }

  /** From the connection: the provider granted credit (its first credit: it accepted the stream). */
  onCredit(bytes: number): void {
    if (this.#done) return;
    if (!this.#credit.grant(bytes)) {
      this.#protocolError(`a credit of ${bytes} bytes takes the stream's credit past 2^31 - 1`);
      return;
    }
    if (!this.#accepted && this.stream !== StreamKind.SERVER) {
      this.#accepted = true;
      void this.#sendRequests();
    }
  }

  /** From the connection: a message of the provider's. */
  onMessage(payload: Uint8Array): void {
    if (this.#done) return;
    const inbox = this.responses;
    if (inbox === undefined) {
      this.#protocolError("a message on a client stream, whose one answer comes with its end");
      return;
    }
    if (!inbox.push(payload)) {
      this.#protocolError(`a message of ${messageCost(payload.length)} bytes with ${inbox.creditHeld}`);
    }
  }

  /** From the connection: the stream's end. */
  onResponse(frame: ResponseFrame): void {
    const connection = this.#connection;
    this.#connection = undefined;
    if (this.#done) return;
    const metadata = frame.metadata ?? {};
    if (frame.status !== 0) {
      const error = new RpcError(frame.status as RpcCode, frame.errorMessage, { metadata });
      this.#attemptFailed(error, metadata["dwt-retry-safe"] === "1", connection);
      return;
    }
    if (connection !== undefined) this.#router.attempted(this.#address!, connection, true);
    let payload: Uint8Array = EMPTY_BYTES;
    if (this.stream === StreamKind.CLIENT) {
      payload = copyBytes(frame.payload);
    } else {
      this.responses!.end();
    }
    this.#finish();
    this.#init.options.onTrailers?.(metadata);
    this.#ended?.resolve({ payload, metadata });
  }

  /** From the connection: the attempt failed (`retrySafe`: the provider never ran it; `drained`: handed back). */
  onError(error: RpcError, retrySafe: boolean, drained = false): void {
    const connection = this.#connection;
    this.#connection = undefined;
    if (this.#done) return;
    this.#attemptFailed(error, retrySafe || drained, drained ? undefined : connection);
  }

  #decode(payload: Uint8Array): unknown {
    try {
      return this.#init.decode(payload);
    } catch (error) {
      const why = `A response message of ${this.service}.${this.method} does not parse`;
      const rpcError = new RpcError(RpcCode.INTERNAL, why, { cause: error });
      this.#giveUp(rpcError);
      throw rpcError;
    }
  }

  #cancelledError(parent: AbortSignal | undefined): RpcError {
    const what = `The stream ${this.service}.${this.method}`;
    return parent === undefined
      ? new RpcError(RpcCode.CANCELLED, `${what} was cancelled`)
      : parentCancelError(what, parent);
  }

  // The provider broke the stream's rules: tell it to stop, and fail INTERNAL.
  #protocolError(what: string): void {
    this.#giveUp(new RpcError(RpcCode.INTERNAL, `The provider ${this.#address} broke the stream protocol: ${what}`));
  }

  #attempt(): void {
    if (this.#done) return;
    const router = this.#router;
    if (router.closed()) {
      this.#fail(new RpcError(RpcCode.UNAVAILABLE, "The channel is closed"));
      return;
    }
    const address = router.pick(this.service, this.#init.options.hashKey, this.#excluded);
    if (address === undefined) {
      const waitMs = router.waitForProviderMs(this.service);
      if (waitMs !== undefined && this.#deadline - router.loop.now() > waitMs) {
        this.#retryTimer = router.loop.runAfter(waitMs, () => {
          this.#retryTimer = undefined;
          this.#excluded?.clear();
          this.#attempt();
        });
        return;
      }
      this.#fail(noProviderError(router, this.service, "stream"));
      return;
    }
    const connection = router.connection(address);
    if (connection.sendMessage === undefined) {
      this.#fail(new RpcError(RpcCode.UNIMPLEMENTED, `The transport to ${address} carries no streams`));
      return;
    }
    this.#address = address;
    this.#connection = connection;
    this.#credit = new SendCredit(0, 0);
    connection.request(this);
  }

  #attemptFailed(error: RpcError, retrySafe: boolean, connection: ClientTransport | undefined): void {
    const router = this.#router;
    const address = this.#address!;
    if (connection !== undefined) router.attempted(address, connection, false);
    const delivered = (this.responses?.taken ?? 0) > 0 || (this.responses?.buffered ?? 0) > 0;
    const remainingMs = this.#deadline - router.loop.now();
    if (
      !retrySafe || this.#pulled || delivered || this.#retries >= router.maxRetries ||
      remainingMs <= router.retryBackoffMs || !router.takeRetryToken()
    ) {
      this.#fail(error, true);
      return;
    }
    this.#retries++;
    (this.#excluded ??= new Set()).add(address);
    this.#accepted = false;
    const backoffMs = router.retryBackoffMs * 2 ** (this.#retries - 1);
    this.#retryTimer = router.loop.runAfter(Math.min(backoffMs, remainingMs / 2), () => {
      this.#retryTimer = undefined;
      if (this.#excluded !== undefined && this.#excluded.size >= router.providerCount(this.service)) {
        this.#excluded.clear();
      }
      this.#attempt();
    });
  }

  // The caller's messages, each once the provider's credit lets it, then the half-close.
  async #sendRequests(): Promise<void> {
    const requests = this.#init.requests;
    const iterable = requests as Partial<AsyncIterable<unknown> & Iterable<unknown>> | undefined;
    const iterator = iterable?.[Symbol.asyncIterator]?.() ?? iterable?.[Symbol.iterator]?.();
    if (iterator === undefined) {
      this.#giveUp(new RpcError(RpcCode.INVALID_ARGUMENT, `The requests of ${this.method} are not iterable`));
      return;
    }
    try {
      for (;;) {
        this.#pulled = true;
        const step = await iterator.next();
        if (this.#done) break;
        if (step.done) {
          this.#connection?.halfClose?.(this);
          return;
        }
        let payload: Uint8Array;
        try {
          payload = this.#init.encode(step.value);
        } catch (error) {
          throw new RpcError(RpcCode.INVALID_ARGUMENT, `Cannot encode a request message of ${this.method}`, {
            cause: error,
          });
        }
        const credit = this.#credit.take(messageCost(payload.length));
        if (credit !== undefined) await credit;
        const connection = this.#connection;
        if (this.#done || connection === undefined) break;
        const written = Promise.withResolvers<void>();
        // A message waiting for room is dropped when the stream ends, and never reports written: the end
        // releases this wait too (#finish), or the loop would hang and the caller's generator never be closed.
        this.#writeWaiting = written.resolve;
        const tooLarge = connection.sendMessage!(this, payload, written.resolve);
        if (tooLarge > 0) {
          throw new RpcError(
            RpcCode.RESOURCE_EXHAUSTED,
            `A request message of ${this.service}.${this.method} of ${tooLarge} bytes exceeds the frame limit`,
          );
        }
        await written.promise;
        this.#writeWaiting = undefined;
        if (this.#done) break;
      }
    } catch (error) {
      // The caller's iterable threw, or a message could not be sent: the stream fails with that.
      if (!this.#done) this.#giveUp(RpcError.from(error));
    }
    // Stopped early (the stream ended or failed): let the caller's generator run its `finally`.
    try {
      await iterator.return?.();
    } catch { /* its own error: the stream is over anyway */ }
  }

  // Deadline, cancel, a protocol error: stop the attempt in flight (the provider is told) and fail.
  #giveUp(error: RpcError): void {
    if (this.#done) return;
    const connection = this.#connection;
    this.#connection = undefined;
    connection?.cancel(this);
    this.#fail(error);
  }

  // `error`: the stream failed with it; else it ended OK (a client stream's answer may come while its writer is
  // still sending). Either way the writer's wait for credit or for room is released: neither comes any more, and
  // a writer left waiting would never close the caller's generator.
  #finish(error?: RpcError): void {
    this.#done = true;
    this.#credit.fail(error ?? new RpcError(RpcCode.CANCELLED, `The stream ${this.method} ended`));
    const writeWaiting = this.#writeWaiting;
    this.#writeWaiting = undefined;
    writeWaiting?.();
    const loop = this.#router.loop;
    if (this.#deadlineTimer !== undefined) loop.cancel(this.#deadlineTimer);
    if (this.#retryTimer !== undefined) loop.cancel(this.#retryTimer);
    const { signal, controller, parent } = this.#init.options;
    signal?.removeEventListener("abort", this);
    controller?.signal.removeEventListener("abort", this);
    parent?.signal.removeEventListener("abort", this);
  }

  // `fromProvider`: the provider ended the stream with this error, after the messages it sent (the caller's loop
  // gets those first); else the stream is cut off here and what did not reach the loop is dropped.
  #fail(error: RpcError, fromProvider = false): void {
    if (this.#done) return;
    this.#finish(error);
    this.#failure = error;
    if (fromProvider) this.responses?.end(error);
    else this.responses?.fail(error);
    this.#init.options.controller?.setFailed(error.rawMessage, error.code);
    this.#ended?.reject(error);
  }
}
