/**
 * A provider on Worker threads (its `threads` option): the main provider's TcpServer starts the Workers, each
 * listening on the same port (SO_REUSEPORT; the kernel spreads connections), and each Worker runs
 * `initProviderThread` (`_provider_thread_init.ts`): a provider of its own on the Worker's loop, with the services of the main provider's module
 * and the same limits, serving the Worker's server. Publishing stays with the main provider; a drain reaches the
 * Workers on a BroadcastChannel ("drain", answered "drained"). Where the runtime has no SO_REUSEPORT, the
 * TcpServer runs the init on the main loop instead, and that one provider drains the same way.
 *
 * @module
 */

import type { EventLoop } from "../reactor/event_loop.ts";
import type { InetAddress } from "../reactor/inet_address.ts";
import { getLogger } from "../reactor/logger.ts";
import type { TcpServer } from "../reactor/tcp_server.ts";
import type { TimerId } from "../reactor/timer_queue.ts";
import type { ServerLimits } from "./_server_limits.ts";
import type { ServerTransport } from "./server_transport.ts";

/** The module whose `registerServices`-like export each Worker runs. */
export interface ServicesModule {
  moduleUrl: string;
  exportName: string;
}

/** What each Worker of a multi-threaded provider is given (plain data, so it crosses to Workers). */
export interface ProviderThreadData extends ServicesModule {
  /** The main provider's limits and timings. */
  limits: ServerLimits;
  /** The BroadcastChannel on which the main provider says "drain". */
  channelName: string;
}

/**
 * The main provider's transport with `threads`: it starts the Workers, which serve every connection; the main
 * provider's own dispatch gets none.
 */
export class ProviderThreads implements ServerTransport {
  readonly #server: TcpServer;
  readonly #channel: BroadcastChannel;

  /** Serve `module`'s services on `threads` Workers of `server`, within `limits`. */
  constructor(server: TcpServer, threads: number, module: ServicesModule, limits: ServerLimits) {
    this.#server = server;
    const channelName = `dwt-rpc-provider-${crypto.randomUUID()}`;
    this.#channel = new BroadcastChannel(channelName);
    server.setThreadNum(threads);
    const data: ProviderThreadData = { ...module, limits, channelName };
    // The init lives in a module of its own: it makes a provider, which would import this file back.
    server.setThreadInit(new URL("./_provider_thread_init.ts", import.meta.url).href, "initProviderThread", data);
  }

  /** The listen address (after `listen`). */
  get address(): InetAddress {
    return this.#server.address;
  }

  /** Connections open on the main loop (Workers count their own). */
  get connections(): number {
    return this.#server.connectionCount;
  }

  /** Start the Workers (the handler is not used: each Worker's provider dispatches its own calls). */
  async listen(): Promise<void> {
    await this.#server.start();
  }

  /** Stop the Workers. */
  async close(): Promise<void> {
    this.#channel.close();
    await this.#server.stop();
  }

  /** Tell every Worker's provider to drain, and wait until all have (or the grace period and a margin passed). */
  async drain(loop: EventLoop, graceMs: number): Promise<void> {
    // Workers running, or the one provider on this loop where the runtime fell back to one loop.
    const threads = Math.max(1, this.#server.runningThreads);
    let drained = 0;
    const all = Promise.withResolvers<void>();
    this.#channel.onmessage = (event: MessageEvent) => {
      if ((event.data as { type?: string })?.type === "drained" && ++drained >= threads) all.resolve();
    };
    this.#channel.postMessage({ type: "drain", graceMs });
    let timer: TimerId | undefined;
    await Promise.race([all.promise, new Promise<void>((resolve) => timer = loop.runAfter(graceMs + 2000, resolve))]);
    if (timer !== undefined) loop.cancel(timer);
    if (drained < threads) {
      getLogger().warn(`RpcProvider: ${threads - drained} of ${threads} Workers did not drain in time`);
    }
  }
}
