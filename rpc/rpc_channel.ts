/**
 * The channel (the seed's DwtRpcChannel, grown up): finds a service's providers in the registry and keeps them
 * current through watches, balances calls over one multiplexed connection per provider, enforces a deadline on
 * every call, cancels by AbortSignal, and retries only what is safe (requests that never reached a provider)
 * with back-off and a budget. Stubs turn it into typed method calls.
 *
 * @module
 */

import type { TlsClientOptions } from "../reactor/backend/net_backend.ts";
import type protobuf from "protobufjs";
import { EventLoop } from "../reactor/event_loop.ts";
import { DEFAULT_MAX_FRAME_BYTES } from "../reactor/length_header_codec.ts";
import { getLogger } from "../reactor/logger.ts";
import type { Registry } from "../registry/registry.ts";
import { RegistryError, RegistryErrorCode } from "../registry/registry_error.ts";
import { ProviderConnection } from "./_provider_connection.ts";
import { type CallRouter, type ClientResult, PendingCall, type ResponseDecoder } from "./_pending_call.ts";
import { createLoadBalancer, type LoadBalancer, type LoadBalancerName } from "./load_balancer.ts";
import type { RpcController } from "./rpc_controller.ts";
import { encodeMessage } from "./_byte_slab.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import { definitionOf, type ServiceDefinition } from "./service_definition.ts";

/** Per-call options. */
export interface CallOptions {
  /** This call's deadline in milliseconds from now (overrides the channel's default). */
  timeoutMs?: number;
  /** Cancels the call. */
  signal?: AbortSignal;
  /** Metadata sent with the request. */
  metadata?: Record<string, string>;
  /** The key for consistent hashing. */
  hashKey?: string;
  /** A seed-style controller: told of failure, and its `startCancel` cancels the call. */
  controller?: RpcController;
}

/** A call on its way out, as client interceptors see it. */
export interface ClientCall {
  readonly service: string;
  readonly method: string;
  payload: Uint8Array;
  metadata: Record<string, string>;
  readonly options: CallOptions;
}

export type { ClientResult } from "./_pending_call.ts";

/** Sends a call. */
export type ClientHandler = (call: ClientCall) => Promise<ClientResult>;

/** Wraps sending: auth headers, logging, metrics. */
export type ClientInterceptor = (next: ClientHandler) => ClientHandler;

/** Options of {@linkcode RpcChannel}. */
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
}

/** One method of a stub: takes a request message (or plain object), resolves with the response message. */
// `any` defaults on purpose: an untyped stub (`channel.stub(service)`) takes and returns whatever the .proto says,
// which only generated code knows; generated stubs pass the real types.
// deno-lint-ignore no-explicit-any
export type StubMethod<Req = any, Res = any> = (request?: Req, options?: CallOptions) => Promise<Res>;

/** Method calls on a service: `await stub.Login({ name, password })`. Name the methods with a type argument. */
export type Stub = Record<string, StubMethod>;

interface Discovery {
  addresses: string[];
  ready: Promise<void>;
  // Set once `ready` has settled successfully, so calls skip awaiting it (a microtask hop per call).
  isReady: boolean;
  watching: boolean;
}

/**
 * Calls services by name.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../reactor/event_loop.ts";
 * import { RpcChannel, type StubMethod } from "./rpc_channel.ts";
 * import { RpcProvider } from "./rpc_provider.ts";
 * import { parseProto, serviceDefinition } from "./service_definition.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo;
 *   message Msg { string text = 1; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`);
 * const echo = serviceDefinition(root, "demo.Echo");
 * const loop = new EventLoop();
 * const provider = new RpcProvider({ loop });
 * provider.registerService(echo, { Say: (request: { text: string }) => ({ text: request.text + "!" }) });
 * await provider.start();
 * const channel = new RpcChannel({ loop, providers: { "demo.Echo": [provider.advertisedAddress] } });
 * const stub = channel.stub<{ Say: StubMethod }>(echo);
 * assert.equal((await stub.Say({ text: "hi" })).text, "hi!");
 * await channel.close();
 * await provider.stop();
 * ```
 */
export class RpcChannel {
  readonly #loop: EventLoop;
  readonly #options: RpcChannelOptions;
  readonly #balancer: LoadBalancer;
  readonly #discoveries = new Map<string, Discovery>();
  readonly #connections = new Map<string, ProviderConnection>();
  // Undefined without interceptors: calls then skip building a ClientCall and the promise layers around it.
  readonly #send: ClientHandler | undefined;
  readonly #router: CallRouter;
  readonly #timeoutMs: number;
  #retryTokens = 10;
  #closed = false;
  // Providers whose connection failed are not picked until their back-off ends (outlier ejection), so calls
  // stop going to a dead provider before the registry notices it is gone.
  readonly #ejected = new Map<string, { untilMs: number; backoffMs: number }>();

  /** Create a channel; connections open on first use. */
  constructor(options: RpcChannelOptions) {
    if (options.registry === undefined && options.providers === undefined) {
      throw new TypeError("Cannot create channel as neither 'registry' nor 'providers' is given");
    }
    const timeoutMs = options.timeoutMs ?? 5000;
    if (!(timeoutMs > 0)) {
      throw new RangeError(`Cannot create channel as 'timeoutMs' must be > 0: current value is ${timeoutMs}`);
    }
    this.#options = options;
    this.#loop = options.loop ?? EventLoop.current();
    this.#balancer = typeof options.loadBalancer === "object"
      ? options.loadBalancer
      : createLoadBalancer(options.loadBalancer ?? "round_robin");
    this.#timeoutMs = timeoutMs;
    const base: ClientHandler = (call) =>
      this.#invoke(call.service, call.method, call.payload, call.metadata, call.options) as Promise<ClientResult>;
    const interceptors = options.interceptors ?? [];
    this.#send = interceptors.length === 0
      ? undefined
      : interceptors.reduceRight((next, interceptor) => interceptor(next), base);
    this.#router = {
      loop: this.#loop,
      maxRetries: options.maxRetries ?? 2,
      retryBackoffMs: options.retryBackoffMs ?? 10,
      closed: () => this.#closed,
      discovered: (service) => {
        const discovery = this.#discover(service);
        return discovery.isReady ? undefined : discovery.ready;
      },
      providerCount: (service) => this.#discover(service).addresses.length,
      pick: (service, hashKey, excluded) => this.#pick(service, hashKey, excluded),
      connection: (address) => this.#connection(address),
      attempted: (address, connection, ok) => {
        if (ok) {
          if (this.#ejected.size > 0) this.#ejected.delete(address);
        } else if (!connection.usable) {
          this.#eject(address);
        }
      },
      takeRetryToken: () => {
        if (this.#retryTokens < 1) return false;
        this.#retryTokens -= 1;
        return true;
      },
    };
  }

  /** The providers currently known for `service` (discovering them if needed). */
  async providersOf(service: string): Promise<string[]> {
    const discovery = this.#discover(service);
    await discovery.ready;
    return [...discovery.addresses];
  }

  /** Call `service.method` with a serialized request; resolves with the serialized response. */
  call(service: string, method: string, payload: Uint8Array, options: CallOptions = {}): Promise<ClientResult> {
    if (this.#send === undefined) {
      return this.#invoke(service, method, payload, options.metadata, options) as Promise<ClientResult>;
    }
    let sent: Promise<ClientResult>;
    try {
      sent = this.#send({ service, method, payload, metadata: { ...options.metadata }, options });
    } catch (error) {
      sent = Promise.reject(error); // an interceptor that throws before returning a promise
    }
    return sent.catch((error) => {
      const rpcError = RpcError.from(error);
      options.controller?.setFailed(rpcError.rawMessage, rpcError.code);
      throw rpcError;
    });
  }

  /**
   * A stub of a service: one async function per method (by its .proto name and in lower camel case) taking and
   * returning messages (or plain objects). Give its shape as the type argument, as generated code does:
   * `channel.stub<{ Login: StubMethod<LoginRequest, LoginResponse> }>(service)`.
   */
  stub<T extends object = Stub>(service: ServiceDefinition | protobuf.Service): T {
    const definition = "methods" in service && service.methods instanceof Map
      ? service as ServiceDefinition
      : definitionOf(service as protobuf.Service);
    const stub: Stub = {};
    for (const method of definition.methods.values()) {
      const responseType = method.responseType;
      const decode: ResponseDecoder = (payload) => responseType.decode(payload);
      const call = (request: unknown = {}, options: CallOptions = {}): Promise<unknown> => {
        const type = method.requestType;
        let payload: Uint8Array;
        try {
          const message = request instanceof type.ctor ? request : type.fromObject(request as Record<string, unknown>);
          payload = encodeMessage(type, message);
        } catch (error) {
          return Promise.reject(
            new RpcError(RpcCode.INVALID_ARGUMENT, `Cannot encode the request of ${method.name}`, { cause: error }),
          );
        }
        if (this.#send === undefined) {
          return this.#invoke(definition.fullName, method.name, payload, options.metadata, options, decode);
        }
        return this.call(definition.fullName, method.name, payload, options).then((result) => {
          try {
            return responseType.decode(result.payload);
          } catch (error) {
            throw new RpcError(RpcCode.INTERNAL, `The response of ${method.name} does not parse`, { cause: error });
          }
        });
      };
      stub[method.name] = call;
      stub[method.name[0]!.toLowerCase() + method.name.slice(1)] = call;
    }
    return stub as T;
  }

  /**
   * An rpcImpl for protobufjs's `Service.create(rpcImpl)` (the seed's `Service_Stub` over a channel): method
   * calls go through this channel.
   */
  rpcImpl(serviceFullName: string, options: CallOptions = {}): protobuf.RPCImpl {
    return (method, requestData, callback) => {
      this.call(serviceFullName, method.name, requestData, options).then(
        (result) => callback(null, result.payload),
        (error) => callback(error, null),
      );
    };
  }

  /** Close every connection and stop watching. Calls in flight fail with UNAVAILABLE. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#connections.values()].map((connection) => connection.close()));
    this.#connections.clear();
  }

  /** Same as {@linkcode RpcChannel.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- discovery ---

  #discover(service: string): Discovery {
    let discovery = this.#discoveries.get(service);
    if (discovery !== undefined) return discovery;
    const fixed = this.#options.providers?.[service];
    if (fixed !== undefined || this.#options.registry === undefined) {
      discovery = { addresses: [...(fixed ?? [])], ready: Promise.resolve(), isReady: true, watching: false };
    } else {
      const watched: Discovery = { addresses: [], ready: Promise.resolve(), isReady: false, watching: true };
      watched.ready = this.#refresh(service, watched).then(
        () => void (watched.isReady = true),
        (error) => {
          // Not cached: the next call asks the registry again.
          this.#discoveries.delete(service);
          throw error;
        },
      );
      discovery = watched;
    }
    this.#discoveries.set(service, discovery);
    return discovery;
  }

  async #refresh(service: string, discovery: Discovery): Promise<void> {
    const registry = this.#options.registry!;
    const path = `/${service}`;
    const rewatch = () => {
      if (!this.#closed) {
        this.#refresh(service, discovery).catch((error) =>
          getLogger().warn(`RpcChannel: cannot refresh providers of ${service}`, { error })
        );
      }
    };
    try {
      discovery.addresses = await registry.children(path, { watch: rewatch });
    } catch (error) {
      if (!(error instanceof RegistryError && error.code === RegistryErrorCode.NO_NODE)) throw error;
      // No provider has ever published the service: watch for its node.
      discovery.addresses = [];
      if ((await registry.exists(path, { watch: rewatch })) !== undefined) {
        return await this.#refresh(service, discovery);
      }
    }
    // Connections to providers that left close once their calls are answered.
    for (const [address, connection] of this.#connections) {
      if (!this.#isListed(address)) {
        this.#connections.delete(address);
        connection.closeWhenIdle();
      }
    }
    getLogger().debug(`RpcChannel: providers of ${service}: ${discovery.addresses.join(", ") || "none"}`);
  }

  #isListed(address: string): boolean {
    for (const discovery of this.#discoveries.values()) if (discovery.addresses.includes(address)) return true;
    return false;
  }

  #connection(address: string): ProviderConnection {
    let connection = this.#connections.get(address);
    if (connection === undefined || !connection.usable) {
      connection?.close();
      connection = new ProviderConnection(
        this.#loop,
        address,
        this.#options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
        this.#options.connectTimeoutMs ?? 3000,
        this.#options.tls,
      );
      this.#connections.set(address, connection);
    }
    return connection;
  }

  // --- calls ---

  // One call: a PendingCall does the rest (attempts, deadline, cancel, retries) and settles the promise.
  #invoke(
    service: string,
    method: string,
    payload: Uint8Array,
    metadata: Record<string, string> | undefined,
    options: CallOptions,
    decode?: ResponseDecoder,
  ): Promise<unknown> {
    this.#retryTokens = Math.min(10, this.#retryTokens + (this.#options.retryBudgetRatio ?? 0.2));
    return new Promise((resolve, reject) => {
      new PendingCall(
        this.#router,
        service,
        method,
        payload,
        metadata,
        options,
        options.timeoutMs ?? this.#timeoutMs,
        resolve,
        reject,
        decode,
      ).start();
    });
  }

  // A provider for a call's next attempt: not excluded (tried by this call) and not ejected (its connection
  // failed lately), unless all are ejected; undefined when none is left.
  #pick(service: string, hashKey: string | undefined, excluded: Set<string> | undefined): string | undefined {
    const addresses = this.#discover(service).addresses;
    let candidates = addresses;
    if (excluded !== undefined || this.#ejected.size > 0) {
      const now = this.#loop.now();
      candidates = addresses.filter((address) =>
        !excluded?.has(address) && !((this.#ejected.get(address)?.untilMs ?? 0) > now)
      );
      // All ejected: try them anyway rather than fail without trying.
      if (candidates.length === 0) candidates = addresses.filter((address) => !excluded?.has(address));
    }
    if (candidates.length <= 1) return candidates[0];
    return this.#balancer.pick(
      candidates.map((address) => ({ address, outstanding: this.#connections.get(address)?.outstanding ?? 0 })),
      hashKey,
    ).address;
  }

  #eject(address: string): void {
    const previous = this.#ejected.get(address);
    const backoffMs = previous === undefined ? 100 : Math.min(previous.backoffMs * 2, 5000);
    this.#ejected.set(address, { untilMs: this.#loop.now() + backoffMs, backoffMs });
  }
}
