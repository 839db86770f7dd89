import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { needs } from "../../reactor/testdata/permissions.ts";
import { until } from "../../reactor/testdata/until.ts";
import { RegistryClient, type WatchedEvent } from "../../registry/client/registry_client.ts";
import { EventType, NodeType } from "../../registry/registry.ts";
import { RegistryServer, type RegistryServerOptions } from "../../registry/server/registry_server.ts";
import { SeedSrcClient } from "../testdata/seed_src_client.ts";
import { SeedRegistryListener, type SeedRegistryListenerOptions } from "./seed_registry_listener.ts";

interface Rig extends AsyncDisposable {
  loop: EventLoop;
  server: RegistryServer;
  seed: SeedRegistryListener;
  port: number;
  native: RegistryClient;
}

async function rig(
  seedOptions: Partial<SeedRegistryListenerOptions> = {},
  serverOptions: RegistryServerOptions = {},
): Promise<Rig> {
  const loop = new EventLoop();
  const seed = new SeedRegistryListener({ port: 0, ...seedOptions });
  const server = new RegistryServer({ port: 0, loop, ...serverOptions, listeners: [seed] });
  await server.start();
  const native = await RegistryClient.connect(server.address, { loop, authToken: serverOptions.authToken });
  return {
    loop,
    server,
    seed,
    port: seed.address.port,
    native,
    async [Symbol.asyncDispose]() {
      await native.close();
      await server.stop();
    },
  };
}

Deno.test("Seed client library runs every operation on the registry's tree, each answered as the seed answers", async () => {
  await using r = await rig();
  const client = new SeedSrcClient();
  assert.equal(await client.connect("127.0.0.1", r.port, 60_000), true);
  assert.notEqual(client.sessionId, 0n);
  assert.equal(await client.connect("127.0.0.1", r.port), false); // already connected, as the seed says
  assert.equal(await client.createNode("/node01", "hello"), true);
  assert.equal(await client.createNode("/node01/func01", "127.0.0.1:8800", 2), true);
  assert.equal(await client.createNode("/node01", "again"), false);
  assert.equal(await client.createNode("/missing/child"), false);
  assert.equal(await client.createNode("relative"), false);
  assert.equal(await client.createNode("/node01/odd", "", 3), false);
  assert.equal(await client.createNode("/"), false);
  assert.deepEqual(client.warnings.splice(0), [
    "already connected",
    "node already exists",
    "path not exists",
    "path error",
    "node type 3 is not 1 (persistent) or 2 (ephemeral)",
    "node already exists",
  ]);
  assert.equal(await client.getNode("/node01"), "hello");
  assert.equal(await client.getNode("/node01/"), "hello"); // the seed's trailing slash
  assert.equal(await client.getNode("/nope"), "");
  assert.equal(await client.setNode("/node01", "world"), true);
  assert.equal(await client.getNode("/node01"), "world");
  assert.equal(await client.setNode("/nope", "x"), false);
  assert.deepEqual(await client.lsNode("/"), ["node01"]);
  assert.deepEqual(await client.lsNode("/node01"), ["func01"]);
  assert.deepEqual(await client.statNode("/node01/func01"), {
    ephemeralOwner: client.sessionId,
    numChildren: 0,
    dataLength: 14,
    nodeType: 2,
  });
  assert.deepEqual(await client.statNode("/node01"), {
    ephemeralOwner: 0n,
    numChildren: 1,
    dataLength: 5,
    nodeType: 1,
  });
  assert.equal(await client.existsNode("/node01/func01"), true);
  assert.equal(await client.existsNode("/nope"), false);
  assert.equal(await client.existsNode("//bad"), false);
  assert.equal(await client.deleteNode("/node01"), false); // not a subtree at once
  assert.equal(await client.deleteNode("/"), false);
  assert.equal(await client.deleteNode("/nope"), false);
  assert.deepEqual(client.warnings.splice(0), [
    "node not exists", // get
    "node not exists", // set
    "path error", // exists //bad
    "node not empty: delete its children first (this registry does not delete subtrees)",
    "delete the root node is not allowed",
    "node not exists",
  ]);
  assert.equal(await client.deleteNode("/node01/func01"), true);
  assert.equal(await client.deleteNode("/node01"), true);
  assert.deepEqual(await client.lsNode("/"), []);
  await client.disconnect();
  const stats = r.server.stats();
  assert.equal(stats.listeners.seed?.sessions_opened, 1);
  assert.equal(stats.listeners.seed?.requests, 27); // the second connect sends nothing
  assert.ok((stats.requestsByOp.create ?? 0) >= 3);
});

Deno.test("Seed and native clients see and watch each other's nodes", async () => {
  await using r = await rig();
  const client = new SeedSrcClient();
  await client.connect("127.0.0.1", r.port, 60_000);
  // Native watcher, seed writer: the seed's provider layout.
  const events: WatchedEvent[] = [];
  await r.native.create("/UserServiceRpc", "");
  await r.native.children("/UserServiceRpc", { watch: (event) => events.push(event) });
  await r.native.exists("/UserServiceRpc/Login", { watch: (event) => events.push(event) });
  assert.equal(await client.createNode("/UserServiceRpc/Login", "127.0.0.1:8800", 2), true);
  await until(() => events.length === 2, 3000, "the native watches to fire");
  assert.deepEqual(
    events.map((event) => `${event.type} ${event.path}`).sort(),
    [
      `${EventType.NODE_CREATED} /UserServiceRpc/Login`,
      `${EventType.NODE_CHILDREN_CHANGED} /UserServiceRpc`,
    ].sort(),
  );
  assert.equal(await r.native.getString("/UserServiceRpc/Login"), "127.0.0.1:8800");
  const stat = await r.native.stat("/UserServiceRpc/Login");
  assert.equal(stat.nodeType, NodeType.EPHEMERAL);
  assert.equal(stat.ephemeralOwner, client.sessionId);
  // Native writer, seed reader.
  await r.native.create("/UserServiceRpc/Register", "127.0.0.1:8801", { nodeType: NodeType.EPHEMERAL });
  assert.deepEqual(await client.lsNode("/UserServiceRpc"), ["Login", "Register"]);
  assert.equal(await client.getNode("/UserServiceRpc/Register"), "127.0.0.1:8801");
  const changed = Promise.withResolvers<WatchedEvent>();
  await r.native.get("/UserServiceRpc/Login", { watch: changed.resolve });
  assert.equal(await client.setNode("/UserServiceRpc/Login", "127.0.0.1:9900"), true);
  assert.equal((await changed.promise).type, EventType.NODE_DATA_CHANGED);
  assert.equal(await r.native.getString("/UserServiceRpc/Login"), "127.0.0.1:9900");
  // Native nodes a seed client deletes: the native watcher hears of it.
  const deleted = Promise.withResolvers<WatchedEvent>();
  await r.native.exists("/UserServiceRpc/Register", { watch: deleted.resolve });
  assert.equal(await client.deleteNode("/UserServiceRpc/Register"), true);
  assert.equal((await deleted.promise).type, EventType.NODE_DELETED);
  await client.disconnect();
});

Deno.test("Seed sessions live while heartbeats come and end when they stop: their ephemerals go, watchers see it", async () => {
  // The seed's rule with short periods: expiry after 4 periods of 150 ms with no heartbeat.
  await using r = await rig({ heartbeatTimeoutMs: 150, heartbeatMaxCount: 4 });
  const client = new SeedSrcClient();
  await client.connect("127.0.0.1", r.port, 100);
  assert.equal(await client.createNode("/live", "", 2), true);
  const gone = Promise.withResolvers<WatchedEvent>();
  await r.native.exists("/live", { watch: gone.resolve });
  // Three times the expiry time, kept alive by heartbeats alone.
  await new Promise((resolve) => setTimeout(resolve, 1800));
  assert.ok(await r.native.exists("/live"), "the ephemeral node is still there");
  assert.ok(client.heartbeatsSent >= 10, `heartbeats sent: ${client.heartbeatsSent}`);
  assert.ok(r.seed.stats().heartbeats_accepted >= 10);
  // The seed's disconnect: heartbeats stop, the server is not told.
  const id = client.sessionId;
  const stoppedAt = performance.now();
  await client.disconnect();
  assert.equal((await gone.promise).type, EventType.NODE_DELETED);
  const afterMs = performance.now() - stoppedAt;
  assert.ok(afterMs >= 450, `expired after ${afterMs.toFixed(0)} ms, before 3 of its 4 periods`);
  assert.equal(await r.native.exists("/live"), undefined);
  assert.equal(r.server.stats().expiredSessions, 1);
  // The session is over: changes in its name are refused, reads still work, heartbeats for it count as unknown.
  const late = new SeedSrcClient();
  late.adoptSession("127.0.0.1", r.port, id);
  await r.native.create("/still", "x");
  assert.equal(await late.getNode("/still"), "x");
  assert.equal(await late.createNode("/zombie", "", 2), false);
  assert.equal(await late.setNode("/still", "y"), false);
  assert.deepEqual(late.warnings, ["session expired: connect again", "session expired: connect again"]);
  assert.equal(await r.native.exists("/zombie"), undefined);
  const unknownBefore = r.seed.stats().heartbeats_unknown;
  await sendDatagram(r.port, Uint8Array.of(0x08, ...varint(id)));
  await until(() => r.seed.stats().heartbeats_unknown > unknownBefore, 2000, "the heartbeat");
});

function varint(value: bigint): number[] {
  const bytes: number[] = [];
  let v = value;
  while (v >= 0x80n) {
    bytes.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  bytes.push(Number(v));
  return bytes;
}

async function sendDatagram(port: number, data: Uint8Array): Promise<void> {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    await socket.send(data, { transport: "udp", hostname: "127.0.0.1", port });
  } finally {
    socket.close();
  }
}

Deno.test("Seed sessions are held to the ACLs: anonymous by default, the listener's token when given", async () => {
  const acl = { "/locked": ["t1"] };
  {
    await using r = await rig({}, { acl, authToken: "admin" });
    const client = new SeedSrcClient();
    await client.connect("127.0.0.1", r.port, 60_000);
    assert.equal(await client.createNode("/locked", ""), false);
    assert.equal(await client.createNode("/open", ""), false);
    assert.match(client.warnings[0]!, /ACL of '\/locked' does not admit this session's token \(-102\)$/);
    assert.match(client.warnings[1]!, /this session is not authorized \(-102\)$/);
    assert.deepEqual(await client.lsNode("/"), []); // reads stay open
    await client.disconnect();
  }
  {
    await using r = await rig({ token: "t1" }, { acl });
    const client = new SeedSrcClient();
    await client.connect("127.0.0.1", r.port, 60_000);
    assert.equal(await client.createNode("/locked", ""), true);
    assert.equal(await client.createNode("/locked/x", "127.0.0.1:1", 2), true);
    assert.equal(await r.native.getString("/locked/x"), "127.0.0.1:1");
    await client.disconnect();
  }
});

Deno.test("A seed client cannot act as a native session by naming its id", async () => {
  await using r = await rig();
  const forger = new SeedSrcClient();
  forger.adoptSession("127.0.0.1", r.port, r.native.sessionId);
  assert.equal(await forger.createNode("/stolen", "", 2), false);
  assert.deepEqual(forger.warnings, ["session expired: connect again"]);
  assert.equal(await r.native.exists("/stolen"), undefined);
  const before = r.seed.stats().heartbeats_unknown;
  await sendDatagram(r.port, Uint8Array.of(0x08, ...varint(r.native.sessionId)));
  await until(() => r.seed.stats().heartbeats_unknown === before + 1, 2000, "the forged heartbeat to be counted");
});

Deno.test(
  "A seed-created node survives a registry restart; a seed session is restored and kept by its heartbeats",
  needs("read", "write"),
  async () => {
    const dataDir = await Deno.makeTempDir();
    const timing = { heartbeatTimeoutMs: 200, heartbeatMaxCount: 4 };
    const client = new SeedSrcClient();
    let port = 0;
    try {
      {
        await using r = await rig(timing, { dataDir });
        port = r.port;
        await client.connect("127.0.0.1", port, 100);
        assert.equal(await client.createNode("/dur", "kept"), true);
        assert.equal(await client.createNode("/dur/e", "127.0.0.1:8800", 2), true);
      }
      // The same seed port again (the client library knows only that one); it may take a moment to be free.
      let restarted: Rig | undefined;
      for (let attempt = 0; restarted === undefined; attempt++) {
        try {
          restarted = await rig({ ...timing, port }, { dataDir });
        } catch (error) {
          if (attempt >= 40) throw error;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      await using r = restarted;
      assert.equal(await r.native.getString("/dur"), "kept");
      // Past several expiry periods, the restored session lives on the client's heartbeats.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal(await r.native.getString("/dur/e"), "127.0.0.1:8800");
      assert.ok(r.seed.stats().heartbeats_accepted >= 5, `accepted ${r.seed.stats().heartbeats_accepted}`);
      assert.equal(await client.setNode("/dur", "changed"), true); // still its session: changes are accepted
      const gone = Promise.withResolvers<WatchedEvent>();
      await r.native.exists("/dur/e", { watch: gone.resolve });
      await client.disconnect();
      assert.equal((await gone.promise).type, EventType.NODE_DELETED);
    } finally {
      await client.disconnect();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);

Deno.test("Compat off (the default): nothing listens for seed clients", async () => {
  // A port that was just free, then a registry without the listener.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop });
  await server.start();
  try {
    assert.deepEqual(server.stats().listeners, {});
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }), Deno.errors.ConnectionRefused);
    // The seed's connect request on the native port gets no seed answer: the native port closes it.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.address.port });
    await conn.write(Uint8Array.of(0x08, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00));
    const buffer = new Uint8Array(64);
    const n = await conn.read(buffer).catch(() => null);
    assert.equal(n, null, "closed without an answer");
    conn.close();
  } finally {
    await server.stop();
  }
});
