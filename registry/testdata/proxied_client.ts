// A registry server, a client that reaches it through a proxy (to cut, hold or drop what passes), and an observer
// connected straight to it: the rig of the partition and protected-create tests.

import { EventLoop } from "../../reactor/event_loop.ts";
import type { InetAddress } from "../../reactor/inet_address.ts";
import { RegistryClient, type RegistryClientOptions } from "../client/registry_client.ts";
import { RegistryServer, type RegistryServerOptions } from "../server/registry_server.ts";

/** The rig; `server` may be replaced by a test that restarts it (close stops whichever is there). */
export interface ProxiedClient<P> {
  loop: EventLoop;
  server: RegistryServer;
  proxy: P;
  /** Connected straight to the server: what everyone else sees. */
  observer: RegistryClient;
  /** Connected through the proxy. */
  client: RegistryClient;
  /** Session events of `client`: `connected:<resumed>`, `disconnected`, `expired`. */
  events: string[];
  close(): Promise<void>;
}

/** Where the client sends its TCP and its heartbeats, given the proxy in between. */
export interface ProxyRoute<P> {
  proxy: P;
  tcp: InetAddress;
  heartbeat: InetAddress;
}

/** Start a server on port 0, a proxy in front of it (`route`), an observer and the proxied client. */
export async function proxiedClient<P extends { close(): Promise<void> }>(
  route: (loop: EventLoop, server: RegistryServer) => Promise<ProxyRoute<P>>,
  serverOptions: RegistryServerOptions = {},
  clientOptions: RegistryClientOptions = {},
): Promise<ProxiedClient<P>> {
  const loop = new EventLoop();
  const server = new RegistryServer({ port: 0, loop, ...serverOptions });
  await server.start();
  const { proxy, tcp, heartbeat } = await route(loop, server);
  const observer = await RegistryClient.connect(server.address, { loop });
  const client = await RegistryClient.connect(tcp, {
    loop,
    heartbeatAddress: heartbeat,
    reconnectDelayMs: 20,
    ...clientOptions,
  });
  const events: string[] = [];
  client.onSessionEvent((event) => events.push(event.type === "connected" ? `connected:${event.resumed}` : event.type));
  const rig: ProxiedClient<P> = {
    loop,
    server,
    proxy,
    observer,
    client,
    events,
    async close() {
      await client.close();
      await observer.close();
      await proxy.close();
      await rig.server.stop();
    },
  };
  return rig;
}
