// The connect-node client (Node, HTTP/1.1) calling a provider's gateway, for rpc/http/gateway_clients_test.ts:
// `node connect_node_client.mjs --base-url http://127.0.0.1:PORT --transport connect-proto|connect-json|grpc-web`.
// It learns the schema from the gateway itself (GET /dwt.rpc.Reflection/FileDescriptorSet, a file registry of
// it), calls the seed's UserServiceRpc and the streaming example's FeedService in each way a client can, and
// prints one JSON line per scenario: what came back (messages in the canonical JSON mapping, trailers, the error
// code by gRPC number, times as Date.now()). The test judges them; this side asserts nothing, so a wrong answer
// shows up there with its context.
import { parseArgs } from "node:util";
import { connect, connectNode, protobuf, wkt } from "./_packages.mjs";

const { values } = parseArgs({
  options: { "base-url": { type: "string" }, transport: { type: "string" } },
});
const baseUrl = values["base-url"];
const transports = {
  "connect-proto": () => connectNode.createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
  "connect-json": () => connectNode.createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
  "grpc-web": () => connectNode.createGrpcWebTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
};
if (baseUrl === undefined || !(values.transport in transports)) {
  console.error(`Usage: --base-url URL --transport ${Object.keys(transports).join("|")}`);
  process.exit(2);
}

/** Bytes of Upload's chunk `index`, `size` long: the test rebuilds them by the same rule to check the hash. */
function chunkBytes(index, size) {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at++) bytes[at] = (index * 7 + at * 13) & 0xff;
  return bytes;
}
// Messages of a stream must fit its window (64 KiB by default): the largest comes near it.
const UPLOAD_SIZES = [0, 1, 1000, 60_000, 3];

const response = await fetch(`${baseUrl}/dwt.rpc.Reflection/FileDescriptorSet`);
if (!response.ok) throw new Error(`The descriptor set's download failed: HTTP ${response.status}`);
const set = protobuf.fromBinary(wkt.FileDescriptorSetSchema, new Uint8Array(await response.arrayBuffer()));
const registry = protobuf.createFileRegistry(set);
const service = (name) => {
  const found = registry.getService(name);
  if (found === undefined) throw new Error(`The gateway's descriptor set has no service ${name}`);
  return found;
};
const transport = transports[values.transport]();
const users = connect.createClient(service("dwt.UserServiceRpc"), transport);
const feed = connect.createClient(service("dwt.streaming.FeedService"), transport);
const encoder = new TextEncoder();
const json = (message) => protobuf.toJson(registry.getMessage(message.$typeName), message);

function report(scenario, fields) {
  console.log(JSON.stringify({ scenario, ...fields }));
}

// The error as the client surfaced it: its gRPC code number, name and message.
function failure(error) {
  const e = connect.ConnectError.from(error);
  return { code: e.code, codeName: connect.Code[e.code], message: e.rawMessage };
}

async function scenario(name, run) {
  try {
    report(name, await run());
  } catch (error) {
    report(name, { error: failure(error) });
  }
}

await scenario("login", async () => ({
  ok: json(await users.login({ name: encoder.encode("dwt"), password: encoder.encode("pw") })),
}));
await scenario("login-refused", async () => ({
  ok: json(await users.login({ name: encoder.encode("dwt"), password: new Uint8Array() })),
}));
await scenario("register", async () => ({
  ok: json(await users.register({ name: encoder.encode("new"), password: encoder.encode("pw") })),
}));

await scenario("follow", async () => {
  const ticks = [];
  let trailers = {};
  const options = { onTrailer: (headers) => (trailers = Object.fromEntries(headers)) };
  for await (const tick of feed.follow({ symbol: `F-${values.transport}`, count: 5, intervalMs: 2 }, options)) {
    ticks.push(json(tick));
  }
  return { ticks, trailers };
});
await scenario("follow-invalid", async () => {
  for await (const _ of feed.follow({ symbol: "", count: 1 })) throw new Error("A tick for an invalid request");
  return {};
});

await scenario("upload", async () => {
  async function* chunks() {
    for (const [index, size] of UPLOAD_SIZES.entries()) yield { data: chunkBytes(index, size) };
  }
  return { sizes: UPLOAD_SIZES, ok: json(await feed.upload(chunks())) };
});

await scenario("chat", async () => {
  async function* lines() {
    yield { from: "node", text: "hello" };
  }
  const replies = [];
  for await (const line of feed.chat(lines())) replies.push(json(line));
  return { replies };
});

// Aborts, each tried ABORT_ATTEMPTS times (the test judges the median, so one stall of a busy machine is not
// taken for the gateway's): the test compares the moment the client aborted with the one its handler saw the
// cancel (Date.now() on both sides: the same machine clock).
const ABORT_ATTEMPTS = 3;

// A server stream aborted after two ticks 300 ms apart: the handler must learn it from the connection, not from
// its next message meeting a closed socket.
async function abortFollow(symbol) {
  const controller = new AbortController();
  let received = 0;
  let abortedAt;
  try {
    for await (const _ of feed.follow({ symbol, count: 0, intervalMs: 300 }, { signal: controller.signal })) {
      if (++received === 2) {
        abortedAt = Date.now();
        controller.abort();
      }
    }
    return { symbol, received, abortedAt, error: null };
  } catch (error) {
    return { symbol, received, abortedAt, error: failure(error) };
  }
}

// A client stream aborted mid-body: two chunks, then the client holds the request open and gives up 150 ms later.
async function abortUpload() {
  const controller = new AbortController();
  const aborted = new Promise((resolve) => controller.signal.addEventListener("abort", resolve, { once: true }));
  let abortedAt;
  async function* chunks() {
    yield { data: chunkBytes(0, 10) };
    yield { data: chunkBytes(1, 10) };
    await aborted;
  }
  const timer = setTimeout(() => {
    abortedAt = Date.now();
    controller.abort();
  }, 150);
  try {
    await feed.upload(chunks(), { signal: controller.signal });
    return { abortedAt, error: null };
  } catch (error) {
    return { abortedAt, error: failure(error) };
  } finally {
    clearTimeout(timer);
  }
}

await scenario("abort", async () => {
  const attempts = [];
  for (let attempt = 0; attempt < ABORT_ATTEMPTS; attempt++) {
    attempts.push(await abortFollow(`A-${values.transport}-${attempt}`));
  }
  return { attempts };
});
await scenario("upload-abort", async () => {
  const attempts = [];
  for (let attempt = 0; attempt < ABORT_ATTEMPTS; attempt++) attempts.push(await abortUpload());
  return { attempts };
});

// A deadline: an endless stream called with timeoutMs ends deadline_exceeded.
await scenario("timeout", async () => {
  const startedAt = Date.now();
  let received = 0;
  try {
    const ticks = feed.follow({ symbol: `T-${values.transport}`, count: 0, intervalMs: 20 }, { timeoutMs: 400 });
    for await (const _ of ticks) received++;
    return { received, startedAt, endedAt: Date.now(), error: null };
  } catch (error) {
    return { received, startedAt, endedAt: Date.now(), error: failure(error) };
  }
});
