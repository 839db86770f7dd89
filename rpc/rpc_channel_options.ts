/**
 * The options of a channel, in a file of their own so the channel's router can read them without importing the
 * channel.
 *
 * @module
 */

import type { TlsClientOptions } from "../reactor/backend/net_backend.ts";
import type { EventLoop } from "../reactor/event_loop.ts";
import type { Registry } from "../registry/registry.ts";
import type { ClientInterceptor } from "./client_handler.ts";
import type { LoadBalancer, LoadBalancerName } from "./load_balancer.ts";
import type { ClientTransportFactory } from "./transport.ts";

/**
 * Options of {@linkcode RpcChannel}.
 *
 * @example
 * ```ts
 * import { RpcChannel, type RpcChannelOptions } from "./rpc_channel.ts";
 *
 * const options: RpcChannelOptions = {
 *   providers: { "dwt.UserServiceRpc": ["127.0.0.1:8800", "127.0.0.1:8801"] }, // or registry: a Registry
 *   loadBalancer: "p2c",
 *   timeoutMs: 2_000,
 *   maxRetries: 2,
 * };
 * const channel = new RpcChannel(options);
 * await channel.close();
 * ```
 */
export interface RpcChannelOptions {
  /** Where to discover providers. Either this or `providers`. */
  registry?: Registry;
  /** Fixed provider addresses per service (`{ "dwt.UserServiceRpc": ["127.0.0.1:8800"] }`), without a registry. */
  providers?: Record<string, string[]>;
  /**
   * The loop to run on.
   * @default {EventLoop.current()}
   */
  loop?: EventLoop;
  /**
   * Load balancing: a name or your own balancer.
   * @default {"round_robin"}
   */
  loadBalancer?: LoadBalancerName | LoadBalancer;
  /**
   * The deadline of calls that set none, in milliseconds.
   * @default {5000}
   */
  timeoutMs?: number;
  /**
   * Retries per call when it is safe (the request never reached a provider).
   * @default {2}
   */
  maxRetries?: number;
  /**
   * The first retry's delay in milliseconds; doubles per retry.
   * @default {10}
   */
  retryBackoffMs?: number;
  /**
   * Retries allowed as a share of calls (a token bucket), so retries cannot multiply an outage's load.
   * @default {0.2}
   */
  retryBudgetRatio?: number;
  /**
   * How long connecting to a provider may take, in milliseconds.
   * @default {3000}
   */
  connectTimeoutMs?: number;
  /**
   * The largest response frame, in bytes.
   * @default {64 MiB}
   */
  maxFrameBytes?: number;
  /**
   * Interceptors, outermost first.
   * @default {[]}
   */
  interceptors?: ClientInterceptor[];
  /**
   * Call providers over TLS, trusting these certificates in addition to the system's.
   * @default {undefined}
   */
  tls?: TlsClientOptions;
  /**
   * Ping a provider connection that received nothing for this long, in milliseconds; 0 turns keepalive off.
   * @default {10000}
   */
  keepaliveIntervalMs?: number;
  /**
   * Close a connection whose ping went unanswered this long, in milliseconds: its calls fail UNAVAILABLE (safe to
   * retry only if never written) and the provider is ejected.
   * @default {5000}
   */
  keepaliveTimeoutMs?: number;
  /**
   * Makes the transport to each provider: by default the reactor's TCP with the envelope of proto/rpc.proto. For
   * tests (`MemoryTransport`) and other media.
   * @default {undefined}
   */
  transport?: ClientTransportFactory;
  /**
   * Call the C++ seed's providers (config key `rpcclient_seed_providers`): find them in the seed's registry layout
   * (`/<Service>/<Method>` = `ip:port`, simple service names) instead of ours, and call them with the seed's frame,
   * one connection per call (seed/rpc/seed_client_transport.ts: what each of its outcomes becomes). Deadlines,
   * retries of calls that never reached a provider, and ejection work as usual; no metadata and no streams cross.
   * With `providers`, the fixed addresses are seed ports.
   * @default {false}
   */
  seedProviders?: boolean;
  /**
   * Outlier ejection: a provider whose calls miss their deadline this many times in a row is skipped.
   * @default {5}
   */
  ejectAfterFailures?: number;
  /**
   * How long the first ejection of a provider lasts, in milliseconds; each ejection in a row doubles it, up to
   * `maxEjectionMs`. After it the provider is probed with calls again; one success clears its record.
   * @default {1000}
   */
  ejectionBackoffMs?: number;
  /**
   * The longest ejection, in milliseconds.
   * @default {30000}
   */
  maxEjectionMs?: number;
  /**
   * Empty-list protection, in milliseconds: an empty provider list that the registry gives right after a session
   * event (a reconnect, an expiry: the providers may not have re-created their nodes yet) replaces a non-empty one
   * only once it has stayed empty this long; calls meanwhile go to the last known providers. A provider that
   * really leaves while others stay is dropped at once; so is the last one when no session event is near. 0 turns
   * the protection off. Config key `rpcclient_empty_list_grace_ms`.
   * @default {10000}
   */
  emptyListGraceMs?: number;
  /**
   * Each stream's receive window in bytes: the most a provider may send on one stream before this caller's loop
   * reads it, so the most one stream buffers here (at least 65536, HTTP/2's initial window, also the default).
   * Config key `rpcclient_stream_window_bytes`.
   * @default {65536}
   */
  streamWindowBytes?: number;
}
