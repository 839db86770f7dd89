/** What the benchmarks add to `spawnReady`: a registry process to measure, and CPU pinning. */
import { denoRun, spawnReady } from "../reactor/testdata/spawn_ready.ts";

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
  const registry = await spawnReady(denoRun(main, "--port", "0", "--data-dir", dataDir), {
    env: { DWT_LOG_LEVEL: "WARN" },
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
