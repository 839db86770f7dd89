/**
 * The seed's seven operations served on the native registry: each `<Op>NodeRequest` becomes a native request
 * (through the listener host, so the native tree, write pipeline and ACLs apply) and the native answer becomes the
 * seed's `<Op>NodeResponse`, with the seed's own error texts where it has one. Where the two differ:
 *
 * - paths: the seed's trailing slash is accepted (`/a/b/` is `/a/b`); a path without a leading slash, which the seed
 *   turns into a hidden node beside the root, is refused as "path error", like every path the native rules refuse;
 * - create: node type 0 or 1 is persistent, 2 ephemeral, anything else is refused (the seed stored it as-is); the
 *   parent must exist and may not be ephemeral (the seed allowed children under ephemerals);
 * - delete: only a childless node ("node not empty" otherwise; the seed deleted the whole subtree);
 * - changes need a session opened on this port and still open ("session expired" otherwise; the seed accepted any
 *   id, so ephemerals of a made-up id never went away); reads need none;
 * - `get /` answers the root's data (empty; the seed's was "root").
 *
 * @module
 */

import type { ClientFrame, ServerFrame, WireStat } from "../../registry/_codec.ts";
import { validatePath } from "../../registry/path.ts";
import { RegistryErrorCode } from "../../registry/registry_error.ts";
import type { RegistryListenerHost } from "../../registry/server/registry_listener.ts";
import {
  decodeSeedNodeRequest,
  encodeSeedNodeResponse,
  type SeedNodeRequest,
  type SeedNodeResponse,
  SeedNodeType,
  SeedServiceType,
} from "./seed_messages.ts";

const fatalDecoder = new TextDecoder("utf-8", { fatal: true });

// The seed's names for its operations, as its parse-error texts spell them.
const OP_NAMES: Readonly<Record<number, string>> = {
  [SeedServiceType.CREATE]: "Create",
  [SeedServiceType.GET]: "Get",
  [SeedServiceType.SET]: "Set",
  [SeedServiceType.DELETE]: "Delete",
  [SeedServiceType.LS]: "Ls",
  [SeedServiceType.STAT]: "Stat",
  [SeedServiceType.EXISTS]: "Exists",
};

/** Whether `serviceType` is one of the seven operations. */
export function isSeedOperation(serviceType: number): boolean {
  return OP_NAMES[serviceType] !== undefined;
}

/**
 * Serve one operation: `parameters` is its serialized `<Op>NodeRequest`, `writer` the seed session that may change
 * the tree (undefined when the request's session is not one this port opened, or has ended). Resolves with the
 * serialized `<Op>NodeResponse`.
 */
export async function serveSeedOperation(
  host: RegistryListenerHost,
  serviceType: number,
  parameters: Uint8Array,
  writer: bigint | undefined,
): Promise<Uint8Array> {
  const response = await operationResponse(host, serviceType, parameters, writer);
  return encodeSeedNodeResponse(serviceType, response);
}

async function operationResponse(
  host: RegistryListenerHost,
  serviceType: number,
  parameters: Uint8Array,
  writer: bigint | undefined,
): Promise<SeedNodeResponse> {
  let request: SeedNodeRequest;
  try {
    request = decodeSeedNodeRequest(parameters);
  } catch {
    return failure(`${OP_NAMES[serviceType]} Node Request Parse Error`);
  }
  const path = seedPath(request.path);
  if (path === undefined) return failure("path error");
  switch (serviceType) {
    case SeedServiceType.CREATE: {
      if (path === "/") return failure("node already exists");
      const nodeType = request.nodeType === SeedNodeType.NOTHING ? SeedNodeType.PERSISTENT : request.nodeType;
      if (nodeType !== SeedNodeType.PERSISTENT && nodeType !== SeedNodeType.EPHEMERAL) {
        return failure(`node type ${request.nodeType} is not 1 (persistent) or 2 (ephemeral)`);
      }
      const reply = await host.serve(writer, { xid: 1, create: { path, data: request.nodeData, nodeType } });
      return outcome(reply, "create");
    }
    case SeedServiceType.SET: {
      const reply = await host.serve(writer, { xid: 1, set: { path, data: request.nodeData, expectedVersion: -1 } });
      return outcome(reply, "set");
    }
    case SeedServiceType.DELETE: {
      if (path === "/") return failure("delete the root node is not allowed");
      const reply = await host.serve(writer, { xid: 1, delete: { path, expectedVersion: -1 } });
      return outcome(reply, "delete");
    }
    case SeedServiceType.GET: {
      const reply = await read(host, { xid: 1, get: { path } });
      return reply.errorCode ? outcome(reply, "get") : { success: true, errmsg: "", nodeData: reply.get?.data };
    }
    case SeedServiceType.LS: {
      const reply = await read(host, { xid: 1, children: { path } });
      if (reply.errorCode) return outcome(reply, "ls");
      return { success: true, errmsg: "", children: reply.children?.children ?? [] };
    }
    case SeedServiceType.STAT: {
      const reply = await read(host, { xid: 1, exists: { path } });
      if (reply.errorCode) return outcome(reply, "stat");
      const stat = reply.exists?.stat;
      if (stat === undefined || stat === null) return failure("node not exists");
      return { success: true, errmsg: "", state: nodeState(stat) };
    }
    default: {
      const reply = await read(host, { xid: 1, exists: { path } });
      if (reply.errorCode) return outcome(reply, "exists");
      return { success: true, errmsg: "", exist: reply.exists?.stat !== undefined && reply.exists?.stat !== null };
    }
  }
}

// Reads need no identity: served as an anonymous reader, whatever session the request names.
function read(host: RegistryListenerHost, frame: ClientFrame): Promise<ServerFrame> {
  return host.serve(undefined, frame);
}

/** A seed path as the native tree names it, or undefined for one the seed's rules already refuse. */
function seedPath(raw: Uint8Array): string | undefined {
  let path: string;
  try {
    path = fatalDecoder.decode(raw);
  } catch {
    return undefined;
  }
  if (!path.startsWith("/")) return undefined;
  // The seed tolerates one trailing slash.
  const trimmed = path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
  // The native rules (any length here: the server's own limit answers with its text), so that a BAD_ARGUMENTS
  // answer later is about something else, such as data past the server's maxDataBytes, and says so.
  try {
    return validatePath(trimmed, Number.MAX_SAFE_INTEGER);
  } catch {
    return undefined;
  }
}

function nodeState(stat: WireStat): SeedNodeResponse["state"] {
  return {
    ephemeralOwner: BigInt(String(stat.ephemeralOwner ?? 0)),
    numChildren: stat.numChildren ?? 0,
    dataLength: stat.dataLength ?? 0,
    nodeType: stat.nodeType ?? SeedNodeType.PERSISTENT,
  };
}

function failure(errmsg: string): SeedNodeResponse {
  return { success: false, errmsg };
}

/** A native answer as the seed's success or error text. */
function outcome(reply: ServerFrame, op: string): SeedNodeResponse {
  if (!reply.errorCode) return { success: true, errmsg: "" };
  return failure(seedErrorText(reply.errorCode, reply.errorMessage ?? "", op));
}

/** The seed's text for a native error where it has one; the native code and message otherwise. */
export function seedErrorText(code: number, message: string, op: string): string {
  switch (code) {
    case RegistryErrorCode.NO_NODE:
      return op === "create" ? "path not exists" : "node not exists";
    case RegistryErrorCode.NODE_EXISTS:
      return "node already exists";
    case RegistryErrorCode.NOT_EMPTY:
      return "node not empty: delete its children first (this registry does not delete subtrees)";
    case RegistryErrorCode.NO_CHILDREN_FOR_EPHEMERALS:
      return "path not exists: an ephemeral node has no children";
    case RegistryErrorCode.SESSION_EXPIRED:
      return "session expired: connect again";
    default:
      return `${message} (${code})`;
  }
}
