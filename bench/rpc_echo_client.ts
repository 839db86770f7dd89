/**
 * Echo client for bench/rpc_echo.ts: `--stack dwt|raw --port N --conc C --size B --seconds S`; C calls in flight
 * on one connection; prints one JSON line with QPS, p50 and p99 (ms).
 */

import { parseArgs } from "node:util";
import { EventLoop } from "../reactor/mod.ts";
import { loadProtoFile, RpcChannel, serviceDefinition, type StubMethod } from "../rpc/mod.ts";
import { defaultBackend } from "../reactor/backend/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    stack: { type: "string", default: "dwt" },
    port: { type: "string" },
    conc: { type: "string", default: "1" },
    size: { type: "string", default: "64" },
    seconds: { type: "string", default: "3" },
  },
});
const payload = new Uint8Array(Number(values.size)).fill(0x61);
let call: () => Promise<unknown>;

if (values.stack === "raw") {
  // Length-prefixed frames pipelined on one connection; replies come back in order.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(values.port) });
  conn.setNoDelay(true);
  const frame = new Uint8Array(4 + payload.length);
  new DataView(frame.buffer).setUint32(0, payload.length);
  frame.set(payload, 4);
  const waiting: Array<() => void> = [];
  (async () => {
    const buf = new Uint8Array(256 * 1024);
    let pending = 0;
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      pending += n;
      while (pending >= frame.length) {
        pending -= frame.length;
        waiting.shift()?.();
      }
    }
  })();
  let queued: Uint8Array[] = [];
  let writing = false;
  const flush = async () => {
    writing = true;
    while (queued.length > 0) {
      const batch = queued;
      queued = [];
      const bytes = new Uint8Array(batch.length * frame.length);
      batch.forEach((f, i) => bytes.set(f, i * frame.length));
      let off = 0;
      while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    }
    writing = false;
  };
  call = () =>
    new Promise<void>((resolve) => {
      waiting.push(resolve);
      queued.push(frame);
      if (!writing) queueMicrotask(flush);
    });
} else {
  const root = await loadProtoFile(defaultBackend(), new URL("./echo.proto", import.meta.url).pathname);
  const channel = new RpcChannel({
    loop: EventLoop.current(),
    providers: { "bench.Echo": [`127.0.0.1:${values.port}`] },
    timeoutMs: 30_000,
  });
  const stub = channel.stub<{ Echo: StubMethod }>(serviceDefinition(root, "bench.Echo"));
  call = () => stub.Echo({ payload });
}

for (let i = 0; i < 200; i++) await call(); // connect and warm up
const latencies: number[] = [];
const until = performance.now() + Number(values.seconds) * 1000;
const start = performance.now();
await Promise.all(Array.from({ length: Number(values.conc) }, async () => {
  while (performance.now() < until) {
    const t = performance.now();
    await call();
    latencies.push(performance.now() - t);
  }
}));
const elapsed = (performance.now() - start) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
console.log(JSON.stringify({ qps: latencies.length / elapsed, p50: pct(0.5), p99: pct(0.99) }));
Deno.exit(0);
