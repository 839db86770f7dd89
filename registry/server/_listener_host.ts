/**
 * The host side of registry listeners (registry_listener.ts): serves another protocol's requests on the server's
 * tree with the native rules — the session's access rights checked, changes durable and applied before they are
 * answered, native watchers told, refusals answered behind the writes in flight.
 *
 * @module
 */

import type { EventLoop } from "../../reactor/event_loop.ts";
import type { ClientFrame, ServerFrame } from "../_codec.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";
import type { SessionKeeper } from "./_session_keeper.ts";
import type { ReplyWriter } from "./_reply_writer.ts";
import { operationOf, READ_HANDLERS, type ReadScope, WRITE_HANDLERS } from "./_request_handlers.ts";
import type { AccessControl } from "./access_control.ts";
import type { RegistryListenerHost, SessionTiming } from "./registry_listener.ts";
import type { Session } from "./session_table.ts";
import type { WritePipeline } from "./write_pipeline.ts";

/** What the host works with; all of it owned by the server. */
export interface ListenerHostOptions {
  loop: EventLoop;
  hostname: string;
  pipeline: () => WritePipeline;
  keeper: SessionKeeper;
  access: AccessControl;
  readScope: ReadScope;
  replies: ReplyWriter;
  /** Count one request of operation `op` (the server's requests-by-operation counter). */
  countRequest: (op: string) => void;
}

// Reads need no identity; a listener's anonymous reader sets no watch, so this stands for no session at all.
const ANONYMOUS_READER = { id: 0n, authorized: false, token: "", ip: "", connection: undefined } as unknown as Session;

/** A {@linkcode RegistryListenerHost} over a server's parts. Must be used from the server's loop. */
export class ListenerHost implements RegistryListenerHost {
  readonly #options: ListenerHostOptions;

  /** A host over `options`. */
  constructor(options: ListenerHostOptions) {
    this.#options = options;
  }

  get loop(): EventLoop {
    return this.#options.loop;
  }

  get hostname(): string {
    return this.#options.hostname;
  }

  openSession(ip: string, token: string, secret: Uint8Array, timing: SessionTiming): Promise<bigint> {
    try {
      return this.#options.keeper.openDetached(ip, token, secret, timing);
    } catch (error) {
      return Promise.reject(RegistryError.from(error));
    }
  }

  touch(id: bigint): boolean {
    const table = this.#options.keeper.table;
    if (table.get(id) === undefined) return false;
    table.touch(id);
    return true;
  }

  isOpen(id: bigint): boolean {
    return this.#options.keeper.table.get(id) !== undefined;
  }

  claimSessions(mine: (secret: Uint8Array) => boolean, timing: SessionTiming): bigint[] {
    const table = this.#options.keeper.table;
    const ids: bigint[] = [];
    for (const session of table.values()) {
      if (session.connection === undefined && mine(session.secret)) ids.push(session.id);
    }
    for (const id of ids) table.retime(id, timing);
    return ids;
  }

  serve(id: bigint | undefined, frame: ClientFrame): Promise<ServerFrame> {
    const { promise, resolve } = Promise.withResolvers<ServerFrame>();
    const op = operationOf(frame) ?? "unknown";
    this.#options.countRequest(op);
    try {
      this.#serve(id, frame, op, resolve);
    } catch (error) {
      this.#refuse(frame.xid, RegistryError.from(error), resolve);
    }
    return promise;
  }

  #serve(id: bigint | undefined, frame: ClientFrame, op: string, answer: (frame: ServerFrame) => void): void {
    const { keeper, pipeline, replies, readScope } = this.#options;
    const xid = frame.xid;
    if (op === "get" || op === "exists" || op === "children") {
      if (frame[op]!.watch) {
        throw new RegistryError(RegistryErrorCode.UNIMPLEMENTED, "Cannot watch through a registry listener");
      }
      const session = id === undefined ? ANONYMOUS_READER : keeper.table.get(id) ?? ANONYMOUS_READER;
      answer({ xid, zxid: pipeline().lastZxid.toString(), ...READ_HANDLERS[op](readScope, session, frame) });
      return;
    }
    if (op !== "create" && op !== "set" && op !== "delete") {
      throw new RegistryError(RegistryErrorCode.UNIMPLEMENTED, `Cannot serve '${op}' through a registry listener`);
    }
    const session = id === undefined ? undefined : keeper.table.get(id);
    if (session === undefined) {
      throw new RegistryError(RegistryErrorCode.SESSION_EXPIRED, `Cannot ${op} as session ${id ?? 0n} is not open`);
    }
    keeper.table.touch(session.id);
    const handler = WRITE_HANDLERS[op];
    const { path, ephemeral } = handler.target(frame);
    this.#options.access.checkChange(session, op, path, ephemeral);
    pipeline().propose(
      (tree, zxid) => handler.build(frame, session, tree, zxid, Date.now()),
      (error, proposal) => {
        if (error !== undefined || proposal === undefined) return answer(replies.errorFrame(xid, error!));
        answer({ xid, zxid: proposal.record.zxid.toString(), ...handler.reply(proposal) });
        replies.deliverEvents(proposal.events, proposal.record.zxid);
      },
    );
  }

  // A refusal can depend on the writes in flight: answered once they have settled, as the native port does.
  #refuse(xid: number, error: RegistryError, answer: (frame: ServerFrame) => void): void {
    const { pipeline, replies } = this.#options;
    if (pipeline().inFlight === 0) return answer(replies.errorFrame(xid, error));
    pipeline().afterInFlight(() => answer(replies.errorFrame(xid, error)));
  }
}
