/**
 * Watches on data and on children (ZooKeeper's WatchManager): one-shot triggers keyed by path, each owned by an
 * opaque watcher (the server's per-session handle), so discovery is pushed, not polled.
 *
 * @module
 */

import { EventType, type TreeEvent } from "./data_tree.ts";

/** Which kind of watch. */
export const WatchKind = {
  /** Set by get and exists: fires on create, delete and data change of the path. */
  DATA: 1,
  /** Set by children: fires on delete of the path and on changes to its children. */
  CHILDREN: 2,
} as const;

/** One of the {@linkcode WatchKind} numbers. */
export type WatchKind = typeof WatchKind[keyof typeof WatchKind];

/** A watch to deliver: who, and what happened. */
export interface WatchDelivery<W> {
  /** The watcher to tell. */
  watcher: W;
  /** The event. */
  event: TreeEvent;
}

/**
 * Keeps one-shot watches and turns tree events into deliveries, in event order. A watcher is told at most once
 * per (path, kind) it armed, as in ZooKeeper.
 *
 * @example
 * ```ts
 * import { EventType } from "./data_tree.ts";
 * import { WatchKind, WatchManager } from "./watch_manager.ts";
 * import assert from "node:assert/strict";
 *
 * const watches = new WatchManager<string>();
 * watches.add("/services", WatchKind.CHILDREN, "client-1");
 * const deliveries = watches.trigger([{ type: EventType.NODE_CHILDREN_CHANGED, path: "/services" }]);
 * assert.deepEqual(deliveries.map((d) => d.watcher), ["client-1"]);
 * assert.equal(watches.size, 0); // one-shot
 * ```
 */
export class WatchManager<W> {
  readonly #data = new Map<string, Set<W>>();
  readonly #children = new Map<string, Set<W>>();
  readonly #byWatcher = new Map<W, Set<string>>();
  #size = 0;

  /** Armed watches. */
  get size(): number {
    return this.#size;
  }

  /** Arm a watch. Arming the same one twice keeps one. */
  add(path: string, kind: WatchKind, watcher: W): void {
    const table = kind === WatchKind.DATA ? this.#data : this.#children;
    let watchers = table.get(path);
    if (watchers === undefined) table.set(path, watchers = new Set());
    if (watchers.has(watcher)) return;
    watchers.add(watcher);
    this.#size++;
    let keys = this.#byWatcher.get(watcher);
    if (keys === undefined) this.#byWatcher.set(watcher, keys = new Set());
    keys.add(`${kind}${path}`);
  }

  /** Watches a watcher holds. */
  countOf(watcher: W): number {
    return this.#byWatcher.get(watcher)?.size ?? 0;
  }

  /** Whether a watcher holds this watch. */
  has(path: string, kind: WatchKind, watcher: W): boolean {
    return (kind === WatchKind.DATA ? this.#data : this.#children).get(path)?.has(watcher) ?? false;
  }

  /** Turn events into deliveries (removing the watches that fire), in the order of the events. */
  trigger(events: readonly TreeEvent[]): WatchDelivery<W>[] {
    const deliveries: WatchDelivery<W>[] = [];
    for (const event of events) {
      if (event.type === EventType.NODE_CHILDREN_CHANGED) {
        this.#fire(WatchKind.CHILDREN, event, deliveries);
      } else {
        this.#fire(WatchKind.DATA, event, deliveries);
        // A deleted node's children watchers learn of it too.
        if (event.type === EventType.NODE_DELETED) this.#fire(WatchKind.CHILDREN, event, deliveries);
      }
    }
    return deliveries;
  }

  /** Drop every watch of a watcher (its session ended). */
  removeWatcher(watcher: W): void {
    const keys = this.#byWatcher.get(watcher);
    if (keys === undefined) return;
    for (const key of keys) {
      const kind = Number(key[0]) as WatchKind;
      const path = key.slice(1);
      const table = kind === WatchKind.DATA ? this.#data : this.#children;
      const watchers = table.get(path);
      if (watchers?.delete(watcher)) this.#size--;
      if (watchers?.size === 0) table.delete(path);
    }
    this.#byWatcher.delete(watcher);
  }

  #fire(kind: WatchKind, event: TreeEvent, deliveries: WatchDelivery<W>[]): void {
    const table = kind === WatchKind.DATA ? this.#data : this.#children;
    const watchers = table.get(event.path);
    if (watchers === undefined) return;
    table.delete(event.path);
    for (const watcher of watchers) {
      this.#size--;
      this.#byWatcher.get(watcher)?.delete(`${kind}${event.path}`);
      deliveries.push({ watcher, event });
    }
  }
}
