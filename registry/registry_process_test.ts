// The registry as users run it: a real server process, real CLI processes, kill -9.
import assert from "node:assert/strict";
import { EventLoop } from "../reactor/event_loop.ts";
import { NodeType } from "./server/data_tree.ts";
import { RegistryClient } from "./client/registry_client.ts";
import { needs } from "../reactor/testdata/permissions.ts";
import { denoRun, type ReadyProcess, spawnReady } from "../reactor/testdata/spawn_ready.ts";
import { until } from "../reactor/testdata/until.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;
const CLI = new URL("./cli.ts", import.meta.url).pathname;

/** A registry process (`main.ts --config`) with `config` over a free port on 127.0.0.1, once it prints READY. */
async function startServer(config: Record<string, unknown>, dir: string): Promise<ReadyProcess> {
  const configPath = `${dir}/registry-${crypto.randomUUID()}.json`;
  await Deno.writeTextFile(configPath, JSON.stringify({ ip: "127.0.0.1", port: 0, log_level: "WARN", ...config }));
  return await spawnReady(denoRun(MAIN, "--config", configPath), { timeoutMs: 15_000 });
}

async function cli(address: string, ...words: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "--server", address, ...words],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout).trim(),
    stderr: decoder.decode(output.stderr).trim(),
  };
}

/** An interactive CLI process that creates an ephemeral node and then just stays (heartbeating). */
async function ephemeralHolder(address: string, path: string): Promise<ReadyProcess> {
  return await spawnReady(denoRun(CLI, "--server", address), {
    input: `create ${path} held 2\n`,
    readyPattern: new RegExp(`Created ${path}`),
  });
}

Deno.test(
  "registry: the seed's CLI session, and a silent client's ephemeral node disappears",
  needs("read", "write", "run"),
  async () => {
    const dir = await Deno.makeTempDir();
    const server = await startServer({ heartbeatTimeout: 100, heartbeatMaxCount: 5, dataDir: `${dir}/data` }, dir);
    try {
      assert.equal((await cli(server.ready, "create", "/node01", "data01")).stdout, "Created /node01");
      assert.equal((await cli(server.ready, "create", "/node01/func01")).stdout, "Created /node01/func01");
      const holder = await ephemeralHolder(server.ready, "/node02");
      assert.equal((await cli(server.ready, "ls", "/")).stdout, "[node01, node02]");
      assert.match((await cli(server.ready, "stat", "/node02")).stdout, /nodeType: 2 \(ephemeral\)/);
      await holder.stop("SIGKILL"); // its heartbeats stop
      const deadline = performance.now() + 5000;
      let listing = "";
      while (performance.now() < deadline) {
        listing = (await cli(server.ready, "ls", "/")).stdout;
        if (listing === "[node01]") break;
      }
      assert.equal(listing, "[node01]");
      assert.equal((await cli(server.ready, "get", "/node01")).stdout, "data01");
      const missing = await cli(server.ready, "get", "/node02");
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /NO_NODE: Cannot get '\/node02' as it does not exist/);
    } finally {
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "registry: with heartbeatTimeout 200 ms and max 5, a kill -9'd client's node goes after 1.0-1.5 s",
  needs("read", "write", "run"),
  async () => {
    const dir = await Deno.makeTempDir();
    const server = await startServer({ heartbeatTimeout: 200, heartbeatMaxCount: 5, dataDir: "" }, dir);
    const loop = new EventLoop();
    const observer = await RegistryClient.connect(server.ready, { loop });
    try {
      const holders = await Promise.all([1, 2, 3].map((i) => ephemeralHolder(server.ready, `/eph${i}`)));
      for (const [i, holder] of holders.entries()) {
        // Let a few heartbeats flow, then kill at a random point of the heartbeat cycle.
        await new Promise((resolve) => setTimeout(resolve, 150 + Math.random() * 100));
        const killedAt = performance.now();
        await holder.stop("SIGKILL");
        let goneAt = 0;
        while (performance.now() - killedAt < 3000) {
          if ((await observer.exists(`/eph${i + 1}`)) === undefined) {
            goneAt = performance.now();
            break;
          }
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        const elapsedMs = goneAt - killedAt;
        assert.ok(goneAt > 0 && elapsedMs >= 1000 && elapsedMs <= 1500, `node ${i + 1} went after ${elapsedMs} ms`);
      }
    } finally {
      await observer.close();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "registry: 200 live sessions keep their nodes for 10 s while the server serves reads",
  needs("read", "write", "run"),
  async () => {
    const dir = await Deno.makeTempDir();
    const server = await startServer({ heartbeatTimeout: 200, heartbeatMaxCount: 5, dataDir: "" }, dir);
    const loop = new EventLoop();
    const clients: RegistryClient[] = [];
    try {
      const admin = await RegistryClient.connect(server.ready, { loop });
      clients.push(admin);
      await admin.create("/live", "");
      for (let i = 0; i < 200; i++) {
        const client = await RegistryClient.connect(server.ready, { loop });
        clients.push(client);
        await client.create(`/live/s${i}`, "", { nodeType: NodeType.EPHEMERAL });
      }
      const reader = await RegistryClient.connect(server.ready, { loop });
      clients.push(reader);
      let reads = 0;
      const endAt = performance.now() + 10_000;
      while (performance.now() < endAt) {
        // 32 reads in flight at a time keep the server busy.
        await Promise.all(Array.from({ length: 32 }, () => reader.children("/live").then(() => reads++)));
      }
      assert.equal((await admin.children("/live")).length, 200);
      assert.ok(reads > 1000, `only ${reads} reads in 10 s`);
    } finally {
      for (const client of clients) await client.close();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "registry: a kill -9 of the server loses no acknowledged persistent write",
  needs("read", "write", "run"),
  async () => {
    const dir = await Deno.makeTempDir();
    const config = { dataDir: `${dir}/data`, snapshotEveryTxns: 300 };
    let server = await startServer(config, dir);
    const loop = new EventLoop();
    const acknowledged: string[] = [];
    const client = await RegistryClient.connect(server.ready, { loop, reconnectDelayMs: 50 });
    await client.create("/durable", "");
    acknowledged.push("/durable");
    // Keep 32 creates in flight, kill -9 the server in the middle of it.
    let next = 0;
    const writer = async () => {
      while (next < 5000) {
        const path = `/durable/n${next++}`;
        try {
          await client.create(path, `value of ${path}`);
          acknowledged.push(path);
        } catch {
          return; // the server is gone
        }
      }
    };
    const writers = Array.from({ length: 32 }, writer);
    while (acknowledged.length < 800) await new Promise((resolve) => setTimeout(resolve, 5));
    await server.stop("SIGKILL");
    await Promise.all(writers);
    await client.close();
    assert.ok(acknowledged.length >= 800);

    server = await startServer(config, dir);
    const reader = await RegistryClient.connect(server.ready, { loop });
    try {
      const children = new Set(await reader.children("/durable"));
      const lost = acknowledged.filter((path) => path !== "/durable" && !children.has(path.slice("/durable/".length)));
      assert.deepEqual(lost, [], `${lost.length} acknowledged writes were lost`);
      assert.equal(await reader.getString(acknowledged.at(-1)!), `value of ${acknowledged.at(-1)}`);
    } finally {
      await reader.close();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("registry: a bad config file names the key and the file", needs("read", "write", "run"), async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/bad.json`;
  await Deno.writeTextFile(path, JSON.stringify({ ip: "127.0.0.1", port: "70000" }));
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "--config", path],
    stderr: "piped",
  })
    .output();
  assert.equal(output.code, 2);
  assert.match(
    new TextDecoder().decode(output.stderr),
    new RegExp(`${path}.*'port' must be an integer in \\[0, 65535\\]: current value is "70000"`),
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test(
  "registry: a client frozen past its session timeout learns of the expiry and re-creates its node",
  needs("read", "write", "run"),
  async () => {
    const dir = await Deno.makeTempDir();
    const server = await startServer({ heartbeatTimeout: 100, heartbeatMaxCount: 3, dataDir: "" }, dir);
    const loop = new EventLoop();
    const observer = await RegistryClient.connect(server.ready, { loop });
    const holderMain = new URL("./testdata/ephemeral_holder.ts", import.meta.url).pathname;
    let holder: ReadyProcess | undefined;
    try {
      holder = await spawnReady(denoRun(holderMain, server.ready, "/held"), { timeoutMs: 10_000 });
      const firstOwner = (await observer.stat("/held")).ephemeralOwner;
      Deno.kill(holder.pid, "SIGSTOP"); // no heartbeats, no reads: the session expires
      await until(async () => (await observer.exists("/held")) === undefined, 5000, "the frozen holder's node to go");
      Deno.kill(holder.pid, "SIGCONT");
      const { stdout } = holder;
      await until(() => /expired[\s\S]*recreated/.test(stdout()), 10_000, "the holder to see its expiry and recreate");
      const secondOwner = (await observer.stat("/held")).ephemeralOwner;
      assert.notEqual(secondOwner, firstOwner);
    } finally {
      await holder?.stop("SIGKILL");
      await observer.close();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
