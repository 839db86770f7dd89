// The RPC layer as users run it: a real registry process, provider processes, kill -9.
import assert from "node:assert/strict";
import { newUserServiceRpcStub } from "../examples/rpc/user_pb.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import type { Registry } from "../registry/registry.ts";
import { RegistryClient } from "../registry/client/registry_client.ts";
import { startZooKeeper } from "../registry/testdata/zookeeper_server.ts";
import { parseConnectString, ZooKeeperRegistry } from "../registry/zookeeper/zookeeper_registry.ts";
import { RpcChannel } from "./rpc_channel.ts";
import type { RpcError } from "./rpc_error.ts";
import { needs } from "../reactor/testdata/permissions.ts";
import { denoRun, type ReadyProcess, spawnReady } from "../reactor/testdata/spawn_ready.ts";

const REGISTRY_MAIN = new URL("../registry/main.ts", import.meta.url).pathname;
const CALLEE = new URL("../examples/rpc/callee.ts", import.meta.url).pathname;
const DEMO = new URL("../examples/rpc/demo.ts", import.meta.url).pathname;

/** Start a registry or a callee (`deno run -A ...args`) and wait for its `READY <address>`. */
function spawnServer(...args: string[]): Promise<ReadyProcess> {
  return spawnReady(denoRun(...args), { env: { DWT_LOG_LEVEL: "WARN" }, stderr: "null", timeoutMs: 15_000 });
}

Deno.test(
  "deno task demo: registry, two callees and the caller run the seed's calls and exit 0",
  needs("run"),
  async () => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", DEMO],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    assert.equal(output.code, 0, stdout + new TextDecoder().decode(output.stderr));
    assert.match(stdout, /\[caller\] rpc call success: true/);
    assert.match(stdout, /\[caller\] register success: id = \d+/);
    assert.match(stdout, /\[caller\] \t123456__88888/);
    assert.match(stdout, /\[caller\] \t654321__55555/);
    assert.match(stdout, /\[callee\] name: dwt, password: password/);
    assert.match(stdout, /demo ok: every call succeeded/);
  },
);

Deno.test(
  "two UserService providers: round robin reaches both; kill -9 of one mid-load fails over",
  needs("read", "write", "run"),
  async () => {
    const dir = await Deno.makeTempDir();
    const registryConfig = `${dir}/registry.json`;
    await Deno.writeTextFile(
      registryConfig,
      JSON.stringify({ ip: "127.0.0.1", port: 0, heartbeatTimeout: 100, heartbeatMaxCount: 5, dataDir: "" }),
    );
    const registry = await spawnServer(REGISTRY_MAIN, "--config", registryConfig);
    const [registryHost, registryPort] = registry.ready.split(":") as [string, string];
    const loop = new EventLoop();
    const registryClient = await RegistryClient.connect(registry.ready, { loop });
    try {
      // The dead provider leaves the registry once its session expires (5 x 100 ms).
      await roundRobinAndFailover(dir, { dwt_src_ip: registryHost, dwt_src_port: registryPort }, registryClient, 3000);
    } finally {
      await registryClient.close();
      await registry.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "the same on ZooKeeper: providers publish, callers discover and fail over; zkCli.sh reads the layout",
  needs("read", "write", "run", "sys"),
  async () => {
    const dir = await Deno.makeTempDir();
    const zk = await startZooKeeper({ tickTimeMs: 200 });
    const loop = new EventLoop();
    const zookeeper = await ZooKeeperRegistry.connect(zk.connectString, { loop });
    await zookeeper.create("/rpc", "");
    const chrooted = await ZooKeeperRegistry.connect(`${zk.connectString}/rpc`, { loop });
    try {
      // The callees' sessions last 1 s, so the killed one's node goes within about that.
      await roundRobinAndFailover(
        dir,
        { zookeeper_connect: `${zk.connectString}/rpc`, zookeeper_session_timeout_ms: 1000 },
        chrooted,
        4000,
      );
      // ZooKeeper's own CLI reads what providers publish: /<service>/<host:port> with JSON data.
      const { servers } = parseConnectString(zk.connectString);
      const cli = await new Deno.Command("/usr/share/zookeeper/bin/zkCli.sh", {
        args: ["-server", servers[0]!.toString(), "ls", "/rpc"],
        stdout: "piped",
        stderr: "null",
      }).output();
      assert.match(new TextDecoder().decode(cli.stdout), /\[dwt\.UserServiceRpc\]/);
    } finally {
      await chrooted.close();
      await zookeeper.close();
      await zk.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/**
 * Two callee processes configured with `registryKeys`: calls alternate between them; one is killed with -9
 * under load; calls keep succeeding, none outlives its deadline, and the dead one leaves the registry.
 */
async function roundRobinAndFailover(
  dir: string,
  registryKeys: Record<string, unknown>,
  registryClient: Registry,
  expiryBudgetMs: number,
): Promise<void> {
  const calleeConfig = `${dir}/callee.json`;
  await Deno.writeTextFile(
    calleeConfig,
    JSON.stringify({ rpcserver_ip: "127.0.0.1", rpcserver_port: 0, ...registryKeys }),
  );
  const providers = [await spawnServer(CALLEE, "-i", calleeConfig), await spawnServer(CALLEE, "-i", calleeConfig)];
  const loop = EventLoop.current();
  const channel = new RpcChannel({ loop, registry: registryClient, timeoutMs: 1000 });
  try {
    const stub = newUserServiceRpcStub(channel);
    assert.deepEqual((await channel.providersOf("dwt.UserServiceRpc")).sort(), providers.map((p) => p.ready).sort());
    // Round robin: consecutive calls alternate, so both processes serve (each prints doLogin per call).
    const name = new TextEncoder().encode("dwt");
    for (let i = 0; i < 6; i++) {
      const login = await stub.Login({ name, password: new TextEncoder().encode("password") });
      assert.equal(login.success, true);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (const provider of providers) assert.equal(provider.stdout().match(/doLogin/g)?.length, 3, provider.stdout());

    // Load from 8 concurrent loops; kill -9 one provider a second in.
    let ok = 0;
    const failures: string[] = [];
    let slowestMs = 0;
    const until = performance.now() + 3000;
    const killer = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await providers[0]!.stop("SIGKILL");
    })();
    const killedAt = performance.now() + 1000;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (performance.now() < until) {
        const start = performance.now();
        try {
          await stub.Register({ name: new TextEncoder().encode("n"), password: new TextEncoder().encode("p") });
          ok++;
        } catch (error) {
          failures.push(`${(error as RpcError).codeName} at +${Math.round(start - killedAt)} ms`);
        }
        slowestMs = Math.max(slowestMs, performance.now() - start);
      }
    }));
    await killer;
    assert.ok(ok > 500, `only ${ok} calls succeeded`);
    // Only calls already on the wire to the dead provider may fail: at most one per loop.
    assert.ok(failures.length <= 8, `${failures.length} calls failed: ${failures.join(", ")}`);
    assert.ok(slowestMs < 1000 + 300, `a call took ${slowestMs} ms, past its 1000 ms deadline`);
    const deadline = performance.now() + expiryBudgetMs;
    while ((await channel.providersOf("dwt.UserServiceRpc")).length > 1 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual(await channel.providersOf("dwt.UserServiceRpc"), [providers[1]!.ready]);
    assert.equal((await registryClient.children("/dwt.UserServiceRpc")).length, 1);
    const published = JSON.parse(
      new TextDecoder().decode((await registryClient.get(`/dwt.UserServiceRpc/${providers[1]!.ready}`)).data),
    );
    assert.deepEqual(published, { address: providers[1]!.ready, methods: ["Login", "Register"] });
  } finally {
    await channel.close();
    for (const provider of providers) await provider.stop();
  }
}
