// The suite's cases as the conformance suite expands them for one server: each YAML file read as a TestSuite,
// each case once per combination of protocol, codec and compression that both the suite and our server apply
// to (named as the suite names them), request data padded to the receive limit where asked, and the expected
// result derived from the response definition where the case gives none.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { protobuf, wkt, yaml } from "./_packages.mjs";

const { clone, create, fromJson, toBinary } = protobuf;
const { anyPack, anyUnpack } = wkt;

const PKG = "connectrpc.conformance.v1";

/**
 * What our server speaks (the suite's "features"): HTTP/1.1 without TLS, Connect and gRPC-Web, proto and JSON,
 * identity and gzip; unary, client and server streams (no bidirectional stream on HTTP/1.1); Connect's GET; a
 * receive limit.
 */
export const SERVER_FEATURES = Object.freeze({
  httpVersions: ["HTTP_VERSION_1"],
  protocols: ["PROTOCOL_CONNECT", "PROTOCOL_GRPC_WEB"],
  codecs: ["CODEC_PROTO", "CODEC_JSON"],
  compressions: ["COMPRESSION_IDENTITY", "COMPRESSION_GZIP"],
  streamTypes: [
    "STREAM_TYPE_UNARY",
    "STREAM_TYPE_CLIENT_STREAM",
    "STREAM_TYPE_SERVER_STREAM",
  ],
  tls: false,
  connectGet: true,
  messageReceiveLimit: true,
});

/** The suite's schema: message and enum descriptors by short name, from the registry built of our .proto files. */
export class SuiteSchema {
  /** @param {any} registry a FileRegistry of @bufbuild/protobuf */
  constructor(registry) {
    this.registry = registry;
  }

  /** @param {string} name a message of the package (`Foo`, `Foo.Bar`), or a `google.` one by its full name */
  message(name) {
    const found = this.registry.getMessage(
      name.startsWith("google.") ? name : `${PKG}.${name}`,
    );
    if (found === undefined) {
      throw new TypeError(`No message ${name} in the conformance schema`);
    }
    return found;
  }

  /** The number of enum `type`'s value `name`. */
  enumNumber(type, name) {
    const value = this.registry.getEnum(`${PKG}.${type}`)?.values.find((v) => v.name === name);
    if (value === undefined) {
      throw new TypeError(`No value ${name} in enum ${type}`);
    }
    return value.number;
  }

  /** The name of enum `type`'s value `number` (the number itself when it has none). */
  enumName(type, number) {
    return this.registry.getEnum(`${PKG}.${type}`)?.values.find((v) => v.number === number)?.name ?? String(number);
  }

  /** Every value of enum `type` but the zero one, by number. */
  enumNumbers(type) {
    return this.registry.getEnum(`${PKG}.${type}`).values.map((v) => v.number)
      .filter((n) => n !== 0).sort((a, b) => a - b);
  }
}

/**
 * Every `*.yaml` file of `dir` as a TestSuite message, in file-name order.
 * @param {string} dir
 * @param {SuiteSchema} schema
 * @returns {{ file: string, suite: any }[]}
 */
export function loadSuites(dir, schema) {
  const files = readdirSync(dir).filter((name) => /\.ya?ml$/.test(name)).sort();
  if (files.length === 0) throw new Error(`No suite (*.yaml) in ${dir}`);
  const names = new Map();
  return files.map((file) => {
    const path = join(dir, file);
    let suite;
    try {
      suite = fromJson(
        schema.message("TestSuite"),
        yaml.parse(readFileSync(path, "utf8")),
        { registry: schema.registry },
      );
    } catch (error) {
      throw new Error(`${path} is not a test suite: ${error.message}`);
    }
    if (suite.name === "") throw new Error(`${path} names no suite`);
    if (names.has(suite.name)) {
      throw new Error(
        `${path} and ${names.get(suite.name)} both define ${suite.name}`,
      );
    }
    names.set(suite.name, path);
    return { file, suite };
  });
}

/**
 * The cases of `suite` that apply to our server, expanded: one per combination of HTTP version, protocol, codec
 * and compression of the suite's (all, where it names none) that the server speaks, for each case whose stream
 * type it serves. Each has its full name (the suite's prefix scheme, then the case's name), its request filled in
 * (protocol, codec, compression, method, receive limit, padded data) and its expected result.
 * @param {any} suite a TestSuite
 * @param {SuiteSchema} schema
 * @param {{ receiveLimit: number }} options
 * @returns {{ name: string, suite: string, testCase: any }[]}
 */
export function expandSuite(suite, schema, options) {
  const mode = schema.enumName("TestSuite.TestMode", suite.mode);
  if (mode === "TEST_MODE_CLIENT") return [];
  // A suite that needs the server to require, or to ignore, Connect's version header: ours does neither (it checks
  // the header when sent), so such suites do not apply.
  if (suite.connectVersionMode !== 0) return [];
  if (suite.reliesOnTls || suite.reliesOnTlsClientCerts) return [];
  const wanted = (type, relevant) => relevant.length > 0 ? relevant : schema.enumNumbers(type);
  const served = (type, names) => new Set(names.map((name) => schema.enumNumber(type, name)));
  const versions = served("HTTPVersion", SERVER_FEATURES.httpVersions);
  const protocols = served("Protocol", SERVER_FEATURES.protocols);
  const codecs = served("Codec", SERVER_FEATURES.codecs);
  const compressions = served("Compression", SERVER_FEATURES.compressions);
  const streamTypes = served("StreamType", SERVER_FEATURES.streamTypes);
  const connect = schema.enumNumber("Protocol", "PROTOCOL_CONNECT");

  const out = [];
  for (const protocol of wanted("Protocol", suite.relevantProtocols)) {
    if (!protocols.has(protocol)) continue;
    if (suite.reliesOnConnectGet && protocol !== connect) continue;
    for (const version of wanted("HTTPVersion", suite.relevantHttpVersions)) {
      if (!versions.has(version)) continue;
      for (const codec of wanted("Codec", suite.relevantCodecs)) {
        if (!codecs.has(codec)) continue;
        for (
          const compression of wanted("Compression", suite.relevantCompressions)
        ) {
          if (!compressions.has(compression)) continue;
          const prefix = namePrefix(suite, schema, {
            version,
            protocol,
            codec,
            compression,
          });
          for (const testCase of suite.testCases) {
            const request = testCase.request;
            if (request === undefined || request.testName === "") {
              throw new Error(`${suite.name}: a case has no name`);
            }
            if (!streamTypes.has(request.streamType)) continue;
            const expanded = clone(schema.message("TestCase"), testCase);
            const name = [...prefix, request.testName].join("/");
            fillRequest(expanded.request, schema, {
              name,
              version,
              protocol,
              codec,
              compression,
            });
            padRequests(expanded, schema, options.receiveLimit);
            deriveExpected(expanded, schema);
            out.push({ name, suite: suite.name, testCase: expanded });
          }
        }
      }
    }
  }
  return out;
}

// The suite's name, then each property the suite does not fix to one value, then TLS (never relied on here).
function namePrefix(suite, schema, { version, protocol, codec, compression }) {
  const parts = [suite.name];
  if (suite.relevantHttpVersions.length !== 1) {
    parts.push(`HTTPVersion:${version}`);
  }
  if (suite.relevantProtocols.length !== 1) {
    parts.push(`Protocol:${schema.enumName("Protocol", protocol)}`);
  }
  if (suite.relevantCodecs.length !== 1) {
    parts.push(`Codec:${schema.enumName("Codec", codec)}`);
  }
  if (suite.relevantCompressions.length !== 1) {
    parts.push(`Compression:${schema.enumName("Compression", compression)}`);
  }
  parts.push("TLS:false");
  return parts;
}

function fillRequest(
  request,
  schema,
  { name, version, protocol, codec, compression },
) {
  request.testName = name;
  request.httpVersion = version;
  request.protocol = protocol;
  request.codec = codec;
  request.compression = compression;
  request.messageReceiveLimit = 1024 * 1024; // the client's: larger than the server's, for the echoed data
  if (request.service === undefined) {
    if (request.method !== undefined) {
      throw new Error(`${name}: a method without a service`);
    }
    request.service = `${PKG}.ConformanceService`;
    const methods = {
      STREAM_TYPE_UNARY: "Unary",
      STREAM_TYPE_CLIENT_STREAM: "ClientStream",
      STREAM_TYPE_SERVER_STREAM: "ServerStream",
      STREAM_TYPE_HALF_DUPLEX_BIDI_STREAM: "BidiStream",
      STREAM_TYPE_FULL_DUPLEX_BIDI_STREAM: "BidiStream",
    };
    request.method = methods[schema.enumName("StreamType", request.streamType)];
  } else if (request.method === undefined) {
    throw new Error(`${name}: a service without a method`);
  }
}

/**
 * Pad each request message whose `expandRequests` entry says so: its `request_data` grows (or shrinks) until the
 * serialized message is the server's receive limit plus the entry's size.
 */
function padRequests(testCase, schema, receiveLimit) {
  const sizes = testCase.expandRequests;
  const messages = testCase.request.requestMessages;
  if (sizes.length > messages.length) {
    throw new Error(
      `${testCase.request.testName}: ${sizes.length} sizes for ${messages.length} requests`,
    );
  }
  sizes.forEach((size, index) => {
    if (size.sizeRelativeToLimit === undefined) return;
    const target = receiveLimit + size.sizeRelativeToLimit;
    const any = messages[index];
    const desc = schema.registry.getMessage(
      any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1),
    );
    if (desc?.fields.find((f) => f.localName === "requestData") === undefined) {
      throw new Error(
        `${testCase.request.testName}: request #${index + 1} has no request_data to pad`,
      );
    }
    const message = anyUnpack(any, desc);
    for (let tries = 0;; tries++) {
      const delta = target - toBinary(desc, message).length;
      if (delta === 0) break;
      if (tries >= 2) {
        throw new Error(
          `${testCase.request.testName}: request #${index + 1} cannot be ${target} bytes`,
        );
      }
      const data = message.requestData;
      const padded = new Uint8Array(Math.max(0, data.length + delta));
      padded.set(data.subarray(0, padded.length));
      message.requestData = padded;
    }
    messages[index] = anyPack(desc, message);
  });
}

/**
 * The expected result where the case gives none, by the suite's rules: the server echoes the response
 * definition's headers, data and trailers (or its error), and describes what it received in a RequestInfo —
 * the request headers, the timeout, every request message — in the first (or only) response, or, for an error
 * with no response before it, as the error's last detail.
 */
function deriveExpected(testCase, schema) {
  if (testCase.expectedResponse !== undefined) return;
  const request = testCase.request;
  const streamType = schema.enumName("StreamType", request.streamType);
  const result = create(schema.message("ClientResponseResult"));
  testCase.expectedResponse = result;
  const info = () =>
    create(schema.message("ConformancePayload.RequestInfo"), {
      requestHeaders: request.requestHeaders,
      timeoutMs: request.timeoutMs === undefined ? undefined : BigInt(request.timeoutMs),
      requests: request.requestMessages,
    });
  const first = request.requestMessages[0];
  const definition = first === undefined ? undefined : anyUnpack(first, schema.registry)?.responseDefinition;
  const Payload = schema.message("ConformancePayload");

  if (
    streamType === "STREAM_TYPE_UNARY" ||
    streamType === "STREAM_TYPE_CLIENT_STREAM"
  ) {
    const requestInfo = info();
    if (request.useGetHttpMethod) {
      const encoding = schema.enumName("Codec", request.codec) === "CODEC_JSON" ? "json" : "proto";
      requestInfo.connectGetInfo = create(
        schema.message("ConformancePayload.ConnectGetInfo"),
        {
          queryParams: [{ name: "encoding", value: [encoding] }, {
            name: "connect",
            value: ["v1"],
          }],
        },
      );
    }
    if (definition === undefined) {
      result.payloads = [create(Payload, { requestInfo })];
      return;
    }
    result.responseHeaders = definition.responseHeaders;
    result.responseTrailers = definition.responseTrailers;
    if (definition.response.case === "error") {
      result.error = definition.response.value;
      result.error.details.push(
        anyPack(schema.message("ConformancePayload.RequestInfo"), requestInfo),
      );
    } else {
      const data = definition.response.case === "responseData" ? definition.response.value : new Uint8Array(0);
      result.payloads = [create(Payload, { data, requestInfo })];
    }
    return;
  }

  if (definition === undefined) return; // a stream with no definition: nothing, no error
  result.responseHeaders = definition.responseHeaders;
  result.responseTrailers = definition.responseTrailers;
  result.error = definition.error;
  if (definition.responseData.length === 0 && result.error !== undefined) {
    result.error.details.push(
      anyPack(schema.message("ConformancePayload.RequestInfo"), info()),
    );
  }
  result.payloads = definition.responseData.map((data, index) => {
    const payload = create(Payload, { data });
    if (streamType === "STREAM_TYPE_FULL_DUPLEX_BIDI_STREAM") {
      payload.requestInfo = create(
        schema.message("ConformancePayload.RequestInfo"),
        {
          requests: [request.requestMessages[index]],
        },
      );
      if (index === 0) {
        payload.requestInfo.requestHeaders = request.requestHeaders;
        payload.requestInfo.timeoutMs = request.timeoutMs === undefined ? undefined : BigInt(request.timeoutMs);
      }
    } else if (index === 0) {
      payload.requestInfo = info();
    }
    return payload;
  });
}
