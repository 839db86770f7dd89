/**
 * Starts a real standalone ZooKeeper (Debian's `zookeeper` package) on 127.0.0.1 for tests and benchmarks:
 * installs the package when missing and running as root, writes a config in a temp dir, waits for `ruok`.
 * `kill()` stops it like a crash and `restart()` brings it back on the same port and data.
 */

import { ensureDebianPackage } from "./debian_package.ts";

export interface ZooKeeperProcess {
  port: number;
  connectString: string;
  dataDir: string;
  /** `kill -9` (the data stays for restart). */
  kill(): Promise<void>;
  /** Start again on the same port and data after kill(). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Options of {@linkcode startZooKeeper}. */
export interface ZooKeeperStartOptions {
  /** ZooKeeper's tick; sessions may last 2 to 20 ticks. Default 2000 ms; tests use less for quick expiry. */
  tickTimeMs?: number;
}

const JARS = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar";

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function fourLetterWord(port: number, word: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(word));
    const buf = new Uint8Array(256);
    const n = await conn.read(buf);
    return new TextDecoder().decode(buf.subarray(0, n ?? 0));
  } finally {
    conn.close();
  }
}

/** Start ZooKeeper with fsync on every write (`forceSync=yes`, its default) so it is compared with durability on. */
export async function startZooKeeper(options: ZooKeeperStartOptions = {}): Promise<ZooKeeperProcess> {
  await ensureDebianPackage("zookeeper", "/usr/share/java/zookeeper.jar");
  const dir = await Deno.makeTempDir({ prefix: "zookeeper-" });
  const port = freePort();
  await Deno.writeTextFile(
    `${dir}/zoo.cfg`,
    [
      `tickTime=${options.tickTimeMs ?? 2000}`,
      `dataDir=${dir}/data`,
      `clientPort=${port}`,
      "clientPortAddress=127.0.0.1",
      "admin.enableServer=false",
      "4lw.commands.whitelist=ruok,srvr,stat",
      "forceSync=yes",
      "maxClientCnxns=0",
    ].join("\n"),
  );
  const spawn = async () => {
    const child = new Deno.Command("java", {
      args: [
        "-cp",
        JARS,
        "-Dzookeeper.log.dir=" + dir,
        "org.apache.zookeeper.server.ZooKeeperServerMain",
        `${dir}/zoo.cfg`,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = performance.now() + 30_000;
    for (;;) {
      if (performance.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error("ZooKeeper did not answer ruok within 30 s");
      }
      try {
        if ((await fourLetterWord(port, "ruok")) === "imok") break;
      } catch {
        // not up yet
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return child;
  };
  let child: Deno.ChildProcess | undefined = await spawn();
  return {
    port,
    connectString: `127.0.0.1:${port}`,
    dataDir: `${dir}/data`,
    async kill() {
      child?.kill("SIGKILL");
      await child?.status;
      child = undefined;
    },
    async restart() {
      if (child === undefined) child = await spawn();
    },
    async stop() {
      if (child !== undefined) {
        const running = child;
        running.kill("SIGTERM");
        const timer = setTimeout(() => running.kill("SIGKILL"), 5000);
        await running.status;
        clearTimeout(timer);
      }
      await Deno.remove(dir, { recursive: true });
    },
  };
}
