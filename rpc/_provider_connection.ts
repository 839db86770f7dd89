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
import { type DecodedFrame, decodeRpcFrame, FrameKind, sendCancel, sendRequest } from "./_rpc_codec.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";

/** A call as the connection carries it. */
export interface OutgoingCall {
  /** Set by the connection when the call is written: unique among this connection's calls in flight. */
  callId: number;
  readonly service: string;
  readonly method: string;
  readonly payload: Uint8Array;
  readonly metadata: Record<string, string> | undefined;
  /** Milliseconds left when sent (0: none). */
  timeoutMs(): number;
  /** The response arrived. `frame.payload` is a view valid only during the call. */
  onResponse(frame: DecodedFrame): void;
  /** The call failed; `retrySafe` when the provider never got it (or refused it unprocessed). */
  onError(error: RpcError, retrySafe: boolean): void;
}

const FIRST_SLOTS = 64;
const MAX_CALL_ID = 0x7fff_ffff;

/** Multiplexes calls to one provider address. */
export class ProviderConnection {
  /** `host:port`. */
  readonly address: string;
  readonly #loop: EventLoop;
  readonly #client: TcpClient;
  readonly #codec: LengthHeaderCodec;
  #connection: TcpConnection | undefined;
  #queue: OutgoingCall[] = [];
  // Calls in flight by id: slot `id & mask` of an open-addressed table kept at most half full. Ids are chosen so
  // their slot is free, so a lookup is one array read and no Map is churned per call (a Map's retired tables
  // keep the young call objects they held reachable, and minor GCs then promote every call).
  #slots: Array<OutgoingCall | undefined> = new Array(FIRST_SLOTS).fill(undefined);
  #mask = FIRST_SLOTS - 1;
  #inFlight = 0;
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
    return this.#inFlight + this.#queue.length;
  }

  /** Whether the connection is up or coming up (a failed or closed one is replaced by the channel). */
  get usable(): boolean {
    return !this.#closed && !this.#failed;
  }

  /** Send a call (now, or once connected). */
  send(call: OutgoingCall): void {
    if (!this.usable) {
      call.onError(new RpcError(RpcCode.UNAVAILABLE, `The connection to ${this.address} is down`), true);
      return;
    }
    if (this.#connection === undefined) this.#queue.push(call);
    else this.#write(call);
  }

  /** Forget a call the caller gave up on and tell the provider to stop working on it. */
  cancel(call: OutgoingCall): void {
    const queued = this.#queue.indexOf(call);
    if (queued >= 0) {
      this.#queue.splice(queued, 1);
    } else if (this.#take(call.callId) === call && this.#connection?.connected) {
      sendCancel(this.#connection, call.callId);
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

  #write(call: OutgoingCall): void {
    this.#register(call);
    const maxFrameBytes = this.#codec.maxFrameBytes;
    const size = sendRequest(
      this.#connection!,
      maxFrameBytes,
      call.callId,
      call.service,
      call.method,
      Math.ceil(call.timeoutMs()),
      call.metadata,
      call.payload,
    );
    if (size > maxFrameBytes) {
      // Nothing was written.
      this.#take(call.callId);
      call.onError(
        new RpcError(
          RpcCode.RESOURCE_EXHAUSTED,
          `The request to ${call.service}.${call.method} of ${size} bytes exceeds the limit of ${maxFrameBytes} ` +
            `bytes per frame`,
        ),
        false,
      );
    }
  }

  // Give the call an id whose slot is free, and put it there.
  #register(call: OutgoingCall): void {
    if ((this.#inFlight + 1) * 2 > this.#slots.length) this.#grow();
    let id = this.#nextId;
    while (this.#slots[id & this.#mask] !== undefined) id = id >= MAX_CALL_ID ? 1 : id + 1;
    this.#nextId = id >= MAX_CALL_ID ? 1 : id + 1;
    call.callId = id;
    this.#slots[id & this.#mask] = call;
    this.#inFlight++;
  }

  // The call in flight with this id, removed from the table; undefined if none (answered, cancelled, unknown).
  #take(callId: number): OutgoingCall | undefined {
    const slot = callId & this.#mask;
    const call = this.#slots[slot];
    if (call === undefined || call.callId !== callId) return undefined;
    this.#slots[slot] = undefined;
    this.#inFlight--;
    return call;
  }

  // Twice the slots: live ids that differed in their low bits still do with one bit more, so none collide.
  #grow(): void {
    const slots: Array<OutgoingCall | undefined> = new Array(this.#slots.length * 2).fill(undefined);
    const mask = slots.length - 1;
    for (const call of this.#slots) if (call !== undefined) slots[call.callId & mask] = call;
    this.#slots = slots;
    this.#mask = mask;
  }

  // Empties the table; returns the calls that were in it.
  #takeAll(): OutgoingCall[] {
    const calls = this.#slots.filter((call): call is OutgoingCall => call !== undefined);
    this.#slots.fill(undefined);
    this.#inFlight = 0;
    return calls;
  }

  #onConnection(connection: TcpConnection): void {
    if (connection.connected) {
      this.#connection = connection;
      const queue = this.#queue;
      this.#queue = [];
      for (const call of queue) this.#write(call);
      return;
    }
    this.#connection = undefined;
    this.#failed = true;
    // Requests already written may have run: not safe to retry. Queued ones never left.
    const error = new RpcError(RpcCode.UNAVAILABLE, `The connection to ${this.address} was lost`);
    for (const call of this.#takeAll()) call.onError(error, false);
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
    for (const call of queue) call.onError(error, true);
    this.#checkIdle();
  }

  #failAll(error: RpcError): void {
    for (const call of this.#takeAll()) call.onError(error, false);
    this.#failQueue(error);
  }

  #onFrame(body: Uint8Array): void {
    let frame: DecodedFrame;
    try {
      frame = decodeRpcFrame(body);
    } catch (error) {
      getLogger().error(`RpcChannel: a frame from ${this.address} does not parse; closing`, { error });
      this.#connection?.forceClose();
      return;
    }
    if (frame.kind !== FrameKind.RESPONSE) return;
    const call = this.#take(frame.callId);
    if (call === undefined) return; // cancelled or timed out
    call.onResponse(frame);
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
