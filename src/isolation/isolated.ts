/**
 * Supervised children whose body runs in a worker thread (or a child
 * process), so that a kill is a real kill: a runaway loop is ended, memory
 * is capped, and a crash, `process.exit` or out-of-memory of the worker
 * becomes the child's fault.
 */
import { CallError } from "../calls/call-error.js";
import { type Registry, registry as defaultRegistry } from "../calls/registry.js";
import { type Pending, Server } from "../calls/server.js";
import { Device } from "../device.js";
import type { ChildContext, ChildSpec, Restart, Shutdown } from "../supervisor/child-spec.js";
import { SupervisorError } from "../supervisor/errors.js";
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

/** A server whose handler runs in a worker: requests and replies cross by structured clone. */
class WorkerServer extends Server<unknown, unknown> {
  readonly #worker: WorkerHandle;
  readonly #calls = new Map<number, Pending>();
  #seq = 0;

  constructor(device: Device, settings: WorkerSettings, name: string, signal: AbortSignal | undefined) {
    super(device, signal === undefined ? { name } : { name, signal });
    this.#worker = new WorkerHandle(
      settings,
      (m: { t: string; id?: number; value?: unknown; error?: SerializedError; notCloneable?: boolean }) => this.#onMessage(m),
      (end) => {
        // The worker died (crash, exit, out of memory): the server's device goes down with that error.
        device.disconnect({ kind: "error", error: endError(end) ?? new Error("the server's worker exited") });
      },
    );
    killWhenDown(device, this.#worker);
    this.#worker.send({ t: "init", module: moduleSpecifier(settings.module), export: settings.export ?? "default", mode: "call", id: name, args: [] });
  }

  protected override handle(pending: Pending): void {
    const id = ++this.#seq;
    try {
      this.#worker.send({ t: "call", id, args: [pending.request] });
    } catch (error) {
      this.refuse(pending, new CallError("not-cloneable", `the request to "${this.name}" cannot be cloned into its worker`, { cause: error }));
      return;
    }
    this.#calls.set(id, pending);
  }

  #onMessage(m: { t: string; id?: number; value?: unknown; error?: SerializedError; notCloneable?: boolean }): void {
    if (m.t === "fatal") {
      this.device.disconnect({ kind: "error", error: rebuildError(m.error!) });
      return;
    }
    const pending = m.id === undefined ? undefined : this.#calls.get(m.id);
    if (pending === undefined) return;
    this.#calls.delete(m.id!);
    if (m.t === "ok") this.reply(pending, m.value);
    else if (m.notCloneable === true) this.refuse(pending, new CallError("not-cloneable", `the reply of "${this.name}" cannot be cloned out of its worker`, { cause: rebuildError(m.error!) }));
    else if (m.t === "err") this.fail(pending, rebuildError(m.error!));
  }

  protected override onDown(error: CallError): void {
    for (const pending of this.#calls.values()) this.rejectInFlight(pending, error);
    this.#calls.clear();
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
  const { id, register, registry = defaultRegistry, restart, shutdown, ...settings } = options;
  return {
    id,
    ...(restart !== undefined && { restart }),
    ...(shutdown !== undefined && { shutdown }),
    run(ctx) {
      const server = new WorkerServer(ctx.device, settings, register ?? id, ctx.signal);
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
  settings: WorkerSettings & { name?: string },
  device: Device = new Device({ name: settings.name ?? "isolated-server" }),
): Server<Req, Res> {
  return new WorkerServer(device, settings, settings.name ?? device.name ?? `server-${device.id}`, undefined) as Server<unknown, unknown> as Server<Req, Res>;
}
