/**
 * Crash reports, in the spirit of OTP's SASL supervisor reports: one block
 * of text per child that ends with a fault, per restart and per supervisor
 * that gives up — who, under which supervisor, what fault, the cause's
 * stack, restart n of the allowed intensity — readable at a glance in a
 * terminal or a log file.
 *
 * Off by default: nothing is reported until {@link attachCrashReports} is
 * called (or a supervisor is given a `logger`). The reporter only listens to
 * a supervisor's public events, so it can never change what the supervisor
 * does; a logger that throws is reported as a process warning and the
 * supervisor goes on.
 */
import { errorText } from "../core/describe.js";
import { reportListenerError } from "../core/emitter.js";
import { BackplaneError } from "../core/error.js";
import { describeValue } from "../core/timer.js";
import type { Fault } from "../core/fault.js";
import type { ChildExitedEvent, ChildRestartedEvent, RestartIntensityExceededEvent, SupervisorEvents } from "./events.js";
import type { EventEmitter } from "eventemitter3";

/**
 * Where crash reports go: a `console`-shaped object (faults and give-ups go
 * to `error`, killed-on-request exits to `warn`, restarts to `info`, each
 * falling back to the next level it has), or a function called with the
 * formatted text and the report as data.
 *
 * @example
 * ```ts
 * const logger: CrashLogger = console;
 * const toJson: CrashLogger = (text, report) => process.stderr.write(JSON.stringify(report) + "\n");
 * ```
 */
export type CrashLogger =
  | { error(text: string): unknown; warn?(text: string): unknown; info?(text: string): unknown }
  | ((text: string, report: CrashReport) => unknown);

/**
 * How severe a report is; decides which method of a console-shaped logger receives it.
 *
 * @example
 * ```ts
 * attachCrashReports(sup, (text, r) => log[r.level === "info" ? "info" : "error"](text));
 * ```
 */
export type CrashReportLevel = "error" | "warn" | "info";

/**
 * One crash report, as data. `kind`:
 * - `child-terminated`: a child ended with a fault (`requested` when the
 *   supervisor was stopping it, e.g. killed after its grace period);
 * - `child-restarted`: the supervisor started a child again after a failure;
 * - `gave-up`: more restarts than the intensity allows: the supervisor stops
 *   its children and ends with a fault, for its own parent to handle.
 *
 * @example
 * ```ts
 * attachCrashReports(sup, (text, r) => { if (r.kind === "gave-up") page(oncall, text); });
 * ```
 */
export type CrashReport =
  | {
      kind: "child-terminated";
      level: CrashReportLevel;
      supervisor: string;
      child: string;
      device: number;
      fault: Fault;
      requested: boolean;
      /** ms the child ran. */
      uptime: number;
      at: number;
    }
  | {
      kind: "child-restarted";
      level: CrashReportLevel;
      supervisor: string;
      child: string;
      device: number;
      /** Times this child has been restarted. */
      restarts: number;
      /** Restarts inside the supervisor's current window, of how many allowed within `period` ms (absent for task supervisors). */
      intensity?: { used: number; allowed: number; period: number };
      /** ms of backoff waited before this start. */
      delay: number;
      at: number;
    }
  | {
      kind: "gave-up";
      level: CrashReportLevel;
      supervisor: string;
      /** The child whose restart was one too many. */
      child: string;
      intensity: number;
      period: number;
      at: number;
    };

/**
 * Options of {@link attachCrashReports}.
 *
 * @example
 * ```ts
 * attachCrashReports(pool, console, { label: "app/pool", stackLines: 5 });
 * ```
 */
export interface CrashReportOptions {
  /** How the supervisor is named in reports (e.g. its path `app/pipeline`). Default: its `name`. */
  label?: string;
  /** How many lines of each stack to print (0: none). Default 12. */
  stackLines?: number;
}

/**
 * What {@link attachCrashReports} listens to: any Supervisor, DynamicSupervisor or TaskSupervisor.
 *
 * @example
 * ```ts
 * const source: ReportingSource = app.stateOf<TaskSupervisor>("jobs")!;
 * ```
 */
export interface ReportingSource {
  readonly name: string;
  on: EventEmitter<SupervisorEvents>["on"];
  off: EventEmitter<SupervisorEvents>["off"];
}

const CAUSE_DEPTH = 5;
const REPORT_KINDS: readonly unknown[] = ["child-terminated", "child-restarted", "gave-up"];

/**
 * Report `sup`'s faults, restarts and give-up to `logger` until the returned
 * function is called. Listens to the public events of this one supervisor
 * (nested supervisors are attached on their own).
 *
 * @throws {BackplaneError} `invalid-argument` when `sup` has no events or `logger` is neither a function nor an object with an `error` method.
 * @example
 * ```ts
 * const detach = attachCrashReports(app, console);
 * // =SUPERVISOR REPORT==== 2026-12-02T04:05:06.789Z ===
 * //     supervisor: app
 * //     context:    child_terminated
 * //     child:      db (device #12, ran 1.20 s)
 * //     reason:     error: connection reset by peer
 * //     Error: connection reset by peer
 * //         at …
 * detach();
 * ```
 */
export function attachCrashReports(sup: ReportingSource, logger: CrashLogger, options: CrashReportOptions = {}): () => void {
  if (typeof sup !== "object" || sup === null || typeof sup.on !== "function" || typeof sup.off !== "function") {
    throw new BackplaneError("invalid-argument", `attachCrashReports takes a Supervisor, DynamicSupervisor or TaskSupervisor, not ${describeValue(sup)}`);
  }
  if (typeof logger !== "function" && (typeof logger !== "object" || logger === null || typeof logger.error !== "function")) {
    throw new BackplaneError("invalid-argument", "logger must be a function or a console-shaped object with an error method");
  }
  const label = options.label ?? sup.name;
  const stackLines = options.stackLines ?? 12;
  const deliver = (report: CrashReport): void => {
    try {
      const text = formatCrashReport(report, { stackLines });
      if (typeof logger === "function") logger(text, report);
      else logTo(logger, report.level, text);
    } catch (error) {
      reportListenerError(sup, "the crash-report logger", error);
    }
  };
  const onExited = (e: ChildExitedEvent): void => {
    if (e.fault === undefined) return;
    deliver({ kind: "child-terminated", level: e.requested ? "warn" : "error", supervisor: label, child: e.id, device: e.device, fault: e.fault, requested: e.requested, uptime: e.uptime, at: e.at });
  };
  const onRestarted = (e: ChildRestartedEvent): void => {
    const intensity = (sup as { intensity?: { used: number; allowed: number; period: number } }).intensity;
    deliver({ kind: "child-restarted", level: "info", supervisor: label, child: e.id, device: e.device, restarts: e.restarts, ...(intensity !== undefined && { intensity }), delay: e.delay, at: e.at });
  };
  const onGaveUp = (e: RestartIntensityExceededEvent): void => {
    deliver({ kind: "gave-up", level: "error", supervisor: label, child: e.id, intensity: e.intensity, period: e.period, at: e.at });
  };
  sup.on("child-exited", onExited);
  sup.on("child-restarted", onRestarted);
  sup.on("restart-intensity-exceeded", onGaveUp);
  let attached = true;
  return () => {
    if (!attached) return;
    attached = false;
    sup.off("child-exited", onExited);
    sup.off("child-restarted", onRestarted);
    sup.off("restart-intensity-exceeded", onGaveUp);
  };
}

function logTo(logger: Exclude<CrashLogger, (...a: never[]) => unknown>, level: CrashReportLevel, text: string): void {
  if (level === "info" && typeof logger.info === "function") logger.info(text);
  else if (level !== "error" && typeof logger.warn === "function") logger.warn(text);
  else logger.error(text);
}

/**
 * A crash report as the text a person reads: a SASL-style header with the
 * time, then one field per line, then the cause's stack (and its causes).
 *
 * @example
 * ```ts
 * sup.on("child-exited", (e) => {
 *   if (e.fault) console.error(formatCrashReport({ kind: "child-terminated", level: "error", supervisor: sup.name, child: e.id, device: e.device, fault: e.fault, requested: e.requested, uptime: e.uptime, at: e.at }));
 * });
 * ```
 */
export function formatCrashReport(report: CrashReport, options: { stackLines?: number } = {}): string {
  if (typeof report !== "object" || report === null || !REPORT_KINDS.includes(report.kind) || typeof report.at !== "number" || !Number.isFinite(report.at)) {
    throw new BackplaneError("invalid-argument", `formatCrashReport takes a CrashReport (kind child-terminated, child-restarted or gave-up, and a time), not ${describeValue(report)}`);
  }
  const stackLines = options.stackLines ?? 12;
  const lines = [`=SUPERVISOR REPORT==== ${new Date(report.at).toISOString()} ===`, field("supervisor", report.supervisor)];
  switch (report.kind) {
    case "child-terminated":
      lines.push(field("context", report.requested ? "shutdown_error (it was being stopped)" : "child_terminated"));
      lines.push(field("child", `${report.child} (device #${report.device}, ran ${seconds(report.uptime)})`));
      lines.push(field("reason", faultLine(report.fault)));
      if (report.fault.kind === "error") lines.push(...stackOf(report.fault.error, stackLines));
      break;
    case "child-restarted": {
      lines.push(field("context", "child_restarted"));
      lines.push(field("child", `${report.child} (device #${report.device}, restart #${report.restarts} of this child${report.delay > 0 ? `, after ${Math.round(report.delay)} ms backoff` : ""})`));
      const i = report.intensity;
      if (i !== undefined) lines.push(field("intensity", `restart ${i.used} of ${i.allowed} allowed within ${seconds(i.period)}`));
      break;
    }
    case "gave-up":
      lines.push(field("context", "shutdown (reached_max_restart_intensity)"));
      lines.push(field("child", `${report.child} (its restart was one too many)`));
      lines.push(field("intensity", `more than ${report.intensity} restart${report.intensity === 1 ? "" : "s"} within ${seconds(report.period)}`));
      lines.push(field("action", "stopping every child, then ending with a fault for its parent to handle"));
      break;
  }
  return lines.join("\n");
}

function field(name: string, value: string): string {
  return `    ${`${name}:`.padEnd(12)}${value}`;
}

function seconds(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

function faultLine(fault: Fault): string {
  switch (fault.kind) {
    case "error":
      return `error: ${messageOf(fault.error)}`;
    case "cascade":
      return `cascade: device #${fault.from}, which it was linked to, failed`;
    case "timeout":
      return "timeout: its managed work overran its deadline";
    case "killed":
      return "killed: it did not stop within its shutdown grace period";
    case "drop":
      return "drop: its device was disposed or collected without disconnecting";
    default: {
      // Kinds added later (the cluster's noconnection) still read well.
      const other = fault as { kind: string; node?: unknown };
      return other.kind === "noconnection" ? `noconnection: its node ${String(other.node)} was lost` : other.kind;
    }
  }
}

function messageOf(error: unknown): string {
  if (typeof error === "string") return error;
  try {
    return error instanceof Error ? String(error.message) : String(error);
  } catch {
    return errorText(error); // a message getter or toString that throws: shown by its type, never thrown
  }
}

/** The error's stack, indented, then each `cause` in turn (bounded: cause chains can be cyclic). */
function stackOf(error: unknown, stackLines: number): string[] {
  const out: string[] = [];
  let current = error;
  for (let depth = 0; depth < CAUSE_DEPTH && current !== undefined; depth++) {
    const head = depth === 0 ? "" : "caused by: ";
    if (current instanceof Error) {
      const stack = typeof current.stack === "string" && stackLines > 0 ? current.stack.split("\n") : [`${current.name}: ${current.message}`];
      const [first = "", ...frames] = stack;
      out.push(`    ${head}${first}`);
      for (const frame of frames.slice(0, stackLines)) out.push(`    ${frame.trimStart().startsWith("at ") ? `    ${frame.trim()}` : frame}`);
      if (frames.length > stackLines) out.push(`        … ${frames.length - stackLines} more`);
      current = (current as { cause?: unknown }).cause;
    } else {
      if (depth > 0) out.push(`    ${head}${messageOf(current)}`);
      break;
    }
  }
  return out;
}
