/**
 * One client connection of the registry server: its session, and its replies in request order. A write's reply
 * waits for the write to be durable; a read that arrives behind an unanswered request of the same connection is
 * evaluated only when its turn comes, so a client reads its own writes; watch events queue behind the replies
 * that come before them. A read is not evaluated while the connection's unsent output is past a mark: it waits
 * until that output drains, so one connection's pipelined reads never hold the loop for long.
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
  /** The connection's last reply: once it is sent, the connection is shut down and what follows is dropped. */
  last?: boolean;
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
// Requests held while a connection's session is being opened, past which it is not read until they are served.
const MAX_WAITING_FRAMES = 4096;
// Unsent bytes past which reads wait for the output to drain, so one turn of the loop makes about this much output
// for a connection (plus one reply). One read from a client that never reads its answers brings 4,000 pipelined
// gets: answered at once (of a 512 KiB node) they held the loop for 0.5-1 s, past an honest client's read timeout.
// At the 8 MiB pause mark turns still took 40-140 ms on a 2-core VM, where fresh memory for each answer is slow; at
// 1 MiB none took over 40 ms, and a client that reads still gets its answers at about 150 MiB/s.
const HOLD_READS_AT_BYTES = 1024 * 1024;

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
  // The next turn that answers reads held for room in the output.
  #turn: TimerId | undefined;

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

  /** Hold `request` until the session is opened; read no more while many wait. */
  wait(request: WaitingRequest): void {
    this.waiting ??= [];
    this.waiting.push(request);
    if (this.waiting.length >= MAX_WAITING_FRAMES && this.connection.connected) this.connection.stopRead();
  }

  /** Read on, unless a reason to pause remains (output past the mark, too many replies or requests held). */
  readIfClear(): void {
    const connection = this.connection;
    if (connection.reading || !connection.connected || this.#backlogged) return;
    if (this.#slots.length >= PAUSE_AT_SLOTS / 2 || (this.waiting?.length ?? 0) >= MAX_WAITING_FRAMES) return;
    connection.startRead();
  }

  /**
   * The output has drained (the write-complete callback): answer the reads that waited for room, then read on; in
   * a turn of the loop of their own, as a write the kernel takes at once completes in the same task, and a chain of
   * such turns would hold the loop as long as the peer keeps reading.
   */
  drained(): void {
    if (this.#turn !== undefined) return;
    // Nothing to answer until a write in flight is durable (its reply fills the first place and sends): no turn to
    // take. With writes pipelined that is the common case, and a timer per socket write cost the loop 2-4 µs.
    const first = this.#slots[0];
    if (first === undefined || (first.frame === undefined && first.compute === undefined)) return this.readIfClear();
    this.#turn = this.connection.loop.runAfter(0, () => {
      this.#turn = undefined;
      this.#drain();
    });
  }

  /** The connection has closed: let go of the replies it can no longer send (a waiting read is never evaluated). */
  closed(): void {
    this.#slots.length = 0;
    if (this.#turn !== undefined) this.connection.loop.cancel(this.#turn);
    this.#turn = undefined;
  }

  /** Send `frame` now, or after the replies queued before it. */
  reply(frame: ServerFrame): void {
    if (this.#slots.length === 0) this.#write(this.connection, frame);
    else this.#push({ frame, compute: undefined });
  }

  /**
   * Send `frame` as the connection's last reply, after the replies queued before it (reads waiting for room in the
   * output among them), then shut the connection down.
   */
  replyLast(frame: ServerFrame): void {
    this.#push({ frame, compute: undefined, last: true });
    this.#drain();
  }

  /** Keep a place for a reply that comes later ({@linkcode RegistryConnection.fill}). */
  reserve(): ReplySlot {
    const slot: ReplySlot = { frame: undefined, compute: undefined };
    this.#push(slot);
    return slot;
  }

  /** Whether a reply computed now may be sent now: nothing is queued before it and the output has room. */
  get clear(): boolean {
    return this.#slots.length === 0 && !this.#backlogged;
  }

  /** Compute a reply when its turn comes and the output has room (now, if nothing is queued). */
  defer(compute: () => ServerFrame): void {
    if (this.#slots.length === 0 && !this.#backlogged) this.#write(this.connection, compute());
    else this.#push({ frame: undefined, compute });
  }

  /** Fill a reserved place, and (unless `send` is false) send every reply whose turn has come. */
  fill(slot: ReplySlot, frame: ServerFrame, send = true): void {
    slot.frame = frame;
    if (send) this.#drain();
  }

  /** Fill a reserved place with the connection's last reply (see {@linkcode RegistryConnection.replyLast}). */
  fillLast(slot: ReplySlot, frame: ServerFrame): void {
    slot.last = true;
    this.fill(slot, frame);
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

  // Whether the unsent output is past the mark at which reads wait.
  get #backlogged(): boolean {
    return this.connection.pendingBytes >= HOLD_READS_AT_BYTES;
  }

  #push(slot: ReplySlot): void {
    this.#slots.push(slot);
    // Stopped now, not at the high-water-mark callback (queued): no more requests join those already waiting.
    if ((this.#slots.length >= PAUSE_AT_SLOTS || this.#backlogged) && this.connection.connected) {
      this.connection.stopRead();
    }
  }

  #drain(): void {
    const slots = this.#slots;
    if (!this.connection.connected) {
      // Nothing can be sent any more: no reason to evaluate the reads still waiting.
      slots.length = 0;
      return;
    }
    let sent = 0;
    while (sent < slots.length) {
      const slot = slots[sent]!;
      if (slot.frame === undefined && (slot.compute === undefined || this.#backlogged)) break;
      sent++;
      this.#write(this.connection, slot.frame ?? slot.compute!());
      if (slot.last) {
        slots.length = 0;
        this.connection.shutdown();
        return;
      }
    }
    if (sent > 0) slots.splice(0, sent);
    this.readIfClear();
  }
}
