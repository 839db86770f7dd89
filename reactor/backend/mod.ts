/**
 * Runtime backends: the one place that names Deno, Node or Bun. {@linkcode defaultBackend} picks the current
 * runtime's; pass another to `EventLoop` to override it.
 *
 * @module
 */
export * from "./net_backend.ts";
export { denoBackend } from "./deno.ts";
export { nodeBackend } from "./node.ts";
export { defaultBackend } from "./default.ts";
export { parseArgs } from "./parse_args.ts";
