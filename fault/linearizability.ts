/**
 * The registry's linearizability test under faults (`deno task linearizability [--seconds 30] [--clients 5]
 * [--keys 4] [--seed N] [--broken] [--expect-violation] [--strict-expiry] [--history FILE]`): clients, each its own session, run random operations
 * on a handful of keys of a real registry process (create, set and delete with and without a version, get, exists,
 * children, ephemeral and sequential nodes) through a TCP/UDP proxy, while faults are injected: kill -9 and
 * restart on the same data directory, SIGSTOP/SIGCONT longer than the session timeout, a full disk (a tmpfs, when
 * run as root), connections cut, partitions longer than the session timeout, and clients (in processes of their own,
 * each holding an ephemeral sequential node) killed with kill -9. The history is recorded
 * (fault/_history.ts) and checked (fault/_linearizability_checker.ts, whose doc says what is checked and how).
 *
 * At the end the faults stop, the server is killed and restarted once more (so every operation left without an
 * answer is bounded), the clients close, every session is given time to expire, and a fresh client reads
 * everything: those reads close the history.
 *
 * `--broken` starts the registry with `DWT_REGISTRY_UNSAFE_EARLY_FAILURES=1` (failed writes answered before the
 * writes they lost to): the check must fail. With `--expect-violation` a violation found is the pass (CI's proof
 * that the checker catches a broken pipeline).
 *
 * Prints the faults, the counts (ops checked, indeterminate, left out), each key's outcome, the first windows
 * where no order exists, and a last line `N passed, M failed`.
 *
 * @module
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { QUIET, seededRandom } from "./_harness.ts";
import { HistoryRecorder, NOT_SENT, type OpInput, type OpResult } from "./_history.ts";
import { checkHistory } from "./_linearizability_checker.ts";
import { denoRun, type ReadyProcess, spawnReady } from "../reactor/testdata/spawn_ready.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import { InetAddress } from "../reactor/inet_address.ts";
import { getLogger, LogLevel } from "../reactor/logger.ts";
import { RegistryClient } from "../registry/client/registry_client.ts";
import { PartitionProxy } from "../registry/testdata/partition_proxy.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "30" },
    clients: { type: "string", default: "5" },
    keys: { type: "string", default: "4" },
    seed: { type: "string", default: String(Date.now() % 1_000_000) },
    broken: { type: "boolean", default: false },
    "expect-violation": { type: "boolean", default: false },
    "strict-expiry": { type: "boolean", default: false },
    history: { type: "string" },
  },
});
getLogger().level = LogLevel.FATAL;
const loop = EventLoop.current();
const here = (path: string) => new URL(path, import.meta.url).pathname;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const runStartedMs = performance.now();

const seconds = Number(values.seconds);
const clientCount = Number(values.clients);
const keyCount = Number(values.keys);
const broken = values.broken || Deno.env.get("DWT_REGISTRY_UNSAFE_EARLY_FAILURES") === "1";
const expectViolation = values["expect-violation"];

// Deterministic, so a run can be repeated from its seed.
const random = seededRandom(Number(values.seed));
const below = (n: number) => Math.floor(random() * n);
const pick = <T>(items: readonly T[]): T => items[below(items.length)]!;

// Session timeout: heartbeatTimeout x heartbeatMaxCount.
const HEARTBEAT_TIMEOUT_MS = 200;
const HEARTBEAT_MAX_COUNT = 3;
const SESSION_TIMEOUT_MS = HEARTBEAT_TIMEOUT_MS * HEARTBEAT_MAX_COUNT;

// --- the registry process ---

const root = await Deno.makeTempDir({ prefix: "dwt-linearizability-" });
const dataDir = `${root}/data`;
await Deno.mkdir(dataDir);
const tmpfs = Deno.uid() === 0 &&
  (await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=32m", "tmpfs", dataDir], stderr: "null" })
    .output()).success;
const heartbeatPort = (() => {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (socket.addr as Deno.NetAddr).port;
  socket.close();
  return port;
})();
const config = `${root}/registry.json`;
await Deno.writeTextFile(
  config,
  JSON.stringify({
    ip: "127.0.0.1",
    port: 0,
    heartbeatPort,
    dataDir,
    heartbeatTimeout: HEARTBEAT_TIMEOUT_MS,
    heartbeatMaxCount: HEARTBEAT_MAX_COUNT,
    snapshotEveryTxns: 2000,
  }),
);

async function startRegistry(): Promise<ReadyProcess> {
  const env = { ...QUIET.env, ...(broken ? { DWT_REGISTRY_UNSAFE_EARLY_FAILURES: "1" } : {}) };
  // stderr kept (errors only): a start refused after a crash is a finding, and says why.
  return await spawnReady(denoRun(here("../registry/main.ts"), "--config", config), {
    ...QUIET,
    env,
    stderr: "capture",
  });
}

console.log(
  `linearizability: ${clientCount} clients, ${keyCount} keys, ${seconds} s, seed ${values.seed}, session timeout ` +
    `${SESSION_TIMEOUT_MS} ms, data on ${tmpfs ? "a 32 MiB tmpfs" : "disk (no full-disk faults: not root)"}` +
    (broken ? "; BROKEN pipeline (DWT_REGISTRY_UNSAFE_EARLY_FAILURES=1): failed writes answered early" : ""),
);

let server = await startRegistry();
const udpTarget = new InetAddress("127.0.0.1", heartbeatPort);
const proxy = await PartitionProxy.start(loop, InetAddress.parse(server.ready), udpTarget);
const recorder = new HistoryRecorder();

// --- the clients ---

const keys = Array.from({ length: keyCount }, (_, i) => `/k${i}`);
const deadline = performance.now() + seconds * 1000;
let stopWorkers = false;

interface Worker {
  readonly id: number;
  readonly client: RegistryClient;
  /** The last version seen per path: conditional writes aim at it, and so sometimes win. */
  readonly versions: Map<string, number>;
  /** Sequential names seen per key, the latest few. */
  readonly sequentials: Map<string, string[]>;
  counter: number;
}

async function connectWorker(id: number): Promise<Worker> {
  const client = await RegistryClient.connect(proxy.tcpAddress, {
    loop,
    heartbeatAddress: proxy.udpAddress,
    requestTimeoutMs: 1000,
    reconnectDelayMs: 50,
    connectTimeoutMs: 10_000,
  });
  recorder.sessionOpened(id, client.sessionId);
  client.onSessionEvent((event) => {
    if (event.type === "connected" && !event.resumed) recorder.sessionOpened(id, event.sessionId);
    if (event.type === "expired") recorder.sessionExpired(event.sessionId);
  });
  return { id, client, versions: new Map(), sequentials: new Map(), counter: 0 };
}

function nextOp(worker: Worker): OpInput {
  const key = pick(keys);
  const data = () => `${worker.id}-${worker.counter++}`;
  const version = (path: string) => random() < 0.7 ? (worker.versions.get(path) ?? below(3)) : below(4);
  const sequentials = worker.sequentials.get(key) ?? [];
  const child = (sequentialShare: number) =>
    sequentials.length > 0 && random() < sequentialShare
      ? `${key}/${pick(sequentials)}`
      : `${key}/${pick(["c0", "c1", "e0", "e1"])}`;
  const roll = random();
  if (roll < 0.07) return { kind: "create", path: key, data: `c${data()}`, ephemeral: random() < 0.2 };
  if (roll < 0.19) {
    return random() < 0.5
      ? { kind: "set", path: key, data: `w${data()}` }
      : { kind: "set", path: key, data: `w${data()}`, version: version(key) };
  }
  if (roll < 0.23) {
    return random() < 0.6 ? { kind: "delete", path: key } : { kind: "delete", path: key, version: version(key) };
  }
  if (roll < 0.35) return { kind: "get", path: key };
  if (roll < 0.40) return { kind: "exists", path: key };
  if (roll < 0.48) return { kind: "children", path: key };
  if (roll < 0.56) {
    const ephemeral = random() < 0.4;
    return { kind: "create", path: `${key}/${ephemeral ? "e" : "c"}${below(2)}`, data: `c${data()}`, ephemeral };
  }
  if (roll < 0.60) {
    const ephemeral = random() < 0.3;
    return {
      kind: "create",
      path: `${key}/${ephemeral ? "q-" : "s-"}`,
      data: `c${data()}`,
      ephemeral,
      sequential: true,
    };
  }
  if (roll < 0.69) {
    const path = child(0.3);
    return random() < 0.5
      ? { kind: "set", path, data: `w${data()}` }
      : { kind: "set", path, data: `w${data()}`, version: version(path) };
  }
  if (roll < 0.80) {
    const path = child(0.7);
    return random() < 0.7 ? { kind: "delete", path } : { kind: "delete", path, version: version(path) };
  }
  if (roll < 0.90) return { kind: "get", path: child(0.4) };
  return { kind: "exists", path: child(0.4) };
}

function learn(worker: Worker, input: OpInput, result: OpResult): void {
  const [, key, name] = input.path.split("/");
  const sequential = (n: string | undefined) => n !== undefined && /^[sq]-\d{10}$/.test(n);
  const known = worker.sequentials.get(`/${key}`) ?? [];
  if (!result.ok) {
    if (result.code === "NO_NODE" && sequential(name)) {
      worker.sequentials.set(
        `/${key}`,
        known.filter((n) => n !== name),
      );
    }
    return;
  }
  if (result.stat) worker.versions.set(input.path, result.stat.version);
  // A few sequential names per key, the oldest known, so deletes keep their number down.
  if (input.kind === "delete" && sequential(name)) worker.sequentials.set(`/${key}`, known.filter((n) => n !== name));
  if (input.kind === "create" && input.sequential && result.path !== undefined && known.length < 8) {
    worker.sequentials.set(`/${key}`, [...known, result.path.split("/")[2]!]);
  }
  if (input.kind === "children") {
    worker.sequentials.set(input.path, (result.children ?? []).filter(sequential).slice(0, 8));
  }
}

async function work(worker: Worker): Promise<void> {
  while (!stopWorkers && performance.now() < deadline) {
    const input = nextOp(worker);
    const result = await recorder.call(worker.id, worker.client, input);
    if (result === undefined) {
      await sleep(20 + below(30)); // no answer: let the client find its footing
    } else if (!result.ok && result.code === NOT_SENT) {
      while (!worker.client.connected && !stopWorkers && performance.now() < deadline) await sleep(10);
    } else {
      learn(worker, input, result);
      // What a lock or a compare-and-set loop does after losing: read what it lost to, at once.
      if (!result.ok && input.kind !== "get" && random() < 0.7) {
        const reread: OpInput = { kind: random() < 0.6 ? "get" : "exists", path: input.path };
        const answer = await recorder.call(worker.id, worker.client, reread);
        if (answer !== undefined) learn(worker, reread, answer);
      }
    }
  }
}

// --- the faults ---

const faults = new Map<string, number>();
const injected = (what: string) => faults.set(what, (faults.get(what) ?? 0) + 1);
let lastRestartMs = performance.now();

async function killAndRestart(): Promise<void> {
  await server.stop("SIGKILL");
  const diedMs = recorder.now();
  recorder.serverDied(diedMs);
  await sleep(50 + below(200));
  // Anything still in flight went to the dead process (the proxy points at nothing yet).
  recorder.serverDied(diedMs);
  server = await startRegistry();
  proxy.retarget(InetAddress.parse(server.ready), udpTarget);
  lastRestartMs = performance.now();
}

async function fillDisk(holdMs: number): Promise<void> {
  const filler = await Deno.open(`${dataDir}/filler`, { write: true, create: true });
  try {
    for (;;) await filler.write(new Uint8Array(256 * 1024));
  } catch {
    // Full.
  } finally {
    filler.close();
  }
  await sleep(holdMs);
  await Deno.remove(`${dataDir}/filler`);
}

/**
 * A client in a process of its own creates an ephemeral sequential node and is killed with kill -9: its session
 * expires and the node must go. Its create is recorded with an interval that holds the real one.
 */
let nextProcessClient = clientCount + 1; // clientCount is the final reader
async function killClient(): Promise<void> {
  const id = nextProcessClient++;
  const input: OpInput = {
    kind: "create",
    path: `${pick(keys)}/x-`,
    data: `x${id}`,
    ephemeral: true,
    sequential: true,
  };
  const invokeMs = recorder.now();
  let child: ReadyProcess | undefined;
  let stdout: string;
  try {
    child = await spawnReady(
      denoRun(here("_linearizability_client.ts"), `${proxy.tcpAddress}`, `${proxy.udpAddress}`, input.path, input.data),
      { ...QUIET, timeoutMs: 20_000 },
    );
    stdout = child.stdout();
  } catch (error) {
    stdout = String((error as Error).message);
  }
  const session = /^SESSION ([0-9a-f]+)$/m.exec(stdout)?.[1];
  if (session !== undefined) {
    const sessionId = BigInt(`0x${session}`);
    recorder.sessionOpened(id, sessionId, invokeMs);
    const ready = child?.ready;
    if (ready === undefined || ready === "UNKNOWN") {
      recorder.record(id, sessionId, input, invokeMs, Infinity);
    } else if (ready.startsWith("FAILED:")) {
      recorder.record(id, sessionId, input, invokeMs, recorder.now(), { ok: false, code: ready.slice(7) });
    } else {
      recorder.record(id, sessionId, input, invokeMs, recorder.now(), { ok: true, path: ready });
    }
  }
  await sleep(100 + below(500));
  await child?.stop("SIGKILL");
}

async function injectFaults(): Promise<void> {
  const kinds = [
    "kill -9 and restart",
    "pause",
    "connections cut",
    "partition",
    "client killed",
    ...(tmpfs ? ["disk full"] : []),
  ];
  while (performance.now() < deadline - 1500) {
    await sleep(700 + below(1000));
    if (performance.now() >= deadline - 1500) break;
    const kind = pick(kinds);
    injected(kind);
    switch (kind) {
      case "kill -9 and restart":
        await killAndRestart();
        break;
      case "pause": {
        // Longer than the session timeout: sessions expire once the server runs again.
        Deno.kill(server.pid, "SIGSTOP");
        await sleep(SESSION_TIMEOUT_MS * 2 + below(600));
        Deno.kill(server.pid, "SIGCONT");
        break;
      }
      case "connections cut":
        await proxy.dropConnections();
        break;
      case "partition":
        // TCP held (as TCP would), UDP dropped: longer than the session timeout, so sessions expire.
        proxy.partition();
        await sleep(SESSION_TIMEOUT_MS * 2 + below(600));
        proxy.heal();
        break;
      case "disk full":
        await fillDisk(300 + below(700));
        break;
      case "client killed":
        await killClient();
        break;
    }
  }
}

// --- the run ---

const workers: Worker[] = [];
let answered = 0;
let runError: unknown;
try {
  for (let i = 0; i < clientCount; i++) workers.push(await connectWorker(i));
  const faultRun = broken && expectViolation ? Promise.resolve() : injectFaults();
  // A fault that breaks the run (a restart refused) ends it at once.
  await Promise.all([...workers.map(work), faultRun]);
  stopWorkers = true;
  answered = recorder.history.ops.filter((op) => op.result?.ok).length;

  // Settle: one more kill -9 and restart bounds every operation left without an answer; then the clients close,
  // every session still open is given time to expire, and a fresh client reads everything.
  await killAndRestart();
  injected("kill -9 and restart");
  const reconnectBy = performance.now() + 10_000;
  while (workers.some((w) => !w.client.connected) && performance.now() < reconnectBy) await sleep(20);
  await Promise.all(workers.map((w) => w.client.close().catch(() => {})));
  const settleFromMs = Math.max(performance.now(), lastRestartMs);
  await sleep(Math.max(0, settleFromMs + SESSION_TIMEOUT_MS * 2 + 1000 - performance.now()));
  recorder.settled();
  const reader = await RegistryClient.connect(server.ready, { loop, requestTimeoutMs: 5000 });
  const readerId = clientCount;
  for (const key of keys) {
    await recorder.call(readerId, reader, { kind: "get", path: key });
    const listed = await recorder.call(readerId, reader, { kind: "children", path: key });
    for (const name of (listed?.ok ? listed.children : undefined) ?? []) {
      await recorder.call(readerId, reader, { kind: "get", path: `${key}/${name}` });
    }
  }
  await reader.close();
} catch (error) {
  runError = error;
  stopWorkers = true;
}
await Promise.all(workers.map((w) => w.client.close().catch(() => {})));
await server.stop("SIGKILL");
await proxy.close();
if (runError !== undefined) {
  const kept = `${root}-data`;
  await new Deno.Command("cp", { args: ["-a", dataDir, kept] }).output();
  console.log(`the run broke; its data directory is kept in ${kept}:\n${(runError as Error).stack ?? runError}`);
}
if (tmpfs) await new Deno.Command("umount", { args: [dataDir] }).output();
await Deno.remove(root, { recursive: true });
if (runError !== undefined) {
  console.log("FAIL: the run completed (see above)");
  console.log("0 passed, 1 failed");
  Deno.exit(1);
}

// --- the check ---

const history = recorder.history;
if (values.history !== undefined) {
  // For a look afterwards: one op per line; Infinity (no answer, unbounded) is written as null.
  await Deno.writeTextFile(values.history, history.ops.map((op) => JSON.stringify(op)).join("\n") + "\n");
}
const checkStartedMs = performance.now();
const report = checkHistory(history, { strictSessionEnds: values["strict-expiry"] });
const checkMs = performance.now() - checkStartedMs;
const totalFaults = [...faults.values()].reduce((a, b) => a + b, 0);
console.log(
  `faults: ${[...faults].map(([what, n]) => `${what} ${n}`).join(", ") || "none"} (${totalFaults} in all)`,
);
console.log(
  `ops: ${history.ops.length} recorded (${answered} answered ok), ${report.opsChecked} checked (implicit session ` +
    `ends included), ${report.indeterminate} indeterminate, ${report.leftOut} left out (unanswered reads, never ` +
    `sent, refused without effect); ${history.sessions.length} sessions`,
);
for (const partition of report.partitions) {
  console.log(
    `${partition.partition}: ${partition.outcome} (${partition.ops} ops, ${partition.indeterminate} indeterminate, ` +
      `${partition.steps} search steps)`,
  );
}
for (const partition of report.partitions.filter((p) => p.window !== undefined).slice(0, 3)) {
  console.log(`\nno linearization of ${partition.partition}; the ops around the point where none exists:`);
  console.log(partition.window);
}
console.log(
  `\nchecked in ${(checkMs / 1000).toFixed(1)} s; run ${((performance.now() - runStartedMs) / 1000).toFixed(1)} s`,
);

let passed = 0;
let failed = 0;
const verdict = (ok: boolean, what: string) => {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? "PASS" : "FAIL"}: ${what}`);
};
verdict(answered >= 100, `the clients made progress (${answered} ops answered ok)`);
if (expectViolation) {
  verdict(report.violations > 0, `a violation is found (${report.violations} keys without a linearization)`);
} else {
  for (const partition of report.partitions) {
    verdict(partition.outcome === "ok", `${partition.partition} is linearizable (${partition.outcome})`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
Deno.exit(failed === 0 ? 0 : 1);
