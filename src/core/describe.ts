/**
 * How the library names devices and faults in messages a person reads: a
 * device by its name when it has one (ids alone mean nothing in a log), and
 * a fault with the message of the error it carries.
 */
import type { DeviceId } from "./device-id.js";
import type { Fault } from "./fault.js";

/**
 * A device as a person reads it: `device "db" (#3)` when it has a name,
 * `device #3` when it has none.
 *
 * @example
 * ```ts
 * deviceLabel(3, "db");      // 'device "db" (#3)'
 * deviceLabel(3, undefined); // "device #3"
 * ```
 */
export function deviceLabel(id: DeviceId, name: string | undefined): string {
  return name === undefined ? `device #${id}` : `device ${JSON.stringify(name)} (#${id})`;
}

/**
 * A fault in a few words: its kind, and for an error the error's message,
 * for a cascade the device it came from. `undefined` (a clean exit) is
 * `"clean"`. Never throws, whatever the fault carries.
 *
 * @example
 * ```ts
 * faultText(Fault.error(new Error("connection reset"))); // "error: connection reset"
 * faultText(Fault.cascade(12));                          // "cascade from device #12"
 * faultText(undefined);                                  // "clean"
 * ```
 */
export function faultText(fault: Fault | undefined): string {
  if (fault === undefined || fault === null) return "clean";
  if (typeof fault !== "object") return `not a fault (${typeof fault})`;
  switch (fault.kind) {
    case "error":
      return "error" in fault && fault.error !== undefined ? `error: ${errorText(fault.error)}` : "error";
    case "cascade":
      return `cascade from device #${fault.from}`;
    case "noconnection":
      return `noconnection: node ${String(fault.node)} was lost`;
    default:
      return fault.kind;
  }
}

/**
 * What was thrown, as one line: an Error's message, anything else through
 * `String`. Never throws: a value whose `toString` or `message` getter
 * throws is shown by its type.
 *
 * @example
 * ```ts
 * errorText(new TypeError("bad")); // "bad"
 * errorText("disk full");          // "disk full"
 * ```
 */
export function errorText(error: unknown): string {
  try {
    if (error instanceof Error) return String(error.message);
    return String(error);
  } catch {
    try {
      return Object.prototype.toString.call(error);
    } catch {
      return "an unprintable value"; // a revoked Proxy throws even here
    }
  }
}
