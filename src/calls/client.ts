/**
 * The calling side: `Client` (a handle that follows a name across restarts)
 * and the free functions `call` and `cast`.
 */
import { CallError } from "./call-error.js";
import { type Registry, registry as defaultRegistry, resolveServer } from "./registry.js";
import type { CallOptions, Server } from "./server.js";

/** A target: a server, or a name in the registry (looked up at each call, so a restarted server is found). */
export type CallTarget<Req = unknown, Res = unknown> = Server<Req, Res> | string;

/** Node-style callback of the callback form of {@link Client.call}. */
export type CallCallback<Res> = (error: CallError | null, reply?: Res) => void;

/**
 * Calls to one server.
 *
 * @example
 * ```ts
 * const billing = new Client<Charge, Receipt>("billing");
 * const receipt = await billing.call({ cents: 500 }, { timeout: 1_000 });
 * billing.cast({ cents: 0 });                       // fire and forget
 * billing.call({ cents: 1 }, {}, (err, receipt) => …); // callback form
 * ```
 */
export class Client<Req = unknown, Res = unknown> {
  readonly target: CallTarget<Req, Res>;
  readonly #registry: Registry;

  constructor(target: CallTarget<Req, Res>, options?: { registry?: Registry }) {
    if (typeof target !== "string" && (typeof target !== "object" || target === null)) throw new CallError("invalid-argument", "a Client needs a Server or a registered name");
    this.target = target;
    this.#registry = options?.registry ?? defaultRegistry;
  }

  /**
   * Send `request` and wait for the reply. Rejects with {@link CallError}:
   * `server-down` at once if the server is dead or dies meanwhile,
   * `timeout`, `unknown-name`, `not-cloneable` (isolated servers).
   */
  call(request: Req, options?: CallOptions): Promise<Res>;
  call(request: Req, options: CallOptions | undefined, callback: CallCallback<Res>): void;
  call(request: Req, options?: CallOptions, callback?: CallCallback<Res>): Promise<Res> | void {
    let reply: Promise<Res>;
    try {
      reply = resolveServer(this.target, this.#registry).call(request, options) as Promise<Res>;
    } catch (error) {
      reply = Promise.reject(error);
    }
    if (callback === undefined) return reply;
    // The callback runs outside the promise chain: if it throws, that is an uncaught exception
    // (as with any Node callback API), never an unhandled rejection.
    reply.then(
      (value) => process.nextTick(callback, null, value),
      (error: CallError) => process.nextTick(callback, error),
    );
  }

  /** Send `request` without waiting; false if there is no live server. */
  cast(request: Req): boolean {
    try {
      return resolveServer(this.target, this.#registry).cast(request);
    } catch {
      return false;
    }
  }
}

/**
 * Call a server or a registered name once.
 *
 * @example
 * ```ts
 * const total = await call<number, number>("counter", 5, { timeout: 500 });
 * ```
 */
export function call<Req, Res>(target: CallTarget<Req, Res>, request: Req, options?: CallOptions & { registry?: Registry }): Promise<Res> {
  try {
    return resolveServer(target, options?.registry ?? defaultRegistry).call(request, options) as Promise<Res>;
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Cast to a server or a registered name: no reply; false if there is no live server.
 *
 * @example
 * ```ts
 * cast("logger", { level: "info", text: "started" });
 * ```
 */
export function cast<Req>(target: CallTarget<Req, unknown>, request: Req, options?: { registry?: Registry }): boolean {
  try {
    return resolveServer(target, options?.registry ?? defaultRegistry).cast(request);
  } catch {
    return false;
  }
}
