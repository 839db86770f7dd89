import assert from "node:assert/strict";
import { EventLoop } from "../../reactor/event_loop.ts";
import { SessionTracker } from "./session_tracker.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Periods of 100 ms and checks halfway between two due times: a loaded machine's late timers stay inside the margins.
Deno.test("SessionTracker: signs of life keep a session; silence expires it after max misses of one period each", async () => {
  const loop = new EventLoop();
  const expired: Array<{ id: bigint; at: number }> = [];
  const tracker = new SessionTracker(loop, {
    heartbeatTimeoutMs: 100,
    heartbeatMaxCount: 3,
    graceMs: 50,
    onExpire: (id) => expired.push({ id, at: performance.now() }),
  });
  tracker.add(1n);
  tracker.add(2n);
  // Session 1 shows signs of life every 20 ms for 600 ms (several periods): it never misses.
  const until = performance.now() + 600;
  while (performance.now() < until) {
    tracker.touch(1n);
    assert.equal(tracker.misses(1n), 0);
    await sleep(20);
  }
  assert.deepEqual(expired.map((e) => e.id), [2n], "the silent session expired, the live one did not");
  // Silent from now: misses one grace and one period after the last sign (150 ms), then every period (250, 350).
  const lastSign = performance.now();
  tracker.touch(1n);
  await sleep(200);
  assert.equal(tracker.misses(1n), 1);
  while (expired.length < 2 && performance.now() - lastSign < 2000) await sleep(10);
  const after = expired[1]!.at - lastSign;
  assert.ok(after >= 350 && after < 700, `expired ${after.toFixed(0)} ms after its last sign (350 expected)`);
  assert.equal(tracker.size, 0);
  assert.equal(tracker.touch(1n), false, "an expired session is unknown");
  tracker.clear();
});

Deno.test("SessionTracker: a sign of life after misses starts the count over", async () => {
  const loop = new EventLoop();
  const expired: bigint[] = [];
  const tracker = new SessionTracker(loop, {
    heartbeatTimeoutMs: 100,
    heartbeatMaxCount: 3,
    onExpire: (id) => expired.push(id),
  });
  tracker.add(7n);
  await sleep(250);
  assert.equal(tracker.misses(7n), 2);
  tracker.touch(7n); // one more miss would have expired it
  assert.equal(tracker.misses(7n), 0);
  await sleep(150); // the next miss is due 100 ms after the sign (the timer armed before it starts over first)
  assert.equal(tracker.misses(7n), 1);
  assert.deepEqual(expired, []);
  tracker.remove(7n);
  await sleep(250);
  assert.deepEqual(expired, [], "a removed session does not expire");
});
