/**
 * Messages per second over a measured window after a warm-up, for the streaming benchmark's clients (the Deno
 * ones import it; bench/grpc_stream_client.mjs has the same rules in a few lines of its own).
 */

/** Counts messages: the first `warmupMs` are not measured, then `seconds` are. */
export class RateMeter {
  readonly #warmupMs: number;
  readonly #measureMs: number;
  readonly #startedAt = performance.now();
  #count = 0;
  #uncheckedCount = 0;
  #measureFrom = -1;
  #countFrom = 0;
  #rate: number | undefined;

  constructor(warmupMs: number, seconds: number) {
    this.#warmupMs = warmupMs;
    this.#measureMs = seconds * 1000;
  }

  /** `n` more messages arrived. Returns true once the window is over (the rate is known). */
  add(n: number): boolean {
    this.#count += n;
    this.#uncheckedCount += n;
    // The clock every 64 messages: cheap next to a message, and fine-grained enough for windows of seconds.
    if (this.#uncheckedCount < 64) return false;
    this.#uncheckedCount = 0;
    return this.#check();
  }

  /** The stream ended: the rate over what was measured (throws when the warm-up never ended). */
  rate(): number {
    if (this.#rate === undefined && !this.#check()) {
      if (this.#measureFrom < 0) throw new Error(`The stream ended during the warm-up, after ${this.#count} messages`);
      this.#rate = (this.#count - this.#countFrom) / ((performance.now() - this.#measureFrom) / 1000);
    }
    return this.#rate!;
  }

  #check(): boolean {
    if (this.#rate !== undefined) return true;
    const now = performance.now();
    if (this.#measureFrom < 0) {
      if (now - this.#startedAt >= this.#warmupMs) {
        this.#measureFrom = now;
        this.#countFrom = this.#count;
      }
      return false;
    }
    if (now - this.#measureFrom < this.#measureMs) return false;
    this.#rate = (this.#count - this.#countFrom) / ((now - this.#measureFrom) / 1000);
    return true;
  }
}
