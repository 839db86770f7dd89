/**
 * The registry as the RPC layer uses it: the operations publishing and discovery need. The built-in
 * {@linkcode RegistryClient} implements it, and so does {@linkcode ZooKeeperRegistry}, so Provider, Channel and
 * the CLI run unchanged on either.
 *
 * @module
 */

import type { NodeType, Stat } from "./data_tree.ts";
import type { SessionEvent, WatchCallback } from "./registry_client.ts";

/**
 * A session with a registry.
 *
 * @example
 * ```ts
 * import type { Registry } from "./registry.ts";
 *
 * // Publish an address under a service, on the built-in registry or on ZooKeeper alike.
 * async function publish(registry: Registry, service: string, address: string): Promise<string> {
 *   await registry.create(`/${service}`).catch(() => {}); // NODE_EXISTS: someone else made it
 *   return await registry.create(`/${service}/node-`, address, { nodeType: 2, sequential: true });
 * }
 * ```
 */
export interface Registry {
  /** Create a node; resolves with its actual path. */
  create(
    path: string,
    data?: Uint8Array | string,
    options?: { nodeType?: NodeType; sequential?: boolean },
  ): Promise<string>;
  /** A node's data and stat. */
  get(path: string, options?: { watch?: WatchCallback }): Promise<{ data: Uint8Array; stat: Stat }>;
  /** Replace a node's data; with `version`, only at that version (else BAD_VERSION). */
  set(path: string, data: Uint8Array | string, options?: { version?: number }): Promise<Stat>;
  /** Delete a node; with `version`, only at that version. */
  delete(path: string, options?: { version?: number }): Promise<void>;
  /** A node's stat or undefined. */
  exists(path: string, options?: { watch?: WatchCallback }): Promise<Stat | undefined>;
  /** A node's children; `watch` fires once when they change. */
  children(path: string, options?: { watch?: WatchCallback }): Promise<string[]>;
  /** Listen for session events. */
  onSessionEvent(listener: (event: SessionEvent) => void): () => void;
  /** Close the session. */
  close(): Promise<void>;
}
