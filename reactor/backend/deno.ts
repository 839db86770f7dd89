/**
 * The Deno backend: `Deno.listen`/`Deno.connect` (one reusable 64 KiB read buffer per socket, no extra promise
 * layers on the hot path), `Deno.listenDatagram`, Deno's file API (`_deno_file_system.ts`), module Workers and the
 * Deno process.
 *
 * @module
 */

import type {
  BindUdpOptions,
  ChildProcessHandle,
  ConnectOptions,
  DatagramHandler,
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
import { denoFileSystem } from "./_deno_file_system.ts";
import type { HostTimer } from "../timer_queue.ts";

const READ_BUFFER_BYTES = 64 * 1024;

function toSocketAddress(addr: Deno.Addr): SocketAddress {
  const net = addr as Deno.NetAddr;
  return { hostname: net.hostname, port: net.port };
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** A Deno TCP connection behind the RawSocket contract. */
class DenoTcpSocket implements RawSocket {
  readonly localAddress: SocketAddress;
  readonly remoteAddress: SocketAddress;
  readonly #conn: Deno.TcpConn | Deno.TlsConn;
  // One buffer per socket, reused for every read: the receiver copies what it keeps (the contract says so). Made
  // on first use: an owner that offers its own read target (TcpConnection does) never needs it.
  #readBuffer: Uint8Array | undefined;
  #handlers: RawSocketHandlers | undefined;
  #paused = false;
  // A read result that arrived while paused: bytes, null for EOF, undefined for none.
  #held: Uint8Array | null | undefined;
  #readLoopRunning = false;
  #ended = false;
  #closed = false;
  #writesInFlight = 0;
  #shutdownPending = false;
  #closeReported = false;

  constructor(conn: Deno.TcpConn | Deno.TlsConn) {
    this.#conn = conn;
    this.localAddress = toSocketAddress(conn.localAddr);
    this.remoteAddress = toSocketAddress(conn.remoteAddr);
  }

  start(handlers: RawSocketHandlers): void {
    if (this.#handlers !== undefined) throw new TypeError("Cannot start a socket twice");
    this.#handlers = handlers;
    if (this.#closed) {
      this.#maybeReportClose();
      return;
    }
    if (!this.#paused) this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    this.#readLoopRunning = true;
    const handlers = this.#handlers!;
    try {
      while (!this.#paused && !this.#closed) {
        const target = handlers.readTarget?.() ?? (this.#readBuffer ??= new Uint8Array(READ_BUFFER_BYTES));
        const n = await this.#conn.read(target);
        if (this.#closed) break;
        if (this.#paused) {
          // The read was issued before pauseReading(): hold its result until resumeReading(), so a pause is
          // exact. A copy, since the target belongs to the owner or is reused.
          this.#held = n === null ? null : target.slice(0, n);
          break;
        }
        if (n === null) {
          this.#ended = true;
          handlers.onEnd();
          break;
        }
        handlers.onData(target.subarray(0, n));
      }
    } catch (error) {
      if (!this.#closed) {
        handlers.onError(asError(error));
        this.close();
      }
    } finally {
      this.#readLoopRunning = false;
    }
    this.#maybeReportClose();
  }

  write(chunk: Uint8Array, done: (error?: Error) => void): void {
    if (this.#closed) {
      done(new Error("Cannot write to a closed socket"));
      return;
    }
    this.#writesInFlight++;
    this.#writeFrom(chunk, 0, done);
  }

  // A plain promise chain rather than an async loop: one promise per kernel write on the hot path.
  #writeFrom(chunk: Uint8Array, offset: number, done: (error?: Error) => void): void {
    this.#conn.write(offset === 0 ? chunk : chunk.subarray(offset)).then(
      (n) => {
        if (offset + n < chunk.length) {
          this.#writeFrom(chunk, offset + n, done);
          return;
        }
        this.#writesInFlight--;
        if (this.#shutdownPending && this.#writesInFlight === 0) this.#closeWrite();
        done();
        this.#maybeReportClose();
      },
      (error) => {
        this.#writesInFlight--;
        done(asError(error));
        this.#maybeReportClose();
      },
    );
  }

  pauseReading(): void {
    this.#paused = true;
  }

  resumeReading(): void {
    if (!this.#paused) return;
    this.#paused = false;
    const handlers = this.#handlers;
    if (handlers === undefined || this.#readLoopRunning || this.#ended || this.#closed) return;
    const held = this.#held;
    this.#held = undefined;
    if (held === null) {
      this.#ended = true;
      handlers.onEnd();
      return;
    }
    if (held !== undefined) handlers.onData(held);
    // onData may have paused again or closed.
    if (!this.#paused && !this.#closed && !this.#readLoopRunning) this.#readLoop();
  }

  shutdownWrite(): void {
    if (this.#closed) return;
    if (this.#writesInFlight > 0) {
      this.#shutdownPending = true;
    } else {
      this.#closeWrite();
    }
  }

  #closeWrite(): void {
    this.#shutdownPending = false;
    this.#conn.closeWrite().catch(() => {
      // Already closed or reset: the read side reports it.
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Closed already by the runtime after a reset.
    }
    this.#maybeReportClose();
  }

  // onClose comes once the pending read and writes have settled, so an owner that awaits it leaves no open ops.
  #maybeReportClose(): void {
    if (!this.#closed || this.#closeReported || this.#readLoopRunning || this.#writesInFlight > 0) return;
    if (this.#handlers === undefined) return;
    this.#closeReported = true;
    this.#handlers.onClose();
  }

  setNoDelay(enabled: boolean): void {
    try {
      (this.#conn as Deno.TcpConn).setNoDelay?.(enabled);
    } catch {
      // The socket may already be closed.
    }
  }

  setKeepAlive(enabled: boolean): void {
    try {
      (this.#conn as Deno.TcpConn).setKeepAlive?.(enabled);
    } catch {
      // The socket may already be closed.
    }
  }
}

class DenoListener implements RawListener {
  readonly address: SocketAddress;
  readonly #listener: Deno.TcpListener | Deno.TlsListener;
  #closed = false;

  constructor(listener: Deno.TcpListener | Deno.TlsListener) {
    this.#listener = listener;
    this.address = toSocketAddress(listener.addr);
  }

  async accept(): Promise<RawSocket> {
    const conn = await this.#listener.accept();
    return new DenoTcpSocket(conn);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
  }
}

class DenoUdpSocket implements RawUdpSocket {
  readonly address: SocketAddress;
  readonly #conn: Deno.DatagramConn;
  #closed = false;

  constructor(conn: Deno.DatagramConn) {
    this.#conn = conn;
    this.address = toSocketAddress(conn.addr);
  }

  start(onMessage: DatagramHandler, onError: (error: Error) => void): void {
    (async () => {
      while (!this.#closed) {
        try {
          const [data, from] = await this.#conn.receive();
          onMessage(data, toSocketAddress(from));
        } catch (error) {
          if (this.#closed) return;
          onError(asError(error));
        }
      }
    })();
  }

  send(data: Uint8Array, to: SocketAddress): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("Cannot send on a closed UDP socket"));
    return this.#conn.send(data, { transport: "udp", hostname: to.hostname, port: to.port }).then(() => {});
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

interface WorkerScope {
  postMessage(message: unknown): void;
  addEventListener(type: "message", listener: (event: MessageEvent) => void): void;
  close(): void;
}

const denoWorkers: WorkerBackend = {
  spawn(moduleUrl, options = {}): WorkerHandle {
    const worker = new Worker(moduleUrl, { type: "module", name: options.name });
    return {
      postMessage: (message) => worker.postMessage(message),
      onMessage: (handler) => worker.addEventListener("message", (event) => handler(event.data)),
      onError: (handler) =>
        worker.addEventListener("error", (event) => {
          event.preventDefault();
          handler(new Error(event.message));
        }),
      terminate: () => worker.terminate(),
    };
  },
  parentPort(): ParentPort | undefined {
    const scope = globalThis as unknown as { WorkerGlobalScope?: unknown };
    if (typeof scope.WorkerGlobalScope === "undefined") return undefined;
    const self = globalThis as unknown as WorkerScope;
    return {
      postMessage: (message) => self.postMessage(message),
      onMessage: (handler) => self.addEventListener("message", (event) => handler(event.data)),
      close: () => self.close(),
    };
  },
};

function writeAllSync(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  while (offset < bytes.length) offset += stream.writeSync(bytes.subarray(offset));
}

async function* denoLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let eol: number;
    while ((eol = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, eol).replace(/\r$/, "");
      pending = pending.slice(eol + 1);
    }
  }
  if (pending !== "") yield pending;
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

const denoProcess: ProcessBackend = {
  isMain: (meta) => meta.main === true,
  commandFor: (moduleUrl) => [Deno.execPath(), "run", "-A", new URL(moduleUrl).pathname],
  spawn(argv, options = {}): ChildProcessHandle {
    const child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: options.env === undefined ? undefined : { ...options.env },
    }).spawn();
    return {
      pid: child.pid,
      stdout: denoLines(child.stdout),
      stderr: denoLines(child.stderr),
      exited: child.status.then((status) =>
        status.signal !== null ? 128 + (SIGNAL_NUMBERS[status.signal] ?? 0) : status.code
      ),
      kill(signal = "SIGTERM") {
        try {
          child.kill(signal);
        } catch {
          // already gone
        }
      },
    };
  },
  args: () => [...Deno.args],
  env(name) {
    try {
      return Deno.env.get(name);
    } catch {
      return undefined; // no --allow-env
    }
  },
  exit: (code) => Deno.exit(code),
  onSignal(signal, handler) {
    Deno.addSignalListener(signal, handler);
    return () => Deno.removeSignalListener(signal, handler);
  },
  onUncaughtError(handler) {
    const onRejection = (event: PromiseRejectionEvent) => {
      event.preventDefault();
      handler(event.reason);
    };
    const onError = (event: ErrorEvent) => {
      event.preventDefault();
      handler(event.error);
    };
    globalThis.addEventListener("unhandledrejection", onRejection);
    globalThis.addEventListener("error", onError);
    return () => {
      globalThis.removeEventListener("unhandledrejection", onRejection);
      globalThis.removeEventListener("error", onError);
    };
  },
  writeStderr: (text) => writeAllSync(Deno.stderr, text),
  writeStdout: (text) => writeAllSync(Deno.stdout, text),
  stdinLines: () => denoLines(Deno.stdin.readable),
  get pid() {
    return Deno.pid;
  },
};

// Deno's setTimeout returns a number, which has no ref/unref: Deno.refTimer/unrefTimer take it. With them the loop
// keeps one host timer for its deadlines through calls that each set and cancel one (a call at a time empties the
// queue on every answer), instead of clearing and making a host timer per call (5 us here, 0.1 us to unref).
const denoHostTimer: HostTimer = {
  set: (callback, delayMs) => setTimeout(callback, delayMs),
  clear: (handle) => clearTimeout(handle as number),
  setReferenced: (handle, referenced) => {
    if (referenced) Deno.refTimer(handle as number);
    else Deno.unrefTimer(handle as number);
    return true;
  },
};

/**
 * The Deno runtime as a {@linkcode NetBackend}.
 *
 * @example
 * ```ts
 * import { EventLoop } from "../event_loop.ts";
 * import { denoBackend } from "./deno.ts";
 *
 * const loop = new EventLoop({ backend: denoBackend }); // what defaultBackend() picks on Deno
 * ```
 */
export const denoBackend: NetBackend = {
  name: "deno",
  hostTimer: denoHostTimer,
  // SO_REUSEPORT spreads connections only on Linux; elsewhere Deno's flag does not balance.
  supportsReusePort: typeof Deno !== "undefined" && Deno.build.os === "linux",
  async listen(options: ListenOptions): Promise<RawListener> {
    if (options.reusePort && !denoBackend.supportsReusePort) {
      throw new TypeError("Cannot listen with 'reusePort' as this platform does not balance SO_REUSEPORT");
    }
    if (options.tls !== undefined) {
      if (options.reusePort) throw new TypeError("Cannot listen with both 'tls' and 'reusePort' on the Deno backend");
      const listener = Deno.listenTls({
        transport: "tcp",
        hostname: options.hostname,
        port: options.port,
        cert: options.tls.cert,
        key: options.tls.key,
      });
      return await Promise.resolve(new DenoListener(listener));
    }
    const listener = Deno.listen({
      transport: "tcp",
      hostname: options.hostname,
      port: options.port,
      reusePort: options.reusePort ?? false,
    });
    return await Promise.resolve(new DenoListener(listener));
  },
  async connect(options: ConnectOptions): Promise<RawSocket> {
    if (options.tls !== undefined) {
      const tcp = await Deno.connect({
        transport: "tcp",
        hostname: options.hostname,
        port: options.port,
        signal: options.signal,
      });
      tcp.setNoDelay(true);
      // Upgrade and finish the handshake here, so a bad certificate fails the connect, not a later read.
      const tls = await Deno.startTls(tcp, {
        hostname: options.tls.serverName ?? options.hostname,
        caCerts: options.tls.caCerts === undefined ? undefined : [...options.tls.caCerts],
      });
      await tls.handshake();
      return new DenoTcpSocket(tls);
    }
    const conn = await Deno.connect({
      transport: "tcp",
      hostname: options.hostname,
      port: options.port,
      signal: options.signal,
    });
    return new DenoTcpSocket(conn);
  },
  async bindUdp(options: BindUdpOptions): Promise<RawUdpSocket> {
    // UDP is behind --unstable-net; a package run as `deno run -A jsr:...` does not get its deno.json "unstable".
    if (typeof Deno.listenDatagram !== "function") {
      throw new TypeError("Cannot bind a UDP socket as Deno.listenDatagram is missing: run Deno with --unstable-net");
    }
    const conn = Deno.listenDatagram({ transport: "udp", hostname: options.hostname, port: options.port });
    return await Promise.resolve(new DenoUdpSocket(conn));
  },
  fs: denoFileSystem,
  workers: denoWorkers,
  process: denoProcess,
};
