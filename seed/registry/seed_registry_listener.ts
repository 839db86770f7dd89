/**
 * The C++ seed's registry protocol (dwt_src) on a port of its own, plugged into a native RegistryServer as one
 * more listener: the seed's `client_cli` and client library connect, heartbeat and run their seven operations on
 * the native tree, its durability and its ACLs. Opt-in (`seedPort` in the registry config).
 *
 * What a seed client sees, and how it differs from the seed:
 * - one TCP port, and the UDP heartbeats `HeartbeatMessage{sessionId}` on the same port number, as the seed;
 * - a request ends where its message does (seed_request_boundary.ts), not where a read does: split or joined
 *   requests are served; each gets its raw `WrappedResponse`, and once every request read so far is answered the
 *   server half-closes (the seed kept the connection open; its clients read once and close anyway);
 * - a connection must bring a whole request within `requestTimeoutMs` of opening and close within it too; bytes
 *   that cannot start a request are answered the seed's `WrappedResponse{Error}` and closed; both are counted;
 * - sessions expire as the seed's do: `heartbeatMaxCount` periods of `heartbeatTimeoutMs` with no heartbeat
 *   (5 × 12 s); they are native sessions underneath (the native session limits, logged, restored after a restart,
 *   their ephemeral nodes deleted for everyone when they end);
 * - identity: every seed session acts with `token` (none by default: it may change only what an anonymous native
 *   session may). Seed session ids are bearer tokens, as in the seed (and visible as a node's ephemeralOwner): run
 *   the port where only trusted clients reach it. Heartbeats and changes are accepted only for sessions this port
 *   opened, so a native session's id (also visible) gives a seed client nothing.
 *
 * @module
 */

import type { InetAddress } from "../../reactor/inet_address.ts";
import { InetAddress as Address } from "../../reactor/inet_address.ts";
import { getLogger } from "../../reactor/logger.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import { TcpServer } from "../../reactor/tcp_server.ts";
import type { TimerId } from "../../reactor/timer_queue.ts";
import { UdpSocket } from "../../reactor/udp_socket.ts";
import { RegistryError } from "../../registry/registry_error.ts";
import type { RegistryListener, RegistryListenerHost, SessionTiming } from "../../registry/server/registry_listener.ts";
import { readFields } from "./_proto_wire.ts";
import { isSeedOperation, serveSeedOperation } from "./_seed_operations.ts";
import {
  decodeSeedServiceRequest,
  decodeSeedWrapped,
  encodeSeedServiceResponse,
  encodeSeedSessionId,
  encodeSeedWrapped,
  SeedMessageType,
} from "./seed_messages.ts";
import { seedRequestBoundary, type SeedRequestRefusal } from "./seed_request_boundary.ts";

/** Options of {@linkcode SeedRegistryListener}. */
export interface SeedRegistryListenerOptions {
  /** The TCP port for seed clients (their heartbeats use the same UDP port number); 0 picks one. */
  port: number;
  /**
   * The token every seed session acts with, for the server's `authToken` and ACLs; it must be one the server
   * knows. "" acts as an anonymous native session.
   * @default {""}
   */
  token?: string;
  /**
   * Milliseconds without a heartbeat that count one miss (the seed's 12000).
   * @default {12000}
   */
  heartbeatTimeoutMs?: number;
  /**
   * Misses in a row that end a session (the seed's 5).
   * @default {5}
   */
  heartbeatMaxCount?: number;
  /**
   * Milliseconds a connection may stay open: to bring a whole request, and to close after its answer.
   * @default {10000}
   */
  requestTimeoutMs?: number;
  /**
   * The largest request, in bytes (a create of the largest node data, with room for its path).
   * @default {1114112}
   */
  maxRequestBytes?: number;
  /**
   * Seed connections open at once from one IP address; more are closed at once.
   * @default {1024}
   */
  maxConnectionsPerIp?: number;
  /**
   * Seed connections open at once in total. At the limit a newcomer takes the place of the oldest connection that
   * owes nothing (no whole request yet, or answered); when every one is being answered, it is closed at once.
   * @default {4096}
   */
  maxConnections?: number;
}

/** The listener's counters (`/status` shows them as `seed.<name>`). */
export interface SeedRegistryStats {
  [counter: string]: number;
  /** Connections accepted (a counter, as the listener's stats all are: `openConnections` is how many are open). */
  connections: number;
  /** Requests served (connection and operations). */
  requests: number;
  /** Sessions opened. */
  sessions_opened: number;
  /** Connection requests refused (a session limit, a bad token, a failing disk). */
  sessions_refused: number;
  /** Heartbeats that kept a seed session alive. */
  heartbeats_accepted: number;
  /** Heartbeats that do not parse. */
  heartbeats_malformed: number;
  /** Heartbeats for no session this port opened (forged, expired, or a native session's id). */
  heartbeats_unknown: number;
  /** Connections refused: bytes that cannot start a request. */
  refused_garbage: number;
  /** Connections refused: a request past maxRequestBytes. */
  refused_too_large: number;
  /** Connections refused: a request type other than Connection or Service. */
  refused_illegal_type: number;
  /** Service requests refused: the ServiceRequest does not parse, or names no operation (answered as the seed does). */
  refused_service: number;
  /** Connections closed for holding no whole request, or staying open, past requestTimeoutMs. */
  refused_timeout: number;
  /** Connections refused by maxConnectionsPerIp or maxConnections. */
  refused_connections: number;
  /** Connections closed at maxConnections to make room for a newcomer: the oldest that owed nothing. */
  evicted_idle: number;
  /** Bytes that came after the connection's answers were sent (the connection is closed). */
  refused_after_answer: number;
}

// A seed session's secret starts with this, so the listener knows its sessions again after a restart. The secret
// is never told to anyone: a native client cannot resume or heartbeat a seed session.
const SECRET_MARK = new TextEncoder().encode("dwt-seed");
// The seed's payload for a service type it does not know (Services::handle's literal "error").
const UNKNOWN_OPERATION_PAYLOAD = new TextEncoder().encode("error");
// Requests of one connection answered in turn; past this many waiting, the connection is not read.
const MAX_QUEUED_REQUESTS = 64;

/** One seed connection's state. */
interface SeedConnection {
  readonly ip: string;
  deadline: TimerId | undefined;
  /** Requests read and not yet answered. */
  queued: number;
  /** The answer chain: each request is answered after the one before it. */
  tail: Promise<void>;
  /** No more requests are taken (refused, or answered and half-closed). */
  finished: boolean;
  /** Closed to make room for a newcomer, the close not yet reported. */
  evicted: boolean;
}

/**
 * The seed's registry protocol as a {@linkcode RegistryListener}.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { RegistryServer } from "../../registry/server/registry_server.ts";
 * import { SeedRegistryListener } from "./seed_registry_listener.ts";
 * import assert from "node:assert/strict";
 *
 * const seed = new SeedRegistryListener({ port: 0 });
 * const server = new RegistryServer({ port: 0, loop: new EventLoop(), listeners: [seed] });
 * await server.start();
 * assert.ok(seed.address.port > 0); // seed clients: TCP and UDP on this port
 * await server.stop();
 * ```
 */
export class SeedRegistryListener implements RegistryListener {
  readonly name = "seed";
  readonly #options: Required<SeedRegistryListenerOptions>;
  readonly #timing: SessionTiming;
  #host: RegistryListenerHost | undefined;
  #server: TcpServer | undefined;
  #udp: UdpSocket | undefined;
  readonly #perIp = new Map<string, number>();
  // Sessions this port opened (pruned of ended ones as it grows).
  readonly #mine = new Set<bigint>();
  #pruneAt = 1024;
  #open = 0;
  // Connections that owe nothing (no whole request yet, or every request answered), oldest first: at
  // maxConnections the first of them makes room for a newcomer, so idle sockets cannot lock seed clients out.
  readonly #idle = new Set<TcpConnection>();
  // Evicted connections whose close is not reported yet (still in #open).
  #evicting = 0;
  readonly #stats: SeedRegistryStats = {
    connections: 0,
    requests: 0,
    sessions_opened: 0,
    sessions_refused: 0,
    heartbeats_accepted: 0,
    heartbeats_malformed: 0,
    heartbeats_unknown: 0,
    refused_garbage: 0,
    refused_too_large: 0,
    refused_illegal_type: 0,
    refused_service: 0,
    refused_timeout: 0,
    refused_connections: 0,
    evicted_idle: 0,
    refused_after_answer: 0,
  };

  /** A listener with `options`; it listens once the server starts it. */
  constructor(options: SeedRegistryListenerOptions) {
    if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
      throw new RangeError(
        `Cannot listen for seed clients as 'port' must be an integer in [0, 65535]: current value is ${options.port}`,
      );
    }
    this.#options = {
      token: "",
      heartbeatTimeoutMs: 12_000,
      heartbeatMaxCount: 5,
      requestTimeoutMs: 10_000,
      maxRequestBytes: 1024 * 1024 + 64 * 1024,
      maxConnectionsPerIp: 1024,
      maxConnections: 4096,
      ...Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)),
    } as Required<SeedRegistryListenerOptions>;
    // The seed's rule: expiry after heartbeatMaxCount whole periods of silence, no grace.
    this.#timing = {
      heartbeatTimeoutMs: this.#options.heartbeatTimeoutMs,
      heartbeatMaxCount: this.#options.heartbeatMaxCount,
      graceMs: 0,
    };
  }

  /** The TCP address seed clients connect to (the UDP heartbeat port has the same number). */
  get address(): InetAddress {
    if (this.#server === undefined) throw new TypeError("Cannot get the seed listener's address before it starts");
    return this.#server.address;
  }

  /** Counters (exported as `/metrics` counters, so each only grows). */
  stats(): SeedRegistryStats {
    return { ...this.#stats };
  }

  /** Seed connections open now. */
  get openConnections(): number {
    return this.#open;
  }

  /** Listen on TCP and on UDP at the same port number (with port 0: a pair the kernel leaves free). */
  async start(host: RegistryListenerHost): Promise<void> {
    this.#host = host;
    for (let attempt = 1;; attempt++) {
      const server = new TcpServer(host.loop, new Address(host.hostname, this.#options.port), "SeedRegistry");
      server.setConnectionCallback((connection) => this.#onConnection(connection));
      server.setMessageCallback((connection) => this.#onMessage(connection));
      await server.start();
      try {
        this.#udp = await UdpSocket.bind(host.loop, new Address(host.hostname, server.address.port));
        this.#server = server;
        break;
      } catch (error) {
        await server.stop();
        if (this.#options.port !== 0 || attempt >= 16) throw error;
      }
    }
    this.#udp.setMessageCallback((data) => this.#onHeartbeat(data));
    for (const id of host.claimSessions((secret) => isSeedSecret(secret), this.#timing)) this.#mine.add(id);
    getLogger().info(
      `RegistryServer: seed clients on ${this.#server.address} (tcp and udp)` +
        (this.#mine.size > 0 ? `, ${this.#mine.size} seed sessions restored` : ""),
    );
  }

  /** Stop listening and close every seed connection. */
  async stop(): Promise<void> {
    await this.#server?.stop();
    await this.#udp?.close();
    this.#server = undefined;
    this.#udp = undefined;
  }

  // --- connections ---

  #onConnection(connection: TcpConnection): void {
    if (!connection.connected) return this.#onClosed(connection);
    const ip = connection.peerAddress.hostname;
    const fromIp = (this.#perIp.get(ip) ?? 0) + 1;
    this.#perIp.set(ip, fromIp);
    this.#open++;
    this.#stats.connections++;
    const state: SeedConnection = {
      ip,
      deadline: undefined,
      queued: 0,
      tail: Promise.resolve(),
      finished: false,
      evicted: false,
    };
    connection.context = state;
    const overTotal = () => this.#open - this.#evicting > this.#options.maxConnections;
    if (fromIp <= this.#options.maxConnectionsPerIp && overTotal()) this.#evictIdle();
    if (fromIp > this.#options.maxConnectionsPerIp || overTotal()) {
      this.#stats.refused_connections++;
      state.finished = true;
      connection.forceClose();
      return;
    }
    this.#idle.add(connection);
    // A client that half-closes after its request (not the seed's, but `nc -N` or a careful one) still gets answers.
    connection.setHalfCloseCallback(() => this.#onPeerClosed(connection, state));
    state.deadline = this.#host!.loop.runAfter(this.#options.requestTimeoutMs, () => {
      state.deadline = undefined;
      if (!connection.connected) return;
      // Still open: a partial request, no request, or an answered client that does not close.
      if (!state.finished || state.queued > 0) this.#stats.refused_timeout++;
      connection.forceClose();
    });
  }

  /** Close the oldest connection that owes nothing, if there is one. */
  #evictIdle(): void {
    const oldest = this.#idle.values().next();
    if (oldest.done) return;
    const connection = oldest.value;
    this.#idle.delete(connection);
    const state = connection.context as SeedConnection;
    state.evicted = true;
    state.finished = true;
    this.#evicting++;
    this.#stats.evicted_idle++;
    connection.forceClose();
  }

  #onPeerClosed(connection: TcpConnection, state: SeedConnection): void {
    if (state.queued > 0) return; // answered, then shut down (and so closed) when the last answer is sent
    if (!state.finished && connection.inputBuffer.readableBytes > 0) {
      this.#stats.refused_garbage++;
      getLogger().debug(`RegistryServer: seed connection ${connection.name} ended inside a request`);
    }
    state.finished = true;
    connection.forceClose();
  }

  #onClosed(connection: TcpConnection): void {
    const state = connection.context as SeedConnection | undefined;
    if (state === undefined) return;
    connection.context = undefined;
    this.#idle.delete(connection);
    if (state.evicted) this.#evicting--;
    this.#open--;
    const count = (this.#perIp.get(state.ip) ?? 1) - 1;
    if (count <= 0) this.#perIp.delete(state.ip);
    else this.#perIp.set(state.ip, count);
    if (state.deadline !== undefined) this.#host?.loop.cancel(state.deadline);
    state.deadline = undefined;
    state.finished = true;
  }

  #onMessage(connection: TcpConnection): void {
    const state = connection.context as SeedConnection | undefined;
    const buffer = connection.inputBuffer;
    if (state === undefined) return buffer.retrieveAll();
    while (buffer.readableBytes > 0) {
      if (state.finished) {
        // Answered and half-closed (or refused): nothing more can be answered.
        buffer.retrieveAll();
        if (state.queued === 0) this.#stats.refused_after_answer++;
        connection.forceClose();
        return;
      }
      const boundary = seedRequestBoundary(buffer.peek(), this.#options.maxRequestBytes);
      if (boundary.kind === "partial") return;
      if (boundary.kind === "refused") {
        buffer.retrieveAll();
        return this.#refuse(connection, state, boundary.reason, boundary.detail);
      }
      const request = buffer.retrieveAsBytes(boundary.length);
      this.#stats.requests++;
      state.queued++;
      this.#idle.delete(connection);
      if (state.queued >= MAX_QUEUED_REQUESTS) connection.stopRead();
      state.tail = state.tail.then(async () => {
        const reply = await this.#answer(connection, request);
        state.queued--;
        if (!connection.connected) return;
        if (state.queued === 0) this.#idle.add(connection); // owes nothing again: the newest idle one
        connection.send(reply);
        if (state.queued === 0 && buffer.readableBytes === 0) {
          // Everything read is answered: the half-close tells the client the answer is whole.
          state.finished = true;
          connection.shutdown();
        } else if (!connection.reading && state.queued < MAX_QUEUED_REQUESTS / 2) {
          connection.startRead();
        }
      });
    }
  }

  #refuse(connection: TcpConnection, state: SeedConnection, reason: SeedRequestRefusal, detail: string): void {
    this.#stats[`refused_${reason}`]++;
    state.finished = true;
    getLogger().debug(`RegistryServer: seed connection ${connection.name} refused: ${detail}`);
    // Behind the answers still owed, the seed's error reply word for word (the detail is logged above), then the
    // close.
    const text = reason === "illegal_type" ? "illegal request parameters" : "request parse error";
    state.tail = state.tail.then(() => {
      if (!connection.connected) return;
      connection.send(encodeSeedWrapped({ type: SeedMessageType.ERROR, data: new TextEncoder().encode(text) }));
      connection.shutdown();
    });
  }

  /** The raw WrappedResponse to one whole request. Never rejects. */
  async #answer(connection: TcpConnection, bytes: Uint8Array): Promise<Uint8Array> {
    const error = (text: string) => encodeSeedWrapped({ type: SeedMessageType.ERROR, data: utf8(text) });
    try {
      const wrapped = decodeSeedWrapped(bytes);
      if (wrapped.type === SeedMessageType.CONNECTION) return await this.#connect(connection);
      let request;
      try {
        request = decodeSeedServiceRequest(wrapped.data);
      } catch {
        this.#stats.refused_service++;
        return error("service request parse error");
      }
      if (!isSeedOperation(request.serviceType)) {
        // The seed's answer (§2.2): a Service reply whose payload is the bytes "error", which its client parses as
        // an empty <Op>NodeResponse (success false) and goes on; an Error reply would make it exit.
        this.#stats.refused_service++;
        return encodeSeedWrapped({
          type: SeedMessageType.SERVICE,
          data: encodeSeedServiceResponse({ type: request.serviceType, data: UNKNOWN_OPERATION_PAYLOAD }),
        });
      }
      const writer = this.#isMine(request.sessionId) ? request.sessionId : undefined;
      const data = await serveSeedOperation(this.#host!, request.serviceType, request.parameters, writer);
      return encodeSeedWrapped({
        type: SeedMessageType.SERVICE,
        data: encodeSeedServiceResponse({ type: request.serviceType, data }),
      });
    } catch (cause) {
      // The boundary check passed, so this is a nested message that does not parse.
      this.#stats.refused_garbage++;
      getLogger().debug(`RegistryServer: seed request from ${connection.name} does not parse`, { error: cause });
      return error("request parse error");
    }
  }

  async #connect(connection: TcpConnection): Promise<Uint8Array> {
    const secret = new Uint8Array(16);
    secret.set(SECRET_MARK);
    crypto.getRandomValues(secret.subarray(SECRET_MARK.length));
    const ip = connection.peerAddress.hostname;
    try {
      const id = await this.#host!.openSession(ip, this.#options.token, secret, this.#timing);
      this.#stats.sessions_opened++;
      this.#remember(id);
      getLogger().debug(`RegistryServer: seed session ${id.toString(16)} opened by ${ip}`);
      return encodeSeedWrapped({ type: SeedMessageType.CONNECTION, data: encodeSeedSessionId(id) });
    } catch (error) {
      this.#stats.sessions_refused++;
      const reason = RegistryError.from(error);
      // The seed's client exits on an Error reply: the reason is all it can show.
      return encodeSeedWrapped({ type: SeedMessageType.ERROR, data: utf8(`${reason.codeName}: ${reason.message}`) });
    }
  }

  // --- sessions ---

  #isMine(id: bigint): boolean {
    if (!this.#mine.has(id)) return false;
    if (this.#host!.isOpen(id)) return true;
    this.#mine.delete(id);
    return false;
  }

  #remember(id: bigint): void {
    this.#mine.add(id);
    if (this.#mine.size < this.#pruneAt) return;
    for (const known of this.#mine) if (!this.#host!.isOpen(known)) this.#mine.delete(known);
    this.#pruneAt = Math.max(1024, this.#mine.size * 2);
  }

  #onHeartbeat(data: Uint8Array): void {
    let id: bigint;
    try {
      if (data.length > 64) throw new RangeError("too long");
      const fields = readFields(data);
      const value = fields.get(1)?.at(-1);
      if (typeof value !== "bigint") throw new TypeError("no session id");
      id = value;
    } catch {
      this.#stats.heartbeats_malformed++;
      return;
    }
    if (this.#isMine(id) && this.#host!.touch(id)) this.#stats.heartbeats_accepted++;
    else this.#stats.heartbeats_unknown++;
  }
}

function isSeedSecret(secret: Uint8Array): boolean {
  return secret.length === 16 && SECRET_MARK.every((byte, i) => secret[i] === byte);
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
