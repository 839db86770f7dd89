/**
 * The registry as the RPC layer uses it: the operations publishing and discovery need, and the types they speak
 * (node types, stats, watch and session events). The built-in {@linkcode RegistryClient} implements it, and so
 * does {@linkcode ZooKeeperRegistry}, so Provider, Channel and the CLI run unchanged on either. Nothing here
 * depends on a server: a client of either kind imports its contract from this file alone.
 *
 * @module
 */

/**
 * Node types, numbered as the seed's CLI numbers them (`create <path> [data] [1|2]`). An ephemeral node goes
 * with the session that created it.
 *
 * @example
 * ```ts
 * import { NodeType, type Stat } from "./registry.ts";
 *
 * const isEphemeral = (stat: Stat) => stat.nodeType === NodeType.EPHEMERAL; // ephemeralOwner is its session
 * ```
 */
export const NodeType = {
  PERSISTENT: 1,
  EPHEMERAL: 2,
} as const;

/** One of the {@linkcode NodeType} numbers. */
export type NodeType = typeof NodeType[keyof typeof NodeType];

/**
 * What a node looks like from outside, as ZooKeeper's Stat plus the seed's nodeType.
 *
 * @example
 * ```ts
 * import type { Stat } from "./registry.ts";
 *
 * const describe = (stat: Stat) =>
 *   `version ${stat.version}, ${stat.numChildren} children, ${stat.dataLength} bytes, changed ${new Date(stat.mtime)}`;
 * ```
 */
export interface Stat {
  /** The transaction that created the node. */
  czxid: bigint;
  /** The transaction that last set its data. */
  mzxid: bigint;
  /** The transaction that last changed its children. */
  pzxid: bigint;
  /** Creation time, ms since the epoch. */
  ctime: number;
  /** Last data change, ms since the epoch. */
  mtime: number;
  /** Data version: 0 at creation, +1 per set. */
  version: number;
  /** Children version: +1 per child created or deleted. */
  cversion: number;
  /** The owning session of an ephemeral node; 0n for persistent nodes. */
  ephemeralOwner: bigint;
  /** Bytes of data. */
  dataLength: number;
  /** Number of children. */
  numChildren: number;
  /** PERSISTENT or EPHEMERAL. */
  nodeType: NodeType;
}

/**
 * Kinds of change, numbered as proto/registry.proto's EventType (and as ZooKeeper numbers them).
 *
 * @example
 * ```ts
 * import { EventType, type WatchCallback } from "./registry.ts";
 *
 * const onChange: WatchCallback = (event) => {
 *   if (event.type === EventType.NODE_CHILDREN_CHANGED) console.log(`providers of ${event.path} changed`);
 * };
 * ```
 */
export const EventType = {
  NODE_CREATED: 1,
  NODE_DELETED: 2,
  NODE_DATA_CHANGED: 3,
  NODE_CHILDREN_CHANGED: 4,
} as const;

/** One of the {@linkcode EventType} numbers. */
export type EventType = typeof EventType[keyof typeof EventType];

/**
 * A watch notification. `type` is 0 for "the session or connection changed: re-read and re-watch".
 *
 * @example
 * ```ts
 * import { EventType, type WatchedEvent } from "./registry.ts";
 *
 * const describe = (event: WatchedEvent) =>
 *   event.type === 0 ? "reconnected: read again" : `${event.path}: ${Object.keys(EventType)[event.type - 1]}`;
 * ```
 */
export interface WatchedEvent {
  /** What happened ({@linkcode EventType}), or 0 when changes may have been missed and the watch is gone. */
  type: EventType | 0;
  /** The watched path. */
  path: string;
}

/**
 * Called once when a watched path changes (watches are one-shot, as in ZooKeeper).
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import type { WatchCallback } from "./registry.ts";
 * import { RegistryClient } from "./client/registry_client.ts";
 * import { RegistryServer } from "./server/registry_server.ts";
 *
 * const loop = new EventLoop();
 * const server = new RegistryServer({ port: 0, loop });
 * await server.start();
 * const client = await RegistryClient.connect(server.address, { loop });
 * const changed = Promise.withResolvers<string>();
 * const watch: WatchCallback = (event) => changed.resolve(event.path);
 * await client.children("/", { watch }); // fires once, at the next change of /'s children
 * await client.create("/service", "");
 * console.log(await changed.promise); // "/"
 * await client.close();
 * await server.stop();
 * ```
 */
export type WatchCallback = (event: WatchedEvent) => void;

/**
 * Session state changes, in the order a client goes through them: `connected` when a session opens (`resumed`
 * when it is the same session on a new connection), `disconnected` whenever a connection is lost, `expired` once
 * per session the server gave up on (with that session's id; a new session follows by itself), `closed` at the
 * end.
 *
 * @example
 * ```ts
 * import type { Registry, SessionEvent } from "./registry.ts";
 *
 * const follow = (registry: Registry) =>
 *   registry.onSessionEvent((event: SessionEvent) => {
 *     if (event.type === "expired") console.log(`session ${event.sessionId} expired: its ephemeral nodes are gone`);
 *   });
 * ```
 */
export type SessionEvent =
  | { type: "connected"; sessionId: bigint; resumed: boolean }
  | { type: "disconnected" }
  | { type: "expired"; sessionId: bigint }
  | { type: "closed" };

/**
 * Options of create.
 *
 * @example
 * ```ts
 * import { type CreateOptions, NodeType } from "./registry.ts";
 *
 * const providerNode: CreateOptions = { nodeType: NodeType.EPHEMERAL, sequential: true }; // /svc/node-0000000007
 * ```
 */
export interface CreateOptions {
  /**
   * PERSISTENT (1) or EPHEMERAL (2).
   * @default {NodeType.PERSISTENT}
   */
  nodeType?: NodeType;
  /**
   * Append a 10-digit counter to the name.
   * @default {false}
   */
  sequential?: boolean;
  /**
   * Make the create safe to retry after a lost connection (Curator's "protected" create). The node's name gets
   * a prefix unique to this call, `_p_<uuid>-`: `/svc/node-` becomes `/svc/_p_<uuid>-node-0000000007`. When the
   * answer is lost (CONNECTION_LOSS, OPERATION_TIMEOUT, SESSION_EXPIRED: the create may or may not have been
   * made), the client waits for a session, lists the parent's children for the prefix, and returns the node it
   * finds (an ephemeral one only if the current session owns it) or creates it again. So a sequential create
   * makes one node however often its answer is lost, where a plain retry may make two. It gives up, with the
   * last error, after 10 attempts or when no session opens within the request timeout.
   *
   * Readers of the parent see the prefix in the child's name: strip `_p_` and the 36-character uuid and its `-`
   * to get the name asked for. Nodes whose names must be exactly what was asked (an RPC provider's
   * `/<Service>/<host:port>`, read by discovery as addresses) should not be protected; a plain name is already
   * its own retry key (a retry answers NODE_EXISTS, and the stat's ephemeralOwner says whose it is).
   * @default {false}
   *
   * @example Exactly one lock node however often the connection drops
   * ```ts
   * import { NodeType } from "./registry.ts";
   * import { EventLoop } from "../reactor/event_loop.ts";
   * import { RegistryClient } from "./client/registry_client.ts";
   * import { RegistryServer } from "./server/registry_server.ts";
   * import assert from "node:assert/strict";
   *
   * const loop = new EventLoop();
   * const server = new RegistryServer({ port: 0, loop });
   * await server.start();
   * const client = await RegistryClient.connect(server.address, { loop });
   * await client.create("/lock", "");
   * const path = await client.create("/lock/member-", "", {
   *   nodeType: NodeType.EPHEMERAL,
   *   sequential: true,
   *   protected: true,
   * });
   * assert.match(path, /^\/lock\/_p_[0-9a-f-]{36}-member-\d{10}$/);
   * await client.close();
   * await server.stop();
   * ```
   */
  protected?: boolean;
}

/**
 * A session with a registry.
 *
 * @example
 * ```ts
 * import { NodeType, type Registry } from "./registry.ts";
 *
 * // Publish an address under a service, on the built-in registry or on ZooKeeper alike.
 * async function publish(registry: Registry, service: string, address: string): Promise<string> {
 *   await registry.create(`/${service}`).catch(() => {}); // NODE_EXISTS: someone else made it
 *   return await registry.create(`/${service}/node-`, address, { nodeType: NodeType.EPHEMERAL, sequential: true });
 * }
 * ```
 */
export interface Registry {
  /** Create a node; resolves with its actual path. */
  create(path: string, data?: Uint8Array | string, options?: CreateOptions): Promise<string>;
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
  /** Listen for session events; returns a function that removes the listener. */
  onSessionEvent(listener: (event: SessionEvent) => void): () => void;
  /** Close the session. */
  close(): Promise<void>;
}
