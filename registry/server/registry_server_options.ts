/**
 * The registry server's options, with their one set of defaults, and what it reports: counters and sessions.
 *
 * @module
 */

import type { TlsServerOptions } from "../../reactor/backend/net_backend.ts";
import type { EventLoop } from "../../reactor/event_loop.ts";
import type { RegistryListener } from "./registry_listener.ts";

/**
 * Options of {@linkcode RegistryServer}; the seed's config keys map onto them.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { RegistryServer, type RegistryServerOptions } from "./registry_server.ts";
 *
 * const acl = { "/payments": ["pay-team"] }; // only the pay-team token changes /payments
 * const options: RegistryServerOptions = { port: 0, dataDir: "", authToken: "s3cret", acl };
 * const server = new RegistryServer({ ...options, loop: new EventLoop() });
 * ```
 */
export interface RegistryServerOptions {
  /**
   * The address to listen on (the seed's `ip`).
   * @default {"127.0.0.1"}
   */
  host?: string;
  /**
   * The TCP port (the seed's `port`); 0 picks one.
   * @default {10606}
   */
  port?: number;
  /**
   * The UDP heartbeat port; `undefined` means the same number as the TCP port, as in the seed.
   * @default {undefined}
   */
  heartbeatPort?: number;
  /**
   * Milliseconds without a heartbeat that count as one miss (the seed's `heartbeatTimeout`).
   * @default {2000}
   */
  heartbeatTimeoutMs?: number;
  /**
   * Consecutive misses that expire a session (the seed's `heartbeatMaxCount`).
   * @default {5}
   */
  heartbeatMaxCount?: number;
  /**
   * Directory for the transaction log and snapshots; without one the tree lives in memory only.
   * @default {undefined}
   */
  dataDir?: string;
  /**
   * Take a snapshot after this many logged transactions (ZooKeeper's snapCount).
   * @default {100000}
   */
  snapshotEveryTxns?: number;
  /**
   * The largest frame body accepted from a client, in bytes.
   * @default {4194304}
   */
  maxFrameBytes?: number;
  /**
   * The largest node data, in bytes.
   * @default {1048576}
   */
  maxDataBytes?: number;
  /**
   * Connections accepted from one IP address at a time.
   * @default {1024}
   */
  maxConnectionsPerIp?: number;
  /**
   * The largest reply frame body, in bytes; a larger answer (a huge children list) is answered LIMIT_EXCEEDED.
   * @default {4194304}
   */
  maxReplyBytes?: number;
  /**
   * Sessions open at once, in total; more are refused with LIMIT_EXCEEDED.
   * @default {100000}
   */
  maxSessions?: number;
  /**
   * Sessions opened from one IP address and open at once.
   * @default {1024}
   */
  maxSessionsPerIp?: number;
  /**
   * The longest auth token a client may present, in bytes.
   * @default {1024}
   */
  maxAuthTokenBytes?: number;
  /**
   * Watches one session may hold; one more is answered LIMIT_EXCEEDED.
   * @default {10000}
   */
  maxWatchesPerSession?: number;
  /**
   * Watches all sessions together may hold (each session is also held to maxWatchesPerSession); one more is
   * answered LIMIT_EXCEEDED.
   * @default {1000000}
   */
  maxWatches?: number;
  /**
   * Close a connection that holds part of a frame for longer than this, in milliseconds (a slow or stalled peer).
   * @default {30000}
   */
  frameTimeoutMs?: number;
  /**
   * Bytes of partial frames held across all connections; a connection that would pass it is closed.
   * @default {16777216}
   */
  maxBufferedBytes?: number;
  /**
   * When set, create/set/delete need a session that connected with this token.
   * @default {undefined}
   */
  authToken?: string;
  /**
   * Close a connection that has not opened or resumed a session this long after it came, in milliseconds (it
   * holds a slot of the per-IP limit for nothing). Connections with a session are kept alive by heartbeats.
   * @default {10000}
   */
  handshakeTimeoutMs?: number;
  /**
   * Per-path ACLs: changes (create, set, delete) at or under a prefix need a session that connected with one of
   * its tokens; the longest matching prefix decides. Reads stay open. Example: `{ "/dwt.UserServiceRpc": ["t1"] }`.
   * @default {{}}
   */
  acl?: Record<string, string[]>;
  /**
   * The loop to run on.
   * @default {EventLoop.current()}
   */
  loop?: EventLoop;
  /**
   * Serve TLS with this PEM certificate and key.
   * @default {undefined}
   */
  tls?: TlsServerOptions;
  /**
   * Listeners for other protocols' clients (the C++ seed's: `seed/registry/`), served on this server's tree,
   * sessions, durability and access rules; started once the server listens, stopped before it stops. A plug-in
   * point of this package's own (registry_listener.ts), not yet a public API.
   * @default {[]}
   * @ignore
   */
  listeners?: readonly RegistryListener[];
  /**
   * Answer a write that fails its validation at once, before the writes it was judged against are durable: the old,
   * non-linearizable order, kept only so the linearizability checker (`deno task linearizability --broken`) can be
   * shown to catch it. Never set it in production. The registry program sets it when the environment variable
   * `DWT_REGISTRY_UNSAFE_EARLY_FAILURES` is `1`.
   * @default {false}
   * @ignore
   */
  unsafeEarlyFailures?: boolean;
}

/**
 * Counters for the status endpoint and tests.
 *
 * @example
 * ```ts
 * import type { RegistryServer } from "./registry_server.ts";
 *
 * const line = (server: RegistryServer) => {
 *   const stats = server.stats();
 *   return `${stats.sessions} sessions, ${stats.nodes} nodes, zxid ${stats.zxid}, read-only ${stats.readOnly}`;
 * };
 * ```
 */
export interface RegistryServerStats {
  /** TCP connections open now. */
  connections: number;
  /** Sessions open now (connected or waiting for their client to come back). */
  sessions: number;
  /** Nodes in the tree, the root included. */
  nodes: number;
  /** Watches set now, over all sessions. */
  watches: number;
  /** The last transaction id applied. */
  zxid: bigint;
  /** Requests answered since start. */
  requests: number;
  /** Heartbeat datagrams whose signature checked. */
  heartbeatsAccepted: number;
  /** Heartbeat datagrams dropped (malformed, unknown session, replayed counter or bad signature). */
  heartbeatsRejected: number;
  /** Expiry notices sent for heartbeats of expired sessions. */
  expiryNotices: number;
  /** Sessions refused by the session limits. */
  refusedSessions: number;
  /** Replies over maxReplyBytes, answered LIMIT_EXCEEDED instead. */
  oversizedReplies: number;
  /** Sends that failed (the connection was closed). */
  sendFailures: number;
  /** Writes that could not be made durable (STORAGE_FAILED). */
  writeFailures: number;
  /** Whether the server is read-only (its log cannot be written). */
  readOnly: boolean;
  /** Connections closed for holding a partial frame past frameTimeoutMs. */
  framesTimedOut: number;
  /** Connections closed because partial frames passed maxBufferedBytes. */
  closedForBufferedBytes: number;
  /** Frames too big or not parsing, each closing its connection. */
  badFrames: number;
  /** Connections refused for passing maxConnectionsPerIp. */
  rejectedConnections: number;
  /** Sessions that expired for missing their heartbeats. */
  expiredSessions: number;
  /** Connections closed for opening no session in time. */
  handshakeTimeouts: number;
  /** Durable writes made: log batches (concurrent changes share one: group commit) and snapshots. */
  syncs: number;
  /** Milliseconds since start. */
  uptimeMs: number;
  /** Requests by operation (`create`, `get`, ...). */
  requestsByOp: Record<string, number>;
  /** Error answers by code name (`NO_NODE`, ...). */
  errorsByCode: Record<string, number>;
  /** The counters of each listener (`listeners` option) by its name. */
  listeners: Record<string, Record<string, number>>;
}

/**
 * One session as the status pages show it.
 *
 * @example
 * ```ts
 * import type { RegistryServer } from "./registry_server.ts";
 *
 * const disconnected = (server: RegistryServer) => server.sessions().filter((session) => !session.connected);
 * ```
 */
export interface SessionInfo {
  /** The session id. */
  id: bigint;
  /** Whether a TCP connection is attached now. */
  connected: boolean;
  /** Heartbeat periods missed in a row. */
  misses: number;
  /** Its ephemeral nodes. */
  ephemerals: string[];
  /** The client's address, while connected. */
  peer?: string;
}

// One source of defaults for the server's options.
/** Every default of {@linkcode RegistryServerOptions}, in one place. */
export const REGISTRY_SERVER_DEFAULTS = {
  host: "127.0.0.1",
  port: 10606,
  heartbeatTimeoutMs: 2000,
  heartbeatMaxCount: 5,
  snapshotEveryTxns: 100_000,
  maxFrameBytes: 4 * 1024 * 1024,
  maxReplyBytes: 4 * 1024 * 1024,
  maxDataBytes: 1024 * 1024,
  maxConnectionsPerIp: 1024,
  maxSessions: 100_000,
  maxSessionsPerIp: 1024,
  maxAuthTokenBytes: 1024,
  maxWatchesPerSession: 10_000,
  maxWatches: 1_000_000,
  handshakeTimeoutMs: 10_000,
  frameTimeoutMs: 30_000,
  maxBufferedBytes: 16 * 1024 * 1024,
} as const;

/** The options with their defaults filled in. */
export type ResolvedRegistryServerOptions =
  & {
    -readonly [K in keyof typeof REGISTRY_SERVER_DEFAULTS]: (typeof REGISTRY_SERVER_DEFAULTS)[K] extends string ? string
      : number;
  }
  & Pick<
    RegistryServerOptions,
    "heartbeatPort" | "dataDir" | "authToken" | "acl" | "tls" | "unsafeEarlyFailures" | "listeners"
  >;
