import { BackplaneError } from "../core/error.js";
import type { Fault } from "../core/fault.js";

/**
 * Why a call failed.
 *
 * - `server-down`: the server had ended, or ended while the call was in
 *   flight; `fault` is how it ended (undefined for a clean stop).
 * - `timeout`: no reply within the call's timeout; a late reply is dropped.
 * - `not-cloneable`: the request (or the reply) cannot cross to or from a
 *   worker by structured clone.
 * - `aborted`: the call's `signal` aborted; `cause` is the signal's reason.
 *   The server goes on (a request still queued is skipped; a late reply is dropped).
 * - `unknown-name`: no live server is registered under that name (after
 *   `waitForName` ms, when given; `cause` is then the registry's `timeout`).
 * - `invalid-argument`: the call's arguments are not of the documented shape.
 */
export type CallErrorCode = "server-down" | "timeout" | "not-cloneable" | "aborted" | "unknown-name" | "invalid-argument";

/**
 * A failed call. Switch on `code`.
 *
 * @example
 * ```ts
 * try { await client.call({ op: "charge", cents: 500 }, { timeout: 1_000 }); }
 * catch (e) { if (e instanceof CallError && e.code === "server-down") console.log("billing died:", e.fault); }
 * ```
 */
export class CallError extends BackplaneError<CallErrorCode> {
  /** `server-down`: how the server ended. */
  readonly fault: Fault | undefined;
  constructor(code: CallErrorCode, message: string, options?: { fault?: Fault | undefined; cause?: unknown }) {
    super(code, message, options?.cause);
    this.fault = options?.fault;
  }
}
CallError.prototype.name = "CallError";
