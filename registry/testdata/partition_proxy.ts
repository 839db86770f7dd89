/**
 * Test helper: a loopback TCP and UDP proxy that a test can partition and heal, to play a network between a
 * registry client and its server. Loopback only; every buffer and table is bounded.
 *
 * What a partition does, as a real one would:
 *
 * - TCP: nothing crosses in either direction and no socket is closed. Bytes are held (up to
 *   {@linkcode HELD_BYTES_LIMIT} per direction, the rest dropped) and delivered at the heal, as TCP's
 *   retransmission would deliver them; with `tcp: "drop"` they are dropped instead (a stream with a hole: the
 *   receiver must survive garbage). A close on one side is held too and reaches the other side at the heal,
 *   after the held bytes. A connection accepted during the partition reaches the server only at the heal (its
 *   SYN would not have crossed; the kernel accepts it here regardless, so the client sees it connected).
 * - UDP: datagrams are dropped both ways (UDP has no retransmission).
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import { InetAddress } from "../../reactor/inet_address.ts";
import { TcpClient } from "../../reactor/tcp_client.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import { TcpServer } from "../../reactor/tcp_server.ts";
import { UdpSocket } from "../../reactor/udp_socket.ts";

/** Bytes held per direction of one connection during a partition; more are dropped. */
export const HELD_BYTES_LIMIT = 1024 * 1024;
/** UDP clients (source addresses) the proxy keeps an upstream socket for; datagrams from more are dropped. */
export const MAX_UDP_CLIENTS = 64;

/** Which way a datagram went. */
export type Direction = "toServer" | "toClient";

/** Options of {@linkcode PartitionProxy.partition}. */
export interface PartitionOptions {
  /**
   * Hold TCP bytes for delivery at the heal (TCP's retransmission) or drop them (a stream with a hole).
   * @default {"hold"}
   */
  tcp?: "hold" | "drop";
}

/** One direction of a proxied connection: where its bytes go, what waits, and whether its sender closed. */
class Pipe {
  held: Uint8Array[] = [];
  heldBytes = 0;
  closed = false;

  hold(data: Uint8Array): void {
    const room = HELD_BYTES_LIMIT - this.heldBytes;
    if (room <= 0) return;
    const kept = data.length > room ? data.slice(0, room) : data.slice();
    this.held.push(kept);
    this.heldBytes += kept.length;
  }

  flush(to: TcpConnection): void {
    for (const chunk of this.held) to.send(chunk);
    this.held = [];
    this.heldBytes = 0;
  }
}

/** One client connection and its upstream connection to the server. */
class ProxiedConnection {
  readonly front: TcpConnection;
  readonly toServer: Pipe = new Pipe();
  readonly toClient: Pipe = new Pipe();
  upstream: TcpClient | undefined;
  upstreamConnection: TcpConnection | undefined;

  constructor(front: TcpConnection) {
    this.front = front;
  }
}

/**
 * A partitionable proxy for one server's TCP port and UDP heartbeat port.
 *
 * @example
 * ```ts ignore
 * const proxy = await PartitionProxy.start(loop, server.address, server.heartbeatAddress);
 * const client = await RegistryClient.connect(proxy.tcpAddress, { loop, heartbeatAddress: proxy.udpAddress });
 * proxy.partition();
 * // ... the server expires the session ...
 * proxy.heal();
 * ```
 */
export class PartitionProxy {
  readonly #loop: EventLoop;
  readonly #server: TcpServer;
  readonly #udp: UdpSocket;
  #tcpTarget: InetAddress;
  #udpTarget: InetAddress;
  readonly #connections = new Set<ProxiedConnection>();
  readonly #udpClients = new Map<string, { from: InetAddress; socket: Promise<UdpSocket> }>();
  #partitioned = false;
  #udpCut = false;
  #dropTcp = false;
  #closed = false;
  #accepted = 0;
  #tap: ((direction: Direction, data: Uint8Array) => void) | undefined;

  private constructor(
    loop: EventLoop,
    server: TcpServer,
    udp: UdpSocket,
    tcpTarget: InetAddress,
    udpTarget: InetAddress,
  ) {
    this.#loop = loop;
    this.#server = server;
    this.#udp = udp;
    this.#tcpTarget = tcpTarget;
    this.#udpTarget = udpTarget;
  }

  /** Listen on 127.0.0.1 (TCP and UDP, each on a free port) and forward to the targets. */
  static async start(loop: EventLoop, tcpTarget: InetAddress, udpTarget: InetAddress): Promise<PartitionProxy> {
    const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "PartitionProxy");
    await server.start();
    const udp = await UdpSocket.bind(loop, new InetAddress("127.0.0.1", 0));
    const proxy = new PartitionProxy(loop, server, udp, tcpTarget, udpTarget);
    server.setConnectionCallback((connection) => proxy.#onFront(connection));
    server.setMessageCallback((connection, buffer) => {
      const proxied = connection.context as ProxiedConnection;
      const data = buffer.peek();
      proxy.#forward(proxied.toServer, data, proxied.upstreamConnection);
      buffer.retrieveAll();
    });
    udp.setMessageCallback((data, from) => proxy.#onClientDatagram(data, from));
    return proxy;
  }

  /** Where clients connect (TCP). */
  get tcpAddress(): InetAddress {
    return this.#server.address;
  }

  /** Where clients send heartbeats (UDP). */
  get udpAddress(): InetAddress {
    return this.#udp.address;
  }

  /** The UDP source addresses of the clients seen so far (where the server's answers go back to). */
  get udpClients(): InetAddress[] {
    return [...this.#udpClients.values()].map((client) => client.from);
  }

  /** TCP connections accepted so far. */
  get accepted(): number {
    return this.#accepted;
  }

  /** Whether TCP is cut now. */
  get partitioned(): boolean {
    return this.#partitioned;
  }

  /** Be told of every datagram that crosses (not the dropped ones); `data` is valid only during the call. */
  setDatagramTap(tap: ((direction: Direction, data: Uint8Array) => void) | undefined): void {
    this.#tap = tap;
  }

  /** Send new connections and datagrams elsewhere from now on (existing connections keep their server). */
  retarget(tcpTarget: InetAddress, udpTarget: InetAddress = this.#udpTarget): void {
    this.#tcpTarget = tcpTarget;
    this.#udpTarget = udpTarget;
  }

  /** Cut the network (see the module doc). */
  partition(options: PartitionOptions = {}): void {
    this.#partitioned = true;
    this.#udpCut = true;
    this.#dropTcp = (options.tcp ?? "hold") === "drop";
  }

  /** Mend the network: held bytes and closes are delivered, deferred connections reach the server. */
  heal(): void {
    this.#partitioned = false;
    this.#udpCut = false;
    for (const proxied of [...this.#connections]) {
      if (proxied.upstream === undefined && !proxied.toServer.closed) this.#connectUpstream(proxied);
      if (proxied.upstreamConnection?.connected) {
        proxied.toServer.flush(proxied.upstreamConnection);
        if (proxied.toServer.closed) proxied.upstreamConnection.shutdown();
      }
      if (proxied.front.connected) {
        proxied.toClient.flush(proxied.front);
        if (proxied.toClient.closed) proxied.front.shutdown();
      }
      this.#forgetIfDone(proxied);
    }
  }

  /** Mend the network for datagrams only: TCP stays cut (a path where only UDP gets through). */
  healUdp(): void {
    this.#udpCut = false;
  }

  /** Reset every TCP connection now, both sides (datagram routes stay). */
  async dropConnections(): Promise<void> {
    const connections = [...this.#connections];
    this.#connections.clear();
    await Promise.all(connections.map((proxied) => proxied.upstream?.close()));
    await this.#server.closeConnections();
  }

  #forgetIfDone(proxied: ProxiedConnection): void {
    const upstreamDone = proxied.upstream === undefined || proxied.toClient.closed;
    if (proxied.toServer.closed && upstreamDone) this.#connections.delete(proxied);
  }

  /** Close everything. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.dropConnections();
    await this.#server.stop();
    await this.#udp.close();
    for (const client of this.#udpClients.values()) await (await client.socket).close();
    this.#udpClients.clear();
  }

  // --- TCP ---

  #onFront(front: TcpConnection): void {
    if (front.connected) {
      this.#accepted++;
      const proxied = new ProxiedConnection(front);
      front.context = proxied;
      this.#connections.add(proxied);
      if (this.#closed) front.forceClose();
      else if (!this.#partitioned) this.#connectUpstream(proxied);
      return;
    }
    const proxied = front.context as ProxiedConnection | undefined;
    if (proxied === undefined) return;
    proxied.toServer.closed = true;
    if (!this.#partitioned) {
      if (proxied.upstreamConnection?.connected) {
        proxied.toServer.flush(proxied.upstreamConnection);
        proxied.upstreamConnection.shutdown();
      } else {
        // Still connecting: abandon the attempt (its socket is closed if it arrives).
        proxied.upstream?.stop();
        proxied.toClient.closed = true;
      }
    }
    this.#forgetIfDone(proxied);
  }

  #connectUpstream(proxied: ProxiedConnection): void {
    const upstream = new TcpClient(this.#loop, this.#tcpTarget, "PartitionProxyUpstream", { maxAttempts: 1 });
    proxied.upstream = upstream;
    upstream.setConnectFailedCallback(() => {
      proxied.toClient.closed = true;
      proxied.front.forceClose();
    });
    upstream.setConnectionCallback((connection) => {
      if (connection.connected) {
        proxied.upstreamConnection = connection;
        if (this.#partitioned) return;
        proxied.toServer.flush(connection);
        if (proxied.toServer.closed) connection.shutdown();
        return;
      }
      proxied.toClient.closed = true;
      if (!this.#partitioned && proxied.front.connected) {
        proxied.toClient.flush(proxied.front);
        proxied.front.shutdown();
      }
      this.#forgetIfDone(proxied);
    });
    upstream.setMessageCallback((_connection, buffer) => {
      this.#forward(proxied.toClient, buffer.peek(), proxied.front);
      buffer.retrieveAll();
    });
    upstream.connect();
  }

  #forward(pipe: Pipe, data: Uint8Array, to: TcpConnection | undefined): void {
    if (this.#partitioned) {
      if (!this.#dropTcp) pipe.hold(data);
    } else if (to?.connected) {
      to.send(data);
    } else {
      // Upstream still connecting: it gets these when it connects.
      pipe.hold(data);
    }
  }

  // --- UDP ---

  #onClientDatagram(data: Uint8Array, from: InetAddress): void {
    if (this.#udpCut || this.#closed) return;
    const key = from.toString();
    let client = this.#udpClients.get(key);
    if (client === undefined) {
      if (this.#udpClients.size >= MAX_UDP_CLIENTS) return;
      const socket = UdpSocket.bind(this.#loop, new InetAddress("127.0.0.1", 0)).then((socket) => {
        socket.setMessageCallback((answer) => {
          if (this.#udpCut || this.#closed) return;
          this.#tap?.("toClient", answer);
          this.#udp.send(answer, from);
        });
        return socket;
      });
      this.#udpClients.set(key, client = { from, socket });
    }
    const copy = data.slice();
    this.#tap?.("toServer", copy);
    client.socket.then((socket) => {
      if (!this.#udpCut && !this.#closed) socket.send(copy, this.#udpTarget);
    });
  }
}
