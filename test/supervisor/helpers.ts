import type { ChildContext, ChildSpec, Supervisor, SupervisorEvents } from "../../src/index.js";

/** One run of a controllable worker. */
export interface Incarnation {
  ctx: ChildContext;
  /** End the run with a failure. */
  crash(error?: unknown): void;
  /** End the run cleanly. */
  finish(): void;
}

/**
 * A worker whose runs the test ends by hand. By default it honours its
 * signal (a stop ends it at once); `stubborn` ignores it (only a kill ends it).
 */
export function worker(id: string, options: Partial<ChildSpec> & { stubborn?: boolean; failInit?: () => unknown } = {}) {
  const runs: Incarnation[] = [];
  const { stubborn, failInit, ...spec } = options;
  const log: string[] = [];
  const child: ChildSpec = {
    id,
    ...(failInit !== undefined && {
      init: () => {
        const error = failInit();
        if (error !== undefined) throw error;
        return undefined;
      },
    }),
    run(ctx) {
      log.push(`run ${id}`);
      return new Promise<void>((resolve, reject) => {
        runs.push({ ctx, crash: (e = new Error(`${id} crashed`)) => reject(e), finish: () => resolve() });
        if (!stubborn) {
          ctx.signal.addEventListener("abort", () => {
            log.push(`stop ${id}`);
            resolve();
          });
        }
      });
    },
    ...spec,
  };
  return {
    spec: child,
    runs,
    log,
    get current(): Incarnation {
      const run = runs.at(-1);
      if (run === undefined) throw new Error(`${id} never ran`);
      return run;
    },
  };
}

/** The next `event` the supervisor emits. */
export function next<E extends keyof SupervisorEvents>(sup: Supervisor, event: E): Promise<SupervisorEvents[E][0]> {
  return new Promise((resolve) => sup.once(event, ((payload: SupervisorEvents[E][0]) => resolve(payload)) as never));
}

/**
 * Resolves when `predicate` holds, checked now and after each child event of
 * the supervisor (no sleeping, no counting microtasks).
 */
export function until(sup: Supervisor, predicate: () => boolean): Promise<void> {
  if (predicate()) return Promise.resolve();
  const events = ["child-started", "child-exited", "child-restarted"] as const;
  return new Promise((resolve) => {
    const check = (): void => {
      if (!predicate()) return;
      for (const e of events) sup.off(e, check);
      resolve();
    };
    for (const e of events) sup.on(e, check);
  });
}

/** A promise and the function that resolves it: an event a test can wait for. */
export function signalled(): { promise: Promise<void>; fire: () => void } {
  let fire!: () => void;
  const promise = new Promise<void>((resolve) => {
    fire = resolve;
  });
  return { promise, fire };
}

export function statuses(sup: Supervisor): Record<string, string> {
  return Object.fromEntries(sup.whichChildren().map((c) => [c.id, c.status]));
}
