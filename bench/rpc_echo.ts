/**
 * Unary echo, side by side in one run: dwt-rpc (RpcChannel -> RpcProvider), grpc-js (server and client on
 * Node 20, same .proto, same payloads), the raw length-prefixed echo of the same protobuf message on plain Deno
 * sockets (protobufjs encodes and decodes it on both ends, as DESIGN.md's baseline does), and a byte echo that
 * decodes nothing (the floor of what sockets do here). Concurrency 1, 16 and 64 calls in flight, payloads 64 B
 * and 4 KiB; servers and clients are separate processes (`--pin` puts their main threads on separate cores).
 * Each point runs `--runs` times (a fresh client process each) and reports the run with the median QPS: on a
 * small VM two runs of the same point can differ by half, and one unlucky run should not decide a ratio. Prints
 * QPS, p50, p99, the spread of the runs and the ratios.
 *
 *   deno task bench-rpc [--seconds 3] [--runs 3] [--pin]
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { pinMainThread } from "./_spawn_ready.ts";
import { spawnReady } from "../reactor/testdata/spawn_ready.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "3" },
    runs: { type: "string", default: "3" },
    pin: { type: "boolean", default: false },
  },
});
const runs = Math.max(1, Number(values.runs));
const here = new URL(".", import.meta.url);
const path = (name: string) => new URL(name, here).pathname;

interface Result {
  qps: number;
  p50: number;
  p99: number;
  /** Lowest and highest QPS of the runs. */
  minQps?: number;
  maxQps?: number;
}

interface Stack {
  name: string;
  server: string[];
  client: string[];
}

const deno = Deno.execPath();
const stacks: Stack[] = [
  {
    name: "dwt",
    server: [deno, "run", "-A", path("rpc_echo_server.ts"), "--stack", "dwt"],
    client: [deno, "run", "-A", path("rpc_echo_client.ts"), "--stack", "dwt"],
  },
  { name: "grpc-js", server: ["node", path("grpc_echo_server.mjs")], client: ["node", path("grpc_echo_client.mjs")] },
  {
    name: "raw",
    server: [deno, "run", "-A", path("rpc_echo_server.ts"), "--stack", "raw"],
    client: [deno, "run", "-A", path("rpc_echo_client.ts"), "--stack", "raw"],
  },
  {
    name: "bytes",
    server: [deno, "run", "-A", path("rpc_echo_server.ts"), "--stack", "bytes"],
    client: [deno, "run", "-A", path("rpc_echo_client.ts"), "--stack", "bytes"],
  },
];

// With --pin, every stack's server main thread on core 1 and client main thread on core 0 (see pinMainThread).
// Off by default: pinning helps dwt and grpc-js but costs the raw and byte echoes a quarter to a third of their
// QPS here, so each stack runs as the scheduler places it.
let pinned = values.pin;

async function startServer(stack: Stack): Promise<{ port: number; stop(): Promise<void> }> {
  const server = await spawnReady(stack.server);
  pinned &&= await pinMainThread(server.pid, 1);
  return { port: Number(server.ready), stop: () => server.stop("SIGKILL") };
}

async function runClient(stack: Stack, port: number, conc: number, size: number): Promise<Result> {
  const args = [
    ...stack.client.slice(1),
    "--port",
    String(port),
    "--conc",
    String(conc),
    "--size",
    String(size),
    "--seconds",
    values.seconds,
  ];
  const child = new Deno.Command(stack.client[0]!, { args, stdout: "piped", stderr: "inherit" }).spawn();
  pinned &&= await pinMainThread(child.pid, 0);
  const output = await child.output();
  const line = new TextDecoder().decode(output.stdout).trim().split("\n").pop()!;
  return JSON.parse(line) as Result;
}

const points = [1, 16, 64].flatMap((conc) => [64, 4096].map((size) => ({ conc, size })));
const results = new Map<string, Result>();
for (const stack of stacks) {
  const server = await startServer(stack);
  try {
    for (const { conc, size } of points) {
      // Progress on stderr: the table comes at the end on stdout.
      const done = results.size + 1;
      const total = points.length * stacks.length;
      const all: Result[] = [];
      for (let run = 0; run < runs; run++) all.push(await runClient(stack, server.port, conc, size));
      all.sort((a, b) => a.qps - b.qps);
      const result = { ...all[Math.floor((all.length - 1) / 2)]!, minQps: all[0]!.qps, maxQps: all.at(-1)!.qps };
      results.set(`${stack.name}/${conc}/${size}`, result);
      console.error(
        `[${done}/${total}] ${stack.name} conc ${conc} ${size} B: ${result.qps.toFixed(0)} QPS ` +
          `(runs: ${all.map((r) => r.qps.toFixed(0)).join(", ")})`,
      );
    }
  } finally {
    await server.stop();
  }
}

const f = (n: number) => n >= 100 ? n.toFixed(0) : n.toFixed(2);
const spread = (r: Result) => `${((r.minQps ?? r.qps) / 1000).toFixed(0)}-${((r.maxQps ?? r.qps) / 1000).toFixed(0)}k`;
console.log(
  `unary echo, ${values.seconds} s per run, median of ${runs} run(s) per point; QPS and latency (ms); ratios are ` +
    `dwt / other; "runs" is the lowest-highest QPS of the runs (k = 1000). raw: protobuf messages in ` +
    `length-prefixed frames on plain sockets (the DESIGN's baseline); bytes: a byte echo, nothing decoded. ` +
    (pinned ? "Main threads pinned: servers on core 1, clients on core 0." : "Not pinned."),
);
console.log(
  "| conc | size | dwt QPS | dwt runs | dwt p50 | dwt p99 | grpc-js QPS | grpc-js p50 | grpc-js p99 | raw QPS | raw runs " +
    "| raw p99 | bytes QPS | dwt/grpc | dwt/raw | dwt/bytes |",
);
console.log(`|${" ---: |".repeat(16)}`);
for (const { conc, size } of points) {
  const d = results.get(`dwt/${conc}/${size}`)!;
  const g = results.get(`grpc-js/${conc}/${size}`)!;
  const r = results.get(`raw/${conc}/${size}`)!;
  const b = results.get(`bytes/${conc}/${size}`)!;
  console.log(
    `| ${conc} | ${size} | ${f(d.qps)} | ${spread(d)} | ${f(d.p50)} | ${f(d.p99)} | ${f(g.qps)} | ${f(g.p50)} | ` +
      `${f(g.p99)} | ${f(r.qps)} | ${spread(r)} | ${f(r.p99)} | ${f(b.qps)} | ${(d.qps / g.qps).toFixed(1)} | ` +
      `${(d.qps / r.qps).toFixed(2)} | ${(d.qps / b.qps).toFixed(2)} |`,
  );
}
Deno.exit(0);
