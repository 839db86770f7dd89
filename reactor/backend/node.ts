/**
 * The Node backend, also used by Bun: `node:net`, `node:dgram`, `node:fs/promises`, `node:worker_threads` and
 * `node:process`. It runs under Deno too (through Deno's Node compatibility), which is how the test suite
 * exercises it beside the Deno backend.
 *
 * @module
 */

import * as childProcess from "node:child_process";
import * as dgram from "node:dgram";
import { realpathSync, writeSync, writeSync as fsWriteSync } from "node:fs";
import * as fsp from "node:fs/promises";
import * as net from "node:net";
import * as tls from "node:tls";
import { constants as osConstants } from "node:os";
import process from "node:process";
import * as readline from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as workerThreads from "node:worker_threads";
import type {
  AppendFile,
  BindUdpOptions,
  ChildProcessHandle,
  ConnectOptions,
  DatagramHandler,
  FileSystemBackend,
  ListenOptions,
  NetBackend,
  ParentPort,
  ProcessBackend,
  RawListener,
  RawSocket,
  RawSocketHandlers,
  RawUdpSocket,
  SocketAddress,
  WorkerBackend,
  WorkerHandle,
} from "./net_backend.ts";
import { fsyncDir, openDurableAppend } from "./_durable_file.ts";

// Node 20 lacks Promise.withResolvers (Node 22 has it); the framework uses it throughout, so this backend, which
// every Node program loads, supplies it.
if (typeof (Promise as { withResolvers?: unknown }).withResolvers !== "function") {
  Object.defineProperty(Promise, "withResolvers", {
    configurable: true,
    writable: true,
    value: function withResolvers<T>(): PromiseWithResolvers<T> {
      let resolve!: (value: T | PromiseLike<T>) => void;
      let reject!: (reason?: unknown) => void;
      const promise = new Promise<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

function nodeSupportsReusePort(): boolean {
  if (isBun) return true;
  if (isDeno) return false; // Deno's node:net does not promise SO_REUSEPORT; use the Deno backend there.
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
  return process.platform === "linux" && (major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12));
}

function bareHost(host: string | undefined): string {
  return (host ?? "").replace(/^\[|\]$/g, "");
}

class NodeTcpSocket implements RawSocket {
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;
  readonly #socket: net.Socket;
  #started = false;
  #closed = false;
  #closeReported = false;

  constructor(socket: net.Socket) {
    this.#socket = socket;
    this.localAddress = { hostname: bareHost(socket.localAddress), port: socket.localPort ?? 0 };
    this.remoteAddress = { hostname: bareHost(socket.remoteAddress), port: socket.remotePort ?? 0 };
  }

  start(handlers: RawSocketHandlers): void {
    if (this.#started) throw new TypeError("Cannot start a socket twice");
    this.#started = true;
    const socket = this.#socket;
    socket.on("data", (chunk: Uint8Array) => handlers.onData(chunk));
    socket.on("end", () => handlers.onEnd());
    socket.on("error", (error: Error) => handlers.onError(error));
    socket.on("close", () => {
      this.#closed = true;
      if (this.#closeReported) return;
      this.#closeReported = true;
      handlers.onClose();
    });
    if (socket.destroyed) {
      this.#closeReported = true;
      queueMicrotask(() => handlers.onClose());
      return;
    }
    socket.resume();
  }

  write(chunk: Uint8Array, done: (error?: Error) => void): void {
    if (this.#closed || this.#socket.destroyed) {
      done(new Error("Cannot write to a closed socket"));
      return;
    }
    this.#socket.write(chunk, (error?: Error | null) => done(error ?? undefined));
  }

  pauseReading(): void {
    this.#socket.pause();
  }

  resumeReading(): void {
    if (this.#started) this.#socket.resume();
  }

  shutdownWrite(): void {
    if (!this.#closed) this.#socket.end();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.destroy();
  }

  setNoDelay(enabled: boolean): void {
    this.#socket.setNoDelay(enabled);
  }

  setKeepAlive(enabled: boolean): void {
    this.#socket.setKeepAlive(enabled);
  }
}

function closedError(): Error {
  const error = new Error("Cannot accept as the listener is closed");
  error.name = "BadResource";
  return error;
}

class NodeListener implements RawListener {
  readonly address: SocketAddress;
  readonly #server: net.Server;
  #queue: net.Socket[] = [];
  #waiting: { resolve: (socket: RawSocket) => void; reject: (error: Error) => void } | undefined;
  #closed = false;

  constructor(server: net.Server, tlsServer = false) {
    this.#server = server;
    const address = server.address() as net.AddressInfo;
    this.address = { hostname: bareHost(address.address), port: address.port };
    // A TLS server hands over connections once their handshake is done; a failed handshake never reaches us.
    server.on(tlsServer ? "secureConnection" : "connection", (socket: net.Socket) => {
      if (this.#waiting !== undefined) {
        const waiting = this.#waiting;
        this.#waiting = undefined;
        waiting.resolve(new NodeTcpSocket(socket));
      } else {
        this.#queue.push(socket);
      }
    });
  }

  accept(): Promise<RawSocket> {
    if (this.#closed) return Promise.reject(closedError());
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve(new NodeTcpSocket(queued));
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.close();
    for (const socket of this.#queue) socket.destroy();
    this.#queue = [];
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.reject(closedError());
  }
}

class NodeUdpSocket implements RawUdpSocket {
  readonly address: SocketAddress;
  readonly #socket: dgram.Socket;
  #closed = false;

  constructor(socket: dgram.Socket) {
    this.#socket = socket;
    const address = socket.address();
    this.address = { hostname: address.address, port: address.port };
  }

  start(onMessage: DatagramHandler, onError: (error: Error) => void): void {
    this.#socket.on(
      "message",
      (data: Uint8Array, from: dgram.RemoteInfo) => onMessage(data, { hostname: from.address, port: from.port }),
    );
    this.#socket.on("error", (error: Error) => onError(error));
  }

  send(data: Uint8Array, to: SocketAddress): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("Cannot send on a closed UDP socket"));
    return new Promise((resolve, reject) => {
      this.#socket.send(data, to.port, to.hostname, (error: Error | null) => error ? reject(error) : resolve());
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.close();
  }
}

class NodeAppendFile implements AppendFile {
  readonly #handle: fsp.FileHandle;
  #closed = false;

  constructor(handle: fsp.FileHandle) {
    this.#handle = handle;
  }

  async write(data: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < data.length) {
      const { bytesWritten } = await this.#handle.write(data, offset, data.length - offset);
      offset += bytesWritten;
    }
  }

  writeSync(data: Uint8Array): void {
    let offset = 0;
    while (offset < data.length) offset += fsWriteSync(this.#handle.fd, data, offset, data.length - offset);
  }

  sync(): Promise<void> {
    return this.#handle.datasync();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handle.close().catch(() => {});
  }
}

function isNotFound(error: unknown): boolean {
  return (error as { code?: string })?.code === "ENOENT";
}

/** The error the FileSystemBackend contract promises for a missing file: `name` is `"NotFound"`. */
function notFoundError(path: string, cause: unknown): Error {
  const notFound = new Error(`No such file: ${path}`, { cause });
  notFound.name = "NotFound";
  return notFound;
}

const nodeFileSystem: FileSystemBackend = {
  openDurableAppend,
  async openAppend(path) {
    return new NodeAppendFile(await fsp.open(path, "a"));
  },
  async readFile(path) {
    try {
      const data = await fsp.readFile(path);
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    } catch (error) {
      throw isNotFound(error) ? notFoundError(path, error) : error;
    }
  },
  async writeFile(path, data, options = {}) {
    const handle = await fsp.open(path, "w", options.mode ?? 0o644);
    try {
      let offset = 0;
      while (offset < data.length) {
        const { bytesWritten } = await handle.write(data, offset, data.length - offset);
        offset += bytesWritten;
      }
      await handle.datasync();
    } finally {
      await handle.close();
    }
  },
  rename: (from, to) => fsp.rename(from, to),
  remove: (path) => fsp.rm(path, { force: true }),
  async mkdir(path, options = {}) {
    await fsp.mkdir(path, { recursive: true, mode: options.mode ?? 0o777 });
  },
  async readDir(path) {
    try {
      return await fsp.readdir(path);
    } catch (error) {
      if (isNotFound(error)) return [];
      throw error;
    }
  },
  chmod: (path, mode) => fsp.chmod(path, mode),
  async stat(path) {
    try {
      const info = await fsp.stat(path);
      return { mode: info.mode & 0o7777, size: info.size, isDirectory: info.isDirectory() };
    } catch (error) {
      throw isNotFound(error) ? notFoundError(path, error) : error;
    }
  },
  fsyncDir,
};

const nodeWorkers: WorkerBackend = {
  spawn(moduleUrl, options = {}): WorkerHandle {
    const worker = new workerThreads.Worker(new URL(moduleUrl), { name: options.name });
    return {
      postMessage: (message) => worker.postMessage(message),
      onMessage: (handler) => worker.on("message", handler),
      onError: (handler) => worker.on("error", handler),
      terminate: () => void worker.terminate(),
    };
  },
  parentPort(): ParentPort | undefined {
    const port = workerThreads.parentPort;
    if (port === null) return undefined;
    return {
      postMessage: (message) => port.postMessage(message),
      onMessage: (handler) => port.on("message", handler),
      close: () => port.close(),
    };
  },
};

async function* nodeLines(stream: NodeJS.ReadableStream | null): AsyncGenerator<string> {
  if (stream === null) return;
  for await (const line of readline.createInterface({ input: stream, crlfDelay: Infinity })) yield line;
}

const nodeProcess: ProcessBackend = {
  isMain(meta) {
    const main = (meta as { main?: boolean }).main;
    if (typeof main === "boolean") return main; // Bun, Node >= 24
    const script = process.argv[1];
    if (script === undefined) return false;
    try {
      return meta.url === pathToFileURL(realpathSync(script)).href;
    } catch {
      return false;
    }
  },
  commandFor(moduleUrl) {
    const script = fileURLToPath(moduleUrl);
    if (isDeno) return [process.execPath, "run", "-A", script];
    // Node keeps its loader flags (tsx's --import) so the child can load TypeScript too.
    return isBun ? [process.execPath, script] : [process.execPath, ...process.execArgv, script];
  },
  spawn(argv, options = {}): ChildProcessHandle {
    const child = childProcess.spawn(argv[0]!, argv.slice(1), {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...options.env },
    });
    const exited = new Promise<number>((resolve) => {
      child.on("exit", (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : osConstants.signals[signal])));
      child.on("error", () => resolve(127));
    });
    return {
      pid: child.pid ?? 0,
      stdout: nodeLines(child.stdout),
      stderr: nodeLines(child.stderr),
      exited,
      kill(signal = "SIGTERM") {
        child.kill(signal);
      },
    };
  },
  args: () => process.argv.slice(2),
  env: (name) => process.env[name],
  exit: (code) => process.exit(code),
  onSignal(signal, handler) {
    process.on(signal, handler);
    return () => void process.off(signal, handler);
  },
  onUncaughtError(handler) {
    process.on("unhandledRejection", handler);
    process.on("uncaughtException", handler);
    return () => {
      process.off("unhandledRejection", handler);
      process.off("uncaughtException", handler);
    };
  },
  writeStderr: (text) => void writeSync(2, text),
  writeStdout: (text) => void writeSync(1, text),
  async *stdinLines() {
    const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    for await (const line of lines) yield line;
  },
  get pid() {
    return process.pid;
  },
};

/**
 * Node (and Bun) as a {@linkcode NetBackend}.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../event_loop.ts";
 * import { nodeBackend } from "./node.ts";
 *
 * const loop = new EventLoop({ backend: nodeBackend }); // what defaultBackend() picks on Node and Bun
 * ```
 */
export const nodeBackend: NetBackend = {
  name: isBun ? "bun" : "node",
  supportsReusePort: nodeSupportsReusePort(),
  listen(options: ListenOptions): Promise<RawListener> {
    if (options.reusePort && !nodeBackend.supportsReusePort) {
      return Promise.reject(
        new TypeError(`Cannot listen with 'reusePort' as the ${nodeBackend.name} backend here does not support it`),
      );
    }
    return new Promise((resolve, reject) => {
      const server = options.tls === undefined
        ? net.createServer({ allowHalfOpen: true, pauseOnConnect: true })
        : tls.createServer({ allowHalfOpen: true, cert: options.tls.cert, key: options.tls.key });
      server.once("error", reject);
      const listenOptions: net.ListenOptions & { reusePort?: boolean } = {
        host: options.hostname,
        port: options.port,
      };
      if (options.reusePort) listenOptions.reusePort = true;
      server.listen(listenOptions, () => {
        server.off("error", reject);
        server.on("error", () => {
          // Accept errors after listening: Node retries by itself.
        });
        resolve(new NodeListener(server, options.tls !== undefined));
      });
    });
  },
  connect(options: ConnectOptions): Promise<RawSocket> {
    return new Promise((resolve, reject) => {
      const socket = options.tls === undefined
        ? net.connect({ host: options.hostname, port: options.port, allowHalfOpen: true })
        : tls.connect({
          host: options.hostname,
          port: options.port,
          servername: net.isIP(options.tls.serverName ?? options.hostname) ? undefined : options.tls.serverName ??
            options.hostname,
          ca: options.tls.caCerts === undefined ? undefined : [...tls.rootCertificates, ...options.tls.caCerts],
        });
      const onAbort = () => {
        socket.destroy();
        reject(options.signal?.reason ?? new Error("Connect aborted"));
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      socket.once("error", (error: Error) => {
        options.signal?.removeEventListener("abort", onAbort);
        reject(error);
      });
      socket.once(options.tls === undefined ? "connect" : "secureConnect", () => {
        options.signal?.removeEventListener("abort", onAbort);
        socket.removeAllListeners("error");
        socket.pause();
        resolve(new NodeTcpSocket(socket));
      });
    });
  },
  bindUdp(options: BindUdpOptions): Promise<RawUdpSocket> {
    return new Promise((resolve, reject) => {
      const socket = dgram.createSocket(net.isIPv6(options.hostname) ? "udp6" : "udp4");
      socket.once("error", reject);
      socket.bind(options.port, options.hostname, () => {
        socket.off("error", reject);
        resolve(new NodeUdpSocket(socket));
      });
    });
  },
  fs: nodeFileSystem,
  workers: nodeWorkers,
  process: nodeProcess,
};
