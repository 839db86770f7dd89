/**
 * The fault suite (`deno task faults [--soak-seconds 60]`): real processes on 127.0.0.1, every loop bounded.
 *
 * - provider kill -9 under load: calls fail only if they were in flight to it;
 * - rolling restart of 2 providers under load (SIGTERM: drain), threads off and on: no call fails;
 * - registry kill -9 and restart under load: sessions resume, no ephemeral node or acknowledged write is lost;
 * - heartbeats held back for less than the expiry window expire nothing; held back longer, the session expires;
 * - a client that sends and never reads costs the provider and the registry bounded memory;
 * - 1,000 connections held open at once on the registry and on the provider, which keep serving;
 * - a soak at steady load with the heap measured after warm-up and at the end.
 *
 * Prints figures per scenario and a last line `N passed, M failed`, as CI reads.
 *
 * @module
 */

import { parseArgsOrExit } from "../reactor/backend/parse_args.ts";
import { framed, QUIET } from "./_harness.ts";
import { denoRun, type ReadyProcess, spawnReady } from "../reactor/testdata/spawn_ready.ts";
import { newUserServiceRpcStub } from "../examples/rpc/user_pb.ts";
import { EventLoop } from "../reactor/event_loop.ts";
import { getLogger, LogLevel } from "../reactor/logger.ts";
import { encodeClientFrame } from "../registry/_codec.ts";
import { NodeType } from "../registry/server/data_tree.ts";
import { RegistryClient } from "../registry/client/registry_client.ts";
import { RegistryServer } from "../registry/server/registry_server.ts";
import { encodeRpcFrame } from "../rpc/_rpc_encoder.ts";
import { RpcChannel, type StubMethod } from "../rpc/rpc_channel.ts";
import { RpcProvider } from "../rpc/rpc_provider.ts";
import { parseProto, serviceDefinition } from "../rpc/service_definition.ts";

const { values } = parseArgsOrExit({
  args: Deno.args,
  // --only TEXT: run only the scenarios whose name contains TEXT.
  options: { "soak-seconds": { type: "string", default: "60" }, only: { type: "string" } },
});
getLogger().level = LogLevel.ERROR;
const loop = EventLoop.current();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const here = (path: string) => new URL(path, import.meta.url).pathname;
const encoder = new TextEncoder();

async function rssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

async function startRegistry(dir: string, extra: Record<string, unknown> = {}): Promise<ReadyProcess> {
  const config = `${dir}/registry-${Math.random().toString(36).slice(2)}.json`;
  await Deno.writeTextFile(
    config,
    JSON.stringify({ ip: "127.0.0.1", port: 0, heartbeatTimeout: 200, heartbeatMaxCount: 5, dataDir: "", ...extra }),
  );
  return await spawnReady(denoRun(here("../registry/main.ts"), "--config", config), QUIET);
}

async function startCallee(
  dir: string,
  registry: ReadyProcess,
  extra: Record<string, unknown> = {},
): Promise<ReadyProcess> {
  const [host, port] = registry.ready.split(":");
  const config = `${dir}/callee-${Math.random().toString(36).slice(2)}.json`;
  await Deno.writeTextFile(
    config,
    JSON.stringify({ rpcserver_ip: "127.0.0.1", rpcserver_port: 0, dwt_src_ip: host, dwt_src_port: port, ...extra }),
  );
  return await spawnReady(denoRun(here("../examples/rpc/callee.ts"), "-i", config), QUIET);
}

/** Write `bytes` to a peer that may stop reading: true if it all went, false if a write stalled for 2 s. */
async function writeUntilStalled(conn: Deno.TcpConn, bytes: Uint8Array): Promise<boolean> {
  for (let offset = 0; offset < bytes.length;) {
    const n = await Promise.race([conn.write(bytes.subarray(offset, offset + 64 * 1024)), sleep(2000).then(() => -1)]);
    if (n === -1) return false;
    offset += n as number;
  }
  return true;
}

const results: Array<{ name: string; ok: boolean; figures: Record<string, unknown>; error?: string }> = [];

async function scenario(name: string, body: (figures: Record<string, unknown>) => Promise<void>): Promise<void> {
  if (values.only !== undefined && !name.includes(values.only)) return;
  const figures: Record<string, unknown> = {};
  const start = performance.now();
  try {
    await body(figures);
    results.push({ name, ok: true, figures });
  } catch (error) {
    results.push({ name, ok: false, figures, error: (error as Error).stack ?? String(error) });
  }
  figures.ms = Math.round(performance.now() - start);
  const last = results.at(-1)!;
  console.log(
    `${last.ok ? "ok    " : "FAILED"} ${name} ${JSON.stringify(figures)}${last.error ? `\n${last.error}` : ""}`,
  );
}

function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(message);
}

const dir = await Deno.makeTempDir({ prefix: "faults-" });

await scenario("provider kill -9 under load: only calls in flight to it fail", async (figures) => {
  const registry = await startRegistry(dir);
  const providers = [await startCallee(dir, registry), await startCallee(dir, registry)];
  const client = await RegistryClient.connect(registry.ready, { loop });
  const channel = new RpcChannel({ loop, registry: client, timeoutMs: 1000 });
  try {
    const users = newUserServiceRpcStub(channel);
    let made = 0;
    let failed = 0;
    const loops = 8;
    const until = performance.now() + 3000;
    const killer = sleep(1000).then(() => providers[0]!.stop("SIGKILL"));
    await Promise.all(Array.from({ length: loops }, async () => {
      while (performance.now() < until) {
        made++;
        try {
          await users.Register({ name: encoder.encode("n"), password: encoder.encode("p") });
        } catch {
          failed++;
        }
      }
    }));
    await killer;
    Object.assign(figures, { callsMade: made, callsFailed: failed, inFlightBound: loops });
    check(made > 1000, `only ${made} calls`);
    // Each loop has one call in flight: at most that many can have been on the wire to the dead provider.
    check(failed <= loops, `${failed} calls failed`);
  } finally {
    await channel.close();
    await client.close();
    for (const p of providers) await p.stop();
    await registry.stop();
  }
});

for (const threads of [0, 2]) {
  await scenario(
    `rolling restart of 2 providers under load (drain on SIGTERM), threads ${threads}: no call fails`,
    async (figures) => {
      const registry = await startRegistry(dir);
      const extra = { rpcserver_threads: threads };
      const providers = [await startCallee(dir, registry, extra), await startCallee(dir, registry, extra)];
      const client = await RegistryClient.connect(registry.ready, { loop });
      const channel = new RpcChannel({ loop, registry: client, timeoutMs: 3000 });
      let made = 0;
      let failed = 0;
      const errors: string[] = [];
      let stop = false;
      try {
        const users = newUserServiceRpcStub(channel);
        const load = Promise.all(Array.from({ length: 8 }, async () => {
          while (!stop) {
            made++;
            try {
              await users.Register({ name: encoder.encode("n"), password: encoder.encode("p") });
            } catch (error) {
              failed++;
              if (errors.length < 3) errors.push((error as Error).message);
            }
          }
        }));
        await sleep(500);
        for (let round = 0; round < 2; round++) {
          for (let i = 0; i < providers.length; i++) {
            await providers[i]!.stop("SIGTERM"); // drains: unpublish, drain frame, finish in flight, exit
            providers[i] = await startCallee(dir, registry, extra);
            await sleep(300); // readiness: callers learn of it through their watch
          }
        }
        await sleep(300);
        stop = true;
        await load;
        Object.assign(figures, { restarts: 4, callsMade: made, callsFailed: failed, errors });
        console.log(`rolling restart, threads ${threads}: ${made} calls, ${failed} failed`);
        check(made > 500, `only ${made} calls`);
        check(failed === 0, `${failed} calls failed: ${errors.join("; ")}`);
      } finally {
        stop = true;
        await channel.close();
        await client.close();
        for (const p of providers) await p.stop("SIGKILL");
        await registry.stop();
      }
    },
  );
}

await scenario("registry kill -9 and restart under load: sessions resume, no ephemeral node lost", async (figures) => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const dataDir = `${dir}/restart-data`;
  let registry = await startRegistry(dir, { port, dataDir, heartbeatTimeout: 300, heartbeatMaxCount: 5 });
  const holders = await Promise.all(
    Array.from({ length: 5 }, () => RegistryClient.connect(registry.ready, { loop, reconnectDelayMs: 50 })),
  );
  const writer = await RegistryClient.connect(registry.ready, { loop, reconnectDelayMs: 50 });
  let expired = 0;
  for (const holder of holders) holder.onSessionEvent((event) => void (event.type === "expired" && expired++));
  try {
    await writer.create("/load", "");
    for (const [i, holder] of holders.entries()) {
      await holder.create(`/load/eph-${i}`, "", { nodeType: NodeType.EPHEMERAL });
    }
    // Writes in flight from 4 loops while the server is killed and restarted; acknowledged ones must survive.
    const acknowledged: string[] = [];
    let failedWrites = 0;
    let stop = false;
    let counter = 0;
    const load = Promise.all(Array.from({ length: 4 }, async () => {
      while (!stop) {
        const path = `/load/p-${counter++}`;
        try {
          await writer.create(path, "x");
          acknowledged.push(path);
        } catch {
          failedWrites++;
          await sleep(20);
        }
      }
    }));
    await sleep(500);
    await registry.stop("SIGKILL");
    await sleep(300);
    registry = await startRegistry(dir, { port, dataDir, heartbeatTimeout: 300, heartbeatMaxCount: 5 });
    await sleep(1000);
    stop = true;
    await load;
    // Past the 1.5 s session timeout after the restart: the holders kept heartbeating, so nothing expired.
    await sleep(2000);
    const children = await writer.children("/load");
    const lostEphemerals = holders.filter((_, i) => !children.includes(`eph-${i}`)).length;
    const lostWrites = acknowledged.filter((path) => !children.includes(path.slice("/load/".length))).length;
    Object.assign(figures, {
      sessions: holders.length,
      expired,
      lostEphemerals,
      writesAcknowledged: acknowledged.length,
      writesFailedDuringRestart: failedWrites,
      lostWrites,
    });
    check(expired === 0, `${expired} sessions expired`);
    check(lostEphemerals === 0, `${lostEphemerals} ephemeral nodes lost`);
    check(lostWrites === 0, `${lostWrites} acknowledged writes lost`);
    check(acknowledged.length > 50, `only ${acknowledged.length} writes acknowledged`);
  } finally {
    for (const holder of holders) await holder.close();
    await writer.close();
    await registry.stop();
  }
});

await scenario(
  "heartbeats held back under the expiry window expire nothing; past it, the session expires",
  async (figures) => {
    const registry = await startRegistry(dir); // 200 ms x 5: expiry after 1.0-1.2 s of silence
    const observer = await RegistryClient.connect(registry.ready, { loop });
    const holder = await spawnReady(
      denoRun(here("../registry/testdata/ephemeral_holder.ts"), registry.ready, "/held"),
      QUIET,
    );
    try {
      // Freeze the holder (no heartbeats, no TCP) for 600 ms, three times.
      for (let i = 0; i < 3; i++) {
        Deno.kill(holder.pid, "SIGSTOP");
        await sleep(600);
        Deno.kill(holder.pid, "SIGCONT");
        await sleep(400);
        check((await observer.exists("/held")) !== undefined, `the node expired after a 600 ms pause (round ${i + 1})`);
      }
      // Now for longer than the window: the session must expire.
      Deno.kill(holder.pid, "SIGSTOP");
      const start = performance.now();
      while ((await observer.exists("/held")) !== undefined && performance.now() - start < 5000) await sleep(20);
      figures.expiredAfterMs = Math.round(performance.now() - start);
      check((await observer.exists("/held")) === undefined, "the frozen session never expired");
      Deno.kill(holder.pid, "SIGCONT");
      figures.shortPausesSurvived = 3;
    } finally {
      await observer.close();
      await holder.stop("SIGKILL");
      await registry.stop();
    }
  },
);

await scenario("a client that never reads costs the provider bounded memory", async (figures) => {
  const server = await spawnReady(denoRun(here("../bench/rpc_echo_server.ts"), "--stack", "dwt"), QUIET);
  try {
    const root = parseProto(`syntax = "proto3"; package bench; message EchoMessage { bytes payload = 1; }`);
    const request = root.lookupType("bench.EchoMessage").encode({ payload: new Uint8Array(4096) }).finish();
    const frame = framed(
      encodeRpcFrame({ request: { callId: 1, service: "bench.Echo", method: "Echo", timeoutMs: 0, payload: request } }),
    );
    const batch = new Uint8Array(frame.length * 1000);
    for (let i = 0; i < 1000; i++) batch.set(frame, i * frame.length);
    const before = await rssMiB(server.pid);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(server.ready) });
    let sentMiB = 0;
    // Up to 200 MiB of requests (each answered with 4 KiB); the provider must stop reading long before.
    for (let i = 0; i < 50; i++) {
      if (!(await writeUntilStalled(conn, batch))) break;
      sentMiB += batch.length / 1024 / 1024;
    }
    await sleep(500);
    const after = await rssMiB(server.pid);
    Object.assign(figures, {
      requestsSentMiB: Math.round(sentMiB),
      rssBeforeMiB: Math.round(before),
      rssAfterMiB: Math.round(after),
    });
    conn.close();
    check(sentMiB < 150, `the provider kept reading: ${sentMiB} MiB accepted`);
    check(after - before < 100, `the provider grew by ${Math.round(after - before)} MiB`);
  } finally {
    await server.stop("SIGKILL");
  }
});

await scenario("a client that never reads costs the registry bounded memory", async (figures) => {
  const registry = await startRegistry(dir);
  const client = await RegistryClient.connect(registry.ready, { loop });
  // Fair to an honest client meanwhile: it keeps its connection (a registry that spent a second on one read of
  // the flood made it hit its read timeout) and its reads are answered throughout.
  let disconnects = 0;
  client.onSessionEvent((event) => void (event.type === "disconnected" && disconnects++));
  let probing = true;
  let probes = 0;
  let slowestProbeMs = 0;
  const probeErrors: string[] = [];
  const probe = (async () => {
    while (probing) {
      const start = performance.now();
      try {
        await client.exists("/big");
        probes++;
        slowestProbeMs = Math.max(slowestProbeMs, Math.round(performance.now() - start));
      } catch (error) {
        if (probeErrors.length < 3) probeErrors.push((error as Error).message);
      }
      await sleep(100);
    }
  })();
  try {
    await client.create("/big", new Uint8Array(512 * 1024));
    const before = await rssMiB(registry.pid);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(registry.ready.split(":")[1]) });
    // A session first, then get /big over and over without reading: 512 KiB per answer.
    await conn.write(framed(encodeClientFrame({ xid: 1, connect: {} })));
    check((await conn.read(new Uint8Array(4096))) !== null, "no answer to connect");
    const get = framed(encodeClientFrame({ xid: 2, get: { path: "/big", watch: false } }));
    const batch = new Uint8Array(get.length * 100);
    for (let i = 0; i < 100; i++) batch.set(get, i * get.length);
    let gets = 0;
    for (let i = 0; i < 40 && (await writeUntilStalled(conn, batch)); i++) gets += 100;
    await sleep(500);
    const after = await rssMiB(registry.pid);
    // Its answers would be 2 GiB if all were made at once: the registry answers the gets it has read only as its
    // output drains, a megabyte at a time, and reads no more meanwhile. This client reads them for 3 s, or until
    // the registry closes the connection as its session, without heartbeats, expires.
    const buf = new Uint8Array(1024 * 1024);
    let received = 0;
    let closed = false;
    const readUntil = performance.now() + 3000;
    while (performance.now() < readUntil) {
      const n = await Promise.race([conn.read(buf).catch(() => null), sleep(500).then(() => -1)]);
      if (n === null) {
        closed = true;
        break;
      }
      if (n === -1) break;
      received += n as number;
    }
    probing = false;
    await probe;
    Object.assign(figures, {
      getsSent: gets,
      answersReadMiB: Math.round(received / 1024 / 1024),
      closedByServer: closed,
      rssBeforeMiB: Math.round(before),
      rssAfterMiB: Math.round(after),
      honestReads: probes,
      slowestHonestReadMs: slowestProbeMs,
    });
    conn.close();
    check(after - before < 200, `the registry grew by ${Math.round(after - before)} MiB for ${gets} unread answers`);
    check(disconnects === 0, `the honest client lost its connection ${disconnects} times during the flood`);
    check(probeErrors.length === 0, `the honest client's reads failed during the flood: ${probeErrors.join("; ")}`);
    check((await client.exists("/big")) !== undefined, "the registry stopped serving");
  } finally {
    probing = false;
    await probe;
    await client.close();
    await registry.stop();
  }
});

await scenario("1,000 connections held open at once; the registry and a provider keep serving", async (figures) => {
  const registry = await startRegistry(dir);
  const provider = await startCallee(dir, registry);
  const client = await RegistryClient.connect(registry.ready, { loop });
  const channel = new RpcChannel({ loop, registry: client, timeoutMs: 2000 });
  const conns: Deno.TcpConn[] = [];
  try {
    for (const address of [registry.ready, provider.ready]) {
      const port = Number(address.split(":")[1]);
      for (let i = 0; i < 500; i++) conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    figures.connections = conns.length;
    const users = newUserServiceRpcStub(channel);
    for (let i = 0; i < 20; i++) await users.Login({ name: encoder.encode("a"), password: encoder.encode("b") });
    await client.create("/still-serving", "");
    check((await client.exists("/still-serving")) !== undefined, "the registry stopped serving");
  } finally {
    for (const conn of conns) conn.close();
    await channel.close();
    await client.close();
    await provider.stop();
    await registry.stop();
  }
});

await scenario(
  "soak: steady load through registry, channel and provider; the heap is flat after warm-up",
  async (figures) => {
    const soakMs = Number(values["soak-seconds"]) * 1000;
    const server = new RegistryServer({ port: 0, loop });
    await server.start();
    const providerRegistry = await RegistryClient.connect(server.address, { loop });
    const callerRegistry = await RegistryClient.connect(server.address, { loop });
    const echo = serviceDefinition(
      parseProto(`syntax = "proto3"; package soak; message M { bytes b = 1; } service S { rpc E (M) returns (M); }`),
      "soak.S",
    );
    const provider = new RpcProvider({ loop, registry: providerRegistry });
    provider.registerService(echo, { E: (request: unknown) => request });
    await provider.start();
    const channel = new RpcChannel({ loop, registry: callerRegistry });
    const stub = channel.stub<{ E: StubMethod }>(echo);
    try {
      const payload = new Uint8Array(1024);
      let calls = 0;
      let nodes = 0;
      let laneZeroCalls = 0;
      const run = async (until: number) => {
        await Promise.all(Array.from({ length: 16 }, async (_, lane) => {
          while (performance.now() < until) {
            await stub.E({ b: payload });
            calls++;
            if (lane === 0 && ++laneZeroCalls % 100 === 0) {
              // Registry churn too: ephemeral nodes come and go.
              const path = await callerRegistry.create("/soak-", "", {
                nodeType: NodeType.EPHEMERAL,
                sequential: true,
              });
              await callerRegistry.delete(path);
              nodes++;
            }
          }
        }));
      };
      const heap = () => Math.round(Deno.memoryUsage().heapUsed / 1024 / 1024 * 10) / 10;
      await run(performance.now() + Math.min(10_000, soakMs / 6)); // warm-up
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      const start = heap();
      const startCalls = calls;
      await run(performance.now() + soakMs);
      gc?.();
      const end = heap();
      Object.assign(figures, {
        calls: calls - startCalls,
        nodesChurned: nodes,
        heapStartMiB: start,
        heapEndMiB: end,
        gcExposed: gc !== undefined,
      });
      check(end - start < Math.max(8, start * 0.25), `the heap grew from ${start} to ${end} MiB`);
    } finally {
      await channel.close();
      await provider.stop({ graceMs: 100 });
      await providerRegistry.close();
      await callerRegistry.close();
      await server.stop();
    }
  },
);

await Deno.remove(dir, { recursive: true });
const passed = results.filter((result) => result.ok).length;
console.log(`${passed} passed, ${results.length - passed} failed`);
Deno.exit(passed === results.length ? 0 : 1);
