/**
 * What the gateway tests call with: a provider serving test.gateway.Demo (and dwt.UserServiceRpc) on its HTTP
 * port, 5-byte frames built and parsed by hand, and a raw HTTP/1.1 client on a socket for what `fetch` hides
 * (compressed bodies, chunk trailers, keep-alive, hostile bytes).
 */

import type protobuf from "protobufjs";
import { EventLoop } from "../../../reactor/event_loop.ts";
import { RpcProvider, type RpcProviderOptions } from "../../rpc_provider.ts";
import { UserServiceRpc } from "../../../examples/rpc/user_pb.ts";
import { DEMO, demoHandlers, type DemoRecord, demoRecord } from "./gateway_service.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A provider serving Demo and UserServiceRpc with its gateway on, and its base URL. */
export interface DemoProvider extends AsyncDisposable {
  readonly provider: RpcProvider;
  readonly record: DemoRecord;
  /** `http://127.0.0.1:port`. */
  readonly base: string;
  /** `127.0.0.1:port` of the gateway. */
  readonly address: string;
}

/** Start a provider with `options` (its gateway on a free port) serving Demo and a quiet UserServiceRpc. */
export async function startDemoProvider(options: RpcProviderOptions = {}): Promise<DemoProvider> {
  const record = demoRecord();
  const provider = new RpcProvider({ loop: new EventLoop(), httpPort: 0, ...options });
  provider.registerService(DEMO, demoHandlers(record));
  provider.registerService(UserServiceRpc, {
    Login: (request: { name: Uint8Array; password: Uint8Array }) => ({
      result: { errcode: 0, errmsg: encoder.encode(`hello ${decoder.decode(request.name)}`) },
      success: request.password.length > 0,
    }),
    Register: () => ({ success: true, id: 7 }),
  });
  await provider.start();
  const address = provider.httpAddress!.toString();
  return {
    provider,
    record,
    base: `http://${address}`,
    address,
    [Symbol.asyncDispose]: () => provider.stop({ graceMs: 0 }),
  };
}

/** A method's request or response type of Demo. */
export function demoType(method: string, side: "request" | "response"): protobuf.Type {
  const definition = DEMO.methods.get(method)!;
  return side === "request" ? definition.requestType : definition.responseType;
}

/** `value` as the binary message of `type`. */
export function encode(type: protobuf.Type, value: Record<string, unknown>): Uint8Array<ArrayBuffer> {
  return new Uint8Array(type.encode(type.fromObject(value)).finish());
}

/** A binary message of `type` as a plain object (64-bit values as strings, bytes as arrays). */
export function decode(type: protobuf.Type, bytes: Uint8Array): Record<string, unknown> {
  return type.toObject(type.decode(bytes), { longs: String, bytes: Array, defaults: false });
}

/** UTF-8 of `value` as JSON. */
export function jsonBytes(value: unknown): Uint8Array<ArrayBuffer> {
  return encoder.encode(JSON.stringify(value));
}

/** One 5-byte-header frame (Connect envelope, gRPC-Web frame). */
export function frame(flags: number, data: Uint8Array): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(5 + data.length);
  bytes[0] = flags;
  new DataView(bytes.buffer).setUint32(1, data.length);
  bytes.set(data, 5);
  return bytes;
}

/** Frames one after the other. */
export function frames(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

/** A body's frames; throws on a body that ends inside one. */
export function parseFrames(bytes: Uint8Array): { flags: number; data: Uint8Array }[] {
  const out: { flags: number; data: Uint8Array }[] = [];
  for (let at = 0; at < bytes.length;) {
    if (bytes.length - at < 5) throw new Error(`A frame header is cut at byte ${at}`);
    const length = new DataView(bytes.buffer, bytes.byteOffset + at + 1, 4).getUint32(0);
    if (at + 5 + length > bytes.length) throw new Error(`A frame of ${length} bytes is cut at byte ${at}`);
    out.push({ flags: bytes[at]!, data: bytes.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return out;
}

/** UTF-8 text of `bytes`. */
export function text(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** gzip of `bytes`, through the standard stream. */
export async function gzipBytes(bytes: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** gunzip of `bytes`. */
export async function gunzipBytes(bytes: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A response as the raw client parsed it. */
export interface RawResponse {
  status: number;
  /** Header fields, names lower-cased, repeated ones joined with ", ". */
  headers: Map<string, string>;
  body: Uint8Array;
  /** Chunk trailer fields. */
  trailers: Map<string, string>;
}

/** HTTP/1.1 on a plain socket: requests written as given, responses parsed by hand (length, chunked, or close). */
export class RawHttpClient {
  readonly conn: Deno.TcpConn;
  #pending: Uint8Array = new Uint8Array(0);
  #eof = false;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  /** Connect to `address` (`host:port`). */
  static async connect(address: string): Promise<RawHttpClient> {
    const colon = address.lastIndexOf(":");
    return new RawHttpClient(
      await Deno.connect({ hostname: address.slice(0, colon), port: Number(address.slice(colon + 1)) }),
    );
  }

  /** Write `data` whole. */
  async send(data: Uint8Array | string): Promise<void> {
    let bytes = typeof data === "string" ? encoder.encode(data) : data;
    while (bytes.length > 0) bytes = bytes.subarray(await this.conn.write(bytes));
  }

  /** Write a request: `head` lines (without the blank line), then `body` with its Content-Length. */
  async request(head: string, body: Uint8Array = new Uint8Array(0)): Promise<void> {
    await this.send(frames(encoder.encode(`${head}\r\ncontent-length: ${body.length}\r\n\r\n`), body));
  }

  /** Read a response's head only (for a streamed body: then `chunk` by chunk). */
  async head(): Promise<{ status: number; headers: Map<string, string> }> {
    const headEnd = await this.#find(encoder.encode("\r\n\r\n"));
    const head = text(this.#take(headEnd + 4)).split("\r\n");
    return { status: Number(head[0]!.split(" ")[1]), headers: fieldMap(head.slice(1, -2)) };
  }

  /** The next chunk of a chunked body (the gateway writes one per stream message); undefined at its end. */
  async chunk(): Promise<Uint8Array | undefined> {
    const lineEnd = await this.#find(encoder.encode("\r\n"));
    const size = parseInt(text(this.#take(lineEnd + 2)), 16);
    if (size === 0) return undefined;
    const data = await this.#read(size);
    await this.#read(2);
    return data;
  }

  /** Read one response. */
  async response(): Promise<RawResponse> {
    const headEnd = await this.#find(encoder.encode("\r\n\r\n"));
    const head = text(this.#take(headEnd + 4)).split("\r\n");
    const status = Number(head[0]!.split(" ")[1]);
    const headers = fieldMap(head.slice(1, -2));
    const trailers = new Map<string, string>();
    let body: Uint8Array;
    if (headers.has("content-length")) {
      body = await this.#read(Number(headers.get("content-length")));
    } else if (headers.get("transfer-encoding") === "chunked") {
      const parts: Uint8Array[] = [];
      for (;;) {
        const lineEnd = await this.#find(encoder.encode("\r\n"));
        const size = parseInt(text(this.#take(lineEnd + 2)), 16);
        if (size === 0) {
          const end = await this.#find(encoder.encode("\r\n\r\n"), true);
          const lines = end < 0 ? [] : text(this.#take(end + 4)).split("\r\n").slice(0, -2);
          if (end < 0) this.#take(2);
          for (const [name, value] of fieldMap(lines)) trailers.set(name, value);
          break;
        }
        parts.push(await this.#read(size));
        await this.#read(2);
      }
      body = frames(...parts);
    } else if (status === 204 || status === 304) {
      body = new Uint8Array(0);
    } else {
      while (!this.#eof) await this.#fill();
      body = this.#take(this.#pending.length);
    }
    return { status, headers, body, trailers };
  }

  /** Whether the server closes the connection within `timeoutMs` (reading what comes meanwhile; else closes it). */
  async closedByServer(timeoutMs = 5000): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs));
    const ended = (async () => {
      while (!this.#eof) await this.#fill();
      return true;
    })();
    const closed = await Promise.race([ended, late]);
    clearTimeout(timer);
    if (!closed) {
      this.close(); // ends the read in flight
      await ended;
    }
    return closed;
  }

  /** Close the socket. */
  close(): void {
    try {
      this.conn.close();
    } catch { /* closed already */ }
  }

  async #fill(): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    let n: number | null;
    try {
      n = await this.conn.read(buffer);
    } catch {
      n = null;
    }
    if (n === null) {
      this.#eof = true;
      return;
    }
    this.#pending = frames(this.#pending, buffer.subarray(0, n));
  }

  // Index of `needle` in the pending bytes, reading more until it is there (-1 at the end when `orEnd`: the last
  // chunk's line had no trailers, so "\r\n" alone ends it).
  async #find(needle: Uint8Array, lastChunk = false): Promise<number> {
    for (;;) {
      if (lastChunk && this.#pending.length >= 2 && this.#pending[0] === 13 && this.#pending[1] === 10) return -1;
      const at = indexOf(this.#pending, needle);
      if (at >= 0) return at;
      if (this.#eof) throw new Error(`The connection ended before ${JSON.stringify(text(needle))}`);
      await this.#fill();
    }
  }

  async #read(length: number): Promise<Uint8Array> {
    while (this.#pending.length < length) {
      if (this.#eof) throw new Error(`The connection ended ${length - this.#pending.length} bytes short`);
      await this.#fill();
    }
    return this.#take(length);
  }

  #take(length: number): Uint8Array {
    const taken = this.#pending.slice(0, length);
    this.#pending = this.#pending.slice(length);
    return taken;
  }
}

function fieldMap(lines: string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    map.set(name, map.has(name) ? `${map.get(name)}, ${value}` : value);
  }
  return map;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
