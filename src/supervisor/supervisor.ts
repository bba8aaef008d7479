/**
 * OTP's supervisor behaviour: start children in order, watch them, restart
 * them by strategy and restart type within a restart intensity, stop them
 * in reverse order with grace then kill.
 *
 * The supervisor never holds a lock across a child's `init`: every
 * operation re-checks the child's status after each await, so a hanging
 * start or a restart loop never blocks `whichChildren`, `terminateChild` or
 * `stop` (they cancel what is in flight instead of queueing behind it).
 */
import { Emitter } from "../core/emitter.js";
import type { Crash } from "../core/crash.js";
import { Device } from "../core/device.js";
import { Fault } from "../core/fault.js";
import { Child, type StartOutcome } from "./child.js";
import { type ChildInfo, type ChildSpec, normalizeSpec, type Strategy } from "./child-spec.js";
import { StartError, SupervisorError } from "./errors.js";
import type { ShutdownReason, SupervisorEvents } from "./events.js";
import { type Backoff, backoffDelay, decideExit, RestartWindow } from "./restart.js";
import { type ExecutionRecord, outcomeOf, RingBuffer, recordId } from "../core/records.js";

export type AutoShutdown = "never" | "any-significant" | "all-significant";

/**
 * How a supervisor behaves.
 *
 * @example
 * ```ts
 * const sup = new Supervisor({
 *   strategy: "one-for-one",
 *   intensity: 3, period: 5_000,                // give up after a 4th restart within 5 s
 *   backoff: { min: 100, max: 5_000, jitter: 0.2 },
 *   children: [dbSpec, apiSpec],
 * });
 * ```
 */
export interface SupervisorOptions {
  /** Default `one-for-one`. */
  strategy?: Strategy;
  /** Restarts allowed within `period` before the supervisor gives up. Default 3. */
  intensity?: number;
  /** The sliding window, ms. Default 5000. */
  period?: number;
  /** Default `never`. */
  autoShutdown?: AutoShutdown;
  /** Delay between restarts, on top of intensity. */
  backoff?: Backoff;
  children?: ChildSpec<any>[];
  /** A name for events, dumps and the supervisor's device. */
  name?: string;
  /** How many execution records of ended child runs `records()` keeps. Default 100. */
  records?: number;
}

/** @internal Knobs for the subclasses (DynamicSupervisor). */
export interface SupervisorInternals {
  /** Stop children all at once instead of one by one in reverse order. */
  parallelStop?: boolean;
  /** Forget a child that stops without being restarted, instead of keeping its spec (Elixir's DynamicSupervisor). */
  forgetStopped?: boolean;
}

type Status = "idle" | "starting" | "running" | "stopping" | "stopped";

const noop = (): void => {};

/** A pending restart of a group of children, waiting out its backoff delay. */
interface PendingRestart {
  timer: ReturnType<typeof setTimeout> | undefined;
  wake: () => void;
}

/**
 * A supervisor: OTP's behaviour in TypeScript. See docs/supervisors.md.
 *
 * @example
 * ```ts
 * const sup = new Supervisor({ strategy: "one-for-all", children: [
 *   { id: "db", init: () => connect(), run: (ctx, db) => db.closed },
 *   { id: "api", run: (ctx) => serve(ctx.signal) },
 * ]});
 * sup.on("child-exited", (e) => console.log(e.id, e.fault));
 * await sup.start();
 * …
 * await sup.stop();
 * ```
 */
export class Supervisor extends Emitter<SupervisorEvents> {
  /** The supervisor's own device: link to it, or send it a shutdown, like any other. */
  readonly device: Device;
  /** Resolves on a normal stop; rejects with the fault's error when the supervisor fails. Never left unhandled. */
  readonly done: Promise<void>;
  readonly name: string;

  readonly #strategy: Strategy;
  readonly #autoShutdown: AutoShutdown;
  readonly #backoff: Backoff | undefined;
  readonly #parallelStop: boolean;
  readonly #forgetStopped: boolean;
  /** Children in start order, and by id. */
  #children: Child[] = [];
  readonly #byId = new Map<string, Child>();
  /** Recent restarts, for the intensity rule. */
  readonly #window: RestartWindow;
  #status: Status = "idle";
  #shutdown: Promise<void> | undefined;
  readonly #pending = new Set<PendingRestart>();
  /** Exits seen while `start()` was still starting later children, handled once it is running. */
  #deferred: (() => void)[] = [];
  #life: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  #settleDone!: (error?: unknown) => void;
  readonly #ended: Promise<void>;
  readonly #records: RingBuffer<ExecutionRecord>;

  constructor(options: SupervisorOptions, internals: SupervisorInternals = {}) {
    super();
    if (typeof options !== "object" || options === null) throw badOption("options must be an object");
    const { strategy = "one-for-one", intensity = 3, period = 5000, autoShutdown = "never", backoff, children = [], name, records = 100 } = options;
    if (!Number.isInteger(records) || records < 0) throw badOption(`records must be an integer ≥ 0, not ${String(records)}`);
    this.#records = new RingBuffer(records);
    if (strategy !== "one-for-one" && strategy !== "one-for-all" && strategy !== "rest-for-one") throw badOption(`strategy must be one-for-one, one-for-all or rest-for-one, not ${String(strategy)}`);
    if (!Number.isInteger(intensity) || intensity < 0) throw badOption(`intensity must be an integer ≥ 0, not ${String(intensity)}`);
    if (typeof period !== "number" || !(period > 0)) throw badOption(`period must be a number of ms > 0, not ${String(period)}`);
    if (autoShutdown !== "never" && autoShutdown !== "any-significant" && autoShutdown !== "all-significant") throw badOption(`autoShutdown must be never, any-significant or all-significant, not ${String(autoShutdown)}`);
    if (backoff !== undefined) checkBackoff(backoff);
    if (!Array.isArray(children)) throw badOption("children must be an array of child specs");
    if (name !== undefined && typeof name !== "string") throw badOption("name must be a string");
    this.#strategy = strategy;
    this.#window = new RestartWindow(intensity, period);
    this.#autoShutdown = autoShutdown;
    this.#backoff = backoff;
    this.#parallelStop = internals.parallelStop === true;
    this.#forgetStopped = internals.forgetStopped === true;
    this.device = new Device({ name: name ?? "supervisor" });
    this.name = name ?? `supervisor-${this.device.id}`;
    for (const spec of children) {
      const child = new Child(normalizeSpec(spec, autoShutdown));
      if (this.#byId.has(child.id)) throw new SupervisorError("invalid-spec", `two children have the id "${child.id}"`, { childId: child.id });
      this.#add(child);
    }
    let settled = false;
    let markEnded!: () => void;
    this.#ended = new Promise<void>((resolve) => {
      markEnded = resolve;
    });
    this.done = new Promise<void>((resolve, reject) => {
      this.#settleDone = (error?: unknown) => {
        if (settled) return;
        settled = true;
        if (error === undefined) resolve();
        else reject(error);
        markEnded();
      };
    });
    this.done.catch(noop); // observed or not, a failed supervisor never raises an unhandled rejection
  }

  /** `idle` until started, then `starting`, `running`, `stopping`, `stopped`. */
  get status(): Status {
    return this.#status;
  }

  /** The options it runs with, for dumps. */
  get strategy(): Strategy {
    return this.#strategy;
  }

  /**
   * Start the children in order, each after the previous one's `init` has
   * finished. If one fails, those already started are stopped in reverse
   * order and `start()` rejects with a {@link StartError}.
   *
   * @example
   * ```ts
   * await sup.start();
   * ```
   */
  async start(): Promise<void> {
    if (this.#status === "stopped") throw new SupervisorError("not-running", `supervisor "${this.name}" has stopped; make a new one`);
    if (this.#status !== "idle") throw new SupervisorError("already-started", `supervisor "${this.name}" was already started`);
    if (!this.device.isConnected) {
      this.#status = "stopped";
      this.#settleDone();
      throw new SupervisorError("not-running", `supervisor "${this.name}": its device disconnected before it started`);
    }
    this.#status = "starting";
    const life = new Promise<void>((resolve, reject) => {
      this.#life = { resolve, reject };
    });
    this.device
      .manage(
        (signal) => {
          signal.addEventListener("abort", () => this.#onDeviceAbort(), { once: true });
          return life;
        },
        { grace: Number.POSITIVE_INFINITY },
      )
      .then(
        () => this.#settleDone(),
        (crash: Crash) => this.#onDeviceEnded(crash),
      );

    for (const child of [...this.#children]) {
      // A shutdown already queued on the device ended it before its work ran: stop here.
      if (this.#status !== "starting" || !this.device.isConnected) break;
      if (this.#byId.get(child.id) !== child || child.held) continue; // deleted or terminated while start() ran
      const outcome = await this.#startOne(child, undefined);
      if (outcome.kind === "failed") {
        const error = new StartError(child.id, outcome.error);
        await this.#end("start-failed", error);
        throw error;
      }
    }
    if (this.#status !== "starting" || !this.device.isConnected) {
      void this.#end("shutdown-request");
      await this.#ended;
      throw new SupervisorError("not-running", `supervisor "${this.name}" was stopped while it was starting`);
    }
    this.#status = "running";
    for (const handle of this.#deferred.splice(0)) handle();
  }

  /**
   * Stop every child in reverse start order (each with its grace period,
   * then killed), then end cleanly. Resolves once the supervisor has ended;
   * calling it again returns the same ending.
   *
   * @example
   * ```ts
   * process.on("SIGTERM", () => void sup.stop());
   * ```
   */
  async stop(): Promise<void> {
    if (this.#status === "idle") {
      this.#status = "stopped";
      this.device.disconnect();
      this.emit("shutdown", { id: this.name, device: this.device.id, reason: "stop", fault: undefined, at: Date.now() });
      this.#settleDone();
      return;
    }
    void this.#end("stop");
    await this.#ended;
  }

  /**
   * Add a child at the end of the start order and start it.
   *
   * @throws {SupervisorError} `already-started`, `already-present`, `invalid-spec`, `not-running`; {@link StartError} if its init fails.
   * @example
   * ```ts
   * const info = await sup.startChild({ id: "cache", run: (ctx) => cacheLoop(ctx.signal) });
   * ```
   */
  async startChild<S>(spec: ChildSpec<S>): Promise<ChildInfo> {
    return this.#startNew(new Child(normalizeSpec(spec, this.#autoShutdown)));
  }

  /** @internal Shared with DynamicSupervisor, which makes its own Child. */
  protected async startPrepared(child: Child): Promise<ChildInfo> {
    return this.#startNew(child);
  }

  async #startNew(child: Child): Promise<ChildInfo> {
    this.#assertRunning();
    const existing = this.#byId.get(child.id);
    if (existing !== undefined) {
      if (existing.isActive) throw new SupervisorError("already-started", `child "${child.id}" is already running`, { childId: child.id });
      throw new SupervisorError("already-present", `child "${child.id}" is already listed (stopped or restarting); use restartChild`, { childId: child.id });
    }
    this.#add(child);
    const outcome = await this.#startOne(child, undefined);
    if (outcome.kind === "failed") {
      this.#remove(child);
      throw new StartError(child.id, outcome.error);
    }
    return child.info();
  }

  /**
   * Stop a child (grace then kill) and keep its spec, stopped; a temporary
   * child is forgotten. A child waiting to restart is simply not restarted.
   *
   * @throws {SupervisorError} `not-found`.
   * @example
   * ```ts
   * await sup.terminateChild("cache");
   * ```
   */
  async terminateChild(id: string): Promise<void> {
    const child = this.#find(id);
    child.pendingRestart = false; // a restart waiting for it will skip it
    child.restartOwner = undefined;
    if (child.status === "restarting") child.status = "stopped";
    if (this.#status === "starting" && child.status === "stopped") child.held = true; // start() has not reached it yet
    await child.stop(this.device.id);
    if (child.spec.restart === "temporary" || this.#forgetStopped) this.#remove(child);
  }

  /**
   * Start again a child that is listed but stopped.
   *
   * @throws {SupervisorError} `not-found`, `running`, `restarting`, `not-running`; {@link StartError} if its init fails.
   * @example
   * ```ts
   * await sup.terminateChild("cache");
   * await sup.restartChild("cache");
   * ```
   */
  async restartChild(id: string): Promise<ChildInfo> {
    this.#assertRunning();
    const child = this.#find(id);
    if (child.status === "running") throw new SupervisorError("running", `child "${id}" is running`, { childId: id });
    if (child.status !== "stopped") throw new SupervisorError(child.publicStatus as "running" | "restarting", `child "${id}" is ${child.publicStatus}`, { childId: id });
    child.held = false;
    const outcome = await this.#startOne(child, undefined);
    if (outcome.kind === "failed") throw new StartError(id, outcome.error);
    return child.info();
  }

  /**
   * Forget a stopped child's spec.
   *
   * @throws {SupervisorError} `not-found`, `running` (also while it starts), `restarting`.
   * @example
   * ```ts
   * await sup.terminateChild("cache");
   * sup.deleteChild("cache");
   * ```
   */
  deleteChild(id: string): void {
    const child = this.#find(id);
    if (child.status !== "stopped") throw new SupervisorError(child.publicStatus as "running" | "restarting", `child "${id}" is ${child.publicStatus}`, { childId: id });
    this.#remove(child);
  }

  /**
   * Every child in start order, with its status, device, type and restarts.
   *
   * @example
   * ```ts
   * for (const c of sup.whichChildren()) console.log(c.id, c.status, c.restarts);
   * ```
   */
  whichChildren(): ChildInfo[] {
    return this.#children.map((c) => c.info());
  }

  /**
   * Counts as OTP gives them: specs listed, children running, and specs by type.
   *
   * @example
   * ```ts
   * const { active, specs } = sup.countChildren();
   * ```
   */
  countChildren(): { specs: number; active: number; supervisors: number; workers: number } {
    let active = 0;
    let supervisors = 0;
    for (const c of this.#children) {
      if (c.status === "running") active++;
      if (c.spec.type === "supervisor") supervisors++;
    }
    return { specs: this.#children.length, active, supervisors, workers: this.#children.length - supervisors };
  }

  /**
   * The execution records of the last child runs that ended (oldest first):
   * child id, start, duration, outcome and fault.
   *
   * @example
   * ```ts
   * const failures = sup.records().filter((r) => r.outcome !== "ok" && r.outcome !== "shutdown");
   * ```
   */
  records(): ExecutionRecord[] {
    return this.#records.toArray();
  }

  /** @internal The live children, for dumps. */
  children(): readonly Child[] {
    return this.#children;
  }

  /**
   * What the running child `id`'s `init` returned — for a nested
   * `Supervisor.child` or `TaskSupervisor.child`, the supervisor itself —
   * or undefined while it is not running (stopped, restarting, ignored).
   * The type parameter is the caller's claim; check it when unsure.
   *
   * @throws {SupervisorError} `not-found` when no child has that id.
   * @example
   * ```ts
   * const jobs = app.stateOf<TaskSupervisor>("jobs");
   * await jobs?.async(() => sendMail(to));
   * ```
   */
  stateOf<T = unknown>(id: string): T | undefined {
    const child = this.#find(id);
    return child.status === "running" ? (child.state as T) : undefined;
  }

  /**
   * The restart intensity as it stands: restarts inside the current window,
   * how many are allowed, and the window in ms.
   *
   * @example
   * ```ts
   * const { used, allowed } = sup.intensity; // e.g. 2 of 3
   * ```
   */
  get intensity(): { used: number; allowed: number; period: number } {
    const w = this.#window;
    return { used: w.countAt(Date.now()), allowed: w.intensity, period: w.period };
  }

  /**
   * A child spec that runs a whole supervisor under this one. Restarting it
   * builds a fresh supervisor from `options()`, which may also return an
   * unstarted Supervisor (to attach listeners to each new incarnation).
   *
   * @example
   * ```ts
   * const tree = new Supervisor({ children: [
   *   Supervisor.child("workers", () => ({ strategy: "one-for-all", children: [a, b] })),
   * ]});
   * ```
   */
  static child(id: string, options: () => SupervisorOptions | Supervisor, spec?: Partial<ChildSpec<Supervisor>>): ChildSpec<Supervisor> {
    return {
      type: "supervisor",
      shutdown: "infinity",
      ...spec,
      id,
      async init(ctx) {
        const made = options();
        const sup = made instanceof Supervisor ? made : new Supervisor(made);
        const stopIt = () => void sup.stop();
        ctx.signal.addEventListener("abort", stopIt, { once: true }); // stopped while starting
        await sup.start();
        ctx.signal.removeEventListener("abort", stopIt);
        return sup;
      },
      run(ctx, sup) {
        ctx.signal.addEventListener("abort", () => void sup.stop(), { once: true });
        return sup.done;
      },
    };
  }

  // ------------------------------------------------------------------ internals

  #assertRunning(): void {
    if (this.#status !== "running") throw new SupervisorError("not-running", `supervisor "${this.name}" is ${this.#status}`);
  }

  #find(id: string): Child {
    const child = this.#byId.get(id);
    if (child === undefined) throw new SupervisorError("not-found", `no child "${String(id)}"`, { childId: String(id) });
    return child;
  }

  #add(child: Child): void {
    this.#children.push(child);
    this.#byId.set(child.id, child);
  }

  #remove(child: Child): void {
    if (this.#byId.get(child.id) !== child) return;
    this.#byId.delete(child.id);
    const at = this.#children.indexOf(child);
    if (at >= 0) this.#children.splice(at, 1);
  }

  /** @internal Children listed now (O(1), for DynamicSupervisor's maxChildren). */
  protected get childCount(): number {
    return this.#children.length;
  }

  /** Start one incarnation and report it; `delay` is set for restarts. */
  async #startOne(child: Child, delay: number | undefined): Promise<StartOutcome> {
    child.restartDelay = delay;
    const outcome = await child.start(this.#onExit, this.#onStarted);
    if (outcome.kind === "ignored" && child.spec.restart === "temporary") this.#remove(child); // OTP keeps no ignored temporary child
    return outcome;
  }

  /** Events are built only for listeners: a restart loop nobody watches allocates no payloads. */
  readonly #onStarted = (child: Child, device: number): void => {
    const delay = child.restartDelay;
    if (this.wants("child-started")) this.emit("child-started", { id: child.id, device, restarts: child.restarts, at: Date.now() });
    if (delay !== undefined && this.wants("child-restarted")) {
      this.emit("child-restarted", { id: child.id, device, restarts: child.restarts, at: Date.now(), delay });
    }
  };

  readonly #onExit = (child: Child, device: number, fault: Fault | undefined, requested: boolean, uptime: number): void => {
    const at = Date.now();
    if (this.wants("child-exited")) this.emit("child-exited", { id: child.id, device, fault, requested, at, uptime });
    const record: ExecutionRecord = { id: recordId(), name: child.id, start: at - uptime, duration: uptime, outcome: requested && fault === undefined ? "shutdown" : outcomeOf(fault) };
    if (fault !== undefined) record.fault = fault;
    this.#records.push(record);
    if (this.wants("record")) this.emit("record", record);
    if (requested) return; // whoever stopped it decides what comes next
    if (this.#status === "starting") {
      this.#deferred.push(() => this.#handleExit(child, fault, uptime));
      return;
    }
    this.#handleExit(child, fault, uptime);
  };

  /** A child ended on its own: OTP's restart decision, intensity, strategy, auto-shutdown. */
  #handleExit(child: Child, fault: Fault | undefined, uptime: number): void {
    if (this.#status !== "running" || this.#byId.get(child.id) !== child) return;
    if (child.pendingRestart) return; // already part of a group being restarted
    const decision = decideExit(child.spec.restart, fault);
    if (decision === "delete" || (decision === "keep" && this.#forgetStopped)) this.#remove(child);
    if (decision !== "restart") {
      if (child.spec.significant) this.#autoShutdownAfter(child);
      return;
    }
    const backoff = this.#backoff;
    if (backoff !== undefined && uptime >= (backoff.reset ?? this.#window.period)) child.backoffLevel = 0;
    if (!this.#countRestart(child)) return;
    // A bug in a restart must end the supervisor with a fault, never escape as an unhandled rejection.
    this.#restart(child, this.#groupOf(child)).catch((error: unknown) => void this.#end("crashed", error));
  }

  /** Count a restart against the intensity; false (and the supervisor fails) when it is one too many. */
  #countRestart(child: Child): boolean {
    const now = Date.now();
    if (!this.#window.add(now)) return true;
    const { intensity, period } = this.#window;
    this.emit("restart-intensity-exceeded", { id: child.id, device: this.device.id, intensity, period, at: now });
    const error = new SupervisorError("intensity-exceeded", `supervisor "${this.name}": more than ${intensity} restarts within ${period} ms (last: "${child.id}")`, { childId: child.id });
    void this.#end("intensity-exceeded", error);
    return false;
  }

  /** Who restarts with `child`: it alone, everyone, or it and those started after it. */
  #groupOf(child: Child): Child[] {
    switch (this.#strategy) {
      case "one-for-one":
        return [child];
      case "one-for-all":
        return this.#children.filter((c) => c === child || c.status !== "stopped");
      case "rest-for-one": {
        const at = this.#children.indexOf(child);
        return this.#children.filter((c, i) => c === child || (i > at && c.status !== "stopped"));
      }
    }
  }

  /**
   * Restart `group` (in start order) because `failed` ended: stop the others
   * in reverse order, wait the backoff delay, start them again one by one.
   * A failed start counts as a restart and is retried from that child on.
   */
  async #restart(failed: Child, group: Child[]): Promise<void> {
    // This restart owns the group from now on; an older restart that meets one of them again leaves it alone.
    const owner = {};
    for (const c of group) {
      c.pendingRestart = true;
      c.restartOwner = owner;
    }
    failed.status = "restarting";
    for (let i = group.length - 1; i >= 0; i--) {
      const c = group[i]!;
      if (c === failed) continue;
      await c.stop(this.device.id); // a start in flight is cancelled and wound down first
      if (c.restartOwner !== owner) continue; // terminated or taken over meanwhile
      if (c.spec.restart === "temporary") {
        c.pendingRestart = false;
        c.restartOwner = undefined;
        this.#remove(c); // temporary siblings are not brought back
      } else if (c.status === "stopped") c.status = "restarting";
    }
    let members = group.length === 1 ? group : group.filter((c) => this.#byId.get(c.id) === c);
    let from = failed;
    for (;;) {
      const delay = this.#backoffDelay(from);
      if (delay > 0) await this.#sleep(delay);
      let failedAgain: Child | undefined;
      for (const c of members) {
        if (this.#status !== "running") return;
        if (c.restartOwner !== owner || c.status !== "restarting") continue; // terminated, deleted or taken over meanwhile
        c.restartOwner = undefined;
        c.pendingRestart = false;
        c.restarts++;
        const outcome = await this.#startOne(c, delay);
        if (outcome.kind === "failed") {
          c.status = "restarting";
          c.pendingRestart = true;
          c.restartOwner = owner;
          failedAgain = c;
          break;
        }
        if (outcome.kind === "cancelled") continue; // terminated or taken over while it started: the rest of the group goes on
      }
      if (failedAgain === undefined) return;
      // OTP's try-again: the failed start counts against the intensity, then it and the rest are retried.
      if (this.#status !== "running" || !this.#countRestart(failedAgain)) return;
      members = members.slice(members.indexOf(failedAgain));
      from = failedAgain;
    }
  }

  #backoffDelay(child: Child): number {
    const backoff = this.#backoff;
    if (backoff === undefined) return 0;
    return backoffDelay(backoff, child.backoffLevel++, Math.random());
  }

  /** A delay that `stop()` cuts short. */
  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const pending: PendingRestart = {
        timer: undefined,
        wake: () => {
          clearTimeout(pending.timer);
          this.#pending.delete(pending);
          resolve();
        },
      };
      pending.timer = setTimeout(pending.wake, ms);
      this.#pending.add(pending);
    });
  }

  /** OTP's auto_shutdown, after a significant child ended without being restarted. */
  #autoShutdownAfter(child: Child): void {
    if (this.#autoShutdown === "never") return;
    if (this.#autoShutdown === "all-significant" && this.#children.some((c) => c !== child && c.spec.significant && c.status !== "stopped")) return;
    void this.#end("auto-shutdown");
  }

  /** The supervisor's device was asked to shut down, or was brought down. */
  #onDeviceAbort(): void {
    void this.#end(this.#deviceEndReason());
  }

  /** A shutdown message, or a clean disconnect from outside, is a stop request; a fault brought it down. */
  #deviceEndReason(): ShutdownReason {
    const fault = this.device.fault;
    if (this.device.isConnected || fault === undefined) return "shutdown-request";
    return fault.kind === "cascade" ? "cascade" : "killed";
  }

  #onDeviceEnded(crash: Crash): void {
    if (crash.kind === "error") {
      this.#settleDone(crash.cause); // our own failure (intensity, start): the children are already stopped
      return;
    }
    // Whatever ended the device, `done` settles only once the children have been stopped.
    void this.#end(this.#deviceEndReason()).then(() => this.#settleDone(crash.kind === "shutdown" ? undefined : crash));
  }

  /**
   * The one way a started supervisor ends: cancel pending restarts, stop the
   * children in reverse order, then end the device (with `error` as fault).
   */
  #end(reason: ShutdownReason, error?: unknown): Promise<void> {
    if (this.#shutdown !== undefined) return this.#shutdown;
    this.#status = "stopping";
    for (const pending of [...this.#pending]) pending.wake();
    this.#shutdown = (async () => {
      await this.#stopAll();
      this.#status = "stopped";
      const fault = error !== undefined ? Fault.error(error) : this.device.isConnected ? undefined : this.device.fault;
      this.emit("shutdown", { id: this.name, device: this.device.id, reason, fault, at: Date.now() });
      if (error !== undefined) this.#life?.reject(error);
      else this.#life?.resolve();
    })();
    return this.#shutdown;
  }

  async #stopAll(): Promise<void> {
    const from = this.device.id;
    const children = [...this.#children].reverse();
    for (const c of children) {
      c.pendingRestart = false;
      if (c.status === "restarting") c.status = "stopped";
    }
    if (this.#parallelStop) await Promise.all(children.map((c) => c.stop(from)));
    else for (const c of children) await c.stop(from);
    // Temporary children are forgotten, in one pass (not one list rebuild each).
    const kept: Child[] = [];
    for (const c of this.#children) {
      if (c.spec.restart === "temporary") this.#byId.delete(c.id);
      else kept.push(c);
    }
    this.#children = kept;
  }
}

function badOption(message: string): SupervisorError {
  return new SupervisorError("invalid-options", message);
}

function checkBackoff(backoff: Backoff): void {
  if (typeof backoff !== "object" || backoff === null) throw badOption("backoff must be { min, max, jitter?, reset? }");
  const { min, max, jitter = 0, reset } = backoff;
  if (typeof min !== "number" || !(min >= 0)) throw badOption(`backoff.min must be ms ≥ 0, not ${String(min)}`);
  if (typeof max !== "number" || !(max >= min)) throw badOption(`backoff.max must be ms ≥ min, not ${String(max)}`);
  if (typeof jitter !== "number" || !(jitter >= 0)) throw badOption(`backoff.jitter must be ≥ 0, not ${String(jitter)}`);
  if (reset !== undefined && (typeof reset !== "number" || !(reset >= 0))) throw badOption(`backoff.reset must be ms ≥ 0, not ${String(reset)}`);
}

