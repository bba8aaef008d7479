/**
 * Peer workloads for the supervisor benchmarks: what a user would pick instead
 * of a supervisor that restarts a failed child.
 *
 * Each exported function (or the function returned by a `setup…()`) performs
 * exactly ONE operation, so a harness can loop over it. Everything reusable
 * (effect programs, errors, the actor system and actor) is built once, so the
 * loop measures only the per-operation work.
 *
 * Peers:
 *   - effect@4.x: `Effect.retry(eff, Schedule.forever)` run with `Effect.runPromise`.
 *     `Schedule.forever` is `Schedule.spaced(Duration.zero)`; each retry step
 *     sleeps 0 ms, which Effect's clock turns into `Effect.yieldNow`, i.e. one
 *     hop through the default scheduler (setImmediate) before the effect runs again.
 *   - nact@7.x: an actor spawned with `onCrash: (msg, err, ctx) => ctx.reset`;
 *     nact runs every message in its own setImmediate callback, and `query`
 *     arms (and on reply clears) a timeout timer.
 *
 * The ops are not re-entrant: a harness must await one before starting the next.
 */
import { Effect, Schedule } from "effect";
import { type Ref, dispatch, query, spawn, start, stop } from "nact";

// Allocated once, so neither peer pays for capturing a stack trace per failure
// (the backplane side of the benchmark also fails with a shared Error).
const failure = new Error("bench");

// ---------------------------------------------------------------------------
// Effect 4: retry with a schedule
// ---------------------------------------------------------------------------

const failing = Effect.fail(failure);
const succeeding = Effect.void;

/** Attempts made so far by `flaky`, across all runs: odd attempts fail, even ones succeed. */
let attempts = 0;
const flaky = Effect.suspend(() => ((++attempts & 1) === 1 ? failing : succeeding));
const retryOnce = Effect.retry(flaky, Schedule.forever);

/**
 * One failure followed by the retry that runs the effect again and succeeds:
 * `Effect.runPromise(Effect.retry(flaky, Schedule.forever))`, where `flaky`
 * fails on odd attempts and succeeds on even ones.
 */
export async function effectRetryOnce(): Promise<void> {
  const before = attempts;
  await Effect.runPromise(retryOnce);
  if (attempts - before !== 2) throw new Error(`effectRetryOnce: expected 2 attempts, got ${attempts - before}`);
}

/** Failures left before `failsThenSucceeds` succeeds; set per run by effectRetryMany. */
let failuresLeft = 0;
const failsThenSucceeds = Effect.suspend(() => (failuresLeft-- > 0 ? failing : succeeding));
const retryMany = Effect.retry(failsThenSucceeds, Schedule.forever);

/**
 * An effect that fails `n` times and then succeeds, under the same
 * `Effect.retry(…, Schedule.forever)`: n failures + n retries in one
 * `Effect.runPromise` (divide by n for the per-retry cost).
 */
export async function effectRetryMany(n: number): Promise<void> {
  failuresLeft = n;
  await Effect.runPromise(retryMany);
  // n failing attempts and the succeeding one each decrement once.
  if (failuresLeft !== -1) throw new Error(`effectRetryMany: expected ${n + 1} attempts`);
}

// ---------------------------------------------------------------------------
// nact 7: onCrash → reset
// ---------------------------------------------------------------------------

type WorkerMsg = { readonly kind: "crash" } | { readonly kind: "generation"; readonly replyTo: Ref<number> };

interface WorkerState {
  /** Which incarnation of the actor this is: 1 when spawned, +1 per reset. */
  readonly generation: number;
}

const crash: WorkerMsg = { kind: "crash" };
const askGeneration = (replyTo: Ref<number>): WorkerMsg => ({ kind: "generation", replyTo });
/** nact requires a query timeout; a query that is answered clears its timer. */
const queryTimeoutMs = 10_000;

export interface NactPeer {
  /**
   * Dispatch a message that makes the actor throw; its onCrash policy returns
   * `ctx.reset`, nact re-initialises the actor's state, and the fresh actor
   * answers a query (queued behind the crash). Resolves when the answer arrives.
   */
  crashAndServe(): Promise<void>;
  /** Stop the nact actor system (and the actor). Await every crashAndServe() first. */
  stop(): void;
}

/** Start an actor system with one actor supervised by a reset-on-crash policy. */
export function setupNact(): NactPeer {
  const system = start();
  let generations = 0;
  const worker = spawn(
    system,
    (state: WorkerState, msg: WorkerMsg): WorkerState => {
      if (msg.kind === "crash") throw failure;
      dispatch(msg.replyTo, state.generation);
      return state;
    },
    "worker",
    {
      initialStateFunc: (): WorkerState => ({ generation: ++generations }),
      onCrash: (_msg, _err, ctx) => ctx.reset,
    },
  );
  let served = 1;
  return {
    async crashAndServe(): Promise<void> {
      dispatch(worker, crash);
      const generation = await query(worker, askGeneration, queryTimeoutMs);
      // The answer must come from the next incarnation: exactly one reset happened.
      if (generation !== served + 1) {
        throw new Error(`nact crashAndServe: expected generation ${served + 1}, got ${String(generation)}`);
      }
      served = generation;
    },
    stop(): void {
      stop(system);
    },
  };
}
