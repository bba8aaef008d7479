import type { DeviceId } from "../core/device-id.js";
import type { Fault } from "../core/fault.js";
import type { ExecutionRecord } from "../core/records.js";

/** A child's run began (first start, restart, or `startChild`/`restartChild`). */
export interface ChildStartedEvent {
  id: string;
  device: DeviceId;
  restarts: number;
  /** `Date.now()` when it started. */
  at: number;
}

/** A child's run ended. `requested` is true when the supervisor stopped it (terminate, stop, a strategy). */
export interface ChildExitedEvent {
  id: string;
  device: DeviceId;
  /** Undefined for a clean exit. */
  fault: Fault | undefined;
  requested: boolean;
  at: number;
  /** ms it ran. */
  uptime: number;
}

/** A child was started again after a failure (after its backoff delay, if any). */
export interface ChildRestartedEvent {
  id: string;
  device: DeviceId;
  restarts: number;
  at: number;
  /** ms waited between the decision to restart and this start. */
  delay: number;
}

/** More restarts than `intensity` within `period`: the supervisor is giving up. */
export interface RestartIntensityExceededEvent {
  /** The child whose restart was one too many. */
  id: string;
  /** The supervisor's device. */
  device: DeviceId;
  intensity: number;
  period: number;
  at: number;
}

/** Why a supervisor ended. */
export type ShutdownReason = "stop" | "shutdown-request" | "auto-shutdown" | "intensity-exceeded" | "start-failed" | "cascade" | "killed";

/** The supervisor has stopped all its children and ended. */
export interface ShutdownEvent {
  /** The supervisor's name (or `supervisor-<device id>`). */
  id: string;
  /** The supervisor's device. */
  device: DeviceId;
  reason: ShutdownReason;
  /** Undefined for a normal end. */
  fault: Fault | undefined;
  at: number;
}

/** The typed event map of a {@link Supervisor} (eventemitter3). */
export interface SupervisorEvents {
  "child-started": [event: ChildStartedEvent];
  "child-exited": [event: ChildExitedEvent];
  "child-restarted": [event: ChildRestartedEvent];
  "restart-intensity-exceeded": [event: RestartIntensityExceededEvent];
  shutdown: [event: ShutdownEvent];
  /** One per child run that ended (also kept in `records()`). */
  record: [record: ExecutionRecord];
}
