/**
 * Supervisor benchmarks: failure → replacement running, start/stop of 10⁴
 * children, memory per supervised idle child; with the peers a user would
 * reach for instead (Effect's retry with a schedule, nact's reset) in the
 * same run.
 */
import { type ChildSpec, Supervisor } from "../src/index.js";
import { time } from "./harness.js";
import * as peers from "./supervisor-peers.js";

const failure = new Error("bench");

export async function restartBenchmarks(): Promise<void> {
  const g = "a child fails → its replacement is running";
  let fail: (e: Error) => void = () => {};
  let started: () => void = () => {};
  const sup = new Supervisor({
    intensity: 1_000_000,
    period: 1,
    children: [{ id: "w", run: () => new Promise<never>((_, reject) => (fail = reject)) }],
  });
  sup.on("child-started", () => started());
  await sup.start();
  const ours = "backplane: Supervisor one-for-one, run() rejects → child-started of the new run";
  await time(g, ours, () => {
    const running = new Promise<void>((resolve) => (started = resolve));
    fail(failure);
    return running;
  });
  await sup.stop();

  await time(g, "Effect 4: fail once, Effect.retry(Schedule.forever) runs it again", peers.effectRetryOnce, ours);
  const nact = peers.setupNact();
  await time(g, "nact 7: actor throws, onCrash reset, fresh actor answers a query", nact.crashAndServe, ours);
  nact.stop();
}

function idleChildren(n: number, readSignal: boolean): ChildSpec[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `c${i}`,
    shutdown: readSignal ? 5000 : ("brutal" as const),
    run: readSignal ? (ctx) => new Promise((resolve) => ctx.signal.addEventListener("abort", resolve)) : () => new Promise(() => {}),
  }));
}

export interface LifecycleRow {
  what: string;
  ms: number;
  perChildUs: number;
}

/** Start and stop a supervisor of 10⁴ children, a few rounds; the median round. */
export async function lifecycleBenchmarks(): Promise<LifecycleRow[]> {
  const n = 10_000;
  const rows: LifecycleRow[] = [];
  for (const readSignal of [false, true]) {
    const starts: number[] = [];
    const stops: number[] = [];
    for (let round = 0; round < 5; round++) {
      const sup = new Supervisor({ children: idleChildren(n, readSignal) });
      let t = performance.now();
      await sup.start();
      starts.push(performance.now() - t);
      t = performance.now();
      await sup.stop();
      stops.push(performance.now() - t);
    }
    const label = readSignal ? "children that read ctx.signal and stop gracefully" : "children that never read the signal (shutdown brutal)";
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    rows.push({ what: `start 10⁴ ${label}`, ms: median(starts), perChildUs: (median(starts) * 1000) / n });
    rows.push({ what: `stop 10⁴ ${label}`, ms: median(stops), perChildUs: (median(stops) * 1000) / n });
  }
  return rows;
}

/** Heap bytes per supervised idle child (10⁴ children), after full collections. */
export async function supervisedMemory(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc!;
  const heap = () => {
    for (let i = 0; i < 4; i++) gc();
    return process.memoryUsage().heapUsed;
  };
  const n = 10_000;
  const specs = idleChildren(n, false);
  const before = heap();
  const sup = new Supervisor({ children: specs });
  await sup.start();
  const after = heap();
  await sup.stop();
  return (after - before) / n;
}
