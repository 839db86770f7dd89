/**
 * Ping-pong throughput (muduo's classic test), side by side in one run: the reactor (TcpServer + TcpClient)
 * against plain Deno.listen/Deno.connect code doing the same work. Server and client are separate processes,
 * as in muduo, so each gets a core. Each point runs `--rounds` times, alternating the stacks so drifting machine
 * load hits both alike; prints the median MiB/s of each, the spread of the rounds and the reactor/raw ratio of
 * the medians (`--json`: one JSON object instead, for bench/bench_all.ts).
 *
 *   deno task bench [--seconds 3] [--block 16384] [--conns 1,64] [--rounds 3] [--json]
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { denoRun, spawnReady } from "../reactor/testdata/spawn_ready.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "3" },
    block: { type: "string", default: "16384" },
    conns: { type: "string", default: "1,64" },
    rounds: { type: "string", default: "3" },
    json: { type: "boolean", default: false },
  },
});

const here = new URL(".", import.meta.url);
const deno = Deno.execPath();

interface Result {
  stack: string;
  conns: number;
  block: number;
  bytesRead: number;
  elapsedMs: number;
}

async function runPoint(stack: string, conns: number): Promise<Result> {
  const server = await spawnReady(denoRun(new URL("pingpong_server.ts", here).pathname, "--stack", stack));
  const port = Number(server.ready);
  const client = await new Deno.Command(deno, {
    args: [
      "run",
      "-A",
      new URL("pingpong_client.ts", here).pathname,
      "--stack",
      stack,
      "--port",
      String(port),
      "--conns",
      String(conns),
      "--block",
      values.block,
      "--seconds",
      values.seconds,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  await server.stop();
  const line = new TextDecoder().decode(client.stdout).trim().split("\n").pop()!;
  return JSON.parse(line) as Result;
}

const mibps = (r: Result) => r.bytesRead / (1024 * 1024) / (r.elapsedMs / 1000);
const median = (values: number[]) => values.toSorted((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;
const points: Array<{ conns: number; raw: number[]; reactor: number[] }> = [];
for (const conns of values.conns.split(",").map(Number)) {
  const point = { conns, raw: [] as number[], reactor: [] as number[] };
  // Alternate the stacks so drift in machine load hits both alike.
  for (let round = 0; round < Number(values.rounds); round++) {
    point.raw.push(mibps(await runPoint("raw", conns)));
    point.reactor.push(mibps(await runPoint("reactor", conns)));
  }
  points.push(point);
}
if (values.json) {
  console.log(
    JSON.stringify({ bench: "pingpong", block: Number(values.block), seconds: Number(values.seconds), points }),
  );
  Deno.exit(0);
}
const spread = (values: number[]) => `${Math.min(...values).toFixed(0)}-${Math.max(...values).toFixed(0)}`;
console.log(
  `ping-pong, block ${values.block} B, ${values.seconds} s per point, median of ${values.rounds} rounds (spread: ` +
    `lowest-highest)`,
);
console.log("| conns | raw MiB/s | raw spread | reactor MiB/s | reactor spread | ratio |");
console.log("| ----: | --------: | ---------: | ------------: | -------------: | ----: |");
for (const { conns, raw, reactor } of points) {
  console.log(
    `| ${conns} | ${median(raw).toFixed(0)} | ${spread(raw)} | ${median(reactor).toFixed(0)} | ${spread(reactor)} | ${
      (median(reactor) / median(raw)).toFixed(2)
    } |`,
  );
}
