/**
 * Command-line parsing for the framework's programs: Node's `parseArgs`, which Deno and Bun provide too.
 * Re-exported here because only `reactor/backend/` may name `node:` modules.
 *
 * @module
 */

export { parseArgs } from "node:util";
