// Length-prefixed frames over plain Deno sockets, for tests that play a server or a client byte by byte.

/** Reads length-prefixed frames (4-byte big-endian length, then the body) from one connection. */
export class FrameReader {
  #buffered = new Uint8Array(0);
  readonly #conn: Deno.Conn;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async next(): Promise<Uint8Array> {
    while (true) {
      if (this.#buffered.length >= 4) {
        const length = new DataView(this.#buffered.buffer, this.#buffered.byteOffset).getUint32(0);
        if (this.#buffered.length >= 4 + length) {
          const body = this.#buffered.slice(4, 4 + length);
          this.#buffered = this.#buffered.slice(4 + length);
          return body;
        }
      }
      const chunk = new Uint8Array(65536);
      const n = await this.#conn.read(chunk);
      if (n === null) throw new Error("the client closed the connection");
      const joined = new Uint8Array(this.#buffered.length + n);
      joined.set(this.#buffered);
      joined.set(chunk.subarray(0, n), this.#buffered.length);
      this.#buffered = joined;
    }
  }
}

export function lengthPrefixed(...bodies: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(bodies.reduce((sum, body) => sum + 4 + body.length, 0));
  let at = 0;
  for (const body of bodies) {
    new DataView(out.buffer).setUint32(at, body.length);
    out.set(body, at + 4);
    at += 4 + body.length;
  }
  return out;
}

export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) written += await conn.write(bytes.subarray(written));
}
