/**
 * A UDP socket on the loop's backend, for the registry's heartbeats: fire-and-forget sends, a message callback.
 *
 * @module
 */

import type { RawUdpSocket } from "./backend/net_backend.ts";
import type { EventLoop } from "./event_loop.ts";
import { InetAddress } from "./inet_address.ts";
import { getLogger } from "./logger.ts";

/** The largest UDP payload over IPv4. */
export const MAX_DATAGRAM_BYTES = 65507;

/**
 * Receives a datagram; `data` is valid only during the call.
 *
 * @example
 * ```ts
 * import type { DatagramCallback } from "./udp_socket.ts";
 *
 * const onDatagram: DatagramCallback = (data, from) => console.log(`${data.length} bytes from ${from}`);
 * ```
 */
export type DatagramCallback = (data: Uint8Array, from: InetAddress, receiveTimeMs: number) => void;

/**
 * A bound UDP socket.
 *
 * @example
 * ```ts
 * import { EventLoop } from "./event_loop.ts";
 * import { InetAddress } from "./inet_address.ts";
 * import { UdpSocket } from "./udp_socket.ts";
 * import assert from "node:assert/strict";
 *
 * const loop = new EventLoop();
 * const a = await UdpSocket.bind(loop, new InetAddress("127.0.0.1", 0));
 * const b = await UdpSocket.bind(loop, new InetAddress("127.0.0.1", 0));
 * const got = Promise.withResolvers<string>();
 * b.setMessageCallback((data) => got.resolve(new TextDecoder().decode(data)));
 * a.send(new TextEncoder().encode("beat"), b.address);
 * assert.equal(await got.promise, "beat");
 * await a.close();
 * await b.close();
 * ```
 */
export class UdpSocket {
  /** The loop the socket belongs to. */
  readonly loop: EventLoop;
  /** The bound address. */
  readonly address: InetAddress;
  readonly #socket: RawUdpSocket;
  #callback: DatagramCallback | undefined;
  #sendErrors = 0;
  #received = 0;
  #closed = false;
  #sending: Promise<void> = Promise.resolve();

  private constructor(loop: EventLoop, socket: RawUdpSocket) {
    this.loop = loop;
    this.#socket = socket;
    this.address = new InetAddress(socket.address.hostname, socket.address.port);
    socket.start(
      (data, from) => {
        this.#received++;
        const callback = this.#callback;
        if (callback === undefined) return;
        try {
          callback(data, new InetAddress(from.hostname, from.port), loop.now());
        } catch (error) {
          getLogger().error(`UdpSocket ${this.address} message callback threw`, { error });
        }
      },
      (error) => getLogger().warn(`UdpSocket ${this.address} receive error`, { error }),
    );
  }

  /** Bind a socket on `address` (port 0 picks one). */
  static async bind(loop: EventLoop, address: InetAddress): Promise<UdpSocket> {
    const socket = await loop.backend.bindUdp({ hostname: address.hostname, port: address.port });
    return new UdpSocket(loop, socket);
  }

  /** Datagrams that could not be sent. */
  get sendErrors(): number {
    return this.#sendErrors;
  }

  /** Datagrams received. */
  get received(): number {
    return this.#received;
  }

  /** Set the callback for arriving datagrams (those before it are dropped). */
  setMessageCallback(callback: DatagramCallback): void {
    this.#callback = callback;
  }

  /** Send one datagram, fire-and-forget: failures are logged and counted. */
  send(data: Uint8Array, to: InetAddress): void {
    if (data.length > MAX_DATAGRAM_BYTES) {
      throw new RangeError(
        `Cannot send datagram as its size must be at most ${MAX_DATAGRAM_BYTES} bytes: current value is ${data.length}`,
      );
    }
    if (this.#closed) {
      this.#sendErrors++;
      return;
    }
    // The runtimes may run concurrent send ops out of order; chaining keeps datagrams in the order they were
    // sent (heartbeats carry an increasing counter). The data is copied since the caller may reuse it.
    const copy = data.slice();
    this.#sending = this.#sending.then(() => this.#socket.send(copy, { hostname: to.hostname, port: to.port })).catch(
      (error) => {
        this.#sendErrors++;
        getLogger().debug(`UdpSocket ${this.address} failed to send to ${to}`, { error });
      },
    );
  }

  /** Close the socket once queued datagrams are sent; resolves when closed. Idempotent. */
  close(): Promise<void> {
    this.#closed = true;
    return this.#sending.then(() => this.#socket.close());
  }
}
