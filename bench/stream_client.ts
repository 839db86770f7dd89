/**
 * Streaming client for bench/stream_bench.ts; prints one JSON line.
 *
 *   --mode flood --stack dwt|raw|raw-pb --port N --size B --seconds S   server streaming: {"rate": messages/s}
 *   --mode pingpong --port N --size B --count C --seconds S   dwt bidi echo: {"p50", "p99", "mean" (ms), "n"}
 *   --mode slow --port N --size B --seconds S --interval-ms I   dwt, one message per I ms: {"consumed"}
 *
 * Floods ask for at most FLOOD_COUNT messages for at most the run's length plus a margin, and end the stream (a
 * `break`, which cancels it, or closing the socket) once measured. `--window-bytes W` sets the dwt caller's stream
 * window (default 65536), for experiments.
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { EventLoop } from "../reactor/mod.ts";
import { defaultBackend } from "../reactor/backend/mod.ts";
import {
  type BidiStreamingStubMethod,
  loadProtoFile,
  RpcChannel,
  type ServerStreamingStubMethod,
  serviceDefinition,
} from "../rpc/mod.ts";
import { frameAll, FrameReader } from "./_length_prefixed.ts";
import { RateMeter } from "./_rate_meter.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: {
    mode: { type: "string", default: "flood" },
    stack: { type: "string", default: "dwt" },
    port: { type: "string" },
    size: { type: "string", default: "64" },
    seconds: { type: "string", default: "2" },
    count: { type: "string", default: "10000" },
    "interval-ms": { type: "string", default: "10" },
    "window-bytes": { type: "string", default: "65536" },
  },
});

/** Not measured: connections, JIT and buffers settle first. */
const WARMUP_MS = 500;
const WARMUP_ROUND_TRIPS = 500;
/** The most messages a flood asks for (well above what any stack sends in a run). */
const FLOOD_COUNT = 200_000_000;

interface Chunk {
  payload: Uint8Array;
}

interface FloodRequest {
  size: number;
  count: number;
  maxMs: number;
}

interface StreamStub {
  Flood: ServerStreamingStubMethod<FloodRequest, Chunk>;
  Chat: BidiStreamingStubMethod<Chunk, Chunk>;
}

const size = Number(values.size);
const seconds = Number(values.seconds);
const port = Number(values.port);
/** The longest a run may take, on both sides. */
const maxMs = WARMUP_MS + seconds * 1000 + 10_000;
const root = await loadProtoFile(defaultBackend(), new URL("./stream.proto", import.meta.url).pathname);

function dwtStub(): StreamStub {
  const channel = new RpcChannel({
    loop: EventLoop.current(),
    providers: { "bench.Stream": [`127.0.0.1:${port}`] },
    timeoutMs: maxMs,
    streamWindowBytes: Number(values["window-bytes"]),
  });
  return channel.stub<StreamStub>(serviceDefinition(root, "bench.Stream"));
}

async function dwtFlood(): Promise<number> {
  const meter = new RateMeter(WARMUP_MS, seconds);
  for await (const _ of dwtStub().Flood({ size, count: FLOOD_COUNT, maxMs })) {
    if (meter.add(1)) break;
  }
  return meter.rate();
}

async function rawFlood(decodeEach: boolean): Promise<number> {
  const FloodRequestType = root.lookupType("bench.FloodRequest");
  const ChunkType = root.lookupType("bench.Chunk");
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const request = FloodRequestType.encode({ size, count: FLOOD_COUNT, maxMs }).finish();
  const framed = frameAll([request]);
  for (let off = 0; off < framed.length;) off += await conn.write(framed.subarray(off));
  const meter = new RateMeter(WARMUP_MS, seconds);
  const reader = new FrameReader();
  let frames = 0;
  const onFrame = decodeEach
    ? (body: Uint8Array) => {
      ChunkType.decode(body);
      frames++;
    }
    : () => frames++;
  try {
    for (;;) {
      const n = await conn.read(reader.space());
      if (n === null) break;
      frames = 0;
      reader.added(n, onFrame);
      if (meter.add(frames)) break;
    }
  } finally {
    conn.close();
  }
  return meter.rate();
}

/** One message out, wait for its echo, repeat: `count` timed round trips (or fewer, when `seconds` run out). */
async function dwtPingPong(): Promise<{ p50: number; p99: number; mean: number; n: number }> {
  const chunk: Chunk = { payload: new Uint8Array(size).fill(0x61) };
  const total = WARMUP_ROUND_TRIPS + Number(values.count);
  const until = performance.now() + seconds * 1000 + 2000;
  const latencies: number[] = [];
  let echoed = Promise.withResolvers<void>();
  let sentAt = 0;
  async function* pings(): AsyncGenerator<Chunk> {
    for (let i = 0; i < total && performance.now() < until; i++) {
      echoed = Promise.withResolvers<void>();
      sentAt = performance.now();
      yield chunk;
      await echoed.promise;
    }
  }
  let round = 0;
  for await (const _ of dwtStub().Chat(pings())) {
    if (round++ >= WARMUP_ROUND_TRIPS) latencies.push(performance.now() - sentAt);
    echoed.resolve();
  }
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!;
  const mean = latencies.reduce((sum, ms) => sum + ms, 0) / latencies.length;
  return { p50: pct(0.5), p99: pct(0.99), mean, n: latencies.length };
}

/** Read one message per `interval-ms` for `seconds`, then cancel. */
async function dwtSlow(): Promise<{ consumed: number }> {
  const intervalMs = Number(values["interval-ms"]);
  const until = performance.now() + seconds * 1000;
  let consumed = 0;
  for await (const _ of dwtStub().Flood({ size, count: FLOOD_COUNT, maxMs })) {
    consumed++;
    if (performance.now() >= until) break;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return { consumed };
}

let result: unknown;
if (values.mode === "pingpong") result = await dwtPingPong();
else if (values.mode === "slow") result = await dwtSlow();
else if (values.stack === "dwt") result = { rate: await dwtFlood() };
else result = { rate: await rawFlood(values.stack === "raw-pb") };
console.log(JSON.stringify(result));
Deno.exit(0);
