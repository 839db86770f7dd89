// A provider's seed port against the seed's caller, emulated byte for byte from seed-spec §3.4–3.7: Login and
// Register of examples/rpc/user.proto found through the seed's layout in a real registry; errors and large answers as
// a seed caller sees them; compat off; two services of one simple name refused at start.
import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { RegistryClient } from "../../registry/client/registry_client.ts";
import { RegistryServer } from "../../registry/server/registry_server.ts";
import { parseRpcConfig } from "../../rpc/rpc_application.ts";
import { RpcProvider, type RpcProviderOptions } from "../../rpc/rpc_provider.ts";
import { parseProto, serviceDefinition } from "../../rpc/service_definition.ts";
import { SEED_ANSWERED_CLOSE_MS } from "./seed_server_transport.ts";
import { root as userRoot, UserServiceRpc } from "../../examples/rpc/user_pb.ts";
import { UserService } from "../../examples/rpc/user_service.ts";
import { bytesField, seedCall, seedFrame } from "../testdata/seed_rpc_emulation.ts";

const LoginResponse = userRoot.lookupType("dwt.LoginResponse");
const RegisterResponse = userRoot.lookupType("dwt.RegisterResponse");
const decoder = new TextDecoder();

/** The user service without its console lines (the test output stays readable). */
class QuietUserService extends UserService {
  constructor() {
    super();
    const log = console.log;
    for (const name of ["Login", "Register"] as const) {
      const method = this[name].bind(this);
      // Replaced in place, whatever the method's own request and context types are.
      // deno-lint-ignore no-explicit-any
      (this as any)[name] = (request: any, context: any) => {
        console.log = () => {};
        try {
          return method(request, context);
        } finally {
          console.log = log;
        }
      };
    }
  }
}

async function withRegistry<T>(run: (registry: RegistryClient, loop: EventLoop) => Promise<T>): Promise<T> {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, heartbeatPort: 0, loop });
  await server.start();
  const registry = await RegistryClient.connect(server.address, { loop });
  try {
    return await run(registry, loop);
  } finally {
    await registry.close();
    await server.stop();
  }
}

async function userProvider(options: RpcProviderOptions): Promise<RpcProvider> {
  const provider = new RpcProvider({ seedPort: 0, ...options });
  provider.registerService(UserServiceRpc, new QuietUserService());
  await provider.start();
  return provider;
}

// The seed caller's discovery (§3.6 step 4): the data of /<Service>/<Method>, "ip:port", split at the first ':'.
async function seedDiscover(registry: RegistryClient, path: string): Promise<{ hostname: string; port: number }> {
  const text = decoder.decode((await registry.get(path)).data);
  const colon = text.indexOf(":");
  assert.ok(colon > 0, `${path} holds "${text}"`);
  return { hostname: text.slice(0, colon), port: Number(text.slice(colon + 1)) };
}

Deno.test("a seed caller calls Login and Register of user.proto on a provider's seed port, found in the seed's layout", async () => {
  await withRegistry(async (registry, loop) => {
    const provider = await userProvider({ loop, registry });
    try {
      // The layout the seed's provider makes: /UserServiceRpc persistent and empty, one ephemeral node per method.
      const service = await registry.get("/UserServiceRpc");
      assert.equal(service.data.length, 0);
      assert.equal(service.stat.ephemeralOwner, 0n);
      assert.deepEqual((await registry.children("/UserServiceRpc")).sort(), ["Login", "Register"]);
      assert.notEqual((await registry.exists("/UserServiceRpc/Login"))!.ephemeralOwner, 0n);
      // The native layout is still there for native callers.
      assert.deepEqual(await registry.children("/dwt.UserServiceRpc"), [provider.advertisedAddress]);

      const login = await seedDiscover(registry, "/UserServiceRpc/Login");
      assert.equal(login.port, provider.seedAddress!.port);
      const loginArgs = Uint8Array.from([...bytesField(1, "dwt"), ...bytesField(2, "password")]);
      const loginAnswer = await seedCall(login.hostname, login.port, seedFrame("UserServiceRpc", "Login", loginArgs));
      assert.equal(loginAnswer.kind, "read");
      const loginResponse = LoginResponse.toObject(
        LoginResponse.decode(loginAnswer.kind === "read" ? loginAnswer.bytes : new Uint8Array()),
        { defaults: true },
      );
      assert.equal(loginResponse.success, true);
      assert.equal(loginResponse.result.errcode, 0);

      // The seed's caller sets the name twice and never the password (§3.10): one bytes field.
      const register = await seedDiscover(registry, "/UserServiceRpc/Register");
      const registerArgs = Uint8Array.from(bytesField(1, "reg_password"));
      const registerAnswer = await seedCall(
        register.hostname,
        register.port,
        seedFrame("UserServiceRpc", "Register", registerArgs),
      );
      assert.equal(registerAnswer.kind, "read");
      const registerResponse = RegisterResponse.toObject(
        RegisterResponse.decode(registerAnswer.kind === "read" ? registerAnswer.bytes : new Uint8Array()),
        { defaults: true },
      );
      assert.ok(registerResponse.id >= 1 && registerResponse.id <= 500, `id ${registerResponse.id}`);
      assert.equal(decoder.decode(registerResponse.result.errmsg), "success");

      // Counted in the provider's stats under the full names.
      const calls = provider.stats().calls;
      assert.deepEqual(calls["dwt.UserServiceRpc.Login"], { OK: 1 });
      assert.deepEqual(calls["dwt.UserServiceRpc.Register"], { OK: 1 });
    } finally {
      await provider.stop();
    }
    // Stopped: its method nodes are gone (the service node is persistent, as in the seed).
    assert.deepEqual(await registry.children("/UserServiceRpc"), []);
  });
});

Deno.test("seed port: an error reaches the seed caller as the end of the stream with no bytes, and is counted", async () => {
  const loop = new EventLoop();
  const root = parseProto(`syntax = "proto3"; package demo;
    message Msg { bytes text = 1; }
    service Echo { rpc Say (Msg) returns (Msg); rpc Fail (Msg) returns (Msg); rpc Big (Msg) returns (Msg); }`);
  const provider = new RpcProvider({ loop, seedPort: 0 });
  provider.registerService(serviceDefinition(root, "demo.Echo"), {
    Say: (request: { text: Uint8Array }) => request,
    Fail: () => {
      throw new Error("no");
    },
    Big: () => ({ text: new Uint8Array(5000).fill(7) }),
  });
  await provider.start();
  try {
    const { hostname, port } = provider.seedAddress!;
    const args = Uint8Array.from(bytesField(1, "hi"));
    const said = await seedCall(hostname, port, seedFrame("Echo", "Say", args));
    assert.deepEqual(said, { kind: "read", bytes: args });
    for (const [service, method] of [["Echo", "Fail"], ["Nope", "Say"], ["Echo", "Nope"]]) {
      const outcome = await seedCall(hostname, port, seedFrame(service!, method!, args));
      assert.deepEqual(outcome, { kind: "read", bytes: new Uint8Array() }, `${service}.${method}`);
    }
    // An answer over 1,024 bytes: sent whole, the seed's caller reads what its one read gets (at most 1,024).
    const big = await seedCall(hostname, port, seedFrame("Echo", "Big", args));
    assert.ok(big.kind === "read" && big.bytes.length > 0 && big.bytes.length <= 1024);
    const stats = provider.stats();
    assert.equal(stats.errorsByCode.UNIMPLEMENTED, 2, JSON.stringify(stats.errorsByCode));
    assert.equal(stats.errorsByCode.UNKNOWN, 1, JSON.stringify(stats.errorsByCode));
    assert.equal(stats.limitsHit.seed_answer_over_1024, 1);
  } finally {
    await provider.stop();
  }
  // Over the provider's maxFrameBytes: not sent at all, as the native port refuses it.
  const small = new RpcProvider({ loop, seedPort: 0, maxFrameBytes: 4096 });
  small.registerService(serviceDefinition(root, "demo.Echo"), {
    Say: () => ({}),
    Fail: () => ({}),
    Big: () => ({ text: new Uint8Array(5000).fill(7) }),
  });
  await small.start();
  try {
    const { hostname, port } = small.seedAddress!;
    const outcome = await seedCall(hostname, port, seedFrame("Echo", "Big", new Uint8Array()));
    assert.deepEqual(outcome, { kind: "read", bytes: new Uint8Array() });
    assert.equal(small.stats().limitsHit.seed_answer_over_limit, 1);
  } finally {
    await small.stop();
  }
});

Deno.test("seed port: two services with one simple name are refused at start, before anything listens", async () => {
  const loop = new EventLoop();
  const a = parseProto(`syntax = "proto3"; package a; message M {} service Users { rpc Get (M) returns (M); }`);
  const b = parseProto(`syntax = "proto3"; package b; message M {} service Users { rpc Get (M) returns (M); }`);
  const provider = new RpcProvider({ loop, seedPort: 0 });
  provider.registerService(serviceDefinition(a, "a.Users"), { Get: () => ({}) });
  provider.registerService(serviceDefinition(b, "b.Users"), { Get: () => ({}) });
  await assert.rejects(provider.start(), /services 'a.Users' and 'b.Users' share the simple name 'Users'/);
  assert.throws(() => provider.address, TypeError); // nothing listens
  // Without the seed port the same provider starts.
  const native = new RpcProvider({ loop });
  native.registerService(serviceDefinition(a, "a.Users"), { Get: () => ({}) });
  native.registerService(serviceDefinition(b, "b.Users"), { Get: () => ({}) });
  await native.start();
  await native.stop();
});

Deno.test("compat off (the default): no seed port, no seed layout, and a seed frame on the native port is refused", async () => {
  await withRegistry(async (registry, loop) => {
    const provider = new RpcProvider({ loop, registry });
    provider.registerService(UserServiceRpc, new QuietUserService());
    await provider.start();
    try {
      assert.equal(provider.seedAddress, undefined);
      assert.equal(await registry.exists("/UserServiceRpc"), undefined);
      const { hostname, port } = provider.address;
      const frame = seedFrame("UserServiceRpc", "Login", Uint8Array.from(bytesField(1, "dwt")));
      const outcome = await seedCall(hostname, port, frame, 3000);
      // Closed with no answer (an EOF, or a reset when unread bytes were left): never a response.
      assert.ok(outcome.kind === "recv error" || (outcome.kind === "read" && outcome.bytes.length === 0), outcome.kind);
      assert.equal(provider.stats().callsServed, 0);
    } finally {
      await provider.stop();
    }
  });
});

Deno.test("config keys: rpcserver_seed_port (0 is off), rpcserver_seed_ip, rpcserver_seed_call_timeout_ms, rpcclient_seed_providers", () => {
  const config = parseRpcConfig({
    rpcserver_ip: "127.0.0.1",
    rpcserver_port: "8800",
    rpcserver_seed_port: "8900",
    rpcserver_seed_ip: "0.0.0.0",
    rpcserver_seed_call_timeout_ms: 2000,
    rpcclient_seed_providers: "true",
    dwt_src_ip: "127.0.0.1",
    dwt_src_port: "10606",
  }, "provider.json");
  assert.equal(config.rpcserverSeedPort, 8900);
  assert.equal(config.rpcserverSeedIp, "0.0.0.0");
  assert.equal(config.rpcserverSeedCallTimeoutMs, 2000);
  assert.equal(config.rpcclientSeedProviders, true);
  const off = parseRpcConfig({ rpcserver_seed_port: 0, dwt_src_ip: "127.0.0.1", dwt_src_port: 1 }, "off.json");
  assert.equal(off.rpcserverSeedPort, undefined);
  assert.throws(
    () => parseRpcConfig({ rpcserver_seed_port: 70000, dwt_src_ip: "127.0.0.1", dwt_src_port: 1 }, "bad.json"),
    /'rpcserver_seed_port' must be an integer in \[0, 65535\]/,
  );
});

Deno.test("seed port: a stop drains it (a call in flight is answered, a frame half-sent is closed) and a caller that keeps its connection after the answer is closed", async () => {
  const loop = new EventLoop();
  const root = parseProto(`syntax = "proto3"; package demo;
    message Msg { bytes text = 1; }
    service Echo { rpc Say (Msg) returns (Msg); rpc Slow (Msg) returns (Msg); }`);
  const provider = new RpcProvider({ loop, seedPort: 0, drainGraceMs: 2000 });
  provider.registerService(serviceDefinition(root, "demo.Echo"), {
    Say: (request: { text: Uint8Array }) => request,
    Slow: async (request: { text: Uint8Array }) => (await new Promise((resolve) => setTimeout(resolve, 300)), request),
  });
  await provider.start();
  const { hostname, port } = provider.seedAddress!;
  const args = Uint8Array.from(bytesField(1, "hi"));
  // Kept open after its answer: closed by the provider after SEED_ANSWERED_CLOSE_MS.
  const keeper = await Deno.connect({ hostname, port });
  await keeper.write(seedFrame("Echo", "Say", args));
  const buffer = new Uint8Array(1024);
  assert.equal(await keeper.read(buffer), args.length);
  assert.equal(await keeper.read(buffer), null); // the half-close; this side stays open
  const deadline = performance.now() + SEED_ANSWERED_CLOSE_MS + 3000;
  while (provider.stats().connections > 0 && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(provider.stats().connections, 0);
  assert.equal(provider.stats().limitsHit.seed_close_timeout, 1);
  keeper.close();

  const slow = seedCall(hostname, port, seedFrame("Echo", "Slow", args));
  const halfSent = await Deno.connect({ hostname, port });
  await halfSent.write(seedFrame("Echo", "Say", args).subarray(0, 5));
  await new Promise((resolve) => setTimeout(resolve, 100));
  await provider.stop();
  assert.deepEqual(await slow, { kind: "read", bytes: args });
  assert.equal(await halfSent.read(buffer).catch(() => null), null);
  halfSent.close();
});
