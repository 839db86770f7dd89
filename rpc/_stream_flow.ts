/**
 * Flow control of one stream direction, the same on both sides of a connection (proto/rpc.proto, "Streams"): the
 * sender's credit ({@linkcode SendCredit}), which a writer awaits, and the receiver's inbox
 * ({@linkcode MessageInbox}), which holds what arrived until the application takes it and grants credit back as
 * it does. A message costs its payload's length plus {@linkcode MESSAGE_OVERHEAD_BYTES}, so empty messages are not
 * free, and a receiver holds at most its window, or one message when that message alone is larger.
 *
 * @module
 */

import { nextTurn } from "../reactor/next_turn.ts";
import { copyBytes } from "./_byte_slab.ts";
import { MAX_CREDIT_BYTES, MESSAGE_OVERHEAD_BYTES } from "./_rpc_wire.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";

/** What a message of `payloadLength` bytes costs its receiver's credit. */
export function messageCost(payloadLength: number): number {
  return payloadLength + MESSAGE_OVERHEAD_BYTES;
}

/**
 * The sender's side: how much it may still send, and the one writer waiting for more. A stream has one writer at
 * a time (its generator or the caller's loop awaits each send), so one waiter is enough.
 */
export class SendCredit {
  /** Bytes the peer lets it send now. */
  credit: number;
  /** The peer's whole window, once known (0 until then). */
  window: number;
  #waiting: { cost: number; resolve: () => void; reject: (error: RpcError) => void } | undefined;
  #failure: RpcError | undefined;

  /** Start with `credit` (the peer's window when it is known at once; else 0 and the window comes later). */
  constructor(credit: number, window = credit) {
    this.credit = credit;
    this.window = window;
  }

  /**
   * The peer granted `bytes` more. Returns false when that would take the credit past 2^31 - 1 (a protocol error:
   * the caller ends the stream). The first grant on a side that started with none is the peer's window.
   */
  grant(bytes: number): boolean {
    if (this.credit + bytes > MAX_CREDIT_BYTES) return false;
    if (this.window === 0) this.window = bytes;
    this.credit += bytes;
    const waiting = this.#waiting;
    if (waiting !== undefined && this.#fits(waiting.cost)) {
      this.#waiting = undefined;
      this.credit -= waiting.cost;
      waiting.resolve();
    }
    return true;
  }

  /**
   * Take `cost` bytes of credit: at once when it fits (returns undefined, no promise made), else a promise that
   * resolves once the peer granted enough. A message that costs more than the peer's whole window fits once the
   * sender holds the whole window (all it sent was read): it then takes the credit below zero, and nothing else is
   * sent until the peer read it and granted its cost back.
   */
  take(cost: number): Promise<void> | undefined {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#waiting === undefined && this.#fits(cost)) {
      this.credit -= cost;
      return undefined;
    }
    if (this.#waiting !== undefined) throw new RpcError(RpcCode.INTERNAL, "Two writers on one stream");
    return new Promise((resolve, reject) => this.#waiting = { cost, resolve, reject });
  }

  /** The stream ended: a waiting writer fails with `error`, and so does every later `take`. */
  fail(error: RpcError): void {
    this.#failure ??= error;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.reject(error);
  }

  /** Whether a writer waits for credit. */
  get waiting(): boolean {
    return this.#waiting !== undefined;
  }

  // A window bounds what a receiver holds, not how large one message may be (the frame limit does that): a message
  // larger than the window goes alone, when the receiver holds nothing of this stream's.
  #fits(cost: number): boolean {
    return cost <= this.credit || this.window > 0 && cost > this.window && this.credit >= this.window;
  }
}

/** How an inbox grants credit back to the peer. */
export type GrantCredit = (bytes: number) => void;

/**
 * The receiver's side: messages that arrived and were not taken yet (copied: they arrive as views into the
 * connection's buffer), the end of the stream or its failure, and the credit to give back. Iterating it takes the
 * messages, decoded by `decode`; a message that does not decode fails the iteration with `decodeError`'s error.
 */
export class MessageInbox<T> implements AsyncIterable<T> {
  /** The receive window: the most it lets the peer have outstanding. */
  readonly window: number;
  /** Bytes of credit the peer holds now (granted and not yet used). */
  granted: number;
  /** Messages taken by the application. */
  taken = 0;
  readonly #decode: (payload: Uint8Array) => T;
  readonly #grant: GrantCredit;
  #queue: Uint8Array[] = [];
  #head = 0;
  #unreturned = 0;
  #returnScheduled = false;
  #caughtUpCheck = false;
  #ended = false;
  #endError: unknown = undefined;
  #failure: unknown = undefined;
  #reader: { resolve: (result: IteratorResult<T>) => void; reject: (error: unknown) => void } | undefined;
  #iterating = false;
  /** Told when the application stops reading before the end (`break`, `return`). */
  onAbandon: (() => void) | undefined = undefined;

  /** An inbox with `window` bytes granted to the peer at the start. */
  constructor(window: number, decode: (payload: Uint8Array) => T, grant: GrantCredit) {
    this.window = window;
    this.granted = window;
    this.#decode = decode;
    this.#grant = grant;
  }

  /** Messages waiting to be taken. */
  get buffered(): number {
    return this.#queue.length - this.#head;
  }

  /** The credit the peer held, in words, for the error when it sent past it. */
  get creditHeld(): string {
    return this.granted < 0
      ? "no credit (a message larger than the window is still unread)"
      : `only ${this.granted} bytes of credit granted`;
  }

  /** Whether the stream ended or failed (nothing more will be pushed). */
  get closed(): boolean {
    return this.#ended || this.#failure !== undefined;
  }

  /**
   * A message arrived (a view: copied here). Returns false when it costs more than the credit the peer held, unless
   * the peer held the whole window (a message larger than the window comes alone): it broke flow control, and the
   * message is dropped (the caller ends the stream).
   */
  push(payload: Uint8Array): boolean {
    if (this.closed) return true; // crossed the end on the wire
    const cost = messageCost(payload.length);
    if (cost > this.granted && this.granted < this.window) return false;
    this.granted -= cost;
    const copy = copyBytes(payload); // from a shared slab: a new ArrayBuffer per message cost more than the rest
    const reader = this.#reader;
    if (reader !== undefined) {
      this.#reader = undefined;
      this.#deliver(copy, reader);
      return true;
    }
    this.#queue.push(copy);
    return true;
  }

  /**
   * The peer sent its last message; the iteration ends once the queue is empty, or with `error` then (a stream the
   * peer ended with an error still hands over what arrived before it).
   */
  end(error?: unknown): void {
    if (this.closed) return;
    this.#ended = true;
    this.#endError = error;
    const reader = this.#reader;
    if (reader !== undefined && this.buffered === 0) {
      this.#reader = undefined;
      if (error !== undefined) reader.reject(error);
      else reader.resolve({ value: undefined, done: true });
    }
  }

  /** The stream failed: the iteration throws `error` after nothing more (queued messages are dropped). */
  fail(error: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    this.#queue = [];
    this.#head = 0;
    const reader = this.#reader;
    this.#reader = undefined;
    reader?.reject(error);
  }

  /** The next message, as an iterator's `next` would give it. */
  next(): Promise<IteratorResult<T>> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.buffered > 0) {
      const payload = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined as unknown as Uint8Array;
      if (this.#head > 64 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      return new Promise((resolve, reject) => this.#deliver(payload, { resolve, reject }));
    }
    if (this.#ended) {
      return this.#endError !== undefined
        ? Promise.reject(this.#endError)
        : Promise.resolve({ value: undefined, done: true });
    }
    if (this.#reader !== undefined) return Promise.reject(new TypeError("Cannot read a stream twice at once"));
    return new Promise((resolve, reject) => this.#reader = { resolve, reject });
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.#iterating) throw new TypeError("Cannot iterate a stream's messages more than once");
    this.#iterating = true;
    return {
      next: () => this.next(),
      return: (): Promise<IteratorResult<T>> => {
        if (!this.closed) this.onAbandon?.();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  #deliver(
    payload: Uint8Array,
    reader: { resolve: (result: IteratorResult<T>) => void; reject: (error: unknown) => void },
  ): void {
    this.taken++;
    this.#consumed(messageCost(payload.length));
    let value: T;
    try {
      value = this.#decode(payload);
    } catch (error) {
      reader.reject(error);
      return;
    }
    reader.resolve({ value, done: false });
  }

  // Credit goes back once half the window was consumed (within this turn's microtasks), or once the application
  // caught up with all that arrived and nothing more came by the next turn of the loop: a writer waiting for room
  // for a large message is never left short, and a reader that keeps up does not answer every read with a credit.
  #consumed(cost: number): void {
    this.#unreturned += cost;
    if (this.#returnScheduled || this.closed) return;
    if (this.#unreturned * 2 >= this.window) {
      this.#returnScheduled = true;
      queueMicrotask(this.#returnCredit);
    } else if (this.buffered === 0 && !this.#caughtUpCheck) {
      this.#caughtUpCheck = true;
      nextTurn(() => {
        this.#caughtUpCheck = false;
        if (this.buffered === 0 && !this.#returnScheduled) this.#returnCredit();
      });
    }
  }

  #returnCredit = (): void => {
    this.#returnScheduled = false;
    const bytes = this.#unreturned;
    this.#unreturned = 0;
    if (bytes === 0 || this.closed) return;
    this.granted += bytes;
    this.#grant(bytes);
  };
}
