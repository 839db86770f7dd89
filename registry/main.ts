/**
 * The registry server program:
 *
 * ```text
 * deno run -A --unstable-net jsr:@dwt/rpc/registry-server [--config FILE] [--port N] [--data-dir DIR]
 * ```
 *
 * (`--unstable-net` for its UDP heartbeats; in this repository: `deno task registry ...`.)
 * Without a file it runs on the embedded defaults (127.0.0.1:10606, data in `data/registry` under the current
 * directory).
 * Prints `READY host:port` on stdout once serving (scripts and tests wait for it); stops on SIGINT/SIGTERM.
 *
 * @module
 */

import { defaultBackend } from "../reactor/backend/default.ts";
import type { TlsServerOptions } from "../reactor/backend/net_backend.ts";
import { parseArgs, USAGE_EXIT_STATUS } from "../reactor/backend/parse_args.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import type { HttpServer } from "../reactor/http_server.ts";
import { InetAddress } from "../reactor/inet_address.ts";
import {
  DailyFileLogOutput,
  Logger,
  type LogOutput,
  parseLogLevel,
  setLogger,
  StderrLogOutput,
} from "../reactor/logger.ts";
import {
  DEFAULT_REGISTRY_CONFIG,
  loadRegistryConfig,
  REGISTRY_CONFIG_KEYS,
  type RegistryConfig,
  registryServerOptions,
  registryStatusOptions,
} from "./server/registry_config.ts";
import { startRegistryStatus } from "./server/registry_status.ts";
import { RegistryServer } from "./server/registry_server.ts";
import { SeedRegistryListener } from "../seed/registry/seed_registry_listener.ts";

/**
 * Run the registry server program with command-line `args`; resolves with its exit status once it has stopped
 * (on SIGINT or SIGTERM).
 *
 * @example
 * ```ts
 * import { main } from "./main.ts";
 *
 * await main(["--help"]); // prints the usage and every config key; resolves with 0
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const backend = defaultBackend();
  // A bad command line or config file is one line on stderr and the usage status, with no stack trace.
  const usageError = (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    backend.process.writeStderr(`${message.replace(/\s*[\r\n]+\s*/g, " ")}\n`);
    return USAGE_EXIT_STATUS;
  };
  let values;
  try {
    values = parseArgs({
      args,
      options: {
        config: { type: "string", short: "c" },
        port: { type: "string" },
        "data-dir": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (error) {
    return usageError(new TypeError(`Cannot read the command line: ${(error as Error).message}`));
  }
  if (values.help) {
    backend.process.writeStdout(
      "usage: registry-server [--config FILE] [--port N] [--data-dir DIR]\n" +
        "  (deno run -A --unstable-net jsr:@dwt/rpc/registry-server ...; in this repository deno task registry ...)\n" +
        `config keys: ${REGISTRY_CONFIG_KEYS.join(", ")}\n` +
        "  (see README.md, section The registry)\n" +
        "damaged data directory: deno run -A jsr:@dwt/rpc/registry-repair --data DIR [--apply]\n",
    );
    return 0;
  }
  let config: RegistryConfig = { ...DEFAULT_REGISTRY_CONFIG };
  try {
    if (values.config !== undefined) config = await loadRegistryConfig(backend, values.config);
    if (values.port !== undefined) config.port = parsePortOption(values.port);
    if (values["data-dir"] !== undefined) config.dataDir = values["data-dir"];
  } catch (error) {
    return usageError(error);
  }
  const outputs: LogOutput[] = [new StderrLogOutput()];
  if (config.logPath !== undefined) outputs.push(new DailyFileLogOutput({ dir: config.logPath }));
  const logger = new Logger({ level: parseLogLevel(config.logLevel), outputs, name: "registry" });
  setLogger(logger);

  // Whatever escapes one connection's code is logged; the server keeps serving everyone else.
  const removeGuard = backend.process.onUncaughtError((error) => {
    logger.error("Registry: an error escaped its handler; still serving", { error });
  });
  const loop = EventLoop.current();
  let tls: TlsServerOptions | undefined;
  if (config.tlsCertFile !== undefined && config.tlsKeyFile !== undefined) {
    const text = async (key: string, path: string) => {
      try {
        return new TextDecoder().decode(await backend.fs.readFile(path));
      } catch (error) {
        throw new TypeError(
          `Cannot load registry config ${values.config} as '${key}' names a file that cannot be read: ` +
            (error as Error).message,
        );
      }
    };
    try {
      tls = { cert: await text("tlsCertFile", config.tlsCertFile), key: await text("tlsKeyFile", config.tlsKeyFile) };
    } catch (error) {
      await logger.close();
      return usageError(error);
    }
  }
  // Only for showing that the linearizability checker catches the old answer order (fault/linearizability.ts).
  const unsafeEarlyFailures = backend.process.env("DWT_REGISTRY_UNSAFE_EARLY_FAILURES") === "1";
  if (unsafeEarlyFailures) {
    logger.warn("Registry: DWT_REGISTRY_UNSAFE_EARLY_FAILURES=1: failed writes are answered early");
  }
  // The C++ seed's clients, on a port of their own when asked for (issue 22).
  const listeners = config.seedPort === undefined
    ? []
    : [new SeedRegistryListener({ port: config.seedPort, token: config.seedToken ?? "" })];
  const server = new RegistryServer({ ...registryServerOptions(config), loop, tls, unsafeEarlyFailures, listeners });
  try {
    await server.start();
  } catch (error) {
    logger.fatal(`Cannot start the registry on ${config.ip}:${config.port}`, { error });
    await logger.close();
    return 1;
  }
  let status: HttpServer | undefined;
  if (config.statusPort !== undefined) {
    try {
      const address = new InetAddress(config.statusIp, config.statusPort);
      status = await startRegistryStatus(loop, server, address, registryStatusOptions(config));
    } catch (error) {
      logger.fatal(`Cannot start the status pages on ${config.statusIp}:${config.statusPort}`, { error });
      await server.stop();
      await logger.close();
      return 1;
    }
    logger.info(`Status pages on http://${status.address}/ (/status, /metrics, /tree, /sessions, /ruok)`);
    backend.process.writeStdout(`STATUS ${status.address}\n`);
  }
  for (const listener of listeners) backend.process.writeStdout(`SEED ${listener.address}\n`);
  backend.process.writeStdout(`READY ${server.address}\n`);
  const stop = () => {
    logger.info("Registry stopping");
    Promise.all([server.stop(), status?.stop()]).then(() => loop.quit());
  };
  const removeInt = backend.process.onSignal("SIGINT", stop);
  const removeTerm = backend.process.onSignal("SIGTERM", stop);
  await loop.loop();
  removeInt();
  removeTerm();
  removeGuard();
  await logger.close();
  return 0;
}

/** The `--port` option: an integer in [0, 65535], checked as the config file's `port` is. */
function parsePortOption(text: string): number {
  const port = text.trim() === "" ? NaN : Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`Cannot listen as '--port' must be an integer in [0, 65535]: current value is '${text}'`);
  }
  return port;
}

if (defaultBackend().process.isMain(import.meta)) {
  const code = await main(defaultBackend().process.args());
  defaultBackend().process.exit(code);
}
