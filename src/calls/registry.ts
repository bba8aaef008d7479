/**
 * Unique names for servers and devices (Erlang's `register`/`whereis`).
 * A name is freed the moment its device disconnects.
 */
import { Device } from "../core/device.js";
import { BackplaneError } from "../core/error.js";
import { CallError } from "./call-error.js";
import { Server } from "./server.js";

/** What a name can stand for. */
export type Registered = Server<any, any> | Device;

/**
 * Why a registration was refused.
 * - `already-registered`: the name belongs to a live device.
 * - `device-down`: the device has already disconnected.
 * - `invalid-argument`: not a non-empty string name, or not a Device/Server.
 */
export type RegistryErrorCode = "already-registered" | "device-down" | "invalid-argument";

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

function deviceOf(target: Registered): Device {
  return target instanceof Server ? target.device : target;
}

/**
 * Names → live servers or devices. `registry` is the default instance that
 * `call("name", …)` uses.
 *
 * @example
 * ```ts
 * registry.register("billing", serve(new Device(), charge));
 * await call("billing", { cents: 500 });
 * ```
 */
export class Registry {
  readonly #byName = new Map<string, Registered>();
  /** The names each registered device holds, so a disconnect frees them without a scan. */
  readonly #byDevice = new Map<number, Set<string>>();
  /** Monitors every registered device, so its names are freed as soon as it ends. */
  #watcher: Device | undefined;

  /**
   * Give `target` the unique `name`.
   *
   * @throws {RegistryError} `already-registered` (the name is held by a live device), `device-down`, `invalid-argument`.
   */
  register(name: string, target: Registered): void {
    if (typeof name !== "string" || name.length === 0) throw new RegistryError("invalid-argument", "a registered name must be a non-empty string");
    if (!(target instanceof Server || target instanceof Device)) throw new RegistryError("invalid-argument", "only a Device or a Server can be registered");
    const device = deviceOf(target);
    if (!device.isConnected) throw new RegistryError("device-down", `cannot register "${name}": device ${device.id} has disconnected`);
    if (this.lookup(name) !== undefined) throw new RegistryError("already-registered", `"${name}" is already registered to a live device`);
    this.#byName.set(name, target);
    let names = this.#byDevice.get(device.id);
    if (names === undefined) {
      names = new Set();
      this.#byDevice.set(device.id, names);
      this.#watch(device);
    }
    names.add(name);
  }

  /** The live server or device under `name`, if any. */
  lookup(name: string): Registered | undefined {
    const target = this.#byName.get(name);
    if (target === undefined) return undefined;
    if (deviceOf(target).isConnected) return target;
    this.#forget(deviceOf(target).id); // ended before the watcher's notice was read
    return undefined;
  }

  /** Free `name`; false if it was not registered. */
  unregister(name: string): boolean {
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

  /** The names of live registrations. */
  names(): string[] {
    return [...this.#byName.keys()].filter((name) => this.lookup(name) !== undefined);
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
  if (typeof target === "string") {
    const found = reg.lookup(target);
    if (found instanceof Server) return found;
    throw new CallError("unknown-name", found === undefined ? `no live server is registered as "${target}"` : `"${target}" is a device, not a server`);
  }
  throw new CallError("invalid-argument", "call target must be a Server or a registered name");
}
