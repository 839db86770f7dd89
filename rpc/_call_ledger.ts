/**
 * A provider's accounting of its calls: how many are in flight and were served, answers by status code per
 * method, errors by code and limits hit, as `stats()` and `/metrics` report them. Owned by one RpcProvider and
 * shared by its dispatch (`CallDispatcher` and each connection's `ServedCalls`), which tells it of each answer and
 * each settled call; only the provider reads it. Loop-confined, like the provider.
 *
 * @module
 */

import { rpcCodeName } from "./rpc_error.ts";
import type { HandlerEntry } from "./_server_call.ts";

/** Counts of one provider's calls. */
export class CallLedger {
  /** Calls being handled now. */
  inFlight = 0;
  /** Calls settled so far. */
  served = 0;
  /** Streams open now (they count in `inFlight` too). */
  streamsOpen = 0;
  /** Resolved when `inFlight` drops to 0, while a drain waits for it (set by the provider). */
  idle: PromiseWithResolvers<void> | undefined;
  // Answers by status code, per `service.method` (made-up names share "unknown"); codes are named when read.
  readonly #calls = new Map<string, number[]>();
  readonly #errorsByCode = new Map<string, number>();
  readonly #limitsHit = new Map<string, number>();
  // Streaming methods that opened a stream, by `service.method`: their entries count messages in and out.
  readonly #streamMethods = new Map<string, HandlerEntry>();

  /** A call started running. */
  started(): void {
    this.inFlight++;
  }

  /** A stream started on a method served here (it counts as a call in flight too). */
  streamStarted(service: string, entry: HandlerEntry): void {
    this.started();
    this.streamsOpen++;
    const name = `${service}.${entry.method.name}`;
    if (!this.#streamMethods.has(name)) this.#streamMethods.set(name, entry);
  }

  /** A stream settled. */
  streamSettled(): void {
    this.streamsOpen--;
    this.settled();
  }

  /** Stream messages received and sent, by `service.method`. */
  streamMessages(): Record<string, { in: number; out: number }> {
    return Object.fromEntries(
      [...this.#streamMethods].map(([name, entry]) => [name, { in: entry.messagesIn, out: entry.messagesOut }]),
    );
  }

  /** A call settled (answered or not). */
  settled(): void {
    this.inFlight--;
    this.served++;
    if (this.inFlight === 0) this.idle?.resolve();
  }

  /** Count an answer (or a cancelled call) under its method; `entry` undefined for a name not served here. */
  count(service: string, method: string, entry: HandlerEntry | undefined, status: number): void {
    // Only names this provider serves get their own row: callers cannot grow the table with made-up names. A
    // served method keeps its counters on its handler entry, so the hot path builds no key string.
    let byCode = entry?.counts;
    if (byCode === undefined) {
      const key = entry === undefined ? "unknown" : `${service}.${method}`;
      byCode = this.#calls.get(key);
      if (byCode === undefined) this.#calls.set(key, byCode = []);
      if (entry !== undefined) entry.counts = byCode;
    }
    byCode[status] = (byCode[status] ?? 0) + 1;
    if (status !== 0) {
      const name = rpcCodeName(status);
      this.#errorsByCode.set(name, (this.#errorsByCode.get(name) ?? 0) + 1);
    }
  }

  /** Count a limit that was hit (`connections`, `metadata`, ...). */
  limitHit(limit: string): void {
    this.#limitsHit.set(limit, (this.#limitsHit.get(limit) ?? 0) + 1);
  }

  /** Answers by method, then by status name. */
  calls(): Record<string, Record<string, number>> {
    return Object.fromEntries(
      [...this.#calls].map(([name, byCode]) => [
        name,
        Object.fromEntries(
          byCode.flatMap((n, code) => n === undefined ? [] : [[code === 0 ? "OK" : rpcCodeName(code), n]]),
        ),
      ]),
    );
  }

  /** Error answers by status name. */
  errorsByCode(): Record<string, number> {
    return Object.fromEntries(this.#errorsByCode);
  }

  /** Limits hit, by name. */
  limitsHit(): Record<string, number> {
    return Object.fromEntries(this.#limitsHit);
  }
}
