/**
 * One worker — a thread (worker_threads) or a child process — behind one
 * interface: send, listen, learn how it ended, kill it for real.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type ResourceLimits, Worker } from "node:worker_threads";
import { describeValue } from "../core/timer.js";
import { BOOTSTRAP } from "./bootstrap.js";
import type { ParentMessage, WorkerMessage, WorkerReply } from "./protocol.js";
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

const LIMITS = new Set(["maxOldGenerationSizeMb", "maxYoungGenerationSizeMb", "codeRangeSizeMb", "stackSizeMb"]);

/**
 * @internal What is wrong with `settings` (undefined when nothing is), checked before
 * any worker, port or device exists, so a refusal leaks nothing. Each entry
 * point throws it as its own typed error.
 */
export function settingsProblem(settings: unknown): string | undefined {
  if (typeof settings !== "object" || settings === null) return `worker settings must be an object, not ${describeValue(settings)}`;
  const s = settings as Record<string, unknown>;
  if (!(s.module instanceof URL) && (typeof s.module !== "string" || s.module.length === 0)) return `module must be a path, a file: URL or a package name, not ${describeValue(s.module)}`;
  if (s.export !== undefined && (typeof s.export !== "string" || s.export.length === 0)) return `export must be a non-empty string, not ${describeValue(s.export)}`;
  if (s.via !== undefined && s.via !== "thread" && s.via !== "process") return `via must be "thread" or "process", not ${describeValue(s.via)}`;
  if (s.resourceLimits !== undefined) {
    if (typeof s.resourceLimits !== "object" || s.resourceLimits === null) return `resourceLimits must be an object, not ${describeValue(s.resourceLimits)}`;
    for (const [key, value] of Object.entries(s.resourceLimits)) {
      if (!LIMITS.has(key)) return `resourceLimits has no field ${JSON.stringify(key)} (known: ${[...LIMITS].join(", ")})`;
      if (value !== undefined && !(typeof value === "number" && value > 0 && Number.isFinite(value))) return `resourceLimits.${key} must be a number > 0, not ${describeValue(value)}`;
    }
  }
  if (s.execArgv !== undefined && !(Array.isArray(s.execArgv) && s.execArgv.every((a) => typeof a === "string"))) return `execArgv must be an array of strings, not ${describeValue(s.execArgv)}`;
  if (s.env !== undefined && (typeof s.env !== "object" || s.env === null || Array.isArray(s.env))) return `env must be an object of strings, not ${describeValue(s.env)}`;
  return undefined;
}

/** @internal The module specifier the worker imports. */
export function moduleSpecifier(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (module.startsWith("file:") || module.startsWith("data:")) return module;
  if (isAbsolute(module) || module.startsWith(".")) return pathToFileURL(resolve(module)).href;
  return module;
}

type OnMessage = (message: WorkerReply) => void;
type OnEnd = (end: WorkerEnd) => void;

/**
 * @internal One started worker. It is told to load its module as soon as it exists;
 * `loaded` says whether it has. Its owner (`listen`) can change: a warm
 * standby is adopted by the incarnation or pool that needs it.
 */
export class WorkerHandle {
  readonly settings: WorkerSettings;
  readonly #thread: Worker | undefined;
  readonly #process: ChildProcess | undefined;
  #ended = false;
  #onMessage: OnMessage | undefined = undefined;
  #onEnd: OnEnd | undefined = undefined;
  /** The module is loaded (`ready` came). */
  loaded = false;
  /** How the load failed (`fatal` came), kept for an owner that listens later. */
  loadError: SerializedError | undefined = undefined;
  /** How it ended, kept for an owner that listens later. */
  #end: WorkerEnd | undefined = undefined;
  /** Resolves once the worker has ended. */
  readonly ended: Promise<void>;
  #markEnded!: () => void;
  /** An uncaught error a child process reported before exiting. */
  #uncaught: Error | undefined;

  /** Start a worker for `settings` (already checked by {@link settingsProblem}) and tell it to load the module. */
  constructor(settings: WorkerSettings) {
    this.settings = settings;
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
      child.on("message", (m: WorkerMessage) => {
        if (m.t === "uncaught") this.#uncaught = rebuildError(m.error);
        else this.#received(m);
      });
      child.on("error", (error) => this.#ending({ kind: "error", error }));
      child.on("exit", (code, signal) => this.#ending(this.#uncaught !== undefined ? { kind: "error", error: this.#uncaught } : { kind: "exit", code, signal }));
    } else {
      const worker = new Worker(BOOTSTRAP, {
        eval: true,
        ...(settings.resourceLimits !== undefined && { resourceLimits: settings.resourceLimits }),
        ...(settings.execArgv !== undefined && { execArgv: settings.execArgv }),
        ...(settings.env !== undefined && { env: settings.env }),
      });
      this.#thread = worker;
      worker.on("message", (m: WorkerReply) => this.#received(m));
      // An uncaught exception or out-of-memory arrives as 'error', then 'exit': the error is what matters.
      worker.on("error", (error) => this.#ending({ kind: "error", error }));
      worker.on("exit", (code) => this.#ending({ kind: "exit", code, signal: null }));
    }
    this.send({ t: "load", module: moduleSpecifier(settings.module), export: settings.export ?? "default" });
  }

  /**
   * Become the worker's owner: its messages and its end go to these from
   * now on. An end that came while nobody listened is told at once.
   */
  listen(onMessage: OnMessage, onEnd: OnEnd): void {
    this.#onMessage = onMessage;
    this.#onEnd = onEnd;
    if (this.#end !== undefined) this.#tellEnd();
  }

  get isAlive(): boolean {
    return !this.#ended;
  }

  /** Post a message; throws a DataCloneError for what cannot be cloned. */
  send(message: ParentMessage): void {
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

  #received(m: WorkerReply): void {
    if (m.t === "ready") this.loaded = true;
    else if (m.t === "fatal") this.loadError = m.error;
    this.#onMessage?.(m);
  }

  #ending(end: WorkerEnd): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#end = end;
    this.#markEnded();
    this.#tellEnd();
  }

  #tellEnd(): void {
    const onEnd = this.#onEnd;
    if (onEnd === undefined) return;
    this.#onEnd = undefined;
    this.#onMessage = undefined;
    onEnd(this.#end!);
  }
}

/** @internal The error a worker's end stands for (undefined: a clean exit). */
export function endError(end: WorkerEnd): Error | undefined {
  if (end.kind === "error") return end.error;
  if (end.code === 0 && end.signal === null) return undefined;
  return new WorkerExitError(end.code, end.signal);
}
