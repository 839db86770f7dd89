// The one load generator of bench/gateway_bench.ts, the same for both servers: raw keep-alive HTTP/1.1 on
// node:net sockets, one request in flight per connection, requests pre-built once, responses parsed only as far as
// framing needs (status, Content-Length or chunked, Connect envelopes), so that it costs far less per request than
// either server. Prints one JSON line.
//
//   node gateway_load_client.mjs --port N --mode proto|json --conc C --size B --seconds S [--warmup-ms W]
//       unary bench.Echo/Echo over C connections: {"qps","p50","p99","n","total","clientCpu"}
//       (latencies in ms; n: calls measured, total: with the warm-up's; clientCpu: the client's CPU time over its
//       run's wall time)
//   node gateway_load_client.mjs --port N --mode stream --conc C --size B --seconds S [--warmup-ms W]
//       C server streams of bench.Stream/Flood at once, one per connection: {"rate","total","clientCpu"} (messages
//       per second, all streams together; total: messages with the warm-up's)
//
// Any answer but a 200 with the echo expected (checked for every answer of the warm-up) ends the run with exit 1.
import { connect } from "node:net";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    mode: { type: "string", default: "proto" },
    conc: { type: "string", default: "1" },
    size: { type: "string", default: "64" },
    seconds: { type: "string", default: "2" },
    "warmup-ms": { type: "string", default: "500" },
  },
});
const port = Number(values.port);
const conc = Number(values.conc);
const size = Number(values.size);
const measureMs = Number(values.seconds) * 1000;
const warmupMs = Number(values["warmup-ms"]);
if (!(port > 0) || !(conc >= 1) || !(size >= 0 && size < 128) || !(measureMs > 0) || !(warmupMs >= 0)) {
  console.error(
    `Cannot run: --port, --conc, --seconds must be positive, --size in [0, 127]: ${JSON.stringify(values)}`,
  );
  process.exit(2);
}

function fail(message) {
  console.error(message);
  process.exit(1);
}

const payload = Buffer.alloc(size, 0x61);
// bench.EchoMessage / bench.Chunk {payload}: field 1, length-delimited, a one-byte length (size < 128).
const protoMessage = Buffer.concat([Buffer.from([0x0a, size]), payload]);
const jsonMessage = Buffer.from(JSON.stringify({ payload: payload.toString("base64") }));

function request(path, contentType, body) {
  const head = `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: ${contentType}\r\n` +
    `Connect-Protocol-Version: 1\r\nContent-Length: ${body.length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, "latin1"), body]);
}

function open() {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1", noDelay: true }, () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Where the header block ends (after its blank line), its status, and how the body is framed. */
function parseHead(buf) {
  const end = buf.indexOf("\r\n\r\n", 0, "latin1");
  if (end < 0) return undefined;
  const head = buf.toString("latin1", 0, end).toLowerCase();
  const status = Number(head.slice(9, 12));
  const at = head.indexOf("\r\ncontent-length:");
  const contentLength = at < 0 ? -1 : parseInt(head.slice(at + 17, head.indexOf("\r\n", at + 17) >>> 0), 10);
  const chunked = head.includes("\r\ntransfer-encoding: chunked");
  return { bodyStart: end + 4, status, contentLength, chunked, head };
}

/**
 * A chunked body, decoded as bytes come: each chunk's bytes go to `onData(buf, start, end)`; `feed` returns true
 * once the last chunk (and the blank line ending the trailers) has come.
 */
class ChunkedDecoder {
  #state = "size"; // size | data | data-crlf | trailers
  #line = "";
  #remaining = 0;
  #onData;

  constructor(onData) {
    this.#onData = onData;
  }

  feed(buf, start) {
    let i = start;
    while (i < buf.length) {
      if (this.#state === "data") {
        const n = Math.min(this.#remaining, buf.length - i);
        this.#onData(buf, i, i + n);
        i += n;
        this.#remaining -= n;
        if (this.#remaining === 0) {
          this.#state = "data-crlf";
          this.#line = "";
        }
        continue;
      }
      const nl = buf.indexOf(10, i);
      const lineEnd = nl < 0 ? buf.length : nl;
      this.#line += buf.toString("latin1", i, lineEnd);
      i = lineEnd;
      if (nl < 0) break;
      i++;
      const line = this.#line.trimEnd();
      this.#line = "";
      if (this.#state === "data-crlf") {
        this.#state = "size";
      } else if (this.#state === "size") {
        this.#remaining = parseInt(line, 16);
        if (!(this.#remaining >= 0)) fail(`Bad chunk size line ${JSON.stringify(line)}`);
        this.#state = this.#remaining === 0 ? "trailers" : "data";
      } else if (line === "") {
        return true; // trailers over
      }
    }
    return false;
  }
}

/** Unary calls on one connection, one after another; resolves when `stopAt` has passed. */
async function unaryLoop(socket, bytes, expectBody, clock) {
  let buf;
  let sentAt = 0;
  let done;
  let chunks;
  let chunkedBody;
  let head;
  const finish = (body) => {
    if (head.status !== 200) fail(`HTTP ${head.status}: ${head.head}\n${body.toString()}`);
    if (clock.checking && !expectBody(body)) fail(`Unexpected body ${JSON.stringify(body.toString("latin1"))}`);
    const resolve = done;
    buf = undefined;
    head = undefined;
    chunks = undefined;
    resolve();
  };
  socket.on("data", (data) => {
    buf = buf === undefined ? data : Buffer.concat([buf, data]);
    if (head === undefined) {
      head = parseHead(buf);
      if (head === undefined) return;
      if (head.chunked) {
        chunks = [];
        chunkedBody = new ChunkedDecoder((b, s, e) => chunks.push(b.subarray(s, e)));
        if (chunkedBody.feed(buf, head.bodyStart)) finish(Buffer.concat(chunks));
        return;
      }
      if (head.contentLength < 0) fail(`No Content-Length and not chunked: ${head.head}`);
    } else if (chunks !== undefined) {
      if (chunkedBody.feed(data, 0)) finish(Buffer.concat(chunks));
      return;
    }
    if (buf.length >= head.bodyStart + head.contentLength) {
      finish(buf.subarray(head.bodyStart, head.bodyStart + head.contentLength));
    }
  });
  socket.on("close", () => {
    if (done !== undefined && !clock.over) fail("The server closed a connection");
  });
  for (;;) {
    const now = performance.now();
    if (now >= clock.stopAt) break;
    sentAt = now;
    await new Promise((resolve) => {
      done = resolve;
      socket.write(bytes);
    });
    const end = performance.now();
    clock.total++;
    if (sentAt >= clock.measureFrom) clock.latencies.push(end - sentAt);
  }
  done = undefined;
}

async function unary() {
  const json = values.mode === "json";
  const bytes = json
    ? request("/bench.Echo/Echo", "application/json", jsonMessage)
    : request("/bench.Echo/Echo", "application/proto", protoMessage);
  const expectBody = json
    ? (body) => JSON.parse(body.toString()).payload === payload.toString("base64")
    : (body) => body.equals(protoMessage);
  const sockets = await Promise.all(Array.from({ length: conc }, open));
  const started = performance.now();
  const clock = {
    checking: true,
    over: false,
    measureFrom: started + warmupMs,
    stopAt: started + warmupMs + measureMs,
    latencies: [],
    total: 0,
  };
  setTimeout(() => clock.checking = false, warmupMs);
  await Promise.all(sockets.map((socket) => unaryLoop(socket, bytes, expectBody, clock)));
  const elapsed = (performance.now() - clock.measureFrom) / 1000;
  clock.over = true;
  for (const socket of sockets) socket.destroy();
  const latencies = clock.latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
  return { qps: latencies.length / elapsed, p50: pct(0.5), p99: pct(0.99), n: latencies.length, total: clock.total };
}

/** Connect envelopes (1 byte of flags, 4 of length, the message) counted as bytes come. */
class EnvelopeCounter {
  #header = Buffer.alloc(5);
  #headerBytes = 0;
  #remaining = 0;
  messages = 0;
  ended = false;

  add(buf, start, end) {
    let i = start;
    while (i < end) {
      if (this.#remaining > 0) {
        const n = Math.min(this.#remaining, end - i);
        i += n;
        this.#remaining -= n;
        continue;
      }
      this.#header[this.#headerBytes++] = buf[i++];
      if (this.#headerBytes < 5) continue;
      this.#headerBytes = 0;
      this.#remaining = this.#header.readUInt32BE(1);
      if (this.#header[0] & 2) this.ended = true;
      else this.messages++;
    }
  }
}

async function stream() {
  // bench.FloodRequest {size, count: 2^32 - 1, max_ms}: the stream outlives the run.
  const maxMs = warmupMs + measureMs + 10_000;
  const flood = Buffer.from([0x08, size, 0x10, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x18, ...varint(maxMs)]);
  const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, flood.length]), flood]);
  const bytes = request("/bench.Stream/Flood", "application/connect+proto", envelope);
  const sockets = await Promise.all(Array.from({ length: conc }, open));
  const counters = sockets.map(() => new EnvelopeCounter());
  let over = false;
  const total = () => counters.reduce((sum, counter) => sum + counter.messages, 0);
  sockets.forEach((socket, index) => {
    const counter = counters[index];
    let buf;
    let decoder;
    socket.on("data", (data) => {
      if (decoder === undefined) {
        buf = buf === undefined ? data : Buffer.concat([buf, data]);
        const head = parseHead(buf);
        if (head === undefined) return;
        if (head.status !== 200 || !head.chunked) fail(`Not a chunked 200: ${head.head}`);
        decoder = new ChunkedDecoder((b, s, e) => counter.add(b, s, e));
        data = buf;
        buf = undefined;
        decoder.feed(data, head.bodyStart);
      } else {
        decoder.feed(data, 0);
      }
      if (counter.ended && !over) fail("A stream ended before the run did");
    });
    socket.on("close", () => {
      if (!over) fail("The server closed a stream's connection");
    });
    socket.write(bytes);
  });
  await new Promise((resolve) => setTimeout(resolve, warmupMs));
  const from = total();
  const measureFrom = performance.now();
  await new Promise((resolve) => setTimeout(resolve, measureMs));
  const rate = (total() - from) / ((performance.now() - measureFrom) / 1000);
  over = true;
  for (const socket of sockets) socket.destroy();
  return { rate, total: total() };
}

function varint(n) {
  const out = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

const cpuBefore = process.cpuUsage();
const wallBefore = performance.now();
const result = values.mode === "stream" ? await stream() : await unary();
// The client's CPU over its whole run, as a share of one core: well under 1, it was not what limited the rate.
const { user, system } = process.cpuUsage(cpuBefore);
result.clientCpu = (user + system) / 1000 / (performance.now() - wallBefore);
console.log(JSON.stringify(result));
process.exit(0);
