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

/** One point's outcome: the median run's figures and the spread of all runs. */
export interface RpcPoint {
  runtime: RuntimeName;
  stack: "dwt" | "raw" | "bytes" | "grpc-js";
  conc: number;
  size: number;
  qps: number;
  p50: number;
  p99: number;
  /** Lowest and highest QPS of the runs. */
  minQps: number;
  maxQps: number;
  /** Every run's QPS, in the order run. */
  runs: number[];
  /** CPU time per call (µs, all threads) of the median run's client and of the server during it. */
  clientCpuUs: number;
  serverCpuUs: number;
}

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
  const run = JSON.parse(line) as Omit<Run, "serverCpuUs">;
  const calls = run.qps * Number(values.seconds) + 200; // the measured calls and the warm-up's
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

const find = (runtime: string, stack: string, conc: number, size: number) =>
  results.find((r) => r.runtime === runtime && r.stack === stack && r.conc === conc && r.size === size);
const f = (n: number) => n >= 100 ? n.toFixed(0) : n.toFixed(2);
const spread = (r: RpcPoint) => `${(r.minQps / 1000).toFixed(0)}-${(r.maxQps / 1000).toFixed(0)}k`;
const cpu = (r: RpcPoint) => `${r.clientCpuUs.toFixed(1)} + ${r.serverCpuUs.toFixed(1)}`;
const ratio = (a: number | undefined, b: number | undefined, digits = 2) =>
  a === undefined || b === undefined ? "-" : (a / b).toFixed(digits);
console.log(
  `unary echo, ${values.seconds} s per run, median of ${runs} run(s) per point; QPS and latency (ms); "runs" is ` +
    `the lowest-highest QPS of the runs (k = 1000); "µs/call" is CPU time per call, client + server (all threads). dwt and raw run on the runtime named (server and client); ` +
    `raw: protobuf messages in length-prefixed frames on that runtime's plain sockets (the DESIGN's baseline); ` +
    `bytes (Deno): a byte echo, nothing decoded; grpc-js on Node. ` +
    (pinned ? "Main threads pinned: servers on core 1, clients on core 0." : "Not pinned."),
);
console.log(
  "| runtime | conc | size | dwt QPS | dwt runs | dwt p50 | dwt p99 | dwt µs/call | raw QPS | raw runs | raw p99 " +
    "| raw µs/call | bytes QPS | grpc-js QPS | grpc-js p99 | dwt/raw | dwt/grpc | dwt/Deno dwt |",
);
console.log(`| --- | --- |${" ---: |".repeat(16)}`);
for (const runtime of runtimes) {
  for (const { conc, size } of points) {
    const d = find(runtime, "dwt", conc, size)!;
    const r = find(runtime, "raw", conc, size)!;
    const b = find(runtime, "bytes", conc, size);
    const g = find("node", "grpc-js", conc, size)!;
    const denoDwt = find("deno", "dwt", conc, size);
    console.log(
      `| ${runtime} | ${conc} | ${size} | ${f(d.qps)} | ${spread(d)} | ${f(d.p50)} | ${f(d.p99)} | ${cpu(d)} | ` +
        `${f(r.qps)} | ${spread(r)} | ${f(r.p99)} | ${cpu(r)} | ${b ? f(b.qps) : "-"} | ${f(g.qps)} | ${f(g.p99)} | ${
          ratio(d.qps, r.qps)
        } | ` +
        `${ratio(d.qps, g.qps, 1)} | ${ratio(d.qps, denoDwt?.qps)} |`,
    );
  }
}
Deno.exit(0);
