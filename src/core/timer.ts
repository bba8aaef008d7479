/**
 * Timers that honour any duration. Node's `setTimeout` fires after about
 * 1 ms for any delay of 2³¹ ms or more (and for `Infinity`): a 30-day grace
 * period or an `Infinity` timeout would fire at once. Every timer of the
 * library goes through here.
 */

/** The largest delay Node's setTimeout takes as it is (about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A timer that may be longer than Node's limit: chained in steps of at most
 * {@link MAX_TIMER_MS}. `Infinity` never fires and holds no handle.
 */
export class LongTimer {
  #handle: ReturnType<typeof setTimeout> | undefined = undefined;
  #remaining: number;
  readonly #fire: (arg: unknown) => void;
  readonly #arg: unknown;
  #unref = false;

  /** `fire(arg)` once `ms` have passed ({@link setAnyTimeout} checks that `arg` fits `fire`). */
  constructor(fire: (arg: never) => void, ms: number, arg?: unknown) {
    this.#fire = fire as (arg: unknown) => void;
    this.#arg = arg;
    this.#remaining = ms;
    this.#arm();
  }

  #arm(): void {
    if (this.#remaining === Number.POSITIVE_INFINITY) return;
    const step = Math.min(this.#remaining, MAX_TIMER_MS);
    this.#remaining -= step;
    this.#handle = setTimeout(this.#step, step);
    if (this.#unref) this.#handle.unref();
  }

  readonly #step = (): void => {
    this.#handle = undefined;
    if (this.#remaining > 0) this.#arm();
    else this.#fire(this.#arg);
  };

  /** Let the process exit while only this timer is pending. */
  unref(): this {
    this.#unref = true;
    this.#handle?.unref();
    return this;
  }

  /** Cancel it; calling twice, or after it fired, does nothing. */
  clear(): void {
    if (this.#handle !== undefined) clearTimeout(this.#handle);
    this.#handle = undefined;
    this.#remaining = 0;
  }
}

/**
 * `setTimeout` for any delay: below 2³¹ ms a plain Node timer (no extra
 * cost on the hot path), above it a {@link LongTimer}, and for `Infinity`
 * nothing at all. Cancel the result with {@link clearAnyTimeout}. `arg`
 * is passed to `fire`, as with `setTimeout(fn, ms, arg)`: a hot path can
 * use one static function instead of a closure per timer.
 *
 * @example
 * ```ts
 * const t = setAnyTimeout(() => run.timedOut(), options.timeout ?? Infinity);
 * …
 * clearAnyTimeout(t);
 * ```
 */
export function setAnyTimeout<A = undefined>(fire: (arg: A) => void, ms: number, arg?: A): AnyTimer {
  if (ms === Number.POSITIVE_INFINITY) return undefined;
  if (ms <= MAX_TIMER_MS) return setTimeout(fire, ms, arg as A);
  return new LongTimer(fire, ms, arg);
}

/** What {@link setAnyTimeout} returns: a Node timer, a chained one, or nothing (`Infinity`). */
export type AnyTimer = ReturnType<typeof setTimeout> | LongTimer | undefined;

/**
 * Cancel a timer made by {@link setAnyTimeout}; `undefined` is fine.
 *
 * @example
 * ```ts
 * clearAnyTimeout(run.timer);
 * ```
 */
export function clearAnyTimeout(timer: AnyTimer): void {
  if (timer === undefined) return;
  if (timer instanceof LongTimer) timer.clear();
  else clearTimeout(timer);
}

/**
 * Check a user's duration: ms ≥ 0, finite or `Infinity` (never). Returns
 * the message of what is wrong, or undefined when it is fine; each layer
 * throws its own typed error with it.
 *
 * @example
 * ```ts
 * const bad = durationProblem("timeout", options.timeout);
 * if (bad !== undefined) throw new CallError("invalid-argument", bad);
 * ```
 */
export function durationProblem(name: string, ms: unknown): string | undefined {
  if (typeof ms === "number" && ms >= 0 && !Number.isNaN(ms)) return undefined;
  return `${name} must be a number of ms ≥ 0 (Infinity for none), not ${describeValue(ms)}`;
}

/** A short, safe rendering of a bad input for an error message (never calls user code). */
export function describeValue(x: unknown): string {
  if (typeof x === "string") return JSON.stringify(x.length > 40 ? `${x.slice(0, 40)}…` : x);
  if (x === null || typeof x !== "object") return typeof x === "function" ? "a function" : String(x);
  return Array.isArray(x) ? "an array" : "an object";
}
