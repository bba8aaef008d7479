/**
 * Supervised children whose body runs in a worker thread (or a child
 * process), so that a kill is a real kill: a runaway loop is ended, memory
 * is capped, and a crash, `process.exit` or out-of-memory of the worker
 * becomes the child's fault.
 */
import { CallError } from "../calls/call-error.js";
import { Registry, registry as defaultRegistry } from "../calls/registry.js";
import { type Pending, Server } from "../calls/server.js";
import { Device } from "../core/device.js";
import { describeValue, durationProblem } from "../core/timer.js";
import type { ChildContext, ChildSpec, Restart, Shutdown } from "../supervisor/child-spec.js";
import { SupervisorError } from "../supervisor/errors.js";
import { ExecutionError } from "./executor.js";
import type { WorkerReply } from "./protocol.js";
import { Standby } from "./standby.js";
import { rebuildError } from "./worker-error.js";
import { endError, settingsProblem, WorkerHandle, type WorkerSettings } from "./worker-handle.js";

/**
 * Keep a warm standby worker for a spec: `true`, or `{ linger }` — the ms
 * the spare waits for a restart after an incarnation ended by a fault
 * (default 1000). After a requested stop it ends at the next timer turn.
 *
 * @example
 * ```ts
 * isolatedServer({ id: "resize", module: "./resize.mjs", register: "resize", standby: { linger: 10_000 } });
 * ```
 */
export type StandbyOption = boolean | { linger?: number };

/** The linger of a standby when `standby: true`: long enough for any restart without a backoff. */
const DEFAULT_LINGER = 1000;

/**
 * An isolated child: `module`'s export is called in a worker as
 * `fn({ id, args, signal })`; its `signal` aborts when the supervisor asks
 * the child to stop.
 */
export interface IsolatedOptions extends WorkerSettings {
  id: string;
  /** Arguments passed to the worker's function (structured-cloned). */
  args?: unknown[];
  restart?: Restart;
  /** Grace (ms) between the stop request and terminating the worker. Default 5000. */
  shutdown?: Shutdown;
  significant?: boolean;
  /**
   * Keep one more worker started, its module loaded, so that a restart
   * adopts it instead of starting a thread (~60 ms → well under 5 ms). Off
   * by default: it doubles the threads (and their memory, ~9 MB resident
   * each plus your module's) this child holds. The spare is unref'd; it ends
   * at the next timer turn after the child is stopped (a supervisor's stop,
   * `terminateChild`), and `linger` ms (default 1000) after a fault or an
   * end that no restart followed.
   */
  standby?: StandbyOption;
}

/** @internal Terminate `worker` as soon as `device` ends, however it ends (grace overrun, cascade, clean stop). */
function killWhenDown(device: Device, worker: WorkerHandle): void {
  const watcher = new Device({ name: `${device.name ?? device.id}:kill` });
  watcher.link(device, "monitor");
  void watcher.receive().then(() => {
    watcher.disconnect();
    worker.kill();
  });
}

/** What an isolated child's `init` hands to its `run`: the loaded worker, and its outcome if it came early. */
interface IsolatedState {
  worker: WorkerHandle;
  outcome: { ok: true; value: unknown } | { ok: false; error: unknown } | undefined;
  settle: { resolve: (value: unknown) => void; reject: (error: unknown) => void } | undefined;
}

/** The standby of a spec (undefined when off); a bad option is thrown by `fail`. */
function makeStandby(option: unknown, fail: (message: string) => never): Standby | undefined {
  if (option === undefined || option === false) return undefined;
  if (option === true) return new Standby(DEFAULT_LINGER);
  if (typeof option !== "object" || option === null) fail(`standby must be true, false or { linger }, not ${describeValue(option)}`);
  const linger = (option as { linger?: unknown }).linger ?? DEFAULT_LINGER;
  const bad = durationProblem("standby.linger", linger);
  if (bad !== undefined) fail(bad);
  if (linger === Number.POSITIVE_INFINITY) fail("standby.linger must be finite: a spare that never ends would outlive every supervisor using the spec");
  return new Standby(linger as number);
}

/** Check the fields every isolated spec has; throws `invalid-spec` naming the field. */
function checkSpec(options: unknown, what: string): { id: string; fail: (message: string) => never } {
  const id = typeof options === "object" && options !== null ? (options as { id?: unknown }).id : undefined;
  const childId = typeof id === "string" ? id : undefined;
  const fail = (message: string): never => {
    throw new SupervisorError("invalid-spec", `${what}${childId === undefined ? "" : ` "${childId}"`}: ${message}`, childId === undefined ? undefined : { childId });
  };
  if (typeof options !== "object" || options === null) fail(`options must be an object, not ${describeValue(options)}`);
  if (typeof id !== "string" || id.length === 0) fail(`id must be a non-empty string, not ${describeValue(id)}`);
  const problem = settingsProblem(options);
  if (problem !== undefined) fail(problem);
  return { id: id as string, fail };
}

/**
 * A child spec whose body runs in a worker thread (`via: "process"` for a
 * child process). Its `init` starts the worker and waits until the module
 * is loaded, so an unknown module or export is a failed start
 * (`StartError`); its device lives here and is linked like any other; after
 * the shutdown grace period the worker is terminated, even inside
 * `for(;;){}`.
 *
 * The worker module (JavaScript; TypeScript through a loader only with `via: "process"`):
 * ```js
 * export default async function crunch({ args, signal }) {
 *   while (!signal.aborted) await step(args[0]);
 * }
 * ```
 *
 * @throws {SupervisorError} `invalid-spec` when `args` cannot be cloned into a worker.
 * @example
 * ```ts
 * new Supervisor({ children: [isolated({ id: "crunch", module: "./crunch.mjs", args: [42], shutdown: 1_000, resourceLimits: { maxOldGenerationSizeMb: 64 } })] });
 * ```
 */
export function isolated(options: IsolatedOptions): ChildSpec {
  const { id, fail } = checkSpec(options, "isolated child");
  const { id: _id, args = [], restart, shutdown, significant, standby: standbyOption, ...settings } = options;
  if (!Array.isArray(args)) fail(`args must be an array, not ${describeValue(args)}`);
  try {
    structuredClone(args); // checked once here, not at every restart
  } catch (error) {
    throw new SupervisorError("invalid-spec", `isolated child "${id}": its args cannot be cloned into a worker`, { cause: error, childId: id });
  }
  const standby = makeStandby(standbyOption, fail);
  return {
    id,
    ...(restart !== undefined && { restart }),
    ...(shutdown !== undefined && { shutdown }),
    ...(significant !== undefined && { significant }),
    init: (ctx: ChildContext) =>
      new Promise<IsolatedState>((resolve, reject) => {
        const adopted = standby?.take(settings);
        let worker: WorkerHandle;
        try {
          worker = adopted ?? new WorkerHandle(settings);
        } catch (error) {
          standby?.release(false);
          reject(error); // the worker could not even be created (a bad execArgv): a failed start
          return;
        }
        if (standby !== undefined) void worker.ended.then(() => standby.release(ctx.signal.aborted));
        const state: IsolatedState = { worker, outcome: undefined, settle: undefined };
        let loaded = false;
        const finish = (outcome: NonNullable<IsolatedState["outcome"]>) => {
          const settle = state.settle;
          if (settle === undefined) state.outcome ??= outcome; // it finished before run() began
          else if (outcome.ok) settle.resolve(outcome.value);
          else settle.reject(outcome.error);
        };
        const onLoaded = () => {
          loaded = true;
          worker.send({ t: "run", id, args });
          resolve(state);
          standby?.refill(settings);
        };
        worker.listen(
          (m: WorkerReply) => {
            if (m.t === "ready") onLoaded();
            else if (m.t === "fatal") {
              worker.kill();
              reject(rebuildError(m.error)); // the module or its export could not be loaded: a failed start
            } else if (m.t === "done") finish({ ok: true, value: m.value });
            else if (m.t === "error") finish({ ok: false, error: rebuildError(m.error) });
          },
          (end) => {
            // Ended without a result: a clean exit(0) is a normal end, anything else is the worker's fault.
            const error = endError(end);
            if (!loaded) reject(error ?? new Error("the worker exited before it loaded its module"));
            else finish(error === undefined ? { ok: true, value: undefined } : { ok: false, error });
          },
        );
        if (adopted !== undefined) adopted.setRef(true); // a spare idles unref'd; a running child holds the process like any child
        killWhenDown(ctx.device, worker);
        // A stop asked before this point (a cancelled start) still reaches the worker: it keeps it until `run`.
        if (ctx.signal.aborted) worker.send({ t: "stop" });
        else ctx.signal.addEventListener("abort", () => worker.send({ t: "stop" }), { once: true });
        if (worker.loaded) onLoaded();
      }),
    run: (_ctx, s) => {
      const state = s as IsolatedState;
      const outcome = state.outcome;
      if (outcome !== undefined) return outcome.ok ? outcome.value : Promise.reject(outcome.error);
      return new Promise((resolve, reject) => {
        state.settle = { resolve, reject };
      });
    },
  };
}

/** The module a server's workers load; shared by a spec's incarnations, so a deploy outlives restarts. */
interface ModuleSource {
  settings: WorkerSettings;
  version: string | undefined;
  /** The spec's warm standby, if it keeps one. */
  readonly standby: Standby | undefined;
}

/**
 * A server whose handler runs in a worker: requests and replies cross by
 * structured clone. `deploy` swaps in a new version of the module.
 */
export class IsolatedServer<Req = unknown, Res = unknown> extends Server<Req, Res> {
  readonly #source: ModuleSource;
  /** The worker new calls go to. */
  #worker: WorkerHandle;
  /** Calls in flight, and the worker each was sent to (an old version's, during a deploy). */
  readonly #calls = new Map<number, { pending: Pending; worker: WorkerHandle }>();
  /** Workers of earlier versions finishing their calls in flight. */
  readonly #retiring = new Set<WorkerHandle>();
  #seq = 0;
  /** Settles when the first worker has loaded the module (or failed to). */
  readonly #loaded: Promise<void>;
  #markLoaded!: () => void;
  #failLoad!: (error: unknown) => void;

  /** @internal Use {@link isolatedServer} or {@link serveIsolated}. */
  constructor(device: Device, source: ModuleSource, name: string, signal: AbortSignal | undefined) {
    super(device, signal === undefined ? { name } : { name, signal });
    this.#source = source;
    this.#loaded = new Promise<void>((resolve, reject) => {
      this.#markLoaded = resolve;
      this.#failLoad = reject;
    });
    this.#loaded.catch(() => {}); // read by whenLoaded() only when someone asks
    const standby = source.standby;
    const adopted = standby?.take(source.settings);
    let worker: WorkerHandle;
    try {
      worker = adopted ?? new WorkerHandle(source.settings);
    } catch (error) {
      standby?.release(false);
      // No worker at all (a bad execArgv): the server ends at once with that error, nothing is left running.
      const failure = new ExecutionError("spawn-failed", `server "${name}" could not start its worker: ${(error as Error).message}`, error);
      this.#failLoad(failure);
      device.disconnect({ kind: "error", error: failure });
      this.#worker = undefined as unknown as WorkerHandle;
      return;
    }
    if (standby !== undefined) {
      // Released when this incarnation of the server ends, not when its first worker does (a deploy ends that one early).
      const release = (): void => standby.release(signal?.aborted === true);
      void this.done.then(release, release);
    }
    if (adopted !== undefined) adopted.setRef(true);
    const settings = source.settings;
    // The next spare starts once this worker serves, so the two never compete for a core while it loads.
    this.#worker = this.#own(
      worker,
      (m) => {
        if (m.t === "ready") {
          this.#markLoaded();
          standby?.refill(settings);
        } else if (m.t === "fatal") this.#failLoad(rebuildError(m.error));
        this.#onMessage(m, worker); // named: after a deploy this is no longer the current worker
      },
      undefined,
      (error) => this.#failLoad(error), // ended before it loaded
    );
    if (worker.loaded) {
      this.#markLoaded();
      standby?.refill(settings);
    }
  }

  /** The version label new calls run on. */
  get version(): string | undefined {
    return this.#source.version;
  }

  /**
   * @internal Resolves once the first worker has loaded the handler module; rejects with
   * the loader's error (or how the worker ended) if it could not. Calls made
   * before then are not lost: they wait in the worker for the module.
   */
  whenLoaded(): Promise<void> {
    return this.#loaded;
  }

  /**
   * Run a new version of the handler module: a new worker loads it, and once
   * it is ready new calls go to it while calls in flight finish on the old
   * worker, which is then ended. If the new module cannot be loaded, the
   * old version keeps serving and this rejects with `ExecutionError`
   * `spawn-failed`. Later restarts of the child use the new version too.
   *
   * @example
   * ```ts
   * const billing = registry.whereis<IsolatedServer>("billing");
   * await billing?.deploy("./billing-v2.mjs", { version: "2" });
   * ```
   */
  deploy(module: string | URL, options: { export?: string; version?: string } = {}): Promise<void> {
    if (!this.isUp) return Promise.reject(new CallError("server-down", `server "${this.name}" is down: nothing to deploy to`));
    if (typeof options !== "object" || options === null) return Promise.reject(new ExecutionError("invalid-argument", `deploy options must be an object, not ${describeValue(options)}`));
    if (options.version !== undefined && typeof options.version !== "string") return Promise.reject(new ExecutionError("invalid-argument", `version must be a string, not ${describeValue(options.version)}`));
    const settings: WorkerSettings = { ...this.#source.settings, module, ...(options.export !== undefined && { export: options.export }) };
    const problem = settingsProblem(settings);
    if (problem !== undefined) return Promise.reject(new ExecutionError("invalid-argument", problem));
    return new Promise<void>((resolve, reject) => {
      let next: WorkerHandle;
      try {
        next = new WorkerHandle(settings);
      } catch (error) {
        reject(new ExecutionError("spawn-failed", `server "${this.name}" could not start a worker for ${String(module)}: ${(error as Error).message}`, error));
        return;
      }
      this.#own(next, (m) => {
        if (m.t === "ready") {
          // Switch: new calls go to the new worker; the old one retires once its calls are answered.
          const old = this.#worker;
          this.#worker = next;
          this.#source.settings = settings;
          this.#source.version = options.version;
          this.#retire(old);
          this.#source.standby?.renew(settings); // the next restart adopts the deployed version, warm
          resolve();
        } else if (m.t === "fatal") {
          next.kill();
          reject(new ExecutionError("spawn-failed", `server "${this.name}" could not load ${String(module)}: ${m.error.message}`, rebuildError(m.error)));
        } else this.#onMessage(m, next);
      }, reject);
    });
  }

  protected override handle(pending: Pending): void {
    const id = ++this.#seq;
    const worker = this.#worker;
    try {
      worker.send({ t: "call", id, args: [pending.request] });
    } catch (error) {
      this.refuse(pending, new CallError("not-cloneable", `the request to "${this.name}" cannot be cloned into its worker`, { cause: error }));
      return;
    }
    this.#calls.set(id, { pending, worker });
  }

  /** Take `worker` as one of this server's, ended with the server's device; `onStartFailure` hears a worker that dies before it is ready. */
  #own(worker: WorkerHandle, onMessage: (m: WorkerReply) => void, onStartFailure?: (error: Error) => void, onEndBeforeLoad?: (error: Error) => void): WorkerHandle {
    worker.listen(onMessage, (end) => {
      const error = endError(end) ?? new Error("the server's worker exited before it loaded its module");
      if (!worker.loaded && onStartFailure !== undefined) onStartFailure(new ExecutionError("spawn-failed", `server "${this.name}": the new worker died while loading`, error));
      else {
        if (!worker.loaded) onEndBeforeLoad?.(error);
        this.#onWorkerEnd(worker, error);
      }
    });
    killWhenDown(this.device, worker);
    return worker;
  }

  #onWorkerEnd(worker: WorkerHandle, error: Error): void {
    if (worker === this.#worker) {
      // The serving worker died (crash, exit, out of memory): the server's device goes down with that error.
      this.device.disconnect({ kind: "error", error });
      return;
    }
    // A retiring worker died with calls still on it: those calls fail; the server goes on with the new version.
    this.#retiring.delete(worker);
    for (const [id, call] of this.#calls) {
      if (call.worker !== worker) continue;
      this.#calls.delete(id);
      this.refuse(call.pending, new CallError("server-down", `the worker of "${this.name}"'s previous version died during a deploy`, { fault: { kind: "error", error }, cause: error }));
    }
  }

  #retire(worker: WorkerHandle): void {
    this.#retiring.add(worker);
    this.#reapIfIdle(worker);
  }

  #reapIfIdle(worker: WorkerHandle): void {
    if (!this.#retiring.has(worker)) return;
    for (const call of this.#calls.values()) if (call.worker === worker) return;
    this.#retiring.delete(worker);
    worker.kill();
  }

  #onMessage(m: WorkerReply, from: WorkerHandle): void {
    if (m.t === "fatal") {
      this.device.disconnect({ kind: "error", error: rebuildError(m.error) });
      return;
    }
    if (m.t !== "ok" && m.t !== "err") return;
    const call = this.#calls.get(m.id);
    if (call === undefined) return;
    this.#calls.delete(m.id);
    const { pending } = call;
    if (m.t === "ok") this.reply(pending, m.value);
    else if (m.notCloneable === true) this.refuse(pending, new CallError("not-cloneable", `the reply of "${this.name}" cannot be cloned out of its worker`, { cause: rebuildError(m.error) }));
    else this.fail(pending, rebuildError(m.error));
    if (from !== this.#worker) this.#reapIfIdle(from);
  }

  protected override onDown(error: CallError): void {
    for (const call of this.#calls.values()) this.rejectInFlight(call.pending, error);
    this.#calls.clear();
    this.#retiring.clear();
  }
}

/** Options of {@link isolatedServer}. */
export interface IsolatedServerOptions extends WorkerSettings {
  id: string;
  /** Register the server under this name (in `registry`) for each incarnation, so `call(name, …)` follows restarts. */
  register?: string;
  registry?: Registry;
  restart?: Restart;
  shutdown?: Shutdown;
  significant?: boolean;
  /** A label of the handler module's version (see {@link IsolatedServer.deploy}). */
  version?: string;
  /** Keep a warm standby worker for restarts (see {@link IsolatedOptions.standby}). */
  standby?: StandbyOption;
}

/**
 * A child spec for a server whose handler (`module`'s export, called with
 * each request) runs in a worker. Its `init` waits until the worker has
 * loaded the module, so an unknown module or export is a failed start
 * (`StartError`). A call to it fails at once with `server-down` if the
 * worker dies mid-call; the supervisor then restarts it.
 *
 * @throws {SupervisorError} `invalid-spec` for bad options (no module, an unknown `via`, …), naming the field.
 * @example
 * ```ts
 * new Supervisor({ children: [isolatedServer({ id: "resize", module: "./resize.mjs", register: "resize", standby: true })] });
 * const png = await call("resize", { url, width: 200 }, { timeout: 5_000, waitForName: 1_000 });
 * ```
 */
export function isolatedServer(options: IsolatedServerOptions): ChildSpec<IsolatedServer> {
  const { id, fail } = checkSpec(options, "isolated server");
  const { id: _id, register, registry = defaultRegistry, restart, shutdown, significant, version, standby: standbyOption, ...settings } = options;
  if (register !== undefined && (typeof register !== "string" || register.length === 0)) fail(`register must be a non-empty string, not ${describeValue(register)}`);
  if (!(registry instanceof Registry)) fail(`registry must be a Registry, not ${describeValue(registry)}`);
  if (version !== undefined && typeof version !== "string") fail(`version must be a string, not ${describeValue(version)}`);
  const standby = makeStandby(standbyOption, fail);
  const source: ModuleSource = { settings, version, standby }; // a deploy updates it, so restarts load the deployed version
  return {
    id,
    ...(restart !== undefined && { restart }),
    ...(shutdown !== undefined && { shutdown }),
    ...(significant !== undefined && { significant }),
    // As for `isolated`: the start waits for the module, so a module that cannot be loaded is a
    // failed start (StartError with the loader's error), not a crash loop of restarts.
    init: async (ctx: ChildContext) => {
      const server = new IsolatedServer(ctx.device, source, register ?? id, ctx.signal);
      await server.whenLoaded();
      return server;
    },
    run(_ctx, server) {
      if (register !== undefined) registry.register(register, server);
      return server.done;
    },
  };
}

/**
 * Settings of {@link serveIsolated}: where the handler runs, and the server's name and version label.
 *
 * @example
 * ```ts
 * const settings: ServeIsolatedSettings = { module: "./hash.mjs", via: "process", name: "hasher", version: "1" };
 * ```
 */
export interface ServeIsolatedSettings extends WorkerSettings {
  name?: string;
  version?: string;
}

/**
 * A server in a worker, outside any supervisor: on `device` (a new one by
 * default). Its worker is ref'd while the server is up, so an isolated
 * server keeps the process alive until it is stopped (`stop()`, `await
 * using`, or its device disconnected) — as an open socket would.
 *
 * @throws {CallError} `invalid-argument` for bad settings or a `device` that is not a Device; nothing is started then.
 * @example
 * ```ts
 * await using hasher = serveIsolated({ module: "./hash.mjs" });
 * const digest = await new Client(hasher).call(buffer);
 * ```
 */
export function serveIsolated<Req = unknown, Res = unknown>(settings: ServeIsolatedSettings, device?: Device): IsolatedServer<Req, Res> {
  // Every check comes before the device and the worker exist: a refusal leaves nothing behind.
  const problem = settingsProblem(settings);
  if (problem !== undefined) throw new CallError("invalid-argument", `serveIsolated: ${problem}`);
  const { name, version, ...worker } = settings;
  if (name !== undefined && typeof name !== "string") throw new CallError("invalid-argument", `serveIsolated: name must be a string, not ${describeValue(name)}`);
  if (version !== undefined && typeof version !== "string") throw new CallError("invalid-argument", `serveIsolated: version must be a string, not ${describeValue(version)}`);
  if (device !== undefined && !(device instanceof Device)) throw new CallError("invalid-argument", `serveIsolated: device must be a Device, not ${describeValue(device)}`);
  const on = device ?? new Device({ name: name ?? "isolated-server" });
  return new IsolatedServer<Req, Res>(on, { settings: worker, version, standby: undefined }, name ?? on.name ?? `server-${on.id}`, undefined);
}
