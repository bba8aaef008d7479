/**
 * `manage()` / `partManage()`: run work on a device while its mailbox
 * listens, and turn the first of (result, failure, shutdown, faulted peer,
 * timeout, external disconnect) into the device's ending and the run's
 * outcome.
 *
 * Costs are kept where they are paid for (see shared/PERF-NOTES.md): the
 * AbortSignal exists only if the work declares a parameter; a `Crash` is made
 * without a stack; a synchronous failure settles on a microtask, after the
 * caller has attached its handler, so Node's rejection tracking never runs.
 */
import { type Crash, makeCrash } from "./crash.js";
import { Fault } from "./fault.js";
import { LinkError } from "./link-error.js";
import type { Message } from "./message.js";
import { disconnect, isClosed, type Plugboard, type Reaction, type RunSink, schedule, take } from "./plugboard.js";
import { type ExecutionRecord, type Outcome, recordId, recordingRuns, runRecords } from "./records.js";

/** Options of {@link Device.manage} and {@link Device.partManage}. */
export interface ManageOptions {
  /** Milliseconds before the work is abandoned with fault `timeout`. */
  timeout?: number;
  /** Aborting it acts as a shutdown request. */
  signal?: AbortSignal;
  /**
   * What a shutdown request (a `shutdown` message or `signal` aborting) does
   * to asynchronous work. Undefined (the default): the run ends at once and
   * the work is abandoned. A number of ms (or `Infinity`): the work's signal
   * aborts and it has that long to settle; settling in time is a clean stop,
   * overrunning disconnects the device with fault `killed` and abandons it.
   * OTP's shutdown grace period.
   */
  grace?: number;
}

/** What managed work is: a function given an AbortSignal that aborts when its run ends early. */
export type Work<T> = (signal: AbortSignal) => T | PromiseLike<T>;

/** A static executor, so creating the result promise allocates no closure of ours. */
let captureResolve: ((value: never) => void) | undefined;
let captureReject: ((reason: unknown) => void) | undefined;
function capture(resolve: (value: never) => void, reject: (reason: unknown) => void): void {
  captureResolve = resolve;
  captureReject = reject;
}

/**
 * A promise that rejects with `error` one microtask from now, after the
 * caller has attached its handler: Node's unhandled-rejection tracking (≈ 1.4 µs)
 * never runs, and nothing is thrown (a throw costs ≈ 280 ns here).
 */
function rejectSoon<T>(error: unknown): Promise<T> {
  const promise = new Promise<T>(capture);
  const reject = captureReject!;
  queueMicrotask(() => reject(error));
  return promise;
}

function onTimeout(run: ManageRun<unknown>): void {
  run.timer = undefined;
  run.end(Fault.timeout, makeCrash("timeout"));
}

function onGraceOver(run: ManageRun<unknown>): void {
  run.graceTimer = undefined;
  run.end(Fault.killed, makeCrash("killed", undefined, Fault.killed));
}

/** @internal Told, once, that a run has settled (instead of a result promise: supervised children need none). */
export interface RunObserver {
  ended(): void;
}

/** @internal Where lazily-created signals come from: `signal` is made on first read. */
export interface SignalSource {
  readonly signal: AbortSignal;
}

class ManageRun<T> implements RunSink, SignalSource, Reaction {
  readonly board: Plugboard;
  readonly part: boolean;
  /** ms a shutdown request gives the work to finish; undefined = end at once. */
  readonly grace: number | undefined;
  controller: AbortController | undefined = undefined;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  graceTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  external: AbortSignal | undefined = undefined;
  resolve: ((value: T) => void) | undefined = undefined;
  reject: ((reason: unknown) => void) | undefined = undefined;
  /** The crash it ended with, when it ended before its work settled. */
  crash: Crash | undefined = undefined;
  settled = false;
  /** The work returned a thenable and is running asynchronously: a shutdown can give it its grace. */
  waiting = false;
  observer: RunObserver | undefined = undefined;
  /** A shutdown was requested and the work has `grace` ms to finish: the crash it will end with. */
  stopping: Crash | undefined = undefined;
  fatal: Message | undefined = undefined;
  /** `Date.now()` at the start when runs are being recorded, else 0 (no clock read). */
  readonly start: number;

  constructor(board: Plugboard, part: boolean, grace: number | undefined) {
    this.board = board;
    this.part = part;
    this.grace = grace;
    this.start = recordingRuns() ? Date.now() : 0;
  }

  /** Emit this run's record, if someone listens (and listened when it began). */
  record(outcome: Outcome): void {
    if (this.start === 0 || !recordingRuns()) return;
    const b = this.board;
    const record: ExecutionRecord = { id: recordId(), name: b.name ?? `device-${b.id}`, start: this.start, duration: Date.now() - this.start, outcome };
    if (b.fault !== undefined) record.fault = b.fault;
    runRecords.emit("record", record);
  }

  /** The mailbox reader: clean `disconnected` notices are consumed, anything else ends the run. */
  deliver(message: Message | undefined): void {
    if (this.settled) return;
    if (message === undefined) {
      // Disconnected by someone else (a supervisor's kill, disconnect(), disposal).
      const b = this.board;
      this.finish(b.fault === undefined ? makeCrash("shutdown", b.id) : makeCrash("killed", undefined, b.fault));
      return;
    }
    if (message.kind === "disconnected" ? message.fault === undefined : this.stopping !== undefined) {
      // A clean exit of a linked device is normal; a second shutdown request changes nothing.
      // A faulted peer still cascades, even during a grace period.
      this.board.sink = this;
      return;
    }
    this.fatal = message;
    schedule(this);
  }

  /** Acting on the fatal message `deliver` saw. */
  react(): void {
    const message = this.fatal!;
    if (message.kind === "shutdown") this.shutdown(message.from);
    else this.end(Fault.cascade(message.from), makeCrash("cascade", message.from, message.fault));
  }

  /** The caller's abort signal fired: a shutdown request from the caller. */
  handleEvent(): void {
    if (!this.settled) this.shutdown(this.board.id);
  }

  /** A shutdown request: end cleanly now, or give the work its grace period first. */
  shutdown(from: number): void {
    if (this.settled || this.stopping !== undefined) return;
    const crash = makeCrash("shutdown", from);
    const grace = this.grace;
    if (grace === undefined || !this.waiting) {
      this.end(undefined, crash); // no grace, or nothing asynchronous left to wait for
      return;
    }
    this.stopping = crash;
    if (this.board.sink === null) this.board.sink = this;
    // Messages that queued while the shutdown waited its turn still count (a faulted peer still cascades).
    for (let m = take(this.board); m !== undefined; m = take(this.board)) {
      if (this.settled || this.board.sink !== this) break;
      this.board.sink = null;
      this.deliver(m);
    }
    if (this.settled) return; // a queued fault ended it: no grace, and no timer left behind
    if (grace !== Number.POSITIVE_INFINITY) this.graceTimer = setTimeout(onGraceOver, grace, this as ManageRun<unknown>);
    this.controller?.abort(crash);
  }

  /** End early: disconnect with `fault`, abort the work's signal, reject with `crash`. */
  end(fault: Fault | undefined, crash: Crash): void {
    if (this.settled) return;
    const b = this.board;
    if (b.sink === this) b.sink = null;
    disconnect(b, fault);
    this.finish(crash);
  }

  finish(crash: Crash): void {
    this.settled = true;
    this.crash = crash;
    this.cleanup();
    const controller = this.controller;
    if (controller !== undefined && !controller.signal.aborted) controller.abort(crash);
    this.reject?.(crash);
    this.notify();
    this.record(crash.kind); // a Crash kind is an outcome of the same name
  }

  /**
   * Tell the observer on a microtask, never from inside the disconnect that
   * ended the run: what it does next (a supervisor restarting the child, with
   * the user's init and run) must not run inside someone else's call.
   */
  notify(): void {
    const observer = this.observer;
    if (observer !== undefined) queueMicrotask(() => observer.ended());
  }

  cleanup(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.graceTimer !== undefined) {
      clearTimeout(this.graceTimer);
      this.graceTimer = undefined;
    }
    if (this.external !== undefined) {
      this.external.removeEventListener("abort", this);
      this.external = undefined;
    }
    const b = this.board;
    if (b.sink === this) b.sink = null;
  }

  succeed(value: T): void {
    if (this.settled) return; // abandoned work: its late result is dropped
    const stopping = this.stopping;
    if (stopping !== undefined) {
      this.end(undefined, stopping); // it finished within its grace period: a clean, requested stop
      return;
    }
    this.settled = true;
    this.cleanup();
    if (!this.part) disconnect(this.board, undefined);
    this.resolve?.(value);
    this.notify();
    this.record("ok");
  }

  fail(error: unknown): void {
    if (this.settled) return; // abandoned work: its late failure is dropped, never unhandled
    const stopping = this.stopping;
    if (stopping !== undefined && isAbortOf(error, stopping)) {
      this.end(undefined, stopping); // it gave up because we asked it to: still a clean stop
      return;
    }
    this.settled = true;
    this.cleanup();
    disconnect(this.board, Fault.error(error));
    this.reject?.(makeCrash("error", undefined, undefined, error));
    this.notify();
    this.record("error");
  }

  /** The work's AbortSignal, created on first use; already aborted if the run has ended or is stopping. */
  get signal(): AbortSignal {
    let controller = this.controller;
    if (controller === undefined) {
      controller = new AbortController();
      this.controller = controller;
      const reason = this.crash ?? this.stopping;
      if (reason !== undefined) controller.abort(reason);
    }
    return controller.signal;
  }
}

/** Work that rejects with the abort reason we gave it (or a DOM AbortError) is stopping as asked. */
function isAbortOf(error: unknown, reason: Crash): boolean {
  return error === reason || (error instanceof Error && error.name === "AbortError");
}

function checkOptions(options: ManageOptions | undefined): LinkError | undefined {
  if (options === undefined) return undefined;
  if (typeof options !== "object" || options === null) return new LinkError("invalid-argument", "manage options must be an object");
  const { timeout, signal, grace } = options;
  if (grace !== undefined && !(typeof grace === "number" && grace >= 0 && !Number.isNaN(grace))) {
    return new LinkError("invalid-argument", `grace must be a number of milliseconds ≥ 0 or Infinity, not ${String(grace)}`);
  }
  if (timeout !== undefined && !(typeof timeout === "number" && timeout >= 0 && !Number.isNaN(timeout))) {
    return new LinkError("invalid-argument", `timeout must be a number of milliseconds ≥ 0, not ${String(timeout)}`);
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    return new LinkError("invalid-argument", "signal must be an AbortSignal");
  }
  return undefined;
}

/**
 * Drain what was queued before the run began, the way an Erlang process
 * would have met it: clean exits of linked devices are consumed, and the
 * first fatal message ends the device before any work starts.
 */
function queuedFatal(b: Plugboard): Message | undefined {
  for (;;) {
    const message = take(b);
    if (message === undefined) return undefined;
    if (message.kind === "shutdown" || message.fault !== undefined) return message;
  }
}

/** @internal Shared by `manage` (part = false) and `partManage` (part = true). */
export function runManaged<T>(b: Plugboard, work: Work<T>, options: ManageOptions | undefined, part: boolean): Promise<T> {
  return launch(b, work, options, part, false, undefined, undefined)!;
}

/**
 * @internal `manage` for supervised children: the work is given a
 * {@link SignalSource} instead of a signal (so a signal is only made if it
 * reads `ctx.signal`), a signal handed out during init is adopted, and no
 * result promise is made (it
 * would cost memory per child and a handler to keep it from going
 * unhandled); `observer.ended()` is called on a microtask once the run has
 * settled. The outcome is the device's fault.
 */
export function observeManaged<T>(b: Plugboard, work: Work<T>, options: ManageOptions, adopt: AbortController | undefined, observer: RunObserver): void {
  launch(b, work, options, false, true, adopt, observer);
}

/** Ending before the work is waited on: a rejection one microtask from now, or the observer told then. */
function endedEarly<T>(error: unknown, observer: RunObserver | undefined): Promise<T> | undefined {
  if (observer === undefined) return rejectSoon(error);
  queueMicrotask(() => observer.ended());
  return undefined;
}

function launch<T>(
  b: Plugboard,
  work: Work<T>,
  options: ManageOptions | undefined,
  part: boolean,
  lazy: boolean,
  adopt: AbortController | undefined,
  observer: RunObserver | undefined,
): Promise<T> | undefined {
  if (typeof work !== "function") return endedEarly(new LinkError("invalid-argument", "manage() takes a function"), observer);
  const invalid = checkOptions(options);
  if (invalid !== undefined) return endedEarly(invalid, observer);
  if (isClosed(b)) return endedEarly(new LinkError("device-down", `device ${b.id} has disconnected and cannot run work`), observer);
  if (b.sink !== null) return endedEarly(new LinkError("busy", `device ${b.id} already has a reader (receive, watch or manage)`), observer);

  const run = new ManageRun<T>(b, part, options?.grace);
  if (b.inbox !== null) {
    const fatal = queuedFatal(b);
    if (fatal !== undefined) {
      run.fatal = fatal;
      run.react();
      return endedEarly(run.crash, observer);
    }
  }
  const external = options?.signal;
  if (external !== undefined) {
    if (external.aborted) {
      run.end(undefined, makeCrash("shutdown", b.id));
      return endedEarly(run.crash, observer);
    }
    run.external = external;
    external.addEventListener("abort", run);
  }
  if (adopt !== undefined) run.controller = adopt; // a signal handed out before the run began
  b.sink = run; // listen while the work runs, even while it runs synchronously

  let result: T | PromiseLike<T>;
  try {
    if (lazy) result = (work as unknown as (source: SignalSource) => T | PromiseLike<T>)(run);
    else result = work.length > 0 ? work(run.signal) : (work as () => T | PromiseLike<T>)();
  } catch (error) {
    if (run.settled) return endedEarly(run.crash, observer);
    run.settled = true;
    run.cleanup();
    disconnect(b, Fault.error(error));
    run.record("error");
    return endedEarly(makeCrash("error", undefined, undefined, error), observer);
  }
  if (run.settled) {
    // A fatal message arrived while the work ran synchronously; a thenable it returned is abandoned.
    if (isThenable(result)) result.then(undefined, ignore);
    return endedEarly(run.crash, observer);
  }
  if (!isThenable(result)) {
    run.settled = true;
    run.cleanup();
    if (!part) disconnect(b, undefined);
    run.record("ok");
    if (observer === undefined) return Promise.resolve(result);
    queueMicrotask(() => observer.ended());
    return undefined;
  }

  run.waiting = true;
  const timeout = options?.timeout;
  if (timeout !== undefined) run.timer = setTimeout(onTimeout, timeout, run as ManageRun<unknown>);
  let promise: Promise<T> | undefined;
  if (observer === undefined) {
    promise = new Promise<T>(capture);
    run.resolve = captureResolve as (value: T) => void;
    run.reject = captureReject;
  } else run.observer = observer;
  try {
    result.then(
      (value) => run.succeed(value),
      (error: unknown) => run.fail(error),
    );
  } catch (error) {
    run.fail(error); // a thenable whose then() throws is work that failed
  }
  return promise;
}

function isThenable<T>(x: T | PromiseLike<T>): x is PromiseLike<T> {
  return x !== null && (typeof x === "object" || typeof x === "function") && typeof (x as PromiseLike<T>).then === "function";
}

function ignore(): void {}
