/**
 * Elixir's Task.Supervisor: short-lived tasks, each on its own device, never
 * restarted; `async` for one, `asyncStream` for many with bounded concurrency
 * (on p-queue).
 */
import { Emitter } from "../core/emitter.js";
import PQueue from "p-queue";
import { Crash, makeCrash } from "../core/crash.js";
import { Device } from "../core/device.js";
import { startManaged, type Work } from "../core/manage.js";
import { durationProblem } from "../core/timer.js";
import { registry } from "../calls/registry.js";
import { type ExecutionRecord, outcomeOf, RingBuffer, recordId } from "../core/records.js";
import { ownSubtree, SUBTREE_DOWN, SUBTREE_KILL } from "./child.js";
import type { ChildSpec, Shutdown } from "./child-spec.js";
import { graceOf, isKilled, requestStop } from "./shutdown.js";
import { SupervisorError } from "./errors.js";
import type { SupervisorEvents } from "./events.js";
import { describeValue } from "../core/timer.js";

/** Options of a {@link TaskSupervisor}. */
export interface TaskSupervisorOptions {
  name?: string;
  /** Grace each task gets when stopped (ms, `brutal`, `infinity`). Default 5000. */
  shutdown?: Shutdown;
  /** Tasks it may run at once; `async` beyond it is `max-children`. Default unlimited. */
  maxChildren?: number;
  /**
   * Register it under its `name` in the default {@link registry} while it
   * runs (Elixir's `{Task.Supervisor, name: …}`), so code anywhere reaches
   * a task supervisor declared as a child: `registry.whereis("jobs", TaskSupervisor)`.
   * The name is freed when it stops. Default false.
   */
  register?: boolean;
  /** How many execution records of ended tasks `records()` keeps. Default 100. */
  records?: number;
}

/** Options of {@link TaskSupervisor.async}. */
export interface TaskOptions {
  /** ms before the task is abandoned with fault `timeout` (`Infinity`: none, the default). */
  timeout?: number;
  /** Aborting it cancels the task, like {@link Task.cancel}. */
  signal?: AbortSignal;
}

/** One result of {@link TaskSupervisor.asyncStream}: a value, or why the task ended without one. */
export type StreamResult<R> = { readonly status: "ok"; readonly value: R } | { readonly status: "exit"; readonly reason: Crash };

/** Options of {@link TaskSupervisor.asyncStream}. */
export interface StreamOptions {
  /** Tasks running at once. Default: the number of CPUs. */
  maxConcurrency?: number;
  /** Results in input order (default) or as they finish. */
  ordered?: boolean;
  /** ms each task may take. Default 5000 (Elixir's). */
  timeout?: number;
  /** On a timeout: end the stream with the timeout's Crash (`throw`, default), or yield `{ status: "exit" }` and go on (`kill-task`). */
  onTimeout?: "throw" | "kill-task";
  /** Aborting it cancels the tasks still running and ends the stream with the signal's reason. */
  signal?: AbortSignal;
}

const noop = (): void => {};

/**
 * A running task: await it for its value (or its `Crash`), or cancel it.
 * An unawaited failed task never raises an unhandled rejection.
 *
 * @example
 * ```ts
 * const task = tasks.async((signal) => fetch(url, { signal }).then((r) => r.json()), { timeout: 2_000 });
 * const data = await task;
 * ```
 */
export class Task<T> implements PromiseLike<T> {
  readonly id: string;
  readonly device: Device;
  readonly #result: Promise<T>;
  readonly #shutdown: Shutdown;

  /** @internal */
  constructor(id: string, device: Device, result: Promise<T>, shutdown: Shutdown) {
    this.id = id;
    this.device = device;
    this.#result = result;
    this.#shutdown = shutdown;
    result.catch(noop);
  }

  // biome-ignore lint/suspicious/noThenProperty: a Task is awaitable on purpose
  then<A = T, B = never>(onfulfilled?: ((value: T) => A | PromiseLike<A>) | null, onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
    return this.#result.then(onfulfilled, onrejected);
  }

  /**
   * Ask the task to stop (its signal aborts; it gets the supervisor's grace,
   * then is killed). Resolves when it has ended; awaiting the task then
   * rejects with a `Crash` of kind `shutdown` (or `killed`).
   */
  cancel(): Promise<void> {
    return this.stop(false);
  }

  /** @internal Cancel, or kill at once (`kill`): the kill path every supervisor shares. */
  stop(kill: boolean): Promise<void> {
    requestStop(this.device, kill ? "brutal" : this.#shutdown, this.device.id);
    return this.#result.then(noop, noop);
  }
}

/**
 * Runs short tasks under supervision: each on its own device, never
 * restarted, all stopped (grace then kill) when the supervisor stops.
 *
 * @example
 * ```ts
 * const tasks = new TaskSupervisor({ name: "thumbnails" });
 * for await (const r of tasks.asyncStream(files, (f, signal) => resize(f, signal), { maxConcurrency: 4 })) {
 *   if (r.status === "ok") save(r.value); else console.warn(r.reason.message);
 * }
 * await tasks.stop();
 * ```
 */
export class TaskSupervisor extends Emitter<SupervisorEvents> {
  readonly device: Device;
  readonly name: string;
  /** Resolves once stopped. */
  readonly done: Promise<void>;
  readonly #grace: number;
  readonly #shutdownSpec: Shutdown;
  readonly #maxChildren: number;
  readonly #running = new Map<string, Task<unknown>>();
  /** The last tasks that ended, as execution records (`records()`). */
  readonly #records: RingBuffer<ExecutionRecord>;
  #seq = 0;
  #stopping: Promise<void> | undefined;
  #settleDone!: (error?: unknown) => void;
  /** How the device's own managed run ended: the Crash, or undefined for a clean end. */
  readonly #managed: Promise<Crash | undefined>;

  constructor(options: TaskSupervisorOptions = {}) {
    super();
    if (typeof options !== "object" || options === null) throw new SupervisorError("invalid-options", "options must be an object");
    const { name, shutdown = 5000, maxChildren = Number.POSITIVE_INFINITY, register = false, records = 100 } = options;
    if (!Number.isInteger(records) || records < 0 || records > 1_000_000) throw new SupervisorError("invalid-options", `records must be an integer from 0 to 1000000, not ${describeValue(records)}`);
    this.#records = new RingBuffer(records);
    if (name !== undefined && typeof name !== "string") throw new SupervisorError("invalid-options", "name must be a string");
    if (typeof register !== "boolean") throw new SupervisorError("invalid-options", "register must be a boolean");
    if (register && name === undefined) throw new SupervisorError("invalid-options", "register needs a name to register under");
    if (register && registry.whereis(name!) !== undefined) throw new SupervisorError("invalid-options", `the name ${JSON.stringify(name)} is already registered to a live device`);
    if (!(shutdown === "brutal" || shutdown === "infinity" || (typeof shutdown === "number" && shutdown >= 0))) {
      throw new SupervisorError("invalid-options", `shutdown must be ms ≥ 0, "brutal" or "infinity", not ${describeValue(shutdown)}`);
    }
    if (!(maxChildren === Number.POSITIVE_INFINITY || (Number.isInteger(maxChildren) && maxChildren >= 0))) {
      throw new SupervisorError("invalid-options", `maxChildren must be an integer ≥ 0, not ${describeValue(maxChildren)}`);
    }
    this.device = new Device({ name: name ?? "tasks" });
    this.name = name ?? `tasks-${this.device.id}`;
    this.#grace = graceOf(shutdown);
    this.#shutdownSpec = shutdown;
    this.#maxChildren = maxChildren;
    this.done = new Promise<void>((resolve, reject) => {
      this.#settleDone = (error) => (error === undefined ? resolve() : reject(error));
    });
    this.done.catch(noop); // observed or not, never an unhandled rejection
    // Like any supervisor, it answers its device: a shutdown message stops it; a faulted peer brings it down.
    this.#managed = this.device
      .manage(
        (signal) => {
          // A kill (its parent's brutal shutdown or grace overrun) kills the tasks too.
          signal.addEventListener("abort", () => void this.#stop(isKilled(signal.reason)), { once: true });
          return this.done;
        },
        { grace: Number.POSITIVE_INFINITY },
      )
      .then(
        () => undefined,
        (crash: Crash) => crash,
      );
    if (register) registry.register(this.name, this); // freed when its device disconnects
  }

  /**
   * The execution records of the last tasks that ended (oldest first).
   *
   * @example
   * ```ts
   * const slow = tasks.records().filter((r) => r.duration > 1_000);
   * ```
   */
  records(): ExecutionRecord[] {
    return this.#records.toArray();
  }

  /** Tasks running now. */
  get size(): number {
    return this.#running.size;
  }

  /**
   * Run `fn` as a supervised task. Its signal (if it declares one) aborts
   * when it is cancelled, timed out, or the supervisor stops.
   *
   * @throws {SupervisorError} `not-running` after `stop()`, `max-children` when full.
   * @example
   * ```ts
   * const n = await tasks.async(async () => countRows(db));
   * ```
   */
  async<T>(fn: Work<T>, options?: TaskOptions): Task<T> {
    if (this.#stopping !== undefined) throw new SupervisorError("not-running", `task supervisor "${this.name}" has stopped`);
    if (typeof fn !== "function") throw new SupervisorError("invalid-spec", "async() takes a function");
    if (options !== undefined && (typeof options !== "object" || options === null)) throw new SupervisorError("invalid-options", "async() options must be an object");
    const timeout = options?.timeout;
    const bad = timeout === undefined ? undefined : durationProblem("timeout", timeout);
    if (bad !== undefined) throw new SupervisorError("invalid-options", bad);
    const signal = options?.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new SupervisorError("invalid-options", "signal must be an AbortSignal");
    if (this.#running.size >= this.#maxChildren) throw new SupervisorError("max-children", `task supervisor "${this.name}" already runs ${this.#maxChildren} tasks`);
    const id = `${this.name}/${++this.#seq}`;
    const device = new Device({ name: id });
    const startedAt = Date.now();
    const manageOptions = timeout === undefined ? { grace: this.#grace } : { grace: this.#grace, timeout };
    const result = startManaged(device._board, fn, signal === undefined ? manageOptions : { ...manageOptions, signal }, "disconnect");
    const task = new Task<T>(id, device, result, this.#shutdownSpec);
    this.#running.set(id, task as Task<unknown>);
    if (this.wants("child-started")) this.emit("child-started", { id, device: device.id, restarts: 0, at: startedAt });
    const ended = (outcome: ExecutionRecord["outcome"]) => {
      this.#running.delete(id);
      const at = Date.now();
      const fault = device.fault;
      const requested = this.#stopping !== undefined;
      if (this.wants("child-exited")) this.emit("child-exited", { id, device: device.id, fault, requested, at, uptime: at - startedAt });
      const record: ExecutionRecord = { id: recordId(), name: id, start: startedAt, duration: at - startedAt, outcome };
      if (fault !== undefined) record.fault = fault;
      this.#records.push(record);
      if (this.wants("record")) this.emit("record", record);
    };
    result.then(
      () => ended("ok"),
      (crash: Crash) => ended(crash.kind === "shutdown" ? "shutdown" : outcomeOf(device.fault)),
    );
    return task;
  }

  /**
   * Run `fn` over `inputs` with at most `maxConcurrency` tasks at once,
   * yielding each result. Inputs are pulled lazily, so an endless source is
   * fine. Leaving the loop early (break, throw) cancels the tasks still
   * running and stops pulling inputs.
   *
   * @example
   * ```ts
   * for await (const r of tasks.asyncStream(urls, (u, signal) => fetch(u, { signal }), { maxConcurrency: 8, ordered: false })) …
   * ```
   */
  asyncStream<I, R>(
    inputs: Iterable<I> | AsyncIterable<I>,
    fn: (input: I, signal: AbortSignal) => R | PromiseLike<R>,
    options: StreamOptions = {},
  ): AsyncIterable<StreamResult<R>> {
    if (typeof options !== "object" || options === null) throw new SupervisorError("invalid-options", "asyncStream() options must be an object");
    const { maxConcurrency = defaultConcurrency(), ordered = true, timeout = 5000, onTimeout = "throw", signal } = options;
    const bad = durationProblem("timeout", timeout);
    if (bad !== undefined) throw new SupervisorError("invalid-options", bad);
    if (typeof ordered !== "boolean") throw new SupervisorError("invalid-options", "ordered must be a boolean");
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new SupervisorError("invalid-options", "signal must be an AbortSignal");
    if (inputs === null || typeof inputs !== "object" || !(Symbol.iterator in inputs || Symbol.asyncIterator in inputs)) {
      throw new SupervisorError("invalid-options", "asyncStream() takes an iterable or async iterable of inputs");
    }
    if (!(Number.isInteger(maxConcurrency) && maxConcurrency >= 1)) throw new SupervisorError("invalid-options", `maxConcurrency must be an integer ≥ 1, not ${describeValue(maxConcurrency)}`);
    if (onTimeout !== "throw" && onTimeout !== "kill-task") throw new SupervisorError("invalid-options", `onTimeout must be "throw" or "kill-task", not ${describeValue(onTimeout)}`);
    if (typeof fn !== "function") throw new SupervisorError("invalid-spec", "asyncStream() takes a function");
    return {
      [Symbol.asyncIterator]: () => this.#stream(inputs, fn, maxConcurrency, ordered, timeout, onTimeout, signal),
    };
  }

  async *#stream<I, R>(
    inputs: Iterable<I> | AsyncIterable<I>,
    fn: (input: I, signal: AbortSignal) => R | PromiseLike<R>,
    maxConcurrency: number,
    ordered: boolean,
    timeout: number,
    onTimeout: "throw" | "kill-task",
    signal: AbortSignal | undefined,
  ): AsyncGenerator<StreamResult<R>> {
    const queue = new PQueue({ concurrency: maxConcurrency });
    // A task that cannot start (max-children, a stopped supervisor) or the caller's abort ends the
    // stream at once: raced against every wait, not found only when its turn in the order comes.
    let fail!: (error: unknown) => void;
    const failed = new Promise<never>((_, reject) => {
      fail = reject;
    });
    failed.catch(noop);
    const onAbort = (): void => fail(signal!.reason);
    signal?.throwIfAborted();
    signal?.addEventListener("abort", onAbort, { once: true });
    const source = Symbol.asyncIterator in inputs ? inputs[Symbol.asyncIterator]() : inputs[Symbol.iterator]();
    /** Started and not yet yielded, in input order. */
    const window: { task: Task<R> | undefined; outcome: Promise<StreamResult<R>> }[] = [];
    let exhausted = false;
    try {
      for (;;) {
        while (!exhausted && window.length < maxConcurrency) {
          const next = await source.next();
          if (next.done === true) {
            exhausted = true;
            break;
          }
          const input = next.value;
          // p-queue holds the concurrency bound; the window (≤ maxConcurrency) is what keeps input pulling lazy.
          const entry: (typeof window)[number] = { task: undefined, outcome: undefined as unknown as Promise<StreamResult<R>> };
          entry.outcome = queue.add(() => {
            entry.task = this.async<R>((taskSignal) => fn(input, taskSignal), { timeout });
            return toResult(entry.task);
          }) as Promise<StreamResult<R>>;
          entry.outcome.catch(fail);
          window.push(entry);
        }
        if (window.length === 0) return;
        let index = 0;
        if (!ordered) index = await Promise.race([failed, ...window.map((w, i) => w.outcome.then(() => i))]);
        // Taken out of the window only once settled: if the stream ends while waiting, finally still cancels it.
        const result = await Promise.race([window[index]!.outcome, failed]);
        window.splice(index, 1);
        if (result.status === "exit" && result.reason.kind === "timeout" && onTimeout === "throw") throw result.reason;
        yield result;
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      queue.clear();
      await Promise.all(window.map((w) => w.task?.cancel()));
      await (source as { return?: () => unknown }).return?.();
    }
  }

  /**
   * Stop every running task at once (grace then kill), then end.
   *
   * @example
   * ```ts
   * await tasks.stop();
   * ```
   */
  stop(): Promise<void> {
    return this.#stop(false);
  }

  /** `await using tasks = new TaskSupervisor()`: stops it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /** @internal Settles once every task is down (a parent's stop waits for it). */
  [SUBTREE_DOWN](): Promise<void> {
    return this.done.then(noop, noop);
  }

  /** @internal Killed by its parent: kill the tasks instead of giving them their grace. */
  [SUBTREE_KILL](): void {
    void this.#stop(true);
  }

  #stop(kill: boolean): Promise<void> {
    if (this.#stopping !== undefined) {
      if (kill) for (const t of this.#running.values()) void t.stop(true);
      return this.#stopping;
    }
    this.#stopping = (async () => {
      const tasks = [...this.#running.values()];
      await Promise.all(tasks.map((t) => t.stop(kill)));
      const fault = this.device.fault;
      const reason = this.device.isConnected ? "stop" : fault === undefined ? "shutdown-request" : fault.kind === "cascade" ? "cascade" : "killed";
      this.device.disconnect();
      this.emit("shutdown", { id: this.name, device: this.device.id, reason, fault, at: Date.now() });
      // Brought down by a fault: `done` fails with the Crash its managed run ended with (read, not raced).
      const crash = fault === undefined ? undefined : await this.#managed;
      this.#settleDone(fault === undefined ? undefined : (crash ?? makeCrash("killed", undefined, fault)));
    })();
    return this.#stopping;
  }

  /**
   * A child spec that runs a TaskSupervisor under a supervisor.
   *
   * @example
   * ```ts
   * new Supervisor({ children: [TaskSupervisor.child("tasks", { maxChildren: 100 })] });
   * ```
   */
  static child(id: string, options: TaskSupervisorOptions = {}, spec?: Partial<ChildSpec<TaskSupervisor>>): ChildSpec<TaskSupervisor> {
    return {
      type: "supervisor",
      shutdown: "infinity",
      ...spec,
      id,
      init: (ctx) => {
        const tasks = new TaskSupervisor({ name: id, ...options });
        ownSubtree(ctx, tasks);
        return tasks;
      },
      run(ctx, tasks) {
        ctx.signal.addEventListener("abort", () => void tasks.stop(), { once: true });
        return tasks.done;
      },
    };
  }
}

/** Settle a task into a stream result; failures become `{ status: "exit" }`. */
function toResult<R>(task: Task<R>): Promise<StreamResult<R>> {
  return task.then(
    (value) => ({ status: "ok", value }),
    (reason: unknown) => ({ status: "exit", reason: asCrash(reason) }),
  );
}

function asCrash(reason: unknown): Crash {
  return reason instanceof Crash ? reason : makeCrash("error", undefined, undefined, reason);
}

function defaultConcurrency(): number {
  const available = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency;
  return typeof available === "number" && available > 0 ? available : 4;
}

