/**
 * Session liveness (the seed's HeapTimer + HeapHeartbeatCounter): every `heartbeatTimeoutMs` without a sign of
 * life counts one miss, any sign of life resets the count, and at `heartbeatMaxCount` consecutive misses the
 * session expires. One loop timer per session; all of them share the loop's single host timer. A sign of life only
 * records its time (every request is one, so it must cost next to nothing); the timer, when due, starts over from the
 * last sign if there was one since it was armed.
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import type { TimerId } from "../../reactor/timer_queue.ts";

/** Options of {@linkcode SessionTracker}. */
export interface SessionTrackerOptions {
  /** Milliseconds without a heartbeat that count as one miss (the seed's `heartbeatTimeout`). */
  heartbeatTimeoutMs: number;
  /** Consecutive misses that expire a session (the seed's `heartbeatMaxCount`). */
  heartbeatMaxCount: number;
  /**
   * Milliseconds after a sign of life before the first miss period starts: the client's heartbeat interval,
   * since a heartbeat is only missing once it is due. So a session lives `heartbeatMaxCount` periods after its
   * client goes silent, never less.
   * @default {0}
   */
  graceMs?: number;
  /** Told when a session expires; it is no longer tracked by then. */
  onExpire: (sessionId: bigint) => void;
}

/** A session's own liveness rule, where it differs from the tracker's (sessions of another protocol's clients). */
export interface SessionTiming {
  /** Milliseconds without a sign of life that count one miss. */
  readonly heartbeatTimeoutMs: number;
  /** Consecutive misses that expire the session. */
  readonly heartbeatMaxCount: number;
  /** Grace after a sign of life before the first miss period. */
  readonly graceMs: number;
}

interface Tracked {
  misses: number;
  timer: TimerId;
  timing: SessionTiming | undefined;
  /** Signs of life so far, and how many there had been when the timer was armed. */
  signs: number;
  signsAtArm: number;
  /** When the last sign of life came, on the loop's clock. */
  lastSignMs: number;
}

/**
 * Tracks sessions on a loop.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { SessionTracker } from "./session_tracker.ts";
 * import assert from "node:assert/strict";
 *
 * const loop = new EventLoop();
 * const expired = Promise.withResolvers<bigint>();
 * const tracker = new SessionTracker(loop, { heartbeatTimeoutMs: 5, heartbeatMaxCount: 2, onExpire: expired.resolve });
 * tracker.add(1n);
 * assert.equal(await expired.promise, 1n);
 * assert.equal(tracker.size, 0);
 * ```
 */
export class SessionTracker {
  readonly #loop: EventLoop;
  readonly #options: SessionTrackerOptions;
  readonly #sessions = new Map<bigint, Tracked>();

  /** Track sessions on `loop`. */
  constructor(loop: EventLoop, options: SessionTrackerOptions) {
    if (!(options.heartbeatTimeoutMs > 0)) {
      throw new RangeError(
        `Cannot track sessions as 'heartbeatTimeoutMs' must be > 0: current value is ${options.heartbeatTimeoutMs}`,
      );
    }
    if (!Number.isInteger(options.heartbeatMaxCount) || options.heartbeatMaxCount < 1) {
      throw new RangeError(
        `Cannot track sessions as 'heartbeatMaxCount' must be an integer >= 1: current value is ${options.heartbeatMaxCount}`,
      );
    }
    this.#loop = loop;
    this.#options = options;
  }

  /** Sessions tracked. */
  get size(): number {
    return this.#sessions.size;
  }

  /** Whether a session is tracked (alive). */
  has(sessionId: bigint): boolean {
    return this.#sessions.has(sessionId);
  }

  /** Misses counted for a session since its last sign of life (-1 when unknown). */
  misses(sessionId: bigint): number {
    return this.#sessions.get(sessionId)?.misses ?? -1;
  }

  /** Start tracking a session, as if it had just sent a heartbeat; `timing` replaces the tracker's for it. */
  add(sessionId: bigint, timing?: SessionTiming): void {
    this.remove(sessionId);
    const now = this.#loop.now();
    const timer = this.#loop.runAt(now + this.#periodOf(timing) + this.#graceOf(timing), () => this.#due(sessionId));
    this.#sessions.set(sessionId, { misses: 0, timing, timer, signs: 0, signsAtArm: 0, lastSignMs: now });
  }

  /** A sign of life: reset the miss count. Returns false for an unknown session. */
  touch(sessionId: bigint): boolean {
    const tracked = this.#sessions.get(sessionId);
    if (tracked === undefined) return false;
    tracked.misses = 0;
    tracked.signs++;
    tracked.lastSignMs = this.#loop.now();
    return true;
  }

  /** Stop tracking a session (it closed). */
  remove(sessionId: bigint): void {
    const tracked = this.#sessions.get(sessionId);
    if (tracked === undefined) return;
    this.#loop.cancel(tracked.timer);
    this.#sessions.delete(sessionId);
  }

  /** Stop tracking everything. */
  clear(): void {
    for (const tracked of this.#sessions.values()) this.#loop.cancel(tracked.timer);
    this.#sessions.clear();
  }

  #graceOf(timing: SessionTiming | undefined): number {
    return timing?.graceMs ?? this.#options.graceMs ?? 0;
  }

  #periodOf(timing: SessionTiming | undefined): number {
    return timing?.heartbeatTimeoutMs ?? this.#options.heartbeatTimeoutMs;
  }

  // The timer is due: a sign of life since it was armed starts the count over from that sign (its first miss one
  // grace and one period after it); none counts a miss.
  #due(sessionId: bigint): void {
    const tracked = this.#sessions.get(sessionId);
    if (tracked === undefined) return;
    const period = this.#periodOf(tracked.timing);
    if (tracked.signs !== tracked.signsAtArm) {
      tracked.signsAtArm = tracked.signs;
      const dueMs = tracked.lastSignMs + this.#graceOf(tracked.timing) + period;
      tracked.timer = this.#loop.runAt(dueMs, () => this.#due(sessionId));
      return;
    }
    tracked.misses++;
    if (tracked.misses >= (tracked.timing?.heartbeatMaxCount ?? this.#options.heartbeatMaxCount)) {
      this.#sessions.delete(sessionId);
      this.#options.onExpire(sessionId);
      return;
    }
    tracked.timer = this.#loop.runAt(this.#loop.now() + period, () => this.#due(sessionId));
  }
}
