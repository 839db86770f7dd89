/**
 * What each Worker of a multi-threaded provider runs (`_provider_threads.ts` names this module to its TcpServer).
 *
 * @module
 */

import type { EventLoop } from "../reactor/event_loop.ts";
import type { TcpServer } from "../reactor/tcp_server.ts";
import type { ProviderThreadData } from "./_provider_threads.ts";
import { TcpServerTransport } from "./_tcp_server_transport.ts";
import { RpcProvider } from "./rpc_provider.ts";

/**
 * Internal: the thread-init function of a provider with `threads` (TcpServer calls it in each Worker, or on the
 * main loop where there are no threads): a provider on the Worker's loop, with the module's services, serving
 * the Worker's server, draining on the main provider's word.
 */
export async function initProviderThread(server: TcpServer, loop: EventLoop, data: ProviderThreadData): Promise<void> {
  const transport = new TcpServerTransport(server, data.limits, false);
  const provider = new RpcProvider({ ...data.limits, loop, transport });
  await provider.registerModule(data.moduleUrl, data.exportName);
  await provider.start();
  const channel = new BroadcastChannel(data.channelName);
  channel.onmessage = (event: MessageEvent) => {
    const message = event.data as { type?: string; graceMs?: number };
    if (message?.type !== "drain") return;
    // Not closed after the answer: on Node a channel closed right after postMessage can drop the message. The
    // Worker is terminated after the drain anyway, which releases the channel.
    provider.stop({ graceMs: message.graceMs ?? data.limits.drainGraceMs }).finally(() =>
      channel.postMessage({ type: "drained" })
    );
  };
}
