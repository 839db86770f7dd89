/**
 * Command-line parsing for the framework's programs: Node's `parseArgs`, which Deno and Bun provide too.
 * Re-exported here because only `reactor/backend/` may name `node:` modules.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { defaultBackend } from "./default.ts";
import type { ProcessBackend } from "./net_backend.ts";

export { parseArgs };

/**
 * The exit status of a program stopped by its command line or config file: 2, as `getopt`-style tools give it (the
 * registry, its CLI, the repair command, the code generator and the examples all do).
 *
 * @example
 * ```ts
 * import { USAGE_EXIT_STATUS } from "./parse_args.ts";
 *
 * const wrongUsage = (code: number) => code === USAGE_EXIT_STATUS;
 * ```
 */
export const USAGE_EXIT_STATUS = 2;

/**
 * `parseArgs` for a program's entry point: a command line it refuses (an unknown option, an option without its
 * value, an unexpected argument) is written to stderr as one line naming the option, and the process exits with
 * {@linkcode USAGE_EXIT_STATUS}. Other errors (a wrong `config`) are thrown.
 *
 * @example
 * ```ts
 * import { parseArgsOrExit } from "./parse_args.ts";
 *
 * const { values } = parseArgsOrExit({ args: ["--port", "2007"], options: { port: { type: "string" } } });
 * ```
 */
export function parseArgsOrExit<T extends ParseArgsConfig>(
  config: T,
  process: ProcessBackend = defaultBackend().process,
): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    if (!String((error as { code?: unknown }).code).startsWith("ERR_PARSE_ARGS_")) throw error;
    process.writeStderr(`Cannot read the command line: ${(error as Error).message}\n`);
    return process.exit(USAGE_EXIT_STATUS);
  }
}
