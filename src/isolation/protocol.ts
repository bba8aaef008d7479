/**
 * The messages between the parent and a worker (a thread or a child
 * process), both directions, as closed unions. The bootstrap (plain
 * JavaScript evaluated in the worker) speaks exactly these shapes; every
 * TypeScript side — the worker handle, the executor, isolated children and
 * servers — is typed by them, so a new message kind is added here once.
 *
 * A worker's life: `load` → `ready` (or `fatal`), then either one `run`
 * (an isolated child: `done` or `error`, `stop` aborts its signal) or any
 * number of `call`s (an executor or a server: `ok` or `err` per call id).
 * A worker started as a warm standby has received only `load`: whoever
 * adopts it sends the `run` or the `call`s.
 */
import type { SerializedError } from "./worker-error.js";

/** @internal Parent → worker. */
export type ParentMessage =
  /** Import `module` and find `export`; answered by `ready` or `fatal`. */
  | { readonly t: "load"; readonly module: string; readonly export: string }
  /** Child mode: call the loaded function once as `fn({ id, args, signal })`. */
  | { readonly t: "run"; readonly id: string; readonly args: readonly unknown[] }
  /** Child mode: abort the function's signal (sent early, it is kept until `run`). */
  | { readonly t: "stop" }
  /** Call mode: `fn(...args)`; answered by `ok` or `err` with the same `id`. */
  | { readonly t: "call"; readonly id: number; readonly args: readonly unknown[] };

/** @internal Worker → parent. */
export type WorkerMessage =
  | { readonly t: "ready" }
  | { readonly t: "fatal"; readonly error: SerializedError }
  | { readonly t: "done"; readonly value: unknown }
  | { readonly t: "error"; readonly error: SerializedError }
  | { readonly t: "ok"; readonly id: number; readonly value: unknown }
  | { readonly t: "err"; readonly id: number; readonly error: SerializedError; readonly notCloneable?: boolean }
  /** A child process, about to exit on an uncaught exception (a thread reports it as its `error` event). */
  | { readonly t: "uncaught"; readonly error: SerializedError };

/** @internal What the handle passes on to its owner: everything but `uncaught`, which becomes the end's error. */
export type WorkerReply = Exclude<WorkerMessage, { t: "uncaught" }>;
