/**
 * Echo client for bench/rpc_echo.ts and bench/rpc_threads.ts: `--stack dwt|raw --port N --conc C --size B
 * --seconds S [--connections K]`; C calls in flight over K connections (dwt; raw uses one); prints one JSON line
 * with QPS, p50 and p99 (ms).
 */

import { parseArgs } from "node:util";
import { EventLoop } from "../reactor/mod.ts";
import { loadProtoFile, RpcChannel, serviceDefinition, type StubMethod } from "../rpc/mod.ts";
import { defaultBackend } from "../reactor/backend/mod.ts";
import { encodeRpcFrame } from "../rpc/_rpc_codec.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    stack: { type: "string", default: "dwt" },
    port: { type: "string" },
    conc: { type: "string", default: "1" },
    size: { type: "string", default: "64" },
    seconds: { type: "string", default: "3" },
    connections: { type: "string", default: "1" },
  },
});
const payload = new Uint8Array(Number(values.size)).fill(0x61);
let call: () => Promise<unknown>;

/** Length-prefixed `frame`s pipelined on one connection, replies counted by their headers (in order). */
async function pipelined(frame: Uint8Array): Promise<() => Promise<void>> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(values.port) });
  conn.setNoDelay(true);
  const waiting: Array<() => void> = [];
  (async () => {
    // Replies may differ in size from requests (RPC responses): walk their length headers.
    const buf = new Uint8Array(256 * 1024);
    const view = new DataView(buf.buffer);
    let filled = 0;
    for (;;) {
      const n = await conn.read(buf.subarray(filled)).catch(() => null);
      if (n === null) break;
      filled += n;
      let offset = 0;
      while (filled - offset >= 4 && filled - offset >= 4 + view.getUint32(offset)) {
        offset += 4 + view.getUint32(offset);
        waiting.shift()?.();
      }
      buf.copyWithin(0, offset, filled);
      filled -= offset;
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
      batch.forEach((queuedFrame, i) => bytes.set(queuedFrame, i * frame.length));
      let off = 0;
      while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    }
    writing = false;
  };
  return () =>
    new Promise<void>((resolve) => {
      waiting.push(resolve);
      queued.push(frame);
      if (!writing) queueMicrotask(flush);
    });
}

if (values.stack === "raw") {
  const frame = new Uint8Array(4 + payload.length);
  new DataView(frame.buffer).setUint32(0, payload.length);
  frame.set(payload, 4);
  call = await pipelined(frame);
} else if (values.stack === "load") {
  // A load generator for the provider (like wrk for HTTP): pre-encoded RPC request frames pipelined over K
  // connections, replies counted, not decoded. It costs the client little, so the server's capacity shows.
  const root = await loadProtoFile(defaultBackend(), new URL("./echo.proto", import.meta.url).pathname);
  const request = root.lookupType("bench.EchoMessage").encode({ payload }).finish();
  const body = encodeRpcFrame({ request: { callId: 1, service: "bench.Echo", method: "Echo", payload: request } });
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  const calls = await Promise.all(Array.from({ length: Number(values.connections) }, () => pipelined(frame)));
  let next = 0;
  call = () => calls[next++ % calls.length]!();
} else {
  const root = await loadProtoFile(defaultBackend(), new URL("./echo.proto", import.meta.url).pathname);
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
