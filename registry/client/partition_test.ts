// Sessions across network partitions, through a proxy the tests cut and mend (registry/testdata/partition_proxy.ts):
// the client learns an expiry by itself and recovers (new session, watches re-armed, ephemeral nodes and an RPC
// provider's nodes back), keeps its session across a short partition, ignores forged expiry notices, and gives up
// on a server that accepts and never answers.

import assert from "node:assert/strict";
import { InetAddress } from "../../reactor/inet_address.ts";
import { TcpServer } from "../../reactor/tcp_server.ts";
import { UdpSocket } from "../../reactor/udp_socket.ts";
import { RpcProvider } from "../../rpc/rpc_provider.ts";
import { parseProto, serviceDefinition } from "../../rpc/service_definition.ts";
import { NodeType } from "../server/data_tree.ts";
import { encodeHeartbeat, HEARTBEAT_FLAG_EXPIRED, HEARTBEAT_FLAG_NONE, importHeartbeatKey } from "../heartbeat.ts";
import type { RegistryClient, RegistryClientOptions, WatchedEvent } from "./registry_client.ts";
import type { RegistryServerOptions } from "../server/registry_server.ts";
import { PartitionProxy } from "../testdata/partition_proxy.ts";
import { type ProxiedClient, proxiedClient } from "../testdata/proxied_client.ts";
import { until } from "../../reactor/testdata/until.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Net = ProxiedClient<PartitionProxy>;

/** A client through a partition proxy, TCP and UDP. */
function net(serverOptions: RegistryServerOptions, clientOptions: RegistryClientOptions = {}): Promise<Net> {
  return proxiedClient(
    async (loop, server) => {
      const proxy = await PartitionProxy.start(loop, server.address, server.heartbeatAddress);
      return { proxy, tcp: proxy.tcpAddress, heartbeat: proxy.udpAddress };
    },
    serverOptions,
    clientOptions,
  );
}

/** Whether `path` exists, owned by the client's current (non-zero) session. */
async function ownedBy(observer: RegistryClient, path: string, client: RegistryClient): Promise<boolean> {
  const stat = await observer.exists(path);
  return stat !== undefined && client.sessionId !== 0n && stat.ephemeralOwner === client.sessionId;
}

// Session timeout 300 ms (3 misses of 100 ms): the client's read timeout is 200 ms and its ping interval 100 ms.
const SHORT_SESSIONS: RegistryServerOptions = { heartbeatTimeoutMs: 100, heartbeatMaxCount: 3 };

for (const tcp of ["hold", "drop"] as const) {
  Deno.test(`A partition longer than the session timeout (TCP bytes ${tcp === "hold" ? "held" : "dropped"}): after the heal the client reports expired, opens a new session and re-creates its ephemeral node`, async () => {
    const n = await net(SHORT_SESSIONS, { recreateEphemerals: true });
    try {
      await n.observer.create("/svc", "");
      await n.client.create("/svc/eph", "payload", { nodeType: NodeType.EPHEMERAL });
      const watched: WatchedEvent[] = [];
      await n.client.exists("/svc/other", { watch: (event) => watched.push(event) });
      const oldSession = n.client.sessionId;
      n.proxy.partition({ tcp });
      await until(() => n.server.stats().expiredSessions >= 1, 5000, "the server to expire the session");
      assert.equal(await n.observer.exists("/svc/eph"), undefined);
      // Stay cut well past the expiry: the client's read timeout fires and reconnects into the void meanwhile.
      await sleep(400);
      assert.ok(!n.events.includes("expired"), "nothing can tell the client during the partition");
      const healedAt = performance.now();
      n.proxy.heal();
      await until(() => ownedBy(n.observer, "/svc/eph", n.client), 5000, "the ephemeral node on the new session");
      const delayMs = performance.now() - healedAt;
      console.log(`partition (${tcp}): ephemeral node back ${delayMs.toFixed(0)} ms after the heal`);
      // One ping interval (100 ms) plus a reconnect, with room for a loaded machine.
      assert.ok(delayMs < 1500, `re-created after ${delayMs} ms`);
      assert.notEqual(n.client.sessionId, oldSession);
      assert.ok(n.client.connected);
      const expiredAt = n.events.indexOf("expired");
      assert.ok(expiredAt >= 0, `events: ${n.events.join(", ")}`);
      assert.equal(n.events.lastIndexOf("expired"), expiredAt, "the expiry path ran once");
      assert.ok(n.events.indexOf("connected:false", expiredAt) > expiredAt, `events: ${n.events.join(", ")}`);
      assert.equal(new TextDecoder().decode((await n.observer.get("/svc/eph")).data), "payload");
      assert.deepEqual(watched.map((event) => `${event.type}:${event.path}`), ["0:/svc/other"]);
      // The new session is a real one: it stays alive through the proxy.
      await sleep(500);
      assert.ok(await ownedBy(n.observer, "/svc/eph", n.client));
    } finally {
      await n.close();
    }
  });
}

Deno.test("A client whose TCP stays cut learns the expiry from the server's signed UDP notice alone", async () => {
  const n = await net(SHORT_SESSIONS, { recreateEphemerals: true });
  try {
    await n.client.create("/eph", "", { nodeType: NodeType.EPHEMERAL });
    const oldSession = n.client.sessionId;
    n.proxy.partition();
    await until(() => n.server.stats().expiredSessions >= 1, 5000, "the server to expire the session");
    await sleep(300);
    const udpHealedAt = performance.now();
    n.proxy.healUdp();
    // The next heartbeat of the dead session is answered with a notice; nothing crosses TCP meanwhile.
    await until(() => n.events.includes("expired"), 3000, "the expiry notice");
    console.log(`expiry notice believed ${(performance.now() - udpHealedAt).toFixed(0)} ms after UDP came back`);
    assert.ok(n.proxy.partitioned);
    assert.ok(!n.client.connected);
    assert.equal(n.client.sessionId, 0n);
    const healedAt = performance.now();
    n.proxy.heal();
    await until(() => ownedBy(n.observer, "/eph", n.client), 5000, "the ephemeral node on the new session");
    console.log(`notice path: ephemeral node back ${(performance.now() - healedAt).toFixed(0)} ms after the heal`);
    assert.notEqual(n.client.sessionId, oldSession);
    assert.equal(n.events.filter((event) => event === "expired").length, 1);
  } finally {
    await n.close();
  }
});

Deno.test("A provider's node is published again after a partition expired its session, with no restart", async () => {
  const root = parseProto(`
    syntax = "proto3";
    package test;
    message Ping { string text = 1; }
    service Echo { rpc Say (Ping) returns (Ping); }
  `);
  // recreateEphemerals on too: the provider's re-publish and the client's re-creation must not fight.
  for (const recreateEphemerals of [false, true]) {
    const n = await net(SHORT_SESSIONS, { recreateEphemerals });
    const provider = new RpcProvider({ loop: n.loop, registry: n.client });
    provider.registerService(serviceDefinition(root, "test.Echo"), { Say: (request: unknown) => request });
    try {
      await provider.start();
      const path = `/test.Echo/${provider.advertisedAddress}`;
      assert.ok(await ownedBy(n.observer, path, n.client));
      const changes: number[] = [];
      const watchChildren = () =>
        n.observer.children("/test.Echo", {
          watch: (event) => {
            changes.push(event.type);
            watchChildren().catch(() => {});
          },
        });
      n.proxy.partition();
      await until(() => n.server.stats().expiredSessions >= 1, 5000, "the server to expire the session");
      await until(async () => (await n.observer.exists(path)) === undefined, 2000, "the node to go");
      await watchChildren();
      await sleep(300);
      const healedAt = performance.now();
      n.proxy.heal();
      await until(() => ownedBy(n.observer, path, n.client), 5000, "the provider's node on the new session");
      console.log(
        `provider (recreateEphemerals ${recreateEphemerals}): published again ` +
          `${(performance.now() - healedAt).toFixed(0)} ms after the heal`,
      );
      // Exactly one node came back, and it was not deleted again by the other re-publisher.
      await sleep(300);
      assert.deepEqual(await n.observer.children("/test.Echo"), [provider.advertisedAddress]);
      assert.ok(await ownedBy(n.observer, path, n.client));
      assert.equal(changes.length, 1, `children changes after the heal: ${changes.length}`);
      assert.deepEqual(
        JSON.parse(new TextDecoder().decode((await n.observer.get(path)).data)).methods,
        ["Say"],
      );
    } finally {
      await provider.stop();
      await n.close();
    }
  }
});

Deno.test("A partition shorter than the session timeout: the same session resumes and nothing expires", async () => {
  // Session timeout 1.5 s; the read timeout (300 ms) fires during the 700 ms partition, the session does not.
  const n = await net({ heartbeatTimeoutMs: 300, heartbeatMaxCount: 5 }, {
    readTimeoutMs: 300,
    recreateEphemerals: true,
  });
  try {
    await n.client.create("/eph", "", { nodeType: NodeType.EPHEMERAL });
    const session = n.client.sessionId;
    n.proxy.partition();
    await until(() => n.events.includes("disconnected"), 3000, "the read timeout");
    await sleep(700 - 300);
    n.proxy.heal();
    await until(() => n.events.includes("connected:true") && n.client.connected, 3000, "the resumption");
    assert.equal(n.client.sessionId, session);
    assert.ok(!n.events.includes("expired"), `events: ${n.events.join(", ")}`);
    assert.ok(!n.events.includes("connected:false"), `events: ${n.events.join(", ")}`);
    assert.equal(n.server.stats().expiredSessions, 0);
    assert.ok(await ownedBy(n.observer, "/eph", n.client));
    await n.client.ping();
  } finally {
    await n.close();
  }
});

Deno.test("Forged expiry notices sent to the client's heartbeat port are ignored; a signed one is believed", async () => {
  const n = await net({ heartbeatTimeoutMs: 200, heartbeatMaxCount: 5 });
  const stranger = await UdpSocket.bind(n.loop, new InetAddress("127.0.0.1", 0));
  try {
    await n.client.create("/eph", "", { nodeType: NodeType.EPHEMERAL });
    await until(() => n.proxy.udpClients.length === 1, 2000, "a heartbeat through the proxy");
    const target = n.proxy.udpClients[0]!;
    const session = n.client.sessionId;
    const secret = n.server.tree.sessions.get(session)!.secret;
    const key = await importHeartbeatKey(secret);
    const wrongKey = await importHeartbeatKey(crypto.getRandomValues(new Uint8Array(16)));
    const unsigned = await encodeHeartbeat(session, 1n, wrongKey, HEARTBEAT_FLAG_EXPIRED);
    unsigned.fill(0, 20); // no proof at all
    const forged = [
      unsigned,
      await encodeHeartbeat(session, 1n, wrongKey, HEARTBEAT_FLAG_EXPIRED), // the wrong secret
      await encodeHeartbeat(session, 1n, key, HEARTBEAT_FLAG_NONE), // a heartbeat, not a notice
      await encodeHeartbeat(session ^ 1n, 1n, key, HEARTBEAT_FLAG_EXPIRED), // another session
      await encodeHeartbeat(session, 1n << 60n, key, HEARTBEAT_FLAG_EXPIRED), // a counter never sent
      await encodeHeartbeat(session, 0n, key, HEARTBEAT_FLAG_EXPIRED), // counter 0 is never sent
      crypto.getRandomValues(new Uint8Array(40)),
      new Uint8Array([0x64, 0x68, 1, 1]),
      new Uint8Array(0),
    ];
    // A flipped bit anywhere in a good notice breaks its proof.
    const good = await encodeHeartbeat(session, 1n, key, HEARTBEAT_FLAG_EXPIRED);
    for (const bit of [0, 8 * 3 + 1, 8 * 12, 8 * 19 + 7, 8 * 20, 8 * 39 + 7]) {
      const flipped = good.slice();
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      forged.push(flipped);
    }
    for (let round = 0; round < 20; round++) {
      for (const datagram of forged) stranger.send(datagram, target);
    }
    await sleep(300);
    assert.deepEqual(n.events, []);
    assert.equal(n.client.sessionId, session);
    await n.client.ping();
    assert.ok(await ownedBy(n.observer, "/eph", n.client));
    // The control: the same notice, rightly signed, is believed at once.
    stranger.send(good, target);
    await until(() => n.events.includes("expired") && n.events.includes("connected:false"), 3000, "the expiry");
    assert.notEqual(n.client.sessionId, session);
    assert.notEqual(n.client.sessionId, 0n);
  } finally {
    await stranger.close();
    await n.close();
  }
});

Deno.test("The read timeout drops a server that accepts and never answers; the client keeps reconnecting, bounded", async () => {
  const n = await net({ heartbeatTimeoutMs: 500, heartbeatMaxCount: 5 }, { readTimeoutMs: 150 });
  const swallower = new TcpServer(n.loop, new InetAddress("127.0.0.1", 0), "Swallower");
  let swallowed = 0;
  swallower.setConnectionCallback((connection) => connection.connected && swallowed++);
  swallower.setMessageCallback((_connection, buffer) => buffer.retrieveAll());
  await swallower.start();
  try {
    const session = n.client.sessionId;
    n.proxy.retarget(swallower.address);
    await n.proxy.dropConnections();
    await until(() => swallowed >= 1, 2000, "a connection to the swallower");
    const start = performance.now();
    const disconnectsBefore = n.events.filter((event) => event === "disconnected").length;
    const acceptedBefore = swallowed;
    await sleep(1000);
    const elapsed = performance.now() - start;
    const disconnects = n.events.filter((event) => event === "disconnected").length - disconnectsBefore;
    const accepted = swallowed - acceptedBefore;
    console.log(`read timeout: ${disconnects} disconnects, ${accepted} connections in ${elapsed.toFixed(0)} ms`);
    // One reconnect per read timeout (150 ms): never a tight loop, never stuck.
    assert.ok(disconnects >= 3, `disconnects: ${disconnects}`);
    assert.ok(accepted <= elapsed / 150 + 2, `connections: ${accepted}`);
    assert.ok(!n.client.connected);
    await assert.rejects(n.client.ping());
    // The real server again: the session, kept alive by heartbeats all along, resumes.
    n.proxy.retarget(n.server.address);
    await until(() => n.client.connected, 3000, "the resumption");
    assert.equal(n.client.sessionId, session);
    assert.ok(!n.events.includes("expired"));
  } finally {
    await n.close();
    await swallower.stop();
  }
});
