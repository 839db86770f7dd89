/**
 * Picks the backend for the runtime this code runs on: Deno gets the Deno backend; Node and Bun get the Node
 * backend. Anything can override it by passing a backend to `EventLoop`.
 *
 * @module
 */

import { denoBackend } from "./deno.ts";
import type { NetBackend } from "./net_backend.ts";
import { nodeBackend } from "./node.ts";

/**
 * The backend of the current runtime.
 *
 * @example
 * ```ts
 * import { defaultBackend } from "./default.ts";
 *
 * const backend = defaultBackend();
 * if (backend.process.isMain(import.meta)) backend.process.writeStdout(`running on ${backend.name}\n`);
 * ```
 */
export function defaultBackend(): NetBackend {
  return typeof (globalThis as { Deno?: unknown }).Deno !== "undefined" ? denoBackend : nodeBackend;
}
