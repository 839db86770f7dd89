/**
 * The registry against ZooKeeper 3.8, side by side in one run, both durable (our transaction log fsyncs before
 * answering; ZooKeeper runs with forceSync=yes): create, get and exists ops/s with 1 and 32 requests in flight.
 * Both servers are separate processes on 127.0.0.1; both clients run in this process on the same reactor (ours:
 * RegistryClient; ZooKeeper's: ZooKeeperRegistry).
 *
 *   deno task bench-registry [--seconds 3]
 */

import { parseArgs } from "node:util";
import { EventLoop } from "../reactor/event_loop.ts";
import { getLogger, LogLevel } from "../reactor/logger.ts";
import type { Registry } from "../registry/registry.ts";
import { RegistryClient } from "../registry/registry_client.ts";
import { ZooKeeperRegistry } from "../registry/zookeeper_registry.ts";
import { startZooKeeper } from "../registry/testdata/zookeeper_server.ts";
import { startRegistry } from "./_spawn_ready.ts";

const { values } = parseArgs({ args: Deno.args, options: { seconds: { type: "string", default: "3" } } });
const durationMs = Number(values.seconds) * 1000;
getLogger().level = LogLevel.WARN;

// Both servers through the same Registry interface (ours: RegistryClient; ZooKeeper: ZooKeeperRegistry, its client
// protocol on the same reactor), so the clients cost the same and the servers are what differs.
interface Store {
  create(path: string): Promise<unknown>;
  get(path: string): Promise<unknown>;
  exists(path: string): Promise<unknown>;
  close(): Promise<void>;
}

function store(registry: Registry): Store {
  return {
    create: (path) => registry.create(path, "x"),
    get: (path) => registry.get(path),
    exists: (path) => registry.exists(path),
    close: () => registry.close(),
  };
}

async function measure(
  store: Store,
  op: "create" | "get" | "exists",
  inFlight: number,
  prefix: string,
): Promise<number> {
  let done = 0;
  let next = 0;
  const until = performance.now() + durationMs;
  const start = performance.now();
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (performance.now() < until) {
      if (op === "create") await store.create(`${prefix}/n${next++}`);
      else await store[op](`${prefix}`);
      done++;
    }
  }));
  return done / ((performance.now() - start) / 1000);
}

const zk = await startZooKeeper();
const registry = await startRegistry();
const stores: Record<string, Store> = {
  zookeeper: store(await ZooKeeperRegistry.connect(zk.connectString, { loop: EventLoop.current() })),
  dwt: store(await RegistryClient.connect(registry.address, { loop: EventLoop.current() })),
};
const results: Array<{ op: string; inFlight: number; zookeeper: number; dwt: number }> = [];
try {
  for (const store of Object.values(stores)) {
    for (const inFlight of [1, 32]) await store.create(`/bench${inFlight}`);
  }
  for (const op of ["create", "get", "exists"] as const) {
    for (const inFlight of [1, 32]) {
      const row = { op, inFlight, zookeeper: 0, dwt: 0 };
      for (const [name, store] of Object.entries(stores)) {
        row[name as "zookeeper" | "dwt"] = await measure(store, op, inFlight, `/bench${inFlight}`);
        // Progress on stderr: the table comes at the end on stdout.
        console.error(
          `${op} with ${inFlight} in flight on ${name}: ${row[name as "zookeeper" | "dwt"].toFixed(0)} ops/s`,
        );
      }
      results.push(row);
    }
  }
} finally {
  for (const store of Object.values(stores)) await store.close();
  await registry.stop();
  await zk.stop();
}

console.log(`registry vs ZooKeeper 3.8, durable, ${values.seconds} s per point`);
console.log("| op | in flight | ZooKeeper ops/s | dwt registry ops/s | ratio |");
console.log("| --- | ---: | ---: | ---: | ---: |");
for (const row of results) {
  console.log(
    `| ${row.op} | ${row.inFlight} | ${row.zookeeper.toFixed(0)} | ${row.dwt.toFixed(0)} | ${
      (row.dwt / row.zookeeper).toFixed(2)
    } |`,
  );
}
Deno.exit(0);
