// The registry's consistency model, shown against a real server on a real log whose disk the test holds still: every
// reply, success or failure, fits one order of the operations that respects real time (README, "Consistency").
import assert from "node:assert/strict";
import { defaultBackend } from "../../reactor/backend/default.ts";
import type { NetBackend } from "../../reactor/backend/net_backend.ts";
import { EventLoop } from "../../reactor/event_loop.ts";
import { needs } from "../../reactor/testdata/permissions.ts";
import { RegistryClient } from "../client/registry_client.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";
import { RegistryServer } from "./registry_server.ts";
import { decodeServerFrame, encodeClientFrame, toBigInt } from "../_codec.ts";
import { encodeHeartbeat, HEARTBEAT_FLAG_EXPIRED, importHeartbeatKey, parseHeartbeat } from "../heartbeat.ts";
import { NodeType } from "../registry.ts";
import { FrameReader, lengthPrefixed, writeAll } from "../testdata/raw_frames.ts";
import { until } from "../../reactor/testdata/until.ts";

/** A disk whose log appends wait while it is held: the writes they carry stay in flight as long as a test wants. */
class HeldDisk {
  readonly backend: NetBackend;
  /** Appends fail (EIO) while set; truncates still work, so the log is cut back and stays writable. */
  failing = false;
  #held = false;
  #waiting: Array<() => void> = [];

  constructor() {
    const real = defaultBackend();
    const openDurableAppend: NetBackend["fs"]["openDurableAppend"] = async (path, options) => {
      const file = await real.fs.openDurableAppend(path, options);
      return {
        append: async (data) => {
          if (this.#held) await new Promise<void>((resolve) => this.#waiting.push(resolve));
          if (this.failing) throw new Error("EIO: injected");
          await file.append(data);
        },
        truncate: (length) => file.truncate(length),
        trim: () => file.trim(),
        size: () => file.size(),
        close: () => file.close(),
      };
    };
    this.backend = { ...real, fs: { ...real.fs, openDurableAppend } };
  }

  hold(): void {
    this.#held = true;
  }

  release(): void {
    this.#held = false;
    for (const resume of this.#waiting.splice(0)) resume();
  }
}

interface Rig {
  disk: HeldDisk;
  server: RegistryServer;
  clients: RegistryClient[];
  [Symbol.asyncDispose](): Promise<void>;
}

async function rig(clientCount: number, unsafeEarlyFailures = false): Promise<Rig> {
  const dataDir = await Deno.makeTempDir({ prefix: "registry-consistency-" });
  const disk = new HeldDisk();
  const server = new RegistryServer({
    port: 0,
    loop: new EventLoop({ backend: disk.backend }),
    dataDir,
    unsafeEarlyFailures,
  });
  await server.start();
  const clients = await Promise.all(
    Array.from({ length: clientCount }, () => RegistryClient.connect(server.address, { loop: new EventLoop() })),
  );
  return {
    disk,
    server,
    clients,
    async [Symbol.asyncDispose]() {
      disk.release();
      await Promise.all(clients.map((client) => client.close()));
      await server.stop();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

/** Whether `promise` is still unsettled after `ms` milliseconds. */
async function stillPending(promise: Promise<unknown>, ms = 100): Promise<boolean> {
  const marker = Symbol("pending");
  const settled = await Promise.race([
    promise.then(() => undefined, () => undefined),
    new Promise((resolve) => setTimeout(() => resolve(marker), ms)),
  ]);
  return settled === marker;
}

function codeOf(error: unknown): string {
  return error instanceof RegistryError ? error.codeName : String(error);
}

Deno.test(
  "RegistryServer answers NODE_EXISTS only once the create it lost to is durable and readable",
  needs("read", "write"),
  async () => {
    await using r = await rig(3);
    const [winner, loser, reader] = r.clients as [RegistryClient, RegistryClient, RegistryClient];
    r.disk.hold();
    const won = winner.create("/k0", "c0");
    // Judged against the create in flight: it fails, but may not say so before anyone can read /k0.
    const lost = loser.create("/k0", "c2").then(() => "ok", codeOf);
    assert.ok(await stillPending(lost), "NODE_EXISTS was answered while /k0 was still on its way to disk");
    assert.equal(await reader.exists("/k0"), undefined, "another connection cannot read a write still in flight");
    r.disk.release();
    assert.equal(await won, "/k0");
    assert.equal(await lost, "NODE_EXISTS");
    assert.equal(new TextDecoder().decode((await loser.get("/k0")).data), "c0");
  },
);

Deno.test(
  "RegistryServer answers BAD_VERSION only once the set it lost to is durable and readable",
  needs("read", "write"),
  async () => {
    await using r = await rig(3);
    const [a, b, reader] = r.clients as [RegistryClient, RegistryClient, RegistryClient];
    await a.create("/k0", "w0");
    const { stat } = await a.get("/k0");
    r.disk.hold();
    const pendingSet = b.set("/k0", "w3");
    const conditional = a.set("/k0", "w0-6", { version: stat.version }).then(() => "ok", codeOf);
    assert.ok(await stillPending(conditional), "BAD_VERSION was answered while the set it lost to was in flight");
    assert.equal(new TextDecoder().decode((await reader.get("/k0")).data), "w0", "in flight: not yet readable");
    r.disk.release();
    await pendingSet;
    assert.equal(await conditional, "BAD_VERSION");
    const after = await a.get("/k0");
    assert.equal(new TextDecoder().decode(after.data), "w3");
    assert.equal(after.stat.version, stat.version + 1);
  },
);

Deno.test(
  "RegistryServer answers every refusal judged against a write in flight in commit order (NO_NODE, NOT_EMPTY)",
  needs("read", "write"),
  async () => {
    await using r = await rig(2);
    const [a, b] = r.clients as [RegistryClient, RegistryClient];
    await a.create("/p", "");
    r.disk.hold();
    const child = a.create("/p/c", "");
    const gone = a.delete("/x").then(() => "ok", codeOf);
    const notEmpty = b.delete("/p").then(() => "ok", codeOf);
    const noParent = b.create("/q/c", "").then(() => "ok", codeOf);
    // NO_NODE for /x and /q depends on nothing in flight, but is still answered behind the writes before it: a
    // refusal never overtakes a write it may have been judged against.
    assert.ok(await stillPending(notEmpty), "NOT_EMPTY was answered while the child it saw was in flight");
    r.disk.release();
    assert.equal(await child, "/p/c");
    assert.deepEqual(await Promise.all([gone, notEmpty, noParent]), ["NO_NODE", "NOT_EMPTY", "NO_NODE"]);
    assert.deepEqual(await b.children("/p"), ["c"]);
  },
);

Deno.test(
  "RegistryServer with unsafeEarlyFailures answers a failure before the write it lost to exists (the checker's bait)",
  needs("read", "write"),
  async () => {
    await using r = await rig(2, true);
    const [winner, loser] = r.clients as [RegistryClient, RegistryClient];
    r.disk.hold();
    const won = winner.create("/k0", "c0");
    await assert.rejects(loser.create("/k0", "c2"), (error: RegistryError) => {
      return error.code === RegistryErrorCode.NODE_EXISTS;
    });
    // The anomaly of issue 18: told the node exists, the client then reads that it does not.
    assert.equal(await loser.exists("/k0"), undefined);
    r.disk.release();
    await won;
  },
);

/** A server on a HeldDisk with 200 ms sessions, and a reader of its own. */
async function expiringRig() {
  const dataDir = await Deno.makeTempDir({ prefix: "registry-consistency-" });
  const disk = new HeldDisk();
  const loop = new EventLoop({ backend: disk.backend });
  const server = new RegistryServer({ port: 0, loop, dataDir, heartbeatTimeoutMs: 100, heartbeatMaxCount: 2 });
  await server.start();
  const reader = await RegistryClient.connect(server.address, { loop: new EventLoop() });
  return { disk, server, reader, dataDir };
}

/** A raw client that opens a session, makes the ephemeral node `path`, then falls silent (no heartbeats). */
async function silentHolderOf(server: RegistryServer, path: string) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.address.port });
  const frames = new FrameReader(conn);
  await writeAll(conn, lengthPrefixed(encodeClientFrame({ xid: 1, connect: { sessionId: "0" } })));
  const connected = decodeServerFrame(await frames.next()).connect!;
  const create = { xid: 2, create: { path, data: new Uint8Array(0), nodeType: NodeType.EPHEMERAL } };
  await writeAll(conn, lengthPrefixed(encodeClientFrame(create)));
  assert.equal(decodeServerFrame(await frames.next()).errorCode ?? 0, 0);
  return { conn, frames, connected };
}

Deno.test(
  "RegistryServer tells an expired session so over UDP only once its ephemeral nodes are gone for everyone",
  needs("read", "write"),
  async () => {
    const { disk, server, reader, dataDir } = await expiringRig();
    const { conn, connected } = await silentHolderOf(server, "/lock");
    const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      // Its end is held on its way to the disk: the node is still there for everyone.
      {
        disk.hold();
        await until(() => server.stats().expiredSessions === 1, 3000, "the session to expire");
        const key = await importHeartbeatKey(connected.sessionSecret!);
        const heartbeat = await encodeHeartbeat(
          toBigInt(connected.sessionId),
          toBigInt(connected.heartbeatCounterFloor),
          key,
        );
        await udp.send(heartbeat, { transport: "udp", hostname: "127.0.0.1", port: server.heartbeatAddress.port });
        const notice = udp.receive();
        assert.ok(await stillPending(notice, 200), "told it expired while its node was still readable");
        assert.ok((await reader.exists("/lock")) !== undefined);
        disk.release();
        const [datagram] = await notice;
        assert.equal(parseHeartbeat(datagram)?.flags, HEARTBEAT_FLAG_EXPIRED);
        assert.equal(await reader.exists("/lock"), undefined, "told it expired: its node is gone");
      }
    } finally {
      disk.release();
      udp.close();
      conn.close();
      await reader.close();
      await server.stop();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);

Deno.test(
  "RegistryServer tells an expired session nothing (TCP, UDP, resume) while the end of it cannot reach the disk",
  needs("read", "write"),
  async () => {
    const { disk, server, reader, dataDir } = await expiringRig();
    const { conn, frames, connected } = await silentHolderOf(server, "/lock");
    const resumer = await Deno.connect({ hostname: "127.0.0.1", port: server.address.port });
    const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      disk.failing = true;
      await until(() => server.stats().expiredSessions === 1, 3000, "the session to expire");
      const tcpNotice = frames.next();
      const resume = { xid: 1, connect: { sessionId: connected.sessionId, sessionSecret: connected.sessionSecret } };
      await writeAll(resumer, lengthPrefixed(encodeClientFrame(resume)));
      const resumed = new FrameReader(resumer).next();
      const key = await importHeartbeatKey(connected.sessionSecret!);
      const floor = toBigInt(connected.heartbeatCounterFloor);
      await udp.send(await encodeHeartbeat(toBigInt(connected.sessionId), floor, key), {
        transport: "udp",
        hostname: "127.0.0.1",
        port: server.heartbeatAddress.port,
      });
      const udpNotice = udp.receive();
      for (const told of [tcpNotice, resumed, udpNotice]) {
        assert.ok(await stillPending(told, 300), "told the session ended while its node could still be read");
      }
      assert.ok((await reader.exists("/lock")) !== undefined, "the disk refused the end: the node is still there");
      // The disk heals; the end is retried, made durable, and then everyone is told.
      disk.failing = false;
      assert.equal(decodeServerFrame(await tcpNotice).errorCode, RegistryErrorCode.SESSION_EXPIRED);
      assert.equal(decodeServerFrame(await resumed).errorCode, RegistryErrorCode.SESSION_EXPIRED);
      assert.equal(parseHeartbeat((await udpNotice)[0])?.flags, HEARTBEAT_FLAG_EXPIRED);
      assert.equal(await reader.exists("/lock"), undefined);
    } finally {
      disk.failing = false;
      udp.close();
      conn.close();
      resumer.close();
      await reader.close();
      await server.stop();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);
