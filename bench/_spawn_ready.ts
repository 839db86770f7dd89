/** The benchmarks' one way to start a server process and wait for its `READY <address>` line. */

/** A started server: what followed READY, and how to stop it. */
export interface ReadyProcess {
  /** The word after READY (an address or a port). */
  ready: string;
  /** Its process id. */
  pid: number;
  /** Kill it (SIGTERM by default) and wait for it to exit. */
  stop(signal?: Deno.Signal): Promise<void>;
}

/** Spawn `argv` (stderr passed through) and resolve once it prints `READY <word>`; reject if it exits first. */
export async function spawnReady(argv: string[], env: Record<string, string> = {}): Promise<ReadyProcess> {
  const child = new Deno.Command(argv[0]!, { args: argv.slice(1), stdout: "piped", stderr: "inherit", env }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/READY (\S+)/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${argv.join(" ")} exited before READY`);
    text += value;
  }
  reader.releaseLock();
  return {
    ready: /READY (\S+)/.exec(text)![1]!,
    pid: child.pid,
    async stop(signal: Deno.Signal = "SIGTERM") {
      child.kill(signal);
      await child.status;
      await child.stdout.cancel().catch(() => {});
    },
  };
}

/**
 * A registry process on a free port with durability on (data in a temp dir, removed on stop), or, with
 * `memoryOnly`, keeping the tree in memory only (the seed's semantics).
 */
export async function startRegistry(
  options: { memoryOnly?: boolean } = {},
): Promise<{ address: string; stop(): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "registry-" });
  const main = new URL("../registry/main.ts", import.meta.url).pathname;
  const dataDir = options.memoryOnly ? "" : dir;
  const registry = await spawnReady([Deno.execPath(), "run", "-A", main, "--port", "0", "--data-dir", dataDir], {
    DWT_LOG_LEVEL: "WARN",
  });
  return {
    address: registry.ready,
    async stop() {
      await registry.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * Pin the main thread of process `pid` to `cpu` (Linux `taskset`), leaving its other threads (I/O, GC) free. With
 * a client and a server ping-ponging on a 2-core machine the scheduler otherwise often puts both main threads on
 * one core (wake-affine), and the same run then measures half as fast. Returns false where pinning is not
 * possible (no taskset, one core); the benchmark runs unpinned then.
 */
export async function pinMainThread(pid: number, cpu: number): Promise<boolean> {
  if (navigator.hardwareConcurrency < 2) return false;
  // Threads made after the pin inherit it: wait until the runtime has started its helper threads (their number
  // stops growing), so only the main thread is pinned.
  const threads = async () => {
    try {
      return (await Array.fromAsync(Deno.readDir(`/proc/${pid}/task`))).length;
    } catch {
      return 0;
    }
  };
  let last = -1;
  let stable = 0;
  for (let i = 0; i < 50 && stable < 3; i++) {
    const count = await threads();
    stable = count === last && count > 1 ? stable + 1 : 0;
    last = count;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  try {
    const { success } = await new Deno.Command("taskset", {
      args: ["-p", "-c", String(cpu), String(pid)],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false; // no taskset
  }
}
