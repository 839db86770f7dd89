/**
 * Streaming RPC side by side in one run, servers and clients in separate processes on loopback:
 *
 * 1. Server streaming, messages per second at 64 B and 4 KiB payloads: dwt-rpc (provider and caller on Deno),
 *    grpc-js (server and client on Node 20, same .proto), `raw` (pre-encoded length-prefixed Chunk frames written
 *    by plain Deno sockets as fast as they take them, counted by the client: the floor on this runtime) and
 *    `raw-pb` (the same, each Chunk encoded and decoded by protobufjs: what a hand-written protocol would do).
 * 2. Bidirectional ping-pong, one 64 B message out and its echo back, p50 and p99: dwt-rpc and grpc-js.
 * 3. A dwt-rpc provider streaming 4 KiB messages as fast as it may to a caller that sleeps 10 ms after each: the
 *    provider's RSS before the stream, one second in, at its peak (sampled from inside every 50 ms) and VmHWM.
 *
 * Every point runs `--runs` times (a fresh client process each; the runs of the stacks interleave, so a busy
 * neighbour on the machine hurts them alike) and reports the median, with the lowest and highest run.
 *
 *   deno task bench-stream [--seconds 2] [--runs 3] [--slow-seconds 5] [--round-trips 10000]
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { type ReadyProcess, spawnReady } from "../reactor/testdata/spawn_ready.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "2" },
    runs: { type: "string", default: "3" },
    "slow-seconds": { type: "string", default: "5" },
    "round-trips": { type: "string", default: "10000" },
  },
});
const seconds = Number(values.seconds);
const runs = Math.max(1, Math.floor(Number(values.runs)));
const slowSeconds = Number(values["slow-seconds"]);
if (!(seconds > 0) || !(slowSeconds > 0) || !(Number(values["round-trips"]) >= 1)) {
  throw new RangeError(
    `Cannot run as --seconds, --slow-seconds and --round-trips must be positive: current values are ` +
      `${values.seconds}, ${values["slow-seconds"]} and ${values["round-trips"]}`,
  );
}
const here = new URL(".", import.meta.url);
const path = (name: string) => new URL(name, here).pathname;
const deno = Deno.execPath();
const env = { DWT_LOG_LEVEL: "WARN" };
/** A client that takes longer than its run plus this is killed, and the benchmark fails. */
const CLIENT_GRACE_MS = 30_000;
const MEMORY_SAMPLE_MS = 50;
const MIB = 1024 * 1024;

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

async function startServer(argv: string[]): Promise<ReadyProcess & { port: number }> {
  const server = await spawnReady(argv, { env });
  servers.add(server);
  return Object.assign(server, { port: Number(server.ready) });
}

async function stopServer(server: ReadyProcess): Promise<void> {
  servers.delete(server);
  await server.stop("SIGKILL");
}

/** Run a client to its end and parse the JSON line it prints last. */
async function runClient(argv: string[], runMs: number): Promise<Record<string, number>> {
  const child = new Deno.Command(argv[0]!, { args: argv.slice(1), env, stdout: "piped", stderr: "piped" }).spawn();
  clients.add(child);
  const timer = setTimeout(() => child.kill("SIGKILL"), runMs + CLIENT_GRACE_MS);
  try {
    const { code, stdout, stderr } = await child.output();
    const decoder = new TextDecoder();
    const line = decoder.decode(stdout).trim().split("\n").pop() ?? "";
    if (code !== 0 || !line.startsWith("{")) {
      throw new Error(`${argv.join(" ")} exited with code ${code}:\n${decoder.decode(stderr)}${line}`);
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

interface Stack {
  name: string;
  server: string[];
  client: string[];
  pingPong: boolean;
}

const denoClient = (stack: string) => [deno, "run", "-A", path("stream_client.ts"), "--stack", stack];
const stacks: Stack[] = [
  {
    name: "dwt",
    server: [deno, "run", "-A", path("stream_server.ts"), "--stack", "dwt"],
    client: denoClient("dwt"),
    pingPong: true,
  },
  {
    name: "grpc-js",
    server: ["node", path("grpc_stream_server.mjs")],
    client: ["node", path("grpc_stream_client.mjs")],
    pingPong: true,
  },
  {
    name: "raw",
    server: [deno, "run", "-A", path("stream_server.ts"), "--stack", "raw"],
    client: denoClient("raw"),
    pingPong: false,
  },
  {
    name: "raw-pb",
    server: [deno, "run", "-A", path("stream_server.ts"), "--stack", "raw-pb"],
    client: denoClient("raw-pb"),
    pingPong: false,
  },
];
const sizes = [64, 4096];

interface MemorySample {
  rss: number;
  heapUsed: number;
  produced: number;
  at: number;
}

function memorySamples(stdout: string): MemorySample[] {
  return stdout.split("\n").filter((line) => line.startsWith("MEM ")).map((line) => JSON.parse(line.slice(4)));
}

async function procStatusKiB(pid: number, field: string): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
}

/** One slow-consumer run on a fresh provider: its memory before and during the stream. */
async function slowConsumer(): Promise<Record<string, number>> {
  const provider = await startServer([
    deno,
    "run",
    "-A",
    path("stream_server.ts"),
    "--stack",
    "dwt",
    "--sample-memory",
    String(MEMORY_SAMPLE_MS),
  ]);
  try {
    await new Promise((resolve) => setTimeout(resolve, 300)); // a few samples of the idle provider
    const startedAt = Date.now();
    const before = memorySamples(provider.stdout()).at(-1)!;
    const { consumed } = await runClient(
      [...denoClient("dwt"), "--mode", "slow", "--port", String(provider.port), "--size", "4096"].concat(
        ["--seconds", String(slowSeconds), "--interval-ms", "10"],
      ),
      slowSeconds * 1000,
    );
    const hwmKiB = await procStatusKiB(provider.pid, "VmHWM");
    const during = memorySamples(provider.stdout()).filter((sample) => sample.at >= startedAt);
    const oneSecondIn = during.find((sample) => sample.at >= startedAt + 1000) ?? during.at(-1)!;
    return {
      startRss: before.rss,
      oneSecondRss: oneSecondIn.rss,
      peakRss: Math.max(...during.map((sample) => sample.rss)),
      hwm: hwmKiB * 1024,
      startHeap: before.heapUsed,
      peakHeap: Math.max(...during.map((sample) => sample.heapUsed)),
      // Messages the handler yielded that the caller had not read when it stopped: what the provider buffers.
      ahead: during.at(-1)!.produced - before.produced - consumed!,
      consumed: consumed!,
    };
  } finally {
    await stopServer(provider);
  }
}

const loadBefore = await Deno.readTextFile("/proc/loadavg").catch(() => "?");
const floods = new Map<string, number[]>();
const pingPongs = new Map<string, Array<Record<string, number>>>();
const slow: Array<Record<string, number>> = [];
try {
  const started = new Map<string, ReadyProcess & { port: number }>();
  for (const stack of stacks) started.set(stack.name, await startServer(stack.server));
  const total = runs * (sizes.length * stacks.length + stacks.filter((stack) => stack.pingPong).length + 1);
  let done = 0;
  const progress = (what: string) => console.error(`[${++done}/${total}] ${what}`);
  for (let run = 0; run < runs; run++) {
    for (const size of sizes) {
      for (const stack of stacks) {
        const port = String(started.get(stack.name)!.port);
        const args = ["--mode", "flood", "--port", port, "--size", String(size), "--seconds", String(seconds)];
        const { rate } = await runClient([...stack.client, ...args], seconds * 1000);
        floods.set(`${stack.name}/${size}`, [...floods.get(`${stack.name}/${size}`) ?? [], rate!]);
        progress(`run ${run + 1}: ${stack.name} server stream ${size} B: ${rate!.toFixed(0)} msg/s`);
      }
    }
    for (const stack of stacks.filter((stack) => stack.pingPong)) {
      const port = String(started.get(stack.name)!.port);
      const args = ["--mode", "pingpong", "--port", port, "--size", "64", "--seconds", String(seconds)];
      const result = await runClient([...stack.client, ...args, "--count", values["round-trips"]], seconds * 1000);
      pingPongs.set(stack.name, [...pingPongs.get(stack.name) ?? [], result]);
      progress(`run ${run + 1}: ${stack.name} ping-pong: p50 ${(result.p50! * 1000).toFixed(0)} µs, n ${result.n}`);
    }
    const memory = await slowConsumer();
    slow.push(memory);
    progress(
      `run ${run + 1}: dwt slow consumer: RSS ${(memory.startRss! / MIB).toFixed(1)} -> peak ` +
        `${(memory.peakRss! / MIB).toFixed(1)} MiB, ${memory.ahead} messages ahead of ${memory.consumed} read`,
    );
  }
} finally {
  await stopAll();
}
const loadAfter = await Deno.readTextFile("/proc/loadavg").catch(() => "?");

const k = (n: number) => n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(0)}k` : n.toFixed(0);
const rateCell = (s: Spread) => `${k(s.median)} (${k(s.min)}-${k(s.max)})`;
const usCell = (s: Spread) =>
  `${(s.median * 1000).toFixed(0)} (${(s.min * 1000).toFixed(0)}-${(s.max * 1000).toFixed(0)})`;
const mib = (s: Spread) => (s.median / MIB).toFixed(1);
const ratio = (a: number, b: number) => (a / b >= 10 ? (a / b).toFixed(0) : (a / b).toFixed(2));

console.log(
  `\nStreaming, median of ${runs} run(s) (lowest-highest in parentheses; k = 1000, M = 10^6); server streams ` +
    `measured ${seconds} s after a 0.5 s warm-up; ping-pong: up to ${values["round-trips"]} round trips of 64 B ` +
    `after 500 warm-up ones; slow consumer: ${slowSeconds} s, the caller sleeps 10 ms after each 4 KiB message. Load average ` +
    `before: ${loadBefore.trim().split(" ").slice(0, 3).join(" ")}, after: ${
      loadAfter.trim().split(" ").slice(0, 3).join(" ")
    } (${navigator.hardwareConcurrency} cores).`,
);
console.log("| measure | size | dwt | grpc-js | raw | raw-pb | dwt/grpc-js | dwt/raw | dwt/raw-pb |");
console.log(`|---|---|${" ---: |".repeat(7)}`);
for (const size of sizes) {
  const [d, g, r, p] = stacks.map((stack) => spread(floods.get(`${stack.name}/${size}`)!));
  console.log(
    `| server stream, msg/s | ${size === 64 ? "64 B" : "4 KiB"} | ${rateCell(d!)} | ${rateCell(g!)} | ` +
      `${rateCell(r!)} | ${rateCell(p!)} | ${ratio(d!.median, g!.median)} | ${ratio(d!.median, r!.median)} | ` +
      `${ratio(d!.median, p!.median)} |`,
  );
}
for (const field of ["p50", "p99"]) {
  const d = spread(pingPongs.get("dwt")!.map((result) => result[field]!));
  const g = spread(pingPongs.get("grpc-js")!.map((result) => result[field]!));
  console.log(
    `| bidi ping-pong ${field}, µs | 64 B | ${usCell(d)} | ${usCell(g)} | - | - | ${ratio(d.median, g.median)} ` +
      `| - | - |`,
  );
}
const m = (field: string) => spread(slow.map((result) => result[field]!));
console.log(
  `| slow consumer: provider RSS MiB, before / 1 s in / peak (VmHWM) | 4 KiB | ${mib(m("startRss"))} / ` +
    `${mib(m("oneSecondRss"))} / ${mib(m("peakRss"))} (${mib(m("hwm"))}) | - | - | - | - | - | - |`,
);
console.log(
  `| slow consumer: provider heapUsed MiB, before / peak | 4 KiB | ${mib(m("startHeap"))} / ${mib(m("peakHeap"))} ` +
    `| - | - | - | - | - | - |`,
);
console.log(
  `| slow consumer: messages yielded but not read at the end (of ${m("consumed").median} read) | 4 KiB | ` +
    `${m("ahead").median} | - | - | - | - | - | - |`,
);
console.log(
  `\nRatios are dwt / other: above 1 is dwt ahead for msg/s, behind for latency. raw: pre-encoded frames, ~64 KiB ` +
    `per write, counted (the floor); raw-pb: each Chunk encoded and decoded by protobufjs. Slow consumer: flow ` +
    `control lets the provider run at most one 64 KiB window (15 messages of 4 KiB) ahead of the caller's reads.`,
);
console.log(
  `Reproduce: deno task bench-stream --seconds ${seconds} --runs ${runs} --slow-seconds ${slowSeconds} ` +
    `--round-trips ${values["round-trips"]}`,
);
Deno.exit(0);
