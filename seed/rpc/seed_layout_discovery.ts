/**
 * Discovery in the C++ seed's registry layout (seed-spec §3.7), for a channel with `seedProviders`: a service's
 * providers are the addresses its method nodes hold, `/<Service>/<Method>` = `ip:port` under the simple service
 * name. Every method of a service is served by every provider of it (the seed registers whole services), so the
 * addresses of all its methods, without repeats, are its providers, balanced as usual; the watches set on the
 * service node's children and on each method node's data keep the list current (a provider leaving, another taking
 * a method over, a `set` from the seed's `client_cli`).
 *
 * @module
 */

import { getLogger } from "../../reactor/logger.ts";
import type { Registry, WatchCallback } from "../../registry/registry.ts";
import { RegistryError, RegistryErrorCode } from "../../registry/registry_error.ts";
import { seedServiceName } from "./seed_frame.ts";

const decoder = new TextDecoder();
const ADDRESS = /^[^\s:]+:(\d{1,5})$/;

/**
 * The service's node in the seed's layout: `/` and its simple name.
 *
 * @example
 * ```ts
 * import { seedServicePath } from "./seed_layout_discovery.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(seedServicePath("dwt.UserServiceRpc"), "/UserServiceRpc");
 * ```
 */
export function seedServicePath(service: string): string {
  return `/${seedServiceName(service)}`;
}

/**
 * The addresses the method nodes of `service` (a full or simple name) hold, each once, in the order of the methods
 * listed; a node whose data is not `host:port` is skipped with a warning. With `watch`, it is set on the service
 * node's children and each method node's data. A NO_NODE RegistryError when the service node does not exist.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { NodeType } from "../../registry/registry.ts";
 * import { RegistryClient } from "../../registry/client/registry_client.ts";
 * import { RegistryServer } from "../../registry/server/registry_server.ts";
 * import { listSeedProviders } from "./seed_layout_discovery.ts";
 * import assert from "node:assert/strict";
 *
 * const loop = new EventLoop();
 * const server = new RegistryServer({ port: 0, heartbeatPort: 0, loop });
 * await server.start();
 * const registry = await RegistryClient.connect(server.address, { loop });
 * // What the seed's provider publishes (§3.7).
 * await registry.create("/UserServiceRpc", "");
 * await registry.create("/UserServiceRpc/Login", "127.0.0.1:8800", { nodeType: NodeType.EPHEMERAL });
 * await registry.create("/UserServiceRpc/Register", "127.0.0.1:8800", { nodeType: NodeType.EPHEMERAL });
 * assert.deepEqual(await listSeedProviders(registry, "dwt.UserServiceRpc"), ["127.0.0.1:8800"]);
 * await registry.close();
 * await server.stop();
 * ```
 */
export async function listSeedProviders(
  registry: Registry,
  service: string,
  watch?: WatchCallback,
): Promise<string[]> {
  const path = seedServicePath(service);
  const options = watch === undefined ? {} : { watch };
  const methods = await registry.children(path, options);
  const addresses = new Set<string>();
  for (const method of methods) {
    let data: Uint8Array;
    try {
      data = (await registry.get(`${path}/${method}`, options)).data;
    } catch (error) {
      // Gone since the listing: the children watch brings the next list.
      if (error instanceof RegistryError && error.code === RegistryErrorCode.NO_NODE) continue;
      throw error;
    }
    const address = decoder.decode(data).trim();
    const port = Number(ADDRESS.exec(address)?.[1] ?? 0);
    if (port < 1 || port > 65535) {
      getLogger().warn(`RpcChannel: ${path}/${method} holds ${JSON.stringify(address)}, not an ip:port; skipped`);
      continue;
    }
    addresses.add(address);
  }
  return [...addresses];
}
