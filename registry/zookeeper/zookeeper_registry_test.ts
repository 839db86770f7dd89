import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { EventType, NodeType } from "../server/data_tree.ts";
import type { WatchedEvent } from "../client/registry_client.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";
import { InetAddress } from "../../reactor/inet_address.ts";
import { CutProxy, ZOOKEEPER_CREATES } from "../testdata/cut_proxy.ts";
import { PartitionProxy } from "../testdata/partition_proxy.ts";
import { startZooKeeper } from "../testdata/zookeeper_server.ts";
import { parseConnectString, ZooKeeperRegistry } from "./zookeeper_registry.ts";
import { needs } from "../../reactor/testdata/permissions.ts";
import { until } from "../../reactor/testdata/until.ts";

const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

async function rejectsWithCode(promise: Promise<unknown>, code: RegistryErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof RegistryError, `a RegistryError, not ${error}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

Deno.test("parseConnectString reads servers, default port and chroot", () => {
  const parsed = parseConnectString("10.0.0.1:2181,10.0.0.2,10.0.0.3:2182/apps/rpc");
  assert.deepEqual(parsed.servers.map(String), ["10.0.0.1:2181", "10.0.0.2:2181", "10.0.0.3:2182"]);
  assert.equal(parsed.chroot, "/apps/rpc");
  assert.equal(parseConnectString("127.0.0.1:2181/").chroot, "");
  assert.throws(() => parseConnectString("/chroot-only"), /no server/);
  assert.throws(() => parseConnectString("h:1/bad//chroot"), /bad chroot/);
});

// sys: installing ZooKeeper when it is missing checks for root first.
Deno.test("ZooKeeperRegistry against a real ZooKeeper", needs("read", "write", "run", "sys"), async (t) => {
  // tickTime 200 ms: sessions of 0.4-4 s, so expiry tests are quick.
  const zk = await startZooKeeper({ tickTimeMs: 200 });
  const loop = new EventLoop();
  const open: ZooKeeperRegistry[] = [];
  const connect = async (suffix = "", options: Parameters<typeof ZooKeeperRegistry.connect>[1] = {}) => {
    const registry = await ZooKeeperRegistry.connect(zk.connectString + suffix, {
      loop,
      sessionTimeoutMs: 4000,
      ...options,
    });
    open.push(registry);
    return registry;
  };
  try {
    await t.step("create, get, set, delete, exists, children with ZooKeeper's errors", async () => {
      const zkc = await connect();
      assert.equal(await zkc.create("/svc", "root"), "/svc");
      await rejectsWithCode(zkc.create("/svc", ""), RegistryErrorCode.NODE_EXISTS);
      await rejectsWithCode(zkc.create("/missing/child", ""), RegistryErrorCode.NO_NODE);
      await zkc.create("/svc/a", "1");
      await zkc.create("/svc/b", "2", { nodeType: NodeType.EPHEMERAL });
      await rejectsWithCode(zkc.create("/svc/b/c", ""), RegistryErrorCode.NO_CHILDREN_FOR_EPHEMERALS);
      assert.deepEqual(await zkc.children("/svc"), ["a", "b"]);
      const { data, stat } = await zkc.get("/svc/b");
      assert.equal(decode(data), "2");
      assert.equal(stat.nodeType, NodeType.EPHEMERAL);
      assert.equal(stat.ephemeralOwner, zkc.sessionId);
      assert.equal(stat.dataLength, 1);
      const set = await zkc.set("/svc/a", "11", { version: 0 });
      assert.equal(set.version, 1);
      await rejectsWithCode(zkc.set("/svc/a", "x", { version: 0 }), RegistryErrorCode.BAD_VERSION);
      await rejectsWithCode(zkc.delete("/svc"), RegistryErrorCode.NOT_EMPTY);
      await rejectsWithCode(zkc.delete("/svc/a", { version: 0 }), RegistryErrorCode.BAD_VERSION);
      const svc = await zkc.exists("/svc");
      assert.equal(svc?.numChildren, 2);
      assert.equal(svc?.nodeType, NodeType.PERSISTENT);
      assert.ok(svc!.ctime > Date.now() - 60_000 && svc!.ctime <= Date.now() + 1000);
      assert.equal(await zkc.exists("/nope"), undefined);
      const first = await zkc.create("/svc/seq-", "", { sequential: true });
      const second = await zkc.create("/svc/seq-", "", { sequential: true });
      assert.match(first, /^\/svc\/seq-\d{10}$/);
      assert.ok(second > first);
      await zkc.delete("/svc/a", { version: 1 });
      await assert.rejects(zkc.get("bad-path"), /path/i);
      await zkc.close();
      // The session's ephemeral node went with it.
      const other = await connect();
      assert.equal(await other.exists("/svc/b"), undefined);
    });

    await t.step("a chroot is invisible to the client and visible to ZooKeeper", async () => {
      const root = await connect();
      await root.create("/apps", "");
      const chrooted = await connect("/apps");
      await chrooted.create("/Echo", "");
      assert.equal(await chrooted.create("/Echo/n-", "", { sequential: true }), "/Echo/n-0000000000");
      assert.deepEqual(await root.children("/apps/Echo"), ["n-0000000000"]);
      assert.deepEqual(await chrooted.children("/"), ["Echo"]);
      const events: WatchedEvent[] = [];
      await chrooted.children("/Echo", { watch: (event) => events.push(event) });
      await root.create("/apps/Echo/other", "");
      await until(() => events.length === 1, 10_000, "the chrooted watch");
      assert.deepEqual(events[0], { type: EventType.NODE_CHILDREN_CHANGED, path: "/Echo" });
    });

    await t.step("watches on data, children and a missing node fire once, in order", async () => {
      const watcher = await connect();
      const writer = await connect();
      await writer.create("/w", "");
      const events: string[] = [];
      const record = (name: string) => (event: WatchedEvent) => events.push(`${name}:${event.type}:${event.path}`);
      await watcher.get("/w", { watch: record("data") });
      await watcher.children("/w", { watch: record("children") });
      await watcher.exists("/w/later", { watch: record("exists") });
      await writer.set("/w", "x");
      await writer.create("/w/later", "");
      await writer.set("/w", "y"); // the data watch was one-shot
      await until(() => events.length >= 3, 10_000, "three events");
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(events, [
        `data:${EventType.NODE_DATA_CHANGED}:/w`,
        `exists:${EventType.NODE_CREATED}:/w/later`,
        `children:${EventType.NODE_CHILDREN_CHANGED}:/w`,
      ]);
    });

    await t.step("a read ZooKeeper refuses leaves no watch: only the watches it set fire", async () => {
      const watcher = await connect();
      const writer = await connect();
      const events: string[] = [];
      const record = (name: string) => (event: WatchedEvent) => events.push(`${name}:${event.type}:${event.path}`);
      // ZooKeeper sets no watch for a get or a listing of a missing node.
      await rejectsWithCode(watcher.get("/refused", { watch: record("get") }), RegistryErrorCode.NO_NODE);
      await rejectsWithCode(watcher.children("/refused", { watch: record("children") }), RegistryErrorCode.NO_NODE);
      assert.equal(await watcher.exists("/refused", { watch: record("exists") }), undefined);
      await writer.create("/refused", "");
      await writer.create("/refused/child", "");
      await until(() => events.length >= 1, 10_000, "the exists watch");
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(events, [`exists:${EventType.NODE_CREATED}:/refused`]);
      // A refused read does not take away the watch a later read of the same callback set (pipelined).
      const same = record("same");
      const refused = watcher.get("/later", { watch: same });
      const created = watcher.create("/later", "1");
      const got = watcher.get("/later", { watch: same });
      await rejectsWithCode(refused, RegistryErrorCode.NO_NODE);
      await created;
      await got;
      await writer.set("/later", "2");
      await until(() => events.length >= 2, 10_000, "the second get's watch");
      assert.deepEqual(events.slice(1), [`same:${EventType.NODE_DATA_CHANGED}:/later`]);
    });

    await t.step("a ZooKeeper restart within the session timeout resumes the session and its watches", async () => {
      const client = await connect("", { recreateEphemerals: true });
      await client.create("/restart", "");
      await client.create("/restart/eph", "e", { nodeType: NodeType.EPHEMERAL });
      const sessionEvents: string[] = [];
      client.onSessionEvent((event) => sessionEvents.push(event.type));
      const events: WatchedEvent[] = [];
      await client.children("/restart", { watch: (event) => events.push(event) });
      const sessionId = client.sessionId;
      await zk.kill();
      await until(() => sessionEvents.includes("disconnected"), 10_000, "the disconnect");
      await zk.restart();
      await until(() => sessionEvents.includes("connected"), 20_000, "the reconnect");
      assert.equal(client.sessionId, sessionId, "the same session");
      assert.ok(!sessionEvents.includes("expired"));
      assert.equal(decode((await client.get("/restart/eph")).data), "e");
      const writer = await connect();
      await writer.create("/restart/new", "");
      await until(() => events.length === 1, 10_000, "the re-registered watch");
      assert.equal(events[0]!.type, EventType.NODE_CHILDREN_CHANGED);
    });

    await t.step("after an expiry: a new session, ephemeral nodes re-created, watchers told to re-read", async () => {
      const client = await connect("", { recreateEphemerals: true });
      await client.create("/expiry", "");
      await client.create("/expiry/provider", "127.0.0.1:1", { nodeType: NodeType.EPHEMERAL });
      const events: WatchedEvent[] = [];
      await client.children("/expiry", { watch: (event) => events.push(event) });
      const sessionEvents: string[] = [];
      client.onSessionEvent((event) => sessionEvents.push(event.type));
      const oldSession = client.sessionId;
      // The classic way to expire a session on purpose: resume it elsewhere and close it there.
      const thief = await ZooKeeperRegistry.connect(zk.connectString, {
        loop,
        session: { id: client.sessionId, password: client.sessionPassword },
      });
      assert.equal(thief.sessionId, oldSession);
      await thief.close();
      await until(() => sessionEvents.includes("expired"), 10_000, "the expiry");
      await until(() => client.sessionId !== 0n && client.sessionId !== oldSession, 10_000, "the new session");
      await until(() => events.some((event) => event.type === 0), 10_000, "the type-0 watch event");
      const observer = await connect();
      await until(
        async () => (await observer.exists("/expiry/provider")) !== undefined,
        10_000,
        "the re-created ephemeral node",
      );
      const stat = await observer.exists("/expiry/provider");
      assert.equal(stat?.ephemeralOwner, client.sessionId);
    });

    await t.step(
      "a connection lost while ephemeral nodes are re-created after an expiry: the rest are re-created on the resumed session",
      async () => {
        const zkAddress = InetAddress.parse(zk.connectString);
        const proxy = await PartitionProxy.start(loop, zkAddress, zkAddress);
        try {
          const client = await ZooKeeperRegistry.connect(proxy.tcpAddress.toString(), {
            loop,
            sessionTimeoutMs: 4000,
            recreateEphemerals: true,
          });
          open.push(client);
          await client.create("/recover", "");
          const names = ["a", "b", "c", "d"];
          for (const name of names) await client.create(`/recover/${name}`, name, { nodeType: NodeType.EPHEMERAL });
          const oldSession = client.sessionId;
          let dropped = false;
          client.onSessionEvent((event) => {
            // The new session's recovery starts right after this event: cut its connection under it.
            if (event.type === "connected" && !event.resumed && !dropped) {
              dropped = true;
              proxy.dropConnections();
            }
          });
          const thief = await ZooKeeperRegistry.connect(zk.connectString, {
            loop,
            session: { id: client.sessionId, password: client.sessionPassword },
          });
          await thief.close();
          await until(() => dropped, 10_000, "the new session");
          const observer = await connect();
          await until(
            async () => {
              const session = client.sessionId;
              if (session === 0n || session === oldSession) return false;
              for (const name of names) {
                const stat = await observer.exists(`/recover/${name}`);
                if (stat?.ephemeralOwner !== session) return false;
              }
              return true;
            },
            10_000,
            "every ephemeral node on the new session",
          );
        } finally {
          await proxy.close();
        }
      },
    );

    for (const tcp of ["hold", "drop"] as const) {
      await t.step(
        `a partition (TCP bytes ${
          tcp === "hold" ? "held" : "dropped"
        }) longer than the session: after the heal, expired, a new session, the ephemeral node back, watchers told`,
        async () => {
          const zkAddress = InetAddress.parse(zk.connectString);
          const proxy = await PartitionProxy.start(loop, zkAddress, zkAddress);
          try {
            // ZooKeeper's shortest session at this tick (2 ticks: 400 ms).
            const cut = await ZooKeeperRegistry.connect(proxy.tcpAddress.toString(), {
              loop,
              sessionTimeoutMs: 400,
              recreateEphemerals: true,
            });
            open.push(cut);
            const observer = await connect();
            await observer.create(`/part-${tcp}`, "").catch(() => {});
            const path = `/part-${tcp}/eph`;
            await cut.create(path, "payload", { nodeType: NodeType.EPHEMERAL });
            const watched: WatchedEvent[] = [];
            await cut.exists(`/part-${tcp}/other`, { watch: (event) => watched.push(event) });
            const events: string[] = [];
            cut.onSessionEvent((event) =>
              events.push(event.type === "connected" ? `connected:${event.resumed}` : event.type)
            );
            const oldSession = cut.sessionId;
            proxy.partition({ tcp });
            await until(
              async () => (await observer.exists(path)) === undefined,
              10_000,
              "ZooKeeper to expire the session",
            );
            assert.ok(!events.includes("expired"), "nothing can tell the client during the partition");
            proxy.heal();
            await until(
              async () => {
                const stat = await observer.exists(path);
                return stat !== undefined && cut.sessionId !== 0n && stat.ephemeralOwner === cut.sessionId;
              },
              10_000,
              "the ephemeral node on the new session",
            );
            assert.notEqual(cut.sessionId, oldSession);
            const expiredAt = events.indexOf("expired");
            assert.ok(expiredAt >= 0, `events: ${events.join(", ")}`);
            assert.equal(events.lastIndexOf("expired"), expiredAt, "the expiry path ran once");
            assert.ok(events.indexOf("connected:false", expiredAt) > expiredAt, `events: ${events.join(", ")}`);
            assert.equal(decode((await observer.get(path)).data), "payload");
            assert.deepEqual(watched.map((event) => `${event.type}:${event.path}`), [`0:/part-${tcp}/other`]);
          } finally {
            await proxy.close();
          }
        },
      );
    }

    await t.step(
      "a hung server (bytes held) costs the session nothing: the read timeout moves it to the next server",
      async () => {
        const zkAddress = InetAddress.parse(zk.connectString);
        const proxies = [
          await PartitionProxy.start(loop, zkAddress, zkAddress),
          await PartitionProxy.start(loop, zkAddress, zkAddress),
        ];
        try {
          const client = await ZooKeeperRegistry.connect(proxies.map((p) => p.tcpAddress.toString()).join(","), {
            loop,
            sessionTimeoutMs: 4000,
          });
          open.push(client);
          const events: string[] = [];
          client.onSessionEvent((event) => events.push(event.type));
          const observer = await connect();
          await observer.create("/hung", "").catch(() => {});
          await client.create("/hung/eph", "", { nodeType: NodeType.EPHEMERAL });
          const session = client.sessionId;
          const hung = proxies.find((p) => p.tcpAddress.toString() === client.server?.toString())!;
          hung.partition({ tcp: "hold" });
          // Past 1.5x the session timeout the node must still be there, owned by the same session, on the other server.
          const until15 = performance.now() + 6000;
          while (performance.now() < until15) {
            assert.equal((await observer.exists("/hung/eph"))?.ephemeralOwner, session, `events: ${events.join(", ")}`);
            await new Promise((resolve) => setTimeout(resolve, 200));
          }
          assert.equal(client.sessionId, session);
          assert.ok(!events.includes("expired"), `events: ${events.join(", ")}`);
          assert.notEqual(client.server?.toString(), hung.tcpAddress.toString(), "moved to the other server");
          assert.deepEqual(await client.children("/hung"), ["eph"]);
          hung.heal();
        } finally {
          for (const proxy of proxies) await proxy.close();
        }
      },
    );

    await t.step(
      "session events: connected, disconnected and resumed on a dropped connection, closed last",
      async () => {
        const zkAddress = InetAddress.parse(zk.connectString);
        const proxy = await PartitionProxy.start(loop, zkAddress, zkAddress);
        try {
          const client = await ZooKeeperRegistry.connect(proxy.tcpAddress.toString(), { loop, sessionTimeoutMs: 4000 });
          const events: string[] = [];
          client.onSessionEvent((event) =>
            events.push(event.type === "connected" ? `connected:${event.resumed}` : event.type)
          );
          const watched: WatchedEvent[] = [];
          await client.exists("/events-later", { watch: (event) => watched.push(event) });
          const session = client.sessionId;
          await proxy.dropConnections();
          await until(() => events.includes("connected:true"), 10_000, "the resumption");
          assert.equal(client.sessionId, session);
          // The watch was re-registered (SetWatches), not dropped: it fires on the change it waits for.
          const writer = await connect();
          await writer.create("/events-later", "");
          await until(() => watched.length === 1, 10_000, "the re-registered watch");
          assert.deepEqual(watched[0], { type: EventType.NODE_CREATED, path: "/events-later" });
          await client.close();
          assert.deepEqual(events, ["disconnected", "connected:true", "closed"]);
          await rejectsWithCode(client.get("/"), RegistryErrorCode.CLOSED);
        } finally {
          await proxy.close();
        }
      },
    );

    await t.step("a protected sequential create whose answer is cut off N times makes exactly N nodes", async () => {
      const zkAddress = InetAddress.parse(zk.connectString);
      const proxy = await CutProxy.start(loop, zkAddress, ZOOKEEPER_CREATES);
      try {
        const client = await connect("", {});
        const cut = await ZooKeeperRegistry.connect(proxy.address.toString(), { loop, sessionTimeoutMs: 4000 });
        open.push(cut);
        await client.create("/protected", "");
        const session = cut.sessionId;
        const made: string[] = [];
        for (let i = 0; i < 3; i++) {
          proxy.cutAfterReply();
          made.push(
            await cut.create("/protected/item-", `${i}`, {
              nodeType: NodeType.EPHEMERAL,
              sequential: true,
              protected: true,
            }),
          );
        }
        assert.equal(proxy.cuts, 3);
        assert.equal(cut.sessionId, session, "each cut was a lost connection, resumed");
        const children = await client.children("/protected");
        assert.deepEqual(made.map((path) => path.slice("/protected/".length)).sort(), children);
        for (const name of children) {
          assert.match(name, /^_p_[0-9a-f-]{36}-item-\d{10}$/);
          assert.equal((await client.exists(`/protected/${name}`))?.ephemeralOwner, session);
        }
      } finally {
        await proxy.close();
      }
    });

    await t.step("the registry CLI works against ZooKeeper with --zookeeper", async () => {
      const cli = async (...words: string[]) => {
        const output = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            new URL("../cli.ts", import.meta.url).pathname,
            "--zookeeper",
            zk.connectString,
            ...words,
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        return { code: output.code, out: decode(output.stdout).trim(), err: decode(output.stderr).trim() };
      };
      assert.deepEqual(await cli("create", "/cli", "hello"), { code: 0, out: "Created /cli", err: "" });
      assert.equal((await cli("get", "/cli")).out, "hello");
      assert.match((await cli("ls", "/")).out, /^\[.*\bcli\b.*\]$/);
      assert.match((await cli("stat", "/cli")).out, /dataLength: 5/);
      const missing = await cli("get", "/nope");
      assert.equal(missing.code, 1);
      assert.match(missing.err, /NO_NODE/);
      assert.equal((await cli("exists", "/nope")).code, 1);
      const both = await cli("--server", "127.0.0.1:1", "ls", "/");
      assert.equal(both.code, 2);
    });

    await t.step("a connect string with a dead server first moves on to a live one", async () => {
      const client = await connect("", {});
      const multi = await ZooKeeperRegistry.connect(`127.0.0.1:1,${zk.connectString}`, {
        loop,
        connectTimeoutMs: 5000,
      });
      open.push(multi);
      assert.equal(multi.server?.toString(), zk.connectString);
      assert.ok((await multi.children("/")).includes("zookeeper"));
      assert.notEqual(multi.sessionId, client.sessionId);
    });

    await t.step("requests fail with a clear error when ZooKeeper is gone; connect fails in time", async () => {
      await assert.rejects(
        ZooKeeperRegistry.connect("127.0.0.1:1", { loop, connectTimeoutMs: 500 }),
        /Cannot open a ZooKeeper session on 127.0.0.1:1 within 500 ms/,
      );
      const client = await connect("", { requestTimeoutMs: 500 });
      await zk.kill();
      await rejectsWithCode(client.get("/"), RegistryErrorCode.OPERATION_TIMEOUT);
      await zk.restart();
    });
  } finally {
    await Promise.all(open.map((registry) => registry.close().catch(() => {})));
    await zk.stop();
  }
});
