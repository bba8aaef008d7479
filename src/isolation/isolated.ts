/**
 * Supervised children whose body runs in a worker thread (or a child
 * process), so that a kill is a real kill: a runaway loop is ended, memory
 * is capped, and a crash, `process.exit` or out-of-memory of the worker
 * becomes the child's fault.
 */
import { CallError } from "../calls/call-error.js";
import { type Registry, registry as defaultRegistry } from "../calls/registry.js";
import { type Pending, Server } from "../calls/server.js";
import { Device } from "../core/device.js";
import type { ChildContext, ChildSpec, Restart, Shutdown } from "../supervisor/child-spec.js";
import { SupervisorError } from "../supervisor/errors.js";
import { ExecutionError } from "./executor.js";
import { rebuildError, type SerializedError } from "./worker-error.js";
import { endError, moduleSpecifier, WorkerHandle, type WorkerSettings } from "./worker-handle.js";

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

/** @internal What an isolated child's `init` hands to its `run`: the loaded worker, and its outcome if it came early. */
interface IsolatedState {
  worker: WorkerHandle;
  outcome: { ok: true; value: unknown } | { ok: false; error: unknown } | undefined;
  settle: { resolve: (value: unknown) => void; reject: (error: unknown) => void } | undefined;
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
export function isolated(options: IsolatedOptions): ChildSpec<IsolatedState> {
  const { id, args = [], restart, shutdown, significant, ...settings } = options;
  try {
    structuredClone(args); // checked once here, not at every restart
  } catch (error) {
    throw new SupervisorError("invalid-spec", `isolated child "${id}": its args cannot be cloned into a worker`, { cause: error, childId: id });
  }
  const module = moduleSpecifier(settings.module);
  const exportName = settings.export ?? "default";
  return {
    id,
    ...(restart !== undefined && { restart }),
    ...(shutdown !== undefined && { shutdown }),
    ...(significant !== undefined && { significant }),
    init: (ctx: ChildContext) =>
      new Promise<IsolatedState>((resolve, reject) => {
        let loaded = false;
        const state: IsolatedState = { worker: undefined as unknown as WorkerHandle, outcome: undefined, settle: undefined };
        const finish = (outcome: NonNullable<IsolatedState["outcome"]>) => {
          const settle = state.settle;
          if (settle === undefined) state.outcome ??= outcome; // it finished before run() began
          else if (outcome.ok) settle.resolve(outcome.value);
          else settle.reject(outcome.error);
        };
        const worker = new WorkerHandle(
          settings,
          (m: { t: string; value?: unknown; error?: SerializedError }) => {
            if (m.t === "ready") {
              loaded = true;
              resolve(state);
            } else if (m.t === "fatal") {
              worker.kill();
              reject(rebuildError(m.error!)); // the module or its export could not be loaded: a failed start
            } else if (m.t === "done") finish({ ok: true, value: m.value });
            else if (m.t === "error") finish({ ok: false, error: rebuildError(m.error!) });
          },
          (end) => {
            // Ended without a result: a clean exit(0) is a normal end, anything else is the worker's fault.
            const error = endError(end);
            if (!loaded) reject(error ?? new Error("the worker exited before it loaded its module"));
            else finish(error === undefined ? { ok: true, value: undefined } : { ok: false, error });
          },
        );
        state.worker = worker;
        killWhenDown(ctx.device, worker);
        ctx.signal.addEventListener("abort", () => worker.send({ t: "stop" }), { once: true });
        worker.send({ t: "init", module, export: exportName, mode: "child", id, args });
      }),
    run: (_ctx, state) => {
      const outcome = state.outcome;
      if (outcome !== undefined) return outcome.ok ? outcome.value : Promise.reject(outcome.error);
      return new Promise((resolve, reject) => {
        state.settle = { resolve, reject };
      });
    },
  };
}

/** @internal The module a server's workers load; shared by a spec's incarnations, so a deploy outlives restarts. */
interface ModuleSource {
  settings: WorkerSettings;
  version: string | undefined;
}

type WorkerMessage = { t: string; id?: number; value?: unknown; error?: SerializedError; notCloneable?: boolean };

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

  /** @internal Use {@link isolatedServer} or {@link serveIsolated}. */
  constructor(device: Device, source: ModuleSource, name: string, signal: AbortSignal | undefined) {
    super(device, signal === undefined ? { name } : { name, signal });
    this.#source = source;
    this.#worker = this.#spawn(source.settings, (m) => this.#onMessage(m));
  }

  /** The version label new calls run on. */
  get version(): string | undefined {
    return this.#source.version;
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
   * const billing = registry.lookup("billing") as IsolatedServer;
   * await billing.deploy("./billing-v2.mjs", { version: "2" });
   * ```
   */
  deploy(module: string | URL, options: { export?: string; version?: string } = {}): Promise<void> {
    if (!this.isUp) return Promise.reject(new CallError("server-down", `server "${this.name}" is down: nothing to deploy to`));
    const settings: WorkerSettings = { ...this.#source.settings, module, ...(options.export !== undefined && { export: options.export }) };
    return new Promise<void>((resolve, reject) => {
      const next = this.#spawn(settings, (m) => {
        if (m.t === "ready") {
          // Switch: new calls go to the new worker; the old one retires once its calls are answered.
          const old = this.#worker;
          this.#worker = next;
          this.#source.settings = settings;
          this.#source.version = options.version;
          this.#retire(old);
          resolve();
        } else if (m.t === "fatal") {
          next.kill();
          reject(new ExecutionError("spawn-failed", `server "${this.name}" could not load ${String(module)}: ${m.error!.message}`, rebuildError(m.error!)));
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

  /** A worker for `settings`, ended with the server's device; `onStartFailure` hears a worker that dies before it is ready. */
  #spawn(settings: WorkerSettings, onMessage: (m: WorkerMessage) => void, onStartFailure?: (error: Error) => void): WorkerHandle {
    let ready = false;
    const worker = new WorkerHandle(
      settings,
      (m: WorkerMessage) => {
        if (m.t === "ready") ready = true;
        onMessage(m);
      },
      (end) => {
        const error = endError(end) ?? new Error("the server's worker exited");
        if (!ready && onStartFailure !== undefined) onStartFailure(new ExecutionError("spawn-failed", `server "${this.name}": the new worker died while loading`, error));
        else this.#onWorkerEnd(worker, error);
      },
    );
    killWhenDown(this.device, worker);
    worker.send({ t: "init", module: moduleSpecifier(settings.module), export: settings.export ?? "default", mode: "call", id: this.name, args: [] });
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

  #onMessage(m: WorkerMessage, from: WorkerHandle = this.#worker): void {
    if (m.t === "fatal") {
      this.device.disconnect({ kind: "error", error: rebuildError(m.error!) });
      return;
    }
    const call = m.id === undefined ? undefined : this.#calls.get(m.id);
    if (call === undefined) return;
    this.#calls.delete(m.id!);
    const { pending } = call;
    if (m.t === "ok") this.reply(pending, m.value);
    else if (m.notCloneable === true) this.refuse(pending, new CallError("not-cloneable", `the reply of "${this.name}" cannot be cloned out of its worker`, { cause: rebuildError(m.error!) }));
    else if (m.t === "err") this.fail(pending, rebuildError(m.error!));
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
  /** A label of the handler module's version (see {@link IsolatedServer.deploy}). */
  version?: string;
}

/**
 * A child spec for a server whose handler (`module`'s export, called with
 * each request) runs in a worker. A call to it fails at once with
 * `server-down` if the worker dies mid-call; the supervisor then restarts it.
 *
 * @example
 * ```ts
 * new Supervisor({ children: [isolatedServer({ id: "resize", module: "./resize.mjs", register: "resize" })] });
 * const png = await call("resize", { url, width: 200 }, { timeout: 5_000 });
 * ```
 */
export function isolatedServer(options: IsolatedServerOptions): ChildSpec<void> {
  const { id, register, registry = defaultRegistry, restart, shutdown, version, ...settings } = options;
  const source: ModuleSource = { settings, version }; // a deploy updates it, so restarts load the deployed version
  return {
    id,
    ...(restart !== undefined && { restart }),
    ...(shutdown !== undefined && { shutdown }),
    run(ctx) {
      const server = new IsolatedServer(ctx.device, source, register ?? id, ctx.signal);
      if (register !== undefined) registry.register(register, server);
      return server.done;
    },
  };
}

/**
 * A server in a worker, outside any supervisor: on `device` (a new one by default).
 *
 * @example
 * ```ts
 * const hasher = serveIsolated({ module: "./hash.mjs" });
 * const digest = await new Client(hasher).call(buffer);
 * ```
 */
export function serveIsolated<Req = unknown, Res = unknown>(
  settings: WorkerSettings & { name?: string; version?: string },
  device: Device = new Device({ name: settings.name ?? "isolated-server" }),
): IsolatedServer<Req, Res> {
  const { name, version, ...worker } = settings;
  return new IsolatedServer<Req, Res>(device, { settings: worker, version }, name ?? device.name ?? `server-${device.id}`, undefined);
}
