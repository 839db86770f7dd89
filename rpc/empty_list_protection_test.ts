// Empty-list protection: right after a session event the registry may list no provider only because the providers
// have not re-created their nodes yet; a channel keeps calling the last known ones meanwhile. Against a real registry
// server that restarts with an empty tree (every session lost), and a real provider that stays up throughout.
import assert from "node:assert/strict";
import { EventLoop } from "../reactor/event_loop.ts";
import { NodeType } from "../registry/registry.ts";
import { RegistryClient } from "../registry/client/registry_client.ts";
import { RegistryError, RegistryErrorCode } from "../registry/registry_error.ts";
import { RegistryServer } from "../registry/server/registry_server.ts";
import { until } from "../reactor/testdata/until.ts";
import { parseRpcConfig } from "./rpc_application.ts";
import { RpcChannel, type RpcChannelOptions, type StubMethod } from "./rpc_channel.ts";
import { RpcProvider } from "./rpc_provider.ts";
import { parseProto, serviceDefinition } from "./service_definition.ts";

const ECHO = serviceDefinition(
  parseProto(`
    syntax = "proto3";
    package test;
    message Text { string text = 1; }
    service Echo { rpc Say (Text) returns (Text); }
  `),
  "test.Echo",
);

type EchoStub = { Say: StubMethod<{ text: string }, { text: string }> };

/** A provider that serves without a registry, published by hand through `publisher`, and a caller discovering it. */
async function setUp(channelOptions: Partial<RpcChannelOptions>) {
  const loop = new EventLoop();
  let server = new RegistryServer({ port: 0, heartbeatPort: 0, loop });
  await server.start();
  const port = server.address.port;
  const provider = new RpcProvider({ loop });
  provider.registerService(ECHO, { Say: (request: { text: string }) => ({ text: request.text }) });
  await provider.start();
  const address = provider.advertisedAddress;
  const options = { loop, reconnectDelayMs: 20 };
  const publisher = await RegistryClient.connect(server.address, options);
  const publish = async () => {
    await publisher.create("/test.Echo", "").catch(() => {});
    await publisher.create(`/test.Echo/${address}`, address, { nodeType: NodeType.EPHEMERAL });
  };
  await publish();
  const callerRegistry = await RegistryClient.connect(server.address, options);
  const channel = new RpcChannel({ loop, registry: callerRegistry, ...channelOptions });
  const stub = channel.stub<EchoStub>(ECHO);
  assert.equal((await stub.Say({ text: "before" })).text, "before");
  assert.deepEqual(await channel.providersOf("test.Echo"), [address]);
  return {
    address,
    channel,
    stub,
    publisher,
    publish,
    /** Stop the registry and start an empty one on the same port: every session is gone, every node too. */
    async restartRegistry() {
      await server.stop();
      server = new RegistryServer({ port, heartbeatPort: 0, loop });
      await server.start();
    },
    async [Symbol.asyncDispose]() {
      await channel.close();
      await provider.stop({ graceMs: 100 });
      await Promise.all([publisher.close(), callerRegistry.close()]);
      await server.stop();
    },
  };
}

/** Call every few milliseconds until `stop` resolves; collect failures and every provider list seen. */
async function callThrough(
  t: Awaited<ReturnType<typeof setUp>>,
  stop: Promise<unknown>,
): Promise<{ calls: number; failures: string[]; emptyViews: number }> {
  let done = false;
  stop.finally(() => done = true);
  const result = { calls: 0, failures: [] as string[], emptyViews: 0 };
  while (!done) {
    result.calls++;
    try {
      await t.stub.Say({ text: "during" }, { timeoutMs: 1000 });
    } catch (error) {
      result.failures.push(String(error));
    }
    if ((await t.channel.providersOf("test.Echo")).length === 0) result.emptyViews++;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return result;
}

Deno.test("RpcChannel keeps its last providers while the registry lists none right after a session event", async () => {
  await using t = await setUp({ emptyListGraceMs: 10_000 });
  const republished = (async () => {
    await t.restartRegistry();
    // The caller's session expires and it reads an empty tree; the providers come back only later.
    await new Promise((resolve) => setTimeout(resolve, 600));
    await until(() => t.publisher.connected, 5000, "the publisher has a new session");
    await t.publish();
    await until(
      async () => (await t.channel.providersOf("test.Echo")).length === 1,
      2000,
      "the re-published provider is seen",
    );
  })();
  const seen = await callThrough(t, republished);
  await republished;
  assert.deepEqual(seen.failures, [], `${seen.failures.length} of ${seen.calls} calls failed`);
  assert.equal(seen.emptyViews, 0, "an empty list after the session event replaced the good one");
  assert.ok(seen.calls > 20, `only ${seen.calls} calls`);
});

Deno.test("RpcChannel takes an empty list after a session event once it has stayed empty for the grace", async () => {
  await using t = await setUp({ emptyListGraceMs: 400 });
  await t.restartRegistry();
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.deepEqual(await t.channel.providersOf("test.Echo"), [t.address], "kept within the grace");
  await until(
    async () => (await t.channel.providersOf("test.Echo")).length === 0,
    3000,
    "the empty list is taken after the grace",
  );
  // And the provider is found again as soon as it is published.
  await until(() => t.publisher.connected, 5000, "the publisher has a new session");
  await t.publish();
  await until(
    async () => (await t.channel.providersOf("test.Echo")).length === 1,
    2000,
    "the re-published provider is seen",
  );
});

Deno.test("RpcChannel drops the last provider at once when it really leaves (no session event near)", async () => {
  await using t = await setUp({ emptyListGraceMs: 10_000 });
  const started = performance.now();
  await t.publisher.delete(`/test.Echo/${t.address}`);
  await until(
    async () => (await t.channel.providersOf("test.Echo")).length === 0,
    1000,
    "the provider that left is dropped",
  );
  assert.ok(performance.now() - started < 1000);
});

Deno.test("parseRpcConfig reads rpcclient_empty_list_grace_ms and refuses a bad one, naming the key", () => {
  const base = { dwt_src_ip: "127.0.0.1", dwt_src_port: 10606 };
  assert.deepEqual(parseRpcConfig(base, "caller.json").rpcclient, {});
  assert.equal(parseRpcConfig({ ...base, rpcclient_empty_list_grace_ms: "0" }, "c.json").rpcclient.emptyListGraceMs, 0);
  assert.throws(
    () => parseRpcConfig({ ...base, rpcclient_empty_list_grace_ms: -5 }, "caller.json"),
    /caller\.json: 'rpcclient_empty_list_grace_ms' must be an integer >= 0: current value is -5/,
  );
});

type Children = RegistryClient["children"];

/** The real client with its `children` wrapped (to inject failures around the real reads). */
function withChildren(client: RegistryClient, wrap: (children: Children) => Children): RegistryClient {
  const children = wrap(client.children.bind(client));
  return new Proxy(client, {
    get(target, property) {
      if (property === "children") return children;
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("RpcChannel reads the list again until it works when the read after a watch fails", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, heartbeatPort: 0, loop });
  await server.start();
  const publisher = await RegistryClient.connect(server.address, { loop });
  const client = await RegistryClient.connect(server.address, { loop });
  // The real client, with its next reads of children failing as a lost connection would make them.
  let failures = 0;
  const flaky = withChildren(client, (children) => (...args) => {
    if (failures === 0) return children(...args);
    failures--;
    return Promise.reject(new RegistryError(RegistryErrorCode.CONNECTION_LOSS, "Cannot list: injected"));
  });
  const channel = new RpcChannel({ loop, registry: flaky });
  try {
    await publisher.create("/test.Echo", "");
    await publisher.create("/test.Echo/127.0.0.1:1", "", { nodeType: NodeType.EPHEMERAL });
    assert.deepEqual(await channel.providersOf("test.Echo"), ["127.0.0.1:1"]);
    failures = 2;
    // The watch fires for this one; the first two reads after it fail.
    await publisher.create("/test.Echo/127.0.0.1:2", "", { nodeType: NodeType.EPHEMERAL });
    await until(async () => (await channel.providersOf("test.Echo")).length === 2, 3000, "the second provider");
    assert.equal(failures, 0);
  } finally {
    await channel.close();
    await Promise.all([publisher.close(), client.close()]);
    await server.stop();
  }
});

Deno.test("RpcChannel: one provider change costs one read, however many reads after a watch failed before", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, heartbeatPort: 0, loop });
  await server.start();
  const publisher = await RegistryClient.connect(server.address, { loop });
  const client = await RegistryClient.connect(server.address, { loop });
  // The real client; the answers of the next `lose` reads are lost after the server set their watch.
  let lose = 0;
  let reads = 0;
  const lossy = withChildren(client, (children) => async (...args) => {
    reads++;
    const listed = await children(...args);
    if (lose > 0) {
      lose--;
      throw new RegistryError(RegistryErrorCode.CONNECTION_LOSS, "Cannot list: the answer was lost (injected)");
    }
    return listed;
  });
  const channel = new RpcChannel({ loop, registry: lossy });
  try {
    await publisher.create("/test.Echo", "");
    await publisher.create("/test.Echo/127.0.0.1:1", "", { nodeType: NodeType.EPHEMERAL });
    assert.deepEqual(await channel.providersOf("test.Echo"), ["127.0.0.1:1"]);
    for (let n = 2; n <= 5; n++) {
      lose = 1;
      await publisher.create(`/test.Echo/127.0.0.1:${n}`, "", { nodeType: NodeType.EPHEMERAL });
      await until(async () => (await channel.providersOf("test.Echo")).length === n, 3000, `provider ${n}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    reads = 0;
    await publisher.create("/test.Echo/127.0.0.1:9", "", { nodeType: NodeType.EPHEMERAL });
    await until(async () => (await channel.providersOf("test.Echo")).length === 6, 3000, "the last provider");
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(reads, 1, `one change cost ${reads} reads`);
  } finally {
    await channel.close();
    await Promise.all([publisher.close(), client.close()]);
    await server.stop();
  }
});
