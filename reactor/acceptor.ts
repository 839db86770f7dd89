/**
 * The accept loop on a listening socket (muduo's Acceptor). It survives accept errors such as EMFILE by backing
 * off instead of spinning or dying.
 *
 * @module
 */

import type { RawListener, RawSocket, TlsServerOptions } from "./backend/net_backend.ts";
import type { EventLoop } from "./event_loop.ts";
import { InetAddress } from "./inet_address.ts";
import { getLogger } from "./logger.ts";
import type { TimerId } from "./timer_queue.ts";

/** Called for each accepted socket; the callee owns it from then on. */
export type NewConnectionCallback = (socket: RawSocket) => void;

/** Options of {@linkcode Acceptor}. */
export interface AcceptorOptions {
  /**
   * Listen with SO_REUSEPORT, so several loops (Workers) can share the port.
   * @default {false}
   */
  reusePort?: boolean;
  /**
   * Serve TLS with this PEM certificate and key.
   * @default {undefined}
   */
  tls?: TlsServerOptions;
  /**
   * First back-off after an accept error, in milliseconds; doubles up to `maxBackoffMs`.
   * @default {10}
   */
  minBackoffMs?: number;
  /**
   * Longest back-off after repeated accept errors, in milliseconds.
   * @default {1000}
   */
  maxBackoffMs?: number;
}

/**
 * Accepts connections on one address and hands each socket to the new-connection callback.
 * Used by TcpServer; must be used from its loop's isolate.
 */
export class Acceptor {
  /** The loop the acceptor runs in. */
  readonly loop: EventLoop;
  #requested: InetAddress;
  #options: Required<Omit<AcceptorOptions, "tls">> & Pick<AcceptorOptions, "tls">;
  #listener: RawListener | undefined;
  #closed = false;
  #callback: NewConnectionCallback | undefined;
  #acceptLoopDone: Promise<void> | undefined;
  #backoffTimer: TimerId | undefined;
  #wakeBackoff: (() => void) | undefined;

  /** Prepare to listen on `listenAddress`; nothing is bound until {@linkcode Acceptor.listen}. */
  constructor(loop: EventLoop, listenAddress: InetAddress, options: AcceptorOptions = {}) {
    this.loop = loop;
    this.#requested = listenAddress;
    this.#options = {
      reusePort: options.reusePort ?? false,
      minBackoffMs: options.minBackoffMs ?? 10,
      maxBackoffMs: options.maxBackoffMs ?? 1000,
      tls: options.tls,
    };
    if (this.#options.reusePort && !loop.backend.supportsReusePort) {
      throw new TypeError(`Cannot listen with 'reusePort' as the ${loop.backend.name} backend does not support it`);
    }
  }

  /** Whether the acceptor is listening. */
  get listening(): boolean {
    return this.#listener !== undefined && !this.#closed;
  }

  /** The bound address (with the real port when 0 was asked for). Throws before `listen`. */
  get address(): InetAddress {
    if (this.#listener === undefined) {
      throw new TypeError(`Cannot get the address of acceptor for ${this.#requested} as it is not listening`);
    }
    const { hostname, port } = this.#listener.address;
    return new InetAddress(hostname, port);
  }

  /** Set the callback that receives each accepted socket. */
  setNewConnectionCallback(callback: NewConnectionCallback): void {
    this.#callback = callback;
  }

  /** Bind, listen and start accepting. */
  async listen(): Promise<void> {
    if (this.#listener !== undefined || this.#closed) {
      throw new TypeError(`Cannot listen on ${this.#requested} as the acceptor has already listened`);
    }
    this.#listener = await this.loop.backend.listen({
      hostname: this.#requested.hostname,
      port: this.#requested.port,
      reusePort: this.#options.reusePort,
      tls: this.#options.tls,
    });
    this.#acceptLoopDone = this.#acceptLoop(this.#listener);
  }

  /** Stop listening. Resolves when the accept loop has ended. Connections already accepted are not touched. */
  async close(): Promise<void> {
    if (this.#closed) return await this.#acceptLoopDone;
    this.#closed = true;
    this.#listener?.close();
    if (this.#backoffTimer !== undefined) {
      this.loop.cancel(this.#backoffTimer);
      this.#backoffTimer = undefined;
      this.#wakeBackoff?.();
    }
    await this.#acceptLoopDone;
  }

  async #acceptLoop(listener: RawListener): Promise<void> {
    let backoffMs = 0;
    while (!this.#closed) {
      let socket: RawSocket;
      try {
        socket = await listener.accept();
      } catch (error) {
        if (this.#closed) return;
        // EMFILE and friends: the pending connection stays in the kernel's queue; wait and try again rather than
        // spinning at 100% CPU (muduo keeps an idle fd for the same reason).
        backoffMs = Math.min(this.#options.maxBackoffMs, Math.max(this.#options.minBackoffMs, backoffMs * 2));
        getLogger().error(`Acceptor on ${this.#requested} failed to accept, retrying in ${backoffMs} ms`, { error });
        await new Promise<void>((resolve) => {
          this.#wakeBackoff = resolve;
          this.#backoffTimer = this.loop.runAfter(backoffMs, resolve);
        });
        this.#backoffTimer = undefined;
        this.#wakeBackoff = undefined;
        continue;
      }
      backoffMs = 0;
      if (this.#closed) {
        socket.close();
        return;
      }
      if (this.#callback === undefined) {
        socket.close();
      } else {
        try {
          this.#callback(socket);
        } catch (error) {
          getLogger().error(`New-connection callback of acceptor on ${this.#requested} threw`, { error });
        }
      }
    }
  }
}
