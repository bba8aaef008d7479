/**
 * One worker — a thread (worker_threads) or a child process — behind one
 * interface: send, listen, learn how it ended, kill it for real.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type ResourceLimits, Worker } from "node:worker_threads";
import { BOOTSTRAP } from "./bootstrap.js";
import { rebuildError, type SerializedError, WorkerExitError } from "./worker-error.js";

/** Where and how a worker runs. */
export interface WorkerSettings {
  /** The module to load: a path (absolute or relative to the working directory), a `file:` URL, or a package name. */
  module: string | URL;
  /** The exported function. Default `"default"`. */
  export?: string;
  /** A worker thread (default: cheap, `resourceLimits` apply) or a child process (a separate heap and OS process). */
  via?: "thread" | "process";
  /**
   * Memory caps (Node's `resourceLimits`); overrunning them ends the worker
   * with an out-of-memory fault. For a child process, `maxOldGenerationSizeMb`
   * becomes `--max-old-space-size` (it then dies with SIGABRT).
   */
  resourceLimits?: ResourceLimits;
  /**
   * Node flags for the worker. With `via: "process"`, `["--import", "tsx"]`
   * lets it load TypeScript; worker threads on Node 20 cannot use such
   * loaders: give them compiled JavaScript.
   */
  execArgv?: string[];
  /** Environment of a child process. Default: the parent's. */
  env?: NodeJS.ProcessEnv;
}

/** How a worker ended. */
export type WorkerEnd = { kind: "exit"; code: number | null; signal: string | null } | { kind: "error"; error: Error };

/** @internal The module specifier the worker imports. */
export function moduleSpecifier(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (module.startsWith("file:") || module.startsWith("data:")) return module;
  if (isAbsolute(module) || module.startsWith(".")) return pathToFileURL(resolve(module)).href;
  return module;
}

/** @internal */
export class WorkerHandle {
  readonly #thread: Worker | undefined;
  readonly #process: ChildProcess | undefined;
  #ended = false;
  #onEnd: ((end: WorkerEnd) => void) | undefined;
  /** Resolves once the worker has ended. */
  readonly ended: Promise<void>;
  #markEnded!: () => void;
  /** An uncaught error a child process reported before exiting. */
  #uncaught: Error | undefined;

  constructor(settings: WorkerSettings, onMessage: (message: any) => void, onEnd: (end: WorkerEnd) => void) {
    this.#onEnd = onEnd;
    this.ended = new Promise<void>((resolve) => {
      this.#markEnded = resolve;
    });
    if (settings.via === "process") {
      const heap = settings.resourceLimits?.maxOldGenerationSizeMb;
      const flags = [...(heap !== undefined ? [`--max-old-space-size=${heap}`] : []), ...(settings.execArgv ?? [])];
      const child = spawn(process.execPath, [...flags, "-e", BOOTSTRAP], {
        stdio: ["ignore", "inherit", "inherit", "ipc"],
        serialization: "advanced",
        env: settings.env ?? process.env,
      });
      this.#process = child;
      child.on("message", (m: { t?: string; error?: SerializedError }) => {
        if (m.t === "uncaught") this.#uncaught = rebuildError(m.error!);
        else onMessage(m);
      });
      child.on("error", (error) => this.#end({ kind: "error", error }));
      child.on("exit", (code, signal) => this.#end(this.#uncaught !== undefined ? { kind: "error", error: this.#uncaught } : { kind: "exit", code, signal }));
    } else {
      const worker = new Worker(BOOTSTRAP, {
        eval: true,
        ...(settings.resourceLimits !== undefined && { resourceLimits: settings.resourceLimits }),
        ...(settings.execArgv !== undefined && { execArgv: settings.execArgv }),
        ...(settings.env !== undefined && { env: settings.env }),
      });
      this.#thread = worker;
      worker.on("message", onMessage);
      // An uncaught exception or out-of-memory arrives as 'error', then 'exit': the error is what matters.
      worker.on("error", (error) => this.#end({ kind: "error", error }));
      worker.on("exit", (code) => this.#end({ kind: "exit", code, signal: null }));
    }
  }

  get isAlive(): boolean {
    return !this.#ended;
  }

  /** Post a message; throws a DataCloneError for what cannot be cloned. */
  send(message: unknown): void {
    if (this.#ended) return;
    if (this.#thread !== undefined) this.#thread.postMessage(message);
    else this.#process!.send(message as never);
  }

  /** End it now, whatever it is doing (even a `for(;;){}`). */
  kill(): void {
    if (this.#thread !== undefined) void this.#thread.terminate();
    else if (this.#process!.exitCode === null && this.#process!.signalCode === null) this.#process!.kill("SIGKILL");
  }

  /** Let the process exit while this worker idles (or not). */
  setRef(ref: boolean): void {
    const target = this.#thread ?? this.#process!;
    if (ref) target.ref();
    else target.unref();
    const channel = (this.#process as { channel?: { ref(): void; unref(): void } } | undefined)?.channel;
    if (channel !== undefined) {
      if (ref) channel.ref();
      else channel.unref();
    }
  }

  #end(end: WorkerEnd): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#markEnded();
    const onEnd = this.#onEnd;
    this.#onEnd = undefined;
    onEnd?.(end);
  }
}

/** @internal The error a worker's end stands for (undefined: a clean exit). */
export function endError(end: WorkerEnd): Error | undefined {
  if (end.kind === "error") return end.error;
  if (end.code === 0 && end.signal === null) return undefined;
  return new WorkerExitError(end.code, end.signal);
}
