/**
 * One client connection of the registry server: its session, and its replies in request order. A write's reply
 * waits for the write to be durable; a read that arrives behind an unanswered request of the same connection is
 * evaluated only when its turn comes, so a client reads its own writes; watch events queue behind the replies
 * that come before them.
 *
 * @module
 */

import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import type { TimerId } from "../../reactor/timer_queue.ts";
import type { ClientFrame, ServerFrame } from "../_codec.ts";
import type { Session } from "./session_table.ts";

/** A reply waiting for its turn: filled later (a write), or computed when its turn comes (a deferred read). */
export interface ReplySlot {
  frame: ServerFrame | undefined;
  compute: (() => ServerFrame) | undefined;
}

/** A request held while its connection's session is being opened: decoded, or already answered with an error. */
export interface WaitingRequest {
  frame?: ClientFrame;
  rejected?: ServerFrame;
}

/** Sends one frame on a connection; never throws. */
export type FrameWriter = (connection: TcpConnection, frame: ServerFrame) => void;

// Replies queued on one connection past which it is no longer read until they drain (a pipelining client
// cannot make the server hold without bound).
const PAUSE_AT_SLOTS = 4096;

/** The server's state for one TCP connection. */
export class RegistryConnection {
  /** The TCP connection (owned by the TcpServer). */
  readonly connection: TcpConnection;
  /** The client's IP address. */
  readonly ip: string;
  /** The session this connection serves, once opened or resumed. */
  session: Session | undefined;
  /** Requests that came while the session was being opened; served in order once it is. */
  waiting: WaitingRequest[] | undefined;
  /** Closes the connection if it opens no session in time; cancelled at once when it does or closes. */
  handshakeTimer: TimerId | undefined;
  readonly #write: FrameWriter;
  readonly #slots: ReplySlot[] = [];
  #pausedBySlots = false;

  /** State for `connection`, writing frames through `write`. */
  constructor(connection: TcpConnection, ip: string, write: FrameWriter) {
    this.connection = connection;
    this.ip = ip;
    this.#write = write;
  }

  /** Whether the TCP connection is up. */
  get connected(): boolean {
    return this.connection.connected;
  }

  /** Close the TCP connection now. */
  forceClose(): void {
    this.connection.forceClose();
  }

  /** Whether replies are queued (so a new reply must wait behind them). */
  get busy(): boolean {
    return this.#slots.length > 0;
  }

  /** Send `frame` now, or after the replies queued before it. */
  reply(frame: ServerFrame): void {
    if (this.#slots.length === 0) this.#write(this.connection, frame);
    else this.#push({ frame, compute: undefined });
  }

  /** Keep a place for a reply that comes later ({@linkcode RegistryConnection.fill}). */
  reserve(): ReplySlot {
    const slot: ReplySlot = { frame: undefined, compute: undefined };
    this.#push(slot);
    return slot;
  }

  /** Compute a reply when its turn comes (now, if nothing is queued). */
  defer(compute: () => ServerFrame): void {
    if (this.#slots.length === 0) this.#write(this.connection, compute());
    else this.#push({ frame: undefined, compute });
  }

  /** Fill a reserved place, and (unless `send` is false) send every reply whose turn has come. */
  fill(slot: ReplySlot, frame: ServerFrame, send = true): void {
    slot.frame = frame;
    if (send) this.#drain();
  }

  /**
   * Queue a watch event for a change just applied: behind every reply already made (they were computed before the
   * change) and ahead of every reply still to be computed (a deferred read, a write's answer), so the client sees
   * the event before any answer that shows the change, as ZooKeeper promises.
   */
  notify(event: ServerFrame): void {
    const slots = this.#slots;
    let at = 0;
    while (at < slots.length && slots[at]!.frame !== undefined) at++;
    slots.splice(at, 0, { frame: event, compute: undefined });
    this.#drain();
  }

  /** Send every reply whose turn has come (after {@linkcode RegistryConnection.fill} with `send` false). */
  flush(): void {
    this.#drain();
  }

  #push(slot: ReplySlot): void {
    this.#slots.push(slot);
    if (this.#slots.length >= PAUSE_AT_SLOTS && this.connection.reading && this.connection.connected) {
      this.#pausedBySlots = true;
      this.connection.stopRead();
    }
  }

  #drain(): void {
    const slots = this.#slots;
    let sent = 0;
    while (sent < slots.length) {
      const slot = slots[sent]!;
      if (slot.frame === undefined && slot.compute === undefined) break;
      sent++;
      const frame = slot.frame ?? slot.compute!();
      if (this.connection.connected) this.#write(this.connection, frame);
    }
    if (sent > 0) slots.splice(0, sent);
    if (this.#pausedBySlots && slots.length < PAUSE_AT_SLOTS / 2) {
      this.#pausedBySlots = false;
      if (this.connection.connected) this.connection.startRead();
    }
  }
}
