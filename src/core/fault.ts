import type { DeviceId } from "./device-id.js";

/**
 * Why a device disconnected when it did not end cleanly. A clean exit has no
 * fault at all, so `fault === undefined` always means "normal".
 *
 * @example
 * ```ts
 * switch (message.fault?.kind) {
 *   case undefined: break;                 // clean exit
 *   case "error": log(message.fault.error); break;
 *   case "cascade": log(`because ${message.fault.from} failed`); break;
 *   default: log(message.fault.kind);      // drop, timeout, killed
 * }
 * ```
 */
export type Fault =
  | { readonly kind: "drop" }
  | { readonly kind: "error"; readonly error?: unknown }
  | { readonly kind: "cascade"; readonly from: DeviceId }
  | { readonly kind: "timeout" }
  | { readonly kind: "killed" }
  | { readonly kind: "noconnection"; readonly node: string }; // backplane/cluster: the device's node was lost

/** The `kind` of a {@link Fault}. */
export type FaultKind = Fault["kind"];

const DROP: Fault = Object.freeze({ kind: "drop" });
const TIMEOUT: Fault = Object.freeze({ kind: "timeout" });
const KILLED: Fault = Object.freeze({ kind: "killed" });

/**
 * Constructors and guards for {@link Fault} values. The faults without data
 * are shared frozen constants, so comparing `fault === Fault.drop` works.
 *
 * @example
 * ```ts
 * device.disconnect(Fault.error(new Error("disk full")));
 * if (isFault(x) && x.kind === "cascade") console.log(x.from);
 * ```
 */
export const Fault = {
  /** The device was disposed or garbage-collected without disconnecting on purpose. */
  drop: DROP,
  /** Managed work overran its deadline. */
  timeout: TIMEOUT,
  /** Forcibly stopped after a shutdown grace period. */
  killed: KILLED,
  /** The task failed with `error` (whatever it threw). */
  error(error?: unknown): Fault {
    return { kind: "error", error };
  },
  /** A device this one depended on (`from`) faulted. */
  cascade(from: DeviceId): Fault {
    return { kind: "cascade", from };
  },
  /** The device lives on cluster node `node`, which was lost (crashed, hung or cut off): `backplane/cluster`. */
  noconnection(node: string): Fault {
    return { kind: "noconnection", node };
  },
} as const;

const FAULT_KINDS: ReadonlySet<string> = new Set(["drop", "error", "cascade", "timeout", "killed", "noconnection"]);

/**
 * True when `x` has the shape of a {@link Fault}.
 *
 * @example
 * ```ts
 * isFault({ kind: "timeout" }); // true
 * isFault(new Error());         // false
 * ```
 */
export function isFault(x: unknown): x is Fault {
  if (typeof x !== "object" || x === null) return false;
  const kind = (x as { kind?: unknown }).kind;
  if (typeof kind !== "string" || !FAULT_KINDS.has(kind)) return false;
  if (kind === "noconnection") return typeof (x as { node?: unknown }).node === "string";
  return kind !== "cascade" || typeof (x as { from?: unknown }).from === "number";
}
