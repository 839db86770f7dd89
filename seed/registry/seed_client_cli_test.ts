// The seed's client_cli (an emulation written from the spec) against the registry program started with the config
// key seedPort: every command, a native watcher alongside, and the program without the key listening for nobody.
import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { needs } from "../../reactor/testdata/permissions.ts";
import { denoRun, type ReadyProcess, spawnReady } from "../../reactor/testdata/spawn_ready.ts";
import { RegistryClient, type WatchedEvent } from "../../registry/client/registry_client.ts";
import { EventType } from "../../registry/registry.ts";

const MAIN = new URL("../../registry/main.ts", import.meta.url).pathname;
const CLI = new URL("../testdata/seed_client_cli.ts", import.meta.url).pathname;

/** A port free on TCP and UDP a moment ago. */
function freePort(): number {
  for (;;) {
    const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (tcp.addr as Deno.NetAddr).port;
    try {
      Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port }).close();
      return port;
    } catch {
      // Its UDP twin is taken: another one.
    } finally {
      tcp.close();
    }
  }
}

async function startRegistry(dir: string, config: Record<string, unknown>): Promise<ReadyProcess> {
  const path = `${dir}/registry-${crypto.randomUUID()}.json`;
  await Deno.writeTextFile(path, JSON.stringify({ ip: "127.0.0.1", port: 0, log_level: "WARN", ...config }));
  return await spawnReady(denoRun(MAIN, "--config", path), { timeoutMs: 20_000 });
}

async function runCli(port: number, script: string): Promise<{ code: number; stdout: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI],
    env: { SEED_CLI_PORT: String(port), SEED_CLI_INTERVAL_MS: "10000" },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const output = await child.output();
  return { code: output.code, stdout: new TextDecoder().decode(output.stdout) };
}

// Log lines carry the time: compare them without it.
function withoutTimes(text: string): string {
  return text.replace(/\] \d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d : /g, "] <time> : ");
}

Deno.test(
  "client_cli against the registry program with seedPort: every command, seen by a native watcher",
  needs("read", "write", "run"),
  async () => {
    const dir = await Deno.makeTempDir();
    let registry: ReadyProcess | undefined;
    for (let attempt = 0; registry === undefined; attempt++) {
      try {
        registry = await startRegistry(dir, { seedPort: freePort(), dataDir: `${dir}/data` });
      } catch (error) {
        if (attempt >= 3) throw error; // the free port was taken meanwhile: pick another
      }
    }
    const seedPort = Number(/^SEED 127\.0\.0\.1:(\d+)$/m.exec(registry.stdout())![1]);
    const loop = new EventLoop();
    const native = await RegistryClient.connect(registry.ready, { loop });
    try {
      await native.create("/native", "from-ts");
      const events: WatchedEvent[] = [];
      await native.children("/", { watch: (event) => events.push(event) });
      const script = [
        "create /node01 data01",
        "create /node01/func01 127.0.0.1:8800 2",
        "create /node01 again",
        "get /node01",
        "get /native",
        "get /missing",
        "set /node01 data02",
        "get /node01",
        "ls /",
        "ls /node01",
        "stat /node01",
        "exists /node01/func01",
        "exists /missing",
        "delete /node01",
        "bogus",
        "delete /node01/func01",
        "",
        "ls /node01",
      ].join("\n") + "\n";
      const { code, stdout } = await runCli(seedPort, script);
      assert.equal(code, 0);
      const lines = withoutTimes(stdout).split("\n");
      assert.match(lines[0]!, new RegExp(`^addr: 127\\.0\\.0\\.1:${seedPort} interval=10$`));
      assert.match(lines[1]!, /^\[INFO {2}\] <time> : connect success, sessionId = \d+$/);
      assert.equal(
        lines.slice(2).join("\n"),
        [
          "SRCCLI$ create success",
          "SRCCLI$ create success",
          "SRCCLI$ [WARN  ] <time> : request failed: node already exists",
          "create error",
          "SRCCLI$ data01",
          "SRCCLI$ from-ts",
          "SRCCLI$ [WARN  ] <time> : request failed: node not exists",
          "",
          "SRCCLI$ set success",
          "SRCCLI$ data02",
          "SRCCLI$ [native, node01]",
          "SRCCLI$ [func01]",
          "SRCCLI$ nodeType: 1",
          "dataLength: 6",
          "numChildren: 1",
          "ephemeralOwner: 0",
          "",
          "SRCCLI$ exists",
          "SRCCLI$ not exists",
          "SRCCLI$ [WARN  ] <time> : request failed: node not empty: delete its children first (this registry does " +
          "not delete subtrees)",
          "set error",
          "SRCCLI$ invalid operation",
          "set success",
          // The empty line repeats `delete` with no path.
          "SRCCLI$ [WARN  ] <time> : request failed: path error",
          "set error",
          "SRCCLI$ []",
          "SRCCLI$ ",
        ].join("\n"),
      );
      assert.deepEqual(events.map((event) => `${event.type} ${event.path}`), [`${EventType.NODE_CHILDREN_CHANGED} /`]);
      assert.equal(await native.getString("/node01"), "data02");
      assert.deepEqual(await native.children("/node01"), []);
    } finally {
      await native.close();
      await registry.stop();
    }
    // Restarted on the same data directory, without seedPort: the node is there, and nothing listens for seed clients.
    const again = await startRegistry(dir, { dataDir: `${dir}/data` });
    try {
      assert.doesNotMatch(again.stdout(), /^SEED /m);
      const reader = await RegistryClient.connect(again.ready, { loop });
      assert.equal(await reader.getString("/node01"), "data02");
      await reader.close();
      const { code, stdout } = await runCli(seedPort, "ls /\n");
      assert.equal(code, 255); // the seed's client exits when it cannot connect
      assert.match(stdout, /\[FATAL \] .* : connect error/);
    } finally {
      await again.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
