/**
 * Unique names for servers and devices (Erlang's `register`/`whereis`).
 * A name is freed the moment its device disconnects.
 */
import { Device } from "../core/device.js";
import { BackplaneError } from "../core/error.js";
import { type AnyTimer, clearAnyTimeout, describeValue, durationProblem, setAnyTimeout } from "../core/timer.js";
import { CallError } from "./call-error.js";
import { Server } from "./server.js";

/**
 * Anything that lives on a device: a `Supervisor`, a `DynamicSupervisor`, a `TaskSupervisor`, your own class.
 *
 * @example
 * ```ts
 * class Cache implements HasDevice { readonly device = new Device({ name: "cache" }); }
 * registry.register("cache", new Cache());
 * ```
 */
export interface HasDevice {
  readonly device: Device;
}

/** What a name can stand for: a server, a device, or anything that has a `device` (its life is the device's). */
export type Registered = Server<any, any> | Device | HasDevice;

/**
 * Why a registration, a lookup or a wait was refused.
 * - `already-registered`: the name belongs to a live device.
 * - `device-down`: the device has already disconnected.
 * - `timeout`: `whenRegistered` waited its `timeout` and nobody took the name.
 * - `aborted`: `whenRegistered`'s `signal` aborted (`cause` = its reason).
 * - `invalid-argument`: not a non-empty string name, not something with a Device, or bad options.
 */
export type RegistryErrorCode = "already-registered" | "device-down" | "timeout" | "aborted" | "invalid-argument";

/**
 * A typed refusal from a {@link Registry}.
 *
 * @example
 * ```ts
 * try { registry.register("billing", server); }
 * catch (e) { if (e instanceof RegistryError && e.code === "already-registered") … }
 * ```
 */
export class RegistryError extends BackplaneError<RegistryErrorCode> {}
RegistryError.prototype.name = "RegistryError";

/**
 * Options of {@link Registry.whenRegistered}.
 *
 * @example
 * ```ts
 * await registry.whenRegistered("db", { timeout: 2_000, signal });
 * ```
 */
export interface WhenRegisteredOptions {
  /** ms to wait before rejecting with `timeout`. Default `Infinity`. */
  timeout?: number;
  /** Stop waiting: rejects with `aborted`, `cause` = the signal's reason. */
  signal?: AbortSignal;
}

function deviceOf(target: Registered): Device {
  return target instanceof Device ? target : target.device;
}

function hasDevice(target: unknown): target is Registered {
  if (target instanceof Device || target instanceof Server) return true;
  if ((typeof target !== "object" && typeof target !== "function") || target === null) return false;
  try {
    return (target as { device?: unknown }).device instanceof Device;
  } catch {
    return false; // a `device` getter that throws: not something we can register
  }
}

function checkName(name: unknown, what: string): void {
  if (typeof name !== "string" || name.length === 0) throw new RegistryError("invalid-argument", `${what}: a registered name must be a non-empty string, not ${describeValue(name)}`);
}

/** One caller of `whenRegistered`, until the name is taken, its timeout passes or its signal aborts. */
class Waiter {
  timer: AnyTimer = undefined;
  onAbort: (() => void) | undefined = undefined;
  constructor(
    readonly name: string,
    readonly signal: AbortSignal | undefined,
    readonly resolve: (target: Registered) => void,
    readonly reject: (error: RegistryError) => void,
  ) {}
}

/**
 * Names → live servers, devices, or anything with a `device` (a supervisor,
 * say). A name is freed the moment its device disconnects. `registry` is
 * the default instance that `call("name", …)` uses.
 *
 * @example
 * ```ts
 * registry.register("billing", serve(new Device(), charge));
 * await call("billing", { cents: 500 });
 * registry.register("jobs", taskSupervisor);
 * registry.whereis("jobs", TaskSupervisor)?.async(() => work());
 * ```
 */
export class Registry {
  readonly #byName = new Map<string, Registered>();
  /** The names each registered device holds, so a disconnect frees them without a scan. */
  readonly #byDevice = new Map<number, Set<string>>();
  /** Callers waiting for a name to be registered. */
  readonly #waiters = new Map<string, Set<Waiter>>();
  /** Monitors every registered device, so its names are freed as soon as it ends. */
  #watcher: Device | undefined;

  /**
   * Give `target` the unique `name`. `target` is a Server, a Device, or any
   * object with a `device: Device` (a Supervisor, DynamicSupervisor,
   * TaskSupervisor…): the name lives as long as that device.
   *
   * @throws {RegistryError} `already-registered` (the name is held by a live device), `device-down`, `invalid-argument`.
   * @example
   * ```ts
   * registry.register("jobs", new TaskSupervisor());
   * ```
   */
  register(name: string, target: Registered): void {
    checkName(name, "register");
    if (!hasDevice(target)) throw new RegistryError("invalid-argument", `register "${name}": only a Device, a Server or an object with a device can be registered, not ${describeValue(target)}`);
    const device = deviceOf(target);
    if (!device.isConnected) throw new RegistryError("device-down", `cannot register "${name}": device ${device.name ?? device.id} has disconnected`);
    if (this.lookup(name) !== undefined) throw new RegistryError("already-registered", `"${name}" is already registered to a live device`);
    this.#byName.set(name, target);
    let names = this.#byDevice.get(device.id);
    if (names === undefined) {
      names = new Set();
      this.#byDevice.set(device.id, names);
      this.#watch(device);
    }
    names.add(name);
    const waiters = this.#waiters.get(name);
    if (waiters !== undefined) {
      this.#waiters.delete(name);
      for (const waiter of waiters) {
        this.#drop(waiter);
        waiter.resolve(target);
      }
    }
  }

  /**
   * The live target under `name`, if any.
   *
   * @example
   * ```ts
   * const target = registry.lookup("billing"); // Server | Device | HasDevice | undefined
   * ```
   */
  lookup(name: string): Registered | undefined {
    checkName(name, "lookup");
    const target = this.#byName.get(name);
    if (target === undefined) return undefined;
    if (deviceOf(target).isConnected) return target;
    this.#forget(deviceOf(target).id); // ended before the watcher's notice was read
    return undefined;
  }

  /**
   * The live target under `name`, typed. With `type`, a target of another
   * class reads as undefined; without it, `T` is the caller's word.
   *
   * @example
   * ```ts
   * const jobs = registry.whereis("jobs", TaskSupervisor); // TaskSupervisor | undefined
   * const billing = registry.whereis<IsolatedServer>("billing");
   * ```
   */
  whereis<T extends object = Registered>(name: string, type?: abstract new (...args: never[]) => T): T | undefined {
    if (type !== undefined && typeof type !== "function") throw new RegistryError("invalid-argument", `whereis "${String(name)}": type must be a class, not ${describeValue(type)}`);
    const target = this.lookup(name);
    if (target === undefined) return undefined;
    if (type !== undefined && !(target instanceof type)) return undefined;
    return target as unknown as T;
  }

  /**
   * Resolves with the target under `name` as soon as one is registered (at
   * once if one is). For callers of a server that restarts: wait for it to
   * come back instead of writing a retry loop.
   *
   * @example
   * ```ts
   * const billing = await registry.whenRegistered("billing", { timeout: 2_000 });
   * ```
   */
  whenRegistered(name: string, options?: WhenRegisteredOptions): Promise<Registered> {
    try {
      checkName(name, "whenRegistered");
    } catch (error) {
      return Promise.reject(error);
    }
    if (options !== undefined && (typeof options !== "object" || options === null)) return Promise.reject(new RegistryError("invalid-argument", `whenRegistered options must be an object, not ${describeValue(options)}`));
    const timeout = options?.timeout ?? Number.POSITIVE_INFINITY;
    const bad = durationProblem("timeout", timeout);
    if (bad !== undefined) return Promise.reject(new RegistryError("invalid-argument", bad));
    const signal = options?.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) return Promise.reject(new RegistryError("invalid-argument", `signal must be an AbortSignal, not ${describeValue(signal)}`));
    const found = this.lookup(name);
    if (found !== undefined) return Promise.resolve(found);
    if (signal?.aborted === true) return Promise.reject(new RegistryError("aborted", `stopped waiting for "${name}": the signal aborted`, signal.reason));
    return new Promise<Registered>((resolve, reject) => {
      const waiter = new Waiter(name, signal, resolve, reject);
      let waiters = this.#waiters.get(name);
      if (waiters === undefined) {
        waiters = new Set();
        this.#waiters.set(name, waiters);
      }
      waiters.add(waiter);
      if (timeout !== Number.POSITIVE_INFINITY) {
        waiter.timer = setAnyTimeout(() => {
          waiter.timer = undefined;
          this.#giveUp(waiter, new RegistryError("timeout", `nothing was registered as "${name}" within ${timeout} ms`));
        }, timeout);
      }
      if (signal !== undefined) {
        waiter.onAbort = () => this.#giveUp(waiter, new RegistryError("aborted", `stopped waiting for "${name}": the signal aborted`, signal.reason));
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
    });
  }

  /**
   * Free `name`; false if it was not registered.
   *
   * @example
   * ```ts
   * registry.unregister("billing");
   * ```
   */
  unregister(name: string): boolean {
    checkName(name, "unregister");
    const target = this.#byName.get(name);
    if (target === undefined) return false;
    this.#byName.delete(name);
    const device = deviceOf(target);
    const names = this.#byDevice.get(device.id);
    names?.delete(name);
    if (names !== undefined && names.size === 0) {
      this.#byDevice.delete(device.id);
      if (device.isConnected) this.#watcher?.unlink(device, "monitor"); // nothing left to free when it ends
    }
    return true;
  }

  /**
   * The names of live registrations.
   *
   * @example
   * ```ts
   * console.log(registry.names()); // ["billing", "jobs"]
   * ```
   */
  names(): string[] {
    return [...this.#byName.keys()].filter((name) => this.lookup(name) !== undefined);
  }

  #giveUp(waiter: Waiter, error: RegistryError): void {
    const waiters = this.#waiters.get(waiter.name);
    if (waiters === undefined || !waiters.delete(waiter)) return;
    if (waiters.size === 0) this.#waiters.delete(waiter.name);
    this.#drop(waiter);
    waiter.reject(error);
  }

  /** A waiter is done: its timer and its signal listener go (a shared signal must not collect them). */
  #drop(waiter: Waiter): void {
    clearAnyTimeout(waiter.timer);
    waiter.timer = undefined;
    if (waiter.onAbort !== undefined) waiter.signal!.removeEventListener("abort", waiter.onAbort);
    waiter.onAbort = undefined;
  }

  #watch(device: Device): void {
    if (this.#watcher === undefined) {
      const watcher = new Device({ name: "registry" });
      this.#watcher = watcher;
      void this.#drain(watcher);
    }
    this.#watcher.link(device, "monitor");
  }

  #forget(deviceId: number): void {
    const names = this.#byDevice.get(deviceId);
    if (names === undefined) return;
    this.#byDevice.delete(deviceId);
    for (const name of names) this.#byName.delete(name);
  }

  async #drain(watcher: Device): Promise<void> {
    for await (const message of watcher) if (message.kind === "disconnected") this.#forget(message.from);
  }
}

/** The default registry. */
export const registry: Registry = new Registry();

/** @internal Resolve a call target: a server, or a name in `reg`. */
export function resolveServer(target: Server<any, any> | string, reg: Registry): Server<any, any> {
  if (target instanceof Server) return target;
  if (typeof target === "string" && target.length > 0) {
    const found = reg.lookup(target);
    if (found instanceof Server) return found;
    throw new CallError("unknown-name", found === undefined ? `no live server is registered as "${target}"` : `"${target}" is registered, but not to a server`);
  }
  throw new CallError("invalid-argument", `call target must be a Server or a registered name, not ${describeValue(target)}`);
}
