/**
 * Property: under random crashes and random failing restarts (an init that
 * throws), with any strategy and backoff, once the supervisor is quiet
 * (no timer pending) every child it lists as running has exactly one live
 * device — the one it reports — and every other child none; either all
 * children it keeps are running again or it gave up with
 * `intensity-exceeded`; its intensity never counts more than it allows;
 * and after stop() nothing is left: no live device, no timer.
 */
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type ChildSpec, type Device, type Strategy, Supervisor } from "../../src/index.js";

afterEach(() => {
  vi.useRealTimers();
});

const scenario = fc.record({
  strategy: fc.constantFrom<Strategy>("one-for-one", "one-for-all", "rest-for-one"),
  size: fc.integer({ min: 1, max: 5 }),
  intensity: fc.integer({ min: 0, max: 8 }),
  backoff: fc.option(fc.integer({ min: 1, max: 500 }), { nil: undefined }),
  withInit: fc.boolean(),
  /** For each step: which child crashes, and how many of the next inits fail. */
  steps: fc.array(fc.record({ child: fc.nat(4), failNext: fc.integer({ min: 0, max: 3 }) }), { minLength: 1, maxLength: 12 }),
});

describe("supervisor lifecycle (property)", () => {
  it("quiet supervisors list exactly the live children; restarts stay within the intensity; nothing outlives stop()", async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async ({ strategy, size, intensity, backoff, withInit, steps }) => {
        vi.useFakeTimers();
        try {
          let failing = 0;
          const devices = new Map<string, Device[]>();
          const crashers = new Map<string, (e: Error) => void>();
          const spec = (id: string): ChildSpec => ({
            id,
            ...(withInit && {
              init: () => {
                if (failing > 0) {
                  failing--;
                  throw new Error(`${id} cannot start`);
                }
              },
            }),
            run: (ctx) =>
              new Promise((resolve, reject) => {
                (devices.get(id) ?? devices.set(id, []).get(id)!).push(ctx.device);
                crashers.set(id, reject);
                ctx.signal.addEventListener("abort", () => resolve(undefined));
              }),
          });
          const ids = Array.from({ length: size }, (_, i) => `c${i}`);
          const sup = new Supervisor({ strategy, intensity, period: 1e9, ...(backoff !== undefined && { backoff: { min: backoff, max: backoff * 4 } }), children: ids.map(spec) });
          await sup.start();
          let gaveUp = false;
          sup.on("restart-intensity-exceeded", () => (gaveUp = true));

          for (const step of steps) {
            const id = ids[step.child % size]!;
            const info = sup.whichChildren().find((c) => c.id === id);
            if (info?.status !== "running" || gaveUp) continue;
            failing = withInit ? step.failNext : 0;
            crashers.get(id)!(new Error(`${id} crashed`));
            await vi.runAllTimersAsync(); // every delay, retry turn and reaction, until quiet
            expect(sup.intensity.used).toBeLessThanOrEqual(intensity + 1);
            if (gaveUp) {
              await expect(sup.done).rejects.toMatchObject({ code: "intensity-exceeded" });
              break;
            }
            for (const c of sup.whichChildren()) {
              const live = (devices.get(c.id) ?? []).filter((d) => d.isConnected);
              expect(c.status).toBe("running");
              expect(live).toHaveLength(1);
              expect(c.device).toBe(live[0]!.id);
            }
          }
          await sup.stop();
          expect(vi.getTimerCount()).toBe(0);
          for (const list of devices.values()) for (const d of list) expect(d.isConnected).toBe(false);
        } finally {
          vi.useRealTimers();
        }
      }),
      { numRuns: 120 },
    );
  });
});
