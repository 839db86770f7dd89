/**
 * The seed's RpcController (google::protobuf::RpcController): a call's outcome as `failed()`/`errorText()`, and
 * cancellation with `startCancel()` (which the seed left empty; here it aborts the call).
 *
 * @module
 */

import { RpcCode } from "./rpc_error.ts";

/**
 * Reports one call's failure and cancels it on request. Pass it in the call options.
 *
 * @example
 * ```ts
 * import { RpcController } from "./rpc_controller.ts";
 * import assert from "node:assert/strict";
 *
 * const controller = new RpcController();
 * controller.setFailed("login error");
 * assert.equal(controller.failed(), true);
 * assert.equal(controller.errorText(), "login error");
 * controller.reset();
 * assert.equal(controller.failed(), false);
 * ```
 */
export class RpcController {
  #failed = false;
  #errorText = "";
  #code: RpcCode = RpcCode.OK;
  #abort = new AbortController();

  /** Whether the call failed. */
  failed(): boolean {
    return this.#failed;
  }

  /** Why it failed ("" when it did not). */
  errorText(): string {
    return this.#errorText;
  }

  /** The status code of the failure (OK when it did not fail). */
  get code(): RpcCode {
    return this.#code;
  }

  /** Mark the call failed. */
  setFailed(reason: string, code: RpcCode = RpcCode.UNKNOWN): void {
    this.#failed = true;
    this.#errorText = reason;
    this.#code = code;
  }

  /** Clear the outcome for reuse (and re-arm cancellation). */
  reset(): void {
    this.#failed = false;
    this.#errorText = "";
    this.#code = RpcCode.OK;
    this.#abort = new AbortController();
  }

  /** Cancel the call this controller was passed to. */
  startCancel(): void {
    this.#abort.abort(new DOMException("The call was cancelled through its controller", "AbortError"));
  }

  /** Whether `startCancel` was called. */
  isCanceled(): boolean {
    return this.#abort.signal.aborted;
  }

  /** The signal that `startCancel` fires. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }
}
