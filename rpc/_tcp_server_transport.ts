/**
 * The provider's TCP transport, the default {@linkcode ServerTransport}: the reactor's TcpServer with the framing
 * and envelope of proto/rpc.proto. It owns what is about sockets and bytes: frame size and partial-frame deadlines
 * (the LengthHeaderCodec), flow control of callers that do not read, frames that do not parse, keepalive pings, and
 * idle connections, swept by one timer for all connections. The connection caps, the handshake deadline and the
 * eviction of connections that never speak are its {@linkcode ConnectionGate}'s, the one rule every listener of a
 * provider uses: this transport tells it when a connection comes, sends its first whole frame, and goes. (With
 * `threads`, each Worker's transport has its own gate, as it had its own caps.) Requests and cancels go to the
 * provider's handler of each connection.
 *
 * @module
 */

import type { InetAddress } from "../reactor/inet_address.ts";
import { LengthHeaderCodec } from "../reactor/length_header_codec.ts";
import { applyFlowControl } from "../reactor/flow_control.ts";
import { getLogger } from "../reactor/logger.ts";
import type { TcpConnection } from "../reactor/tcp_connection.ts";
import type { TcpServer } from "../reactor/tcp_server.ts";
import type { TimerId } from "../reactor/timer_queue.ts";
import { ConnectionGate } from "./_connection_gate.ts";
import { decodeRpcFrame } from "./_rpc_decoder.ts";
import { sendPing } from "./_rpc_encoder.ts";
import { type DecodedFrame, FrameKind } from "./_rpc_wire.ts";
import { ServedConnection } from "./_served_connection.ts";
import type { ServerLimits } from "./_server_limits.ts";
import type { ServerTransport, ServerTransportHandler } from "./server_transport.ts";

/** Serves a provider's calls on a TcpServer. */
export class TcpServerTransport implements ServerTransport {
  readonly #server: TcpServer;
  readonly #limits: ServerLimits;
  /** Whether it starts and stops the server (false for a Worker's, which the reactor starts and stops). */
  readonly ownsServer: boolean;
  readonly #codec: LengthHeaderCodec;
  // The connections served (set by `listen`).
  #gate: ConnectionGate<ServedConnection> | undefined;
  #provider: ServerTransportHandler | undefined;
  #sweepTimer: TimerId | undefined;
  #pingData = 0;

  /**
   * Serve on `server` within `limits`. `ownsServer`: start and stop it (false for a Worker's server, which the
   * reactor starts and stops).
   */
  constructor(server: TcpServer, limits: ServerLimits, ownsServer: boolean) {
    this.#server = server;
    this.#limits = limits;
    this.ownsServer = ownsServer;
    this.#codec = new LengthHeaderCodec(
      (connection, body, receiveTimeMs) => this.#onFrame(connection, body, receiveTimeMs),
      {
        maxFrameBytes: limits.maxFrameBytes,
        frameTimeoutMs: limits.frameTimeoutMs,
        maxBufferedBytes: limits.maxBufferedFrameBytes,
        onFrameError: (connection, reason) => {
          this.#provider?.limitHit("frame");
          getLogger().warn(`RpcProvider closing ${connection.name}: ${reason}`);
        },
      },
    );
  }

  /** The listen address (after `listen`). */
  get address(): InetAddress {
    return this.#server.address;
  }

  /**
   * Connections open now: those the gate admitted (a refused or evicted socket still closing is not one, so the
   * figure never reads above the cap).
   */
  get connections(): number {
    return this.#gate?.size ?? 0;
  }

  /** Connections open now that have not sent a whole frame yet. */
  get silentConnections(): number {
    return this.#gate?.silent ?? 0;
  }

  /** Set the server's callbacks and (when it owns the server) start it. */
  async listen(provider: ServerTransportHandler): Promise<void> {
    this.#provider = provider;
    const server = this.#server;
    this.#gate = new ConnectionGate(server.loop, this.#limits, provider);
    server.setConnectionCallback((connection) => {
      this.#codec.onConnection(connection);
      this.#onConnection(connection);
    });
    server.setMessageCallback(this.#codec.onMessage);
    // A caller that sends and never reads stops being read once its replies back up (and is closed past
    // maxUnsentBytes, checked after each answer).
    applyFlowControl(server, {
      pauseAtBytes: this.#limits.pauseReadingAtBytes,
      // Streams' messages wait for room in the output (fairness among streams and unary answers).
      onWriteComplete: (connection) => (connection.context as ServedConnection | undefined)?.writesDrained(),
    });
    if (this.ownsServer) await server.start();
  }

  /** Stop the sweep and (when it owns the server) the server, closing what is left. */
  async close(): Promise<void> {
    this.#stopSweep();
    this.#gate?.close();
    if (this.ownsServer) await this.#server.stop();
  }

  /** Frames that timed out part-way and connections closed over the partial-frame cap. */
  limitsHit(): Record<string, number> {
    const limits: Record<string, number> = {};
    const codec = this.#codec.stats;
    if (codec.framesTimedOut > 0) limits.frame_timeout = codec.framesTimedOut;
    if (codec.closedForBufferCap > 0) limits.partial_frame_bytes = codec.closedForBufferCap;
    return limits;
  }

  #onConnection(connection: TcpConnection): void {
    if (connection.connected) {
      this.#accept(connection);
      return;
    }
    const served = connection.context as ServedConnection | undefined;
    if (served === undefined) return; // refused
    this.#forget(served);
    served.calls?.closed();
  }

  #accept(connection: TcpConnection): void {
    const provider = this.#provider!;
    const gate = this.#gate!;
    if (!gate.admit(connection.peerAddress.hostname, connection.name)) {
      connection.forceClose();
      return;
    }
    const served = new ServedConnection(connection, provider, this.#limits);
    const calls = provider.accept(served);
    if (calls === undefined) {
      connection.forceClose();
      return;
    }
    served.calls = calls;
    connection.context = served;
    gate.add(served);
    this.#armSweep();
  }

  #forget(served: ServedConnection): void {
    this.#gate!.remove(served);
  }

  #onFrame(connection: TcpConnection, body: Uint8Array, receiveTimeMs: number): void {
    const served = connection.context as ServedConnection | undefined;
    if (served === undefined) return; // refused, closing
    served.lastActivityMs = receiveTimeMs;
    served.pingSentMs = 0; // anything from the peer proves it alive
    let frame: DecodedFrame;
    try {
      frame = decodeRpcFrame(body, this.#limits.maxMetadataBytes);
    } catch (error) {
      getLogger().warn(`RpcProvider closing ${connection.name}: a frame does not parse`, { error });
      connection.forceClose();
      return;
    }
    if (!served.spoke) this.#gate!.spoke(served);
    const kind = frame.kind;
    if (kind === FrameKind.REQUEST) {
      served.lastCallMs = receiveTimeMs;
      served.calls!.request(frame, receiveTimeMs);
    } else if (kind === FrameKind.MESSAGE) {
      served.lastCallMs = receiveTimeMs;
      served.calls!.message?.(frame.callId, frame.payload);
    } else if (kind === FrameKind.CREDIT) {
      served.calls!.credit?.(frame.callId, frame.credit);
    } else if (kind === FrameKind.HALF_CLOSE) {
      served.lastCallMs = receiveTimeMs;
      served.calls!.halfClose?.(frame.callId);
    } else if (kind === FrameKind.CANCEL) {
      served.lastCallMs = receiveTimeMs;
      served.calls!.cancel(frame.callId);
    } else if (kind === FrameKind.PING) {
      if (frame.ack) served.answersPings = true;
      else sendPing(connection, frame.pingData, true);
    }
  }

  // One sweep timer for all connections (not one per connection), while there are any.
  #armSweep(): void {
    const { idleTimeoutMs, keepaliveIntervalMs, keepaliveTimeoutMs } = this.#limits;
    if (this.#sweepTimer !== undefined) return;
    if (keepaliveIntervalMs <= 0 && idleTimeoutMs <= 0) return;
    const periods = [idleTimeoutMs / 4, keepaliveIntervalMs / 4, keepaliveTimeoutMs / 4].filter((ms) => ms > 0);
    this.#sweepTimer = this.#server.loop.runEvery(Math.max(10, Math.min(...periods)), () => this.#sweep());
  }

  #stopSweep(): void {
    if (this.#sweepTimer !== undefined) this.#server.loop.cancel(this.#sweepTimer);
    this.#sweepTimer = undefined;
  }

  // Closes connections idle past idleTimeoutMs, pings those that sent nothing for keepaliveIntervalMs and closes
  // those whose ping went unanswered.
  #sweep(): void {
    const { idleTimeoutMs, keepaliveIntervalMs, keepaliveTimeoutMs } = this.#limits;
    const now = this.#server.loop.now();
    const gate = this.#gate!;
    for (const served of gate.connections()) {
      const connection = served.connection;
      if (idleTimeoutMs > 0 && now - served.lastCallMs >= idleTimeoutMs && served.calls!.callsInFlight === 0) {
        this.#provider!.limitHit("idle");
        getLogger().debug(`RpcProvider closing ${connection.name}: idle for ${Math.round(now - served.lastCallMs)} ms`);
        this.#forget(served);
        connection.forceClose();
      } else if (keepaliveIntervalMs > 0 && connection.connected) {
        this.#keepalive(served, now, keepaliveIntervalMs, keepaliveTimeoutMs);
      }
    }
    if (gate.size === 0) this.#stopSweep();
  }

  #keepalive(served: ServedConnection, now: number, intervalMs: number, timeoutMs: number): void {
    const connection = served.connection;
    if (served.pingSentMs > 0 && now - served.pingSentMs >= timeoutMs) {
      if (!served.answersPings) {
        served.pingSentMs = 0; // a caller from before pings: ask again next interval
        return;
      }
      this.#provider!.limitHit("keepalive");
      getLogger().warn(`RpcProvider closing ${connection.name}: no answer to a keepalive ping in ${timeoutMs} ms`);
      served.calls!.closed("The caller stopped answering keepalive pings");
      this.#forget(served);
      connection.forceClose();
    } else if (served.pingSentMs === 0 && now - served.lastActivityMs >= intervalMs) {
      served.pingSentMs = now;
      this.#pingData = (this.#pingData + 1) >>> 0;
      sendPing(connection, this.#pingData, false);
    }
  }
}
