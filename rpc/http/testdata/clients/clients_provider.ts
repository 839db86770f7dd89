/**
 * What the real-client tests of the gateway share: a provider serving the seed's UserServiceRpc and the streaming
 * example's FeedService (their own handlers, the feed's Follow watched for when its signal fires) on its HTTP
 * port, the npm packages of this folder installed when absent, and a child process run to its end.
 */

import { EventLoop } from "../../../../reactor/event_loop.ts";
import { RpcProvider } from "../../../rpc_provider.ts";
import type { CallContext } from "../../../server_handler.ts";
import { UserService } from "../../../../examples/rpc/user_service.ts";
import { FeedService } from "../../../../examples/streaming/feed_service.ts";
import type { ChatLine, Chunk, FollowRequest, Tick, UploadSummary } from "../../../../examples/streaming/feed_pb.ts";

/** This folder, as a path. */
export const CLIENTS_DIR: string = new URL(".", import.meta.url).pathname;
const NPM_DIR = new URL("npm/", import.meta.url).pathname;

/** How one call went, as its handler saw it (times are `Date.now()`, the machine's clock). */
export interface CallSeen {
  startedAt: number;
  /** The deadline the handler was given, as milliseconds left when it started (Infinity: none). */
  timeRemainingMs: number;
  /** When the handler's signal fired, and its reason. */
  abortedAt?: number;
  reason?: unknown;
  /** When the handler was done (its `finally`). */
  endedAt?: number;
  /** Messages the handler took from a client stream. */
  messages: number;
}

/** The example's FeedService, its Follow streams watched by symbol, its Uploads in order, its Chats counted. */
export class WatchedFeedService extends FeedService {
  readonly follows: Map<string, CallSeen> = new Map();
  readonly uploads: CallSeen[] = [];
  /** Chat streams a handler was called for. */
  chats = 0;

  override Chat(requests: AsyncIterable<ChatLine>, context: CallContext): AsyncGenerator<Partial<ChatLine>> {
    this.chats++;
    return super.Chat(requests, context);
  }

  override async *Follow(request: FollowRequest, context: CallContext): AsyncGenerator<Partial<Tick>> {
    const seen = watch(context);
    this.follows.set(request.symbol, seen);
    try {
      yield* super.Follow(request, context);
    } finally {
      seen.endedAt = Date.now();
    }
  }

  override async Upload(requests: AsyncIterable<Chunk>, context: CallContext): Promise<Partial<UploadSummary>> {
    const seen = watch(context);
    this.uploads.push(seen);
    async function* counted(): AsyncGenerator<Chunk> {
      for await (const chunk of requests) {
        seen.messages++;
        yield chunk;
      }
    }
    try {
      return await super.Upload(counted(), context);
    } finally {
      seen.endedAt = Date.now();
    }
  }
}

// A record of the call, its signal watched.
function watch(context: CallContext): CallSeen {
  const seen: CallSeen = { startedAt: Date.now(), timeRemainingMs: context.timeRemainingMs(), messages: 0 };
  context.signal.addEventListener("abort", () => {
    seen.abortedAt = Date.now();
    seen.reason = context.signal.reason;
  }, { once: true });
  return seen;
}

/** A provider whose gateway the clients call. */
export interface ClientsProvider extends AsyncDisposable {
  readonly provider: RpcProvider;
  readonly feed: WatchedFeedService;
  /** `http://127.0.0.1:port` of the gateway. */
  readonly base: string;
}

/** Start a provider (no registry) with its gateway on a free port, serving UserServiceRpc and FeedService. */
export async function startClientsProvider(): Promise<ClientsProvider> {
  const provider = new RpcProvider({ loop: new EventLoop(), httpPort: 0 });
  const feed = new WatchedFeedService();
  provider.registerService(UserService.definition, new UserService());
  provider.registerService(FeedService.definition, feed);
  await provider.start();
  return {
    provider,
    feed,
    base: `http://${provider.httpAddress}`,
    [Symbol.asyncDispose]: () => provider.stop({ graceMs: 0 }),
  };
}

/** Install npm/ from its lock file when it is not there (a fresh machine, as CI's). */
export async function installClientPackages(): Promise<void> {
  try {
    await Deno.stat(`${NPM_DIR}node_modules/@connectrpc/connect-node/package.json`);
    await Deno.stat(`${NPM_DIR}node_modules/@bufbuild/buf/package.json`);
    return;
  } catch {
    // absent: install below
  }
  const result = await run("npm", ["ci", "--prefix", NPM_DIR, "--no-audit", "--no-fund", "--silent"]);
  if (result.code !== 0) throw new Error(`npm ci in ${NPM_DIR} failed (${result.code}): ${result.stderr}`);
}

/** What a child process left. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `command` with `args` to its end, its output as text. */
export async function run(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<RunResult> {
  const output = await new Deno.Command(command, { args, stdin: "null", ...options }).output();
  const decoder = new TextDecoder();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}
