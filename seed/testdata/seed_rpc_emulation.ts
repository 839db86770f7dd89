/**
 * Byte-exact emulations of the C++ seed's RPC programs, written from `../shared/seed/seed-spec.md` §3.4–3.7 (no
 * C++ and none of our codec: the bytes are built and read here by hand, so a test of our side against them is a
 * test against the spec). For tests only; they use Deno's sockets directly.
 *
 * - {@linkcode seedCall}: DwtRpcChannel::CallMethod after discovery: connect, one write of the whole frame, one read
 *   into a 1,024-byte buffer, close.
 * - {@linkcode SeedProviderEmulation}: DwtRpcProvider: takes all the bytes of its first read as one request, answers
 *   the raw serialized response, half-closes; on any error it answers nothing and leaves the connection open, as the
 *   seed does.
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A protobuf varint, by hand. */
export function varint(value: number): number[] {
  const out: number[] = [];
  for (let rest = value >>> 0;; rest >>>= 7) {
    if (rest < 0x80) return out.concat(rest);
    out.push((rest & 0x7f) | 0x80);
  }
}

/** A bytes field (wire type 2), by hand. */
export function bytesField(field: number, value: Uint8Array | string): number[] {
  const bytes = typeof value === "string" ? encoder.encode(value) : value;
  return [(field << 3) | 2, ...varint(bytes.length), ...bytes];
}

/** The seed's request frame: `[header_len LE][RpcHeader][args]`, RpcHeader {1: service, 2: method, 3: args_size}. */
export function seedFrame(service: string, method: string, args: Uint8Array): Uint8Array {
  const header = [...bytesField(1, service), ...bytesField(2, method)];
  if (args.length > 0) header.push(3 << 3, ...varint(args.length));
  const length = header.length;
  return Uint8Array.from([
    length & 0xff,
    (length >>> 8) & 0xff,
    (length >>> 16) & 0xff,
    length >>> 24,
    ...header,
    ...args,
  ]);
}

/** What the seed's caller got: `bytes` from its one read (empty on EOF), or `recv error`, or no answer in time. */
export type SeedCallOutcome =
  | { kind: "read"; bytes: Uint8Array }
  | { kind: "recv error" }
  | { kind: "no answer" };

/**
 * The seed caller's steps 5–6 (§3.6) against `hostname:port`: connect, one write of `frame`, one read of at most
 * 1,024 bytes, close. The seed waits forever; this waits `waitMs` and says "no answer".
 */
export async function seedCall(
  hostname: string,
  port: number,
  frame: Uint8Array,
  waitMs = 5000,
): Promise<SeedCallOutcome> {
  const conn = await Deno.connect({ hostname, port });
  try {
    await conn.write(frame); // one write; the seed ignores short writes (none happen on loopback)
    const buffer = new Uint8Array(1024);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), waitMs));
    const read = conn.read(buffer).then((n) => n ?? 0, () => -1);
    const result = await Promise.race([read, timedOut]);
    clearTimeout(timer);
    if (result === "timeout") {
      conn.close(); // the pending read then settles (as an error) before the test ends
      await read;
      return { kind: "no answer" };
    }
    if (result < 0) return { kind: "recv error" };
    return { kind: "read", bytes: buffer.slice(0, result) };
  } finally {
    try {
      conn.close();
    } catch { /* closed above */ }
  }
}

/** The seed's RpcHeader, read by hand. */
export interface SeedHeaderFields {
  service: string;
  method: string;
  argsSize: number;
}

/** Parse an RpcHeader by hand (fields 1, 2 as bytes, 3 as a varint); throws on anything else. */
export function parseSeedHeader(bytes: Uint8Array): SeedHeaderFields {
  const fields: SeedHeaderFields = { service: "", method: "", argsSize: 0 };
  let at = 0;
  const readVarint = () => {
    let value = 0;
    for (let shift = 0;; shift += 7) {
      const byte = bytes[at++];
      if (byte === undefined || shift > 28) throw new RangeError("bad varint");
      value |= (byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return value >>> 0;
    }
  };
  while (at < bytes.length) {
    const key = readVarint();
    if (key === 0x0a || key === 0x12) {
      const length = readVarint();
      const text = decoder.decode(bytes.subarray(at, at + length));
      at += length;
      if (key === 0x0a) fields.service = text;
      else fields.method = text;
    } else if (key === 0x18) {
      fields.argsSize = readVarint();
    } else {
      throw new RangeError(`unexpected key ${key}`);
    }
  }
  return fields;
}

/** A method of an emulated seed provider: the request's bytes in, the response's bytes out. */
export type SeedMethod = (args: Uint8Array) => Uint8Array | Promise<Uint8Array>;

/**
 * The seed's DwtRpcProvider (§3.5), emulated: services by simple name; each connection's first read is the whole
 * request; the answer is the raw response then a half-close; on an unknown service or method, a bad header or a
 * short frame, nothing is answered and the connection stays open until the caller closes it.
 */
export class SeedProviderEmulation {
  readonly #listener: Deno.TcpListener;
  readonly #services: Map<string, Map<string, SeedMethod>>;
  readonly #conns = new Set<Deno.TcpConn>();
  readonly #served: Promise<void>;
  /** `Service.Method` of each call it ran, in order. */
  readonly calls: string[] = [];

  /** Listen on 127.0.0.1 (any free port). */
  constructor(services: Record<string, Record<string, SeedMethod>>) {
    this.#services = new Map(
      Object.entries(services).map(([name, methods]) => [name, new Map(Object.entries(methods))]),
    );
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#served = this.#accept();
  }

  /** `ip:port`, as the seed publishes it. */
  get address(): string {
    return `127.0.0.1:${this.#listener.addr.port}`;
  }

  async #accept(): Promise<void> {
    const handling: Promise<void>[] = [];
    try {
      for await (const conn of this.#listener) {
        this.#conns.add(conn);
        handling.push(this.#serve(conn).finally(() => this.#conns.delete(conn)));
      }
    } catch { /* the listener closed */ }
    await Promise.allSettled(handling);
  }

  async #serve(conn: Deno.TcpConn): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      const n = await conn.read(buffer);
      if (n === null) return;
      const request = buffer.subarray(0, n);
      const answer = await this.#handle(request);
      if (answer !== undefined) {
        let written = 0;
        while (written < answer.length) written += await conn.write(answer.subarray(written));
        await conn.closeWrite(); // shutdown(): the only end-of-message mark
      }
      // Like the seed, wait for the caller to close (forever, on the error paths where it answered nothing).
      while ((await conn.read(buffer)) !== null) { /* the seed ignores later bytes */ }
    } catch {
      /* reset or closed at stop */
    } finally {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  }

  async #handle(request: Uint8Array): Promise<Uint8Array | undefined> {
    if (request.length < 4) return undefined; // the seed crashes here (§4.3.5); an emulation just stays silent
    const headerLength = request[0]! | (request[1]! << 8) | (request[2]! << 16) | (request[3]! << 24);
    let header: SeedHeaderFields;
    try {
      header = parseSeedHeader(request.subarray(4, 4 + headerLength));
    } catch {
      return undefined; // "header format error"
    }
    const method = this.#services.get(header.service)?.get(header.method);
    if (method === undefined) return undefined; // "service: X not found"
    this.calls.push(`${header.service}.${header.method}`);
    return await method(request.subarray(4 + headerLength, 4 + headerLength + header.argsSize));
  }

  /** Stop listening and close every connection. */
  async close(): Promise<void> {
    this.#listener.close();
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    await this.#served;
  }
}
