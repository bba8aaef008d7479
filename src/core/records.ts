import { Emitter, eventsWatched } from "./emitter.js";
import type { Fault } from "./fault.js";

/** How a run, an execution or a call ended. */
export type Outcome = "ok" | "error" | "timeout" | "killed" | "cascade" | "shutdown";

/**
 * One observed run: a supervised child's run, an executor's execution or a
 * server call. Emitted as the `record` event; supervisors also keep the last
 * N in a ring buffer (`records()`).
 *
 * @example
 * ```ts
 * sup.on("record", (r) => metrics.histogram(`run.${r.name}`, r.duration, { outcome: r.outcome }));
 * ```
 */
export interface ExecutionRecord {
  /** Unique per process. */
  id: number;
  /** The child id, the executor's name, or the server's name. */
  name: string;
  /** The module version an executor ran the call on, when it was given one. */
  version?: string;
  /** `Date.now()` at the start. */
  start: number;
  /** ms. */
  duration: number;
  outcome: Outcome;
  fault?: Fault;
}

let lastRecord = 0;

/** @internal */
export function recordId(): number {
  return ++lastRecord;
}

/** @internal The outcome a fault stands for. */
export function outcomeOf(fault: Fault | undefined): Outcome {
  if (fault === undefined) return "ok";
  switch (fault.kind) {
    case "error":
    case "drop":
    case "noconnection":
      return "error";
    case "timeout":
      return "timeout";
    case "killed":
      return "killed";
    case "cascade":
      return "cascade";
  }
}

/** @internal A fixed-size buffer of the most recent records. */
export class RingBuffer<T> {
  readonly #items: (T | undefined)[];
  #next = 0;
  #size = 0;
  constructor(readonly capacity: number) {
    this.#items = new Array(capacity);
  }
  push(item: T): void {
    if (this.capacity === 0) return;
    this.#items[this.#next] = item;
    this.#next = (this.#next + 1) % this.capacity;
    if (this.#size < this.capacity) this.#size++;
  }
  /** Oldest first. */
  toArray(): T[] {
    const out: T[] = [];
    const start = (this.#next - this.#size + this.capacity) % this.capacity;
    for (let i = 0; i < this.#size; i++) out.push(this.#items[(start + i) % this.capacity] as T);
    return out;
  }
}

/** Events of {@link runRecords}. */
export interface RunRecordEvents {
  record: [record: ExecutionRecord];
}

/**
 * Every managed run (`device.manage` / `partManage`, anywhere in the
 * process) as an {@link ExecutionRecord}, while someone listens: with no
 * listener, a run pays one check and allocates nothing. `name` is the
 * device's name (or `device-<id>`).
 *
 * @example
 * ```ts
 * runRecords.on("record", (r) => log.info({ run: r.name, ms: r.duration, outcome: r.outcome }));
 * ```
 */
export const runRecords: Emitter<RunRecordEvents> = new Emitter<RunRecordEvents>();

/** @internal True while someone listens to {@link runRecords}. */
export function recordingRuns(): boolean {
  // Not wants(): that also tells change watchers, and a managed run is no change of any observed tree.
  return eventsWatched() || runRecords.listenerCount("record") > 0;
}
