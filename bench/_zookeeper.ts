/**
 * Starts a real standalone ZooKeeper (Debian's `zookeeper` package) on 127.0.0.1 for benchmarks and tests:
 * installs the package when missing and running as root, writes a config in a temp dir, waits for `ruok`.
 */

export interface ZooKeeperProcess {
  port: number;
  connectString: string;
  dataDir: string;
  stop(): Promise<void>;
}

const JARS = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar";

async function ensureInstalled(): Promise<void> {
  try {
    await Deno.stat("/usr/share/java/zookeeper.jar");
    return;
  } catch {
    // install below
  }
  if (Deno.uid() !== 0) throw new Error("ZooKeeper is not installed and this is not root: apt-get install zookeeper");
  for (const args of [["update", "-q"], ["install", "-y", "-q", "zookeeper"]]) {
    const result = await new Deno.Command("apt-get", { args, env: { DEBIAN_FRONTEND: "noninteractive" } }).output();
    if (!result.success) {
      throw new Error(`apt-get ${args.join(" ")} failed: ${new TextDecoder().decode(result.stderr)}`);
    }
  }
}

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
export async function startZooKeeper(): Promise<ZooKeeperProcess> {
  await ensureInstalled();
  const dir = await Deno.makeTempDir({ prefix: "zookeeper-" });
  const port = freePort();
  await Deno.writeTextFile(
    `${dir}/zoo.cfg`,
    [
      "tickTime=2000",
      `dataDir=${dir}/data`,
      `clientPort=${port}`,
      "clientPortAddress=127.0.0.1",
      "admin.enableServer=false",
      "4lw.commands.whitelist=ruok,srvr,stat",
      "forceSync=yes",
      "maxClientCnxns=0",
    ].join("\n"),
  );
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
  return {
    port,
    connectString: `127.0.0.1:${port}`,
    dataDir: `${dir}/data`,
    async stop() {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await child.status;
      clearTimeout(timer);
      await Deno.remove(dir, { recursive: true });
    },
  };
}
