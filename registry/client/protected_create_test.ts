// Protected creates (CreateOptions.protected) against a real registry, through a proxy that cuts the connection
// between the server's commit and the client's read of the answer (registry/testdata/cut_proxy.ts): however often
// an answer is lost, one call makes one node; a plain sequential create retried the same way makes two; an RPC
// provider's publishing (plain names, retried) makes its one node.

import assert from "node:assert/strict";
import { needs } from "../../reactor/testdata/permissions.ts";
import { RpcProvider } from "../../rpc/rpc_provider.ts";
import { parseProto, serviceDefinition } from "../../rpc/service_definition.ts";
import { PROTECTED_CREATE_ATTEMPTS } from "./_protected_create.ts";
import { NodeType } from "../registry.ts";
import { RegistryClient, type RegistryClientOptions } from "./registry_client.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";
import { RegistryServer, type RegistryServerOptions } from "../server/registry_server.ts";
import { CutProxy, REGISTRY_CREATES } from "../testdata/cut_proxy.ts";
import { type ProxiedClient, proxiedClient } from "../testdata/proxied_client.ts";

const PROTECTED_NAME = /^_p_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-item-\d{10}$/;

type Net = ProxiedClient<CutProxy>;

/** A client through a proxy that cuts creates' answers; heartbeats go straight, so the session lives on. */
function net(serverOptions: RegistryServerOptions = {}, clientOptions: RegistryClientOptions = {}): Promise<Net> {
  return proxiedClient(
    async (loop, server) => {
      const proxy = await CutProxy.start(loop, server.address, REGISTRY_CREATES);
      return { proxy, tcp: proxy.address, heartbeat: server.heartbeatAddress };
    },
    serverOptions,
    clientOptions,
  );
}

const N = 5;

Deno.test("A protected sequential create whose answer is cut off N times makes exactly N nodes", async () => {
  const n = await net();
  try {
    await n.observer.create("/queue", "");
    const sessionId = n.client.sessionId;
    const made: string[] = [];
    for (let i = 0; i < N; i++) {
      n.proxy.cutAfterReply();
      made.push(await n.client.create("/queue/item-", `job ${i}`, { sequential: true, protected: true }));
    }
    assert.equal(n.proxy.cuts, N, "every create's answer was cut off");
    const children = await n.observer.children("/queue");
    assert.equal(children.length, N, `children: ${children.join(", ")}`);
    assert.deepEqual(made.map((path) => path.slice("/queue/".length)).sort(), children);
    for (const name of children) assert.match(name, PROTECTED_NAME);
    for (let i = 0; i < N; i++) assert.equal(await n.observer.getString(made[i]!), `job ${i}`);
    // The same session all along: each cut was a lost connection, resumed.
    assert.equal(n.client.sessionId, sessionId);
    assert.equal(n.events.filter((event) => event === "connected:true").length, N);
    assert.ok(!n.events.includes("expired"));
  } finally {
    await n.close();
  }
});

Deno.test("A protected ephemeral sequential create whose answer is cut off N times makes N nodes, owned by the session", async () => {
  const n = await net({}, { recreateEphemerals: true });
  try {
    await n.observer.create("/members", "");
    for (let i = 0; i < N; i++) {
      n.proxy.cutAfterReply();
      await n.client.create("/members/item-", "", { nodeType: NodeType.EPHEMERAL, sequential: true, protected: true });
    }
    const children = await n.observer.children("/members");
    assert.equal(children.length, N);
    for (const name of children) {
      assert.equal((await n.observer.exists(`/members/${name}`))?.ephemeralOwner, n.client.sessionId);
    }
  } finally {
    await n.close();
  }
});

Deno.test("A protected create whose request is cut off before the server sees it is made by the retry, once", async () => {
  const n = await net();
  try {
    await n.observer.create("/queue", "");
    n.proxy.cutBeforeRequest(2); // the first attempt and the first retry are lost; the third goes through
    const path = await n.client.create("/queue/item-", "x", { sequential: true, protected: true });
    assert.equal(n.proxy.cuts, 2);
    assert.deepEqual(await n.observer.children("/queue"), [path.slice("/queue/".length)]);
    // A plain (not sequential) protected name works the same way.
    n.proxy.cutAfterReply();
    const plain = await n.client.create("/queue/config", "c", { protected: true });
    assert.match(plain, /^\/queue\/_p_[0-9a-f-]{36}-config$/);
    assert.equal((await n.observer.children("/queue")).length, 2);
  } finally {
    await n.close();
  }
});

Deno.test("A protected create gives up with the last error after its attempts; an error that says nothing was made is not retried", async () => {
  const n = await net();
  try {
    await n.observer.create("/queue", "");
    n.proxy.cutBeforeRequest(PROTECTED_CREATE_ATTEMPTS);
    await assert.rejects(
      n.client.create("/queue/item-", "x", { sequential: true, protected: true }),
      (error: unknown) => error instanceof RegistryError && error.code === RegistryErrorCode.CONNECTION_LOSS,
    );
    assert.equal(n.proxy.cuts, PROTECTED_CREATE_ATTEMPTS);
    assert.deepEqual(await n.observer.children("/queue"), []);
    // Errors that say the create was not made are not retried.
    await assert.rejects(
      n.client.create("/missing/item-", "x", { sequential: true, protected: true }),
      (error: unknown) => error instanceof RegistryError && error.code === RegistryErrorCode.NO_NODE,
    );
  } finally {
    await n.close();
  }
});

Deno.test("Without protected, a sequential create retried after its answer was cut off makes two nodes", async () => {
  const n = await net();
  try {
    await n.observer.create("/queue", "");
    n.proxy.cutAfterReply();
    await assert.rejects(
      n.client.create("/queue/item-", "x", { sequential: true }),
      (error: unknown) => error instanceof RegistryError && error.code === RegistryErrorCode.CONNECTION_LOSS,
    );
    // The naive retry, once the session is back.
    for (;;) {
      try {
        await n.client.create("/queue/item-", "x", { sequential: true });
        break;
      } catch (error) {
        if (RegistryError.from(error).code !== RegistryErrorCode.CONNECTION_LOSS) throw error;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    assert.deepEqual(await n.observer.children("/queue"), ["item-0000000000", "item-0000000001"]);
  } finally {
    await n.close();
  }
});

Deno.test(
  "A protected create whose answer was lost to a registry restart finds its node in the restored tree",
  needs("read", "write"),
  async () => {
    const dir = await Deno.makeTempDir();
    const options = { dataDir: dir, heartbeatTimeoutMs: 200, heartbeatMaxCount: 10 };
    const n = await net(options);
    try {
      await n.observer.close();
      await n.client.create("/queue", "");
      const sessionId = n.client.sessionId;
      const cut = Promise.withResolvers<void>();
      n.proxy.setCutCallback(() => {
        n.proxy.refuseConnections(true);
        cut.resolve();
      });
      n.proxy.cutAfterReply();
      const creating = n.client.create("/queue/item-", "durable", { sequential: true, protected: true });
      await cut.promise;
      const port = n.server.address.port;
      await n.server.stop();
      n.server = await startAgain({ port, loop: n.loop, ...options });
      n.proxy.refuseConnections(false);
      const path = await creating;
      assert.equal(n.client.sessionId, sessionId, "the session survived the restart");
      assert.deepEqual(await n.client.children("/queue"), [path.slice("/queue/".length)]);
      assert.equal(await n.client.getString(path), "durable");
      n.observer = await RegistryClient.connect(n.server.address, { loop: n.loop });
    } finally {
      await n.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("An RPC provider whose publishing creates lose their answers starts, published once under its address", async () => {
  const root = parseProto(`
    syntax = "proto3";
    package test;
    message Ping { string text = 1; }
    service Echo { rpc Say (Ping) returns (Ping); }
  `);
  const n = await net();
  const provider = new RpcProvider({ loop: n.loop, registry: n.client });
  provider.registerService(serviceDefinition(root, "test.Echo"), { Say: (request: unknown) => request });
  try {
    n.proxy.cutAfterReply(2); // the service's node and the provider's node: both made, neither answer read
    await provider.start();
    assert.equal(n.proxy.cuts, 2);
    assert.deepEqual(await n.observer.children("/test.Echo"), [provider.advertisedAddress]);
    const stat = await n.observer.exists(`/test.Echo/${provider.advertisedAddress}`);
    assert.equal(stat?.ephemeralOwner, n.client.sessionId);
  } finally {
    await provider.stop();
    await n.close();
  }
});

/** Start a server on a port just freed by another: the old UDP socket may take a moment to let go of it. */
async function startAgain(options: RegistryServerOptions): Promise<RegistryServer> {
  for (let attempt = 0;; attempt++) {
    const server = new RegistryServer(options);
    try {
      await server.start();
      return server;
    } catch (error) {
      if (attempt >= 40) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
