/**
 * `manage()` / `partManage()`: run work on a device while its mailbox
 * listens, and turn the first of (result, failure, shutdown, faulted peer,
 * timeout, external disconnect) into the device's ending and the run's
 * outcome.
 *
 * One `ManageRun` per run, with one phase (`starting` → `waiting` →
 * `stopping` → `ended`) and one outcome path (`settle`), whether the work
 * was synchronous or not.
 *
 * Costs are kept where they are paid for (measured in docs/benchmarks.md):
 * an AbortSignal (≈ 2.5 µs) exists only for work that could read it; a
 * `Crash` is made without capturing a stack; a synchronous failure settles
 * on a microtask, after the caller has attached its handler, so Node's
 * rejection tracking never runs.
 */
import { bareCrash, type Crash, type CrashKind, withOwnStack } from "./crash.js";
import type { DeviceId } from "./device-id.js";
import { Fault } from "./fault.js";
import { LinkError } from "./link-error.js";
import type { Message } from "./message.js";
import { disconnect, isClosed, type Plugboard, type Reaction, type RunSink, schedule, take } from "./plugboard.js";
import { type AnyTimer, clearAnyTimeout, describeValue, durationProblem, setAnyTimeout } from "./timer.js";
import { type ExecutionRecord, type Outcome, recordId, recordingRuns, runRecords } from "./records.js";

/**
 * Options of {@link Device.manage} and {@link Device.partManage}. Durations
 * may be of any length — 2³¹ ms and more are honoured (Node's own timers
 * would fire after 1 ms), `Infinity` means none — and NaN, negative or
 * non-number durations are refused with `LinkError` `invalid-argument`.
 *
 * @example
 * ```ts
 * await device.manage(syncAll, { timeout: 30 * 24 * 3_600_000, grace: 5_000, signal: AbortSignal.timeout(60_000) });
 * ```
 */
export interface ManageOptions {
  /**
   * Milliseconds the asynchronous work may take before it is abandoned with
   * fault `timeout` (timed from when the work returns its promise).
   */
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

/**
 * What managed work is: a function given an AbortSignal that aborts when its
 * run ends early. Every function that could read its first argument gets a
 * real signal — `(signal) => …`, `(...args) => …`, `(signal = x) => …`, a
 * `function` reading `arguments` — and a signal is only created for those:
 * `() => …` is called with none (it could not read it), which keeps
 * `manage()` of such work free of the signal's cost.
 *
 * @example
 * ```ts
 * const work: Work<string> = async (signal) => (await fetch(url, { signal })).text();
 * const forwarded: Work<string> = (...args) => work(...args); // given the same kind of signal
 * ```
 */
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
  run.end(Fault.timeout, run.crashWith("timeout"));
}

function onGraceOver(run: ManageRun<unknown>): void {
  run.graceTimer = undefined;
  run.end(Fault.killed, run.crashWith("killed", undefined, Fault.killed));
}

/** @internal Told, once, that a run has settled (instead of a result promise: supervised children need none). */
export interface RunObserver {
  ended(): void;
}

/** @internal Where lazily-created signals come from: `signal` is made on first read. */
export interface SignalSource {
  readonly signal: AbortSignal;
}

/**
 * @internal What a run does to its device when the work succeeds: `manage` disconnects
 * it cleanly (`"disconnect"`), `partManage` leaves it connected (`"stay"`).
 * A run that fails or ends early always disconnects it.
 */
export type OnSuccess = "disconnect" | "stay";

/**
 * Where a run is. Each event (the work settling, a message, the timeout, the
 * grace period running out) is judged against it; nothing else says where a
 * run is.
 *
 * - `starting`: queued messages are being checked and the work function is
 *   running synchronously. A fatal message ends the run at once; whatever the
 *   work then returns is abandoned.
 * - `waiting`: the work returned a thenable and the mailbox listens.
 * - `stopping`: a shutdown was requested; the work's signal has aborted and it
 *   has `grace` ms to settle. `crash` holds the shutdown it will end with.
 * - `ended`: settled once and for all; late results are dropped.
 */
type Phase = "starting" | "waiting" | "stopping" | "ended";

class ManageRun<T> implements RunSink, SignalSource, Reaction {
  readonly board: Plugboard;
  readonly onSuccess: OnSuccess;
  /** ms a shutdown request gives the work to finish; undefined = end at once. */
  readonly grace: number | undefined;
  phase: Phase = "starting";
  controller: AbortController | undefined = undefined;
  timer: AnyTimer = undefined;
  graceTimer: AnyTimer = undefined;
  external: AbortSignal | undefined = undefined;
  /** The caller's promise, made once the work is waited on (`manage`); undefined for an observed run. */
  resolve: ((value: T) => void) | undefined = undefined;
  reject: ((reason: unknown) => void) | undefined = undefined;
  observer: RunObserver | undefined = undefined;
  /** `stopping`: the shutdown it will end with. `ended` early: the crash it ended with. */
  crash: Crash | undefined = undefined;
  /** `ended` by the work itself: its value, or what it threw. */
  result: unknown = undefined;
  /** How it ended (a Crash kind is an outcome of the same name); meaningful once `ended`. */
  outcome: Outcome = "ok";
  /** The fatal message `deliver` saw, for `react` to act on. */
  fatal: Message | undefined = undefined;
  /** `Date.now()` at the start when runs are being recorded, else 0 (no clock read). */
  readonly start: number;

  constructor(board: Plugboard, onSuccess: OnSuccess, grace: number | undefined, observer: RunObserver | undefined) {
    this.board = board;
    this.onSuccess = onSuccess;
    this.grace = grace;
    this.observer = observer;
    this.start = recordingRuns() ? Date.now() : 0;
  }

  // ------------------------------------------------------------ events

  /** The mailbox reader: clean `disconnected` notices are consumed, anything else ends the run. */
  deliver(message: Message | undefined): void {
    if (this.phase === "ended") return;
    if (message === undefined) {
      // Disconnected by someone else (a supervisor's kill, disconnect(), disposal).
      const b = this.board;
      this.end(undefined, b.fault === undefined ? this.crashWith("shutdown", b.id) : this.crashWith("killed", undefined, b.fault));
      return;
    }
    if (message.kind === "disconnected" ? message.fault === undefined : this.phase === "stopping") {
      // A clean exit of a linked device is normal; a second shutdown request changes nothing.
      // A faulted peer still cascades, even during a grace period.
      this.board.sink = this;
      return;
    }
    this.fatal = message;
    schedule(this);
  }

  /** Acting on the fatal message `deliver` saw, once every listener of its sender has heard. */
  react(): void {
    const message = this.fatal!;
    if (message.kind === "shutdown") this.shutdown(message.from);
    else this.end(Fault.cascade(message.from), this.crashWith("cascade", message.from, message.fault));
  }

  /** The caller's abort signal fired: a shutdown request from the caller. */
  handleEvent(): void {
    this.shutdown(this.board.id);
  }

  /** A shutdown request: end cleanly now, or give asynchronous work its grace period first. */
  shutdown(from: number): void {
    if (this.phase !== "starting" && this.phase !== "waiting") return; // ended, or already stopping
    const crash = this.crashWith("shutdown", from);
    const grace = this.grace;
    if (grace === undefined || this.phase === "starting") {
      this.end(undefined, crash); // no grace, or nothing asynchronous to wait for
      return;
    }
    this.phase = "stopping";
    this.crash = crash;
    const b = this.board;
    if (b.sink === null) b.sink = this;
    // Messages that queued while the shutdown waited its turn still count (a faulted peer still cascades).
    for (let m = take(b); m !== undefined; m = take(b)) {
      if ((this.phase as Phase) === "ended" || b.sink !== this) break;
      b.sink = null;
      this.deliver(m);
    }
    if ((this.phase as Phase) === "ended") return; // a queued fault ended it: no grace, and no timer left behind
    this.graceTimer = setAnyTimeout(onGraceOver, grace, this as ManageRun<unknown>); // Infinity: none
    this.controller?.abort(withOwnStack(crash));
  }

  /** The work returned (or resolved) `value`. */
  succeed(value: T): void {
    if (this.phase === "ended") return; // abandoned work: its late result is dropped
    if (this.phase === "stopping") {
      this.settle(undefined, this.crash!.kind); // finished within its grace period: a clean, requested stop
      return;
    }
    this.result = value;
    this.settle(undefined, "ok");
  }

  /** The work threw (or rejected) `error`. */
  fail(error: unknown): void {
    if (this.phase === "ended") return; // abandoned work: its late failure is dropped, never unhandled
    if (this.phase === "stopping" && isAbortOf(error, this.crash!)) {
      this.settle(undefined, "shutdown"); // it gave up because we asked it to: still a clean stop
      return;
    }
    this.result = error; // a failure during the grace period is the work's own failure
    this.settle(Fault.error(error), "error");
  }

  /** End before the work settled: disconnect with `fault`, abort the work's signal, the outcome is `crash`. */
  end(fault: Fault | undefined, crash: Crash): void {
    if (this.phase === "ended") return;
    this.crash = crash;
    this.settle(fault, crash.kind);
  }

  // ------------------------------------------------------------ the one outcome path

  /**
   * The one way every run ends, whatever ended it and whether the work was
   * synchronous or not: stop listening, end the device (except a
   * `partManage` success), abort the signal of work that is abandoned, hand
   * the outcome to whoever waits, record it.
   */
  settle(fault: Fault | undefined, outcome: Outcome): void {
    this.phase = "ended";
    this.outcome = outcome;
    this.cleanup();
    if (outcome !== "ok" || this.onSuccess === "disconnect") disconnect(this.board, fault);
    const controller = this.controller;
    // Work abandoned before it settled is told through its signal; work that settled on its own is not.
    if (controller !== undefined && this.crash !== undefined && !controller.signal.aborted) controller.abort(withOwnStack(this.crash));
    const resolve = this.resolve;
    if (resolve !== undefined) {
      if (outcome === "ok") resolve(this.result as T);
      else this.reject!(this.crashOf());
    }
    const observer = this.observer;
    // Told on a microtask, never from inside the disconnect that ended the run: what it does next
    // (a supervisor restarting the child, with the user's init and run) must not run inside someone else's call.
    if (observer !== undefined) queueMicrotask(() => observer.ended());
    this.record();
  }

  /** The Crash an unsuccessful run rejects with (made only when someone will receive it). */
  crashOf(): Crash {
    return withOwnStack(this.outcome === "error" ? this.crashWith("error", undefined, undefined, this.result) : this.crash!);
  }

  /**
   * A Crash of this run: it names the device, so an unhandled one says whose
   * work failed. Made bare; it gets its own `stack` only when a user can
   * see it (the caller's promise, the work's signal): a supervised child
   * whose signal nobody made pays nothing for it.
   */
  crashWith(kind: CrashKind, from?: DeviceId, fault?: Fault, cause?: unknown): Crash {
    const b = this.board;
    return bareCrash(kind, from, fault, cause, b.id, b.name);
  }

  /**
   * The caller's promise for a run of `manage`/`partManage`. A run that has
   * already ended (synchronous work, a queued fatal message) resolves now or
   * rejects one microtask from now, after the caller attached its handler.
   */
  promise(): Promise<T> {
    if (this.phase === "ended") return this.outcome === "ok" ? Promise.resolve(this.result as T) : rejectSoon(this.crashOf());
    const promise = new Promise<T>(capture);
    this.resolve = captureResolve as (value: T) => void;
    this.reject = captureReject;
    return promise;
  }

  cleanup(): void {
    if (this.timer !== undefined) {
      clearAnyTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.graceTimer !== undefined) {
      clearAnyTimeout(this.graceTimer);
      this.graceTimer = undefined;
    }
    if (this.external !== undefined) {
      this.external.removeEventListener("abort", this);
      this.external = undefined;
    }
    const b = this.board;
    if (b.sink === this) b.sink = null;
  }

  /** Emit this run's record, if someone listens (and listened when it began). */
  record(): void {
    if (this.start === 0 || !recordingRuns()) return;
    const b = this.board;
    const record: ExecutionRecord = { id: recordId(), name: b.name ?? `device-${b.id}`, start: this.start, duration: Date.now() - this.start, outcome: this.outcome };
    if (b.fault !== undefined) record.fault = b.fault;
    runRecords.emit("record", record);
  }

  /** The work's AbortSignal, created on first use; already aborted if the run has ended early or is stopping. */
  get signal(): AbortSignal {
    let controller = this.controller;
    if (controller === undefined) {
      controller = new AbortController();
      this.controller = controller;
      const reason = this.crash;
      if (reason !== undefined) controller.abort(withOwnStack(reason));
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
  // Any length is honoured (≥ 2³¹ ms is chained, Infinity is none); NaN, negatives and non-numbers are refused.
  const bad = (grace === undefined ? undefined : durationProblem("grace", grace)) ?? (timeout === undefined ? undefined : durationProblem("timeout", timeout));
  if (bad !== undefined) return new LinkError("invalid-argument", bad);
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    return new LinkError("invalid-argument", `signal must be an AbortSignal, not ${describeValue(signal)}`);
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

/**
 * @internal `manage` (`onSuccess` `"disconnect"`) and `partManage`
 * (`"stay"`): the run's outcome as a promise.
 */
export function startManaged<T>(b: Plugboard, work: Work<T>, options: ManageOptions | undefined, onSuccess: OnSuccess): Promise<T> {
  const refused = refusal(b, work, options);
  if (refused !== undefined) return rejectSoon(refused);
  const run = new ManageRun<T>(b, onSuccess, options?.grace, undefined);
  if (begin(run, options)) call(run, work as (signal: AbortSignal | undefined) => T | PromiseLike<T>, mayReadSignal(work) ? run.signal : undefined, options?.timeout);
  return run.promise();
}

/**
 * @internal `manage` for supervised children: the work is given a
 * {@link SignalSource} instead of a signal (so a signal is only made if it
 * reads `ctx.signal`), a signal handed out during init is adopted, and no
 * result promise is made (it would cost memory per child and a handler to
 * keep it from going unhandled); `observer.ended()` is called on a microtask
 * once the run has settled. The outcome is the device's fault.
 */
export function observeManaged<T>(b: Plugboard, work: Work<T>, options: ManageOptions, adopt: AbortController | undefined, observer: RunObserver): void {
  const refused = refusal(b, work, options);
  if (refused !== undefined) {
    queueMicrotask(() => observer.ended());
    return;
  }
  const run = new ManageRun<T>(b, "disconnect", options.grace, observer);
  // Adopted before begin(): a run that ends at once (a fault queued during init) must still abort the signal init was given.
  if (adopt !== undefined) run.controller = adopt;
  if (!begin(run, options)) return;
  call(run, work as unknown as (source: SignalSource) => T | PromiseLike<T>, run, options.timeout);
}

/** Why a run cannot begin at all (bad arguments, a dead or busy device), or undefined. */
function refusal(b: Plugboard, work: unknown, options: ManageOptions | undefined): LinkError | undefined {
  if (typeof work !== "function") return new LinkError("invalid-argument", "manage() takes a function");
  const invalid = checkOptions(options);
  if (invalid !== undefined) return invalid;
  if (isClosed(b)) return new LinkError("device-down", `device ${b.id} has disconnected and cannot run work`);
  if (b.sink !== null) return new LinkError("busy", `device ${b.id} already has a reader (receive, watch or manage)`);
  return undefined;
}
/**
 * Before the work is called: a fatal message already queued, or the
 * caller's signal already aborted, ends the run; otherwise the run becomes
 * the mailbox's reader. False when the run has already ended.
 */
function begin<T>(run: ManageRun<T>, options: ManageOptions | undefined): boolean {
  const b = run.board;
  if (b.inbox !== null) {
    const fatal = queuedFatal(b);
    if (fatal !== undefined) {
      run.fatal = fatal;
      run.react();
      return false;
    }
  }
  const external = options?.signal;
  if (external !== undefined) {
    if (external.aborted) {
      run.end(undefined, run.crashWith("shutdown", b.id));
      return false;
    }
    run.external = external;
    external.addEventListener("abort", run);
  }
  b.sink = run; // listen while the work runs, even while it runs synchronously
  return true;
}

/**
 * Call the work and route what it does into the run: a throw or a plain
 * value settles it now (the same `fail`/`succeed` as asynchronous work), a
 * thenable makes it wait (with its timeout armed).
 */
function call<T, A>(run: ManageRun<T>, work: (arg: A) => T | PromiseLike<T>, arg: A, timeout: number | undefined): void {
  let result: T | PromiseLike<T>;
  try {
    result = arg === undefined ? (work as () => T | PromiseLike<T>)() : work(arg);
  } catch (error) {
    run.fail(error);
    return;
  }
  if (run.phase === "ended") {
    // A fatal message arrived while the work ran synchronously; a thenable it returned is abandoned.
    if (isThenable(result)) result.then(undefined, ignore);
    return;
  }
  if (!isThenable(result)) {
    run.succeed(result);
    return;
  }
  run.phase = "waiting";
  if (timeout !== undefined) run.timer = setAnyTimeout(onTimeout, timeout, run as ManageRun<unknown>); // Infinity: none
  try {
    result.then(
      (value) => run.succeed(value),
      (error: unknown) => run.fail(error),
    );
  } catch (error) {
    run.fail(error); // a thenable whose then() throws is work that failed
  }
}

/**
 * Whether `work` could read the signal it is given. `work.length` is not
 * enough: it stops counting at the first default or rest parameter, so
 * `(...args) => f(...args)` and `(signal = fallback) => …` have length 0 and
 * still read it, and so may a `function` that reads `arguments`. Creating a
 * signal costs ≈ 2.5 µs (most of a `manage()`), so the one case that is
 * skipped is the one that provably cannot read it: a function whose source
 * shows an empty parameter list and that is an arrow (no `arguments` of its
 * own) or never mentions `arguments`. Reading the source costs ≈ 100–170 ns
 * per run of such work, against ≈ 2.5 µs for a signal.
 * Native and bound functions (whose source says `[native code]`) may pass
 * their arguments on: they get the signal.
 */
function mayReadSignal(work: (...args: never[]) => unknown): boolean {
  if (work.length > 0) return true;
  let source: string;
  try {
    source = Function.prototype.toString.call(work);
  } catch {
    return true;
  }
  let i = source.indexOf("(");
  if (i < 0) return true;
  i = skipSpaces(source, i + 1);
  if (source.charCodeAt(i) !== 41 /* ")" */) return true; // a parameter (rest, default, destructured) or a comment
  i = skipSpaces(source, i + 1);
  if (source.charCodeAt(i) === 61 /* "=" */ && source.charCodeAt(i + 1) === 62 /* ">" */) return false; // `() =>`
  return source.includes("arguments") || source.includes("[native code]");
}

function skipSpaces(s: string, i: number): number {
  for (let c = s.charCodeAt(i); c === 32 || c === 9 || c === 10 || c === 13; c = s.charCodeAt(++i));
  return i;
}

function isThenable<T>(x: T | PromiseLike<T>): x is PromiseLike<T> {
  return x !== null && (typeof x === "object" || typeof x === "function") && typeof (x as PromiseLike<T>).then === "function";
}

function ignore(): void {}
