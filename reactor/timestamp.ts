/**
 * Time formats (muduo's Timestamp): timers and receive times are plain monotonic milliseconds from the loop's clock
 * (`EventLoop.now()`); the wall clock appears only in logs, formatted here.
 *
 * @module
 */

function pad(value: number, width: number): string {
  return String(value).padStart(width, "0");
}

/**
 * Format wall-clock `ms` as muduo does in log lines: `20261124 03:36:40.123000` (local time; UTC when asked).
 *
 * @example
 * ```ts
 * import { formatTimestamp } from "./timestamp.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatTimestamp(Date.UTC(2026, 10, 24, 3, 36, 40, 123), true), "20261124 03:36:40.123000");
 * ```
 */
export function formatTimestamp(ms: number, utc = false): string {
  const date = new Date(ms);
  const [y, mo, d, h, mi, s] = utc
    ? [
      date.getUTCFullYear(),
      date.getUTCMonth() + 1,
      date.getUTCDate(),
      date.getUTCHours(),
      date.getUTCMinutes(),
      date.getUTCSeconds(),
    ]
    : [date.getFullYear(), date.getMonth() + 1, date.getDate(), date.getHours(), date.getMinutes(), date.getSeconds()];
  const micros = Math.floor((ms - Math.floor(ms / 1000) * 1000) * 1000);
  return `${pad(y, 4)}${pad(mo, 2)}${pad(d, 2)} ${pad(h, 2)}:${pad(mi, 2)}:${pad(s, 2)}.${pad(micros, 6)}`;
}

/** The daily log file stem of the seed, `YYYY_MM_DD`, in local time (UTC when asked). */
export function formatDate(ms: number, utc = false): string {
  const date = new Date(ms);
  return utc
    ? `${pad(date.getUTCFullYear(), 4)}_${pad(date.getUTCMonth() + 1, 2)}_${pad(date.getUTCDate(), 2)}`
    : `${pad(date.getFullYear(), 4)}_${pad(date.getMonth() + 1, 2)}_${pad(date.getDate(), 2)}`;
}
