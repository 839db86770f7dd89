// The RPC layer's promises under adversaries: at most once, typed proto3 defaults from any encoder, drain without
// failures, bounded providers under hostile clients (with an honest caller's p99 printed), keepalive, deadline
// propagation. Real sockets on 127.0.0.1 (and the host's own address where a test needs a second source address).
import assert from "node:assert/strict";
import { EventLoop } from "../reactor/event_loop.ts";
import { UserService } from "../examples/rpc/user_service.ts";
import { newUserServiceRpcStub } from "../examples/rpc/user_pb.ts";
import { RegistryClient } from "../registry/client/registry_client.ts";
import { RegistryServer } from "../registry/server/registry_server.ts";
import { decodeRpcFrame } from "./_rpc_decoder.ts";
import { encodeRpcFrame } from "./_rpc_encoder.ts";
import { type DecodedFrame, FrameKind } from "./_rpc_wire.ts";
import { RpcChannel, type StubMethod } from "./rpc_channel.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import { type CallContext, RpcProvider } from "./rpc_provider.ts";
import { providerMetrics } from "./provider_status.ts";
import { parseProto, serviceDefinition } from "./service_definition.ts";
import { needs } from "../reactor/testdata/permissions.ts";
import { denoRun, spawnReady } from "../reactor/testdata/spawn_ready.ts";

const root = parseProto(`
  syntax = "proto3";
  package trust;
  enum Color { RED = 0; GREEN = 1; }
  message Req { string text = 1; uint32 delay_ms = 2; }
  message Res { string text = 1; double remaining_ms = 2; }
  message Everything {
    bytes b = 1; string s = 2; repeated string r = 3; map<string, int32> m = 4; Color e = 5; int64 i64 = 6;
    uint64 u64 = 7; bool f = 8; double d = 9; Everything child = 10; repeated int64 many = 11;
    map<string, sint64> longs = 12;
  }
  service Echo {
    rpc Say (Req) returns (Res);
    rpc Slow (Req) returns (Res);
    rpc Relay (Req) returns (Res);
  }
  service Defaults { rpc Echo (Everything) returns (Everything); }
`);
const ECHO = serviceDefinition(root, "trust.Echo");
const DEFAULTS = serviceDefinition(root, "trust.Defaults");
type EchoStub = { Say: StubMethod; Slow: StubMethod; Relay: StubMethod };
interface Req {
  text: string;
  delayMs: number;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });

function echoImpl(name = "p") {
  return {
    Say: (request: Req) => ({ text: `${request.text}@${name}` }),
    async Slow(request: Req, context: CallContext) {
      await sleep(request.delayMs, context.signal);
      return { text: `${request.text}@${name}` };
    },
    Relay: (request: Req) => ({ text: request.text }),
  };
}

function framed(body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  return frame;
}

/** A raw TCP client speaking the envelope by hand, as a third-party (or hostile) client would. */
class RawClient {
  readonly conn: Deno.TcpConn;
  #pending = new Uint8Array(0);
  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }
  static async connect(port: number, hostname = "127.0.0.1"): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname, port }));
  }
  async send(frame: Parameters<typeof encodeRpcFrame>[0]): Promise<void> {
    await this.conn.write(framed(encodeRpcFrame(frame)));
  }
  /** The next frame, or null at EOF (or when the connection was reset). */
  async next(timeoutMs = 3000): Promise<DecodedFrame | null> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (this.#pending.length >= 4) {
        const length = new DataView(this.#pending.buffer, this.#pending.byteOffset).getUint32(0);
        if (this.#pending.length >= 4 + length) {
          const body = this.#pending.slice(4, 4 + length);
          this.#pending = this.#pending.slice(4 + length);
          const frame = decodeRpcFrame(body);
          return Object.assign(new (frame.constructor as new () => DecodedFrame)(), frame, {
            payload: frame.payload.slice(),
          });
        }
      }
      const buf = new Uint8Array(64 * 1024);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error("no frame in time");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        this.conn.read(buf).catch(() => null),
        new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), left)),
      ]);
      clearTimeout(timer);
      if (n === "timeout") throw new Error("no frame in time");
      if (n === null) return null;
      const merged = new Uint8Array(this.#pending.length + n);
      merged.set(this.#pending);
      merged.set(buf.subarray(0, n), this.#pending.length);
      this.#pending = merged;
    }
  }
  /** Frames until EOF (or `timeoutMs`); EOF reported as the last element `null`. */
  async drainToEnd(timeoutMs = 3000): Promise<Array<DecodedFrame | null>> {
    const frames: Array<DecodedFrame | null> = [];
    for (;;) {
      const frame = await this.next(timeoutMs);
      frames.push(frame);
      if (frame === null) return frames;
    }
  }
  close(): void {
    try {
      this.conn.close();
    } catch {
      // closed
    }
  }
}

/** Honest calls in a loop until `until` resolves; the p99 of their latency in ms, and failures. */
async function honestLoad(
  stub: EchoStub,
  until: Promise<unknown>,
): Promise<{ calls: number; failures: number; p99: number; errors: string[] }> {
  let stop = false;
  until.finally(() => stop = true);
  const latencies: number[] = [];
  const errors: string[] = [];
  let failures = 0;
  while (!stop) {
    const start = performance.now();
    try {
      await stub.Say({ text: "honest" }, { timeoutMs: 2000 });
      latencies.push(performance.now() - start);
    } catch (error) {
      failures++;
      errors.push((error as Error).message);
    }
    await sleep(2);
  }
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] ?? NaN;
  return { calls: latencies.length + failures, failures, p99: Math.round(p99 * 100) / 100, errors: errors.slice(0, 3) };
}

async function rejectsWithCode(promise: Promise<unknown>, code: RpcCode): Promise<RpcError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof RpcError, `not an RpcError: ${error}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  throw new Error("the call did not fail");
}

// --- 1. at most once ---

Deno.test("At most once: a handler whose downstream call fails RESOURCE_EXHAUSTED (safe to retry there) runs once", async () => {
  const loop = new EventLoop();
  // Downstream: one call per connection, and that one is held by a slow call: every other is refused unprocessed.
  const downstream = new RpcProvider({ loop, maxCallsPerConnection: 1 });
  downstream.registerService(ECHO, echoImpl("down"));
  await downstream.start();
  const downChannel = new RpcChannel({ loop, providers: { "trust.Echo": [downstream.advertisedAddress] } });
  const down = downChannel.stub<EchoStub>(ECHO);
  const hold = down.Slow({ text: "hold", delayMs: 300 }).catch(() => {});
  let runs = 0;
  let direct = 0;
  const front = new RpcProvider({ loop });
  front.registerService(ECHO, {
    ...echoImpl("front"),
    async Relay(request: Req, context: CallContext) {
      runs++;
      return await down.Say({ text: request.text }, { parent: context });
    },
    Say() {
      direct++;
      // A handler that claims "safe to retry" itself is not believed either.
      throw new RpcError(RpcCode.UNAVAILABLE, "not really unavailable", { metadata: { "dwt-retry-safe": "1" } });
    },
  });
  await front.start();
  const channel = new RpcChannel({ loop, providers: { "trust.Echo": [front.advertisedAddress] }, maxRetries: 2 });
  try {
    const stub = channel.stub<EchoStub>(ECHO);
    const error = await rejectsWithCode(stub.Relay({ text: "x" }), RpcCode.RESOURCE_EXHAUSTED);
    assert.equal(runs, 1, "the handler ran once");
    assert.equal(error.metadata["dwt-retry-safe"], undefined, "the answer is not marked safe to retry");
    await rejectsWithCode(stub.Say({ text: "x" }), RpcCode.UNAVAILABLE);
    assert.equal(direct, 1, "a handler's own retry-safe claim is ignored");
    await hold;
  } finally {
    await channel.close();
    await downChannel.close();
    await front.stop({ graceMs: 100 });
    await downstream.stop({ graceMs: 100 });
  }
});

// --- 2. proto3 defaults, typed ---

Deno.test("proto3 defaults: an empty message from any encoder reaches handler and caller with typed defaults", async () => {
  const loop = new EventLoop();
  const seen: Record<string, unknown>[] = [];
  const provider = new RpcProvider({ loop });
  provider.registerService(DEFAULTS, {
    Echo(request: Record<string, unknown>) {
      seen.push(request);
      return request;
    },
  });
  await provider.start();
  const raw = await RawClient.connect(provider.address.port);
  const channel = new RpcChannel({ loop, providers: { "trust.Defaults": [provider.advertisedAddress] } });
  try {
    // Hand-encoded: a request with no payload at all, as any encoder writes an all-default message.
    await raw.send({ request: { callId: 1, service: "trust.Defaults", method: "Echo" } });
    const answer = await raw.next();
    assert.equal(answer?.status, 0, answer?.errorMessage);
    const check = (message: Record<string, unknown>) => {
      assert.ok(message.b instanceof Uint8Array && message.b.length === 0, `bytes: ${message.b}`);
      assert.equal(message.s, "");
      assert.deepEqual(message.r, []);
      assert.deepEqual({ ...message.m as object }, {});
      assert.equal(message.e, 0);
      assert.equal(message.i64, 0n);
      assert.equal(message.u64, 0n);
      assert.equal(message.f, false);
      assert.equal(message.d, 0);
      assert.equal(message.child, null);
      assert.deepEqual(message.many, []);
    };
    check(seen[0]!);
    // The caller's side: the answer to an empty request is all defaults too.
    const stub = channel.stub<{ Echo: StubMethod }>(DEFAULTS);
    check(await stub.Echo({}));
    // 64-bit values are bigint both ways, full range, in nested messages, lists and maps too.
    const big = await stub.Echo({
      i64: -5n,
      u64: 2n ** 64n - 1n,
      many: [1n, 2n ** 62n],
      longs: { a: -(2n ** 63n) },
      child: { i64: 2n ** 53n + 1n },
    });
    assert.equal(big.i64, -5n);
    assert.equal(big.u64, 2n ** 64n - 1n);
    assert.deepEqual(big.many, [1n, 2n ** 62n]);
    assert.equal(big.longs.a, -(2n ** 63n));
    assert.equal(big.child.i64, 2n ** 53n + 1n);
    assert.equal(big.child.b.length, 0);
    assert.equal(seen.at(-1)!.i64, -5n, "the handler saw bigint");
  } finally {
    raw.close();
    await channel.close();
    await provider.stop({ graceMs: 100 });
  }
});

Deno.test("proto3 defaults: the seed's UserService answers an empty LoginRequest and the README's Login({ name })", async () => {
  const loop = new EventLoop();
  const provider = new RpcProvider({ loop });
  const service = new UserService();
  const log = console.log;
  console.log = () => {}; // the seed's service prints its requests
  provider.registerService(UserService.definition, service);
  await provider.start();
  const raw = await RawClient.connect(provider.address.port);
  const channel = new RpcChannel({ loop, providers: { "dwt.UserServiceRpc": [provider.advertisedAddress] } });
  try {
    await raw.send({ request: { callId: 1, service: "dwt.UserServiceRpc", method: "Login" } });
    const answer = await raw.next();
    assert.equal(answer?.status, 0, `answered ${answer?.status}: ${answer?.errorMessage}`);
    const users = newUserServiceRpcStub(channel);
    const reply = await users.Login({ name: new TextEncoder().encode("dwt") });
    assert.equal(reply.success, false); // no password: a business answer, not an error
    assert.equal(new TextDecoder().decode(reply.result!.errmsg), "login error: name and password are required");
  } finally {
    console.log = log;
    raw.close();
    await channel.close();
    await provider.stop({ graceMs: 100 });
  }
});

// --- 3. drain ---

Deno.test("Drain: the drain frame names the last call answered; later calls are refused safe to retry; then EOF", async () => {
  const loop = new EventLoop();
  const provider = new RpcProvider({ loop });
  provider.registerService(ECHO, echoImpl());
  await provider.start();
  const raw = await RawClient.connect(provider.address.port);
  try {
    const payload = root.lookupType("trust.Req").encode({ text: "a", delayMs: 200 }).finish();
    await raw.send({ request: { callId: 5, service: "trust.Echo", method: "Slow", payload } });
    await sleep(50);
    const stopped = provider.stop({ graceMs: 1000 });
    const drain = await raw.next();
    assert.equal(drain?.kind, FrameKind.DRAIN);
    assert.equal(drain?.lastCallId, 5);
    assert.equal(drain?.status, 0);
    assert.equal(drain?.graceMs, 1000);
    assert.match(drain!.errorMessage, /shutting down/);
    await raw.send({ request: { callId: 6, service: "trust.Echo", method: "Say", payload } });
    const rest = await raw.drainToEnd();
    const refused = rest.find((frame) => frame?.callId === 6)!;
    assert.equal(refused.status, RpcCode.UNAVAILABLE);
    assert.equal(refused.metadata?.["dwt-retry-safe"], "1");
    const answered = rest.find((frame) => frame?.callId === 5)!;
    assert.equal(answered.status, 0, "the call in flight finished");
    assert.equal(rest.at(-1), null, "then the provider closed the connection");
    await stopped;
  } finally {
    raw.close();
    await provider.stop();
  }
});

Deno.test("Drain: calls still running when the grace period ends get UNAVAILABLE with the reason", async () => {
  const loop = new EventLoop();
  const provider = new RpcProvider({ loop });
  provider.registerService(ECHO, echoImpl());
  await provider.start();
  const channel = new RpcChannel({ loop, providers: { "trust.Echo": [provider.advertisedAddress] } });
  try {
    const stub = channel.stub<EchoStub>(ECHO);
    const call = stub.Slow({ text: "long", delayMs: 3000 });
    const settled = call.then(() => undefined, () => undefined);
    await sleep(50);
    const started = performance.now();
    await provider.stop({ graceMs: 150 });
    await settled;
    const error = await rejectsWithCode(call, RpcCode.UNAVAILABLE);
    assert.match(error.message, /grace period of 150 ms/);
    assert.ok(performance.now() - started < 1500, "stop did not wait for the handler");
    assert.equal(provider.stats().limitsHit.drain_grace_expired, 1);
  } finally {
    await channel.close();
    await provider.stop();
  }
});

async function rollingRestart(threads: number): Promise<{ calls: number; failed: number; errors: string[] }> {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop, heartbeatTimeoutMs: 100, heartbeatMaxCount: 5 });
  await server.start();
  const registries: RegistryClient[] = [];
  const startProvider = async () => {
    const registry = await RegistryClient.connect(server.address, { loop });
    registries.push(registry);
    const provider = new RpcProvider({ loop, registry, threads });
    await provider.registerModule(new URL("./testdata/threaded_echo.ts", import.meta.url).href);
    await provider.start();
    return provider;
  };
  const callerRegistry = await RegistryClient.connect(server.address, { loop });
  const channel = new RpcChannel({ loop, registry: callerRegistry, timeoutMs: 3000 });
  const echo = serviceDefinition(
    parseProto((await import("./testdata/threaded_echo.ts")).ECHO_PROTO),
    "test.Echo",
  );
  const stub = channel.stub<{ Slow: StubMethod }>(echo);
  let providers = [await startProvider(), await startProvider()];
  let calls = 0;
  let failed = 0;
  const errors: string[] = [];
  let stop = false;
  try {
    const load = Promise.all(Array.from({ length: 8 }, async () => {
      while (!stop) {
        calls++;
        try {
          await stub.Slow({ text: "r", delayMs: 20 });
        } catch (error) {
          failed++;
          errors.push((error as Error).message);
        }
      }
    }));
    await sleep(200);
    for (let i = 0; i < 2; i++) {
      const old = providers[i]!;
      await old.stop({ graceMs: 2000 });
      providers[i] = await startProvider();
      await sleep(150);
    }
    await sleep(200);
    stop = true;
    await load;
    return { calls, failed, errors: errors.slice(0, 3) };
  } finally {
    stop = true;
    await channel.close();
    for (const provider of providers) await provider.stop({ graceMs: 100 });
    providers = [];
    for (const registry of registries) await registry.close();
    await callerRegistry.close();
    await server.stop();
  }
}

Deno.test("Drain: a rolling restart of 2 providers under continuous load fails no call (threads off)", async () => {
  const result = await rollingRestart(0);
  console.log(`rolling restart, threads off: ${result.calls} calls, ${result.failed} failed`, result.errors);
  assert.equal(result.failed, 0);
  assert.ok(result.calls > 50, `only ${result.calls} calls`);
});

Deno.test(
  "Drain: a rolling restart of 2 providers under continuous load fails no call (2 threads each)",
  needs("read"),
  async () => {
    const result = await rollingRestart(2);
    console.log(`rolling restart, threads on: ${result.calls} calls, ${result.failed} failed`, result.errors);
    assert.equal(result.failed, 0);
    assert.ok(result.calls > 50, `only ${result.calls} calls`);
  },
);

// --- 4. bounded providers under hostile clients ---

interface Attacked {
  provider: RpcProvider;
  stub: EchoStub;
  channel: RpcChannel;
  close(): Promise<void>;
}

async function attacked(options: ConstructorParameters<typeof RpcProvider>[0], honestHost = "127.0.0.1") {
  const loop = new EventLoop();
  const provider = new RpcProvider({ loop, ...options });
  provider.registerService(ECHO, echoImpl());
  await provider.start();
  const channel = new RpcChannel({
    loop,
    providers: { "trust.Echo": [`${honestHost}:${provider.address.port}`] },
    maxRetries: 0,
  });
  const stub = channel.stub<EchoStub>(ECHO);
  await stub.Say({ text: "warm" });
  return {
    provider,
    stub,
    channel,
    async close() {
      await channel.close();
      await provider.stop({ graceMs: 100 });
    },
  } satisfies Attacked;
}

async function duringAttack(world: Attacked, name: string, attack: () => Promise<void>): Promise<void> {
  const attackDone = attack();
  const honest = await honestLoad(world.stub, attackDone);
  console.log(
    `${name}: honest caller ${honest.calls} calls, ${honest.failures} failed, p99 ${honest.p99} ms during the attack`,
  );
  assert.equal(honest.failures, 0, honest.errors.join("; "));
  assert.ok(honest.calls > 0);
}

function otherHostAddress(): string | undefined {
  return Deno.networkInterfaces().find((i) => i.family === "IPv4" && !i.address.startsWith("127."))?.address;
}

Deno.test("Limit: connections per client address; another address is still served", needs("sys"), async () => {
  const other = otherHostAddress();
  if (other === undefined) {
    console.log("skipped: this host has no non-loopback IPv4 address to stand for a second client");
    return;
  }
  const world = await attacked({ host: "0.0.0.0", maxConnectionsPerAddress: 20 }, other);
  const conns: Deno.TcpConn[] = [];
  try {
    await duringAttack(world, "connections per address", async () => {
      for (let i = 0; i < 60; i++) {
        conns.push(await Deno.connect({ hostname: "127.0.0.1", port: world.provider.address.port }));
      }
      await sleep(200);
    });
    const open = (await Promise.all(conns.map((conn) =>
      Promise.race([
        conn.read(new Uint8Array(1)).then((n) => n !== null, () => false),
        sleep(100).then(() => true),
      ])
    ))).filter(Boolean).length;
    assert.equal(open, 20, "20 connections from 127.0.0.1 stay, the rest are closed on arrival");
    assert.equal(world.provider.stats().limitsHit.connections_per_address, 40);
  } finally {
    for (const conn of conns) conn.close();
    await world.close();
  }
});

Deno.test("Limit: a partial frame has a read deadline, and partial frames a total cap", async () => {
  const world = await attacked({ frameTimeoutMs: 300, maxBufferedFrameBytes: 1024 * 1024 });
  const conns: Deno.TcpConn[] = [];
  try {
    await duringAttack(world, "partial frames", async () => {
      // A slow loris: a header announcing 100 KiB and 10 bytes of it.
      const loris = await Deno.connect({ hostname: "127.0.0.1", port: world.provider.address.port });
      conns.push(loris);
      const header = new Uint8Array(14);
      new DataView(header.buffer).setUint32(0, 100 * 1024);
      await loris.write(header);
      const start = performance.now();
      const closed = await loris.read(new Uint8Array(16)).catch(() => null);
      assert.equal(closed, null);
      const waited = performance.now() - start;
      assert.ok(waited >= 250 && waited < 1500, `closed after ${waited} ms`);
      // Three connections each holding 600 KiB of a 1 MiB frame: the total cap of 1 MiB closes the later ones.
      const big = new Uint8Array(600 * 1024);
      new DataView(big.buffer).setUint32(0, 1024 * 1024);
      for (let i = 0; i < 3; i++) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: world.provider.address.port });
        conns.push(conn);
        await conn.write(big).catch(() => {});
        await sleep(50);
      }
      await sleep(100);
    });
    const limits = world.provider.stats().limitsHit;
    assert.ok((limits.frame_timeout ?? 0) >= 1, JSON.stringify(limits));
    assert.ok((limits.partial_frame_bytes ?? 0) >= 1, JSON.stringify(limits));
  } finally {
    for (const conn of conns) conn.close();
    await world.close();
  }
});

Deno.test("Limit: a caller that asks for large answers and never reads them is closed past the unsent limit", async () => {
  const world = await attacked({ pauseReadingAtBytes: 1024 * 1024, maxUnsentBytes: 4 * 1024 * 1024 });
  const big = serviceDefinition(
    parseProto(`syntax = "proto3"; package big; message R { uint32 n = 1; bytes b = 2; }
      service Big { rpc Get (R) returns (R); }`),
    "big.Big",
  );
  // A provider with an extra service that answers `n` bytes.
  const loop = new EventLoop();
  const provider = new RpcProvider({ loop, pauseReadingAtBytes: 1024 * 1024, maxUnsentBytes: 4 * 1024 * 1024 });
  provider.registerService(ECHO, echoImpl());
  provider.registerService(big, { Get: (request: { n: number }) => ({ b: new Uint8Array(request.n) }) });
  await provider.start();
  const channel = new RpcChannel({ loop, providers: { "trust.Echo": [provider.advertisedAddress] } });
  const stub = channel.stub<EchoStub>(ECHO);
  let conn: Deno.TcpConn | undefined;
  try {
    await duringAttack({ provider, stub, channel, close: async () => {} }, "unread answers", async () => {
      conn = await Deno.connect({ hostname: "127.0.0.1", port: provider.address.port });
      const request = parseProto(`syntax = "proto3"; message R { uint32 n = 1; }`).lookupType("R")
        .encode({ n: 1024 * 1024 }).finish();
      // 100 requests for 1 MiB each in one write: 100 MiB of answers if all were made.
      const frames = Array.from(
        { length: 100 },
        (_, i) =>
          framed(encodeRpcFrame({ request: { callId: i + 1, service: "big.Big", method: "Get", payload: request } })),
      );
      const batch = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
      let offset = 0;
      for (const frame of frames) {
        batch.set(frame, offset);
        offset += frame.length;
      }
      await conn.write(batch).catch(() => {});
      await sleep(500);
    });
    assert.ok((provider.stats().limitsHit.unsent_bytes ?? 0) >= 1, JSON.stringify(provider.stats().limitsHit));
  } finally {
    conn?.close();
    await channel.close();
    await provider.stop({ graceMs: 100 });
    await world.close();
  }
});

Deno.test("Limit: metadata over 8 KiB is refused RESOURCE_EXHAUSTED without stalling the loop", async () => {
  const world = await attacked({});
  const raw = await RawClient.connect(world.provider.address.port);
  try {
    await duringAttack(world, "huge metadata", async () => {
      // A million empty entries (2 bytes each on the wire: 2 MiB) and one 9 KiB value.
      const entries = new Uint8Array(2 * 1_000_000);
      for (let i = 0; i < entries.length; i += 2) entries[i] = 0x2a; // field 5, length 0
      const head = encodeRpcFrame({ request: { callId: 1, service: "trust.Echo", method: "Say" } });
      // RpcFrame{request (field 1) = head's request bytes + the entries}: rebuild the outer length.
      const inner = head.subarray(2); // tag 0x0a + 1-byte length: the request is small
      const requestBytes = new Uint8Array(inner.length + entries.length);
      requestBytes.set(inner);
      requestBytes.set(entries, inner.length);
      const lengthVarint: number[] = [];
      for (let v = requestBytes.length;; v >>>= 7) {
        if (v < 0x80) {
          lengthVarint.push(v);
          break;
        }
        lengthVarint.push((v & 0x7f) | 0x80);
      }
      const body = new Uint8Array(1 + lengthVarint.length + requestBytes.length);
      body[0] = 0x0a;
      body.set(lengthVarint, 1);
      body.set(requestBytes, 1 + lengthVarint.length);
      for (let i = 0; i < 5; i++) {
        const start = performance.now();
        await raw.conn.write(framed(body));
        const answer = await raw.next();
        assert.equal(answer?.status, RpcCode.RESOURCE_EXHAUSTED, answer?.errorMessage);
        assert.match(answer!.errorMessage, /metadata of \d+ bytes .* exceeds the limit of 8192 bytes/);
        console.log(`a million metadata entries refused in ${Math.round(performance.now() - start)} ms`);
        await sleep(20);
      }
      await raw.send({
        request: { callId: 2, service: "trust.Echo", method: "Say", metadata: { big: "x".repeat(9000) } },
      });
      assert.equal((await raw.next())?.status, RpcCode.RESOURCE_EXHAUSTED);
    });
    assert.equal(world.provider.stats().limitsHit.metadata, 6);
    assert.match(providerMetrics(world.provider), /^dwt_rpc_limit_hits_total\{limit="metadata"\} 6$/m);
  } finally {
    raw.close();
    await world.close();
  }
});

Deno.test("Limit: a duplicate call id in flight closes that connection with a reason; extreme deadlines are clamped", async () => {
  const world = await attacked({});
  const raw = await RawClient.connect(world.provider.address.port);
  try {
    await duringAttack(world, "duplicate ids and extreme deadlines", async () => {
      const payload = root.lookupType("trust.Req").encode({ text: "d", delayMs: 300 }).finish();
      // The longest deadline the wire carries (49.7 days): clamped, and the call is served as usual.
      await raw.send({
        request: { callId: 1, service: "trust.Echo", method: "Say", timeoutMs: 0xffff_ffff, payload },
      });
      assert.equal((await raw.next())?.status, 0);
      await raw.send({ request: { callId: 7, service: "trust.Echo", method: "Slow", payload } });
      await raw.send({ request: { callId: 7, service: "trust.Echo", method: "Slow", payload } });
      const frames = await raw.drainToEnd();
      const drain = frames.find((frame) => frame?.kind === FrameKind.DRAIN);
      assert.equal(drain?.status, RpcCode.INVALID_ARGUMENT);
      assert.match(drain!.errorMessage, /call id 7 is already in flight/);
      assert.equal(frames.at(-1), null, "the connection closed");
    });
    // A caller's own far deadlines are clamped too (a timer past 2^31 - 1 ms would fire at once).
    assert.equal((await world.stub.Say({ text: "far" }, { timeoutMs: Number.MAX_SAFE_INTEGER })).text, "far@p");
    assert.equal((await world.stub.Say({ text: "inf" }, { timeoutMs: Infinity })).text, "inf@p");
    const limits = world.provider.stats().limitsHit;
    assert.equal(limits.duplicate_call_id, 1);
    assert.equal(limits.deadline_clamped, 1);
  } finally {
    raw.close();
    await world.close();
  }
});

// --- 5. liveness ---

Deno.test("Keepalive: a provider pings an idle caller and closes it once it stops answering", async () => {
  const world = await attacked({ keepaliveIntervalMs: 100, keepaliveTimeoutMs: 100 });
  const raw = await RawClient.connect(world.provider.address.port);
  const legacy = await RawClient.connect(world.provider.address.port);
  try {
    // Answering the pings keeps a connection open.
    for (let i = 0; i < 3; i++) {
      const frame = await raw.next();
      assert.equal(frame?.kind, FrameKind.PING);
      assert.equal(frame?.ack, false);
      await raw.send({ ping: { data: frame!.pingData, ack: true } });
    }
    assert.equal(world.provider.stats().limitsHit.keepalive ?? 0, 0);
    // Then the caller freezes: the next ping goes unanswered and the connection is closed.
    const start = performance.now();
    assert.equal((await raw.next())?.kind, FrameKind.PING);
    assert.equal(await raw.next(), null, "closed after the unanswered ping");
    const ms = performance.now() - start;
    assert.ok(ms < 600, `closed after ${ms} ms`);
    assert.equal(world.provider.stats().limitsHit.keepalive, 1);
    // A caller that never answered a ping (a client from before pings) is pinged but not closed for it.
    const frames: Array<DecodedFrame | null> = [];
    for (let i = 0; i < 3; i++) frames.push(await legacy.next());
    assert.ok(frames.every((frame) => frame?.kind === FrameKind.PING), "still open, still pinged");
  } finally {
    raw.close();
    legacy.close();
    await world.close();
  }
});

Deno.test(
  "Ejection: a SIGSTOPped provider is ejected within keepalive interval + timeout; calls go to the other",
  needs("run"),
  async () => {
    const spawn = async () => {
      const echoServer = new URL("../bench/rpc_echo_server.ts", import.meta.url).pathname;
      const server = await spawnReady(denoRun(echoServer, "--stack", "dwt"), {
        env: { DWT_LOG_LEVEL: "ERROR" },
        stderr: "null",
      });
      return { server, address: `127.0.0.1:${server.ready}` };
    };
    const a = await spawn();
    const b = await spawn();
    const loop = new EventLoop();
    const keepaliveIntervalMs = 200;
    const keepaliveTimeoutMs = 200;
    const channel = new RpcChannel({
      loop,
      providers: { "bench.Echo": [a.address, b.address] },
      keepaliveIntervalMs,
      keepaliveTimeoutMs,
      timeoutMs: 5000,
      ejectAfterFailures: 1000, // only the keepalive may eject here: its bound is what is measured
    });
    const echo = serviceDefinition(
      parseProto(`syntax = "proto3"; package bench; message EchoMessage { bytes payload = 1; }
      service Echo { rpc Echo (EchoMessage) returns (EchoMessage); }`),
      "bench.Echo",
    );
    const stub = channel.stub<{ Echo: StubMethod }>(echo);
    let stopping = false;
    try {
      for (let i = 0; i < 10; i++) await stub.Echo({ payload: new Uint8Array(8) });
      Deno.kill(b.server.pid, "SIGSTOP");
      const stoppedAt = performance.now();
      // Calls keep coming; those on the frozen provider wait.
      const failures: RpcError[] = [];
      const load = (async () => {
        let ok = 0;
        while (!stopping) {
          await stub.Echo({ payload: new Uint8Array(8) }, { timeoutMs: 2000 }).then(
            () => ok++,
            (error) => failures.push(error),
          );
        }
        return ok;
      })();
      while (!channel.ejectedProviders().includes(b.address) && performance.now() - stoppedAt < 5000) await sleep(10);
      const ejectedAfterMs = Math.round(performance.now() - stoppedAt);
      // The documented bound (interval + timeout + one sweep period), plus 300 ms for a loaded machine.
      const bound = keepaliveIntervalMs + keepaliveTimeoutMs + Math.min(keepaliveIntervalMs, keepaliveTimeoutMs) / 4 +
        300;
      console.log(`the frozen provider was ejected after ${ejectedAfterMs} ms (bound ${bound} ms)`);
      assert.ok(channel.ejectedProviders().includes(b.address), "never ejected");
      assert.ok(ejectedAfterMs <= bound, `ejected after ${ejectedAfterMs} ms, over ${bound}`);
      // New calls go to the live provider.
      const start = performance.now();
      for (let i = 0; i < 20; i++) await stub.Echo({ payload: new Uint8Array(8) }, { timeoutMs: 1000 });
      assert.ok(performance.now() - start < 1000);
      stopping = true;
      await load;
      // The call that was on the frozen provider failed at the ping timeout, as UNAVAILABLE (it was written: it may
      // have run, so it is not retried), well before its 2 s deadline.
      assert.ok(failures.length >= 1, "the call in flight on the frozen provider failed");
      for (const failure of failures) {
        assert.equal(failure.code, RpcCode.UNAVAILABLE, failure.message);
        assert.match(failure.message, /keepalive ping/);
      }
    } finally {
      stopping = true;
      await channel.close();
      for (const p of [a, b]) {
        if (p.server.running) Deno.kill(p.server.pid, "SIGCONT");
        await p.server.stop("SIGKILL");
      }
    }
  },
);

Deno.test("Ejection: N deadline misses in a row eject a provider for the back-off, then it is probed", async () => {
  const loop = new EventLoop();
  const slow = new RpcProvider({ loop });
  slow.registerService(ECHO, {
    ...echoImpl("slow"),
    Say: (r: Req, context: CallContext) => sleep(1000, context.signal).then(() => ({ text: r.text })),
  });
  await slow.start();
  const fast = new RpcProvider({ loop });
  fast.registerService(ECHO, echoImpl("fast"));
  await fast.start();
  const channel = new RpcChannel({
    loop,
    providers: { "trust.Echo": [slow.advertisedAddress, fast.advertisedAddress] },
    ejectAfterFailures: 3,
    ejectionBackoffMs: 1000,
    maxRetries: 0,
  });
  try {
    const stub = channel.stub<EchoStub>(ECHO);
    let misses = 0;
    for (let i = 0; i < 12 && !channel.ejectedProviders().includes(slow.advertisedAddress); i++) {
      await stub.Say({ text: "x" }, { timeoutMs: 300 }).catch(() => misses++);
    }
    assert.equal(misses, 3, "ejected after 3 misses in a row");
    for (let i = 0; i < 10; i++) assert.equal((await stub.Say({ text: "y" }, { timeoutMs: 300 })).text, "y@fast");
    await sleep(1100);
    assert.ok(!channel.ejectedProviders().includes(slow.advertisedAddress), "probed again after the back-off");
    // The probe misses its deadline too: ejected again at once, for twice as long.
    await stub.Say({ text: "probe" }, { timeoutMs: 300 }).catch(() => {});
    await stub.Say({ text: "probe" }, { timeoutMs: 300 }).catch(() => {});
    assert.ok(channel.ejectedProviders().includes(slow.advertisedAddress), "ejected again after a failed probe");
  } finally {
    await channel.close();
    await slow.stop({ graceMs: 300 });
    await fast.stop({ graceMs: 100 });
  }
});

// --- 6. deadline and cancellation propagation ---

Deno.test("Propagation: a nested call made with the handler's context inherits its 300 ms deadline and its cancel", async () => {
  const loop = new EventLoop();
  let nestedSawMs = NaN;
  let nestedAborted = false;
  const back = new RpcProvider({ loop });
  back.registerService(ECHO, {
    ...echoImpl("back"),
    Say(_request: Req, context: CallContext) {
      nestedSawMs = context.timeRemainingMs();
      return { text: "back" };
    },
    async Slow(request: Req, context: CallContext) {
      await sleep(request.delayMs, context.signal);
      nestedAborted = context.signal.aborted;
      return { text: "late" };
    },
  });
  await back.start();
  const backChannel = new RpcChannel({ loop, providers: { "trust.Echo": [back.advertisedAddress] }, timeoutMs: 5000 });
  const backStub = backChannel.stub<EchoStub>(ECHO);
  const front = new RpcProvider({ loop });
  front.registerService(ECHO, {
    ...echoImpl("front"),
    async Relay(request: Req, context: CallContext) {
      if (request.delayMs > 0) return await backStub.Slow({ text: "x", delayMs: request.delayMs }, { parent: context });
      return await backStub.Say({ text: "x" }, { parent: context });
    },
  });
  await front.start();
  const channel = new RpcChannel({ loop, providers: { "trust.Echo": [front.advertisedAddress] } });
  try {
    const stub = channel.stub<EchoStub>(ECHO);
    await stub.Relay({ text: "a" }, { timeoutMs: 300 });
    console.log(`the nested call saw ${Math.round(nestedSawMs)} ms left of the parent's 300 ms`);
    assert.ok(nestedSawMs <= 300 && nestedSawMs > 200, `nested deadline ${nestedSawMs} ms`);
    // The caller cancels: the front handler's nested call is cancelled, and the back handler's signal fires.
    const abort = new AbortController();
    const relayed = stub.Relay({ text: "b", delayMs: 2000 }, { signal: abort.signal });
    await sleep(100);
    abort.abort();
    await rejectsWithCode(relayed, RpcCode.CANCELLED);
    await sleep(100);
    assert.ok(nestedAborted, "the nested call's handler saw the cancel");
  } finally {
    await channel.close();
    await backChannel.close();
    await front.stop({ graceMs: 100 });
    await back.stop({ graceMs: 100 });
  }
});

Deno.test("Config: every provider limit has an rpcserver_ key; a bad value names the key", async () => {
  const { parseRpcConfig } = await import("./rpc_application.ts");
  const config = parseRpcConfig({
    rpcserver_ip: "127.0.0.1",
    rpcserver_port: 0,
    dwt_src_ip: "127.0.0.1",
    dwt_src_port: 1,
    rpcserver_max_connections_per_address: "50",
    rpcserver_frame_timeout_ms: 1000,
    rpcserver_max_buffered_frame_bytes: 1048576,
    rpcserver_max_unsent_bytes: 4194304,
    rpcserver_pause_reading_at_bytes: 1048576,
    rpcserver_max_metadata_bytes: 4096,
    rpcserver_keepalive_interval_ms: 2000,
    rpcserver_keepalive_timeout_ms: 1000,
    rpcserver_drain_grace_ms: 3000,
  }, "p.json");
  assert.deepEqual(config.rpcserverLimits, {
    maxConnectionsPerAddress: 50,
    frameTimeoutMs: 1000,
    maxBufferedFrameBytes: 1048576,
    pauseReadingAtBytes: 1048576,
    maxUnsentBytes: 4194304,
    maxMetadataBytes: 4096,
    keepaliveIntervalMs: 2000,
    keepaliveTimeoutMs: 1000,
    drainGraceMs: 3000,
  });
  assert.throws(
    () => parseRpcConfig({ dwt_src_ip: "127.0.0.1", dwt_src_port: 1, rpcserver_frame_timeout_ms: -1 }, "p.json"),
    /'rpcserver_frame_timeout_ms' must be an integer >= 1: current value is -1/,
  );
});

Deno.test("Drain: a lone provider restarted on the same address under load fails no call (callers wait for it)", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop, heartbeatTimeoutMs: 100, heartbeatMaxCount: 5 });
  await server.start();
  const registries: RegistryClient[] = [];
  let port = 0;
  const startProvider = async () => {
    const registry = await RegistryClient.connect(server.address, { loop });
    registries.push(registry);
    const provider = new RpcProvider({ loop, registry, port });
    provider.registerService(ECHO, echoImpl());
    await provider.start();
    port = provider.address.port;
    return provider;
  };
  let provider = await startProvider();
  const callerRegistry = await RegistryClient.connect(server.address, { loop });
  const channel = new RpcChannel({ loop, registry: callerRegistry, timeoutMs: 3000 });
  const stub = channel.stub<EchoStub>(ECHO);
  let calls = 0;
  let failed = 0;
  const errors: string[] = [];
  let stop = false;
  try {
    const load = Promise.all(Array.from({ length: 4 }, async () => {
      while (!stop) {
        calls++;
        await stub.Slow({ text: "s", delayMs: 10 }).catch((error) => {
          failed++;
          errors.push((error as Error).message);
        });
      }
    }));
    await sleep(100);
    for (let i = 0; i < 2; i++) {
      await provider.stop({ graceMs: 1000 });
      provider = await startProvider();
      await sleep(200);
    }
    stop = true;
    await load;
    console.log(`lone provider restarted twice on port ${port}: ${calls} calls, ${failed} failed`, errors.slice(0, 3));
    assert.equal(failed, 0);
  } finally {
    stop = true;
    await channel.close();
    await provider.stop({ graceMs: 100 });
    for (const registry of registries) await registry.close();
    await callerRegistry.close();
    await server.stop();
  }
});

Deno.test("Drain, caller side: calls above the drain's last id go to another provider at once; none is lost", async () => {
  // A hand-made provider: takes three calls, drains with last id = the first, answers only the first.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const fakeAddress = `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  const seenByFake: number[] = [];
  const fake = (async () => {
    const conn = await listener.accept();
    let pending = new Uint8Array(0);
    const buf = new Uint8Array(64 * 1024);
    while (seenByFake.length < 3) {
      const n = await conn.read(buf);
      if (n === null) return;
      const merged = new Uint8Array(pending.length + n);
      merged.set(pending);
      merged.set(buf.subarray(0, n), pending.length);
      pending = merged;
      while (pending.length >= 4) {
        const length = new DataView(pending.buffer, pending.byteOffset).getUint32(0);
        if (pending.length < 4 + length) break;
        const frame = decodeRpcFrame(pending.slice(4, 4 + length));
        pending = pending.slice(4 + length);
        if (frame.kind === FrameKind.REQUEST) seenByFake.push(frame.callId);
      }
    }
    const first = Math.min(...seenByFake);
    const answer = root.lookupType("trust.Res").encode({ text: "fake" }).finish();
    await conn.write(framed(encodeRpcFrame({ drain: { lastCallId: first, reason: "test drain", graceMs: 1000 } })));
    await conn.write(framed(encodeRpcFrame({ response: { callId: first, payload: answer } })));
    // Holds the others: were they not handed back, they would wait for their deadline.
    await sleep(1500);
    conn.close();
  })();
  const loop = new EventLoop();
  const real = new RpcProvider({ loop });
  let realCalls = 0;
  real.registerService(ECHO, {
    ...echoImpl("real"),
    Say: (request: Req) => (realCalls++, { text: `${request.text}@real` }),
  });
  await real.start();
  const channel = new RpcChannel({
    loop,
    providers: { "trust.Echo": [fakeAddress, real.advertisedAddress] },
    // Always the first candidate: the fake one while it takes calls.
    loadBalancer: { name: "first", pick: (candidates) => candidates[0]! },
    maxRetries: 0, // a drain's hand-back is not a retry: it needs no budget
  });
  try {
    const stub = channel.stub<EchoStub>(ECHO);
    const start = performance.now();
    const answers = await Promise.all([1, 2, 3].map((i) => stub.Say({ text: `c${i}` }, { timeoutMs: 1000 })));
    const ms = performance.now() - start;
    assert.deepEqual(answers.map((a) => a.text).sort(), ["c2@real", "c3@real", "fake"].sort());
    assert.equal(realCalls, 2);
    assert.ok(ms < 500, `handed back at once, not after a deadline: ${ms} ms`);
    assert.equal((await stub.Say({ text: "next" })).text, "next@real", "new calls go elsewhere");
    assert.ok(channel.ejectedProviders().includes(fakeAddress), "the draining provider is skipped");
  } finally {
    await channel.close();
    await real.stop({ graceMs: 100 });
    await fake;
    listener.close();
  }
});

Deno.test("proto3 defaults: protobufjs's own Service over rpcImpl gets omitted bytes as Uint8Array", async () => {
  const loop = new EventLoop();
  const provider = new RpcProvider({ loop });
  provider.registerService(DEFAULTS, { Echo: () => ({}) });
  await provider.start();
  const channel = new RpcChannel({ loop, providers: { "trust.Defaults": [provider.advertisedAddress] } });
  try {
    const service = root.lookupService("trust.Defaults").create(channel.rpcImpl("trust.Defaults")) as unknown as {
      echo(request: object): Promise<{ b: unknown }>;
    };
    const answer = await service.echo({});
    assert.ok(answer.b instanceof Uint8Array && answer.b.length === 0, `bytes: ${answer.b}`);
  } finally {
    await channel.close();
    await provider.stop({ graceMs: 100 });
  }
});

Deno.test("Limits reach the Workers of a provider with threads", needs("read"), async () => {
  const loop = new EventLoop();
  const provider = new RpcProvider({ loop, threads: 2, maxMetadataBytes: 100 });
  await provider.registerModule(new URL("./testdata/threaded_echo.ts", import.meta.url).href);
  await provider.start();
  const raw = await RawClient.connect(provider.address.port);
  try {
    await raw.send({ request: { callId: 1, service: "test.Echo", method: "Say", metadata: { k: "v".repeat(200) } } });
    const answer = await raw.next();
    assert.equal(answer?.status, RpcCode.RESOURCE_EXHAUSTED, answer?.errorMessage);
    assert.match(answer!.errorMessage, /limit of 100 bytes/);
  } finally {
    raw.close();
    await provider.stop({ graceMs: 100 });
  }
});
