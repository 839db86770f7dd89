/**
 * Cross-origin calls from browsers (CORS, with the header lists connect-es and connectrpc.com document): a
 * preflight `OPTIONS` from an allowed origin is answered 204 with the methods (`POST, GET`), the request headers
 * the protocols use plus any the browser asks for, and how long to cache it; every other response to an allowed
 * origin says so and exposes gRPC-Web's status headers (and the headers the options add) to the page.
 *
 * @module
 */

import type { Http1Request } from "./http1_connection.ts";
import type { Http1ResponseWriter } from "./http1_response_writer.ts";
import type { HttpHeaders } from "./http_headers.ts";

/**
 * Which origins may call the gateway from a browser, and what their pages may read.
 *
 * @example
 * ```ts
 * import type { GatewayCorsOptions } from "./gateway_cors.ts";
 *
 * const cors: GatewayCorsOptions = { allowedOrigins: ["https://app.example"], exposedHeaders: ["x-request-id"] };
 * ```
 */
export interface GatewayCorsOptions {
  /** Origins allowed (`https://app.example`, scheme, host and port as the browser sends them), or `"*"` for any. */
  allowedOrigins: readonly string[] | "*";
  /**
   * Response headers a page may read besides `Grpc-Status`, `Grpc-Message` and `Grpc-Status-Details-Bin` (your
   * handlers' response metadata, say).
   * @default {[]}
   */
  exposedHeaders?: readonly string[];
  /**
   * How long a browser may reuse a preflight's answer, in milliseconds (sent in whole seconds).
   * @default {7_200_000}
   */
  maxAgeMs?: number;
}

/** The methods a browser may call with (Connect's GET included). */
export const CORS_ALLOWED_METHODS: readonly string[] = ["POST", "GET"];
/** The request headers of Connect and gRPC-Web, allowed in every preflight. */
export const CORS_ALLOWED_HEADERS: readonly string[] = [
  "Content-Type",
  "Connect-Protocol-Version",
  "Connect-Timeout-Ms",
  "Grpc-Timeout",
  "X-Grpc-Web",
  "X-User-Agent",
];
/** The response headers a page needs to read gRPC-Web's status, exposed on every response. */
export const CORS_EXPOSED_HEADERS: readonly string[] = ["Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin"];

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const DEFAULT_MAX_AGE_MS = 7_200_000;

/**
 * The CORS rules of one gateway. A TypeError or RangeError for bad options.
 *
 * @example
 * ```ts
 * import { GatewayCors } from "./gateway_cors.ts";
 * import assert from "node:assert/strict";
 *
 * const cors = new GatewayCors({ allowedOrigins: ["https://app.example"] });
 * assert.ok(cors.allows("https://app.example"));
 * assert.ok(!cors.allows("https://evil.example"));
 * ```
 */
export class GatewayCors {
  readonly #origins: ReadonlySet<string> | "*";
  readonly #exposed: string;
  readonly #maxAge: string;

  /** Check `options`. */
  constructor(options: GatewayCorsOptions) {
    const origins = options.allowedOrigins;
    if (origins !== "*" && (!Array.isArray(origins) || !origins.every((origin) => typeof origin === "string"))) {
      throw new TypeError(
        `Cannot set up CORS as 'allowedOrigins' must be "*" or a list of origins: current value is ${
          JSON.stringify(origins)
        }`,
      );
    }
    const exposed = options.exposedHeaders ?? [];
    const bad = exposed.find((name) => typeof name !== "string" || !TOKEN.test(name));
    if (bad !== undefined) {
      throw new TypeError(`Cannot set up CORS as 'exposedHeaders' must be header names: current value has ${bad}`);
    }
    const maxAgeMs = options.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
    if (!Number.isSafeInteger(maxAgeMs) || maxAgeMs < 0) {
      throw new RangeError(`Cannot set up CORS as 'maxAgeMs' must be an integer >= 0: current value is ${maxAgeMs}`);
    }
    this.#origins = origins === "*" ? "*" : new Set(origins.map((origin) => origin.replace(/\/$/, "")));
    this.#exposed = [...CORS_EXPOSED_HEADERS, ...exposed].join(", ");
    this.#maxAge = String(Math.floor(maxAgeMs / 1000));
  }

  /** Whether pages of `origin` may call. */
  allows(origin: string): boolean {
    return this.#origins === "*" || this.#origins.has(origin);
  }

  /** Whether `request` is a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`). */
  isPreflight(request: Http1Request): boolean {
    return request.method === "OPTIONS" && request.headers.has("origin") &&
      request.headers.has("access-control-request-method");
  }

  /**
   * Answer a preflight: 204 with the permissions for an allowed origin, 403 (and none) for another; the browser
   * then refuses the call.
   */
  async preflight(request: Http1Request, response: Http1ResponseWriter): Promise<void> {
    const origin = request.headers.get("origin") ?? "";
    const headers = response.headers;
    headers.set("vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
    if (!this.allows(origin)) {
      response.writeHead(403);
      headers.set("content-type", "text/plain; charset=utf-8");
      await response.end(`Origin ${origin.replace(/[^\x21-\x7e]/g, "?")} may not call this server\n`);
      return;
    }
    headers.set("access-control-allow-origin", this.#origins === "*" ? "*" : origin);
    headers.set("access-control-allow-methods", CORS_ALLOWED_METHODS.join(", "));
    const asked = (request.headers.get("access-control-request-headers") ?? "")
      .split(",").map((name) => name.trim()).filter((name) => TOKEN.test(name));
    const allowed = [...CORS_ALLOWED_HEADERS];
    for (const name of asked) {
      if (!allowed.some((known) => known.toLowerCase() === name.toLowerCase())) allowed.push(name);
    }
    headers.set("access-control-allow-headers", allowed.join(", "));
    headers.set("access-control-max-age", this.#maxAge);
    response.writeHead(204);
    await response.end();
  }

  /** Mark a response to an allowed `origin` as readable by its page (a response to another stays unmarked). */
  decorate(origin: string, headers: HttpHeaders): void {
    headers.append("vary", "Origin");
    if (!this.allows(origin)) return;
    headers.set("access-control-allow-origin", this.#origins === "*" ? "*" : origin);
    headers.set("access-control-expose-headers", this.#exposed);
  }
}
