import { describe, expect, it } from "vitest";
import { Supervisor } from "../../src/index.js";
import { attachCrashReports, type CrashReport, formatCrashReport } from "../../src/supervisor/crash-report.js";
import { LISTENER_WARNING } from "../../src/core/emitter.js";
import { next, worker } from "../supervisor/helpers.js";

/** A console-shaped logger that keeps what it is given, by level. */
function capture() {
  const lines: { level: string; text: string }[] = [];
  return {
    lines,
    logger: {
      error: (text: string) => lines.push({ level: "error", text }),
      warn: (text: string) => lines.push({ level: "warn", text }),
      info: (text: string) => lines.push({ level: "info", text }),
    },
  };
}

describe("crash reports", () => {
  it("a child that crashes: who, under which supervisor, the fault, the cause's stack; then its restart, n of the allowed intensity", async () => {
    const db = worker("db");
    const app = new Supervisor({ name: "app", intensity: 3, period: 5000, children: [db.spec] });
    const { lines, logger } = capture();
    attachCrashReports(app, logger);
    await app.start();
    const restarted = next(app, "child-restarted");
    const cause = new Error("socket hang up");
    db.current.crash(new Error("connection reset by peer", { cause }));
    await restarted;
    expect(lines.map((l) => l.level)).toEqual(["error", "info"]);
    const [crash, restart] = lines.map((l) => l.text);
    expect(crash).toMatch(/^=SUPERVISOR REPORT==== \d{4}-\d\d-\d\dT[\d:.]+Z ===$/m);
    expect(crash).toContain("    supervisor: app");
    expect(crash).toContain("    context:    child_terminated");
    expect(crash).toMatch(/child: {6}db \(device #\d+, ran \d+ ms\)/);
    expect(crash).toContain("    reason:     error: connection reset by peer");
    expect(crash).toContain("    Error: connection reset by peer");
    expect(crash).toMatch(/^ {8}at .*crash-report\.test\.ts/m); // the stack of what the child threw
    expect(crash).toContain("    caused by: Error: socket hang up");
    expect(restart).toContain("    context:    child_restarted");
    expect(restart).toContain("restart #1 of this child");
    expect(restart).toContain("    intensity:  restart 1 of 3 allowed within 5.00 s");
    await app.stop();
  });

  it("a supervisor that gives up: one report saying so, after the faults that led there", async () => {
    const db = worker("db");
    const app = new Supervisor({ name: "app", intensity: 0, children: [db.spec] });
    const { lines, logger } = capture();
    attachCrashReports(app, logger, { label: "root/app" });
    await app.start();
    const shutdown = next(app, "shutdown");
    db.current.crash(new Error("boom"));
    await shutdown;
    const gaveUp = lines.find((l) => l.text.includes("reached_max_restart_intensity"));
    expect(gaveUp?.level).toBe("error");
    expect(gaveUp?.text).toContain("    supervisor: root/app");
    expect(gaveUp?.text).toContain("    child:      db (its restart was one too many)");
    expect(gaveUp?.text).toContain("    intensity:  more than 0 restarts within 5.00 s");
    expect(lines[0]?.text).toContain("reason:     error: boom");
  });

  it("clean exits and requested stops are not reported; a kill after the grace period is a warning", async () => {
    const calm = worker("calm", { restart: "transient" });
    const stubborn = worker("stubborn", { stubborn: true, shutdown: 0 });
    const app = new Supervisor({ name: "app", children: [calm.spec, stubborn.spec] });
    const { lines, logger } = capture();
    attachCrashReports(app, logger);
    await app.start();
    const exited = next(app, "child-exited");
    calm.current.finish();
    await exited;
    await app.terminateChild("stubborn");
    expect(lines).toHaveLength(1);
    expect(lines[0]?.level).toBe("warn");
    expect(lines[0]?.text).toContain("context:    shutdown_error (it was being stopped)");
    expect(lines[0]?.text).toContain("reason:     killed: it did not stop within its shutdown grace period");
    await app.stop();
  });

  it("a function logger gets the text and the report as data", async () => {
    const db = worker("db");
    const app = new Supervisor({ name: "app", children: [db.spec] });
    const got: [string, CrashReport][] = [];
    attachCrashReports(app, (text, report) => got.push([text, report]));
    await app.start();
    const restarted = next(app, "child-restarted");
    db.current.crash(new Error("x"));
    await restarted;
    expect(got.map(([, r]) => r.kind)).toEqual(["child-terminated", "child-restarted"]);
    expect(got[0]?.[1]).toMatchObject({ kind: "child-terminated", supervisor: "app", child: "db", fault: { kind: "error" }, requested: false });
    expect(got[1]?.[1]).toMatchObject({ kind: "child-restarted", restarts: 1, intensity: { used: 1, allowed: 3, period: 5000 } });
    await app.stop();
  });

  it("a logger with only error receives every report; detaching stops them", async () => {
    const db = worker("db");
    const app = new Supervisor({ name: "app", children: [db.spec] });
    const texts: string[] = [];
    const detach = attachCrashReports(app, { error: (t: string) => texts.push(t) });
    await app.start();
    let restarted = next(app, "child-restarted");
    db.current.crash();
    await restarted;
    expect(texts).toHaveLength(2);
    detach();
    detach(); // twice is harmless
    restarted = next(app, "child-restarted");
    db.current.crash();
    await restarted;
    expect(texts).toHaveLength(2);
    await app.stop();
  });

  it("a logger that throws is reported as a warning and the supervisor still restarts the child", async () => {
    const db = worker("db");
    const app = new Supervisor({ name: "app", children: [db.spec] });
    attachCrashReports(app, () => {
      throw new Error("log sink is down");
    });
    const warned = new Promise<Error>((resolve) => {
      const on = (w: Error) => {
        if (w.name !== LISTENER_WARNING) return;
        process.off("warning", on);
        resolve(w);
      };
      process.on("warning", on);
    });
    await app.start();
    const restarted = next(app, "child-restarted");
    db.current.crash();
    await restarted;
    expect((await warned).message).toContain("the crash-report logger");
    expect(app.whichChildren()[0]).toMatchObject({ status: "running", restarts: 1 });
    await app.stop();
  });

  it("a bad logger is refused at once", () => {
    const app = new Supervisor({ name: "app" });
    expect(() => attachCrashReports(app, {} as never)).toThrow(expect.objectContaining({ code: "invalid-argument" }));
  });

  it("formats non-Error faults and causes without throwing", () => {
    const text = formatCrashReport({ kind: "child-terminated", level: "error", supervisor: "s", child: "c", device: 1, fault: { kind: "error", error: Object.create(null) }, requested: false, uptime: 1500, at: 0 });
    expect(text).toContain("reason:     error: [object Object]");
    expect(text).toContain("ran 1.50 s");
    const cycle = new Error("a");
    (cycle as { cause?: unknown }).cause = cycle;
    expect(formatCrashReport({ kind: "child-terminated", level: "error", supervisor: "s", child: "c", device: 1, fault: { kind: "error", error: cycle }, requested: false, uptime: 1, at: 0 }).match(/caused by/g)).toHaveLength(4);
    expect(formatCrashReport({ kind: "child-terminated", level: "error", supervisor: "s", child: "c", device: 1, fault: { kind: "cascade", from: 9 }, requested: false, uptime: 1, at: 0 })).toContain("cascade: device #9");
  });
});
