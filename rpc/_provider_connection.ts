/**
 * One long-lived, multiplexed connection from a channel to one provider: calls get ids, wait in a queue while
 * the connection comes up, and are matched to responses in any order. A call that fails before its request
 * was written is marked safe to retry elsewhere.
 *
 * @module
 */

import type { TlsClientOptions } from "../reactor/backend/net_backend.ts";
import type { EventLoop } from "../reactor/event_loop.ts";
import { InetAddress } from "../reactor/inet_address.ts";
import { LengthHeaderCodec } from "../reactor/length_header_codec.ts";
import { getLogger } from "../reactor/logger.ts";
import { TcpClient } from "../reactor/tcp_client.ts";
import type { TcpConnection } from "../reactor/tcp_connection.ts";
import { decodeRpcFrame, encodeRpcFrame, type WireResponse } from "./_rpc_codec.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";

/** A call as the connection carries it. */
export interface OutgoingCall {
  readonly service: string;
  readonly method: string;
  readonly payload: Uint8Array;
  readonly metadata: Record<string, string>;
  /** Milliseconds left when sent (0: none). */
  timeoutMs(): number;
  /** The response arrived. `payload` is a view valid only during the call. */
  onResponse(response: WireResponse): void;
  /** The call failed; `retrySafe` when the provider never got it (or refused it unprocessed). */
  onError(error: RpcError, retrySafe: boolean): void;
}

/** Multiplexes calls to one provider address. */
export class ProviderConnection {
  /** `host:port`. */
  readonly address: string;
  readonly #loop: EventLoop;
  readonly #client: TcpClient;
  readonly #codec: LengthHeaderCodec;
  #connection: TcpConnection | undefined;
  #queue: Array<{ id: number; call: OutgoingCall }> = [];
  #calls = new Map<number, OutgoingCall>();
  #nextId = 1;
  #closed = false;
  #failed = false;
  #onIdle: (() => void) | undefined;

  /** Start connecting to `address` at once. */
  constructor(
    loop: EventLoop,
    address: string,
    maxFrameBytes: number,
    connectTimeoutMs: number,
    tls?: TlsClientOptions,
  ) {
    this.address = address;
    this.#loop = loop;
    this.#codec = new LengthHeaderCodec((_connection, body) => this.#onFrame(body), { maxFrameBytes });
    this.#client = new TcpClient(loop, InetAddress.parse(address), `RpcChannel->${address}`, {
      maxAttempts: 1,
      connectTimeoutMs,
      tls,
    });
    this.#client.setConnectionCallback((connection) => this.#onConnection(connection));
    this.#client.setMessageCallback(this.#codec.onMessage);
    this.#client.setConnectFailedCallback((error) => this.#fail(error));
    this.#client.connect();
  }

  /** Calls sent or queued and not yet answered (for least-loaded balancing). */
  get outstanding(): number {
    return this.#calls.size + this.#queue.length;
  }

  /** Whether the connection is up or coming up (a failed or closed one is replaced by the channel). */
  get usable(): boolean {
    return !this.#closed && !this.#failed;
  }

  /** Send a call (now, or once connected). Returns its id, for cancel. */
  send(call: OutgoingCall): number {
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0x7fff_ffff ? 1 : this.#nextId + 1;
    if (!this.usable) {
      call.onError(new RpcError(RpcCode.UNAVAILABLE, `The connection to ${this.address} is down`), true);
      return id;
    }
    if (this.#connection === undefined) this.#queue.push({ id, call });
    else this.#write(id, call);
    return id;
  }

  /** Forget a call the caller gave up on and tell the provider to stop working on it. */
  cancel(id: number): void {
    const queued = this.#queue.findIndex((entry) => entry.id === id);
    if (queued >= 0) {
      this.#queue.splice(queued, 1);
    } else if (this.#calls.delete(id) && this.#connection?.connected) {
      this.#codec.send(this.#connection, encodeRpcFrame({ cancel: { callId: id } }));
    }
    this.#checkIdle();
  }

  /** Close once nothing is outstanding (a provider left the registry but still answers its calls). */
  closeWhenIdle(): void {
    this.#onIdle = () => void this.close();
    this.#checkIdle();
  }

  /** Close now; outstanding calls fail with UNAVAILABLE. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#failAll(new RpcError(RpcCode.UNAVAILABLE, `The channel closed its connection to ${this.address}`));
    await this.#client.close();
  }

  #write(id: number, call: OutgoingCall): void {
    if (call.payload.length > this.#codec.maxFrameBytes - 1024) {
      // Checked here, before anything is written; the codec's own check would throw mid-send.
      call.onError(
        new RpcError(
          RpcCode.RESOURCE_EXHAUSTED,
          `The request to ${call.service}.${call.method} of ${call.payload.length} bytes exceeds the limit of ` +
            `${this.#codec.maxFrameBytes} bytes per frame`,
        ),
        false,
      );
      return;
    }
    this.#calls.set(id, call);
    this.#codec.send(
      this.#connection!,
      encodeRpcFrame({
        request: {
          callId: id,
          service: call.service,
          method: call.method,
          timeoutMs: Math.max(0, Math.ceil(call.timeoutMs())),
          metadata: call.metadata,
          payload: call.payload,
        },
      }),
    );
  }

  #onConnection(connection: TcpConnection): void {
    if (connection.connected) {
      this.#connection = connection;
      const queue = this.#queue;
      this.#queue = [];
      for (const { id, call } of queue) this.#write(id, call);
      return;
    }
    this.#connection = undefined;
    this.#failed = true;
    // Requests already written may have run: not safe to retry. Queued ones never left.
    const error = new RpcError(RpcCode.UNAVAILABLE, `The connection to ${this.address} was lost`);
    const calls = this.#calls;
    this.#calls = new Map();
    for (const call of calls.values()) call.onError(error, false);
    this.#failQueue(error);
  }

  #fail(reason: unknown): void {
    this.#failed = true;
    getLogger().debug(`RpcChannel: cannot connect to ${this.address}`, { error: reason });
    this.#failQueue(new RpcError(RpcCode.UNAVAILABLE, `Cannot connect to ${this.address}`, { cause: reason }));
  }

  #failQueue(error: RpcError): void {
    const queue = this.#queue;
    this.#queue = [];
    for (const { call } of queue) call.onError(error, true);
    this.#checkIdle();
  }

  #failAll(error: RpcError): void {
    const calls = this.#calls;
    this.#calls = new Map();
    for (const call of calls.values()) call.onError(error, false);
    this.#failQueue(error);
  }

  #onFrame(body: Uint8Array): void {
    let frame;
    try {
      frame = decodeRpcFrame(body);
    } catch (error) {
      getLogger().error(`RpcChannel: a frame from ${this.address} does not parse; closing`, { error });
      this.#connection?.forceClose();
      return;
    }
    const response = frame.response;
    if (!response) return;
    const call = this.#calls.get(response.callId);
    if (call === undefined) return; // cancelled or timed out
    this.#calls.delete(response.callId);
    call.onResponse(response);
    this.#checkIdle();
  }

  #checkIdle(): void {
    if (this.#onIdle !== undefined && this.outstanding === 0) {
      const onIdle = this.#onIdle;
      this.#onIdle = undefined;
      this.#loop.queueInLoop(onIdle);
    }
  }
}
