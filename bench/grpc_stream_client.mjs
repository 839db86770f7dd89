// grpc-js streaming client on Node for bench/stream_bench.ts, the same modes and rules as stream_client.ts:
//   --mode flood --port N --size B --seconds S         {"rate": messages/s after a 500 ms warm-up}
//   --mode pingpong --port N --size B --count C --seconds S   {"p50", "p99", "mean" (ms), "n"} after 500 round trips
import { createRequire } from "node:module";
import { parseArgs } from "node:util";
const require = createRequire(import.meta.url);
const grpc = require("./grpc/node_modules/@grpc/grpc-js");
const loader = require("./grpc/node_modules/@grpc/proto-loader");

const { values } = parseArgs({
  options: {
    mode: { type: "string", default: "flood" },
    port: { type: "string" },
    size: { type: "string", default: "64" },
    seconds: { type: "string", default: "2" },
    count: { type: "string", default: "10000" },
  },
});
const WARMUP_MS = 500;
const WARMUP_ROUND_TRIPS = 500;
const FLOOD_COUNT = 200_000_000;
const size = Number(values.size);
const seconds = Number(values.seconds);
const maxMs = WARMUP_MS + seconds * 1000 + 10_000;

const definition = grpc.loadPackageDefinition(loader.loadSync(new URL("./stream.proto", import.meta.url).pathname));
const client = new definition.bench.Stream(`127.0.0.1:${values.port}`, grpc.credentials.createInsecure());
const deadline = () => new Date(Date.now() + maxMs);

// Messages per second after the warm-up; the clock every 64 messages (as bench/_rate_meter.ts).
function flood() {
  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    let count = 0;
    let measureFrom = -1;
    let countFrom = 0;
    let rate;
    const call = client.Flood({ size, count: FLOOD_COUNT, maxMs }, { deadline: deadline() });
    const finish = (now) => {
      if (rate !== undefined) return;
      if (measureFrom < 0) {
        reject(new Error(`The stream ended during the warm-up, after ${count} messages`));
        return;
      }
      rate = (count - countFrom) / ((now - measureFrom) / 1000);
      resolve(rate);
    };
    call.on("data", () => {
      if ((++count & 63) !== 0 || rate !== undefined) return;
      const now = performance.now();
      if (measureFrom < 0) {
        if (now - startedAt >= WARMUP_MS) {
          measureFrom = now;
          countFrom = count;
        }
      } else if (now - measureFrom >= seconds * 1000) {
        finish(now);
        call.cancel();
      }
    });
    call.on("end", () => finish(performance.now()));
    call.on("error", (error) => {
      if (error.code === grpc.status.CANCELLED && rate !== undefined) return;
      reject(error);
    });
  });
}

function pingPong() {
  return new Promise((resolve, reject) => {
    const chunk = { payload: Buffer.alloc(size, 0x61) };
    const total = WARMUP_ROUND_TRIPS + Number(values.count);
    const until = performance.now() + seconds * 1000 + 2000;
    const latencies = [];
    let round = 0;
    let sentAt = 0;
    const call = client.Chat({ deadline: deadline() });
    const send = () => {
      sentAt = performance.now();
      call.write(chunk);
    };
    call.on("data", () => {
      if (round++ >= WARMUP_ROUND_TRIPS) latencies.push(performance.now() - sentAt);
      if (round < total && performance.now() < until) send();
      else call.end();
    });
    call.on("end", () => {
      latencies.sort((a, b) => a - b);
      const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
      const mean = latencies.reduce((sum, ms) => sum + ms, 0) / latencies.length;
      resolve({ p50: pct(0.5), p99: pct(0.99), mean, n: latencies.length });
    });
    call.on("error", reject);
    send();
  });
}

const result = values.mode === "pingpong" ? await pingPong() : { rate: await flood() };
console.log(JSON.stringify(result));
client.close();
process.exit(0);
