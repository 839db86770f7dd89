// The registry server under hostile clients and a broken disk: each test states the promise it checks.
import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { InetAddress } from "../../reactor/inet_address.ts";
import { UdpSocket } from "../../reactor/udp_socket.ts";
import { type ClientFrame, decodeServerFrame, encodeClientFrame, type ServerFrame, toBigInt } from "../_codec.ts";
import { NodeType } from "./data_tree.ts";
import { encodeHeartbeat, HEARTBEAT_FLAG_EXPIRED, importHeartbeatKey, parseHeartbeat } from "../heartbeat.ts";
import { RegistryClient } from "../client/registry_client.ts";
import { RegistryErrorCode } from "../registry_error.ts";
import { RegistryServer } from "./registry_server.ts";
import { needs } from "../../reactor/testdata/permissions.ts";
import { until } from "../../reactor/testdata/until.ts";
import { FrameReader, lengthPrefixed, writeAll } from "../testdata/raw_frames.ts";

/** A raw client: writes frames as it likes (pipelined, partial) and reads server frames in order. */
class RawClient {
  readonly #conn: Deno.Conn;
  #pending = new Uint8Array(0);
  #frames: ServerFrame[] = [];
  #closed = false;
  readonly #reading: Promise<void>;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#reading = this.#readLoop();
  }

  static async connect(address: InetAddress): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: address.hostname, port: address.port }));
  }

  get closed(): boolean {
    return this.#closed;
  }

  async send(...frames: ClientFrame[]): Promise<void> {
    await this.sendBodies(frames.map((frame) => encodeClientFrame(frame)));
  }

  async sendBodies(bodies: Uint8Array[]): Promise<void> {
    await writeAll(this.#conn, lengthPrefixed(...bodies));
  }

  /** The next `count` frames, in arrival order. */
  async take(count: number, timeoutMs = 5000): Promise<ServerFrame[]> {
    const deadline = performance.now() + timeoutMs;
    while (this.#frames.length < count) {
      if (this.#closed) throw new Error(`Connection closed after ${this.#frames.length} of ${count} frames`);
      if (performance.now() > deadline) throw new Error(`Timed out with ${this.#frames.length} of ${count} frames`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return this.#frames.splice(0, count);
  }

  async connectSession(authToken = ""): Promise<ServerFrame> {
    await this.send({ xid: 1, connect: { sessionId: "0", authToken } });
    return (await this.take(1))[0]!;
  }

  async close(): Promise<void> {
    try {
      this.#conn.close();
    } catch {
      // Closed by the server already.
    }
    await this.#reading;
  }

  async #readLoop(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await this.#conn.read(chunk);
        if (n === null) break;
        const joined = new Uint8Array(this.#pending.length + n);
        joined.set(this.#pending);
        joined.set(chunk.subarray(0, n), this.#pending.length);
        let offset = 0;
        while (joined.length - offset >= 4) {
          const length = new DataView(joined.buffer, offset).getUint32(0);
          if (joined.length - offset - 4 < length) break;
          this.#frames.push(decodeServerFrame(joined.slice(offset + 4, offset + 4 + length)));
          offset += 4 + length;
        }
        this.#pending = joined.slice(offset);
      }
    } catch {
      // Reset by the server.
    }
    this.#closed = true;
  }
}

/** A durable server in a temp dir and a raw client with a session on it; `close` undoes both. */
async function durableServer(): Promise<{ server: RegistryServer; raw: RawClient; close(): Promise<void> }> {
  const dataDir = await Deno.makeTempDir();
  const server = new RegistryServer({ port: 0, loop: new EventLoop(), dataDir });
  await server.start();
  const raw = await RawClient.connect(server.address);
  return {
    server,
    raw,
    async close() {
      await raw.close();
      await server.stop();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

Deno.test("RegistryServer answers a reply too big for a frame with LIMIT_EXCEEDED and keeps serving", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop, maxReplyBytes: 64 * 1024 });
  await server.start();
  const client = await RegistryClient.connect(server.address, { loop });
  await client.create("/big", "");
  const name = "n".repeat(1000);
  await Promise.all(Array.from({ length: 80 }, (_, i) => client.create(`/big/${name}${i}`, "")));
  const raw = await RawClient.connect(server.address);
  await raw.connectSession();
  // Pipelined: a write and the oversized listing behind it, then a read that must still be answered.
  await raw.send(
    { xid: 2, create: { path: "/y", data: new Uint8Array(0) } },
    { xid: 3, children: { path: "/big" } },
    { xid: 4, exists: { path: "/y" } },
  );
  const [created, listing, exists] = await raw.take(3);
  assert.equal(created!.xid, 2);
  assert.equal(created!.errorCode ?? 0, 0);
  assert.equal(listing!.xid, 3);
  assert.equal(listing!.errorCode, RegistryErrorCode.LIMIT_EXCEEDED);
  assert.match(listing!.errorMessage!, /limit of 65536 bytes/);
  assert.equal(exists!.xid, 4);
  assert.ok(exists!.exists?.stat, "the read behind the big answer sees the write before it");
  assert.equal(server.stats().oversizedReplies, 1);
  assert.deepEqual(await client.children("/"), ["big", "y"]);
  await raw.close();
  await client.close();
  await server.stop();
});

Deno.test(
  "RegistryServer answers a connection's reads after its own pipelined writes, in order",
  needs("read", "write"),
  async () => {
    const { raw, close } = await durableServer();
    await raw.connectSession();
    const frames: ClientFrame[] = [];
    for (let i = 0; i < 50; i++) {
      frames.push({ xid: 10 + 3 * i, create: { path: `/n${i}`, data: new Uint8Array([i]) } });
      frames.push({ xid: 11 + 3 * i, get: { path: `/n${i}` } });
      frames.push({ xid: 12 + 3 * i, children: { path: "/" } });
    }
    await raw.send(...frames);
    const replies = await raw.take(frames.length);
    replies.forEach((reply, i) => {
      assert.equal(reply.xid, frames[i]!.xid, "replies leave in request order");
      assert.equal(reply.errorCode ?? 0, 0, reply.errorMessage);
    });
    for (let i = 0; i < 50; i++) {
      assert.deepEqual([...replies[3 * i + 1]!.get!.data!], [i], "a read sees the write before it");
      assert.equal(replies[3 * i + 2]!.children!.children!.length, i + 1);
    }
    await close();
  },
);

Deno.test(
  "RegistryServer on a full disk fails exactly the writes it cannot log, shows none of them, and loses nothing",
  needs("read", "write", "run", "sys"),
  async (t) => {
    if (Deno.uid() !== 0) {
      console.log("skipped: mounting a 1 MiB tmpfs for ENOSPC needs root");
      return;
    }
    const dataDir = await Deno.makeTempDir();
    const mount = new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dataDir] });
    if (!(await mount.output()).success) {
      console.log("skipped: cannot mount a tmpfs here");
      await Deno.remove(dataDir);
      return;
    }
    const loop = new EventLoop();
    let server: RegistryServer | undefined;
    try {
      server = new RegistryServer({ port: 0, loop, dataDir });
      await server.start();
      const writer = await RawClient.connect(server.address);
      const reader = await RawClient.connect(server.address);
      await writer.connectSession();
      await reader.connectSession();
      await writer.send({ xid: 2, create: { path: "/before", data: new Uint8Array(100) } });
      assert.equal((await writer.take(1))[0]!.errorCode ?? 0, 0);
      // Fill the disk, leaving a few hundred bytes: some writes fit, the rest fail.
      const filler = `${dataDir}/filler`;
      await t.step("fill the disk", async () => {
        const file = await Deno.open(filler, { write: true, create: true });
        const block = new Uint8Array(4096);
        try {
          for (;;) await file.write(block);
        } catch {
          // ENOSPC: full.
        } finally {
          file.close();
        }
      });
      const frames: ClientFrame[] = [];
      // More than the log's zero-filled space ahead of its end holds (64 KiB after its first record).
      for (let i = 0; i < 20; i++) {
        frames.push({ xid: 10 + 2 * i, create: { path: `/full${i}`, data: new Uint8Array(8000) } });
        frames.push({ xid: 11 + 2 * i, exists: { path: `/full${i}` } });
      }
      await writer.send(...frames);
      const replies = await writer.take(frames.length);
      const acknowledged: string[] = [];
      const failed: string[] = [];
      replies.forEach((reply, i) => {
        assert.equal(reply.xid, frames[i]!.xid, "replies keep their order through failures");
        if (i % 2 === 1) return;
        const path = `/full${i / 2}`;
        if ((reply.errorCode ?? 0) === 0) acknowledged.push(path);
        else {
          assert.equal(reply.errorCode, RegistryErrorCode.STORAGE_FAILED, reply.errorMessage);
          failed.push(path);
          assert.equal(replies[i + 1]!.exists?.stat ?? undefined, undefined, `${path} failed, so nobody sees it`);
        }
      });
      assert.ok(failed.length > 0, "the disk was full");
      for (const path of failed) {
        await reader.send({ xid: 7, exists: { path } });
        assert.equal((await reader.take(1))[0]!.exists?.stat ?? undefined, undefined, `another session sees ${path}`);
        assert.equal(server.tree.exists(path), undefined);
      }
      assert.ok(server.stats().writeFailures > 0);
      assert.equal(server.readOnly, false);
      // Space comes back: writes work again.
      await Deno.remove(filler);
      for (let i = 0; i < 20; i++) {
        await writer.send({ xid: 100 + i, create: { path: `/after${i}`, data: new Uint8Array(10) } });
        const [reply] = await writer.take(1);
        assert.equal(reply!.errorCode ?? 0, 0, reply!.errorMessage);
        acknowledged.push(`/after${i}`);
      }
      await writer.close();
      await reader.close();
      await server.stop();
      // Everything acknowledged survives a restart; nothing that failed appears.
      server = new RegistryServer({ port: 0, loop, dataDir });
      await server.start();
      for (const path of ["/before", ...acknowledged]) assert.ok(server.tree.exists(path), `${path} survived`);
      for (const path of failed) assert.equal(server.tree.exists(path), undefined, `${path} stayed failed`);
    } finally {
      await server?.stop();
      await new Deno.Command("umount", { args: [dataDir] }).output();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);

Deno.test("RegistryServer limits sessions per address and refuses unknown or oversized tokens at the handshake", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({
    port: 0,
    loop,
    maxSessionsPerIp: 3,
    authToken: "secret-token",
    maxAuthTokenBytes: 64,
  });
  await server.start();
  const raws = await Promise.all(Array.from({ length: 5 }, () => RawClient.connect(server.address)));
  const answers = await Promise.all(raws.map((raw) => raw.connectSession()));
  const refused = answers.filter((answer) => answer.errorCode === RegistryErrorCode.LIMIT_EXCEEDED);
  assert.equal(refused.length, 2, "two of five sessions over the per-address limit of 3");
  assert.match(refused[0]!.errorMessage!, /limit of 3 sessions/);
  const wrong = await RawClient.connect(server.address);
  assert.equal((await wrong.connectSession("not-the-token")).errorCode, RegistryErrorCode.AUTH_FAILED);
  const huge = await RawClient.connect(server.address);
  const answer = await huge.connectSession("x".repeat(4 * 1024 * 1024 - 64));
  assert.equal(answer.errorCode, RegistryErrorCode.AUTH_FAILED);
  assert.match(answer.errorMessage!, /longer than 64 bytes/);
  // An honest client still gets in once a slot frees up.
  await raws[0]!.close();
  await until(() => server.stats().sessions <= 3, 2000, "the per-address count to hold");
  for (const raw of [...raws, wrong, huge]) await raw.close();
  await server.stop();
});

Deno.test("RegistryServer limits the watches of a session", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop, maxWatchesPerSession: 10 });
  await server.start();
  const client = await RegistryClient.connect(server.address, { loop });
  for (let i = 0; i < 10; i++) await client.exists(`/w${i}`, { watch: () => {} });
  await client.exists("/w0", { watch: () => {} }); // the same watch again costs nothing
  await assert.rejects(client.exists("/w10", { watch: () => {} }), (error: { code: number }) => {
    return error.code === RegistryErrorCode.LIMIT_EXCEEDED;
  });
  assert.equal(server.stats().watches, 10);
  await client.exists("/w10"); // without a watch: fine
  await client.close();
  await server.stop();

  // And all sessions together.
  const capped = new RegistryServer({ port: 0, loop, maxWatches: 15 });
  await capped.start();
  const a = await RegistryClient.connect(capped.address, { loop });
  const b = await RegistryClient.connect(capped.address, { loop });
  for (let i = 0; i < 10; i++) await a.exists(`/a${i}`, { watch: () => {} });
  for (let i = 0; i < 5; i++) await b.exists(`/b${i}`, { watch: () => {} });
  await assert.rejects(b.exists("/b5", { watch: () => {} }), /server holds its limit of 15 watches/);
  await a.close();
  await b.close();
  await capped.stop();
});

Deno.test(
  "RegistryServer rejects heartbeats recorded before a restart, and answers an expired session's heartbeat with a signed notice",
  needs("read", "write"),
  async () => {
    const loop = new EventLoop();
    const dataDir = await Deno.makeTempDir();
    let server = new RegistryServer({ port: 0, loop, dataDir, heartbeatTimeoutMs: 150, heartbeatMaxCount: 2 });
    await server.start();
    const raw = await RawClient.connect(server.address);
    const connected = (await raw.connectSession()).connect!;
    const sessionId = toBigInt(connected.sessionId);
    const key = await importHeartbeatKey(connected.sessionSecret!);
    const floor = toBigInt(connected.heartbeatCounterFloor);
    assert.ok(floor >= 1n << 32n, `the floor carries the boot epoch: ${floor}`);
    const udp = await UdpSocket.bind(loop, new InetAddress("127.0.0.1", 0));
    const recorded = await encodeHeartbeat(sessionId, floor + 5n, key);
    udp.send(recorded, server.heartbeatAddress);
    await until(() => server.stats().heartbeatsAccepted === 1, 2000, "the live heartbeat");
    await raw.close();
    const port = server.address.port;
    await server.stop();

    server = new RegistryServer({ port: 0, loop, dataDir, heartbeatTimeoutMs: 150, heartbeatMaxCount: 2 });
    await server.start();
    assert.ok(server.sessions().some((session) => session.id === sessionId), "the session was restored");
    udp.send(recorded, server.heartbeatAddress);
    udp.send(await encodeHeartbeat(sessionId, floor + 6n, key), server.heartbeatAddress);
    await until(() => server.stats().heartbeatsRejected === 2, 2000, "both old-epoch heartbeats to be rejected");
    assert.equal(server.stats().heartbeatsAccepted, 0);
    assert.notEqual(port, 0);

    // Past its timeout the session expires; its next signed heartbeat gets a notice signed with its secret.
    await until(() => server.stats().sessions === 0, 3000, "the restored session to expire");
    const notice = Promise.withResolvers<Uint8Array>();
    udp.setMessageCallback((data) => notice.resolve(data.slice()));
    udp.send(await encodeHeartbeat(sessionId, (3n << 32n) + 1n, key), server.heartbeatAddress);
    const parsed = parseHeartbeat(await notice.promise)!;
    assert.equal(parsed.flags, HEARTBEAT_FLAG_EXPIRED);
    assert.equal(parsed.sessionId, sessionId);
    // A stranger's heartbeat for the same id, wrongly signed, gets nothing.
    const strangerKey = await importHeartbeatKey(new Uint8Array(16));
    const before = server.stats().expiryNotices;
    udp.send(await encodeHeartbeat(sessionId, (3n << 32n) + 2n, strangerKey), server.heartbeatAddress);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(server.stats().expiryNotices, before);
    await udp.close();
    await server.stop();
    await Deno.remove(dataDir, { recursive: true });
  },
);

Deno.test("RegistryServer tells a connected client its session expired, then closes", async () => {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop, heartbeatTimeoutMs: 60, heartbeatMaxCount: 2 });
  await server.start();
  const raw = await RawClient.connect(server.address);
  await raw.connectSession();
  await raw.send({ xid: 2, create: { path: "/e", data: new Uint8Array(0), nodeType: NodeType.EPHEMERAL } });
  await raw.take(1);
  // No heartbeats and no requests: the session expires.
  const [notice] = await raw.take(1, 3000);
  assert.equal(notice!.xid, 0);
  assert.equal(notice!.errorCode, RegistryErrorCode.SESSION_EXPIRED);
  await until(() => raw.closed, 2000, "the server to close the connection");
  assert.equal(server.tree.exists("/e"), undefined);
  await raw.close();
  await server.stop();
});

Deno.test(
  "RegistryServer sends a watch event after its write's reply and before any answer that shows the change",
  needs("read", "write"),
  async () => {
    const { raw, close } = await durableServer();
    await raw.connectSession();
    await raw.send({ xid: 2, create: { path: "/x", data: new Uint8Array([1]) } });
    await raw.take(1);
    // All pipelined: a watch, the change, and reads that can only be answered once the change is applied.
    await raw.send(
      { xid: 3, get: { path: "/x", watch: true } },
      { xid: 4, set: { path: "/x", data: new Uint8Array([2]), expectedVersion: -1 } },
      { xid: 5, get: { path: "/x" } },
      { xid: 6, children: { path: "/" } },
    );
    const frames = await raw.take(5);
    assert.deepEqual(frames.map((frame) => frame.xid), [3, 4, 0, 5, 6]);
    assert.equal(frames[2]!.event?.path, "/x");
    assert.deepEqual([...frames[3]!.get!.data!], [2]);
    await close();
  },
);

Deno.test(
  "RegistryServer answers 20,000 requests pipelined behind a connect, in order, without holding them all",
  needs("read", "write"),
  async () => {
    const { raw, close } = await durableServer();
    const frames: ClientFrame[] = [{ xid: 1, connect: { sessionId: "0" } }];
    for (let i = 0; i < 20_000; i++) {
      frames.push(
        i % 2 === 0 ? { xid: 2 + i, create: { path: `/p${i}`, data: new Uint8Array(0) } } : {
          xid: 2 + i,
          exists: { path: `/p${i - 1}` },
        },
      );
    }
    await raw.send(...frames);
    const replies = await raw.take(frames.length, 30_000);
    replies.forEach((reply, i) => assert.equal(reply.xid, i + 1));
    assert.ok(replies.slice(1).every((reply) => (reply.errorCode ?? 0) === 0));
    assert.ok(replies.filter((_, i) => i % 2 === 0 && i > 0).every((reply) => reply.exists?.stat));
    await close();
  },
);

Deno.test(
  "RegistryServer answers the reads of a client that does not read only as its output drains: others are served " +
    "meanwhile, and it gets every answer, in order, once it reads",
  async () => {
    const server = new RegistryServer({ port: 0, loop: new EventLoop() });
    await server.start();
    const honest = await RawClient.connect(server.address);
    await honest.connectSession();
    await honest.send({ xid: 2, create: { path: "/big", data: new Uint8Array(512 * 1024) } });
    assert.equal((await honest.take(1))[0]!.errorCode ?? 0, 0);
    const conn = await Deno.connect({ hostname: server.address.hostname, port: server.address.port });
    const reader = new FrameReader(conn);
    await writeAll(conn, lengthPrefixed(encodeClientFrame({ xid: 1, connect: { sessionId: "0" } })));
    assert.ok(decodeServerFrame(await reader.next()).connect);
    // 150 MiB of answers in one read: more than the server ever holds unsent (it closes a connection past 64 MiB).
    const gets = Array.from({ length: 300 }, (_, i) => encodeClientFrame({ xid: 10 + i, get: { path: "/big" } }));
    await writeAll(conn, lengthPrefixed(...gets));
    for (let i = 0; i < 3; i++) {
      await honest.send({ xid: 3 + i, exists: { path: "/big" } });
      assert.ok((await honest.take(1))[0]!.exists?.stat, "another client is served meanwhile");
    }
    for (let i = 0; i < gets.length; i++) {
      const reply = decodeServerFrame(await reader.next());
      assert.equal(reply.xid, 10 + i);
      assert.equal(reply.get?.data?.length, 512 * 1024);
    }
    conn.close();
    await honest.close();
    await server.stop();
  },
);

Deno.test("RegistryServer answers a close after the reads pipelined before it, those waiting for room too", async () => {
  const server = new RegistryServer({ port: 0, loop: new EventLoop() });
  await server.start();
  const raw = await RawClient.connect(server.address);
  await raw.connectSession();
  await raw.send({ xid: 2, create: { path: "/big", data: new Uint8Array(512 * 1024) } });
  await raw.take(1);
  const gets: ClientFrame[] = Array.from({ length: 20 }, (_, i) => ({ xid: 10 + i, get: { path: "/big" } }));
  await raw.send(...gets, { xid: 30, close: {} });
  const replies = await raw.take(gets.length + 1);
  assert.deepEqual(replies.map((reply) => reply.xid), [...gets.map((get) => get.xid), 30]);
  assert.ok(replies.slice(0, -1).every((reply) => reply.get?.data?.length === 512 * 1024));
  assert.ok(replies.at(-1)!.close, replies.at(-1)!.errorMessage);
  await until(() => raw.closed, 2000, "the server to shut the connection down");
  await raw.close();
  await server.stop();
});

Deno.test(
  "RegistryServer answers a request whose path is not UTF-8 in its turn, also right behind a connect",
  needs("read", "write"),
  async () => {
    const { raw, close } = await durableServer();
    // { xid: 2, create: { path: "/f" + bytes that are not UTF-8 } }, hand-encoded: no encoder writes it.
    const path = [0x2f, 0x66, 0xc3, 0x28, 0xff];
    const badCreate = Uint8Array.from([0x08, 3, 0x5a, path.length + 2, 0x0a, path.length, ...path]);
    await raw.sendBodies([
      encodeClientFrame({ xid: 1, connect: { sessionId: "0" } }),
      encodeClientFrame({ xid: 2, create: { path: "/ok", data: new Uint8Array(0) } }),
      badCreate,
      encodeClientFrame({ xid: 4, exists: { path: "/ok" } }),
    ]);
    const replies = await raw.take(4);
    assert.deepEqual(replies.map((reply) => reply.xid), [1, 2, 3, 4]);
    assert.equal(replies[2]!.errorCode, RegistryErrorCode.BAD_ARGUMENTS);
    assert.match(replies[2]!.errorMessage!, /'create.path' must be valid UTF-8/);
    assert.ok(replies[3]!.exists?.stat);
    await close();
  },
);

Deno.test(
  "Writes pipelined behind a connect keep their data while the session is being opened",
  needs("read", "write"),
  async () => {
    const { server, raw, close } = await durableServer();
    try {
      // The creates wait, decoded, until the new session is durable; meanwhile the server reads on, into the same
      // input buffer, the pings that follow. Held requests must not point into bytes those reads replace.
      const pattern = (seed: number) => Uint8Array.from({ length: 3000 }, (_, at) => (at * 13 + seed) & 0xff);
      await raw.send(
        { xid: 1, connect: { sessionId: "0" } },
        ...[2, 3, 4].map((xid) => ({
          xid,
          create: { path: `/held${xid}`, data: pattern(xid), nodeType: NodeType.PERSISTENT },
        })),
      );
      for (let burst = 0; burst < 20; burst++) {
        await raw.send(...Array.from({ length: 50 }, (_, i) => ({ xid: 100 + burst * 50 + i, ping: {} })));
      }
      const answers = await raw.take(4 + 1000);
      assert.deepEqual(answers.slice(0, 4).map((frame) => frame.errorCode ?? 0), [0, 0, 0, 0]);
      const client = await RegistryClient.connect(server.address, { loop: new EventLoop() });
      for (const xid of [2, 3, 4]) assert.deepEqual((await client.get(`/held${xid}`)).data, pattern(xid));
      await client.close();
    } finally {
      await close();
    }
  },
);
