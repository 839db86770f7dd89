/**
 * The registry: a ZooKeeper-like registration center (node tree, sessions kept alive by UDP heartbeats,
 * watches, durability), its server, client library and CLI. Written on the reactor.
 *
 * @module
 */
export {};
