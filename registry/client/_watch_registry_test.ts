import assert from "node:assert/strict";
import { WatchRegistry } from "./_watch_registry.ts";
import { EventType, type WatchedEvent } from "../registry.ts";

Deno.test("WatchRegistry fires each kind by ZooKeeper's rules, once", () => {
  const watches = new WatchRegistry("test");
  const seen: string[] = [];
  const record = (name: string) => (event: WatchedEvent) => seen.push(`${name}:${event.type}:${event.path}`);
  watches.add("data", "/a", record("data"));
  watches.add("exist", "/a", record("exist"));
  watches.add("child", "/a", record("child"));
  watches.trigger(EventType.NODE_CHILDREN_CHANGED, "/a");
  watches.trigger(EventType.NODE_CHILDREN_CHANGED, "/a"); // one-shot: nothing left for children
  watches.trigger(EventType.NODE_DATA_CHANGED, "/b"); // another path
  assert.deepEqual(seen, ["child:4:/a"]);
  watches.trigger(EventType.NODE_DATA_CHANGED, "/a");
  assert.deepEqual(seen, ["child:4:/a", "data:3:/a", "exist:3:/a"]);
  assert.equal(watches.size, 0);
  watches.add("data", "/d", record("data"));
  watches.add("child", "/d", record("child"));
  watches.trigger(EventType.NODE_DELETED, "/d");
  assert.deepEqual(seen.slice(3), ["data:2:/d", "child:2:/d"]);
});

Deno.test("WatchRegistry resync tells every watcher type 0 in registration order and forgets them", () => {
  const watches = new WatchRegistry("test");
  const seen: string[] = [];
  const once = (event: WatchedEvent) => seen.push(`once:${event.type}:${event.path}`);
  watches.add("child", "/x", (event) => seen.push(`child:${event.type}:${event.path}`));
  watches.add("data", "/y", once);
  watches.add("data", "/y", once); // the same callback twice is held once
  watches.add("exist", "/z", () => {
    throw new Error("a throwing watcher does not stop the others");
  });
  watches.add("data", "/w", (event) => seen.push(`last:${event.type}:${event.path}`));
  assert.deepEqual(watches.paths("data"), ["/y", "/w"]);
  assert.deepEqual(watches.paths("exist"), ["/z"]);
  watches.resync();
  assert.deepEqual(seen, ["child:0:/x", "once:0:/y", "last:0:/w"]);
  assert.equal(watches.size, 0);
  watches.trigger(EventType.NODE_DATA_CHANGED, "/y");
  assert.equal(seen.length, 3);
});

Deno.test("WatchRegistry holds a read's watch by how the read ended, whatever other reads of it did", () => {
  const watches = new WatchRegistry("test");
  const seen: string[] = [];
  const callback = (event: WatchedEvent) => seen.push(`${event.type}:${event.path}`);
  // Refused alone: let go of.
  watches.hold("data", "/a", callback)("refused");
  assert.equal(watches.size, 0);
  // Two reads of the same callback: the refused one does not take away what the answered one set, in either order.
  for (const order of [["refused", "armed"], ["armed", "refused"]] as const) {
    const first = watches.hold("data", "/b", callback);
    const second = watches.hold("data", "/b", callback);
    first(order[0]);
    second(order[1]);
    watches.trigger(EventType.NODE_DATA_CHANGED, "/b");
  }
  assert.deepEqual(seen, ["3:/b", "3:/b"]);
  // Unknown (a lost connection, a timeout): kept, as the server may hold it.
  watches.hold("child", "/c", callback)("unknown");
  assert.deepEqual(watches.paths("child"), ["/c"]);
  // Fired by an earlier watch's event before its answer came: held again, since the server set it anew.
  const late = watches.hold("data", "/c", callback);
  watches.trigger(EventType.NODE_DATA_CHANGED, "/c");
  late("armed");
  watches.trigger(EventType.NODE_DATA_CHANGED, "/c");
  assert.deepEqual(seen.slice(2), ["3:/c", "3:/c"]);
  // But not after a resync: the session that set it is gone.
  const stale = watches.hold("data", "/d", callback);
  watches.resync();
  stale("armed");
  assert.deepEqual(watches.paths("data"), []);
  // Settling twice counts once.
  const twice = watches.hold("data", "/e", callback);
  const other = watches.hold("data", "/e", callback);
  twice("refused");
  twice("refused");
  other("refused");
  assert.equal(watches.paths("data").length, 0);
});
