/**
 * The registry's one error class, with ZooKeeper's error codes and numbering, so users of ZooKeeper read them
 * at sight and the ZooKeeper adapter maps codes one to one.
 *
 * @module
 */

/**
 * Error codes, numbered as ZooKeeper numbers them, plus this registry's own from -1001 down (LIMIT_EXCEEDED,
 * CLOSED, STORAGE_FAILED).
 *
 * @example
 * ```ts
 * import { RegistryError, RegistryErrorCode } from "./registry_error.ts";
 *
 * const createdOrExisted = (error: unknown) =>
 *   error instanceof RegistryError && error.code === RegistryErrorCode.NODE_EXISTS;
 * ```
 */
export const RegistryErrorCode = {
  OK: 0,
  SYSTEM_ERROR: -1,
  RUNTIME_INCONSISTENCY: -2,
  DATA_INCONSISTENCY: -3,
  CONNECTION_LOSS: -4,
  MARSHALLING_ERROR: -5,
  UNIMPLEMENTED: -6,
  OPERATION_TIMEOUT: -7,
  BAD_ARGUMENTS: -8,
  API_ERROR: -100,
  NO_NODE: -101,
  NO_AUTH: -102,
  BAD_VERSION: -103,
  NO_CHILDREN_FOR_EPHEMERALS: -108,
  NODE_EXISTS: -110,
  NOT_EMPTY: -111,
  SESSION_EXPIRED: -112,
  INVALID_CALLBACK: -113,
  INVALID_ACL: -114,
  AUTH_FAILED: -115,
  SESSION_MOVED: -118,
  /** A change sent to a server that is read-only (its log cannot be written or repaired); reads still work. */
  NOT_READ_ONLY: -119,
  /** Not in ZooKeeper: a configured limit (connections per IP, frame size, ...) was hit. */
  LIMIT_EXCEEDED: -1001,
  /** Not in ZooKeeper: the client was closed by the application. */
  CLOSED: -1002,
  /**
   * Not in ZooKeeper: the change could not be made durable (disk full, I/O error). Nothing changed; the same
   * request may succeed once the disk does.
   */
  STORAGE_FAILED: -1003,
} as const;

/** One of the {@linkcode RegistryErrorCode} numbers. */
export type RegistryErrorCode = typeof RegistryErrorCode[keyof typeof RegistryErrorCode];

const CODE_NAMES = new Map<number, string>(Object.entries(RegistryErrorCode).map(([name, code]) => [code, name]));

/**
 * The name of a code (`NO_NODE`), or `UNKNOWN(n)`.
 *
 * @example
 * ```ts
 * import { registryErrorCodeName } from "./registry_error.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(registryErrorCodeName(-101), "NO_NODE");
 * assert.equal(registryErrorCodeName(7), "UNKNOWN(7)");
 * ```
 */
export function registryErrorCodeName(code: number): string {
  return CODE_NAMES.get(code) ?? `UNKNOWN(${code})`;
}

/**
 * A registry failure with a ZooKeeper-like code.
 *
 * @example
 * ```ts
 * import { RegistryError, RegistryErrorCode } from "./registry_error.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new RegistryError(RegistryErrorCode.NO_NODE, "Cannot get '/a' as it does not exist");
 * assert.equal(error.codeName, "NO_NODE");
 * assert.equal(RegistryError.from(new Error("boom")).code, RegistryErrorCode.SYSTEM_ERROR);
 * ```
 */
export class RegistryError extends Error {
  /** The code. */
  readonly code: RegistryErrorCode;

  /** Create an error with a code and a message saying what failed and where. */
  constructor(code: RegistryErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RegistryError";
    this.code = code;
  }

  /** The code's name, such as `NO_NODE`. */
  get codeName(): string {
    return registryErrorCodeName(this.code);
  }

  /** Normalise anything thrown into a RegistryError (SYSTEM_ERROR unless it already is one). */
  static from(reason: unknown): RegistryError {
    if (reason instanceof RegistryError) return reason;
    const message = reason instanceof Error ? reason.message : String(reason);
    return new RegistryError(RegistryErrorCode.SYSTEM_ERROR, message, { cause: reason });
  }
}
