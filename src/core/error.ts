/**
 * The one shape every typed refusal of the library shares: an `Error` with
 * a stable `code` to switch on. Each layer narrows `C` to its own codes.
 */

/**
 * Base class of `LinkError`, `SupervisorError`, `CallError`,
 * `ExecutionError`, `RegistryError`, `ObserverError` and `ClusterError`:
 * one `instanceof` catches any typed refusal from backplane, and `code`
 * says which.
 *
 * @example
 * ```ts
 * try { await sup.startChild(spec); }
 * catch (e) { if (e instanceof BackplaneError) console.warn(e.name, e.code, e.message); else throw e; }
 * ```
 */
export class BackplaneError<C extends string = string> extends Error {
  readonly code: C;
  constructor(code: C, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
  }
}
BackplaneError.prototype.name = "BackplaneError";
