/**
 * Identifies a device for the lifetime of the process. Ids are handed out in
 * increasing order and never reused, so an id seen in an old message can
 * never be confused with a newer device.
 */
export type DeviceId = number;

/**
 * The counter lives on `globalThis` under a registered symbol: when one
 * process loads the package twice (its ESM and its CJS build, Node's dual
 * package hazard), both copies still hand out ids from one sequence.
 */
const counter: { last: number } = ((globalThis as Record<symbol, unknown>)[Symbol.for("backplane.deviceIds")] ??= { last: 0 }) as { last: number };

/** @internal The next unused id. Integers stay exact up to 2^53, far beyond any process's lifetime. */
export function nextDeviceId(): DeviceId {
  return ++counter.last;
}
