import { describe, expect, it } from "vitest";
import { addRestart, backoffDelay, decideExit } from "../../src/supervisor/restart.js";
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
    let h: number[] = [];
    const step = (now: number) => {
      const r = addRestart(h, now, 2, 1000);
      h = r.history;
      return r.exceeded;
    };
    expect(step(0)).toBe(false);
    expect(step(500)).toBe(false);
    expect(step(999)).toBe(true); // three within 1000 ms
    h = [];
    // A restart exactly `period` old still counts (OTP's add_restart keeps R >= Now - Period).
    expect([step(0), step(600), step(1000)]).toEqual([false, false, true]);
    h = [];
    expect([step(0), step(600), step(1001), step(1600)]).toEqual([false, false, false, true]);
    expect(h).toEqual([600, 1001, 1600]); // 0 left the window after 1000; 600 is exactly 1000 old at 1600
  });

  it("backoff: min doubling to max, jitter only upwards", () => {
    const b = { min: 100, max: 1000 };
    expect([0, 1, 2, 3, 4, 60].map((l) => backoffDelay(b, l, 0))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay({ ...b, jitter: 0.5 }, 0, 0.999)).toBeCloseTo(149.95);
    expect(backoffDelay({ ...b, jitter: 0.5 }, 0, 0)).toBe(100);
  });
});
