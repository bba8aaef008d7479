import { BackplaneError } from "./error.js";

/**
 * Why a core operation was refused.
 *
 * - `self-link`: a device cannot link to itself.
 * - `device-down`: the device has disconnected (linking from it, managing
 *   it, or watching it with nothing left in its mailbox).
 * - `busy`: the mailbox already has a reader (a pending `receive`, `watch`,
 *   `manage` or `partManage`); a device has one reader at a time.
 * - `invalid-argument`: the call's arguments are not of the documented shape.
 */
export type LinkErrorCode = "self-link" | "device-down" | "busy" | "invalid-argument";

/**
 * A typed refusal from the core. Switch on `code`.
 *
 * @example
 * ```ts
 * try { a.link(a, "peer"); }
 * catch (e) { if (e instanceof LinkError && e.code === "self-link") … }
 * ```
 */
export class LinkError extends BackplaneError<LinkErrorCode> {}
LinkError.prototype.name = "LinkError";
