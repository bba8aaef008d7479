/**
 * The restart rules as pure functions: state in, decision out.
 */
import type { Fault } from "../core/fault.js";
import type { Restart } from "./child-spec.js";

/** What happens to a child that ended on its own. */
export type ExitDecision = "restart" | "keep" | "delete";

/**
 * OTP's restart types: permanent children always come back; transient ones
 * only after a fault (a clean exit or a shutdown is normal); temporary ones
 * never, and are forgotten when they end.
 */
export function decideExit(restart: Restart, fault: Fault | undefined): ExitDecision {
  switch (restart) {
    case "permanent":
      return "restart";
    case "transient":
      return fault === undefined ? "keep" : "restart";
    case "temporary":
      return "delete";
  }
}

/**
 * OTP's restart intensity as a sliding window: `add(now)` records a restart
 * and says whether there are now more than `intensity` of them at most
 * `period` ms old (a restart exactly `period` old still counts, as OTP's
 * add_restart keeps it). Old entries are dropped from a moving head, so a
 * restart costs O(1) however many the window holds.
 */
export class RestartWindow {
  #times: number[] = [];
  #head = 0;
  constructor(
    readonly intensity: number,
    readonly period: number,
  ) {}

  /** Restarts inside the window now. */
  get count(): number {
    return this.#times.length - this.#head;
  }

  /** Restarts at most `period` ms old at `now`, without recording one. */
  countAt(now: number): number {
    const times = this.#times;
    let head = this.#head;
    while (head < times.length && now - times[head]! > this.period) head++;
    return times.length - head;
  }

  add(now: number): boolean {
    const times = this.#times;
    while (this.#head < times.length && now - times[this.#head]! > this.period) this.#head++;
    times.push(now);
    if (this.#head > 64 && this.#head * 2 > times.length) {
      this.#times = times.slice(this.#head); // compact now and then, not at every restart
      this.#head = 0;
    }
    return this.count > this.intensity;
  }
}

/** Backoff between restarts: `min`, doubling per consecutive restart up to `max`, plus up to `jitter`×delay more. */
export interface Backoff {
  min: number;
  max: number;
  /** Fraction of the delay added at random, upwards only (0.2 = up to 20 % longer). Default 0. */
  jitter?: number;
  /** A child that ran this long (ms) since its last start begins again at `min`. Default: the intensity `period`. */
  reset?: number;
}

/** The delay before the `level`-th consecutive restart (0 = the first). `random` is in [0, 1). */
export function backoffDelay(backoff: Backoff, level: number, random: number): number {
  const base = Math.min(backoff.max, backoff.min * 2 ** Math.min(level, 52));
  return base + base * (backoff.jitter ?? 0) * random;
}
