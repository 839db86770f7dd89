/**
 * The registry client's UDP side: heartbeats signed with the session's key, sent in counter order, and the
 * server's signed expiry notices, believed only after their proof checks out.
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import { InetAddress } from "../../reactor/inet_address.ts";
import { getLogger } from "../../reactor/logger.ts";
import type { TimerId } from "../../reactor/timer_queue.ts";
import { UdpSocket } from "../../reactor/udp_socket.ts";
import { encodeHeartbeat, HEARTBEAT_FLAG_EXPIRED, parseHeartbeat, verifyHeartbeat } from "../heartbeat.ts";

/** Told of a valid expiry notice for the session the heartbeats are for. */
export type ExpiryNoticeCallback = (sessionId: bigint) => void;

/**
 * One client's heartbeat socket. Called on the client's loop only. It owns its UDP socket. A session's counter
 * continues across reconnects ({@linkcode ClientHeartbeats.start} again with the same key) and starts over with a
 * new key; it never falls below the floor the server names ({@linkcode ClientHeartbeats.raiseCounter}).
 */
export class ClientHeartbeats {
  readonly #loop: EventLoop;
  readonly #udp: UdpSocket;
  #expiryNoticeCallback: ExpiryNoticeCallback = () => {};
  #key: CryptoKey | undefined;
  #counter = 0n;
  #sessionId = 0n;
  #target: InetAddress | undefined;
  #timer: TimerId | undefined;
  #sends: Promise<void> = Promise.resolve();
  #noticeInFlight = false;
  #closed = false;

  private constructor(loop: EventLoop, udp: UdpSocket) {
    this.#loop = loop;
    this.#udp = udp;
  }

  /** Bind a socket of the server's family on any port. */
  static async bind(loop: EventLoop, server: InetAddress): Promise<ClientHeartbeats> {
    const udp = await UdpSocket.bind(loop, new InetAddress(server.family === 6 ? "::" : "0.0.0.0", 0));
    const heartbeats = new ClientHeartbeats(loop, udp);
    udp.setMessageCallback((data) => heartbeats.#onDatagram(data));
    return heartbeats;
  }

  /** Told of each valid expiry notice (verified against the key, for a counter this client sent). */
  setExpiryNoticeCallback(callback: ExpiryNoticeCallback): void {
    this.#expiryNoticeCallback = callback;
  }

  /** A new session's key: the counter starts over. */
  useKey(key: CryptoKey): void {
    this.#key = key;
    this.#counter = 0n;
  }

  /** The server's floor: the next counter sent is at least `floor`. */
  raiseCounter(floor: bigint): void {
    if (floor - 1n > this.#counter) this.#counter = floor - 1n;
  }

  /** Send one heartbeat for `sessionId` to `target` now and then every `intervalMs`. */
  start(sessionId: bigint, target: InetAddress, intervalMs: number): void {
    this.stop();
    this.#sessionId = sessionId;
    this.#target = target;
    this.#send();
    this.#timer = this.#loop.runEvery(intervalMs, () => this.#send());
  }

  /** Stop sending (the key stays: a reconnect of the same session continues the counter). */
  stop(): void {
    if (this.#timer !== undefined) this.#loop.cancel(this.#timer);
    this.#timer = undefined;
  }

  /** The session expired: stop, and forget its key and counter. */
  forget(): void {
    this.stop();
    this.#key = undefined;
    this.#counter = 0n;
    this.#sessionId = 0n;
  }

  /** Stop, let the heartbeats being signed leave, and close the socket. */
  async close(): Promise<void> {
    this.stop();
    this.#closed = true;
    await this.#sends;
    await this.#udp.close();
  }

  #send(): void {
    const key = this.#key;
    const target = this.#target;
    const sessionId = this.#sessionId;
    if (key === undefined || target === undefined || sessionId === 0n || this.#closed) return;
    const counter = ++this.#counter;
    // Chained, so datagrams leave in counter order (the server drops a counter it has already passed).
    this.#sends = this.#sends.then(async () => {
      const datagram = await encodeHeartbeat(sessionId, counter, key);
      if (!this.#closed) this.#udp.send(datagram, target);
    });
  }

  /**
   * A datagram on the heartbeat socket: believed only as an expiry notice for the current session, for a counter
   * this client has sent, with a proof made with the session's key. One verification at a time, so a flood of
   * datagrams costs one HMAC per round trip of the crypto, not one each; a real notice comes with every
   * heartbeat, and the read timeout backs it up.
   */
  #onDatagram(data: Uint8Array): void {
    const notice = parseHeartbeat(data);
    const key = this.#key;
    const sessionId = this.#sessionId;
    if (
      notice === undefined || notice.flags !== HEARTBEAT_FLAG_EXPIRED || key === undefined || sessionId === 0n ||
      notice.sessionId !== sessionId || notice.counter < 1n || notice.counter > this.#counter || this.#noticeInFlight
    ) {
      return;
    }
    this.#noticeInFlight = true;
    verifyHeartbeat(notice.signed, notice.proof, key).then((valid) => {
      this.#noticeInFlight = false;
      if (valid) this.#expiryNoticeCallback(sessionId);
      else getLogger().debug("RegistryClient: ignored an expiry notice with a wrong proof");
    }, () => {
      this.#noticeInFlight = false;
    });
  }
}
