import assert from "node:assert/strict";
import { EventLoop } from "../reactor/event_loop.ts";
import {
  DeadlineLane,
  inLane,
  laneDeadline,
  type LaneEntry,
  laneExpire,
  laneNext,
  lanePrev,
} from "./_deadline_lane.ts";

interface Entry extends LaneEntry {
  expiredAtMs: number | undefined;
}

function entry(deadlineMs: number, onExpire: (self: Entry) => void = () => {}): Entry {
  const self: Entry = {
    [laneDeadline]: deadlineMs,
    [laneNext]: undefined,
    [lanePrev]: undefined,
    [inLane]: false,
    expiredAtMs: undefined,
    [laneExpire]: () => {
      self.expiredAtMs = performance.now();
      onExpire(self);
    },
  };
  return self;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("DeadlineLane expires its entries in deadline order, each once and not early; removed ones never", async () => {
  const loop = new EventLoop();
  const lane = new DeadlineLane(loop, 20);
  const order: number[] = [];
  const start = loop.now();
  const entries = [10, 20, 30, 40].map((offset, i) => entry(start + offset, () => order.push(i)));
  for (const e of entries) lane.add(e);
  lane.add(entries[0]!); // twice: no effect
  lane.remove(entries[1]!);
  await sleep(300);
  assert.deepEqual(order, [0, 2, 3]);
  for (const i of [0, 2, 3]) {
    assert.ok(entries[i]!.expiredAtMs! >= entries[i]![laneDeadline], `entry ${i} expired early`);
  }
  assert.equal(entries[1]!.expiredAtMs, undefined);
  assert.ok(lane.empty);
  assert.equal(loop.timerCount, 0);
});

Deno.test("DeadlineLane expires an entry added out of order at its own deadline, not the later head's", async () => {
  const loop = new EventLoop();
  const lane = new DeadlineLane(loop, 20);
  const start = loop.now();
  const late = entry(start + 5000);
  const early = entry(start + 10);
  lane.add(late);
  lane.add(early);
  await sleep(300);
  assert.ok(early.expiredAtMs !== undefined, "the earlier entry waited for the later head");
  assert.equal(late.expiredAtMs, undefined);
  lane.remove(late);
  assert.equal(loop.timerCount, 0);
});

Deno.test("DeadlineLane keeps no timer while empty, and its timer moves on when the head leaves", async () => {
  const loop = new EventLoop();
  const lane = new DeadlineLane(loop, 20);
  const start = loop.now();
  const first = entry(start + 10);
  const second = entry(start + 1000);
  lane.add(first);
  lane.add(second);
  assert.equal(loop.timerCount, 1);
  lane.remove(first);
  await sleep(50); // the timer armed for `first` fires early and is armed again for `second`
  assert.equal(second.expiredAtMs, undefined);
  assert.equal(loop.timerCount, 1);
  await sleep(Math.max(0, second[laneDeadline] - loop.now()) + 300);
  assert.ok(second.expiredAtMs! >= second[laneDeadline]);
  assert.equal(loop.timerCount, 0);
  const third = entry(loop.now() + 1000);
  lane.add(third);
  lane.remove(third);
  assert.equal(loop.timerCount, 0);
});

Deno.test("DeadlineLane still expires entries after the loop's quit dropped its timer", async () => {
  const loop = new EventLoop();
  const lane = new DeadlineLane(loop, 20);
  const stuck = entry(loop.now() + 10);
  lane.add(stuck);
  loop.quit(); // drops every timer, the lane's among them
  const fresh = entry(loop.now() + 10);
  lane.add(fresh);
  await sleep(300);
  assert.ok(stuck.expiredAtMs !== undefined && fresh.expiredAtMs !== undefined);
});

Deno.test("DeadlineLane: an expiring entry that throws or adds an entry does not hold up the others", async () => {
  const loop = new EventLoop();
  const lane = new DeadlineLane(loop, 20);
  const start = loop.now();
  let added: Entry | undefined;
  const throwing = entry(start + 5, () => {
    throw new Error("expire threw");
  });
  // Adds an entry due long after the one behind it: the lane's timer must still come back for that one first.
  const adding = entry(start + 5, () => lane.add(added = entry(loop.now() + 5000)));
  const next = entry(start + 25);
  lane.add(throwing);
  lane.add(adding);
  lane.add(next);
  await sleep(300);
  assert.ok(throwing.expiredAtMs !== undefined && adding.expiredAtMs !== undefined);
  assert.ok(next.expiredAtMs !== undefined, "the entry behind the added one waited for it");
  assert.ok(added![inLane]);
  lane.remove(added!);
  assert.equal(loop.timerCount, 0);
});
