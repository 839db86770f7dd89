/**
 * Streaming server for bench/stream_bench.ts. `--stack dwt`: an RpcProvider serving bench.Stream (Flood yields one
 * pre-built Chunk over and over, Chat echoes each Chunk). `--stack raw` and `--stack raw-pb`: plain Deno sockets;
 * a client's first length-prefixed frame is a FloodRequest, answered with length-prefixed Chunk frames written as
 * fast as the socket takes them, a batch of about 64 KiB of frames per write: `raw` writes the same pre-encoded
 * batch again and again (the floor of what sockets do here), `raw-pb` encodes every Chunk with protobufjs.
 * `--sample-memory MS`: every MS milliseconds a line `MEM {"rss":…,"heapUsed":…,"produced":…,"at":…}` (bytes,
 * the Chunks the handlers yielded so far, and the wall clock in ms). Prints `READY <port>`.
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { EventLoop } from "../reactor/mod.ts";
import { defaultBackend } from "../reactor/backend/mod.ts";
import { loadProtoFile, RpcProvider, serviceDefinition } from "../rpc/mod.ts";
import { frameAll, FrameReader } from "./_length_prefixed.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: { stack: { type: "string", default: "dwt" }, "sample-memory": { type: "string", default: "0" } },
});

interface FloodRequest {
  size: number;
  count: number;
  maxMs: number;
}

interface Chunk {
  payload: Uint8Array;
}

/** Bytes of frames per raw write. */
const BATCH_BYTES = 64 * 1024;

const root = await loadProtoFile(defaultBackend(), new URL("./stream.proto", import.meta.url).pathname);
const FloodRequestType = root.lookupType("bench.FloodRequest");
const ChunkType = root.lookupType("bench.Chunk");
let produced = 0;

const sampleMs = Number(values["sample-memory"]);
if (sampleMs > 0) {
  const sample = () => {
    const { rss, heapUsed } = Deno.memoryUsage();
    console.log(`MEM ${JSON.stringify({ rss, heapUsed, produced, at: Date.now() })}`);
  };
  sample();
  setInterval(sample, sampleMs);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** The first frame a raw client sends: its FloodRequest. */
async function readFloodRequest(conn: Deno.Conn): Promise<FloodRequest | undefined> {
  const reader = new FrameReader();
  let request: FloodRequest | undefined;
  while (request === undefined) {
    const n = await conn.read(reader.space());
    if (n === null) return undefined;
    reader.added(n, (body) => request ??= FloodRequestType.toObject(FloodRequestType.decode(body)) as FloodRequest);
  }
  return request;
}

async function rawFlood(conn: Deno.Conn, encodeEach: boolean): Promise<void> {
  const request = await readFloodRequest(conn);
  if (request === undefined) return;
  const payload = new Uint8Array(request.size).fill(0x61);
  const body = ChunkType.encode({ payload }).finish();
  const perBatch = Math.max(1, Math.floor(BATCH_BYTES / (4 + body.length)));
  const fixedBatch = frameAll(Array.from({ length: perBatch }, () => body));
  const until = performance.now() + request.maxMs;
  let sent = 0;
  while (sent < request.count && performance.now() < until) {
    const n = Math.min(perBatch, request.count - sent);
    const batch = encodeEach
      ? frameAll(Array.from({ length: n }, () => ChunkType.encode({ payload }).finish()))
      : fixedBatch.subarray(0, n * (4 + body.length));
    await writeAll(conn, batch);
    sent += n;
    produced += n;
  }
}

if (values.stack === "raw" || values.stack === "raw-pb") {
  const encodeEach = values.stack === "raw-pb";
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  console.log(`READY ${(listener.addr as Deno.NetAddr).port}`);
  for await (const conn of listener) {
    conn.setNoDelay(true);
    rawFlood(conn, encodeEach).catch(() => {/* the client hung up: its run is over */}).finally(() => {
      try {
        conn.close();
      } catch { /* closed already */ }
    });
  }
} else {
  const provider = new RpcProvider({ loop: EventLoop.current() });
  provider.registerService(serviceDefinition(root, "bench.Stream"), {
    // Bounded in count and time (checked every 256 Chunks): a caller that vanished without a cancel stops it too.
    Flood: async function* (request: FloodRequest) {
      const chunk: Chunk = { payload: new Uint8Array(request.size).fill(0x61) };
      const until = performance.now() + request.maxMs;
      for (let n = 0; n < request.count; n++) {
        if ((n & 255) === 0 && performance.now() > until) return;
        produced++;
        yield chunk;
      }
    },
    Chat: async function* (requests: AsyncIterable<Chunk>) {
      for await (const chunk of requests) yield chunk;
    },
  });
  await provider.start();
  console.log(`READY ${provider.address.port}`);
  await EventLoop.current().loop();
}
