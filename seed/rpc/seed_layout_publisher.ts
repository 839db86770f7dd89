/**
 * A provider's entries in the seed's registry layout (seed-spec §3.7), so the seed's callers find a TypeScript
 * provider's seed port: `/<Service>` persistent with empty data and `/<Service>/<Method>` ephemeral whose data is the
 * text `ip:port`, simple service names, one node per unary method (the seed's frame carries no streams). Published
 * beside the native entries in the same registry (our registry or ZooKeeper: any {@linkcode Registry}), again on the
 * new session after an expiry, deleted first thing in a drain.
 *
 * One node per method path holds one address, so two providers of one service collide. The seed's own providers
 * keep the first and let the second serve unseen, for good: once the first leaves, the method vanishes although the
 * second still runs (§3.7). Here the first wins too, and the second logs it and watches the node: when the first
 * provider's node goes (it stopped, or its session expired), the second takes the path over, so the method stays
 * reachable while any provider of it runs. A node the same address left behind (a restart within the old session's
 * timeout) is taken over at once. Native callers are not concerned: they list every provider under
 * `/<package.Service>`.
 *
 * @module
 */

import { getLogger } from "../../reactor/logger.ts";
import { NodeType, type Registry, type WatchedEvent } from "../../registry/registry.ts";
import { RegistryError, RegistryErrorCode } from "../../registry/registry_error.ts";
import { MethodKind, type ServiceDefinition } from "../../rpc/service_definition.ts";
import { seedServiceName } from "./seed_frame.ts";

/** Tries of one step whose answers are lost, a back-off of 100 ms doubling between them. */
const PUBLISH_ATTEMPTS = 6;

const decoder = new TextDecoder();

/**
 * The seed layout's paths of `services`: each service's node and its unary methods' nodes.
 *
 * @example
 * ```ts
 * import { parseProto, serviceDefinition } from "../../rpc/service_definition.ts";
 * import { seedLayoutPaths } from "./seed_layout_publisher.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package dwt;
 *   message M {} service UserServiceRpc { rpc Login (M) returns (M); rpc Register (M) returns (M); }`);
 * assert.deepEqual(seedLayoutPaths([serviceDefinition(root, "dwt.UserServiceRpc")]), [
 *   { service: "/UserServiceRpc", methods: ["/UserServiceRpc/Login", "/UserServiceRpc/Register"] },
 * ]);
 * ```
 */
export function seedLayoutPaths(
  services: readonly ServiceDefinition[],
): { service: string; methods: string[] }[] {
  return services.map((definition) => {
    const service = `/${seedServiceName(definition.fullName)}`;
    const methods = [...definition.methods.values()]
      .filter((method) => (method.kind ?? MethodKind.UNARY) === MethodKind.UNARY)
      .map((method) => `${service}/${method.name}`);
    return { service, methods };
  });
}

/**
 * Publishes a provider's seed port in the seed's layout. Owned by one RpcProvider.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { RegistryClient } from "../../registry/client/registry_client.ts";
 * import { RegistryServer } from "../../registry/server/registry_server.ts";
 * import { parseProto, serviceDefinition } from "../../rpc/service_definition.ts";
 * import { SeedLayoutPublisher } from "./seed_layout_publisher.ts";
 * import assert from "node:assert/strict";
 *
 * const loop = new EventLoop();
 * const server = new RegistryServer({ port: 0, heartbeatPort: 0, loop });
 * await server.start();
 * const registry = await RegistryClient.connect(server.address, { loop });
 * const root = parseProto(`syntax = "proto3"; package dwt; message M {} service S { rpc Go (M) returns (M); }`);
 * const publisher = new SeedLayoutPublisher(registry);
 * await publisher.start("127.0.0.1:8800", [serviceDefinition(root, "dwt.S")]);
 * assert.equal(new TextDecoder().decode((await registry.get("/S/Go")).data), "127.0.0.1:8800");
 * await publisher.stop();
 * await registry.close();
 * await server.stop();
 * ```
 */
export class SeedLayoutPublisher {
  readonly #registry: Registry;
  // Method paths whose node this provider made (deleted at stop).
  readonly #owned = new Set<string>();
  // Method paths another provider holds, watched to take them over.
  readonly #waiting = new Set<string>();
  #address = "";
  #stopped = false;
  #removeSessionListener: (() => void) | undefined;
  #sessionId: bigint | undefined;

  /** Publish in `registry`. */
  constructor(registry: Registry) {
    this.#registry = registry;
  }

  /** Method paths whose node holds this provider's address now. */
  get published(): string[] {
    return [...this.#owned];
  }

  /** Method paths held by another provider, which this one takes over when they go. */
  get waiting(): string[] {
    return [...this.#waiting];
  }

  /** Publish every unary method of `services` at `address` (the seed port's `ip:port`). */
  async start(address: string, services: readonly ServiceDefinition[]): Promise<void> {
    this.#address = address;
    const paths = seedLayoutPaths(services);
    let expired = false;
    let published = false;
    this.#removeSessionListener = this.#registry.onSessionEvent((event) => {
      if (event.type === "expired") expired = true;
      if (event.type !== "connected") return;
      this.#sessionId = event.sessionId;
      if (expired && published && !this.#stopped) {
        expired = false;
        this.#owned.clear();
        this.#waiting.clear();
        this.#publish(paths).catch((error) =>
          getLogger().error("RpcProvider: cannot re-publish the seed layout after a session expiry", { error })
        );
      }
    });
    try {
      await this.#publish(paths);
    } catch (error) {
      this.#removeSessionListener();
      throw error;
    }
    published = true;
  }

  /** Delete this provider's method nodes (the service nodes stay: they are persistent and shared) and stop. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#removeSessionListener?.();
    this.#waiting.clear();
    for (const path of this.#owned) await this.#registry.delete(path).catch(() => {});
    this.#owned.clear();
  }

  async #publish(paths: { service: string; methods: string[] }[]): Promise<void> {
    for (const { service, methods } of paths) {
      await this.#retried(() => this.#registry.create(service, "").catch(ignoreNodeExists));
      for (const path of methods) await this.#retried(() => this.#claim(path));
    }
  }

  // Create the method's node; if it exists, take it when it is ours or stale from this address, else watch it.
  async #claim(path: string): Promise<void> {
    if (this.#stopped) return;
    const registry = this.#registry;
    try {
      await registry.create(path, this.#address, { nodeType: NodeType.EPHEMERAL });
      this.#owned.add(path);
      this.#waiting.delete(path);
      return;
    } catch (error) {
      ignoreNodeExists(error);
    }
    let holder: { data: Uint8Array; stat: { ephemeralOwner: bigint } };
    try {
      holder = await registry.get(path, { watch: (event) => this.#holderChanged(path, event) });
    } catch (error) {
      // Gone between the create and the read: try again.
      if (RegistryError.from(error).code === RegistryErrorCode.NO_NODE) return await this.#claim(path);
      throw error;
    }
    if (this.#sessionId !== undefined && holder.stat.ephemeralOwner === this.#sessionId) {
      this.#owned.add(path); // a retried create of ours
      this.#waiting.delete(path);
      return;
    }
    const heldBy = decoder.decode(holder.data);
    if (heldBy === this.#address) {
      // Left by an earlier run at this address whose session has not expired yet: it is ours now.
      await registry.delete(path).catch(() => {});
      return await this.#claim(path);
    }
    if (!this.#waiting.has(path)) {
      getLogger().warn(
        `RpcProvider: seed callers of ${path} reach ${heldBy}, which published it first (the seed's layout holds ` +
          `one address per method); ${this.#address} takes it over when that node goes`,
      );
    }
    this.#waiting.add(path);
  }

  // The watch on another provider's node fired: when it went, claim the path (again watching whoever wins).
  #holderChanged(path: string, event: WatchedEvent): void {
    if (this.#stopped || !this.#waiting.has(path)) return;
    if (event.type === 0) return; // the session changed: a re-publish after an expiry re-reads everything
    this.#retried(() => this.#claim(path)).catch((error) =>
      getLogger().warn(`RpcProvider: cannot take over ${path} in the seed layout`, { error })
    );
  }

  /** `step` again while its answers are lost, with a back-off; then its last error. */
  async #retried(step: () => Promise<unknown>): Promise<void> {
    for (let attempt = 1;; attempt++) {
      try {
        await step();
        return;
      } catch (error) {
        const code = RegistryError.from(error).code;
        const lost = code === RegistryErrorCode.CONNECTION_LOSS || code === RegistryErrorCode.OPERATION_TIMEOUT;
        if (!lost || attempt >= PUBLISH_ATTEMPTS || this.#stopped) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** (attempt - 1)));
      }
    }
  }
}

function ignoreNodeExists(error: unknown): void {
  if (!(error instanceof RegistryError && error.code === RegistryErrorCode.NODE_EXISTS)) throw error;
}
