/**
 * The registry against ZooKeeper 3.8, side by side in one run: create, get and exists ops/s with 1 and 32
 * requests in flight. ZooKeeper and our registry are both durable (our transaction log fsyncs before a write is
 * applied and answered; ZooKeeper runs with forceSync=yes); a third column runs our registry with `dataDir: ""`
 * (memory only, the seed's semantics). Every point runs `--runs` times, round-robin over the servers; the table
 * shows the medians and every run. All servers are separate processes on 127.0.0.1; all clients run in this
 * process on the same reactor (ours: RegistryClient; ZooKeeper's: ZooKeeperRegistry).
 *
 * The last columns, at 1 in flight, are the floor under every request: a round trip of a 32-byte frame to a byte
 * echo on plain Deno sockets (a separate process). No request with one round trip over the loopback beats it, so
 * raw / ZooKeeper bounds the ratio any server can reach there against ZooKeeper with this client. (With 32 in
 * flight a byte echo streams pipelined frames in bulk and bounds nothing, so it is not measured.)
 *
 * The durable create rows add the floor under a durable write, measured in the same run: the same round trip to
 * a plain socket server that appends one record of a create's size to a file on the same disk and fdatasyncs it
 * before it answers (`registry_durable_floor.ts`), the frames of one read sharing one sync as the log's group
 * commit does. At 1 in flight no durable write beats it; at 32 it is what the disk and the loopback allow with
 * no work per request. "dwt durable / floor" is how close the registry gets. The registry's log keeps zero-filled
 * space written ahead of its end, so its syncs write no new file size; a second floor does the same (its file filled
 * with zeros first, the records overwriting them: `--preallocate`) and is the limit for a log that preallocates.
 * "dwt durable / floor" is against the first, as issue 21 defines it, "/ prealloc floor" against the second.
 *
 * The ratios to a floor compare measurements taken in turns: the durable registry and its floor (or, for a read
 * at 1 in flight, the raw echo) run in alternating slices of the point's time, and each ratio is the median of
 * the runs' ratios, so load from elsewhere on a shared machine, which comes in bursts of seconds, hits both
 * sides of a ratio alike.
 *
 *   deno task bench-registry [--seconds 2] [--runs 5] [--ops create,get,exists]
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import { getLogger, LogLevel } from "../reactor/logger.ts";
import type { Registry } from "../registry/registry.ts";
import { RegistryClient } from "../registry/client/registry_client.ts";
import { ZooKeeperRegistry } from "../registry/zookeeper/zookeeper_registry.ts";
import { startZooKeeper } from "../registry/testdata/zookeeper_server.ts";
import { denoRun, spawnReady } from "../reactor/testdata/spawn_ready.ts";
import { startRegistry } from "./_spawn_ready.ts";
import { encodeRecord } from "../registry/storage/txn_record.ts";
import { NodeType } from "../registry/registry.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "2" },
    runs: { type: "string", default: "5" },
    ops: { type: "string", default: "create,get,exists" },
  },
});
const ops = values.ops.split(",") as Array<"create" | "get" | "exists">;
const durationMs = Number(values.seconds) * 1000;
const runs = Math.max(1, Number(values.runs));
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

// Names of created nodes, unique across runs.
let nextName = 0;

/** A rate measured over a slice of time: what was done and how long it took (ms). */
interface Slice {
  done: number;
  ms: number;
}

const rate = (slices: Slice[]) =>
  slices.reduce((sum, slice) => sum + slice.done, 0) / (slices.reduce((sum, slice) => sum + slice.ms, 0) / 1000);

async function measure(
  store: Store,
  op: "create" | "get" | "exists",
  inFlight: number,
  prefix: string,
  sliceMs = durationMs,
): Promise<Slice> {
  let done = 0;
  const until = performance.now() + sliceMs;
  const start = performance.now();
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (performance.now() < until) {
      if (op === "create") await store.create(`${prefix}/n${nextName++}`);
      else await store[op](`${prefix}`);
      done++;
    }
  }));
  return { done, ms: performance.now() - start };
}

const ECHO_FRAME_BYTES = 32;

/** Round trips per second of `inFlight` 32-byte frames kept in flight on one plain socket to a byte echo. */
async function measureEcho(port: number, inFlight: number, sliceMs = durationMs): Promise<Slice> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const frames = (count: number) => new Uint8Array(count * ECHO_FRAME_BYTES);
  const buffer = new Uint8Array(64 * 1024);
  let done = 0;
  let partial = 0;
  const until = performance.now() + sliceMs;
  const start = performance.now();
  await conn.write(frames(inFlight));
  while (performance.now() < until) {
    const n = await conn.read(buffer);
    if (n === null) break;
    const whole = Math.floor((partial + n) / ECHO_FRAME_BYTES);
    partial = (partial + n) % ECHO_FRAME_BYTES;
    done += whole;
    // Each frame back sends the next one, as each answered request lets a client send its next.
    if (whole > 0) await conn.write(frames(whole));
  }
  const ms = performance.now() - start;
  conn.close();
  return { done, ms };
}

// Slices per paired run: the durable registry and its floor take turns in short slices, so a burst of load from
// elsewhere on the machine (a few seconds on this VM) hits both alike and the ratio of the two stays put.
const PAIRED_SLICES = 8;

/** `store` and the echoes (or floors) at `ports` measured in alternating slices over `durationMs` each in all. */
async function measurePaired(
  store: Store,
  op: "create" | "get" | "exists",
  inFlight: number,
  prefix: string,
  ports: readonly number[],
): Promise<{ dwt: number; raw: number[] }> {
  const dwt: Slice[] = [];
  const raw: Slice[][] = ports.map(() => []);
  const sliceMs = durationMs / PAIRED_SLICES;
  for (let i = 0; i < PAIRED_SLICES; i++) {
    // Which goes first alternates too, so neither always follows the other's warm-up.
    if (i % 2 === 0) dwt.push(await measure(store, op, inFlight, prefix, sliceMs));
    for (const [j, port] of ports.entries()) raw[j]!.push(await measureEcho(port, inFlight, sliceMs));
    if (i % 2 === 1) dwt.push(await measure(store, op, inFlight, prefix, sliceMs));
  }
  return { dwt: rate(dwt), raw: raw.map(rate) };
}

// A create as the bench makes it, logged: what the floor server appends per request.
const typicalRecord = encodeRecord({
  type: "create",
  zxid: 123_456n,
  timeMs: Date.now(),
  path: "/bench1/n123456",
  data: new TextEncoder().encode("x"),
  nodeType: NodeType.PERSISTENT,
  sessionId: 0x1234_5678_9abc_def0n,
});
const zk = await startZooKeeper();
const echo = await spawnReady(denoRun(new URL("./rpc_echo_server.ts", import.meta.url).pathname, "--stack", "bytes"));
const floorPath = new URL("./registry_durable_floor.ts", import.meta.url).pathname;
const floor = await spawnReady(denoRun(floorPath, "--record-bytes", `${typicalRecord.length}`));
const preallocatedFloor = await spawnReady(
  denoRun(floorPath, "--record-bytes", `${typicalRecord.length}`, "--preallocate"),
);
const registry = await startRegistry();
const memoryRegistry = await startRegistry({ memoryOnly: true });
const loop = EventLoop.current();
const stores = {
  zookeeper: store(await ZooKeeperRegistry.connect(zk.connectString, { loop })),
  dwt: store(await RegistryClient.connect(registry.address, { loop })),
  dwtMemory: store(await RegistryClient.connect(memoryRegistry.address, { loop })),
};
type Name = keyof typeof stores;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
interface Row {
  op: string;
  inFlight: number;
  runs: Record<Name, number[]>;
  echo: number[];
  floor: number[];
  preallocatedFloor: number[];
  // dwt durable / raw echo and / durable floors, per run, each pair measured in alternating slices.
  rawRatios: number[];
  floorRatios: number[];
  preallocatedRatios: number[];
}
const results: Row[] = [];
try {
  for (const store of Object.values(stores)) {
    for (const inFlight of [1, 32]) await store.create(`/bench${inFlight}`);
  }
  for (const op of ops) {
    for (const inFlight of [1, 32]) {
      const row: Row = {
        op,
        inFlight,
        runs: { zookeeper: [], dwt: [], dwtMemory: [] },
        echo: [],
        floor: [],
        preallocatedFloor: [],
        rawRatios: [],
        floorRatios: [],
        preallocatedRatios: [],
      };
      const prefix = `/bench${inFlight}`;
      // The durable registry against what bounds it, in alternating slices: a durable create against the
      // durable floor (at 1 and at 32 in flight: the floor groups the frames of a read into one sync, as the log
      // groups a read's requests), a read at 1 in flight against the raw echo. Else on its own.
      const against = op === "create"
        ? [Number(floor.ready), Number(preallocatedFloor.ready)]
        : inFlight === 1
        ? [Number(echo.ready)]
        : undefined;
      for (let run = 0; run < runs; run++) {
        for (const [name, store] of Object.entries(stores) as Array<[Name, Store]>) {
          let opsPerSecond: number;
          if (name === "dwt" && against !== undefined) {
            const paired = await measurePaired(store, op, inFlight, prefix, against);
            opsPerSecond = paired.dwt;
            const [first, preallocated] = paired.raw as [number, number | undefined];
            (op === "create" ? row.floor : row.echo).push(first);
            (op === "create" ? row.floorRatios : row.rawRatios).push(paired.dwt / first);
            if (preallocated !== undefined) {
              row.preallocatedFloor.push(preallocated);
              row.preallocatedRatios.push(paired.dwt / preallocated);
            }
          } else {
            opsPerSecond = rate([await measure(store, op, inFlight, prefix)]);
          }
          row.runs[name].push(opsPerSecond);
          // Progress on stderr: the table comes at the end on stdout.
          console.error(
            `${op} with ${inFlight} in flight on ${name}, run ${run + 1}: ${opsPerSecond.toFixed(0)} ops/s`,
          );
        }
        if (inFlight === 1 && op === "create") {
          const raw = rate([await measureEcho(Number(echo.ready), inFlight)]);
          row.echo.push(raw);
          row.rawRatios.push(row.runs.dwt.at(-1)! / raw);
        }
      }
      results.push(row);
    }
  }
} finally {
  for (const store of Object.values(stores)) await store.close();
  await registry.stop();
  await memoryRegistry.stop();
  await zk.stop();
  await echo.stop();
  await floor.stop();
  await preallocatedFloor.stop();
}

const show = (values: number[]) => values.map((value) => value.toFixed(0)).join(" ");
console.log(`registry vs ZooKeeper 3.8, ${values.seconds} s per point, median of ${runs} runs (all runs in brackets);`);
console.log(
  `durable floor: a round trip + one ${typicalRecord.length}-byte append + fdatasync per request; prealloc floor: ` +
    "the same, each record overwriting zeros written and synced ahead",
);
console.log(
  "| op | in flight | ZooKeeper ops/s | dwt durable ops/s | ratio | dwt memory only ops/s | ratio | raw echo ops/s " +
    "| raw / ZooKeeper | dwt durable / raw | durable floor ops/s | dwt durable / floor | prealloc floor ops/s " +
    "| dwt durable / prealloc floor | durable / memory |",
);
console.log(
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
);
for (const row of results) {
  const zk = median(row.runs.zookeeper);
  const dwt = median(row.runs.dwt);
  const memory = median(row.runs.dwtMemory);
  const raw = row.echo.length > 0 ? median(row.echo) : undefined;
  const rawColumns = raw === undefined
    ? "| | |"
    : `${raw.toFixed(0)} [${show(row.echo)}] | ${(raw / zk).toFixed(2)} | ${median(row.rawRatios).toFixed(2)} |`;
  const floor = row.floor.length > 0 ? median(row.floor) : undefined;
  const floorColumns = floor === undefined
    ? " | | | |"
    : ` ${floor.toFixed(0)} [${show(row.floor)}] | ${median(row.floorRatios).toFixed(2)} | ${
      median(row.preallocatedFloor).toFixed(0)
    } [${show(row.preallocatedFloor)}] | ${median(row.preallocatedRatios).toFixed(2)} |`;
  const memoryColumn = row.op === "create" ? ` ${(dwt / memory).toFixed(2)} |` : " |";
  console.log(
    `| ${row.op} | ${row.inFlight} | ${zk.toFixed(0)} [${show(row.runs.zookeeper)}] | ${dwt.toFixed(0)} [${
      show(row.runs.dwt)
    }] | ${(dwt / zk).toFixed(2)} | ${memory.toFixed(0)} [${show(row.runs.dwtMemory)}] | ${
      (memory / zk).toFixed(2)
    } | ${rawColumns}${floorColumns}${memoryColumn}`,
  );
}

// The targets of issue 21, met or not, from the medians above.
const targets: string[] = [];
const rowOf = (op: string, inFlight: number) => results.find((row) => row.op === op && row.inFlight === inFlight);
const verdict = (value: number, goal: number) =>
  `${value.toFixed(2)} (>= ${goal} ${value >= goal ? "met" : "NOT met"})`;
for (const op of ["get", "exists"]) {
  const row = rowOf(op, 1);
  if (row !== undefined) targets.push(`${op} at 1 in flight / raw echo: ${verdict(median(row.rawRatios), 0.9)}`);
}
const create1 = rowOf("create", 1);
if (create1 !== undefined) {
  targets.push(`durable create at 1 / floor: ${verdict(median(create1.floorRatios), 0.85)}`);
  targets.push(`durable create at 1 / prealloc floor: ${median(create1.preallocatedRatios).toFixed(2)}`);
}
const create32 = rowOf("create", 32);
if (create32 !== undefined) {
  const dwt = median(create32.runs.dwt);
  targets.push(`durable create at 32 / ZooKeeper: ${verdict(dwt / median(create32.runs.zookeeper), 2)}`);
  targets.push(`durable create at 32 / memory only: ${verdict(dwt / median(create32.runs.dwtMemory), 0.6)}`);
  targets.push(`durable create at 32 / floor at 32: ${median(create32.floorRatios).toFixed(2)}`);
  targets.push(`durable create at 32 / prealloc floor at 32: ${median(create32.preallocatedRatios).toFixed(2)}`);
  targets.push(
    `memory-only create at 32 / ZooKeeper: ${
      verdict(median(create32.runs.dwtMemory) / median(create32.runs.zookeeper), 4)
    }`,
  );
}
if (targets.length > 0) console.log(["", "Targets:", "", ...targets.map((line) => `- ${line}`)].join("\n"));
Deno.exit(0);
