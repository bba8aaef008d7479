/**
 * The kill path: OTP's `shutdown/2` said once, for every kind of child
 * (supervised children, dynamic and task supervisors' children, isolated
 * children — whose managed run terminates the worker when it is killed).
 *
 * - `brutal`: killed at once (its device disconnects with fault `killed`;
 *   its managed run aborts its signal and is abandoned).
 * - ms: a `shutdown` message; the managed run aborts its signal and gives
 *   the work that many ms (its `grace`) before it kills it.
 * - `infinity`: a `shutdown` message, and as long as it takes.
 */
import type { Device } from "../core/device.js";
import { Fault } from "../core/fault.js";
import type { Shutdown } from "./child-spec.js";

/**
 * Ask the run on `device` to stop as `shutdown` says. The grace period and
 * the kill on overrun are the managed run's (`grace` = {@link graceOf}), so
 * this sends one message or makes one disconnect and never keeps a timer.
 */
export function requestStop(device: Device, shutdown: Shutdown, from: number): void {
  if (shutdown === "brutal") device.disconnect(Fault.killed);
  else device.line().shutdown(from);
}

/** The `grace` a managed run gets for a shutdown spec (`brutal` is killed directly and needs none). */
export function graceOf(shutdown: Shutdown): number {
  return shutdown === "infinity" ? Number.POSITIVE_INFINITY : shutdown === "brutal" ? 0 : shutdown;
}

/**
 * Whether an abort reason says "killed" (a brutal shutdown or a grace
 * overrun) rather than "asked to stop": a task supervisor whose own device
 * is killed kills its tasks instead of giving them their grace.
 */
export function isKilled(reason: unknown): boolean {
  return typeof reason === "object" && reason !== null && (reason as { kind?: unknown }).kind === "killed";
}
