/**
 * A config file or command line a program cannot run with, and how a program reports one: a single line on stderr
 * naming the key (or option) and the file, then exit status 2, the status every program here uses for usage errors.
 *
 * @module
 */

import { defaultBackend } from "../reactor/backend/default.ts";
import type { NetBackend, ProcessBackend } from "../reactor/backend/net_backend.ts";
import { USAGE_EXIT_STATUS } from "../reactor/backend/parse_args.ts";
import { parseJsonText } from "../reactor/parse_json_text.ts";

export { USAGE_EXIT_STATUS };

/**
 * A config file or command line that cannot be used: missing, not JSON, an unknown key, a value of the wrong type, a
 * required key left out, or a file a key names that cannot be read. Its message names the key and the file on one
 * line. A TypeError, as misuse is; thrown by {@linkcode RpcApplication.init} and the `RpcApplication` methods that
 * read files the config names.
 *
 * @example
 * ```ts
 * import { ConfigError } from "./config_error.ts";
 * import { parseRpcConfig } from "./rpc_application.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => parseRpcConfig({ rpcserver_quic_port: 8443 }, "provider.json"), ConfigError);
 * ```
 */
export class ConfigError extends TypeError {
  /** Always `"ConfigError"`, so logs and `instanceof`-free checks can tell it from other TypeErrors. */
  override readonly name: string = "ConfigError";
}

/**
 * Read a JSON config file; `what` says whose it is in errors (`"RPC config"`). Throws a {@linkcode ConfigError}
 * naming the file when it cannot be read or is not JSON (with the line and column of the mistake).
 *
 * @example
 * ```ts
 * import { defaultBackend } from "../reactor/backend/default.ts";
 * import { ConfigError, readJsonConfig } from "./config_error.ts";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile({ suffix: ".json" });
 * await Deno.writeTextFile(path, '{\n  "rpcserver_port": 8800,\n}\n');
 * await assert.rejects(readJsonConfig(defaultBackend(), path, "RPC config"), {
 *   name: "ConfigError",
 *   message: `Cannot load RPC config ${path} as it is not valid JSON: Unexpected '}' at line 3, column 1`,
 * });
 * await Deno.remove(path);
 * ```
 */
export async function readJsonConfig(backend: NetBackend, path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = new TextDecoder().decode(await backend.fs.readFile(path));
  } catch (error) {
    throw new ConfigError(`Cannot load ${what} ${path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    return parseJsonText(text);
  } catch (error) {
    throw new ConfigError(`Cannot load ${what} ${path} as it is not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * For a program's entry point: a {@linkcode ConfigError} is written to stderr as one line (no stack trace) and the
 * process exits with {@linkcode USAGE_EXIT_STATUS}; anything else is thrown on unchanged. Library code throws and
 * never calls this.
 *
 * @example
 * ```ts ignore
 * import { exitOnConfigError, RpcApplication } from "@dwt/rpc/rpc";
 *
 * const app = await RpcApplication.init(Deno.args).catch(exitOnConfigError);
 * const provider = await app.provider().catch(exitOnConfigError);
 * ```
 */
export function exitOnConfigError(error: unknown, process: ProcessBackend = defaultBackend().process): never {
  if (!(error instanceof ConfigError)) throw error;
  // A key or value quoted from the file may hold a line break; the report stays one line.
  process.writeStderr(`${error.message.replace(/\s*[\r\n]+\s*/g, " ")}\n`);
  return process.exit(USAGE_EXIT_STATUS);
}
