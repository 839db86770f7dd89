/**
 * Ping-pong throughput (muduo's classic test), side by side in one run: the reactor (TcpServer + TcpClient)
 * against plain Deno.listen/Deno.connect code doing the same work. Server and client are separate processes,
 * as in muduo, so each gets a core. Prints MiB/s per point and the reactor/raw ratio.
 *
 *   deno task bench [--seconds 3] [--block 16384] [--conns 1,64]
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { denoRun, spawnReady } from "../reactor/testdata/spawn_ready.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "3" },
    block: { type: "string", default: "16384" },
    conns: { type: "string", default: "1,64" },
    rounds: { type: "string", default: "2" },
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
const rows: string[] = [];
console.log(`ping-pong, block ${values.block} B, ${values.seconds} s per point, best of ${values.rounds} rounds`);
for (const conns of values.conns.split(",").map(Number)) {
  let raw = 0;
  let reactor = 0;
  // Alternate the stacks so drift in machine load hits both alike; keep the best round of each.
  for (let round = 0; round < Number(values.rounds); round++) {
    raw = Math.max(raw, mibps(await runPoint("raw", conns)));
    reactor = Math.max(reactor, mibps(await runPoint("reactor", conns)));
  }
  rows.push(
    `| ${String(conns).padStart(5)} | ${raw.toFixed(0).padStart(9)} | ${reactor.toFixed(0).padStart(11)} | ${
      (reactor / raw).toFixed(2).padStart(5)
    } |`,
  );
}
console.log("| conns | raw MiB/s | reactor MiB/s | ratio |");
console.log("| ----: | --------: | ----------: | ----: |");
for (const row of rows) console.log(row);
