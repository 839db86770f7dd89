/**
 * The floor of bench/gateway_bench.ts: the least a server on this runtime's plain sockets can do per unary call.
 * `Deno.listen`, one read loop per connection, each request's end found by its Content-Length and nothing else
 * parsed (the Content-Type only picks the answer), and a fixed, valid Connect unary answer of the gateway's own
 * size (the same status line and headers, the echo of the load client's 64 B payload) written back. No routing,
 * no decoding, no limits: the rate it reaches is the machine's and runtime's round trip, which no gateway on this
 * runtime can beat. Prints `READY <port>`.
 *
 *   deno run -A bench/gateway_floor_server.ts
 */

const PAYLOAD_SIZE = 64;
const encoder = new TextEncoder();
const payload = "a".repeat(PAYLOAD_SIZE);
// The date is fixed: its length (29 characters) is what keeps the answer the gateway's size.
const DATE = "Mon, 07 Dec 2026 14:38:30 GMT";

function answer(contentType: string, body: Uint8Array): Uint8Array {
  const head = `HTTP/1.1 200 OK\r\naccept-encoding: gzip\r\ncontent-type: ${contentType}\r\ndate: ${DATE}\r\n` +
    `content-length: ${body.length}\r\n\r\n`;
  const bytes = new Uint8Array(head.length + body.length);
  bytes.set(encoder.encode(head));
  bytes.set(body, head.length);
  return bytes;
}

// bench.EchoMessage {payload}: field 1, length-delimited, a one-byte length.
const protoAnswer = answer("application/proto", new Uint8Array([0x0a, PAYLOAD_SIZE, ...encoder.encode(payload)]));
const jsonAnswer = answer("application/json", encoder.encode(JSON.stringify({ payload: btoa(payload) })));

const CR = 13;
const LF = 10;
const READ_SIZE = 64 * 1024;
const CONTENT_LENGTH = "\r\ncontent-length:";
const JSON_TYPE = "\r\ncontent-type: application/json";

/** Where the blank line ending a header block starts in `buf[0, end)`, or -1. */
function headEnd(buf: Uint8Array, end: number): number {
  for (let i = 3; i < end; i++) {
    if (buf[i] === LF && buf[i - 1] === CR && buf[i - 2] === LF && buf[i - 3] === CR) return i - 3;
  }
  return -1;
}

const latin1 = new TextDecoder("latin1");

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) written += await conn.write(bytes.subarray(written));
}

async function serve(conn: Deno.Conn): Promise<void> {
  let buf = new Uint8Array(READ_SIZE);
  let filled = 0;
  try {
    for (;;) {
      if (filled === buf.length) {
        const bigger = new Uint8Array(buf.length * 2);
        bigger.set(buf);
        buf = bigger;
      }
      const n = await conn.read(buf.subarray(filled));
      if (n === null) return;
      filled += n;
      // Every whole request in the buffer gets its answer; a partial one waits for more bytes.
      let start = 0;
      for (;;) {
        const end = headEnd(buf.subarray(start), filled - start);
        if (end < 0) break;
        const head = latin1.decode(buf.subarray(start, start + end)).toLowerCase();
        const at = head.indexOf(CONTENT_LENGTH);
        const length = at < 0 ? 0 : parseInt(head.slice(at + CONTENT_LENGTH.length), 10);
        const requestEnd = start + end + 4 + length;
        if (requestEnd > filled) break;
        await writeAll(conn, head.includes(JSON_TYPE) ? jsonAnswer : protoAnswer);
        start = requestEnd;
      }
      buf.copyWithin(0, start, filled);
      filled -= start;
    }
  } catch {
    // The load client destroys its sockets at the end of a run.
  } finally {
    try {
      conn.close();
    } catch { /* closed already */ }
  }
}

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(`READY ${(listener.addr as Deno.NetAddr).port}`);
for await (const conn of listener) {
  conn.setNoDelay(true);
  serve(conn);
}
