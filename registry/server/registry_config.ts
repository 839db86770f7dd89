/**
 * The registry server's JSON config: the seed's `conf_main.json` keys (`ip`, `port`, `heartbeatTimeout`,
 * `heartbeatMaxCount`; the seed wrote numbers as strings, so both are accepted) plus this project's additions.
 * Most keys set one {@linkcode RegistryServerOptions} field, whose doc says what it means and what its default is
 * (from `REGISTRY_SERVER_DEFAULTS`); this file adds only the key names, the ranges a file may give, and the keys
 * of the program itself (logs, status pages, TLS files). A bad file or key gives one error naming the key and the
 * file.
 *
 * @module
 */

import type { NetBackend } from "../../reactor/backend/net_backend.ts";
import type { HttpServerOptions } from "../../reactor/http_server.ts";
import { parseJsonText } from "../../reactor/parse_json_text.ts";
import { validatePath } from "../path.ts";
import { REGISTRY_SERVER_DEFAULTS, type RegistryServerOptions } from "./registry_server_options.ts";

/**
 * The config of `deno task registry`, as it looks once loaded.
 *
 * @example
 * ```ts
 * import { parseRegistryConfig, type RegistryConfig } from "./registry_config.ts";
 *
 * const raw = { ip: "0.0.0.0", port: 10606, authToken: "s3cret" }; // as read from registry.json
 * const config: RegistryConfig = parseRegistryConfig(raw, "registry.json");
 * ```
 */
export interface RegistryConfig {
  /** Key `ip`: {@linkcode RegistryServerOptions.host}. */
  ip: string;
  /** Key `port`: {@linkcode RegistryServerOptions.port}. */
  port: number;
  /** Key `heartbeatPort`: {@linkcode RegistryServerOptions.heartbeatPort}. */
  heartbeatPort?: number;
  /** Key `heartbeatTimeout` (the seed's name, without the unit): {@linkcode RegistryServerOptions.heartbeatTimeoutMs}. */
  heartbeatTimeout: number;
  /** Key `heartbeatMaxCount`: {@linkcode RegistryServerOptions.heartbeatMaxCount}. */
  heartbeatMaxCount: number;
  /**
   * Key `dataDir` (or `data_dir`): {@linkcode RegistryServerOptions.dataDir}, except that the program keeps its data
   * in `data/registry` unless told otherwise; "" keeps the tree in memory only.
   */
  dataDir: string;
  /** Key `snapshotEveryTxns`: {@linkcode RegistryServerOptions.snapshotEveryTxns}. */
  snapshotEveryTxns: number;
  /** Key `maxFrameBytes`: {@linkcode RegistryServerOptions.maxFrameBytes}. */
  maxFrameBytes: number;
  /** Key `maxDataBytes`: {@linkcode RegistryServerOptions.maxDataBytes}. */
  maxDataBytes: number;
  /** Key `maxConnectionsPerIp`: {@linkcode RegistryServerOptions.maxConnectionsPerIp}. */
  maxConnectionsPerIp: number;
  /** Key `maxReplyBytes`: {@linkcode RegistryServerOptions.maxReplyBytes}. */
  maxReplyBytes?: number;
  /** Key `maxSessions`: {@linkcode RegistryServerOptions.maxSessions}. */
  maxSessions?: number;
  /** Key `maxSessionsPerIp`: {@linkcode RegistryServerOptions.maxSessionsPerIp}. */
  maxSessionsPerIp?: number;
  /** Key `maxAuthTokenBytes`: {@linkcode RegistryServerOptions.maxAuthTokenBytes}. */
  maxAuthTokenBytes?: number;
  /** Key `maxWatchesPerSession`: {@linkcode RegistryServerOptions.maxWatchesPerSession}. */
  maxWatchesPerSession?: number;
  /** Key `maxWatches`: {@linkcode RegistryServerOptions.maxWatches}. */
  maxWatches?: number;
  /** Key `frameTimeoutMs`: {@linkcode RegistryServerOptions.frameTimeoutMs}. */
  frameTimeoutMs?: number;
  /** Key `maxBufferedBytes`: {@linkcode RegistryServerOptions.maxBufferedBytes}. */
  maxBufferedBytes?: number;
  /** Key `authToken`: {@linkcode RegistryServerOptions.authToken}; a file may not set it to "". */
  authToken?: string;
  /** Key `handshakeTimeoutMs`: {@linkcode RegistryServerOptions.handshakeTimeoutMs}. */
  handshakeTimeoutMs: number;
  /**
   * Key `acl`: {@linkcode RegistryServerOptions.acl}. A prefix is a valid node path, so it has no trailing slash
   * (`/a/` is refused rather than guessed at: write `/a`); `/` covers the whole tree. Tokens are non-empty strings;
   * an empty list makes the subtree read-only. Errors name the prefix and the token's position, never a token.
   */
  acl?: Record<string, string[]>;
  /**
   * Key `tlsCertFile`, with `tlsKeyFile`: the PEM certificate file for {@linkcode RegistryServerOptions.tls} on the
   * client port. Default none (plain TCP).
   */
  tlsCertFile?: string;
  /** Key `tlsKeyFile`: the PEM private key file that goes with `tlsCertFile`. */
  tlsKeyFile?: string;
  /** Key `statusPort`: the port of the HTTP status pages (/status, /metrics, /tree, /sessions, /ruok). Default off. */
  statusPort?: number;
  /** Key `statusIp`: the address of the status pages. Default 127.0.0.1 (loopback only). */
  statusIp: string;
  /**
   * Key `statusAllowedHosts`: {@linkcode HttpServerOptions.allowedHosts} of the status pages (host names they
   * answer to besides the listen address, localhost and IP addresses). Default none.
   */
  statusAllowedHosts?: string[];
  /**
   * Key `seedPort`: a port for the C++ seed's registry clients (its `client_cli` and client library), TCP and UDP
   * heartbeats on the same number, served on this registry's tree (`seed/registry/`). Default off: nothing listens.
   */
  seedPort?: number;
  /** Key `seedToken`: the token seed sessions act with (one of `authToken` or the `acl` tokens). Default none. */
  seedToken?: string;
  /** Key `log_path` (or `logPath`): the directory for daily log files. Default none (stderr only). */
  logPath?: string;
  /**
   * Key `log_level` (or `logLevel`): a level name, or the seed's numbers 0-4 (0 debug, 1 info, 2 warn, 3 error,
   * 4 off). Default INFO.
   */
  logLevel: string;
}

/**
 * The embedded defaults: what the registry server program runs with when no file is given.
 *
 * @example
 * ```ts
 * import { DEFAULT_REGISTRY_CONFIG } from "./registry_config.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(`${DEFAULT_REGISTRY_CONFIG.ip}:${DEFAULT_REGISTRY_CONFIG.port}`, "127.0.0.1:10606"); // the seed's
 * ```
 */
export const DEFAULT_REGISTRY_CONFIG: RegistryConfig = {
  ip: REGISTRY_SERVER_DEFAULTS.host,
  port: REGISTRY_SERVER_DEFAULTS.port,
  heartbeatTimeout: REGISTRY_SERVER_DEFAULTS.heartbeatTimeoutMs,
  heartbeatMaxCount: REGISTRY_SERVER_DEFAULTS.heartbeatMaxCount,
  dataDir: "data/registry",
  snapshotEveryTxns: REGISTRY_SERVER_DEFAULTS.snapshotEveryTxns,
  maxFrameBytes: REGISTRY_SERVER_DEFAULTS.maxFrameBytes,
  maxDataBytes: REGISTRY_SERVER_DEFAULTS.maxDataBytes,
  maxConnectionsPerIp: REGISTRY_SERVER_DEFAULTS.maxConnectionsPerIp,
  handshakeTimeoutMs: REGISTRY_SERVER_DEFAULTS.handshakeTimeoutMs,
  statusIp: "127.0.0.1",
  logLevel: "INFO",
};

/** How a key's value is checked. */
type KeyKind = "int" | "string" | "token" | "acl" | "hosts";

/** One key of the file: what it fills, how it is checked, and the server option it sets. */
interface KeySpec {
  readonly field: keyof RegistryConfig;
  readonly kind: KeyKind;
  /** The least and greatest value of an `int` key. */
  readonly range?: readonly [number, number];
  /** The {@linkcode RegistryServerOptions} field the value goes to unchanged (`dataDir` and `ip` say how below). */
  readonly option?: keyof RegistryServerOptions;
  /** Other spellings accepted (the seed's snake_case). */
  readonly aliases?: readonly string[];
}

const PORT = [0, 65535] as const;
const MS = [1, 3_600_000] as const;

/**
 * Every key of the registry's config file, in one table (the order `--help` lists them in). A new server option that
 * a file may set is one row here and one field in {@linkcode RegistryConfig}.
 */
const KEYS: Readonly<Record<string, KeySpec>> = {
  ip: { field: "ip", kind: "string", option: "host" },
  port: { field: "port", kind: "int", range: PORT, option: "port" },
  heartbeatPort: { field: "heartbeatPort", kind: "int", range: PORT, option: "heartbeatPort" },
  heartbeatTimeout: { field: "heartbeatTimeout", kind: "int", range: MS, option: "heartbeatTimeoutMs" },
  heartbeatMaxCount: { field: "heartbeatMaxCount", kind: "int", range: [1, 1000], option: "heartbeatMaxCount" },
  dataDir: { field: "dataDir", kind: "string", aliases: ["data_dir"] },
  snapshotEveryTxns: { field: "snapshotEveryTxns", kind: "int", range: [1, 1e9], option: "snapshotEveryTxns" },
  maxFrameBytes: { field: "maxFrameBytes", kind: "int", range: [1024, 2 ** 31], option: "maxFrameBytes" },
  maxReplyBytes: { field: "maxReplyBytes", kind: "int", range: [1024, 2 ** 31], option: "maxReplyBytes" },
  maxDataBytes: { field: "maxDataBytes", kind: "int", range: [0, 2 ** 30], option: "maxDataBytes" },
  maxConnectionsPerIp: { field: "maxConnectionsPerIp", kind: "int", range: [1, 1e6], option: "maxConnectionsPerIp" },
  maxSessions: { field: "maxSessions", kind: "int", range: [1, 1e7], option: "maxSessions" },
  maxSessionsPerIp: { field: "maxSessionsPerIp", kind: "int", range: [1, 1e7], option: "maxSessionsPerIp" },
  maxAuthTokenBytes: { field: "maxAuthTokenBytes", kind: "int", range: [1, 1024 * 1024], option: "maxAuthTokenBytes" },
  maxWatchesPerSession: {
    field: "maxWatchesPerSession",
    kind: "int",
    range: [1, 1e8],
    option: "maxWatchesPerSession",
  },
  maxWatches: { field: "maxWatches", kind: "int", range: [1, 1e9], option: "maxWatches" },
  frameTimeoutMs: { field: "frameTimeoutMs", kind: "int", range: MS, option: "frameTimeoutMs" },
  maxBufferedBytes: { field: "maxBufferedBytes", kind: "int", range: [1024, 2 ** 40], option: "maxBufferedBytes" },
  handshakeTimeoutMs: { field: "handshakeTimeoutMs", kind: "int", range: MS, option: "handshakeTimeoutMs" },
  authToken: { field: "authToken", kind: "token", option: "authToken" },
  acl: { field: "acl", kind: "acl", option: "acl" },
  tlsCertFile: { field: "tlsCertFile", kind: "string" },
  tlsKeyFile: { field: "tlsKeyFile", kind: "string" },
  statusPort: { field: "statusPort", kind: "int", range: PORT },
  statusIp: { field: "statusIp", kind: "string" },
  statusAllowedHosts: { field: "statusAllowedHosts", kind: "hosts" },
  seedPort: { field: "seedPort", kind: "int", range: PORT },
  seedToken: { field: "seedToken", kind: "token" },
  log_path: { field: "logPath", kind: "string", aliases: ["logPath"] },
  log_level: { field: "logLevel", kind: "string", aliases: ["logLevel"] },
};

/** The keys a registry config file may hold, in the order of the table (for `--help` and error messages). */
export const REGISTRY_CONFIG_KEYS: readonly string[] = Object.keys(KEYS);

const BY_SPELLING: ReadonlyMap<string, KeySpec> = new Map(
  Object.entries(KEYS).flatMap(([key, spec]) => [key, ...(spec.aliases ?? [])].map((name) => [name, spec] as const)),
);

/**
 * Check a parsed config object against the schema and fill in defaults. `source` names the file in errors.
 * Throws a TypeError or RangeError naming the key, the file and the value.
 *
 * @example
 * ```ts
 * import { parseRegistryConfig } from "./registry_config.ts";
 * import assert from "node:assert/strict";
 *
 * const config = parseRegistryConfig({ port: 2181, dataDir: "" }, "inline");
 * assert.equal(config.heartbeatMaxCount, 5); // filled from the defaults
 * assert.throws(() => parseRegistryConfig({ port: 70000 }, "inline"), RangeError);
 * ```
 */
export function parseRegistryConfig(raw: unknown, source: string): RegistryConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new TypeError(`Cannot load registry config ${source} as it must be a JSON object`);
  }
  const config: Record<string, unknown> = { ...DEFAULT_REGISTRY_CONFIG };
  for (const [rawKey, value] of Object.entries(raw)) {
    const spec = BY_SPELLING.get(rawKey);
    if (spec === undefined) {
      throw new TypeError(
        `Cannot load registry config ${source} as key '${rawKey}' is unknown (known: ${
          REGISTRY_CONFIG_KEYS.join(", ")
        })`,
      );
    }
    config[spec.field] = parseValue(spec, rawKey, value, source);
  }
  if (config.seedToken !== undefined) {
    const known = [config.authToken, ...Object.values((config.acl ?? {}) as Record<string, string[]>).flat()];
    if (!known.includes(config.seedToken as string)) {
      throw new TypeError(
        `Cannot load registry config ${source} as 'seedToken' must be 'authToken' or one of the 'acl' tokens`,
      );
    }
  }
  if ((config.tlsCertFile === undefined) !== (config.tlsKeyFile === undefined)) {
    throw new TypeError(`Cannot load registry config ${source} as 'tlsCertFile' and 'tlsKeyFile' go together`);
  }
  return config as unknown as RegistryConfig;
}

function typeName(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
}

function parseValue(spec: KeySpec, rawKey: string, value: unknown, source: string): unknown {
  const prefix = `Cannot load registry config ${source} as '${rawKey}'`;
  switch (spec.kind) {
    case "acl":
      return parseAcl(value, source);
    case "hosts":
      if (!Array.isArray(value) || !value.every((host) => typeof host === "string" && /^[\w.-]+$/.test(host))) {
        throw new TypeError(
          `${prefix} must be a list of host names without ports, like ["status.example.internal"]: current value ` +
            `is ${JSON.stringify(value)}`,
        );
      }
      return [...value];
    case "int": {
      // The seed wrote numbers as strings.
      const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
      const [min, max] = spec.range!;
      if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
        throw new RangeError(
          `${prefix} must be an integer in [${min}, ${max}]: current value is ${JSON.stringify(value)}`,
        );
      }
      return n;
    }
    case "token":
      // Never shown in errors.
      if (typeof value !== "string") {
        throw new TypeError(`${prefix} must be a string: current value is of type ${typeName(value)}`);
      }
      if (value === "") {
        throw new TypeError(
          `${prefix} must be a non-empty token (an empty one would admit every client; leave the key out to ` +
            `require no token): current value is an empty string`,
        );
      }
      return value;
    case "string":
      if (typeof value !== "string") {
        throw new TypeError(`${prefix} must be a string: current value is ${JSON.stringify(value)}`);
      }
      return value;
  }
}

function parseAcl(value: unknown, source: string): Record<string, string[]> {
  const fail = (why: string): never => {
    throw new TypeError(
      `Cannot load registry config ${source} as 'acl' must map path prefixes to lists of tokens, like ` +
        `{"/dwt.UserServiceRpc": ["provider-token"]}: ${why}`,
    );
  };
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return fail(`current value is of type ${typeName(value)}`);
  }
  const acl: Record<string, string[]> = {};
  let position = 0;
  for (const [prefix, tokens] of Object.entries(value)) {
    position++;
    try {
      validatePath(prefix);
    } catch (error) {
      fail(`prefix #${position} is not a valid path (${(error as Error).message})`);
    }
    if (!Array.isArray(tokens)) {
      fail(
        `the tokens of prefix #${position} '${prefix}' must be an array: current value is of type ${typeName(tokens)}`,
      );
    }
    (tokens as unknown[]).forEach((token, index) => {
      if (typeof token !== "string" || token === "") {
        fail(
          `token #${index + 1} of prefix #${position} '${prefix}' must be a non-empty string (an empty one would ` +
            `admit every client): current value is ${token === "" ? "an empty string" : `of type ${typeName(token)}`}`,
        );
      }
    });
    acl[prefix] = [...(tokens as string[])];
  }
  return acl;
}

/**
 * Read and check a JSON config file (see {@linkcode parseRegistryConfig}).
 *
 * @example
 * ```ts
 * import { defaultBackend } from "../../reactor/backend/default.ts";
 * import { loadRegistryConfig } from "./registry_config.ts";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile({ suffix: ".json" });
 * await Deno.writeTextFile(path, JSON.stringify({ port: 2181 }));
 * assert.equal((await loadRegistryConfig(defaultBackend(), path)).port, 2181);
 * await Deno.remove(path);
 * ```
 */
export async function loadRegistryConfig(backend: NetBackend, path: string): Promise<RegistryConfig> {
  let text: string;
  try {
    text = new TextDecoder().decode(await backend.fs.readFile(path));
  } catch (error) {
    throw new TypeError(`Cannot load registry config ${path}: ${error instanceof Error ? error.message : error}`, {
      cause: error,
    });
  }
  let raw: unknown;
  try {
    raw = parseJsonText(text);
  } catch (error) {
    throw new TypeError(`Cannot load registry config ${path} as it is not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return parseRegistryConfig(raw, path);
}

/**
 * The server options a config stands for.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { parseRegistryConfig, registryServerOptions } from "./registry_config.ts";
 * import { RegistryServer } from "./registry_server.ts";
 *
 * const config = parseRegistryConfig({ port: 0, dataDir: "" }, "inline");
 * const server = new RegistryServer({ ...registryServerOptions(config), loop: new EventLoop() });
 * await server.start();
 * await server.stop();
 * ```
 */
export function registryServerOptions(config: RegistryConfig): RegistryServerOptions {
  const options: Record<string, unknown> = {};
  for (const spec of Object.values(KEYS)) {
    if (spec.option !== undefined) options[spec.option] = config[spec.field];
  }
  // The program's own default directory; "" keeps the tree in memory only.
  options.dataDir = config.dataDir === "" ? undefined : config.dataDir;
  return options as RegistryServerOptions;
}

/**
 * The status server options a config stands for (pass them to `startRegistryStatus`).
 *
 * @example
 * ```ts
 * import { parseRegistryConfig, registryStatusOptions } from "./registry_config.ts";
 * import assert from "node:assert/strict";
 *
 * const config = parseRegistryConfig({ statusAllowedHosts: ["status.example.internal"] }, "inline");
 * assert.deepEqual(registryStatusOptions(config).allowedHosts, ["status.example.internal"]);
 * ```
 */
export function registryStatusOptions(config: RegistryConfig): HttpServerOptions {
  return { allowedHosts: config.statusAllowedHosts ?? [] };
}
