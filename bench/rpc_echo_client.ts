/**
 * Echo client for bench/rpc_echo.ts and bench/rpc_threads.ts, on Deno, Node (tsx) or Bun: `--stack
 * dwt|raw|bytes|load --port N --conc C --size B --seconds S [--connections K] [--warmup-ms 300]`; C calls in flight
 * over K connections (dwt and load; raw and bytes use one); prints one JSON line with QPS, p50 and p99 (ms), the CPU
 * time (all threads) this process spent per call while measuring (`cpuUs`, µs), and how many calls the warm-up made.
 */

import process from "node:process";
import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { EventLoop } from "../reactor/mod.ts";
import { loadProtoFile, RpcChannel, serviceDefinition, type StubMethod } from "../rpc/mod.ts";
import { defaultBackend } from "../reactor/backend/mod.ts";
import { encodeRpcFrame } from "../rpc/_rpc_encoder.ts";
import { pipelined as pipelinedOn } from "./_echo_sockets.ts";

const backend = defaultBackend();
const { values } = parseArgsOrExit({
  args: backend.process.args(),
  options: {
    stack: { type: "string", default: "dwt" },
    port: { type: "string" },
    conc: { type: "string", default: "1" },
    size: { type: "string", default: "64" },
    seconds: { type: "string", default: "3" },
    connections: { type: "string", default: "1" },
    "warmup-ms": { type: "string", default: "300" },
  },
});
const payload = new Uint8Array(Number(values.size)).fill(0x61);
let call: () => Promise<unknown>;
const pipelined = (encode: () => Uint8Array) => pipelinedOn(Number(values.port), encode);

const root = await loadProtoFile(backend, new URL("./echo.proto", import.meta.url).pathname);
const EchoMessage = root.lookupType("bench.EchoMessage");

if (values.stack === "raw") {
  // The DESIGN's raw baseline: the same protobuf message as the RPC stacks, encoded and decoded with protobufjs
  // per call, in length-prefixed frames; no envelope, multiplexing, deadlines or discovery.
  const send = await pipelined(() => EchoMessage.encode({ payload }).finish());
  call = () => send().then((body) => EchoMessage.decode(body));
} else if (values.stack === "bytes") {
  // Bytes only: a fixed frame out, the echoed frame back, nothing encoded or decoded.
  call = await pipelined(() => payload);
} else if (values.stack === "load") {
  // A load generator for the provider (like wrk for HTTP): pre-encoded RPC request frames pipelined over K
  // connections, replies counted, not decoded. It costs the client little, so the server's capacity shows.
  const request = EchoMessage.encode({ payload }).finish();
  const body = encodeRpcFrame({ request: { callId: 1, service: "bench.Echo", method: "Echo", payload: request } });
  const calls = await Promise.all(Array.from({ length: Number(values.connections) }, () => pipelined(() => body)));
  let next = 0;
  call = () => calls[next++ % calls.length]!();
} else {
  // One channel per connection (a channel keeps one connection per provider); calls take them in turn.
  const stubs = Array.from({ length: Number(values.connections) }, () => {
    const channel = new RpcChannel({
      loop: EventLoop.current(),
      providers: { "bench.Echo": [`127.0.0.1:${values.port}`] },
      timeoutMs: 30_000,
    });
    return channel.stub<{ Echo: StubMethod }>(serviceDefinition(root, "bench.Echo"));
  });
  let next = 0;
  call = () => stubs[next++ % stubs.length]!.Echo({ payload });
}

/** Keep `conc` calls in flight until `untilMs`; `record` gets each call's latency. */
const drive = (untilMs: number, record: (ms: number) => void) =>
  Promise.all(Array.from({ length: Number(values.conc) }, async () => {
    while (performance.now() < untilMs) {
      const t = performance.now();
      await call();
      record(performance.now() - t);
    }
  }));

// Connect, then warm up at the measured concurrency, so the JIT has compiled the paths measured (its background
// threads' CPU would otherwise land on the measured calls, most at 1 in flight on Node and Bun).
for (let i = 0; i < 200; i++) await call();
let warmupCalls = 200;
await drive(performance.now() + Number(values["warmup-ms"]), () => warmupCalls++);
const latencies: number[] = [];
const until = performance.now() + Number(values.seconds) * 1000;
const start = performance.now();
const cpuAtStart = process.cpuUsage();
await drive(until, (ms) => latencies.push(ms));
const elapsed = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpuAtStart);
const cpuUs = (cpu.user + cpu.system) / latencies.length;
latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
console.log(JSON.stringify({ qps: latencies.length / elapsed, p50: pct(0.5), p99: pct(0.99), cpuUs, warmupCalls }));
backend.process.exit(0);
