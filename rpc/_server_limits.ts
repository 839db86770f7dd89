/**
 * A provider's limits and timings in one table: each option's `rpcserver_` config key, its least valid value (or
 * that it is a switch, true or false) and its default. The provider resolves its options against it once
 * (`serverLimits`), hands the same values to its Workers and its transport, and the config parser can check keys
 * against it; nothing else holds a default.
 * What each limit means is documented on RpcProviderOptions; when one is hit, it is counted by name in
 * `dwt_rpc_limit_hits_total` (see RpcProviderStats.limitsHit).
 *
 * @module
 */

import { DEFAULT_MAX_FRAME_BYTES, RECOMMENDED_FRAME_TIMEOUT_MS } from "../reactor/length_header_codec.ts";
import { DEFAULT_CLOSE_AT_BYTES, DEFAULT_PAUSE_AT_BYTES } from "../reactor/flow_control.ts";
import { DEFAULT_WINDOW_BYTES } from "./_rpc_wire.ts";

/** What the limits resolved before one limit came to (a default may follow another limit). */
type Resolved = Readonly<Record<string, number | boolean | undefined>>;

/** One numeric limit: its config key, its least valid value, and its default (given the limits resolved before it). */
interface NumberSpec {
  readonly key: string;
  readonly min: number;
  readonly fallback: (resolved: Resolved) => number;
}

/** One switch: its config key and its default. */
interface SwitchSpec {
  readonly key: string;
  readonly switch: true;
  readonly fallback: (resolved: Resolved) => boolean;
}

type LimitSpec = NumberSpec | SwitchSpec;

const constant = <T>(value: T) => () => value;

/** Every limit, in the order they resolve (`maxBufferedFrameBytes` follows `maxFrameBytes`). */
export const SERVER_LIMITS = {
  maxConnections: { key: "rpcserver_max_connections", min: 1, fallback: constant(10_000) },
  maxConnectionsPerAddress: { key: "rpcserver_max_connections_per_address", min: 1, fallback: constant(1000) },
  handshakeTimeoutMs: { key: "rpcserver_handshake_timeout_ms", min: 1, fallback: constant(10_000) },
  evictSilentAtCap: { key: "rpcserver_evict_silent_at_cap", switch: true, fallback: constant(true) },
  maxCallsPerConnection: { key: "rpcserver_max_calls_per_connection", min: 1, fallback: constant(1000) },
  maxStreamsPerConnection: { key: "rpcserver_max_streams_per_connection", min: 1, fallback: constant(100) },
  streamWindowBytes: { key: "rpcserver_stream_window_bytes", min: 65_536, fallback: constant(DEFAULT_WINDOW_BYTES) },
  idleTimeoutMs: { key: "rpcserver_idle_timeout_ms", min: 0, fallback: constant(300_000) },
  maxFrameBytes: { key: "rpcserver_max_frame_bytes", min: 1024, fallback: constant(DEFAULT_MAX_FRAME_BYTES) },
  frameTimeoutMs: { key: "rpcserver_frame_timeout_ms", min: 1, fallback: constant(RECOMMENDED_FRAME_TIMEOUT_MS) },
  maxBufferedFrameBytes: {
    key: "rpcserver_max_buffered_frame_bytes",
    min: 1,
    fallback: (resolved) => Math.max(2 * (resolved.maxFrameBytes as number), 1024 * 1024),
  },
  pauseReadingAtBytes: { key: "rpcserver_pause_reading_at_bytes", min: 1, fallback: constant(DEFAULT_PAUSE_AT_BYTES) },
  maxUnsentBytes: { key: "rpcserver_max_unsent_bytes", min: 1, fallback: constant(DEFAULT_CLOSE_AT_BYTES) },
  maxMetadataBytes: { key: "rpcserver_max_metadata_bytes", min: 0, fallback: constant(8192) },
  keepaliveIntervalMs: { key: "rpcserver_keepalive_interval_ms", min: 0, fallback: constant(10_000) },
  keepaliveTimeoutMs: { key: "rpcserver_keepalive_timeout_ms", min: 1, fallback: constant(5_000) },
  drainGraceMs: { key: "rpcserver_drain_grace_ms", min: 0, fallback: constant(5_000) },
  // Not a limit, but a switch Workers need as well; the table is how provider settings reach them and the config.
  reflection: { key: "rpcserver_reflection", switch: true, fallback: constant(true) },
} as const satisfies Record<string, LimitSpec>;

/** The name of one limit (an RpcProviderOptions field). */
export type ServerLimitName = keyof typeof SERVER_LIMITS;

/** The value of one limit: a number, or a boolean for a switch. */
export type ServerLimitValue<Name extends ServerLimitName> = (typeof SERVER_LIMITS)[Name] extends SwitchSpec ? boolean
  : number;

/** Every limit, resolved. */
export type ServerLimits = { readonly [name in ServerLimitName]: ServerLimitValue<name> };

/** The names of the limits, in table order. */
export const SERVER_LIMIT_NAMES: readonly ServerLimitName[] = Object.keys(SERVER_LIMITS) as ServerLimitName[];

/** `options`' limits with the defaults filled in (other fields of `options` are ignored). */
export function serverLimits(options: { readonly [name in ServerLimitName]?: ServerLimitValue<name> }): ServerLimits {
  const resolved: Partial<Record<ServerLimitName, number | boolean>> = {};
  for (const name of SERVER_LIMIT_NAMES) resolved[name] = options[name] ?? SERVER_LIMITS[name].fallback(resolved);
  return Object.freeze(resolved as ServerLimits);
}
