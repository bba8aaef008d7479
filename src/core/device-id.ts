/**
 * Identifies a device for the lifetime of the process. Ids are handed out in
 * increasing order and never reused, so an id seen in an old message can
 * never be confused with a newer device.
 */
export type DeviceId = number;

let lastId = 0;

/** @internal The next unused id. Integers stay exact up to 2^53, far beyond any process's lifetime. */
export function nextDeviceId(): DeviceId {
  return ++lastId;
}
