/**
 * The registry server's JSON config: the seed's `conf_main.json` keys (`ip`, `port`, `heartbeatTimeout`,
 * `heartbeatMaxCount`; the seed wrote numbers as strings, so both are accepted) plus this project's additions,
 * each with a default. A bad file or key gives one error naming the key and the file.
 *
 * @module
 */

import type { NetBackend } from "../reactor/backend/net_backend.ts";
import type { RegistryServerOptions } from "./registry_server.ts";

/** The config of `deno task registry`, as it looks once loaded. */
export interface RegistryConfig {
  /** Listen address (`ip`). Default 127.0.0.1. */
  ip: string;
  /** TCP port (`port`). Default 10606 (the seed's). */
  port: number;
  /** UDP heartbeat port (`heartbeatPort`). Default: the TCP port number. */
  heartbeatPort?: number;
  /** Milliseconds per miss (`heartbeatTimeout`). Default 2000. */
  heartbeatTimeout: number;
  /** Misses until expiry (`heartbeatMaxCount`). Default 5. */
  heartbeatMaxCount: number;
  /** Directory of the transaction log and snapshots (`dataDir`). Default `data/registry`; "" keeps memory only. */
  dataDir: string;
  /** Transactions between snapshots (`snapshotEveryTxns`). Default 10000. */
  snapshotEveryTxns: number;
  /** Largest request frame in bytes (`maxFrameBytes`). Default 4 MiB. */
  maxFrameBytes: number;
  /** Largest node data in bytes (`maxDataBytes`). Default 1 MiB. */
  maxDataBytes: number;
  /** Connections per client IP (`maxConnectionsPerIp`). Default 1024. */
  maxConnectionsPerIp: number;
  /** Shared token required for changes (`authToken`). Default none. */
  authToken?: string;
  /** Milliseconds a connection may go without opening a session (`handshakeTimeoutMs`). Default 10000. */
  handshakeTimeoutMs: number;
  /** Per-path ACLs (`acl`): `{ "/prefix": ["token", ...] }`; changes under a prefix need one of its tokens. */
  acl?: Record<string, string[]>;
  /** PEM certificate file for TLS on the client port (`tlsCertFile`, with `tlsKeyFile`). Default none (plain TCP). */
  tlsCertFile?: string;
  /** PEM private key file for TLS (`tlsKeyFile`). */
  tlsKeyFile?: string;
  /** Port of the HTTP status pages (`statusPort`: /status, /metrics, /tree, /sessions, /ruok). Default off. */
  statusPort?: number;
  /** Address of the status pages (`statusIp`). Default 127.0.0.1 (loopback only). */
  statusIp: string;
  /** Directory for daily log files (`log_path`). Default none (stderr only). */
  logPath?: string;
  /** Log level name or 0-5 (`log_level`). Default INFO. */
  logLevel: string;
}

/** The embedded defaults: what `deno task registry` runs with when no file is given. */
export const DEFAULT_REGISTRY_CONFIG: RegistryConfig = {
  ip: "127.0.0.1",
  port: 10606,
  heartbeatTimeout: 2000,
  heartbeatMaxCount: 5,
  dataDir: "data/registry",
  snapshotEveryTxns: 10_000,
  maxFrameBytes: 4 * 1024 * 1024,
  maxDataBytes: 1024 * 1024,
  maxConnectionsPerIp: 1024,
  handshakeTimeoutMs: 10_000,
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
};

/**
 * Check a parsed config object against the schema and fill in defaults. `source` names the file in errors.
 * Throws a TypeError or RangeError naming the key, the file and the value.
 */
export function parseRegistryConfig(raw: unknown, source: string): RegistryConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new TypeError(`Cannot load registry config ${source} as it must be a JSON object`);
  }
  const config: Record<string, unknown> = { ...DEFAULT_REGISTRY_CONFIG };
  for (const [rawKey, value] of Object.entries(raw)) {
    const key = ALIASES[rawKey] ?? rawKey;
    if (key === "acl") {
      const valid = typeof value === "object" && value !== null && !Array.isArray(value) &&
        Object.entries(value).every(([prefix, tokens]) =>
          prefix.startsWith("/") && Array.isArray(tokens) && tokens.every((t) => typeof t === "string")
        );
      if (!valid) {
        throw new TypeError(
          `Cannot load registry config ${source} as 'acl' must map path prefixes to lists of tokens, like ` +
            `{"/dwt.UserServiceRpc": ["provider-token"]}: current value is ${JSON.stringify(value)}`,
        );
      }
      config.acl = value;
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
        throw new TypeError(
          `Cannot load registry config ${source} as '${rawKey}' must be a string: current value is ${
            JSON.stringify(value)
          }`,
        );
      }
      config[key] = value;
    } else {
      throw new TypeError(
        `Cannot load registry config ${source} as key '${rawKey}' is unknown (known: ${
          [...STRING_KEYS, ...NUMBER_KEYS, "acl"].join(", ")
        })`,
      );
    }
  }
  if ((config.tlsCertFile === undefined) !== (config.tlsKeyFile === undefined)) {
    throw new TypeError(`Cannot load registry config ${source} as 'tlsCertFile' and 'tlsKeyFile' go together`);
  }
  return config as unknown as RegistryConfig;
}

/** Read and check a config file. */
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

/** The server options a config stands for. */
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
  };
}
