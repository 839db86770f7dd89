/**
 * The streaming example's caller: each kind of stream on FeedService, a `break` that cancels a stream, a deadline
 * that ends one, and a handler's error, each printed as it happens. `deno task feed-caller -i
 * examples/streaming/caller.json`. Exits 1 if any step fails.
 */

import { exitOnFatalError, RpcApplication, type RpcChannel, RpcCode, rpcCodeName, RpcError } from "../../rpc/mod.ts";
import { defaultBackend } from "../../reactor/backend/mod.ts";
import { type FeedServiceStub, type FollowStats, newFeedServiceStub } from "./feed_pb.ts";
import { fnv1a } from "./feed_service.ts";

const UPLOAD_CHUNKS = 64;
const CHUNK_BYTES = 16 * 1024; // 64 chunks of 16 KiB: 1 MiB, 16 times the provider's window of 64 KiB

/** One step of the caller: throws when what it saw is wrong. */
type Step = (feed: FeedServiceStub, print: (line: string) => void) => Promise<void>;

function expect(condition: boolean, what: string): void {
  if (!condition) throw new Error(what);
}

// A ticker of 5 ticks read to its end; the provider's trailing metadata arrives with the end.
const followToTheEnd: Step = async (feed, print) => {
  let trailers: Record<string, string> = {};
  let ticks = 0;
  const options = { timeoutMs: 5000, onTrailers: (metadata: Record<string, string>) => trailers = metadata };
  for await (const tick of feed.Follow({ symbol: "DWT", count: 5, intervalMs: 20 }, options)) {
    print(`tick ${tick.symbol} #${tick.sequence} ${tick.price.toFixed(2)}`);
    ticks++;
  }
  print(`the stream ended after ${ticks} ticks; trailers: ticks-sent=${trailers["ticks-sent"]}`);
  expect(ticks === 5 && trailers["ticks-sent"] === "5", "Follow sent 5 ticks and said so in its trailers");
};

// A ticker that never ends: a `break` out of the loop cancels the stream on the provider too.
const followAndBreak: Step = async (feed, print) => {
  let last = 0n;
  for await (const tick of feed.Follow({ symbol: "CAN", intervalMs: 20 })) {
    last = tick.sequence;
    if (last === 3n) break;
  }
  print(`broke out of the loop after tick #${last}: the stream is cancelled`);
  expect(last === 3n, "three ticks before the break");
};

// A deadline covers the whole stream: it ends one that runs longer.
const followPastTheDeadline: Step = async (feed, print) => {
  let ticks = 0;
  try {
    for await (const _ of feed.Follow({ symbol: "LATE", intervalMs: 50 }, { timeoutMs: 300 })) ticks++;
  } catch (error) {
    const code = error instanceof RpcError ? rpcCodeName(error.code) : String(error);
    print(`the 300 ms deadline ended the stream after ${ticks} ticks: ${code}`);
    expect(error instanceof RpcError && error.code === RpcCode.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED");
    return;
  }
  throw new Error("a stream that never ends ended before its deadline");
};

// A handler's error ends the stream with its status; the caller's loop throws it.
const followWithoutSymbol: Step = async (feed, print) => {
  try {
    for await (const _ of feed.Follow({})) throw new Error("a tick without a symbol");
  } catch (error) {
    expect(error instanceof RpcError && error.code === RpcCode.INVALID_ARGUMENT, `INVALID_ARGUMENT, not ${error}`);
    print(`Follow without a symbol: ${rpcCodeName((error as RpcError).code)} (${(error as RpcError).rawMessage})`);
  }
};

// 1 MiB in 16 KiB chunks, sent as fast as the provider's window lets them go; one summary comes back.
const upload: Step = async (feed, print) => {
  let hash = fnv1a(new Uint8Array());
  async function* chunks() {
    for (let i = 0; i < UPLOAD_CHUNKS; i++) {
      const data = new Uint8Array(CHUNK_BYTES).map((_, j) => (i + j) & 0xff);
      hash = fnv1a(data, hash);
      yield { data };
    }
  }
  const summary = await feed.Upload(chunks(), { timeoutMs: 10_000 });
  print(`uploaded ${summary.chunks} chunks, ${summary.bytes} bytes, fnv1a ${summary.fnv1a.toString(16)}`);
  expect(
    summary.chunks === UPLOAD_CHUNKS && summary.bytes === BigInt(UPLOAD_CHUNKS * CHUNK_BYTES) && summary.fnv1a === hash,
    `the provider got every byte (fnv1a ${hash.toString(16)})`,
  );
};

// A conversation: each line is sent only once the reply to the one before it came back, while the stream is open.
const chat: Step = async (feed, print) => {
  const lines = ["hello", "what is new?", "bye"];
  let replied = Promise.withResolvers<void>();
  async function* say() {
    for (const text of lines) {
      print(`chat > ${text}`);
      yield { from: "caller", text };
      await replied.promise;
      replied = Promise.withResolvers<void>();
    }
  }
  let replies = 0;
  for await (const reply of feed.Chat(say(), { timeoutMs: 5000 })) {
    print(`chat < ${reply.from}: ${reply.text}`);
    replies++;
    replied.resolve();
  }
  expect(replies === lines.length, `a reply to each of the ${lines.length} lines`);
};

/** Run every step on the feed behind `app`'s registry, printing what happens; resolves with the number that failed. */
export async function runFeedCaller(app: RpcApplication, print: (line: string) => void): Promise<number> {
  const channel: RpcChannel = await app.channel({ timeoutMs: 5000 });
  const feed = newFeedServiceStub(channel);
  let failures = 0;
  const run = async (name: string, step: Step) => {
    print(`--- ${name}`);
    try {
      await step(feed, print);
    } catch (error) {
      print(`FAILED ${name}: ${(error as Error).message}`);
      failures++;
    }
  };
  try {
    const before = await feed.Stats({});
    await run("server streaming: Follow to its end", followToTheEnd);
    await run("server streaming: break cancels", followAndBreak);
    await run("server streaming: a deadline", followPastTheDeadline);
    await run("server streaming: the handler's error", followWithoutSymbol);
    await run("the provider saw the break and the deadline", async () => {
      const after = await settledStats(feed, before);
      print(
        `Follow streams: ${after.completed - before.completed} completed, ` +
          `${after.stoppedEarly - before.stoppedEarly} stopped early, ${after.running} running`,
      );
      expect(after.completed - before.completed === 1, "one Follow completed");
      expect(after.stoppedEarly - before.stoppedEarly === 2, "two Follows stopped early (the break, the deadline)");
    });
    await run("client streaming: Upload 1 MiB", upload);
    await run("bidirectional: Chat", chat);
  } catch (error) {
    print(`FAILED: ${(error as Error).message}`);
    failures++;
  } finally {
    await channel.close();
  }
  return failures;
}

// The provider's stats once its Follow streams have all ended (a cancel reaches it within a round trip or so).
async function settledStats(feed: FeedServiceStub, before: FollowStats): Promise<FollowStats> {
  const deadline = performance.now() + 3000;
  for (;;) {
    const stats = await feed.Stats({});
    if (stats.running === before.running || performance.now() > deadline) return stats;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

if (defaultBackend().process.isMain(import.meta)) {
  const { process } = defaultBackend();
  // The config's rpcclient_stream_window_bytes becomes the channel's streamWindowBytes.
  const app = await RpcApplication.init(process.args(), { name: "feed-caller" }).catch(exitOnFatalError);
  // A file the config names (tls_ca_file) is read when the channel opens.
  const failures = await runFeedCaller(app, (line) => console.log(line)).catch(exitOnFatalError);
  await app.close();
  process.exit(failures === 0 ? 0 : 1);
}
