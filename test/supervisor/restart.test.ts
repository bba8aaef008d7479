import { describe, expect, it } from "vitest";
import { backoffDelay, decideExit, planExit, planRetry, RestartWindow, restartGroup } from "../../src/supervisor/restart.js";
import { Fault } from "../../src/index.js";

describe("restart decisions (pure)", () => {
  it("restart type × exit: permanent always, transient only on a fault, temporary never", () => {
    expect(decideExit("permanent", undefined)).toBe("restart");
    expect(decideExit("permanent", Fault.error("x"))).toBe("restart");
    expect(decideExit("transient", undefined)).toBe("keep");
    expect(decideExit("transient", Fault.killed)).toBe("restart");
    expect(decideExit("temporary", Fault.error("x"))).toBe("delete");
    expect(decideExit("temporary", undefined)).toBe("delete");
  });

  it("intensity: more than `intensity` restarts inside the sliding `period` is exceeded", () => {
    const w = new RestartWindow(2, 1000);
    expect(w.add(0)).toBe(false);
    expect(w.add(500)).toBe(false);
    expect(w.add(999)).toBe(true); // three within 1000 ms
    // A restart exactly `period` old still counts (OTP's add_restart keeps R >= Now - Period).
    const exact = new RestartWindow(2, 1000);
    expect([exact.add(0), exact.add(600), exact.add(1000)]).toEqual([false, false, true]);
    const sliding = new RestartWindow(2, 1000);
    expect([sliding.add(0), sliding.add(600), sliding.add(1001), sliding.add(1600)]).toEqual([false, false, false, true]);
    expect(sliding.count).toBe(3); // 0 left the window after 1000; 600 is exactly 1000 old at 1600
  });

  it("intensity: a long run of restarts keeps only the window (it compacts as it goes)", () => {
    const w = new RestartWindow(1_000_000, 10);
    for (let t = 0; t < 100_000; t++) w.add(t);
    expect(w.count).toBe(11); // the restarts at most 10 ms old
  });

  it("backoff: min doubling to max, jitter only upwards", () => {
    const b = { min: 100, max: 1000 };
    expect([0, 1, 2, 3, 4, 60].map((l) => backoffDelay(b, l, 0))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay({ ...b, jitter: 0.5 }, 0, 0.999)).toBeCloseTo(149.95);
    expect(backoffDelay({ ...b, jitter: 0.5 }, 0, 0)).toBe(100);
  });
});

describe("the exit plan (pure planExit)", () => {
  const base = {
    fault: Fault.error("x") as Fault | undefined,
    restart: "permanent" as const,
    significant: false,
    uptime: 10,
    backoffLevel: 0,
    autoShutdown: "never" as const,
    otherSignificantUp: false,
    forgetStopped: false,
    restartsInWindow: 0,
    intensity: 3,
    period: 5000,
    backoff: undefined,
    random: 0,
  };

  it("restart type × exit: restart, keep, or forget (a DynamicSupervisor forgets what it keeps)", () => {
    expect(planExit(base)).toEqual({ kind: "restart", delay: 0, level: 0 });
    expect(planExit({ ...base, restart: "transient", fault: undefined })).toEqual({ kind: "keep" });
    expect(planExit({ ...base, restart: "transient", fault: undefined, forgetStopped: true })).toEqual({ kind: "forget" });
    expect(planExit({ ...base, restart: "temporary" })).toEqual({ kind: "forget" });
  });

  it("intensity is counted before the restart: the one that would make intensity + 1 gives up", () => {
    expect(planExit({ ...base, restartsInWindow: 2 })).toMatchObject({ kind: "restart" });
    expect(planExit({ ...base, restartsInWindow: 3 })).toEqual({ kind: "give-up" });
    expect(planExit({ ...base, intensity: 0 })).toEqual({ kind: "give-up" });
  });

  it("significant children: any-significant shuts down at once; all-significant only when no other is up", () => {
    const sig = { ...base, restart: "transient" as const, fault: undefined, significant: true };
    expect(planExit({ ...sig, autoShutdown: "any-significant" })).toEqual({ kind: "auto-shutdown", forget: false });
    expect(planExit({ ...sig, autoShutdown: "all-significant", otherSignificantUp: true })).toEqual({ kind: "keep" });
    expect(planExit({ ...sig, autoShutdown: "all-significant" })).toEqual({ kind: "auto-shutdown", forget: false });
    expect(planExit({ ...sig, restart: "temporary", autoShutdown: "any-significant" })).toEqual({ kind: "auto-shutdown", forget: true });
    expect(planExit({ ...sig, fault: Fault.error("x"), autoShutdown: "any-significant" })).toMatchObject({ kind: "restart" });
  });

  it("backoff: the level grows per consecutive restart; a run longer than reset (default: period) starts again at min", () => {
    const backoff = { min: 100, max: 1000 };
    expect(planExit({ ...base, backoff, backoffLevel: 0 })).toEqual({ kind: "restart", delay: 100, level: 1 });
    expect(planExit({ ...base, backoff, backoffLevel: 3 })).toEqual({ kind: "restart", delay: 800, level: 4 });
    expect(planExit({ ...base, backoff, backoffLevel: 3, uptime: 5000 })).toEqual({ kind: "restart", delay: 100, level: 1 });
    expect(planExit({ ...base, backoff: { ...backoff, reset: 50 }, backoffLevel: 3, uptime: 60 })).toEqual({ kind: "restart", delay: 100, level: 1 });
  });

  it("a failed restart is retried (counted like any restart) or gives up", () => {
    expect(planRetry(0, 3, undefined, 0, 0)).toEqual({ kind: "restart", delay: 0, level: 0 });
    expect(planRetry(3, 3, undefined, 0, 0)).toEqual({ kind: "give-up" });
    expect(planRetry(1, 3, { min: 10, max: 15 }, 1, 0)).toEqual({ kind: "restart", delay: 15, level: 2 });
  });
});

describe("who restarts with a failed child (pure restartGroup)", () => {
  const down = [false, true, false, false]; // child 1 is stopped (terminated): not brought back
  it("one-for-one: only it", () => expect(restartGroup("one-for-one", down, 2)).toEqual([2]));
  it("one-for-all: every child that is not stopped, and it", () => expect(restartGroup("one-for-all", down, 2)).toEqual([0, 2, 3]));
  it("rest-for-one: it and those after it that are not stopped", () => expect(restartGroup("rest-for-one", down, 0)).toEqual([0, 2, 3]));
});
