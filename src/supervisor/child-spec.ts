/**
 * What a supervised child is, as a plain value: the spec, its context, and
 * the validation that turns user input into a spec the supervisor can trust.
 */
import type { Device } from "../core/device.js";
import type { DeviceId } from "../core/device-id.js";
import type { Fault } from "../core/fault.js";
import { SupervisorError } from "./errors.js";
import { describeValue } from "../core/timer.js";

/** How a supervisor reacts to one child's restart: only it, all of them, or it and those started after it. */
export type Strategy = "one-for-one" | "one-for-all" | "rest-for-one";
/** When a child that ended is started again (see {@link decideExit}). */
export type Restart = "permanent" | "transient" | "temporary";
/** ms of grace between the stop request and the kill; `brutal` kills at once; `infinity` waits as long as it takes. */
export type Shutdown = number | "brutal" | "infinity";
export type ChildType = "worker" | "supervisor";

/**
 * Returned by `init` to say "nothing to run" (OTP's `ignore`): the child is
 * listed as stopped (a temporary one is dropped) and the start goes on.
 *
 * @example
 * ```ts
 * init: () => (process.env.CACHE ? connect() : IGNORE)
 * ```
 */
export const IGNORE: unique symbol = Symbol("backplane.IGNORE");
export type Ignore = typeof IGNORE;

/**
 * What a child sees: its id, its own device (linked to nothing by the
 * supervisor: link it to what it depends on), and a signal that aborts when
 * it is asked to stop. The signal is created on first read, so a child that
 * never reads it pays nothing for it.
 */
export interface ChildContext {
  readonly id: string;
  readonly device: Device;
  readonly signal: AbortSignal;
  /** A DynamicSupervisor's `extraArguments` followed by `startChild`'s; empty otherwise. */
  readonly args: readonly unknown[];
}

/**
 * A child of a supervisor, as a plain value.
 *
 * @example
 * ```ts
 * const poller: ChildSpec<Db> = {
 *   id: "poller",
 *   init: async () => connect(url),            // throwing here is a failed start
 *   run: async (ctx, db) => { while (!ctx.signal.aborted) await poll(db, ctx.signal); },
 *   restart: "permanent",
 *   shutdown: 2_000,
 * };
 * ```
 */
export interface ChildSpec<S = unknown> {
  id: string;
  /** Start-up: runs before `run`; throwing is a failed start; may return {@link IGNORE}. */
  init?(ctx: ChildContext): S | Ignore | PromiseLike<S | Ignore>;
  /** The child's life, run under `device.manage`: it ends when this settles. */
  run(ctx: ChildContext, state: S): unknown;
  /** Default `permanent`. */
  restart?: Restart;
  /** Default 5000 ms for workers, `infinity` for supervisors. */
  shutdown?: Shutdown;
  /** When it ends without being restarted, it may end its supervisor (see `autoShutdown`). Default false. */
  significant?: boolean;
  /** Default `worker`. */
  type?: ChildType;
}

/** A child as listed by `whichChildren()`. Stopped, ignored and restarting children have no `device`. */
export interface ChildInfo {
  id: string;
  status: "running" | "restarting" | "stopped";
  device?: DeviceId;
  type: ChildType;
  /** Times it was restarted by the supervisor. */
  restarts: number;
  /** Its most recent fault (a crash, a kill, a failed start); a later clean exit does not clear it. */
  lastFault?: Fault;
  /** `Date.now()` when `lastFault` happened. */
  lastFaultAt?: number;
}

/** @internal A spec with every default filled in, checked. */
export interface NormalizedSpec {
  readonly id: string;
  readonly init: ((ctx: ChildContext) => unknown) | undefined;
  readonly run: (ctx: ChildContext, state: unknown) => unknown;
  readonly restart: Restart;
  readonly shutdown: Shutdown;
  readonly significant: boolean;
  readonly type: ChildType;
}

const RESTARTS: readonly string[] = ["permanent", "transient", "temporary"];

function invalid(id: unknown, what: string): SupervisorError {
  const name = typeof id === "string" ? `child "${id}"` : "child spec";
  return new SupervisorError("invalid-spec", `${name}: ${what}`, typeof id === "string" ? { childId: id } : undefined);
}

/** @internal Check a user's spec and fill in the defaults; `autoShutdown` decides whether `significant` is allowed. */
export function normalizeSpec(spec: unknown, autoShutdown: "never" | "any-significant" | "all-significant"): NormalizedSpec {
  if (typeof spec !== "object" || spec === null) throw invalid(undefined, "must be an object");
  const s = spec as Partial<ChildSpec>;
  if (typeof s.id !== "string" || s.id.length === 0) throw invalid(undefined, "id must be a non-empty string");
  const id = s.id;
  if (typeof s.run !== "function") throw invalid(id, "run must be a function");
  if (s.init !== undefined && typeof s.init !== "function") throw invalid(id, "init must be a function");
  const type = s.type === undefined ? "worker" : s.type;
  if (type !== "worker" && type !== "supervisor") throw invalid(id, `type must be "worker" or "supervisor", not ${describeValue(type)}`);
  const restart = s.restart === undefined ? "permanent" : s.restart;
  if (!RESTARTS.includes(restart)) throw invalid(id, `restart must be permanent, transient or temporary, not ${describeValue(restart)}`);
  const shutdown = s.shutdown === undefined ? (type === "supervisor" ? "infinity" : 5000) : s.shutdown;
  if (!(shutdown === "brutal" || shutdown === "infinity" || (typeof shutdown === "number" && shutdown >= 0 && Number.isFinite(shutdown)))) {
    throw invalid(id, `shutdown must be ms ≥ 0, "brutal" or "infinity", not ${describeValue(shutdown)}`);
  }
  const significant = s.significant === undefined ? false : s.significant;
  if (typeof significant !== "boolean") throw invalid(id, "significant must be a boolean");
  if (significant && restart === "permanent") throw invalid(id, "a significant child must be transient or temporary (as in OTP)");
  if (significant && autoShutdown === "never") throw invalid(id, 'a significant child needs autoShutdown "any-significant" or "all-significant" (as in OTP)');
  return { id, init: s.init as NormalizedSpec["init"], run: s.run as NormalizedSpec["run"], restart, shutdown, significant, type };
}
