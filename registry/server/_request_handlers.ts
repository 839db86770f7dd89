/**
 * The registry's operations, one small handler each. Reads answer from the committed tree; writes describe a
 * change to the proposed tree (validated there, logged, applied once durable: see write_pipeline.ts) and the
 * reply to send once it is applied.
 *
 * @module
 */

import { type ClientFrame, type ServerFrame, statToWire } from "../_codec.ts";
import { type DataTree, NodeType } from "./data_tree.ts";
import type { Session } from "./session_table.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";
import type { Proposal } from "./write_pipeline.ts";
import { WatchKind } from "./watch_manager.ts";

/** What a read needs from the server. */
export interface ReadScope {
  /** The committed tree. */
  readonly tree: DataTree;
  /** Arm a watch for `session` (throws LIMIT_EXCEEDED past the per-session limit). */
  watch(session: Session, path: string, kind: WatchKind): void;
  /** The largest reply body the server sends. */
  readonly maxReplyBytes: number;
  /** Count a reply refused for its size. */
  countOversized(): void;
  /** Throw LIMIT_EXCEEDED (counted) when the reply to request `xid` would be too big to send. */
  refuseIfTooBig(xid: number, reply: Omit<ServerFrame, "xid">): void;
}

// Bytes a reply takes besides a node's data or its children's names: xid, zxid, a stat and the fields' headers.
const REPLY_OVERHEAD_BYTES = 256;

/** A read: the reply body for a request (without xid and zxid). */
export type ReadHandler = (scope: ReadScope, session: Session, frame: ClientFrame) => Omit<ServerFrame, "xid">;

/** A write: the change to propose and the reply body once applied. */
export interface WriteHandler {
  /** The path the write changes, and whether it creates an ephemeral node (for access checks). */
  target(frame: ClientFrame): { path: string; ephemeral: boolean };
  /** Change the proposed tree and describe it (positional: it runs once per write request). */
  build(frame: ClientFrame, session: Session, tree: DataTree, zxid: bigint, nowMs: number): Proposal<unknown>;
  /** The reply body once the change is applied. */
  reply(proposal: Proposal<unknown>): Omit<ServerFrame, "xid">;
}

const EMPTY = new Uint8Array(0);

/** Reads by operation name. */
export const READ_HANDLERS: Readonly<Record<"get" | "exists" | "children" | "ping", ReadHandler>> = {
  get(scope, session, frame) {
    const { path = "", watch = false } = frame.get!;
    const { data, stat } = scope.tree.getData(path);
    const reply = { get: { data, stat: statToWire(stat) } };
    if (watch) {
      // A watch is set only for an answer that goes out: one too big to send is refused first.
      if (data.length + REPLY_OVERHEAD_BYTES > scope.maxReplyBytes) scope.refuseIfTooBig(frame.xid, reply);
      scope.watch(session, path, WatchKind.DATA);
    }
    return reply;
  },
  exists(scope, session, frame) {
    const { path = "", watch = false } = frame.exists!;
    const stat = scope.tree.exists(path);
    // An exists watch on a missing node fires when it is created (ZooKeeper's semantics).
    if (watch) scope.watch(session, path, WatchKind.DATA);
    return { exists: { stat: stat === undefined ? null : statToWire(stat) } };
  },
  children(scope, session, frame) {
    const { path = "", watch = false } = frame.children!;
    const { children, stat } = scope.tree.getChildren(path);
    // Refused before it is encoded: a listing too big to send would cost the loop its encoding for nothing.
    let bytes = 0;
    for (const name of children) bytes += name.length + 3;
    if (bytes > scope.maxReplyBytes) {
      scope.countOversized();
      throw new RegistryError(
        RegistryErrorCode.LIMIT_EXCEEDED,
        `Cannot list '${path}' as its ${children.length} children take over ${bytes} bytes, past the reply ` +
          `limit of ${scope.maxReplyBytes} bytes (maxReplyBytes)`,
      );
    }
    const reply = { children: { children, stat: statToWire(stat) } };
    if (watch) {
      // Names count UTF-16 units above, up to three bytes each on the wire: near the limit, measure the reply.
      if (bytes * 3 + REPLY_OVERHEAD_BYTES > scope.maxReplyBytes) scope.refuseIfTooBig(frame.xid, reply);
      scope.watch(session, path, WatchKind.CHILDREN);
    }
    return reply;
  },
  ping() {
    return { ping: {} };
  },
};

/** Writes by operation name. Decoded bytes are views into the connection's input buffer: the tree keeps copies. */
export const WRITE_HANDLERS: Readonly<Record<"create" | "set" | "delete", WriteHandler>> = {
  create: {
    target: (frame) => ({ path: frame.create!.path ?? "", ephemeral: frame.create!.nodeType === NodeType.EPHEMERAL }),
    build(frame, session, tree, zxid, nowMs) {
      const { path = "", sequential = false } = frame.create!;
      // NODE_TYPE_UNSPECIFIED (0, what an encoder sends for an unset field) means persistent.
      const nodeType = (frame.create!.nodeType || NodeType.PERSISTENT) as NodeType;
      const data = frame.create!.data?.slice() ?? EMPTY;
      const mode = { nodeType, sequential, sessionId: session.id };
      const result = tree.create(path, data, mode, zxid, nowMs);
      return {
        record: {
          type: "create",
          zxid,
          timeMs: nowMs,
          path: result.path,
          data,
          nodeType,
          sessionId: result.stat.ephemeralOwner,
        },
        events: result.events,
        result,
      };
    },
    reply(proposal) {
      const result = proposal.result as ReturnType<DataTree["create"]>;
      return { create: { path: result.path, stat: statToWire(result.stat) } };
    },
  },
  set: {
    target: (frame) => ({ path: frame.set!.path ?? "", ephemeral: false }),
    build(frame, _session, tree, zxid, nowMs) {
      const { path = "", expectedVersion = -1 } = frame.set!;
      const data = frame.set!.data?.slice() ?? EMPTY;
      const result = tree.setData(path, data, expectedVersion, zxid, nowMs);
      return { record: { type: "set", zxid, timeMs: nowMs, path, data }, events: result.events, result };
    },
    reply(proposal) {
      return { set: { stat: statToWire((proposal.result as ReturnType<DataTree["setData"]>).stat) } };
    },
  },
  delete: {
    target: (frame) => ({ path: frame.delete!.path ?? "", ephemeral: false }),
    build(frame, _session, tree, zxid, nowMs) {
      const { path = "", expectedVersion = -1 } = frame.delete!;
      const result = tree.delete(path, expectedVersion, zxid);
      return { record: { type: "delete", zxid, timeMs: nowMs, path }, events: result.events, result: undefined };
    },
    reply: () => ({ delete: {} }),
  },
};

/** The operation a frame asks for, or undefined. */
export function operationOf(frame: ClientFrame): keyof ClientFrame | undefined {
  // Unset message fields decode as null, not undefined.
  if (frame.create) return "create";
  if (frame.get) return "get";
  if (frame.exists) return "exists";
  if (frame.children) return "children";
  if (frame.set) return "set";
  if (frame.delete) return "delete";
  if (frame.ping) return "ping";
  if (frame.connect) return "connect";
  if (frame.close) return "close";
  return undefined;
}
