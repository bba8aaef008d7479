import { afterEach, describe, expect, it, vi } from "vitest";
import { clearAnyTimeout, describeValue, durationProblem, LongTimer, MAX_TIMER_MS, setAnyTimeout } from "../../src/core/timer.js";

afterEach(() => {
  vi.useRealTimers();
});

describe("setAnyTimeout: any length, never early", () => {
  for (const ms of [0, 5, MAX_TIMER_MS, MAX_TIMER_MS + 1, 2 ** 31, 3 * MAX_TIMER_MS + 7, 30 * 24 * 3_600_000]) {
    it(`${ms} ms fires once, exactly then`, () => {
      vi.useFakeTimers();
      const fire = vi.fn();
      setAnyTimeout(fire, ms, "arg");
      if (ms > 0) {
        vi.advanceTimersByTime(ms - 1);
        expect(fire).not.toHaveBeenCalled();
      }
      vi.advanceTimersByTime(1);
      expect(fire).toHaveBeenCalledTimes(1);
      expect(fire).toHaveBeenCalledWith("arg");
      vi.advanceTimersByTime(10 * MAX_TIMER_MS);
      expect(fire).toHaveBeenCalledTimes(1);
      expect(vi.getTimerCount()).toBe(0);
    });
  }

  it("Infinity holds no timer and never fires", () => {
    vi.useFakeTimers();
    const fire = vi.fn();
    expect(setAnyTimeout(fire, Number.POSITIVE_INFINITY)).toBeUndefined();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(100 * MAX_TIMER_MS);
    expect(fire).not.toHaveBeenCalled();
  });

  it("clearAnyTimeout cancels a plain or a chained timer, mid-chain too, and takes undefined", () => {
    vi.useFakeTimers();
    const fire = vi.fn();
    const short = setAnyTimeout(fire, 10);
    const long = setAnyTimeout(fire, 2 * MAX_TIMER_MS + 5);
    expect(long).toBeInstanceOf(LongTimer);
    clearAnyTimeout(short);
    vi.advanceTimersByTime(MAX_TIMER_MS + 1); // the chained one is in its second step now
    clearAnyTimeout(long);
    clearAnyTimeout(long);
    clearAnyTimeout(undefined);
    vi.advanceTimersByTime(10 * MAX_TIMER_MS);
    expect(fire).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("durationProblem: the one duration check", () => {
  it("accepts 0, finite ms and Infinity", () => {
    for (const ok of [0, 1.5, MAX_TIMER_MS + 1, Number.POSITIVE_INFINITY]) expect(durationProblem("timeout", ok)).toBeUndefined();
  });

  it("names the option and shows the bad value without calling user code", () => {
    const hostile = {
      toString() {
        throw new Error("never called");
      },
    };
    for (const bad of [Number.NaN, -1, Number.NEGATIVE_INFINITY, "5", null, undefined, hostile, [1], () => 1, 1n]) {
      const problem = durationProblem("grace", bad);
      expect(problem).toMatch(/^grace must be a number of ms ≥ 0 \(Infinity for none\), not /);
    }
    expect(describeValue("x".repeat(100))).toBe(`"${"x".repeat(40)}…"`);
  });
});
