/**
 * The channel (the seed's DwtRpcChannel, grown up): finds a service's providers in the registry and keeps them
 * current through watches, balances calls over one multiplexed connection per provider, enforces a deadline on
 * every call (inherited from a parent call's context), cancels by AbortSignal, and retries only what is safe
 * (requests that never reached a handler) with back-off and a budget. It obeys providers' drain frames, pings
 * idle connections, and ejects outliers (a provider whose calls keep missing their deadline, or that stops
 * answering pings, is skipped for a back-off period, then probed). Stubs turn it into typed method calls.
 *
 * @module
 */

import type { TlsClientOptions } from "../reactor/backend/net_backend.ts";
import type protobuf from "protobufjs";
import { EventLoop } from "../reactor/event_loop.ts";
import type { TimerId } from "../reactor/timer_queue.ts";
import { DEFAULT_MAX_FRAME_BYTES } from "../reactor/length_header_codec.ts";
import { getLogger } from "../reactor/logger.ts";
import type { Registry } from "../registry/registry.ts";
import { RegistryError, RegistryErrorCode } from "../registry/registry_error.ts";
import { ProviderConnection } from "./_provider_connection.ts";
import { messageDecoder, messageEncoder, prepareType } from "./_proto3_defaults.ts";
import type { CallContext } from "./_server_call.ts";
import {
  type CallRouter,
  type ClientResult,
  decodeAnswer,
  PendingCall,
  type ResponseDecoder,
} from "./_pending_call.ts";
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
  /**
   * The incoming call this call is made for (a handler's `context`): the call gets at most the parent's remaining
   * deadline, and is cancelled when the parent is (its caller cancelled, its deadline passed, the provider
   * stopped).
   */
  parent?: CallContext;
}

/** The longest deadline a call can have: longer ones are clamped (the host timers' range, about 24.8 days). */
export const MAX_CALL_TIMEOUT_MS = 0x7fff_ffff;

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
}

/** What the channel remembers of a provider that failed lately. */
interface ProviderHealth {
  /** Deadline misses and ping timeouts in a row. */
  failures: number;
  /** Skipped until then (loop time); 0 when not ejected. */
  untilMs: number;
  backoffMs: number;
}

/** After a drain, calls that find no provider wait for one (up to their deadline) for this long. */
const WAIT_AFTER_DRAIN_MS = 30_000;
/** How often a call waiting for a provider looks again. */
const PROVIDER_POLL_MS = 20;

/** One method of a stub: takes a request message (or plain object), resolves with the response message. */
// `any` defaults on purpose: an untyped stub (`channel.stub(service)`) takes and returns whatever the .proto says,
// which only generated code knows; generated stubs pass the real types.
// deno-lint-ignore no-explicit-any
export type StubMethod<Req = any, Res = any> = (request?: Req, options?: CallOptions) => Promise<Res>;

/** Method calls on a service: `await stub.Login({ name, password })`. Name the methods with a type argument. */
export type Stub = Record<string, StubMethod>;

/** A call on its way to the interceptors or to a PendingCall (a {@linkcode ClientCall} before they copy metadata). */
interface OutgoingCall {
  readonly service: string;
  readonly method: string;
  readonly payload: Uint8Array;
  readonly metadata: Record<string, string> | undefined;
  readonly options: CallOptions;
}

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
  // Providers whose connection failed, whose calls keep missing their deadline or who stopped answering pings are
  // not picked until their back-off ends (outlier ejection), so calls stop going to a dead or frozen provider
  // before the registry notices it is gone.
  readonly #ejected = new Map<string, ProviderHealth>();
  // Providers that sent a drain frame, until when they are skipped.
  readonly #draining = new Map<string, number>();
  #lastDrainMs = -Infinity;
  #keepaliveTimer: TimerId | undefined;

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
    const base: ClientHandler = (call) => this.#invoke(call, undefined) as Promise<ClientResult>;
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
        } else if (!connection.usable && !connection.draining) {
          this.#eject(address);
        }
      },
      missedDeadline: (address) => this.#failed(address, false),
      waitForProviderMs: () =>
        this.#loop.now() - this.#lastDrainMs < WAIT_AFTER_DRAIN_MS ? PROVIDER_POLL_MS : undefined,
      takeRetryToken: () => {
        if (this.#retryTokens < 1) return false;
        this.#retryTokens -= 1;
        return true;
      },
    };
  }

  /** The providers skipped now by outlier ejection (after failures) or because they are draining. */
  ejectedProviders(): string[] {
    const now = this.#loop.now();
    return [
      ...[...this.#ejected].filter(([, health]) => health.untilMs > now).map(([address]) => address),
      ...[...this.#draining].filter(([, untilMs]) => untilMs > now).map(([address]) => address),
    ];
  }

  /** The providers currently known for `service` (discovering them if needed). */
  async providersOf(service: string): Promise<string[]> {
    const discovery = this.#discover(service);
    await discovery.ready;
    return [...discovery.addresses];
  }

  /** Call `service.method` with a serialized request; resolves with the serialized response. */
  call(service: string, method: string, payload: Uint8Array, options: CallOptions = {}): Promise<ClientResult> {
    return this.#call({ service, method, payload, metadata: options.metadata, options }) as Promise<ClientResult>;
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
      const type = method.requestType;
      const decodeResponse = messageDecoder(method.responseType);
      const encodable = messageEncoder(type);
      const decode: ResponseDecoder = (payload) => decodeResponse(payload);
      const call = (request: unknown = {}, options: CallOptions = {}): Promise<unknown> => {
        let payload: Uint8Array;
        try {
          payload = encodeMessage(type, encodable(request));
        } catch (error) {
          return Promise.reject(
            new RpcError(RpcCode.INVALID_ARGUMENT, `Cannot encode the request of ${method.name}`, { cause: error }),
          );
        }
        return this.#call({
          service: definition.fullName,
          method: method.name,
          payload,
          metadata: options.metadata,
          options,
        }, decode);
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
      // protobufjs decodes the answer itself: its omitted bytes fields at least come back as Uint8Array (64-bit
      // values stay Long on this path; stubs give bigint).
      const responseType = (method as { resolvedResponseType?: protobuf.Type | null }).resolvedResponseType;
      if (responseType) prepareType(responseType);
      this.call(serviceFullName, method.name, requestData, options).then(
        (result) => callback(null, result.payload),
        (error) => callback(error, null),
      );
    };
  }

  /** Close every connection and stop watching. Calls in flight fail with UNAVAILABLE. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#keepaliveTimer !== undefined) this.#loop.cancel(this.#keepaliveTimer);
    this.#keepaliveTimer = undefined;
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
    const before = discovery.addresses;
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
    // A drained provider that left the registry, or that appears again (restarted on the same address, its drain
    // frame having arrived after the registry said it left), is a new one.
    for (const address of this.#draining.keys()) {
      if (!this.#isListed(address) || (discovery.addresses.includes(address) && !before.includes(address))) {
        this.#draining.delete(address);
      }
    }
    // Nothing is remembered of providers that left.
    for (const address of this.#ejected.keys()) if (!this.#isListed(address)) this.#ejected.delete(address);
    getLogger().debug(`RpcChannel: providers of ${service}: ${discovery.addresses.join(", ") || "none"}`);
  }

  #isListed(address: string): boolean {
    for (const discovery of this.#discoveries.values()) if (discovery.addresses.includes(address)) return true;
    return false;
  }

  #connection(address: string): ProviderConnection {
    let connection = this.#connections.get(address);
    if (connection === undefined || !connection.usable) {
      // A draining one still answers its calls; a failed one has none left.
      if (connection?.draining) connection.closeWhenIdle();
      else connection?.close();
      connection = new ProviderConnection(address, {
        loop: this.#loop,
        maxFrameBytes: this.#options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
        connectTimeoutMs: this.#options.connectTimeoutMs ?? 3000,
        tls: this.#options.tls,
        onDrain: (drained, graceMs) => this.#onDrain(drained, graceMs),
        onPingTimeout: (dead) => this.#failed(dead.address, true),
      });
      this.#connections.set(address, connection);
      this.#armKeepalive();
    }
    return connection;
  }

  #onDrain(connection: ProviderConnection, graceMs: number): void {
    const now = this.#loop.now();
    this.#lastDrainMs = now;
    this.#draining.set(connection.address, now + Math.max(graceMs, 1000) + 1000);
    if (this.#connections.get(connection.address) === connection) this.#connections.delete(connection.address);
  }

  // One timer for all connections: pings the idle ones, closes those whose ping went unanswered.
  #armKeepalive(): void {
    const intervalMs = this.#options.keepaliveIntervalMs ?? 10_000;
    const timeoutMs = this.#options.keepaliveTimeoutMs ?? 5_000;
    if (this.#keepaliveTimer !== undefined || intervalMs <= 0 || this.#closed) return;
    this.#keepaliveTimer = this.#loop.runEvery(Math.max(10, Math.min(intervalMs, timeoutMs) / 4), () => {
      const now = this.#loop.now();
      for (const connection of this.#connections.values()) connection.checkKeepalive(now, intervalMs, timeoutMs);
    });
  }

  // --- calls ---

  // The one road of every call (stubs, `call`, rpcImpl): through the interceptors when there are any, else
  // straight to a PendingCall; `decode` turns the answer into the stub's message (by default a ClientResult).
  #call(call: OutgoingCall, decode?: ResponseDecoder): Promise<unknown> {
    if (this.#send === undefined) return this.#invoke(call, decode);
    const { options } = call;
    let sent: Promise<ClientResult>;
    try {
      sent = this.#send({ ...call, metadata: { ...call.metadata }, options });
    } catch (error) {
      sent = Promise.reject(error); // an interceptor that throws before returning a promise
    }
    const answered = decode === undefined
      ? sent
      : sent.then((result) => decodeAnswer(decode, call.method, result.payload, result.metadata));
    return answered.catch((error) => {
      const rpcError = RpcError.from(error);
      options.controller?.setFailed(rpcError.rawMessage, rpcError.code);
      throw rpcError;
    });
  }

  // One call: a PendingCall does the rest (attempts, deadline, cancel, retries) and settles the promise.
  #invoke(call: OutgoingCall, decode: ResponseDecoder | undefined): Promise<unknown> {
    const { service, method, options } = call;
    this.#retryTokens = Math.min(10, this.#retryTokens + (this.#options.retryBudgetRatio ?? 0.2));
    let timeoutMs = Math.min(options.timeoutMs ?? this.#timeoutMs, MAX_CALL_TIMEOUT_MS);
    const parent = options.parent;
    if (parent !== undefined) {
      const parentLeftMs = parent.timeRemainingMs();
      if (parentLeftMs <= 0) {
        const error = new RpcError(
          RpcCode.DEADLINE_EXCEEDED,
          `The call to ${service}.${method} was not sent: the deadline of its parent call ${parent.service}.` +
            `${parent.method} has passed`,
        );
        options.controller?.setFailed(error.rawMessage, error.code);
        return Promise.reject(error);
      }
      timeoutMs = Math.min(timeoutMs, parentLeftMs);
    }
    return new Promise((resolve, reject) => {
      new PendingCall({
        router: this.#router,
        service,
        method,
        payload: call.payload,
        metadata: call.metadata,
        options,
        timeoutMs,
        resolve,
        reject,
        decode,
      }).start();
    });
  }

  // A provider for a call's next attempt: not excluded (tried by this call) and not ejected (its connection
  // failed lately), unless all are ejected; undefined when none is left.
  #pick(service: string, hashKey: string | undefined, excluded: Set<string> | undefined): string | undefined {
    const addresses = this.#discover(service).addresses;
    let candidates = addresses;
    if (excluded !== undefined || this.#ejected.size > 0 || this.#draining.size > 0) {
      const now = this.#loop.now();
      candidates = addresses.filter((address) =>
        !excluded?.has(address) && !((this.#ejected.get(address)?.untilMs ?? 0) > now) &&
        !((this.#draining.get(address) ?? 0) > now)
      );
      // All ejected: try them anyway rather than fail without trying (but never one that is draining).
      if (candidates.length === 0) {
        candidates = addresses.filter((address) =>
          !excluded?.has(address) && !((this.#draining.get(address) ?? 0) > now)
        );
      }
    }
    if (candidates.length <= 1) return candidates[0];
    return this.#balancer.pick(
      candidates.map((address) => ({ address, outstanding: this.#connections.get(address)?.outstanding ?? 0 })),
      hashKey,
    ).address;
  }

  // Its connection failed: skipped at once, for 100 ms doubling to 5 s while it keeps failing.
  #eject(address: string): void {
    const previous = this.#ejected.get(address);
    const backoffMs = previous === undefined || previous.backoffMs === 0 ? 100 : Math.min(previous.backoffMs * 2, 5000);
    this.#ejected.set(address, { failures: previous?.failures ?? 0, untilMs: this.#loop.now() + backoffMs, backoffMs });
  }

  // A deadline missed on it (or, with `now`, a ping unanswered): ejected after `ejectAfterFailures` in a row, for
  // ejectionBackoffMs doubling per ejection up to maxEjectionMs. Past its back-off it gets calls again (a probe):
  // one more failure ejects it again at once, one success clears its record.
  #failed(address: string, now: boolean): void {
    const threshold = this.#options.ejectAfterFailures ?? 5;
    let health = this.#ejected.get(address);
    if (health === undefined) this.#ejected.set(address, health = { failures: 0, untilMs: 0, backoffMs: 0 });
    health.failures = now ? Math.max(health.failures + 1, threshold) : health.failures + 1;
    const nowMs = this.#loop.now();
    if (health.failures < threshold || health.untilMs > nowMs) return;
    const first = this.#options.ejectionBackoffMs ?? 1000;
    health.backoffMs = health.backoffMs === 0
      ? first
      : Math.min(health.backoffMs * 2, this.#options.maxEjectionMs ?? 30_000);
    health.untilMs = nowMs + health.backoffMs;
    getLogger().warn(
      `RpcChannel: ejecting ${address} for ${health.backoffMs} ms after ${health.failures} failures in a row`,
    );
  }
}
