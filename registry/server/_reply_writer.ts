/**
 * What the registry server sends: replies encoded under the reply size limit, error replies counted by code, and the
 * watch events a durable change causes, queued on each watcher's connection in order.
 *
 * @module
 */

import { closeIfBacklogged } from "../../reactor/flow_control.ts";
import { LengthHeaderCodec } from "../../reactor/length_header_codec.ts";
import { getLogger } from "../../reactor/logger.ts";
import type { TcpConnection } from "../../reactor/tcp_connection.ts";
import { encodeServerFrameTransient, type ServerFrame, wireLong } from "../_codec.ts";
import type { RegistryConnection } from "./_registry_connection.ts";
import type { TreeEvent } from "./data_tree.ts";
import { RegistryError, RegistryErrorCode } from "../registry_error.ts";
import type { Session } from "./session_table.ts";
import type { WatchManager } from "./watch_manager.ts";

/** Options of {@linkcode ReplyWriter}. */
export interface ReplyWriterOptions {
  /** The largest reply body sent; a bigger one becomes a LIMIT_EXCEEDED answer. */
  maxReplyBytes: number;
  /** The watches that changes trigger. */
  watches: WatchManager<Session>;
  /** The zxid every frame carries: the last one applied. */
  lastZxid: () => bigint;
}

/** Encodes and sends the server's frames. Must be used from the server's loop. */
export class ReplyWriter {
  readonly #options: ReplyWriterOptions;
  readonly #codec: LengthHeaderCodec;
  /** Replies refused for their size, and sends that failed (the connection was closed). */
  readonly stats: { oversizedReplies: number; sendFailures: number } = { oversizedReplies: 0, sendFailures: 0 };
  /** Error replies by code name, for `/metrics`. */
  readonly errorsByCode: Map<string, number> = new Map();

  /** A writer with `options`. */
  constructor(options: ReplyWriterOptions) {
    this.#options = options;
    this.#codec = new LengthHeaderCodec(() => {}, { maxFrameBytes: options.maxReplyBytes });
  }

  /** Encode and send one frame. Never throws: a reply too big for a frame becomes an error answer. */
  send(connection: TcpConnection, frame: ServerFrame): void {
    try {
      // Transient: the codec's send copies it into the connection's output at once.
      let bytes = encodeServerFrameTransient(frame);
      if (bytes.length > this.#options.maxReplyBytes) {
        bytes = encodeServerFrameTransient(this.errorFrame(frame.xid, this.#oversized(frame.xid, bytes.length)));
      }
      this.#codec.send(connection, bytes);
      closeIfBacklogged(connection);
    } catch (error) {
      this.stats.sendFailures++;
      getLogger().error(`RegistryServer: cannot send to ${connection.name}; closing it`, { error });
      connection.forceClose();
    }
  }

  /**
   * Throw the LIMIT_EXCEEDED that {@linkcode ReplyWriter.send} would answer `frame` with, if it is too big: for a
   * read that sets a watch, which must not stay behind an answer never sent.
   */
  refuseIfTooBig(frame: ServerFrame): void {
    const bytes = encodeServerFrameTransient(frame).length;
    if (bytes > this.#options.maxReplyBytes) throw this.#oversized(frame.xid, bytes);
  }

  #oversized(xid: number, bytes: number): RegistryError {
    this.stats.oversizedReplies++;
    return new RegistryError(
      RegistryErrorCode.LIMIT_EXCEEDED,
      `Cannot answer request ${xid} as its reply of ${bytes} bytes exceeds the limit of ` +
        `${this.#options.maxReplyBytes} bytes (maxReplyBytes)`,
    );
  }

  /** The answer to request `xid` that failed with `error` (counted by its code). */
  errorFrame(xid: number, error: RegistryError): ServerFrame {
    this.errorsByCode.set(error.codeName, (this.errorsByCode.get(error.codeName) ?? 0) + 1);
    return { xid, errorCode: error.code, errorMessage: error.message, zxid: wireLong(this.#options.lastZxid()) };
  }

  /** Queue the events of the change applied at `zxid` for the watchers they trigger (each watch fires once). */
  deliverEvents(events: readonly TreeEvent[], zxid: bigint): void {
    if (events.length === 0) return;
    const wireZxid = wireLong(zxid);
    for (const { watcher, event } of this.#options.watches.trigger(events)) {
      const connection = watcher.connection as RegistryConnection | undefined;
      if (connection === undefined || !connection.connected) continue;
      connection.notify({ xid: 0, zxid: wireZxid, event: { ...event, zxid: wireZxid } });
    }
  }
}
