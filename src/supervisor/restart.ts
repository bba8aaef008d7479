/**
 * The restart rules as pure functions: state in, decision out.
 */
import type { Fault } from "../fault.js";
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
 * OTP's restart intensity: record a restart at `now` and keep only those
 * at most `period` ms old. More than `intensity` of them means the
 * supervisor must give up. Returns the new history (oldest first).
 */
export function addRestart(history: readonly number[], now: number, intensity: number, period: number): { history: number[]; exceeded: boolean } {
  // The history is oldest first, so the restarts that left the window are a prefix.
  // A restart exactly `period` old still counts, as in OTP's add_restart.
  let first = 0;
  while (first < history.length && now - history[first]! > period) first++;
  const kept = history.slice(first);
  kept.push(now);
  return { history: kept, exceeded: kept.length > intensity };
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
