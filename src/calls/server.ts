/**
 * A request/response server on a device: Erlang's gen_server call/cast,
 * with the rule that matters most — a call to a server that is dead, or that
 * dies while the call is in flight, fails at once instead of waiting for
 * its timeout.
 */
import { Device } from "../core/device.js";
import { Emitter } from "../core/emitter.js";
import type { Fault } from "../core/fault.js";
import { type ExecutionRecord, recordId } from "../core/records.js";
import { type AnyTimer, clearAnyTimeout, describeValue, durationProblem, setAnyTimeout } from "../core/timer.js";
import { CallError } from "./call-error.js";

/**
 * Options of one call.
 *
 * @example
 * ```ts
 * await server.call(request, { timeout: 1_000, signal: AbortSignal.timeout(5_000) });
 * ```
 */
export interface CallOptions {
  /** ms before the call rejects with `timeout` (the server goes on; its late reply is dropped). Default `Infinity`: no timeout. */
  timeout?: number;
  /**
   * Cancel the call: it rejects with `aborted` (`cause` = the signal's
   * reason); a request still queued is never handled, a late reply is
   * dropped, the server goes on. An already-aborted signal rejects at once.
   */
  signal?: AbortSignal;
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
  /** The caller gave up waiting (its timeout, or its signal): the record says so. */
  gaveUp: "timeout" | "aborted" | undefined = undefined;
  timer: AnyTimer = undefined;
  /** The caller's signal and our listener on it, removed when the call settles. */
  signal: AbortSignal | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;
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
  settled(pending);
  pending.gaveUp = "timeout";
  pending.reject!(new CallError("timeout", "the server did not reply in time"));
}

function onCallAborted(pending: Pending): void {
  if (pending.settled) return;
  const reason: unknown = pending.signal!.reason;
  settled(pending);
  pending.gaveUp = "aborted";
  pending.reject!(new CallError("aborted", "the call was aborted by its signal", { cause: reason }));
}

/** Mark `pending` settled, and drop its timer and its signal listener (a shared signal must not collect one per call). */
function settled(pending: Pending): void {
  pending.settled = true;
  if (pending.timer !== undefined) {
    clearAnyTimeout(pending.timer);
    pending.timer = undefined;
  }
  if (pending.onAbort !== undefined) {
    pending.signal!.removeEventListener("abort", pending.onAbort);
    pending.onAbort = undefined;
  }
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
 * A `record` listener that throws is reported as a process warning and
 * never disturbs the server.
 *
 * @example
 * ```ts
 * await using server = serve(new Device({ name: "echo" }), (x: string) => x);
 * server.on("record", (r) => console.log(r.name, r.outcome, r.duration));
 * await new Client(server).call("hi");
 * ```
 */
export abstract class Server<Req = unknown, Res = unknown> extends Emitter<ServerEvents> {
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
    // Every check comes before the watcher or the managed run exist: a refusal leaves nothing behind.
    if (!(device instanceof Device)) throw new CallError("invalid-argument", `a server runs on a Device, not ${describeValue(device)}`);
    if (typeof options !== "object" || options === null) throw new CallError("invalid-argument", `serve() options must be an object, not ${describeValue(options)}`);
    const { name, concurrency = 1, signal } = options;
    if (name !== undefined && typeof name !== "string") throw new CallError("invalid-argument", `name must be a string, not ${describeValue(name)}`);
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new CallError("invalid-argument", `concurrency must be an integer ≥ 1, not ${describeValue(concurrency)}`);
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new CallError("invalid-argument", `signal must be an AbortSignal, not ${describeValue(signal)}`);
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

  /** `await using server = serve(…)`: stops it (letting the calls in flight finish) at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /**
   * Send a request; resolves with the reply. The same as `new Client(server).call(request, options)`.
   *
   * @example
   * ```ts
   * const reply = await server.call(5, { timeout: 1_000, signal });
   * ```
   */
  call(request: Req, options?: CallOptions): Promise<Res> {
    let timeout: number | undefined;
    let signal: AbortSignal | undefined;
    if (options !== undefined) {
      const bad = callOptionsProblem(options);
      if (bad !== undefined) return Promise.reject(new CallError("invalid-argument", bad));
      timeout = options.timeout;
      signal = options.signal;
      if (signal?.aborted === true) return Promise.reject(new CallError("aborted", "the call was aborted by its signal", { cause: signal.reason }));
    }
    // The device check catches a disconnect made in this same tick, before the watcher has told us.
    if (this.#closed || !this.device.isConnected) return Promise.reject(this.#downError());
    const promise = new Promise(capture) as Promise<Res>;
    const pending = new Pending(request, capturedResolve, capturedReject);
    // `pending` is the timer's argument: no closure per call (Infinity arms nothing; any length is honoured).
    if (timeout !== undefined) pending.timer = setAnyTimeout(onCallTimeout, timeout, pending);
    if (signal !== undefined) {
      pending.signal = signal;
      pending.onAbort = () => onCallAborted(pending);
      signal.addEventListener("abort", pending.onAbort, { once: true });
    }
    this.#enqueue(pending);
    return promise;
  }

  /**
   * Send a request and do not wait for a reply. False if the server has ended.
   *
   * @example
   * ```ts
   * server.cast({ level: "info", text: "started" });
   * ```
   */
  cast(request: Req): boolean {
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
      settled(pending);
      pending.resolve?.(value);
    }
    if (this.wants("record")) {
      if (pending.gaveUp === undefined) this.#record(pending, "ok", undefined);
      else if (pending.gaveUp === "timeout") this.#record(pending, "timeout", { kind: "timeout" });
      else this.#record(pending, "shutdown", undefined);
    }
    if (this.#closed) {
      if (this.#inFlight === 0) this.device.disconnect(); // the last call in flight of a stopping server
      return;
    }
    this.#next();
  }

  /** Fail one call without harming the server (e.g. a request that cannot be cloned into a worker). */
  protected refuse(pending: Pending, error: CallError): void {
    this.#inFlight--;
    if (this.wants("record")) this.#record(pending, "error", { kind: "error", error });
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
    if (this.wants("record")) this.#record(pending, "error", fault);
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
    settled(pending);
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
    let then: unknown;
    try {
      result = this.#handler(pending.request as Req);
      // Reading `then` is user code too (a getter can throw), so it is inside the same guard.
      then = result !== null && (typeof result === "object" || typeof result === "function") ? (result as { then?: unknown }).then : undefined;
    } catch (error) {
      this.fail(pending, error);
      return;
    }
    if (typeof then !== "function") {
      this.reply(pending, result);
      return;
    }
    this.#inFlight.add(pending);
    try {
      // A thenable may call back twice, or both ways: the first wins, the #inFlight entry says whether it came.
      then.call(
        result,
        (value: unknown) => {
          if (this.#inFlight.delete(pending)) this.reply(pending, value);
        },
        (error: unknown) => {
          if (this.#inFlight.delete(pending)) this.fail(pending, error);
        },
      );
    } catch (error) {
      // A `then` that throws is a handler that failed: the server crashes with it, its caller gets server-down.
      if (this.#inFlight.delete(pending)) this.fail(pending, error);
    }
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
  if (!(device instanceof Device)) throw new CallError("invalid-argument", `serve() runs on a Device, not ${describeValue(device)}`);
  if (typeof handler !== "function") throw new CallError("invalid-argument", `serve() takes a handler function, not ${describeValue(handler)}`);
  return new LocalServer(device, handler, options);
}

/** @internal What is wrong with a call's options (undefined when nothing is). */
export function callOptionsProblem(options: unknown): string | undefined {
  if (typeof options !== "object" || options === null) return `call options must be an object, not ${describeValue(options)}`;
  const { timeout, signal } = options as CallOptions;
  if (timeout !== undefined) {
    const bad = durationProblem("timeout", timeout);
    if (bad !== undefined) return bad;
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) return `signal must be an AbortSignal, not ${describeValue(signal)}`;
  return undefined;
}
