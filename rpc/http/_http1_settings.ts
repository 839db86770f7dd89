/**
 * The limits and deadlines of an HTTP/1.1 connection: the options users pass, and the checked values with every
 * default filled in that the connection and its parser read.
 *
 * @module
 */

/**
 * Options of an HTTP/1.1 connection (and of `Http1Server`, which passes them to each). Every limit has a default
 * safe for a port open to the internet.
 *
 * @example
 * ```ts
 * import type { Http1ConnectionOptions } from "./_http1_settings.ts";
 *
 * const strict: Http1ConnectionOptions = { maxHeaderBytes: 16 * 1024, headerTimeoutMs: 5_000, maxBodyBytes: 4 << 20 };
 * ```
 */
export interface Http1ConnectionOptions {
  /** Longest request line in bytes; longer is refused 414. @default {8_192} */
  maxRequestLineBytes?: number;
  /** Longest request head (request line and header fields) in bytes; longer is refused 431. @default {65_536} */
  maxHeaderBytes?: number;
  /** Most header fields in a head (and in a trailer section); more is refused 431. @default {100} */
  maxHeaders?: number;
  /** Longest trailer section of a chunked body in bytes; longer is refused 431. @default {16_384} */
  maxTrailerBytes?: number;
  /** Largest request body in bytes, declared or chunked; larger is refused 413. @default {Number.MAX_SAFE_INTEGER} */
  maxBodyBytes?: number;
  /**
   * Milliseconds a client has to send a whole request head, from the connection's start for the first request and
   * from its first byte for later ones; then it is answered 408 and closed (a slowloris).
   * @default {10_000}
   */
  headerTimeoutMs?: number;
  /** Milliseconds a keep-alive connection may wait for its next request before it is closed. @default {5_000} */
  idleTimeoutMs?: number;
  /**
   * The window, in milliseconds, over which a body that the server is waiting for must come at
   * `minBodyBytesPerSecond` (at least one byte); slower is answered 408 and closed. Time the server spends not
   * reading (its handler is behind) does not count.
   * @default {10_000}
   */
  bodyTimeoutMs?: number;
  /** The slowest body the server waits for, in bytes per second, averaged over `bodyTimeoutMs`. @default {256} */
  minBodyBytesPerSecond?: number;
  /**
   * Body bytes read ahead of the handler; past this the connection stops reading the socket until the handler
   * reads on.
   * @default {65_536}
   */
  maxBufferedBodyBytes?: number;
  /**
   * Unread body bytes the server discards after a response to keep the connection; a response that leaves more
   * (or an unknown amount: chunked) unread closes it.
   * @default {65_536}
   */
  maxDrainBytes?: number;
  /** Unsent response bytes above which `write` and `end` wait for the output to drain. @default {262_144} */
  highWaterMarkBytes?: number;
  /**
   * Milliseconds the output may stay above the high-water mark without draining (a client that does not read)
   * before the connection is closed.
   * @default {30_000}
   */
  sendTimeoutMs?: number;
  /** Requests served on one connection; the last is answered with `Connection: close`. @default {Number.MAX_SAFE_INTEGER} */
  maxRequestsPerConnection?: number;
  /** Methods served; any other is refused 405 with an Allow field. @default {["GET", "HEAD", "POST", "OPTIONS"]} */
  allowedMethods?: readonly string[];
}

/** {@linkcode Http1ConnectionOptions} checked, every default filled in. */
export type Http1Settings = Readonly<Required<Http1ConnectionOptions>> & { readonly allowHeader: string };

const DEFAULTS: Required<Omit<Http1ConnectionOptions, "allowedMethods">> = {
  maxRequestLineBytes: 8_192,
  maxHeaderBytes: 65_536,
  maxHeaders: 100,
  maxTrailerBytes: 16_384,
  maxBodyBytes: Number.MAX_SAFE_INTEGER,
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 5_000,
  bodyTimeoutMs: 10_000,
  minBodyBytesPerSecond: 256,
  maxBufferedBodyBytes: 65_536,
  maxDrainBytes: 65_536,
  highWaterMarkBytes: 262_144,
  sendTimeoutMs: 30_000,
  maxRequestsPerConnection: Number.MAX_SAFE_INTEGER,
};

const DEFAULT_METHODS: readonly string[] = ["GET", "HEAD", "POST", "OPTIONS"];
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Check `options` and fill in the defaults; a RangeError or TypeError naming the bad one (`who` says what was being
 * created).
 */
export function resolveHttp1Settings(options: Http1ConnectionOptions, who: string): Http1Settings {
  const settings: Record<string, unknown> = {};
  for (const [name, fallback] of Object.entries(DEFAULTS)) {
    const value = (options as Record<string, unknown>)[name] ?? fallback;
    const least = name === "minBodyBytesPerSecond" ? 0 : 1;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < least) {
      throw new RangeError(
        `Cannot create ${who} as '${name}' must be an integer >= ${least}: current value is ${String(value)}`,
      );
    }
    settings[name] = value;
  }
  const methods = options.allowedMethods ?? DEFAULT_METHODS;
  if (
    !Array.isArray(methods) || methods.length === 0 || !methods.every((m) => typeof m === "string" && TOKEN.test(m))
  ) {
    throw new TypeError(
      `Cannot create ${who} as 'allowedMethods' must be a non-empty list of method names: current value is ${
        JSON.stringify(methods)
      }`,
    );
  }
  settings.allowedMethods = Object.freeze([...methods]);
  settings.allowHeader = methods.join(", ");
  return Object.freeze(settings) as unknown as Http1Settings;
}
