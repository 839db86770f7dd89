/**
 * dwt-rpc: a TypeScript RPC framework on protobuf with its own ZooKeeper-like registry and a muduo-style
 * reactor network layer. Deno first; Bun and Node too.
 *
 * @module
 */
export * from "./reactor/mod.ts";
export * from "./registry/mod.ts";
export * from "./rpc/mod.ts";
