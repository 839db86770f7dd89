/**
 * The client side of watches, shared by both registry clients: one-shot callbacks by kind and path, fired by the
 * server's notifications under ZooKeeper's rules, and told to re-read (type 0) when a new session lost them.
 *
 * @module
 */

import { getLogger } from "../../reactor/logger.ts";
import { EventType, type WatchCallback, type WatchedEvent } from "../registry.ts";
import { RegistryErrorCode } from "../registry_error.ts";

/**
 * What a watch was set by: `get` (data), `exists` on a missing node (exist; ZooKeeper keeps it apart from data
 * watches, the built-in registry needs no such split) or `children` (child).
 */
export type WatchKind = "data" | "exist" | "child";

/**
 * Whether a read failed with the server's answer, which then set no watch: any error but a lost connection or a
 * timeout (the server may or may not have set it) and an expiry (every watcher is told to re-read: see resync).
 */
export function refusedByServer(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code !== RegistryErrorCode.CONNECTION_LOSS && code !== RegistryErrorCode.OPERATION_TIMEOUT &&
    code !== RegistryErrorCode.SESSION_EXPIRED;
}

// Keys are the kind's first letter and the path, in one map: registration order is the order of re-reads.
const PREFIX: Record<WatchKind, string> = { data: "d", exist: "e", child: "c" };

/**
 * The watches a client holds. Called on the client's loop only; callbacks run synchronously, each in a try, a
 * throwing one logged and the rest still called.
 */
export class WatchRegistry {
  readonly #owner: string;
  #watches = new Map<string, Set<WatchCallback>>();

  /** `owner` names the client in logs. */
  constructor(owner: string) {
    this.#owner = owner;
  }

  /** Watches held (callbacks per kind and path). */
  get size(): number {
    return this.#watches.size;
  }

  /**
   * Hold `callback` until the next change of `kind` at `path` (a callback added twice is called once). Returns
   * whether it was not held already.
   */
  add(kind: WatchKind, path: string, callback: WatchCallback): boolean {
    const key = PREFIX[kind] + path;
    let callbacks = this.#watches.get(key);
    if (callbacks === undefined) this.#watches.set(key, callbacks = new Set());
    if (callbacks.has(callback)) return false;
    callbacks.add(callback);
    return true;
  }

  /** Let go of `callback` at `path` if it is still held: the read that set it was refused, so the server holds none. */
  remove(kind: WatchKind, path: string, callback: WatchCallback): void {
    const key = PREFIX[kind] + path;
    const callbacks = this.#watches.get(key);
    if (callbacks === undefined || !callbacks.delete(callback)) return;
    if (callbacks.size === 0) this.#watches.delete(key);
  }

  /**
   * `answer`, letting go of `callback` at `path` if the server refuses the read that set it: the server sets no
   * watch for a read it answers with an error (see {@linkcode refusedByServer}). For a watch
   * {@linkcode WatchRegistry.add} has just added, not one held before.
   */
  releaseIfRefused<T>(answer: Promise<T>, kind: WatchKind, path: string, callback: WatchCallback): Promise<T> {
    return answer.catch((error: unknown) => {
      if (refusedByServer(error)) this.remove(kind, path, callback);
      throw error;
    });
  }

  /**
   * Move `callback` at `path` from one kind to another, if it is still held (a watch that fired meanwhile stays
   * gone): ZooKeeper's `exists` sets an exist watch on a missing node and a data watch on one that exists, which is
   * known only once the answer comes, while the watch must be held before the request is written.
   */
  move(from: WatchKind, to: WatchKind, path: string, callback: WatchCallback): void {
    const key = PREFIX[from] + path;
    const callbacks = this.#watches.get(key);
    if (callbacks === undefined || !callbacks.delete(callback)) return;
    if (callbacks.size === 0) this.#watches.delete(key);
    this.add(to, path, callback);
  }

  /**
   * A change the server reported: the watches it triggers fire once and are gone. Children changes fire child
   * watches; a deletion fires all three kinds; a creation or data change fires data and exist watches.
   */
  trigger(type: EventType, path: string): void {
    if (type !== EventType.NODE_CHILDREN_CHANGED) {
      this.#fire("d" + path, type, path);
      this.#fire("e" + path, type, path);
    }
    if (type === EventType.NODE_CHILDREN_CHANGED || type === EventType.NODE_DELETED) this.#fire("c" + path, type, path);
  }

  /** The session's watches are gone or changes were missed: every watcher is told (type 0) and forgotten. */
  resync(): void {
    const watches = this.#watches;
    this.#watches = new Map();
    for (const [key, callbacks] of watches) {
      const path = key.slice(1);
      for (const callback of callbacks) this.#call(callback, { type: 0, path });
    }
  }

  /** The paths watched for `kind`, in registration order (what ZooKeeper's SetWatches re-registers). */
  paths(kind: WatchKind): string[] {
    const prefix = PREFIX[kind];
    const paths: string[] = [];
    for (const key of this.#watches.keys()) if (key[0] === prefix) paths.push(key.slice(1));
    return paths;
  }

  #fire(key: string, type: EventType, path: string): void {
    const callbacks = this.#watches.get(key);
    if (callbacks === undefined) return;
    this.#watches.delete(key);
    for (const callback of callbacks) this.#call(callback, { type, path });
  }

  #call(callback: WatchCallback, event: WatchedEvent): void {
    try {
      callback(event);
    } catch (error) {
      getLogger().error(`${this.#owner}: a watch callback for '${event.path}' threw`, { error });
    }
  }
}
