/**
 * Elixir's DynamicSupervisor: one-for-one over children added at run time.
 */
import type { ChildInfo, ChildSpec } from "./child-spec.js";
import { SupervisorError } from "./errors.js";
import type { CrashLogger } from "./crash-report.js";
import type { Backoff } from "./restart.js";
import { Supervisor, type SupervisorOptions } from "./supervisor.js";
import { describeValue } from "../core/timer.js";

/** Options of a {@link DynamicSupervisor}. */
export interface DynamicSupervisorOptions {
  /** Default 3 restarts … */
  intensity?: number;
  /** … within 5000 ms. */
  period?: number;
  backoff?: Backoff;
  name?: string;
  /** Children it may hold at once; `startChild` beyond it is `max-children`. Default unlimited. */
  maxChildren?: number;
  /** Put before `startChild`'s own arguments in every child's `ctx.args`. */
  extraArguments?: readonly unknown[];
  /** Crash reports, as {@link SupervisorOptions.logger}. */
  logger?: CrashLogger;
}

/** A child spec for a dynamic supervisor: the id may be left out (one is made up). */
export type DynamicChildSpec<S = unknown> = Omit<ChildSpec<S>, "id" | "significant"> & { id?: string };

/**
 * Children started on demand, each restarted on its own (one-for-one). A
 * child that stops for good is forgotten, and on stop all children are
 * stopped at once rather than one by one.
 *
 * @example
 * ```ts
 * const sessions = new DynamicSupervisor({ maxChildren: 1000, extraArguments: [db] });
 * await sessions.start();
 * await sessions.startChild({ restart: "transient", run: (ctx) => session(ctx.args[0] as Db, ctx.args[1] as Socket, ctx.signal) }, socket);
 * ```
 */
export class DynamicSupervisor extends Supervisor {
  readonly #maxChildren: number;
  readonly #extra: readonly unknown[];
  #seq = 0;

  constructor(options: DynamicSupervisorOptions = {}) {
    if (typeof options !== "object" || options === null) throw new SupervisorError("invalid-options", "options must be an object");
    const { maxChildren = Number.POSITIVE_INFINITY, extraArguments = [], intensity, period, backoff, name, logger } = options;
    if (!(maxChildren === Number.POSITIVE_INFINITY || (Number.isInteger(maxChildren) && maxChildren >= 0))) {
      throw new SupervisorError("invalid-options", `maxChildren must be an integer ≥ 0, not ${describeValue(maxChildren)}`);
    }
    if (!Array.isArray(extraArguments)) throw new SupervisorError("invalid-options", "extraArguments must be an array");
    super({
      strategy: "one-for-one",
      ...(intensity !== undefined && { intensity }),
      ...(period !== undefined && { period }),
      ...(backoff !== undefined && { backoff }),
      ...(name !== undefined && { name }),
      ...(logger !== undefined && { logger }),
    });
    this.#maxChildren = maxChildren;
    this.#extra = extraArguments;
  }

  /**
   * Start a child now; `args` follow `extraArguments` in its `ctx.args`.
   *
   * @throws {SupervisorError} `max-children`, `already-started`, `invalid-spec`, `not-running`; {@link StartError} if init fails.
   * @example
   * ```ts
   * const info = await dyn.startChild({ run: (ctx) => handle(ctx.args[0], ctx.signal) }, request);
   * ```
   */
  override async startChild<S>(spec: DynamicChildSpec<S> | ChildSpec<S>, ...args: unknown[]): Promise<ChildInfo> {
    if (typeof spec !== "object" || spec === null) throw new SupervisorError("invalid-spec", "child spec must be an object");
    if (this.status !== "running") throw new SupervisorError("not-running", `dynamic supervisor "${this.name}" is ${this.status}`);
    if (this.childCount >= this.#maxChildren) {
      throw new SupervisorError("max-children", `dynamic supervisor "${this.name}" already has its maximum of ${this.#maxChildren} children`);
    }
    if ((spec as { significant?: unknown }).significant !== undefined && (spec as { significant?: unknown }).significant !== false) {
      throw new SupervisorError("invalid-spec", "a DynamicSupervisor's children cannot be significant (as in Elixir)");
    }
    const id = spec.id ?? `${this.name}/${++this.#seq}`;
    return this.startWith({ ...spec, id, significant: false }, [...this.#extra, ...args]);
  }

  /** Elixir's DynamicSupervisor: a child that ends for good is forgotten, an ignored one never kept, and all stop at once. */
  protected override get dynamic(): boolean {
    return true;
  }
}
