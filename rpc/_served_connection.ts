/**
 * A provider's end of one TCP connection, the {@linkcode ServerConnection} of the reactor's TCP transport: it writes
 * answers as response frames within the frame limit, closes a caller that does not read them, sends drain frames,
 * and keeps what the transport's sweep needs (last activity, the keepalive ping outstanding) and what its
 * ConnectionGate needs (whether it spoke). Made and dropped by the TcpServerTransport; it does not own the
 * TcpConnection (the TcpServer does).
 *
 * @module
 */

import type { EventLoop } from "../reactor/event_loop.ts";
import { closeIfBacklogged } from "../reactor/flow_control.ts";
import { getLogger } from "../reactor/logger.ts";
import type { TcpConnection } from "../reactor/tcp_connection.ts";
import { sendCredit, sendDrain, sendResponse } from "./_rpc_encoder.ts";
import { StreamWrites } from "./_stream_writes.ts";
import type { GatedConnection } from "./_connection_gate.ts";
import type { ServerLimits } from "./_server_limits.ts";
import { RpcCode } from "./rpc_error.ts";
import type {
  CallAnswer,
  ServerConnection,
  ServerConnectionHandler,
  ServerTransportHandler,
} from "./server_transport.ts";

const EMPTY_BYTES = new Uint8Array(0);

/** One caller's TCP connection, as its provider serves it. */
export class ServedConnection implements ServerConnection, GatedConnection {
  /** The reactor's connection. */
  readonly connection: TcpConnection;
  /** The peer's host, for the per-address connection limit. */
  readonly peerHost: string;
  /** The connection's loop. */
  readonly loop: EventLoop;
  /** The provider's side of the connection (set right after the provider accepted it). */
  calls: ServerConnectionHandler | undefined;
  /** When a frame last arrived (any frame: a ping answer proves the peer alive). */
  lastActivityMs: number;
  /** When a request or cancel last arrived (pings do not keep a connection from being idle). */
  lastCallMs: number;
  /** When the unanswered keepalive ping was sent; 0 when none is outstanding. */
  pingSentMs = 0;
  /**
   * Whether the caller ever answered a ping: only then does a missed answer close the connection (a caller that
   * never did may predate pings; the idle limit still bounds it).
   */
  answersPings = false;
  /** Whether a whole frame arrived (until then the connection is silent, see ConnectionGate). */
  spoke = false;
  readonly #provider: ServerTransportHandler;
  readonly #maxFrameBytes: number;
  readonly #maxUnsentBytes: number;
  // Streams' messages waiting for room (made with the first stream message).
  #streamWrites: StreamWrites | undefined;

  /** Serve `connection`, which is up now, for `provider`. */
  constructor(connection: TcpConnection, provider: ServerTransportHandler, limits: ServerLimits) {
    this.connection = connection;
    this.loop = connection.loop;
    this.peerHost = connection.peerAddress.hostname;
    this.lastActivityMs = this.lastCallMs = connection.loop.now();
    this.#provider = provider;
    this.#maxFrameBytes = limits.maxFrameBytes;
    this.#maxUnsentBytes = limits.maxUnsentBytes;
  }

  /** The caller's address. */
  get peer(): string {
    return this.connection.peerAddress.toString();
  }

  /** The connection's name, for logs. */
  get name(): string {
    return this.connection.name;
  }

  /** Close at once, dropping what is unsent (the transport reports the close to the provider). */
  forceClose(): void {
    this.connection.forceClose();
  }

  /** Send an answer as a response frame; one over the frame limit becomes RESOURCE_EXHAUSTED. */
  answer(answer: CallAnswer): void {
    const connection = this.connection;
    if (!connection.connected) return;
    const maxFrameBytes = this.#maxFrameBytes;
    const size = sendResponse(connection, answer, maxFrameBytes);
    if (size > maxFrameBytes) {
      const error = `The response of ${answer.service}.${answer.method} of ${size} bytes exceeds the limit of ` +
        `${maxFrameBytes} bytes per frame`;
      getLogger().warn(`RpcProvider: ${error}`);
      sendResponse(connection, {
        callId: answer.callId,
        status: RpcCode.RESOURCE_EXHAUSTED,
        errorMessage: error,
        answerMetadata: undefined,
        answerPayload: EMPTY_BYTES,
      }, maxFrameBytes);
    }
    // A caller that does not read its answers: closed once they back up past the hard limit.
    if (connection.pendingBytes > this.#maxUnsentBytes) {
      this.#provider.limitHit("unsent_bytes");
      closeIfBacklogged(connection, this.#maxUnsentBytes);
    }
  }

  /** Write a stream's message when there is room, fairly among the connection's streams. */
  sendMessage(callId: number, payload: Uint8Array, written: () => void): number {
    this.#streamWrites ??= new StreamWrites(this.connection, this.#maxFrameBytes);
    return this.#streamWrites.send(callId, payload, written);
  }

  /** Grant the caller credit on a stream. */
  sendCredit(callId: number, bytes: number): void {
    if (this.connection.connected) sendCredit(this.connection, callId, bytes);
  }

  /** Forget a stream's message still waiting for room. */
  dropMessages(callId: number): void {
    this.#streamWrites?.drop(callId);
  }

  /** The output drained: write streams' messages that waited for room. */
  writesDrained(): void {
    this.#streamWrites?.drained();
  }

  /** Send a drain frame; after a protocol error's (`status` ≠ 0), close. */
  drain(lastCallId: number, reason: string, graceMs: number, status = 0): void {
    const connection = this.connection;
    if (!connection.connected) return;
    sendDrain(connection, { lastCallId, status, reason, graceMs });
    if (status !== 0) {
      connection.shutdown();
      connection.forceCloseWithDelay(1000);
    }
  }

  /** Half-close once the answers written so far are sent. */
  close(): void {
    this.connection.shutdown();
  }
}
