// Whether a case's result is what it expects, by the suite's rules: the error (code, or one of the case's other
// allowed codes; the message when the case states one; the details one by one, a RequestInfo by its meaning),
// the payloads (data exactly; in the first, the echoed headers, timeout and GET query; in each, the requests it
// describes, compared as messages), the headers and trailers (each expected name with its values, lists split
// at commas, extra names allowed; for a unary or client-stream error with no payload, headers and trailers may
// come as one bag), the HTTP status when both are known. Returns the differences, one line each.
import { protobuf, wkt } from "./_packages.mjs";

const { equals } = protobuf;
const { anyIs, anyUnpack } = wkt;

// The server may see the deadline this much later than the client set it.
const TIMEOUT_GRACE_MS = 500n;

/**
 * @param {any} testCase the expanded TestCase (its expectedResponse and otherAllowedErrorCodes)
 * @param {any} actual the ClientResponseResult the runner saw
 * @param {import("./_suite_cases.mjs").SuiteSchema} schema
 * @returns {string[]}
 */
export function assertResult(testCase, actual, schema) {
  const expected = testCase.expectedResponse;
  const errors = [];
  const codeName = (code) => schema.enumName("Code", code);
  checkError(
    expected.error,
    actual.error,
    testCase.otherAllowedErrorCodes,
    schema,
    codeName,
    errors,
  );
  checkPayloads(expected.payloads, actual.payloads, schema, errors);

  const streamType = schema.enumName("StreamType", testCase.request.streamType);
  const oneBag = expected.payloads.length === 0 &&
    expected.error !== undefined &&
    (streamType === "STREAM_TYPE_UNARY" ||
      streamType === "STREAM_TYPE_CLIENT_STREAM");
  const split = [
    ...checkHeaders(
      "response headers",
      expected.responseHeaders,
      actual.responseHeaders,
    ),
    ...checkHeaders(
      "response trailers",
      expected.responseTrailers,
      actual.responseTrailers,
    ),
  ];
  if (split.length > 0 && oneBag) {
    // A server API may hand an error's headers and trailers back as one bag: all as headers or all as trailers.
    const merged = mergeHeaders(
      expected.responseHeaders,
      expected.responseTrailers,
    );
    const asHeaders = checkHeaders(
      "response metadata",
      merged,
      actual.responseHeaders,
    );
    const asTrailers = checkHeaders(
      "response metadata",
      merged,
      actual.responseTrailers,
    );
    if (asHeaders.length > 0 && asTrailers.length > 0) errors.push(...split);
  } else {
    errors.push(...split);
  }

  if (
    expected.httpStatusCode !== undefined &&
    actual.httpStatusCode !== undefined &&
    expected.httpStatusCode !== actual.httpStatusCode
  ) {
    errors.push(
      `HTTP status: wanted ${expected.httpStatusCode}, got ${actual.httpStatusCode}`,
    );
  }
  for (const line of actual.feedback) errors.push(`wire: ${line}`);
  return errors;
}

function checkError(expected, actual, otherCodes, schema, codeName, errors) {
  if (expected === undefined && actual === undefined) return;
  if (expected === undefined) {
    errors.push(
      `unexpected error: ${codeName(actual.code)} ${JSON.stringify(actual.message ?? "")}`,
    );
    return;
  }
  if (actual === undefined) {
    errors.push(`expected an error ${codeName(expected.code)}, got none`);
    return;
  }
  if (expected.code !== actual.code && !otherCodes.includes(actual.code)) {
    const wanted = [expected.code, ...otherCodes].map(codeName).join(" or ");
    errors.push(
      `error code: wanted ${wanted}, got ${codeName(actual.code)} ${JSON.stringify(actual.message ?? "")}`,
    );
  }
  if (
    expected.message !== undefined &&
    expected.message !== (actual.message ?? "")
  ) {
    errors.push(
      `error message: wanted ${JSON.stringify(expected.message)}, got ${JSON.stringify(actual.message)}`,
    );
  }
  if (expected.details.length !== actual.details.length) {
    errors.push(
      `error details: wanted ${expected.details.length}, got ${actual.details.length}`,
    );
  }
  const RequestInfo = schema.message("ConformancePayload.RequestInfo");
  for (
    let i = 0;
    i < Math.min(expected.details.length, actual.details.length);
    i++
  ) {
    const want = expected.details[i];
    const got = actual.details[i];
    if (anyIs(want, RequestInfo) && anyIs(got, RequestInfo)) {
      const info = (any) => anyUnpack(any, RequestInfo);
      errors.push(
        ...checkRequestInfo(info(want), info(got), true, schema).map((line) => `error detail #${i + 1}: ${line}`),
      );
    } else if (!sameAny(want, got, schema)) {
      errors.push(
        `error detail #${i + 1}: wanted ${describeAny(want)}, got ${describeAny(got)}`,
      );
    }
  }
}

function checkPayloads(expected, actual, schema, errors) {
  if (expected.length !== actual.length) {
    errors.push(
      `response messages: wanted ${expected.length}, got ${actual.length}`,
    );
  }
  for (let i = 0; i < Math.min(expected.length, actual.length); i++) {
    if (hex(expected[i].data) !== hex(actual[i].data)) {
      errors.push(
        `response #${i + 1}: data ${hex(actual[i].data)}, wanted ${hex(expected[i].data)}`,
      );
    }
    errors.push(
      ...checkRequestInfo(
        expected[i].requestInfo,
        actual[i].requestInfo,
        i === 0,
        schema,
      ).map((line) => `response #${i + 1}: ${line}`),
    );
  }
}

function checkRequestInfo(expected, actual, verifyHeaders, schema) {
  const errors = [];
  if (verifyHeaders) {
    errors.push(
      ...checkHeaders(
        "request headers",
        expected?.requestHeaders ?? [],
        actual?.requestHeaders ?? [],
      ),
    );
    const want = expected?.timeoutMs;
    const got = actual?.timeoutMs;
    if (want !== undefined) {
      if (got === undefined) {
        errors.push(`the server echoed no timeout, wanted ${want} ms`);
      } else if (
        got > want ||
        got < (want > TIMEOUT_GRACE_MS ? want - TIMEOUT_GRACE_MS : 0n)
      ) {
        errors.push(
          `the server echoed a timeout of ${got} ms, wanted ${want} ms (or up to 500 ms less)`,
        );
      }
    } else if (got !== undefined) {
      errors.push(`the server echoed a timeout of ${got} ms, wanted none`);
    }
    const wantQuery = expected?.connectGetInfo?.queryParams ?? [];
    const gotQuery = actual?.connectGetInfo?.queryParams ?? [];
    if (wantQuery.length > 0 && gotQuery.length > 0) {
      errors.push(...checkHeaders("query params", wantQuery, gotQuery));
    }
  }
  const want = expected?.requests ?? [];
  const got = actual?.requests ?? [];
  if (want.length !== got.length) {
    errors.push(
      `the server described ${got.length} requests, wanted ${want.length}`,
    );
  }
  for (let i = 0; i < Math.min(want.length, got.length); i++) {
    if (!sameAny(want[i], got[i], schema)) {
      errors.push(
        `request #${i + 1} did not survive the trip: sent ${describeAny(want[i])}, the server saw ${
          describeAny(got[i])
        }`,
      );
    }
  }
  return errors;
}

// Two Anys hold equal messages (compared as messages, not as bytes: encodings may differ).
function sameAny(a, b, schema) {
  if (a.typeUrl !== b.typeUrl) return false;
  const desc = schema.registry.getMessage(
    a.typeUrl.slice(a.typeUrl.lastIndexOf("/") + 1),
  );
  if (desc === undefined) return hex(a.value) === hex(b.value);
  try {
    return equals(desc, anyUnpack(a, desc), anyUnpack(b, desc));
  } catch {
    return false;
  }
}

function describeAny(any) {
  const name = any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1);
  const bytes = hex(any.value);
  return `${name} (${any.value.length} bytes${bytes.length <= 64 ? `: ${bytes}` : ""})`;
}

function mergeHeaders(a, b) {
  const merged = new Map();
  for (const header of a) {
    merged.set(header.name.toLowerCase(), [...header.value]);
  }
  for (const header of b) {
    const name = header.name.toLowerCase();
    merged.set(name, [...merged.get(name) ?? [], ...header.value]);
  }
  return [...merged].map(([name, value]) => ({ name, value }));
}

// Each expected name among the actual ones with the same values, lists compared split at commas.
function checkHeaders(what, expected, actual) {
  const errors = [];
  const seen = new Map();
  for (const header of actual) {
    seen.set(header.name.toLowerCase(), header.value);
  }
  for (const header of expected) {
    const name = header.name.toLowerCase();
    const values = seen.get(name);
    if (values === undefined) {
      errors.push(`${what}: missing ${JSON.stringify(name)}`);
      continue;
    }
    const want = canonicalValues(header.value);
    const got = canonicalValues(values);
    if (
      want.length !== got.length || want.some((value, i) => value !== got[i])
    ) {
      errors.push(
        `${what}: ${JSON.stringify(name)} is ${JSON.stringify(got)}, wanted ${JSON.stringify(want)}`,
      );
    }
  }
  return errors;
}

// A list's values one by one: split at commas, one space either side of a comma dropped (a joiner's ", ").
function canonicalValues(values) {
  const out = [];
  for (const value of values) {
    const parts = value.split(",");
    parts.forEach((part, i) => {
      let p = part;
      if (i > 0 && p.startsWith(" ")) p = p.slice(1);
      if (i < parts.length - 1 && p.endsWith(" ")) p = p.slice(0, -1);
      out.push(p);
    });
  }
  return out;
}

function hex(bytes) {
  return Array.from(bytes ?? [], (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
}
