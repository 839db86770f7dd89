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

import type { NetBackend } from "../reactor/backend/net_backend.ts";
import type { HttpServerOptions } from "../reactor/http_server.ts";
import { validatePath } from "./path.ts";
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

const NUMBER_KEYS = [
  "port",
  "heartbeatPort",
  "heartbeatTimeout",
  "heartbeatMaxCount",
  "snapshotEveryTxns",
  "maxFrameBytes",
  "maxDataBytes",
  "maxConnectionsPerIp",
  "statusPort",
  "handshakeTimeoutMs",
  "maxReplyBytes",
  "maxSessions",
  "maxSessionsPerIp",
  "maxAuthTokenBytes",
  "maxWatchesPerSession",
  "maxWatches",
  "frameTimeoutMs",
  "maxBufferedBytes",
] as const;
const STRING_KEYS = [
  "ip",
  "dataDir",
  "authToken",
  "tlsCertFile",
  "tlsKeyFile",
  "statusIp",
  "logPath",
  "logLevel",
] as const;
const ALIASES: Record<string, string> = { log_path: "logPath", log_level: "logLevel", data_dir: "dataDir" };
const LIMITS: Record<string, [number, number]> = {
  port: [0, 65535],
  heartbeatPort: [0, 65535],
  heartbeatTimeout: [1, 3_600_000],
  heartbeatMaxCount: [1, 1000],
  snapshotEveryTxns: [1, 1e9],
  maxFrameBytes: [1024, 2 ** 31],
  maxDataBytes: [0, 2 ** 30],
  maxConnectionsPerIp: [1, 1e6],
  statusPort: [0, 65535],
  handshakeTimeoutMs: [1, 3_600_000],
  maxReplyBytes: [1024, 2 ** 31],
  maxSessions: [1, 1e7],
  maxSessionsPerIp: [1, 1e7],
  maxAuthTokenBytes: [1, 1024 * 1024],
  maxWatchesPerSession: [1, 1e8],
  maxWatches: [1, 1e9],
  frameTimeoutMs: [1, 3_600_000],
  maxBufferedBytes: [1024, 2 ** 40],
};

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
    const key = ALIASES[rawKey] ?? rawKey;
    if (key === "acl") {
      config.acl = parseAcl(value, source);
    } else if (key === "statusAllowedHosts") {
      if (!Array.isArray(value) || !value.every((host) => typeof host === "string" && /^[\w.-]+$/.test(host))) {
        throw new TypeError(
          `Cannot load registry config ${source} as 'statusAllowedHosts' must be a list of host names without ` +
            `ports, like ["status.example.internal"]: current value is ${JSON.stringify(value)}`,
        );
      }
      config.statusAllowedHosts = [...value];
    } else if ((NUMBER_KEYS as readonly string[]).includes(key)) {
      const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
      const [min, max] = LIMITS[key]!;
      if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
        throw new RangeError(
          `Cannot load registry config ${source} as '${rawKey}' must be an integer in [${min}, ${max}]: ` +
            `current value is ${JSON.stringify(value)}`,
        );
      }
      config[key] = n;
    } else if ((STRING_KEYS as readonly string[]).includes(key)) {
      if (typeof value !== "string") {
        const shown = SECRET_KEYS.has(key) ? `of type ${typeName(value)}` : JSON.stringify(value);
        throw new TypeError(
          `Cannot load registry config ${source} as '${rawKey}' must be a string: current value is ${shown}`,
        );
      }
      if (SECRET_KEYS.has(key) && value === "") {
        throw new TypeError(
          `Cannot load registry config ${source} as '${rawKey}' must be a non-empty token (an empty one would ` +
            `admit every client; leave the key out to require no token): current value is an empty string`,
        );
      }
      config[key] = value;
    } else {
      throw new TypeError(
        `Cannot load registry config ${source} as key '${rawKey}' is unknown (known: ${
          [...STRING_KEYS, ...NUMBER_KEYS, "acl", "statusAllowedHosts"].join(", ")
        })`,
      );
    }
  }
  if ((config.tlsCertFile === undefined) !== (config.tlsKeyFile === undefined)) {
    throw new TypeError(`Cannot load registry config ${source} as 'tlsCertFile' and 'tlsKeyFile' go together`);
  }
  return config as unknown as RegistryConfig;
}

// Values never shown in errors.
const SECRET_KEYS: ReadonlySet<string> = new Set(["authToken"]);

function typeName(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
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
 * import { defaultBackend } from "../reactor/backend/default.ts";
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
    raw = JSON.parse(text);
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
 * import { EventLoop } from "../reactor/event_loop.ts";
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
  return {
    host: config.ip,
    port: config.port,
    heartbeatPort: config.heartbeatPort,
    heartbeatTimeoutMs: config.heartbeatTimeout,
    heartbeatMaxCount: config.heartbeatMaxCount,
    dataDir: config.dataDir === "" ? undefined : config.dataDir,
    snapshotEveryTxns: config.snapshotEveryTxns,
    maxFrameBytes: config.maxFrameBytes,
    maxDataBytes: config.maxDataBytes,
    maxConnectionsPerIp: config.maxConnectionsPerIp,
    authToken: config.authToken,
    acl: config.acl,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    maxReplyBytes: config.maxReplyBytes,
    maxSessions: config.maxSessions,
    maxSessionsPerIp: config.maxSessionsPerIp,
    maxAuthTokenBytes: config.maxAuthTokenBytes,
    maxWatchesPerSession: config.maxWatchesPerSession,
    maxWatches: config.maxWatches,
    frameTimeoutMs: config.frameTimeoutMs,
    maxBufferedBytes: config.maxBufferedBytes,
  };
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
