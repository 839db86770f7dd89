/**
 * The provider (the seed's DwtRpcProvider): registers service implementations, serves their calls on the
 * reactor's TcpServer over the multiplexed envelope of proto/rpc.proto, and publishes each service in the
 * registry as an ephemeral node `/<Service>/<host:port>` whose data lists the methods. Deadlines reach the
 * handlers as an AbortSignal; shutdown is a drain (unpublish, a drain frame on every connection, finish calls in
 * flight within a grace period, close), on every Worker too. Every input has a limit with a safe default, counted
 * in `/metrics` (connections in all and per address, calls per connection, partial frames and their bytes, unsent
 * replies, metadata, duplicate call ids, far deadlines, idle and unresponsive callers). "Safe to retry" is set
 * here only, on answers to calls no handler saw (proto/rpc.proto, "At most once").
 *
 * @module
 */

import type { TlsServerOptions } from "../reactor/backend/net_backend.ts";
import type protobuf from "protobufjs";
import { EventLoop } from "../reactor/event_loop.ts";
import { InetAddress } from "../reactor/inet_address.ts";
import {
  DEFAULT_MAX_FRAME_BYTES,
  LengthHeaderCodec,
  RECOMMENDED_FRAME_TIMEOUT_MS,
} from "../reactor/length_header_codec.ts";
import { applyFlowControl, DEFAULT_CLOSE_AT_BYTES, DEFAULT_PAUSE_AT_BYTES } from "../reactor/flow_control.ts";
import { HttpServer, type HttpServerOptions } from "../reactor/http_server.ts";
import { getLogger } from "../reactor/logger.ts";
import type { TcpConnection } from "../reactor/tcp_connection.ts";
import { TcpServer } from "../reactor/tcp_server.ts";
import type { TimerId } from "../reactor/timer_queue.ts";
import { NodeType } from "../registry/data_tree.ts";
import type { Registry } from "../registry/registry.ts";
import { RegistryError, RegistryErrorCode } from "../registry/registry_error.ts";
import { type DecodedFrame, decodeRpcFrame, FrameKind, sendDrain, sendPing } from "./_rpc_codec.ts";
import { messageDecoder, messageEncoder } from "./_proto3_defaults.ts";
import { copyBytes } from "./_byte_slab.ts";
import { type HandlerEntry, ServedConnection, type ServedConnectionOptions, ServerCall } from "./_server_call.ts";
import { CallLedger } from "./_call_ledger.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import { providerStatusHandler } from "./provider_status.ts";
import { definitionOf, type ServiceDefinition } from "./service_definition.ts";

/**
 * What a handler knows about its call.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import { RpcChannel, type StubMethod } from "./rpc_channel.ts";
 * import { type CallContext, RpcProvider } from "./rpc_provider.ts";
 * import { parseProto, serviceDefinition } from "./service_definition.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo;
 *   message Msg { string text = 1; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`);
 * const echo = serviceDefinition(root, "demo.Echo");
 * const loop = new EventLoop();
 * const provider = new RpcProvider({ loop });
 * provider.registerService(echo, {
 *   Say: (request: { text: string }, context: CallContext) => {
 *     context.responseMetadata["served-by"] = "example";
 *     return { text: `${request.text} from ${context.metadata["user"]}, ${context.method}` };
 *   },
 * });
 * await provider.start();
 * const channel = new RpcChannel({ loop, providers: { "demo.Echo": [provider.advertisedAddress] } });
 * const stub = channel.stub<{ Say: StubMethod }>(echo);
 * assert.equal((await stub.Say({ text: "hi" }, { metadata: { user: "dwt" } })).text, "hi from dwt, Say");
 * await channel.close();
 * await provider.stop();
 * ```
 */
export interface CallContext {
  /** Full service name. */
  readonly service: string;
  /** Method name. */
  readonly method: string;
  /** Fires when the caller gives up (deadline, cancel, connection lost) or the provider stops. */
  readonly signal: AbortSignal;
  /** Metadata the caller sent. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Metadata to send back with the response (set entries on it). */
  readonly responseMetadata: Record<string, string>;
  /** The caller's address. */
  readonly peer: string;
  /** Milliseconds the caller still waits (Infinity without a deadline). */
  timeRemainingMs(): number;
}

/**
 * A decoded call on its way to the handler.
 *
 * @example
 * ```ts
 * import type { ServerHandler } from "./rpc_provider.ts";
 *
 * // What an interceptor wraps: the rest of the chain, ending in the method's handler.
 * const timed = (next: ServerHandler): ServerHandler => async (request, context) => {
 *   const start = performance.now();
 *   try {
 *     return await next(request, context);
 *   } finally {
 *     console.log(`${context.service}.${context.method} took ${(performance.now() - start).toFixed(1)} ms`);
 *   }
 * };
 * ```
 */
export type ServerHandler = (request: unknown, context: CallContext) => Promise<unknown>;

/**
 * A method implementation: takes the decoded request, returns the response (a message or a plain object).
 *
 * @example
 * ```ts
 * import type { CallContext, MethodHandler } from "./rpc_provider.ts";
 *
 * // A handler may return the response or a promise of it, and should stop when the caller gives up.
 * const slowEcho: MethodHandler = async (request: { text: string }, context: CallContext) => {
 *   await new Promise((resolve) => setTimeout(resolve, Math.min(100, context.timeRemainingMs())));
 *   context.signal.throwIfAborted();
 *   return { text: request.text };
 * };
 * ```
 */
// `any` on purpose: handlers declare their own request types (generated from the .proto), which a parameter of
// `unknown` would not accept without a cast in every handler.
// deno-lint-ignore no-explicit-any
export type MethodHandler = (request: any, context: CallContext) => unknown;

/**
 * A service implementation: handlers by method name (`Login` or `login`); a class instance works too.
 *
 * @example
 * ```ts
 * import type { ServiceImplementation } from "./rpc_provider.ts";
 *
 * // An object (or class instance) with one method per RPC, named as in the .proto.
 * class UserService {
 *   Login(request: { name: string }) {
 *     return { success: request.name !== "" };
 *   }
 * }
 * const implementation: ServiceImplementation = new UserService();
 * ```
 */
export type ServiceImplementation = object;

/**
 * Wraps the handler chain: for auth, logging, metrics.
 *
 * @example
 * ```ts
 * import { RpcCode, RpcError } from "./rpc_error.ts";
 * import { RpcProvider, type ServerInterceptor } from "./rpc_provider.ts";
 *
 * // Refuse calls without the right token before they reach a handler.
 * const requireToken: ServerInterceptor = (next) => (request, context) => {
 *   if (context.metadata["authorization"] !== "Bearer s3cret") {
 *     throw new RpcError(RpcCode.UNAUTHENTICATED, "A valid token is required");
 *   }
 *   return next(request, context);
 * };
 * const provider = new RpcProvider({ interceptors: [requireToken] });
 * ```
 */
export type ServerInterceptor = (next: ServerHandler) => ServerHandler;

/**
 * A module's function that registers services on a provider, for {@linkcode RpcProvider.registerModule}: each
 * Worker of a multi-threaded provider loads the module and calls it with its own provider.
 *
 * @example
 * ```ts
 * import type { RegisterServices } from "./rpc_provider.ts";
 * import { parseProto, serviceDefinition } from "./service_definition.ts";
 *
 * // Exported from a module given to provider.registerModule(url): each Worker thread runs it for its own provider.
 * const root = parseProto(`syntax = "proto3"; package demo;
 *   message Msg { string text = 1; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`);
 * const echo = serviceDefinition(root, "demo.Echo");
 * export const registerServices: RegisterServices = (provider) => {
 *   provider.registerService(echo, { Say: (request: { text: string }) => request });
 * };
 * ```
 */
export type RegisterServices = (provider: RpcProvider) => void | Promise<void>;

/**
 * Options of {@linkcode RpcProvider}.
 *
 * @example
 * ```ts
 * import { RpcProvider, type RpcProviderOptions } from "./rpc_provider.ts";
 *
 * const options: RpcProviderOptions = { host: "0.0.0.0", port: 8800, maxConnections: 10_000, drainGraceMs: 5_000 };
 * const provider = new RpcProvider(options);
 * ```
 */
export interface RpcProviderOptions {
  /**
   * Serve on this many Worker threads, each with its own EventLoop and listening socket on the same port
   * (SO_REUSEPORT; the kernel spreads connections). Needs the services as a module
   * ({@linkcode RpcProvider.registerModule}). 0 serves on the provider's own loop. Where the runtime has no
   * SO_REUSEPORT, one loop serves and a warning says why.
   * @default {0}
   */
  threads?: number;
  /**
   * Listen address (the seed's `rpcserver_ip`).
   * @default {"127.0.0.1"}
   */
  host?: string;
  /**
   * Listen port (the seed's `rpcserver_port`); 0 picks one.
   * @default {0}
   */
  port?: number;
  /**
   * Where to publish services; without one nothing is published (callers must know the address).
   * @default {undefined}
   */
  registry?: Registry;
  /**
   * The address published for callers, when it differs from the listen address (0.0.0.0, NAT).
   * @default {the listen address}
   */
  advertisedHost?: string;
  /**
   * The loop to serve on.
   * @default {EventLoop.current()}
   */
  loop?: EventLoop;
  /**
   * The largest frame accepted, in bytes.
   * @default {64 MiB}
   */
  maxFrameBytes?: number;
  /**
   * Interceptors, outermost first.
   * @default {[]}
   */
  interceptors?: ServerInterceptor[];
  /**
   * Connections served at once; more are closed on arrival (counted as limit `connections`).
   * @default {10000}
   */
  maxConnections?: number;
  /**
   * Calls in flight on one connection; more are answered RESOURCE_EXHAUSTED, safe to retry (limit `calls`).
   * @default {1000}
   */
  maxCallsPerConnection?: number;
  /**
   * Close a connection with no call in flight and no request for this long, in milliseconds (limit `idle`); 0
   * never. Keepalive pings do not count as traffic here.
   * @default {300000}
   */
  idleTimeoutMs?: number;
  /**
   * Connections from one peer address served at once; more are closed on arrival (limit
   * `connections_per_address`), so one host cannot take every slot of `maxConnections`.
   * @default {1000}
   */
  maxConnectionsPerAddress?: number;
  /**
   * Read deadline of a partial frame, in milliseconds: a connection that holds part of a frame for longer is closed
   * (limit `frame_timeout`).
   * @default {30000}
   */
  frameTimeoutMs?: number;
  /**
   * Partial-frame bytes held for all connections together; a connection whose partial frame would pass it is
   * closed (limit `partial_frame_bytes`). One connection's partial frame is bounded by `maxFrameBytes`.
   * @default {2 × maxFrameBytes (128 MiB)}
   */
  maxBufferedFrameBytes?: number;
  /**
   * Unsent reply bytes at which a connection stops being read (its caller is not reading its answers).
   * @default {8 MiB}
   */
  pauseReadingAtBytes?: number;
  /**
   * Unsent reply bytes past which a connection is closed (limit `unsent_bytes`).
   * @default {64 MiB}
   */
  maxUnsentBytes?: number;
  /**
   * Metadata bytes per request (key + value + 32 per entry, as HTTP/2 counts headers); a request over it is
   * answered RESOURCE_EXHAUSTED without running (limit `metadata`).
   * @default {8192}
   */
  maxMetadataBytes?: number;
  /**
   * Ping a connection that sent nothing for this long, in milliseconds; 0 turns keepalive off.
   * @default {10000}
   */
  keepaliveIntervalMs?: number;
  /**
   * Close a connection whose ping has gone unanswered this long, in milliseconds (limit `keepalive`); its calls
   * are cancelled. Only callers that answered a ping before are closed for it (older clients ignore pings).
   * @default {5000}
   */
  keepaliveTimeoutMs?: number;
  /**
   * How long {@linkcode RpcProvider.stop} lets calls in flight finish after the drain frame, in milliseconds.
   * @default {5000}
   */
  drainGraceMs?: number;
  /**
   * Serve calls over TLS with this PEM certificate and key (on the main loop; not with `threads`).
   * @default {undefined}
   */
  tls?: TlsServerOptions;
  /**
   * Serve the status pages (`/status`, `/metrics`, `/ruok`) over HTTP on this port (0: any free port); off when
   * undefined. See {@linkcode RpcProvider.statusAddress}.
   * @default {undefined}
   */
  statusPort?: number;
  /**
   * The status pages' listen address: loopback unless told otherwise.
   * @default {"127.0.0.1"}
   */
  statusHost?: string;
  /**
   * Limits of the status server (deadlines, connection cap, request size, the Host names it answers besides
   * loopback and IP addresses: set `allowedHosts` when the pages are reached by name).
   * @default {HttpServer's defaults}
   */
  statusServer?: HttpServerOptions;
}

/**
 * A provider's counters (per isolate: with `threads`, each Worker counts its own calls).
 *
 * @example
 * ```ts
 * import type { RpcProvider } from "./rpc_provider.ts";
 *
 * const line = (provider: RpcProvider) => {
 *   const stats = provider.stats();
 *   return `${stats.connections} connections, ${stats.callsInFlight} in flight, ${stats.callsServed} served`;
 * };
 * ```
 */
export interface RpcProviderStats {
  /** Milliseconds since start. */
  uptimeMs: number;
  /** Connections open now. */
  connections: number;
  /** Calls whose handler has not answered yet. */
  callsInFlight: number;
  /** Calls answered since start (successfully or not). */
  callsServed: number;
  /** Answers by `service.method` (unknown ones as `unknown`), split by status name (`OK`, `UNKNOWN`, ...). */
  calls: Record<string, Record<string, number>>;
  /** Failed calls by status name. */
  errorsByCode: Record<string, number>;
  /**
   * Times a limit was hit, by limit: `connections`, `connections_per_address`, `calls`, `idle`, `frame` (every
   * frame rejected: too large, too slow or over the partial-frame cap), `frame_timeout`, `partial_frame_bytes`,
   * `unsent_bytes`, `metadata`, `duplicate_call_id`, `deadline_clamped`, `keepalive`, `drain_refused` (requests
   * refused while draining) and `drain_grace_expired` (calls cut off after the grace period).
   */
  limitsHit: Record<string, number>;
}

/** The longest deadline a provider keeps: longer ones are clamped to it (the host timers' range, about 24.8 days). */
export const MAX_DEADLINE_MS = 0x7fff_ffff;

interface RegisteredService {
  definition: ServiceDefinition;
  handlers: Map<string, HandlerEntry>;
}

const EMPTY_BYTES = new Uint8Array(0);
/**
 * The one place "safe to retry" is set: the provider's transport, on answers to calls no handler saw. Handlers'
 * errors never carry it (ServerCall strips the transport's keys).
 */
const RETRY_SAFE: Record<string, string> = Object.freeze({ "dwt-retry-safe": "1" }) as Record<string, string>;

// Set by RpcProvider's static block: lets initProviderThread attach a provider to a Worker's server without
// making that a public method.
let attachToServer: (provider: RpcProvider, server: TcpServer) => void;
let listenForDrain: (provider: RpcProvider, channelName: string) => void;

/**
 * Serves registered services and publishes them.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import { RpcProvider } from "./rpc_provider.ts";
 * import { parseProto, serviceDefinition } from "./service_definition.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo;
 *   message Msg { string text = 1; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`);
 * const provider = new RpcProvider({ loop: new EventLoop() });
 * provider.registerService(serviceDefinition(root, "demo.Echo"), { Say: (request: { text: string }) => request });
 * await provider.start();
 * assert.ok(provider.address.port > 0);
 * await provider.stop();
 * ```
 */
export class RpcProvider {
  readonly #options: RpcProviderOptions;
  readonly #loop: EventLoop;
  readonly #services = new Map<string, RegisteredService>();
  readonly #codec: LengthHeaderCodec;
  // The connections being served (also each connection's `context`).
  readonly #served = new Set<ServedConnection>();
  // What every served connection shares: the loop, the accounting and the answer limits.
  readonly #servedOptions: ServedConnectionOptions;
  readonly #ledger = new CallLedger();
  #server: TcpServer | undefined;
  #published: string[] = [];
  #stopping = false;
  #removeSessionListener: (() => void) | undefined;
  #module: { moduleUrl: string; exportName: string } | undefined;
  #startedAt = 0;
  #status: HttpServer | undefined;
  #housekeepingTimer: TimerId | undefined;
  // Connections per peer host.
  readonly #byAddress = new Map<string, number>();
  #pingData = 0;
  #stopped: Promise<void> | undefined;
  // Threads: the Workers' providers hear "drain" on this channel and answer "drained".
  #threadChannel: BroadcastChannel | undefined;
  readonly #maxMetadataBytes: number;

  static {
    attachToServer = (provider, server) => provider.#attach(server);
    listenForDrain = (provider, channelName) => provider.#listenForDrain(channelName);
  }

  /** Configure a provider; nothing listens until {@linkcode RpcProvider.start}. */
  constructor(options: RpcProviderOptions = {}) {
    this.#options = options;
    this.#loop = options.loop ?? EventLoop.current();
    const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.#maxMetadataBytes = options.maxMetadataBytes ?? 8192;
    this.#servedOptions = {
      loop: this.#loop,
      ledger: this.#ledger,
      maxFrameBytes,
      maxUnsentBytes: options.maxUnsentBytes ?? DEFAULT_CLOSE_AT_BYTES,
    };
    this.#codec = new LengthHeaderCodec(
      (connection, body, receiveTimeMs) => this.#onFrame(connection, body, receiveTimeMs),
      {
        maxFrameBytes,
        frameTimeoutMs: options.frameTimeoutMs ?? RECOMMENDED_FRAME_TIMEOUT_MS,
        maxBufferedBytes: options.maxBufferedFrameBytes ?? Math.max(2 * maxFrameBytes, 1024 * 1024),
        onFrameError: (connection, reason) => {
          this.#limitHit("frame");
          getLogger().warn(`RpcProvider closing ${connection.name}: ${reason}`);
        },
      },
    );
  }

  /** The listen address (after start). */
  get address(): InetAddress {
    if (this.#server === undefined) throw new TypeError("Cannot get the address of a provider before start");
    return this.#server.address;
  }

  /** The address callers are told, `host:port`. */
  get advertisedAddress(): string {
    const address = this.address;
    const host = this.#options.advertisedHost ?? address.hostname;
    return new InetAddress(host, address.port).toString();
  }

  /** Calls answered so far. */
  get callsServed(): number {
    return this.#ledger.served;
  }

  /** Calls being handled now. */
  get callsInFlight(): number {
    return this.#ledger.inFlight;
  }

  /** The status pages' address, when `statusPort` is set (after start). */
  get statusAddress(): InetAddress | undefined {
    return this.#status?.address;
  }

  /** Counters for status pages and metrics. */
  stats(): RpcProviderStats {
    return {
      uptimeMs: this.#startedAt === 0 ? 0 : this.#loop.now() - this.#startedAt,
      connections: this.#server?.connectionCount ?? 0,
      callsInFlight: this.#ledger.inFlight,
      callsServed: this.#ledger.served,
      calls: this.#ledger.calls(),
      errorsByCode: this.#ledger.errorsByCode(),
      limitsHit: this.#limitsHitWithCodec(),
    };
  }

  #limitsHitWithCodec(): Record<string, number> {
    const limits = this.#ledger.limitsHit();
    const codec = this.#codec.stats;
    if (codec.framesTimedOut > 0) limits.frame_timeout = codec.framesTimedOut;
    if (codec.closedForBufferCap > 0) limits.partial_frame_bytes = codec.closedForBufferCap;
    return limits;
  }

  #limitHit(limit: string): void {
    this.#ledger.limitHit(limit);
  }

  /**
   * Register a service implementation: an object (or class instance) with a handler per method, named as in the
   * .proto (`Login`) or lower camel case (`login`). Every method must have a handler.
   */
  registerService(service: ServiceDefinition | protobuf.Service, implementation: ServiceImplementation): void {
    const definition = "methods" in service && service.methods instanceof Map
      ? service as ServiceDefinition
      : definitionOf(service as protobuf.Service);
    if (this.#server !== undefined) {
      throw new TypeError(`Cannot register service '${definition.fullName}' after the provider started`);
    }
    const handlers = new Map<string, HandlerEntry>();
    const impl = implementation as Record<string, unknown>;
    for (const method of definition.methods.values()) {
      const lower = method.name[0]!.toLowerCase() + method.name.slice(1);
      const fn = impl[method.name] ?? impl[lower];
      if (typeof fn !== "function") {
        throw new TypeError(
          `Cannot register service '${definition.fullName}' as it has no handler for method '${method.name}'`,
        );
      }
      const interceptors = this.#options.interceptors ?? [];
      // Without interceptors the handler is called as it is: a synchronous answer settles the call at once, with
      // no promise. Interceptors are promised a handler that returns a promise.
      const direct = (request: unknown, context: CallContext) =>
        (fn as MethodHandler).call(implementation, request, context);
      const base: ServerHandler = (request, context) => {
        try {
          return Promise.resolve(direct(request, context));
        } catch (error) {
          return Promise.reject(error);
        }
      };
      const handler = interceptors.length === 0
        ? direct
        : interceptors.reduceRight((next, interceptor) => interceptor(next), base);
      handlers.set(method.name, {
        method,
        handler,
        counts: undefined,
        decodeRequest: messageDecoder(method.requestType),
        encodableResponse: messageEncoder(method.responseType),
      });
    }
    this.#services.set(definition.fullName, { definition, handlers });
  }

  /**
   * Register the services of a module: it exports a {@linkcode RegisterServices} function (default name
   * `registerServices`) that calls `registerService` on the provider it is given. This is how services reach the
   * Workers of a provider with `threads`; it works without threads too.
   *
   * @param moduleUrl The module's URL (for example `new URL("./user_service.ts", import.meta.url).href`).
   * @param exportName The exported function's name.
   */
  async registerModule(moduleUrl: string, exportName = "registerServices"): Promise<void> {
    const module = await import(moduleUrl);
    const register = module[exportName];
    if (typeof register !== "function") {
      throw new TypeError(`Cannot register services from ${moduleUrl} as its '${exportName}' is not a function`);
    }
    await (register as RegisterServices)(this);
    this.#module = { moduleUrl, exportName };
  }

  /** The seed's name for {@linkcode RpcProvider.registerService}. */
  notifyService(service: ServiceDefinition | protobuf.Service, implementation: ServiceImplementation): void {
    this.registerService(service, implementation);
  }

  /** Listen, then publish every service to the registry. */
  async start(): Promise<void> {
    if (this.#server !== undefined) throw new TypeError("Cannot start a provider twice");
    const server = new TcpServer(
      this.#loop,
      new InetAddress(this.#options.host ?? "127.0.0.1", this.#options.port ?? 0),
      "RpcProvider",
      { tls: this.#options.tls },
    );
    const threads = this.#options.threads ?? 0;
    if (threads > 0 && this.#options.tls !== undefined) {
      throw new TypeError("Cannot run a provider with both 'threads' and 'tls' (TLS is served on the main loop only)");
    }
    if (threads > 0) {
      if (this.#module === undefined) {
        throw new TypeError(
          `Cannot run a provider on ${threads} threads as its services were not given as a module (registerModule)`,
        );
      }
      server.setThreadNum(threads);
      const channelName = `dwt-rpc-provider-${crypto.randomUUID()}`;
      this.#threadChannel = new BroadcastChannel(channelName);
      const limits: RpcProviderOptions = {};
      for (const key of THREAD_OPTIONS) {
        if (this.#options[key] !== undefined) (limits as Record<string, unknown>)[key] = this.#options[key];
      }
      const data: ProviderThreadData = { ...this.#module, limits, channelName };
      server.setThreadInit(import.meta.url, "initProviderThread", data);
    } else {
      this.#attach(server);
    }
    await server.start();
    this.#server = server;
    this.#startedAt = this.#loop.now();
    if (this.#options.statusPort !== undefined) {
      const status = new HttpServer(
        this.#loop,
        new InetAddress(this.#options.statusHost ?? "127.0.0.1", this.#options.statusPort),
        "RpcProviderStatus",
        providerStatusHandler(this),
        this.#options.statusServer,
      );
      await status.start();
      this.#status = status;
      getLogger().info(`RpcProvider status pages on http://${status.address}/ (/status, /metrics, /ruok)`);
    }
    const registry = this.#options.registry;
    if (registry !== undefined) {
      await this.#publish(registry);
      // After a session expiry the nodes are gone: publish again on the new session (the registry's own
      // recreateEphemerals may be doing the same at once; #publish takes a node the new session owns as done).
      let expired = false;
      this.#removeSessionListener = registry.onSessionEvent((event) => {
        if (event.type === "expired") expired = true;
        if (event.type === "connected" && expired && !this.#stopping) {
          expired = false;
          this.#publish(registry, event.sessionId).catch((error) =>
            getLogger().error("RpcProvider: cannot re-publish after a session expiry", { error })
          );
        }
      });
    }
    getLogger().info(`RpcProvider serving ${[...this.#services.keys()].join(", ")} at ${this.advertisedAddress}`);
  }

  /**
   * Stop gracefully (drain): unpublish every service, then send a drain frame on every connection (with the last
   * call id this provider will answer there, so callers send new calls elsewhere and retry later ones safely), let
   * calls in flight finish for up to `graceMs`, cancel what is left (answered UNAVAILABLE with the reason), and
   * close. A provider with threads drains every Worker the same way. Calling it again returns the same promise.
   */
  stop(options: { graceMs?: number } = {}): Promise<void> {
    this.#stopped ??= this.#stop(options.graceMs ?? this.#options.drainGraceMs ?? 5000);
    return this.#stopped;
  }

  async #stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    this.#removeSessionListener?.();
    const registry = this.#options.registry;
    if (registry !== undefined) {
      for (const path of this.#published) {
        await registry.delete(path).catch(() => {});
      }
    }
    const threadChannel = this.#threadChannel;
    if (threadChannel !== undefined) {
      await this.#drainThreads(threadChannel, graceMs);
      threadChannel.close();
    }
    await this.#drain(graceMs);
    if (this.#housekeepingTimer !== undefined) this.#loop.cancel(this.#housekeepingTimer);
    this.#housekeepingTimer = undefined;
    await this.#server?.stop();
    await this.#status?.stop();
  }

  // Drain the connections this provider serves (on its own loop): the drain frame, the grace period, the cut-off,
  // then each connection closed after its last answer is written.
  async #drain(graceMs: number): Promise<void> {
    this.#stopping = true;
    for (const served of this.#served) this.#sendDrain(served, graceMs);
    if (this.#ledger.inFlight > 0) {
      const idle = this.#ledger.idle = Promise.withResolvers<void>();
      const timer = this.#loop.runAfter(graceMs, () => idle.resolve());
      await idle.promise;
      this.#loop.cancel(timer);
    }
    for (const served of this.#served) {
      for (const call of served.calls()) {
        this.#limitHit("drain_grace_expired");
        call.abort(
          new RpcError(
            RpcCode.UNAVAILABLE,
            `The provider stopped: the call was still running when the drain grace period of ${graceMs} ms ended`,
          ),
        );
      }
    }
    // Half-close after the last answer; callers close their side once their calls are answered.
    const closed: Promise<void>[] = [];
    for (const served of this.#served) {
      const connection = served.connection;
      if (!connection.connected) continue;
      const done = Promise.withResolvers<void>();
      served.onClosed = done.resolve;
      closed.push(done.promise);
      connection.shutdown();
    }
    if (closed.length > 0) {
      let timer: TimerId | undefined;
      await Promise.race([
        Promise.all(closed),
        new Promise<void>((resolve) => timer = this.#loop.runAfter(1000, resolve)),
      ]);
      if (timer !== undefined) this.#loop.cancel(timer);
    }
  }

  #sendDrain(served: ServedConnection, graceMs: number): void {
    if (served.draining || !served.connection.connected) return;
    served.draining = true;
    sendDrain(served.connection, {
      lastCallId: served.maxCallId,
      reason: "The provider is shutting down",
      graceMs,
    });
  }

  // Tell every Worker's provider to drain, and wait until all have (or the grace period and a margin passed).
  async #drainThreads(channel: BroadcastChannel, graceMs: number): Promise<void> {
    // Workers running, or the one provider on this loop where the runtime fell back to one loop.
    const threads = Math.max(1, this.#server?.runningThreads ?? 0);
    let drained = 0;
    const all = Promise.withResolvers<void>();
    channel.onmessage = (event: MessageEvent) => {
      if ((event.data as { type?: string })?.type === "drained" && ++drained >= threads) all.resolve();
    };
    channel.postMessage({ type: "drain", graceMs });
    let timer: TimerId | undefined;
    await Promise.race([
      all.promise,
      new Promise<void>((resolve) => timer = this.#loop.runAfter(graceMs + 2000, resolve)),
    ]);
    if (timer !== undefined) this.#loop.cancel(timer);
    if (drained < threads) {
      getLogger().warn(`RpcProvider: ${threads - drained} of ${threads} Workers did not drain in time`);
    }
  }

  /** Same as {@linkcode RpcProvider.stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /** Publish every service; `sessionId`, when known, is the session whose nodes count as already published. */
  async #publish(registry: Registry, sessionId?: bigint): Promise<void> {
    const address = this.advertisedAddress;
    const published: string[] = [];
    for (const { definition } of this.#services.values()) {
      const servicePath = `/${definition.fullName}`;
      await registry.create(servicePath, "").catch((error) => {
        if (!(error instanceof RegistryError && error.code === RegistryErrorCode.NODE_EXISTS)) throw error;
      });
      const path = `${servicePath}/${address}`;
      const data = JSON.stringify({ address, methods: [...definition.methods.keys()] });
      try {
        await registry.create(path, data, { nodeType: NodeType.EPHEMERAL });
      } catch (error) {
        if (!(error instanceof RegistryError && error.code === RegistryErrorCode.NODE_EXISTS)) throw error;
        if (sessionId !== undefined && (await registry.exists(path))?.ephemeralOwner === sessionId) {
          published.push(path);
          continue;
        }
        // A node left by an earlier run on this address whose session has not expired yet: it is ours now.
        await registry.delete(path).catch(() => {});
        await registry.create(path, data, { nodeType: NodeType.EPHEMERAL });
      }
      published.push(path);
    }
    this.#published = published;
  }

  #attach(server: TcpServer): void {
    server.setConnectionCallback((connection) => {
      this.#codec.onConnection(connection);
      this.#onConnection(connection);
    });
    server.setMessageCallback(this.#codec.onMessage);
    // A caller that sends and never reads stops being read once its replies back up (and is closed past
    // maxUnsentBytes, checked after each answer).
    applyFlowControl(server, { pauseAtBytes: this.#options.pauseReadingAtBytes ?? DEFAULT_PAUSE_AT_BYTES });
  }

  // Called in a Worker: drain on the main provider's word.
  #listenForDrain(channelName: string): void {
    const channel = new BroadcastChannel(channelName);
    channel.onmessage = (event: MessageEvent) => {
      const message = event.data as { type?: string; graceMs?: number };
      if (message?.type !== "drain") return;
      // Not closed after the answer: on Node a channel closed right after postMessage can drop the message. The
      // Worker is terminated after the drain anyway, which releases the channel.
      this.#drain(message.graceMs ?? 5000).finally(() => channel.postMessage({ type: "drained" }));
    };
  }

  #onConnection(connection: TcpConnection): void {
    if (connection.connected) {
      const maxConnections = this.#options.maxConnections ?? 10_000;
      if (this.#served.size >= maxConnections) {
        this.#limitHit("connections");
        getLogger().warn(`RpcProvider refusing ${connection.name}: ${maxConnections} connections already`);
        connection.forceClose();
        return;
      }
      const host = connection.peerAddress.hostname;
      const fromHost = this.#byAddress.get(host) ?? 0;
      const perAddress = this.#options.maxConnectionsPerAddress ?? 1000;
      if (fromHost >= perAddress) {
        this.#limitHit("connections_per_address");
        getLogger().warn(`RpcProvider refusing ${connection.name}: ${perAddress} connections from ${host} already`);
        connection.forceClose();
        return;
      }
      this.#byAddress.set(host, fromHost + 1);
      const served = new ServedConnection(connection, this.#servedOptions);
      connection.context = served;
      this.#served.add(served);
      this.#armHousekeeping();
      // A caller that connects while the provider drains learns it at once.
      if (this.#stopping) this.#sendDrain(served, 0);
      return;
    }
    const served = connection.context as ServedConnection | undefined;
    if (served === undefined) return; // refused
    this.#forget(served);
    served.onClosed();
    // Nobody waits for these calls any more.
    for (const call of served.calls()) call.abort(new RpcError(RpcCode.CANCELLED, "The caller went away"));
  }

  #forget(served: ServedConnection): void {
    if (!this.#served.delete(served)) return;
    const left = (this.#byAddress.get(served.peerHost) ?? 1) - 1;
    if (left <= 0) this.#byAddress.delete(served.peerHost);
    else this.#byAddress.set(served.peerHost, left);
  }

  #onFrame(connection: TcpConnection, body: Uint8Array, receiveTimeMs: number): void {
    const served = connection.context as ServedConnection | undefined;
    if (served === undefined) return; // refused, closing
    served.lastActivityMs = receiveTimeMs;
    served.pingSentMs = 0; // anything from the peer proves it alive
    let frame: DecodedFrame;
    try {
      frame = decodeRpcFrame(body, this.#maxMetadataBytes);
    } catch (error) {
      getLogger().warn(`RpcProvider closing ${connection.name}: a frame does not parse`, { error });
      connection.forceClose();
      return;
    }
    if (frame.kind === FrameKind.REQUEST) {
      served.lastCallMs = receiveTimeMs;
      const callId = frame.callId;
      if (callId > served.maxCallId) {
        served.maxCallId = callId;
      } else if (served.find(callId) !== undefined) {
        this.#protocolError(served, `call id ${callId} is already in flight on this connection`, "duplicate_call_id");
        return;
      }
      if (served.draining) {
        // Sent before the caller saw the drain frame: not run, safe to retry elsewhere.
        this.#limitHit("drain_refused");
        this.#answerError(
          served,
          frame,
          new RpcError(RpcCode.UNAVAILABLE, "The provider is draining: send the call to another provider"),
          RETRY_SAFE,
        );
        return;
      }
      if (frame.metadataOverLimit) {
        // Not run, and not safe to retry: another provider would refuse it too.
        this.#limitHit("metadata");
        this.#answerError(
          served,
          frame,
          new RpcError(
            RpcCode.RESOURCE_EXHAUSTED,
            `The provider refused the call: its metadata of ${frame.metadataBytes} bytes (key + value + 32 per ` +
              `entry) exceeds the limit of ${this.#maxMetadataBytes} bytes`,
          ),
        );
        return;
      }
      const maxCalls = this.#options.maxCallsPerConnection ?? 1000;
      if (served.count >= maxCalls) {
        // Not run: RESOURCE_EXHAUSTED, marked safe for the caller to retry elsewhere.
        this.#limitHit("calls");
        this.#answerError(
          served,
          frame,
          new RpcError(
            RpcCode.RESOURCE_EXHAUSTED,
            `The provider refused the call: ${maxCalls} calls are already in flight on this connection`,
          ),
          RETRY_SAFE,
        );
        return;
      }
      this.#serve(served, frame, receiveTimeMs);
    } else if (frame.kind === FrameKind.CANCEL) {
      served.lastCallMs = receiveTimeMs;
      served.find(frame.callId)?.abort(new RpcError(RpcCode.CANCELLED, "The caller cancelled the call"));
    } else if (frame.kind === FrameKind.PING) {
      if (frame.ack) served.answersPings = true;
      else sendPing(connection, frame.pingData, true);
    }
  }

  // A caller broke the protocol: tell it why in a drain frame with a status, then close the connection.
  #protocolError(served: ServedConnection, reason: string, limit: string): void {
    this.#limitHit(limit);
    getLogger().warn(`RpcProvider closing ${served.connection.name}: ${reason}`);
    served.draining = true;
    sendDrain(served.connection, { lastCallId: served.maxCallId, status: RpcCode.INVALID_ARGUMENT, reason });
    served.connection.shutdown();
    served.connection.forceCloseWithDelay(1000);
    for (const call of served.calls()) call.abort(new RpcError(RpcCode.CANCELLED, `Protocol error: ${reason}`));
  }

  // One sweep timer for all connections (not one per connection): closes those idle past idleTimeoutMs, pings
  // those that sent nothing for keepaliveIntervalMs and closes those whose ping went unanswered.
  #armHousekeeping(): void {
    const idleTimeoutMs = this.#options.idleTimeoutMs ?? 300_000;
    const keepaliveIntervalMs = this.#options.keepaliveIntervalMs ?? 10_000;
    const keepaliveTimeoutMs = this.#options.keepaliveTimeoutMs ?? 5_000;
    if (this.#housekeepingTimer !== undefined) return;
    const periods = [idleTimeoutMs / 4, keepaliveIntervalMs / 4, keepaliveTimeoutMs / 4].filter((ms) => ms > 0);
    if (periods.length === 0 || keepaliveIntervalMs <= 0 && idleTimeoutMs <= 0) return;
    this.#housekeepingTimer = this.#loop.runEvery(Math.max(10, Math.min(...periods)), () => {
      const now = this.#loop.now();
      for (const served of this.#served) {
        const connection = served.connection;
        if (idleTimeoutMs > 0 && now - served.lastCallMs >= idleTimeoutMs && served.count === 0) {
          this.#limitHit("idle");
          getLogger().debug(
            `RpcProvider closing ${connection.name}: idle for ${Math.round(now - served.lastCallMs)} ms`,
          );
          this.#forget(served);
          connection.forceClose();
        } else if (keepaliveIntervalMs > 0 && connection.connected) {
          if (served.pingSentMs > 0 && now - served.pingSentMs >= keepaliveTimeoutMs && !served.answersPings) {
            served.pingSentMs = 0; // a caller from before pings: ask again next interval
          } else if (served.pingSentMs > 0 && now - served.pingSentMs >= keepaliveTimeoutMs) {
            this.#limitHit("keepalive");
            getLogger().warn(
              `RpcProvider closing ${connection.name}: no answer to a keepalive ping in ${keepaliveTimeoutMs} ms`,
            );
            for (const call of served.calls()) {
              call.abort(new RpcError(RpcCode.CANCELLED, "The caller stopped answering keepalive pings"));
            }
            this.#forget(served);
            connection.forceClose();
          } else if (served.pingSentMs === 0 && now - served.lastActivityMs >= keepaliveIntervalMs) {
            served.pingSentMs = now;
            this.#pingData = (this.#pingData + 1) >>> 0;
            sendPing(connection, this.#pingData, false);
          }
        }
      }
      if (this.#served.size === 0 && this.#housekeepingTimer !== undefined) {
        this.#loop.cancel(this.#housekeepingTimer);
        this.#housekeepingTimer = undefined;
      }
    });
  }

  #serve(served: ServedConnection, frame: DecodedFrame, receiveTimeMs: number): void {
    if (this.#stopping) {
      this.#answerError(served, frame, new RpcError(RpcCode.UNAVAILABLE, "The provider is shutting down"), RETRY_SAFE);
      return;
    }
    if (frame.timeoutMs > MAX_DEADLINE_MS) {
      this.#limitHit("deadline_clamped");
      frame.timeoutMs = MAX_DEADLINE_MS;
    }
    const service = this.#services.get(frame.service);
    const entry = service?.handlers.get(frame.method);
    if (entry === undefined) {
      const why = service === undefined
        ? `Service '${frame.service}' is not served here`
        : `Method '${frame.method}' is not in service '${frame.service}'`;
      // Not run: another provider (a newer version during a rolling upgrade) may serve it.
      this.#answerError(served, frame, new RpcError(RpcCode.UNIMPLEMENTED, why), RETRY_SAFE);
      return;
    }
    let request: unknown;
    try {
      // A copy first: the frame is a view into the connection's buffer, and the handler may keep bytes fields.
      request = entry.decodeRequest(copyBytes(frame.payload));
    } catch (error) {
      const why = `The request for ${frame.service}.${frame.method} does not parse`;
      this.#answerError(served, frame, new RpcError(RpcCode.INVALID_ARGUMENT, why, { cause: error }));
      return;
    }
    const call = new ServerCall(served, frame, entry, receiveTimeMs);
    served.add(call);
    this.#ledger.started();
    call.run(request);
  }

  // Answers a call that was not run.
  #answerError(served: ServedConnection, frame: DecodedFrame, error: RpcError, metadata?: Record<string, string>) {
    served.respond({
      callId: frame.callId,
      service: frame.service,
      method: frame.method,
      status: error.code,
      errorMessage: error.rawMessage,
      answerMetadata: metadata,
      answerPayload: EMPTY_BYTES,
    }, this.#services.get(frame.service)?.handlers.get(frame.method));
  }
}

/** The options each Worker's provider gets from the main one (plain data, so they cross to Workers). */
const THREAD_OPTIONS = [
  "maxFrameBytes",
  "maxConnections",
  "maxConnectionsPerAddress",
  "maxCallsPerConnection",
  "idleTimeoutMs",
  "frameTimeoutMs",
  "maxBufferedFrameBytes",
  "pauseReadingAtBytes",
  "maxUnsentBytes",
  "maxMetadataBytes",
  "keepaliveIntervalMs",
  "keepaliveTimeoutMs",
  "drainGraceMs",
] as const satisfies ReadonlyArray<keyof RpcProviderOptions>;

/** What each Worker of a multi-threaded provider is given. */
interface ProviderThreadData {
  moduleUrl: string;
  exportName: string;
  /** The main provider's limits and timings (the options that are plain data). */
  limits: RpcProviderOptions;
  /** The BroadcastChannel on which the main provider says "drain". */
  channelName: string;
}

/**
 * Internal: the thread-init function of a provider with `threads` (TcpServer calls it in each Worker, or on the
 * main loop where there are no threads): a provider on the Worker's loop, with the module's services, serving
 * the Worker's server. Publishing stays with the main thread's provider.
 */
export async function initProviderThread(server: TcpServer, loop: EventLoop, data: ProviderThreadData): Promise<void> {
  const provider = new RpcProvider({ ...data.limits, loop });
  await provider.registerModule(data.moduleUrl, data.exportName);
  attachToServer(provider, server);
  listenForDrain(provider, data.channelName);
}
