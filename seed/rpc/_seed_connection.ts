/**
 * One seed caller's connection as a provider serves it: it carries one call, so it is `reading` until its frame is
 * whole, `calling` while the handler runs, and `answered` once the raw response (or, for an error, nothing) has
 * been written and the write side half-closed. Made and dropped by the SeedServerTransport; the TcpServer owns the
 * TcpConnection.
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import { getLogger } from "../../reactor/logger.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import type { GatedConnection } from "../../rpc/_connection_gate.ts";
import type {
  CallAnswer,
  ServerConnection,
  ServerConnectionHandler,
  ServerTransportHandler,
} from "../../rpc/server_transport.ts";
import { SEED_CALLER_READ_BYTES } from "./seed_frame.ts";

/** Where a seed connection's one call is. */
export const SeedConnectionState = {
  READING: "reading",
  CALLING: "calling",
  ANSWERED: "answered",
} as const;

/** One of the {@linkcode SeedConnectionState} values. */
export type SeedConnectionState = typeof SeedConnectionState[keyof typeof SeedConnectionState];

/** A seed caller's connection: the provider's ServerConnection, the gate's GatedConnection. */
export class SeedConnection implements ServerConnection, GatedConnection {
  /** The reactor's connection. */
  readonly tcp: TcpConnection;
  /** The peer's host, for the per-address cap. */
  readonly peerHost: string;
  /** The connection's loop. */
  readonly loop: EventLoop;
  /** The provider's side (set right after the provider accepted it). */
  calls: ServerConnectionHandler | undefined;
  /** Whether its frame is whole (see ConnectionGate). */
  spoke = false;
  /** Where its call is. */
  state: SeedConnectionState = SeedConnectionState.READING;
  /** Partial-frame bytes it holds against the transport's budget. */
  heldBytes = 0;
  /** When it was answered (loop time), for the close deadline; 0 before. */
  answeredMs = 0;
  readonly #provider: ServerTransportHandler;
  readonly #maxAnswerBytes: number;

  /**
   * Serve `tcp`, which is up now, for `provider` (which counts the limits it hits); answers over `maxAnswerBytes`
   * (the provider's `maxFrameBytes`, as on the native port) are not sent.
   */
  constructor(tcp: TcpConnection, provider: ServerTransportHandler, maxAnswerBytes: number) {
    this.tcp = tcp;
    this.loop = tcp.loop;
    this.peerHost = tcp.peerAddress.hostname;
    this.#provider = provider;
    this.#maxAnswerBytes = maxAnswerBytes;
  }

  /** The caller's address. */
  get peer(): string {
    return this.tcp.peerAddress.toString();
  }

  /** The connection's name, for logs. */
  get name(): string {
    return this.tcp.name;
  }

  /** Close at once, dropping what is unsent (the transport reports the close to the provider). */
  forceClose(): void {
    this.tcp.forceClose();
  }

  /**
   * The seed's answer: the raw response, then a half-close. An error has no place in the seed's frame, so it is a
   * half-close with no bytes (the seed caller's read returns 0 and it parses an empty response); the error is
   * counted in the provider's `errorsByCode` and logged here.
   */
  answer(answer: CallAnswer): void {
    if (this.state === SeedConnectionState.ANSWERED) return;
    this.state = SeedConnectionState.ANSWERED;
    this.answeredMs = this.loop.now();
    const tcp = this.tcp;
    if (!tcp.connected) return;
    const size = answer.answerPayload.length;
    if (answer.status === 0 && size > this.#maxAnswerBytes) {
      // As the native port answers RESOURCE_EXHAUSTED: here, no bytes.
      this.#provider.limitHit("seed_answer_over_limit");
      getLogger().warn(
        `RpcProvider seed port: the response of ${answer.service}.${answer.method} of ${size} bytes exceeds the ` +
          `limit of ${this.#maxAnswerBytes} bytes; ${tcp.name} gets no bytes`,
      );
    } else if (answer.status === 0) {
      if (answer.answerPayload.length > SEED_CALLER_READ_BYTES) {
        // Sent whole (a caller that reads to the end gets it all); the seed's own caller reads the first 1,024.
        this.#provider.limitHit("seed_answer_over_1024");
      }
      tcp.send(answer.answerPayload);
    } else {
      getLogger().debug(
        `RpcProvider seed port: ${answer.service}.${answer.method} from ${tcp.name} failed (status ` +
          `${answer.status}: ${answer.errorMessage}); the seed's frame has no error, the caller gets no bytes`,
      );
    }
    tcp.shutdown();
  }

  /**
   * The provider drains: a connection still reading its frame closes now (its call will not run); one whose call
   * runs is answered and closed as usual. A protocol error's drain (`status` ≠ 0) closes at once.
   */
  drain(_lastCallId: number, _reason: string, _graceMs: number, status = 0): void {
    if (status !== 0 || this.state === SeedConnectionState.READING) this.tcp.forceClose();
  }

  /** Half-close once the answer is sent. */
  close(): void {
    if (this.state === SeedConnectionState.READING) this.tcp.forceClose();
    else this.tcp.shutdown();
  }
}
