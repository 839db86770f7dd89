/**
 * The ephemeral nodes a registry client created, as it asked for them, and their re-creation on the new session
 * after an expiry: shared by both registry clients.
 *
 * @module
 */

import { getLogger } from "../../reactor/logger.ts";
import { NodeType, type Registry } from "../registry.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";

/** An ephemeral node as it was asked for: what re-creates it after an expiry. */
interface EphemeralNode {
  requested: string;
  data: Uint8Array;
  sequential: boolean;
  /** Made by a protected create: re-created by one too (a fresh prefix, safe to retry). */
  protected: boolean;
}

/** What re-creating needs of the client: its own create and exists, on its current session. */
export type EphemeralOwner = Pick<Registry, "create" | "exists"> & { readonly sessionId: bigint };

/**
 * The table of this client's ephemeral nodes, by actual path, in creation order. Called on the client's loop
 * only; the client records its successful creates, sets and deletes.
 */
export class EphemeralNodes {
  readonly #owner: string;
  #nodes = new Map<string, EphemeralNode>();
  // The nodes a recovery has still to re-create: a recovery cut short by a lost connection goes on from here on
  // the next session opened (a resumed one included), or it would wait for an expiry that may never come.
  #toRecreate = new Map<string, EphemeralNode>();
  // Bumped by every recreate: an older loop still waiting on a create stops at its next node.
  #run = 0;
  // Nodes whose re-creation is in flight. A protected create waits out a lost connection and goes on on the next
  // session, while that session's recovery starts: the recovery must not make the same node a second time.
  #inFlight = new Set<string>();

  /** `owner` names the client in logs. */
  constructor(owner: string) {
    this.#owner = owner;
  }

  /** Nodes recorded. */
  get size(): number {
    return this.#nodes.size;
  }

  /**
   * A create succeeded: `path` is the node made for `requested` (they differ for sequential and protected
   * nodes).
   */
  created(path: string, requested: string, data: Uint8Array, sequential: boolean, isProtected = false): void {
    this.#nodes.set(path, { requested, data, sequential, protected: isProtected });
  }

  /** A set succeeded: a re-created node carries the new data. */
  dataSet(path: string, data: Uint8Array): void {
    const node = this.#nodes.get(path);
    if (node !== undefined) node.data = data;
  }

  /** A delete succeeded. */
  deleted(path: string): void {
    this.#nodes.delete(path);
    this.#toRecreate.delete(path);
  }

  /** Forget them all (an expiry without re-creation). */
  clear(): void {
    this.#nodes.clear();
    this.#toRecreate.clear();
  }

  /** Whether a recovery was cut short (by a lost connection or a timeout) with nodes left to re-create. */
  get unfinished(): boolean {
    return this.#toRecreate.size > 0;
  }

  /**
   * Re-create every node on `owner`'s new session, one at a time, in the order they were first created; a node
   * that already exists and is owned by the new session (re-published by a listener of the `connected` event)
   * counts as re-created. A node lost to another expiry or connection loss stays for the next recovery; other
   * failures are logged and the node forgotten. Stops when `current()` turns false (the session expired again,
   * or the client closed): the next recovery takes over what is left. With `restart` false it goes on with what
   * a recovery cut short left (see {@linkcode EphemeralNodes.unfinished}) instead of starting over.
   */
  async recreate(owner: EphemeralOwner, current: () => boolean, restart = true): Promise<void> {
    if (restart) this.#toRecreate = new Map(this.#nodes);
    const run = ++this.#run;
    for (const [path, node] of [...this.#toRecreate]) {
      if (!current() || run !== this.#run) return;
      if (this.#toRecreate.get(path) !== node || this.#inFlight.has(path)) continue; // deleted meanwhile, or busy
      this.#nodes.delete(path);
      this.#inFlight.add(path);
      try {
        await owner.create(node.requested, node.data, {
          nodeType: NodeType.EPHEMERAL,
          sequential: node.sequential,
          protected: node.protected,
        });
        this.#toRecreate.delete(path);
      } catch (error) {
        const code = RegistryError.from(error).code;
        if (code === RegistryErrorCode.NODE_EXISTS && !node.sequential && await ownedBy(owner, path)) {
          this.#nodes.set(path, node);
          this.#toRecreate.delete(path);
        } else if (
          code === RegistryErrorCode.SESSION_EXPIRED || code === RegistryErrorCode.CONNECTION_LOSS ||
          code === RegistryErrorCode.OPERATION_TIMEOUT
        ) {
          // Lost with this session or this connection: the next session opened tries again.
          if (!this.#nodes.has(path)) this.#nodes.set(path, node);
          if (code !== RegistryErrorCode.OPERATION_TIMEOUT) return;
        } else if (code !== RegistryErrorCode.CLOSED) {
          this.#toRecreate.delete(path);
          getLogger().error(`${this.#owner}: cannot re-create ephemeral node '${node.requested}' after expiry`, {
            error,
          });
        }
      } finally {
        this.#inFlight.delete(path);
      }
    }
  }
}

async function ownedBy(owner: EphemeralOwner, path: string): Promise<boolean> {
  try {
    const stat = await owner.exists(path);
    return stat !== undefined && stat.ephemeralOwner === owner.sessionId;
  } catch {
    return false;
  }
}
