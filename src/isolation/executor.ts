/**
 * An exported function run in a pool of workers: each call on its own
 * worker (one call per worker at a time), so a crash or a timeout — which
 * terminates the worker — never touches another call. `deploy` swaps the
 * module for new calls while calls in flight finish on the old version.
 */
import { availableParallelism } from "node:os";
import { Emitter } from "../core/emitter.js";
import { BackplaneError } from "../core/error.js";
import type { Fault } from "../core/fault.js";
import { type ExecutionRecord, type Outcome, recordId } from "../core/records.js";
import { type AnyTimer, clearAnyTimeout, describeValue, durationProblem, setAnyTimeout } from "../core/timer.js";
import type { WorkerReply } from "./protocol.js";
import { rebuildError } from "./worker-error.js";
import { REFILL_DELAY_MS } from "./standby.js";
import { endError, settingsProblem, WorkerHandle, type WorkerSettings } from "./worker-handle.js";

/**
 * Why an execution failed.
 * - `error`: the function threw or rejected; `cause` is its error (rebuilt with its stack). The worker lives on.
 * - `crashed`: the worker died during the call (`process.exit`, an uncaught error, out of memory); `cause` says how.
 * - `timeout`: no result in time; the worker was terminated (a runaway loop cannot be stopped otherwise).
 * - `spawn-failed`: the worker could not load the module or find the export; `cause` says why.
 * - `not-cloneable`: the arguments or the result cannot cross by structured clone.
 * - `aborted`: the call's `signal` aborted; a running call's worker was terminated. `cause` is the signal's reason.
 * - `closed`: the executor was closed (or, with `close({ timeout })`, the call overran the close and its worker was terminated).
 * - `invalid-argument`: bad arguments to the executor itself.
 */
export type ExecutionErrorCode = "error" | "crashed" | "timeout" | "spawn-failed" | "not-cloneable" | "aborted" | "closed" | "invalid-argument";

/**
 * A failed execution. Switch on `code`; `cause` holds the underlying error.
 *
 * @example
 * ```ts
 * try { await pool.execute([file], { timeout: 2_000 }); }
 * catch (e) { if (e instanceof ExecutionError && e.code === "timeout") console.warn("gave up on", file); }
 * ```
 */
export class ExecutionError extends BackplaneError<ExecutionErrorCode> {}
ExecutionError.prototype.name = "ExecutionError";

/** Options of an {@link Executor}. */
export interface ExecutorOptions extends WorkerSettings {
  /** For records and errors. Default: the export's name. */
  name?: string;
  /** A label of this module version, in records. */
  version?: string;
  /** Calls run at once (one per worker) at most. Default: the number of CPUs. */
  size?: number;
  /** ms an idle worker is kept before it is ended (`Infinity`: never). Default 30 000. */
  idleTimeout?: number;
  /**
   * Keep one started worker in reserve, its module loaded, beyond the busy
   * ones: a call that needs a new worker (after a timeout, a crash, an abort,
   * or when every other worker is busy) takes it at once instead of paying
   * a worker start (~60 ms). The reserve is started with the executor, is
   * not reaped by `idleTimeout`, is unref'd, and may make `workers` reach
   * `size + 1`. Default false: it costs one idle thread (or process) and
   * its memory for the executor's lifetime.
   */
  standby?: boolean;
}

/**
 * Options of one {@link Executor.execute}.
 *
 * @example
 * ```ts
 * await pool.execute([file], { timeout: 2_000, signal: request.signal });
 * ```
 */
export interface ExecuteOptions {
  /** ms from the moment a worker takes the call before it fails with `timeout` and its worker is terminated. `Infinity` (the default): none. */
  timeout?: number;
  /**
   * Cancel the call: while it waits, it is dropped; while it runs, its worker
   * is terminated (as for a timeout). Either way it rejects with `aborted`,
   * `cause` = the signal's reason. An already-aborted signal rejects at once.
   */
  signal?: AbortSignal;
}

/**
 * Options of {@link Executor.close}.
 *
 * @example
 * ```ts
 * await pool.close({ timeout: 5_000 });
 * ```
 */
export interface CloseOptions {
  /**
   * ms to let the calls in flight finish; then their workers are terminated
   * and they fail with `closed`. Default `Infinity`: wait for them.
   */
  timeout?: number;
}

/** A deployed version of the module. */
interface Version {
  readonly settings: WorkerSettings;
  readonly label: string | undefined;
  /** A worker of it could not load the module: no spare is started for it again. */
  failed: boolean;
}

class Call {
  timer: AnyTimer = undefined;
  readonly start = Date.now();
  settled = false;
  /** The version it ran on (set when a worker takes it). */
  version: Version | undefined = undefined;
  /** The worker running it, while one does. */
  worker: PoolWorker | undefined = undefined;
  /** Told when it settles (a closing executor waiting for its calls in flight). */
  onSettled: (() => void) | undefined = undefined;
  /** Its listener on `signal`, removed when it settles. */
  onAbort: (() => void) | undefined = undefined;
  constructor(
    readonly args: readonly unknown[],
    readonly timeout: number,
    readonly signal: AbortSignal | undefined,
    readonly resolve: (value: unknown) => void,
    readonly reject: (error: unknown) => void,
  ) {}
}

class PoolWorker {
  ready = false;
  /** Ended by us (retired, timed out): its exit is not a failure. */
  retired = false;
  call: Call | undefined = undefined;
  idleTimer: AnyTimer = undefined;
  handle!: WorkerHandle;
  constructor(readonly version: Version) {}
}

/** Events of an {@link Executor}. */
export interface ExecutorEvents {
  /** One per execution. */
  record: [record: ExecutionRecord];
}

/**
 * Runs `module`'s exported function in a pool of worker threads (or child
 * processes). A `record` listener that throws is reported as a process
 * warning and never disturbs the pool.
 *
 * @example
 * ```ts
 * await using resize = new Executor<[Uint8Array, number], Uint8Array>({ module: "./resize.mjs", export: "resize", size: 4 });
 * const small = await resize.execute([png, 200], { timeout: 5_000, signal: AbortSignal.timeout(10_000) });
 * resize.deploy("./resize-v2.mjs", { version: "2" });  // new calls use v2; calls in flight finish on v1
 * ```
 */
export class Executor<Args extends unknown[] = unknown[], R = unknown> extends Emitter<ExecutorEvents> {
  readonly name: string;
  readonly #size: number;
  readonly #idleTimeout: number;
  readonly #standby: boolean;
  #version: Version;
  readonly #workers = new Set<PoolWorker>();
  readonly #queue: Call[] = [];
  #closing: Promise<void> | undefined;
  /** Every worker has exited after a close. */
  #closed = false;
  /** Timers of bounded closes, cleared once every worker has ended. */
  readonly #closeTimers: AnyTimer[] = [];
  /** A spare to be started shortly (see {@link REFILL_DELAY_MS}). */
  #spareTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  /** Callers of `warm()` waiting for a loaded, idle worker. */
  readonly #warmWaiters: { resolve: () => void; reject: (error: unknown) => void }[] = [];

  /** @throws {ExecutionError} `invalid-argument` for bad options (naming the field); no worker is started then. */
  constructor(options: ExecutorOptions) {
    super();
    if (typeof options !== "object" || options === null) throw new ExecutionError("invalid-argument", `Executor options must be an object, not ${describeValue(options)}`);
    const { size = availableParallelism(), idleTimeout = 30_000, name, version, standby = false, ...settings } = options;
    const problem = settingsProblem(settings);
    if (problem !== undefined) throw new ExecutionError("invalid-argument", problem);
    if (!Number.isInteger(size) || size < 1) throw new ExecutionError("invalid-argument", `size must be an integer ≥ 1, not ${describeValue(size)}`);
    const badIdle = durationProblem("idleTimeout", idleTimeout);
    if (badIdle !== undefined) throw new ExecutionError("invalid-argument", badIdle);
    if (name !== undefined && typeof name !== "string") throw new ExecutionError("invalid-argument", `name must be a string, not ${describeValue(name)}`);
    if (version !== undefined && typeof version !== "string") throw new ExecutionError("invalid-argument", `version must be a string, not ${describeValue(version)}`);
    if (typeof standby !== "boolean") throw new ExecutionError("invalid-argument", `standby must be a boolean, not ${describeValue(standby)}`);
    this.#size = size;
    this.#idleTimeout = idleTimeout;
    this.#standby = standby;
    this.#version = { settings, label: version, failed: false };
    this.name = name ?? settings.export ?? "default";
    if (standby) this.#spawn(); // the first reserve starts with the executor
  }

  /** Workers alive now (busy, idle or starting, all versions; the standby included). */
  get workers(): number {
    return this.#workers.size;
  }

  /** The version new calls run on. */
  get version(): string | undefined {
    return this.#version.label;
  }

  /**
   * Call the function with `args` in a worker.
   *
   * @example
   * ```ts
   * const sum = await adder.execute([1, 2], { timeout: 1_000 });
   * ```
   */
  execute(args: Args, options?: ExecuteOptions): Promise<R> {
    if (this.#closing !== undefined) return Promise.reject(new ExecutionError("closed", `executor "${this.name}" is closed`));
    if (!Array.isArray(args)) return Promise.reject(new ExecutionError("invalid-argument", `execute() takes an array of arguments, not ${describeValue(args)}`));
    if (options !== undefined && (typeof options !== "object" || options === null)) return Promise.reject(new ExecutionError("invalid-argument", `execute() options must be an object, not ${describeValue(options)}`));
    const timeout = options?.timeout === undefined ? Number.POSITIVE_INFINITY : options.timeout; // null is not "none": it is refused
    const bad = durationProblem("timeout", timeout);
    if (bad !== undefined) return Promise.reject(new ExecutionError("invalid-argument", bad));
    const signal = options?.signal;
    if (signal !== undefined) {
      if (!(signal instanceof AbortSignal)) return Promise.reject(new ExecutionError("invalid-argument", `signal must be an AbortSignal, not ${describeValue(signal)}`));
      if (signal.aborted) return Promise.reject(abortedError(this.name, signal));
    }
    return new Promise<R>((resolve, reject) => {
      const call = new Call(args, timeout, signal, resolve as (value: unknown) => void, reject);
      if (signal !== undefined) {
        call.onAbort = () => this.#aborted(call);
        signal.addEventListener("abort", call.onAbort, { once: true });
      }
      this.#queue.push(call);
      this.#dispatch();
    });
  }

  /**
   * Resolves once a worker of the current version is started, its module
   * loaded, and idle — ready to take a call at once (starting one if none
   * is). Pays the start-up before the first call; with `standby`, it
   * resolves when the reserve is ready.
   *
   * @example
   * ```ts
   * await pool.warm(); // the first execute() does not wait for a thread to start
   * ```
   */
  warm(): Promise<void> {
    if (this.#closing !== undefined) return Promise.reject(new ExecutionError("closed", `executor "${this.name}" is closed`));
    for (const w of this.#workers) if (w.version === this.#version && w.ready && w.call === undefined) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#warmWaiters.push({ resolve, reject });
      // Start one unless one is starting, or the pool is full (then the first worker to finish its call resolves it).
      let starting = false;
      let current = 0;
      for (const w of this.#workers) {
        if (w.version !== this.#version) continue;
        current++;
        if (!w.ready) starting = true;
      }
      if (!starting && current < this.#size + (this.#standby ? 1 : 0)) this.#spawn();
    });
  }

  /**
   * Run a new version of the module for calls from now on. Calls in flight
   * finish on the version they started on; its workers are ended as they
   * become idle.
   *
   * @throws {ExecutionError} `closed` after `close()`; `invalid-argument` for a bad module or options.
   * @example
   * ```ts
   * pool.deploy("./resize-v2.mjs", { version: "2" });
   * ```
   */
  deploy(module: string | URL, options: { export?: string; version?: string } = {}): void {
    if (this.#closing !== undefined) throw new ExecutionError("closed", `executor "${this.name}" is closed`);
    if (typeof options !== "object" || options === null) throw new ExecutionError("invalid-argument", `deploy options must be an object, not ${describeValue(options)}`);
    if (options.version !== undefined && typeof options.version !== "string") throw new ExecutionError("invalid-argument", `version must be a string, not ${describeValue(options.version)}`);
    const settings: WorkerSettings = { ...this.#version.settings, module, ...(options.export !== undefined && { export: options.export }) };
    const problem = settingsProblem(settings);
    if (problem !== undefined) throw new ExecutionError("invalid-argument", problem);
    this.#version = { settings, label: options.version, failed: false };
    // Idle workers of the old version go now; busy ones when their call is done; starting ones once ready.
    for (const w of this.#workers) if (w.ready && w.call === undefined) this.#retire(w);
    this.#dispatch();
  }

  /**
   * Refuse new calls, fail those still queued with `closed`, let those in
   * flight finish — for at most `timeout` ms, after which their workers are
   * terminated and they fail with `closed` — then end every worker.
   * Resolves once every worker has exited. Calling it again returns the same
   * promise (a `timeout` given then still bounds it).
   *
   * @example
   * ```ts
   * await pool.close({ timeout: 5_000 }); // a runaway call cannot hold the shutdown longer than 5 s
   * ```
   */
  close(options?: CloseOptions): Promise<void> {
    if (options !== undefined && (typeof options !== "object" || options === null)) return Promise.reject(new ExecutionError("invalid-argument", `close() options must be an object, not ${describeValue(options)}`));
    const timeout = options?.timeout === undefined ? Number.POSITIVE_INFINITY : options.timeout;
    const bad = durationProblem("timeout", timeout);
    if (bad !== undefined) return Promise.reject(new ExecutionError("invalid-argument", bad));
    if (this.#closing === undefined) this.#closing = this.#close();
    // Once every worker has exited there is nothing left to bound: no timer is armed after that.
    if (timeout !== Number.POSITIVE_INFINITY && !this.#closed) this.#closeTimers.push(setAnyTimeout(this.#killInFlight, timeout));
    return this.#closing;
  }

  /** `await using pool = new Executor(…)`: closes it (waiting for calls in flight) at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    const closed = new ExecutionError("closed", `executor "${this.name}" was closed`);
    if (this.#spareTimer !== undefined) clearTimeout(this.#spareTimer);
    this.#spareTimer = undefined;
    for (const call of this.#queue.splice(0)) this.#settle(call, undefined, closed, "error");
    for (const waiter of this.#warmWaiters.splice(0)) waiter.reject(closed);
    const inFlight: Promise<void>[] = [];
    for (const w of this.#workers) {
      const call = w.call;
      if (call !== undefined) inFlight.push(new Promise<void>((resolve) => (call.onSettled = resolve)));
    }
    await Promise.all(inFlight);
    const workers = [...this.#workers];
    for (const w of workers) this.#retire(w);
    await Promise.all(workers.map((w) => w.handle.ended));
    this.#closed = true;
    for (const timer of this.#closeTimers.splice(0)) clearAnyTimeout(timer);
  }

  /** A bounded close ran out: what still runs is terminated, and fails with `closed`. */
  readonly #killInFlight = (): void => {
    for (const w of [...this.#workers]) {
      const call = w.call;
      if (call === undefined) continue;
      w.call = undefined;
      this.#retire(w);
      this.#settle(call, undefined, new ExecutionError("closed", `executor "${this.name}" was closed while "${this.name}" still ran; its worker was terminated`), "killed", { kind: "killed" });
    }
  };

  #dispatch(): void {
    while (this.#queue.length > 0) {
      let idle: PoolWorker | undefined;
      let busy = 0;
      let current = 0;
      let starting = 0;
      for (const w of this.#workers) {
        if (w.version !== this.#version) continue;
        current++;
        if (w.call !== undefined) busy++;
        else if (!w.ready) starting++;
        else idle ??= w;
      }
      if (busy >= this.#size) break; // every call slot is taken: the queue waits
      if (idle !== undefined) {
        this.#assign(idle, this.#queue.shift()!);
        continue;
      }
      // Start as many workers as the waiting calls need (those starting already count), up to the limit.
      const limit = this.#size + (this.#standby ? 1 : 0);
      for (let n = current; n < limit && starting < this.#queue.length; n++, starting++) if (!this.#spawn()) return;
      break;
    }
    if (this.#standby) this.#keepSpare();
  }

  /**
   * With `standby`: make sure one worker of the current version is idle or
   * starting beyond the busy ones — started {@link REFILL_DELAY_MS} later,
   * so its thread start does not land on the call that just took the reserve.
   */
  #keepSpare(): void {
    if (this.#spareTimer !== undefined || !this.#needsSpare()) return;
    this.#spareTimer = setTimeout(this.#startSpare, REFILL_DELAY_MS);
    this.#spareTimer.unref();
  }

  readonly #startSpare = (): void => {
    this.#spareTimer = undefined;
    if (this.#needsSpare()) this.#spawn();
  };

  #needsSpare(): boolean {
    if (this.#closing !== undefined || this.#version.failed) return false;
    let current = 0;
    for (const w of this.#workers) {
      if (w.version !== this.#version) continue;
      current++;
      if (w.call === undefined) return false; // idle or starting: that is the spare
    }
    return current < this.#size + 1;
  }

  /** Start a worker of the current version; false if it could not even be created. */
  #spawn(): boolean {
    const version = this.#version;
    const w = new PoolWorker(version);
    try {
      w.handle = new WorkerHandle(version.settings);
    } catch (error) {
      // The worker could not even be created (a bad execArgv, say): nothing waiting for this version can run.
      version.failed = true;
      this.#failQueued(version, new ExecutionError("spawn-failed", `executor "${this.name}" could not start a worker: ${(error as Error).message}`, error));
      return false;
    }
    this.#workers.add(w);
    w.handle.listen(
      (m) => this.#onMessage(w, m),
      (end) => this.#onEnd(w, endError(end)),
    );
    return true;
  }

  #assign(w: PoolWorker, call: Call): void {
    clearAnyTimeout(w.idleTimer);
    w.idleTimer = undefined;
    try {
      w.handle.send({ t: "call", id: 0, args: call.args });
    } catch (error) {
      this.#settle(call, undefined, new ExecutionError("not-cloneable", `the arguments to "${this.name}" cannot be cloned into a worker`, error), "error");
      this.#idle(w);
      return;
    }
    w.call = call;
    call.worker = w;
    call.version = w.version;
    w.handle.setRef(true);
    if (call.timeout !== Number.POSITIVE_INFINITY) call.timer = setAnyTimeout(() => this.#timedOut(w, call), call.timeout); // the guard spares the closure
  }

  #onMessage(w: PoolWorker, m: WorkerReply): void {
    if (m.t === "ready") {
      w.ready = true;
      this.#idle(w);
      return;
    }
    if (m.t === "fatal") {
      // The module cannot be loaded: every call waiting for this version would meet the same fate.
      const error = new ExecutionError("spawn-failed", `executor "${this.name}" could not start a worker: ${m.error.message}`, rebuildError(m.error));
      this.#workers.delete(w);
      w.retired = true;
      w.handle.kill();
      w.version.failed = true;
      this.#failQueued(w.version, error);
      return;
    }
    if (m.t !== "ok" && m.t !== "err") return;
    const call = w.call;
    if (call === undefined) return;
    w.call = undefined;
    call.worker = undefined;
    if (m.t === "ok") this.#settle(call, m.value, undefined, "ok");
    else if (m.notCloneable === true) this.#settle(call, undefined, new ExecutionError("not-cloneable", `the result of "${this.name}" cannot be cloned out of its worker`, rebuildError(m.error)), "error");
    else this.#settle(call, undefined, new ExecutionError("error", `"${this.name}" failed: ${m.error.message}`, rebuildError(m.error)), "error");
    this.#idle(w);
  }

  #onEnd(w: PoolWorker, error: Error | undefined): void {
    this.#workers.delete(w);
    clearAnyTimeout(w.idleTimer);
    w.idleTimer = undefined;
    if (w.retired) return;
    const call = w.call;
    w.call = undefined;
    if (call !== undefined) {
      call.worker = undefined;
      this.#settle(call, undefined, new ExecutionError("crashed", `the worker running "${this.name}" died: ${error?.message ?? "it exited"}`, error), "error");
    } else if (!w.ready) {
      // It ended before loading the module (a crash, an exit, even exit(0) at load): the calls waiting for it cannot run either.
      const cause = error ?? new Error("the worker exited before it loaded the module");
      w.version.failed = true;
      this.#failQueued(w.version, new ExecutionError("spawn-failed", `executor "${this.name}" could not start a worker: ${cause.message}`, cause));
      return;
    }
    this.#dispatch();
  }

  #timedOut(w: PoolWorker, call: Call): void {
    call.timer = undefined;
    if (w.call !== call) return;
    this.#terminate(w, call, new ExecutionError("timeout", `"${this.name}" did not finish within ${call.timeout} ms`), "timeout", { kind: "timeout" });
  }

  #aborted(call: Call): void {
    if (call.settled) return;
    const error = abortedError(this.name, call.signal!);
    const w = call.worker;
    if (w === undefined) {
      // Still waiting: it simply leaves the queue.
      const at = this.#queue.indexOf(call);
      if (at >= 0) this.#queue.splice(at, 1);
      this.#settle(call, undefined, error, "shutdown");
      return;
    }
    this.#terminate(w, call, error, "shutdown", undefined);
  }

  /** End a running call's worker (the only way to stop code that does not yield), fail the call, and serve the queue. */
  #terminate(w: PoolWorker, call: Call, error: ExecutionError, outcome: Outcome, fault: Fault | undefined): void {
    w.call = undefined;
    call.worker = undefined;
    this.#retire(w);
    this.#settle(call, undefined, error, outcome, fault);
    this.#dispatch();
  }

  /** A worker has nothing to do: give it the next call, retire it (old version, closing), or let it idle. */
  #idle(w: PoolWorker): void {
    if (w.version !== this.#version || this.#closing !== undefined) {
      this.#retire(w);
      this.#dispatch();
      return;
    }
    const next = this.#queue.shift();
    if (next !== undefined) {
      this.#assign(w, next);
      return;
    }
    // An idle pool does not keep the process alive, and is reaped after idleTimeout.
    w.handle.setRef(false);
    w.idleTimer = setAnyTimeout(() => this.#reap(w), this.#idleTimeout);
    w.idleTimer?.unref();
    for (const waiter of this.#warmWaiters.splice(0)) waiter.resolve();
    if (this.#standby) this.#keepSpare();
  }

  /** idleTimeout has passed: end the worker, unless it is the standby's reserve. */
  #reap(w: PoolWorker): void {
    w.idleTimer = undefined;
    if (this.#standby) {
      let others = 0;
      for (const o of this.#workers) if (o !== w && o.version === this.#version && o.call === undefined) others++;
      if (others === 0) return; // it is the reserve now; it stays without a timer
    }
    this.#retire(w);
  }

  #retire(w: PoolWorker): void {
    clearAnyTimeout(w.idleTimer);
    w.idleTimer = undefined;
    w.retired = true;
    this.#workers.delete(w);
    w.handle.kill();
  }

  /** A worker of `version` could not start: fail the queued calls, if they were waiting for that version. */
  #failQueued(version: Version, error: ExecutionError): void {
    if (version !== this.#version) {
      this.#dispatch(); // an old version's worker: the queue waits for the current one
      return;
    }
    for (const call of this.#queue.splice(0)) this.#settle(call, undefined, error, "error");
    for (const waiter of this.#warmWaiters.splice(0)) waiter.reject(error);
  }

  #settle(call: Call, value: unknown, error: ExecutionError | undefined, outcome: Outcome, fault?: Fault): void {
    if (call.settled) return;
    call.settled = true;
    clearAnyTimeout(call.timer);
    call.timer = undefined;
    // A shared, long-lived signal must not collect one listener per call.
    if (call.onAbort !== undefined) call.signal!.removeEventListener("abort", call.onAbort);
    if (error === undefined) call.resolve(value);
    else call.reject(error);
    call.onSettled?.();
    if (this.wants("record")) {
      const record: ExecutionRecord = { id: recordId(), name: this.name, start: call.start, duration: Date.now() - call.start, outcome };
      const label = (call.version ?? this.#version).label;
      if (label !== undefined) record.version = label;
      if (fault !== undefined) record.fault = fault;
      else if (error !== undefined && outcome !== "shutdown") record.fault = { kind: "error", error: error.cause ?? error };
      this.emit("record", record);
    }
  }
}

function abortedError(name: string, signal: AbortSignal): ExecutionError {
  return new ExecutionError("aborted", `"${name}" was aborted by its signal`, signal.reason);
}
