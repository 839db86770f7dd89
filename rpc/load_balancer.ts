/**
 * Client-side load balancing: which provider gets the next call. Round robin, random, power of two choices on
 * outstanding calls (least-loaded), and consistent hashing on a request key (same key, same provider, while
 * the set of providers allows it).
 *
 * @module
 */

/**
 * What a balancer sees of a provider.
 *
 * @example
 * ```ts
 * import type { Candidate } from "./load_balancer.ts";
 *
 * const candidates: Candidate[] = [
 *   { address: "127.0.0.1:8800", outstanding: 3 },
 *   { address: "127.0.0.1:8801", outstanding: 0 },
 * ];
 * ```
 */
export interface Candidate {
  /** `host:port`. */
  readonly address: string;
  /** Calls sent and not yet answered. */
  readonly outstanding: number;
}

/**
 * Picks a provider for a call. `candidates` is never empty.
 *
 * @example
 * ```ts
 * import type { Candidate, LoadBalancer } from "./load_balancer.ts";
 * import { RpcChannel } from "./rpc_channel.ts";
 *
 * // Prefer providers on this host, round robin among them.
 * class LocalFirst implements LoadBalancer {
 *   readonly name = "local_first";
 *   #next = 0;
 *   pick<C extends Candidate>(candidates: readonly C[]): C {
 *     const local = candidates.filter((c) => c.address.startsWith("127.0.0.1:"));
 *     const pool = local.length > 0 ? local : candidates;
 *     return pool[this.#next++ % pool.length]!;
 *   }
 * }
 * const channel = new RpcChannel({ providers: { "demo.Echo": ["127.0.0.1:8800"] }, loadBalancer: new LocalFirst() });
 * await channel.close();
 * ```
 */
export interface LoadBalancer {
  /** The strategy's name. */
  readonly name: string;
  /** Pick one of `candidates`; `hashKey` is the call's key, if any. */
  pick<C extends Candidate>(candidates: readonly C[], hashKey?: string): C;
}

/**
 * Each provider in turn.
 *
 * @example
 * ```ts
 * import { RoundRobinBalancer } from "./load_balancer.ts";
 * import assert from "node:assert/strict";
 *
 * const balancer = new RoundRobinBalancer();
 * const candidates = [{ address: "a:1", outstanding: 0 }, { address: "b:1", outstanding: 0 }];
 * assert.deepEqual([1, 2, 3].map(() => balancer.pick(candidates).address), ["a:1", "b:1", "a:1"]);
 * ```
 */
export class RoundRobinBalancer implements LoadBalancer {
  readonly name = "round_robin";
  #next = 0;

  /** Pick the next candidate in turn. */
  pick<C extends Candidate>(candidates: readonly C[]): C {
    const candidate = candidates[this.#next % candidates.length]!;
    this.#next = (this.#next + 1) % 0x7fff_ffff;
    return candidate;
  }
}

/**
 * A provider at random.
 *
 * @example
 * ```ts
 * import { RandomBalancer } from "./load_balancer.ts";
 * import assert from "node:assert/strict";
 *
 * const pick = new RandomBalancer().pick([{ address: "a:1", outstanding: 0 }, { address: "b:1", outstanding: 0 }]);
 * assert.ok(["a:1", "b:1"].includes(pick.address));
 * ```
 */
export class RandomBalancer implements LoadBalancer {
  readonly name = "random";

  /** Pick a random candidate. */
  pick<C extends Candidate>(candidates: readonly C[]): C {
    return candidates[Math.floor(Math.random() * candidates.length)]!;
  }
}

/**
 * Power of two choices: of two random providers, the one with fewer calls outstanding.
 *
 * @example
 * ```ts
 * import { P2cBalancer } from "./load_balancer.ts";
 * import assert from "node:assert/strict";
 *
 * // With two providers both are drawn, so the idle one always wins.
 * const candidates = [{ address: "busy:1", outstanding: 50 }, { address: "idle:1", outstanding: 0 }];
 * assert.equal(new P2cBalancer().pick(candidates).address, "idle:1");
 * ```
 */
export class P2cBalancer implements LoadBalancer {
  readonly name = "p2c";

  /** Pick the less loaded of two random candidates. */
  pick<C extends Candidate>(candidates: readonly C[]): C {
    if (candidates.length === 1) return candidates[0]!;
    const i = Math.floor(Math.random() * candidates.length);
    let j = Math.floor(Math.random() * (candidates.length - 1));
    if (j >= i) j++;
    const a = candidates[i]!;
    const b = candidates[j]!;
    return b.outstanding < a.outstanding ? b : a;
  }
}

/** FNV-1a, 32 bits: fast and well spread for short keys. */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  // A final avalanche so nearby keys land far apart on the ring.
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  return hash >>> 0;
}

/**
 * Consistent hashing on the call's `hashKey` (calls without one go to a random provider): a ring with
 * `virtualNodes` points per provider, so adding or removing one provider moves only its share of keys.
 *
 * @example
 * ```ts
 * import { ConsistentHashBalancer } from "./load_balancer.ts";
 * import assert from "node:assert/strict";
 *
 * const balancer = new ConsistentHashBalancer();
 * const candidates = ["a:1", "b:1", "c:1"].map((address) => ({ address, outstanding: 0 }));
 * const first = balancer.pick(candidates, "user-42").address;
 * assert.equal(balancer.pick(candidates, "user-42").address, first); // same key, same provider
 * ```
 */
export class ConsistentHashBalancer implements LoadBalancer {
  readonly name = "consistent_hash";
  readonly #virtualNodes: number;
  #ringKey = "";
  #ring: Array<{ point: number; address: string }> = [];

  /** A ring with `virtualNodes` points per provider. */
  constructor(virtualNodes = 160) {
    this.#virtualNodes = virtualNodes;
  }

  /** Pick the candidate owning `hashKey`'s point on the ring. */
  pick<C extends Candidate>(candidates: readonly C[], hashKey?: string): C {
    if (hashKey === undefined) return candidates[Math.floor(Math.random() * candidates.length)]!;
    const key = candidates.map((c) => c.address).sort().join(",");
    if (key !== this.#ringKey) this.#build(candidates, key);
    const point = fnv1a(hashKey);
    let low = 0;
    let high = this.#ring.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.#ring[mid]!.point < point) low = mid + 1;
      else high = mid;
    }
    const address = this.#ring[low % this.#ring.length]!.address;
    return candidates.find((c) => c.address === address)!;
  }

  #build(candidates: readonly Candidate[], key: string): void {
    const ring: Array<{ point: number; address: string }> = [];
    for (const { address } of candidates) {
      for (let i = 0; i < this.#virtualNodes; i++) ring.push({ point: fnv1a(`${address}#${i}`), address });
    }
    ring.sort((a, b) => a.point - b.point);
    this.#ring = ring;
    this.#ringKey = key;
  }
}

/**
 * The balancer names a config can give.
 *
 * @example
 * ```ts
 * import { createLoadBalancer, type LoadBalancerName } from "./load_balancer.ts";
 *
 * const fromConfig = (name: string) => createLoadBalancer(name as LoadBalancerName); // RangeError for other names
 * ```
 */
export type LoadBalancerName = "round_robin" | "random" | "p2c" | "consistent_hash";

/**
 * A new balancer by name; a RangeError names the value otherwise.
 *
 * @example
 * ```ts
 * import { createLoadBalancer } from "./load_balancer.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(createLoadBalancer("consistent_hash").name, "consistent_hash");
 * ```
 */
export function createLoadBalancer(name: LoadBalancerName): LoadBalancer {
  switch (name) {
    case "round_robin":
      return new RoundRobinBalancer();
    case "random":
      return new RandomBalancer();
    case "p2c":
      return new P2cBalancer();
    case "consistent_hash":
      return new ConsistentHashBalancer();
    default:
      throw new RangeError(
        `Cannot create load balancer as 'loadBalancer' must be round_robin, random, p2c or consistent_hash: ` +
          `current value is '${name}'`,
      );
  }
}
