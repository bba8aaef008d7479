/**
 * The calling side: `Client` (a handle that follows a name across restarts)
 * and the free functions `call` and `cast`.
 */
import { describeValue, durationProblem } from "../core/timer.js";
import { CallError } from "./call-error.js";
import { Registry, RegistryError, registry as defaultRegistry, resolveServer } from "./registry.js";
import { type CallOptions, callOptionsProblem, Server } from "./server.js";

/** A target: a server, or a name in the registry (looked up at each call, so a restarted server is found). */
export type CallTarget<Req = unknown, Res = unknown> = Server<Req, Res> | string;

/** Node-style callback of the callback form of {@link Client.call}. */
export type CallCallback<Res> = (error: CallError | null, reply?: Res) => void;

/**
 * Options of a call by {@link Client.call} or {@link call}.
 *
 * @example
 * ```ts
 * await new Client("billing").call(charge, { timeout: 1_000, waitForName: 2_000, signal });
 * ```
 */
export interface ClientCallOptions extends CallOptions {
  /**
   * When the target is a name that nobody holds right now (a server being
   * restarted), wait up to this many ms for it to be registered, then call.
   * Default 0: fail at once with `unknown-name`. The call's own `timeout`
   * starts once the server is found; `signal` covers the wait too.
   */
  waitForName?: number;
}

/**
 * Options of the free {@link call}: a call's options and the registry names are looked up in.
 *
 * @example
 * ```ts
 * await call("billing", charge, { registry: tenantRegistry, waitForName: 500 });
 * ```
 */
export interface FreeCallOptions extends ClientCallOptions {
  registry?: Registry;
}

/**
 * Calls to one server.
 *
 * @example
 * ```ts
 * const billing = new Client<Charge, Receipt>("billing");
 * const receipt = await billing.call({ cents: 500 }, { timeout: 1_000, waitForName: 2_000 });
 * billing.cast({ cents: 0 });                       // fire and forget
 * billing.call({ cents: 1 }, {}, (err, receipt) => …); // callback form
 * ```
 */
export class Client<Req = unknown, Res = unknown> {
  readonly target: CallTarget<Req, Res>;
  readonly #registry: Registry;

  /** @throws {CallError} `invalid-argument` for a target that is neither a Server nor a non-empty name, or a bad `registry`. */
  constructor(target: CallTarget<Req, Res>, options?: { registry?: Registry }) {
    if (!(target instanceof Server) && (typeof target !== "string" || target.length === 0)) throw new CallError("invalid-argument", `a Client needs a Server or a registered name, not ${describeValue(target)}`);
    if (options !== undefined && (typeof options !== "object" || options === null)) throw new CallError("invalid-argument", `Client options must be an object, not ${describeValue(options)}`);
    const registry = options?.registry ?? defaultRegistry;
    if (!(registry instanceof Registry)) throw new CallError("invalid-argument", `registry must be a Registry, not ${describeValue(registry)}`);
    this.target = target;
    this.#registry = registry;
  }

  /**
   * Send `request` and wait for the reply. Rejects with {@link CallError}:
   * `server-down` at once if the server is dead or dies meanwhile,
   * `timeout`, `aborted`, `unknown-name`, `not-cloneable` (isolated servers).
   * The callback form calls back outside the promise chain (a callback that
   * throws is an uncaught exception, as with any Node callback API).
   *
   * @throws {CallError} `invalid-argument`, synchronously, only when `callback` is given and is not a function.
   */
  call(request: Req, options?: ClientCallOptions): Promise<Res>;
  call(request: Req, options: ClientCallOptions | undefined, callback: CallCallback<Res>): void;
  call(request: Req, options?: ClientCallOptions, callback?: CallCallback<Res>): Promise<Res> | void {
    if (callback !== undefined && typeof callback !== "function") throw new CallError("invalid-argument", `the callback of call() must be a function, not ${describeValue(callback)}`);
    const reply = callTarget<Res>(this.target, request, options, this.#registry);
    if (callback === undefined) return reply;
    reply.then(
      (value) => process.nextTick(callback, null, value),
      (error: CallError) => process.nextTick(callback, error),
    );
  }

  /**
   * Send `request` without waiting; false if there is no live server.
   *
   * @throws {CallError} never for a missing server (that is `false`); the target was checked when the Client was made.
   */
  cast(request: Req): boolean {
    return castTarget(this.target, request, this.#registry);
  }
}

/**
 * Call a server or a registered name once.
 *
 * @example
 * ```ts
 * const total = await call<number, number>("counter", 5, { timeout: 500, waitForName: 1_000 });
 * ```
 */
export function call<Req, Res>(target: CallTarget<Req, Res>, request: Req, options?: FreeCallOptions): Promise<Res> {
  let registry = defaultRegistry;
  if (options !== undefined && typeof options === "object" && options !== null && options.registry !== undefined) {
    if (!(options.registry instanceof Registry)) return Promise.reject(new CallError("invalid-argument", `registry must be a Registry, not ${describeValue(options.registry)}`));
    registry = options.registry;
  }
  return callTarget<Res>(target, request, options, registry);
}

/**
 * Cast to a server or a registered name: no reply; false if there is no live server.
 *
 * @throws {CallError} `invalid-argument` for a target that is neither a Server nor a non-empty name, or bad options.
 * @example
 * ```ts
 * cast("logger", { level: "info", text: "started" });
 * ```
 */
export function cast<Req>(target: CallTarget<Req, unknown>, request: Req, options?: { registry?: Registry }): boolean {
  if (options !== undefined && (typeof options !== "object" || options === null)) throw new CallError("invalid-argument", `cast options must be an object, not ${describeValue(options)}`);
  const registry = options?.registry ?? defaultRegistry;
  if (!(registry instanceof Registry)) throw new CallError("invalid-argument", `registry must be a Registry, not ${describeValue(registry)}`);
  return castTarget(target, request, registry);
}

function castTarget(target: CallTarget<any, any>, request: unknown, registry: Registry): boolean {
  let server: Server<any, any>;
  try {
    server = resolveServer(target, registry);
  } catch (error) {
    if (error instanceof CallError && error.code === "invalid-argument") throw error;
    return false; // no live server under that name: a cast to nobody, as Erlang's `!` to a dead pid
  }
  return server.cast(request);
}

function callTarget<Res>(target: CallTarget<any, any>, request: unknown, options: ClientCallOptions | undefined, registry: Registry): Promise<Res> {
  let waitForName = 0;
  if (options !== undefined) {
    const bad = callOptionsProblem(options);
    if (bad !== undefined) return Promise.reject(new CallError("invalid-argument", bad));
    if (options.waitForName !== undefined) {
      const badWait = durationProblem("waitForName", options.waitForName);
      if (badWait !== undefined) return Promise.reject(new CallError("invalid-argument", badWait));
      waitForName = options.waitForName;
    }
  }
  let server: Server<any, any>;
  try {
    server = resolveServer(target, registry);
  } catch (error) {
    if (waitForName > 0 && error instanceof CallError && error.code === "unknown-name" && registry.lookup(target as string) === undefined) {
      return waitThenCall<Res>(target as string, request, options!, registry, waitForName);
    }
    return Promise.reject(error);
  }
  return server.call(request, options) as Promise<Res>;
}

async function waitThenCall<Res>(name: string, request: unknown, options: ClientCallOptions, registry: Registry, waitForName: number): Promise<Res> {
  try {
    const waitOptions = options.signal === undefined ? { timeout: waitForName } : { timeout: waitForName, signal: options.signal };
    await registry.whenRegistered(name, waitOptions);
  } catch (error) {
    if (error instanceof RegistryError && error.code === "aborted") throw new CallError("aborted", `the call to "${name}" was aborted while waiting for the name`, { cause: options.signal?.reason });
    throw new CallError("unknown-name", `no live server was registered as "${name}" within ${waitForName} ms`, { cause: error });
  }
  // Found: look it up again (resolveServer says whether it is a server), then the call's own timeout starts.
  return (await resolveServer(name, registry).call(request, options)) as Res;
}
