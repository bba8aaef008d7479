/** @internal An error thrown in a worker, rebuilt in the parent with its name, message, stack and code. */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  code?: unknown;
}

/** @internal */
export function rebuildError(e: SerializedError): Error {
  const error = new Error(e.message);
  error.name = e.name;
  if (e.stack !== undefined) error.stack = e.stack;
  if (e.code !== undefined) (error as Error & { code?: unknown }).code = e.code;
  return error;
}

/**
 * A worker thread or child process ended without finishing its work:
 * `process.exit(code)` or a kill signal. `exitCode`/`signal` say which.
 *
 * @example
 * ```ts
 * sup.on("child-exited", ({ fault }) => {
 *   if (fault?.kind === "error" && fault.error instanceof WorkerExitError) console.log("exit code", fault.error.exitCode);
 * });
 * ```
 */
export class WorkerExitError extends Error {
  readonly exitCode: number | null;
  readonly signal: string | null;
  constructor(exitCode: number | null, signal: string | null) {
    super(signal !== null ? `the worker was ended by ${signal}` : `the worker exited with code ${exitCode}`);
    this.exitCode = exitCode;
    this.signal = signal;
  }
}
WorkerExitError.prototype.name = "WorkerExitError";
