/**
 * Run a callback in a later turn of the host's event loop, after the I/O that is ready now: a macrotask, where
 * `queueMicrotask` runs before any I/O. What it is for: letting work that arrives one promise step at a time (a
 * stream's messages) gather before it is acted on once (one socket write, one credit frame), at the cost of one
 * turn (a few microseconds). `setImmediate` where the host has it (Node, Bun and Deno 2 all do; `setTimeout(0)`
 * is clamped to milliseconds in some hosts).
 *
 * @module
 */

type Immediate = (callback: () => void) => unknown;

const setImmediateOfHost = (globalThis as { setImmediate?: Immediate }).setImmediate;

/**
 * Run `callback` in a later macrotask.
 *
 * @example
 * ```ts
 * import { nextTurn } from "./next_turn.ts";
 *
 * const order: string[] = [];
 * await new Promise<void>((resolve) => {
 *   nextTurn(() => {
 *     order.push("next turn");
 *     resolve();
 *   });
 *   queueMicrotask(() => order.push("microtask"));
 * });
 * if (order.join() !== "microtask,next turn") throw new Error(order.join());
 * ```
 */
export const nextTurn: (callback: () => void) => void = setImmediateOfHost !== undefined
  ? (callback) => void setImmediateOfHost(callback)
  : (callback) => void setTimeout(callback, 0);
