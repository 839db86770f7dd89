// One case through the real connect-node client over HTTP/1.1: a Connect or gRPC-Web transport with the case's
// codec and compression (the pieces createConnectTransport and createGrpcWebTransport assemble, with the HTTP
// client wrapped to record the response and, for a `rawRequest` case, to send the hand-made request instead),
// the call by stream type, and what came back as a ClientResponseResult.
import {
  connect,
  connectNode,
  connectProtocol,
  protobuf,
  protocolConnect,
  protocolGrpcWeb,
  wkt,
} from "./_packages.mjs";
import { rawHttpRequest } from "./_raw_request.mjs";
import { examineWire, recordingClient } from "./_wire_checks.mjs";

const { Code, ConnectError, createClient } = connect;
const { compressionGzip, createNodeHttpClient } = connectNode;
const { validateReadWriteMaxBytes } = connectProtocol;
const createConnectTransport = protocolConnect.createTransport;
const createGrpcWebTransport = protocolGrpcWeb.createTransport;
const { create } = protobuf;
const { anyUnpack } = wkt;

// How long past its own timeout (or at all, without one) a case may run before the runner gives up on it.
const GIVE_UP_MS = 15_000;

/**
 * Run `testCase` against the gateway at `baseUrl`; returns the ClientResponseResult (with the HTTP status and
 * the wire feedback), or throws when the case cannot be run at all (an unknown method, a bad request message).
 * @param {any} testCase a TestCase, expanded
 * @param {{ baseUrl: string, schema: import("./_suite_cases.mjs").SuiteSchema, httpClient: any }} env
 */
export async function runCase(testCase, env) {
  const { schema } = env;
  const request = testCase.request;
  const service = schema.registry.getService(request.service);
  const method = service?.methods.find((m) => m.name === request.method);
  if (method === undefined) {
    throw new Error(
      `No method ${request.service}/${request.method} in the schema`,
    );
  }
  if (request.cancel !== undefined) {
    throw new Error("Cancellation is not supported by this runner");
  }
  const messages = request.requestMessages.map((any, index) => {
    const message = anyUnpack(any, method.input);
    if (message === undefined) {
      throw new Error(
        `Request #${index + 1} is a ${any.typeUrl}, not a ${method.input.typeName}`,
      );
    }
    return message;
  });

  const record = {};
  const enumName = (type) => (number) => schema.enumName(type, number);
  const raw = request.rawRequest;
  const replace = raw === undefined ? undefined : (original) =>
    rawHttpRequest(
      raw,
      env.baseUrl,
      original.signal,
      enumName("Compression"),
    );
  const transport = makeTransport(
    request,
    env,
    recordingClient(env.httpClient, record, replace),
  );
  const client = createClient(service, transport);

  const protocol = schema.enumName("Protocol", request.protocol);
  const headers = new Headers();
  for (const field of request.requestHeaders) {
    for (const value of field.value) headers.append(field.name, value);
  }
  headers.append("x-test-case-name", request.testName);
  // The timeout goes to the server as its header only: a client-side deadline would end the call itself and hide
  // whether the server keeps it. The runner's own give-up cancels (code canceled), which no case expects.
  if (request.timeoutMs !== undefined) {
    if (protocol === "PROTOCOL_GRPC_WEB") {
      headers.set("grpc-timeout", `${request.timeoutMs}m`);
    } else headers.set("connect-timeout-ms", String(request.timeoutMs));
  }
  const giveUp = new AbortController();
  const timer = setTimeout(
    () => giveUp.abort(new Error("The runner gave up on the call")),
    (request.timeoutMs ?? 0) + GIVE_UP_MS,
  );

  const result = create(schema.message("ClientResponseResult"));
  const Payload = schema.message("ConformancePayload");
  let responseHeaders;
  let responseTrailers;
  const options = {
    headers,
    signal: giveUp.signal,
    onHeader: (h) => responseHeaders = h,
    onTrailer: (t) => responseTrailers = t,
  };
  const delay = () => sleep(request.requestDelayMs);
  let unsent = messages.length;
  try {
    switch (method.methodKind) {
      case "unary": {
        await delay();
        unsent = 0;
        const response = await client[method.localName](
          messages[0] ?? create(method.input),
          options,
        );
        result.payloads = [response.payload ?? create(Payload)];
        break;
      }
      case "server_streaming": {
        await delay();
        unsent = 0;
        for await (
          const response of client[method.localName](
            messages[0] ?? create(method.input),
            options,
          )
        ) {
          result.payloads.push(response.payload ?? create(Payload));
        }
        break;
      }
      case "client_streaming": {
        const requests = async function* () {
          for (const message of messages) {
            await delay();
            yield message;
            unsent--;
          }
        };
        const response = await client[method.localName](requests(), options);
        result.payloads = [response.payload ?? create(Payload)];
        break;
      }
      default:
        throw new Error(`${method.methodKind} calls do not apply to HTTP/1.1`);
    }
  } catch (thrown) {
    const error = ConnectError.from(thrown, Code.Internal);
    result.error = create(schema.message("Error"), {
      code: error.code,
      message: error.rawMessage,
      details: error.details.filter((d) => "value" in d).map((d) =>
        create(schema.message("google.protobuf.Any"), {
          typeUrl: `type.googleapis.com/${d.type}`,
          value: d.value,
        })
      ),
    });
    responseTrailers = error.metadata; // a client sees an error's metadata as its trailers
    result.numUnsentRequests = unsent;
  } finally {
    clearTimeout(timer);
  }
  result.responseHeaders = headerList(responseHeaders);
  result.responseTrailers = headerList(responseTrailers);
  if (record.status !== undefined) result.httpStatusCode = record.status;
  result.feedback = examineWire(record);
  if (raw === undefined && record.method !== undefined) {
    result.feedback.push(...checkRequestShape(request, record, schema));
  }
  return result;
}

// The client did what the case's combination says (else the case would pass without testing it): GET where
// asked, and gzip on the request where the compression is gzip (and there are bytes to compress).
function checkRequestShape(request, record, schema) {
  const problems = [];
  const method = request.useGetHttpMethod ? "GET" : "POST";
  if (record.method !== method) problems.push(`the client sent ${record.method}, the case asks for ${method}`);
  const bytes = request.requestMessages.some((any) => any.value.length > 0);
  if (schema.enumName("Compression", request.compression) === "COMPRESSION_GZIP" && method === "POST" && bytes) {
    const protocol = schema.enumName("Protocol", request.protocol);
    const unary = schema.enumName("StreamType", request.streamType) === "STREAM_TYPE_UNARY";
    const header = protocol === "PROTOCOL_GRPC_WEB"
      ? "grpc-encoding"
      : unary
      ? "content-encoding"
      : "connect-content-encoding";
    const value = record.requestHeaders.get(header);
    if (value !== "gzip") problems.push(`the client did not send gzip (${header}: ${value})`);
  }
  return problems;
}

function makeTransport(request, env, httpClient) {
  const { schema } = env;
  const gzip = schema.enumName("Compression", request.compression) === "COMPRESSION_GZIP";
  const options = {
    baseUrl: env.baseUrl,
    httpClient,
    useBinaryFormat: schema.enumName("Codec", request.codec) !== "CODEC_JSON",
    interceptors: [],
    // Identity both ways, or gzip both ways and for every message (no size threshold).
    acceptCompression: gzip ? [compressionGzip] : [],
    sendCompression: gzip ? compressionGzip : null,
    jsonOptions: { registry: schema.registry },
    ...validateReadWriteMaxBytes(
      request.messageReceiveLimit || undefined,
      undefined,
      gzip ? 0 : undefined,
    ),
  };
  switch (schema.enumName("Protocol", request.protocol)) {
    case "PROTOCOL_CONNECT":
      return createConnectTransport({
        ...options,
        useHttpGet: request.useGetHttpMethod,
      });
    case "PROTOCOL_GRPC_WEB":
      return createGrpcWebTransport(options);
    default:
      throw new Error(
        `Protocol ${schema.enumName("Protocol", request.protocol)} is not one this runner speaks`,
      );
  }
}

function headerList(headers) {
  const out = [];
  headers?.forEach((value, name) => out.push({ name, value: [value] }));
  return out;
}

function sleep(ms) {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}

/** connect-node's HTTP/1.1 client, shared by every case (keep-alive connections). */
export function http1Client() {
  return createNodeHttpClient({ httpVersion: "1.1" });
}
