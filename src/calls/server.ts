/**
 * A request/response server on a device: Erlang's gen_server call/cast,
 * with the rule that matters most — a call to a server that is dead, or that
 * dies while the call is in flight, fails at once instead of waiting for
 * its timeout.
 */
import { EventEmitter } from "eventemitter3";
import { Device } from "../core/device.js";
import type { Fault } from "../core/fault.js";
import { type ExecutionRecord, recordId } from "../core/records.js";
import { CallError } from "./call-error.js";

/** Options of one call. */
export interface CallOptions {
  /** ms before the call rejects with `timeout` (the server goes on; its late reply is dropped). Default: no timeout. */
  timeout?: number;
}

/** Handles one request; throwing crashes the server (as in Erlang): callers get `server-down`. */
export type Handler<Req, Res> = (request: Req) => Res | PromiseLike<Res>;

/** Options of {@link serve}. */
export interface ServeOptions {
  /** For records, dumps and the registry. Default: the device's name. */
  name?: string;
  /** Requests handled at once. Default 1: one at a time, in arrival order, like a gen_server. */
  concurrency?: number;
  /**
   * When the device is already run by someone else (a supervised child's
   * `ctx.device`), pass their signal (`ctx.signal`): aborting it stops the
   * server. Without it, a server on a device nobody reads manages the device
   * itself, so a shutdown message stops it.
   */
  signal?: AbortSignal;
}

/** One call or cast waiting for its reply: what a transport (a `Server` subclass) handles. */
export class Pending {
  settled = false;
  /** The caller gave up waiting (its timeout): the record says so. */
  timedOut = false;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  readonly start: number;
  constructor(
    readonly request: unknown,
    readonly resolve: ((value: unknown) => void) | undefined,
    readonly reject: ((error: unknown) => void) | undefined,
  ) {
    this.start = Date.now();
  }
}

function onCallTimeout(pending: Pending): void {
  pending.timer = undefined;
  if (pending.settled) return;
  pending.settled = true;
  pending.timedOut = true;
  pending.reject!(new CallError("timeout", "the server did not reply in time"));
}

let capturedResolve: ((value: unknown) => void) | undefined;
let capturedReject: ((error: unknown) => void) | undefined;
function capture(resolve: (value: unknown) => void, reject: (error: unknown) => void): void {
  capturedResolve = resolve;
  capturedReject = reject;
}
const noop = (): void => {};

/** Events of a {@link Server}. */
export interface ServerEvents {
  /** One per call or cast handled (or failed). */
  record: [record: ExecutionRecord];
}

/**
 * A server: requests are handled in arrival order by its handler while its
 * device is connected. Made by {@link serve}; called through a
 * {@link Client}, the free {@link call}/{@link cast}, or a registered name.
 */
export abstract class Server<Req = unknown, Res = unknown> extends EventEmitter<ServerEvents> {
  readonly device: Device;
  readonly name: string;
  /** Settles when the server has ended: resolves on a clean end, rejects with a `server-down` CallError carrying the fault. Never left unhandled. */
  readonly done: Promise<void>;
  readonly #concurrency: number;
  readonly #queue: Pending[] = [];
  #head = 0;
  #inFlight = 0;
  /** No new requests are taken (stopping, crashed or ended). */
  #closed = false;
  #ended = false;
  /** A pump loop is running: replies made inside it must not start another (no recursion per request). */
  #pumping = false;
  #signal: AbortSignal | undefined = undefined;
  readonly #onAbort = (): void => void this.stop();
  #fault: Fault | undefined = undefined;
  #settle!: (error?: CallError) => void;

  /** @internal Use {@link serve}. */
  constructor(device: Device, options: ServeOptions = {}) {
    super();
    const { name, concurrency = 1, signal } = options;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new CallError("invalid-argument", `concurrency must be an integer ≥ 1, not ${String(concurrency)}`);
    if (!device.isConnected) throw new CallError("server-down", `device ${device.id} has already disconnected`, { fault: device.fault });
    this.device = device;
    this.name = name ?? device.name ?? `server-${device.id}`;
    this.#concurrency = concurrency;
    this.done = new Promise<void>((resolve, reject) => {
      this.#settle = (error) => (error === undefined ? resolve() : reject(error));
    });
    this.done.catch(noop);
    // However the device ends (stop, crash, a kill, a faulted peer), the server hears it at once.
    const watcher = new Device({ name: `${this.name}:watch` });
    watcher.link(device, "monitor");
    void watcher.receive().then(() => {
      watcher.disconnect();
      this.#onDeviceEnded();
    });
    if (signal !== undefined) {
      // The device is run by someone else (a supervised child's ctx.device): follow their stop request.
      if (signal.aborted) void this.stop();
      else {
        this.#signal = signal;
        signal.addEventListener("abort", this.#onAbort, { once: true });
      }
    } else if (device._board.sink === null) {
      // Nobody reads this device: the server does, so a shutdown message stops it (after the calls in flight).
      device
        .manage(
          (s) => {
            s.addEventListener("abort", () => void this.stop(), { once: true });
            return this.done;
          },
          { grace: Number.POSITIVE_INFINITY },
        )
        .catch(noop);
    }
  }

  /** False once the server stopped taking requests. */
  get isUp(): boolean {
    return !this.#closed;
  }

  /** Requests waiting or being handled. */
  get pending(): number {
    return this.#queue.length - this.#head + this.#inFlight;
  }

  /**
   * Stop: requests still waiting fail with `server-down`, those being
   * handled finish, then the device disconnects cleanly.
   */
  stop(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#rejectQueued(this.#downError());
      if (this.#inFlight === 0) this.device.disconnect();
    }
    return this.done.then(noop, noop);
  }

  /** @internal Send a request; resolves with the reply. */
  call(request: unknown, options?: CallOptions): Promise<Res> {
    // The device check catches a disconnect made in this same tick, before the watcher has told us.
    if (this.#closed || !this.device.isConnected) return Promise.reject(this.#downError());
    const promise = new Promise(capture) as Promise<Res>;
    const pending = new Pending(request, capturedResolve, capturedReject);
    const timeout = options?.timeout;
    if (timeout !== undefined) {
      if (!(typeof timeout === "number" && timeout >= 0)) {
        pending.settled = true;
        pending.reject!(new CallError("invalid-argument", `timeout must be ms ≥ 0, not ${String(timeout)}`));
        return promise;
      }
      pending.timer = setTimeout(onCallTimeout, timeout, pending);
    }
    this.#enqueue(pending);
    return promise;
  }

  /** @internal Send a request and do not wait for a reply. False if the server has ended. */
  cast(request: unknown): boolean {
    if (this.#closed || !this.device.isConnected) return false;
    this.#enqueue(new Pending(request, undefined, undefined));
    return true;
  }

  /** Transports handle one request and settle it with `reply` or `fail`. */
  protected abstract handle(pending: Pending): void;

  #enqueue(pending: Pending): void {
    this.#queue.push(pending);
    this.#next();
  }

  /** A transport's reply to `pending`. */
  protected reply(pending: Pending, value: unknown): void {
    this.#inFlight--;
    if (!pending.settled) {
      pending.settled = true;
      if (pending.timer !== undefined) clearTimeout(pending.timer);
      pending.resolve?.(value);
    }
    if (this.listenerCount("record") > 0) this.#record(pending, pending.timedOut ? "timeout" : "ok", pending.timedOut ? { kind: "timeout" } : undefined);
    if (this.#closed) {
      if (this.#inFlight === 0) this.device.disconnect(); // the last call in flight of a stopping server
      return;
    }
    this.#next();
  }

  /** Fail one call without harming the server (e.g. a request that cannot be cloned into a worker). */
  protected refuse(pending: Pending, error: CallError): void {
    this.#inFlight--;
    if (this.listenerCount("record") > 0) this.#record(pending, "error", { kind: "error", error });
    this.#rejectOne(pending, error);
    if (this.#closed) {
      if (this.#inFlight === 0) this.device.disconnect();
      return;
    }
    this.#next();
  }

  /** The handler failed on `pending`: in Erlang's way, the server crashes with that error. */
  protected fail(pending: Pending, error: unknown): void {
    this.#inFlight--;
    const fault: Fault = { kind: "error", error };
    if (this.listenerCount("record") > 0) this.#record(pending, "error", fault);
    this.#rejectOne(pending, new CallError("server-down", `server "${this.name}" crashed handling this call`, { fault, cause: error }));
    this.#closed = true;
    this.device.disconnect(fault);
  }

  /**
   * Hand waiting requests to the transport while there is room. A reply made
   * synchronously inside `handle` lands back here while the loop runs, and
   * the loop picks up the next request: a long queue of synchronous replies
   * is served iteratively, never one stack frame per request.
   */
  #next(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (!this.#closed && this.#inFlight < this.#concurrency && this.#head < this.#queue.length) {
        const pending = this.#queue[this.#head++]!;
        if (this.#head === this.#queue.length) {
          this.#queue.length = 0;
          this.#head = 0;
        }
        if (pending.settled) continue; // timed out while waiting: not handled at all
        this.#inFlight++;
        this.handle(pending);
      }
    } finally {
      this.#pumping = false;
    }
  }

  #record(pending: Pending, outcome: ExecutionRecord["outcome"], fault: Fault | undefined): void {
    const record: ExecutionRecord = { id: recordId(), name: this.name, start: pending.start, duration: Date.now() - pending.start, outcome };
    if (fault !== undefined) record.fault = fault;
    this.emit("record", record);
  }

  #downError(): CallError {
    const fault = this.#ended ? this.#fault : this.device.fault;
    return new CallError("server-down", `server "${this.name}" is down${fault === undefined ? "" : ` (${fault.kind})`}`, { fault });
  }

  #rejectOne(pending: Pending, error: CallError): void {
    if (pending.settled) return;
    pending.settled = true;
    if (pending.timer !== undefined) clearTimeout(pending.timer);
    pending.reject?.(error);
  }

  #rejectQueued(error: CallError): void {
    for (let i = this.#head; i < this.#queue.length; i++) this.#rejectOne(this.#queue[i]!, error);
    this.#queue.length = 0;
    this.#head = 0;
  }

  /** The device has ended: every call still waiting or in flight fails at once with its fault. */
  #onDeviceEnded(): void {
    this.#closed = true;
    this.#ended = true;
    this.#signal?.removeEventListener("abort", this.#onAbort); // a long-lived signal must not keep ended servers alive
    this.#signal = undefined;
    this.#fault = this.device.fault;
    const error = this.#downError();
    this.#rejectQueued(error);
    this.onDown(error);
    this.#settle(this.#fault === undefined ? undefined : error);
  }

  /** Transports fail what they have in flight. */
  protected onDown(_error: CallError): void {}

  protected rejectInFlight(pending: Pending, error: CallError): void {
    this.#rejectOne(pending, error);
  }
}

/** A server whose handler runs in this thread. */
class LocalServer<Req, Res> extends Server<Req, Res> {
  readonly #handler: Handler<Req, Res>;
  readonly #inFlight = new Set<Pending>();

  constructor(device: Device, handler: Handler<Req, Res>, options?: ServeOptions) {
    super(device, options);
    this.#handler = handler;
  }

  protected override handle(pending: Pending): void {
    let result: Res | PromiseLike<Res>;
    try {
      result = this.#handler(pending.request as Req);
    } catch (error) {
      this.fail(pending, error);
      return;
    }
    if (result !== null && typeof result === "object" && typeof (result as PromiseLike<Res>).then === "function") {
      this.#inFlight.add(pending);
      (result as PromiseLike<Res>).then(
        (value) => {
          if (this.#inFlight.delete(pending)) this.reply(pending, value);
        },
        (error: unknown) => {
          if (this.#inFlight.delete(pending)) this.fail(pending, error);
        },
      );
      return;
    }
    this.reply(pending, result);
  }

  protected override onDown(error: CallError): void {
    // Replies still being computed when the server ended are dropped; their callers hear now.
    for (const pending of this.#inFlight) this.rejectInFlight(pending, error);
    this.#inFlight.clear();
  }
}

/**
 * Run a server loop on `device`: each request is given to `handler`, one at
 * a time by default. The server lives as long as the device (it is run
 * under `device.manage`, so a supervisor can run it as a child, a shutdown
 * message stops it, and a faulted peer brings it down). A handler that
 * throws crashes the server.
 *
 * @example
 * ```ts
 * const counter = serve(new Device({ name: "counter" }), (n: number) => (total += n));
 * const client = new Client(counter);
 * await client.call(5); // 5
 * ```
 */
export function serve<Req, Res>(device: Device, handler: Handler<Req, Res>, options?: ServeOptions): Server<Req, Res> {
  if (typeof handler !== "function") throw new CallError("invalid-argument", "serve() takes a handler function");
  return new LocalServer(device, handler, options);
}
