/**
 * A request's body as its handler reads it: an async iterable of byte chunks, delivered as they arrive and never
 * gathered whole. Reading is what lets more be read: the connection takes body bytes off the socket only while
 * fewer than `maxBufferedBodyBytes` wait here, so a handler that does not read stalls the client, not memory.
 *
 * @module
 */

import { Http1Error, Http1ErrorCode } from "./http1_error.ts";
import type { HttpHeaders } from "./http_headers.ts";

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };
const MAX_BUFFERED_CHUNKS = 256;

/**
 * The body of one request. One reader at a time: iterate it once (a second iteration continues where the first
 * stopped), or call {@linkcode Http1RequestBody.bytes} / {@linkcode Http1RequestBody.text}. Breaking out of the
 * iteration abandons the rest, which the connection then discards or closes on (see `maxDrainBytes`).
 *
 * The reader sees an {@linkcode Http1Error} if the body breaks the rules (a bad chunk, too slow, too large) and
 * `connection_closed` if the client went away.
 *
 * @example Read an upload as it arrives
 * ```ts
 * import type { Http1RequestBody } from "./http1_request_body.ts";
 *
 * async function countBytes(body: Http1RequestBody): Promise<number> {
 *   let total = 0;
 *   for await (const chunk of body) total += chunk.length;
 *   return total;
 * }
 * ```
 */
export class Http1RequestBody implements AsyncIterable<Uint8Array> {
  readonly #maxBufferedBytes: number;
  readonly #demand: () => void;
  readonly #chunks: Uint8Array[] = [];
  #bufferedBytes = 0;
  #bytesRead = 0;
  #ended = false;
  #error: Http1Error | undefined;
  #trailers: HttpHeaders | undefined;
  #waiter: PromiseWithResolvers<IteratorResult<Uint8Array>> | undefined;
  #started = false;
  #abandoned = false;

  /**
   * Internal: created by Http1Connection, which is told through `demand` whenever the reader takes bytes or first
   * asks for them (the moment to send `100 Continue`), and then feeds it with `push`, `end` and `fail`.
   */
  constructor(demand: () => void, maxBufferedBytes: number) {
    this.#demand = demand;
    this.#maxBufferedBytes = maxBufferedBytes;
  }

  /** Bytes received and waiting for the reader. */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /** Bytes the reader has taken. */
  get bytesRead(): number {
    return this.#bytesRead;
  }

  /** Whether the reader has asked for the body (or part of it) at least once. */
  get started(): boolean {
    return this.#started;
  }

  /** Whether the whole body has arrived (it may not all have been read). */
  get complete(): boolean {
    return this.#ended;
  }

  /** Whether the reader gave up on the rest (broke out of its loop). */
  get abandoned(): boolean {
    return this.#abandoned;
  }

  /** The trailer fields of a chunked body, once it is complete (empty when it had none). */
  get trailers(): HttpHeaders | undefined {
    return this.#trailers;
  }

  /** Internal: how many more bytes the connection may push now (0: the reader is behind, or wants no more). */
  get room(): number {
    if (this.#ended || this.#abandoned || this.#error !== undefined) return 0;
    // Bounded in count too: a body of 1-byte chunks costs an object each.
    if (this.#chunks.length >= MAX_BUFFERED_CHUNKS) return 0;
    return Math.max(0, this.#maxBufferedBytes - this.#bufferedBytes);
  }

  /** The chunks as they arrive. */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: () => this.#next(),
      return: () => {
        this.abandon();
        return Promise.resolve(DONE);
      },
    };
  }

  /**
   * The whole body in one array; an Http1Error `body_too_large` (413) past `maxBytes`.
   *
   * @example
   * ```ts
   * import type { Http1RequestBody } from "./http1_request_body.ts";
   *
   * const readJson = async (body: Http1RequestBody) => JSON.parse(await body.text(1024 * 1024));
   * ```
   */
  async bytes(maxBytes: number = Number.MAX_SAFE_INTEGER): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for await (const chunk of this) {
      total += chunk.length;
      if (total > maxBytes) {
        throw new Http1Error(Http1ErrorCode.BODY_TOO_LARGE, `Body is over the limit of ${maxBytes} bytes`);
      }
      chunks.push(chunk);
    }
    if (chunks.length === 1) return chunks[0] as Uint8Array;
    const whole = new Uint8Array(total);
    let offset = 0;
    for (const chunk of chunks) {
      whole.set(chunk, offset);
      offset += chunk.length;
    }
    return whole;
  }

  /** The whole body as UTF-8 text (malformed sequences replaced); `body_too_large` past `maxBytes`. */
  async text(maxBytes?: number): Promise<string> {
    return new TextDecoder().decode(await this.bytes(maxBytes));
  }

  /** Internal: body bytes arrived (dropped once abandoned). */
  push(chunk: Uint8Array): void {
    if (this.#abandoned || this.#ended || this.#error !== undefined) return;
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      this.#bytesRead += chunk.length;
      waiter.resolve({ done: false, value: chunk });
      return;
    }
    this.#chunks.push(chunk);
    this.#bufferedBytes += chunk.length;
  }

  /** Internal: the body is complete. */
  end(trailers: HttpHeaders | undefined): void {
    if (this.#ended || this.#error !== undefined) return;
    this.#ended = true;
    this.#trailers = trailers;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve(DONE);
  }

  /** Internal: the body broke the rules, or the connection went away; the reader gets `error` from now on. */
  fail(error: Http1Error): void {
    if (this.#ended || this.#error !== undefined) return;
    this.#error = error;
    this.#chunks.length = 0;
    this.#bufferedBytes = 0;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(error);
  }

  /** Give up on the rest of the body: what is buffered is dropped, what comes later is not delivered. */
  abandon(): void {
    if (this.#abandoned) return;
    this.#abandoned = true;
    this.#chunks.length = 0;
    this.#bufferedBytes = 0;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve(DONE);
    this.#demand();
  }

  #next(): Promise<IteratorResult<Uint8Array>> {
    this.#started = true;
    if (this.#error !== undefined) return Promise.reject(this.#error);
    const chunk = this.#chunks.shift();
    if (chunk !== undefined) {
      this.#bufferedBytes -= chunk.length;
      this.#bytesRead += chunk.length;
      this.#demand();
      return Promise.resolve({ done: false, value: chunk });
    }
    if (this.#ended || this.#abandoned) return Promise.resolve(DONE);
    if (this.#waiter !== undefined) return this.#waiter.promise;
    this.#waiter = Promise.withResolvers();
    const promise = this.#waiter.promise;
    this.#demand();
    return promise;
  }
}
