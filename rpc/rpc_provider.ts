/**
 * The provider (the seed's DwtRpcProvider): registers service implementations, serves their calls on a server
 * transport (server_transport.ts; the reactor's TcpServer with the envelope of proto/rpc.proto by default, on
 * Worker threads with `threads`), and publishes each service in the registry as an ephemeral node
 * `/<Service>/<host:port>` whose data lists the methods. Deadlines reach the handlers as an AbortSignal; shutdown
 * is a drain (unpublish, a drain on every connection, finish calls in flight within a grace period, close), on
 * every Worker too. Every input has a limit with a safe default, counted in `/metrics`. "Safe to retry" is set by
 * the provider only, on answers to calls no handler saw (proto/rpc.proto, "At most once").
 *
 * The class wires its parts, each in its own file: the dispatch (`_call_dispatcher.ts`: handler table, calls,
 * drain), the limits and their defaults (`_server_limits.ts`), the accounting (`_call_ledger.ts`), the TCP
 * transport (`_tcp_server_transport.ts`), the Workers (`_provider_threads.ts`) and the registry entries
 * (`_service_publisher.ts`).
 *
 * @module
 */

import type { TlsServerOptions } from "../reactor/backend/net_backend.ts";
import type protobuf from "protobufjs";
import { EventLoop } from "../reactor/event_loop.ts";
import { InetAddress } from "../reactor/inet_address.ts";
import { HttpServer, type HttpServerOptions } from "../reactor/http_server.ts";
import { getLogger } from "../reactor/logger.ts";
import { TcpServer } from "../reactor/tcp_server.ts";
import type { Registry } from "../registry/registry.ts";
import { CallDispatcher } from "./_call_dispatcher.ts";
import type { Http1ConnectionOptions } from "./http/http1_connection.ts";
import { GatewayTransport } from "./http/gateway_transport.ts";
import type { GatewayCorsOptions } from "./http/gateway_cors.ts";
import { fileDescriptorSet } from "./reflection/file_descriptor_set.ts";
import { CallLedger } from "./_call_ledger.ts";
import { ProviderThreads, type ServicesModule } from "./_provider_threads.ts";
import { type ServerLimits, serverLimits } from "./_server_limits.ts";
import { ServicePublisher } from "./_service_publisher.ts";
import { ServerReflection } from "./reflection/server_reflection.ts";
import { SERVER_REFLECTION_SERVICES } from "./reflection/server_reflection_proto.ts";
import { TcpServerTransport } from "./_tcp_server_transport.ts";
import { SeedServerTransport } from "../seed/rpc/seed_server_transport.ts";
import { SeedLayoutPublisher } from "../seed/rpc/seed_layout_publisher.ts";
import { providerStatusHandler, type RpcProviderStats } from "./provider_status.ts";
export type { RpcProviderStats } from "./provider_status.ts";
import type { ServerTransport } from "./server_transport.ts";
import { definitionOf, type ServiceDefinition } from "./service_definition.ts";

export type {
  CallContext,
  MethodHandler,
  ServerHandler,
  ServerInterceptor,
  ServiceImplementation,
} from "./server_handler.ts";
import type { ServerInterceptor, ServiceImplementation } from "./server_handler.ts";

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
   * Connections served at once. At the cap a new connection takes the place of the oldest one that never spoke
   * (see `evictSilentAtCap`); when every connection has spoken, or eviction is off, it is closed on arrival
   * (counted as limit `connections`).
   * @default {10000}
   */
  maxConnections?: number;
  /**
   * Close a connection whose first whole frame has not arrived this long after it came, in milliseconds (limit
   * `handshake_timeout`): a socket that never speaks holds a connection slot, and a slot of its address, for
   * nothing. One timer serves all such connections. The same deadline applies on every listener of the provider.
   * @default {10000}
   */
  handshakeTimeoutMs?: number;
  /**
   * At `maxConnections`, make room for a new connection by closing the oldest connection that has not sent a
   * whole frame yet (limit `silent_evicted`), so idle sockets filling the cap cannot lock honest callers out
   * until the handshake deadline. Off: the new connection is refused, as when every connection has spoken.
   * @default {true}
   */
  evictSilentAtCap?: boolean;
  /**
   * Calls in flight on one connection; more are answered RESOURCE_EXHAUSTED, safe to retry (limit `calls`).
   * @default {1000}
   */
  maxCallsPerConnection?: number;
  /**
   * Streams open on one connection (beside its unary calls); more are answered RESOURCE_EXHAUSTED, safe to retry
   * (limit `streams`). gRPC servers commonly allow 100 concurrent streams per connection too.
   * @default {100}
   */
  maxStreamsPerConnection?: number;
  /**
   * Each stream's receive window in bytes: the most a caller may send on one stream before the handler reads it,
   * so the most one stream buffers here (at least 65536, HTTP/2's initial window, which is also the default: a
   * connection's 100 streams then buffer at most 6.4 MiB). Raise it for fast uploads over long round trips.
   * @default {65536}
   */
  streamWindowBytes?: number;
  /**
   * Close a connection with no call in flight and no request for this long, in milliseconds (limit `idle`); 0
   * never. Keepalive pings do not count as traffic here.
   * @default {300000}
   */
  idleTimeoutMs?: number;
  /**
   * Connections from one peer address served at once, silent ones included; more are closed on arrival (limit
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
   * Serve on this transport instead of the reactor's TCP (`host`, `port`, `threads`, `tls` and the limits on
   * connections, frames and keepalive are then the transport's business): a `MemoryServer` in tests.
   * The provider owns it from `start`, and closes it at the end of `stop`.
   * @default {TCP on host:port}
   */
  transport?: ServerTransport;
  /**
   * Answer gRPC server reflection (`grpc.reflection.v1` and `v1alpha` `ServerReflection`, a bidirectional stream)
   * with the .proto files of the services registered before start, imports included, so grpcurl, `buf curl` and
   * `deno task call` need no .proto of them. The reflection services are not published in the registry.
   * @default {true}
   */
  reflection?: boolean;
  /**
   * Serve calls over TLS with this PEM certificate and key (on the main loop; not with `threads`).
   * @default {undefined}
   */
  tls?: TlsServerOptions;
  /**
   * Serve the services over HTTP as well, on this port (0: any free port; off when undefined; the config key
   * `rpcserver_http_port` is off when 0 or absent): the Connect protocol (unary, server and client streams; binary
   * or JSON; GET for methods with `idempotency_level = NO_SIDE_EFFECTS`), gRPC-Web, and the services'
   * FileDescriptorSet at `GET /dwt.rpc.Reflection/FileDescriptorSet`, for curl, browsers, connect-web, grpc-web and
   * `buf curl` (rpc/http/gateway_transport.ts). Its calls go through the same dispatch as the native port's:
   * interceptors, deadlines, limits, drain and `/metrics` cover them. See {@linkcode RpcProvider.httpAddress}.
   * @default {undefined}
   */
  httpPort?: number;
  /**
   * The HTTP gateway's listen address (config key `rpcserver_http_ip`).
   * @default {host}
   */
  httpIp?: string;
  /**
   * Let browser pages on other origins call through the HTTP gateway (CORS; config key
   * `rpcserver_http_cors_origins`: `*` or a comma-separated list of origins).
   * @default {undefined: no CORS}
   */
  httpCors?: GatewayCorsOptions;
  /**
   * Limits and deadlines of the HTTP gateway's connections (head size and time, idle time, output).
   * @default {Http1Connection's defaults}
   */
  httpServer?: Http1ConnectionOptions;
  /**
   * Serve the C++ seed's RPC frame as well, on this port of its own (0: any free port; off when undefined; the
   * config key `rpcserver_seed_port` is off when 0 or absent), so the seed's callers (DwtRpcChannel) call these
   * services; with a registry, each unary method is also published in the seed's layout (`/<Service>/<Method>` =
   * `ip:port` of this port, simple names). Its calls go through the same dispatch, limits and `/metrics` as the
   * native port's, with the deadline `seedCallTimeoutMs`. Two registered services sharing a simple name make start
   * fail. See seed/rpc/seed_server_transport.ts and {@linkcode RpcProvider.seedAddress}.
   * @default {undefined}
   */
  seedPort?: number;
  /**
   * The seed port's listen address (config key `rpcserver_seed_ip`).
   * @default {host}
   */
  seedIp?: string;
  /**
   * The deadline of calls on the seed port, whose frame carries none, in milliseconds (config key
   * `rpcserver_seed_call_timeout_ms`).
   * @default {30000}
   */
  seedCallTimeoutMs?: number;
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
  readonly #limits: ServerLimits;
  readonly #ledger = new CallLedger();
  readonly #dispatcher: CallDispatcher;
  #transport: ServerTransport | undefined;
  #threads: ProviderThreads | undefined;
  #publisher: ServicePublisher | undefined;
  #module: ServicesModule | undefined;
  #startedAt = 0;
  #status: HttpServer | undefined;
  #gateway: GatewayTransport | undefined;
  #seed: SeedServerTransport | undefined;
  #seedPublisher: SeedLayoutPublisher | undefined;
  #stopped: Promise<void> | undefined;
  /** The reflection services this provider added to its own at start. */
  #reflection: readonly ServiceDefinition[] = [];

  /** Configure a provider; nothing listens until {@linkcode RpcProvider.start}. */
  constructor(options: RpcProviderOptions = {}) {
    this.#options = options;
    this.#loop = options.loop ?? EventLoop.current();
    this.#limits = serverLimits(options);
    this.#dispatcher = new CallDispatcher(this.#loop, this.#limits, this.#ledger);
  }

  /** The listen address (after start). */
  get address(): InetAddress {
    if (this.#transport === undefined) throw new TypeError("Cannot get the address of a provider before start");
    return this.#transport.address;
  }

  /** The address callers are told, `host:port`. */
  get advertisedAddress(): string {
    const address = this.address;
    const host = this.#options.advertisedHost ?? address.hostname;
    return new InetAddress(host, address.port).toString();
  }

  /**
   * The services registered, in order (not the reflection services the provider adds at start): what it
   * publishes, and what `fileDescriptorSet` (rpc/reflection) describes for download.
   */
  get services(): ServiceDefinition[] {
    return this.#dispatcher.definitions.filter((definition) => !this.#reflection.includes(definition));
  }

  /** Calls answered so far. */
  get callsServed(): number {
    return this.#ledger.served;
  }

  /** Calls being handled now. */
  get callsInFlight(): number {
    return this.#ledger.inFlight;
  }

  /** The HTTP gateway's address, when `httpPort` is set (after start). */
  get httpAddress(): InetAddress | undefined {
    return this.#gateway?.address;
  }

  /** The seed port's address, when `seedPort` is set (after start). */
  get seedAddress(): InetAddress | undefined {
    return this.#seed?.address;
  }

  /** The status pages' address, when `statusPort` is set (after start). */
  get statusAddress(): InetAddress | undefined {
    return this.#status?.address;
  }

  /** Counters for status pages and metrics. */
  stats(): RpcProviderStats {
    return {
      uptimeMs: this.#startedAt === 0 ? 0 : this.#loop.now() - this.#startedAt,
      connections: (this.#transport?.connections ?? 0) + (this.#gateway?.connections ?? 0) +
        (this.#seed?.connections ?? 0),
      silentConnections: (this.#transport?.silentConnections ?? 0) + (this.#gateway?.silentConnections ?? 0) +
        (this.#seed?.silentConnections ?? 0),
      callsInFlight: this.#ledger.inFlight,
      callsServed: this.#ledger.served,
      streamsOpen: this.#ledger.streamsOpen,
      streamMessages: this.#ledger.streamMessages(),
      calls: this.#ledger.calls(),
      errorsByCode: this.#ledger.errorsByCode(),
      limitsHit: { ...this.#ledger.limitsHit(), ...this.#transport?.limitsHit?.(), ...this.#gateway?.limitsHit() },
    };
  }

  /**
   * Register a service implementation: an object (or class instance) with a handler per method, named as in the
   * .proto (`Login`) or lower camel case (`login`). Every method must have a handler.
   */
  registerService(service: ServiceDefinition | protobuf.Service, implementation: ServiceImplementation): void {
    const definition = "methods" in service && service.methods instanceof Map
      ? service as ServiceDefinition
      : definitionOf(service as protobuf.Service);
    if (this.#transport !== undefined) {
      throw new TypeError(`Cannot register service '${definition.fullName}' after the provider started`);
    }
    this.#dispatcher.register(definition, implementation, this.#options.interceptors ?? []);
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
    if (this.#transport !== undefined) throw new TypeError("Cannot start a provider twice");
    const transport = this.#makeTransport();
    // Made before anything listens: two services sharing a simple name stop the start here.
    const seed = this.#makeSeedTransport();
    this.#addReflection();
    await transport.listen(this.#dispatcher);
    this.#transport = transport;
    this.#startedAt = this.#loop.now();
    if (this.#options.httpPort !== undefined) await this.#startGateway(this.#options.httpPort);
    if (seed !== undefined) {
      await seed.listen(this.#dispatcher);
      this.#seed = seed;
      getLogger().info(`RpcProvider seed port (the C++ seed's frame) on ${seed.address}`);
    }
    if (this.#options.statusPort !== undefined) await this.#startStatusPages(this.#options.statusPort);
    // A Worker's provider starts before its server does (the TcpServer's thread init), so it has no address yet.
    if (transport instanceof TcpServerTransport && !transport.ownsServer) return;
    const registry = this.#options.registry;
    if (registry !== undefined) {
      this.#publisher = new ServicePublisher(registry);
      await this.#publisher.start(this.advertisedAddress, this.services);
      if (this.#seed !== undefined) {
        this.#seedPublisher = new SeedLayoutPublisher(registry);
        const host = this.#options.advertisedHost ?? this.#seed.address.hostname;
        await this.#seedPublisher.start(new InetAddress(host, this.#seed.address.port).toString(), this.services);
      }
    }
    const names = this.services.map((definition) => definition.fullName).join(", ");
    getLogger().info(`RpcProvider serving ${names} at ${this.advertisedAddress}`);
  }

  // Reflection over the services registered so far, behind the same interceptors; a service of the same name the
  // user registered stays theirs.
  #addReflection(): void {
    if (!this.#limits.reflection || this.#reflection.length > 0) return;
    const services = this.services;
    const reflection = new ServerReflection(services);
    const added = SERVER_REFLECTION_SERVICES.filter((definition) =>
      !services.some((service) => service.fullName === definition.fullName)
    );
    for (const definition of added) this.#dispatcher.register(definition, reflection, this.#options.interceptors ?? []);
    this.#reflection = added;
  }

  // The `transport` option, else TCP: on Worker threads with `threads`, else on this loop.
  #makeTransport(): ServerTransport {
    if (this.#options.transport !== undefined) return this.#options.transport;
    const { host, port, tls } = this.#options;
    const server = new TcpServer(this.#loop, new InetAddress(host ?? "127.0.0.1", port ?? 0), "RpcProvider", { tls });
    const threads = this.#options.threads ?? 0;
    if (threads === 0) return new TcpServerTransport(server, this.#limits, true);
    if (tls !== undefined) {
      throw new TypeError("Cannot run a provider with both 'threads' and 'tls' (TLS is served on the main loop only)");
    }
    if (this.#module === undefined) {
      throw new TypeError(
        `Cannot run a provider on ${threads} threads as its services were not given as a module (registerModule)`,
      );
    }
    return this.#threads = new ProviderThreads(server, threads, this.#module, this.#limits);
  }

  // The seed port, on this loop and this dispatch (with `threads` too, as the gateway), when `seedPort` is set.
  #makeSeedTransport(): SeedServerTransport | undefined {
    const options = this.#options;
    if (options.seedPort === undefined) return undefined;
    const address = new InetAddress(options.seedIp ?? options.host ?? "127.0.0.1", options.seedPort);
    return new SeedServerTransport(this.#loop, address, this.#limits, this.services, {
      callTimeoutMs: options.seedCallTimeoutMs,
    });
  }

  // The HTTP gateway, on this loop and this dispatch (with `threads` too: the Workers serve the native port).
  async #startGateway(port: number): Promise<void> {
    const options = this.#options;
    const gateway = new GatewayTransport(
      this.#loop,
      new InetAddress(options.httpIp ?? options.host ?? "127.0.0.1", port),
      this.#limits,
      { http: options.httpServer, cors: options.httpCors, fileDescriptorSet: () => fileDescriptorSet(this.services) },
    );
    await gateway.listen(this.#dispatcher);
    this.#gateway = gateway;
    getLogger().info(`RpcProvider HTTP gateway (Connect, gRPC-Web) on http://${gateway.address}/`);
  }

  async #startStatusPages(port: number): Promise<void> {
    const status = new HttpServer(this.#loop, {
      ...this.#options.statusServer,
      address: new InetAddress(this.#options.statusHost ?? "127.0.0.1", port),
      name: "RpcProviderStatus",
      handler: providerStatusHandler(this),
    });
    await status.start();
    this.#status = status;
    getLogger().info(`RpcProvider status pages on http://${status.address}/ (/status, /metrics, /ruok)`);
  }

  /**
   * Stop gracefully (drain): unpublish every service, then send a drain frame on every connection (with the last
   * call id this provider will answer there, so callers send new calls elsewhere and retry later ones safely), let
   * calls in flight finish for up to `graceMs`, cancel what is left (answered UNAVAILABLE with the reason), and
   * close. A provider with threads drains every Worker the same way. The HTTP gateway drains with it: its requests
   * in flight finish within the grace, new ones are answered unavailable (503), and its connections close after
   * their response (`Connection: close`). Calling it again returns the same promise.
   */
  stop(options: { graceMs?: number } = {}): Promise<void> {
    this.#stopped ??= this.#stop(options.graceMs ?? this.#limits.drainGraceMs);
    return this.#stopped;
  }

  async #stop(graceMs: number): Promise<void> {
    await this.#publisher?.stop();
    await this.#seedPublisher?.stop();
    this.#gateway?.drain();
    await this.#threads?.drain(this.#loop, graceMs);
    await this.#dispatcher.drain(graceMs);
    await this.#transport?.close();
    await this.#gateway?.close();
    await this.#seed?.close();
    await this.#status?.stop();
  }

  /** Same as {@linkcode RpcProvider.stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
