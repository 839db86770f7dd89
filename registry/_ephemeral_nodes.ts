/**
 * The ephemeral nodes a registry client created, as it asked for them, and their re-creation on the new session
 * after an expiry: shared by both registry clients.
 *
 * @module
 */

import { getLogger } from "../reactor/logger.ts";
import { NodeType, type Registry } from "./registry.ts";
import { RegistryError, RegistryErrorCode } from "./registry_error.ts";

/** An ephemeral node as it was asked for: what re-creates it after an expiry. */
interface EphemeralNode {
  requested: string;
  data: Uint8Array;
  sequential: boolean;
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

  /** `owner` names the client in logs. */
  constructor(owner: string) {
    this.#owner = owner;
  }

  /** Nodes recorded. */
  get size(): number {
    return this.#nodes.size;
  }

  /** A create succeeded: `path` is the node made for `requested` (they differ for sequential nodes). */
  created(path: string, requested: string, data: Uint8Array, sequential: boolean): void {
    this.#nodes.set(path, { requested, data, sequential });
  }

  /** A set succeeded: a re-created node carries the new data. */
  dataSet(path: string, data: Uint8Array): void {
    const node = this.#nodes.get(path);
    if (node !== undefined) node.data = data;
  }

  /** A delete succeeded. */
  deleted(path: string): void {
    this.#nodes.delete(path);
  }

  /** Forget them all (an expiry without re-creation). */
  clear(): void {
    this.#nodes.clear();
  }

  /**
   * Re-create every node on `owner`'s new session, one at a time, in the order they were first created; a node
   * that already exists and is owned by the new session (re-published by a listener of the `connected` event)
   * counts as re-created. A node lost to another expiry or connection loss stays for the next recovery; other
   * failures are logged and the node forgotten. Stops when `current()` turns false (the session expired again,
   * or the client closed): the next recovery takes over what is left.
   */
  async recreate(owner: EphemeralOwner, current: () => boolean): Promise<void> {
    for (const [path, node] of [...this.#nodes]) {
      if (!current()) return;
      this.#nodes.delete(path);
      try {
        await owner.create(node.requested, node.data, { nodeType: NodeType.EPHEMERAL, sequential: node.sequential });
      } catch (error) {
        const code = RegistryError.from(error).code;
        if (code === RegistryErrorCode.NODE_EXISTS && !node.sequential && await ownedBy(owner, path)) {
          this.#nodes.set(path, node);
        } else if (
          code === RegistryErrorCode.SESSION_EXPIRED || code === RegistryErrorCode.CONNECTION_LOSS ||
          code === RegistryErrorCode.OPERATION_TIMEOUT
        ) {
          // Lost with this session or this connection: the next recovery tries again.
          if (!this.#nodes.has(path)) this.#nodes.set(path, node);
          if (code !== RegistryErrorCode.OPERATION_TIMEOUT) return;
        } else if (code !== RegistryErrorCode.CLOSED) {
          getLogger().error(`${this.#owner}: cannot re-create ephemeral node '${node.requested}' after expiry`, {
            error,
          });
        }
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
