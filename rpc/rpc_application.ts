/**
 * The application (the seed's DwtRpcApplication): initialises the framework from a JSON config given as
 * `-i FILE` or `--config FILE` — the provider's listen address, the registry's address, the log path and level —
 * and hands out providers and channels wired to that registry. A bad or missing key is one clear error naming
 * the key and the file.
 *
 * @module
 */

import { defaultBackend } from "../reactor/backend/default.ts";
import type { NetBackend } from "../reactor/backend/net_backend.ts";
import { parseArgs } from "../reactor/backend/parse_args.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import {
  DailyFileLogOutput,
  Logger,
  type LogLevel,
  type LogOutput,
  parseLogLevel,
  setLogger,
  StderrLogOutput,
} from "../reactor/logger.ts";
import type { Registry } from "../registry/registry.ts";
import { RegistryClient } from "../registry/client/registry_client.ts";
import {
  parseConnectString,
  ZOOKEEPER_DEFAULT_PORT,
  ZOOKEEPER_REGISTRY_DEFAULTS,
  ZooKeeperRegistry,
} from "../registry/zookeeper/zookeeper_registry.ts";
import { SERVER_LIMIT_NAMES, SERVER_LIMITS } from "./_server_limits.ts";
import { ConfigError, readJsonConfig } from "./config_error.ts";
import { RpcChannel, type RpcChannelOptions } from "./rpc_channel.ts";
import { RpcProvider, type RpcProviderOptions } from "./rpc_provider.ts";

/**
 * The application's config, as loaded.
 *
 * @example
 * ```ts
 * import { parseRpcConfig, type RpcConfig } from "./rpc_application.ts";
 *
 * // The seed's provider.json.
 * const config: RpcConfig = parseRpcConfig(
 *   { rpcserver_ip: "127.0.0.1", rpcserver_port: "8800", dwt_src_ip: "127.0.0.1", dwt_src_port: "10606" },
 *   "provider.json",
 * );
 * ```
 */
export interface RpcConfig {
  /** Key `rpcserver_ip`: {@linkcode RpcProviderOptions.host}; undefined in a caller-only config. */
  rpcserverIp?: string;
  /** Key `rpcserver_port`: {@linkcode RpcProviderOptions.port}; needed with `rpcserver_ip`. */
  rpcserverPort?: number;
  /** Key `rpcserver_threads`: {@linkcode RpcProviderOptions.threads}; undefined (its default) when absent. */
  rpcserverThreads?: number;
  /** Key `rpcserver_status_port`: {@linkcode RpcProviderOptions.statusPort}. */
  rpcserverStatusPort?: number;
  /** Key `rpcserver_http_port`: {@linkcode RpcProviderOptions.httpPort}; undefined (no gateway) when absent or 0. */
  rpcserverHttpPort?: number;
  /** Key `rpcserver_http_ip`: {@linkcode RpcProviderOptions.httpIp}; `rpcserver_ip` when absent. */
  rpcserverHttpIp?: string;
  /**
   * Key `rpcserver_http_cors_origins`: the origins of {@linkcode RpcProviderOptions.httpCors}, `"*"` or a
   * comma-separated list (`https://app.example, https://admin.example`); no CORS when absent.
   */
  rpcserverHttpCorsOrigins?: readonly string[] | "*";
  /**
   * Key `rpcserver_seed_port`: {@linkcode RpcProviderOptions.seedPort}, a port speaking the C++ seed's RPC frame;
   * undefined (off) when absent or 0.
   */
  rpcserverSeedPort?: number;
  /** Key `rpcserver_seed_ip`: {@linkcode RpcProviderOptions.seedIp}; `rpcserver_ip` when absent. */
  rpcserverSeedIp?: string;
  /** Key `rpcserver_seed_call_timeout_ms`: {@linkcode RpcProviderOptions.seedCallTimeoutMs}. */
  rpcserverSeedCallTimeoutMs?: number;
  /**
   * Key `rpcclient_seed_providers` (true or false): {@linkcode RpcChannelOptions.seedProviders}, call providers
   * found in the C++ seed's registry layout with its frame.
   */
  rpcclientSeedProviders?: boolean;
  /** The provider's limits and timings, one `rpcserver_` key each: see {@linkcode RpcServerLimits}. */
  rpcserverLimits: RpcServerLimits;
  /** The caller's settings, one `rpcclient_` key each: see {@linkcode RpcClientSettings}. */
  rpcclient: RpcClientSettings;
  /**
   * Which registry: the built-in one (`dwt_src_ip`/`dwt_src_port`) or ZooKeeper (`zookeeper_ip`/`zookeeper_port`,
   * or `zookeeper_connect` for several servers and a chroot, in the form of `ZooKeeperRegistry.connect`; with
   * `zookeeper_session_timeout_ms` for its `sessionTimeoutMs`). `registry` picks one when a file has both.
   */
  registry:
    | { kind: "dwt_src"; host: string; port: number }
    | { kind: "zookeeper"; connectString: string; sessionTimeoutMs: number };
  /**
   * Key `tls_cert_file`, with `tls_key_file`: the PEM certificate file for {@linkcode RpcProviderOptions.tls};
   * plain TCP when absent.
   */
  tlsCertFile?: string;
  /** Key `tls_key_file`: the PEM private key file that goes with `tls_cert_file`. */
  tlsKeyFile?: string;
  /** Key `tls_ca_file`: a PEM file of CA certificates for {@linkcode RpcChannelOptions.tls}: calls then use TLS. */
  tlsCaFile?: string;
  /** Key `dwt_src_tls_ca_file`: the same for the built-in registry's connection: the session then uses TLS. */
  registryTlsCaFile?: string;
  /** Directory of the daily log files (`log_path`), if any. */
  logPath?: string;
  /** Log level (`log_level`, or `-l`/`--loglevel` on the command line: a name or the seed's 0-4). */
  logLevel: LogLevel;
}

/**
 * The channel options that come from `rpcclient_` keys ({@linkcode RpcApplication.channel} applies them).
 *
 * @example
 * ```ts
 * import { parseRpcConfig } from "./rpc_application.ts";
 * import assert from "node:assert/strict";
 *
 * const raw = { zookeeper_connect: "10.0.0.1:2181/apps", rpcclient_empty_list_grace_ms: 20000 };
 * assert.equal(parseRpcConfig(raw, "caller.json").rpcclient.emptyListGraceMs, 20000);
 * ```
 */
export interface RpcClientSettings {
  /** `rpcclient_empty_list_grace_ms`: {@linkcode RpcChannelOptions.emptyListGraceMs}. */
  emptyListGraceMs?: number;
  /** `rpcclient_stream_window_bytes`: {@linkcode RpcChannelOptions.streamWindowBytes}. */
  streamWindowBytes?: number;
}

// The caller's settings: key, RpcChannelOptions field, least value (one row per setting, as the provider's limits).
const CLIENT_KEYS = [
  ["rpcclient_empty_list_grace_ms", "emptyListGraceMs", 0],
  ["rpcclient_stream_window_bytes", "streamWindowBytes", 65_536],
] as const;

/**
 * The provider options that come from `rpcserver_` keys.
 *
 * @example
 * ```ts
 * import { parseRpcConfig } from "./rpc_application.ts";
 * import assert from "node:assert/strict";
 *
 * const raw = { dwt_src_ip: "127.0.0.1", dwt_src_port: 10606, rpcserver_max_connections: 500 };
 * const config = parseRpcConfig(raw, "provider.json");
 * assert.equal(config.rpcserverLimits.maxConnections, 500);
 * ```
 */
export interface RpcServerLimits {
  /** `rpcserver_max_connections`: {@linkcode RpcProviderOptions.maxConnections}. */
  maxConnections?: number;
  /** `rpcserver_max_connections_per_address`: {@linkcode RpcProviderOptions.maxConnectionsPerAddress}. */
  maxConnectionsPerAddress?: number;
  /** `rpcserver_handshake_timeout_ms`: {@linkcode RpcProviderOptions.handshakeTimeoutMs}. */
  handshakeTimeoutMs?: number;
  /** `rpcserver_evict_silent_at_cap` (true or false): {@linkcode RpcProviderOptions.evictSilentAtCap}. */
  evictSilentAtCap?: boolean;
  /** `rpcserver_max_calls_per_connection`: {@linkcode RpcProviderOptions.maxCallsPerConnection}. */
  maxCallsPerConnection?: number;
  /** `rpcserver_max_streams_per_connection`: {@linkcode RpcProviderOptions.maxStreamsPerConnection}. */
  maxStreamsPerConnection?: number;
  /** `rpcserver_stream_window_bytes`: {@linkcode RpcProviderOptions.streamWindowBytes}. */
  streamWindowBytes?: number;
  /** `rpcserver_idle_timeout_ms`: {@linkcode RpcProviderOptions.idleTimeoutMs}. */
  idleTimeoutMs?: number;
  /** `rpcserver_max_frame_bytes`: {@linkcode RpcProviderOptions.maxFrameBytes}. */
  maxFrameBytes?: number;
  /** `rpcserver_frame_timeout_ms`: {@linkcode RpcProviderOptions.frameTimeoutMs}. */
  frameTimeoutMs?: number;
  /** `rpcserver_max_buffered_frame_bytes`: {@linkcode RpcProviderOptions.maxBufferedFrameBytes}. */
  maxBufferedFrameBytes?: number;
  /** `rpcserver_pause_reading_at_bytes`: {@linkcode RpcProviderOptions.pauseReadingAtBytes}. */
  pauseReadingAtBytes?: number;
  /** `rpcserver_max_unsent_bytes`: {@linkcode RpcProviderOptions.maxUnsentBytes}. */
  maxUnsentBytes?: number;
  /** `rpcserver_max_metadata_bytes`: {@linkcode RpcProviderOptions.maxMetadataBytes}. */
  maxMetadataBytes?: number;
  /** `rpcserver_keepalive_interval_ms`: {@linkcode RpcProviderOptions.keepaliveIntervalMs}. */
  keepaliveIntervalMs?: number;
  /** `rpcserver_keepalive_timeout_ms`: {@linkcode RpcProviderOptions.keepaliveTimeoutMs}. */
  keepaliveTimeoutMs?: number;
  /** `rpcserver_drain_grace_ms`: {@linkcode RpcProviderOptions.drainGraceMs}. */
  drainGraceMs?: number;
  /** `rpcserver_reflection` (true or false): {@linkcode RpcProviderOptions.reflection}. */
  reflection?: boolean;
}

/** How a key's value is read: a non-empty string, a port, an integer at least `min`, true or false, a log level. */
type KeyKind = "text" | "port" | "count" | "flag" | "level";

interface KeySpec {
  readonly kind: KeyKind;
  /** The least value of a `count`. */
  readonly min?: number;
}

// Each limit's key and least value (undefined: a switch, true or false) come from the provider's one table of limits.
const LIMIT_KEYS = SERVER_LIMIT_NAMES.map((name) => {
  const spec: { readonly key: string; readonly min?: number } = SERVER_LIMITS[name];
  return [spec.key, name, spec.min] as const;
});

/**
 * Every key of an RPC config file, in one table: how its value is checked. What each sets and its default is on the
 * RpcConfig field that holds it; the provider's limits and the caller's settings come from their own tables.
 */
const RPC_KEYS: Readonly<Record<string, KeySpec>> = {
  rpcserver_ip: { kind: "text" },
  rpcserver_port: { kind: "port" },
  rpcserver_threads: { kind: "count", min: 0 },
  rpcserver_status_port: { kind: "port" },
  rpcserver_http_port: { kind: "port" },
  rpcserver_http_ip: { kind: "text" },
  rpcserver_http_cors_origins: { kind: "text" },
  rpcserver_seed_port: { kind: "port" },
  rpcserver_seed_ip: { kind: "text" },
  rpcserver_seed_call_timeout_ms: { kind: "count", min: 1 },
  rpcclient_seed_providers: { kind: "flag" },
  ...Object.fromEntries(
    LIMIT_KEYS.map(([key, , min]) => [key, min === undefined ? { kind: "flag" } : { kind: "count", min }]),
  ),
  ...Object.fromEntries(CLIENT_KEYS.map(([key, , min]) => [key, { kind: "count", min }])),
  registry: { kind: "text" },
  dwt_src_ip: { kind: "text" },
  dwt_src_port: { kind: "port" },
  zookeeper_ip: { kind: "text" },
  zookeeper_port: { kind: "port" },
  zookeeper_connect: { kind: "text" },
  zookeeper_session_timeout_ms: { kind: "count", min: 1 },
  tls_cert_file: { kind: "text" },
  tls_key_file: { kind: "text" },
  tls_ca_file: { kind: "text" },
  dwt_src_tls_ca_file: { kind: "text" },
  log_path: { kind: "text" },
  log_level: { kind: "level" },
};

/** The keys an RPC config file may hold, in table order. */
const KNOWN_KEYS = Object.keys(RPC_KEYS);

/** One value checked against its key's kind (numbers may be JSON strings, as the seed wrote them). */
function readValue(key: string, spec: KeySpec, value: unknown, source: string): unknown {
  const shown = JSON.stringify(value);
  switch (spec.kind) {
    case "text":
      if (typeof value !== "string" || value.trim() === "") {
        fail(source, `'${key}' must be a non-empty string: current value is ${shown}`);
      }
      return value;
    case "flag":
      if (value === true || value === "true") return true;
      if (value === false || value === "false") return false;
      return fail(source, `'${key}' must be true or false: current value is ${shown}`);
    case "level":
      try {
        return parseLogLevel(value as string | number);
      } catch (error) {
        return fail(source, `'${key}' ${(error as Error).message.replace(/^Cannot parse log level as /, "")}`);
      }
    case "port":
    case "count": {
      const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
      const [min, max] = spec.kind === "port" ? [0, 65535] : [spec.min ?? 0, Number.MAX_SAFE_INTEGER];
      if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
        fail(
          source,
          spec.kind === "port"
            ? `'${key}' must be an integer in [0, 65535]: current value is ${shown}`
            : `'${key}' must be an integer >= ${min}: current value is ${shown}`,
        );
      }
      return n;
    }
  }
}

// `rpcserver_http_cors_origins`: "*", or origins separated by commas.
function corsOrigins(value: string | undefined): readonly string[] | "*" | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === "*") return "*";
  return value.split(",").map((origin) => origin.trim()).filter((origin) => origin !== "");
}

function fail(source: string, message: string): never {
  throw new ConfigError(`Cannot load RPC config ${source}: ${message}`);
}

/**
 * Check a parsed config object (the seed's keys; numbers may be JSON strings, as the seed wrote them).
 * `source` names the file in errors.
 *
 * @example
 * ```ts
 * import { parseRpcConfig } from "./rpc_application.ts";
 * import assert from "node:assert/strict";
 *
 * const config = parseRpcConfig({ zookeeper_connect: "10.0.0.1:2181,10.0.0.2:2181/apps/rpc" }, "caller.json");
 * assert.equal(config.registry.kind, "zookeeper");
 * const typo = { dwt_src_ip: "127.0.0.1", dwt_src_port: 10606, colour: "red" };
 * assert.throws(() => parseRpcConfig(typo, "caller.json"), TypeError); // names the unknown key and the file
 * ```
 */
export function parseRpcConfig(raw: unknown, source: string): RpcConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(source, "it must be a JSON object");
  const values: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const spec = RPC_KEYS[key];
    if (spec === undefined) fail(source, `key '${key}' is unknown (known: ${KNOWN_KEYS.join(", ")})`);
    values[key] = readValue(key, spec, value, source);
  }
  // Values are checked; what is left is which keys a file must give together.
  const given = <T extends string | number>(key: string, required: boolean): T | undefined => {
    if (values[key] === undefined && required) fail(source, `key '${key}' is missing`);
    return values[key] as T | undefined;
  };
  const text = given<string>;
  const port = given<number>;
  const rpcserverIp = text("rpcserver_ip", false);
  const rpcserverPort = port("rpcserver_port", rpcserverIp !== undefined);
  const rpcserverThreads = values["rpcserver_threads"] as number | undefined;
  const logLevel = (values["log_level"] as LogLevel | undefined) ?? parseLogLevel("INFO");
  const hasZooKeeper = ["zookeeper_ip", "zookeeper_connect"].some((key) => values[key] !== undefined);
  const hasDwtSrc = values["dwt_src_ip"] !== undefined;
  const kind = text("registry", false) ?? (hasDwtSrc || !hasZooKeeper ? "dwt_src" : "zookeeper");
  let registry: RpcConfig["registry"];
  if (kind === "dwt_src") {
    registry = { kind, host: text("dwt_src_ip", true)!, port: port("dwt_src_port", true)! };
  } else if (kind === "zookeeper") {
    const connect = text("zookeeper_connect", false);
    if (connect !== undefined && values["zookeeper_ip"] !== undefined) {
      fail(source, "give either 'zookeeper_connect' or 'zookeeper_ip' and 'zookeeper_port', not both");
    }
    const connectString = connect ??
      `${text("zookeeper_ip", true)}:${port("zookeeper_port", false) ?? ZOOKEEPER_DEFAULT_PORT}`;
    try {
      parseConnectString(connectString);
    } catch (error) {
      fail(source, `'${connect !== undefined ? "zookeeper_connect" : "zookeeper_ip"}': ${(error as Error).message}`);
    }
    const sessionTimeoutMs = (values["zookeeper_session_timeout_ms"] as number | undefined) ??
      ZOOKEEPER_REGISTRY_DEFAULTS.sessionTimeoutMs;
    registry = { kind, connectString, sessionTimeoutMs };
  } else {
    fail(source, `'registry' must be "dwt_src" or "zookeeper": current value is ${JSON.stringify(kind)}`);
  }
  return {
    rpcserverIp,
    rpcserverPort,
    rpcserverThreads,
    rpcserverStatusPort: port("rpcserver_status_port", false),
    rpcserverHttpPort: port("rpcserver_http_port", false) || undefined,
    rpcserverHttpIp: text("rpcserver_http_ip", false),
    rpcserverHttpCorsOrigins: corsOrigins(text("rpcserver_http_cors_origins", false)),
    rpcserverSeedPort: port("rpcserver_seed_port", false) || undefined,
    rpcserverSeedIp: text("rpcserver_seed_ip", false),
    rpcserverSeedCallTimeoutMs: values["rpcserver_seed_call_timeout_ms"] as number | undefined,
    rpcclientSeedProviders: values["rpcclient_seed_providers"] as boolean | undefined,
    rpcserverLimits: Object.fromEntries(
      LIMIT_KEYS.flatMap(([key, option]) => values[key] === undefined ? [] : [[option, values[key]]]),
    ) as RpcServerLimits,
    rpcclient: Object.fromEntries(
      CLIENT_KEYS.flatMap(([key, option]) => values[key] === undefined ? [] : [[option, values[key]]]),
    ) as RpcClientSettings,
    registry,
    tlsCertFile: text("tls_cert_file", false),
    tlsKeyFile: text("tls_key_file", values["tls_cert_file"] !== undefined),
    tlsCaFile: text("tls_ca_file", false),
    registryTlsCaFile: text("dwt_src_tls_ca_file", false),
    logPath: text("log_path", false),
    logLevel,
  };
}

/**
 * Options of {@linkcode RpcApplication.init}.
 *
 * @example
 * ```ts
 * import { defaultBackend } from "../reactor/backend/default.ts";
 * import type { RpcApplicationOptions } from "./rpc_application.ts";
 *
 * const options: RpcApplicationOptions = { backend: defaultBackend(), name: "callee" };
 * // const app = await RpcApplication.init(["-i", "provider.json"], options);
 * ```
 */
export interface RpcApplicationOptions {
  /**
   * The runtime backend (files, process).
   * @default {defaultBackend()}
   */
  backend?: NetBackend;
  /**
   * The loop.
   * @default {EventLoop.current()}
   */
  loop?: EventLoop;
  /**
   * A name for log lines.
   * @default {"rpc"}
   */
  name?: string;
}

/**
 * The framework, initialised from a config file.
 *
 * @example
 * ```ts ignore
 * import { RpcApplication } from "@dwt/rpc/rpc";
 *
 * const app = await RpcApplication.init(["-i", "provider.json"]);
 * const provider = await app.provider();
 * ```
 */
export class RpcApplication {
  /** The loaded config. */
  readonly config: RpcConfig;
  /** The loop everything runs on. */
  readonly loop: EventLoop;
  readonly #logger: Logger;
  #registry: Promise<Registry> | undefined;

  readonly #backend: NetBackend;
  /** The config file, for errors about the files it names. */
  readonly #source: string;

  private constructor(config: RpcConfig, loop: EventLoop, logger: Logger, backend: NetBackend, source: string) {
    this.#backend = backend;
    this.#source = source;
    this.config = config;
    this.loop = loop;
    this.#logger = logger;
  }

  /**
   * Read `-i FILE` / `--config FILE` (or the seed's `-c FILE`) and `-l LEVEL` / `--loglevel LEVEL` (the seed's
   * 0-4 or a name; it overrides `log_level`) from `args`, load the config and set up logging (stderr, plus daily
   * files in `log_path`). Throws a {@linkcode ConfigError} naming the key and the file on a bad config.
   */
  static async init(args: string[], options: RpcApplicationOptions = {}): Promise<RpcApplication> {
    const backend = options.backend ?? defaultBackend();
    let path: string | undefined;
    let logLevelArg: LogLevel | undefined;
    try {
      const { values } = parseArgs({
        args,
        strict: false,
        options: {
          config: { type: "string", short: "i" },
          "config-file": { type: "string", short: "c" },
          loglevel: { type: "string", short: "l" },
        },
      });
      path = (values.config ?? values["config-file"]) as string | undefined;
      if (values.loglevel !== undefined) {
        // The seed's -l/--loglevel: it overrides the file's log_level.
        if (typeof values.loglevel !== "string") throw new Error("'-l' needs a level, such as -l 1 or -l INFO");
        logLevelArg = parseLogLevel(values.loglevel);
      }
    } catch (error) {
      throw new ConfigError(`Cannot read the command line: ${(error as Error).message}`);
    }
    if (path === undefined) throw new ConfigError("Cannot initialise the application: give the config file as -i FILE");
    const fromFile = parseRpcConfig(await readJsonConfig(backend, path, "RPC config"), path);
    const config = logLevelArg === undefined ? fromFile : { ...fromFile, logLevel: logLevelArg };
    const outputs: LogOutput[] = [new StderrLogOutput(backend)];
    if (config.logPath !== undefined) outputs.push(new DailyFileLogOutput({ dir: config.logPath, backend }));
    const logger = new Logger({ level: config.logLevel, outputs, name: options.name ?? "rpc" });
    setLogger(logger);
    return new RpcApplication(config, options.loop ?? EventLoop.current(), logger, backend, path);
  }

  /** The registry session (opened on first use; its ephemeral nodes are re-created after an expiry). */
  registry(): Promise<Registry> {
    const config = this.config.registry;
    const caFile = this.config.registryTlsCaFile;
    this.#registry ??= config.kind === "zookeeper"
      ? ZooKeeperRegistry.connect(config.connectString, {
        loop: this.loop,
        recreateEphemerals: true,
        sessionTimeoutMs: config.sessionTimeoutMs,
      })
      : (async () =>
        RegistryClient.connect(`${config.host}:${config.port}`, {
          loop: this.loop,
          recreateEphemerals: true,
          tls: caFile === undefined ? undefined : { caCerts: [await this.#readText("dwt_src_tls_ca_file", caFile)] },
        }))();
    return this.#registry;
  }

  /** A provider listening on `rpcserver_ip:rpcserver_port`, publishing to the registry. */
  async provider(options: Omit<RpcProviderOptions, "registry" | "loop"> = {}): Promise<RpcProvider> {
    if (this.config.rpcserverIp === undefined) {
      throw new ConfigError(`Cannot create a provider as RPC config ${this.#source} has no 'rpcserver_ip'`);
    }
    return new RpcProvider({
      host: this.config.rpcserverIp,
      port: this.config.rpcserverPort,
      threads: this.config.rpcserverThreads,
      tls: this.config.tlsCertFile === undefined ? undefined : {
        cert: await this.#readText("tls_cert_file", this.config.tlsCertFile),
        key: await this.#readText("tls_key_file", this.config.tlsKeyFile!),
      },
      statusPort: this.config.rpcserverStatusPort,
      httpPort: this.config.rpcserverHttpPort,
      httpIp: this.config.rpcserverHttpIp,
      httpCors: this.config.rpcserverHttpCorsOrigins === undefined
        ? undefined
        : { allowedOrigins: this.config.rpcserverHttpCorsOrigins },
      seedPort: this.config.rpcserverSeedPort,
      seedIp: this.config.rpcserverSeedIp,
      seedCallTimeoutMs: this.config.rpcserverSeedCallTimeoutMs,
      ...this.config.rpcserverLimits,
      ...options,
      registry: await this.registry(),
      loop: this.loop,
    });
  }

  /** A channel discovering providers through the registry. */
  async channel(options: Omit<RpcChannelOptions, "registry" | "loop"> = {}): Promise<RpcChannel> {
    const caFile = this.config.tlsCaFile;
    return new RpcChannel({
      tls: caFile === undefined ? undefined : { caCerts: [await this.#readText("tls_ca_file", caFile)] },
      seedProviders: this.config.rpcclientSeedProviders,
      ...this.config.rpcclient,
      ...options,
      registry: await this.registry(),
      loop: this.loop,
    });
  }

  async #readText(key: string, path: string): Promise<string> {
    try {
      return new TextDecoder().decode(await this.#backend.fs.readFile(path));
    } catch (error) {
      const why = `'${key}' names a file that cannot be read: ${(error as Error).message}`;
      throw new ConfigError(`Cannot load RPC config ${this.#source}: ${why}`, { cause: error });
    }
  }

  /** Close the registry session and flush the logs. */
  async close(): Promise<void> {
    if (this.#registry !== undefined) await (await this.#registry).close();
    await this.#logger.flush();
  }
}
