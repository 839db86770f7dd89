/**
 * Multi-core providers: the unary echo of bench/rpc_echo.ts against one provider process serving on its main
 * loop (threads 0) and on 1 and 2 Workers (SO_REUSEPORT), in one run. Prints total QPS, p50 and p99 and the
 * scaling ratio of 2 threads over 1.
 *
 *   deno task bench-threads [--client load|dwt] [--seconds 3] [--runs 1] [--clients 1] [--connections 8]
 *                           [--conc 512] [--json]
 *
 * `--client load` (the default) drives the provider with pre-encoded requests pipelined over several
 * connections (like wrk for HTTP), so the server's capacity shows; `--client dwt` uses RpcChannels. The
 * clients run on the same machine and take CPU from the server: on a 2-core machine the ratio shows how much of
 * the second core the server gets, not the ceiling of the design. So it runs twice: a bare echo, and an echo
 * whose handler spins `--work-us` microseconds of CPU per call (a service with real work), where the server's
 * share of the CPU dominates and the second core shows. With `--runs N` each point runs N times (round-robin
 * over the thread counts) and the run with the median QPS is shown with the spread; `--json` prints one JSON
 * object instead, for bench/bench_all.ts.
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { spawnReady } from "../reactor/testdata/spawn_ready.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: {
    client: { type: "string", default: "load" },
    seconds: { type: "string", default: "3" },
    clients: { type: "string", default: "1" },
    connections: { type: "string", default: "8" },
    conc: { type: "string", default: "512" },
    size: { type: "string", default: "64" },
    "work-us": { type: "string", default: "20" },
    runs: { type: "string", default: "1" },
    json: { type: "boolean", default: false },
  },
});
const path = (name: string) => new URL(name, import.meta.url).pathname;
const deno = Deno.execPath();

interface Result {
  qps: number;
  p50: number;
  p99: number;
}

async function runPoint(threads: number, workUs: number): Promise<Result> {
  const server = await spawnReady(
    [deno, "run", "-A", path("rpc_echo_server.ts"), "--stack", "dwt", "--threads", String(threads)],
    { env: { DWT_LOG_LEVEL: "WARN", DWT_BENCH_WORK_US: String(workUs) } },
  );
  const port = server.ready;
  try {
    const results = await Promise.all(Array.from({ length: Number(values.clients) }, async () => {
      const output = await new Deno.Command(deno, {
        args: [
          "run",
          "-A",
          path("rpc_echo_client.ts"),
          "--stack",
          values.client,
          "--port",
          port,
          "--conc",
          values.conc,
          "--size",
          values.size,
          "--seconds",
          values.seconds,
          "--connections",
          values.connections,
        ],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      return JSON.parse(new TextDecoder().decode(output.stdout).trim().split("\n").pop()!) as Result;
    }));
    return {
      qps: results.reduce((sum, result) => sum + result.qps, 0),
      p50: Math.max(...results.map((result) => result.p50)),
      p99: Math.max(...results.map((result) => result.p99)),
    };
  } finally {
    await server.stop("SIGKILL");
  }
}

const threadCounts = [0, 1, 2];
const points: Array<{ workUs: number; threads: number; runs: Result[]; median: Result }> = [];
for (const workUs of [0, Number(values["work-us"])]) {
  const all = threadCounts.map(() => [] as Result[]);
  for (let run = 0; run < Math.max(1, Number(values.runs)); run++) {
    for (const [index, threads] of threadCounts.entries()) {
      all[index]!.push(await runPoint(threads, workUs));
      console.error(`work ${workUs} us, threads ${threads}: ${all[index]!.at(-1)!.qps.toFixed(0)} QPS`); // progress
    }
  }
  for (const [index, threads] of threadCounts.entries()) {
    const sorted = all[index]!.toSorted((a, b) => a.qps - b.qps);
    points.push({ workUs, threads, runs: all[index]!, median: sorted[Math.floor((sorted.length - 1) / 2)]! });
  }
}
if (values.json) {
  console.log(JSON.stringify({ bench: "threads", seconds: Number(values.seconds), points }));
  Deno.exit(0);
}
for (const workUs of [0, Number(values["work-us"])]) {
  const rows = points.filter((point) => point.workUs === workUs);
  console.log(
    `\nProvider threads, handler work ${workUs} us/call: ${values.clients} ${values.client} client process(es) x ` +
      `${values.connections} connections, ${values.conc} calls in flight each, ${values.size} B, ${values.seconds} s, ` +
      `${navigator.hardwareConcurrency} cores, median of ${values.runs} run(s)\n`,
  );
  console.log("| server | QPS | runs (QPS) | p50 ms (worst client) | p99 ms (worst client) |");
  console.log("|---|---|---|---|---|");
  for (const { threads, runs, median: result } of rows) {
    const name = threads === 0 ? "main loop" : `${threads} thread(s)`;
    const spread = `${Math.min(...runs.map((r) => r.qps)).toFixed(0)}-${
      Math.max(...runs.map((r) => r.qps)).toFixed(0)
    }`;
    console.log(
      `| ${name} | ${result.qps.toFixed(0)} | ${spread} | ${result.p50.toFixed(2)} | ${result.p99.toFixed(2)} |`,
    );
  }
  const [main, one, two] = rows.map((row) => row.median.qps) as [number, number, number];
  console.log(
    `\nscaling 2 threads / 1 thread: ${(two / one).toFixed(2)}x; 1 thread / main loop: ${(one / main).toFixed(2)}x`,
  );
}
Deno.exit(0);
