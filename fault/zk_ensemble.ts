/**
 * Discovery on a real ZooKeeper ensemble under faults (`deno task zk-ensemble [--fault NAME] [--soak] [--seconds N]`):
 * three `QuorumPeerMain` on 127.0.0.1 (registry/testdata/zookeeper_ensemble.ts), two unchanged
 * `examples/rpc/callee.ts` providers and a load caller (`_zk_load_caller.ts`, 200 calls/s through RpcChannel), all
 * naming the three servers with a chroot and 10 s sessions, as in issue 24; a watcher here reads ZooKeeper's own
 * provider list every 25 ms to hold the caller's view against.
 *
 * Faults, each on a fresh ensemble and fresh processes (all in turn by default, one with `--fault`):
 *
 * - `leader-kill`: kill -9 the leader, restart it later → no call fails;
 * - `freeze`: SIGSTOP the server holding the providers' sessions for 1.5x the session timeout, a majority up → no
 *   session expires, no call fails, no provider vanishes from ZooKeeper;
 * - `quorum-loss` (the "minority loss longer than the session timeout"): SIGSTOP two of three (the leader and
 *   the sessions' server) for 1.5x the session timeout → the caller sees every provider within 1 s of its
 *   re-registration, and no call fails for lack of a provider while one is alive;
 * - `rolling-restart`: SIGTERM and start each server in turn, followers first → no call fails;
 * - `provider-restart`: a provider stops (SIGTERM) and starts again → the caller sees each within 1 s.
 *
 * `--soak` runs random faults of those kinds on one ensemble for `--seconds` (default 60) instead; its check: no call
 * fails for lack of a provider while one is alive.
 *
 * Reported per fault: calls made, failed (and for lack of a provider while one was alive), the longest time the
 * caller's provider view differed from ZooKeeper's, sessions expired (the providers', seen as their nodes' owner
 * changing or their nodes going, and the caller's, from its session events), and how long provider nodes were
 * missing while their process was alive. Ends with `N passed, M failed`, one check per criterion.
 *
 * @module
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { QUIET, seededRandom } from "./_harness.ts";
import { denoRun, type ReadyProcess, spawnReady } from "../reactor/testdata/spawn_ready.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import { getLogger, LogLevel } from "../reactor/logger.ts";
import { RegistryError, RegistryErrorCode } from "../registry/registry_error.ts";
import { ZooKeeperRegistry } from "../registry/zookeeper/zookeeper_registry.ts";
import { ServerState, ZooKeeperEnsemble } from "../registry/testdata/zookeeper_ensemble.ts";

const FAULT_NAMES = ["leader-kill", "freeze", "quorum-loss", "rolling-restart", "provider-restart"] as const;
type FaultName = typeof FAULT_NAMES[number];

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: {
    fault: { type: "string" },
    soak: { type: "boolean", default: false },
    seconds: { type: "string", default: "60" },
    "session-timeout-ms": { type: "string", default: "10000" },
    rate: { type: "string", default: "200" },
    seed: { type: "string", default: String(Date.now() % 1_000_000) },
  },
});
if (values.fault !== undefined && !(FAULT_NAMES as readonly string[]).includes(values.fault)) {
  console.error(`--fault must be one of ${FAULT_NAMES.join(", ")}: current value is '${values.fault}'`);
  Deno.exit(2);
}
getLogger().level = LogLevel.FATAL;
const loop = EventLoop.current();
const SERVICE = "dwt.UserServiceRpc";
const CHROOT = "/apps/rpc";
const POLL_MS = 25;
const SEEN_WITHIN_MS = 1000;
const sessionTimeoutMs = Number(values["session-timeout-ms"]);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const here = (path: string) => new URL(path, import.meta.url).pathname;

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  promise.catch(() => {});
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms)),
  ]).finally(() => clearTimeout(timer));
}

// --- ZooKeeper's view ---

/** One node of the service: its owner session and creation time (ZooKeeper's clock, this machine's). */
interface NodeInfo {
  owner: bigint;
  ctime: number;
}

/** One read of the provider list: when it started and ended, and what it found (undefined: no server answered). */
interface TruthSample {
  ts: number;
  te: number;
  nodes: Map<string, NodeInfo> | undefined;
}

/**
 * Reads the provider list from ZooKeeper every POLL_MS through one client per server (so a fault on one server
 * costs at most one slow read), skipping servers the harness froze or killed.
 */
class TruthPoller {
  readonly samples: TruthSample[] = [];
  readonly #ensemble: ZooKeeperEnsemble;
  readonly #clients = new Map<number, Promise<ZooKeeperRegistry>>();
  #preferred = 0;
  #running = true;
  #done: Promise<void> = Promise.resolve();

  constructor(ensemble: ZooKeeperEnsemble) {
    this.#ensemble = ensemble;
  }

  start(): void {
    this.#done = (async () => {
      while (this.#running) {
        const ts = Date.now();
        const nodes = await this.#pollOnce();
        this.samples.push({ ts, te: Date.now(), nodes });
        await sleep(POLL_MS);
      }
    })();
  }

  /** The last sample that found an answer. */
  latest(): TruthSample | undefined {
    for (let i = this.samples.length - 1; i >= 0; i--) if (this.samples[i]!.nodes !== undefined) return this.samples[i];
    return undefined;
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#done;
    for (const client of this.#clients.values()) await client.then((c) => c.close(), () => {});
  }

  async #pollOnce(): Promise<Map<string, NodeInfo> | undefined> {
    const servers = this.#ensemble.servers;
    for (let k = 0; k < servers.length; k++) {
      const index = (this.#preferred + k) % servers.length;
      const server = servers[index]!;
      if (server.state !== ServerState.RUNNING) continue;
      try {
        const nodes = await withTimeout(this.#read(server.id, server.address), 400);
        this.#preferred = index;
        return nodes;
      } catch {
        // the next server
      }
    }
    return undefined;
  }

  async #read(id: number, address: string): Promise<Map<string, NodeInfo>> {
    let client = this.#clients.get(id);
    if (client === undefined) {
      client = ZooKeeperRegistry.connect(address + CHROOT, {
        loop,
        sessionTimeoutMs: 20_000,
        requestTimeoutMs: 1000,
        connectTimeoutMs: 1000,
      });
      this.#clients.set(id, client);
      // A server that is down now is tried again a second later, not on every poll.
      client.catch(() => setTimeout(() => this.#clients.delete(id), 1000));
    }
    const registry = await client;
    const nodes = new Map<string, NodeInfo>();
    let children: string[];
    try {
      children = await registry.children(`/${SERVICE}`);
    } catch (error) {
      if (error instanceof RegistryError && error.code === RegistryErrorCode.NO_NODE) return nodes;
      throw error;
    }
    await Promise.all(children.map(async (child) => {
      const stat = await registry.exists(`/${SERVICE}/${child}`);
      if (stat !== undefined) nodes.set(child, { owner: stat.ephemeralOwner, ctime: stat.ctime });
    }));
    return nodes;
  }
}

// --- the caller's view ---

interface ViewChange {
  t: number;
  view: string[];
}

/** The load caller's JSON lines, parsed as they come. */
class CallerLog {
  readonly ticks: Array<{ t: number; ok: number; failed: number }> = [];
  readonly fails: Array<{ t: number; code: number; message: string }> = [];
  readonly views: ViewChange[] = [];
  readonly sessions: Array<{ t: number; type: string; sessionId?: string }> = [];
  #offset = 0;

  update(text: string): void {
    const end = text.lastIndexOf("\n");
    if (end < this.#offset) return;
    for (const line of text.slice(this.#offset, end).split("\n")) {
      if (!line.startsWith("{")) continue;
      const entry = JSON.parse(line);
      if (entry.k === "tick") this.ticks.push(entry);
      else if (entry.k === "fail") this.fails.push(entry);
      else if (entry.k === "view") this.views.push(entry);
      else if (entry.k === "session") this.sessions.push(entry);
    }
    this.#offset = end + 1;
  }

  /** The view at time `t` (undefined before the first). */
  viewAt(t: number): string[] | undefined {
    let view: string[] | undefined;
    for (const change of this.views) {
      if (change.t > t) break;
      view = change.view;
    }
    return view;
  }

  /** The first time at or after `from` (and before `until`) when `test` holds for the view, if any. */
  firstTime(from: number, until: number, test: (view: string[]) => boolean): number | undefined {
    const at = this.viewAt(from);
    if (at !== undefined && test(at)) return from;
    for (const change of this.views) {
      if (change.t <= from) continue;
      if (change.t >= until) break;
      if (test(change.view)) return change.t;
    }
    return undefined;
  }
}

// --- the rig: ensemble, providers, caller, watcher ---

/** A provider process; its incarnations are the periods from READY to the stop signal. */
interface Provider {
  readonly port: number;
  readonly address: string;
  readonly config: string;
  process: ReadyProcess | undefined;
  readonly incarnations: Array<{ readyAt: number; stopAt?: number }>;
}

class Rig {
  readonly ensemble: ZooKeeperEnsemble;
  readonly poller: TruthPoller;
  readonly providers: Provider[];
  readonly log = new CallerLog();
  readonly notes: Array<{ t: number; text: string }> = [];
  faultStart = 0;
  /** When the ensemble served again after a fault that took its quorum (a provider must be seen again from then). */
  recoveredAt: number | undefined;
  caller: ReadyProcess | undefined;
  readonly #dir: string;

  private constructor(ensemble: ZooKeeperEnsemble, dir: string) {
    this.ensemble = ensemble;
    this.#dir = dir;
    this.poller = new TruthPoller(ensemble);
    this.providers = [0, 1].map((index) => {
      const port = freePort();
      return {
        port,
        address: `127.0.0.1:${port}`,
        config: `${dir}/provider${index}.json`,
        process: undefined,
        incarnations: [],
      };
    });
  }

  static async start(): Promise<Rig> {
    const dir = await Deno.makeTempDir({ prefix: "zk-ensemble-fault-" });
    const ensemble = await ZooKeeperEnsemble.start({ tickTimeMs: 1000, heapMiB: 128 });
    const rig = new Rig(ensemble, dir);
    try {
      const admin = await ZooKeeperRegistry.connect(ensemble.connectString, { loop });
      for (const path of ["/apps", CHROOT]) {
        await admin.create(path).catch((error) => {
          if (!(error instanceof RegistryError && error.code === RegistryErrorCode.NODE_EXISTS)) throw error;
        });
      }
      await admin.close();
      const connect = ensemble.connectString + CHROOT;
      for (const provider of rig.providers) {
        await Deno.writeTextFile(
          provider.config,
          JSON.stringify({
            rpcserver_ip: "127.0.0.1",
            rpcserver_port: provider.port,
            zookeeper_connect: connect,
            zookeeper_session_timeout_ms: sessionTimeoutMs,
            log_level: "ERROR",
          }),
        );
        await rig.startProvider(provider);
      }
      const callerConfig = `${dir}/caller.json`;
      await Deno.writeTextFile(
        callerConfig,
        JSON.stringify({
          zookeeper_connect: connect,
          zookeeper_session_timeout_ms: sessionTimeoutMs,
          log_level: "ERROR",
        }),
      );
      rig.poller.start();
      rig.caller = await spawnReady(
        denoRun(here("./_zk_load_caller.ts"), "-i", callerConfig, "--rate", values.rate!),
        QUIET,
      );
      if (!(await rig.settle(20_000))) throw new Error("the caller's view did not match ZooKeeper's within 20 s");
      await sleep(1000);
    } catch (error) {
      await rig.stop();
      throw error;
    }
    rig.faultStart = Date.now();
    return rig;
  }

  note(text: string): void {
    this.notes.push({ t: Date.now(), text });
  }

  async startProvider(provider: Provider): Promise<void> {
    provider.process = await spawnReady(denoRun(here("../examples/rpc/callee.ts"), "-i", provider.config), QUIET);
    provider.incarnations.push({ readyAt: Date.now() });
  }

  async stopProvider(provider: Provider): Promise<void> {
    const running = provider.process;
    if (running === undefined) return;
    provider.incarnations.at(-1)!.stopAt = Date.now();
    await running.stop("SIGTERM");
    provider.process = undefined;
  }

  /** Whether `address`'s provider was alive (READY, not told to stop) at `t`. */
  aliveAt(address: string, t: number): boolean {
    const provider = this.providers.find((p) => p.address === address);
    return provider?.incarnations.some((i) => i.readyAt <= t && (i.stopAt === undefined || t < i.stopAt)) ?? false;
  }

  anyAliveAt(t: number): boolean {
    return this.providers.some((provider) => this.aliveAt(provider.address, t));
  }

  /** Wait until every running provider is in ZooKeeper and the caller's view is ZooKeeper's; false after `ms`. */
  async settle(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      this.log.update(this.caller?.stdout() ?? "");
      const truth = this.poller.latest()?.nodes;
      const view = this.log.viewAt(Date.now());
      const expected = this.providers.filter((p) => p.process !== undefined).map((p) => p.address).sort();
      if (
        truth !== undefined && view !== undefined && sameList([...truth.keys()].sort(), expected) &&
        sameList(view, expected)
      ) {
        return true;
      }
      await sleep(50);
    }
    return false;
  }

  /** The server most of the providers' sessions (and the caller's) are connected to, by `cons`. */
  async sessionsServer(): Promise<number> {
    const owners = [...(this.poller.latest()?.nodes?.values() ?? [])].map((node) => node.owner);
    this.log.update(this.caller?.stdout() ?? "");
    const callerSession = this.log.sessions.filter((s) => s.type === "connected").at(-1)?.sessionId;
    if (callerSession !== undefined) owners.push(BigInt("0x" + callerSession));
    const counts = new Map<number, number>();
    for (const server of this.ensemble.servers) {
      const sessions = await this.ensemble.sessions(server.id);
      counts.set(server.id, owners.filter((owner) => sessions.includes(owner)).length);
    }
    return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]![0];
  }

  async stop(): Promise<void> {
    await this.caller?.stop("SIGTERM");
    this.log.update(this.caller?.stdout() ?? "");
    for (const provider of this.providers) await this.stopProvider(provider).catch(() => {});
    await this.poller.stop();
    await this.ensemble.stop();
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item, index) => item === b[index]);
}

// --- figures ---

interface Figures {
  calls: number;
  failed: number;
  failures: Record<string, number>;
  noProviderWhileAlive: number;
  worstStaleMs: number;
  worstStaleAt: string;
  worstStaleWhat: string;
  appearLagMaxMs: number;
  disappearLagMaxMs: number;
  providerSessionsExpired: number;
  callerSessionsExpired: number;
  missingWhileAlive: { episodes: number; ms: number };
}

/** What happened from `rig.faultStart` to the end, from the caller's lines and the watcher's samples. */
function figuresOf(rig: Rig, end: number): Figures {
  const log = rig.log;
  const from = rig.faultStart;
  const rel = (t: number) => `+${((t - from) / 1000).toFixed(1)} s`;
  let calls = 0;
  let failed = 0;
  for (const tick of log.ticks) {
    calls += tick.ok + tick.failed;
    failed += tick.failed;
  }
  const failures: Record<string, number> = {};
  let noProviderWhileAlive = 0;
  for (const fail of log.fails) {
    const key = `${fail.code} ${fail.message.replace(/127\.0\.0\.1:\d+/g, "<addr>")}`.slice(0, 120);
    failures[key] = (failures[key] ?? 0) + 1;
    if (fail.message.startsWith("No provider") && rig.anyAliveAt(fail.t)) noProviderWhileAlive++;
  }
  const known = rig.poller.samples.filter((s) => s.nodes !== undefined && s.ts >= from && s.te <= end);

  // The longest run of reads whose list differs from the caller's view at that moment.
  let worstStaleMs = 0;
  let worstStaleAt = "-";
  let worstStaleWhat = "-";
  let runStart: number | undefined;
  let runWhat = "";
  const short = (list: string[]) => `[${list.map((address) => address.replace("127.0.0.1:", "")).join(",")}]`;
  for (const sample of known) {
    const view = log.viewAt(sample.te) ?? [];
    const listed = [...sample.nodes!.keys()].sort();
    const differs = !sameList(view, listed);
    if (differs && runStart === undefined) {
      runStart = sample.ts;
      runWhat = `ZooKeeper ${short(listed)}, caller ${short(view)}`;
    }
    if (!differs && runStart !== undefined) {
      if (sample.ts - runStart > worstStaleMs) {
        [worstStaleMs, worstStaleAt, worstStaleWhat] = [sample.ts - runStart, rel(runStart), runWhat];
      }
      runStart = undefined;
    }
  }
  if (runStart !== undefined && end - runStart > worstStaleMs) {
    [worstStaleMs, worstStaleAt, worstStaleWhat] = [end - runStart, `${rel(runStart)} (still at the end)`, runWhat];
  }

  // Per provider: when its node appears (or is re-created) or goes, how long until the caller's view follows; and
  // whether its node was missing, or changed owner (an expiry), while the process was alive.
  let appearLagMaxMs = 0;
  let disappearLagMaxMs = 0;
  let providerSessionsExpired = 0;
  const missing = { episodes: 0, ms: 0 };
  for (const provider of rig.providers) {
    const address = provider.address;
    const events: Array<{ t: number; present: boolean }> = [];
    let previous: NodeInfo | undefined | null = null; // null: nothing read yet
    let missingSince: number | undefined;
    for (const sample of known) {
      const node = sample.nodes!.get(address);
      const alive = rig.aliveAt(address, sample.ts) && rig.aliveAt(address, sample.te);
      if (node !== undefined) {
        if (previous === undefined || (previous !== null && previous.owner !== node.owner)) {
          events.push({ t: Math.max(node.ctime, from), present: true });
        }
        if (missingSince !== undefined) {
          missing.ms += sample.ts - missingSince;
          missingSince = undefined;
        } else if (previous && previous.owner !== node.owner && alive) {
          providerSessionsExpired++;
        }
      } else {
        if (previous) events.push({ t: sample.ts, present: false });
        if (previous && alive && missingSince === undefined) {
          missingSince = sample.ts;
          missing.episodes++;
          providerSessionsExpired++;
        } else if (!alive && missingSince !== undefined) {
          missing.ms += sample.ts - missingSince;
          missingSince = undefined;
        }
      }
      previous = node;
    }
    if (missingSince !== undefined) missing.ms += end - missingSince;
    // A provider ZooKeeper still lists when the quorum is back must be in the caller's view from then on too,
    // whether or not its node was re-created (the caller's own session may be the one that expired).
    const recovered = rig.recoveredAt;
    if (recovered !== undefined && known.find((sample) => sample.ts >= recovered)?.nodes?.has(address)) {
      events.push({ t: recovered, present: true });
      events.sort((a, b) => a.t - b.t);
    }
    events.forEach((event, index) => {
      const until = events[index + 1]?.t ?? end;
      const seen = log.firstTime(event.t, until, (view) => view.includes(address) === event.present);
      const lag = (seen ?? until) - event.t;
      if (event.present) appearLagMaxMs = Math.max(appearLagMaxMs, lag);
      else disappearLagMaxMs = Math.max(disappearLagMaxMs, lag);
    });
  }
  return {
    calls,
    failed,
    failures,
    noProviderWhileAlive,
    worstStaleMs,
    worstStaleAt,
    worstStaleWhat,
    appearLagMaxMs,
    disappearLagMaxMs,
    providerSessionsExpired,
    callerSessionsExpired: log.sessions.filter((s) => s.type === "expired").length,
    missingWhileAlive: missing,
  };
}

// --- faults ---

interface Check {
  what: string;
  ok: boolean;
  got: string;
}

const sessionFreezeMs = Math.round(sessionTimeoutMs * 1.5);

async function leaderKill(rig: Rig): Promise<void> {
  const leader = (await rig.ensemble.leader())!;
  rig.note(`kill -9 server ${leader} (the leader)`);
  await rig.ensemble.kill(leader);
  await rig.ensemble.waitForQuorum({ timeoutMs: 30_000 });
  rig.note(`quorum again, leader ${await rig.ensemble.leader()}`);
  await sleep(3000);
  await rig.ensemble.restart(leader);
  rig.note(`server ${leader} restarted and serving`);
  await sleep(3000);
}

async function freeze(rig: Rig): Promise<void> {
  const target = await rig.sessionsServer();
  rig.note(
    `SIGSTOP server ${target} (${await rig.ensemble.mode(target)}, holds the sessions) for ${sessionFreezeMs} ms`,
  );
  rig.ensemble.freeze(target);
  await sleep(sessionFreezeMs);
  rig.ensemble.thaw(target);
  rig.note(`SIGCONT server ${target}`);
  await rig.ensemble.waitForQuorum({ timeoutMs: 30_000, all: true });
  rig.note(`settled: ${await rig.settle(15_000)}`);
  await sleep(3000);
}

async function quorumLoss(rig: Rig): Promise<void> {
  const holder = await rig.sessionsServer();
  const leader = await rig.ensemble.leader();
  const other = leader !== undefined && leader !== holder
    ? leader
    : rig.ensemble.servers.find((server) => server.id !== holder)!.id;
  const modes = [await rig.ensemble.mode(holder), await rig.ensemble.mode(other)];
  rig.note(
    `SIGSTOP servers ${holder} (${modes[0]}, holds the sessions) and ${other} (${modes[1]}) for ${sessionFreezeMs} ms`,
  );
  rig.ensemble.freeze(holder);
  rig.ensemble.freeze(other);
  await sleep(sessionFreezeMs);
  rig.ensemble.thaw(holder);
  rig.ensemble.thaw(other);
  rig.note(`SIGCONT servers ${holder} and ${other}`);
  await rig.ensemble.waitForQuorum({ timeoutMs: 30_000, all: true });
  rig.recoveredAt = Date.now();
  rig.note(`quorum again, leader ${await rig.ensemble.leader()}`);
  rig.note(`settled: ${await rig.settle(20_000)}`);
  await sleep(3000);
}

async function rollingRestart(rig: Rig): Promise<void> {
  const leader = await rig.ensemble.leader();
  const order = rig.ensemble.servers.map((server) => server.id).sort((a, b) =>
    Number(a === leader) - Number(b === leader)
  );
  for (const id of order) {
    rig.note(`SIGTERM server ${id}${id === leader ? " (the leader)" : ""} and start it again`);
    await rig.ensemble.kill(id, "SIGTERM");
    await rig.ensemble.restart(id);
    await rig.ensemble.waitForQuorum({ timeoutMs: 30_000, all: true });
    await sleep(2000);
  }
  rig.note("rolling restart done");
  await sleep(1000);
}

async function providerRestart(rig: Rig, index = 0): Promise<void> {
  const provider = rig.providers[index]!;
  rig.note(`SIGTERM provider ${provider.address}`);
  await rig.stopProvider(provider);
  await sleep(3000);
  rig.note(`start provider ${provider.address}`);
  await rig.startProvider(provider);
  await sleep(3000);
}

const FAULTS: Record<
  FaultName,
  { describe: string; run: (rig: Rig) => Promise<void>; checks: (f: Figures) => Check[] }
> = {
  "leader-kill": {
    describe: "kill -9 the leader, restart it 3 s after a new quorum",
    run: leaderKill,
    checks: (f) => [{ what: "0 failed calls", ok: f.failed === 0, got: `${f.failed} of ${f.calls}` }],
  },
  "freeze": {
    describe: `SIGSTOP the sessions' server for ${sessionFreezeMs} ms (1.5x the session timeout), a majority up`,
    run: freeze,
    checks: (f) => [
      {
        what: "no session expires",
        ok: f.providerSessionsExpired + f.callerSessionsExpired === 0,
        got: `providers ${f.providerSessionsExpired}, caller ${f.callerSessionsExpired}`,
      },
      { what: "0 failed calls", ok: f.failed === 0, got: `${f.failed} of ${f.calls}` },
      {
        what: "providers never vanish from ZooKeeper",
        ok: f.missingWhileAlive.episodes === 0,
        got: `${f.missingWhileAlive.episodes} nodes missing for ${f.missingWhileAlive.ms} ms in all`,
      },
    ],
  },
  "quorum-loss": {
    describe: `SIGSTOP two of three (leader and sessions' server) for ${sessionFreezeMs} ms, past the session timeout`,
    run: quorumLoss,
    checks: (f) => [
      {
        what:
          `every provider seen again within ${SEEN_WITHIN_MS} ms of its re-registration (or of the quorum's return)`,
        ok: f.appearLagMaxMs <= SEEN_WITHIN_MS,
        got: `worst ${f.appearLagMaxMs} ms`,
      },
      {
        what: "no call fails for lack of a provider while one is alive",
        ok: f.noProviderWhileAlive === 0,
        got: `${f.noProviderWhileAlive}`,
      },
    ],
  },
  "rolling-restart": {
    describe: "SIGTERM and start each server in turn, followers first",
    run: rollingRestart,
    checks: (f) => [{ what: "0 failed calls", ok: f.failed === 0, got: `${f.failed} of ${f.calls}` }],
  },
  "provider-restart": {
    describe: "a provider stops (SIGTERM) and starts again 3 s later",
    run: (rig) => providerRestart(rig),
    checks: (f) => [
      {
        what: `a provider leaving is seen within ${SEEN_WITHIN_MS} ms`,
        ok: f.disappearLagMaxMs <= SEEN_WITHIN_MS,
        got: `${f.disappearLagMaxMs} ms`,
      },
      {
        what: `a provider joining is seen within ${SEEN_WITHIN_MS} ms`,
        ok: f.appearLagMaxMs <= SEEN_WITHIN_MS,
        got: `${f.appearLagMaxMs} ms`,
      },
    ],
  },
};

// Deterministic, so a run can be repeated from its seed.
const random = seededRandom(Number(values.seed));
const between = (low: number, high: number) => Math.round(low + random() * (high - low));

async function soak(rig: Rig, seconds: number): Promise<void> {
  const until = Date.now() + seconds * 1000;
  const ids = () => rig.ensemble.servers.map((server) => server.id);
  const kinds: Array<() => Promise<void>> = [
    () => leaderKill(rig),
    async () => {
      const id = ids()[between(0, 2)]!;
      const ms = between(1000, sessionFreezeMs);
      rig.note(`SIGSTOP server ${id} for ${ms} ms`);
      rig.ensemble.freeze(id);
      await sleep(ms);
      rig.ensemble.thaw(id);
    },
    async () => {
      const [a, b] = ids().sort(() => random() - 0.5);
      const ms = between(1000, sessionFreezeMs);
      rig.note(`SIGSTOP servers ${a} and ${b} for ${ms} ms`);
      rig.ensemble.freeze(a!);
      rig.ensemble.freeze(b!);
      await sleep(ms);
      rig.ensemble.thaw(a!);
      rig.ensemble.thaw(b!);
    },
    async () => {
      const id = ids()[between(0, 2)]!;
      rig.note(`kill -9 server ${id}, restart it`);
      await rig.ensemble.kill(id);
      await sleep(between(500, 5000));
      await rig.ensemble.restart(id);
    },
    () => providerRestart(rig, between(0, 1)),
  ];
  while (Date.now() < until) {
    await kinds[between(0, kinds.length - 1)]!();
    await rig.ensemble.waitForQuorum({ timeoutMs: 60_000, all: true });
    await rig.settle(20_000);
    await sleep(between(1000, 4000));
  }
}

// --- main ---

const checks: Check[] = [];
// The rig running now, stopped on SIGINT/SIGTERM so no JVM or provider outlives an interrupted run.
let current: Rig | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    console.log(`${signal}: stopping the ensemble and the processes`);
    (current?.stop() ?? Promise.resolve()).finally(() => Deno.exit(130));
  });
}

function report(name: string, describe: string, rig: Rig | undefined, end: number, list: Check[]): void {
  console.log(`== ${name}: ${describe}`);
  if (rig !== undefined) {
    for (const note of rig.notes) console.log(`   +${((note.t - rig.faultStart) / 1000).toFixed(1)} s ${note.text}`);
    const caller = [
      ...rig.log.sessions.map((s) => ({
        t: s.t,
        text: `caller session ${s.type}${s.sessionId ? " " + s.sessionId : ""}`,
      })),
      ...rig.log.views.map((v) => ({ t: v.t, text: `caller view [${v.view.join(", ")}]` })),
    ].filter((entry) => entry.t >= rig!.faultStart).sort((a, b) => a.t - b.t);
    for (const entry of caller.slice(0, 30)) {
      console.log(`   +${((entry.t - rig.faultStart) / 1000).toFixed(1)} s ${entry.text}`);
    }
    if (caller.length > 30) console.log(`   (${caller.length - 30} more caller events)`);
    console.log(`   ${JSON.stringify(figuresOf(rig, end))}`);
  }
  for (const check of list) {
    console.log(`${check.ok ? "ok    " : "FAILED"} ${name}: ${check.what} (${check.got})`);
    checks.push(check);
  }
}

async function runFault(
  name: string,
  describe: string,
  body: (rig: Rig) => Promise<void>,
  judge: (f: Figures) => Check[],
) {
  let rig: Rig | undefined;
  try {
    rig = current = await Rig.start();
    await body(rig);
    const end = Date.now();
    await rig.stop();
    current = undefined;
    report(name, describe, rig, end, judge(figuresOf(rig, end)));
  } catch (error) {
    await rig?.stop().catch(() => {});
    current = undefined;
    report(name, describe, rig, Date.now(), [{
      what: "the fault ran to its end",
      ok: false,
      got: (error as Error).stack ?? String(error),
    }]);
  }
}

console.log(
  `zk-ensemble: 3 ZooKeeper servers, 2 providers, 1 caller at ${values.rate} calls/s, sessions ${sessionTimeoutMs} ms` +
    (values.soak ? `, soak ${values.seconds} s, seed ${values.seed}` : ""),
);
if (values.soak) {
  await runFault(
    "soak",
    `random faults for ${values.seconds} s`,
    (rig) => soak(rig, Number(values.seconds)),
    (f) => [{
      what: "no call fails for lack of a provider while one is alive",
      ok: f.noProviderWhileAlive === 0,
      got: `${f.noProviderWhileAlive}`,
    }],
  );
} else {
  for (const name of FAULT_NAMES) {
    if (values.fault !== undefined && values.fault !== name) continue;
    const fault = FAULTS[name];
    await runFault(name, fault.describe, fault.run, fault.checks);
  }
}
const passed = checks.filter((check) => check.ok).length;
console.log(`${passed} passed, ${checks.length - passed} failed`);
Deno.exit(passed === checks.length ? 0 : 1);
