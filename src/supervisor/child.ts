/**
 * One supervised child: its lifecycle, and the start and stop of one
 * incarnation (init, then `run` under `device.manage` with the spec's grace
 * period). The supervisor decides *whether* to start, stop or restart; this
 * file knows *how*, and is the only place that writes a child's state.
 *
 * Every asynchronous result (an init settled, a run ended) is reported to
 * the {@link ChildListener} tagged with the {@link Incarnation} it belongs
 * to; a result from an incarnation that is no longer current (a start that
 * was cancelled, a run that was killed and abandoned) is dropped here.
 */
import { makeCrash } from "../core/crash.js";
import { Device } from "../core/device.js";
import { Fault } from "../core/fault.js";
import { observeManaged, type RunObserver, type SignalSource } from "../core/manage.js";
import { clearAnyTimeout, setAnyTimeout } from "../core/timer.js";
import { type ChildContext, type ChildInfo, IGNORE, type NormalizedSpec } from "./child-spec.js";
import type { GroupRestart } from "./group-restart.js";
import { graceOf, requestStop } from "./shutdown.js";

/**
 * What a nested supervisor offers its parent: a promise that settles once
 * everything below it is down (so the parent's stop waits for the whole
 * subtree, even after a kill), and a kill (a nested supervisor killed by its
 * parent, brutal or by a grace overrun, kills its own children).
 */
export const SUBTREE_DOWN: unique symbol = Symbol("backplane.subtreeDown");
export const SUBTREE_KILL: unique symbol = Symbol("backplane.subtreeKill");
export interface Subtree {
  [SUBTREE_DOWN](): Promise<void>;
  [SUBTREE_KILL](): void;
  /** A nested supervisor's own stop: what a cancelled start asks of one that arrives late. */
  stop(): Promise<void>;
}

/**
 * `Supervisor.child` and `TaskSupervisor.child` say, as soon as their init
 * has made it, that the nested supervisor belongs to this child: only such a
 * subtree is waited for and killed with it. Any other state is opaque (a
 * worker whose init returns a shared TaskSupervisor does not own it).
 *
 * @example
 * ```ts
 * init(ctx) { const sup = new Supervisor(options); ownSubtree(ctx, sup); return sup.start().then(() => sup); }
 * ```
 */
export function ownSubtree(ctx: ChildContext, subtree: Subtree): void {
  if (ctx instanceof Context) ctx.subtree = subtree;
}

/** How a start ended. */
export type StartOutcome =
  | { readonly kind: "started" }
  | { readonly kind: "ignored" }
  | { readonly kind: "failed"; readonly error: unknown }
  | { readonly kind: "cancelled" };

const STARTED: StartOutcome = { kind: "started" };
const IGNORED: StartOutcome = { kind: "ignored" };
const CANCELLED: StartOutcome = { kind: "cancelled" };

/**
 * Who a child tells about its incarnations: the supervisor. Each call
 * happens once per incarnation, after the child's own state has moved on.
 */
export interface ChildListener {
  /** The run is beginning: the child is `running` from here on; `owner` is the restart that started it, if any. */
  childStarted(child: Child, run: Incarnation, owner: GroupRestart | undefined): void;
  /**
   * A start that went through `init` finished (a start without init is
   * synchronous: the caller sees the child running when `start` returns);
   * `owner` is the restart that started it, if any.
   */
  startSettled(child: Child, outcome: StartOutcome, owner: GroupRestart | undefined): void;
  /** The run ended; `stop` is set when it was asked to stop (by whom: a restart, or the API / the supervisor's own stop). */
  childExited(child: Child, run: Incarnation, fault: Fault | undefined, stop: StopRequest | undefined): void;
}

/** Why a running child was asked to stop: as part of a restart, or by the API or the supervisor's own stop. */
export type StopRequest = { readonly by: "restart"; readonly plan: GroupRestart } | { readonly by: "api" };
const BY_API: StopRequest = { by: "api" };

/**
 * A child's lifecycle — the one field that says what it is doing.
 *
 * - `stopped`: listed, not running (never started, terminated, ignored, or ended for good).
 * - `starting`: its `init` is in flight; `owner` is the restart that started it (undefined for a first start).
 * - `running`: its run is in flight.
 * - `stopping`: its run was asked to stop (`request` says by whom) and has not ended yet.
 * - `restarting`: down, and `plan` will start it again (after a backoff, or when its turn in a group comes).
 */
export type Lifecycle =
  | { readonly kind: "stopped" }
  | { readonly kind: "starting"; readonly run: Incarnation; readonly owner: GroupRestart | undefined }
  | { readonly kind: "running"; readonly run: Incarnation }
  | { readonly kind: "stopping"; readonly run: Incarnation; readonly request: StopRequest }
  | { readonly kind: "restarting"; readonly plan: GroupRestart };

const STOPPED: Lifecycle = { kind: "stopped" };

class Context implements ChildContext {
  readonly id: string;
  readonly device: Device;
  readonly args: readonly unknown[];
  /** Set when `run` begins: from then on the signal is the managed run's. */
  source: SignalSource | undefined = undefined;
  /** A signal handed out during `init`, adopted by the run. */
  controller: AbortController | undefined = undefined;
  /** The nested supervisor this child's init made, if it is one (see {@link ownSubtree}). */
  subtree: Subtree | undefined = undefined;

  constructor(id: string, device: Device, args: readonly unknown[]) {
    this.id = id;
    this.device = device;
    this.args = args;
  }

  get signal(): AbortSignal {
    if (this.source !== undefined) return this.source.signal;
    this.controller ??= new AbortController();
    return this.controller.signal;
  }
}

/**
 * One incarnation of a child: a device, its context, what init returned,
 * and who waits for its end. It observes its own managed run, so a run
 * that ends reports itself — and a stale one (no longer the child's
 * current incarnation) is recognised by identity.
 */
export class Incarnation implements RunObserver {
  readonly child: Child;
  readonly device: Device;
  readonly ctx: Context;
  state: unknown = undefined;
  startedAt = 0;
  /** Resolves a start in progress as cancelled (set while init runs). */
  cancel: (() => void) | undefined = undefined;
  /** A stop asked for while init ran: carried out as soon as the run begins, if init won the race. */
  pendingStop: { readonly from: number; readonly request: StopRequest; readonly kill: boolean } | undefined = undefined;
  /** Woken once this incarnation is fully down: usually one waiter (its stopper), so no array until a second. */
  waiters: (() => void) | (() => void)[] | undefined = undefined;

  constructor(child: Child, device: Device, ctx: Context) {
    this.child = child;
    this.device = device;
    this.ctx = ctx;
  }

  /** The managed run has settled (RunObserver). */
  ended(): void {
    const subtree = this.ctx.subtree;
    if (subtree === undefined) {
      this.child.runEnded(this);
      return;
    }
    // A nested supervisor's run ends when its device does; its own children may still be stopping.
    // Killed (brutal, or its grace ran out while it stopped them in order): it kills them now.
    if (this.device.fault?.kind === "killed") subtree[SUBTREE_KILL]();
    void subtree[SUBTREE_DOWN]().then(() => this.child.runEnded(this));
  }

  wake(): void {
    const waiters = this.waiters;
    this.waiters = undefined;
    if (typeof waiters === "function") waiters();
    else if (waiters !== undefined) for (const wake of waiters) wake();
  }

  whenDown(): Promise<void> {
    return new Promise<void>((resolve) => {
      const waiters = this.waiters;
      if (waiters === undefined) this.waiters = resolve;
      else if (typeof waiters === "function") this.waiters = [waiters, resolve];
      else waiters.push(resolve);
    });
  }
}

const TIMED_OUT = Symbol("timed out");

/** What `promise` resolved to (undefined if it rejected), or TIMED_OUT after `ms`; no timer is left behind. */
function settledWithin(promise: Promise<unknown>, ms: number): Promise<unknown> {
  const settled = promise.then(
    (value) => value,
    () => undefined,
  );
  if (ms <= 0) return Promise.resolve(TIMED_OUT);
  if (ms === Number.POSITIVE_INFINITY) return settled;
  return new Promise<unknown>((resolve) => {
    const timer = setAnyTimeout(() => resolve(TIMED_OUT), ms);
    void settled.then((value) => {
      clearAnyTimeout(timer);
      resolve(value);
    });
  });
}

export class Child {
  readonly spec: NormalizedSpec;
  /** Extra arguments given to its context (DynamicSupervisor). */
  readonly args: readonly unknown[];
  readonly #listener: ChildListener;
  #life: Lifecycle = STOPPED;
  /** Times it was restarted by its supervisor. */
  restarts = 0;
  lastFault: Fault | undefined = undefined;
  /** `Date.now()` when `lastFault` happened. */
  lastFaultAt = 0;
  /** Consecutive restarts, for backoff. */
  backoffLevel = 0;

  constructor(spec: NormalizedSpec, listener: ChildListener, args: readonly unknown[] = []) {
    this.spec = spec;
    this.#listener = listener;
    this.args = args;
  }

  get id(): string {
    return this.spec.id;
  }

  get life(): Lifecycle {
    return this.#life;
  }

  /** The current incarnation's device while one is starting or running. */
  get device(): Device | undefined {
    const life = this.#life;
    return life.kind === "starting" || life.kind === "running" || life.kind === "stopping" ? life.run.device : undefined;
  }

  /** What init returned, while it runs (a nested Supervisor, for dumps and `stateOf`). */
  get state(): unknown {
    const life = this.#life;
    return life.kind === "running" || life.kind === "stopping" ? life.run.state : undefined;
  }

  /** True while a start or a run is in progress (stopping included). */
  get isUp(): boolean {
    const kind = this.#life.kind;
    return kind === "starting" || kind === "running" || kind === "stopping";
  }

  /** The status users see: a start in flight is `restarting` when it is a restart, `running` when it is a first start. */
  get status(): ChildInfo["status"] {
    switch (this.#life.kind) {
      case "stopped":
        return "stopped";
      case "restarting":
        return "restarting";
      case "starting":
        return this.#life.owner !== undefined || this.restarts > 0 ? "restarting" : "running";
      case "running":
      case "stopping":
        return "running";
    }
  }

  info(): ChildInfo {
    const info: ChildInfo = { id: this.spec.id, status: this.status, type: this.spec.type, restarts: this.restarts };
    const life = this.#life;
    if (life.kind === "running" || life.kind === "stopping") info.device = life.run.device.id;
    if (this.lastFault !== undefined) {
      info.lastFault = this.lastFault;
      info.lastFaultAt = this.lastFaultAt;
    }
    return info;
  }

  // ------------------------------------------------------------------ transitions

  /**
   * stopped | restarting → starting → running (or back to stopped): a fresh
   * device, `init`, then `run` under manage. The outcome is reported to the
   * listener; the promise is for API callers that wait for it.
   */
  start(owner: GroupRestart | undefined): Promise<StartOutcome> {
    const device = new Device({ name: this.spec.id });
    const run = new Incarnation(this, device, new Context(this.spec.id, device, this.args));
    if (this.spec.init === undefined) {
      // Nothing to wait for: the run begins now (the restart path stays free of async frames).
      this.#begin(run, undefined, owner);
      return STARTED_NOW;
    }
    this.#life = { kind: "starting", run, owner };
    return this.#init(run, owner);
  }

  async #init(run: Incarnation, owner: GroupRestart | undefined): Promise<StartOutcome> {
    const cancelled = new Promise<typeof CANCELLED>((resolve) => {
      run.cancel = () => resolve(CANCELLED);
    });
    // A synchronous throw from init is a failed start like a rejection.
    const initializing = new Promise((resolve) => resolve(this.spec.init!(run.ctx)));
    let state: unknown;
    try {
      state = await Promise.race([initializing, cancelled]);
    } catch (error) {
      return this.#notStarted(run, { kind: "failed", error }, Fault.error(error), owner);
    }
    run.cancel = undefined;
    if (state === CANCELLED) {
      // Stopped while starting: like a run, the start is told (its signal aborts) and gets the same
      // shutdown as a run — ms of grace (a nested supervisor stops its own children), brutal: none,
      // infinity: as long as it takes — then it is abandoned, and a nested supervisor is killed.
      const kill = run.pendingStop?.kill === true;
      run.ctx.controller?.abort(makeCrash(kill ? "killed" : "shutdown", run.device.id));
      const late = await settledWithin(initializing, kill ? 0 : graceOf(this.spec.shutdown));
      const subtree = run.ctx.subtree;
      if (subtree !== undefined) {
        // Whatever its init did meanwhile (still starting, or started just as the stop came), it goes down with this start.
        if (late === TIMED_OUT) subtree[SUBTREE_KILL]();
        else void subtree.stop();
        await subtree[SUBTREE_DOWN]();
      }
      return this.#notStarted(run, CANCELLED, undefined, owner);
    }
    if (state === IGNORE) return this.#notStarted(run, IGNORED, undefined, owner);
    this.#begin(run, state, owner);
    this.#listener.startSettled(this, STARTED, owner);
    const pending = run.pendingStop;
    if (pending !== undefined) void this.stop(pending.from, pending.request, pending.kill); // init won the race against a stop
    return STARTED;
  }

  /** starting → stopped (or restarting, when a restart stopped it), reported. */
  #notStarted(run: Incarnation, outcome: StartOutcome, fault: Fault | undefined, owner: GroupRestart | undefined): StartOutcome {
    run.cancel = undefined;
    run.device.disconnect(fault);
    if (fault !== undefined) this.#faulted(fault);
    if (this.#life.kind === "starting" && this.#life.run === run) this.#life = this.#down(run.pendingStop?.request);
    run.wake();
    this.#listener.startSettled(this, outcome, owner);
    return outcome;
  }

  /** → running: `spec.run` under the device's managed run, observed by its incarnation. */
  #begin(run: Incarnation, state: unknown, owner: GroupRestart | undefined): void {
    const spec = this.spec;
    run.state = state;
    run.startedAt = Date.now();
    this.#life = { kind: "running", run };
    // Told before the run begins: a run that ends at once (a plain value) is still reported as started first.
    this.#listener.childStarted(this, run, owner);
    const ctx = run.ctx;
    observeManaged(
      run.device._board,
      ((source: SignalSource) => {
        ctx.source = source;
        return spec.run(ctx, state);
      }) as unknown as () => unknown,
      { grace: graceOf(spec.shutdown) },
      ctx.controller,
      run,
    );
  }

  /**
   * Ask the current incarnation to stop: a start in progress is cancelled;
   * a run goes through the kill path (grace then kill, or at once). Resolves
   * when it is down. `request` says who asked (a restart, or the API);
   * `kill` skips the grace period (a supervisor that is itself killed kills
   * its children, as linked processes die with a killed OTP supervisor).
   */
  stop(from: number, request: StopRequest = BY_API, kill = false): Promise<void> {
    const life = this.#life;
    switch (life.kind) {
      case "starting": {
        const down = life.run.whenDown();
        life.run.pendingStop = { from, request, kill };
        life.run.cancel?.();
        return down;
      }
      case "running": {
        const down = life.run.whenDown();
        this.#life = { kind: "stopping", run: life.run, request };
        requestStop(life.run.device, kill ? "brutal" : this.spec.shutdown, from);
        return down;
      }
      case "stopping":
        // Already going down: a restart's claim outranks the API's (it decides what comes next).
        if (request.by === "restart") this.#life = { kind: "stopping", run: life.run, request };
        if (kill) requestStop(life.run.device, "brutal", from);
        return life.run.whenDown();
      case "stopped":
      case "restarting":
        return Promise.resolve();
    }
  }

  /** The managed run of `run` has settled: running | stopping → stopped, reported. A stale run is dropped. */
  runEnded(run: Incarnation): void {
    const life = this.#life;
    if ((life.kind !== "running" && life.kind !== "stopping") || life.run !== run) return;
    const fault = run.device.fault;
    this.#life = this.#down(life.kind === "stopping" ? life.request : undefined);
    if (fault !== undefined) this.#faulted(fault);
    this.#listener.childExited(this, run, fault, life.kind === "stopping" ? life.request : undefined);
    run.wake();
  }

  /**
   * Where a child goes when its incarnation is down: held by the restart
   * that stopped it (so nothing can delete or restart it in between), or
   * stopped. A temporary child is never brought back, so it is stopped.
   */
  #down(request: StopRequest | undefined): Lifecycle {
    if (request?.by === "restart" && this.spec.restart !== "temporary" && request.plan.active) return { kind: "restarting", plan: request.plan };
    return STOPPED;
  }

  /** stopped → restarting: `plan` will start it again. */
  awaitRestart(plan: GroupRestart): void {
    if (this.#life.kind === "stopped" || this.#life.kind === "restarting") this.#life = { kind: "restarting", plan };
  }

  /** restarting → stopped: the restart that held it will not start it (terminated, superseded, the supervisor stops). */
  release(): void {
    if (this.#life.kind === "restarting") this.#life = STOPPED;
  }

  #faulted(fault: Fault): void {
    this.lastFault = fault;
    this.lastFaultAt = Date.now();
  }
}

const STARTED_NOW: Promise<StartOutcome> = Promise.resolve(STARTED);
