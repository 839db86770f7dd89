import assert from "node:assert/strict";
import { type HostTimer, type TimerId, TimerQueue } from "./timer_queue.ts";
import { needs } from "./testdata/permissions.ts";
import { until } from "./testdata/until.ts";

/** A host timer that records how many host timers are armed at once, over the real setTimeout. */
function countingHostTimer(): HostTimer & { readonly maxArmed: number; readonly armed: number; readonly sets: number } {
  let armed = 0;
  let maxArmed = 0;
  let sets = 0;
  const live = new Set<ReturnType<typeof setTimeout>>();
  return {
    set(callback, delayMs) {
      sets++;
      armed++;
      maxArmed = Math.max(maxArmed, armed);
      const handle = setTimeout(() => {
        live.delete(handle);
        armed--;
        callback();
      }, delayMs);
      live.add(handle);
      return handle;
    },
    clear(handle) {
      if (live.delete(handle as ReturnType<typeof setTimeout>)) armed--;
      clearTimeout(handle as ReturnType<typeof setTimeout>);
    },
    get maxArmed() {
      return maxArmed;
    },
    get armed() {
      return armed;
    },
    get sets() {
      return sets;
    },
  };
}

Deno.test("TimerQueue fires timers in expiry order, ties in insertion order", async () => {
  const queue = new TimerQueue();
  const fired: string[] = [];
  queue.add(() => fired.push("c30"), 30);
  queue.add(() => fired.push("a10"), 10);
  queue.add(() => fired.push("b20"), 20);
  queue.add(() => fired.push("a10-second"), 10);
  queue.add(() => fired.push("zero"), 0);
  await until(() => fired.length === 5);
  assert.deepEqual(fired, ["zero", "a10", "a10-second", "b20", "c30"]);
  assert.equal(queue.size, 0);
  assert.equal(queue.armed, false);
});

Deno.test("TimerQueue does not fire a timer before its delay", async () => {
  const queue = new TimerQueue();
  const start = performance.now();
  let firedAt = 0;
  queue.add(() => firedAt = performance.now(), 40);
  await until(() => firedAt > 0);
  assert.ok(firedAt - start >= 39, `fired after ${firedAt - start} ms`);
});

Deno.test("TimerQueue cancel stops a pending timer and leaves no host timer armed", async () => {
  const host = countingHostTimer();
  const queue = new TimerQueue({ hostTimer: host });
  let fired = false;
  const id = queue.add(() => fired = true, 10);
  assert.equal(queue.cancel(id), true);
  assert.equal(queue.cancel(id), false);
  // Another queue's timer is not this queue's to cancel.
  const other = new TimerQueue({ hostTimer: countingHostTimer() });
  const foreign = other.add(() => {}, 10);
  assert.equal(queue.cancel(foreign), false);
  assert.equal(other.cancel(foreign), true);
  assert.equal(queue.size, 0);
  assert.equal(host.armed, 0);
  await new Promise((resolve) => setTimeout(resolve, 25));
  assert.equal(fired, false);
});

Deno.test("TimerQueue cancel of one timer keeps the others", async () => {
  const queue = new TimerQueue();
  const fired: number[] = [];
  const ids = [1, 2, 3, 4, 5].map((n) => queue.add(() => fired.push(n), n * 3));
  queue.cancel(ids[0]!);
  queue.cancel(ids[2]!);
  await until(() => fired.length === 3);
  assert.deepEqual(fired, [2, 4, 5]);
});

Deno.test("TimerQueue runs a repeating timer until it cancels itself", async () => {
  const queue = new TimerQueue();
  let count = 0;
  const id = queue.add(
    () => {
      count++;
      if (count === 4) queue.cancel(id);
    },
    5,
    5,
  );
  await until(() => count === 4);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(count, 4);
  assert.equal(queue.size, 0);
  assert.equal(queue.armed, false);
});

Deno.test("TimerQueue keeps running when a callback throws", async () => {
  const errors: unknown[] = [];
  const queue = new TimerQueue({ onError: (error) => errors.push(error) });
  let after = false;
  queue.add(() => {
    throw new Error("boom");
  }, 1);
  queue.add(() => after = true, 2);
  await until(() => after);
  assert.equal(errors.length, 1);
  assert.match(String(errors[0]), /boom/);
});

Deno.test("TimerQueue runs 10,000 timers with one host timer armed at a time", async () => {
  const host = countingHostTimer();
  // Freeze the clock while adding, so every timer's expiry is exactly start + delay and the order is known.
  let frozenMs: number | undefined = performance.now();
  const queue = new TimerQueue({ hostTimer: host, nowMs: () => frozenMs ?? performance.now() });
  const fired: number[] = [];
  const count = 10_000;
  // Delays in a scrambled order, so the heap does real work; the expected order is by delay, then insertion.
  const delays = Array.from({ length: count }, (_, i) => (i * 7919) % 50);
  delays.forEach((delay, i) => queue.add(() => fired.push(i), delay));
  frozenMs = undefined;
  assert.equal(queue.size, count);
  assert.equal(host.maxArmed, 1);
  await until(() => fired.length === count, 5000);
  assert.equal(host.maxArmed, 1);
  assert.ok(host.sets < 200, `armed the host timer ${host.sets} times for ${count} timers`);
  const expected = delays.map((delay, i) => ({ delay, i })).sort((a, b) => a.delay - b.delay || a.i - b.i);
  // Timers due in the same wake-up run in heap order, which is exactly (delay, insertion).
  assert.deepEqual(fired, expected.map((e) => e.i));
  assert.equal(host.armed, 0);
});

Deno.test("TimerQueue cancel of 100,000 timers is fast (indexed heap)", () => {
  const queue = new TimerQueue();
  const ids: TimerId[] = [];
  const start = performance.now();
  for (let i = 0; i < 100_000; i++) ids.push(queue.add(() => {}, 60_000 + (i % 1000)));
  for (let i = ids.length - 1; i >= 0; i -= 2) queue.cancel(ids[i]!);
  assert.equal(queue.size, 50_000);
  queue.clear();
  assert.equal(queue.size, 0);
  assert.equal(queue.armed, false);
  const elapsedMs = performance.now() - start;
  assert.ok(elapsedMs < 2000, `took ${elapsedMs} ms`);
});

Deno.test("TimerQueue rejects non-finite delays with a RangeError naming the option", () => {
  const queue = new TimerQueue();
  assert.throws(() => queue.add(() => {}, NaN), { name: "RangeError", message: /'delayMs'.*NaN/ });
  assert.throws(() => queue.add(() => {}, 1, -5), { name: "RangeError", message: /'intervalMs'.*-5/ });
});

Deno.test("TimerQueue keeps its host timer, unreferenced, while empty, instead of clearing and re-making it", () => {
  const host = countingHostTimer();
  let referenced = true;
  const queue = new TimerQueue({
    hostTimer: {
      set: (callback, delayMs) => {
        referenced = true; // a new host timer keeps the process alive
        return host.set(callback, delayMs);
      },
      clear: (handle) => host.clear(handle),
      setReferenced: (_handle, value) => {
        referenced = value;
        return true;
      },
    },
  });
  // A call's deadline, answered in time, over and over: one host timer for all of them.
  for (let i = 0; i < 100; i++) {
    const id = queue.add(() => {}, 30_000 + i);
    assert.equal(referenced, true);
    queue.cancel(id);
    assert.equal(referenced, false);
    assert.equal(queue.armed, false);
  }
  assert.equal(host.sets, 1);
  assert.equal(host.armed, 1);
  // An earlier timer than the armed one needs a new host timer.
  const early = queue.add(() => {}, 10);
  assert.equal(host.sets, 2);
  assert.equal(referenced, true);
  assert.equal(queue.cancel(early), true);
  queue.clear();
  assert.equal(host.armed, 0);
});

Deno.test(
  "TimerQueue with nothing pending does not keep the process alive (real setTimeout)",
  needs("run"),
  async () => {
    // A process that adds and cancels a long timer must exit at once, not when the host timer would fire.
    const code = `
    import { TimerQueue } from ${JSON.stringify(new URL("./timer_queue.ts", import.meta.url).href)};
    const queue = new TimerQueue();
    queue.cancel(queue.add(() => {}, 60_000));
    console.log("done");
  `;
    const started = performance.now();
    const output = await new Deno.Command(Deno.execPath(), { args: ["eval", code], stdout: "piped" }).output();
    assert.equal(new TextDecoder().decode(output.stdout).trim(), "done");
    assert.ok(performance.now() - started < 20_000, `exited after ${performance.now() - started} ms`);
  },
);

Deno.test("TimerQueue with a timer 2^40 ms away arms one clamped host timer instead of waking every millisecond", async () => {
  const host = countingHostTimer();
  const queue = new TimerQueue({ hostTimer: host });
  let fired = false;
  const id = queue.add(() => fired = true, 2 ** 40);
  await new Promise((resolve) => setTimeout(resolve, 200));
  // Before the clamp the host timer, given 2^40 ms, fired after 1 ms and was re-armed ~200 times here.
  assert.equal(host.sets, 1);
  assert.equal(fired, false);
  assert.equal(queue.size, 1);
  assert.ok(queue.cancel(id));
  queue.clear();
  assert.equal(host.armed, 0);
});

Deno.test("TimerQueue re-arms a clamped host timer on waking and fires the far timer only when due", () => {
  let now = 0;
  const armed: { callback: () => void; delayMs: number }[] = [];
  const host: HostTimer = {
    set: (callback, delayMs) => {
      armed.push({ callback, delayMs });
      return armed.length;
    },
    clear: () => {},
  };
  const queue = new TimerQueue({ hostTimer: host, nowMs: () => now });
  const max = 2 ** 31 - 1;
  let fired = 0;
  queue.add(() => fired++, 3 * max + 5);
  assert.equal(armed.at(-1)!.delayMs, max);
  for (let wake = 1; wake <= 3; wake++) {
    now += max;
    armed.at(-1)!.callback();
    assert.equal(fired, 0, `The far timer fired early at wake-up ${wake}`);
  }
  assert.equal(armed.length, 4);
  assert.equal(armed.at(-1)!.delayMs, 5);
  // A nearer timer added while clamped re-arms for itself.
  queue.add(() => fired += 10, 1);
  assert.equal(armed.at(-1)!.delayMs, 1);
  now += 5;
  armed.at(-1)!.callback();
  assert.equal(fired, 11);
  assert.equal(queue.size, 0);
});

Deno.test("TimerQueue.isPending: until a one-shot has run (inside its callback too), not once cancelled or cleared", async () => {
  const queue = new TimerQueue();
  const other = new TimerQueue();
  let insideCallback: boolean | undefined;
  const ran = Promise.withResolvers<void>();
  const oneShot = queue.add(() => {
    insideCallback = queue.isPending(oneShot);
    ran.resolve();
  }, 1);
  const cancelled = queue.add(() => {}, 10_000);
  const cleared = other.add(() => {}, 10_000);
  assert.equal(queue.isPending(oneShot), true);
  assert.equal(other.isPending(oneShot), false); // another queue's timer
  assert.equal(queue.cancel(cancelled), true);
  assert.equal(queue.isPending(cancelled), false);
  other.clear();
  assert.equal(other.isPending(cleared), false);
  await ran.promise;
  assert.equal(insideCallback, true);
  assert.equal(queue.isPending(oneShot), false);
  assert.equal(queue.size, 0);
});
