/**
 * A channel's providers and connections, and its {@linkcode CallRouter}: discovery (registry watches or fixed
 * addresses), balancing, one {@linkcode ClientTransport} per provider (a ProviderConnection over the reactor's
 * TCP), outlier ejection, drains, keepalive and the retry budget. Owned by one RpcChannel, which closes it; its
 * calls (PendingCall) ask it where to go and tell it how each attempt went. Loop-confined.
 *
 * @module
 */

import { DeadlineLane } from "./_deadline_lane.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import type { TimerId } from "../reactor/timer_queue.ts";
import { DEFAULT_MAX_FRAME_BYTES } from "../reactor/length_header_codec.ts";
import { getLogger } from "../reactor/logger.ts";
import type { WatchCallback, WatchedEvent } from "../registry/registry.ts";
import { RegistryError, RegistryErrorCode } from "../registry/registry_error.ts";
import { ProviderConnection } from "./_provider_connection.ts";
import { SeedClientTransport } from "../seed/rpc/seed_client_transport.ts";
import { listSeedProviders, seedServicePath } from "../seed/rpc/seed_layout_discovery.ts";
import type { CallRouter } from "./_pending_call.ts";
import { createLoadBalancer, type LoadBalancer } from "./load_balancer.ts";
import type { RpcChannelOptions } from "./rpc_channel_options.ts";
import type { ClientTransport, ClientTransportEvents } from "./transport.ts";

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
/** {@linkcode RpcChannelOptions.emptyListGraceMs}'s default: about one ZooKeeper session timeout. */
export const DEFAULT_EMPTY_LIST_GRACE_MS = 10_000;

/** A service's providers as known now. */
interface Discovery {
  addresses: string[];
  ready: Promise<void>;
  // Set once `ready` has settled successfully, so calls skip awaiting it (a microtask hop per call).
  isReady: boolean;
  watching: boolean;
  /** Since when (loop time) the registry has listed no provider while the last non-empty list is kept. */
  emptySinceMs?: number;
  /** Reads the list again when the grace of an empty one ends. */
  graceTimer?: TimerId;
  /**
   * The one watch callback of this service, made once: a client holds a callback once however often it is given,
   * so reads that failed after setting it cannot pile up callbacks that each cause a read of their own.
   */
  watcher?: WatchCallback;
  /** A read of the list is under way (or waiting to retry). */
  refreshing?: boolean;
  /** What asked for another read while one was under way: done once it ends. */
  again?: { trigger: WatchedEvent | undefined; watch: boolean };
}

/** Routes a channel's calls to providers. */
export class ChannelRouter implements CallRouter, ClientTransportEvents {
  readonly loop: EventLoop;
  readonly maxRetries: number;
  readonly retryBackoffMs: number;
  readonly deadlines: DeadlineLane;
  readonly #options: RpcChannelOptions;
  readonly #balancer: LoadBalancer;
  readonly #discoveries = new Map<string, Discovery>();
  readonly #connections = new Map<string, ClientTransport>();
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
  // When the registry client last reported a session event (loop time): an empty list soon after one is suspect.
  #lastSessionEventMs = -Infinity;
  #stopFollowingSession: (() => void) | undefined;
  readonly #refreshRetries = new Set<TimerId>();

  /** The router of a channel with these options, whose calls' default timeout is `callTimeoutMs`. */
  constructor(options: RpcChannelOptions, callTimeoutMs: number) {
    this.#options = options;
    this.loop = options.loop ?? EventLoop.current();
    this.maxRetries = options.maxRetries ?? 2;
    this.retryBackoffMs = options.retryBackoffMs ?? 10;
    this.deadlines = new DeadlineLane(this.loop, callTimeoutMs);
    this.#balancer = typeof options.loadBalancer === "object"
      ? options.loadBalancer
      : createLoadBalancer(options.loadBalancer ?? "round_robin");
  }

  // --- the channel's ---

  /** The providers skipped now by outlier ejection (after failures) or because they are draining. */
  ejectedProviders(): string[] {
    const now = this.loop.now();
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

  /** A call starts: the retry budget earns its share. */
  callStarted(): void {
    this.#retryTokens = Math.min(10, this.#retryTokens + (this.#options.retryBudgetRatio ?? 0.2));
  }

  /** Close every connection and stop watching. Calls in flight fail with UNAVAILABLE. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#keepaliveTimer !== undefined) this.loop.cancel(this.#keepaliveTimer);
    this.#keepaliveTimer = undefined;
    this.#stopFollowingSession?.();
    for (const timer of this.#refreshRetries) this.loop.cancel(timer);
    this.#refreshRetries.clear();
    for (const discovery of this.#discoveries.values()) {
      if (discovery.graceTimer !== undefined) this.loop.cancel(discovery.graceTimer);
    }
    await Promise.all([...this.#connections.values()].map((connection) => connection.close()));
    this.#connections.clear();
  }

  // --- the calls' (CallRouter) ---

  closed(): boolean {
    return this.#closed;
  }

  discovered(service: string): Promise<void> | undefined {
    const discovery = this.#discover(service);
    return discovery.isReady ? undefined : discovery.ready;
  }

  providerCount(service: string): number {
    return this.#discover(service).addresses.length;
  }

  connection(address: string): ClientTransport {
    return this.#connection(address);
  }

  attempted(address: string, connection: ClientTransport, ok: boolean): void {
    if (ok) {
      if (this.#ejected.size > 0) this.#ejected.delete(address);
    } else if (!connection.usable && !connection.draining) {
      this.#eject(address);
    }
  }

  missedDeadline(address: string): void {
    this.#failed(address, false);
  }

  waitForProviderMs(): number | undefined {
    return this.loop.now() - this.#lastDrainMs < WAIT_AFTER_DRAIN_MS ? PROVIDER_POLL_MS : undefined;
  }

  takeRetryToken(): boolean {
    if (this.#retryTokens < 1) return false;
    this.#retryTokens -= 1;
    return true;
  }

  // --- discovery ---

  #discover(service: string): Discovery {
    let discovery = this.#discoveries.get(service);
    if (discovery !== undefined) return discovery;
    const fixed = this.#options.providers?.[service];
    if (fixed !== undefined || this.#options.registry === undefined) {
      discovery = { addresses: [...(fixed ?? [])], ready: Promise.resolve(), isReady: true, watching: false };
    } else {
      // A lost connection or an expired session: what may leave the registry briefly without providers' nodes.
      this.#stopFollowingSession ??= this.#options.registry.onSessionEvent((event) => {
        if (event.type === "disconnected" || event.type === "expired") this.#lastSessionEventMs = this.loop.now();
      });
      const watched: Discovery = { addresses: [], ready: Promise.resolve(), isReady: false, watching: true };
      watched.watcher = (event) => this.#refreshUntilDone(service, watched, event);
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

  async #refresh(service: string, discovery: Discovery, trigger?: WatchedEvent, watch = true): Promise<void> {
    const registry = this.#options.registry!;
    // The seed's layout (`seedProviders`): the addresses its method nodes hold, under the simple name.
    const seed = this.#options.seedProviders === true;
    const path = seed ? seedServicePath(service) : `/${service}`;
    const before = discovery.addresses;
    const rewatch = discovery.watcher!;
    let listed: string[];
    try {
      listed = seed
        ? await listSeedProviders(registry, service, watch ? rewatch : undefined)
        : await registry.children(path, watch ? { watch: rewatch } : {});
    } catch (error) {
      if (!(error instanceof RegistryError && error.code === RegistryErrorCode.NO_NODE)) throw error;
      // No provider has ever published the service: watch for its node.
      listed = [];
      if ((await registry.exists(path, watch ? { watch: rewatch } : {})) !== undefined) {
        return await this.#refresh(service, discovery, trigger, watch);
      }
    }
    if (this.#closed || this.#keepsLastList(service, discovery, listed, trigger)) return;
    discovery.addresses = listed;
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

  /**
   * Refresh after a watch fired (or a grace ended), and try again until it works: the watch that fired is spent,
   * so a refresh that fails (the connection lost mid-read) and is not retried would leave this service unwatched
   * and its list stale for good. The back-off doubles from 100 ms to 5 s; a new session re-reads by itself too.
   */
  #refreshUntilDone(service: string, discovery: Discovery, trigger: WatchedEvent | undefined, watch = true): void {
    if (discovery.refreshing) {
      // One more read once this one ends, whatever else asks meanwhile; a session event's mark is kept.
      const previous = discovery.again;
      discovery.again = {
        trigger: previous?.trigger?.type === 0 ? previous.trigger : trigger ?? previous?.trigger,
        watch: watch || (previous?.watch ?? false),
      };
      return;
    }
    discovery.refreshing = true;
    let backoffMs = 100;
    const current = () => !this.#closed && this.#discoveries.get(service) === discovery;
    const attempt = () => {
      if (!current()) return void (discovery.refreshing = false);
      this.#refresh(service, discovery, trigger, watch).then(() => {
        discovery.refreshing = false;
        const again = discovery.again;
        discovery.again = undefined;
        if (again !== undefined) this.#refreshUntilDone(service, discovery, again.trigger, again.watch);
      }, (error) => {
        if (!current()) return void (discovery.refreshing = false);
        getLogger().warn(`RpcChannel: cannot refresh providers of ${service}; again in ${backoffMs} ms`, { error });
        const timer = this.loop.runAfter(backoffMs, () => {
          this.#refreshRetries.delete(timer);
          attempt();
        });
        this.#refreshRetries.add(timer);
        backoffMs = Math.min(backoffMs * 2, 5000);
      });
    };
    attempt();
  }

  /**
   * Empty-list protection (Dubbo's, and gRPC's "keep the last good list in transient failure"): right after a
   * session event the registry may list no provider only because the providers have not re-created their nodes
   * yet. Such an empty list replaces a non-empty one only once it has stayed empty for `emptyListGraceMs`; calls
   * meanwhile go to the last known providers (and fail over by the usual rules). Any non-empty list, and an empty
   * one with no session event near it (a provider that really left), is taken at once.
   */
  #keepsLastList(service: string, discovery: Discovery, listed: string[], trigger: WatchedEvent | undefined): boolean {
    const graceMs = this.#options.emptyListGraceMs ?? DEFAULT_EMPTY_LIST_GRACE_MS;
    const now = this.loop.now();
    const suspect = listed.length === 0 && discovery.addresses.length > 0 && graceMs > 0 &&
      (trigger?.type === 0 || now - this.#lastSessionEventMs < graceMs || discovery.emptySinceMs !== undefined);
    if (!suspect) {
      discovery.emptySinceMs = undefined;
      if (discovery.graceTimer !== undefined) this.loop.cancel(discovery.graceTimer);
      discovery.graceTimer = undefined;
      return false;
    }
    discovery.emptySinceMs ??= now;
    const leftMs = discovery.emptySinceMs + graceMs - now;
    if (leftMs <= 0) {
      getLogger().warn(`RpcChannel: no provider of ${service} for ${graceMs} ms after a session event`);
      discovery.emptySinceMs = undefined;
      discovery.graceTimer = undefined;
      return false;
    }
    if (discovery.graceTimer === undefined) {
      getLogger().warn(
        `RpcChannel: the registry lists no provider of ${service} right after a session event; keeping ` +
          `${discovery.addresses.join(", ")} for up to ${graceMs} ms`,
      );
      // The watch set by the read that came back empty stays armed; this only reads again when the grace ends.
      discovery.graceTimer = this.loop.runAfter(leftMs, () => {
        discovery.graceTimer = undefined;
        if (this.#closed) return;
        this.#refreshUntilDone(service, discovery, undefined, false);
      });
    }
    return true;
  }

  #isListed(address: string): boolean {
    for (const discovery of this.#discoveries.values()) if (discovery.addresses.includes(address)) return true;
    return false;
  }

  #connection(address: string): ClientTransport {
    let connection = this.#connections.get(address);
    if (connection === undefined || !connection.usable) {
      // A draining one still answers its calls; a failed one has none left.
      if (connection?.draining) connection.closeWhenIdle();
      else connection?.close();
      connection = this.#options.transport?.(address, this) ?? this.#makeConnection(address);
      this.#connections.set(address, connection);
      this.#armKeepalive();
    }
    return connection;
  }

  // The reactor's TCP with our envelope, or with `seedProviders` the seed's frame, a connection per call.
  #makeConnection(address: string): ClientTransport {
    const options = this.#options;
    const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    const connectTimeoutMs = options.connectTimeoutMs ?? 3000;
    if (options.seedProviders === true) {
      return new SeedClientTransport(address, { loop: this.loop, connectTimeoutMs, maxAnswerBytes: maxFrameBytes });
    }
    return new ProviderConnection(address, {
      loop: this.loop,
      maxFrameBytes,
      connectTimeoutMs,
      tls: options.tls,
      events: this,
    });
  }

  /** From a transport: its provider drains. */
  onDrain(connection: ClientTransport, graceMs: number): void {
    const now = this.loop.now();
    this.#lastDrainMs = now;
    this.#draining.set(connection.address, now + Math.max(graceMs, 1000) + 1000);
    if (this.#connections.get(connection.address) === connection) this.#connections.delete(connection.address);
  }

  /** From a transport: its provider stopped answering pings (ejected at once). */
  onUnresponsive(connection: ClientTransport): void {
    this.#failed(connection.address, true);
  }

  // One timer for all connections: pings the idle ones, closes those whose ping went unanswered.
  #armKeepalive(): void {
    const intervalMs = this.#options.keepaliveIntervalMs ?? 10_000;
    const timeoutMs = this.#options.keepaliveTimeoutMs ?? 5_000;
    if (this.#keepaliveTimer !== undefined || intervalMs <= 0 || this.#closed) return;
    this.#keepaliveTimer = this.loop.runEvery(Math.max(10, Math.min(intervalMs, timeoutMs) / 4), () => {
      const now = this.loop.now();
      for (const connection of this.#connections.values()) connection.checkKeepalive?.(now, intervalMs, timeoutMs);
    });
  }

  // --- balancing and ejection ---

  /**
   * A provider for a call's next attempt: not excluded (tried by this call) and not ejected (its connection
   * failed lately), unless all are ejected; undefined when none is left.
   */
  pick(service: string, hashKey: string | undefined, excluded: Set<string> | undefined): string | undefined {
    const addresses = this.#discover(service).addresses;
    let candidates = addresses;
    if (excluded !== undefined || this.#ejected.size > 0 || this.#draining.size > 0) {
      const now = this.loop.now();
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
    this.#ejected.set(address, { failures: previous?.failures ?? 0, untilMs: this.loop.now() + backoffMs, backoffMs });
  }

  // A deadline missed on it (or, with `now`, a ping unanswered): ejected after `ejectAfterFailures` in a row, for
  // ejectionBackoffMs doubling per ejection up to maxEjectionMs. Past its back-off it gets calls again (a probe):
  // one more failure ejects it again at once, one success clears its record.
  #failed(address: string, now: boolean): void {
    const threshold = this.#options.ejectAfterFailures ?? 5;
    let health = this.#ejected.get(address);
    if (health === undefined) this.#ejected.set(address, health = { failures: 0, untilMs: 0, backoffMs: 0 });
    health.failures = now ? Math.max(health.failures + 1, threshold) : health.failures + 1;
    const nowMs = this.loop.now();
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
