// Our channel with `seedProviders` against an emulated C++ seed provider (seed-spec §3.4–3.5, bytes by hand) found
// through the seed's layout in a real registry; every outcome the transport's doc table lists; and a mixed fleet:
// a seed-layout provider and a native provider of one service, each found by its own kind of caller, and a
// TypeScript provider with a seed port taking the seed's method nodes over when the seed provider leaves.
import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { NodeType } from "../../registry/registry.ts";
import { RegistryClient } from "../../registry/client/registry_client.ts";
import { RegistryServer } from "../../registry/server/registry_server.ts";
import { RpcChannel, type StubMethod } from "../../rpc/rpc_channel.ts";
import { RpcCode, type RpcError } from "../../rpc/rpc_error.ts";
import { RpcProvider } from "../../rpc/rpc_provider.ts";
import { parseProto, serviceDefinition } from "../../rpc/service_definition.ts";
import { UserServiceRpc } from "../../examples/rpc/user_pb.ts";
import { bytesField, seedCall, seedFrame, SeedProviderEmulation, varint } from "../testdata/seed_rpc_emulation.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

type EchoStub = {
  Say: StubMethod;
  Empty: StubMethod;
  Garbled: StubMethod;
  Big: StubMethod;
  Silent: StubMethod;
  Feed: (request: unknown) => AsyncIterable<unknown>;
};

type UserStub = {
  Login: StubMethod<{ name?: Uint8Array; password?: Uint8Array }>;
  Register: StubMethod<{ name?: Uint8Array; password?: Uint8Array }>;
};

// The seed callee's answers (§3.10), encoded by hand: Login says success but errcode 1 "login error"; Register an id.
const SEED_LOGIN_ANSWER = Uint8Array.from([
  ...bytesField(1, Uint8Array.from([0x08, 0x01, ...bytesField(2, "login error")])),
  0x10,
  0x01,
]);
const seedRegisterAnswer = (id: number) =>
  Uint8Array.from([...bytesField(1, Uint8Array.from(bytesField(2, "success"))), 0x10, 0x01, 0x18, ...varint(id)]);

interface Fleet {
  loop: EventLoop;
  server: RegistryServer;
  registry: RegistryClient;
}

async function withFleet(run: (fleet: Fleet) => Promise<void>): Promise<void> {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, heartbeatPort: 0, loop });
  await server.start();
  const registry = await RegistryClient.connect(server.address, { loop });
  try {
    await run({ loop, server, registry });
  } finally {
    await registry.close();
    await server.stop();
  }
}

// What the seed's provider publishes (§3.7), through a registry session of its own (closing it is the provider dying).
async function publishTheSeedWay(fleet: Fleet, service: string, methods: string[], address: string) {
  const session = await RegistryClient.connect(fleet.server.address, { loop: fleet.loop });
  await session.create(`/${service}`, "").catch(() => {});
  for (const method of methods) {
    await session.create(`/${service}/${method}`, address, { nodeType: NodeType.EPHEMERAL });
  }
  return session;
}

Deno.test("a channel with seedProviders finds an emulated seed provider in the seed's layout and calls it with the seed's frame", async () => {
  await withFleet(async (fleet) => {
    const seen: Uint8Array[] = [];
    const seedProvider = new SeedProviderEmulation({
      UserServiceRpc: {
        Login: (args) => (seen.push(args.slice()), SEED_LOGIN_ANSWER),
        Register: () => seedRegisterAnswer(321),
      },
    });
    const session = await publishTheSeedWay(fleet, "UserServiceRpc", ["Login", "Register"], seedProvider.address);
    const channel = new RpcChannel({
      loop: fleet.loop,
      registry: fleet.registry,
      seedProviders: true,
      timeoutMs: 2000,
    });
    try {
      assert.deepEqual(await channel.providersOf("dwt.UserServiceRpc"), [seedProvider.address]);
      const stub = channel.stub<UserStub>(UserServiceRpc);
      const login = await stub.Login({ name: encoder.encode("dwt"), password: encoder.encode("password") });
      assert.equal(login.success, true);
      assert.equal(login.result.errcode, 1);
      assert.equal(decoder.decode(login.result.errmsg), "login error");
      // The args the seed provider got: exactly the serialized LoginRequest.
      assert.deepEqual([...seen[0]!], [...bytesField(1, "dwt"), ...bytesField(2, "password")]);
      const register = await stub.Register({ name: encoder.encode("reg_name") });
      assert.equal(register.id, 321);
      assert.deepEqual(seedProvider.calls, ["UserServiceRpc.Login", "UserServiceRpc.Register"]);
    } finally {
      await channel.close();
      await session.close();
      await seedProvider.close();
    }
  });
});

Deno.test("seedProviders: each outcome of a seed provider becomes the documented result", async () => {
  const loop = new EventLoop();
  const root = parseProto(`syntax = "proto3"; package demo;
    message Msg { bytes text = 1; }
    service Echo { rpc Say (Msg) returns (Msg); rpc Empty (Msg) returns (Msg); rpc Garbled (Msg) returns (Msg);
      rpc Big (Msg) returns (Msg); rpc Silent (Msg) returns (Msg); rpc Feed (Msg) returns (stream Msg); }`);
  const echo = serviceDefinition(root, "demo.Echo");
  const big = Uint8Array.from(bytesField(1, new Uint8Array(200_000).fill(0x61)));
  const seedProvider = new SeedProviderEmulation({
    Echo: {
      Say: (args) => args,
      Empty: () => new Uint8Array(),
      Garbled: () => Uint8Array.from([0x0a, 0xff, 0xff, 0xff]),
      Big: () => big,
      // Silent is not served: the seed logs "method not found", answers nothing and keeps the connection open.
    },
  });
  const closedPort = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadAddress = `127.0.0.1:${closedPort.addr.port}`;
  closedPort.close();
  const channel = new RpcChannel({
    loop,
    seedProviders: true,
    providers: { "demo.Echo": [seedProvider.address] },
    timeoutMs: 2000,
    maxFrameBytes: 1 << 20,
  });
  const dead = new RpcChannel({ loop, seedProviders: true, providers: { "demo.Echo": [deadAddress] }, maxRetries: 0 });
  const small = new RpcChannel({
    loop,
    seedProviders: true,
    providers: { "demo.Echo": [seedProvider.address] },
    maxFrameBytes: 1024,
  });
  try {
    const stub = channel.stub<EchoStub>(echo);
    assert.equal(decoder.decode((await stub.Say({ text: encoder.encode("hi") })).text), "hi");
    assert.equal((await stub.Empty({})).text.length, 0); // an all-defaults answer is zero bytes in protobuf
    await assert.rejects(stub.Garbled({}), (error: RpcError) => error.code === RpcCode.INTERNAL);
    // Over 1,024 bytes (the seed's own caller would truncate it): read to the provider's half-close.
    assert.equal((await stub.Big({})).text.length, 200_000);
    const started = performance.now();
    await assert.rejects(
      stub.Silent({}, { timeoutMs: 300 }),
      (error: RpcError) => error.code === RpcCode.DEADLINE_EXCEEDED,
    );
    assert.ok(performance.now() - started < 1500);
    await assert.rejects(async () => {
      for await (const _ of stub.Feed({})) { /* none comes */ }
    }, (error: RpcError) => error.code === RpcCode.UNIMPLEMENTED);
    await assert.rejects(
      dead.stub<EchoStub>(echo).Say({}),
      (error: RpcError) => error.code === RpcCode.UNAVAILABLE,
    );
    await assert.rejects(
      small.stub<EchoStub>(echo).Big({}),
      (error: RpcError) => error.code === RpcCode.RESOURCE_EXHAUSTED,
    );
  } finally {
    await Promise.all([channel.close(), dead.close(), small.close()]);
    await seedProvider.close();
  }
});

Deno.test("mixed fleet: a seed-layout provider and a native provider of one service, each found by its own kind of caller", async () => {
  await withFleet(async (fleet) => {
    const { loop, registry } = fleet;
    const seedProvider = new SeedProviderEmulation({
      UserServiceRpc: { Login: () => SEED_LOGIN_ANSWER, Register: () => seedRegisterAnswer(7) },
    });
    const session = await publishTheSeedWay(fleet, "UserServiceRpc", ["Login", "Register"], seedProvider.address);
    const native = new RpcProvider({ loop, registry });
    native.registerService(UserServiceRpc, {
      Login: () => ({ success: true, result: { errcode: 0, errmsg: encoder.encode("native") } }),
      Register: () => ({ success: true, id: 99 }),
    });
    await native.start();
    const nativeChannel = new RpcChannel({ loop, registry, timeoutMs: 2000 });
    const seedChannel = new RpcChannel({ loop, registry, seedProviders: true, timeoutMs: 2000 });
    try {
      assert.deepEqual(await nativeChannel.providersOf("dwt.UserServiceRpc"), [native.advertisedAddress]);
      assert.deepEqual(await seedChannel.providersOf("dwt.UserServiceRpc"), [seedProvider.address]);
      for (let i = 0; i < 3; i++) {
        assert.equal((await nativeChannel.stub<UserStub>(UserServiceRpc).Register({})).id, 99);
        assert.equal((await seedChannel.stub<UserStub>(UserServiceRpc).Register({})).id, 7);
      }
      // The seed's caller, by the seed's layout, reaches the seed provider; by its bytes, through its own read.
      const path = decoder.decode((await registry.get("/UserServiceRpc/Register")).data);
      const [host, port] = path.split(":");
      const outcome = await seedCall(host!, Number(port), seedFrame("UserServiceRpc", "Register", new Uint8Array()));
      assert.deepEqual(outcome, { kind: "read", bytes: seedRegisterAnswer(7) });
    } finally {
      await nativeChannel.close();
      await seedChannel.close();
      await native.stop();
      await session.close();
      await seedProvider.close();
    }
  });
});

Deno.test("mixed fleet: a TypeScript provider with a seed port waits for the seed provider's method nodes, then takes them over", async () => {
  await withFleet(async (fleet) => {
    const { loop, registry } = fleet;
    const seedProvider = new SeedProviderEmulation({
      UserServiceRpc: { Login: () => SEED_LOGIN_ANSWER, Register: () => seedRegisterAnswer(7) },
    });
    const session = await publishTheSeedWay(fleet, "UserServiceRpc", ["Login", "Register"], seedProvider.address);
    const provider = new RpcProvider({ loop, registry, seedPort: 0 });
    provider.registerService(UserServiceRpc, {
      Login: () => ({ success: true }),
      Register: () => ({ success: true, id: 42 }),
    });
    await provider.start();
    const seedChannel = new RpcChannel({ loop, registry, seedProviders: true, timeoutMs: 2000 });
    const stub = seedChannel.stub<UserStub>(UserServiceRpc);
    try {
      // First wins, as in the seed: the seed provider keeps its nodes.
      const seedPortAddress = `127.0.0.1:${provider.seedAddress!.port}`;
      assert.equal(decoder.decode((await registry.get("/UserServiceRpc/Login")).data), seedProvider.address);
      assert.equal((await stub.Register({})).id, 7);
      // The seed provider dies (its session ends, its ephemeral nodes go): the TypeScript provider takes over.
      await session.close();
      await seedProvider.close();
      const deadline = performance.now() + 5000;
      while (performance.now() < deadline) {
        const held = await registry.get("/UserServiceRpc/Register").catch(() => undefined);
        if (held !== undefined && decoder.decode(held.data) === seedPortAddress) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(decoder.decode((await registry.get("/UserServiceRpc/Login")).data), seedPortAddress);
      assert.equal(decoder.decode((await registry.get("/UserServiceRpc/Register")).data), seedPortAddress);
      // Our seed channel follows the layout and reaches the TypeScript provider's seed port.
      let id = 0;
      while (performance.now() < deadline && id !== 42) id = (await stub.Register({}).catch(() => ({ id: 0 }))).id;
      assert.equal(id, 42);
    } finally {
      await seedChannel.close();
      await provider.stop();
    }
    assert.deepEqual(await registry.children("/UserServiceRpc"), []);
  });
});
