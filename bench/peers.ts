/**
 * Peer-library workloads for benchmarks.
 *
 * Each exported function performs exactly ONE operation of a workload, so a
 * harness can loop over it. Everything that can be built once (effect values,
 * fiber programs, machines, actor logic) is hoisted to module scope so the
 * loop only measures per-operation work (fiber / actor creation, scheduling,
 * completion and observation).
 *
 * Peers:
 *   - effect@4.x  (Effect.forkChild + Fiber.await / Fiber.interrupt, run via Effect.runPromise)
 *   - xstate@5.x  (createActor + fromPromise / createMachine, observed via subscribe)
 */
import { Effect, Exit, Fiber } from "effect";
import { createActor, createMachine, fromPromise } from "xstate";

// ---------------------------------------------------------------------------
// Effect 4
// ---------------------------------------------------------------------------

const failError = new Error("x");
const failing = Effect.fail(failError);
const succeeding = Effect.succeed(42);

// Fork options. `startImmediately: true` is a documented `forkChild` option that
// runs the child synchronously on the forking stack instead of queueing it on the
// default MixedScheduler (which defers via setImmediate, ~5 µs/op on its own).
// It is the fastest idiomatic path, so Effect is not penalised by a macrotask hop.
// Set to `{}` to measure Effect's default scheduling instead.
const forkOpts = { startImmediately: true } as const;

// Parent programs: fork an auto-supervised child, then await its Exit.
// Built with pipe/flatMap rather than Effect.gen to avoid generator overhead.
const forkFailAwait = Effect.forkChild(failing, forkOpts).pipe(Effect.flatMap(Fiber.await));
const forkSucceedAwait = Effect.forkChild(succeeding, forkOpts).pipe(Effect.flatMap(Fiber.await));
// Fiber.interrupt completes only after the interrupted fiber has completed.
const forkInterrupt = Effect.forkChild(Effect.never, forkOpts).pipe(Effect.flatMap(Fiber.interrupt));

/** Fork a fiber running Effect.fail(Error), await its Exit from the parent, check failure. */
export async function effectForkFailAwait(): Promise<void> {
  const exit = await Effect.runPromise(forkFailAwait);
  if (!Exit.isFailure(exit)) throw new Error("effectForkFailAwait: expected failure exit");
}

// The same programs with Effect's default fork, which starts the child on its
// scheduler (a setImmediate hop): what a user who writes `Effect.forkChild(x)` gets.
const forkFailAwaitDefault = Effect.forkChild(failing).pipe(Effect.flatMap(Fiber.await));
const forkInterruptDefault = Effect.forkChild(Effect.never).pipe(Effect.flatMap(Fiber.interrupt));

/** effectForkFailAwait with Effect's default fork scheduling. */
export async function effectForkFailAwaitDefault(): Promise<void> {
  const exit = await Effect.runPromise(forkFailAwaitDefault);
  if (!Exit.isFailure(exit)) throw new Error("effectForkFailAwaitDefault: expected failure exit");
}

/** effectForkInterrupt with Effect's default fork scheduling. */
export async function effectForkInterruptDefault(): Promise<void> {
  await Effect.runPromise(forkInterruptDefault);
}

/** Fork a never-ending fiber (Effect.never), interrupt it and await the interruption. */
export async function effectForkInterrupt(): Promise<void> {
  await Effect.runPromise(forkInterrupt);
}

/** Fork a fiber succeeding with a value, await its Exit from the parent, check success. */
export async function effectForkSucceedAwait(): Promise<void> {
  const exit = await Effect.runPromise(forkSucceedAwait);
  if (!Exit.isSuccess(exit) || exit.value !== 42) {
    throw new Error("effectForkSucceedAwait: expected success exit with 42");
  }
}

// ---------------------------------------------------------------------------
// XState 5
// ---------------------------------------------------------------------------

const xError = new Error("x");
const failingLogic = fromPromise<never>(async () => {
  throw xError;
});
const succeedingLogic = fromPromise<number>(async () => 42);
const trivialMachine = createMachine({ id: "trivial", initial: "idle", states: { idle: {} } });

/** Actor from a rejecting fromPromise; subscribe for error, start, resolve when observed. */
export function xstateFailingPromiseActor(): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const actor = createActor(failingLogic);
    actor.subscribe({
      error: (err) => (err === xError ? resolve() : reject(err)),
      complete: () => reject(new Error("xstateFailingPromiseActor: unexpected completion")),
    });
    actor.start();
  });
}

/** createActor of a trivial machine, start, stop. */
export async function xstateCreateStartStop(): Promise<void> {
  const actor = createActor(trivialMachine);
  actor.start();
  actor.stop();
}

/** Actor from a resolving fromPromise; observe completion via subscribe, read snapshot output. */
export function xstateSucceedingPromiseActor(): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const actor = createActor(succeedingLogic);
    actor.subscribe({
      complete: () => {
        const out = actor.getSnapshot().output;
        if (out === 42) resolve();
        else reject(new Error(`xstateSucceedingPromiseActor: unexpected output ${String(out)}`));
      },
      error: reject,
    });
    actor.start();
  });
}
