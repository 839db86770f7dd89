import assert from "node:assert/strict";
import { EventLoop } from "./event_loop.ts";

Deno.test("EventLoop queueInLoop runs after the current callback, in FIFO order", async () => {
  const loop = new EventLoop();
  const order: string[] = [];
  loop.queueInLoop(() => order.push("first"));
  loop.queueInLoop(() => {
    order.push("second");
    loop.queueInLoop(() => order.push("queued by second"));
  });
  order.push("caller");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(order, ["caller", "first", "second", "queued by second"]);
});

Deno.test("EventLoop runInLoop runs at once", () => {
  const loop = new EventLoop();
  let ran = false;
  loop.runInLoop(() => ran = true);
  assert.equal(ran, true);
});

Deno.test("EventLoop loop resolves on quit and quit cancels pending timers", async () => {
  const loop = new EventLoop();
  let late = false;
  loop.runAfter(10_000, () => late = true);
  loop.runAfter(5, () => loop.quit());
  assert.equal(loop.timerCount, 2);
  const looping = loop.loop();
  assert.equal(loop.looping, true);
  await looping;
  assert.equal(loop.looping, false);
  assert.equal(loop.quitting, true);
  assert.equal(loop.timerCount, 0);
  assert.equal(late, false);
});

Deno.test("EventLoop loop rejects when already looping", async () => {
  const loop = new EventLoop({ name: "twice" });
  const first = loop.loop();
  await assert.rejects(loop.loop(), { name: "TypeError", message: /'twice' as it is already looping/ });
  loop.quit();
  await first;
});

Deno.test("EventLoop runAt, runAfter and runEvery fire in time order; cancel stops them", async () => {
  const loop = new EventLoop();
  const fired: string[] = [];
  loop.runAt(loop.now() + 30, () => fired.push("at30"));
  loop.runAfter(10, () => fired.push("after10"));
  const cancelled = loop.runAfter(20, () => fired.push("cancelled"));
  let ticks = 0;
  const every = loop.runEvery(8, () => {
    ticks++;
    if (ticks === 3) loop.cancel(every);
  });
  assert.equal(loop.cancel(cancelled), true);
  loop.runAfter(60, () => loop.quit());
  await loop.loop();
  assert.deepEqual(fired, ["after10", "at30"]);
  assert.equal(ticks, 3);
});

Deno.test("EventLoop survives a throwing timer and a throwing queued functor", async () => {
  const loop = new EventLoop();
  let after = 0;
  loop.queueInLoop(() => {
    throw new Error("queued boom");
  });
  loop.queueInLoop(() => after++);
  loop.runAfter(1, () => {
    throw new Error("timer boom");
  });
  loop.runAfter(3, () => {
    after++;
    loop.quit();
  });
  await loop.loop();
  assert.equal(after, 2);
});

Deno.test("EventLoop runEvery rejects a non-positive interval with a RangeError naming it", () => {
  const loop = new EventLoop();
  assert.throws(() => loop.runEvery(0, () => {}), { name: "RangeError", message: /'intervalMs'.*0/ });
});

Deno.test("EventLoop.current returns one loop per isolate", () => {
  assert.equal(EventLoop.current(), EventLoop.current());
});
