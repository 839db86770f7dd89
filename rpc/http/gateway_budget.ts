/**
 * A count of bytes held for all of a gateway's requests together (bodies gathered before the call runs, partial
 * stream messages), against one cap: the gateway's counterpart of the TCP port's `maxBufferedFrameBytes`, so that
 * many clients each sending a large message at once cannot add up to unbounded memory.
 *
 * @module
 */

/**
 * Bytes held, reserved before they are kept and released when let go. Loop-confined.
 *
 * @example
 * ```ts
 * import { ByteBudget } from "./gateway_budget.ts";
 * import assert from "node:assert/strict";
 *
 * const budget = new ByteBudget(100);
 * assert.ok(budget.reserve(60));
 * assert.ok(!budget.reserve(60)); // would pass the cap: nothing is taken
 * budget.release(60);
 * assert.equal(budget.held, 0);
 * ```
 */
export class ByteBudget {
  /** The most that may be held at once. */
  readonly maxBytes: number;
  #held = 0;

  /** A budget of `maxBytes`. */
  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  /** Bytes held now. */
  get held(): number {
    return this.#held;
  }

  /** Take `bytes` if they fit under the cap (true), else take nothing (false). */
  reserve(bytes: number): boolean {
    if (this.#held + bytes > this.maxBytes) return false;
    this.#held += bytes;
    return true;
  }

  /** Give back `bytes` reserved before. */
  release(bytes: number): void {
    this.#held = Math.max(0, this.#held - bytes);
  }
}
