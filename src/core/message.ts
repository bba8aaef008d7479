import type { DeviceId } from "./device-id.js";
import { type Fault, isFault } from "./fault.js";

/**
 * A control message in a device's mailbox.
 *
 * - `shutdown`: a request to stop; `from` is who asked. Managed work treats
 *   it as a clean, requested stop.
 * - `disconnected`: a device this one hears about has disconnected. No
 *   `fault` means it ended cleanly.
 *
 * Messages are shared between all the devices that receive the same
 * notification: treat them as read-only.
 *
 * @example
 * ```ts
 * for await (const message of device) {
 *   if (message.kind === "disconnected" && message.fault) console.log("lost", message.from);
 * }
 * ```
 */
export type Message =
  | { readonly kind: "shutdown"; readonly from: DeviceId }
  | { readonly kind: "disconnected"; readonly from: DeviceId; readonly fault?: Fault };

/** The `kind` of a {@link Message}. */
export type MessageKind = Message["kind"];

/**
 * Constructors and guards for {@link Message} values.
 *
 * @example
 * ```ts
 * line.send(Message.shutdown(me.id));
 * Message.disconnected(7, Fault.timeout);
 * ```
 */
export const Message = {
  /** Ask the receiver to stop; `from` is the asking device. */
  shutdown(from: DeviceId): Message {
    return { kind: "shutdown", from };
  },
  /** Tell the receiver that `from` disconnected, with `fault` unless it ended cleanly. */
  disconnected(from: DeviceId, fault?: Fault): Message {
    return fault === undefined ? { kind: "disconnected", from } : { kind: "disconnected", from, fault };
  },
} as const;

/**
 * True when `x` has the shape of a {@link Message}.
 *
 * @example
 * ```ts
 * isMessage({ kind: "shutdown", from: 1 }); // true
 * ```
 */
export function isMessage(x: unknown): x is Message {
  if (typeof x !== "object" || x === null) return false;
  const m = x as { kind?: unknown; from?: unknown; fault?: unknown };
  if (typeof m.from !== "number") return false;
  if (m.kind === "shutdown") return true;
  return m.kind === "disconnected" && (m.fault === undefined || isFault(m.fault));
}
