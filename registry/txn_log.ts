/**
 * Durability for the registry: an append-only transaction log, fsynced before a write is acknowledged (one fsync
 * per batch of concurrent writes: group commit), and periodic snapshots of the tree, replayed at start. What was
 * acknowledged survives a restart and a `kill -9`.
 *
 * Files in the data directory (`ZXID` is 16 hex digits):
 * - `snapshot.ZXID`: `DataTree.serialize()` of the tree after transaction ZXID (written to `.tmp`, synced,
 *   renamed, so a snapshot is either whole or absent).
 * - `log.ZXID`: records of transactions from ZXID on. Each record, integers big-endian:
 *
 * ```text
 * | length u32 | crc32 u32 (of body) | body: type u8 | zxid u64 | timeMs i64 | fields of the type |
 * create (1): path | data | nodeType u8 | sessionId u64      set (2): path | data
 * delete (3): path                                             closeSession (4): sessionId u64
 * createSession (5): sessionId u64 | secret | authorized u8 | token
 * (path and data are u32 length + bytes)
 * ```
 *
 * A torn record at the end of a log (a crash mid-write) fails its length or CRC check; replay stops reading that
 * file there, and new records go to a new file, so nothing acknowledged is lost and nothing torn is applied.
 *
 * @module
 */

import type { DurableAppendFile, NetBackend } from "../reactor/backend/net_backend.ts";
import { Buffer } from "../reactor/buffer.ts";
import { getLogger } from "../reactor/logger.ts";
import { DataTree, type DataTreeOptions, type NodeType } from "./data_tree.ts";

/** One logged transaction. Sequential names are already resolved in `path`. */
export type TxnRecord =
  | {
    type: "create";
    zxid: bigint;
    timeMs: number;
    path: string;
    data: Uint8Array;
    nodeType: NodeType;
    sessionId: bigint;
  }
  | { type: "set"; zxid: bigint; timeMs: number; path: string; data: Uint8Array }
  | { type: "delete"; zxid: bigint; timeMs: number; path: string }
  | { type: "closeSession"; zxid: bigint; timeMs: number; sessionId: bigint }
  | {
    type: "createSession";
    zxid: bigint;
    timeMs: number;
    sessionId: bigint;
    secret: Uint8Array;
    authorized: boolean;
    token: string;
  };

const TYPE_CODES = { create: 1, set: 2, delete: 3, closeSession: 4, createSession: 5 } as const;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE), to detect torn or corrupt records. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function appendBytes(buffer: Buffer, bytes: Uint8Array): void {
  buffer.appendUint32(bytes.length);
  buffer.append(bytes);
}

/** Encode a record with its length and CRC header. */
export function encodeRecord(record: TxnRecord): Uint8Array {
  const body = new Buffer(64 + ("data" in record ? record.data.length : 0));
  body.appendUint8(TYPE_CODES[record.type]);
  body.appendBigUint64(record.zxid);
  body.appendBigInt64(BigInt(record.timeMs));
  switch (record.type) {
    case "create":
      appendBytes(body, encoder.encode(record.path));
      appendBytes(body, record.data);
      body.appendUint8(record.nodeType);
      body.appendBigUint64(record.sessionId);
      break;
    case "set":
      appendBytes(body, encoder.encode(record.path));
      appendBytes(body, record.data);
      break;
    case "delete":
      appendBytes(body, encoder.encode(record.path));
      break;
    case "closeSession":
      body.appendBigUint64(record.sessionId);
      break;
    case "createSession":
      body.appendBigUint64(record.sessionId);
      appendBytes(body, record.secret);
      body.appendUint8(record.authorized ? 1 : 0);
      appendBytes(body, encoder.encode(record.token));
      break;
  }
  const crc = crc32(body.peek());
  body.prependUint32(crc);
  body.prependUint32(body.readableBytes - 4);
  return body.retrieveAsBytes(body.readableBytes);
}

function decodeBody(body: Buffer): TxnRecord {
  const type = body.readUint8();
  const zxid = body.readBigUint64();
  const timeMs = Number(body.readBigInt64());
  const readBytes = () => body.retrieveAsBytes(body.readUint32());
  switch (type) {
    case 1: {
      const path = decoder.decode(readBytes());
      const data = readBytes();
      return {
        type: "create",
        zxid,
        timeMs,
        path,
        data,
        nodeType: body.readUint8() as NodeType,
        sessionId: body.readBigUint64(),
      };
    }
    case 2: {
      const path = decoder.decode(readBytes());
      return { type: "set", zxid, timeMs, path, data: readBytes() };
    }
    case 3:
      return { type: "delete", zxid, timeMs, path: decoder.decode(readBytes()) };
    case 4:
      return { type: "closeSession", zxid, timeMs, sessionId: body.readBigUint64() };
    case 5: {
      const sessionId = body.readBigUint64();
      const secret = readBytes();
      const authorized = body.readUint8() === 1;
      return { type: "createSession", zxid, timeMs, sessionId, secret, authorized, token: decoder.decode(readBytes()) };
    }
    default:
      throw new Error(`unknown record type ${type}`);
  }
}

/** Decode the records of one log file, stopping at the first torn or corrupt one. */
export function decodeRecords(bytes: Uint8Array): { records: TxnRecord[]; torn: boolean } {
  const buffer = new Buffer(0);
  buffer.append(bytes);
  const records: TxnRecord[] = [];
  while (buffer.readableBytes > 0) {
    if (buffer.readableBytes < 8) return { records, torn: true };
    const length = buffer.peekUint32();
    if (length < 17 || buffer.readableBytes < 8 + length) return { records, torn: true };
    buffer.retrieve(4);
    const crc = buffer.readUint32();
    const body = buffer.peek().subarray(0, length);
    if (crc32(body) !== crc) return { records, torn: true };
    const bodyBuffer = new Buffer(0);
    bodyBuffer.append(body);
    buffer.retrieve(length);
    try {
      records.push(decodeBody(bodyBuffer));
    } catch {
      return { records, torn: true };
    }
  }
  return { records, torn: false };
}

/** Apply a record to a tree (during replay, and to keep code paths single). */
export function applyRecord(tree: DataTree, record: TxnRecord): void {
  switch (record.type) {
    case "create":
      tree.create(
        record.path,
        record.data,
        { nodeType: record.nodeType, sessionId: record.sessionId },
        record.zxid,
        record.timeMs,
      );
      break;
    case "set":
      tree.setData(record.path, record.data, -1, record.zxid, record.timeMs);
      break;
    case "delete":
      tree.delete(record.path, -1, record.zxid);
      break;
    case "closeSession":
      tree.killSession(record.sessionId, record.zxid);
      break;
    case "createSession":
      tree.createSession(
        record.sessionId,
        { secret: record.secret, authorized: record.authorized, token: record.token },
        record.zxid,
      );
      break;
  }
}

const hex = (zxid: bigint) => zxid.toString(16).padStart(16, "0");

/** Options of {@linkcode TxnLog.open}. */
export interface TxnLogOptions extends DataTreeOptions {
  /**
   * Take a snapshot after this many logged transactions.
   * @default {10000}
   */
  snapshotEveryTxns?: number;
}

/** The log of one data directory. */
export class TxnLog {
  readonly #backend: NetBackend;
  readonly #dir: string;
  readonly #snapshotEveryTxns: number;
  #file: DurableAppendFile;
  #fileName: string;
  #pending: Uint8Array[] = [];
  #waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  #flushing: Promise<void> | undefined;
  #sinceSnapshot = 0;
  #tree: DataTree;
  #closed = false;
  #syncs = 0;

  private constructor(
    backend: NetBackend,
    dir: string,
    tree: DataTree,
    file: DurableAppendFile,
    fileName: string,
    every: number,
  ) {
    this.#backend = backend;
    this.#dir = dir;
    this.#tree = tree;
    this.#file = file;
    this.#fileName = fileName;
    this.#snapshotEveryTxns = every;
  }

  /**
   * Load the newest snapshot, replay the logs after it, and open a new log for appends. Returns the log and the
   * rebuilt tree (ephemeral nodes included, so the caller can close their sessions through the log).
   */
  static async open(
    backend: NetBackend,
    dir: string,
    options: TxnLogOptions = {},
  ): Promise<{ log: TxnLog; tree: DataTree }> {
    await backend.fs.mkdir(dir);
    const names = await backend.fs.readDir(dir);
    const snapshots = names.filter((n) => /^snapshot\.[0-9a-f]{16}$/.test(n)).sort().reverse();
    let tree = new DataTree(options);
    for (const name of snapshots) {
      try {
        tree = DataTree.deserialize(await backend.fs.readFile(`${dir}/${name}`), options);
        break;
      } catch (error) {
        getLogger().warn(`TxnLog: skipping unreadable snapshot ${dir}/${name}`, { error });
      }
    }
    const logs = names.filter((n) => /^log\.[0-9a-f]{16}$/.test(n)).sort();
    let replayed = 0;
    for (const name of logs) {
      const { records, torn } = decodeRecords(await backend.fs.readFile(`${dir}/${name}`));
      for (const record of records) {
        if (record.zxid <= tree.lastZxid) continue;
        try {
          applyRecord(tree, record);
          replayed++;
        } catch (error) {
          // Ephemeral nodes are not in snapshots, so a logged change to one may find nothing: expected.
          const expected = (error as { code?: number }).code === -101;
          getLogger()[expected ? "debug" : "error"](
            `TxnLog: record ${record.zxid} of ${name} does not apply; skipped`,
            {
              error,
            },
          );
        }
      }
      if (torn) getLogger().warn(`TxnLog: ${dir}/${name} ends in a torn record (crash mid-write); ignored its tail`);
    }
    const fileName = `log.${hex(tree.lastZxid + 1n)}`;
    // A file of this name can exist only if it holds nothing we applied (all its records were torn): start over.
    await backend.fs.remove(`${dir}/${fileName}`);
    const file = await backend.fs.openDurableAppend(`${dir}/${fileName}`);
    getLogger().info(
      `TxnLog: loaded ${dir}: ${tree.nodeCount} nodes, ${replayed} transactions replayed, zxid ${tree.lastZxid}`,
    );
    const log = new TxnLog(backend, dir, tree, file, fileName, options.snapshotEveryTxns ?? 10_000);
    log.#sinceSnapshot = replayed;
    return { log, tree };
  }

  /** fsyncs made so far (a batch of concurrent appends shares one). */
  get syncs(): number {
    return this.#syncs;
  }

  /** Append a record; resolves once it is on disk. */
  append(record: TxnRecord): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("Cannot append to a closed transaction log"));
    this.#pending.push(encodeRecord(record));
    const done = Promise.withResolvers<void>();
    this.#waiters.push(done);
    this.#flushing ??= this.#flushLoop();
    return done.promise;
  }

  /** Flush what is pending, then close the file. */
  async close(): Promise<void> {
    await this.#flushing;
    this.#closed = true;
    this.#file.close();
  }

  async #flushLoop(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending;
        const waiters = this.#waiters;
        this.#pending = [];
        this.#waiters = [];
        try {
          if (this.#sinceSnapshot + batch.length >= this.#snapshotEveryTxns) {
            // The tree already holds every record of the batch, so the snapshot makes them durable.
            await this.#snapshot();
          } else {
            const bytes = new Uint8Array(batch.reduce((sum, b) => sum + b.length, 0));
            let offset = 0;
            for (const b of batch) {
              bytes.set(b, offset);
              offset += b.length;
            }
            // One O_DSYNC write: durable when it resolves, one thread-pool round trip.
            await this.#file.append(bytes);
            this.#syncs++;
            this.#sinceSnapshot += batch.length;
          }
          for (const waiter of waiters) waiter.resolve();
        } catch (error) {
          // FIXME: the tree already holds these changes; a failing disk should stop the server from serving.
          getLogger().error(`TxnLog: cannot write ${this.#dir}/${this.#fileName}`, { error });
          for (const waiter of waiters) waiter.reject(error);
        }
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  async #snapshot(): Promise<void> {
    const zxid = this.#tree.lastZxid;
    const name = `snapshot.${hex(zxid)}`;
    await this.#backend.fs.writeFile(`${this.#dir}/${name}.tmp`, this.#tree.serialize());
    await this.#backend.fs.rename(`${this.#dir}/${name}.tmp`, `${this.#dir}/${name}`);
    this.#syncs++;
    this.#file.close();
    this.#fileName = `log.${hex(zxid + 1n)}`;
    await this.#backend.fs.remove(`${this.#dir}/${this.#fileName}`);
    this.#file = await this.#backend.fs.openDurableAppend(`${this.#dir}/${this.#fileName}`);
    this.#sinceSnapshot = 0;
    for (const old of await this.#backend.fs.readDir(this.#dir)) {
      if ((/^log\./.test(old) && old !== this.#fileName) || (/^snapshot\./.test(old) && old !== name)) {
        await this.#backend.fs.remove(`${this.#dir}/${old}`);
      }
    }
    getLogger().info(`TxnLog: snapshot ${name} (${this.#tree.nodeCount} nodes)`);
  }
}
