/**
 * The protected create both registry clients offer (`CreateOptions.protected`, Curator's "protected" mode): a
 * create whose node carries a name prefix unique to the call, so that after an answer is lost the client can
 * find the node its request may have made instead of making a second one.
 *
 * Why on the client, not in the server. Neither client core resends a request that went out on a connection
 * that was lost: PendingRequests fails it with CONNECTION_LOSS (ZooKeeper's client holds only requests that
 * never went out, and sends each once). So a retry is always a new request, and a server that recognised "the
 * same request of a resumed session" would need a client-chosen request id on the wire, kept per session in the
 * durable log and snapshot (the registry must answer the same after a restart), and would still not exist on
 * ZooKeeper, which implements the same Registry interface. The node's name lives in the durable tree already, on
 * both servers, across restarts and failovers: finding it there is the one check that is right everywhere.
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import { basename, joinPath, parentOf, validatePath } from "../path.ts";
import { type CreateOptions, NodeType, type Registry, type Stat } from "../registry.ts";
import type { EphemeralNodes } from "./_ephemeral_nodes.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";

/** What prefixes a protected node's name: `_p_<uuid>-`, then the name asked for. */
export const PROTECTED_PREFIX = "_p_";

/** Attempts (creates and look-ups together) before a protected create gives up with the last error. */
export const PROTECTED_CREATE_ATTEMPTS = 10;

/** What a protected create needs of its client: one plain create, reads and deletes, and a session to wait for. */
export interface ProtectedCreateTarget {
  /** The current session (0n between an expiry and the next session). */
  readonly sessionId: bigint;
  /** One plain create, sent once (it records nothing: the caller records the node the protected create made). */
  createOnce(path: string, data: Uint8Array, nodeType: NodeType, sequential: boolean): Promise<string>;
  /** The parent's children. */
  children(path: string): Promise<string[]>;
  /** A node's stat, or undefined. */
  exists(path: string): Promise<Stat | undefined>;
  /** Delete a node. */
  delete(path: string): Promise<void>;
  /** Resolves once a session is open (CONNECTION_LOSS when none opens in time, CLOSED when the client closes). */
  whenConnected(what: string): Promise<void>;
}

/** What {@linkcode protectedCreateTarget} builds a target from. */
export interface ProtectedCreateClient {
  /** The client's plain create, sent once. */
  createOnce: ProtectedCreateTarget["createOnce"];
  /** The client itself, for its reads and deletes. */
  registry: Pick<Registry, "children" | "exists" | "delete">;
  /** Its session core. */
  session: {
    readonly sessionId: bigint;
    whenConnected(loop: EventLoop, timeoutMs: number, what: string): Promise<void>;
  };
  loop: EventLoop;
  /** How long to wait for a session, in milliseconds (the client's request timeout). */
  timeoutMs: number;
}

/** The target of a registry client: its plain create, its own reads and deletes, and its session. */
export function protectedCreateTarget(client: ProtectedCreateClient): ProtectedCreateTarget {
  const { registry, session, loop, timeoutMs } = client;
  return {
    get sessionId() {
      return session.sessionId;
    },
    createOnce: client.createOnce,
    children: (path) => registry.children(path),
    exists: (path) => registry.exists(path),
    delete: (path) => registry.delete(path),
    whenConnected: (what) => session.whenConnected(loop, timeoutMs, what),
  };
}

/**
 * A create as both clients make it: one plain create, or a protected one (`options.protected`); an ephemeral node
 * made is remembered in `ephemerals` for re-creation after an expiry. Resolves with the node's actual path.
 */
export function createNode(
  target: ProtectedCreateTarget,
  ephemerals: EphemeralNodes,
  path: string,
  data: Uint8Array,
  options: CreateOptions,
): Promise<string> {
  const nodeType = options.nodeType ?? NodeType.PERSISTENT;
  const sequential = options.sequential ?? false;
  const isProtected = options.protected ?? false;
  // A plain promise chain, not an async function: a plain create is one promise, the request's own.
  const created = isProtected
    ? protectedCreate(target, path, data, nodeType, sequential)
    : target.createOnce(path, data, nodeType, sequential);
  if (nodeType !== NodeType.EPHEMERAL) return created;
  return created.then((actual) => {
    ephemerals.created(actual, path, data, sequential, isProtected);
    return actual;
  });
}

/** The errors after which a create may or may not have been made: the ones a protected create looks behind. */
function indeterminate(error: unknown): boolean {
  const code = RegistryError.from(error).code;
  return code === RegistryErrorCode.CONNECTION_LOSS || code === RegistryErrorCode.OPERATION_TIMEOUT ||
    code === RegistryErrorCode.SESSION_EXPIRED;
}

/** `path` with its last name protected by `id`: `/svc/node-` → `/svc/_p_<id>-node-`. */
export function protectedPath(path: string, id: string): string {
  return joinPath(parentOf(path), `${PROTECTED_PREFIX}${id}-${basename(path)}`);
}

/**
 * Create `path` protected (see `CreateOptions.protected`); resolves with the node's actual path. Called on the
 * client's loop. Attempt 1 creates; after an indeterminate failure each later attempt first waits for a session,
 * then looks for the node under the parent, and creates again only when it is not there.
 *
 * The look-up sees every earlier attempt that the server committed: an attempt whose answer was lost on a closed
 * connection was committed before the server answered it, and one whose answer timed out on a live connection
 * is answered (so applied) before any later request on that connection. One case is left, an attempt the server
 * read from a connection already lost but committed after the look-up; a second node of the same call can then
 * appear, so a retried sequential create that succeeds deletes any other node carrying its prefix.
 */
export async function protectedCreate(
  target: ProtectedCreateTarget,
  path: string,
  data: Uint8Array,
  nodeType: NodeType,
  sequential: boolean,
): Promise<string> {
  validatePath(path);
  if (path === "/") {
    throw new RegistryError(RegistryErrorCode.NODE_EXISTS, "Cannot create '/' as it always exists");
  }
  const id = crypto.randomUUID();
  const requested = protectedPath(path, id);
  const parent = parentOf(requested);
  const prefix = `${PROTECTED_PREFIX}${id}-`;
  const ephemeral = nodeType === NodeType.EPHEMERAL;
  const what = `create '${path}' (protected)`;
  for (let attempt = 1;; attempt++) {
    // No session within the request timeout (or a close) ends it: its error says so.
    if (attempt > 1) await target.whenConnected(what);
    try {
      if (attempt > 1) {
        const found = await find(target, parent, prefix, ephemeral);
        if (found !== undefined) return found;
      }
      const created = await target.createOnce(requested, data, nodeType, sequential);
      if (attempt > 1 && sequential) await deleteOthers(target, parent, prefix, created);
      return created;
    } catch (error) {
      // A plain name made by an earlier attempt whose commit the look-up just missed.
      if (attempt > 1 && RegistryError.from(error).code === RegistryErrorCode.NODE_EXISTS && !sequential) {
        const found = await find(target, parent, prefix, ephemeral);
        if (found !== undefined) return found;
      }
      if (!indeterminate(error) || attempt >= PROTECTED_CREATE_ATTEMPTS) throw error;
    }
  }
}

/**
 * The node an earlier attempt made, if any. An ephemeral node counts only when the current session owns it: one
 * owned by an expired session of this client goes with that session (it is deleted here too, in case the server
 * has not yet), and the create is made again on the new one.
 */
async function find(
  target: ProtectedCreateTarget,
  parent: string,
  prefix: string,
  ephemeral: boolean,
): Promise<string | undefined> {
  const names = (await target.children(parent)).filter((name) => name.startsWith(prefix)).sort();
  for (const name of names) {
    const path = joinPath(parent, name);
    if (!ephemeral) return path;
    const stat = await target.exists(path);
    if (stat === undefined) continue;
    if (stat.ephemeralOwner === target.sessionId) return path;
    await target.delete(path).catch(() => {});
  }
  return undefined;
}

/** Delete, best effort, the nodes of this call other than `kept` (see protectedCreate's last case). */
async function deleteOthers(target: ProtectedCreateTarget, parent: string, prefix: string, kept: string) {
  const names = await target.children(parent).catch(() => [] as string[]);
  for (const name of names) {
    const path = joinPath(parent, name);
    if (name.startsWith(prefix) && path !== kept) await target.delete(path).catch(() => {});
  }
}
