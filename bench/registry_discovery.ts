/**
 * Discovery and call latency with the built-in registry versus ZooKeeper 3.8 (Debian's package, on 127.0.0.1),
 * both durable, in one run, through the same RPC code (RpcProvider, RpcChannel) and the Registry interface:
 *
 * - lookup: a fresh channel's first provider list (one children read);
 * - watch: from a provider publishing its node to a watching channel seeing it;
 * - first call: a fresh channel's first call (lookup + TCP connect + call);
 * - call: a call on a warm channel (the registry is not involved; for reference).
 *
 *   deno task bench-discovery [--rounds 200]
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import { getLogger, LogLevel } from "../reactor/logger.ts";
import { NodeType } from "../registry/server/data_tree.ts";
import type { Registry } from "../registry/registry.ts";
import { RegistryClient } from "../registry/client/registry_client.ts";
import { startZooKeeper } from "../registry/testdata/zookeeper_server.ts";
import { ZooKeeperRegistry } from "../registry/zookeeper/zookeeper_registry.ts";
import { loadProtoFile, RpcChannel, RpcProvider, serviceDefinition, type StubMethod } from "../rpc/mod.ts";
import { defaultBackend } from "../reactor/backend/mod.ts";
import { startRegistry } from "./_spawn_ready.ts";

const { values } = parseArgsOrExit({ args: Deno.args, options: { rounds: { type: "string", default: "200" } } });
const rounds = Number(values.rounds);
getLogger().level = LogLevel.WARN;
const loop = EventLoop.current();
const root = await loadProtoFile(defaultBackend(), new URL("./echo.proto", import.meta.url).pathname);
const echo = serviceDefinition(root, "bench.Echo");
const payload = new Uint8Array(64);

const median = (samples: number[]) => samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)]!;
const p99 = (samples: number[]) => samples.sort((a, b) => a - b)[Math.floor(samples.length * 0.99)]!;

interface Figures {
  lookup: number[];
  watch: number[];
  firstCall: number[];
  call: number[];
}

async function measure(open: () => Promise<Registry>, name: string): Promise<Figures> {
  console.error(`measuring ${name}: ${rounds} rounds of lookup, first call and call, then ${rounds} watches`);
  const figures: Figures = { lookup: [], watch: [], firstCall: [], call: [] };
  const providerRegistry = await open();
  const callerRegistry = await open();
  const provider = new RpcProvider({ loop, registry: providerRegistry });
  provider.registerService(echo, { Echo: (request: unknown) => request });
  await provider.start();
  const call = (channel: RpcChannel) => channel.stub<{ Echo: StubMethod }>(echo).Echo({ payload });
  for (let i = 0; i < rounds; i++) {
    const channel = new RpcChannel({ loop, registry: callerRegistry });
    let t = performance.now();
    await channel.providersOf("bench.Echo");
    figures.lookup.push(performance.now() - t);
    await channel.close();
    const fresh = new RpcChannel({ loop, registry: callerRegistry });
    t = performance.now();
    await call(fresh);
    figures.firstCall.push(performance.now() - t);
    t = performance.now();
    await call(fresh);
    figures.call.push(performance.now() - t);
    await fresh.close();
  }
  // Watch propagation, at the registry interface the channel uses: a watcher on the service's children and a
  // provider creating its ephemeral node.
  for (let i = 0; i < rounds; i++) {
    const seen = Promise.withResolvers<void>();
    await callerRegistry.children("/bench.Echo", { watch: () => seen.resolve() });
    const t = performance.now();
    await providerRegistry.create(`/bench.Echo/extra-${i}`, "", { nodeType: NodeType.EPHEMERAL });
    await seen.promise;
    figures.watch.push(performance.now() - t);
    await providerRegistry.delete(`/bench.Echo/extra-${i}`);
  }
  await provider.stop();
  await callerRegistry.close();
  await providerRegistry.close();
  return figures;
}

const ours = await startRegistry();
const zk = await startZooKeeper();
const results = {
  "built-in": await measure(() => RegistryClient.connect(ours.address, { loop }), "built-in"),
  zookeeper: await measure(() => ZooKeeperRegistry.connect(zk.connectString, { loop }), "ZooKeeper"),
};
await ours.stop();
await zk.stop();

console.log(`\nDiscovery and call latency, ${rounds} rounds each (ms; p50 / p99)\n`);
console.log("| what | built-in p50 | built-in p99 | ZooKeeper p50 | ZooKeeper p99 | ZooKeeper/built-in (p50) |");
console.log("|---|---|---|---|---|---|");
for (const key of ["lookup", "watch", "firstCall", "call"] as const) {
  const a = results["built-in"][key];
  const b = results.zookeeper[key];
  console.log(
    `| ${key} | ${median(a).toFixed(3)} | ${p99(a).toFixed(3)} | ${median(b).toFixed(3)} | ${p99(b).toFixed(3)} | ${
      (median(b) / median(a)).toFixed(2)
    } |`,
  );
}
Deno.exit(0);
