/** The unary table of bench/rpc_echo.ts, shared with bench/bench_all.ts, which prints it from bench-rpc's JSON. */

import type { RuntimeName } from "./_runtimes.ts";

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

/** The markdown lines of the table: a row per runtime and point, with the ratios. */
export function rpcTable(results: RpcPoint[], run: { seconds: number; runs: number; pinned: boolean }): string[] {
  const lines: string[] = [];
  const { seconds, runs, pinned } = run;
  const runtimes = [...new Set(results.filter((r) => r.stack === "dwt").map((r) => r.runtime))];
  const points = results.filter((r) => r.stack === "dwt" && r.runtime === runtimes[0]);
  const find = (runtime: string, stack: string, conc: number, size: number) =>
    results.find((r) => r.runtime === runtime && r.stack === stack && r.conc === conc && r.size === size);
  const f = (n: number) => n >= 100 ? n.toFixed(0) : n.toFixed(2);
  const spread = (r: RpcPoint) => `${(r.minQps / 1000).toFixed(0)}-${(r.maxQps / 1000).toFixed(0)}k`;
  const cpu = (r: RpcPoint) => `${r.clientCpuUs.toFixed(1)} + ${r.serverCpuUs.toFixed(1)}`;
  const ratio = (a: number | undefined, b: number | undefined, digits = 2) =>
    a === undefined || b === undefined ? "-" : (a / b).toFixed(digits);
  lines.push(
    `unary echo, ${seconds} s per run, median of ${runs} run(s) per point; QPS and latency (ms); "runs" is the ` +
      `lowest-highest QPS of the runs (k = 1000); "µs/call" is CPU time per call, client + server (all threads). ` +
      `dwt and raw run on the runtime named (server and client); ` +
      `raw: protobuf messages in length-prefixed frames on that runtime's plain sockets (the DESIGN's baseline); ` +
      `bytes (Deno): a byte echo, nothing decoded; grpc-js on Node. ` +
      (pinned ? "Main threads pinned: servers on core 1, clients on core 0." : "Not pinned."),
  );
  lines.push(
    "| runtime | conc | size | dwt QPS | dwt runs | dwt p50 | dwt p99 | dwt µs/call | raw QPS | raw runs | raw p99 " +
      "| raw µs/call | bytes QPS | grpc-js QPS | grpc-js p99 | dwt/raw | dwt/grpc | dwt/Deno dwt |",
  );
  lines.push(`| --- | --- |${" ---: |".repeat(16)}`);
  for (const runtime of runtimes) {
    for (const { conc, size } of points) {
      const d = find(runtime, "dwt", conc, size)!;
      const r = find(runtime, "raw", conc, size)!;
      const b = find(runtime, "bytes", conc, size);
      const g = find("node", "grpc-js", conc, size);
      const denoDwt = find("deno", "dwt", conc, size);
      lines.push(
        `| ${runtime} | ${conc} | ${size} | ${f(d.qps)} | ${spread(d)} | ${f(d.p50)} | ${f(d.p99)} | ${cpu(d)} | ` +
          `${f(r.qps)} | ${spread(r)} | ${f(r.p99)} | ${cpu(r)} | ${b ? f(b.qps) : "-"} | ${g ? f(g.qps) : "-"} | ` +
          `${g ? f(g.p99) : "-"} | ${ratio(d.qps, r.qps)} | ${ratio(d.qps, g?.qps, 1)} | ${
            ratio(d.qps, denoDwt?.qps)
          } |`,
      );
    }
  }
  return lines;
}
