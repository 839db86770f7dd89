/**
 * How a program's entry point ends on an error it cannot run past. A config it cannot use is a usage error (one
 * line, status 2, as `exitOnConfigError` says); a world it cannot use — a registry nobody answers at, a port
 * another process holds, a file it may not read — is one line on stderr and status 1, because a stack trace there
 * tells the user nothing they can act on. Anything else is a bug and keeps its stack trace.
 *
 * @module
 */

import { defaultBackend } from "../reactor/backend/default.ts";
import type { ProcessBackend } from "../reactor/backend/net_backend.ts";
import { RegistryError } from "../registry/registry_error.ts";
import { ConfigError, exitOnConfigError } from "./config_error.ts";
import { RpcError } from "./rpc_error.ts";

/** The exit status of a program that could not do its job for a reason outside it (not a usage error). */
export const FAILURE_EXIT_STATUS = 1;

// What the runtimes name the errors of sockets and files: Deno's error classes, and Node's and Bun's errno codes.
const SYSTEM_ERROR_NAMES = new Set([
  "AddrInUse",
  "AddrNotAvailable",
  "ConnectionRefused",
  "ConnectionReset",
  "ConnectionAborted",
  "NotConnected",
  "NotFound",
  "PermissionDenied",
  "NotCapable",
  "TimedOut",
  "BrokenPipe",
]);

/**
 * Whether `error` comes from the world a program runs in rather than from its code: a registry or RPC error, or a
 * socket or file error of the runtime.
 */
export function isEnvironmentError(error: unknown): error is Error {
  if (error instanceof RegistryError || error instanceof RpcError) return true;
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  return SYSTEM_ERROR_NAMES.has(error.name) || typeof code === "string" && /^E[A-Z0-9]+$/.test(code);
}

/**
 * For a program's entry point, in place of `exitOnConfigError`: a {@linkcode ConfigError} exits as that does (one
 * line, status 2); an error of the world ({@linkcode isEnvironmentError}) is written to stderr as one line and the
 * process exits with {@linkcode FAILURE_EXIT_STATUS}; anything else is thrown on unchanged, stack trace and all.
 * Library code throws and never calls this.
 *
 * @example
 * ```ts ignore
 * import { exitOnFatalError, RpcApplication } from "@dwt/rpc/rpc";
 *
 * const app = await RpcApplication.init(Deno.args).catch(exitOnFatalError);
 * const provider = await app.provider().catch(exitOnFatalError);
 * await provider.start().catch(exitOnFatalError); // "Cannot connect to the registry at 127.0.0.1:10606 ..."
 * ```
 */
export function exitOnFatalError(error: unknown, process: ProcessBackend = defaultBackend().process): never {
  if (error instanceof ConfigError) return exitOnConfigError(error, process);
  if (!isEnvironmentError(error)) throw error;
  process.writeStderr(`${error.message.replace(/\s*[\r\n]+\s*/g, " ")}\n`);
  return process.exit(FAILURE_EXIT_STATUS);
}
