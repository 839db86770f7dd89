/**
 * Unary echo, side by side in one run: dwt-rpc (RpcChannel -> RpcProvider) on Deno, on Node (tsx) and on Bun
 * (provider and client on the same runtime), grpc-js (server and client on Node, same .proto, same payloads), the
 * raw length-prefixed echo of the same protobuf message on each runtime's plain sockets (protobufjs encodes and
 * decodes it on both ends, as DESIGN.md's baseline does), and a byte echo on Deno that decodes nothing (the floor
 * of what sockets do here). Concurrency 1, 16 and 64 calls in flight, payloads 64 B and 4 KiB; servers and
 * clients are separate processes (`--pin` puts their main threads on separate cores). Each point runs `--runs`
 * times, round-robin over the stacks so drifting machine load hits them alike (a fresh client process each), and
 * reports the run with the median QPS: on a small VM two runs of the same point can differ by half, and one
 * unlucky run should not decide a ratio. Prints QPS, p50, p99, the spread of the runs and the ratios (`--json`:
 * one JSON object instead, for bench/bench_all.ts).
 *
 *   deno task bench-rpc [--seconds 3] [--runs 3] [--runtimes deno,node,bun] [--conc 1,16,64] [--sizes 64,4096]
 *                       [--pin] [--json]
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { pinMainThread } from "./_spawn_ready.ts";
import { type ReadyProcess, spawnReady } from "../reactor/testdata/spawn_ready.ts";
import { parseRuntimes, runtimeCommand, type RuntimeName } from "./_runtimes.ts";
import { type RpcPoint, rpcTable } from "./_rpc_table.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "3" },
    runs: { type: "string", default: "3" },
    runtimes: { type: "string", default: "deno,node,bun" },
    conc: { type: "string", default: "1,16,64" },
    sizes: { type: "string", default: "64,4096" },
    pin: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const runs = Math.max(1, Number(values.runs));
const runtimes = parseRuntimes(values.runtimes);
const path = (name: string) => new URL(name, import.meta.url).pathname;

interface Run {
  qps: number;
  p50: number;
  p99: number;
  cpuUs: number;
  serverCpuUs: number;
}

/** CPU time (µs, all threads) process `pid` has used so far: utime + stime of /proc/<pid>/stat (Linux). */
async function cpuTimeUs(pid: number): Promise<number> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10_000; // clock ticks of 10 ms (USER_HZ 100)
  } catch {
    return NaN;
  }
}

interface Stack {
  runtime: RuntimeName;
  stack: RpcPoint["stack"];
  server: string[];
  client: string[];
}

const stacks: Stack[] = [];
for (const runtime of runtimes) {
  const run = await runtimeCommand(runtime);
  const names: RpcPoint["stack"][] = runtime === "deno" ? ["dwt", "raw", "bytes"] : ["dwt", "raw"];
  for (const stack of names) {
    stacks.push({
      runtime,
      stack,
      server: [...run, path("rpc_echo_server.ts"), "--stack", stack],
      client: [...run, path("rpc_echo_client.ts"), "--stack", stack],
    });
  }
}
stacks.push({
  runtime: "node",
  stack: "grpc-js",
  server: ["node", path("grpc_echo_server.mjs")],
  client: ["node", path("grpc_echo_client.mjs")],
});

// With --pin, every stack's server main thread on core 1 and client main thread on core 0 (see pinMainThread).
// Off by default: pinning helps dwt and grpc-js but costs the raw and byte echoes a quarter to a third of their
// QPS here, so each stack runs as the scheduler places it.
let pinned = values.pin;

async function runClient(stack: Stack, server: ReadyProcess, conc: number, size: number): Promise<Run> {
  const port = server.ready;
  const serverCpuBefore = await cpuTimeUs(server.pid);
  const args = [...stack.client.slice(1), "--port", port, "--conc", String(conc), "--size", String(size)];
  args.push("--seconds", values.seconds);
  const child = new Deno.Command(stack.client[0]!, { args, stdout: "piped", stderr: "inherit" }).spawn();
  pinned &&= await pinMainThread(child.pid, 0);
  const output = await child.output();
  const line = new TextDecoder().decode(output.stdout).trim().split("\n").pop()!;
  const run = JSON.parse(line) as Omit<Run, "serverCpuUs"> & { warmupCalls: number };
  const calls = run.qps * Number(values.seconds) + run.warmupCalls; // the server served both
  return { ...run, serverCpuUs: (await cpuTimeUs(server.pid) - serverCpuBefore) / calls };
}

const points = values.conc.split(",").map(Number).flatMap((conc) =>
  values.sizes.split(",").map(Number).map((size) => ({ conc, size }))
);
const servers = new Map<Stack, ReadyProcess>();
const results: RpcPoint[] = [];
try {
  for (const stack of stacks) {
    const server = await spawnReady(stack.server, { env: { DWT_LOG_LEVEL: "WARN" } });
    pinned &&= await pinMainThread(server.pid, 1);
    servers.set(stack, server);
  }
  for (const [index, { conc, size }] of points.entries()) {
    const all = new Map<Stack, Run[]>(stacks.map((stack) => [stack, []]));
    for (let run = 0; run < runs; run++) {
      for (const stack of stacks) all.get(stack)!.push(await runClient(stack, servers.get(stack)!, conc, size));
    }
    for (const stack of stacks) {
      const done = all.get(stack)!;
      const sorted = done.toSorted((a, b) => a.qps - b.qps);
      const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
      results.push({
        runtime: stack.runtime,
        stack: stack.stack,
        conc,
        size,
        qps: median.qps,
        p50: median.p50,
        p99: median.p99,
        clientCpuUs: median.cpuUs,
        serverCpuUs: median.serverCpuUs,
        minQps: sorted[0]!.qps,
        maxQps: sorted.at(-1)!.qps,
        runs: done.map((r) => r.qps),
      });
    }
    // Progress on stderr: the table comes at the end on stdout.
    console.error(
      `[${index + 1}/${points.length}] conc ${conc} ${size} B: ` +
        stacks.map((s) => `${s.stack}@${s.runtime} ${(all.get(s)!.map((r) => r.qps / 1000).join("/"))}k`).join(", ")
          .replace(/(\.\d)\d*/g, "$1"),
    );
  }
} finally {
  for (const server of servers.values()) await server.stop("SIGKILL");
}

if (values.json) {
  console.log(JSON.stringify({ bench: "rpc", seconds: Number(values.seconds), runs, pinned, points: results }));
  Deno.exit(0);
}

for (const line of rpcTable(results, { seconds: Number(values.seconds), runs, pinned })) console.log(line);
Deno.exit(0);
