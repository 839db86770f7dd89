import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { InetAddress } from "../../reactor/inet_address.ts";
import { LengthHeaderCodec } from "../../reactor/length_header_codec.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import { TcpServer } from "../../reactor/tcp_server.ts";
import { UdpSocket } from "../../reactor/udp_socket.ts";
import { type ClientFrame, decodeClientFrame, encodeServerFrame, type ServerFrame, toBigInt } from "../_codec.ts";
import { EventType, NodeType } from "../server/data_tree.ts";
import {
  encodeHeartbeat,
  HEARTBEAT_FLAG_EXPIRED,
  HEARTBEAT_FLAG_NONE,
  importHeartbeatKey,
  parseHeartbeat,
  verifyHeartbeat,
} from "../heartbeat.ts";
import { RegistryClient, type WatchedEvent } from "./registry_client.ts";
import { type RegistryError, RegistryErrorCode } from "../registry_error.ts";
import { RegistryServer } from "../server/registry_server.ts";
import { PartitionProxy } from "../testdata/partition_proxy.ts";
import { until } from "../../reactor/testdata/until.ts";
import { needs } from "../../reactor/testdata/permissions.ts";

async function rejectsWith(promise: Promise<unknown>, code: number): Promise<RegistryError> {
  let caught: RegistryError | undefined;
  await assert.rejects(promise, (error: RegistryError) => {
    assert.equal(error.code, code, `${error.codeName}: ${error.message}`);
    caught = error;
    return true;
  });
  return caught!;
}

/** Start a server on a port just freed by another: the old UDP socket may take a moment to let go of it. */
async function startAgain(options: ConstructorParameters<typeof RegistryServer>[0]): Promise<RegistryServer> {
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

Deno.test("RegistryClient runs every operation against a RegistryServer", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop });
  await server.start();
  const client = await RegistryClient.connect(server.address, { loop });
  assert.notEqual(client.sessionId, 0n);
  assert.equal(await client.create("/node01", "hello"), "/node01");
  await client.create("/node01/func01", "");
  assert.equal(await client.getString("/node01"), "hello");
  const stat = await client.set("/node01", "world", { version: 0 });
  assert.equal(stat.version, 1);
  await rejectsWith(client.set("/node01", "x", { version: 0 }), RegistryErrorCode.BAD_VERSION);
  await rejectsWith(client.delete("/node01"), RegistryErrorCode.NOT_EMPTY);
  await rejectsWith(client.create("/missing/child"), RegistryErrorCode.NO_NODE);
  await rejectsWith(client.create("/node01"), RegistryErrorCode.NODE_EXISTS);
  await rejectsWith(client.get("/nope"), RegistryErrorCode.NO_NODE);
  await rejectsWith(client.create("bad path"), RegistryErrorCode.BAD_ARGUMENTS);
  assert.deepEqual(await client.children("/"), ["node01"]);
  assert.equal((await client.stat("/node01")).numChildren, 1);
  assert.equal(await client.exists("/nope"), undefined);
  const seq = await client.create("/node01/job-", "", { sequential: true });
  assert.match(seq, /^\/node01\/job-\d{10}$/);
  await client.delete("/node01/func01");
  await client.delete(seq);
  await client.delete("/node01", { version: 1 });
  assert.deepEqual(await client.children("/"), []);
  await client.close();
  await server.stop();
});

Deno.test("RegistryClient pipelines many requests on one connection in order", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop });
  await server.start();
  const client = await RegistryClient.connect(server.address, { loop });
  await client.create("/p", "");
  const paths = await Promise.all(Array.from({ length: 500 }, (_, i) => client.create(`/p/n${i}`, String(i))));
  assert.equal(paths.length, 500);
  const values = await Promise.all(paths.map((path) => client.getString(path)));
  assert.deepEqual(values, paths.map((_, i) => String(i)));
  assert.equal(server.stats().connections, 1);
  await client.close();
  await server.stop();
});

Deno.test("Watches fire once, in order, after the change they report", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop });
  await server.start();
  const watcher = await RegistryClient.connect(server.address, { loop });
  const writer = await RegistryClient.connect(server.address, { loop });
  await writer.create("/svc", "v0");
  const events: WatchedEvent[] = [];
  await watcher.children("/svc", { watch: (e) => events.push(e) });
  await watcher.get("/svc", { watch: (e) => events.push(e) });
  await watcher.exists("/svc/late", { watch: (e) => events.push(e) });
  await writer.create("/svc/late", "", { nodeType: NodeType.EPHEMERAL });
  await writer.set("/svc", "v1");
  await writer.set("/svc", "v2"); // the data watch is one-shot: no second event
  await until(() => events.length >= 3, 2000, "three events");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(events.map((e) => `${e.type}:${e.path}`), [
    `${EventType.NODE_CREATED}:/svc/late`,
    `${EventType.NODE_CHILDREN_CHANGED}:/svc`,
    `${EventType.NODE_DATA_CHANGED}:/svc`,
  ]);
  // A watcher that reads in its callback sees the change (the event follows the write's answer).
  const seen = Promise.withResolvers<string>();
  await watcher.get("/svc", { watch: () => watcher.getString("/svc").then(seen.resolve) });
  await writer.set("/svc", "v3");
  assert.equal(await seen.promise, "v3");
  await watcher.close();
  await writer.close();
  await server.stop();
});

Deno.test("A session's ephemeral nodes go when it closes and when its heartbeats stop", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop, heartbeatTimeoutMs: 50, heartbeatMaxCount: 3 });
  await server.start();
  const observer = await RegistryClient.connect(server.address, { loop });
  const owner = await RegistryClient.connect(server.address, { loop });
  await owner.create("/node02", "", { nodeType: NodeType.EPHEMERAL });
  // Heartbeats keep it alive well past the 150 ms expiry.
  await new Promise((resolve) => setTimeout(resolve, 400));
  assert.ok(await observer.exists("/node02"));
  assert.ok(server.stats().heartbeatsAccepted > 3);
  await owner.close();
  assert.equal(await observer.exists("/node02"), undefined);
  await observer.close();
  await server.stop();
});

Deno.test("RegistryServer rejects forged, replayed and garbage heartbeats", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop, heartbeatTimeoutMs: 1000 });
  await server.start();
  const client = await RegistryClient.connect(server.address, { loop });
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const target = { transport: "udp" as const, hostname: "127.0.0.1", port: server.heartbeatAddress.port };
  // A stranger knows the session id but not the secret.
  const forged = new Uint8Array(40);
  const view = new DataView(forged.buffer);
  view.setUint16(0, 0x6468);
  view.setUint8(2, 1);
  view.setBigUint64(4, client.sessionId);
  view.setBigUint64(12, 1n << 60n);
  const before = server.stats().heartbeatsRejected;
  await sock.send(forged, target);
  await sock.send(new Uint8Array([1, 2, 3]), target);
  await sock.send(crypto.getRandomValues(new Uint8Array(40)), target);
  await until(() => server.stats().heartbeatsRejected >= before + 3, 2000, "rejections");
  sock.close();
  await client.ping();
  await client.close();
  await server.stop();
});

Deno.test("RegistryClient resumes its session after the connection drops", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop, heartbeatTimeoutMs: 200 });
  await server.start();
  const client = await RegistryClient.connect(server.address, { loop, reconnectDelayMs: 20 });
  const sessionId = client.sessionId;
  await client.create("/mine", "", { nodeType: NodeType.EPHEMERAL });
  const events: string[] = [];
  client.onSessionEvent((e) => events.push(e.type === "connected" ? `connected:${e.resumed}` : e.type));
  // Drop every connection server-side; the session lives on through heartbeats.
  await server.dropConnectionsForTesting();
  await until(() => events.includes("connected:true"), 3000, "the resumption");
  assert.equal(client.sessionId, sessionId);
  assert.ok(await client.exists("/mine"));
  await client.close();
  await server.stop();
});

Deno.test("RegistryServer refuses requests before connect, survives garbage and oversized frames", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop, maxFrameBytes: 1024 });
  await server.start();
  const good = await RegistryClient.connect(server.address, { loop });
  const port = server.address.port;
  for (
    const bytes of [
      crypto.getRandomValues(new Uint8Array(4096)), // random bytes
      new Uint8Array([0, 0, 0, 10, 1, 2]), // truncated frame, then close
      new Uint8Array([0xff, 0xff, 0xff, 0xff]), // oversized length prefix
      new Uint8Array([0, 0, 0, 3, 0xff, 0xff, 0xff]), // a frame that does not parse
    ]
  ) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(bytes).catch(() => {});
    const buf = new Uint8Array(64);
    // The server either closes or waits for the rest; give it a moment, then leave.
    await Promise.race([conn.read(buf).catch(() => null), new Promise((resolve) => setTimeout(resolve, 50))]);
    conn.close();
  }
  await good.create("/still-serving", "");
  assert.ok(await good.exists("/still-serving"));
  assert.ok(server.stats().badFrames >= 2);
  await good.close();
  await server.stop();
});

Deno.test("RegistryServer requires the auth token for changes when configured", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop, authToken: "s3cret" });
  await server.start();
  const anonymous = await RegistryClient.connect(server.address, { loop });
  const admin = await RegistryClient.connect(server.address, { loop, authToken: "s3cret" });
  await rejectsWith(anonymous.create("/x", ""), RegistryErrorCode.NO_AUTH);
  await admin.create("/x", "");
  assert.ok(await anonymous.exists("/x"));
  await anonymous.close();
  await admin.close();
  await server.stop();
});

Deno.test(
  "Per-path ACLs: changes under a prefix need one of its tokens; the longest prefix decides",
  needs("read", "write"),
  async () => {
    const loop = new EventLoop();
    const dir = await Deno.makeTempDir();
    const acl = { "/svc": ["provider"], "/svc/open": ["provider", "guest"] };
    let server = new RegistryServer({ port: 0, loop, acl, dataDir: dir });
    await server.start();
    const provider = await RegistryClient.connect(server.address, { loop, authToken: "provider" });
    const guest = await RegistryClient.connect(server.address, { loop, authToken: "guest" });
    const anonymous = await RegistryClient.connect(server.address, { loop });
    try {
      await provider.create("/svc", "");
      await provider.create("/svc/a", "", { nodeType: NodeType.EPHEMERAL });
      const denied = await rejectsWith(guest.create("/svc/b", ""), RegistryErrorCode.NO_AUTH);
      assert.match(denied.message, /ACL of '\/svc'/);
      await rejectsWith(anonymous.delete("/svc/a"), RegistryErrorCode.NO_AUTH);
      await rejectsWith(guest.set("/svc", "x"), RegistryErrorCode.NO_AUTH);
      await provider.create("/svc/open", "");
      await guest.create("/svc/open/g", ""); // the longer prefix admits guests
      await anonymous.create("/svcx", ""); // "/svc" does not cover "/svcx"
      assert.deepEqual(await anonymous.children("/svc"), ["a", "open"]); // reads stay open
      // The token is part of the session: after a restart the provider still passes and the guest still does not.
      const port = server.address.port;
      await server.stop();
      server = await startAgain({ port, loop, acl, dataDir: dir });
      const deadline = performance.now() + 5000;
      while (performance.now() < deadline) {
        try {
          await provider.create("/svc/after", "");
          break;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      assert.notEqual(await provider.exists("/svc/after"), undefined);
      // The guest reconnects on its own schedule: until it has, its create is CONNECTION_LOSS, not the answer.
      while (performance.now() < deadline && !(await guest.exists("/svc").then(() => true, () => false))) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await rejectsWith(guest.create("/svc/after2", ""), RegistryErrorCode.NO_AUTH);
    } finally {
      await provider.close();
      await guest.close();
      await anonymous.close();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("A connection that opens no session in time is closed; sessions are not", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop, handshakeTimeoutMs: 100 });
  await server.start();
  const client = await RegistryClient.connect(server.address, { loop });
  const silent = await Deno.connect({ hostname: "127.0.0.1", port: server.address.port });
  try {
    const start = performance.now();
    assert.equal(await silent.read(new Uint8Array(16)).catch(() => null), null);
    assert.ok(performance.now() - start < 1000);
    assert.equal(server.stats().handshakeTimeouts, 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await client.create("/still-here", "");
  } finally {
    silent.close();
    await client.close();
    await server.stop();
  }
});

Deno.test("RegistryServer refuses connections over the per-IP limit and keeps serving the others", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop, maxConnectionsPerIp: 2 });
  await server.start();
  const a = await RegistryClient.connect(server.address, { loop });
  const b = await RegistryClient.connect(server.address, { loop });
  await assert.rejects(RegistryClient.connect(server.address, { loop, connectTimeoutMs: 300 }));
  assert.ok(server.stats().rejectedConnections >= 1);
  await a.ping();
  await b.ping();
  await a.close();
  await b.close();
  await server.stop();
});

Deno.test(
  "Sessions survive a registry restart: the client resumes and keeps its ephemeral nodes and watches",
  needs("read", "write"),
  async () => {
    const loop = new EventLoop();
    const dir = await Deno.makeTempDir();
    let server = new RegistryServer({ port: 0, loop, dataDir: dir, heartbeatTimeoutMs: 200, heartbeatMaxCount: 5 });
    await server.start();
    const port = server.address.port;
    const client = await RegistryClient.connect(server.address, { loop, reconnectDelayMs: 20 });
    const events: string[] = [];
    client.onSessionEvent((event) =>
      events.push(event.type === "connected" ? `connected:${event.resumed}` : event.type)
    );
    try {
      await client.create("/svc", "");
      await client.create("/svc/eph", "e", { nodeType: NodeType.EPHEMERAL });
      const watched: WatchedEvent[] = [];
      await client.children("/svc", { watch: (event) => watched.push(event) });
      const sessionId = client.sessionId;
      await server.stop();
      server = await startAgain({ port, loop, dataDir: dir, heartbeatTimeoutMs: 200, heartbeatMaxCount: 5 });
      const deadline = performance.now() + 5000;
      while (!events.includes("connected:true") && performance.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(events.includes("connected:true"), `events: ${events.join(", ")}`);
      assert.ok(!events.includes("expired"));
      assert.equal(client.sessionId, sessionId);
      assert.equal(new TextDecoder().decode((await client.get("/svc/eph")).data), "e");
      assert.equal((await client.exists("/svc/eph"))?.ephemeralOwner, sessionId);
      // Well past the session timeout: heartbeats keep the restored session alive.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.notEqual(await client.exists("/svc/eph"), undefined);
      // The watch was re-armed (type 0 told the watcher to re-read).
      assert.ok(watched.length >= 1);
    } finally {
      await client.close();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/**
 * A registry server played by the test, frame by frame: `onRequest` answers (or holds) each request, and every
 * heartbeat whose proof checks out with a known session's secret is recorded.
 */
class ScriptedServer {
  readonly tcp: TcpServer;
  readonly udp: UdpSocket;
  readonly codec: LengthHeaderCodec;
  readonly secrets = new Map<bigint, Uint8Array>();
  readonly heartbeats: Array<{ sessionId: bigint; counter: bigint; from: InetAddress }> = [];
  readonly connections: TcpConnection[] = [];
  onRequest: (connection: TcpConnection, frame: ClientFrame) => void = () => {};

  private constructor(tcp: TcpServer, udp: UdpSocket) {
    this.tcp = tcp;
    this.udp = udp;
    this.codec = new LengthHeaderCodec((connection, body) => {
      const frame = decodeClientFrame(body);
      if (frame.close) this.send(connection, { xid: frame.xid, close: {} });
      else this.onRequest(connection, frame);
    });
    tcp.setConnectionCallback((connection) => connection.connected && this.connections.push(connection));
    tcp.setMessageCallback(this.codec.onMessage);
    udp.setMessageCallback((data, from) => {
      const heartbeat = parseHeartbeat(data);
      const secret = heartbeat && this.secrets.get(heartbeat.sessionId);
      if (heartbeat === undefined || secret === undefined || heartbeat.flags !== HEARTBEAT_FLAG_NONE) return;
      importHeartbeatKey(secret).then((key) => verifyHeartbeat(heartbeat.signed, heartbeat.proof, key)).then(
        (valid) => valid && this.heartbeats.push({ sessionId: heartbeat.sessionId, counter: heartbeat.counter, from }),
      );
    });
  }

  static async start(loop: EventLoop): Promise<ScriptedServer> {
    const tcp = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "ScriptedServer");
    await tcp.start();
    return new ScriptedServer(tcp, await UdpSocket.bind(loop, new InetAddress("127.0.0.1", 0)));
  }

  send(connection: TcpConnection, frame: ServerFrame): void {
    this.codec.send(connection, encodeServerFrame(frame));
  }

  /** Answer a connect: a new session `sessionId` (with a fresh secret), or the resumption of it. */
  session(connection: TcpConnection, xid: number, sessionId: bigint, floor: bigint, resumed: boolean): void {
    if (!this.secrets.has(sessionId)) this.secrets.set(sessionId, crypto.getRandomValues(new Uint8Array(16)));
    this.send(connection, {
      xid,
      connect: {
        sessionId: sessionId.toString(),
        sessionSecret: this.secrets.get(sessionId),
        // Long enough that the client neither pings nor times out during a test; heartbeats only at each open.
        sessionTimeoutMs: 60_000,
        heartbeatIntervalMs: 60_000,
        heartbeatPort: this.udp.address.port,
        resumed,
        heartbeatCounterFloor: floor === 0n ? undefined : floor.toString(),
      },
    });
  }

  async close(): Promise<void> {
    await this.tcp.stop();
    await this.udp.close();
  }
}

Deno.test("RegistryClient continues its heartbeat counter from max(own + 1, floor) on every connect answer", async () => {
  const loop = new EventLoop();
  const server = await ScriptedServer.start(loop);
  // Answers to the connects in order: [session id asked for, answer]. The fifth refuses the resumption.
  const floors = [0n, 1000n, 5n, 1n << 40n];
  let connects = 0;
  server.onRequest = (connection, frame) => {
    if (!frame.connect) return;
    const asked = toBigInt(frame.connect.sessionId);
    const index = connects++;
    if (index < floors.length) {
      assert.equal(asked, index === 0 ? 0n : 42n);
      server.session(connection, frame.xid, 42n, floors[index]!, index > 0);
    } else if (asked === 42n) {
      server.send(connection, { xid: frame.xid, errorCode: RegistryErrorCode.SESSION_EXPIRED, errorMessage: "gone" });
    } else {
      server.session(connection, frame.xid, 43n, 0n, false);
    }
  };
  const client = await RegistryClient.connect(server.tcp.address, { loop, reconnectDelayMs: 10 });
  try {
    for (let opened = 1; opened <= floors.length + 1; opened++) {
      await until(() => server.heartbeats.length >= opened, 3000, `heartbeat ${opened}`);
      // Drop the connection: the client reconnects and resumes (the last time, the resumption is refused).
      if (opened <= floors.length) server.connections.at(-1)!.forceClose();
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    const counters = (id: bigint) => server.heartbeats.filter((h) => h.sessionId === id).map((h) => h.counter);
    // A floor above the counter lifts it; one below it (5) does not pull it back; the counter goes on across
    // reconnects of the session and starts again at 1 for a new session.
    assert.deepEqual(counters(42n), [1n, 1000n, 1001n, 1n << 40n]);
    assert.deepEqual(counters(43n), [1n]);
    assert.equal(client.sessionId, 43n);
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("Expiry signals arriving together (xid-0 frame, refused request, signed UDP notice) run the recovery once", async () => {
  const loop = new EventLoop();
  const server = await ScriptedServer.start(loop);
  const newSessions: number[] = [];
  const held: Array<{ connection: TcpConnection; xid: number }> = [];
  server.onRequest = (connection, frame) => {
    if (frame.connect) {
      const asked = toBigInt(frame.connect.sessionId);
      if (asked === 0n) newSessions.push(server.connections.indexOf(connection));
      server.session(connection, frame.xid, asked === 0n ? BigInt(100 + newSessions.length) : asked, 0n, asked !== 0n);
    } else if (frame.exists) {
      held.push({ connection, xid: frame.xid }); // no answer yet
    } else if (frame.ping) {
      server.send(connection, { xid: frame.xid, ping: {} });
    }
  };
  const client = await RegistryClient.connect(server.tcp.address, { loop, reconnectDelayMs: 10 });
  const events: string[] = [];
  client.onSessionEvent((event) => events.push(event.type === "connected" ? `connected:${event.resumed}` : event.type));
  try {
    assert.equal(client.sessionId, 101n);
    const watched: WatchedEvent[] = [];
    const pending = client.exists("/x", { watch: (event) => watched.push(event) });
    await until(() => held.length === 1 && server.heartbeats.length >= 1, 2000, "the request and a heartbeat");
    const { connection, xid } = held[0]!;
    const heartbeat = server.heartbeats[0]!;
    const key = await importHeartbeatKey(server.secrets.get(101n)!);
    const notice = await encodeHeartbeat(101n, heartbeat.counter, key, HEARTBEAT_FLAG_EXPIRED);
    // All at once, twice over.
    for (let i = 0; i < 2; i++) {
      server.udp.send(notice, heartbeat.from);
      server.send(connection, { xid: 0, errorCode: RegistryErrorCode.SESSION_EXPIRED, errorMessage: "expired" });
      server.send(connection, { xid, errorCode: RegistryErrorCode.SESSION_EXPIRED, errorMessage: "expired" });
    }
    await rejectsWith(pending, RegistryErrorCode.SESSION_EXPIRED);
    await until(() => client.connected && client.sessionId === 102n, 3000, "the new session");
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The old session's connection is closed (the server would refuse a second connect on it): a new one opens.
    assert.deepEqual(events, ["expired", "disconnected", "connected:false"]);
    assert.equal(newSessions.length, 2, "one new session after the first");
    assert.deepEqual(watched.map((event) => event.type), [0]);
    await client.ping();
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test(
  "After a registry restart the client's heartbeats start above the raised floor and count again",
  needs("read", "write"),
  async () => {
    const loop = new EventLoop();
    const dir = await Deno.makeTempDir();
    const options = { loop, dataDir: dir, heartbeatTimeoutMs: 200, heartbeatMaxCount: 5 };
    let server = new RegistryServer({ port: 0, ...options });
    await server.start();
    const port = server.address.port;
    const proxy = await PartitionProxy.start(loop, server.address, server.heartbeatAddress);
    const counters: bigint[] = [];
    proxy.setDatagramTap((direction, data) => {
      const heartbeat = parseHeartbeat(data);
      if (direction === "toServer" && heartbeat !== undefined) counters.push(heartbeat.counter);
    });
    const client = await RegistryClient.connect(server.address, {
      loop,
      heartbeatAddress: proxy.udpAddress,
      reconnectDelayMs: 20,
    });
    const events: string[] = [];
    client.onSessionEvent((event) =>
      events.push(event.type === "connected" ? `connected:${event.resumed}` : event.type)
    );
    try {
      await until(() => counters.length >= 2, 2000, "heartbeats before the restart");
      const before = counters.at(-1)!;
      await server.stop();
      server = await startAgain({ port, ...options });
      await until(() => events.includes("connected:true"), 5000, "the resumption");
      const resumedAt = counters.length;
      const accepted = server.stats().heartbeatsAccepted;
      await until(
        () => server.stats().heartbeatsAccepted >= accepted + 3 && counters.length >= resumedAt + 4,
        3000,
        "heartbeats accepted again",
      );
      // The restart raised the floor (its boot epoch is the high half): every heartbeat after the resumption is
      // above all before it, so none recorded before the restart could be replayed after it.
      const after = counters.slice(resumedAt + 1);
      assert.ok(after.length >= 3);
      assert.ok(after.every((counter) => counter > before && counter >= 1n << 32n), `${before} then ${after}`);
      assert.ok(after.every((counter, i) => i === 0 || counter > after[i - 1]!));
      assert.ok(!events.includes("expired"));
    } finally {
      await client.close();
      await proxy.close();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("RegistryClient returns the exact data of concurrent gets whose answers share reads", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop });
  await server.start();
  const client = await RegistryClient.connect(server.address, { loop });
  // Large answers arrive over several reads, small ones behind them in the same reads: the connection's input
  // buffer is compacted under answers already taken, so each must be copied before the next read is set up.
  const sizes = [3, 700, 5_000, 70_000, 200_000];
  const expected = new Map<string, Uint8Array>();
  for (const [i, size] of sizes.entries()) {
    const data = Uint8Array.from({ length: size }, (_, at) => (at * 31 + i * 7 + (at >> 8)) & 0xff);
    expected.set(`/data${i}`, data);
    await client.create(`/data${i}`, data);
  }
  const paths = [...expected.keys()];
  let mismatches = 0;
  await Promise.all(Array.from({ length: 48 }, async (_, worker) => {
    for (let round = 0; round < 40; round++) {
      const path = paths[(worker + round) % paths.length]!;
      const { data } = await client.get(path);
      const want = expected.get(path)!;
      if (data.length !== want.length || data.some((byte, at) => byte !== want[at])) mismatches++;
    }
  }));
  assert.equal(mismatches, 0, "every answer holds its node's data");
  await client.close();
  await server.stop();
});

Deno.test("RegistryClient refuses a request it cannot send at once, and leaves nothing pending behind it", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop });
  await server.start();
  const client = await RegistryClient.connect(server.address, { loop, requestTimeoutMs: 300, maxFrameBytes: 1024 });
  const error = await rejectsWith(client.set("/", new Uint8Array(2000)), RegistryErrorCode.LIMIT_EXCEEDED);
  assert.match(error.message, /Cannot set '\/' as its request of \d+ bytes exceeds 'maxFrameBytes' of 1024/);
  // A value of the wrong type rejects (the promise, not a throw), as every other failure does.
  const wrongType = client.get(42 as unknown as string);
  await assert.rejects(wrongType, TypeError);
  // Past the request timeout: nothing timed out unheard (an unhandled rejection would fail the test).
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(await client.getString("/"), "");
  await client.close();
  await server.stop();
});

Deno.test("RegistryClient gives each caller its own children array, and keeps a leading U+FEFF in names", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop });
  await server.start();
  const client = await RegistryClient.connect(server.address, { loop });
  await client.create("/leaf", "");
  const first = await client.children("/leaf");
  first.push("mine");
  assert.deepEqual(await client.children("/leaf"), [], "a leaf's list is new each time, and not frozen");
  await client.create("/leaf/\uFEFFx", "v");
  const names = await client.children("/leaf");
  assert.deepEqual(names, ["\uFEFFx"]);
  assert.equal(await client.getString(`/leaf/${names[0]}`), "v");
  await client.close();
  await server.stop();
});

Deno.test("RegistryClient holds no watch for a read it refused to send", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop });
  await server.start();
  const client = await RegistryClient.connect(server.address, { loop });
  const writer = await RegistryClient.connect(server.address, { loop });
  await client.create("/w", "1");
  const fired: string[] = [];
  // While the connection is down a read is refused at once: the server never sees it, so no watch may stay behind.
  let refused: Promise<RegistryError> | undefined;
  let resumed = false;
  client.onSessionEvent((event) => {
    if (event.type === "disconnected") {
      refused ??= client.get("/w", { watch: () => fired.push("refused") }).then(
        () => assert.fail("a read while disconnected was answered"),
        (error: RegistryError) => error,
      );
    }
    if (event.type === "connected") resumed = true;
  });
  await server.dropConnectionsForTesting();
  await until(() => refused !== undefined && resumed, 3000, "the session resumed after a refused read");
  assert.equal((await refused!).code, RegistryErrorCode.CONNECTION_LOSS);
  await client.get("/w", { watch: () => fired.push("answered") });
  await until(() => writer.connected, 3000, "the writer back");
  await writer.set("/w", "2");
  await until(() => fired.length > 0, 3000, "the watch");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(fired, ["answered"]);
  await writer.close();
  await client.close();
  await server.stop();
});

Deno.test("RegistryClient holds no watch for a read the server refused; the server holds none either", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop, maxReplyBytes: 4096 });
  await server.start();
  const client = await RegistryClient.connect(server.address, { loop });
  const writer = await RegistryClient.connect(server.address, { loop });
  const fired: string[] = [];
  const watchesBefore = server.stats().watches;
  // Refused: a get or a listing of a missing node (ZooKeeper sets no watch there), and a get whose answer would
  // not fit in a reply.
  await writer.create("/big", new Uint8Array(5000));
  const refusals = [
    client.get("/w", { watch: () => fired.push("get of a missing node") }),
    client.children("/w", { watch: () => fired.push("listing of a missing node") }),
    client.get("/big", { watch: () => fired.push("get too big to answer") }),
  ];
  for (const refused of refusals) await assert.rejects(refused);
  assert.equal(server.stats().watches, watchesBefore, "the server holds no watch for a refused read");
  // Watches the server did set on the same paths fire alone.
  await client.exists("/w", { watch: (event) => fired.push(`exists ${event.type}`) });
  await client.exists("/big", { watch: (event) => fired.push(`exists /big ${event.type}`) });
  await writer.create("/w", "1");
  await writer.create("/w/child", "");
  await writer.set("/big", "small now");
  await until(() => fired.length >= 2, 3000, "the exists watches");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(fired.sort(), [`exists /big ${EventType.NODE_DATA_CHANGED}`, `exists ${EventType.NODE_CREATED}`]);
  await writer.close();
  await client.close();
  await server.stop();
});

Deno.test("RegistryClient keeps a watch another read set when a read with the same callback is refused", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop });
  await server.start();
  const client = await RegistryClient.connect(server.address, { loop });
  const writer = await RegistryClient.connect(server.address, { loop });
  const fired: string[] = [];
  const callback = (event: WatchedEvent) => fired.push(`${event.type} ${event.path}`);
  // Pipelined on one connection: a get refused (no node yet), then reads with the same callback that set a watch.
  const refused = client.get("/x", { watch: callback });
  const exists = client.exists("/x", { watch: callback });
  await assert.rejects(refused);
  assert.equal(await exists, undefined);
  const refusedAgain = client.get("/y", { watch: callback });
  const created = client.create("/y", "1");
  const got = client.get("/y", { watch: callback });
  await assert.rejects(refusedAgain);
  await created;
  await got;
  await writer.create("/x", "");
  await writer.set("/y", "2");
  await until(() => fired.length >= 2, 3000, "both watches");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(fired.sort(), [`${EventType.NODE_CREATED} /x`, `${EventType.NODE_DATA_CHANGED} /y`]);
  await writer.close();
  await client.close();
  await server.stop();
});
