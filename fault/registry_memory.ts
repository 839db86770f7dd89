/**
 * The registry's memory bound (`deno task registry-memory [--seconds 60] [--limit-mib 300]`): one address churns
 * connections (open, maybe connect a token-less session, close), holds as many token-less sessions as it is let,
 * and parks partial frames (a 4 MiB length, then part of the body, then silence), all at once, for the whole run,
 * against a real registry process on its default limits. Meanwhile an honest client keeps reading and writing.
 *
 * Passes when the registry's RSS stays under the limit (400 MiB by default, the figure README states), it is
 * still serving at the end, and the honest client saw no error. Prints the RSS curve, the honest client's p99
 * and the attack's counts, and a last line `N passed, M failed`.
 *
 * @module
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { framed, QUIET } from "./_harness.ts";
import { denoRun, spawnReady } from "../reactor/testdata/spawn_ready.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import { getLogger, LogLevel } from "../reactor/logger.ts";
import { encodeClientFrame } from "../registry/_codec.ts";
import { RegistryClient } from "../registry/client/registry_client.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: { seconds: { type: "string", default: "60" }, "limit-mib": { type: "string", default: "400" } },
});
getLogger().level = LogLevel.FATAL;
const loop = EventLoop.current();
const seconds = Number(values.seconds);
const limitMiB = Number(values["limit-mib"]);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function rssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

const dir = await Deno.makeTempDir({ prefix: "dwt-memory-" });
const config = `${dir}/registry.json`;
await Deno.writeTextFile(
  config,
  JSON.stringify({ ip: "127.0.0.1", port: 0, dataDir: `${dir}/data` }),
);
const registry = await spawnReady(
  denoRun(new URL("../registry/main.ts", import.meta.url).pathname, "--config", config),
  QUIET,
);
const [host, port] = registry.ready.split(":") as [string, string];
const address = { hostname: host, port: Number(port) };
const connectFrame = framed(encodeClientFrame({ xid: 1, connect: { sessionId: "0" } }));
const deadline = performance.now() + seconds * 1000;
const counts = { churned: 0, sessionsHeld: 0, partialFramesParked: 0, refused: 0 };

const honest = await RegistryClient.connect(registry.ready, { loop, requestTimeoutMs: 5000 });
await honest.create("/honest", "0");
const latencies: number[] = [];
let honestErrors = 0;
const honestLoop = (async () => {
  for (let i = 0; performance.now() < deadline; i++) {
    const start = performance.now();
    try {
      await honest.set("/honest", String(i));
      await honest.get("/honest");
      latencies.push(performance.now() - start);
    } catch (error) {
      honestErrors++;
      if (honestErrors <= 3) console.log(`honest client error: ${(error as Error).message}`);
    }
    await sleep(20);
  }
})();

async function tryConnect(): Promise<Deno.TcpConn | undefined> {
  try {
    return await Deno.connect(address);
  } catch {
    counts.refused++;
    return undefined;
  }
}

// Connect and close, some with a session: the server must release everything a closed connection held.
const churn = async () => {
  while (performance.now() < deadline) {
    const conn = await tryConnect();
    if (conn === undefined) {
      await sleep(10);
      continue;
    }
    try {
      if (counts.churned % 2 === 0) await conn.write(connectFrame);
    } catch {
      // Refused by a limit.
    }
    conn.close();
    counts.churned++;
  }
};

// Hold sessions (and their connections) as long as the server lets us, and come back when it closes them.
const holders = async () => {
  const held: Deno.TcpConn[] = [];
  while (performance.now() < deadline) {
    if (held.length < 600) {
      const conn = await tryConnect();
      if (conn !== undefined) {
        held.push(conn);
        conn.write(connectFrame).catch(() => {});
        // Drain whatever the server answers; a closed connection just ends this.
        (async () => {
          const buffer = new Uint8Array(4096);
          try {
            while ((await conn.read(buffer)) !== null) { /* drain */ }
          } catch {
            // Reset.
          }
          const index = held.indexOf(conn);
          if (index >= 0) held.splice(index, 1);
          try {
            conn.close();
          } catch {
            // Closed at the end of the run.
          }
        })();
        counts.sessionsHeld = Math.max(counts.sessionsHeld, held.length);
        continue;
      }
    }
    await sleep(20);
  }
  for (const conn of held.splice(0)) {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
};

// Park partial frames: a 4 MiB length and 1 MiB of body, then silence until the server gives up on them.
const parkers = async () => {
  const parked = new Set<Deno.TcpConn>();
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, 4 * 1024 * 1024 - 16);
  const body = new Uint8Array(1024 * 1024);
  while (performance.now() < deadline) {
    if (parked.size < 250) {
      const conn = await tryConnect();
      if (conn !== undefined) {
        parked.add(conn);
        (async () => {
          try {
            await conn.write(connectFrame);
            await conn.write(header);
            for (let sent = 0; sent < body.length;) sent += await conn.write(body.subarray(sent));
            counts.partialFramesParked++;
            const buffer = new Uint8Array(4096);
            while ((await conn.read(buffer)) !== null) { /* wait for the close */ }
          } catch {
            // Closed by the server: the point.
          }
          parked.delete(conn);
          try {
            conn.close();
          } catch {
            // Already closed.
          }
        })();
        continue;
      }
    }
    await sleep(20);
  }
  for (const conn of parked) {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
};

const rss: number[] = [];
const sampler = (async () => {
  while (performance.now() < deadline) {
    rss.push(await rssMiB(registry.pid));
    await sleep(1000);
  }
})();

const parts = (Deno.env.get("ATTACK") ?? "churn,holders,parkers").split(",");
await Promise.all([
  ...(parts.includes("churn") ? [churn(), churn()] : []),
  ...(parts.includes("holders") ? [holders()] : []),
  ...(parts.includes("parkers") ? [parkers()] : []),
  honestLoop,
  sampler,
]);
await sleep(500);
const alive = registry.running;
let serving = false;
try {
  await honest.set("/honest", "end");
  serving = true;
} catch {
  serving = false;
}
await honest.close();
await registry.stop();
await Deno.remove(dir, { recursive: true });

latencies.sort((a, b) => a - b);
const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? NaN;
const maxRss = Math.max(...rss);
console.log(`RSS MiB per second: ${rss.map((value) => value.toFixed(0)).join(" ")}`);
console.log(
  `attack: ${counts.churned} connect/close, up to ${counts.sessionsHeld} held sessions, ` +
    `${counts.partialFramesParked} partial frames parked, ${counts.refused} connects refused`,
);
console.log(
  `honest client: ${latencies.length} set+get rounds, p99 ${p99.toFixed(1)} ms, ${honestErrors} errors; ` +
    `registry max RSS ${maxRss.toFixed(0)} MiB (limit ${limitMiB})`,
);
const checks = [
  { ok: maxRss < limitMiB, what: `max RSS ${maxRss.toFixed(0)} MiB < ${limitMiB} MiB` },
  { ok: alive && serving, what: "the registry still serves" },
  { ok: honestErrors === 0, what: `the honest client saw no error (${honestErrors})` },
];
for (const check of checks) console.log(`${check.ok ? "ok" : "FAILED"}: ${check.what}`);
const failed = checks.filter((check) => !check.ok).length;
console.log(`${checks.length - failed} passed, ${failed} failed`);
Deno.exit(failed === 0 ? 0 : 1);
