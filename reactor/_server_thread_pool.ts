/**
 * The Workers behind `TcpServer.setThreadNum(n)` (muduo's EventLoopThreadPool): each Worker runs its own
 * EventLoop and a TcpServer on the same port with SO_REUSEPORT, set up by the user's thread-init function.
 *
 * Messages, parent to worker: `{ type: "start", ... }`, `{ type: "stop" }`, `{ type: "stats" }`;
 * worker to parent: `{ type: "listening", port }`, `{ type: "error", message }`, `{ type: "stopped" }`,
 * `{ type: "stats", connections }`.
 *
 * @module
 */

import type { WorkerHandle } from "./backend/net_backend.ts";
import type { EventLoop } from "./event_loop.ts";
import { InetAddress } from "./inet_address.ts";
import { getLogger } from "./logger.ts";

/** Names the module and exported function that sets up each Worker's TcpServer. */
export interface ThreadInit {
  /** The module's URL. */
  moduleUrl: string;
  /** The exported init function's name; called as `init(server, loop, data)`. */
  exportName: string;
  /** Structured-cloneable data for the init function. */
  data?: unknown;
}

/** The message a Worker gets to start. */
export interface WorkerStartMessage {
  type: "start";
  name: string;
  index: number;
  hostname: string;
  port: number;
  init: ThreadInit;
}

type WorkerReply =
  | { type: "listening"; port: number }
  | { type: "error"; message: string }
  | { type: "stopped" }
  | { type: "stats"; connections: number };

/** How long a Worker gets to stop gracefully before it is terminated. */
const STOP_TIMEOUT_MS = 2000;

class ServerWorker {
  readonly index: number;
  readonly handle: WorkerHandle;
  #waiters: Array<(reply: WorkerReply) => void> = [];

  constructor(handle: WorkerHandle, index: number, serverName: string) {
    this.index = index;
    this.handle = handle;
    handle.onMessage((message) => {
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const waiter of waiters) waiter(message as WorkerReply);
    });
    handle.onError((error) => {
      getLogger().error(`TcpServer '${serverName}' worker #${index} crashed`, { error });
      // FIXME: respawn a crashed worker; for now its share of new connections goes to the others.
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const waiter of waiters) waiter({ type: "error", message: error.message });
    });
  }

  next(timeoutMs: number): Promise<WorkerReply | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((waiter) => waiter !== onReply);
        resolve(undefined);
      }, timeoutMs);
      const onReply = (reply: WorkerReply) => {
        clearTimeout(timer);
        resolve(reply);
      };
      this.#waiters.push(onReply);
    });
  }
}

/** Starts, queries and stops the Workers of one TcpServer. */
export class ServerThreadPool {
  readonly #loop: EventLoop;
  readonly #name: string;
  readonly #init: ThreadInit;
  #workers: ServerWorker[] = [];

  /** Prepare a pool; nothing runs until `start`. */
  constructor(loop: EventLoop, name: string, init: ThreadInit) {
    this.#loop = loop;
    this.#name = name;
    this.#init = init;
  }

  /** The number of running Workers. */
  get size(): number {
    return this.#workers.length;
  }

  /**
   * Start `threadNum` Workers on `listenAddress` and resolve with the bound address once all listen. Port 0:
   * the first Worker picks the port and the others join it. On any failure the started Workers are stopped.
   */
  async start(listenAddress: InetAddress, threadNum: number, startTimeoutMs = 30_000): Promise<InetAddress> {
    let port = listenAddress.port;
    try {
      for (let index = 0; index < threadNum; index++) {
        const handle = this.#loop.backend.workers.spawn(new URL("./_tcp_server_worker.ts", import.meta.url).href, {
          name: `${this.#name}#${index}`,
        });
        const worker = new ServerWorker(handle, index, this.#name);
        this.#workers.push(worker);
        const started = worker.next(startTimeoutMs);
        const message: WorkerStartMessage = {
          type: "start",
          name: this.#name,
          index,
          hostname: listenAddress.hostname,
          port,
          init: this.#init,
        };
        handle.postMessage(message);
        const reply = await started;
        if (reply === undefined) throw new Error(`worker #${index} did not start within ${startTimeoutMs} ms`);
        if (reply.type === "error") throw new Error(reply.message);
        if (reply.type !== "listening") throw new Error(`worker #${index} answered ${reply.type} to start`);
        port = reply.port;
      }
    } catch (error) {
      await this.stop();
      throw new Error(
        `Cannot start server '${this.#name}' on ${threadNum} threads with ${this.#init.exportName} of ` +
          `${this.#init.moduleUrl}: ${error instanceof Error ? error.message : error}`,
        { cause: error },
      );
    }
    return new InetAddress(listenAddress.hostname, port);
  }

  /** Open connections per Worker. */
  async stats(): Promise<Array<{ index: number; connections: number }>> {
    return await Promise.all(this.#workers.map(async (worker) => {
      const reply = worker.next(STOP_TIMEOUT_MS);
      worker.handle.postMessage({ type: "stats" });
      const answer = await reply;
      return { index: worker.index, connections: answer?.type === "stats" ? answer.connections : -1 };
    }));
  }

  /** Stop every Worker's server, then terminate the Workers. */
  async stop(): Promise<void> {
    const workers = this.#workers;
    this.#workers = [];
    await Promise.all(workers.map(async (worker) => {
      const stopped = worker.next(STOP_TIMEOUT_MS);
      worker.handle.postMessage({ type: "stop" });
      const reply = await stopped;
      if (reply?.type !== "stopped") {
        getLogger().warn(`TcpServer '${this.#name}' worker #${worker.index} did not stop in time; terminating it`);
      }
      worker.handle.terminate();
    }));
  }
}
