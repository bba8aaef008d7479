import type { DeviceId } from "./device-id.js";
import { deviceLabel, errorText } from "./describe.js";
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
  /** The device whose run crashed. */
  device?: DeviceId;
  /** Its name, if it has one: messages name it. */
  deviceName?: string;
}

/**
 * Why `manage()`/`partManage()` rejected.
 *
 * Crashes are made on the failure path of every managed run, so the library
 * makes them without capturing a stack (an `Error` stack costs microseconds
 * here). Their `message` and `stack` are built when first read: the message
 * names the device (`device "db" (#3)`, or `device #3` when it has no name)
 * and what happened; the stack starts `Crash [kind]: message` and goes on
 * with the stack of the `cause` (or, for a cascade, of the error the linked
 * device failed with), which is where the failure really happened. So a
 * crash nobody handles still tells Node's unhandled-rejection report
 * everything. `instanceof Crash` and `instanceof Error` both hold.
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
  /** The device whose run crashed (undefined for a crash made by hand without one). */
  declare readonly device: DeviceId | undefined;
  /** That device's name, if it has one. */
  declare readonly deviceName: string | undefined;

  constructor(kind: CrashKind, init: CrashInit = {}) {
    super(describe(kind, init.from, init.fault, init.cause, init.device, init.deviceName), "cause" in init ? { cause: init.cause } : undefined);
    assign(this, kind, init.from, init.fault, init.device, init.deviceName);
  }
}

type Writable = { kind: CrashKind; from: DeviceId | undefined; fault: Fault | undefined; device: DeviceId | undefined; deviceName: string | undefined };

function assign(crash: Crash, kind: CrashKind, from: DeviceId | undefined, fault: Fault | undefined, device: DeviceId | undefined, deviceName: string | undefined): void {
  const c = crash as unknown as Writable;
  c.kind = kind;
  c.from = from;
  c.fault = fault;
  c.device = device;
  c.deviceName = deviceName;
}

function describe(kind: CrashKind, from: DeviceId | undefined, fault: Fault | undefined, cause: unknown, device: DeviceId | undefined, deviceName: string | undefined): string {
  const what = whatHappened(kind, from, fault, cause, device);
  return device === undefined ? what : `${deviceLabel(device, deviceName)}: ${what}`;
}

function whatHappened(kind: CrashKind, from: DeviceId | undefined, fault: Fault | undefined, cause: unknown, device: DeviceId | undefined): string {
  switch (kind) {
    case "shutdown":
      return from === undefined ? "shutdown requested" : from === device ? "shutdown requested by its caller (options.signal or disconnect())" : `shutdown requested by device #${from}`;
    case "error":
      return `managed work failed: ${errorText(cause)}`;
    case "cascade": {
      const detail = fault?.kind === "error" && fault.error !== undefined ? ` (${errorText(fault.error)})` : "";
      return `linked device #${from} disconnected with fault "${fault?.kind}"${detail}`;
    }
    case "timeout":
      return "managed work timed out";
    case "killed":
      return fault === undefined
        ? "device was disconnected while its work ran"
        : `device was disconnected with fault "${fault.kind}" while its work ran`;
  }
}

Crash.prototype.name = "Crash";

/** The stack of whatever was thrown, when it has one. */
function stackOf(x: unknown): string | undefined {
  if (x === null || typeof x !== "object") return undefined;
  try {
    const stack = (x as { stack?: unknown }).stack;
    return typeof stack === "string" ? stack : undefined;
  } catch {
    return undefined; // a stack getter that throws shows nothing rather than breaking the report
  }
}

function crashMessage(this: Crash): string {
  return describe(this.kind, this.from, this.fault, this.cause, this.device, this.deviceName);
}

/** `Crash [kind]: message`, then where the failure really happened: the cause's stack, or a failed peer's. */
function crashStack(this: Crash): string {
  const head = `${this.name} [${this.kind}]: ${this.message}`;
  const cause = stackOf(this.cause);
  if (cause !== undefined) return `${head}\n    [cause] ${cause}`;
  const fault = this.fault;
  const peer = fault?.kind === "error" ? stackOf(fault.error) : undefined;
  return peer === undefined ? head : `${head}\n    [linked device's error] ${peer}`;
}

/** Assigning `stack` (as some loggers do) replaces it with a plain value, as on any Error. */
function setStack(this: Crash, value: unknown): void {
  Object.defineProperty(this, "stack", { value, writable: true, configurable: true, enumerable: false });
}

// Crashes the library makes itself have no own `message`: this getter builds it on demand,
// so a crash nobody prints costs nothing.
Object.defineProperty(Crash.prototype, "message", { configurable: true, get: crashMessage });
Object.defineProperty(Crash.prototype, "stack", { configurable: true, get: crashStack, set: setStack });

/**
 * Node's unhandled-rejection report prints a reason as an error only if it
 * has an *own* `stack` (else it says just `rejected with the reason
 * "Crash"`). One shared accessor, defined on each crash as it is handed
 * to a user: about 200–300 ns in a failing run, against ≥ 330 ns for a real
 * Error even with no frames captured, and nothing is built until it is read.
 */
const OWN_STACK: PropertyDescriptor = { configurable: true, enumerable: false, get: crashStack, set: setStack };

/**
 * @internal A {@link Crash} without a captured stack: a few hundred ns
 * instead of the microseconds a constructed `Error` costs, ready to be
 * handed to users (it has its own `stack`). Only the library calls it.
 * `device`/`deviceName`: the device whose run crashed, for the message.
 */
export function makeCrash(kind: CrashKind, from?: DeviceId, fault?: Fault, cause?: unknown, device?: DeviceId, deviceName?: string): Crash {
  return withOwnStack(bareCrash(kind, from, fault, cause, device, deviceName));
}

/**
 * @internal A Crash that may never leave the library (≈ 20 ns): a
 * supervised child's run ends with one that nobody sees unless its signal
 * exists. Pass it through {@link withOwnStack} before a user can get it.
 */
export function bareCrash(kind: CrashKind, from?: DeviceId, fault?: Fault, cause?: unknown, device?: DeviceId, deviceName?: string): Crash {
  const crash = Object.create(Crash.prototype) as Crash;
  assign(crash, kind, from, fault, device, deviceName);
  if (kind === "error") (crash as { cause?: unknown }).cause = cause;
  return crash;
}

/** @internal Give a bare crash its own `stack` (≈ 140 ns, once) as it is handed to a user. */
export function withOwnStack(crash: Crash): Crash {
  if (!Object.hasOwn(crash, "stack")) Object.defineProperty(crash, "stack", OWN_STACK);
  return crash;
}
