/**
 * Property: under random crash/exit schedules, strategies, restart types and
 * intensities, the supervisor does what a model of OTP's rules predicts; its
 * view (whichChildren) always matches reality (live devices); and after
 * stop() no timer is left and every device has ended.
 */
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type Restart, type Strategy, Supervisor } from "../../src/index.js";
import { worker } from "./helpers.js";

type Event = { kind: "crash" | "finish"; child: number } | { kind: "wait"; ms: number };

interface ModelChild {
  id: string;
  restart: Restart;
  status: "running" | "stopped" | "gone";
  restarts: number;
}

class Model {
  history: number[] = [];
  failed = false;
  constructor(
    readonly children: ModelChild[],
    readonly strategy: Strategy,
    readonly intensity: number,
    readonly period: number,
  ) {}

  exit(i: number, clean: boolean, now: number): void {
    const c = this.children[i]!;
    if (this.failed || c.status !== "running") return;
    const decision = c.restart === "permanent" ? "restart" : c.restart === "transient" ? (clean ? "keep" : "restart") : "delete";
    if (decision === "delete") {
      c.status = "gone";
      return;
    }
    if (decision === "keep") {
      c.status = "stopped";
      return;
    }
    this.history = this.history.filter((t) => now - t <= this.period);
    this.history.push(now);
    if (this.history.length > this.intensity) {
      this.failed = true;
      for (const x of this.children) if (x.status !== "gone") x.status = x.restart === "temporary" ? "gone" : "stopped";
      return;
    }
    const group = this.children.filter((x, j) => {
      if (j === i) return true;
      if (x.status !== "running") return false;
      return this.strategy === "one-for-all" || (this.strategy === "rest-for-one" && j > i);
    });
    for (const x of group) {
      if (x !== c && x.restart === "temporary") x.status = "gone";
      else x.restarts++;
    }
  }
}

const restartType = fc.constantFrom<Restart>("permanent", "transient", "temporary");
const scenario = fc.record({
  strategy: fc.constantFrom<Strategy>("one-for-one", "one-for-all", "rest-for-one"),
  types: fc.array(restartType, { minLength: 1, maxLength: 5 }),
  intensity: fc.integer({ min: 0, max: 6 }),
  period: fc.integer({ min: 1, max: 5000 }),
  events: fc.array(
    fc.oneof(
      fc.record({ kind: fc.constantFrom("crash" as const, "finish" as const), child: fc.nat(4) }),
      fc.record({ kind: fc.constant("wait" as const), ms: fc.integer({ min: 1, max: 3000 }) }),
    ),
    { maxLength: 25 },
  ),
});

afterEach(() => {
  vi.useRealTimers();
});

describe("supervisor restart rules (property)", () => {
  it("matches the model of OTP's rules; its view matches reality; nothing outlives stop()", async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async ({ strategy, types, intensity, period, events }) => {
        vi.useFakeTimers();
        try {
          const workers = types.map((restart, i) => worker(`c${i}`, { restart }));
          const model = new Model(
            types.map((restart, i) => ({ id: `c${i}`, restart, status: "running", restarts: 0 })),
            strategy,
            intensity,
            period,
          );
          const sup = new Supervisor({ strategy, intensity, period, children: workers.map((w) => w.spec) });
          await sup.start();

          const check = () => {
            const view = sup.whichChildren();
            const expected = model.children.filter((c) => c.status !== "gone").map((c) => ({ id: c.id, status: c.status, restarts: c.restarts }));
            expect(view.map(({ id, status, restarts }) => ({ id, status, restarts }))).toEqual(expected);
            for (const info of view) {
              const w = workers[Number(info.id.slice(1))]!;
              if (info.status === "running") {
                expect(info.device).toBe(w.current.ctx.device.id);
                expect(w.current.ctx.device.isConnected).toBe(true);
              } else expect(info.device).toBeUndefined();
            }
          };

          for (const event of events) {
            if (event.kind === "wait") {
              await vi.advanceTimersByTimeAsync(event.ms);
              continue;
            }
            const i = event.child % types.length;
            if (model.children[i]!.status === "running") {
              const run = workers[i]!.current;
              if (event.kind === "crash") run.crash();
              else run.finish();
            }
            model.exit(i, event.kind === "finish", Date.now());
            await vi.runAllTimersAsync(); // every reaction, until the supervisor is quiet
            check();
            if (model.failed) {
              await expect(sup.done).rejects.toMatchObject({ code: "intensity-exceeded" });
              break;
            }
          }
          await sup.stop();
          expect(vi.getTimerCount()).toBe(0);
          for (const w of workers) for (const run of w.runs) expect(run.ctx.device.isConnected).toBe(false);
          expect(sup.device.isConnected).toBe(false);
        } finally {
          vi.useRealTimers();
        }
      }),
      { numRuns: 150 },
    );
  });
});
