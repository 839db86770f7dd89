// A watch notification that arrives in the same read as the answer that set the watch must not be lost: both
// registry clients hold a watch before its request is written. Each test plays a server that writes the answer and
// the notification in one write (a real server may; ZooKeeper often does), so it fails every time if a client ever
// registers its watch after the answer's `await` again.
import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { decodeClientFrame, encodeServerFrame, type ServerFrame } from "../_codec.ts";
import { JuteReader, JuteWriter } from "../zookeeper/_jute.ts";
import { EventType, type WatchedEvent } from "../registry.ts";
import { RegistryClient } from "./registry_client.ts";
import { ZooKeeperRegistry } from "../zookeeper/zookeeper_registry.ts";
import { FrameReader, lengthPrefixed, writeAll } from "../testdata/raw_frames.ts";

/** Waits for the first watch event, or fails after `ms`. */
function firstEvent(ms: number): { watch: (event: WatchedEvent) => void; event: Promise<WatchedEvent> } {
  const { promise, resolve, reject } = Promise.withResolvers<WatchedEvent>();
  const timer = setTimeout(() => reject(new Error(`no watch event within ${ms} ms: the notification was lost`)), ms);
  return {
    watch: (event) => {
      clearTimeout(timer);
      resolve(event);
    },
    event: promise,
  };
}

Deno.test("ZooKeeperRegistry keeps a children watch whose notification comes in the same read as the answer", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await listener.accept();
    const frames = new FrameReader(conn);
    const connect = new JuteReader(await frames.next());
    connect.int(); // protocol version
    connect.long(); // last zxid
    connect.int(); // timeout asked
    // A session, with a long timeout so no ping comes in between.
    const session = new JuteWriter().int(0).int(30_000).long(0x1234n).buffer(new Uint8Array(16)).bool(false);
    await writeAll(conn, session.packet());
    const request = new JuteReader(await frames.next());
    const xid = request.int();
    assert.equal(request.int(), 12, "getChildren2");
    assert.equal(request.string(), "/svc");
    assert.equal(request.bool(), true, "asks for a watch");
    const answer = new JuteWriter().int(xid).long(5n).int(0).strings(["a"]);
    for (const size of [8, 8, 8, 8, 4, 4, 4, 8, 4, 4, 8]) {
      if (size === 8) answer.long(0n);
      else answer.int(0);
    }
    const notification = new JuteWriter().int(-1).long(-1n).int(0).int(EventType.NODE_CHILDREN_CHANGED).int(3)
      .string("/svc");
    // One write: the client's reactor hands both packets over in one read.
    const a = answer.packet();
    const n = notification.packet();
    const both = new Uint8Array(a.length + n.length);
    both.set(a);
    both.set(n, a.length);
    await writeAll(conn, both);
    return conn;
  })();
  const registry = await ZooKeeperRegistry.connect(`127.0.0.1:${(listener.addr as Deno.NetAddr).port}`, {
    loop: new EventLoop(),
    sessionTimeoutMs: 30_000,
    requestTimeoutMs: 300, // the close at the end is not answered
  });
  try {
    const { watch, event } = firstEvent(2000);
    assert.deepEqual(await registry.children("/svc", { watch }), ["a"]);
    assert.deepEqual(await event, { type: EventType.NODE_CHILDREN_CHANGED, path: "/svc" });
  } finally {
    const conn = await served;
    await registry.close().catch(() => {});
    conn.close();
    listener.close();
  }
});

Deno.test("RegistryClient keeps a children watch whose notification comes in the same read as the answer", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await listener.accept();
    const frames = new FrameReader(conn);
    const connect = decodeClientFrame(await frames.next());
    const session: ServerFrame = {
      xid: connect.xid,
      zxid: "1",
      connect: {
        sessionId: "4660",
        sessionSecret: new Uint8Array(16),
        sessionTimeoutMs: 30_000,
        heartbeatIntervalMs: 10_000,
        heartbeatPort: 9,
        resumed: false,
        heartbeatCounterFloor: "1",
      },
    };
    await writeAll(conn, lengthPrefixed(encodeServerFrame(session)));
    let request = decodeClientFrame(await frames.next());
    while (request.children === undefined) request = decodeClientFrame(await frames.next()); // a ping, say
    assert.equal(request.children.path, "/svc");
    assert.equal(request.children.watch, true);
    const answer: ServerFrame = { xid: request.xid, zxid: "5", children: { children: ["a"] } };
    const event: ServerFrame = { xid: 0, zxid: "6", event: { type: EventType.NODE_CHILDREN_CHANGED, path: "/svc" } };
    await writeAll(conn, lengthPrefixed(encodeServerFrame(answer), encodeServerFrame(event)));
    return conn;
  })();
  const client = await RegistryClient.connect(`127.0.0.1:${(listener.addr as Deno.NetAddr).port}`, {
    loop: new EventLoop(),
    requestTimeoutMs: 300, // the close at the end is not answered
  });
  try {
    const { watch, event } = firstEvent(2000);
    assert.deepEqual(await client.children("/svc", { watch }), ["a"]);
    assert.deepEqual(await event, { type: EventType.NODE_CHILDREN_CHANGED, path: "/svc" });
  } finally {
    const conn = await served;
    await client.close().catch(() => {});
    conn.close();
    listener.close();
  }
});
