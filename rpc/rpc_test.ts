import assert from "node:assert/strict";
import { EventLoop } from "../reactor/event_loop.ts";
import { encodeRpcFrame } from "./_rpc_encoder.ts";
import { RegistryClient } from "../registry/client/registry_client.ts";
import { RegistryServer } from "../registry/server/registry_server.ts";
import { RpcChannel, type StubMethod } from "./rpc_channel.ts";
import { RpcController } from "./rpc_controller.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import { type CallContext, RpcProvider } from "./rpc_provider.ts";
import { parseProto, serviceDefinition } from "./service_definition.ts";
import { needs } from "../reactor/testdata/permissions.ts";

const root = parseProto(`
  syntax = "proto3";
  package test;
  message EchoRequest { string text = 1; uint32 delay_ms = 2; bool fail = 3; bytes blob = 4; }
  message EchoResponse { string text = 1; string served_by = 2; bytes blob = 3; }
  service Echo {
    rpc Say (EchoRequest) returns (EchoResponse);
    rpc Slow (EchoRequest) returns (EchoResponse);
  }
`);
const ECHO = serviceDefinition(root, "test.Echo");

type EchoStub = { Say: StubMethod; Slow: StubMethod };

interface EchoRequest {
  text: string;
  delayMs: number;
  fail: boolean;
  blob: Uint8Array;
}

function echoImpl(name: string, seen: { aborted: number } = { aborted: 0 }) {
  return {
    Say(request: EchoRequest, context: CallContext) {
      if (request.fail) throw new Error(`handler of ${name} failed on purpose`);
      context.responseMetadata["served-by"] = name;
      return { text: `${request.text}${context.metadata["suffix"] ?? ""}`, servedBy: name, blob: request.blob };
    },
    async Slow(request: EchoRequest, context: CallContext) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, request.delayMs);
        context.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          seen.aborted++;
          resolve();
        }, { once: true });
      });
      return { text: request.text, servedBy: name };
    },
  };
}

interface World {
  loop: EventLoop;
  server: RegistryServer;
  registries: RegistryClient[];
  providers: RpcProvider[];
  channel: RpcChannel;
  close(): Promise<void>;
}

async function world(providerCount: number, channelOptions: Partial<ConstructorParameters<typeof RpcChannel>[0]> = {}) {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop, heartbeatTimeoutMs: 100, heartbeatMaxCount: 3 });
  await server.start();
  const registries: RegistryClient[] = [];
  const providers: RpcProvider[] = [];
  const addProvider = async (name: string, seen?: { aborted: number }) => {
    const registry = await RegistryClient.connect(server.address, { loop });
    registries.push(registry);
    const provider = new RpcProvider({ loop, registry });
    provider.registerService(ECHO, echoImpl(name, seen));
    await provider.start();
    providers.push(provider);
    return provider;
  };
  for (let i = 0; i < providerCount; i++) await addProvider(`p${i}`);
  const callerRegistry = await RegistryClient.connect(server.address, { loop });
  registries.push(callerRegistry);
  const channel = new RpcChannel({ loop, registry: callerRegistry, ...channelOptions });
  return {
    loop,
    server,
    registries,
    providers,
    channel,
    addProvider,
    async close() {
      await channel.close();
      for (const provider of providers) await provider.stop({ graceMs: 100 });
      for (const registry of registries) await registry.close();
      await server.stop();
    },
  };
}

async function rejectsWithCode(promise: Promise<unknown>, code: RpcCode, message?: RegExp): Promise<RpcError> {
  let caught: RpcError | undefined;
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof RpcError, `not an RpcError: ${error}`);
    assert.equal(error.codeName, RpcError.from(new RpcError(code, "")).codeName, error.message);
    if (message) assert.match(error.message, message);
    caught = error;
    return true;
  });
  return caught!;
}

Deno.test("RpcChannel calls a provider found in the registry, with metadata both ways", async () => {
  const w = await world(1);
  try {
    const stub = w.channel.stub<EchoStub>(ECHO);
    const response = await stub.Say({ text: "hello", blob: new Uint8Array([1, 2, 3]) }, { metadata: { suffix: "!" } });
    assert.equal(response.text, "hello!");
    assert.deepEqual([...response.blob], [1, 2, 3]);
    const raw = await w.channel.call("test.Echo", "Say", new Uint8Array(0));
    assert.equal(raw.metadata["served-by"], "p0");
    assert.deepEqual(await w.channel.providersOf("test.Echo"), [w.providers[0]!.advertisedAddress]);
    const node = await w.registries[0]!.getString(`/test.Echo/${w.providers[0]!.advertisedAddress}`);
    assert.deepEqual(JSON.parse(node).methods, ["Say", "Slow"]);
  } finally {
    await w.close();
  }
});

Deno.test("RpcChannel round robin reaches both providers; P2C and consistent hash work", async () => {
  const w = await world(2);
  try {
    const stub = w.channel.stub<EchoStub>(ECHO);
    const servedBy = new Set<string>();
    for (let i = 0; i < 10; i++) servedBy.add((await stub.Say({ text: "x" })).servedBy);
    assert.deepEqual([...servedBy].sort(), ["p0", "p1"]);
    const p2c = new RpcChannel({ loop: w.loop, registry: w.registries.at(-1)!, loadBalancer: "p2c" });
    const hashed = new RpcChannel({ loop: w.loop, registry: w.registries.at(-1)!, loadBalancer: "consistent_hash" });
    try {
      const p2cStub = p2c.stub<EchoStub>(ECHO);
      const results = await Promise.all(Array.from({ length: 50 }, () => p2cStub.Say({ text: "x" })));
      assert.equal(new Set(results.map((r) => r.servedBy)).size, 2);
      const hashStub = hashed.stub<EchoStub>(ECHO);
      for (const key of ["user-1", "user-2", "user-3"]) {
        const owners = new Set<string>();
        for (let i = 0; i < 5; i++) owners.add((await hashStub.Say({ text: "x" }, { hashKey: key })).servedBy);
        assert.equal(owners.size, 1, `key ${key} went to ${[...owners]}`);
      }
    } finally {
      await p2c.close();
      await hashed.close();
    }
  } finally {
    await w.close();
  }
});

Deno.test("RpcChannel answers errors with the right status and the provider keeps serving", async () => {
  const w = await world(1);
  try {
    const stub = w.channel.stub<EchoStub>(ECHO);
    await rejectsWithCode(w.channel.call("test.Nope", "Say", new Uint8Array(0)), RpcCode.UNAVAILABLE, /No provider/);
    await rejectsWithCode(w.channel.call("test.Echo", "Nope", new Uint8Array(0)), RpcCode.UNIMPLEMENTED, /'Nope'/);
    await rejectsWithCode(
      w.channel.call("test.Echo", "Say", new Uint8Array([0xff, 0xff, 0xff])),
      RpcCode.INVALID_ARGUMENT,
      /does not parse/,
    );
    await rejectsWithCode(stub.Say({ fail: true }), RpcCode.UNKNOWN, /failed on purpose/);
    const controller = new RpcController();
    await rejectsWithCode(stub.Say({ fail: true }, { controller }), RpcCode.UNKNOWN);
    assert.equal(controller.failed(), true);
    assert.match(controller.errorText(), /failed on purpose/);
    assert.equal((await stub.Say({ text: "still here" })).text, "still here");
  } finally {
    await w.close();
  }
});

Deno.test("A call slower than its deadline fails with DEADLINE_EXCEEDED and the handler's signal fires", async () => {
  const seen = { aborted: 0 };
  const w = await world(0);
  try {
    await w.addProvider("slow", seen);
    const stub = w.channel.stub<EchoStub>(ECHO);
    const start = performance.now();
    await rejectsWithCode(stub.Slow({ text: "x", delayMs: 2000 }, { timeoutMs: 100 }), RpcCode.DEADLINE_EXCEEDED);
    const elapsed = performance.now() - start;
    assert.ok(elapsed < 400, `gave up after ${elapsed} ms`);
    const deadline = performance.now() + 1000;
    while (seen.aborted < 1 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(seen.aborted, 1, "the provider stopped the work nobody waited for");
    // Cancellation by AbortSignal and by controller.
    const abort = new AbortController();
    const pending = stub.Slow({ text: "x", delayMs: 2000 }, { signal: abort.signal });
    setTimeout(() => abort.abort(), 20);
    await rejectsWithCode(pending, RpcCode.CANCELLED);
    const controller = new RpcController();
    const pending2 = stub.Slow({ text: "x", delayMs: 2000 }, { controller });
    setTimeout(() => controller.startCancel(), 20);
    await rejectsWithCode(pending2, RpcCode.CANCELLED);
    assert.equal(controller.failed(), true);
    assert.equal((await stub.Slow({ text: "fast", delayMs: 1 })).text, "fast");
  } finally {
    await w.close();
  }
});

Deno.test("1,000 concurrent calls on one channel all complete", async () => {
  const w = await world(2);
  try {
    const stub = w.channel.stub<EchoStub>(ECHO);
    const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => stub.Say({ text: `call ${i}` })));
    assert.equal(results.length, 1000);
    results.forEach((result, i) => assert.equal(result.text, `call ${i}`));
  } finally {
    await w.close();
  }
});

Deno.test("Calls stay matched to their answers while a slow call holds its id through thousands of others", async () => {
  // The channel's call table is open-addressed by id: a long call keeps its slot while later ids skip it, and the
  // table grows under many calls in flight. Every answer must still reach its own caller.
  const w = await world(1);
  try {
    const stub = w.channel.stub<EchoStub>(ECHO);
    const slow = stub.Slow({ text: "slow", delayMs: 300 });
    for (let round = 0; round < 20; round++) {
      const results = await Promise.all(
        Array.from({ length: 250 }, (_, i) => stub.Say({ text: `r${round}c${i}`, blob: new Uint8Array([round, i]) })),
      );
      results.forEach((result, i) => {
        assert.equal(result.text, `r${round}c${i}`);
        assert.deepEqual([...result.blob], [round, i]);
      });
    }
    assert.equal((await slow).text, "slow");
  } finally {
    await w.close();
  }
});

Deno.test("Providers that appear or vanish in the registry are added or dropped at once", async () => {
  const w = await world(1);
  try {
    const stub = w.channel.stub<EchoStub>(ECHO);
    assert.equal((await stub.Say({ text: "x" })).servedBy, "p0");
    await w.addProvider("p1");
    let deadline = performance.now() + 2000;
    while ((await w.channel.providersOf("test.Echo")).length < 2 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal((await w.channel.providersOf("test.Echo")).length, 2);
    // A graceful stop unpublishes first: callers stop choosing it, no call fails.
    const leaving = w.providers.shift()!;
    const calls = Array.from({ length: 20 }, () => stub.Say({ text: "during" }));
    await leaving.stop();
    for (const result of await Promise.all(calls)) assert.equal(result.text, "during");
    deadline = performance.now() + 2000;
    while ((await w.channel.providersOf("test.Echo")).length > 1 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    for (let i = 0; i < 5; i++) assert.equal((await stub.Say({ text: "x" })).servedBy, "p1");
  } finally {
    await w.close();
  }
});

Deno.test("RpcChannel retries a call whose provider cannot be reached on another provider", async () => {
  const w = await world(1);
  try {
    // A registered address where nothing listens (a provider that died without unpublishing yet).
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const deadAddress = `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
    listener.close();
    await w.registries[0]!.create(`/test.Echo/${deadAddress}`, "{}", { nodeType: 2 });
    let deadline = performance.now() + 2000;
    while ((await w.channel.providersOf("test.Echo")).length < 2 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const stub = w.channel.stub<EchoStub>(ECHO);
    for (let i = 0; i < 10; i++) assert.equal((await stub.Say({ text: "x" })).servedBy, "p0");
    deadline = 0;
  } finally {
    await w.close();
  }
});

Deno.test("Interceptors wrap calls on both sides", async () => {
  const loop = new EventLoop();
  const log: string[] = [];
  const provider = new RpcProvider({
    loop,
    interceptors: [(next) => async (request, context) => {
      if (context.metadata["token"] !== "secret") throw new RpcError(RpcCode.UNAUTHENTICATED, "bad token");
      log.push(`server ${context.method}`);
      return await next(request, context);
    }],
  });
  provider.registerService(ECHO, echoImpl("p"));
  await provider.start();
  const channel = new RpcChannel({
    loop,
    providers: { "test.Echo": [provider.advertisedAddress] },
    interceptors: [(next) => async (call) => {
      log.push(`client ${call.method}`);
      call.metadata["token"] = "secret";
      return await next(call);
    }],
  });
  const stranger = new RpcChannel({ loop, providers: { "test.Echo": [provider.advertisedAddress] } });
  try {
    assert.equal((await channel.stub<EchoStub>(ECHO).Say({ text: "hi" })).text, "hi");
    assert.deepEqual(log, ["client Say", "server Say"]);
    await rejectsWithCode(stranger.stub<EchoStub>(ECHO).Say({ text: "hi" }), RpcCode.UNAUTHENTICATED, /bad token/);
  } finally {
    await channel.close();
    await stranger.close();
    await provider.stop();
  }
});

Deno.test("A frame over the limit closes that connection only; large messages within it pass", async () => {
  const loop = new EventLoop();
  const provider = new RpcProvider({ loop, maxFrameBytes: 1024 * 1024 });
  provider.registerService(ECHO, echoImpl("p"));
  await provider.start();
  const channel = new RpcChannel({ loop, providers: { "test.Echo": [provider.advertisedAddress] } });
  try {
    const stub = channel.stub<EchoStub>(ECHO);
    const big = new Uint8Array(900 * 1024).fill(7);
    assert.equal((await stub.Say({ blob: big })).blob.length, big.length);
    await rejectsWithCode(stub.Say({ blob: new Uint8Array(2 * 1024 * 1024) }), RpcCode.UNAVAILABLE);
    assert.equal((await stub.Say({ text: "after" })).text, "after");
    // Garbage on a raw connection does not disturb the provider either.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: provider.address.port });
    await conn.write(new Uint8Array([0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]));
    assert.equal(await conn.read(new Uint8Array(16)), null);
    conn.close();
    assert.equal((await stub.Say({ text: "still" })).text, "still");
  } finally {
    await channel.close();
    await provider.stop();
  }
});

Deno.test("Messages over the frame limit fail with RESOURCE_EXHAUSTED on either side, naming the sizes", async () => {
  const loop = new EventLoop();
  const provider = new RpcProvider({ loop, maxFrameBytes: 64 * 1024 });
  provider.registerService(ECHO, {
    Say: (request: EchoRequest) => ({ blob: new Uint8Array(request.text === "big reply" ? 100 * 1024 : 10) }),
    Slow: () => ({}),
  });
  await provider.start();
  const channel = new RpcChannel({
    loop,
    providers: { "test.Echo": [provider.advertisedAddress] },
    maxFrameBytes: 32 * 1024,
  });
  try {
    const stub = channel.stub<EchoStub>(ECHO);
    await rejectsWithCode(
      stub.Say({ blob: new Uint8Array(40 * 1024) }),
      RpcCode.RESOURCE_EXHAUSTED,
      /exceeds the limit/,
    );
    await rejectsWithCode(stub.Say({ text: "big reply" }), RpcCode.RESOURCE_EXHAUSTED, /response of test.Echo.Say/);
    assert.equal((await stub.Say({ text: "small" })).blob.length, 10);
  } finally {
    await channel.close();
    await provider.stop();
  }
});

Deno.test(
  "A provider with threads serves from several Workers on one port and publishes once",
  needs("read"),
  async () => {
    const loop = new EventLoop();
    const server = new RegistryServer({ port: 0, loop });
    await server.start();
    const registry = await RegistryClient.connect(server.address, { loop });
    const provider = new RpcProvider({ loop, registry, threads: 2 });
    await provider.registerModule(new URL("./testdata/threaded_echo.ts", import.meta.url).href);
    const channels: RpcChannel[] = [];
    try {
      await assert.rejects(
        (async () => {
          const plain = new RpcProvider({ loop, threads: 2 });
          plain.registerService(ECHO, echoImpl("plain"));
          await plain.start();
        })(),
        /not given as a module/,
      );
      await provider.start();
      assert.deepEqual(await registry.children("/test.Echo"), [provider.advertisedAddress]);
      // The kernel spreads connections over the Workers' sockets: 16 channels (one connection each) reach both.
      const servedBy = new Set<string>();
      for (let i = 0; i < 16; i++) {
        const channel = new RpcChannel({ loop, registry });
        channels.push(channel);
        const response = await channel.stub<{ Say: StubMethod }>(ECHO).Say({ text: `hello ${i}` }) as {
          text: string;
          servedBy: string;
        };
        assert.equal(response.text, `hello ${i}`);
        servedBy.add(response.servedBy);
      }
      assert.equal(servedBy.size, 2, "both Workers served");
    } finally {
      for (const channel of channels) await channel.close();
      await provider.stop({ graceMs: 100 });
      await registry.close();
      await server.stop();
    }
  },
);

Deno.test("A provider's status pages count calls by method and status; made-up names share one row", async () => {
  const loop = new EventLoop();
  const provider = new RpcProvider({ loop, statusPort: 0 });
  provider.registerService(ECHO, echoImpl("p"));
  await provider.start();
  // No retries: the provider's counts are the calls made (an unknown method is refused safe to retry).
  const channel = new RpcChannel({ loop, providers: { "test.Echo": [provider.advertisedAddress] }, maxRetries: 0 });
  const base = `http://${provider.statusAddress}`;
  const text = async (path: string, accept = "text/plain") =>
    await (await fetch(`${base}${path}`, { headers: { accept } })).text();
  try {
    const stub = channel.stub<EchoStub>(ECHO);
    for (let i = 0; i < 3; i++) await stub.Say({ text: "x" });
    await stub.Say({ fail: true }).catch(() => {});
    await channel.call("test.Echo", "Nope", new Uint8Array(0)).catch(() => {});
    await channel.call("test.Echo", "Nope2", new Uint8Array(0)).catch(() => {});
    assert.equal(await text("/ruok"), "imok");
    const status = await text("/status");
    assert.match(status, /^calls\.test\.Echo\.Say OK=3 UNKNOWN=1$/m);
    assert.match(status, /^calls\.unknown UNIMPLEMENTED=2$/m);
    assert.match(status, /^errors\.UNIMPLEMENTED 2$/m);
    assert.match(status, /^connections 1$/m);
    const metrics = await text("/metrics");
    assert.match(metrics, /^dwt_rpc_calls_total\{method="test\.Echo\.Say",code="OK"\} 3$/m);
    assert.match(metrics, /^dwt_rpc_calls_total\{method="unknown",code="UNIMPLEMENTED"\} 2$/m);
    assert.match(await text("/status", "text/html"), /<td>test\.Echo\.Say<\/td><td>OK 3, UNKNOWN 1<\/td>/);
    assert.equal(await fetch(`${base}/nope`).then(async (r) => (await r.body?.cancel(), r.status)), 404);
  } finally {
    await channel.close();
    await provider.stop({ graceMs: 100 });
  }
});

Deno.test("Provider limits: connections, calls per connection and idle time; each hit is counted", async () => {
  const loop = new EventLoop();
  const provider = new RpcProvider({ loop, maxConnections: 2, maxCallsPerConnection: 2, idleTimeoutMs: 200 });
  provider.registerService(ECHO, echoImpl("limited"));
  await provider.start();
  const address = provider.advertisedAddress;
  const channel = new RpcChannel({ loop, providers: { "test.Echo": [address] }, maxRetries: 0 });
  const raw: Deno.TcpConn[] = [];
  try {
    // Two connections are allowed; once both have spoken (a ping each; a silent one would make room, see
    // connection_gate_test.ts), the third is closed on arrival, well before the 200 ms idle timeout could.
    const ping = encodeRpcFrame({ ping: { data: 1 } });
    const pingFrame = new Uint8Array([0, 0, 0, ping.length, ...ping]);
    for (let i = 0; i < 2; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: provider.address.port });
      raw.push(conn);
      await conn.write(pingFrame);
      assert.ok(await conn.read(new Uint8Array(64)) !== null, "the ping is answered");
    }
    raw.push(await Deno.connect({ hostname: "127.0.0.1", port: provider.address.port }));
    const start = performance.now();
    const closed = await raw[2]!.read(new Uint8Array(16)).catch(() => null);
    assert.equal(closed, null, "the third connection is closed");
    assert.ok(performance.now() - start < 150, "closed by the connection limit, not by idleness");
    for (const conn of raw.splice(0)) conn.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    // Two calls in flight per connection; more are refused, safe to retry.
    const stub = channel.stub<EchoStub>(ECHO);
    const results = await Promise.allSettled(
      Array.from({ length: 4 }, () => stub.Slow({ text: "x", delayMs: 200 })),
    );
    assert.deepEqual(results.map((r) => r.status), ["fulfilled", "fulfilled", "rejected", "rejected"]);
    const refused = (results[2] as PromiseRejectedResult).reason as RpcError;
    assert.equal(refused.code, RpcCode.RESOURCE_EXHAUSTED);
    assert.match(refused.message, /2 calls are already in flight/);
    // The idle connection goes after 200 ms; the channel reconnects on its next call.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal((await stub.Say({ text: "back" })).text, "back");
    const stats = provider.stats();
    assert.equal(stats.limitsHit.calls, 2);
    assert.equal(stats.limitsHit.connections, 1);
    assert.ok((stats.limitsHit.idle ?? 0) >= 1, `idle closes: ${stats.limitsHit.idle}`);
  } finally {
    for (const conn of raw) conn.close();
    await channel.close();
    await provider.stop({ graceMs: 100 });
  }
});
