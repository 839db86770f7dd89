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
import { createLoadBalancer, type LoadBalancer, type LoadBalancerName } from "./load_balancer.ts";
import type { RpcController } from "./rpc_controller.ts";
import { copyBytes } from "./_byte_slab.ts";
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

/** A call's answer: the serialized response and the provider's metadata. */
export interface ClientResult {
  payload: Uint8Array;
  metadata: Record<string, string>;
}

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

const NO_SIGNALS: AbortSignal[] = [];
const EMPTY_BYTES = new Uint8Array(0);

const sleep = (loop: EventLoop, ms: number) => new Promise<void>((resolve) => loop.runAfter(ms, resolve));

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
  readonly #send: ClientHandler;
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
    const base: ClientHandler = (call) => this.#callWithRetries(call);
    this.#send = (options.interceptors ?? []).reduceRight((next, interceptor) => interceptor(next), base);
  }

  /** The providers currently known for `service` (discovering them if needed). */
  async providersOf(service: string): Promise<string[]> {
    const discovery = this.#discover(service);
    await discovery.ready;
    return [...discovery.addresses];
  }

  /** Call `service.method` with a serialized request; resolves with the serialized response. */
  call(service: string, method: string, payload: Uint8Array, options: CallOptions = {}): Promise<ClientResult> {
    // Promise chains rather than async functions here and in stubs: each async layer costs a call a promise
    // and microtask hops, a visible share of a small call.
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
      const call = (request: unknown = {}, options: CallOptions = {}): Promise<unknown> => {
        const type = method.requestType;
        let payload: Uint8Array;
        try {
          const message = request instanceof type.ctor ? request : type.fromObject(request as Record<string, unknown>);
          payload = type.encode(message).finish();
        } catch (error) {
          return Promise.reject(
            new RpcError(RpcCode.INVALID_ARGUMENT, `Cannot encode the request of ${method.name}`, { cause: error }),
          );
        }
        return this.call(definition.fullName, method.name, payload, options).then((result) => {
          try {
            return method.responseType.decode(result.payload);
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
      watched.ready = this.#refresh(service, watched).then(() => void (watched.isReady = true));
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

  async #callWithRetries(call: ClientCall): Promise<ClientResult> {
    if (this.#closed) throw new RpcError(RpcCode.UNAVAILABLE, "The channel is closed");
    const timeoutMs = call.options.timeoutMs ?? this.#options.timeoutMs ?? 5000;
    const deadline = this.#loop.now() + timeoutMs;
    const signals = call.options.signal === undefined && call.options.controller === undefined
      ? NO_SIGNALS
      : [call.options.signal, call.options.controller?.signal].filter((s): s is AbortSignal => !!s);
    for (const signal of signals) {
      if (signal.aborted) {
        throw new RpcError(RpcCode.CANCELLED, `The call to ${call.service}.${call.method} was cancelled`);
      }
    }
    this.#retryTokens = Math.min(10, this.#retryTokens + (this.#options.retryBudgetRatio ?? 0.2));
    const discovery = this.#discover(call.service);
    if (!discovery.isReady) await discovery.ready;
    // Providers tried by this call; made on the first failure (most calls never need it).
    let excluded: Set<string> | undefined;
    const maxRetries = this.#options.maxRetries ?? 2;
    let backoffMs = this.#options.retryBackoffMs ?? 10;
    for (let attempt = 0;; attempt++) {
      const now = this.#loop.now();
      // The common case, nothing excluded or ejected, takes the list as it is.
      let candidates = excluded === undefined && this.#ejected.size === 0
        ? discovery.addresses
        : discovery.addresses.filter((address) =>
          !excluded?.has(address) && !((this.#ejected.get(address)?.untilMs ?? 0) > now)
        );
      // All ejected: try them anyway rather than fail without trying.
      if (candidates.length === 0) candidates = discovery.addresses.filter((address) => !excluded?.has(address));
      let failure: { error: RpcError; retrySafe: boolean };
      if (candidates.length === 0) {
        failure = {
          error: new RpcError(
            RpcCode.UNAVAILABLE,
            discovery.addresses.length === 0
              ? `No provider of ${call.service} is registered`
              : `No provider of ${call.service} could take the call`,
          ),
          retrySafe: true,
        };
      } else {
        // One candidate needs no balancing (and no candidate objects).
        const picked = candidates.length === 1 ? { address: candidates[0]! } : this.#balancer.pick(
          candidates.map((address) => ({ address, outstanding: this.#connections.get(address)?.outstanding ?? 0 })),
          call.options.hashKey,
        );
        const connection = this.#connection(picked.address);
        const outcome = await this.#attempt(connection, call, deadline, signals);
        if ("result" in outcome) {
          this.#ejected.delete(picked.address);
          return outcome.result;
        }
        failure = outcome;
        (excluded ??= new Set()).add(picked.address);
        if (!connection.usable) this.#eject(picked.address);
      }
      const remainingMs = deadline - this.#loop.now();
      if (!failure.retrySafe || attempt >= maxRetries || this.#retryTokens < 1 || remainingMs <= backoffMs) {
        throw failure.error;
      }
      this.#retryTokens -= 1;
      await sleep(this.#loop, backoffMs);
      backoffMs *= 2;
      // Every provider may have been tried: give them another chance after the back-off.
      if (excluded !== undefined && excluded.size >= discovery.addresses.length) excluded.clear();
    }
  }

  #eject(address: string): void {
    const previous = this.#ejected.get(address);
    const backoffMs = previous === undefined ? 100 : Math.min(previous.backoffMs * 2, 5000);
    this.#ejected.set(address, { untilMs: this.#loop.now() + backoffMs, backoffMs });
  }

  #attempt(
    connection: ProviderConnection,
    call: ClientCall,
    deadline: number,
    signals: AbortSignal[],
  ): Promise<{ result: ClientResult } | { error: RpcError; retrySafe: boolean }> {
    return new Promise((resolve) => {
      let done = false;
      let id = 0;
      const finish = (outcome: { result: ClientResult } | { error: RpcError; retrySafe: boolean }) => {
        if (done) return;
        done = true;
        this.#loop.cancel(timer);
        for (const signal of signals) signal.removeEventListener("abort", onAbort);
        resolve(outcome);
      };
      const giveUp = (error: RpcError) => {
        if (done) return;
        connection.cancel(id);
        finish({ error, retrySafe: false });
      };
      const onAbort = () =>
        giveUp(new RpcError(RpcCode.CANCELLED, `The call to ${call.service}.${call.method} was cancelled`));
      const timer = this.#loop.runAt(deadline, () =>
        giveUp(
          new RpcError(
            RpcCode.DEADLINE_EXCEEDED,
            `The call to ${call.service}.${call.method} on ${connection.address} missed its deadline`,
          ),
        ));
      for (const signal of signals) signal.addEventListener("abort", onAbort, { once: true });
      id = connection.send({
        service: call.service,
        method: call.method,
        payload: call.payload,
        metadata: call.metadata,
        timeoutMs: () => deadline - this.#loop.now(),
        onResponse: (response) => {
          const metadata = response.metadata ?? {};
          if (response.status) {
            finish({
              error: new RpcError(response.status as RpcCode, response.errorMessage ?? "", { metadata }),
              retrySafe: metadata["dwt-retry-safe"] === "1",
            });
          } else {
            // A copy: the payload is a view into the connection's input buffer.
            finish({ result: { payload: copyBytes(response.payload ?? EMPTY_BYTES), metadata } });
          }
        },
        onError: (error, retrySafe) => finish({ error, retrySafe }),
      });
    });
  }
}
