import { describe, expect, it } from "vitest";
import { backoffDelay, decideExit, RestartWindow } from "../../src/supervisor/restart.js";
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
