/**
 * The HTTP gateway against connect-node's own server, side by side in one run, with the same load generator:
 *
 * - `dwt`: an RpcProvider serving bench.Echo and bench.Stream through its gateway (bench/gateway_server.ts, Deno);
 * - `connect-node`: `connectNodeAdapter` of `@connectrpc/connect-node` on `node:http`, HTTP/1.1, the same schema
 *   (bench/gateway_connect_server.mjs, Node 20; packages in bench/connect/);
 * - `floor` (unary points only): a bare responder on Deno's plain sockets answering a fixed Connect response of the
 *   gateway's size (bench/gateway_floor_server.ts), the machine's and runtime's limit for this client.
 *
 * The client for both is bench/gateway_load_client.mjs: raw keep-alive HTTP/1.1 on node:net, one request in flight
 * per connection, C connections for cC. Points: unary Connect `application/proto` and `application/json` (64 B
 * payload) at c1, c16 and c64 (requests per second, p50, p99), and Connect server streams of 64 B messages (messages
 * per second over 1 and 16 streams at once). Servers and clients are separate processes; each point runs `--runs`
 * times (a fresh client each, the two servers' runs interleaved so a busy neighbour hurts both alike) and reports
 * the median with the lowest and highest run; p50 and p99 are the medians of the runs' own. The ratio is
 * dwt / connect-node.
 *
 *   deno task bench-gateway [--seconds 2] [--runs 3]
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { type ReadyProcess, spawnReady } from "../reactor/testdata/spawn_ready.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: { seconds: { type: "string", default: "2" }, runs: { type: "string", default: "3" } },
});
const seconds = Number(values.seconds);
const runs = Math.floor(Number(values.runs));
if (!(seconds > 0) || !(runs >= 1)) {
  throw new RangeError(
    `Cannot run as --seconds and --runs must be positive: current values are ${values.seconds} and ${values.runs}`,
  );
}
const WARMUP_MS = 500;
/** Linux's USER_HZ, the unit of /proc/<pid>/stat's CPU times (100 on every common build). */
const CLOCK_TICKS_PER_SECOND = 100;
/** A client that takes longer than its run plus this is killed, and the benchmark fails. */
const CLIENT_GRACE_MS = 30_000;
const path = (name: string) => new URL(name, import.meta.url).pathname;
const env = { DWT_LOG_LEVEL: "WARN" };

interface Stack {
  name: string;
  server: string[];
  /** Serves unary calls only (the floor): skipped at the stream points. */
  unaryOnly?: boolean;
}

const stacks: Stack[] = [
  { name: "dwt", server: [Deno.execPath(), "run", "-A", path("gateway_server.ts")] },
  { name: "connect-node", server: ["node", path("gateway_connect_server.mjs")] },
  { name: "floor", server: [Deno.execPath(), "run", "-A", path("gateway_floor_server.ts")], unaryOnly: true },
];
const runsAt = (point: Point) => stacks.filter((stack) => !(stack.unaryOnly && point.mode === "stream"));

interface Point {
  label: string;
  mode: "proto" | "json" | "stream";
  conc: number;
}

const points: Point[] = [
  ...(["proto", "json"] as const).flatMap((mode) =>
    [1, 16, 64].map((conc) => ({ label: `unary ${mode} c${conc}, req/s`, mode, conc }))
  ),
  { label: "server stream x1, msg/s", mode: "stream", conc: 1 },
  { label: "server stream x16, msg/s", mode: "stream", conc: 16 },
];

// Every child this process started, so that they all end with it, even on a failure or Ctrl-C.
const servers = new Set<ReadyProcess>();
const clients = new Set<Deno.ChildProcess>();

async function stopAll(): Promise<void> {
  for (const client of clients) {
    try {
      client.kill("SIGKILL");
    } catch { /* exited already */ }
  }
  await Promise.all([...servers].map((server) => server.stop("SIGKILL")));
  servers.clear();
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => stopAll().finally(() => Deno.exit(130)));
}

/** CPU seconds process `pid` has used so far, all its threads (user and system; Linux /proc). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the command's closing parenthesis: state is the 3rd field, utime and stime the 14th and 15th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/**
 * Run the load client to its end against `server` and parse the JSON line it prints last, adding `serverCpuUs`:
 * the server's CPU time per call or stream message over the client's whole run (a measure of cost that a busy
 * neighbour on the machine disturbs far less than the rates).
 */
async function runClient(server: { port: number; pid: number }, point: Point): Promise<Record<string, number>> {
  const cpuBefore = await cpuSeconds(server.pid);
  const result = await runLoadClient(server.port, point);
  result.serverCpuUs = (await cpuSeconds(server.pid) - cpuBefore) / result.total! * 1e6;
  return result;
}

async function runLoadClient(port: number, point: Point): Promise<Record<string, number>> {
  const args = [path("gateway_load_client.mjs"), "--port", String(port), "--mode", point.mode, "--conc"].concat(
    [String(point.conc), "--size", "64", "--seconds", String(seconds), "--warmup-ms", String(WARMUP_MS)],
  );
  const child = new Deno.Command("node", { args, stdout: "piped", stderr: "piped" }).spawn();
  clients.add(child);
  const timer = setTimeout(() => child.kill("SIGKILL"), WARMUP_MS + seconds * 1000 + CLIENT_GRACE_MS);
  try {
    const { code, stdout, stderr } = await child.output();
    const decoder = new TextDecoder();
    const line = decoder.decode(stdout).trim().split("\n").pop() ?? "";
    if (code !== 0 || !line.startsWith("{")) {
      throw new Error(`The load client (${point.label}) exited with code ${code}:\n${decoder.decode(stderr)}${line}`);
    }
    return JSON.parse(line) as Record<string, number>;
  } finally {
    clearTimeout(timer);
    clients.delete(child);
  }
}

/** The median of `xs` (the lower one of an even count) with the lowest and highest. */
interface Spread {
  median: number;
  min: number;
  max: number;
}

function spread(xs: number[]): Spread {
  const sorted = [...xs].sort((a, b) => a - b);
  return { median: sorted[Math.floor((sorted.length - 1) / 2)]!, min: sorted[0]!, max: sorted.at(-1)! };
}

const loadBefore = await Deno.readTextFile("/proc/loadavg").catch(() => "?");
const results = new Map<string, Array<Record<string, number>>>();
const key = (stack: Stack, point: Point) => `${stack.name}/${point.label}`;
try {
  const started = new Map<string, { port: number; pid: number }>();
  for (const stack of stacks) {
    // Captured, not shown: connect-node logs each stream the client cuts off at the end of a run (EPIPE).
    const server = await spawnReady(stack.server, { env, stderr: "capture" });
    servers.add(server);
    started.set(stack.name, { port: Number(server.ready), pid: server.pid });
  }
  const total = runs * points.reduce((sum, point) => sum + runsAt(point).length, 0);
  let done = 0;
  for (let run = 0; run < runs; run++) {
    for (const point of points) {
      for (const stack of runsAt(point)) {
        const result = await runClient(started.get(stack.name)!, point);
        results.set(key(stack, point), [...results.get(key(stack, point)) ?? [], result]);
        const rate = result.qps ?? result.rate!;
        const latency = result.p99 === undefined
          ? ""
          : `, p50 ${result.p50!.toFixed(2)} p99 ${result.p99.toFixed(2)} ms`;
        console.error(
          `[${++done}/${total}] run ${run + 1}: ${stack.name} ${point.label}: ${rate.toFixed(0)}${latency}, ` +
            `server CPU ${result.serverCpuUs!.toFixed(1)} µs each (client CPU ${
              (result.clientCpu! * 100).toFixed(0)
            }%)`,
        );
      }
    }
  }
} finally {
  await stopAll();
}
const loadAfter = await Deno.readTextFile("/proc/loadavg").catch(() => "?");

const k = (n: number) => n >= 1e4 ? `${(n / 1e3).toFixed(0)}k` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0);
const rateCell = (s: Spread) => `${k(s.median)} (${k(s.min)}-${k(s.max)})`;
const ms = (n: number) => n >= 10 ? n.toFixed(0) : n.toFixed(2);
const ratio = (n: number) => n >= 10 ? n.toFixed(0) : n.toFixed(1);
const load = (text: string) => text.trim().split(" ").slice(0, 3).join(" ");

console.log(
  `\nHTTP gateway vs connect-node, HTTP/1.1 keep-alive, same load client (raw node:net, one request in flight per ` +
    `connection); 64 B payloads; median of ${runs} run(s) of ${seconds} s after a ${WARMUP_MS} ms warm-up, lowest-` +
    `highest in parentheses (k = 1000); p50/p99 in ms, the medians of the runs'. Load average before: ` +
    `${load(loadBefore)}, after: ${load(loadAfter)} (${navigator.hardwareConcurrency} cores).`,
);
console.log(
  "| point | dwt | dwt p50 | dwt p99 | connect-node | c-n p50 | c-n p99 | dwt/c-n | p99 c-n/dwt | floor | " +
    "dwt/floor | dwt CPU µs | c-n CPU µs | CPU c-n/dwt | floor CPU µs | client CPU max |",
);
console.log(`|---|${" ---: |".repeat(15)}`);
for (const point of points) {
  const [d, c, f] = stacks.map((stack) => results.get(key(stack, point)));
  const rate = (rs: Array<Record<string, number>>) => spread(rs.map((r) => r.qps ?? r.rate!));
  const p = (rs: Array<Record<string, number>>, field: string) =>
    rs[0]![field] === undefined ? "-" : ms(spread(rs.map((r) => r[field]!)).median);
  const dRate = rate(d!);
  const cRate = rate(c!);
  const p99Ratio = d![0]!.p99 === undefined
    ? "-"
    : ratio(spread(c!.map((r) => r.p99!)).median / spread(d!.map((r) => r.p99!)).median);
  const fRate = f === undefined ? undefined : rate(f);
  const floorCells = fRate === undefined ? "- | -" : `${rateCell(fRate)} | ${(dRate.median / fRate.median).toFixed(2)}`;
  const clientCpu = Math.max(...[...d!, ...c!, ...f ?? []].map((r) => r.clientCpu!));
  const dCpu = spread(d!.map((r) => r.serverCpuUs!)).median;
  const cCpu = spread(c!.map((r) => r.serverCpuUs!)).median;
  const fCpu = f === undefined ? "-" : spread(f.map((r) => r.serverCpuUs!)).median.toFixed(1);
  console.log(
    `| ${point.label} | ${rateCell(dRate)} | ${p(d!, "p50")} | ${p(d!, "p99")} | ${rateCell(cRate)} | ` +
      `${p(c!, "p50")} | ${p(c!, "p99")} | ${ratio(dRate.median / cRate.median)} | ${p99Ratio} | ` +
      `${floorCells} | ${dCpu.toFixed(1)} | ${cCpu.toFixed(1)} | ${ratio(cCpu / dCpu)} | ${fCpu} | ${
        (clientCpu * 100).toFixed(0)
      }% |`,
  );
}
console.log(
  `\nRatios above 1 are dwt ahead (rate: dwt / connect-node; p99 and CPU: connect-node's / dwt's). floor: a bare ` +
    `responder on Deno's plain sockets (bench/gateway_floor_server.ts: finds each request's end by its ` +
    `Content-Length, writes a fixed Connect answer of the gateway's size), the most any server on this runtime and ` +
    `machine can do with this client; dwt/floor is the share of it the gateway reaches, floor CPU µs what a call costs it. At c1 a call is one ` +
    `loopback round trip, so where dwt/floor is near 1 the gap to 3x connect-node is the machine's. CPU µs: the ` +
    `server process's CPU time (all threads) per call or stream message, median of the runs: what each costs, which ` +
    `a busy machine disturbs less than the rates. client CPU max: the load client's CPU time over its wall time, ` +
    `the highest of the point's runs (well under 100%: it was not the limit).`,
);
console.log(`Reproduce: deno task bench-gateway --seconds ${seconds} --runs ${runs}`);
Deno.exit(0);
