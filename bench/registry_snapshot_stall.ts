/**
 * Get latency while the registry writes a snapshot of a large tree (issue 21: housekeeping must not stall the
 * loop). A data directory holding a snapshot of `--nodes` nodes (1,000 directories of 1,000 nodes each by default)
 * is made here; a durable registry process starts on it with `snapshotEveryTxns` set to `--every`. Gets of one node
 * at 1 in flight are timed first with the registry idle (no writes, no snapshot), then while a snapshot is taken:
 * a writer makes `--every` creates (which makes the snapshot due), then goes on creating at 1 in flight, and the
 * gets are timed until the registry says the snapshot is written. Prints p50, p99 and max of each phase. A get
 * that fails (a loop held past the client's read timeout makes it reconnect) counts with the time it took to fail.
 *
 *   deno run -A bench/registry_snapshot_stall.ts [--nodes 1000000] [--every 2000] [--seconds 3]
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import { getLogger, LogLevel } from "../reactor/logger.ts";
import { RegistryClient } from "../registry/client/registry_client.ts";
import { DataTree } from "../registry/server/data_tree.ts";
import { encodeSnapshot } from "../registry/storage/snapshot_file.ts";
import { encodeLogHeader } from "../registry/storage/txn_record.ts";
import { denoRun, spawnReady } from "../reactor/testdata/spawn_ready.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: {
    nodes: { type: "string", default: "1000000" },
    every: { type: "string", default: "2000" },
    seconds: { type: "string", default: "3" },
  },
});
const nodes = Number(values.nodes);
const every = Number(values.every);
getLogger().level = LogLevel.WARN;

const hex = (zxid: bigint) => zxid.toString(16).padStart(16, "0");
const dir = await Deno.makeTempDir({ prefix: "registry-snapshot-bench-" });
{
  console.error(`making a snapshot of ${nodes} nodes in ${dir}`);
  const tree = new DataTree();
  const data = new TextEncoder().encode("x");
  const perDir = 1000;
  let zxid = 1n;
  for (let d = 0; d * perDir < nodes; d++) {
    tree.create(`/d${d}`, data, {}, zxid++, 0);
    for (let n = 0; n < perDir && d * perDir + n < nodes; n++) tree.create(`/d${d}/n${n}`, data, {}, zxid++, 0);
  }
  const last = tree.lastZxid;
  await Deno.writeFile(`${dir}/snapshot.${hex(last)}`, encodeSnapshot(last, tree.serialize()), { mode: 0o600 });
  // A snapshot is only written once the log goes on after it: the (empty) log from the next zxid.
  await Deno.writeFile(`${dir}/log.${hex(last + 1n)}`, encodeLogHeader(last + 1n), { mode: 0o600 });
}
await Deno.writeTextFile(`${dir}/registry.json`, JSON.stringify({ snapshotEveryTxns: every }));
const main = new URL("../registry/main.ts", import.meta.url).pathname;
const registry = await spawnReady(
  denoRun(main, "--config", `${dir}/registry.json`, "--port", "0", "--data-dir", dir),
  { env: { DWT_LOG_LEVEL: "INFO" }, stderr: "capture", timeoutMs: 600_000 },
);
const snapshotsWritten = () => registry.stderr().split("TxnLog: snapshot ").length - 1;
const loop = EventLoop.current();
const reader = await RegistryClient.connect(registry.ready, { loop });
const writer = await RegistryClient.connect(registry.ready, { loop });
const sorted = (samples: number[]) => [...samples].sort((a, b) => a - b);
const at = (samples: number[], q: number) => samples[Math.min(samples.length - 1, Math.floor(samples.length * q))]!;

let failures = 0;
async function timeGets(until: () => boolean): Promise<number[]> {
  const samples: number[] = [];
  while (!until()) {
    const start = performance.now();
    try {
      await reader.get("/d0/n0");
    } catch {
      failures++;
    }
    samples.push(performance.now() - start);
  }
  return samples;
}

const rows: Array<[string, number[], number]> = [];
try {
  await writer.create("/w", "");
  const idleUntil = performance.now() + Number(values.seconds) * 1000;
  let start = performance.now();
  rows.push(["idle", await timeGets(() => performance.now() >= idleUntil), performance.now() - start]);
  // Make the snapshot due: `every` creates, 32 in flight.
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < every) await writer.create(`/w/n${next++}`, "x").catch(() => failures++);
  }));
  let writing = true;
  const writes = (async () => {
    while (writing) await writer.create(`/w/n${next++}`, "x").catch(() => failures++);
  })();
  start = performance.now();
  rows.push(["during a snapshot", await timeGets(() => snapshotsWritten() > 0), performance.now() - start]);
  writing = false;
  await writes;
} finally {
  await reader.close();
  await writer.close();
  await registry.stop();
  await Deno.remove(dir, { recursive: true });
}
console.log(`get latency at 1 in flight, registry holding a ${nodes}-node tree (snapshot every ${every} writes)`);
if (failures > 0) console.log(`${failures} requests failed (the client gave up waiting and reconnected)`);
console.log("| phase | gets | p50 ms | p99 ms | max ms | phase s |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
for (const [name, samples, ms] of rows) {
  const s = sorted(samples);
  console.log(
    `| ${name} | ${s.length} | ${at(s, 0.5).toFixed(2)} | ${at(s, 0.99).toFixed(2)} | ${s.at(-1)!.toFixed(2)} | ${
      (ms / 1000).toFixed(1)
    } |`,
  );
}
Deno.exit(0);
