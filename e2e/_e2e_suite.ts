/**
 * End-to-end scenarios of the reactor, the registry and the RPC layer that run unchanged on Deno, Node (through
 * tsx) and Bun: only the framework's own APIs and its backend, real sockets on 127.0.0.1, real child processes
 * on the same runtime. `deno test` runs them through e2e_test.ts; on the other runtimes run this file:
 *
 *   npx tsx e2e/_e2e_suite.ts        npx bun e2e/_e2e_suite.ts
 *
 * It prints a line per scenario and ends with `N passed, M failed` (exit status 1 on any failure).
 */

import assert from "node:assert/strict";
import { defaultBackend } from "../reactor/backend/default.ts";
import type { ChildProcessHandle } from "../reactor/backend/net_backend.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import { InetAddress } from "../reactor/inet_address.ts";
import { LengthHeaderCodec } from "../reactor/length_header_codec.ts";
import { getLogger, LogLevel } from "../reactor/logger.ts";
import { TcpClient } from "../reactor/tcp_client.ts";
import { TcpServer } from "../reactor/tcp_server.ts";
import { UdpSocket } from "../reactor/udp_socket.ts";
import { NodeType } from "../registry/server/data_tree.ts";
import { RegistryClient } from "../registry/client/registry_client.ts";
import { RegistryServer } from "../registry/server/registry_server.ts";
import type { WatchedEvent } from "../registry/client/registry_client.ts";
import { newUserServiceRpcStub } from "../examples/rpc/user_pb.ts";
import {
  type BidiStreamingStubMethod,
  type ClientStreamingStubMethod,
  RpcChannel,
  type ServerStreamingStubMethod,
} from "../rpc/rpc_channel.ts";
import { RpcCode, RpcError } from "../rpc/rpc_error.ts";
import { type CallContext, RpcProvider } from "../rpc/rpc_provider.ts";
import { parseProto, serviceDefinition } from "../rpc/service_definition.ts";
import { until } from "../reactor/testdata/until.ts";

const backend = defaultBackend();
const here = new URL(".", import.meta.url);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One scenario: a name and a body that throws on failure. */
export interface Scenario {
  name: string;
  /** What it needs under Deno beyond --allow-net (Workers read their module); e2e_test.ts skips it without them. */
  permissions?: readonly ("read" | "write" | "run")[];
  run(): Promise<void>;
}

/** A fresh directory under the repo's tmp/ (ignored by git). */
async function tempDir(name: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = new URL(`../tmp/e2e-${name}-${backend.process.pid}-${Date.now()}`, here).pathname;
  await backend.fs.mkdir(path);
  return {
    path,
    async remove() {
      for (const entry of await backend.fs.readDir(path)) await backend.fs.remove(`${path}/${entry}`);
    },
  };
}

/** A child process on this same runtime, with its output kept and a `READY <word>` line awaited. */
interface Child {
  handle: ChildProcessHandle;
  ready: string;
  output(): string;
  kill(signal?: "SIGTERM" | "SIGKILL"): Promise<number>;
}

async function spawnReady(module: string, args: string[]): Promise<Child> {
  const handle = backend.process.spawn([...backend.process.commandFor(new URL(module, here).href), ...args], {
    env: { DWT_LOG_LEVEL: "WARN", NO_COLOR: "1" },
  });
  let text = "";
  const ready = Promise.withResolvers<string>();
  (async () => {
    for await (const line of handle.stdout) {
      text += `${line}\n`;
      const match = /^READY ?(\S*)/.exec(line);
      if (match !== null) ready.resolve(match[1]!);
    }
    ready.reject(new Error(`${module} ended before READY: ${text}`));
  })();
  (async () => {
    for await (const line of handle.stderr) text += `${line}\n`;
  })();
  const timer = setTimeout(() => ready.reject(new Error(`no READY from ${module} within 20 s: ${text}`)), 20_000);
  try {
    const word = await ready.promise;
    return {
      handle,
      ready: word,
      output: () => text,
      kill(signal = "SIGTERM") {
        handle.kill(signal);
        return handle.exited;
      },
    };
  } catch (error) {
    handle.kill("SIGKILL");
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

const ECHO = serviceDefinition(
  parseProto(`
    syntax = "proto3";
    package e2e;
    message Msg { string text = 1; uint32 delay_ms = 2; }
    service Echo { rpc Say (Msg) returns (Msg); rpc Slow (Msg) returns (Msg); }
  `),
  "e2e.Echo",
);

const STREAMS = serviceDefinition(
  parseProto(`
    syntax = "proto3";
    package e2e;
    message Part { uint32 n = 1; bytes data = 2; string text = 3; }
    service Streams {
      rpc Count (Part) returns (stream Part);
      rpc Upload (stream Part) returns (Part);
      rpc Chat (stream Part) returns (stream Part);
    }
  `),
  "e2e.Streams",
);

interface Part {
  n: number;
  data: Uint8Array;
  text: string;
}

interface StreamsStub {
  Count: ServerStreamingStubMethod<Partial<Part>, Part>;
  Upload: ClientStreamingStubMethod<Partial<Part>, Part>;
  Chat: BidiStreamingStubMethod<Partial<Part>, Part>;
}

export const scenarios: Scenario[] = [
  {
    name: "reactor: timers fire in time order; runEvery stops when cancelled",
    async run() {
      const loop = new EventLoop();
      const fired: number[] = [];
      // One clock reading for all three, so a pause between the calls (a loaded machine) cannot reorder them.
      const now = loop.now();
      loop.runAt(now + 30, () => fired.push(30));
      loop.runAt(now + 10, () => fired.push(10));
      loop.runAt(now + 20, () => fired.push(20));
      let ticks = 0;
      const every = loop.runEvery(5, () => void ticks++);
      await sleep(60);
      loop.cancel(every);
      const seen = ticks;
      await sleep(30);
      assert.deepEqual(fired, [10, 20, 30]);
      assert.ok(seen >= 3, `runEvery ticked ${seen} times in 60 ms`);
      assert.equal(ticks, seen);
    },
  },
  {
    name: "reactor: TcpServer and TcpClient exchange 100 framed messages up to 1 MiB",
    async run() {
      const loop = new EventLoop();
      const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "e2e-echo");
      const serverCodec = new LengthHeaderCodec((connection, body) => serverCodec.send(connection, body));
      server.setMessageCallback(serverCodec.onMessage);
      await server.start();
      const received: number[] = [];
      const clientCodec = new LengthHeaderCodec((_connection, body) => received.push(body.length));
      const client = new TcpClient(loop, server.address, "e2e-client");
      client.setMessageCallback(clientCodec.onMessage);
      const sizes = Array.from({ length: 100 }, (_, i) => (i === 99 ? 1024 * 1024 : i * 37));
      client.setConnectionCallback((connection) => {
        if (connection.connected) {
          for (const size of sizes) clientCodec.send(connection, new Uint8Array(size).fill(7));
        }
      });
      client.connect();
      try {
        await until(() => received.length === sizes.length, 10_000, "100 echoes");
        assert.deepEqual(received, sizes);
      } finally {
        await client.close();
        await server.stop();
      }
    },
  },
  {
    name: "reactor: UDP datagrams go both ways",
    async run() {
      const loop = new EventLoop();
      const a = await UdpSocket.bind(loop, new InetAddress("127.0.0.1", 0));
      const b = await UdpSocket.bind(loop, new InetAddress("127.0.0.1", 0));
      const got: string[] = [];
      b.setMessageCallback((data, from) => {
        got.push(new TextDecoder().decode(data));
        b.send(data, from);
      });
      a.setMessageCallback((data) => got.push(`back:${new TextDecoder().decode(data)}`));
      a.send(new TextEncoder().encode("ping"), b.address);
      try {
        await until(() => got.length === 2, 10_000, "the datagram and its echo");
        assert.deepEqual(got, ["ping", "back:ping"]);
      } finally {
        await a.close();
        await b.close();
      }
    },
  },
  {
    name: "reactor: a server asked for 2 threads serves (Workers with SO_REUSEPORT, or one loop where missing)",
    permissions: ["read"],
    async run() {
      const loop = new EventLoop();
      const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "e2e-threads");
      server.setThreadNum(2);
      server.setThreadInit(new URL("./_echo_thread_init.ts", here).href, "init");
      await server.start();
      const echoed = Promise.withResolvers<string>();
      const client = new TcpClient(loop, server.address, "e2e-threads-client");
      client.setConnectionCallback((connection) => connection.connected && connection.send("hello"));
      client.setMessageCallback((_connection, buffer) => echoed.resolve(buffer.retrieveAllAsString()));
      client.connect();
      try {
        assert.equal(await echoed.promise, "hello");
        assert.equal(server.runningThreads, backend.supportsReusePort ? 2 : 0);
      } finally {
        await client.close();
        await server.stop();
      }
    },
  },
  {
    name: "registry: nodes, versions, watches and ephemerals; persistent nodes survive a restart",
    permissions: ["read", "write"],
    async run() {
      const loop = new EventLoop();
      const dir = await tempDir("registry");
      let server = new RegistryServer({ port: 0, loop, dataDir: dir.path, heartbeatTimeoutMs: 100 });
      await server.start();
      try {
        const client = await RegistryClient.connect(server.address, { loop });
        const other = await RegistryClient.connect(server.address, { loop });
        await client.create("/svc", "root");
        await client.create("/svc/eph", "e", { nodeType: NodeType.EPHEMERAL });
        const events: WatchedEvent[] = [];
        await client.children("/svc", { watch: (event) => events.push(event) });
        await other.create("/svc/p", "1");
        await until(() => events.length === 1, 10_000, "the children watch");
        assert.equal((await other.set("/svc/p", "2", { version: 0 })).version, 1);
        await assert.rejects(other.set("/svc/p", "3", { version: 0 }), /BAD_VERSION|version/i);
        await client.close();
        await until(async () => (await other.exists("/svc/eph")) === undefined, 10_000, "the ephemeral node to go");
        await other.close();
        await server.stop();
        server = new RegistryServer({ port: 0, loop, dataDir: dir.path });
        await server.start();
        const after = await RegistryClient.connect(server.address, { loop });
        assert.deepEqual(await after.children("/svc"), ["p"]);
        assert.equal(new TextDecoder().decode((await after.get("/svc/p")).data), "2");
        await after.close();
      } finally {
        await server.stop();
        await dir.remove();
      }
    },
  },
  {
    name: "registry: a kill -9'd client's ephemeral node expires (registry and client as processes)",
    permissions: ["read", "write", "run"],
    async run() {
      const dir = await tempDir("expiry");
      const config = `${dir.path}/registry.json`;
      await backend.fs.writeFile(
        config,
        new TextEncoder().encode(
          JSON.stringify({ ip: "127.0.0.1", port: 0, heartbeatTimeout: 100, heartbeatMaxCount: 5, dataDir: "" }),
        ),
      );
      const registry = await spawnReady("../registry/main.ts", ["--config", config]);
      const loop = new EventLoop();
      const observer = await RegistryClient.connect(registry.ready, { loop });
      try {
        const holder = await spawnReady("../registry/testdata/ephemeral_holder.ts", [registry.ready, "/held"]);
        assert.notEqual(await observer.exists("/held"), undefined);
        const killedAt = performance.now();
        await holder.kill("SIGKILL");
        await until(async () => (await observer.exists("/held")) === undefined, 5000, "the expiry");
        const elapsed = performance.now() - killedAt;
        assert.ok(elapsed >= 300, `expired after only ${elapsed} ms`);
      } finally {
        await observer.close();
        await registry.kill();
        await dir.remove();
      }
    },
  },
  {
    name: "rpc: provider and channel through the registry: calls, errors, deadlines, 500 concurrent calls",
    async run() {
      const loop = new EventLoop();
      const server = new RegistryServer({ port: 0, loop });
      await server.start();
      const providerRegistry = await RegistryClient.connect(server.address, { loop });
      const callerRegistry = await RegistryClient.connect(server.address, { loop });
      const provider = new RpcProvider({ loop, registry: providerRegistry });
      provider.registerService(ECHO, {
        Say: (request: { text: string }) => ({ text: `echo ${request.text}` }),
        Slow: async (request: { delayMs: number }, context: { signal: AbortSignal }) => {
          await new Promise((resolve) => {
            const timer = setTimeout(resolve, request.delayMs);
            context.signal.addEventListener("abort", () => (clearTimeout(timer), resolve(undefined)));
          });
          return {};
        },
      });
      await provider.start();
      const channel = new RpcChannel({ loop, registry: callerRegistry });
      try {
        const stub = channel.stub<{ Say: (r: object, o?: object) => Promise<{ text: string }>; Slow: typeof Object }>(
          ECHO,
        );
        assert.equal((await stub.Say({ text: "hi" })).text, "echo hi");
        await assert.rejects(channel.call("e2e.Echo", "Nope", new Uint8Array(0)), (error: unknown) => {
          assert.ok(error instanceof RpcError);
          assert.equal(error.code, RpcCode.UNIMPLEMENTED);
          return true;
        });
        const start = performance.now();
        await assert.rejects(
          (stub as unknown as { Slow(r: object, o: object): Promise<unknown> }).Slow({ delayMs: 2000 }, {
            timeoutMs: 100,
          }),
          (error: unknown) => error instanceof RpcError && error.code === RpcCode.DEADLINE_EXCEEDED,
        );
        assert.ok(performance.now() - start < 1000);
        const results = await Promise.all(Array.from({ length: 500 }, (_, i) => stub.Say({ text: String(i) })));
        results.forEach((result, i) => assert.equal(result.text, `echo ${i}`));
      } finally {
        await channel.close();
        await provider.stop({ graceMs: 100 });
        await providerRegistry.close();
        await callerRegistry.close();
        await server.stop();
      }
    },
  },
  {
    name: "rpc streams through the registry: server, client and bidirectional; flow control; break cancels",
    async run() {
      const loop = new EventLoop();
      const server = new RegistryServer({ port: 0, loop });
      await server.start();
      const providerRegistry = await RegistryClient.connect(server.address, { loop });
      const callerRegistry = await RegistryClient.connect(server.address, { loop });
      const CHUNK_BYTES = 16 * 1024;
      const CHUNKS = 64; // 1 MiB: 16 windows of 64 KiB
      let produced = 0;
      let consumed = 0;
      let mostAhead = 0;
      let countEnded = Promise.withResolvers<string>(); // how the latest Count handler ended
      const provider = new RpcProvider({ loop, registry: providerRegistry });
      provider.registerService(STREAMS, {
        // n > 0: that many messages then the end, with trailers; n = 0: no end, until the caller goes away.
        Count: async function* (request: Part, context: CallContext) {
          try {
            for (let n = 0; request.n === 0 || n < request.n; n++) {
              yield { n };
              if (request.n === 0) await sleep(1);
            }
            context.responseMetadata["count"] = String(request.n);
          } finally {
            countEnded.resolve(context.signal.aborted ? "aborted" : "ended");
          }
        },
        // A slow reader: the caller can only be a window ahead of it.
        Upload: async (requests: AsyncIterable<Part>) => {
          let bytes = 0;
          for await (const part of requests) {
            consumed++;
            mostAhead = Math.max(mostAhead, produced - consumed);
            bytes += part.data.length;
            if (consumed % 8 === 0) await sleep(5);
          }
          return { n: consumed, text: String(bytes) };
        },
        Chat: async function* (requests: AsyncIterable<Part>) {
          for await (const part of requests) yield { n: part.n + 1, text: `re: ${part.text}` };
        },
      });
      await provider.start();
      const channel = new RpcChannel({ loop, registry: callerRegistry });
      // Streams have no deadline unless the call gives one: each here gets one, so a stuck stream fails the scenario.
      const timeoutMs = 20_000;
      try {
        const stub = channel.stub<StreamsStub>(STREAMS);

        // Server streaming: 10,000 messages in order, then the trailers.
        let expected = 0;
        let trailers: Record<string, string> = {};
        for await (
          const part of stub.Count({ n: 10_000 }, {
            timeoutMs,
            onTrailers: (metadata) => trailers = metadata,
          })
        ) {
          assert.equal(part.n, expected++);
        }
        assert.equal(expected, 10_000);
        assert.equal(trailers["count"], "10000");
        assert.equal(await countEnded.promise, "ended");

        // Client streaming: 1 MiB from a fast writer to a slow reader. The reader's 64 KiB window holds 3 chunks
        // (16 KiB + 16 bytes each), and the writer holds one more while it waits for credit: never 5 ahead.
        const chunks = async function* () {
          for (let i = 0; i < CHUNKS; i++) {
            produced++;
            yield { data: new Uint8Array(CHUNK_BYTES).fill(i) };
          }
        };
        const summary = await stub.Upload(chunks(), { timeoutMs });
        assert.equal(summary.n, CHUNKS);
        assert.equal(summary.text, String(CHUNKS * CHUNK_BYTES));
        assert.ok(mostAhead <= 4, `the writer ran ${mostAhead} chunks ahead of the reader`);
        // Messages larger than the provider's whole window go, one at a time.
        const large = await stub.Upload([{ data: new Uint8Array(100_000) }, { data: new Uint8Array(300_000) }], {
          timeoutMs,
        });
        assert.equal(large.text, "400000");

        // Bidirectional: a ping-pong, each message sent only after the reply to the one before came back.
        let reply = Promise.withResolvers<void>();
        const pings = async function* () {
          for (let n = 0; n < 100; n += 2) {
            yield { n, text: `ping ${n}` };
            await reply.promise;
            reply = Promise.withResolvers<void>();
          }
        };
        const pongs: number[] = [];
        for await (const pong of stub.Chat(pings(), { timeoutMs })) {
          pongs.push(pong.n);
          reply.resolve();
        }
        assert.deepEqual(pongs, Array.from({ length: 50 }, (_, i) => 2 * i + 1));

        // A break out of the caller's loop cancels the stream: the handler's signal fires, its finally runs.
        countEnded = Promise.withResolvers<string>();
        let seen = 0;
        for await (const _ of stub.Count({ n: 0 }, { timeoutMs })) if (++seen === 5) break;
        assert.equal(await countEnded.promise, "aborted");
      } finally {
        await channel.close();
        await provider.stop({ graceMs: 100 });
        await providerRegistry.close();
        await callerRegistry.close();
        await server.stop();
      }
    },
  },
  {
    name: "rpc: two provider processes share calls; kill -9 of one fails over to the other",
    permissions: ["read", "write", "run"],
    async run() {
      const dir = await tempDir("failover");
      const registryConfig = `${dir.path}/registry.json`;
      const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
      await backend.fs.writeFile(
        registryConfig,
        encode({ ip: "127.0.0.1", port: 0, heartbeatTimeout: 100, heartbeatMaxCount: 5, dataDir: "" }),
      );
      const registry = await spawnReady("../registry/main.ts", ["--config", registryConfig]);
      const [host, port] = registry.ready.split(":");
      const calleeConfig = `${dir.path}/callee.json`;
      await backend.fs.writeFile(
        calleeConfig,
        encode({ rpcserver_ip: "127.0.0.1", rpcserver_port: 0, dwt_src_ip: host, dwt_src_port: port }),
      );
      const providers: Child[] = [];
      const loop = new EventLoop();
      const registryClient = await RegistryClient.connect(registry.ready, { loop });
      const channel = new RpcChannel({ loop, registry: registryClient, timeoutMs: 1000 });
      try {
        providers.push(await spawnReady("../examples/rpc/callee.ts", ["-i", calleeConfig]));
        providers.push(await spawnReady("../examples/rpc/callee.ts", ["-i", calleeConfig]));
        const stub = newUserServiceRpcStub(channel);
        const bytes = (text: string) => new TextEncoder().encode(text);
        await until(
          async () => (await channel.providersOf("dwt.UserServiceRpc")).length === 2,
          10_000,
          "both providers listed",
        );
        for (let i = 0; i < 6; i++) {
          assert.equal((await stub.Login({ name: bytes("a"), password: bytes("b") })).success, true);
        }
        await until(
          () => providers.every((p) => (p.output().match(/doLogin/g)?.length ?? 0) === 3),
          10_000,
          "both served",
        );
        let ok = 0;
        let failed = 0;
        const loadUntil = performance.now() + 1500;
        const killer = sleep(500).then(() => providers[0]!.kill("SIGKILL"));
        await Promise.all(Array.from({ length: 4 }, async () => {
          while (performance.now() < loadUntil) {
            try {
              await stub.Register({ name: bytes("n"), password: bytes("p") });
              ok++;
            } catch {
              failed++;
            }
          }
        }));
        await killer;
        assert.ok(ok > 100, `only ${ok} calls succeeded`);
        assert.ok(failed <= 4, `${failed} calls failed`);
        await until(
          async () => (await registryClient.children("/dwt.UserServiceRpc")).length === 1,
          5000,
          "the dead provider to leave the registry",
        );
      } finally {
        await channel.close();
        await registryClient.close();
        for (const provider of providers) await provider.kill();
        await registry.kill();
        await dir.remove();
      }
    },
  },
  {
    name: "the demo: registry, two callees and the caller; every call succeeds",
    permissions: ["run"],
    async run() {
      const handle = backend.process.spawn(backend.process.commandFor(new URL("../examples/rpc/demo.ts", here).href));
      let text = "";
      const pump = async (lines: AsyncIterable<string>) => {
        for await (const line of lines) text += `${line}\n`;
      };
      const pumps = Promise.all([pump(handle.stdout), pump(handle.stderr)]);
      const timer = setTimeout(() => handle.kill("SIGKILL"), 60_000);
      const code = await handle.exited;
      clearTimeout(timer);
      await pumps;
      assert.equal(code, 0, text);
      assert.match(text, /demo ok: every call succeeded/);
      assert.match(text, /\[caller\] rpc call success: true/);
    },
  },
  {
    name: "the streaming demo: registry, feed provider and feed caller; every kind of stream, break and deadline",
    permissions: ["run"],
    async run() {
      const handle = backend.process.spawn(
        backend.process.commandFor(new URL("../examples/streaming/demo.ts", here).href),
      );
      let text = "";
      const pump = async (lines: AsyncIterable<string>) => {
        for await (const line of lines) text += `${line}\n`;
      };
      const pumps = Promise.all([pump(handle.stdout), pump(handle.stderr)]);
      const timer = setTimeout(() => handle.kill("SIGKILL"), 60_000);
      const code = await handle.exited;
      clearTimeout(timer);
      await pumps;
      assert.equal(code, 0, text);
      assert.match(text, /demo-streaming ok/);
      assert.match(text, /\[feed-provider\] Follow\(CAN\) stopped after \d+ ticks: \[CANCELLED\]/);
      assert.match(text, /\[feed-caller\] uploaded 64 chunks, 1048576 bytes/);
    },
  },
];

/** Run the scenarios in order; print a line each and the totals. Returns the number that failed. */
export async function runScenarios(print: (line: string) => void): Promise<number> {
  let passed = 0;
  let failed = 0;
  for (const scenario of scenarios) {
    const start = performance.now();
    try {
      await scenario.run();
      passed++;
      print(`ok     ${scenario.name} (${Math.round(performance.now() - start)} ms)`);
    } catch (error) {
      failed++;
      print(`FAILED ${scenario.name}: ${(error as Error)?.stack ?? error}`);
    }
  }
  print(`${passed} passed, ${failed} failed`);
  return failed;
}

if (backend.process.isMain(import.meta)) {
  getLogger().level = LogLevel.ERROR;
  print(`e2e on ${backend.name}`);
  const failed = await runScenarios(print);
  backend.process.exit(failed === 0 ? 0 : 1);
}

function print(line: string): void {
  backend.process.writeStdout(`${line}\n`);
}
