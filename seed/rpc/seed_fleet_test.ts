// A whole mixed fleet across both halves of issue 22, every seed program emulated from seed-spec: our registry with
// its seed listener (seed/registry), the seed's client library (seed/testdata/seed_src_client.ts) in the seed's
// caller and provider, and our provider and channel. A seed caller discovers a TypeScript provider through the
// dwt_src protocol and calls Login and Register with the seed's frame; a TypeScript caller finds a seed provider that
// published itself through the dwt_src protocol and calls it with the seed's frame; native callers are unaffected.
import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { RegistryClient } from "../../registry/client/registry_client.ts";
import { RegistryServer } from "../../registry/server/registry_server.ts";
import { RpcChannel, type StubMethod } from "../../rpc/rpc_channel.ts";
import { RpcProvider } from "../../rpc/rpc_provider.ts";
import { InfoServiceRpc } from "../../examples/rpc/info_pb.ts";
import { root as userRoot, UserServiceRpc } from "../../examples/rpc/user_pb.ts";
import { SeedRegistryListener } from "../registry/seed_registry_listener.ts";
import { SeedSrcClient } from "../testdata/seed_src_client.ts";
import { bytesField, seedCall, seedFrame, SeedProviderEmulation } from "../testdata/seed_rpc_emulation.ts";

const RegisterResponse = userRoot.lookupType("dwt.RegisterResponse");
const encoder = new TextEncoder();

type UserStub = { Login: StubMethod; Register: StubMethod };

Deno.test("mixed fleet over the seed's registry protocol: seed caller -> TypeScript provider, TypeScript caller -> seed provider", async () => {
  const loop = new EventLoop();
  const listener = new SeedRegistryListener({ port: 0 });
  const server = new RegistryServer({ port: 0, heartbeatPort: 0, loop, listeners: [listener] });
  await server.start();
  const registry = await RegistryClient.connect(server.address, { loop });
  const srcPort = listener.address.port;

  // A TypeScript provider of dwt.UserServiceRpc with a seed port, publishing to our registry (native client).
  const tsProvider = new RpcProvider({ loop, registry, seedPort: 0 });
  tsProvider.registerService(UserServiceRpc, {
    Login: () => ({ success: true, result: { errcode: 0, errmsg: encoder.encode("ts") } }),
    Register: () => ({ success: true, id: 42, result: { errcode: 0, errmsg: encoder.encode("success") } }),
  });
  await tsProvider.start();

  // A seed provider of InfoServiceRpc publishing itself the seed's way, through the dwt_src protocol (§3.7); its
  // answer by hand: InfoResponse {success: true, size: 1, info: ["123456__8"]}.
  const answer = Uint8Array.from([0x08, 0x01, 0x10, 0x01, ...bytesField(3, "123456__8")]);
  const seedProvider = new SeedProviderEmulation({ InfoServiceRpc: { GetInfo: () => answer } });
  const seedProviderSession = new SeedSrcClient();
  const seedCaller = new SeedSrcClient();
  const channel = new RpcChannel({ loop, registry, seedProviders: true, timeoutMs: 3000 });
  try {
    assert.equal(await seedProviderSession.connect("127.0.0.1", srcPort, 1000), true);
    assert.equal(await seedProviderSession.createNode("/InfoServiceRpc", "", 1), true);
    assert.equal(await seedProviderSession.createNode("/InfoServiceRpc/GetInfo", seedProvider.address, 2), true);

    // The seed caller (§3.6): SRCCLient::connect, getNode("/UserServiceRpc/Register"), then the seed's frame.
    assert.equal(await seedCaller.connect("127.0.0.1", srcPort, 1000), true);
    const address = await seedCaller.getNode("/UserServiceRpc/Register");
    assert.equal(address, `127.0.0.1:${tsProvider.seedAddress!.port}`);
    const colon = address.indexOf(":");
    const registered = await seedCall(
      address.slice(0, colon),
      Number(address.slice(colon + 1)),
      seedFrame("UserServiceRpc", "Register", Uint8Array.from(bytesField(1, "reg_password"))),
    );
    assert.equal(registered.kind, "read");
    assert.equal(
      RegisterResponse.decode(registered.kind === "read" ? registered.bytes : new Uint8Array()).toJSON().id,
      42,
    );
    assert.deepEqual((await seedCaller.lsNode("/UserServiceRpc")).sort(), ["Login", "Register"]);

    // The TypeScript caller finds the seed provider in the seed's layout and calls it with the seed's frame.
    const infoStub = channel.stub<{ GetInfo: StubMethod }>(InfoServiceRpc);
    const got = await infoStub.GetInfo({ uid: 123456, type: 8 });
    assert.equal(got.success, true);
    assert.deepEqual(got.info.map((bytes: Uint8Array) => new TextDecoder().decode(bytes)), ["123456__8"]);
    assert.deepEqual(seedProvider.calls, ["InfoServiceRpc.GetInfo"]);

    // Native callers still reach the TypeScript provider by its native layout.
    const native = new RpcChannel({ loop, registry, timeoutMs: 3000 });
    try {
      assert.equal((await native.stub<UserStub>(UserServiceRpc).Register({})).id, 42);
    } finally {
      await native.close();
    }
  } finally {
    await channel.close();
    await seedCaller.disconnect();
    await seedProviderSession.disconnect();
    await seedProvider.close();
    await tsProvider.stop();
    await registry.close();
    await server.stop();
  }
});
