import { errorText } from "../core/describe.js";
import { BackplaneError } from "../core/error.js";

/**
 * Why a supervisor refused or ended.
 *
 * - `already-started`: `startChild` with the id of a running child.
 * - `already-present`: `startChild` with the id of a stopped child still listed.
 * - `not-found`: no child with that id.
 * - `running` / `restarting`: `deleteChild`/`restartChild` of a child in that state.
 * - `invalid-spec` / `invalid-options`: bad input, with the field named in the message.
 * - `start-failed`: a child's `init` threw ({@link StartError}, `cause` = what it threw).
 * - `intensity-exceeded`: more restarts than `intensity` within `period`: the supervisor gave up.
 * - `max-children`: a DynamicSupervisor is full.
 * - `not-running`: the supervisor is not running (not started yet, stopping or stopped).
 * - `invalid-argument`: an argument of the wrong kind (a child id that is not a string, a tree that is not a supervisor).
 */
export type SupervisorErrorCode =
  | "already-started"
  | "already-present"
  | "not-found"
  | "running"
  | "restarting"
  | "invalid-spec"
  | "invalid-options"
  | "start-failed"
  | "intensity-exceeded"
  | "max-children"
  | "not-running"
  | "invalid-argument";

/**
 * A typed refusal or ending of a supervisor. Switch on `code`.
 *
 * @example
 * ```ts
 * try { await sup.startChild(spec); }
 * catch (e) { if (e instanceof SupervisorError && e.code === "already-present") await sup.restartChild(spec.id); }
 * ```
 */
export class SupervisorError extends BackplaneError<SupervisorErrorCode> {
  /** The child concerned, when there is one. */
  readonly childId: string | undefined;
  constructor(code: SupervisorErrorCode, message: string, options?: { cause?: unknown; childId?: string }) {
    super(code, message, options?.cause);
    this.childId = options?.childId;
  }
}
SupervisorError.prototype.name = "SupervisorError";

/**
 * A child's `init` threw (or rejected): `code` is `start-failed`, `childId`
 * names the child and `cause` is what it threw.
 *
 * @example
 * ```ts
 * await sup.start().catch((e) => { if (e instanceof StartError) console.error(e.childId, e.cause); });
 * ```
 */
export class StartError extends SupervisorError {
  constructor(childId: string, cause: unknown) {
    super("start-failed", `child "${childId}" failed to start: ${errorText(cause)}`, { cause, childId });
  }
}
StartError.prototype.name = "StartError";
