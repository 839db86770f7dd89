/**
 * The event loop: muduo's EventLoop for a JavaScript isolate. The runtime already polls I/O, so this class keeps
 * muduo's *job*: it owns the timers, the deferred-functor queue and the backend that every socket of the loop
 * uses, and `loop()` runs until `quit()`.
 *
 * @module
 */

import type { NetBackend } from "./backend/net_backend.ts";
import { defaultBackend } from "./backend/default.ts";
import { getLogger } from "./logger.ts";
import { type HostTimer, type TimerCallback, type TimerId, TimerQueue } from "./timer_queue.ts";

/**
 * Options of {@linkcode EventLoop}.
 *
 * @example
 * ```ts
 * import { denoBackend } from "./backend/deno.ts";
 * import { EventLoop } from "./event_loop.ts";
 *
 * const loop = new EventLoop({ backend: denoBackend, name: "main" });
 * ```
 */
export interface EventLoopOptions {
  /**
   * The runtime backend all sockets of this loop use.
   * @default {defaultBackend()}
   */
  backend?: NetBackend;
  /**
   * A name for logs.
   * @default {"loop"}
   */
  name?: string;
  /**
   * The host timer behind the TimerQueue (tests inject a counting one).
   * @default {the backend's hostTimer, else setTimeout/clearTimeout}
   */
  hostTimer?: HostTimer;
}

let currentLoop: EventLoop | undefined;

/**
 * One event loop per isolate (the main thread or a Worker): muduo's "one loop per thread".
 *
 * All methods must be called from the isolate that owns the loop, which in JavaScript is always the case;
 * `runInLoop` therefore runs at once and `queueInLoop` defers to just after the current callback returns.
 *
 * @example Timers and deferred work
 * ```ts
 * import { EventLoop } from "./event_loop.ts";
 * import assert from "node:assert/strict";
 *
 * const loop = new EventLoop();
 * const order: string[] = [];
 * loop.runAfter(5, () => {
 *   order.push("timer");
 *   loop.quit();
 * });
 * loop.queueInLoop(() => order.push("queued"));
 * order.push("now");
 * await loop.loop();
 * assert.deepEqual(order, ["now", "queued", "timer"]);
 * ```
 */
export class EventLoop {
  /** The backend every socket of this loop uses. */
  readonly backend: NetBackend;
  /** The loop's name, for logs. */
  readonly name: string;
  #timers: TimerQueue;
  #pending: Array<() => void> = [];
  #flushScheduled = false;
  #looping = false;
  #quit = false;
  #resolveLoop: (() => void) | undefined;

  /** Create a loop. Most programs use {@linkcode EventLoop.current} instead. */
  constructor(options: EventLoopOptions = {}) {
    this.backend = options.backend ?? defaultBackend();
    this.name = options.name ?? "loop";
    this.#timers = new TimerQueue({
      hostTimer: options.hostTimer ?? this.backend.hostTimer,
      onError: (error) => this.#reportError("timer callback", error),
    });
  }

  /** The isolate's default loop, created on first use with the default backend. */
  static current(): EventLoop {
    currentLoop ??= new EventLoop({ name: "main" });
    return currentLoop;
  }

  /** Whether `loop()` is running (it has been called and `quit()` has not). */
  get looping(): boolean {
    return this.#looping;
  }

  /** Whether `quit()` has been called. */
  get quitting(): boolean {
    return this.#quit;
  }

  /** The number of pending timers. */
  get timerCount(): number {
    return this.#timers.size;
  }

  /** Monotonic time in milliseconds (fractional), the clock of the loop's timers. */
  now(): number {
    return performance.now();
  }

  /**
   * Run until {@linkcode EventLoop.quit}. I/O and timers are dispatched by the runtime meanwhile; the promise
   * only marks the loop's lifetime, as muduo's `loop()` call does.
   */
  loop(): Promise<void> {
    if (this.#looping) {
      return Promise.reject(new TypeError(`Cannot run loop '${this.name}' as it is already looping`));
    }
    this.#looping = true;
    this.#quit = false;
    return new Promise<void>((resolve) => {
      this.#resolveLoop = resolve;
    });
  }

  /**
   * Stop the loop: cancel every timer and resolve `loop()`. Work queued with `queueInLoop` before the call still
   * runs. Safe to call more than once and before `loop()`.
   */
  quit(): void {
    this.#quit = true;
    this.#timers.clear();
    this.#looping = false;
    const resolve = this.#resolveLoop;
    this.#resolveLoop = undefined;
    resolve?.();
  }

  /** Run `callback` in the loop: at once, since the caller is always in the loop's isolate. */
  runInLoop(callback: () => void): void {
    callback();
  }

  /**
   * Run `callback` just after the current callback returns (in a microtask), in FIFO order. Use it to tear down
   * an object from inside one of its own callbacks.
   */
  queueInLoop(callback: () => void): void {
    this.#pending.push(callback);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#doPendingFunctors());
    }
  }

  /** Run `callback` at monotonic time `timeMs` (see {@linkcode EventLoop.now}). */
  runAt(timeMs: number, callback: TimerCallback): TimerId {
    return this.#timers.addAt(callback, timeMs);
  }

  /** Run `callback` once after `delayMs` milliseconds. */
  runAfter(delayMs: number, callback: TimerCallback): TimerId {
    return this.#timers.add(callback, delayMs);
  }

  /** Run `callback` every `intervalMs` milliseconds, the first time after one interval. */
  runEvery(intervalMs: number, callback: TimerCallback): TimerId {
    if (!(intervalMs > 0)) {
      throw new RangeError(`Cannot run timer as 'intervalMs' must be > 0: current value is ${intervalMs}`);
    }
    return this.#timers.add(callback, intervalMs, intervalMs);
  }

  /**
   * Whether a timer is still to run: not run yet (a one-shot counts as pending inside its own callback), cancelled, or
   * dropped by {@linkcode EventLoop.quit}.
   */
  isPending(timerId: TimerId): boolean {
    return this.#timers.isPending(timerId);
  }

  /** Cancel a timer; unknown or expired ids are ignored. Returns whether a pending timer was cancelled. */
  cancel(timerId: TimerId): boolean {
    return this.#timers.cancel(timerId);
  }

  #doPendingFunctors(): void {
    // Swap first (muduo's trick): functors queued by these functors run in the next microtask, so one that
    // keeps re-queueing itself cannot hold the loop forever inside this call.
    const functors = this.#pending;
    this.#pending = [];
    this.#flushScheduled = false;
    for (const functor of functors) {
      try {
        functor();
      } catch (error) {
        this.#reportError("queued functor", error);
      }
    }
  }

  #reportError(where: string, error: unknown): void {
    getLogger().error(`Uncaught error in ${where} of loop '${this.name}'`, { error });
  }
}
