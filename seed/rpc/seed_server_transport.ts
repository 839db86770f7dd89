/**
 * The seed's RPC frame on a port of its own (provider option `seedPort`, config key `rpcserver_seed_port`): one more
 * {@linkcode ServerTransport} of a provider, so C++ seed callers (DwtRpcChannel) call TypeScript services. Frame:
 * seed_frame.ts. Each connection carries one call: the frame, the raw response, a half-close.
 *
 * A port of its own, not the native port: the native envelope opens with a 4-byte big-endian length and the seed's
 * with a 4-byte little-endian one. Most seed headers would read as a native length over 16 MiB, but one of 256,
 * 512, ... bytes reads as a plausible native frame (256 is `00 01 00 00`, a native frame of 65 536 bytes), so
 * telling them apart on one port would be a guess made on the first bytes of every native connection. A port of
 * its own costs one listen and leaves the native port's framing exactly as it was (seed frames there are still
 * refused as frames that do not parse).
 *
 * Names: the seed's header carries the simple service name. The transport maps it to the one registered service of
 * that simple name (a full name is accepted too); two registered services sharing a simple name make the
 * constructor throw, so a provider refuses to start rather than serve one of them by chance. An unknown name goes
 * to the dispatch as is, which refuses it (UNIMPLEMENTED, counted).
 *
 * Calls go through the provider's dispatch like the native port's (interceptors, limits, drain, `/metrics`), with
 * the deadline `callTimeoutMs` (the seed's frame carries none; the seed's caller waits forever). What a seed caller
 * sees: the response's bytes, then the end of the stream; for any error, the end of the stream with no bytes (its
 * one read returns 0 and it parses an empty response: the response type's defaults, as the seed itself gives a
 * caller whose provider closed); for an answer over 1,024 bytes, the first bytes its one read returns (at most
 * 1,024: the seed's caller truncates, usually into a parse error; counted as limit `seed_answer_over_1024`).
 *
 * Hostile input, each a clean close and a counted refusal in the provider's `limitsHit` (and `/metrics`), never
 * an exception, a hang or unbounded memory: a header length over 4096 bytes (0xFFFFFFFF too) or args over
 * `maxFrameBytes` the moment they arrive, a header that does not parse, bytes after the frame, a half-close inside
 * the frame (`seed_frame`; a half-close after a whole frame still gets the answer);
 * partial frames of all connections past `maxBufferedFrameBytes` (`seed_partial_frame_bytes`); a frame not whole
 * within `handshakeTimeoutMs` (1–3 bytes, args_size beyond what is sent, one byte a second:
 * `seed_handshake_timeout`); connections past the caps (`seed_connections`, `seed_connections_per_address`; idle
 * ones are evicted for newcomers, `seed_silent_evicted`) — the provider's {@linkcode ConnectionGate}, its counters
 * prefixed `seed_`; a caller that keeps the connection open after its answer, closed after
 * {@linkcode SEED_ANSWERED_CLOSE_MS} (`seed_close_timeout`). An answer over `maxFrameBytes` is not sent (the
 * caller gets no bytes, limit `seed_answer_over_limit`), as the native port answers it RESOURCE_EXHAUSTED.
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import type { InetAddress } from "../../reactor/inet_address.ts";
import { getLogger } from "../../reactor/logger.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import { TcpServer } from "../../reactor/tcp_server.ts";
import type { TimerId } from "../../reactor/timer_queue.ts";
import type { Buffer } from "../../reactor/buffer.ts";
import { ConnectionGate } from "../../rpc/_connection_gate.ts";
import type { ServerLimits } from "../../rpc/_server_limits.ts";
import type { ServerTransport, ServerTransportHandler } from "../../rpc/server_transport.ts";
import type { ServiceDefinition } from "../../rpc/service_definition.ts";
import { SeedConnection, SeedConnectionState } from "./_seed_connection.ts";
import { readSeedFrame, seedServiceName } from "./seed_frame.ts";

/** The deadline of a call that came in the seed's frame, which has none: 30 s (the seed's caller waits forever). */
export const DEFAULT_SEED_CALL_TIMEOUT_MS = 30_000;

/** How long a caller may keep its connection open after its answer before it is closed. */
export const SEED_ANSWERED_CLOSE_MS = 5_000;

/**
 * Options of {@linkcode SeedServerTransport}.
 *
 * @example
 * ```ts
 * import type { SeedServerTransportOptions } from "./seed_server_transport.ts";
 *
 * const options: SeedServerTransportOptions = { callTimeoutMs: 10_000 };
 * ```
 */
export interface SeedServerTransportOptions {
  /** The deadline of each call, in milliseconds. @default {30000} */
  callTimeoutMs?: number;
  /** The server's name in logs. @default {"RpcSeedPort"} */
  name?: string;
}

/**
 * A provider's seed port. Owned by the provider, which makes it at start (after its services are registered),
 * calls `listen` and, at the end of its stop, `close`. Runs on one loop.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../../reactor/event_loop.ts";
 * import { RpcProvider } from "../../rpc/rpc_provider.ts";
 * import { parseProto, serviceDefinition } from "../../rpc/service_definition.ts";
 * import assert from "node:assert/strict";
 *
 * const root = parseProto(`syntax = "proto3"; package demo;
 *   message Msg { string text = 1; }
 *   service Echo { rpc Say (Msg) returns (Msg); }`);
 * // A provider with `seedPort` runs a SeedServerTransport beside its native port.
 * const provider = new RpcProvider({ loop: new EventLoop(), seedPort: 0 });
 * provider.registerService(serviceDefinition(root, "demo.Echo"), { Say: (request: { text: string }) => request });
 * await provider.start();
 * assert.ok(provider.seedAddress!.port > 0);
 * await provider.stop();
 * ```
 */
export class SeedServerTransport implements ServerTransport {
  readonly #loop: EventLoop;
  readonly #limits: ServerLimits;
  readonly #server: TcpServer;
  readonly #callTimeoutMs: number;
  // Simple name → full name, and the full names (a full name in a header is taken too).
  readonly #names = new Map<string, string>();
  #gate: ConnectionGate<SeedConnection> | undefined;
  #provider: ServerTransportHandler | undefined;
  #heldBytes = 0;
  #sweepTimer: TimerId | undefined;

  /**
   * A seed port on `address` (port 0: any free one) within the provider's `limits`, serving `services`. A TypeError
   * when two of them share a simple name (the seed's frame could not tell them apart), a RangeError for a bad
   * `callTimeoutMs`.
   */
  constructor(
    loop: EventLoop,
    address: InetAddress,
    limits: ServerLimits,
    services: readonly ServiceDefinition[],
    options: SeedServerTransportOptions = {},
  ) {
    const callTimeoutMs = options.callTimeoutMs ?? DEFAULT_SEED_CALL_TIMEOUT_MS;
    if (!Number.isInteger(callTimeoutMs) || callTimeoutMs < 1) {
      throw new RangeError(
        `Cannot serve the seed's frame as 'callTimeoutMs' must be an integer >= 1: current value is ${callTimeoutMs}`,
      );
    }
    for (const definition of services) {
      const simple = seedServiceName(definition.fullName);
      const other = this.#names.get(simple);
      if (other !== undefined && other !== definition.fullName) {
        throw new TypeError(
          `Cannot serve the seed's frame as services '${other}' and '${definition.fullName}' share the simple name ` +
            `'${simple}', the only name the seed's frame carries: serve one of them on another provider`,
        );
      }
      this.#names.set(simple, definition.fullName);
      this.#names.set(definition.fullName, definition.fullName);
    }
    this.#loop = loop;
    this.#limits = limits;
    this.#callTimeoutMs = callTimeoutMs;
    this.#server = new TcpServer(loop, address, options.name ?? "RpcSeedPort");
  }

  /** The listen address (after `listen`). */
  get address(): InetAddress {
    return this.#server.address;
  }

  /** Connections open now. */
  get connections(): number {
    return this.#gate?.size ?? 0;
  }

  /** Connections open now whose frame is not whole yet. */
  get silentConnections(): number {
    return this.#gate?.silent ?? 0;
  }

  /** Partial-frame bytes held now, all connections together. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** Listen; each whole frame becomes a call offered to `provider`. */
  async listen(provider: ServerTransportHandler): Promise<void> {
    this.#provider = provider;
    // The gate's counters say which port hit them.
    this.#gate = new ConnectionGate(this.#loop, this.#limits, {
      accept: () => undefined,
      limitHit: (limit) => provider.limitHit(`seed_${limit}`),
    });
    const server = this.#server;
    server.setConnectionCallback((tcp) => {
      if (tcp.connected) this.#accept(tcp);
      else this.#closed(tcp);
    });
    server.setMessageCallback((tcp, buffer, receiveTimeMs) => this.#onMessage(tcp, buffer, receiveTimeMs));
    await server.start();
  }

  /** Stop listening and close every connection left. */
  async close(): Promise<void> {
    this.#stopSweep();
    this.#gate?.close();
    await this.#server.stop();
  }

  #accept(tcp: TcpConnection): void {
    const gate = this.#gate!;
    if (!gate.admit(tcp.peerAddress.hostname, tcp.name)) {
      tcp.forceClose();
      return;
    }
    const connection = new SeedConnection(tcp, this.#provider!, this.#limits.maxFrameBytes);
    const calls = this.#provider!.accept(connection);
    if (calls === undefined) {
      tcp.forceClose();
      return;
    }
    connection.calls = calls;
    tcp.context = connection;
    // A caller that half-closes after its frame (a script, `nc -N`; not the seed's) still gets its answer.
    tcp.setHalfCloseCallback(() => this.#peerClosed(connection));
    gate.add(connection);
    this.#armSweep();
  }

  #peerClosed(connection: SeedConnection): void {
    if (connection.state !== SeedConnectionState.READING) return; // answered, then closed once the answer is sent
    if (connection.tcp.inputBuffer.readableBytes === 0) return connection.forceClose();
    // 1–3 bytes then a close (the packet that crashes the seed's provider), or lengths that promise more.
    this.#refuse(connection, "seed_frame", "the caller closed inside its frame");
  }

  #closed(tcp: TcpConnection): void {
    const connection = tcp.context as SeedConnection | undefined;
    if (connection === undefined) return; // refused
    tcp.context = undefined;
    this.#release(connection);
    this.#gate!.remove(connection);
    connection.calls?.closed("The seed caller's connection closed");
  }

  #onMessage(tcp: TcpConnection, buffer: Buffer, receiveTimeMs: number): void {
    const connection = tcp.context as SeedConnection | undefined;
    if (connection === undefined || !tcp.connected) return void buffer.retrieveAll();
    if (connection.state !== SeedConnectionState.READING) {
      buffer.retrieveAll();
      return this.#refuse(
        connection,
        "seed_frame",
        "bytes after its frame (the seed's frame is one call a connection)",
      );
    }
    const progress = readSeedFrame(buffer.peek(), this.#limits.maxFrameBytes);
    if (progress.state === "refused") {
      buffer.retrieveAll();
      return this.#refuse(connection, "seed_frame", progress.reason);
    }
    if (progress.state === "partial") {
      const held = buffer.readableBytes;
      if (this.#heldBytes - connection.heldBytes + held > this.#limits.maxBufferedFrameBytes) {
        buffer.retrieveAll();
        return this.#refuse(
          connection,
          "seed_partial_frame_bytes",
          `its partial frame would take the seed port's partial frames past ${this.#limits.maxBufferedFrameBytes} bytes`,
        );
      }
      this.#heldBytes += held - connection.heldBytes;
      connection.heldBytes = held;
      return;
    }
    this.#release(connection);
    if (buffer.readableBytes > progress.frameBytes) {
      buffer.retrieveAll();
      return this.#refuse(
        connection,
        "seed_frame",
        "bytes after its frame (the seed's frame is one call a connection)",
      );
    }
    this.#gate!.spoke(connection);
    connection.state = SeedConnectionState.CALLING;
    const { header, args } = progress;
    try {
      connection.calls!.request({
        callId: 1,
        service: this.#names.get(header.service) ?? header.service,
        method: header.method,
        timeoutMs: this.#callTimeoutMs,
        metadata: undefined,
        payload: args, // a view: the dispatch copies what it keeps
      }, receiveTimeMs);
    } finally {
      buffer.retrieveAll();
    }
  }

  #refuse(connection: SeedConnection, limit: string, why: string): void {
    this.#provider!.limitHit(limit);
    getLogger().warn(`RpcProvider seed port closing ${connection.name}: ${why}`);
    this.#release(connection);
    connection.forceClose();
  }

  #release(connection: SeedConnection): void {
    this.#heldBytes -= connection.heldBytes;
    connection.heldBytes = 0;
  }

  // One timer while there are connections: closes those whose caller keeps them open after the answer.
  #armSweep(): void {
    if (this.#sweepTimer !== undefined) return;
    this.#sweepTimer = this.#loop.runEvery(Math.min(1000, SEED_ANSWERED_CLOSE_MS / 4), () => this.#sweep());
  }

  #stopSweep(): void {
    if (this.#sweepTimer !== undefined) this.#loop.cancel(this.#sweepTimer);
    this.#sweepTimer = undefined;
  }

  #sweep(): void {
    const gate = this.#gate!;
    const now = this.#loop.now();
    for (const connection of gate.connections()) {
      if (connection.answeredMs > 0 && now - connection.answeredMs >= SEED_ANSWERED_CLOSE_MS) {
        this.#provider!.limitHit("seed_close_timeout");
        gate.remove(connection);
        connection.forceClose();
      }
    }
    if (gate.size === 0) this.#stopSweep();
  }
}
