/**
 * The runtime backend: the one seam between the reactor and the JavaScript runtime (Deno, Node, Bun).
 *
 * It plays muduo's Poller/Channel/Socket role: the runtime already multiplexes I/O, so a backend only turns
 * the runtime's sockets, files, workers and process facilities into this small callback interface. Nothing
 * outside `reactor/backend/` may name `Deno.`, `Bun.` or `node:`; everything above uses a backend object that
 * is passed in (usually through `EventLoop`), never a module-global.
 *
 * @module
 */

import type { HostTimer } from "../timer_queue.ts";
import type { FileSystemBackend } from "./file_system_backend.ts";

/**
 * A network endpoint as a runtime reports it. IPv6 hostnames are bare (`::1`, not `[::1]`).
 *
 * @example
 * ```ts
 * import type { SocketAddress } from "./net_backend.ts";
 *
 * const show = (address: SocketAddress) =>
 *   address.hostname.includes(":") ? `[${address.hostname}]:${address.port}` : `${address.hostname}:${address.port}`;
 * ```
 */
export interface SocketAddress {
  /** Numeric host address, such as `127.0.0.1` or `::1`. */
  readonly hostname: string;
  /** Port number in [0, 65535]. */
  readonly port: number;
}

/**
 * The events a {@linkcode RawSocket} reports. Every callback is invoked from the runtime's event loop.
 *
 * Ordering guarantee: any number of `onData` calls, then at most one `onEnd`, then exactly one `onClose`.
 * `onError` may come before `onClose` at any point; `onClose` always follows it.
 *
 * @example
 * ```ts
 * import { defaultBackend } from "./default.ts";
 *
 * const listener = await defaultBackend().listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener.accept();
 * const client = await defaultBackend().connect(listener.address);
 * const server = await accepted;
 * const closed = Promise.withResolvers<void>();
 * server.start({ onData: () => {}, onEnd: () => server.close(), onError: () => {}, onClose: () => closed.resolve() });
 * client.start({ onData: () => {}, onEnd: () => {}, onError: () => {}, onClose: () => {} });
 * client.shutdownWrite(); // the server sees onEnd, closes, then onClose
 * await closed.promise;
 * client.close();
 * listener.close();
 * ```
 */
export interface RawSocketHandlers {
  /**
   * Bytes arrived. `chunk` is only valid during the call (the backend may reuse its memory), so the
   * receiver copies what it keeps (TcpConnection appends it to its input Buffer).
   */
  onData(chunk: Uint8Array): void;
  /**
   * Optional: where the next read should land, such as the writable region of the owner's input buffer, so bytes
   * are read in place instead of being copied out of the backend's own buffer. When the backend uses it, the
   * `chunk` given to `onData` is a view at the start of the returned region. Backends that receive fresh chunks
   * from the runtime (Node) ignore it.
   */
  readTarget?(): Uint8Array;
  /** The peer half-closed its side (FIN). Reading has stopped; writing may continue. */
  onEnd(): void;
  /** A socket error (reset, broken pipe, ...). `onClose` follows. */
  onError(error: Error): void;
  /** The socket is fully closed and its resources are released. Called exactly once. */
  onClose(): void;
}

/**
 * A connected TCP stream as the runtime gives it. Owned by exactly one TcpConnection.
 *
 * Reading starts when {@linkcode RawSocket.start} is called (so the owner can install handlers first).
 *
 * @example
 * ```ts
 * import type { RawSocket } from "./net_backend.ts";
 *
 * // Write a chunk and wait until the kernel has it (TcpConnection keeps one write in flight the same way).
 * const writeAll = (socket: RawSocket, chunk: Uint8Array) =>
 *   new Promise<void>((resolve, reject) => socket.write(chunk, (error) => error ? reject(error) : resolve()));
 * ```
 */
export interface RawSocket {
  /** Local address of the connection. */
  readonly localAddress: SocketAddress;
  /** Remote address of the connection. */
  readonly remoteAddress: SocketAddress;
  /** Install the handlers and begin reading. Must be called once, before any other method but the getters. */
  start(handlers: RawSocketHandlers): void;
  /**
   * Hand `chunk` to the kernel. `done` is called once every byte has been accepted by the kernel (or with an
   * error). The caller does not modify `chunk` until `done`, and keeps at most one write in flight: that lets
   * TcpConnection coalesce everything sent meanwhile into its output Buffer and flush it in one write.
   */
  write(chunk: Uint8Array, done: (error?: Error) => void): void;
  /** Stop delivering `onData` until {@linkcode RawSocket.resumeReading} (back-pressure). Idempotent. */
  pauseReading(): void;
  /** Resume delivering `onData`. Idempotent. */
  resumeReading(): void;
  /** Half-close: send FIN after the in-flight write completes. Reading continues. */
  shutdownWrite(): void;
  /** Close both directions now, dropping unsent data; `onClose` follows. Idempotent. */
  close(): void;
  /** Set TCP_NODELAY (disable Nagle). */
  setNoDelay(enabled: boolean): void;
  /** Set SO_KEEPALIVE. */
  setKeepAlive(enabled: boolean): void;
}

/**
 * TLS for a listening socket: a PEM certificate chain and its PEM private key.
 *
 * @example
 * ```ts
 * import type { TlsServerOptions } from "./net_backend.ts";
 *
 * const tls = (certPem: string, keyPem: string): TlsServerOptions => ({ cert: certPem, key: keyPem });
 * ```
 */
export interface TlsServerOptions {
  /** The PEM certificate chain, the server's own certificate first. */
  readonly cert: string;
  /** The PEM private key of the certificate. */
  readonly key: string;
}

/**
 * TLS for an outgoing connection.
 *
 * @example
 * ```ts
 * import type { TlsClientOptions } from "./net_backend.ts";
 *
 * const trustPrivateCa = (caPem: string): TlsClientOptions => ({ caCerts: [caPem], serverName: "registry.internal" });
 * ```
 */
export interface TlsClientOptions {
  /** PEM certificates to trust in addition to the system's (a self-signed server certificate, a private CA). */
  readonly caCerts?: readonly string[];
  /** The name the server certificate must carry; default the host connected to. */
  readonly serverName?: string;
}

/**
 * Options of {@linkcode NetBackend.listen}.
 *
 * @example
 * ```ts
 * import { defaultBackend } from "./default.ts";
 * import type { ListenOptions } from "./net_backend.ts";
 *
 * const options: ListenOptions = { hostname: "127.0.0.1", port: 0 };
 * const listener = await defaultBackend().listen(options);
 * listener.close();
 * ```
 */
export interface ListenOptions {
  /** Address to bind. */
  readonly hostname: string;
  /** Port to bind; 0 picks a free port. */
  readonly port: number;
  /**
   * Set SO_REUSEPORT so several isolates can listen on one port and the kernel spreads connections.
   * Throws a `TypeError` when {@linkcode NetBackend.supportsReusePort} is false.
   * @default {false}
   */
  readonly reusePort?: boolean;
  /** Serve TLS with this certificate and key. */
  readonly tls?: TlsServerOptions;
}

/**
 * A listening TCP socket.
 *
 * @example
 * ```ts
 * import type { RawListener, RawSocket } from "./net_backend.ts";
 *
 * // Accept until the listener is closed (accept then rejects).
 * async function acceptAll(listener: RawListener, onSocket: (socket: RawSocket) => void): Promise<void> {
 *   try {
 *     for (;;) onSocket(await listener.accept());
 *   } catch {
 *     // closed
 *   }
 * }
 * ```
 */
export interface RawListener {
  /** The bound address (the real port when 0 was asked for). */
  readonly address: SocketAddress;
  /**
   * Wait for the next connection. Rejects with an error when accepting fails (EMFILE, ...) and with an error
   * whose `name` is `"BadResource"` or `"Interrupted"` (or any error after close) once the listener is closed.
   * At most one `accept` is pending at a time.
   */
  accept(): Promise<RawSocket>;
  /** Stop listening; a pending `accept` rejects. Idempotent. */
  close(): void;
}

/**
 * Options of {@linkcode NetBackend.connect}.
 *
 * @example
 * ```ts
 * import type { ConnectOptions } from "./net_backend.ts";
 *
 * const options: ConnectOptions = { hostname: "127.0.0.1", port: 8800, signal: AbortSignal.timeout(3_000) };
 * ```
 */
export interface ConnectOptions {
  /** Host to connect to (numeric or a name). */
  readonly hostname: string;
  /** Port to connect to. */
  readonly port: number;
  /** Abort the attempt. */
  readonly signal?: AbortSignal;
  /** Speak TLS, verifying the server's certificate. */
  readonly tls?: TlsClientOptions;
}

/**
 * A received UDP datagram callback. `data` is only valid during the call.
 *
 * @example
 * ```ts
 * import type { DatagramHandler } from "./net_backend.ts";
 *
 * const onDatagram: DatagramHandler = (data, from) => console.log(`${data.length} bytes from ${from.hostname}`);
 * ```
 */
export type DatagramHandler = (data: Uint8Array, from: SocketAddress) => void;

/**
 * A bound UDP socket (heartbeats).
 *
 * @example
 * ```ts
 * import { defaultBackend } from "./default.ts";
 *
 * const a = await defaultBackend().bindUdp({ hostname: "127.0.0.1", port: 0 });
 * const b = await defaultBackend().bindUdp({ hostname: "127.0.0.1", port: 0 });
 * const got = Promise.withResolvers<number>();
 * b.start((data) => got.resolve(data.length), () => {});
 * a.start(() => {}, () => {});
 * await a.send(new Uint8Array(40), b.address);
 * console.log(await got.promise); // 40
 * a.close();
 * b.close();
 * ```
 */
export interface RawUdpSocket {
  /** The bound address. */
  readonly address: SocketAddress;
  /** Install the receive handler and start receiving. Call once. */
  start(onMessage: DatagramHandler, onError: (error: Error) => void): void;
  /** Send one datagram. Errors are reported through the returned promise, never thrown synchronously. */
  send(data: Uint8Array, to: SocketAddress): Promise<void>;
  /** Stop receiving and release the socket. Idempotent. */
  close(): void;
}

/**
 * Options of {@linkcode NetBackend.bindUdp}.
 *
 * @example
 * ```ts
 * import type { BindUdpOptions } from "./net_backend.ts";
 *
 * const options: BindUdpOptions = { hostname: "127.0.0.1", port: 0 }; // 0: any free port
 * ```
 */
export interface BindUdpOptions {
  /** Address to bind. */
  readonly hostname: string;
  /** Port to bind; 0 picks a free port. */
  readonly port: number;
}

export type {
  AppendFile,
  DurableAppendFile,
  DurableAppendOptions,
  FileModeOptions,
  FileSystemBackend,
} from "./file_system_backend.ts";

/**
 * The parent's side of a worker started by {@linkcode WorkerBackend.spawn}.
 *
 * @example
 * ```ts
 * import type { WorkerHandle } from "./net_backend.ts";
 *
 * const ask = (worker: WorkerHandle, question: unknown) =>
 *   new Promise<unknown>((resolve, reject) => {
 *     worker.onMessage(resolve);
 *     worker.onError(reject);
 *     worker.postMessage(question);
 *   });
 * ```
 */
export interface WorkerHandle {
  /** Send a structured-cloneable message to the worker. */
  postMessage(message: unknown): void;
  /** Receive messages from the worker. */
  onMessage(handler: (message: unknown) => void): void;
  /** Called when the worker throws an uncaught error. */
  onError(handler: (error: Error) => void): void;
  /** Stop the worker now. */
  terminate(): void;
}

/**
 * The worker's side of the channel to its parent, from {@linkcode WorkerBackend.parentPort}.
 *
 * @example
 * ```ts
 * import { defaultBackend } from "./default.ts";
 *
 * // In a Worker's module: answer the parent. On the main thread parentPort() is undefined.
 * const port = defaultBackend().workers.parentPort();
 * port?.onMessage((message) => port.postMessage({ echo: message }));
 * ```
 */
export interface ParentPort {
  /** Send a structured-cloneable message to the parent. */
  postMessage(message: unknown): void;
  /** Receive messages from the parent. */
  onMessage(handler: (message: unknown) => void): void;
  /** Stop this worker from the inside (ends its isolate). */
  close(): void;
}

/**
 * Workers: muduo's threads. A socket cannot move between isolates; each Worker runs its own EventLoop.
 *
 * @example
 * ```ts
 * import { defaultBackend } from "./default.ts";
 *
 * const workers = defaultBackend().workers;
 * console.log(workers.parentPort() === undefined ? "main thread" : "a Worker");
 * ```
 */
export interface WorkerBackend {
  /** Start a module worker running `moduleUrl` (an ES module URL). */
  spawn(moduleUrl: string, options?: { readonly name?: string }): WorkerHandle;
  /** The parent port when this code runs inside a worker, else `undefined`. */
  parentPort(): ParentPort | undefined;
}

/**
 * A child process from {@linkcode ProcessBackend.spawn}.
 *
 * @example
 * ```ts
 * import type { ChildProcessHandle } from "./net_backend.ts";
 *
 * // Wait for a child's READY line, as the tests do with a registry they start.
 * async function ready(child: ChildProcessHandle): Promise<string> {
 *   for await (const line of child.stdout) if (line.startsWith("READY ")) return line.slice(6);
 *   throw new Error(`Exited with ${await child.exited} before READY`);
 * }
 * ```
 */
export interface ChildProcessHandle {
  /** Its process id. */
  readonly pid: number;
  /** Lines of its standard output (read them, or the child may block on a full pipe). */
  readonly stdout: AsyncIterable<string>;
  /** Lines of its standard error. */
  readonly stderr: AsyncIterable<string>;
  /** Resolves with its exit code (or 128 + signal number when a signal ended it). */
  readonly exited: Promise<number>;
  /** Send a signal. */
  kill(signal?: "SIGTERM" | "SIGKILL" | "SIGINT"): void;
}

/**
 * Process-level facilities for command-line programs (servers, CLIs, examples).
 *
 * @example
 * ```ts
 * import { defaultBackend } from "./default.ts";
 *
 * const process = defaultBackend().process;
 * if (process.isMain(import.meta)) {
 *   const stop = process.onSignal("SIGINT", () => process.exit(0));
 *   process.writeStdout(`pid ${process.pid}, args ${process.args().join(" ")}\n`);
 *   stop();
 * }
 * ```
 */
export interface ProcessBackend {
  /**
   * Whether the module whose `import.meta` is given is the program's entry point (`import.meta.main`, which
   * Node 20 lacks).
   */
  isMain(meta: ImportMeta): boolean;
  /** The command line that runs the module at `moduleUrl` on this same runtime, as a child process. */
  commandFor(moduleUrl: string): string[];
  /** Start a child process (`argv[0]` is the program); its output comes back line by line. */
  spawn(argv: readonly string[], options?: { readonly env?: Readonly<Record<string, string>> }): ChildProcessHandle;
  /** Command-line arguments after the script. */
  args(): string[];
  /** An environment variable, or `undefined`. */
  env(name: string): string | undefined;
  /** Exit the process. */
  exit(code: number): never;
  /** Run `handler` on SIGINT/SIGTERM; returns a function that removes it. */
  onSignal(signal: "SIGINT" | "SIGTERM", handler: () => void): () => void;
  /**
   * Keep serving after a promise rejection nobody handled or an exception nobody caught: `handler` is told (to log
   * it) instead of the process exiting. For servers, whose one bad connection must not take down the rest. Returns
   * a function that restores the default.
   */
  onUncaughtError(handler: (error: unknown) => void): () => void;
  /** Write text to stderr synchronously (used by the Logger's default output). */
  writeStderr(text: string): void;
  /** Write text to stdout synchronously. */
  writeStdout(text: string): void;
  /** Lines of standard input, for interactive shells. */
  stdinLines(): AsyncIterable<string>;
  /** The process id. */
  readonly pid: number;
}

/**
 * Everything a runtime provides to the framework. One object per runtime; pass it to `EventLoop` to override
 * the default.
 *
 * @example Wrap the runtime's backend
 * ```ts
 * import { EventLoop } from "../event_loop.ts";
 * import { defaultBackend } from "./default.ts";
 * import type { NetBackend } from "./net_backend.ts";
 *
 * // A backend that counts outgoing connections, wrapping the runtime's own.
 * const base = defaultBackend();
 * let connects = 0;
 * const counting: NetBackend = { ...base, connect: (options) => (connects++, base.connect(options)) };
 * const loop = new EventLoop({ backend: counting });
 * ```
 */
export interface NetBackend {
  /** Which runtime this backend drives. */
  readonly name: "deno" | "node" | "bun";
  /** Whether `listen({ reusePort: true })` works here (Linux Deno with --unstable-net; Node >= 22.12; Bun). */
  readonly supportsReusePort: boolean;
  /**
   * The runtime's timer for the loop's TimerQueue, where the global `setTimeout` cannot be unreferenced through
   * its handle (Deno's is a number: `Deno.unrefTimer` does it). Without it the loop uses the globals.
   */
  readonly hostTimer?: HostTimer;
  /** Open a listening TCP socket. */
  listen(options: ListenOptions): Promise<RawListener>;
  /** Connect a TCP socket. Rejects with the runtime's error (its `name` or `code` says ECONNREFUSED etc). */
  connect(options: ConnectOptions): Promise<RawSocket>;
  /** Bind a UDP socket. */
  bindUdp(options: BindUdpOptions): Promise<RawUdpSocket>;
  /** Files. */
  readonly fs: FileSystemBackend;
  /** Workers. */
  readonly workers: WorkerBackend;
  /** The process. */
  readonly process: ProcessBackend;
}
