/**
 * An exported function run in a pool of workers: each call on its own
 * worker (one call per worker at a time), so a crash or a timeout — which
 * terminates the worker — never touches another call. `deploy` swaps the
 * module for new calls while calls in flight finish on the old version.
 */
import { BackplaneError } from "../core/error.js";
import { availableParallelism } from "node:os";
import { EventEmitter } from "eventemitter3";
import { type ExecutionRecord, type Outcome, recordId } from "../core/records.js";
import { rebuildError, type SerializedError } from "./worker-error.js";
import { endError, moduleSpecifier, WorkerHandle, type WorkerSettings } from "./worker-handle.js";

/**
 * Why an execution failed.
 * - `error`: the function threw or rejected; `cause` is its error (rebuilt with its stack). The worker lives on.
 * - `crashed`: the worker died during the call (`process.exit`, an uncaught error, out of memory); `cause` says how.
 * - `timeout`: no result in time; the worker was terminated (a runaway loop cannot be stopped otherwise).
 * - `spawn-failed`: the worker could not load the module or find the export; `cause` says why.
 * - `not-cloneable`: the arguments or the result cannot cross by structured clone.
 * - `closed`: the executor was closed.
 * - `invalid-argument`: bad arguments to the executor itself.
 */
export type ExecutionErrorCode = "error" | "crashed" | "timeout" | "spawn-failed" | "not-cloneable" | "closed" | "invalid-argument";

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
  /** Workers at most. Default: the number of CPUs. */
  size?: number;
  /** ms an idle worker is kept before it is ended. Default 30 000. */
  idleTimeout?: number;
}

/** Options of one {@link Executor.execute}. */
export interface ExecuteOptions {
  /** ms before the call fails with `timeout` and its worker is terminated. */
  timeout?: number;
}

/** A deployed version of the module. */
interface Version {
  readonly settings: WorkerSettings;
  readonly module: string;
  readonly exportName: string;
  readonly label: string | undefined;
}

class Call {
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  readonly start = Date.now();
  settled = false;
  /** The version it ran on (set when a worker takes it). */
  version: Version | undefined = undefined;
  constructor(
    readonly args: readonly unknown[],
    readonly timeout: number | undefined,
    readonly resolve: (value: unknown) => void,
    readonly reject: (error: unknown) => void,
  ) {}
}

class PoolWorker {
  ready = false;
  /** Ended by us (retired, timed out): its exit is not a failure. */
  retired = false;
  call: Call | undefined = undefined;
  idleTimer: ReturnType<typeof setTimeout> | undefined = undefined;
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
 * processes).
 *
 * @example
 * ```ts
 * const resize = new Executor<[Buffer, number], Buffer>({ module: "./resize.mjs", export: "resize", size: 4 });
 * const small = await resize.execute([png, 200], { timeout: 5_000 });
 * resize.deploy("./resize-v2.mjs", { version: "2" });  // new calls use v2; calls in flight finish on v1
 * await resize.close();
 * ```
 */
export class Executor<Args extends unknown[] = unknown[], R = unknown> extends EventEmitter<ExecutorEvents> {
  readonly name: string;
  readonly #size: number;
  readonly #idleTimeout: number;
  #version: Version;
  readonly #workers = new Set<PoolWorker>();
  readonly #queue: Call[] = [];
  #closing: Promise<void> | undefined;

  constructor(options: ExecutorOptions) {
    super();
    if (typeof options !== "object" || options === null) throw new ExecutionError("invalid-argument", "Executor options must be an object");
    const { size = availableParallelism(), idleTimeout = 30_000, name, version, ...settings } = options;
    if (!Number.isInteger(size) || size < 1) throw new ExecutionError("invalid-argument", `size must be an integer ≥ 1, not ${String(size)}`);
    if (typeof idleTimeout !== "number" || !(idleTimeout >= 0)) throw new ExecutionError("invalid-argument", `idleTimeout must be ms ≥ 0, not ${String(idleTimeout)}`);
    this.#size = size;
    this.#idleTimeout = idleTimeout;
    this.#version = makeVersion(settings, version);
    this.name = name ?? this.#version.exportName;
  }

  /** Workers alive now (busy or idle, all versions). */
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
   * const sum = await adder.execute([1, 2]);
   * ```
   */
  execute(args: Args, options?: ExecuteOptions): Promise<R> {
    if (this.#closing !== undefined) return Promise.reject(new ExecutionError("closed", `executor "${this.name}" is closed`));
    if (!Array.isArray(args)) return Promise.reject(new ExecutionError("invalid-argument", "execute() takes an array of arguments"));
    const timeout = options?.timeout;
    if (timeout !== undefined && !(typeof timeout === "number" && timeout >= 0)) return Promise.reject(new ExecutionError("invalid-argument", `timeout must be ms ≥ 0, not ${String(timeout)}`));
    return new Promise<R>((resolve, reject) => {
      this.#queue.push(new Call(args, timeout, resolve as (value: unknown) => void, reject));
      this.#dispatch();
    });
  }

  /**
   * Run a new version of the module for calls from now on. Calls in flight
   * finish on the version they started on; its workers are ended as they
   * become idle.
   */
  deploy(module: string | URL, options: { export?: string; version?: string } = {}): void {
    if (this.#closing !== undefined) throw new ExecutionError("closed", `executor "${this.name}" is closed`);
    const settings: WorkerSettings = { ...this.#version.settings, module, ...(options.export !== undefined && { export: options.export }) };
    this.#version = makeVersion(settings, options.version);
    // Idle workers of the old version go now; busy ones when their call is done; starting ones once ready.
    for (const w of this.#workers) if (w.ready && w.call === undefined) this.#retire(w);
    this.#dispatch();
  }

  /** Refuse new calls, fail those still queued with `closed`, let those in flight finish, then end every worker. */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    for (const call of this.#queue.splice(0)) this.#settle(call, undefined, new ExecutionError("closed", `executor "${this.name}" was closed`), "error");
    const inFlight = [...this.#workers].filter((w) => w.call !== undefined).map((w) => new Promise<void>((r) => {
      const call = w.call!;
      const { resolve, reject } = call;
      (call as { resolve: unknown }).resolve = (v: unknown) => (resolve(v), r());
      (call as { reject: unknown }).reject = (e: unknown) => (reject(e), r());
    }));
    this.#closing = Promise.all(inFlight).then(async () => {
      const workers = [...this.#workers];
      for (const w of workers) this.#retire(w);
      await Promise.all(workers.map((w) => w.handle?.ended));
    });
    return this.#closing;
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      let worker: PoolWorker | undefined;
      let current = 0;
      for (const w of this.#workers) {
        if (w.version !== this.#version) continue;
        current++;
        if (w.ready && w.call === undefined) {
          worker = w;
          break;
        }
      }
      if (worker === undefined) {
        // Start as many workers as the waiting calls need (those starting already count), up to `size`.
        let starting = 0;
        for (const w of this.#workers) if (w.version === this.#version && !w.ready) starting++;
        for (let n = current; n < this.#size && starting < this.#queue.length; n++, starting++) this.#spawn();
        return;
      }
      this.#assign(worker, this.#queue.shift()!);
    }
  }

  #spawn(): void {
    const version = this.#version;
    const w = new PoolWorker(version);
    try {
      w.handle = new WorkerHandle(
        version.settings,
        (m: { t: string; id?: number; value?: unknown; error?: SerializedError; notCloneable?: boolean }) => this.#onMessage(w, m),
        (end) => this.#onEnd(w, endError(end)),
      );
    } catch (error) {
      // The worker could not even be created (a bad execArgv, say): nothing waiting for this version can run.
      this.#failQueued(version, new ExecutionError("spawn-failed", `executor "${this.name}" could not start a worker: ${(error as Error).message}`, error));
      return;
    }
    this.#workers.add(w);
    w.handle.send({ t: "init", module: version.module, export: version.exportName, mode: "call", id: this.name, args: [] });
  }

  #assign(w: PoolWorker, call: Call): void {
    if (w.idleTimer !== undefined) {
      clearTimeout(w.idleTimer);
      w.idleTimer = undefined;
    }
    try {
      w.handle.send({ t: "call", id: 0, args: call.args });
    } catch (error) {
      this.#settle(call, undefined, new ExecutionError("not-cloneable", `the arguments to "${this.name}" cannot be cloned into a worker`, error), "error");
      this.#idle(w);
      return;
    }
    w.call = call;
    call.version = w.version;
    w.handle.setRef(true);
    if (call.timeout !== undefined) call.timer = setTimeout(() => this.#timedOut(w, call), call.timeout);
  }

  #onMessage(w: PoolWorker, m: { t: string; value?: unknown; error?: SerializedError; notCloneable?: boolean }): void {
    if (m.t === "ready") {
      w.ready = true;
      this.#idle(w);
      return;
    }
    if (m.t === "fatal") {
      // The module cannot be loaded: every call waiting for this version would meet the same fate.
      const error = new ExecutionError("spawn-failed", `executor "${this.name}" could not start a worker: ${m.error!.message}`, rebuildError(m.error!));
      this.#workers.delete(w);
      w.retired = true;
      w.handle.kill();
      this.#failQueued(w.version, error);
      return;
    }
    const call = w.call;
    if (call === undefined) return;
    w.call = undefined;
    if (m.t === "ok") this.#settle(call, m.value, undefined, "ok");
    else if (m.notCloneable === true) this.#settle(call, undefined, new ExecutionError("not-cloneable", `the result of "${this.name}" cannot be cloned out of its worker`, rebuildError(m.error!)), "error");
    else this.#settle(call, undefined, new ExecutionError("error", `"${this.name}" failed: ${m.error!.message}`, rebuildError(m.error!)), "error");
    this.#idle(w);
  }

  #onEnd(w: PoolWorker, error: Error | undefined): void {
    this.#workers.delete(w);
    if (w.idleTimer !== undefined) clearTimeout(w.idleTimer);
    if (w.retired) return;
    const call = w.call;
    w.call = undefined;
    if (call !== undefined) {
      this.#settle(call, undefined, new ExecutionError("crashed", `the worker running "${this.name}" died: ${error?.message ?? "it exited"}`, error), "error");
    } else if (!w.ready) {
      // It ended before loading the module (a crash, an exit, even exit(0) at load): the calls waiting for it cannot run either.
      const cause = error ?? new Error("the worker exited before it loaded the module");
      this.#failQueued(w.version, new ExecutionError("spawn-failed", `executor "${this.name}" could not start a worker: ${cause.message}`, cause));
      return;
    }
    this.#dispatch();
  }

  #timedOut(w: PoolWorker, call: Call): void {
    call.timer = undefined;
    if (w.call !== call) return;
    w.call = undefined;
    this.#settle(call, undefined, new ExecutionError("timeout", `"${this.name}" did not finish within ${call.timeout} ms`), "timeout");
    this.#workers.delete(w);
    w.retired = true;
    w.handle.kill(); // the only way to stop code that does not yield
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
    w.idleTimer = setTimeout(() => this.#retire(w), this.#idleTimeout);
    w.idleTimer.unref();
  }

  #retire(w: PoolWorker): void {
    if (w.idleTimer !== undefined) clearTimeout(w.idleTimer);
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
  }

  #settle(call: Call, value: unknown, error: ExecutionError | undefined, outcome: Outcome): void {
    if (call.settled) return;
    call.settled = true;
    if (call.timer !== undefined) clearTimeout(call.timer);
    if (error === undefined) call.resolve(value);
    else call.reject(error);
    if (this.listenerCount("record") > 0) {
      const record: ExecutionRecord = { id: recordId(), name: this.name, start: call.start, duration: Date.now() - call.start, outcome };
      const label = (call.version ?? this.#version).label;
      if (label !== undefined) record.version = label;
      if (error !== undefined) record.fault = outcome === "timeout" ? { kind: "timeout" } : { kind: "error", error: error.cause ?? error };
      this.emit("record", record);
    }
  }
}

function makeVersion(settings: WorkerSettings, label: string | undefined): Version {
  if (settings.module === undefined || (typeof settings.module !== "string" && !(settings.module instanceof URL))) {
    throw new ExecutionError("invalid-argument", "an executor needs a module: a path, a file: URL or a package name");
  }
  return { settings, module: moduleSpecifier(settings.module), exportName: settings.export ?? "default", label };
}
