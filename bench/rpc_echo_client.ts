/**
 * Echo client for bench/rpc_echo.ts and bench/rpc_threads.ts: `--stack dwt|raw|bytes|load --port N --conc C
 * --size B --seconds S [--connections K]`; C calls in flight over K connections (dwt and load; raw and bytes use
 * one); prints one JSON line with QPS, p50 and p99 (ms).
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { EventLoop } from "../reactor/mod.ts";
import { loadProtoFile, RpcChannel, serviceDefinition, type StubMethod } from "../rpc/mod.ts";
import { defaultBackend } from "../reactor/backend/mod.ts";
import { encodeRpcFrame } from "../rpc/_rpc_encoder.ts";
import { frameAll, FrameReader } from "./_length_prefixed.ts";

const { values } = parseArgsOrExit({
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

/**
 * Length-prefixed frames pipelined on one connection: each call queues `encode()`'s frame body and resolves with
 * the body of the reply that comes back in its turn (replies arrive in order). Everything queued in one tick goes
 * out in one write, as everything read in one read is answered at once.
 */
async function pipelined(encode: () => Uint8Array): Promise<() => Promise<Uint8Array>> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(values.port) });
  conn.setNoDelay(true);
  const waiting: Array<(body: Uint8Array) => void> = [];
  (async () => {
    // Replies may differ in size from requests (RPC responses): walk their length headers.
    const reader = new FrameReader();
    for (;;) {
      const n = await conn.read(reader.space()).catch(() => null);
      if (n === null) break;
      reader.added(n, (body) => waiting.shift()?.(body));
    }
  })();
  let queued: Uint8Array[] = [];
  let writing = false;
  const flush = async () => {
    writing = true;
    while (queued.length > 0) {
      const batch = queued;
      queued = [];
      const bytes = frameAll(batch);
      let off = 0;
      while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    }
    writing = false;
  };
  return () =>
    new Promise<Uint8Array>((resolve) => {
      waiting.push(resolve);
      queued.push(encode());
      if (!writing) queueMicrotask(flush);
    });
}

const root = await loadProtoFile(defaultBackend(), new URL("./echo.proto", import.meta.url).pathname);
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
