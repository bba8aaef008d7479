/**
 * `backplane/otel`: execution records as OpenTelemetry spans, and the
 * supervision tree's vital signs as metrics, through `@opentelemetry/api`
 * only (an optional peer dependency: the root package never imports it).
 *
 * Records are complete when they are emitted (a run that ended, with its
 * start and duration), so each becomes one span started and ended at once
 * with the record's own timestamps. They are roots of their own traces:
 * the context active when a record is emitted belongs to whatever code
 * happened to end the run, not to the run itself.
 *
 * See docs/observer.md for the mapping (span names, attributes, metrics).
 */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { type Attributes, metrics, type MeterProvider, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type TracerProvider } from "@opentelemetry/api";
import { type ChannelMessage, EVENTS_CHANNEL } from "../core/emitter.js";
import { BackplaneError } from "../core/error.js";
import type { Fault } from "../core/fault.js";
import { type ExecutionRecord, runRecords } from "../core/records.js";
import { describeValue } from "../core/timer.js";
import { describeFault, snapshot, type TreeNode } from "../supervisor/dump.js";
import type { ChildRestartedEvent, RestartIntensityExceededEvent } from "../supervisor/events.js";
import { Supervisor } from "../supervisor/supervisor.js";
import { TaskSupervisor } from "../supervisor/task.js";
import { Executor } from "../isolation/executor.js";
import { Server } from "../calls/server.js";

/**
 * The instrumentation scope name tracers and meters are created under.
 *
 * @example
 * ```ts
 * const spans = exporter.getFinishedSpans().filter((s) => s.instrumentationScope.name === INSTRUMENTATION_NAME);
 * ```
 */
export const INSTRUMENTATION_NAME = "backplane";

/**
 * What a record stands for, and the span's operation name.
 *
 * @example
 * ```ts
 * const op = span.attributes["backplane.operation"] as Operation; // "run" | "execute" | "call" | "manage"
 * ```
 */
export type Operation = "run" | "execute" | "call" | "manage";

/**
 * Anything that emits `record` events (an Executor, a Server, a supervisor) and lets the listener go again.
 *
 * @example
 * ```ts
 * const sources: RecordSource[] = [executor, server];
 * ```
 */
export interface RecordSource {
  on(event: "record", listener: (record: ExecutionRecord) => void): unknown;
  off(event: "record", listener: (record: ExecutionRecord) => void): unknown;
}

/**
 * Options of {@link instrument}.
 *
 * @example
 * ```ts
 * const stop = instrument({ roots: [app], sources: [executor, server], tracerProvider, meterProvider });
 * ```
 */
export interface InstrumentOptions {
  /** Default: the global one (`trace.getTracerProvider()`). */
  tracerProvider?: TracerProvider;
  /** Default: the global one (`metrics.getMeterProvider()`). */
  meterProvider?: MeterProvider;
  /** Supervision trees whose mailbox lengths `backplane.mailbox.length` reports (walked at each collection). */
  roots?: (Supervisor | TaskSupervisor)[];
  /**
   * Emitters to listen to directly, for those that do not publish on the
   * `backplane:events` diagnostics channel (Executor and Server, today).
   * A source also seen on the channel is counted once.
   */
  sources?: RecordSource[];
  /** Also one `manage` span per managed run anywhere in the process (`runRecords`; supervised runs then appear twice: as `run` and as `manage`). Default false. */
  runs?: boolean;
  /** Turn spans off (metrics only). Default true. */
  spans?: boolean;
}

/**
 * Start exporting backplane's execution records as spans and its restarts,
 * faults, run durations and mailbox lengths as metrics. Every Supervisor,
 * DynamicSupervisor and TaskSupervisor in the process is seen through the
 * `backplane:events` diagnostics channel (no listener is attached to them);
 * Executors and Servers through `sources`. Returns the function that stops
 * it all (unsubscribes, removes listeners, drops the gauge's callback).
 *
 * @throws {BackplaneError} `invalid-argument` for a bad option.
 * @example
 * ```ts
 * import { instrument } from "backplane/otel";
 * const uninstrument = instrument({ roots: [app], sources: [executor] });
 * …
 * uninstrument();
 * ```
 */
export function instrument(options: InstrumentOptions = {}): () => void {
  if (typeof options !== "object" || options === null) throw bad(`options must be an object, not ${describeValue(options)}`);
  const { roots = [], sources = [], runs = false, spans = true } = options;
  if (!Array.isArray(roots) || !roots.every((r) => r instanceof Supervisor || r instanceof TaskSupervisor)) throw bad("roots must be an array of Supervisor, DynamicSupervisor or TaskSupervisor");
  if (!Array.isArray(sources) || !sources.every((s) => typeof s === "object" && s !== null && typeof s.on === "function" && typeof s.off === "function")) {
    throw bad("sources must be an array of emitters with on/off (an Executor, a Server)");
  }
  if (typeof runs !== "boolean") throw bad(`runs must be true or false, not ${describeValue(runs)}`);
  if (typeof spans !== "boolean") throw bad(`spans must be true or false, not ${describeValue(spans)}`);

  const tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(INSTRUMENTATION_NAME);
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(INSTRUMENTATION_NAME);
  const restarts = meter.createCounter("backplane.restarts", { description: "Children restarted by their supervisor after a failure", unit: "{restart}" });
  const faults = meter.createCounter("backplane.faults", { description: "Runs, executions and calls that ended with a fault, by kind (error.type)", unit: "{fault}" });
  const gaveUp = meter.createCounter("backplane.intensity_exceeded", { description: "Supervisors that gave up: more restarts than their intensity allows", unit: "{supervisor}" });
  const durations = meter.createHistogram("backplane.run.duration", { description: "Duration of runs, executions and calls", unit: "s" });
  const mailbox = meter.createObservableGauge("backplane.mailbox.length", { description: "Messages waiting in a device's mailbox (supervisors and running children of the roots)", unit: "{message}" });

  // Listened to directly, so skipped on the channel (runRecords publishes there too: its runs are "manage" spans, only with `runs`).
  const explicit = new Set<object>([...sources, runRecords]);
  const onRecord = (source: object | undefined, operation: Operation, record: ExecutionRecord): void => {
    try {
      const sourceName = nameOf(source);
      const attributes: Attributes = { "backplane.operation": operation, "backplane.outcome": record.outcome };
      if (sourceName !== undefined) attributes["backplane.source"] = sourceName;
      const errorType = errorTypeOf(record.fault);
      if (errorType !== undefined) {
        attributes["error.type"] = errorType;
        faults.add(1, attributes);
      }
      durations.record(record.duration / 1000, attributes);
      if (spans) span(tracer, operation, sourceName, record, errorType);
    } catch {
      // A broken SDK or exporter must not reach the code that emitted the record.
    }
  };
  // A channel subscriber that throws is an uncaught exception in the app: everything, the destructuring included, is inside the try.
  const onChannel = (message: unknown): void => {
    try {
      const { source, event, payload } = message as ChannelMessage;
      if (explicit.has(source)) return;
      if (event === "record") onRecord(source, operationOf(source), payload as ExecutionRecord);
      else if (event === "child-restarted") restarts.add(1, { "backplane.source": nameOf(source) ?? "", "backplane.child": (payload as ChildRestartedEvent).id });
      else if (event === "restart-intensity-exceeded") gaveUp.add(1, { "backplane.source": nameOf(source) ?? "", "backplane.child": (payload as RestartIntensityExceededEvent).id });
    } catch {
      // as above
    }
  };
  subscribe(EVENTS_CHANNEL, onChannel);

  const detach: (() => void)[] = [() => unsubscribe(EVENTS_CHANNEL, onChannel)];
  const undoAll = (): void => {
    for (const undo of detach) {
      try {
        undo();
      } catch {
        // keep undoing the rest
      }
    }
  };
  // Everything attached so far is removed again if a later step throws (a meter whose addCallback throws).
  try {
    for (const source of sources) {
      const operation = operationOf(source);
      const listener = (record: ExecutionRecord) => onRecord(source, operation, record);
      source.on("record", listener);
      detach.push(() => source.off("record", listener));
      const events = source as Partial<Pick<Supervisor, "on" | "off">>;
      if (source instanceof Supervisor || source instanceof TaskSupervisor) {
        const restarted = (e: ChildRestartedEvent) => restarts.add(1, { "backplane.source": source.name, "backplane.child": e.id });
        const exceeded = (e: RestartIntensityExceededEvent) => gaveUp.add(1, { "backplane.source": source.name, "backplane.child": e.id });
        events.on?.("child-restarted", restarted);
        events.on?.("restart-intensity-exceeded", exceeded);
        detach.push(() => {
          events.off?.("child-restarted", restarted);
          events.off?.("restart-intensity-exceeded", exceeded);
        });
      }
    }
    if (runs) {
      const onRun = (record: ExecutionRecord) => onRecord(undefined, "manage", record);
      runRecords.on("record", onRun);
      detach.push(() => runRecords.off("record", onRun));
    }
    if (roots.length > 0) {
      const observeMailboxes = (result: { observe(value: number, attributes?: Attributes): void }) => {
        for (const root of roots) {
          try {
            walk(snapshot(root), root.name, (path, length) => result.observe(length, { "backplane.path": path }));
          } catch {
            // a tree mid-change: the next collection reads it
          }
        }
      };
      mailbox.addCallback(observeMailboxes);
      detach.push(() => mailbox.removeCallback(observeMailboxes));
    }
  } catch (error) {
    undoAll();
    throw error;
  }

  let attached = true;
  return () => {
    if (!attached) return;
    attached = false;
    undoAll();
  };
}

function span(tracer: ReturnType<TracerProvider["getTracer"]>, operation: Operation, sourceName: string | undefined, record: ExecutionRecord, errorType: string | undefined): void {
  const attributes: Attributes = {
    "backplane.operation": operation,
    "backplane.name": record.name,
    "backplane.record.id": record.id,
    "backplane.outcome": record.outcome,
  };
  if (sourceName !== undefined) attributes["backplane.source"] = sourceName;
  if (record.version !== undefined) attributes["backplane.version"] = record.version;
  if (errorType !== undefined) attributes["error.type"] = errorType;
  const s = tracer.startSpan(`${operation} ${record.name}`, { kind: SpanKind.INTERNAL, startTime: record.start, attributes }, ROOT_CONTEXT);
  if (errorType !== undefined) {
    const fault = record.fault as Fault;
    if (fault.kind === "error") {
      const error = fault.error;
      s.recordException(error instanceof Error ? error : { name: "Error", message: describeFault(fault) }, record.start + record.duration);
    }
    s.setStatus({ code: SpanStatusCode.ERROR, message: describeFault(fault) });
  }
  s.end(record.start + record.duration);
}

/** The fault kind, as `error.type`; nothing for a clean end (a requested shutdown is not an error). */
function errorTypeOf(fault: Fault | undefined): string | undefined {
  return fault === undefined ? undefined : fault.kind;
}

function operationOf(source: unknown): Operation {
  if (source instanceof Executor) return "execute";
  if (source instanceof Server) return "call";
  return "run";
}

function nameOf(source: unknown): string | undefined {
  const name = (source as { name?: unknown } | undefined)?.name;
  return typeof name === "string" ? name : undefined;
}

function walk(node: TreeNode, path: string, visit: (path: string, length: number) => void): void {
  if (node.mailbox !== undefined) visit(path, node.mailbox);
  for (const child of node.children) walk(child, `${path}/${child.id}`, visit);
}

function bad(message: string): BackplaneError<"invalid-argument"> {
  return new BackplaneError("invalid-argument", message);
}
