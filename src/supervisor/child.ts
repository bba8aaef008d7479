/**
 * One supervised child at run time: its status, and the start/stop of one
 * incarnation (init, then `run` under `device.manage` with the spec's grace
 * period). The supervisor decides *whether* to start or stop; this file
 * knows *how*.
 */
import { makeCrash } from "../core/crash.js";
import { Device } from "../core/device.js";
import { Fault } from "../core/fault.js";
import { observeManaged, type RunObserver, type SignalSource } from "../core/manage.js";
import { type ChildContext, type ChildInfo, graceOf, IGNORE, type NormalizedSpec } from "./child-spec.js";

/** How a start ended. */
export type StartOutcome =
  | { readonly kind: "started" }
  | { readonly kind: "ignored" }
  | { readonly kind: "failed"; readonly error: unknown }
  | { readonly kind: "cancelled" };

const STARTED: StartOutcome = { kind: "started" };
const STARTED_NOW: Promise<StartOutcome> = Promise.resolve(STARTED);
const IGNORED: StartOutcome = { kind: "ignored" };
const CANCELLED: StartOutcome = { kind: "cancelled" };
const CANCEL = Symbol("cancel");

/** Resolves when `promise` settles or `ms` have passed, whichever is first; no timer is left behind. */
function settledWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  if (ms <= 0) {
    promise.catch(() => {});
    return Promise.resolve();
  }
  const settled = promise.then(
    () => {},
    () => {},
  );
  if (ms === Number.POSITIVE_INFINITY) return settled;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const elapsed = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return Promise.race([settled, elapsed]).then(() => clearTimeout(timer));
}

/** Called just before a run begins, with its device id: the child is running from here on. */
export type StartListener = (child: Child, device: number) => void;

/** Called when a run has ended: `requested` is true when the supervisor asked it to stop. */
export type ExitListener = (child: Child, device: number, fault: Fault | undefined, requested: boolean, uptime: number) => void;

class Context implements ChildContext {
  readonly id: string;
  readonly device: Device;
  readonly args: readonly unknown[];
  /** Set when `run` begins: from then on the signal is the managed run's. */
  source: SignalSource | undefined = undefined;
  /** A signal handed out during `init`, adopted by the run. */
  controller: AbortController | undefined = undefined;

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

export type ChildStatus = "starting" | "running" | "restarting" | "stopped";

export class Child implements RunObserver {
  readonly spec: NormalizedSpec;
  /** Extra arguments given to its context (DynamicSupervisor). */
  readonly args: readonly unknown[];
  status: ChildStatus = "stopped";
  device: Device | undefined = undefined;
  /** What `init` returned, while it runs (a nested Supervisor, for dumps). */
  state: unknown = undefined;
  restarts = 0;
  lastFault: Fault | undefined = undefined;
  /** `Date.now()` when `lastFault` happened. */
  lastFaultAt = 0;
  startedAt = 0;
  /** Consecutive restarts, for backoff. */
  backoffLevel = 0;
  /** The backoff delay of the restart now starting it (undefined for a first start), for the events. */
  restartDelay: number | undefined = undefined;
  /** Part of a restart decided but not yet carried out: its own exit meanwhile changes nothing. */
  pendingRestart = false;
  /** The restart that owns this child now: an older one that meets it again leaves it alone. */
  restartOwner: object | undefined = undefined;
  /** Stopped by the API before `start()` reached it: `start()` passes it by. */
  held = false;
  /** Who to wake when the current run has ended (made only when someone waits). */
  #exitWaiters: (() => void)[] | undefined = undefined;
  #onExit: ExitListener | undefined = undefined;
  #requested = false;
  /** The stop (shutdown message or kill) has been sent to the current run. */
  #stopSent = false;
  #cancel: (() => void) | undefined = undefined;
  /** Settles when a start in progress has finished (started, failed, ignored or cancelled); made before init runs. */
  #starting: Promise<void> | undefined = undefined;
  #startSettled: (() => void) | undefined = undefined;

  constructor(spec: NormalizedSpec, args: readonly unknown[] = []) {
    this.spec = spec;
    this.args = args;
  }

  get id(): string {
    return this.spec.id;
  }

  /** True while a run or a start is in progress. */
  get isActive(): boolean {
    return this.status === "running" || this.status === "starting";
  }

  /** The status users see: a start in flight is `restarting` when it is a restart, `running` when it is a first start. */
  get publicStatus(): ChildInfo["status"] {
    if (this.status !== "starting") return this.status;
    return this.restarts > 0 ? "restarting" : "running";
  }

  info(): ChildInfo {
    const info: ChildInfo = { id: this.spec.id, status: this.publicStatus, type: this.spec.type, restarts: this.restarts };
    if (this.status === "running" && this.device !== undefined) info.device = this.device.id;
    if (this.lastFault !== undefined) {
      info.lastFault = this.lastFault;
      info.lastFaultAt = this.lastFaultAt;
    }
    return info;
  }

  /**
   * Start one incarnation: a fresh device, `init`, then `run` under manage.
   * Resolves once `run` has begun (or the start failed, was ignored, or was
   * cancelled by `stop()`); `onExit` is told when the run ends.
   */
  start(onExit: ExitListener, onStarted: StartListener): Promise<StartOutcome> {
    if (this.spec.init === undefined) {
      // Nothing to wait for: the run begins now (the restart path stays free of async frames).
      const device = new Device({ name: this.spec.id });
      this.#requested = false;
      this.#stopSent = false;
      this.#run(device, new Context(this.spec.id, device, this.args), undefined, onExit, onStarted);
      return STARTED_NOW;
    }
    // Made before init can run: an init that stops the supervisor synchronously still finds it.
    this.#starting = new Promise<void>((resolve) => {
      this.#startSettled = resolve;
    });
    return this.#start(onExit, onStarted);
  }

  async #start(onExit: ExitListener, onStarted: StartListener): Promise<StartOutcome> {
    try {
      return await this.#startIncarnation(onExit, onStarted);
    } finally {
      this.#starting = undefined;
      this.#startSettled?.();
      this.#startSettled = undefined;
    }
  }

  async #startIncarnation(onExit: ExitListener, onStarted: StartListener): Promise<StartOutcome> {
    const spec = this.spec;
    const device = new Device({ name: spec.id });
    const ctx = new Context(spec.id, device, this.args);
    this.status = "starting";
    this.device = device;
    this.#requested = false;
    this.#stopSent = false;

    // Only children with an init come here (start() runs the others at once).
    const cancelled = new Promise<typeof CANCEL>((resolve) => {
      this.#cancel = () => resolve(CANCEL);
    });
    // A synchronous throw from init is a failed start like a rejection.
    const initializing = new Promise((resolve) => resolve(spec.init!(ctx)));
    let state: unknown;
    try {
      state = await Promise.race([initializing, cancelled]);
    } catch (error) {
      this.#cancel = undefined;
      this.#notStarted(Fault.error(error));
      return { kind: "failed", error };
    }
    this.#cancel = undefined;
    if (state === CANCEL) {
      // Stopped while starting: like a run, the start is told (its signal aborts) and given its
      // shutdown grace to wind down — a nested supervisor stops its own children — then abandoned.
      ctx.controller?.abort(makeCrash("shutdown", device.id));
      await settledWithin(initializing, graceOf(spec.shutdown));
      this.#notStarted(undefined);
      return CANCELLED;
    }
    if (state === IGNORE) {
      this.#notStarted(undefined);
      return IGNORED;
    }

    this.#run(device, ctx, state, onExit, onStarted);
    return STARTED;
  }

  /** Begin the run: `spec.run` under the device's managed run, observed by this child. */
  #run(device: Device, ctx: Context, state: unknown, onExit: ExitListener, onStarted: StartListener): void {
    const spec = this.spec;
    this.device = device;
    this.state = state;
    this.startedAt = Date.now();
    this.status = "running";
    // Told before the run begins: a run that ends at once (a plain value) is still reported as started first.
    onStarted(this, device.id);
    this.#onExit = onExit;
    observeManaged(
      device._board,
      ((source: SignalSource) => {
        ctx.source = source;
        return spec.run(ctx, state);
      }) as unknown as () => unknown,
      { grace: graceOf(spec.shutdown) },
      ctx.controller,
      this,
    );
  }

  /**
   * Ask the current incarnation to stop: a start in progress is cancelled; a
   * run gets its grace period (a shutdown message) or is killed at once
   * (`brutal`). Resolves when it has ended.
   */
  stop(from: number): Promise<void> {
    if (this.status === "starting") {
      this.#requested = true;
      this.#cancel?.();
      // Resolves once the start has wound down; if init finished first, the new run is stopped like any other.
      return (this.#starting ?? Promise.resolve()).then(() => (this.status === "running" ? this.#stopRun(from) : undefined));
    }
    if (this.status !== "running") return Promise.resolve();
    return this.#stopRun(from);
  }

  #stopRun(from: number): Promise<void> {
    const device = this.device;
    if (device === undefined) return Promise.resolve();
    // Wait first: a brutal kill ends the run before disconnect() returns.
    const exited = new Promise<void>((resolve) => (this.#exitWaiters ??= []).push(resolve));
    this.#requested = true;
    if (!this.#stopSent) {
      this.#stopSent = true;
      if (this.spec.shutdown === "brutal") device.disconnect(Fault.killed);
      else device.line().shutdown(from);
    }
    return exited;
  }

  #notStarted(fault: Fault | undefined): void {
    this.device?.disconnect(fault);
    this.device = undefined;
    this.state = undefined;
    this.status = "stopped";
    if (fault !== undefined) {
      this.lastFault = fault;
      this.lastFaultAt = Date.now();
    }
  }

  /** The managed run has settled (RunObserver): report the exit, then wake whoever waits for it. */
  ended(): void {
    const device = this.device;
    const onExit = this.#onExit;
    if (device === undefined || onExit === undefined || this.status !== "running") return;
    const fault = device.fault;
    this.device = undefined;
    this.state = undefined;
    this.#onExit = undefined;
    this.status = "stopped";
    if (fault !== undefined) {
      this.lastFault = fault;
      this.lastFaultAt = Date.now();
    }
    onExit(this, device.id, fault, this.#requested, Date.now() - this.startedAt);
    const waiters = this.#exitWaiters;
    this.#exitWaiters = undefined;
    if (waiters !== undefined) for (const wake of waiters) wake();
  }
}
