/**
 * The registry's durability torture test (`deno task registry-torture [--rounds 40] [--seconds 150] [--seed N]`):
 * rounds of mixed writes from a real client to a real registry process, ended by `kill -9` at a random moment, with
 * the data directory then damaged at random (a flipped byte in a log or snapshot, a truncated older log or
 * snapshot, a full disk mid-batch on a tmpfs when run as root) before the next start.
 *
 * The invariant, checked after every start: the server either starts with every acknowledged write present and
 * nothing that failed visible, or refuses to start naming the file, offset and zxid of the damage; then
 * `registry-repair` (dry run) names the same damage and changes nothing, `--apply` drops it, and the server starts.
 * Cutting the newest log is what a crash mid-write looks like and cannot be told from one (no write-ahead log can):
 * those rounds are counted apart, and checked to keep a prefix of the history.
 *
 * Prints every round's outcome, the counts, and a last line `N passed, M failed`.
 *
 * @module
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { QUIET, seededRandom } from "./_harness.ts";
import { denoRun, type ReadyProcess, spawnReady } from "../reactor/testdata/spawn_ready.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import { getLogger, LogLevel } from "../reactor/logger.ts";
import { RegistryClient } from "../registry/client/registry_client.ts";
import { RegistryError, RegistryErrorCode } from "../registry/registry_error.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "40" },
    seconds: { type: "string", default: "150" },
    seed: { type: "string", default: String(Date.now() % 1_000_000) },
  },
});
getLogger().level = LogLevel.FATAL;
const loop = EventLoop.current();
const here = (path: string) => new URL(path, import.meta.url).pathname;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Deterministic, so a run can be repeated from its seed.
const random = seededRandom(Number(values.seed));
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

/** What a path holds: absent, or present with this data. */
type State = string | undefined;

/** Per path: the state every acknowledged write leads to, and the one write still in doubt (no answer came). */
interface PathModel {
  acked: State;
  doubt?: State;
  busy: boolean;
}

const model = new Map<string, PathModel>();
let nextPath = 0;
let nextValue = 0;

async function writeLoad(client: RegistryClient, untilMs: number, failed: Set<string>): Promise<number> {
  let acknowledged = 0;
  const worker = async () => {
    while (performance.now() < untilMs) {
      const idle = [...model.entries()].filter(([, m]) => !m.busy);
      const roll = random();
      let path: string;
      let next: State;
      let op: () => Promise<unknown>;
      if (roll < 0.45 || idle.length === 0) {
        path = `/t/n${nextPath++}`;
        next = "c";
        model.set(path, { acked: undefined, busy: false });
        op = () => client.create(path, "c");
      } else {
        const [chosen, m] = pick(idle);
        path = chosen;
        if (m.acked === undefined) continue;
        if (roll < 0.85) {
          next = `v${nextValue++}`;
          const data = next;
          op = () => client.set(path, data);
        } else {
          next = undefined;
          op = () => client.delete(path);
        }
      }
      const entry = model.get(path)!;
      entry.busy = true;
      entry.doubt = next;
      try {
        await op();
        entry.acked = next;
        acknowledged++;
      } catch (error) {
        const code = error instanceof RegistryError ? error.code : RegistryErrorCode.SYSTEM_ERROR;
        // An explicit answer means it did not happen; a lost connection leaves it in doubt.
        if (code !== RegistryErrorCode.CONNECTION_LOSS && code !== RegistryErrorCode.OPERATION_TIMEOUT) {
          if (code === RegistryErrorCode.STORAGE_FAILED) failed.add(path);
          entry.doubt = undefined;
          delete entry.doubt;
        }
        if (code === RegistryErrorCode.CONNECTION_LOSS || code === RegistryErrorCode.CLOSED) {
          entry.busy = false;
          return;
        }
      }
      entry.busy = false;
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return acknowledged;
}

/** Compare the server's tree with the model; returns the paths that break the invariant. */
async function verify(client: RegistryClient): Promise<string[]> {
  const present = new Map<string, string>();
  for (const name of await client.children("/t")) {
    present.set(`/t/${name}`, new TextDecoder().decode((await client.get(`/t/${name}`)).data));
  }
  const broken: string[] = [];
  for (const [path, m] of model) {
    const seen = present.get(path);
    const allowed = "doubt" in m ? [m.acked, m.doubt] : [m.acked];
    if (!allowed.includes(seen)) {
      broken.push(`${path}: ${seen ?? "absent"}, expected ${allowed.map(String).join(" or ")}`);
    }
  }
  for (const path of present.keys()) if (!model.has(path)) broken.push(`${path}: present but never written`);
  return broken;
}

/** After a verified start, what the server shows is what was acknowledged. */
async function rebaseline(client: RegistryClient): Promise<void> {
  const present = new Set((await client.children("/t")).map((name) => `/t/${name}`));
  for (const path of model.keys()) {
    const data = present.has(path) ? new TextDecoder().decode((await client.get(path)).data) : undefined;
    model.set(path, { acked: data, busy: false });
  }
}

async function files(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && /^(log|snapshot)\.[0-9a-f]{16}$/.test(entry.name)) names.push(entry.name);
  }
  return names.sort();
}

async function digest(dir: string): Promise<string> {
  const parts: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile) continue;
    const bytes = await Deno.readFile(`${dir}/${entry.name}`);
    parts.push(`${entry.name}:${bytes.length}:${bytes.reduce((sum, b, i) => (sum + b * (i + 1)) % 1_000_000_007, 0)}`);
  }
  return parts.sort().join(",");
}

type Damage = "none" | "flip" | "truncate-older" | "truncate-newest" | "enospc";

async function damage(dir: string, kind: Damage): Promise<string> {
  const names = await files(dir);
  const logs = names.filter((name) => name.startsWith("log."));
  if (kind === "none" || kind === "enospc") return kind;
  if (kind === "flip") {
    const name = pick(names);
    const bytes = await Deno.readFile(`${dir}/${name}`);
    if (bytes.length === 0) return "none (empty file)";
    const offset = Math.floor(random() * bytes.length);
    bytes[offset]! ^= 1 << Math.floor(random() * 8);
    await Deno.writeFile(`${dir}/${name}`, bytes);
    return `flip ${name}@${offset}`;
  }
  const newest = logs.at(-1);
  const candidates = kind === "truncate-newest"
    ? (newest === undefined ? [] : [newest])
    : names.filter((name) => name !== newest);
  if (candidates.length === 0) return "none (nothing to truncate)";
  const name = pick(candidates);
  const size = (await Deno.stat(`${dir}/${name}`)).size;
  const length = Math.floor(random() * size);
  await Deno.truncate(`${dir}/${name}`, length);
  return `${kind} ${name} ${size}->${length}`;
}

async function repair(dir: string, apply: boolean): Promise<{ code: number; text: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", here("../registry/repair.ts"), "--data", dir, ...(apply ? ["--apply"] : [])],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  return { code: output.code, text };
}

// --- the rounds ---

const root = await Deno.makeTempDir({ prefix: "dwt-torture-" });
const dataDir = `${root}/data`;
await Deno.mkdir(dataDir);
const isRoot = Deno.uid() === 0;
let tmpfs = false;
if (isRoot) {
  tmpfs = (await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=16m", "tmpfs", dataDir] }).output())
    .success;
}
console.log(`registry torture: seed ${values.seed}, data on ${tmpfs ? "a 16 MiB tmpfs" : "disk (no ENOSPC rounds)"}`);

const config = `${root}/registry.json`;
await Deno.writeTextFile(
  config,
  JSON.stringify({ ip: "127.0.0.1", port: 0, dataDir, snapshotEveryTxns: 60, heartbeatTimeout: 200 }),
);
const outcomes = new Map<string, number>();
const count = (what: string) => outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
let passed = 0;
let failed = 0;
const deadline = performance.now() + Number(values.seconds) * 1000;
const failedWrites = new Set<string>();
let pendingDamage: Damage = "none";

async function start(): Promise<ReadyProcess> {
  return await spawnReady(denoRun(here("../registry/main.ts"), "--config", config), { ...QUIET, stderr: "capture" });
}

for (let round = 1; round <= Number(values.rounds) && performance.now() < deadline; round++) {
  let server: ReadyProcess | undefined;
  let client: RegistryClient | undefined;
  const problems: string[] = [];
  let outcome = "";
  try {
    try {
      server = await start();
      outcome = "started";
    } catch (error) {
      const text = (error as { stderr?: string }).stderr ?? String(error);
      const named = /log\.|snapshot\./.test(text) && /offset \d+/.test(text) && /zxid/.test(text);
      if (!named) problems.push(`refused without naming the damage: ${text.slice(0, 400)}`);
      const before = await digest(dataDir);
      const dry = await repair(dataDir, false);
      if (dry.code !== 1) problems.push(`repair dry run exited ${dry.code}: ${dry.text.slice(0, 300)}`);
      if ((await digest(dataDir)) !== before) problems.push("repair dry run changed the data directory");
      const applied = await repair(dataDir, true);
      if (applied.code !== 0) problems.push(`repair --apply exited ${applied.code}: ${applied.text.slice(0, 300)}`);
      server = await start();
      outcome = "refused, repaired";
    }
    client = await RegistryClient.connect(server.ready, { loop, reconnectDelayMs: 50, requestTimeoutMs: 3000 });
    await client.create("/t", "").catch(() => {});
    if (outcome === "started") {
      const broken = await verify(client);
      if (pendingDamage === "truncate-newest" && broken.length > 0) {
        outcome = `started, newest log cut: ${broken.length} writes gone with it`;
      } else if (broken.length > 0) {
        problems.push(...broken.slice(0, 5), `(${broken.length} paths in all)`);
      }
    }
    for (const path of failedWrites) {
      if (outcome === "started" && (await client.exists(path)) !== undefined && model.get(path)?.acked === undefined) {
        problems.push(`${path} failed with STORAGE_FAILED but is visible`);
      }
    }
    failedWrites.clear();
    await rebaseline(client);
    count(outcome.replace(/: \d+ writes.*/, ""));

    // Mixed writes, then kill -9 at a random moment while they are in flight.
    const kind: Damage = pick<Damage>(
      tmpfs
        ? ["none", "none", "flip", "flip", "flip", "truncate-older", "truncate-newest", "enospc"]
        : ["none", "none", "flip", "flip", "flip", "truncate-older", "truncate-newest"],
    );
    const writeMs = 150 + Math.floor(random() * 500);
    const load = writeLoad(client, performance.now() + writeMs + 2000, failedWrites);
    if (kind === "enospc") {
      // Fill the disk while writes are in flight, then give the space back before the kill.
      await sleep(writeMs / 2);
      const filler = await Deno.open(`${dataDir}/filler`, { write: true, create: true });
      try {
        for (;;) await filler.write(new Uint8Array(64 * 1024));
      } catch {
        // Full.
      } finally {
        filler.close();
      }
      await sleep(writeMs / 2);
      await Deno.remove(`${dataDir}/filler`);
    } else {
      await sleep(writeMs);
    }
    await server.stop("SIGKILL");
    server = undefined;
    const acknowledged = await load;
    await client.close().catch(() => {});
    client = undefined;
    const what = await damage(dataDir, kind);
    pendingDamage = what.startsWith("truncate-newest") ? "truncate-newest" : kind;
    console.log(
      `round ${round}: ${outcome}; ${acknowledged} writes acknowledged, then kill -9 and ${what}` +
        (problems.length > 0 ? `\n  FAILED: ${problems.join("\n  ")}` : ""),
    );
  } catch (error) {
    problems.push(`round broke: ${(error as Error).stack ?? error}`);
    console.log(`round ${round}: FAILED: ${problems.join("\n  ")}`);
  } finally {
    await client?.close().catch(() => {});
    await server?.stop("SIGKILL");
  }
  if (problems.length === 0) passed++;
  else failed++;
}

console.log(`outcomes: ${[...outcomes].map(([what, n]) => `${what} ${n}`).join(", ")}`);
if (tmpfs) await new Deno.Command("umount", { args: [dataDir] }).output();
await Deno.remove(root, { recursive: true });
console.log(`${passed} passed, ${failed} failed`);
Deno.exit(failed === 0 ? 0 : 1);
