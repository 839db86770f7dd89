/**
 * A channel's transport to a C++ seed provider (DwtRpcProvider, seed-spec §3.4–3.5): the {@linkcode ClientTransport}
 * of a channel with `seedProviders`. The seed's provider serves one call per connection, so each call gets its own:
 * connect, write the seed's frame (seed_frame.ts), read until the provider closes its side, and hand the bytes up as
 * the response. The channel keeps what the seed lacks: the call's deadline (its PendingCall cancels the call, and
 * the connection closes), retries of calls that never reached a provider, and ejection of a provider that refuses
 * connections.
 *
 * What a caller sees:
 *
 * | the seed provider...                          | the call                                                      |
 * |-----------------------------------------------|---------------------------------------------------------------|
 * | answers and half-closes                       | resolves with the bytes (a stub decodes them)                 |
 * | half-closes with no bytes                     | resolves with an empty message: the seed sends exactly that for a response whose fields are all defaults |
 * | answers bytes that do not parse               | INTERNAL from the stub ("The response of M does not parse")   |
 * | never answers (its errors: unknown service or method, a bad request; it leaves the connection open) | DEADLINE_EXCEEDED at the call's deadline |
 * | refuses the connection, or is not there       | UNAVAILABLE, safe to retry on another provider; the provider is ejected for a while |
 * | answers more than the channel's `maxFrameBytes` | RESOURCE_EXHAUSTED (the connection is closed)               |
 * | a streaming method                            | UNIMPLEMENTED: the seed's frame carries no streams            |
 *
 * No metadata crosses (the seed's frame has none), and nothing tells a provider's error from an empty answer (its
 * frame has no status): this is the seed's protocol, not ours.
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import { InetAddress } from "../../reactor/inet_address.ts";
import { TcpClient } from "../../reactor/tcp_client.ts";
import { RpcCode, RpcError } from "../../rpc/rpc_error.ts";
import type { ClientTransport, TransportCall } from "../../rpc/transport.ts";
import { encodeSeedRequest, seedServiceName } from "./seed_frame.ts";

/**
 * Options of {@linkcode SeedClientTransport}.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import type { SeedClientTransportOptions } from "./seed_client_transport.ts";
 *
 * const options: SeedClientTransportOptions = { loop: new EventLoop(), connectTimeoutMs: 3000, maxAnswerBytes: 1 << 20 };
 * ```
 */
export interface SeedClientTransportOptions {
  /** The loop the connections run on. */
  readonly loop: EventLoop;
  /** How long connecting may take, in milliseconds. */
  readonly connectTimeoutMs: number;
  /** The largest answer taken, in bytes. */
  readonly maxAnswerBytes: number;
}

/** One call's connection. */
interface Exchange {
  readonly client: TcpClient;
  readonly received: Uint8Array[];
  bytes: number;
  done: boolean;
}

const EMPTY_BYTES = new Uint8Array(0);

/**
 * Calls one seed provider address, a connection per call. Owned by the channel, which makes one per address (and a
 * new one after it failed to connect) and closes it.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { RpcChannel } from "../../rpc/rpc_channel.ts";
 *
 * // A channel with `seedProviders` makes a SeedClientTransport per provider address (here a fixed one).
 * const channel = new RpcChannel({
 *   loop: new EventLoop(),
 *   seedProviders: true,
 *   providers: { "dwt.UserServiceRpc": ["127.0.0.1:8800"] },
 * });
 * await channel.close();
 * ```
 */
export class SeedClientTransport implements ClientTransport {
  /** The provider, `host:port`. */
  readonly address: string;
  readonly #options: SeedClientTransportOptions;
  readonly #server: InetAddress;
  readonly #calls = new Map<TransportCall, Exchange>();
  #failed = false;
  #closed = false;
  #closeWhenIdle = false;

  /** A transport to `address` (`host:port`); nothing connects before a call. */
  constructor(address: string, options: SeedClientTransportOptions) {
    this.address = address;
    this.#options = options;
    this.#server = InetAddress.parse(address);
  }

  /** Whether it takes calls: not closed, and its last connect did not fail (the channel then makes a new one). */
  get usable(): boolean {
    return !this.#closed && !this.#failed;
  }

  /** Never: the seed's providers send no drain. */
  get draining(): boolean {
    return false;
  }

  /** Calls in flight. */
  get outstanding(): number {
    return this.#calls.size;
  }

  /** Send `call` on a connection of its own. */
  request(call: TransportCall): void {
    if (!this.usable) {
      call.onError(new RpcError(RpcCode.UNAVAILABLE, `The connection to ${this.address} is down`), true);
      return;
    }
    if (call.stream) {
      const why = `${call.service}.${call.method} streams, and the C++ seed's frame carries no streams`;
      call.onError(new RpcError(RpcCode.UNIMPLEMENTED, why), false);
      return;
    }
    const frame = encodeSeedRequest(seedServiceName(call.service), call.method, call.payload);
    const client = new TcpClient(this.#options.loop, this.#server, `RpcChannel-seed->${this.address}`, {
      maxAttempts: 1,
      connectTimeoutMs: this.#options.connectTimeoutMs,
    });
    const exchange: Exchange = { client, received: [], bytes: 0, done: false };
    this.#calls.set(call, exchange);
    client.setConnectionCallback((connection) => {
      if (connection.connected) connection.send(frame); // one frame; the provider answers and half-closes
      else this.#answered(call, exchange);
    });
    client.setMessageCallback((connection, buffer) => {
      if (exchange.done) return void buffer.retrieveAll();
      exchange.bytes += buffer.readableBytes;
      if (exchange.bytes > this.#options.maxAnswerBytes) {
        buffer.retrieveAll();
        const why = `The answer of ${call.service}.${call.method} from ${this.address} passed the limit of ` +
          `${this.#options.maxAnswerBytes} bytes`;
        this.#settle(call, exchange);
        connection.forceClose();
        call.onError(new RpcError(RpcCode.RESOURCE_EXHAUSTED, why), false);
        return;
      }
      exchange.received.push(buffer.retrieveAsBytes(buffer.readableBytes));
    });
    client.setConnectFailedCallback((error) => {
      if (exchange.done) return;
      this.#settle(call, exchange);
      this.#failed = true;
      const why = `Cannot connect to the seed provider at ${this.address}: ${(error as Error)?.message ?? error}`;
      call.onError(new RpcError(RpcCode.UNAVAILABLE, why, { cause: error }), true);
    });
    client.connect();
  }

  /** The caller gave up (its deadline, a cancel): close the call's connection. */
  cancel(call: TransportCall): void {
    const exchange = this.#calls.get(call);
    if (exchange === undefined) return;
    this.#settle(call, exchange);
    void exchange.client.close();
  }

  /** Close once no call is in flight. */
  closeWhenIdle(): void {
    this.#closeWhenIdle = true;
    if (this.#calls.size === 0) void this.close();
  }

  /** Close now: calls in flight fail UNAVAILABLE. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const closing: Promise<void>[] = [];
    for (const [call, exchange] of [...this.#calls]) {
      this.#settle(call, exchange);
      closing.push(exchange.client.close());
      call.onError(new RpcError(RpcCode.UNAVAILABLE, `The channel closed its connection to ${this.address}`), false);
    }
    await Promise.all(closing);
  }

  // The provider closed: what came is the answer.
  #answered(call: TransportCall, exchange: Exchange): void {
    if (exchange.done) return;
    this.#settle(call, exchange);
    const payload = exchange.received.length === 1 ? exchange.received[0]! : concat(exchange.received, exchange.bytes);
    call.onResponse({ callId: call.callId, status: 0, errorMessage: "", metadata: undefined, payload });
  }

  #settle(call: TransportCall, exchange: Exchange): void {
    exchange.done = true;
    exchange.client.stop();
    this.#calls.delete(call);
    if (this.#closeWhenIdle && this.#calls.size === 0 && !this.#closed) void this.close();
  }
}

function concat(chunks: Uint8Array[], bytes: number): Uint8Array {
  if (chunks.length === 0) return EMPTY_BYTES;
  const out = new Uint8Array(bytes);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}
