// The page script of gateway_browser_test.ts's connect-web page: connect-web's Connect transport (JSON and binary)
// and its gRPC-Web transport call the gateway, with the schema the gateway serves (its FileDescriptorSet) and no
// generated code. `globalThis.ConnectWeb` is the bundle of connect_web_bundle.ts, loaded before this script.

const {
  Code,
  ConnectError,
  createClient,
  createConnectTransport,
  createFileRegistry,
  createGrpcWebTransport,
  FileDescriptorSetSchema,
  fromBinary,
} = globalThis.ConnectWeb;
const gateway = new URL(location.href).searchParams.get("gateway");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

let registry;

/** The services' schema, downloaded from the gateway once. */
async function schema() {
  if (registry === undefined) {
    const response = await fetch(`${gateway}/dwt.rpc.Reflection/FileDescriptorSet`);
    if (!response.ok) throw new Error(`The FileDescriptorSet download answered ${response.status}`);
    const set = fromBinary(FileDescriptorSetSchema, new Uint8Array(await response.arrayBuffer()));
    registry = createFileRegistry(set);
  }
  return registry;
}

/** A transport by name: "connect-json", "connect-proto" or "grpc-web". */
function transport(protocol) {
  if (protocol === "grpc-web") return createGrpcWebTransport({ baseUrl: gateway });
  return createConnectTransport({ baseUrl: gateway, useBinaryFormat: protocol === "connect-proto" });
}

/** A client of `service` over `protocol`. */
async function client(service, protocol) {
  const descriptor = (await schema()).getService(service);
  if (descriptor === undefined) throw new Error(`The gateway's schema has no ${service}`);
  return createClient(descriptor, transport(protocol));
}

/** A ConnectError as the page sees it. */
function failure(error) {
  const connectError = ConnectError.from(error);
  return { code: Code[connectError.code], message: connectError.rawMessage };
}

/** UserServiceRpc.Login, with the response header the gateway exposes to this origin. */
async function login(protocol, name, password) {
  try {
    const users = await client("dwt.UserServiceRpc", protocol);
    let requestId;
    const reply = await users.login(
      { name: encoder.encode(name), password: encoder.encode(password) },
      { onHeader: (headers) => requestId = headers.get("x-request-id") },
    );
    return { success: reply.success, errmsg: decoder.decode(reply.result.errmsg), requestId };
  } catch (error) {
    return failure(error);
  }
}

/** FeedService.Follow: the ticks as they came, and the stream's trailer. */
async function follow(protocol, symbol, count, intervalMs) {
  const ticks = [];
  let ticksSent;
  try {
    const feed = await client("dwt.streaming.FeedService", protocol);
    const started = performance.now();
    const stream = feed.follow({ symbol, count, intervalMs }, {
      onTrailer: (trailers) => ticksSent = trailers.get("ticks-sent"),
    });
    for await (const tick of stream) {
      ticks.push({
        symbol: tick.symbol,
        sequence: String(tick.sequence),
        price: tick.price,
        atMs: Math.round(performance.now() - started),
      });
    }
    return { ticks, ticksSent };
  } catch (error) {
    return { ticks, ...failure(error) };
  }
}

globalThis.page = { login, follow };
document.body.dataset.ready = "yes";
