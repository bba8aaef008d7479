/**
 * OTP's supervisor behaviour: start children in order, watch them, restart
 * them by strategy and restart type within a restart intensity, stop them
 * in reverse order with grace then kill.
 *
 * Its state is printable: the supervisor's own phase, the children in start
 * order (each with one lifecycle field, see child.ts), and the restarts in
 * progress (group-restart.ts). Every asynchronous result comes back as an
 * event (a child started, settled its start, exited); `#exited` decides
 * with the pure `planExit` (restart.ts) and a {@link GroupRestart} carries
 * the decision out, so the supervisor never waits inside a restart and its
 * API is served between any two steps.
 */
import type { Crash } from "../core/crash.js";
import { Device } from "../core/device.js";
import { Emitter } from "../core/emitter.js";
import { Fault } from "../core/fault.js";
import { type ExecutionRecord, outcomeOf, RingBuffer, recordId } from "../core/records.js";
import { Child, type ChildListener, type Incarnation, ownSubtree, type StartOutcome, type StopRequest, SUBTREE_DOWN, SUBTREE_KILL } from "./child.js";
import { type ChildInfo, type ChildSpec, normalizeSpec, type Strategy } from "./child-spec.js";
import { StartError, SupervisorError } from "./errors.js";
import type { ShutdownReason, SupervisorEvents } from "./events.js";
import { GroupRestart, type RestartHost } from "./group-restart.js";
import { attachCrashReports, type CrashLogger } from "./crash-report.js";
import { TaskSupervisor } from "./task.js";
import { type Backoff, planExit, planRetry, RestartWindow, restartGroup } from "./restart.js";
import { describeValue } from "../core/timer.js";

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
  /**
   * Crash reports (OTP's SASL supervisor reports): every child that ends
   * with a fault, every restart and giving up, written to a `console`-shaped
   * object or a function. Nested supervisors (and task supervisors) started
   * as its children report to it too, unless they have their own. Off by default.
   */
  logger?: CrashLogger;
}

/** The supervisor's own phase. */
type Phase = "idle" | "starting" | "running" | "stopping" | "stopped";

const noop = (): void => {};

/** The most execution records a supervisor keeps (a ring buffer of this size is allocated up front). */
const MAX_RECORDS = 1_000_000;

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
  /** Children in start order, and by id. */
  #children: Child[] = [];
  readonly #byId = new Map<string, Child>();
  /** Recent restarts, for the intensity rule. */
  readonly #window: RestartWindow;
  #phase: Phase = "idle";
  /** Restarts being carried out. */
  /** (Usually none or one: an array, whose push and removal cost less than a Set's on the restart path.) */
  #restarts: GroupRestart[] = [];
  /** Children that the API stopped or deleted while `start()` had not reached them yet. */
  readonly #held = new Set<Child>();
  /** Exits seen while `start()` was still starting later children, handled once it is running. */
  #deferred: (() => void)[] = [];
  #shutdown: Promise<void> | undefined;
  #life: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  #settleDone!: (error?: unknown) => void;
  /** Settles once the supervisor and every child below it are down. */
  readonly #ended: Promise<void>;
  readonly #records: RingBuffer<ExecutionRecord>;
  /** The supervisor's side of its children's and restarts' events. */
  readonly #host: ChildListener & RestartHost;
  /** Where crash reports go (its own option, or inherited from its parent), and its path in them. */
  #logger: CrashLogger | undefined;
  #label: string;

  constructor(options: SupervisorOptions) {
    super();
    if (typeof options !== "object" || options === null) throw badOption("options must be an object");
    const { strategy = "one-for-one", intensity = 3, period = 5000, autoShutdown = "never", backoff, children = [], name, records = 100, logger } = options;
    if (logger !== undefined && typeof logger !== "function" && (typeof logger !== "object" || logger === null || typeof (logger as { error?: unknown }).error !== "function")) {
      throw badOption("logger must be a function or a console-shaped object with an error method");
    }
    if (!Number.isInteger(records) || records < 0 || records > MAX_RECORDS) throw badOption(`records must be an integer from 0 to ${MAX_RECORDS}, not ${describeValue(records)}`);
    if (strategy !== "one-for-one" && strategy !== "one-for-all" && strategy !== "rest-for-one") throw badOption(`strategy must be one-for-one, one-for-all or rest-for-one, not ${describeValue(strategy)}`);
    if (!Number.isInteger(intensity) || intensity < 0) throw badOption(`intensity must be an integer ≥ 0, not ${describeValue(intensity)}`);
    if (typeof period !== "number" || !(period > 0)) throw badOption(`period must be a number of ms > 0, not ${describeValue(period)}`);
    if (autoShutdown !== "never" && autoShutdown !== "any-significant" && autoShutdown !== "all-significant") throw badOption(`autoShutdown must be never, any-significant or all-significant, not ${describeValue(autoShutdown)}`);
    if (backoff !== undefined) checkBackoff(backoff);
    if (!Array.isArray(children)) throw badOption("children must be an array of child specs");
    if (name !== undefined && typeof name !== "string") throw badOption("name must be a string");
    this.#records = new RingBuffer(records);
    this.#strategy = strategy;
    this.#window = new RestartWindow(intensity, period);
    this.#autoShutdown = autoShutdown;
    this.#backoff = backoff;
    this.device = new Device({ name: name ?? "supervisor" });
    this.name = name ?? `supervisor-${this.device.id}`;
    this.#label = this.name;
    this.#logger = logger;
    if (logger !== undefined) attachCrashReports(this, logger);
    this.#host = new Supervisor.#Host(this);
    for (const spec of children) {
      const child = new Child(normalizeSpec(spec, autoShutdown), this.#host);
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
  get status(): Phase {
    return this.#phase;
  }

  /** Its restart strategy. */
  get strategy(): Strategy {
    return this.#strategy;
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

  /** Forget a child that ends for good, keep no ignored child, stop all at once (a DynamicSupervisor says yes). */
  protected get dynamic(): boolean {
    return false;
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
    if (this.#phase === "stopped") throw new SupervisorError("not-running", `supervisor "${this.name}" has stopped; make a new one`);
    if (this.#phase !== "idle") throw new SupervisorError("already-started", `supervisor "${this.name}" was already started`);
    if (!this.device.isConnected) {
      this.#phase = "stopped";
      this.#settleDone();
      throw new SupervisorError("not-running", `supervisor "${this.name}": its device disconnected before it started`);
    }
    this.#phase = "starting";
    const life = new Promise<void>((resolve, reject) => {
      this.#life = { resolve, reject };
    });
    this.device
      .manage(
        (signal) => {
          signal.addEventListener("abort", () => void this.#end(this.#deviceEndReason()), { once: true });
          return life;
        },
        { grace: Number.POSITIVE_INFINITY },
      )
      .then(
        () => this.#settleDone(),
        (crash: Crash) => this.#deviceEnded(crash),
      );

    for (const child of [...this.#children]) {
      // A shutdown already queued on the device ended it before its work ran: stop here.
      if (this.#phase !== "starting" || !this.device.isConnected) break;
      if (this.#byId.get(child.id) !== child || this.#held.has(child)) continue; // deleted or terminated while start() ran
      const outcome = await child.start(undefined);
      if (outcome.kind === "ignored" && this.#keepsNoIgnored(child)) this.#remove(child);
      if (outcome.kind === "failed") {
        const error = new StartError(child.id, outcome.error);
        await this.#end("start-failed", error);
        throw error;
      }
    }
    this.#held.clear();
    if (this.#phase !== "starting" || !this.device.isConnected) {
      void this.#end("shutdown-request");
      await this.#ended;
      throw new SupervisorError("not-running", `supervisor "${this.name}" was stopped while it was starting`);
    }
    this.#phase = "running";
    for (const handle of this.#deferred.splice(0)) handle();
  }

  /**
   * Stop every child in reverse start order (each with its grace period,
   * then killed), then end cleanly. Resolves once the supervisor and every
   * child below it (nested supervisors' children included) are down;
   * calling it again returns the same ending.
   *
   * @example
   * ```ts
   * process.on("SIGTERM", () => void sup.stop());
   * ```
   */
  async stop(): Promise<void> {
    if (this.#phase === "idle") {
      this.#phase = "stopped";
      this.device.disconnect();
      this.emit("shutdown", { id: this.name, device: this.device.id, reason: "stop", fault: undefined, at: Date.now() });
      this.#settleDone();
      return;
    }
    void this.#end("stop");
    await this.#ended;
  }

  /** `await using sup = new Supervisor(…)`: stops it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
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
    return this.startWith(spec, []);
  }

  /** Add and start a child whose context carries `args` (DynamicSupervisor's extra arguments). */
  protected async startWith(spec: ChildSpec<any>, args: readonly unknown[]): Promise<ChildInfo> {
    this.#assertRunning();
    const child = new Child(normalizeSpec(spec, this.#autoShutdown), this.#host, args);
    const existing = this.#byId.get(child.id);
    if (existing !== undefined) {
      if (existing.isUp) throw new SupervisorError("already-started", `child "${child.id}" is already running`, { childId: child.id });
      throw new SupervisorError("already-present", `child "${child.id}" is already listed (stopped or restarting); use restartChild`, { childId: child.id });
    }
    this.#add(child);
    const outcome = await child.start(undefined);
    if (outcome.kind === "failed") {
      this.#remove(child);
      throw new StartError(child.id, outcome.error);
    }
    const info = child.info();
    if (outcome.kind === "ignored" && this.#keepsNoIgnored(child)) this.#remove(child);
    return info;
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
    this.#restartHolding(child)?.drop(child); // a restart waiting for it will not bring it back
    if (this.#phase === "starting" && !child.isUp) this.#held.add(child); // start() has not reached it yet
    await child.stop(this.device.id);
    this.#restartHolding(child)?.drop(child); // claimed by a restart while it was going down
    if (child.spec.restart === "temporary" || this.dynamic) this.#remove(child);
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
    this.#assertStopped(child);
    const outcome = await child.start(undefined);
    if (outcome.kind === "failed") throw new StartError(id, outcome.error);
    const info = child.info();
    if (outcome.kind === "ignored" && this.#keepsNoIgnored(child)) this.#remove(child);
    return info;
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
    this.#assertStopped(child);
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
      const kind = c.life.kind;
      if (kind === "running" || kind === "stopping") active++;
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
    return this.#find(id).state as T | undefined;
  }

  /** @internal Settles once this supervisor and everything below it are down (a parent's stop waits for it). */
  [SUBTREE_DOWN](): Promise<void> {
    return this.#ended;
  }

  /** @internal Killed by its parent: end now, killing the children instead of giving them their grace. */
  [SUBTREE_KILL](): void {
    void this.#end("killed", undefined, true);
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
        // Unnamed, it takes the child's id: errors and reports then say "pipeline", as the dumps do.
        const sup = made instanceof Supervisor ? made : new Supervisor(typeof made === "object" && made !== null && made.name === undefined ? { ...made, name: id } : made);
        ownSubtree(ctx, sup); // from now on it stops (or is killed) with this child, even while it starts
        const stopIt = () => void sup.stop();
        ctx.signal.addEventListener("abort", stopIt, { once: true }); // stopped while starting
        await sup.start();
        ctx.signal.removeEventListener("abort", stopIt);
        return sup;
      },
      run(ctx, sup) {
        // A kill (brutal, or a grace overrun) reaches the grandchildren through the child's incarnation (SUBTREE_KILL).
        ctx.signal.addEventListener("abort", () => void sup.stop(), { once: true });
        return sup.done;
      },
    };
  }

  /**
   * The supervisor's side of its children's and restarts' events, kept off
   * the public class (so `Child` and `GroupRestart` never appear in its type).
   */
  static readonly #Host = class Host implements ChildListener, RestartHost {
    readonly #sup: Supervisor;
    constructor(sup: Supervisor) {
      this.#sup = sup;
    }
    get strategy(): Strategy {
      return this.#sup.strategy;
    }
    get deviceId(): number {
      return this.#sup.device.id;
    }
    childStarted(child: Child, run: Incarnation, owner: GroupRestart | undefined): void {
      this.#sup.#childStarted(child, run, owner);
    }
    startSettled(child: Child, outcome: StartOutcome, owner: GroupRestart | undefined): void {
      this.#sup.#startSettled(child, outcome, owner);
    }
    childExited(child: Child, run: Incarnation, fault: Fault | undefined, stop: StopRequest | undefined): void {
      this.#sup.#childExited(child, run, fault, stop);
    }
    forget(child: Child): void {
      this.#sup.#forget(child);
    }
    ignored(child: Child): void {
      this.#sup.#ignored(child);
    }
    retryDelay(child: Child): number | undefined {
      return this.#sup.#retryDelay(child);
    }
    finished(plan: GroupRestart): void {
      this.#sup.#restartFinished(plan);
    }
  };

  // ------------------------------------------------------------------ children's events (via Host)

  #childStarted(child: Child, run: Incarnation, owner: GroupRestart | undefined): void {
    if (this.#logger !== undefined) this.#passLogger(run.state, child.id);
    if (this.wants("child-started")) this.emit("child-started", { id: child.id, device: run.device.id, restarts: child.restarts, at: Date.now() });
    if (owner !== undefined && this.wants("child-restarted")) {
      this.emit("child-restarted", { id: child.id, device: run.device.id, restarts: child.restarts, at: Date.now(), delay: owner.delay });
    }
  }

  #startSettled(child: Child, outcome: StartOutcome, owner: GroupRestart | undefined): void {
    if (owner !== undefined && this.#restarts.includes(owner)) owner.startSettled(child, outcome);
  }

  /** A child's run ended: report it, then — when nobody asked it to stop — decide what comes next. */
  #childExited(child: Child, run: Incarnation, fault: Fault | undefined, stop: StopRequest | undefined): void {
    const at = Date.now();
    const uptime = at - run.startedAt;
    const requested = stop !== undefined;
    if (this.wants("child-exited")) this.emit("child-exited", { id: child.id, device: run.device.id, fault, requested, at, uptime });
    const record: ExecutionRecord = { id: recordId(), name: child.id, start: run.startedAt, duration: uptime, outcome: requested && fault === undefined ? "shutdown" : outcomeOf(fault) };
    if (fault !== undefined) record.fault = fault;
    this.#records.push(record);
    if (this.wants("record")) this.emit("record", record);
    if (requested) return; // whoever stopped it decides what comes next
    if (this.#phase === "starting") {
      this.#deferred.push(() => this.#exited(child, fault, uptime));
      return;
    }
    this.#exited(child, fault, uptime);
  }

  /** A child ended on its own: a restart in progress takes it back, or `planExit` decides. */
  #exited(child: Child, fault: Fault | undefined, uptime: number): void {
    if (this.#phase !== "running" || this.#byId.get(child.id) !== child) return;
    const holding = this.#restartHolding(child);
    if (holding !== undefined) {
      // Part of a group being restarted that had not been stopped yet: no decision of its own.
      holding.fell(child);
      if (child.spec.restart === "temporary") this.#remove(child);
      return;
    }
    const now = Date.now();
    const plan = planExit({
      fault,
      restart: child.spec.restart,
      significant: child.spec.significant,
      uptime,
      backoffLevel: child.backoffLevel,
      autoShutdown: this.#autoShutdown,
      otherSignificantUp: this.#autoShutdown === "all-significant" && this.#children.some((c) => c !== child && c.spec.significant && c.status !== "stopped"),
      forgetStopped: this.dynamic,
      restartsInWindow: this.#window.countAt(now),
      intensity: this.#window.intensity,
      period: this.#window.period,
      backoff: this.#backoff,
      random: this.#backoff?.jitter ? Math.random() : 0,
    });
    switch (plan.kind) {
      case "forget":
        this.#remove(child);
        return;
      case "keep":
        return;
      case "auto-shutdown":
        if (plan.forget) this.#remove(child);
        void this.#end("auto-shutdown");
        return;
      case "give-up":
        this.#giveUp(child);
        return;
      case "restart":
        this.#window.add(now);
        child.backoffLevel = plan.level;
        this.#restart(child, plan.delay);
    }
  }

  /** Carry out a restart of `failed` and the siblings its strategy takes along; an overlapping restart in progress is absorbed. */
  #restart(failed: Child, delay: number): void {
    const children = this.#children;
    let members: Child[];
    if (this.#strategy === "one-for-one") members = [failed];
    else {
      const at = children.indexOf(failed);
      const down = children.map((c) => c.status === "stopped");
      members = restartGroup(this.#strategy, down, at).map((i) => children[i]!);
    }
    // A newer restart takes over any older one it overlaps: the members the older one still holds
    // (not those it already brought back, nor those it let go). OTP would have finished the older one first.
    if (this.#restarts.length > 0) {
      for (const older of [...this.#restarts]) {
        const held = older.members.filter((m) => older.holds(m));
        if (!held.some((m) => members.includes(m))) continue;
        for (const m of held) if (!members.includes(m)) members.push(m);
        this.#restartFinished(older);
        older.cancel();
      }
    }
    if (members.length > 1) members.sort((a, b) => children.indexOf(a) - children.indexOf(b));
    const plan = new GroupRestart(this.#host, members, delay);
    this.#restarts.push(plan);
    plan.begin();
  }

  /** A start inside a restart failed: count it like any restart; the delay before the retry, or undefined once given up. */
  #retryDelay(child: Child): number | undefined {
    if (this.#phase !== "running") return undefined;
    const now = Date.now();
    const plan = planRetry(this.#window.countAt(now), this.#window.intensity, this.#backoff, child.backoffLevel, this.#backoff?.jitter ? Math.random() : 0);
    if (plan.kind !== "restart") {
      this.#giveUp(child);
      return undefined;
    }
    this.#window.add(now);
    child.backoffLevel = plan.level;
    return plan.delay;
  }

  #restartFinished(plan: GroupRestart): void {
    const restarts = this.#restarts;
    const at = restarts.indexOf(plan);
    if (at < 0) return;
    if (at === restarts.length - 1) restarts.pop();
    else restarts.splice(at, 1);
  }

  /** A member of a restart is not coming back. */
  #forget(child: Child): void {
    this.#remove(child);
  }

  /** A restart's start was ignored. */
  #ignored(child: Child): void {
    if (this.#keepsNoIgnored(child)) {
      this.#restartHolding(child)?.drop(child);
      this.#remove(child);
    }
  }

  /** A nested supervisor reports to this one's logger, under its path, unless it has its own. */
  #passLogger(state: unknown, id: string): void {
    const logger = this.#logger!;
    const label = `${this.#label}/${id}`;
    if (state instanceof Supervisor) {
      if (state.#logger !== undefined) return;
      state.#logger = logger;
      state.#label = label;
      attachCrashReports(state, logger, { label });
    } else if (state instanceof TaskSupervisor) attachCrashReports(state, logger, { label });
  }

  /** More restarts than the intensity allows: OTP's supervisor stops its children and ends with a fault. */
  #giveUp(child: Child): void {
    const { intensity, period } = this.#window;
    this.emit("restart-intensity-exceeded", { id: child.id, device: this.device.id, intensity, period, at: Date.now() });
    const error = new SupervisorError("intensity-exceeded", `supervisor "${this.name}": more than ${intensity} restarts within ${period} ms (last: "${child.id}")`, { childId: child.id });
    void this.#end("intensity-exceeded", error);
  }

  // ------------------------------------------------------------------ internals

  #assertRunning(): void {
    if (this.#phase !== "running") throw new SupervisorError("not-running", `supervisor "${this.name}" is ${this.#phase}`);
  }

  #assertStopped(child: Child): void {
    const status = child.status;
    if (child.life.kind === "stopped") return;
    const code = status === "restarting" ? "restarting" : "running";
    throw new SupervisorError(code, `child "${child.id}" is ${status}`, { childId: child.id });
  }

  #find(id: string): Child {
    const child = typeof id === "string" ? this.#byId.get(id) : undefined;
    if (child === undefined) {
      if (typeof id !== "string") throw new SupervisorError("invalid-argument", `a child id is a string, not ${describeValue(id)}`);
      throw new SupervisorError("not-found", `no child "${id}"`, { childId: id });
    }
    return child;
  }

  /** The restart in progress that holds `child`, if any. */
  #restartHolding(child: Child): GroupRestart | undefined {
    for (const plan of this.#restarts) if (plan.holds(child)) return plan;
    return undefined;
  }

  /** OTP drops an ignored temporary child; Elixir's DynamicSupervisor keeps no ignored child at all. */
  #keepsNoIgnored(child: Child): boolean {
    return child.spec.restart === "temporary" || this.dynamic;
  }

  #add(child: Child): void {
    this.#children.push(child);
    this.#byId.set(child.id, child);
  }

  #remove(child: Child): void {
    if (this.#byId.get(child.id) !== child) return;
    this.#restartHolding(child)?.drop(child);
    this.#byId.delete(child.id);
    this.#held.delete(child);
    const at = this.#children.indexOf(child);
    if (at >= 0) this.#children.splice(at, 1);
  }

  /** @internal Children listed now (O(1), for DynamicSupervisor's maxChildren): running, starting and restarting ones. */
  protected get childCount(): number {
    return this.#children.length;
  }

  /** A shutdown message, or a clean disconnect from outside, is a stop request; a fault brought it down. */
  #deviceEndReason(): ShutdownReason {
    const fault = this.device.fault;
    if (this.device.isConnected || fault === undefined) return "shutdown-request";
    return fault.kind === "cascade" ? "cascade" : "killed";
  }

  #deviceEnded(crash: Crash): void {
    if (crash.kind === "error") {
      this.#settleDone(crash.cause); // our own failure (intensity, start): the children are already stopped
      return;
    }
    // Whatever ended the device, `done` settles only once the children have been stopped.
    const reason = this.#deviceEndReason();
    void this.#end(reason, undefined, reason === "killed").then(() => this.#settleDone(crash.kind === "shutdown" ? undefined : crash));
  }

  /**
   * The one way a started supervisor ends: cancel the restarts in progress,
   * stop the children in reverse order (killing them when `kill`), then end
   * the device (with `error` as fault).
   */
  #end(reason: ShutdownReason, error?: unknown, kill = false): Promise<void> {
    if (this.#shutdown !== undefined) {
      if (kill) for (const c of this.#children) if (c.isUp) void c.stop(this.device.id, undefined, true);
      return this.#shutdown;
    }
    this.#phase = "stopping";
    const restarts = this.#restarts;
    this.#restarts = [];
    for (const plan of restarts) plan.cancel();
    this.#shutdown = (async () => {
      await this.#stopAll(kill);
      this.#phase = "stopped";
      const fault = error !== undefined ? Fault.error(error) : this.device.isConnected ? undefined : this.device.fault;
      this.emit("shutdown", { id: this.name, device: this.device.id, reason, fault, at: Date.now() });
      if (error !== undefined) this.#life?.reject(error);
      else this.#life?.resolve();
      if (this.#life === undefined) this.#settleDone(error);
    })();
    return this.#shutdown;
  }

  async #stopAll(kill: boolean): Promise<void> {
    const from = this.device.id;
    const children = [...this.#children].reverse();
    if (this.dynamic) await Promise.all(children.map((c) => c.stop(from, undefined, kill)));
    else for (const c of children) await c.stop(from, undefined, kill);
    // Temporary children are forgotten, in one pass (not one list rebuild each).
    const kept: Child[] = [];
    for (const c of this.#children) {
      if (c.spec.restart === "temporary" || this.dynamic) this.#byId.delete(c.id);
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
  // Finite: an infinite delay would leave a child "restarting" forever, which `intensity` already says better.
  const finite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x) && x >= 0;
  if (!finite(min)) throw badOption(`backoff.min must be a finite number of ms ≥ 0, not ${describeValue(min)}`);
  if (!finite(max) || max < min) throw badOption(`backoff.max must be a finite number of ms ≥ min, not ${describeValue(max)}`);
  if (!finite(jitter)) throw badOption(`backoff.jitter must be a finite number ≥ 0, not ${describeValue(jitter)}`);
  if (reset !== undefined && !finite(reset)) throw badOption(`backoff.reset must be a finite number of ms ≥ 0, not ${describeValue(reset)}`);
}
