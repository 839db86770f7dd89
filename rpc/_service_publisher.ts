/**
 * A provider's entries in the registry: one ephemeral node `/<Service>/<host:port>` per service, whose data lists
 * the methods. Published at start, published again on the new session after the old one expired (the nodes died
 * with it), deleted first thing in a drain. Owned by one RpcProvider.
 *
 * @module
 */

import { getLogger } from "../reactor/logger.ts";
import { NodeType } from "../registry/data_tree.ts";
import type { Registry } from "../registry/registry.ts";
import { RegistryError, RegistryErrorCode } from "../registry/registry_error.ts";
import type { ServiceDefinition } from "./service_definition.ts";

const ignoreNodeExists = (error: unknown) => {
  if (!(error instanceof RegistryError && error.code === RegistryErrorCode.NODE_EXISTS)) throw error;
};

/** Publishes a provider's services at one address. */
export class ServicePublisher {
  readonly #registry: Registry;
  #published: string[] = [];
  #removeSessionListener: (() => void) | undefined;
  #stopped = false;

  /** Publish in `registry`. */
  constructor(registry: Registry) {
    this.#registry = registry;
  }

  /**
   * Publish every service at `address`, and again whenever a session expired and a new one connected (the
   * registry's own recreateEphemerals may be doing the same at once: a node the new session owns counts as done).
   */
  async start(address: string, services: readonly ServiceDefinition[]): Promise<void> {
    await this.#publish(address, services);
    let expired = false;
    this.#removeSessionListener = this.#registry.onSessionEvent((event) => {
      if (event.type === "expired") expired = true;
      if (event.type === "connected" && expired && !this.#stopped) {
        expired = false;
        this.#publish(address, services, event.sessionId).catch((error) =>
          getLogger().error("RpcProvider: cannot re-publish after a session expiry", { error })
        );
      }
    });
  }

  /** Delete the provider's nodes (callers stop picking it) and publish no more. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#removeSessionListener?.();
    for (const path of this.#published) await this.#registry.delete(path).catch(() => {});
  }

  /** `sessionId`, when known, is the session whose nodes count as already published. */
  async #publish(address: string, services: readonly ServiceDefinition[], sessionId?: bigint): Promise<void> {
    const registry = this.#registry;
    const published: string[] = [];
    for (const definition of services) {
      const servicePath = `/${definition.fullName}`;
      await registry.create(servicePath, "").catch(ignoreNodeExists);
      const path = `${servicePath}/${address}`;
      const data = JSON.stringify({ address, methods: [...definition.methods.keys()] });
      try {
        await registry.create(path, data, { nodeType: NodeType.EPHEMERAL });
      } catch (error) {
        ignoreNodeExists(error);
        if (sessionId === undefined || (await registry.exists(path))?.ephemeralOwner !== sessionId) {
          // A node left by an earlier run on this address whose session has not expired yet: it is ours now.
          await registry.delete(path).catch(() => {});
          await registry.create(path, data, { nodeType: NodeType.EPHEMERAL });
        }
      }
      published.push(path);
    }
    this.#published = published;
  }
}
