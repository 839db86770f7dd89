/**
 * One more front door of a registry server: a listener for another protocol's clients (the C++ seed's, say) that
 * serves them on the server's own tree, sessions, durability and access rules, through a narrow host interface.
 * The core knows nothing of the protocol; the listener knows nothing of the core's internals.
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import type { ClientFrame, ServerFrame } from "../_codec.ts";
import type { SessionTiming } from "./session_tracker.ts";

export type { SessionTiming } from "./session_tracker.ts";

/**
 * What a registry server offers a listener. Must be used from the server's loop.
 *
 * @example
 * ```ts
 * import type { RegistryListenerHost } from "./registry_listener.ts";
 *
 * // Create a persistent node as a session a listener opened; the reply comes once the change is durable.
 * async function createAs(host: RegistryListenerHost, id: bigint): Promise<boolean> {
 *   const reply = await host.serve(id, { xid: 1, create: { path: "/a", data: new Uint8Array() } });
 *   return reply.errorCode === undefined;
 * }
 * ```
 */
export interface RegistryListenerHost {
  /** The server's loop. */
  readonly loop: EventLoop;
  /** The address the server listens on (a listener binds the same one). */
  readonly hostname: string;
  /**
   * Open a session for a client at `ip` holding `token` ("" for none): the native session limits and token checks
   * apply; logged like any session, so it survives a restart; alive while {@linkcode RegistryListenerHost.touch}ed
   * by `timing`. `secret` is the listener's own (it may recognise its sessions by it after a restart). Resolves
   * with the id once durable; rejects with a RegistryError.
   */
  openSession(ip: string, token: string, secret: Uint8Array, timing: SessionTiming): Promise<bigint>;
  /** A sign of life for session `id`; false when no such session is open. */
  touch(id: bigint): boolean;
  /** Whether session `id` is open. */
  isOpen(id: bigint): boolean;
  /**
   * The open sessions whose secret `mine` accepts (sessions a listener opened before a restart, restored with the
   * native timing): from now on tracked by `timing`. Returns their ids.
   */
  claimSessions(mine: (secret: Uint8Array) => boolean, timing: SessionTiming): bigint[];
  /**
   * Serve one request (create, set, delete, get, exists or children; no watches) as session `id`, or, for a read,
   * as an anonymous reader when `id` is undefined. Resolves with the native reply frame, `errorCode` set on failure;
   * a change is answered only once durable and applied, and native watchers see it. Never rejects.
   */
  serve(id: bigint | undefined, frame: ClientFrame): Promise<ServerFrame>;
}

/**
 * A listener plugged into a registry server (the `listeners` option): started once the server listens, stopped
 * before it stops.
 *
 * @example
 * ```ts
 * import type { RegistryListener, RegistryListenerHost } from "./registry_listener.ts";
 *
 * class Idle implements RegistryListener {
 *   readonly name = "idle";
 *   async start(_host: RegistryListenerHost): Promise<void> {}
 *   async stop(): Promise<void> {}
 *   stats(): Record<string, number> {
 *     return {};
 *   }
 * }
 * ```
 */
export interface RegistryListener {
  /** A short name for logs and `/metrics` (letters, digits, `_`). */
  readonly name: string;
  /** Listen and serve through `host`; a rejection stops the server's start. */
  start(host: RegistryListenerHost): Promise<void>;
  /** Stop listening and close every connection. */
  stop(): Promise<void>;
  /** Counters for the status pages (name → count), refusals among them. */
  stats(): Record<string, number>;
}
