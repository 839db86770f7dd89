/**
 * Test helper: a loopback TCP proxy that reads the length-prefixed frames crossing it and, when armed, cuts the
 * connection at a chosen frame: right after the server's answer to a watched request (a create) reaches the
 * proxy — the server has committed it, the client never reads the answer — or as a watched request arrives, so
 * it never reaches the server. It speaks both registry protocols through a {@linkcode FrameInspector}.
 * Loopback only; a frame longer than {@linkcode MAX_PROXIED_FRAME_BYTES} cuts its connection.
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import { InetAddress } from "../../reactor/inet_address.ts";
import { TcpClient } from "../../reactor/tcp_client.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import { TcpServer } from "../../reactor/tcp_server.ts";
import { decodeClientFrame, decodeServerFrame } from "../_codec.ts";

/** The longest frame the proxy passes (both protocols' clients accept at most 16 MiB). */
export const MAX_PROXIED_FRAME_BYTES = 16 * 1024 * 1024;

/** How the proxy reads one protocol's frame bodies (without their 4-byte length). */
export interface FrameInspector {
  /** Frames each side sends first that are neither requests nor answers (ZooKeeper's handshake: 1). */
  readonly handshakeFrames: number;
  /** The xid of a client frame that is a watched request, else undefined. */
  watched(body: Uint8Array): number | undefined;
  /** The xid a server frame answers (events and pings included: they match no watched request). */
  replyXid(body: Uint8Array): number | undefined;
}

/** The built-in registry protocol (proto/registry.proto), watching creates. */
export const REGISTRY_CREATES: FrameInspector = {
  handshakeFrames: 0,
  watched: (body) => {
    // Decoded frames carry unset messages as null (protobufjs's defaults), not undefined.
    const frame = decodeClientFrame(body);
    return frame.create ? frame.xid : undefined;
  },
  replyXid: (body) => decodeServerFrame(body).xid,
};

const ZOOKEEPER_CREATE_OP = 1;

/** ZooKeeper's protocol (jute: a request starts with xid and op code, an answer with xid), watching creates. */
export const ZOOKEEPER_CREATES: FrameInspector = {
  handshakeFrames: 1,
  watched: (body) => {
    if (body.length < 8) return undefined;
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    return view.getInt32(4) === ZOOKEEPER_CREATE_OP ? view.getInt32(0) : undefined;
  },
  replyXid: (body) => body.length < 4 ? undefined : new DataView(body.buffer, body.byteOffset, 4).getInt32(0),
};

/** One client connection, its upstream, and the watched requests waiting for their answers. */
class Proxied {
  readonly front: TcpConnection;
  readonly upstream: TcpClient;
  upstreamConnection: TcpConnection | undefined;
  /** Client frames waiting for the upstream connection. */
  waiting: Uint8Array[] = [];
  framesFromClient = 0;
  framesFromServer = 0;
  readonly watchedXids = new Set<number>();
  cut = false;

  constructor(front: TcpConnection, upstream: TcpClient) {
    this.front = front;
    this.upstream = upstream;
  }
}

/**
 * A proxy for one server's TCP port that cuts connections at watched frames when armed.
 *
 * @example
 * ```ts ignore
 * const proxy = await CutProxy.start(loop, server.address, REGISTRY_CREATES);
 * const client = await RegistryClient.connect(proxy.address, { loop, heartbeatAddress: server.heartbeatAddress });
 * proxy.cutAfterReply(); // the next create's answer never reaches the client
 * ```
 */
export class CutProxy {
  readonly #loop: EventLoop;
  readonly #server: TcpServer;
  readonly #target: InetAddress;
  readonly #inspector: FrameInspector;
  readonly #connections = new Set<Proxied>();
  readonly #closing = new Set<Promise<void>>();
  #afterReply = 0;
  #beforeRequest = 0;
  #cuts = 0;
  #refusing = false;
  #cutCallback: (() => void) | undefined;

  private constructor(loop: EventLoop, server: TcpServer, target: InetAddress, inspector: FrameInspector) {
    this.#loop = loop;
    this.#server = server;
    this.#target = target;
    this.#inspector = inspector;
  }

  /** Listen on 127.0.0.1 (a free port) and forward to `target`. */
  static async start(loop: EventLoop, target: InetAddress, inspector: FrameInspector): Promise<CutProxy> {
    const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "CutProxy");
    const proxy = new CutProxy(loop, server, target, inspector);
    server.setConnectionCallback((connection) => proxy.#onFront(connection));
    server.setMessageCallback((connection, buffer) => {
      const proxied = connection.context as Proxied;
      proxy.#frames(proxied, buffer.peek(), (body) => proxy.#fromClient(proxied, body), (n) => buffer.retrieve(n));
    });
    await server.start();
    return proxy;
  }

  /** Where clients connect. */
  get address(): InetAddress {
    return this.#server.address;
  }

  /** Connections cut so far. */
  get cuts(): number {
    return this.#cuts;
  }

  /** Cut the connection at each of the next `times` answers to watched requests, which are dropped. */
  cutAfterReply(times = 1): void {
    this.#afterReply += times;
  }

  /** Cut the connection at each of the next `times` watched requests, which are dropped. */
  cutBeforeRequest(times = 1): void {
    this.#beforeRequest += times;
  }

  /** Be told of every cut the proxy makes, as it makes it (to change the world before the client reconnects). */
  setCutCallback(callback: (() => void) | undefined): void {
    this.#cutCallback = callback;
  }

  /** While true, close each new connection at once (the server is down, as far as the client can tell). */
  refuseConnections(refuse: boolean): void {
    this.#refusing = refuse;
  }

  /** Close every connection and stop listening. */
  async close(): Promise<void> {
    for (const proxied of [...this.#connections]) this.#cut(proxied);
    await Promise.all([...this.#closing]);
    await this.#server.stop();
  }

  #onFront(front: TcpConnection): void {
    if (!front.connected) {
      const proxied = front.context as Proxied | undefined;
      if (proxied !== undefined) this.#cut(proxied, false);
      return;
    }
    if (this.#refusing) {
      front.forceClose();
      return;
    }
    const upstream = new TcpClient(this.#loop, this.#target, "CutProxyUpstream", { maxAttempts: 1 });
    const proxied = new Proxied(front, upstream);
    front.context = proxied;
    this.#connections.add(proxied);
    upstream.setConnectFailedCallback(() => this.#cut(proxied, false));
    upstream.setConnectionCallback((connection) => {
      if (!connection.connected) {
        this.#cut(proxied, false);
        return;
      }
      proxied.upstreamConnection = connection;
      for (const body of proxied.waiting) this.#send(connection, body);
      proxied.waiting = [];
    });
    upstream.setMessageCallback((_connection, buffer) => {
      this.#frames(proxied, buffer.peek(), (body) => this.#fromServer(proxied, body), (n) => buffer.retrieve(n));
    });
    upstream.connect();
  }

  /** Hand each whole frame of `bytes` to `frame`, then drop what was handed over. */
  #frames(proxied: Proxied, bytes: Uint8Array, frame: (body: Uint8Array) => void, retrieve: (n: number) => void) {
    let offset = 0;
    while (!proxied.cut && bytes.length - offset >= 4) {
      const length = new DataView(bytes.buffer, bytes.byteOffset + offset, 4).getUint32(0);
      if (length > MAX_PROXIED_FRAME_BYTES) {
        this.#cut(proxied, false);
        break;
      }
      if (bytes.length - offset - 4 < length) break;
      frame(bytes.slice(offset + 4, offset + 4 + length));
      offset += 4 + length;
    }
    retrieve(proxied.cut ? bytes.length : offset);
  }

  #fromClient(proxied: Proxied, body: Uint8Array): void {
    if (proxied.framesFromClient++ >= this.#inspector.handshakeFrames) {
      const xid = this.#inspector.watched(body);
      if (xid !== undefined) {
        if (this.#beforeRequest > 0) {
          this.#beforeRequest--;
          this.#cut(proxied);
          return;
        }
        proxied.watchedXids.add(xid);
      }
    }
    if (proxied.upstreamConnection?.connected) this.#send(proxied.upstreamConnection, body);
    else proxied.waiting.push(body);
  }

  #fromServer(proxied: Proxied, body: Uint8Array): void {
    if (proxied.framesFromServer++ >= this.#inspector.handshakeFrames) {
      const xid = this.#inspector.replyXid(body);
      if (xid !== undefined && proxied.watchedXids.delete(xid) && this.#afterReply > 0) {
        this.#afterReply--;
        this.#cut(proxied);
        return;
      }
    }
    if (proxied.front.connected) this.#send(proxied.front, body);
  }

  #send(connection: TcpConnection, body: Uint8Array): void {
    const frame = new Uint8Array(4 + body.length);
    new DataView(frame.buffer).setUint32(0, body.length);
    frame.set(body, 4);
    connection.send(frame);
  }

  /** Reset both sides; `counted` when the proxy chose to (not when a side went by itself). */
  #cut(proxied: Proxied, counted = true): void {
    if (proxied.cut) return;
    proxied.cut = true;
    this.#connections.delete(proxied);
    proxied.front.forceClose();
    const closing = proxied.upstream.close();
    this.#closing.add(closing);
    closing.finally(() => this.#closing.delete(closing));
    if (counted) {
      this.#cuts++;
      this.#cutCallback?.();
    }
  }
}
