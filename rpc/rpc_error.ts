/**
 * The RPC layer's one error class, with gRPC's status codes and numbering (as connect-es does), and `from`,
 * which turns anything thrown into an RpcError.
 *
 * @module
 */

/**
 * Status codes, numbered as gRPC numbers them.
 *
 * @example
 * ```ts
 * import { RpcCode, RpcError } from "./rpc_error.ts";
 *
 * // Retry what a provider could not take now; give up on the rest.
 * const retryable = (error: unknown) =>
 *   error instanceof RpcError && (error.code === RpcCode.UNAVAILABLE || error.code === RpcCode.RESOURCE_EXHAUSTED);
 * ```
 */
export const RpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** One of the {@linkcode RpcCode} numbers. */
export type RpcCode = typeof RpcCode[keyof typeof RpcCode];

const NAMES = new Map<number, string>(Object.entries(RpcCode).map(([name, code]) => [code, name]));

/**
 * The name of a code (`UNAVAILABLE`), or `CODE_n`.
 *
 * @example
 * ```ts
 * import { RpcCode, rpcCodeName } from "./rpc_error.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(rpcCodeName(RpcCode.DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
 * assert.equal(rpcCodeName(99), "CODE_99");
 * ```
 */
export function rpcCodeName(code: number): string {
  return NAMES.get(code) ?? `CODE_${code}`;
}

/**
 * A failed call.
 *
 * @example
 * ```ts
 * import { RpcCode, RpcError } from "./rpc_error.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new RpcError(RpcCode.UNAVAILABLE, "No provider of dwt.UserServiceRpc");
 * assert.equal(error.codeName, "UNAVAILABLE");
 * assert.equal(error.message, "[UNAVAILABLE] No provider of dwt.UserServiceRpc");
 * assert.equal(RpcError.from(new Error("boom")).code, RpcCode.UNKNOWN);
 * ```
 */
export class RpcError extends Error {
  /** The status code. */
  readonly code: RpcCode;
  /** The message without the code prefix. */
  readonly rawMessage: string;
  /** Metadata the provider sent with the error. */
  readonly metadata: Readonly<Record<string, string>>;

  /** Create an error. */
  constructor(code: RpcCode, message: string, options: { cause?: unknown; metadata?: Record<string, string> } = {}) {
    super(`[${rpcCodeName(code)}] ${message}`, { cause: options.cause });
    this.name = "RpcError";
    this.code = code;
    this.rawMessage = message;
    this.metadata = options.metadata ?? {};
  }

  /** The code's name, such as `DEADLINE_EXCEEDED`. */
  get codeName(): string {
    return rpcCodeName(this.code);
  }

  /** Normalise anything thrown: RpcErrors pass through, aborts become CANCELLED, the rest UNKNOWN. */
  static from(reason: unknown, code: RpcCode = RpcCode.UNKNOWN): RpcError {
    if (reason instanceof RpcError) return reason;
    if (reason instanceof Error && (reason.name === "AbortError" || reason.name === "TimeoutError")) {
      return new RpcError(
        reason.name === "TimeoutError" ? RpcCode.DEADLINE_EXCEEDED : RpcCode.CANCELLED,
        reason.message,
        { cause: reason },
      );
    }
    const message = reason instanceof Error ? reason.message : String(reason);
    return new RpcError(code, message, { cause: reason });
  }
}
