import type { DeviceId } from "./device-id.js";
import type { Fault } from "./fault.js";

/**
 * How a managed run ended when it did not return a value.
 *
 * - `shutdown`: a `shutdown` message (or the caller's abort signal) asked it to stop.
 * - `error`: the work threw or rejected; `cause` holds what it threw.
 * - `cascade`: a linked device disconnected with a fault.
 * - `timeout`: the work overran `options.timeout`.
 * - `killed`: someone else disconnected the device while its work ran
 *   (a supervisor's kill, `device.disconnect()`, disposal); `fault` is the
 *   fault it was given.
 */
export type CrashKind = "shutdown" | "error" | "cascade" | "timeout" | "killed";

/** Fields of a {@link Crash} besides its kind. */
export interface CrashInit {
  /** `shutdown`: who asked. `cascade`: the device that faulted. */
  from?: DeviceId;
  /** `cascade`: the fault that device ended with. `killed`: the fault it was given. */
  fault?: Fault;
  /** `error`: what the work threw. */
  cause?: unknown;
}

/**
 * Why `manage()`/`partManage()` rejected.
 *
 * Crashes are made on the failure path of every managed run, so the library
 * makes them without capturing a stack (an `Error` stack costs microseconds
 * here): `stack` shows the crash and then the stack of its `cause`, which is
 * where the failure really happened. `instanceof Crash` and
 * `instanceof Error` both hold.
 *
 * @example
 * ```ts
 * try { await device.manage(work); }
 * catch (e) {
 *   if (e instanceof Crash && e.kind === "cascade") console.log("peer", e.from, "failed:", e.fault);
 * }
 * ```
 */
export class Crash extends Error {
  declare readonly kind: CrashKind;
  declare readonly from: DeviceId | undefined;
  declare readonly fault: Fault | undefined;

  constructor(kind: CrashKind, init: CrashInit = {}) {
    super(describe(kind, init.from, init.fault, init.cause), "cause" in init ? { cause: init.cause } : undefined);
    assign(this, kind, init.from, init.fault);
  }
}

function assign(crash: Crash, kind: CrashKind, from: DeviceId | undefined, fault: Fault | undefined): void {
  const c = crash as { kind: CrashKind; from: DeviceId | undefined; fault: Fault | undefined };
  c.kind = kind;
  c.from = from;
  c.fault = fault;
}

function describe(kind: CrashKind, from: DeviceId | undefined, fault: Fault | undefined, cause: unknown): string {
  switch (kind) {
    case "shutdown":
      return `shutdown requested by device ${from}`;
    case "error":
      return `managed work failed: ${causeText(cause)}`;
    case "cascade":
      return `linked device ${from} disconnected with fault "${fault?.kind}"`;
    case "timeout":
      return "managed work timed out";
    case "killed":
      return fault === undefined
        ? "device was disconnected while its work ran"
        : `device was disconnected with fault "${fault.kind}" while its work ran`;
  }
}

function causeText(cause: unknown): string {
  if (cause instanceof Error) return cause.message;
  try {
    return String(cause);
  } catch {
    return Object.prototype.toString.call(cause);
  }
}

Crash.prototype.name = "Crash";

// Crashes the library makes itself have no own `message`/`stack`: these
// getters build them on demand, so a crash nobody prints costs nothing.
Object.defineProperty(Crash.prototype, "message", {
  configurable: true,
  get(this: Crash): string {
    return describe(this.kind, this.from, this.fault, this.cause);
  },
});
Object.defineProperty(Crash.prototype, "stack", {
  configurable: true,
  get(this: Crash): string {
    const head = `${this.name}: ${this.message}`;
    const cause = this.cause as { stack?: unknown } | undefined;
    return cause !== null && typeof cause === "object" && typeof cause.stack === "string"
      ? `${head}\n    [cause] ${cause.stack}`
      : head;
  },
});

/**
 * @internal A {@link Crash} without a captured stack: about 20 ns instead of
 * the microseconds a constructed `Error` costs. Only the library calls it.
 */
export function makeCrash(kind: CrashKind, from?: DeviceId, fault?: Fault, cause?: unknown): Crash {
  const crash = Object.create(Crash.prototype) as Crash;
  assign(crash, kind, from, fault);
  if (kind === "error") (crash as { cause?: unknown }).cause = cause;
  return crash;
}
