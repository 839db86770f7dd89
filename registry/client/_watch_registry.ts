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
 * How a read that sets a watch ended: answered (the server set the watch), refused (an error answer: the server set
 * none), or unknown (the connection was lost or the read timed out: it may have).
 */
export type WatchOutcome = "armed" | "refused" | "unknown";

/** The outcome for a read that failed with `error` (an expiry counts as unknown: resync tells every watcher). */
function outcomeOf(error: unknown): WatchOutcome {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== "number") return "unknown";
  return code === RegistryErrorCode.CONNECTION_LOSS || code === RegistryErrorCode.OPERATION_TIMEOUT ||
      code === RegistryErrorCode.SESSION_EXPIRED
    ? "unknown"
    : "refused";
}

// Keys are the kind's first letter and the path, in one map: registration order is the order of re-reads.
const PREFIX: Record<WatchKind, string> = { data: "d", exist: "e", child: "c" };

/**
 * One callback held at one kind and path: the reads that asked for it and are not answered yet, and whether any read
 * of it was answered (the server holds it), so one refused read does not take away what another one set.
 */
interface Hold {
  reads: number;
  armed: boolean;
}

/**
 * The watches a client holds. Called on the client's loop only; callbacks run synchronously, each in a try, a
 * throwing one logged and the rest still called.
 */
export class WatchRegistry {
  readonly #owner: string;
  #watches = new Map<string, Map<WatchCallback, Hold>>();
  // Bumped by resync: a read of an older session must not bring a watch back.
  #generation = 0;

  /** `owner` names the client in logs. */
  constructor(owner: string) {
    this.#owner = owner;
  }

  /** Watches held (callbacks per kind and path). */
  get size(): number {
    return this.#watches.size;
  }

  /** Hold `callback` until the next change of `kind` at `path` (a callback added twice is called once). */
  add(kind: WatchKind, path: string, callback: WatchCallback): void {
    this.#holdOf(PREFIX[kind] + path, callback).armed = true;
  }

  /**
   * Hold `callback` for a read about to be written (the notification may come in the same read as the answer);
   * the returned function takes how the read ended, once, as the answer comes (synchronously, before anything else
   * of the same read is handled). A refused read lets go of the callback unless another read of it set it; an
   * answered one keeps it, and holds it again if an earlier watch's event fired it before the answer came (the
   * server set the watch anew when it read the request).
   */
  hold(kind: WatchKind, path: string, callback: WatchCallback): (outcome: WatchOutcome) => void {
    const key = PREFIX[kind] + path;
    const hold = this.#holdOf(key, callback);
    hold.reads++;
    const generation = this.#generation;
    let settled = false;
    return (outcome) => {
      if (settled) return;
      settled = true;
      hold.reads--;
      if (generation !== this.#generation) return;
      const current = this.#watches.get(key)?.get(callback);
      if (outcome === "armed") {
        if (current !== undefined) current.armed = true;
        else this.add(kind, path, callback);
      } else if (outcome === "unknown") {
        // It may be set: kept, as any watch a read may have set.
        if (current !== undefined) current.armed = true;
      } else if (current === hold && hold.reads === 0 && !hold.armed) {
        this.#drop(key, callback);
      }
    };
  }

  /**
   * {@linkcode WatchRegistry.hold} for a request: the returned function takes how it settled (undefined for an answer,
   * else its error; an error code in `armedBy` still sets the watch: ZooKeeper's exists on a missing node).
   */
  holdForRead(
    kind: WatchKind,
    path: string,
    callback: WatchCallback,
    armedBy?: number,
  ): (error: { code?: number } | undefined) => void {
    const settle = this.hold(kind, path, callback);
    return (error) => settle(error === undefined || error.code === armedBy ? "armed" : outcomeOf(error));
  }

  /**
   * Move `callback` at `path` from one kind to another, if it is still held (a watch that fired meanwhile stays
   * gone): ZooKeeper's `exists` sets an exist watch on a missing node and a data watch on one that exists, which is
   * known only once the answer comes, while the watch must be held before the request is written.
   */
  move(from: WatchKind, to: WatchKind, path: string, callback: WatchCallback): void {
    const key = PREFIX[from] + path;
    const hold = this.#watches.get(key)?.get(callback);
    if (hold === undefined) return;
    this.#drop(key, callback);
    const moved = this.#holdOf(PREFIX[to] + path, callback);
    moved.armed ||= hold.armed;
    moved.reads += hold.reads;
  }

  #holdOf(key: string, callback: WatchCallback): Hold {
    let holds = this.#watches.get(key);
    if (holds === undefined) this.#watches.set(key, holds = new Map());
    let hold = holds.get(callback);
    if (hold === undefined) holds.set(callback, hold = { reads: 0, armed: false });
    return hold;
  }

  #drop(key: string, callback: WatchCallback): void {
    const holds = this.#watches.get(key);
    if (holds === undefined || !holds.delete(callback)) return;
    if (holds.size === 0) this.#watches.delete(key);
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
    this.#generation++;
    for (const [key, holds] of watches) {
      const path = key.slice(1);
      for (const callback of holds.keys()) this.#call(callback, { type: 0, path });
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
    const holds = this.#watches.get(key);
    if (holds === undefined) return;
    this.#watches.delete(key);
    for (const callback of holds.keys()) this.#call(callback, { type, path });
  }

  #call(callback: WatchCallback, event: WatchedEvent): void {
    try {
      callback(event);
    } catch (error) {
      getLogger().error(`${this.#owner}: a watch callback for '${event.path}' threw`, { error });
    }
  }
}
