/**
 * The registry: a ZooKeeper-like registration center written on the reactor. A tree of persistent and ephemeral
 * nodes with versions and sequential names, sessions kept alive by signed UDP heartbeats, watches pushed in order,
 * a durable transaction log with snapshots. Call it through {@linkcode RegistryClient} (or a real ZooKeeper
 * through {@linkcode ZooKeeperRegistry}, both a {@linkcode Registry}); run it as {@linkcode RegistryServer}, or
 * as the program `deno run -A jsr:@dwt/rpc/registry-server`.
 *
 * Its rooms: `server/` (the server and its node tree), `storage/` (the log and snapshots), `client/` (the core both
 * clients share, and the built-in client), `zookeeper/` (the same interface on ZooKeeper); the contract they share
 * and the wire format sit at the top.
 *
 * @module
 */

// Calling a registry.
export {
  type CreateOptions,
  EventType,
  NodeType,
  type Registry,
  type SessionEvent,
  type Stat,
  type WatchCallback,
  type WatchedEvent,
} from "./registry.ts";
export { RegistryClient, type RegistryClientOptions } from "./client/registry_client.ts";
export { ZooKeeperRegistry, type ZooKeeperRegistryOptions } from "./zookeeper/zookeeper_registry.ts";
export type { ZooKeeperConnectString } from "./zookeeper/zookeeper_registry.ts";
export { RegistryError, RegistryErrorCode, registryErrorCodeName } from "./registry_error.ts";
export { StorageError } from "./storage/storage_error.ts";

// Running one.
export { RegistryServer, type RegistryServerOptions, type RegistryServerStats } from "./server/registry_server.ts";
export type { SessionInfo } from "./server/registry_server.ts";
export {
  DEFAULT_REGISTRY_CONFIG,
  loadRegistryConfig,
  parseRegistryConfig,
  type RegistryConfig,
} from "./server/registry_config.ts";
export { registryServerOptions, registryStatusOptions } from "./server/registry_config.ts";
export { registryMetrics, registryStatusHandler, startRegistryStatus } from "./server/registry_status.ts";
