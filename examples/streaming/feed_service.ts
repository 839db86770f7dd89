/**
 * The streaming example's service: FeedService's three streaming methods (and its unary Stats) implemented by
 * extending the generated base class. A module of its own so a provider with threads can load it in each Worker.
 */

import { type CallContext, RpcCode, RpcError, type RpcProvider } from "../../rpc/mod.ts";
import {
  type ChatLine,
  type Chunk,
  FeedServiceBase,
  type FollowRequest,
  type FollowStats,
  type Tick,
  type UploadSummary,
} from "./feed_pb.ts";

/** The 32-bit FNV-1a hash of `bytes`, continued from `hash`: Upload's checksum, which the caller computes too. */
export function fnv1a(bytes: Uint8Array, hash = 0x811c9dc5): number {
  for (const byte of bytes) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash;
}

// Resolves after `ms`, or rejects with the signal's reason when the caller goes away first.
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    signal.throwIfAborted();
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", stop);
      resolve();
    }, ms);
    const stop = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", stop, { once: true });
  });
}

/** The feed: a ticker per symbol, an upload that sums what it gets, and a chat that answers each line. */
export class FeedService extends FeedServiceBase {
  #running = 0;
  #completed = 0;
  #stoppedEarly = 0;

  /**
   * Ticks, as an async generator: each `yield` is one message, sent as the caller's window allows. When the caller
   * goes away (a `break`, a cancel, its deadline) `context.signal` fires and the `finally` runs.
   */
  async *Follow(request: FollowRequest, context: CallContext): AsyncGenerator<Partial<Tick>> {
    if (request.symbol === "") throw new RpcError(RpcCode.INVALID_ARGUMENT, "Follow needs a symbol");
    this.#running++;
    let sent = 0;
    try {
      for (let sequence = 1; request.count === 0 || sequence <= request.count; sequence++) {
        if (sequence > 1) await sleep(request.intervalMs, context.signal);
        yield { symbol: request.symbol, sequence: BigInt(sequence), price: 100 + sequence / 4 };
        sent++;
      }
      // Trailing metadata: it goes with the stream's end (the caller's `onTrailers`).
      context.responseMetadata["ticks-sent"] = String(sent);
      this.#completed++;
    } finally {
      this.#running--;
      if (context.signal.aborted) {
        this.#stoppedEarly++;
        console.log(`Follow(${request.symbol}) stopped after ${sent} ticks: ${context.signal.reason?.message}`);
      }
    }
  }

  /**
   * Sums an upload. Reading `requests` is what grants the caller credit to send more: an upload larger than the
   * stream's window (64 KiB by default) goes as fast as this loop takes it.
   */
  async Upload(requests: AsyncIterable<Chunk>, _context: CallContext): Promise<Partial<UploadSummary>> {
    let chunks = 0;
    let bytes = 0;
    let hash = fnv1a(new Uint8Array());
    for await (const chunk of requests) {
      chunks++;
      bytes += chunk.data.length;
      hash = fnv1a(chunk.data, hash);
    }
    console.log(`Upload: ${chunks} chunks, ${bytes} bytes`);
    return { chunks, bytes: BigInt(bytes), fnv1a: hash };
  }

  /** Answers each line as soon as it came in, while the caller may still be sending. */
  async *Chat(requests: AsyncIterable<ChatLine>, _context: CallContext): AsyncGenerator<Partial<ChatLine>> {
    let lines = 0;
    for await (const line of requests) {
      lines++;
      yield { from: "feed", text: `${line.from} said "${line.text}" (line ${lines})` };
    }
    console.log(`Chat: ${lines} lines`);
  }

  /** How the Follow streams went so far. */
  Stats(): Partial<FollowStats> {
    return { running: this.#running, completed: this.#completed, stoppedEarly: this.#stoppedEarly };
  }
}

/** Registers the service: on the provider here, and on each Worker's when the config sets `rpcserver_threads`. */
export function registerServices(provider: RpcProvider): void {
  provider.registerService(FeedService.definition, new FeedService());
}
