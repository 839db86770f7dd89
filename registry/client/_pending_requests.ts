/**
 * The requests a registry client waits on, shared by both clients: xids, one timeout each, answers matched by
 * xid, requests made while no connection can carry them held in order until one can, and the failures a lost
 * connection, an expiry or a close brings.
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import type { TimerId } from "../../reactor/timer_queue.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";

/**
 * One request: what it is (for error messages), its packet until it is sent, and how its answer settles it.
 * `Reply` is the decoded answer as the wire protocol hands it over (a frame, a jute reader).
 */
export interface PendingRequest<Reply> {
  readonly xid: number;
  /** For messages: "Cannot <what> as ...". */
  readonly what: string;
  /** The bytes to send, kept while the request waits for a connection. */
  packet: Uint8Array | undefined;
  /** Whether it has gone out on the current connection (only those can be answered, or lost with it). */
  sent: boolean;
  /** Whether it opens or resumes a session (the client handles its refusal where it asked). */
  readonly opensSession: boolean;
  /** When it times out, on the loop's clock. */
  readonly deadlineMs: number;
  /** Turns the answer into the caller's value, synchronously (the answer's bytes are reused afterwards). */
  readonly decode: ((reply: Reply) => unknown) | undefined;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: RegistryError) => void;
  /**
   * Told how the request ended, synchronously and before anything else of the same read is handled: undefined for
   * an answer, else the error (the server's, or a lost connection's, a timeout's, a close's). For the watch a read
   * sets, which must be let go of as soon as the server refuses the read.
   */
  readonly onSettled: ((error: RegistryError | undefined) => void) | undefined;
}

/**
 * The table of pending requests. Called on the client's loop only. Per request it costs one promise; answers are
 * looked up by xid. Not-yet-sent requests stay in creation order (xid order), so a client that holds requests
 * across a reconnect sends them in the order they were made.
 *
 * Timeouts: every request waits the same time, so the table's order (creation order) is also deadline order. One
 * timer, armed for the oldest request's deadline, times out what is due and re-arms for the oldest left: an
 * answered request costs no timer of its own to set and cancel.
 */
export class PendingRequests<Reply> {
  readonly #loop: EventLoop;
  readonly #timeoutMs: number;
  readonly #peer: string;
  #nextXid = 1;
  #requests = new Map<number, PendingRequest<Reply>>();
  #sweep: TimerId | undefined;

  /** `peer` names the server in timeout messages ("the registry", "ZooKeeper"). */
  constructor(loop: EventLoop, timeoutMs: number, peer: string) {
    this.#loop = loop;
    this.#timeoutMs = timeoutMs;
    this.#peer = peer;
  }

  /** Requests waiting for an answer or a connection. */
  get size(): number {
    return this.#requests.size;
  }

  /** The xid for the next request: 1 up to 2^31 - 1, then 1 again (0 and negatives are the server's). */
  nextXid(): number {
    const xid = this.#nextXid;
    this.#nextXid = xid >= 0x7fff_ffff ? 1 : xid + 1;
    return xid;
  }

  /**
   * Wait for the answer to request `xid`, for at most the request timeout (then OPERATION_TIMEOUT). With `sent`
   * false the request waits for {@linkcode PendingRequests.unsent} to hand its `packet` to a connection.
   */
  add<T>(
    xid: number,
    what: string,
    sent: boolean,
    packet?: Uint8Array,
    decode?: (reply: Reply) => T,
    opensSession = false,
    onSettled?: (error: RegistryError | undefined) => void,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const request: PendingRequest<Reply> = {
        xid,
        what,
        packet: sent ? undefined : packet,
        sent,
        opensSession,
        deadlineMs: this.#loop.now() + this.#timeoutMs,
        decode,
        resolve: resolve as (value: unknown) => void,
        reject,
        onSettled,
      };
      this.#requests.set(xid, request);
      this.#sweep ??= this.#loop.runAt(request.deadlineMs, this.#timeOut);
    });
  }

  /** The sent request `xid` answers, taken out of the table (undefined when it timed out or failed already). */
  take(xid: number): PendingRequest<Reply> | undefined {
    const request = this.#requests.get(xid);
    if (request === undefined || !request.sent) return undefined;
    this.#requests.delete(xid);
    return request;
  }

  /** Settle a taken request with its answer; an answer that does not decode is a MARSHALLING_ERROR. */
  settle(request: PendingRequest<Reply>, reply: Reply): void {
    request.onSettled?.(undefined);
    if (request.decode === undefined) {
      request.resolve(reply);
      return;
    }
    let value: unknown;
    try {
      value = request.decode(reply);
    } catch (error) {
      request.reject(
        new RegistryError(RegistryErrorCode.MARSHALLING_ERROR, `Cannot ${request.what}: the answer does not parse`, {
          cause: error,
        }),
      );
      return;
    }
    request.resolve(value);
  }

  /** Fail a taken request with the server's error answer. */
  refuse(request: PendingRequest<Reply>, error: RegistryError): void {
    request.onSettled?.(error);
    request.reject(error);
  }

  /** The requests still to send, in order, marked sent (the caller sends each `packet` now). */
  unsent(): PendingRequest<Reply>[] {
    const unsent: PendingRequest<Reply>[] = [];
    for (const request of this.#requests.values()) {
      if (request.sent) continue;
      request.sent = true;
      unsent.push(request);
    }
    return unsent;
  }

  /**
   * Fail requests with `code` ("Cannot <what> as <why>"): the sent ones, or with `all` the waiting ones too (a
   * lost connection or an expiry fails what went out on it; waiting requests go only at a close).
   */
  fail(code: RegistryErrorCode, why: string, all = false): void {
    const failed: PendingRequest<Reply>[] = [];
    for (const request of this.#requests.values()) {
      if (!request.sent && !all) continue;
      failed.push(request);
    }
    for (const request of failed) this.#requests.delete(request.xid);
    if (this.#requests.size === 0 && this.#sweep !== undefined) {
      this.#loop.cancel(this.#sweep);
      this.#sweep = undefined;
    }
    for (const request of failed) {
      const error = new RegistryError(code, `Cannot ${request.what} as ${why}`);
      request.onSettled?.(error);
      request.reject(error);
    }
  }

  // The oldest request is due: time out every request that is, then wait for the oldest left.
  #timeOut = (): void => {
    this.#sweep = undefined;
    const now = this.#loop.now();
    const due: PendingRequest<Reply>[] = [];
    for (const request of this.#requests.values()) {
      if (request.deadlineMs > now) {
        this.#sweep = this.#loop.runAt(request.deadlineMs, this.#timeOut);
        break;
      }
      due.push(request);
    }
    for (const request of due) this.#requests.delete(request.xid);
    for (const request of due) {
      const error = new RegistryError(
        RegistryErrorCode.OPERATION_TIMEOUT,
        `Cannot ${request.what} as ${this.#peer} did not answer within ${this.#timeoutMs} ms`,
      );
      request.onSettled?.(error);
      request.reject(error);
    }
  };
}
