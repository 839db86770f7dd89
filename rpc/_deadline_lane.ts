/**
 * The deadlines of a channel's calls made with its default timeout, kept as a list in deadline order with one loop
 * timer for the earliest. Calls with one timeout end in about the order they start, so each joins at the tail and
 * leaves from near the head: two pointer updates, where a timer of its own would cost a timer object, a closure and
 * two heap operations per call (a tenth of a caller's CPU at 64 calls in flight went to the deadline timers).
 *
 * The timer is armed for the head's deadline and stays armed when the head leaves: it then fires early, finds
 * nothing due, and is armed again for the new head. It is cancelled when the list runs empty, so an idle channel
 * keeps no timer (nor its process alive).
 *
 * @module
 */

import type { EventLoop } from "../reactor/event_loop.ts";
import type { TimerId } from "../reactor/timer_queue.ts";
import { getLogger } from "../reactor/logger.ts";

// The lane's fields on an entry are keyed by these symbols, so a call handed to a transport does not show them.
/** An entry's deadline, on the loop's clock. */
export const laneDeadline: unique symbol = Symbol("laneDeadline");
/** The next entry in deadline order, while in a lane. */
export const laneNext: unique symbol = Symbol("laneNext");
/** The previous entry, while in a lane. */
export const lanePrev: unique symbol = Symbol("lanePrev");
/** Whether the entry is in a lane now. */
export const inLane: unique symbol = Symbol("inLane");
/** Called when the deadline has passed: the lane has taken the entry out already. */
export const laneExpire: unique symbol = Symbol("laneExpire");

/** A call as a lane holds it (the links are the lane's; the call only keeps them). */
export interface LaneEntry {
  readonly [laneDeadline]: number;
  [laneNext]: LaneEntry | undefined;
  [lanePrev]: LaneEntry | undefined;
  [inLane]: boolean;
  [laneExpire](): void;
}

/**
 * Call deadlines of one timeout, in order, under one timer. Must be used from the loop that made it.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import { DeadlineLane, inLane, laneDeadline, laneExpire, type LaneEntry, laneNext, lanePrev } from "./_deadline_lane.ts";
 * import assert from "node:assert/strict";
 *
 * const loop = new EventLoop();
 * const lane = new DeadlineLane(loop, 5);
 * const expired: string[] = [];
 * const entry = (name: string): LaneEntry => ({
 *   [laneDeadline]: loop.now() + lane.timeoutMs,
 *   [laneNext]: undefined,
 *   [lanePrev]: undefined,
 *   [inLane]: false,
 *   [laneExpire]: () => expired.push(name),
 * });
 * const a = entry("a");
 * lane.add(a);
 * lane.add(entry("b"));
 * lane.remove(a);
 * await new Promise((resolve) => setTimeout(resolve, 20));
 * assert.deepEqual(expired, ["b"]);
 * ```
 */
export class DeadlineLane {
  /** The timeout of the calls this lane holds. */
  readonly timeoutMs: number;
  readonly #loop: EventLoop;
  #head: LaneEntry | undefined;
  #tail: LaneEntry | undefined;
  #timer: TimerId | undefined;
  #timerAtMs = Infinity;

  /** A lane for calls of `timeoutMs` on `loop`. */
  constructor(loop: EventLoop, timeoutMs: number) {
    this.#loop = loop;
    this.timeoutMs = timeoutMs;
  }

  /** Whether no entry is in the lane. */
  get empty(): boolean {
    return this.#head === undefined;
  }

  /** Hold `entry` until it is removed or its deadline passes (then its `expire` is called). */
  add(entry: LaneEntry): void {
    if (entry[inLane]) return;
    // After the last entry that expires no later: the tail, unless calls started out of the order of their clocks.
    let before = this.#tail;
    while (before !== undefined && before[laneDeadline] > entry[laneDeadline]) before = before[lanePrev];
    const after = before === undefined ? this.#head : before[laneNext];
    entry[lanePrev] = before;
    entry[laneNext] = after;
    if (before === undefined) this.#head = entry;
    else before[laneNext] = entry;
    if (after === undefined) this.#tail = entry;
    else after[lanePrev] = entry;
    entry[inLane] = true;
    // The timer is armed no later than the head; armed anew if there is none, or the loop dropped it (`quit` clears
    // every timer).
    if (this.#timer === undefined || !this.#loop.isPending(this.#timer)) this.#arm(this.#head![laneDeadline]);
    else if (entry[laneDeadline] < this.#timerAtMs) this.#arm(entry[laneDeadline]);
  }

  /** Take `entry` out (its call ended); nothing when it is not in the lane. */
  remove(entry: LaneEntry): void {
    if (!entry[inLane]) return;
    this.#unlink(entry);
    if (this.#head === undefined && this.#timer !== undefined) {
      this.#loop.cancel(this.#timer);
      this.#timer = undefined;
      this.#timerAtMs = Infinity;
    }
  }

  #unlink(entry: LaneEntry): void {
    const previous = entry[lanePrev];
    const next = entry[laneNext];
    if (previous === undefined) this.#head = next;
    else previous[laneNext] = next;
    if (next === undefined) this.#tail = previous;
    else next[lanePrev] = previous;
    entry[lanePrev] = undefined;
    entry[laneNext] = undefined;
    entry[inLane] = false;
  }

  #arm(atMs: number): void {
    if (this.#timer !== undefined) this.#loop.cancel(this.#timer);
    this.#timerAtMs = atMs;
    this.#timer = this.#loop.runAt(atMs, this.#fire);
  }

  #fire = (): void => {
    this.#timer = undefined;
    this.#timerAtMs = Infinity;
    const now = this.#loop.now();
    let head = this.#head;
    while (head !== undefined && head[laneDeadline] <= now) {
      this.#unlink(head);
      try {
        head[laneExpire]();
      } catch (error) {
        // One entry that throws must not keep the others from expiring.
        getLogger().error("DeadlineLane: an expiring call threw", { error });
      }
      head = this.#head;
    }
    // An entry added by an expiring call may have armed the timer for itself, past the head.
    if (head !== undefined && head[laneDeadline] < this.#timerAtMs) this.#arm(head[laneDeadline]);
  };
}
