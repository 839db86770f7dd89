/**
 * One long-lived, multiplexed connection from a channel to one provider: calls get ids, wait in a queue while
 * the connection comes up, and are matched to responses in any order. A call that fails before its request
 * was written is marked safe to retry elsewhere. It answers the provider's keepalive pings and pings a provider
 * that sent nothing for a while (closing it when the ping goes unanswered), and obeys a drain frame: no new calls,
 * calls above the drain's last call id handed back to be retried elsewhere, closed once the rest are answered.
 *
 * Call ids only grow on a connection (ids whose table slot is taken are skipped); when they would wrap, the
 * connection stops taking calls and a new one is made, so "every call above the drain's id" is exact.
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
import { decodeRpcFrame } from "./_rpc_decoder.ts";
import { sendCancel, sendCredit, sendHalfClose, sendPing, sendRequest, sendStreamRequest } from "./_rpc_encoder.ts";
import { StreamWrites } from "./_stream_writes.ts";
import { type DecodedFrame, FrameKind } from "./_rpc_wire.ts";
import { RpcCode, RpcError } from "./rpc_error.ts";
import type { ClientTransport, ClientTransportEvents, TransportCall } from "./transport.ts";

/** Options of {@linkcode ProviderConnection}. */
export interface ProviderConnectionOptions {
  loop: EventLoop;
  maxFrameBytes: number;
  connectTimeoutMs: number;
  tls?: TlsClientOptions;
  /** Told of a drain frame (the channel stops picking it) and of an unanswered ping (the channel ejects it). */
  events?: ClientTransportEvents;
  /** The largest call id before a new connection is needed (tests lower it). */
  maxCallId?: number;
}

const FIRST_SLOTS = 64;
const MAX_CALL_ID = 0x7fff_ffff;

/** Multiplexes calls to one provider address over the reactor's TCP: the {@linkcode ClientTransport} of a channel. */
export class ProviderConnection implements ClientTransport {
  /** `host:port`. */
  readonly address: string;
  readonly #loop: EventLoop;
  readonly #client: TcpClient;
  readonly #codec: LengthHeaderCodec;
  #connection: TcpConnection | undefined;
  #queue: TransportCall[] = [];
  // Calls in flight by id: slot `id & mask` of an open-addressed table kept at most half full. Ids are chosen so
  // their slot is free, so a lookup is one array read and no Map is churned per call (a Map's retired tables
  // keep the young call objects they held reachable, and minor GCs then promote every call).
  #slots: Array<TransportCall | undefined> = new Array(FIRST_SLOTS).fill(undefined);
  #mask = FIRST_SLOTS - 1;
  #inFlight = 0;
  #nextId = 1;
  #closed = false;
  #failed = false;
  // No new calls: the provider drained this connection, or the call ids ran out.
  #draining = false;
  #onIdle: (() => void) | undefined;
  readonly #options: ProviderConnectionOptions;
  readonly #maxCallId: number;
  // Keepalive: when a frame last arrived, and when the unanswered ping went out (0: none).
  #lastReceivedMs: number;
  #pingSentMs = 0;
  // Streams' messages waiting for room in the output (made with the first one).
  #streamWrites: StreamWrites | undefined;

  /** Start connecting to `address` at once. */
  constructor(address: string, options: ProviderConnectionOptions) {
    const { loop, maxFrameBytes, connectTimeoutMs, tls } = options;
    this.address = address;
    this.#loop = loop;
    this.#options = options;
    this.#maxCallId = options.maxCallId ?? MAX_CALL_ID;
    this.#lastReceivedMs = loop.now();
    this.#codec = new LengthHeaderCodec((_connection, body, receiveTimeMs) => this.#onFrame(body, receiveTimeMs), {
      maxFrameBytes,
    });
    this.#client = new TcpClient(loop, InetAddress.parse(address), `RpcChannel->${address}`, {
      maxAttempts: 1,
      connectTimeoutMs,
      tls,
    });
    this.#client.setConnectionCallback((connection) => this.#onConnection(connection));
    this.#client.setMessageCallback(this.#codec.onMessage);
    this.#client.setWriteCompleteCallback(() => this.#streamWrites?.drained());
    this.#client.setConnectFailedCallback((error) => this.#fail(error));
    this.#client.connect();
  }

  /** Calls sent or queued and not yet answered (for least-loaded balancing). */
  get outstanding(): number {
    return this.#inFlight + this.#queue.length;
  }

  /** Whether the connection takes new calls (a failed, closed or draining one is replaced by the channel). */
  get usable(): boolean {
    return !this.#closed && !this.#failed && !this.#draining;
  }

  /** Whether the provider sent a drain frame on this connection. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Send a call's request (now, or once connected). */
  request(call: TransportCall): void {
    if (!this.usable) {
      const why = this.#draining ? "is draining" : "is down";
      call.onError(new RpcError(RpcCode.UNAVAILABLE, `The connection to ${this.address} ${why}`), true, this.#draining);
      return;
    }
    if (this.#connection === undefined) this.#queue.push(call);
    else this.#write(call);
  }

  /** Forget a call the caller gave up on and tell the provider to stop working on it. */
  cancel(call: TransportCall): void {
    const queued = this.#queue.indexOf(call);
    if (queued >= 0) {
      this.#queue.splice(queued, 1);
    } else if (this.#take(call.callId) === call && this.#connection?.connected) {
      if (call.stream) this.#streamWrites?.drop(call.callId);
      sendCancel(this.#connection, call.callId);
    }
    this.#checkIdle();
  }

  /** Write a stream's message when there is room, fairly among the connection's streams. */
  sendMessage(call: TransportCall, payload: Uint8Array, written: () => void): number {
    const connection = this.#connection;
    if (connection === undefined || this.#find(call.callId) !== call) return 0; // ended: the stream knows
    this.#streamWrites ??= new StreamWrites(connection, this.#codec.maxFrameBytes);
    return this.#streamWrites.send(call.callId, payload, written);
  }

  /** The stream's last message was sent. */
  halfClose(call: TransportCall): void {
    if (this.#connection?.connected && this.#find(call.callId) === call) sendHalfClose(this.#connection, call.callId);
  }

  /** Grant the provider credit on a stream. */
  sendCredit(call: TransportCall, bytes: number): void {
    if (this.#connection?.connected && this.#find(call.callId) === call) {
      sendCredit(this.#connection, call.callId, bytes);
    }
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

  #write(call: TransportCall): void {
    this.#register(call);
    const maxFrameBytes = this.#codec.maxFrameBytes;
    const timeoutMs = Math.ceil(call.timeoutMs());
    const size = call.stream
      ? sendStreamRequest(this.#connection!, call, timeoutMs, call.stream, call.window ?? 0, maxFrameBytes)
      : sendRequest(this.#connection!, call, timeoutMs, maxFrameBytes);
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

  // Give the call the next id whose slot is free, and put it there. Ids only grow: past the last one the
  // connection takes no more calls (the channel opens a new one).
  #register(call: TransportCall): void {
    if ((this.#inFlight + 1) * 2 > this.#slots.length) this.#grow();
    let id = this.#nextId;
    while (this.#slots[id & this.#mask] !== undefined) id++;
    this.#nextId = id + 1;
    if (this.#nextId > this.#maxCallId) {
      this.#draining = true;
      this.closeWhenIdle();
    }
    call.callId = id;
    this.#slots[id & this.#mask] = call;
    this.#inFlight++;
  }

  // The call in flight with this id; undefined if none (answered, cancelled, unknown).
  #find(callId: number): TransportCall | undefined {
    const call = this.#slots[callId & this.#mask];
    return call !== undefined && call.callId === callId ? call : undefined;
  }

  // The call in flight with this id, removed from the table; undefined if none (answered, cancelled, unknown).
  #take(callId: number): TransportCall | undefined {
    const slot = callId & this.#mask;
    const call = this.#slots[slot];
    if (call === undefined || call.callId !== callId) return undefined;
    this.#slots[slot] = undefined;
    this.#inFlight--;
    return call;
  }

  // Twice the slots: live ids that differed in their low bits still do with one bit more, so none collide.
  #grow(): void {
    const slots: Array<TransportCall | undefined> = new Array(this.#slots.length * 2).fill(undefined);
    const mask = slots.length - 1;
    for (const call of this.#slots) if (call !== undefined) slots[call.callId & mask] = call;
    this.#slots = slots;
    this.#mask = mask;
  }

  // Empties the table; returns the calls that were in it.
  #takeAll(): TransportCall[] {
    const calls = this.#slots.filter((call): call is TransportCall => call !== undefined);
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

  /**
   * Keepalive, from the channel's sweep timer: ping a provider that sent nothing for `intervalMs`; close one whose
   * ping went unanswered for `timeoutMs` (its calls fail UNAVAILABLE: written ones not safe to retry, queued ones
   * safe). Returns false when it closed the connection.
   */
  checkKeepalive(nowMs: number, intervalMs: number, timeoutMs: number): boolean {
    const connection = this.#connection;
    if (connection === undefined || !connection.connected || this.#closed) return true;
    if (this.#pingSentMs > 0) {
      if (nowMs - this.#pingSentMs < timeoutMs) return true;
      getLogger().warn(`RpcChannel: ${this.address} did not answer a keepalive ping in ${timeoutMs} ms; closing`);
      this.#failed = true;
      const error = new RpcError(
        RpcCode.UNAVAILABLE,
        `The provider ${this.address} stopped answering (no answer to a keepalive ping in ${timeoutMs} ms)`,
      );
      this.#failAll(error);
      connection.forceClose();
      this.#options.events?.onUnresponsive(this);
      return false;
    }
    if (nowMs - this.#lastReceivedMs >= intervalMs) {
      this.#pingSentMs = nowMs;
      sendPing(connection, 0, false);
    }
    return true;
  }

  #onFrame(body: Uint8Array, receiveTimeMs: number): void {
    this.#lastReceivedMs = receiveTimeMs;
    this.#pingSentMs = 0; // anything from the provider proves it alive
    let frame: DecodedFrame;
    try {
      frame = decodeRpcFrame(body);
    } catch (error) {
      getLogger().error(`RpcChannel: a frame from ${this.address} does not parse; closing`, { error });
      this.#connection?.forceClose();
      return;
    }
    if (frame.kind === FrameKind.RESPONSE) {
      const call = this.#take(frame.callId);
      if (call === undefined) return; // cancelled or timed out
      if (call.stream) this.#streamWrites?.drop(call.callId);
      call.onResponse(frame);
      this.#checkIdle();
    } else if (frame.kind === FrameKind.MESSAGE) {
      this.#find(frame.callId)?.onMessage?.(frame.payload); // an ended stream's: crossed its end on the wire
    } else if (frame.kind === FrameKind.CREDIT) {
      this.#find(frame.callId)?.onCredit?.(frame.credit);
    } else if (frame.kind === FrameKind.PING) {
      if (!frame.ack && this.#connection?.connected) sendPing(this.#connection, frame.pingData, true);
    } else if (frame.kind === FrameKind.DRAIN) {
      this.#onDrain(frame);
    }
  }

  // The provider will answer calls up to frame.lastCallId and refuse the rest: hand those back at once (they
  // never ran), take no new calls, and close once the rest are answered.
  #onDrain(frame: DecodedFrame): void {
    if (frame.status !== 0) {
      getLogger().warn(`RpcChannel: ${this.address} closes the connection: ${frame.errorMessage}`);
    } else {
      getLogger().debug(`RpcChannel: ${this.address} drains (${frame.errorMessage}); last call ${frame.lastCallId}`);
    }
    this.#draining = true;
    const error = new RpcError(
      RpcCode.UNAVAILABLE,
      `The provider ${this.address} is draining (${frame.errorMessage || "no reason given"})`,
    );
    const handedBack: TransportCall[] = [];
    for (const call of this.#slots) if (call !== undefined && call.callId > frame.lastCallId) handedBack.push(call);
    for (const call of handedBack) this.#take(call.callId);
    this.#options.events?.onDrain(this, frame.graceMs);
    for (const call of handedBack) call.onError(error, true, true);
    this.closeWhenIdle();
  }

  #checkIdle(): void {
    if (this.#onIdle !== undefined && this.outstanding === 0) {
      const onIdle = this.#onIdle;
      this.#onIdle = undefined;
      this.#loop.queueInLoop(onIdle);
    }
  }
}
