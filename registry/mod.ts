/**
 * The registry: a ZooKeeper-like registration center written on the reactor. A tree of persistent and ephemeral
 * nodes with versions and sequential names ({@linkcode DataTree}), sessions kept alive by signed UDP heartbeats,
 * watches pushed in order, a durable transaction log with snapshots, the server ({@linkcode RegistryServer}),
 * the client library ({@linkcode RegistryClient}) and the CLI (`registry/cli.ts`).
 *
 * @module
 */
export * from "./data_tree.ts";
export * from "./path.ts";
export * from "./registry_client.ts";
export * from "./registry_config.ts";
export * from "./registry_error.ts";
export * from "./registry_server.ts";
export * from "./session_tracker.ts";
export * from "./txn_log.ts";
export * from "./watch_manager.ts";
export { encodeHeartbeat, HEARTBEAT_BYTES, importHeartbeatKey, parseHeartbeat, verifyHeartbeat } from "./heartbeat.ts";
export * from "./registry.ts";
export * from "./zookeeper_registry.ts";
export * from "./registry_status.ts";
