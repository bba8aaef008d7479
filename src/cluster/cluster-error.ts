import { BackplaneError } from "../core/error.js";
import type { Fault } from "../core/fault.js";

/**
 * Why a cluster operation failed. Switch on `code`:
 *
 * - `invalid-argument`: bad input at the API boundary.
 * - `name-taken`: `export` of a name another live device already holds.
 * - `no-responders`: a call or spawn to a name or node nobody serves right now
 *   (NATS no-responders: it fails in milliseconds, not at the timeout).
 * - `noconnection`: the node of the callee (or of the remote child) was lost
 *   while the call was in flight, or is already known to be gone. `fault`
 *   is `{ kind: "noconnection", node }`.
 * - `server-down`: the remote server ended before or while handling the
 *   call; `fault` is how it ended (its error's message preserved).
 * - `timeout`: no reply within the call's `timeout`; a late reply is dropped.
 * - `not-cloneable`: the request or the reply cannot be serialised (v8
 *   structured clone).
 * - `closed`: the node was closed.
 * - `remote-error`: the remote side refused for another reason (the message says which).
 *
 * @example
 * ```ts
 * try { await node.call("billing", { cents: 500 }, { timeout: 1_000 }); }
 * catch (e) {
 *   if (e instanceof ClusterError && e.code === "noconnection") console.warn("billing's node is gone", e.fault);
 * }
 * ```
 */
export class ClusterError extends BackplaneError<ClusterErrorCode> {
  /** `noconnection`, `server-down`: the fault behind the failure. */
  readonly fault: Fault | undefined;
  constructor(code: ClusterErrorCode, message: string, options?: { fault?: Fault | undefined; cause?: unknown }) {
    super(code, message, options?.cause);
    this.fault = options?.fault;
  }
}
ClusterError.prototype.name = "ClusterError";

/** The codes of {@link ClusterError}. */
export type ClusterErrorCode =
  | "invalid-argument"
  | "name-taken"
  | "no-responders"
  | "noconnection"
  | "server-down"
  | "timeout"
  | "not-cloneable"
  | "closed"
  | "remote-error";
