// What the runner checks on the wire beyond what the client reports, in the spirit of the suite's reference
// client: a response's bytes as they came (the HTTP client is wrapped to keep them), then the shape of what a
// client library would quietly accept or repair — the Connect error JSON and end-of-stream message (keys, code
// names, details as unpadded base64), gRPC-Web's trailers frame (CRLF lines, lower-case names, a valid
// grpc-status), no HTTP trailers outside gRPC. Each problem is one line of feedback; any fails the case.
import { Buffer } from "node:buffer";
import zlib from "node:zlib";

const CODE_NAMES = new Set([
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
]);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Wrap connect's HTTP client `inner` so the request's method and headers and the response's status, headers, body
 * bytes and trailers land in `record`; with `replace`, the request sent is `replace(request)` instead (its own
 * body drained unsent).
 */
export function recordingClient(inner, record, replace) {
  return async (request) => {
    let sent = request;
    if (replace !== undefined) {
      sent = replace(request);
      if (request.body !== undefined) void drain(request.body);
    }
    record.method = sent.method;
    record.requestHeaders = sent.header;
    const response = await inner(sent);
    record.status = response.status;
    record.headers = response.header;
    record.chunks = [];
    record.response = response;
    return {
      status: response.status,
      header: response.header,
      trailer: response.trailer,
      body: keep(response.body, record.chunks),
    };
  };
}

async function drain(body) {
  try {
    for await (const _ of body) { /* the raw request is sent instead */ }
  } catch { /* the call ended */ }
}

async function* keep(body, chunks) {
  for await (const chunk of body) {
    chunks.push(chunk);
    yield chunk;
  }
}

/** Problems with the recorded response, one line each (none when nothing was recorded). */
export function examineWire(record) {
  if (record.status === undefined) return [];
  const feedback = [];
  const say = (line) => feedback.push(line);
  const type = record.headers.get("content-type") ?? "";
  const body = new Uint8Array(Buffer.concat(record.chunks));
  try {
    if (type === "application/json" && record.status !== 200) {
      examineConnectError(
        parseJson(
          decode(body, record.headers.get("content-encoding")),
          "connect error JSON",
        ),
        say,
      );
    } else if (type.startsWith("application/connect+")) {
      const end = envelopes(body, say).find((e) => (e.flags & 0x02) !== 0);
      if (end === undefined) {
        if (record.status === 200) {
          say("connect stream ends without its end-of-stream message");
        }
      } else {
        const data = (end.flags & 0x01) !== 0
          ? decode(end.data, record.headers.get("connect-content-encoding"))
          : end.data;
        examineEndStream(parseJson(data, "connect end stream JSON"), say);
      }
    } else if (type.startsWith("application/grpc-web")) {
      const bytes = type.startsWith("application/grpc-web-text")
        ? Buffer.from(Buffer.from(body).toString(), "base64")
        : body;
      const end = envelopes(new Uint8Array(bytes), say).find((e) => (e.flags & 0x80) !== 0);
      if (end !== undefined) {
        const data = (end.flags & 0x01) !== 0 ? decode(end.data, record.headers.get("grpc-encoding")) : end.data;
        checkGrpcStatus(
          examineGrpcWebTrailers(Buffer.from(data).toString("latin1"), say),
          say,
        );
      } else if (body.length === 0 && record.headers.has("grpc-status")) {
        checkGrpcStatus(
          new Map([...record.headers].map(([k, v]) => [k, [v]])),
          say,
        );
      } else if (record.status === 200) {
        say(
          "grpc-web response has neither a trailers frame nor a trailers-only status",
        );
      }
    }
  } catch (error) {
    say(error.message);
  }
  let trailers = 0;
  record.response?.trailer.forEach(() => trailers++);
  if (trailers > 0 && !/^application\/grpc(\+|$)/.test(type)) {
    say(`response has ${trailers} HTTP trailers but should have none`);
  }
  return feedback;
}

function decode(data, encoding) {
  if (
    encoding === undefined || encoding === null || encoding === "" ||
    encoding === "identity"
  ) return data;
  if (encoding === "gzip") return new Uint8Array(zlib.gunzipSync(data));
  throw new Error(
    `response compressed with ${encoding}, which the runner cannot read`,
  );
}

function parseJson(bytes, what) {
  const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`${what}: ${error.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`${what}: not an object`);
  }
  return value;
}

function envelopes(body, say) {
  const out = [];
  for (let at = 0; at < body.length;) {
    if (body.length - at < 5) {
      say(`response body ends inside an envelope header at byte ${at}`);
      break;
    }
    const length = new DataView(body.buffer, body.byteOffset + at + 1, 4)
      .getUint32(0);
    if (at + 5 + length > body.length) {
      say(
        `response body ends inside an envelope of ${length} bytes at byte ${at}`,
      );
      break;
    }
    out.push({ flags: body[at], data: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return out;
}

function examineConnectError(json, say) {
  for (const [key, value] of Object.entries(json)) {
    switch (key) {
      case "code":
        if (typeof value !== "string") {
          say(`connect error JSON: "code" is a ${typeof value}, not a string`);
        } else if (!CODE_NAMES.has(value)) {
          say(
            `connect error JSON: "code" is not a code's name: ${JSON.stringify(value)}`,
          );
        }
        break;
      case "message":
        if (typeof value !== "string") {
          say(
            `connect error JSON: "message" is a ${typeof value}, not a string`,
          );
        }
        break;
      case "details":
        if (!Array.isArray(value)) {
          say(`connect error JSON: "details" is not an array`);
        } else value.forEach((detail, index) => examineDetail(detail, index, say));
        break;
      default:
        say(`connect error JSON: invalid key ${JSON.stringify(key)}`);
    }
  }
  if (!("code" in json)) say(`connect error JSON: missing required key "code"`);
}

function examineDetail(detail, index, say) {
  const prefix = `connect error JSON: details[${index}]`;
  if (detail === null || typeof detail !== "object") {
    return say(`${prefix}: not an object`);
  }
  for (const [key, value] of Object.entries(detail)) {
    if (key === "type") {
      if (
        typeof value !== "string" ||
        !/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(value)
      ) {
        say(
          `${prefix}: "type" is not a message name: ${JSON.stringify(value)}`,
        );
      }
    } else if (key === "value") {
      if (
        typeof value !== "string" || !/^[A-Za-z0-9+/]*$/.test(value) ||
        value.length % 4 === 1
      ) {
        say(
          `${prefix}: "value" is not unpadded standard base64: ${JSON.stringify(value)}`,
        );
      }
    } else if (key !== "debug") {
      say(`${prefix}: invalid key ${JSON.stringify(key)}`);
    }
  }
  if (!("type" in detail)) say(`${prefix}: missing required key "type"`);
  if (!("value" in detail)) say(`${prefix}: missing required key "value"`);
}

function examineEndStream(json, say) {
  for (const [key, value] of Object.entries(json)) {
    if (key === "error") {
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        say(`connect end stream JSON: "error" is not an object`);
      } else examineConnectError(value, say);
    } else if (key === "metadata") {
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        say(`connect end stream JSON: "metadata" is not an object`);
        continue;
      }
      for (const [name, values] of Object.entries(value)) {
        if (!TOKEN.test(name)) {
          say(
            `connect end stream JSON: metadata[${JSON.stringify(name)}] is not a field name`,
          );
        }
        if (
          !Array.isArray(values) ||
          values.some((v) => typeof v !== "string" || !FIELD_VALUE.test(v))
        ) {
          say(
            `connect end stream JSON: metadata[${JSON.stringify(name)}] is not an array of field values`,
          );
        }
      }
    } else {
      say(`connect end stream JSON: invalid key ${JSON.stringify(key)}`);
    }
  }
}

// gRPC-Web's trailers frame: `name: value` lines, each ending in CRLF, names lower-case.
function examineGrpcWebTrailers(text, say) {
  const fields = new Map();
  if (!text.endsWith("\r\n")) {
    say("grpc-web trailers should end with CRLF but do not");
  }
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  for (const raw of lines) {
    if (!raw.endsWith("\r")) {
      say("grpc-web trailers have a line ending in LF, not CRLF");
    }
    const line = raw.replace(/\r$/, "");
    if (line === "") {
      say("grpc-web trailers include a blank line");
      continue;
    }
    const colon = line.indexOf(":");
    if (colon < 0) {
      say(
        `grpc-web trailers include a field without a colon: ${JSON.stringify(line)}`,
      );
      continue;
    }
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    if (!TOKEN.test(name)) {
      say(
        `grpc-web trailers include an invalid field name: ${JSON.stringify(name)}`,
      );
    }
    if (name !== name.toLowerCase()) {
      say(
        `grpc-web trailers include a non-lower-case name: ${JSON.stringify(name)}`,
      );
    }
    if (!FIELD_VALUE.test(value)) {
      say(
        `grpc-web trailers include an invalid value: ${JSON.stringify(line)}`,
      );
    }
    const key = name.toLowerCase();
    fields.set(key, [...fields.get(key) ?? [], value]);
  }
  return fields;
}

function checkGrpcStatus(fields, say) {
  const status = fields.get("grpc-status");
  if (status === undefined) {
    return say("grpc-web status missing: no grpc-status");
  }
  if (
    status.length !== 1 || !/^(0|[1-9][0-9]?)$/.test(status[0]) ||
    Number(status[0]) > 16
  ) {
    say(`grpc-status is not one code: ${JSON.stringify(status)}`);
  }
  const message = fields.get("grpc-message");
  if (message !== undefined) {
    try {
      decodeURIComponent(message.join(""));
    } catch {
      say(
        `grpc-message is not percent-encoded UTF-8: ${JSON.stringify(message)}`,
      );
    }
  }
}
