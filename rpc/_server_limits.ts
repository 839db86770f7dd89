/**
 * A provider's limits and timings in one table: each option's `rpcserver_` config key, its least valid value and
 * its default. The provider resolves its options against it once (`serverLimits`), hands the same numbers to its
 * Workers and its transport, and the config parser can check keys against it; nothing else holds a default.
 * What each limit means is documented on RpcProviderOptions; when one is hit, it is counted by name in
 * `dwt_rpc_limit_hits_total` (see RpcProviderStats.limitsHit).
 *
 * @module
 */

import { DEFAULT_MAX_FRAME_BYTES, RECOMMENDED_FRAME_TIMEOUT_MS } from "../reactor/length_header_codec.ts";
import { DEFAULT_CLOSE_AT_BYTES, DEFAULT_PAUSE_AT_BYTES } from "../reactor/flow_control.ts";

/** One limit: its config key, its least valid value, and its default (given the limits resolved before it). */
interface LimitSpec {
  readonly key: string;
  readonly min: number;
  readonly fallback: (resolved: Readonly<Record<string, number | undefined>>) => number;
}

const constant = (value: number) => () => value;

/** Every limit, in the order they resolve (`maxBufferedFrameBytes` follows `maxFrameBytes`). */
export const SERVER_LIMITS = {
  maxConnections: { key: "rpcserver_max_connections", min: 1, fallback: constant(10_000) },
  maxConnectionsPerAddress: { key: "rpcserver_max_connections_per_address", min: 1, fallback: constant(1000) },
  maxCallsPerConnection: { key: "rpcserver_max_calls_per_connection", min: 1, fallback: constant(1000) },
  idleTimeoutMs: { key: "rpcserver_idle_timeout_ms", min: 0, fallback: constant(300_000) },
  maxFrameBytes: { key: "rpcserver_max_frame_bytes", min: 1024, fallback: constant(DEFAULT_MAX_FRAME_BYTES) },
  frameTimeoutMs: { key: "rpcserver_frame_timeout_ms", min: 1, fallback: constant(RECOMMENDED_FRAME_TIMEOUT_MS) },
  maxBufferedFrameBytes: {
    key: "rpcserver_max_buffered_frame_bytes",
    min: 1,
    fallback: (resolved) => Math.max(2 * resolved.maxFrameBytes!, 1024 * 1024),
  },
  pauseReadingAtBytes: { key: "rpcserver_pause_reading_at_bytes", min: 1, fallback: constant(DEFAULT_PAUSE_AT_BYTES) },
  maxUnsentBytes: { key: "rpcserver_max_unsent_bytes", min: 1, fallback: constant(DEFAULT_CLOSE_AT_BYTES) },
  maxMetadataBytes: { key: "rpcserver_max_metadata_bytes", min: 0, fallback: constant(8192) },
  keepaliveIntervalMs: { key: "rpcserver_keepalive_interval_ms", min: 0, fallback: constant(10_000) },
  keepaliveTimeoutMs: { key: "rpcserver_keepalive_timeout_ms", min: 1, fallback: constant(5_000) },
  drainGraceMs: { key: "rpcserver_drain_grace_ms", min: 0, fallback: constant(5_000) },
} as const satisfies Record<string, LimitSpec>;

/** The name of one limit (an RpcProviderOptions field). */
export type ServerLimitName = keyof typeof SERVER_LIMITS;

/** Every limit, resolved. */
export type ServerLimits = { readonly [name in ServerLimitName]: number };

/** The names of the limits, in table order. */
export const SERVER_LIMIT_NAMES: readonly ServerLimitName[] = Object.keys(SERVER_LIMITS) as ServerLimitName[];

/** `options`' limits with the defaults filled in (other fields of `options` are ignored). */
export function serverLimits(options: { readonly [name in ServerLimitName]?: number }): ServerLimits {
  const resolved: Partial<Record<ServerLimitName, number>> = {};
  for (const name of SERVER_LIMIT_NAMES) resolved[name] = options[name] ?? SERVER_LIMITS[name].fallback(resolved);
  return Object.freeze(resolved as Record<ServerLimitName, number>);
}
