/**
 * `backplane/observer`: a live view of running supervision trees in the
 * browser (`observe`), and readable crash reports (`attachCrashReports`).
 * See docs/observer.md.
 */
export { type ObserveOptions, type Observer, ObserverError, type ObserverErrorCode, observe } from "./server.js";
export type { NodeView, Observable, RecordView } from "./model.js";
export { attachCrashReports, type CrashLogger, type CrashReport, type CrashReportLevel, type CrashReportOptions, formatCrashReport, type ReportingSource } from "../supervisor/crash-report.js";
