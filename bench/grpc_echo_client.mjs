// grpc-js echo client on Node for bench/rpc_echo.ts: --port --conc --size --seconds; prints one JSON line.
import { createRequire } from "node:module";
import { parseArgs } from "node:util";
const require = createRequire(import.meta.url);
const grpc = require("./grpc/node_modules/@grpc/grpc-js");
const loader = require("./grpc/node_modules/@grpc/proto-loader");

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    conc: { type: "string" },
    size: { type: "string" },
    seconds: { type: "string" },
    "warmup-ms": { type: "string" },
  },
});
const definition = grpc.loadPackageDefinition(loader.loadSync(new URL("./echo.proto", import.meta.url).pathname));
const client = new definition.bench.Echo(`127.0.0.1:${values.port}`, grpc.credentials.createInsecure());
const payload = Buffer.alloc(Number(values.size), 0x61);
const call = () => new Promise((resolve, reject) => client.Echo({ payload }, (e, r) => e ? reject(e) : resolve(r)));
// Keep `conc` calls in flight until `untilMs`; `record` gets each call's latency.
const drive = (untilMs, record) =>
  Promise.all(Array.from({ length: Number(values.conc) }, async () => {
    while (performance.now() < untilMs) {
      const t = performance.now();
      await call();
      record(performance.now() - t);
    }
  }));
await call(); // connect
for (let i = 0; i < 200; i++) await call();
// Warm up at the measured concurrency, as bench/rpc_echo_client.ts does.
let warmupCalls = 201;
await drive(performance.now() + Number(values["warmup-ms"] ?? 300), () => warmupCalls++);
const latencies = [];
const until = performance.now() + Number(values.seconds) * 1000;
const start = performance.now();
const cpuAtStart = process.cpuUsage();
await drive(until, (ms) => latencies.push(ms));
const elapsed = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpuAtStart);
latencies.sort((a, b) => a - b);
const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
console.log(
  JSON.stringify({
    qps: latencies.length / elapsed,
    p50: pct(0.5),
    p99: pct(0.99),
    cpuUs: (cpu.user + cpu.system) / latencies.length,
    warmupCalls,
  }),
);
client.close();
process.exit(0);
