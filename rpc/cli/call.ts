/**
 * `deno task call`, grpcurl for dwt-rpc: lists the services of a registry (ours or ZooKeeper, as a caller's config
 * says) or of one provider, describes them as .proto text, and calls them with requests and responses in the
 * canonical proto3 JSON mapping, streams included (one JSON object per line, as they arrive). The schema comes from
 * the server reflection of a provider of the service, or from `--proto` / `--protoset` files. The exit status is
 * 64 + the gRPC code of a failed call; `deno task call --help` has it all.
 *
 * ```sh
 * deno task call -i examples/rpc/caller.json list
 * deno task call -i examples/rpc/caller.json describe dwt.UserServiceRpc.Login
 * deno task call -i examples/rpc/caller.json dwt.UserServiceRpc/Login '{"name":"ZHd0","password":"cHc="}'
 * ```
 *
 * @module
 */

import { defaultBackend } from "../../reactor/backend/default.ts";
import type { NetBackend, TlsClientOptions } from "../../reactor/backend/net_backend.ts";
import { Logger, LogLevel, parseLogLevel, setLogger } from "../../reactor/logger.ts";
import { ConfigError, exitOnConfigError } from "../config_error.ts";
import { RpcApplication } from "../rpc_application.ts";
import { RpcCode, RpcError } from "../rpc_error.ts";
import { CALL_USAGE, CallExit, type CallTargetArgs, exitStatusOf, parseCallArgs } from "./_call_args.ts";
import { CallCommands, OutputError } from "./_call_commands.ts";
import { type CallTarget, ProviderTarget, RegistryTarget } from "./_call_target.ts";
import { SchemaError } from "./_descriptor_schema.ts";
import { RequestInput } from "./_request_input.ts";
import { schemaFromFiles } from "./_schema_sources.ts";

/**
 * Options of {@linkcode runCall}.
 *
 * @example
 * ```ts
 * import { defaultBackend } from "../../reactor/backend/default.ts";
 * import type { RunCallOptions } from "./call.ts";
 *
 * const options: RunCallOptions = { backend: defaultBackend() };
 * ```
 */
export interface RunCallOptions {
  /**
   * The runtime: stdin, stdout, stderr, signals, files.
   * @default {defaultBackend()}
   */
  backend?: NetBackend;
}

/**
 * Run `deno task call` with command-line `args`: the output goes to stdout, errors to stderr as one line; resolves
 * with the exit status. A command line or config file it cannot use is thrown as a ConfigError, for
 * `exitOnConfigError` (one line, exit status 2); `--help` has the commands and the exit statuses.
 *
 * @example
 * ```ts
 * import { runCall } from "./call.ts";
 * import assert from "node:assert/strict";
 *
 * // Offline: the services of a .proto file.
 * const path = await Deno.makeTempFile({ suffix: ".proto" });
 * await Deno.writeTextFile(path, `syntax = "proto3"; package demo; message Msg { string text = 1; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`);
 * assert.equal(await runCall(["list", "--proto", path]), 0); // prints demo.Echo
 * await Deno.remove(path);
 * ```
 */
export async function runCall(args: string[], options: RunCallOptions = {}): Promise<number> {
  const backend = options.backend ?? defaultBackend();
  const { process } = backend;
  const parsed = parseCallArgs(args, process);
  if (parsed.command === "help") {
    process.writeStdout(CALL_USAGE);
    return CallExit.OK;
  }
  // Ctrl-C (or a kill) cancels the call at the provider, and the command ends CANCELLED.
  const abort = new AbortController();
  const stopListening = (["SIGINT", "SIGTERM"] as const).map((signal) =>
    process.onSignal(signal, () => abort.abort(new RpcError(RpcCode.CANCELLED, `Cancelled by ${signal}`)))
  );
  let app: RpcApplication | undefined;
  let target: CallTarget | undefined;
  try {
    // The command line's files first: a mistake in them costs no connection.
    const files = await schemaFromFiles(backend, parsed.protoFiles, parsed.protosetFiles);
    const input = parsed.command === "call" ? await RequestInput.open(parsed.data, backend) : undefined;
    app = await openApplication(parsed, backend);
    target = await openTarget(parsed, app, backend);
    const commands = new CallCommands({ process, target, files, timeoutMs: parsed.timeoutMs, signal: abort.signal });
    if (parsed.command === "list") await commands.list(parsed);
    else if (parsed.command === "describe") await commands.describe(parsed);
    else await commands.call(parsed, input!);
    return CallExit.OK;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    return report(backend, error);
  } finally {
    for (const stop of stopListening) stop();
    // A registry still being connected to when the command ended would hold the close until it gives up.
    await settledWithin(
      CLOSE_TIMEOUT_MS,
      (async () => {
        await target?.close().catch(() => {});
        await app?.close().catch(() => {});
      })(),
    );
  }
}

/** How long the command waits for its channels and registry session to close before it exits anyway. */
const CLOSE_TIMEOUT_MS = 1000;

/** Resolves once `promise` settles or `ms` passed. */
async function settledWithin(ms: number, promise: Promise<unknown>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([promise, new Promise((resolve) => timer = setTimeout(resolve, ms))]);
  clearTimeout(timer);
}

/** The failure as one line on stderr; its exit status. */
function report(backend: NetBackend, error: unknown): number {
  const line = (text: string) => backend.process.writeStderr(`${text.replace(/\s*[\r\n]+\s*/g, " ")}\n`);
  if (error instanceof OutputError || error instanceof SchemaError) {
    line(error.message);
    return CallExit.FAILED;
  }
  if (error instanceof RpcError) {
    line(error.message);
    return exitStatusOf(error.code);
  }
  line(`Cannot complete the command: ${(error as Error)?.stack ?? String(error)}`);
  return CallExit.FAILED;
}

/** The caller's config (-i), which also sets up logging; without one, warnings and errors go to stderr. */
async function openApplication(parsed: CallTargetArgs, backend: NetBackend): Promise<RpcApplication | undefined> {
  const { configPath, logLevel } = parsed;
  if (configPath !== undefined) {
    const args = ["-i", configPath, ...(logLevel === undefined ? [] : ["-l", logLevel])];
    return await RpcApplication.init(args, { backend, name: "call" });
  }
  let level: LogLevel = LogLevel.WARN;
  try {
    if (logLevel !== undefined) level = parseLogLevel(logLevel);
  } catch (error) {
    throw new ConfigError(`Cannot read the command line: '-l': ${(error as Error).message}`);
  }
  setLogger(new Logger({ level, name: "call" }));
  return undefined;
}

/** The registry of the config, or --provider; undefined when neither is given (schema files only). */
async function openTarget(
  parsed: CallTargetArgs,
  app: RpcApplication | undefined,
  backend: NetBackend,
): Promise<CallTarget | undefined> {
  const provider = parsed.provider;
  const caFile = app?.config.tlsCaFile;
  let tls: TlsClientOptions | undefined;
  if (caFile !== undefined) {
    try {
      tls = { caCerts: [new TextDecoder().decode(await backend.fs.readFile(caFile))] };
    } catch (error) {
      throw new ConfigError(`Cannot read 'tls_ca_file' ${caFile}: ${(error as Error).message}`, { cause: error });
    }
  }
  if (provider !== undefined) {
    return new ProviderTarget(provider, { loop: app?.loop, tls, settings: app?.config.rpcclient });
  }
  return app === undefined ? undefined : new RegistryTarget(app, tls);
}

if (defaultBackend().process.isMain(import.meta)) {
  const { process } = defaultBackend();
  const status = await runCall(process.args()).catch(exitOnConfigError);
  process.exit(status);
}
