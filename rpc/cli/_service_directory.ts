// The services a registry lists, read the way providers publish them (rpc/_service_publisher.ts): a node
// `/<Service>` per service, and under it one ephemeral node `<host:port>` per provider whose data is
// `{"address": "host:port", "methods": [...]}`. Other nodes in the registry (ZooKeeper's own `/zookeeper`, another
// application's) are not services and are skipped.

import type { Registry } from "../../registry/registry.ts";
import { RegistryError, RegistryErrorCode } from "../../registry/registry_error.ts";

/** One provider of a service, as it published itself. */
export interface PublishedProvider {
  readonly address: string;
  readonly methods: readonly string[];
}

/** A service the registry lists, with its providers now (none when they all left). */
export interface PublishedService {
  readonly name: string;
  readonly providers: readonly PublishedProvider[];
}

const isNoNode = (error: unknown) => error instanceof RegistryError && error.code === RegistryErrorCode.NO_NODE;

/** Reads services and providers from a registry session it does not own. */
export class ServiceDirectory {
  readonly #registry: Registry;

  constructor(registry: Registry) {
    this.#registry = registry;
  }

  /** Every service with at least one provider, sorted by name. */
  async services(): Promise<PublishedService[]> {
    const names = await this.#registry.children("/");
    const services = await Promise.all(names.map((name) => this.service(name)));
    return services.filter((service): service is PublishedService => (service?.providers.length ?? 0) > 0)
      .sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  }

  /**
   * Service `name`: undefined when the registry has no such node or the node holds no provider entries (it is
   * not a service); its providers may be none when all have left (the node stays).
   */
  async service(name: string): Promise<PublishedService | undefined> {
    let children: string[];
    try {
      children = await this.#registry.children(`/${name}`);
    } catch (error) {
      if (isNoNode(error)) return undefined;
      throw error;
    }
    const providers = await Promise.all(children.map((child) => this.#provider(`/${name}/${child}`)));
    const found = providers.filter((provider) => provider !== undefined);
    // Children that are all something else: not a service node.
    if (children.length > 0 && found.length === 0) return undefined;
    return { name, providers: found };
  }

  async #provider(path: string): Promise<PublishedProvider | undefined> {
    let data: Uint8Array;
    try {
      data = (await this.#registry.get(path)).data;
    } catch (error) {
      if (isNoNode(error)) return undefined; // it left between the listing and the read
      throw error;
    }
    let entry: unknown;
    try {
      entry = JSON.parse(new TextDecoder().decode(data));
    } catch {
      return undefined;
    }
    const { address, methods } = (entry ?? {}) as { address?: unknown; methods?: unknown };
    if (typeof address !== "string" || !Array.isArray(methods)) return undefined;
    return { address, methods: methods.filter((method): method is string => typeof method === "string") };
  }
}
