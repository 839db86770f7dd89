/**
 * The reconnect loop of both registry clients: one TCP connection at a time to one of a list of servers (shuffled
 * per client if asked, as ZooKeeper's client does), the next server tried at once after a failure, a jittered
 * back-off (doubling to a cap) after a full pass without luck, so clients cut off together do not all come back in
 * the same millisecond, and (for clients that want it) a redial at once when a connection that carried a session
 * goes.
 *
 * @module
 */

import type { TlsClientOptions } from "../../reactor/backend/net_backend.ts";
import type { ConnectionCallback, MessageCallback } from "../../reactor/callbacks.ts";
import type { EventLoop } from "../../reactor/event_loop.ts";
import type { InetAddress } from "../../reactor/inet_address.ts";
import { getLogger } from "../../reactor/logger.ts";
import { TcpClient } from "../../reactor/tcp_client.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import type { TimerId } from "../../reactor/timer_queue.ts";

/** Options of {@linkcode ServerDialer}. */
export interface ServerDialerOptions {
  /** The first back-off, in milliseconds (it doubles per full pass over the servers). */
  initialDelayMs: number;
  /** The longest back-off, in milliseconds. */
  maxDelayMs: number;
  /** How long one connection attempt may take, in milliseconds. */
  connectTimeoutMs: number;
  /**
   * Dial again at once when a connection that carried a session goes (the built-in client), instead of going on
   * to the next server under the back-off as after a failure (ZooKeeper's client, whose session a successor may
   * be taking over: redialing at once would snatch it back).
   */
  redialLostSessionAtOnce: boolean;
  /** Speak TLS. */
  tls?: TlsClientOptions;
  /** Try the servers in an order of this client's own (shuffled once), not the order given. */
  shuffle?: boolean;
}

/**
 * Keeps one connection to one of `servers` until closed. Called on the loop only. The connection callback is
 * told of every connection made and every connection lost (as TcpClient's is); the message callback goes straight
 * to the connection. The dialer owns its TcpClients; the client owns what it sends on the connections.
 */
export class ServerDialer {
  readonly #loop: EventLoop;
  readonly #servers: readonly InetAddress[];
  readonly #name: string;
  readonly #options: ServerDialerOptions;
  #connectionCallback: ConnectionCallback = () => {};
  #messageCallback: MessageCallback = () => {};
  #client: TcpClient | undefined;
  #connection: TcpConnection | undefined;
  #index = 0;
  #delayMs: number;
  #timer: TimerId | undefined;
  #atOnce = false;
  #carriesSession = false;
  #closed = false;

  constructor(loop: EventLoop, servers: readonly InetAddress[], name: string, options: ServerDialerOptions) {
    this.#loop = loop;
    this.#servers = options.shuffle ? shuffled(servers) : servers;
    this.#name = name;
    this.#options = options;
    this.#delayMs = options.initialDelayMs;
  }

  /** The server of the current connection, if any. */
  get server(): InetAddress | undefined {
    return this.#connection === undefined ? undefined : this.#servers[this.#index];
  }

  /** Told of each connection made (`connected`) and lost. */
  setConnectionCallback(callback: ConnectionCallback): void {
    this.#connectionCallback = callback;
  }

  /** Told of the bytes of every connection. */
  setMessageCallback(callback: MessageCallback): void {
    this.#messageCallback = callback;
  }

  /** Start dialing the first server. */
  start(): void {
    this.#dial();
  }

  /** A session opened on the current connection: the back-off starts over. */
  sessionOpened(): void {
    this.#carriesSession = true;
    this.#delayMs = this.#options.initialDelayMs;
  }

  /** The current connection's session expired: when the connection goes, dial the next server without waiting. */
  redialAtOnce(): void {
    this.#atOnce = true;
    this.#delayMs = this.#options.initialDelayMs;
  }

  /** Stop dialing and close the connection. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) this.#loop.cancel(this.#timer);
    this.#timer = undefined;
    const client = this.#client;
    this.#client = undefined;
    await client?.close();
  }

  #dial(): void {
    if (this.#closed) return;
    const server = this.#servers[this.#index]!;
    const client = new TcpClient(this.#loop, server, `${this.#name}->${server}`, {
      maxAttempts: 1,
      connectTimeoutMs: this.#options.connectTimeoutMs,
      tls: this.#options.tls,
    });
    this.#client = client;
    client.setConnectionCallback((connection) => {
      if (client !== this.#client) return;
      if (connection.connected) {
        this.#connection = connection;
        this.#connectionCallback(connection);
        return;
      }
      this.#connectionCallback(connection);
      this.#connection = undefined;
      this.#redial(this.#atOnce || (this.#carriesSession && this.#options.redialLostSessionAtOnce));
    });
    client.setMessageCallback(this.#messageCallback);
    client.setConnectFailedCallback((error) => {
      if (client !== this.#client) return;
      getLogger().debug(`${this.#name}: cannot connect to ${server}`, { error });
      this.#redial(false);
    });
    client.connect();
  }

  #redial(atOnce: boolean): void {
    this.#atOnce = false;
    this.#carriesSession = false;
    if (this.#closed || this.#timer !== undefined) return;
    const old = this.#client;
    this.#client = undefined;
    old?.close().catch(() => {});
    this.#index = (this.#index + 1) % this.#servers.length;
    let delayMs = 0;
    if (atOnce) {
      this.#delayMs = this.#options.initialDelayMs;
    } else if (this.#index === 0) {
      // A full pass over the servers without a session backs off; the next server is tried at once otherwise.
      delayMs = Math.round(this.#delayMs * (0.5 + Math.random() / 2));
      this.#delayMs = Math.min(this.#delayMs * 2, this.#options.maxDelayMs);
    }
    this.#timer = this.#loop.runAfter(delayMs, () => {
      this.#timer = undefined;
      this.#dial();
    });
  }
}

/** A copy of `items` in random order (Fisher-Yates). */
function shuffled<T>(items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}
