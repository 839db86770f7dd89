/**
 * A provider's entries in the registry: one ephemeral node `/<Service>/<host:port>` per service, whose data lists
 * the methods. Published at start, published again on the new session after the old one expired (the nodes died
 * with it), deleted first thing in a drain. Owned by one RpcProvider.
 *
 * Retries. A create whose answer is lost (CONNECTION_LOSS, OPERATION_TIMEOUT) may or may not have been made, so
 * it is tried again, and a NODE_EXISTS the current session owns counts as made. The node's plain name is its own
 * retry key: publishing makes no sequential nodes, so a retry cannot make a second one, and the names must stay
 * `host:port` because callers' discovery reads them as addresses. That is why the publisher does not use the
 * registry's protected create (`CreateOptions.protected`), which prefixes names to find them again; it matters
 * for sequential nodes (and the registry client's own re-creation of protected ephemeral nodes after an expiry
 * keeps it).
 *
 * @module
 */

import { getLogger } from "../reactor/logger.ts";
import { NodeType } from "../registry/server/data_tree.ts";
import type { Registry } from "../registry/registry.ts";
import { RegistryError, RegistryErrorCode } from "../registry/registry_error.ts";
import type { ServiceDefinition } from "./service_definition.ts";

const ignoreNodeExists = (error: unknown) => {
  if (!(error instanceof RegistryError && error.code === RegistryErrorCode.NODE_EXISTS)) throw error;
};

/** Tries of one node's create when its answers are lost, a back-off of 100 ms doubling between them. */
const PUBLISH_ATTEMPTS = 6;

const answerLost = (error: unknown) => {
  const code = RegistryError.from(error).code;
  return code === RegistryErrorCode.CONNECTION_LOSS || code === RegistryErrorCode.OPERATION_TIMEOUT;
};

/** Publishes a provider's services at one address. */
export class ServicePublisher {
  readonly #registry: Registry;
  #published: string[] = [];
  #removeSessionListener: (() => void) | undefined;
  #stopped = false;
  // The session of the last `connected` event seen (undefined before the first one after start).
  #sessionId: bigint | undefined;

  /** Publish in `registry`. */
  constructor(registry: Registry) {
    this.#registry = registry;
  }

  /**
   * Publish every service at `address`, and again whenever a session expired and a new one connected (the
   * registry's own recreateEphemerals may be doing the same at once: a node the new session owns counts as done).
   */
  async start(address: string, services: readonly ServiceDefinition[]): Promise<void> {
    let expired = false;
    let publishing = false;
    this.#removeSessionListener = this.#registry.onSessionEvent((event) => {
      if (event.type === "expired") expired = true;
      if (event.type !== "connected") return;
      this.#sessionId = event.sessionId;
      if (expired && publishing && !this.#stopped) {
        expired = false;
        this.#publish(address, services).catch((error) =>
          getLogger().error("RpcProvider: cannot re-publish after a session expiry", { error })
        );
      }
    });
    try {
      await this.#publish(address, services);
    } catch (error) {
      this.#removeSessionListener();
      throw error;
    }
    publishing = true;
  }

  /** Delete the provider's nodes (callers stop picking it) and publish no more. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#removeSessionListener?.();
    for (const path of this.#published) await this.#registry.delete(path).catch(() => {});
  }

  async #publish(address: string, services: readonly ServiceDefinition[]): Promise<void> {
    const registry = this.#registry;
    const published: string[] = [];
    for (const definition of services) {
      const servicePath = `/${definition.fullName}`;
      await this.#retried(() => registry.create(servicePath, "").catch(ignoreNodeExists));
      const path = `${servicePath}/${address}`;
      const data = JSON.stringify({ address, methods: [...definition.methods.keys()] });
      await this.#retried(() => this.#createNode(path, data));
      published.push(path);
    }
    this.#published = published;
  }

  async #createNode(path: string, data: string): Promise<void> {
    const registry = this.#registry;
    try {
      await registry.create(path, data, { nodeType: NodeType.EPHEMERAL });
    } catch (error) {
      ignoreNodeExists(error);
      const sessionId = this.#sessionId;
      if (sessionId === undefined || (await registry.exists(path))?.ephemeralOwner !== sessionId) {
        // A node left by an earlier run on this address whose session has not expired yet: it is ours now.
        await registry.delete(path).catch(() => {});
        await registry.create(path, data, { nodeType: NodeType.EPHEMERAL });
      }
    }
  }

  /** `step` again while its answers are lost (see the module doc), with a back-off; then its last error. */
  async #retried(step: () => Promise<unknown>): Promise<void> {
    for (let attempt = 1;; attempt++) {
      try {
        await step();
        return;
      } catch (error) {
        if (!answerLost(error) || attempt >= PUBLISH_ATTEMPTS || this.#stopped) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** (attempt - 1)));
      }
    }
  }
}
