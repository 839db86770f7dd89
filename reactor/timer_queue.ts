/**
 * The timer queue: muduo's timerfd-backed TimerQueue, carried over as a min-heap of timers armed with ONE host
 * timer for the earliest expiry, so 100k timers (sessions, call deadlines) cost one `setTimeout`.
 *
 * A timer's handle is the timer itself (as muduo's TimerId holds the Timer), not a number looked up in a Map:
 * call deadlines add and cancel a timer per call, and churning a Map that holds young objects gets every one of
 * them promoted to the old generation (a Map's retired hash tables keep the entries they held reachable from
 * old space), which made minor GCs copy the whole in-flight working set.
 *
 * @module
 */

/**
 * Identifies a timer for {@linkcode TimerQueue.cancel}: an opaque handle, valid for the queue that made it.
 *
 * @example
 * ```ts
 * import { EventLoop } from "./event_loop.ts";
 * import type { TimerId } from "./timer_queue.ts";
 *
 * const loop = new EventLoop();
 * const timer: TimerId = loop.runAfter(1_000, () => console.log("never"));
 * loop.cancel(timer);
 * ```
 */
export interface TimerId {
  /** A compile-time brand only (no such property exists at run time): a TimerId is not any object. */
  readonly __brand: "TimerId";
}

/**
 * A function run when a timer expires.
 *
 * @example
 * ```ts
 * import { EventLoop } from "./event_loop.ts";
 * import type { TimerCallback } from "./timer_queue.ts";
 *
 * const loop = new EventLoop();
 * const tick: TimerCallback = () => loop.quit();
 * loop.runAfter(10, tick);
 * await loop.loop();
 * ```
 */
export type TimerCallback = () => void;

/**
 * The host's one-shot timer, injectable so tests can count how many are armed. The default uses the global
 * `setTimeout`/`clearTimeout`, which every runtime has.
 *
 * @example
 * ```ts
 * import { EventLoop } from "./event_loop.ts";
 * import type { HostTimer } from "./timer_queue.ts";
 *
 * // Count the host timers a loop arms (however many timers it holds, it arms one for the earliest).
 * let armed = 0;
 * const hostTimer: HostTimer = {
 *   set: (callback, delayMs) => (armed++, setTimeout(callback, delayMs)),
 *   clear: (handle) => clearTimeout(handle as number),
 * };
 * const loop = new EventLoop({ hostTimer });
 * ```
 */
export interface HostTimer {
  /** Arm a one-shot timer firing `callback` after `delayMs`. */
  set(callback: () => void, delayMs: number): unknown;
  /** Disarm a timer returned by `set`. */
  clear(handle: unknown): void;
  /**
   * Whether an armed timer keeps the process alive (Node's `ref`/`unref`). Optional: without it an empty queue
   * disarms its host timer instead of keeping it, unreferenced, for the next timer.
   */
  setReferenced?(handle: unknown, referenced: boolean): boolean;
}

/**
 * The global `setTimeout`/`clearTimeout` as a {@linkcode HostTimer}, with `ref`/`unref` where the runtime's
 * timers have them (Deno 2, Node and Bun all return Node-style Timeout objects).
 */
export const globalHostTimer: HostTimer = {
  set: (callback, delayMs) => setTimeout(callback, delayMs),
  clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  setReferenced: (handle, referenced) => {
    const timeout = handle as { ref?: () => unknown; unref?: () => unknown };
    if (typeof timeout.ref !== "function" || typeof timeout.unref !== "function") return false;
    if (referenced) timeout.ref();
    else timeout.unref();
    return true;
  },
};

/** Options of {@linkcode TimerQueue}. */
export interface TimerQueueOptions {
  /**
   * The host timer used to wake up for the earliest expiry.
   * @default {globalHostTimer}
   */
  hostTimer?: HostTimer;
  /**
   * The monotonic clock, in milliseconds.
   * @default {() => performance.now()}
   */
  nowMs?: () => number;
  /**
   * Called with whatever a timer callback throws; the queue keeps running.
   * @default {rethrows asynchronously, so the runtime reports it}
   */
  onError?: (error: unknown) => void;
}

const NO_CALLBACK: TimerCallback = () => {};

/**
 * The longest delay a host timer takes as given: 2^31 - 1 ms (about 24.8 days). Browsers, Node, Deno and Bun store
 * the delay in a signed 32-bit integer and treat anything longer as 1 ms, so a far timer armed as it is would wake
 * the queue every millisecond. The queue arms at most this long and re-arms on waking until the timer is due.
 */
export const MAX_HOST_TIMER_DELAY_MS = 2 ** 31 - 1;

// The handle users hold is this object; they see only the TimerId brand.
class Timer {
  declare readonly __brand: "TimerId";
  readonly queue: TimerQueue;
  readonly sequence: number;
  when: number;
  readonly intervalMs: number;
  // Dropped once the timer is done, so a handle kept by its owner does not keep the callback's closure alive.
  callback: TimerCallback;
  /** Position in the heap array, or -1 when not queued (done, cancelled, or taken out to run). */
  heapIndex = -1;
  /** Pending: not yet run (one-shot) or not cancelled (repeating). */
  active = true;

  // Positional: one is made per timer (every call's deadline), and only TimerQueue#insert makes them.
  constructor(queue: TimerQueue, sequence: number, when: number, intervalMs: number, callback: TimerCallback) {
    this.queue = queue;
    this.sequence = sequence;
    this.when = when;
    this.intervalMs = intervalMs;
    this.callback = callback;
  }
}

/**
 * A min-heap of timers ordered by expiry time (ties fire in the order they were added).
 *
 * Not thread-safe in muduo's sense: use it from the isolate that created it (there is no other way in JS).
 *
 * @example Run a callback after a delay
 * ```ts
 * import { TimerQueue } from "./timer_queue.ts";
 * import assert from "node:assert/strict";
 *
 * const queue = new TimerQueue();
 * const fired = await new Promise<string>((resolve) => queue.add(() => resolve("fired"), 5));
 * assert.equal(fired, "fired");
 * assert.equal(queue.size, 0);
 * ```
 */
export class TimerQueue {
  #heap: Timer[] = [];
  #nextSequence = 0;
  #hostTimer: HostTimer;
  #nowMs: () => number;
  #onError: (error: unknown) => void;
  #armedHandle: unknown = undefined;
  #armedWhen = Infinity;
  #unreferenced = false;
  #running: Timer | undefined;
  #runningCancelled = false;

  /** Create an empty queue; nothing is armed until the first timer is added. */
  constructor(options: TimerQueueOptions = {}) {
    this.#hostTimer = options.hostTimer ?? globalHostTimer;
    this.#nowMs = options.nowMs ?? (() => performance.now());
    this.#onError = options.onError ?? ((error) =>
      queueMicrotask(() => {
        throw error;
      }));
  }

  /** The number of pending timers. */
  get size(): number {
    return this.#heap.length;
  }

  /**
   * Whether a host timer is armed for pending timers (at most one ever is; one kept unreferenced for later, while
   * the queue is empty, does not count).
   */
  get armed(): boolean {
    return this.#armedHandle !== undefined && !this.#unreferenced;
  }

  /**
   * Run `callback` after `delayMs` milliseconds, then every `intervalMs` if it is greater than 0.
   *
   * @param callback The function to run.
   * @param delayMs Milliseconds from now; negative values count as 0.
   * @param intervalMs Repeat period in milliseconds; 0 for a one-shot timer.
   * @returns The timer's id, for {@linkcode TimerQueue.cancel}.
   */
  add(callback: TimerCallback, delayMs: number, intervalMs = 0): TimerId {
    if (!Number.isFinite(delayMs)) {
      throw new RangeError(`Cannot add timer as 'delayMs' must be a finite number: current value is ${delayMs}`);
    }
    if (!Number.isFinite(intervalMs) || intervalMs < 0) {
      throw new RangeError(
        `Cannot add timer as 'intervalMs' must be a finite number >= 0: current value is ${intervalMs}`,
      );
    }
    return this.#insert(this.#nowMs() + Math.max(0, delayMs), intervalMs, callback);
  }

  /**
   * Run `callback` once at `whenMs` on the queue's clock (a time already past runs at the next expiry). Saves
   * reading the clock when the caller has the time at hand, as a call's deadline does.
   *
   * @returns The timer's id, for {@linkcode TimerQueue.cancel}.
   */
  addAt(callback: TimerCallback, whenMs: number): TimerId {
    if (!Number.isFinite(whenMs)) {
      throw new RangeError(`Cannot add timer as 'whenMs' must be a finite number: current value is ${whenMs}`);
    }
    return this.#insert(whenMs, 0, callback);
  }

  #insert(whenMs: number, intervalMs: number, callback: TimerCallback): Timer {
    const timer = new Timer(this, this.#nextSequence++, whenMs, intervalMs, callback);
    this.#push(timer);
    this.#arm();
    return timer;
  }

  /**
   * Whether a timer of this queue is still to run: not yet run (a one-shot; inside its own callback it still counts),
   * not cancelled, and not dropped by {@linkcode TimerQueue.clear}.
   */
  isPending(id: TimerId): boolean {
    const timer = id as Timer;
    return timer instanceof Timer && timer.queue === this && timer.active;
  }

  /**
   * Cancel a timer. Cancelling an expired, already-cancelled or another queue's timer does nothing; a repeating
   * timer may cancel itself from its own callback.
   *
   * @returns Whether a pending timer was cancelled.
   */
  cancel(id: TimerId): boolean {
    const timer = id as Timer;
    if (!(timer instanceof Timer) || timer.queue !== this || !timer.active) return false;
    timer.active = false;
    timer.callback = NO_CALLBACK;
    if (timer === this.#running) {
      this.#runningCancelled = true;
      return true;
    }
    if (timer.heapIndex >= 0) this.#removeAt(timer.heapIndex);
    // A host timer armed for an earlier root stays armed: it wakes up, finds nothing due and re-arms. That is
    // cheaper than re-arming on every cancel, which heartbeat resets do constantly. With no timer left it stays
    // armed too, but unreferenced (it must not keep the process alive): calls that each set and cancel a deadline
    // would otherwise make and clear a host timer (1.6 us in Deno) whenever the queue runs empty.
    if (this.#heap.length === 0) this.#release();
    return true;
  }

  /** Cancel every timer and disarm the host timer. The queue stays usable. */
  clear(): void {
    for (const timer of this.#heap) {
      timer.heapIndex = -1;
      timer.active = false;
      timer.callback = NO_CALLBACK;
    }
    this.#heap = [];
    if (this.#running !== undefined) {
      this.#running.active = false;
      this.#runningCancelled = true;
    }
    this.#disarm();
  }

  #arm(): void {
    const root = this.#heap[0];
    if (root === undefined) {
      this.#disarm();
      return;
    }
    if (this.#armedHandle !== undefined && this.#armedWhen <= root.when) {
      if (this.#unreferenced) this.#reference(true);
      return;
    }
    this.#disarm();
    const now = this.#nowMs();
    const delayMs = Math.min(Math.max(0, root.when - now), MAX_HOST_TIMER_DELAY_MS);
    // A clamped host timer wakes before the root is due: #handleExpiry then finds nothing due and arms again.
    this.#armedWhen = Math.min(root.when, now + delayMs);
    this.#armedHandle = this.#hostTimer.set(() => this.#handleExpiry(), delayMs);
  }

  #disarm(): void {
    if (this.#armedHandle === undefined) return;
    this.#hostTimer.clear(this.#armedHandle);
    this.#armedHandle = undefined;
    this.#armedWhen = Infinity;
    this.#unreferenced = false;
  }

  // The queue ran empty: keep the host timer for the next timer if it can stop keeping the process alive.
  #release(): void {
    if (this.#armedHandle === undefined || this.#unreferenced) return;
    if (!this.#reference(false)) this.#disarm();
  }

  #reference(referenced: boolean): boolean {
    const done = this.#hostTimer.setReferenced?.(this.#armedHandle, referenced) ?? false;
    if (done) this.#unreferenced = !referenced;
    return done;
  }

  #handleExpiry(): void {
    this.#armedHandle = undefined;
    this.#armedWhen = Infinity;
    this.#unreferenced = false;
    // Timers that are due now run in this round; those added by callbacks run in a later round even when their
    // delay is 0, so a callback that re-adds itself cannot starve I/O.
    const now = this.#nowMs();
    const due: Timer[] = [];
    while (this.#heap.length > 0 && this.#heap[0]!.when <= now) {
      due.push(this.#removeAt(0));
    }
    for (const timer of due) {
      if (!timer.active) continue; // cancelled by an earlier callback of this round
      this.#running = timer;
      this.#runningCancelled = false;
      try {
        timer.callback();
      } catch (error) {
        this.#onError(error);
      }
      this.#running = undefined;
      if (timer.intervalMs > 0 && !this.#runningCancelled) {
        timer.when = now + timer.intervalMs;
        this.#push(timer);
      } else if (!this.#runningCancelled) {
        timer.active = false;
        timer.callback = NO_CALLBACK;
      }
    }
    this.#arm();
  }

  // --- the heap: an array with each timer remembering its index, so cancel is O(log n) ---

  #less(a: Timer, b: Timer): boolean {
    return a.when < b.when || (a.when === b.when && a.sequence < b.sequence);
  }

  #push(timer: Timer): void {
    timer.heapIndex = this.#heap.length;
    this.#heap.push(timer);
    this.#siftUp(timer.heapIndex);
  }

  #removeAt(index: number): Timer {
    const heap = this.#heap;
    const removed = heap[index]!;
    const last = heap.pop()!;
    if (index < heap.length) {
      heap[index] = last;
      last.heapIndex = index;
      this.#siftDown(index);
      this.#siftUp(last.heapIndex);
    }
    removed.heapIndex = -1;
    return removed;
  }

  #siftUp(index: number): void {
    const heap = this.#heap;
    const timer = heap[index]!;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex]!;
      if (!this.#less(timer, parent)) break;
      heap[index] = parent;
      parent.heapIndex = index;
      index = parentIndex;
    }
    heap[index] = timer;
    timer.heapIndex = index;
  }

  #siftDown(index: number): void {
    const heap = this.#heap;
    const length = heap.length;
    const timer = heap[index]!;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      let child = left;
      if (right < length && this.#less(heap[right]!, heap[left]!)) child = right;
      const smaller = heap[child]!;
      if (!this.#less(smaller, timer)) break;
      heap[index] = smaller;
      smaller.heapIndex = index;
      index = child;
    }
    heap[index] = timer;
    timer.heapIndex = index;
  }
}
