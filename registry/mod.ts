/**
 * The registry: a ZooKeeper-like registration center written on the reactor. A tree of persistent and ephemeral
 * nodes with versions and sequential names, sessions kept alive by signed UDP heartbeats, watches pushed in order,
 * a durable transaction log with snapshots. Call it through {@linkcode RegistryClient} (or a real ZooKeeper
 * through {@linkcode ZooKeeperRegistry}, both a {@linkcode Registry}); run it as {@linkcode RegistryServer}, or
 * as the program `deno run -A jsr:@dwt/rpc/registry-server`.
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
export { RegistryClient, type RegistryClientOptions } from "./registry_client.ts";
export { ZooKeeperRegistry, type ZooKeeperRegistryOptions } from "./zookeeper_registry.ts";
export type { ZooKeeperConnectString } from "./zookeeper_registry.ts";
export { RegistryError, RegistryErrorCode, registryErrorCodeName } from "./registry_error.ts";
export { StorageError } from "./storage_error.ts";

// Running one.
export { RegistryServer, type RegistryServerOptions, type RegistryServerStats } from "./registry_server.ts";
export type { SessionInfo } from "./registry_server.ts";
export {
  DEFAULT_REGISTRY_CONFIG,
  loadRegistryConfig,
  parseRegistryConfig,
  type RegistryConfig,
} from "./registry_config.ts";
export { registryServerOptions, registryStatusOptions } from "./registry_config.ts";
export { registryMetrics, registryStatusHandler, startRegistryStatus } from "./registry_status.ts";
