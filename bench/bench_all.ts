/**
 * The whole performance table in one run: bench-rpc on Deno, Node and Bun (with grpc-js and the raw echoes),
 * bench-registry with its floors, `bench` (ping-pong) and `bench-threads`, each run as a child process whose
 * table (JSON where the bench has `--json`) is collected and printed here side by side, every point a median of
 * several runs with their spread, and the ratios. Ends with the targets of issue 21 read off the figures.
 * Takes 6 to 10 minutes on 2 cores (more when the machine is busy: client start-up is a good share); `--quick`
 * about half (bench-rpc at 64 B, c1 and c64 only; shorter runs).
 *
 *   deno task bench-all [--quick] [--only rpc,registry,pingpong,threads] [--runtimes deno,node,bun]
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { type RpcPoint, rpcTable } from "./_rpc_table.ts";
import { BUN, TSX } from "./_runtimes.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string", default: "rpc,registry,pingpong,threads" },
    runtimes: { type: "string", default: "deno,node,bun" },
  },
});
const only = new Set(values.only.split(","));
const quick = values.quick;
const path = (name: string) => new URL(name, import.meta.url).pathname;
const startedAt = performance.now();

/** Runs `deno run -A bench/<script> ...args` and returns its stdout, or undefined (said on stderr) if it failed. */
async function bench(script: string, args: string[]): Promise<string | undefined> {
  console.error(`\n== ${script} ${args.join(" ")}`);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", path(script), ...args],
    env: { DWT_LOG_LEVEL: "WARN" },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    console.error(`${script} failed (exit ${output.code}); its section is left out`);
    return undefined;
  }
  return text;
}

const lastJson = <T>(text: string | undefined): T | undefined =>
  text === undefined ? undefined : JSON.parse(text.trim().split("\n").pop()!) as T;
const median = (values: number[]) => values.toSorted((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;
const spread = (values: number[]) => `${Math.min(...values).toFixed(0)}-${Math.max(...values).toFixed(0)}`;

async function versionOf(argv: string[]): Promise<string> {
  try {
    const output = await new Deno.Command(argv[0]!, { args: argv.slice(1), stdout: "piped", stderr: "null" })
      .output();
    return new TextDecoder().decode(output.stdout).trim().split("\n")[0]!;
  } catch {
    return "?";
  }
}

const cpuModel = (await Deno.readTextFile("/proc/cpuinfo").catch(() => "")).match(/model name\s*:\s*(.*)/)?.[1];
const loadAverage = async () => (await Deno.readTextFile("/proc/loadavg").catch(() => "? ? ?")).split(" ").slice(0, 3);
const loadAtStart = await loadAverage();
const sections: string[][] = [];

if (only.has("rpc")) {
  const args = quick
    ? ["--seconds", "1", "--runs", "3", "--conc", "1,64", "--sizes", "64"]
    : ["--seconds", "1", "--runs", "3"];
  const rpc = lastJson<{ seconds: number; runs: number; pinned: boolean; points: RpcPoint[] }>(
    await bench("rpc_echo.ts", [...args, "--runtimes", values.runtimes, "--json"]),
  );
  if (rpc !== undefined) {
    const lines = ["## Unary RPC (bench-rpc)", "", ...rpcTable(rpc.points, rpc), ""];
    lines.push(...rpcTargets(rpc.points));
    sections.push(lines);
  }
}

if (only.has("registry")) {
  // bench-registry prints its own markdown (medians, every run, the floors); it is taken as it is.
  const args = quick ? ["--seconds", "0.5", "--runs", "3"] : ["--seconds", "1", "--runs", "3"];
  const text = await bench("registry_vs_zookeeper.ts", args);
  if (text !== undefined) sections.push(["## Registry (bench-registry)", "", text.trim()]);
}

if (only.has("pingpong")) {
  const args = quick ? ["--seconds", "1", "--rounds", "3", "--conns", "1,64"] : ["--seconds", "1.5", "--rounds", "3"];
  const pingpong = lastJson<
    { block: number; seconds: number; points: { conns: number; raw: number[]; reactor: number[] }[] }
  >(
    await bench("pingpong.ts", [...args, "--json"]),
  );
  if (pingpong !== undefined) {
    const lines = [
      "## Ping-pong (bench)",
      "",
      `block ${pingpong.block} B, ${pingpong.seconds} s per round, median of ${pingpong.points[0]?.raw.length} ` +
      `rounds (spread: lowest-highest MiB/s); raw: plain Deno sockets`,
      "| conns | raw MiB/s | raw spread | reactor MiB/s | reactor spread | reactor/raw |",
      "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ];
    for (const { conns, raw, reactor } of pingpong.points) {
      lines.push(
        `| ${conns} | ${median(raw).toFixed(0)} | ${spread(raw)} | ${median(reactor).toFixed(0)} | ` +
          `${spread(reactor)} | ${(median(reactor) / median(raw)).toFixed(2)} |`,
      );
    }
    sections.push(lines);
  }
}

if (only.has("threads")) {
  const args = quick ? ["--seconds", "1", "--runs", "3"] : ["--seconds", "1.5", "--runs", "3"];
  interface ThreadsRun {
    qps: number;
    p50: number;
    p99: number;
  }
  const threads = lastJson<
    { seconds: number; points: { workUs: number; threads: number; runs: ThreadsRun[]; median: ThreadsRun }[] }
  >(await bench("rpc_threads.ts", [...args, "--json"]));
  if (threads !== undefined) {
    const lines = [
      "## Provider threads (bench-threads)",
      "",
      `load client (pre-encoded requests pipelined over 8 connections, 512 in flight), 64 B, ${threads.seconds} s per ` +
      `run, median of ${threads.points[0]?.runs.length} runs (spread: lowest-highest QPS)`,
      "| handler work | server | QPS | spread | p50 ms | p99 ms | / main loop |",
      "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ];
    for (const point of threads.points) {
      const main = threads.points.find((p) => p.workUs === point.workUs && p.threads === 0)!.median.qps;
      lines.push(
        `| ${point.workUs} µs | ${point.threads === 0 ? "main loop" : `${point.threads} thread(s)`} | ` +
          `${point.median.qps.toFixed(0)} | ${spread(point.runs.map((r) => r.qps))} | ${
            point.median.p50.toFixed(2)
          } | ` +
          `${point.median.p99.toFixed(2)} | ${(point.median.qps / main).toFixed(2)} |`,
      );
    }
    sections.push(lines);
  }
}

/** Issue 21's unary targets, read off one run's figures. */
function rpcTargets(points: RpcPoint[]): string[] {
  const find = (runtime: string, stack: string, conc: number, size: number) =>
    points.find((p) => p.runtime === runtime && p.stack === stack && p.conc === conc && p.size === size);
  const lines = ["Targets:"];
  for (const runtime of new Set(points.filter((p) => p.stack === "dwt").map((p) => p.runtime))) {
    const ratios = points.filter((p) => p.runtime === runtime && p.stack === "dwt").map((d) => ({
      d,
      raw: d.qps / find(runtime, "raw", d.conc, d.size)!.qps,
    }));
    const worst = ratios.reduce((a, b) => (b.raw < a.raw ? b : a));
    const parts = [
      `${runtime}: dwt/raw >= 0.9 at every point: lowest ${worst.raw.toFixed(2)} (c${worst.d.conc} ` +
      `${worst.d.size} B) ${worst.raw >= 0.9 ? "met" : "NOT met"}`,
    ];
    for (const d of points.filter((p) => p.runtime === runtime && p.stack === "dwt" && p.conc === 64)) {
      const grpc = find("node", "grpc-js", 64, d.size);
      const deno = find("deno", "dwt", 64, d.size);
      if (grpc !== undefined) {
        const x = d.qps / grpc.qps;
        parts.push(
          `c64 ${d.size} B vs grpc-js ${x.toFixed(1)}x${
            runtime === "deno" ? "" : x >= 10 ? " (>=10x met)" : " (>=10x NOT met)"
          }`,
        );
      }
      if (runtime !== "deno" && deno !== undefined) {
        const r = d.qps / deno.qps;
        parts.push(`c64 ${d.size} B / Deno ${r.toFixed(2)}${r >= 0.8 ? " (>=0.8 met)" : " (>=0.8 NOT met)"}`);
      }
    }
    lines.push(`- ${parts.join("; ")}`);
  }
  return lines;
}

const minutes = ((performance.now() - startedAt) / 60_000).toFixed(1);
console.log(`# dwt-rpc performance, ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`);
console.log("");
console.log(
  `${navigator.hardwareConcurrency} cores (${cpuModel ?? "?"}); ${await versionOf([Deno.execPath(), "--version"])}, ` +
    `node ${await versionOf(["node", "--version"])} (tsx ${TSX.split("@")[1]}), bun ${BUN.split("@")[1]}; load ` +
    `average ${loadAtStart.join(" ")} at the start, ${(await loadAverage()).join(" ")} at the end; ${minutes} ` +
    `minutes${quick ? " (--quick)" : ""}. Servers and clients are separate processes on 127.0.0.1.`,
);
for (const section of sections) console.log(["", ...section].join("\n"));
Deno.exit(0);
