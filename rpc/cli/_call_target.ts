// Where `deno task call` sends calls and asks for schemas: the registry (ours or ZooKeeper) a caller's config
// names, whose providers are found as an RpcChannel finds them, or one provider given as --provider HOST:PORT.

import type { TlsClientOptions } from "../../reactor/backend/net_backend.ts";
import type { EventLoop } from "../../reactor/event_loop.ts";
import type { Registry } from "../../registry/registry.ts";
import { SERVER_REFLECTION_V1, SERVER_REFLECTION_V1ALPHA } from "../reflection/mod.ts";
import type { RpcApplication, RpcClientSettings } from "../rpc_application.ts";
import { RpcChannel } from "../rpc_channel.ts";
import { RpcCode, RpcError } from "../rpc_error.ts";
import { ReflectionClient } from "./_reflection_client.ts";
import { ServiceDirectory } from "./_service_directory.ts";

/**
 * The bounds of one step before the call (a registry read, a reflection conversation): how long it may take, the
 * command's cancel, and the error when it takes longer (DEADLINE_EXCEEDED when --timeout is what ran out).
 */
export interface Lookup {
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
  /** The error of a step that did not end in time: `what` says which (`Cannot reach the registry at ...`). */
  expired(what: string): RpcError;
}

/** Where calls go and schemas come from. Owns the channels it makes; `close` closes them. */
export interface CallTarget {
  /** The services served: the registry's (with a provider now), or the provider's (by its reflection). */
  listServices(lookup: Lookup): Promise<string[]>;
  /** Rejects NOT_FOUND when `service` is not known where calls go, UNAVAILABLE when it has no provider now. */
  checkService(service: string, lookup: Lookup): Promise<void>;
  /** The providers to ask for the schema of `symbol` (a service, method, message or enum), best first. */
  providersFor(symbol: string, lookup: Lookup): Promise<string[]>;
  /** Reflection of the provider at `address`. */
  reflection(address: string, lookup: Lookup): ReflectionClient;
  /** A channel whose calls to `service` reach the target. */
  channel(service: string): Promise<RpcChannel>;
  /** Close every channel made. */
  close(): Promise<void>;
}

/** `promise`, or the lookup's `expired(what)` once its time is up first. */
function within<T>(promise: Promise<T>, lookup: Lookup, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(lookup.expired(what)), lookup.timeoutMs);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** The reflection services routed to one address (the rest of `providers` as given). */
function withReflection(address: string, providers: Record<string, string[]> = {}): Record<string, string[]> {
  return { ...providers, [SERVER_REFLECTION_V1.fullName]: [address], [SERVER_REFLECTION_V1ALPHA.fullName]: [address] };
}

/** The registry of a caller's config (`-i caller.json`). */
export class RegistryTarget implements CallTarget {
  readonly #app: RpcApplication;
  readonly #tls: TlsClientOptions | undefined;
  readonly #channels: RpcChannel[] = [];
  #directory: Promise<ServiceDirectory> | undefined;

  /**
   * Calls through the registry `app`'s config names; `app` stays the caller's to close. `tls`: the config's
   * `tls_ca_file` for reflection's channels (the app's own channel reads it itself).
   */
  constructor(app: RpcApplication, tls?: TlsClientOptions) {
    this.#app = app;
    this.#tls = tls;
  }

  async listServices(lookup: Lookup): Promise<string[]> {
    const directory = await this.#open(lookup);
    return (await this.#read(directory.services(), lookup)).map((service) => service.name);
  }

  async checkService(service: string, lookup: Lookup): Promise<void> {
    const directory = await this.#open(lookup);
    const found = await this.#read(directory.service(service), lookup);
    if (found === undefined) {
      const known = (await this.#read(directory.services(), lookup)).map((each) => each.name);
      throw new RpcError(
        RpcCode.NOT_FOUND,
        `Cannot find service '${service}' in ${this.#where}: it lists ${known.join(", ") || "no services"}`,
      );
    }
    if (found.providers.length === 0) {
      throw new RpcError(RpcCode.UNAVAILABLE, `No provider of ${service} is in ${this.#where} now`);
    }
  }

  async providersFor(symbol: string, lookup: Lookup): Promise<string[]> {
    const directory = await this.#open(lookup);
    const services = await this.#read(directory.services(), lookup);
    // The service the symbol is, or is in (the longest name that prefixes it); a message's could be any.
    const owner =
      services.filter((service) =>
        symbol === service.name || symbol.startsWith(`${service.name}.`) || symbol.startsWith(`${service.name}/`)
      ).sort((a, b) => b.name.length - a.name.length)[0];
    const candidates = owner === undefined ? services : [owner];
    return [...new Set(candidates.flatMap((service) => service.providers.map((provider) => provider.address)))];
  }

  reflection(address: string, lookup: Lookup): ReflectionClient {
    const channel = new RpcChannel({ providers: withReflection(address), loop: this.#app.loop, tls: this.#tls });
    this.#channels.push(channel);
    return new ReflectionClient(channel, address, lookup);
  }

  async channel(_service: string): Promise<RpcChannel> {
    const channel = await this.#app.channel();
    this.#channels.push(channel);
    return channel;
  }

  async close(): Promise<void> {
    await Promise.all(this.#channels.map((channel) => channel.close()));
  }

  get #where(): string {
    const registry = this.#app.config.registry;
    return registry.kind === "zookeeper"
      ? `ZooKeeper at ${registry.connectString}`
      : `the registry at ${registry.host}:${registry.port}`;
  }

  #open(lookup: Lookup): Promise<ServiceDirectory> {
    // Opened once: the first lookup's bounds are the session's.
    this.#directory ??= within(this.#app.registry(), lookup, `Cannot reach ${this.#where}`).then(
      (registry: Registry) => new ServiceDirectory(registry),
      (error) => {
        if (error instanceof RpcError) throw error;
        const message = `Cannot reach ${this.#where}: ${(error as Error).message}`;
        throw new RpcError(RpcCode.UNAVAILABLE, message, { cause: error });
      },
    );
    return this.#directory;
  }

  async #read<T>(promise: Promise<T>, lookup: Lookup): Promise<T> {
    try {
      return await within(promise, lookup, `${this.#where} did not answer`);
    } catch (error) {
      if (error instanceof RpcError) throw error;
      throw new RpcError(RpcCode.UNAVAILABLE, `Cannot read ${this.#where}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
}

/** Options of {@linkcode ProviderTarget}: what a caller's config (-i) gives its channels, when there is one. */
export interface ProviderTargetOptions {
  /** @default {EventLoop.current()} */
  readonly loop?: EventLoop;
  /** The config's `tls_ca_file`. @default {undefined: plain TCP} */
  readonly tls?: TlsClientOptions;
  /** The config's `rpcclient_` keys. @default {{}} */
  readonly settings?: RpcClientSettings;
}

/** One provider, `--provider HOST:PORT`: no registry, the schema from its reflection. */
export class ProviderTarget implements CallTarget {
  readonly #address: string;
  readonly #options: ProviderTargetOptions;
  readonly #channels: RpcChannel[] = [];

  /** Calls to the provider at `address` (`host:port`). */
  constructor(address: string, options: ProviderTargetOptions = {}) {
    this.#address = address;
    this.#options = options;
  }

  listServices(lookup: Lookup): Promise<string[]> {
    return this.reflection(this.#address, lookup).listServices();
  }

  async checkService(): Promise<void> {
    // The provider's reflection says whether it serves the service, and its own answer to a call does.
  }

  providersFor(): Promise<string[]> {
    return Promise.resolve([this.#address]);
  }

  reflection(address: string, lookup: Lookup): ReflectionClient {
    return new ReflectionClient(this.#open(withReflection(address)), address, lookup);
  }

  channel(service: string): Promise<RpcChannel> {
    return Promise.resolve(this.#open(withReflection(this.#address, { [service]: [this.#address] })));
  }

  #open(providers: Record<string, string[]>): RpcChannel {
    const { loop, tls, settings } = this.#options;
    const channel = new RpcChannel({ ...settings, providers, loop, tls });
    this.#channels.push(channel);
    return channel;
  }

  async close(): Promise<void> {
    await Promise.all(this.#channels.map((channel) => channel.close()));
  }
}
