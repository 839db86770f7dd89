/**
 * The streaming service the adversarial stream tests serve (streaming_trust_test.ts,
 * streaming_trust_load_test.ts), in one module so a provider in this process, on Worker threads
 * (`registerServices`) or in a child process (`deno run -A stream_feed.ts`, which prints `READY <address>` and
 * serves until killed) behaves the same. The service is test.Feed (feed_service.ts). Each handler's behaviour is
 * chosen by the request (Watch) or the metadata key `mode` (Upload, Chat), and counts what it produced and took in
 * {@linkcode FeedCounters}, which Say reports.
 */

import { EventLoop } from "../../reactor/event_loop.ts";
import { type CallContext, RpcProvider, type RpcProviderOptions } from "../rpc_provider.ts";
import { FEED, type Msg } from "./feed_service.ts";

// One value per isolate: each Worker of a provider with threads loads this module afresh.
const isolateId = crypto.randomUUID();

/** What the handlers did, for assertions on the provider's side. */
export interface FeedCounters {
  /** Messages Watch "flood" yielded (counted before each yield). */
  produced: number;
  /** Messages Upload "slow" took from the caller. */
  taken: number;
  /**
   * Handlers of the modes that run until aborted ("flood", "tick", "hold", "read-then-hold", "slow") whose body
   * started and whose `finally` has not run yet: 0 once every such stream ended and was cleaned up.
   */
  running: number;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });

// Until the stream is aborted (cancel, deadline, drain's end, protocol error, connection lost).
const aborted = (signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });

/**
 * The handlers, counting into `counters`:
 *
 * - Say: answers its text (or, for "who", an id of the isolate serving it) with the counters (`running` as `n`).
 * - Watch, by `text`: "flood" yields messages of `n` bytes as fast as the caller's credit lets it, until aborted;
 *   "count" yields `n` messages numbered 0..n-1, then ends; "tick" yields one message every `n` ms until aborted
 *   (or, when `taken` is set, that many, then ends); "hold" yields nothing until aborted.
 * - Upload, by metadata `mode`: "slow" takes one message per 10 ms; "hold" takes none and waits until aborted;
 *   "read-then-hold" takes all, then waits until aborted; "late" takes none and answers after 50 ms; else takes
 *   all. Answers how many it took.
 * - Chat: echoes each message; with `mode` "hold" reads nothing until aborted; "late" reads nothing and ends
 *   after 50 ms.
 */
export function feedHandlers(counters: FeedCounters): Record<string, unknown> {
  return {
    Say: (request: Msg) => ({
      text: request.text === "who" ? isolateId : request.text,
      n: counters.running,
      produced: counters.produced,
      taken: counters.taken,
    }),
    Watch: async function* (request: Msg, context: CallContext) {
      const signal = context.signal;
      if (request.text === "count") {
        for (let n = 0; n < request.n && !signal.aborted; n++) yield { n };
        return;
      }
      counters.running++;
      try {
        if (request.text === "flood") {
          const blob = new Uint8Array(request.n);
          while (!signal.aborted) {
            counters.produced++;
            yield { blob };
          }
        } else if (request.text === "tick") {
          // Ended by the stream closing the generator (no check of the signal), as many handlers are written.
          for (let n = 0; request.taken === 0 || n < request.taken; n++) {
            yield { n };
            await sleep(request.n, signal);
          }
        } else {
          await aborted(signal);
        }
      } finally {
        counters.running--;
      }
    },
    Upload: async (requests: AsyncIterable<Msg>, context: CallContext) => {
      const signal = context.signal;
      const mode = context.metadata["mode"];
      if (mode !== undefined) counters.running++;
      try {
        if (mode === "hold") {
          await aborted(signal);
          return {};
        }
        if (mode === "late") {
          // Answers after 50 ms without reading: the caller, still sending, waits for credit that never comes.
          await sleep(50, signal);
          return {};
        }
        let n = 0;
        for await (const _ of requests) {
          n++;
          if (mode === "slow") {
            counters.taken++;
            await sleep(10, signal);
          }
        }
        if (mode === "read-then-hold") await aborted(signal);
        return { n };
      } finally {
        if (mode !== undefined) counters.running--;
      }
    },
    Chat: async function* (requests: AsyncIterable<Msg>, context: CallContext) {
      if (context.metadata["mode"] === "late") {
        await sleep(50, context.signal);
        return;
      }
      if (context.metadata["mode"] !== "hold") {
        for await (const request of requests) yield request;
        return;
      }
      counters.running++;
      try {
        await aborted(context.signal);
      } finally {
        counters.running--;
      }
    },
  };
}

/** A provider of test.Feed on 127.0.0.1 (`options` over that), started, and the counters its handlers count in. */
export async function startFeedProvider(
  options: RpcProviderOptions = {},
): Promise<{ provider: RpcProvider; counters: FeedCounters }> {
  const counters: FeedCounters = { produced: 0, taken: 0, running: 0 };
  const provider = new RpcProvider({ host: "127.0.0.1", ...options });
  provider.registerService(FEED, feedHandlers(counters));
  await provider.start();
  return { provider, counters };
}

/** For a provider with `threads`: each Worker registers test.Feed with counters of its own. */
export function registerServices(provider: RpcProvider): void {
  provider.registerService(FEED, feedHandlers({ produced: 0, taken: 0, running: 0 }));
}

if (import.meta.main) {
  const provider = new RpcProvider({ loop: new EventLoop(), host: "127.0.0.1" });
  registerServices(provider);
  await provider.start();
  console.log(`READY ${provider.advertisedAddress}`);
}
