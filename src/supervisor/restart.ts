/**
 * The restart rules as pure functions: state in, decision out.
 */
import type { Fault } from "../core/fault.js";
import type { Restart, Strategy } from "./child-spec.js";

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

/** What a supervisor does about a child that ended on its own (OTP's `do_restart`, with auto-shutdown and intensity). */
export type ExitPlan =
  /** Drop the child's spec (temporary; or ended for good under a DynamicSupervisor). */
  | { readonly kind: "forget" }
  /** Keep its spec, stopped (a transient child's normal exit). */
  | { readonly kind: "keep" }
  /** A significant child ended for good: the supervisor shuts down cleanly. */
  | { readonly kind: "auto-shutdown"; readonly forget: boolean }
  /** One restart too many within the period: the supervisor gives up. */
  | { readonly kind: "give-up" }
  /** Restart it (and its group, by strategy) after `delay` ms; `level` is its next backoff level. */
  | { readonly kind: "restart"; readonly delay: number; readonly level: number };

/** Everything {@link planExit} looks at: the exit, the child's spec, the supervisor's policy and its restart window now. */
export interface ExitFacts {
  readonly fault: Fault | undefined;
  readonly restart: Restart;
  readonly significant: boolean;
  /** ms the run lasted (a quiet run resets the backoff). */
  readonly uptime: number;
  /** The child's consecutive-restart level before this one. */
  readonly backoffLevel: number;
  readonly autoShutdown: "never" | "any-significant" | "all-significant";
  /** Another significant child is still up (for `all-significant`). */
  readonly otherSignificantUp: boolean;
  /** Elixir's DynamicSupervisor forgets a child that ends for good. */
  readonly forgetStopped: boolean;
  /** Restarts already inside the window at this moment. */
  readonly restartsInWindow: number;
  readonly intensity: number;
  readonly period: number;
  readonly backoff: Backoff | undefined;
  /** A number in [0, 1) for the jitter. */
  readonly random: number;
}

/**
 * The restart decision, pure: an exit and the state around it in, a plan
 * out. Intensity is counted before the restart (OTP's add_restart): the
 * restart that would make more than `intensity` inside the window is the
 * one that gives up.
 */
export function planExit(f: ExitFacts): ExitPlan {
  const decision = decideExit(f.restart, f.fault);
  if (decision !== "restart") {
    const forget = decision === "delete" || f.forgetStopped;
    if (f.significant && f.autoShutdown !== "never" && (f.autoShutdown === "any-significant" || !f.otherSignificantUp)) return { kind: "auto-shutdown", forget };
    return forget ? FORGET : KEEP;
  }
  if (f.restartsInWindow + 1 > f.intensity) return GIVE_UP;
  const backoff = f.backoff;
  if (backoff === undefined) return RESTART_NOW;
  const level = f.uptime >= (backoff.reset ?? f.period) ? 0 : f.backoffLevel;
  return { kind: "restart", delay: backoffDelay(backoff, level, f.random), level: level + 1 };
}

/**
 * A restart attempt failed (an init threw): try again, counted like any
 * restart (OTP's try_again_restart), or give up.
 */
export function planRetry(restartsInWindow: number, intensity: number, backoff: Backoff | undefined, level: number, random: number): ExitPlan {
  if (restartsInWindow + 1 > intensity) return GIVE_UP;
  if (backoff === undefined) return RESTART_NOW;
  return { kind: "restart", delay: backoffDelay(backoff, level, random), level: level + 1 };
}

const FORGET: ExitPlan = { kind: "forget" };
const KEEP: ExitPlan = { kind: "keep" };
const GIVE_UP: ExitPlan = { kind: "give-up" };
const RESTART_NOW: ExitPlan = { kind: "restart", delay: 0, level: 0 };

/**
 * Who restarts with the child at `failed` (indices in start order): it
 * alone, everyone still listed as up or restarting, or it and those after
 * it. `down[i]` is true for a child that is stopped (not brought back).
 */
export function restartGroup(strategy: Strategy, down: readonly boolean[], failed: number): number[] {
  if (strategy === "one-for-one") return [failed];
  const group: number[] = [];
  const from = strategy === "one-for-all" ? 0 : failed;
  for (let i = from; i < down.length; i++) if (i === failed || !down[i]) group.push(i);
  return group;
}
