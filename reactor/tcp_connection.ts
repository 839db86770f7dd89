/**
 * One TCP connection, for both servers and clients: muduo's TcpConnection, with its state machine, its input and
 * output Buffers, the high-water mark, write-complete, shutdown after drain and read pause/resume.
 *
 * @module
 */

import type { RawSocket } from "./backend/net_backend.ts";
import { Buffer } from "./buffer.ts";
import type { EventLoop } from "./event_loop.ts";
import { InetAddress } from "./inet_address.ts";
import { getLogger } from "./logger.ts";
import { nextTurn } from "./next_turn.ts";

/**
 * Called when a connection comes up and again when it goes down (check `connection.connected`).
 *
 * @example
 * ```ts
 * import type { ConnectionCallback } from "./callbacks.ts";
 *
 * const onConnection: ConnectionCallback = (connection) => {
 *   if (connection.connected) connection.send("welcome\n");
 * };
 * ```
 */
export type ConnectionCallback = (connection: TcpConnection) => void;

/**
 * Called when bytes arrive. `buffer` holds everything received and not yet retrieved; take what forms whole
 * messages and leave the rest for the next call. `receiveTimeMs` is the loop's monotonic clock at arrival.
 *
 * @example
 * ```ts
 * import type { MessageCallback } from "./callbacks.ts";
 *
 * // A line protocol: answer each whole line, keep a partial one for the next call.
 * const onMessage: MessageCallback = (connection, buffer) => {
 *   for (let eol = buffer.findEOL(); eol >= 0; eol = buffer.findEOL()) {
 *     const line = buffer.retrieveAsString(eol + 1);
 *     connection.send(line.toUpperCase());
 *   }
 * };
 * ```
 */
export type MessageCallback = (connection: TcpConnection, buffer: Buffer, receiveTimeMs: number) => void;

/**
 * Called when the output buffer has drained completely (everything sent was handed to the kernel).
 *
 * @example
 * ```ts
 * import type { WriteCompleteCallback } from "./callbacks.ts";
 *
 * // Send the next chunk of a large reply only once the previous one has left.
 * const onWriteComplete: WriteCompleteCallback = (connection) => {
 *   if (connection.connected) connection.send(new Uint8Array(64 * 1024));
 * };
 * ```
 */
export type WriteCompleteCallback = (connection: TcpConnection) => void;

/**
 * Called once each time the bytes waiting to be sent rise past the high-water mark.
 *
 * @example
 * ```ts
 * import type { HighWaterMarkCallback } from "./callbacks.ts";
 *
 * // The peer is not reading: stop reading from it too (applyFlowControl does this for a whole server).
 * const onHighWaterMark: HighWaterMarkCallback = (connection, _pendingBytes) => connection.stopRead();
 * ```
 */
export type HighWaterMarkCallback = (connection: TcpConnection, pendingBytes: number) => void;

/**
 * Called when the peer half-closes (sends FIN) on a connection that asked to hear of it: the connection stays
 * connected for writing, and its owner decides when to `shutdown` (the socket then closes once the output drains)
 * or `forceClose`. Without this callback a connection closes itself on the peer's FIN once its output drains.
 *
 * @example
 * ```ts
 * import type { HalfCloseCallback } from "./callbacks.ts";
 *
 * // The peer sent its last request: answer it (sent elsewhere), then close.
 * const onHalfClose: HalfCloseCallback = (connection) => connection.shutdown();
 * ```
 */
export type HalfCloseCallback = (connection: TcpConnection) => void;

/**
 * Called by a connection when it has closed, so its owner (TcpServer, TcpClient) can let go of it.
 *
 * @example
 * ```ts
 * import type { CloseCallback } from "./callbacks.ts";
 * import type { TcpConnection } from "./tcp_connection.ts";
 *
 * const open = new Set<TcpConnection>();
 * const onClose: CloseCallback = (connection) => open.delete(connection);
 * ```
 */
export type CloseCallback = (connection: TcpConnection) => void;

/**
 * The states of a {@linkcode TcpConnection}: connecting → connected → disconnecting → disconnected.
 *
 * @example
 * ```ts
 * import { TcpConnectionState } from "./tcp_connection.ts";
 * import type { TcpConnection } from "./tcp_connection.ts";
 *
 * const describe = (connection: TcpConnection) =>
 *   connection.state === TcpConnectionState.DISCONNECTING ? "closing after its output drains" : connection.state;
 * ```
 */
export const TcpConnectionState = {
  CONNECTING: "connecting",
  CONNECTED: "connected",
  DISCONNECTING: "disconnecting",
  DISCONNECTED: "disconnected",
} as const;

/** One of the {@linkcode TcpConnectionState} values. */
export type TcpConnectionState = typeof TcpConnectionState[keyof typeof TcpConnectionState];

// Free space offered to each in-place read: small for a new connection (most stay small, and a server may hold
// thousands), doubled after every read that fills it, up to the largest the backend reads at once.
const MIN_READ_TARGET_BYTES = 4 * 1024;
const MAX_READ_TARGET_BYTES = 64 * 1024;

// A turn's sends go out in one write at the turn's end (corking), but once its output holds this much, in small
// frames, it is written at once when no write is in flight: the peer starts on those frames while this side makes
// the rest, and the two processes work side by side instead of in turns (unary calls at 16 and 64 in flight: about
// 1.5x). Once per turn (the corking microtask ends it), so a turn costs at most one more write. Not past the upper
// bound: a turn of large frames already reaches the peer in parts, and one more write then only costs.
const EARLY_WRITE_MIN_BYTES = 512;
const EARLY_WRITE_MAX_BYTES = 2048;

/** The default high-water mark: 64 MiB waiting to be sent, as muduo. */
export const DEFAULT_HIGH_WATER_MARK = 64 * 1024 * 1024;

/**
 * A TCP connection. TcpServer and TcpClient create them; users get them in callbacks and call `send`,
 * `shutdown`, `forceClose`, `startRead`/`stopRead`.
 *
 * Ownership: the connection owns its RawSocket and closes it exactly once. Its owner (the server or client) keeps
 * it in a table from `connectEstablished` until the close callback.
 *
 * Sending never blocks and never fails synchronously: bytes are copied into the output buffer and handed to the
 * kernel one batch at a time (everything sent while a write is in flight goes out together in the next one).
 *
 * @example Answer a line, then close
 * ```ts
 * import { EventLoop } from "./event_loop.ts";
 * import { InetAddress } from "./inet_address.ts";
 * import { TcpClient } from "./tcp_client.ts";
 * import { TcpServer } from "./tcp_server.ts";
 * import assert from "node:assert/strict";
 *
 * const loop = new EventLoop();
 * const server = new TcpServer(loop, new InetAddress("127.0.0.1", 0), "hello");
 * server.setMessageCallback((connection, buffer) => {
 *   connection.send(`hello, ${buffer.retrieveAllAsString()}`);
 *   connection.shutdown(); // half-close once the reply is sent
 * });
 * await server.start();
 * const reply = Promise.withResolvers<string>();
 * const client = new TcpClient(loop, server.address, "client");
 * client.setConnectionCallback((connection) => connection.connected && connection.send("dwt"));
 * client.setMessageCallback((_connection, buffer) => reply.resolve(buffer.retrieveAllAsString()));
 * client.connect();
 * assert.equal(await reply.promise, "hello, dwt");
 * await client.close();
 * await server.stop();
 * ```
 */
export class TcpConnection {
  /** The loop this connection belongs to. */
  readonly loop: EventLoop;
  /** Unique name, `server-ip:port#N` on servers. */
  readonly name: string;
  /** Local end. */
  readonly localAddress: InetAddress;
  /** Remote end. */
  readonly peerAddress: InetAddress;

  #socket: RawSocket;
  #state: TcpConnectionState = TcpConnectionState.CONNECTING;
  #reading = false;
  #inputBuffer = new Buffer();
  #readTargetBytes = MIN_READ_TARGET_BYTES;
  // Double buffering: `#outputBuffer` collects sends while `#writingBuffer` is in flight, so the bytes the kernel
  // is reading are never moved by compaction or growth.
  #outputBuffer = new Buffer();
  #writingBuffer = new Buffer();
  #writeInFlight = false;
  #flushScheduled = false;
  #wroteEarly = false;
  #gatherScheduled = false;
  #inMessageCallback = false;
  #pendingReadTarget: Uint8Array | undefined;
  #highWaterMark = DEFAULT_HIGH_WATER_MARK;
  #peerClosed = false;
  #closeHandled = false;
  #bytesReceived = 0;
  #bytesSent = 0;
  #context: unknown = undefined;

  // TcpServer and TcpClient always set these two (callbacks.ts has their defaults); until then, a connection
  // discards what it reads, so it never buffers without bound.
  #connectionCallback: ConnectionCallback = () => {};
  #messageCallback: MessageCallback = (_connection, buffer) => buffer.retrieveAll();
  #writeCompleteCallback: WriteCompleteCallback | undefined;
  #highWaterMarkCallback: HighWaterMarkCallback | undefined;
  #halfCloseCallback: HalfCloseCallback | undefined;
  #closeCallback: CloseCallback | undefined;

  /**
   * Wrap a connected socket. Called by TcpServer and TcpClient, not by users. Nothing is read until
   * {@linkcode TcpConnection.connectEstablished}.
   */
  constructor(loop: EventLoop, name: string, socket: RawSocket) {
    this.loop = loop;
    this.name = name;
    this.#socket = socket;
    this.localAddress = new InetAddress(socket.localAddress.hostname, socket.localAddress.port);
    this.peerAddress = new InetAddress(socket.remoteAddress.hostname, socket.remoteAddress.port);
  }

  /** The current state. */
  get state(): TcpConnectionState {
    return this.#state;
  }

  /** Whether the connection is up (sending is possible). */
  get connected(): boolean {
    return this.#state === TcpConnectionState.CONNECTED;
  }

  /** Whether the connection is down. */
  get disconnected(): boolean {
    return this.#state === TcpConnectionState.DISCONNECTED;
  }

  /** Whether reading is on (see {@linkcode TcpConnection.stopRead}). */
  get reading(): boolean {
    return this.#reading;
  }

  /** Received bytes not yet retrieved by the message callback. */
  get inputBuffer(): Buffer {
    return this.#inputBuffer;
  }

  /** Bytes accepted by `send` and not yet handed to the kernel, including the write in flight. */
  get pendingBytes(): number {
    return this.#outputBuffer.readableBytes + this.#writingBuffer.readableBytes;
  }

  /** Total bytes received. */
  get bytesReceived(): number {
    return this.#bytesReceived;
  }

  /** Total bytes handed to the kernel. */
  get bytesSent(): number {
    return this.#bytesSent;
  }

  /** Whatever the user attaches to the connection (muduo's context), such as a codec's per-connection state. */
  get context(): unknown {
    return this.#context;
  }

  set context(value: unknown) {
    this.#context = value;
  }

  /** Set the callback for connection up and down. */
  setConnectionCallback(callback: ConnectionCallback): void {
    this.#connectionCallback = callback;
  }

  /** Set the callback for arriving bytes. */
  setMessageCallback(callback: MessageCallback): void {
    this.#messageCallback = callback;
  }

  /** Set the callback for when the output has drained. */
  setWriteCompleteCallback(callback: WriteCompleteCallback | undefined): void {
    this.#writeCompleteCallback = callback;
  }

  /**
   * Set the callback for when pending output rises past `highWaterMark` bytes; it fires once per crossing.
   * @param highWaterMark Bytes; default {@linkcode DEFAULT_HIGH_WATER_MARK}.
   */
  setHighWaterMarkCallback(callback: HighWaterMarkCallback | undefined, highWaterMark = DEFAULT_HIGH_WATER_MARK): void {
    if (!Number.isInteger(highWaterMark) || highWaterMark <= 0) {
      throw new RangeError(
        `Cannot set high-water mark as 'highWaterMark' must be a positive integer: current value is ${highWaterMark}`,
      );
    }
    this.#highWaterMarkCallback = callback;
    this.#highWaterMark = highWaterMark;
  }

  /**
   * Keep the connection open for writing after the peer's FIN, and call `callback` when it comes (once). Unset (the
   * default), the connection closes itself on the peer's FIN as soon as its output has drained, and sends after
   * the FIN are dropped. Set, it stays connected until its owner calls `shutdown` (it then closes once the output
   * drains, both sides being done) or `forceClose`: for a protocol whose peer may half-close after its last
   * request and still wait for the answer (HTTP/1.0 tools, `nc -N`). Nothing more is read after the FIN.
   */
  setHalfCloseCallback(callback: HalfCloseCallback | undefined): void {
    this.#halfCloseCallback = callback;
  }

  /** Whether the peer has half-closed (sent FIN): nothing more will arrive. */
  get peerClosed(): boolean {
    return this.#peerClosed;
  }

  /** Internal: set by the owner (TcpServer, TcpClient) to learn that the connection has closed. */
  setCloseCallback(callback: CloseCallback): void {
    this.#closeCallback = callback;
  }

  /**
   * Send bytes (strings as UTF-8; a Buffer's readable bytes, which are then retrieved). Ignored with a log line
   * once the connection is not connected, as muduo does.
   */
  send(data: Uint8Array | string | Buffer): void {
    if (!this.#append(data) || this.#writeInFlight) return;
    const pending = this.#outputBuffer.readableBytes;
    if (!this.#wroteEarly && pending >= EARLY_WRITE_MIN_BYTES && pending <= EARLY_WRITE_MAX_BYTES) {
      this.#wroteEarly = true;
      this.#flush();
    }
    // Corking: everything sent in this tick (say, the replies to a batch of pipelined requests) goes out in one
    // write from a microtask, instead of a write per send. Scheduled after an early write too: it ends the turn.
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(this.#scheduledFlush);
    }
  }

  /**
   * Send like {@linkcode TcpConnection.send}, but let the output gather until the next turn of the host's loop
   * before it is written: for a producer that sends one piece per promise step (a stream's messages), whose pieces
   * would otherwise take a write each. A `send` meanwhile writes them along with its own.
   */
  sendGathered(data: Uint8Array): void {
    if (!this.#append(data)) return;
    if (!this.#writeInFlight && !this.#flushScheduled && !this.#gatherScheduled) {
      this.#gatherScheduled = true;
      nextTurn(this.#gatheredFlush);
    }
  }

  #gatheredFlush = (): void => {
    this.#gatherScheduled = false;
    if (!this.#writeInFlight && !this.#flushScheduled && this.#state !== TcpConnectionState.DISCONNECTED) {
      this.#flush();
    }
  };

  // Into the output buffer (false: not connected, nothing taken); tells of a high-water crossing.
  #append(data: Uint8Array | string | Buffer): boolean {
    if (this.#state !== TcpConnectionState.CONNECTED) {
      getLogger().warn(`TcpConnection ${this.name} is ${this.#state}, giving up writing`);
      return false;
    }
    const before = this.pendingBytes;
    if (data instanceof Buffer) {
      if (data === this.#inputBuffer && this.#inMessageCallback && this.#outputBuffer.readableBytes === 0) {
        // Echo-style send of our own input: swap the buffers instead of copying. Safe only inside the message
        // callback, when no read into the input buffer is in flight.
        this.#outputBuffer.swap(data);
      } else {
        this.#outputBuffer.append(data.peek());
        data.retrieveAll();
      }
    } else {
      this.#outputBuffer.append(data);
    }
    const after = this.pendingBytes;
    if (after >= this.#highWaterMark && before < this.#highWaterMark && this.#highWaterMarkCallback !== undefined) {
      const callback = this.#highWaterMarkCallback;
      this.loop.queueInLoop(() => callback(this, after));
    }
    return true;
  }

  #scheduledFlush = (): void => {
    this.#flushScheduled = false;
    const wroteEarly = this.#wroteEarly;
    this.#wroteEarly = false;
    if (this.#writeInFlight || this.#state === TcpConnectionState.DISCONNECTED) return;
    // The early write took the whole turn and has completed (on Node its callback comes before microtasks), and
    // reported the drain then; a shutdown meanwhile still needs the flush that closes.
    if (wroteEarly && this.#outputBuffer.readableBytes === 0 && this.#state === TcpConnectionState.CONNECTED) return;
    this.#flush();
  };

  /** Close the write side once everything sent so far has been written (the peer reads to the end). */
  shutdown(): void {
    if (this.#state !== TcpConnectionState.CONNECTED) return;
    this.#state = TcpConnectionState.DISCONNECTING;
    if (this.#writeInFlight || this.#flushScheduled || this.pendingBytes > 0) return;
    // Both directions done (the peer half-closed first, and a half-close callback kept us open): close.
    if (this.#peerClosed) this.#socket.close();
    else this.#socket.shutdownWrite();
  }

  /** Close now, dropping unsent output. The connection callback reports the close. */
  forceClose(): void {
    if (this.#state === TcpConnectionState.DISCONNECTED) return;
    this.#state = TcpConnectionState.DISCONNECTING;
    this.#socket.close();
  }

  /** Close after `delayMs` unless the connection has closed by then. */
  forceCloseWithDelay(delayMs: number): void {
    if (this.#state === TcpConnectionState.DISCONNECTED) return;
    this.loop.runAfter(delayMs, () => this.forceClose());
  }

  /** Disable or enable Nagle's algorithm. */
  setTcpNoDelay(enabled: boolean): void {
    this.#socket.setNoDelay(enabled);
  }

  /** Set SO_KEEPALIVE. */
  setKeepAlive(enabled: boolean): void {
    this.#socket.setKeepAlive(enabled);
  }

  /** Resume reading after {@linkcode TcpConnection.stopRead}. */
  startRead(): void {
    if (this.#reading || this.#state === TcpConnectionState.DISCONNECTED) return;
    this.#reading = true;
    this.#socket.resumeReading();
  }

  /** Stop reading (back-pressure); bytes already received may still be delivered once. */
  stopRead(): void {
    if (!this.#reading) return;
    this.#reading = false;
    this.#socket.pauseReading();
  }

  /** Internal: called once by the owner when it has registered the connection. Starts reading. */
  connectEstablished(): void {
    if (this.#state !== TcpConnectionState.CONNECTING) {
      throw new TypeError(`Cannot establish connection ${this.name} as it is ${this.#state}`);
    }
    this.#state = TcpConnectionState.CONNECTED;
    this.#reading = true;
    this.#socket.start({
      readTarget: () => this.#readTarget(),
      onData: (chunk) => this.#handleRead(chunk),
      onEnd: () => this.#handlePeerEnd(),
      onError: (error) => this.#handleError(error),
      onClose: () => this.#handleClose(),
    });
    this.#connectionCallback(this);
  }

  // Offered to the backend so reads land in the input buffer directly (see RawSocketHandlers.readTarget).
  #readTarget(): Uint8Array {
    this.#inputBuffer.ensureWritableBytes(this.#readTargetBytes);
    this.#pendingReadTarget = this.#inputBuffer.beginWrite();
    return this.#pendingReadTarget;
  }

  #handleRead(chunk: Uint8Array): void {
    if (this.#state === TcpConnectionState.DISCONNECTED) return;
    this.#bytesReceived += chunk.length;
    if (chunk.length >= this.#readTargetBytes && this.#readTargetBytes < MAX_READ_TARGET_BYTES) {
      this.#readTargetBytes *= 2;
    }
    const target = this.#pendingReadTarget;
    this.#pendingReadTarget = undefined;
    const inPlace = target !== undefined && chunk.buffer === target.buffer && chunk.byteOffset === target.byteOffset;
    const writable = this.#inputBuffer.beginWrite();
    if (inPlace && writable.buffer === target.buffer && writable.byteOffset === target.byteOffset) {
      this.#inputBuffer.hasWritten(chunk.length);
    } else {
      // The input buffer changed while the read was in flight (retrieved or grown from elsewhere): copy.
      this.#inputBuffer.append(chunk);
    }
    this.#inMessageCallback = true;
    try {
      this.#messageCallback(this, this.#inputBuffer, this.loop.now());
    } catch (error) {
      // A throwing handler is a bug in one connection's handling; the rest of the server keeps serving.
      getLogger().error(`Message callback of ${this.name} threw; closing the connection`, { error });
      this.forceClose();
    } finally {
      this.#inMessageCallback = false;
    }
  }

  #handlePeerEnd(): void {
    // muduo closes on read() == 0. Waiting for pending output first lets a peer that half-closes after its last
    // request still receive the full reply.
    this.#peerClosed = true;
    const halfClose = this.#halfCloseCallback;
    if (halfClose !== undefined && this.#state === TcpConnectionState.CONNECTED) {
      try {
        halfClose(this);
      } catch (error) {
        getLogger().error(`Half-close callback of ${this.name} threw; closing the connection`, { error });
        this.forceClose();
      }
      return;
    }
    if (this.#writeInFlight || this.#flushScheduled || this.pendingBytes > 0) {
      if (this.#state === TcpConnectionState.CONNECTED) this.#state = TcpConnectionState.DISCONNECTING;
      return;
    }
    this.#socket.close();
  }

  #handleError(error: Error): void {
    getLogger().debug(`TcpConnection ${this.name} error: ${error.message}`);
  }

  #handleClose(): void {
    if (this.#closeHandled) return;
    this.#closeHandled = true;
    this.#state = TcpConnectionState.DISCONNECTED;
    this.#reading = false;
    this.#outputBuffer.retrieveAll();
    this.#writingBuffer.retrieveAll();
    this.#connectionCallback(this);
    this.#closeCallback?.(this);
  }

  #flush(): void {
    if (this.#outputBuffer.readableBytes === 0) {
      this.#handleDrained();
      return;
    }
    const swap = this.#writingBuffer;
    this.#writingBuffer = this.#outputBuffer;
    this.#outputBuffer = swap;
    this.#writeInFlight = true;
    const chunk = this.#writingBuffer.peek();
    this.#socket.write(chunk, (error) => this.#handleWriteDone(chunk.length, error));
  }

  #handleWriteDone(length: number, error?: Error): void {
    this.#writeInFlight = false;
    if (error !== undefined) {
      getLogger().debug(`TcpConnection ${this.name} write error: ${error.message}`);
      this.#socket.close();
      return;
    }
    this.#bytesSent += length;
    this.#writingBuffer.retrieveAll();
    if (this.#state === TcpConnectionState.DISCONNECTED) return;
    if (this.#outputBuffer.readableBytes > 0) {
      this.#flush();
      return;
    }
    this.#handleDrained();
  }

  #handleDrained(): void {
    if (this.#writeCompleteCallback !== undefined) {
      const callback = this.#writeCompleteCallback;
      this.loop.queueInLoop(() => callback(this));
    }
    // Still connected after the peer's FIN (a half-close callback is set): the owner writes on.
    if (this.#state !== TcpConnectionState.DISCONNECTING) return;
    if (this.#peerClosed) this.#socket.close();
    else this.#socket.shutdownWrite();
  }
}
