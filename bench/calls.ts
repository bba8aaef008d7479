/**
 * Request/response and isolation benchmarks: an in-process call round trip;
 * a call into a worker against piscina and tinypool doing the same trivial
 * task; and the time to kill a spinning worker and have its replacement
 * serving.
 */
import { fileURLToPath } from "node:url";
import { BroadcastChannel } from "node:worker_threads";
import { Piscina } from "piscina";
import Tinypool from "tinypool";
import { Client, call, Device, Executor, isolatedServer, Registry, Supervisor, serve, serveIsolated } from "../src/index.js";
import { time } from "./harness.js";

const trivial = fileURLToPath(new URL("./fixtures/trivial.mjs", import.meta.url));
const announce = fileURLToPath(new URL("./fixtures/announce.mjs", import.meta.url));

export async function callBenchmarks(): Promise<void> {
  const g = "a call round trip";
  const server = serve(new Device({ name: "adder" }), (r: { a: number; b: number }) => r.a + r.b);
  const client = new Client<{ a: number; b: number }, number>(server);
  const request = { a: 1, b: 2 };
  await time(g, "backplane: in-process call (serve + Client.call)", () => client.call(request));
  await time(g, "backplane: in-process call with a timeout", () => client.call(request, { timeout: 5_000 }));
  await server.stop();

  const gw = "a call into a worker (the same trivial task, one worker)";
  const ours = "backplane: Executor.execute";
  const executor = new Executor<[number, number], number>({ module: trivial, export: "addArgs", size: 1 });
  await time(gw, ours, () => executor.execute([1, 2]));
  await executor.close();
  const isolatedServer = serveIsolated<{ a: number; b: number }, number>({ module: trivial });
  const isolatedClient = new Client<{ a: number; b: number }, number>(isolatedServer);
  await time(gw, "backplane: call to an isolated server (serveIsolated)", () => isolatedClient.call(request));
  await isolatedServer.stop();
  const piscina = new Piscina({ filename: trivial, minThreads: 1, maxThreads: 1 });
  await time(gw, "piscina 5: run", () => piscina.run(request), ours);
  await piscina.destroy();
  const tinypool = new Tinypool({ filename: trivial, minThreads: 1, maxThreads: 1 });
  await time(gw, "tinypool 2: run", () => tinypool.run(request), ours);
  await tinypool.destroy();
}

export interface KillRow {
  what: string;
  ms: number;
}

function median(samples: number[]): number {
  return [...samples].sort((a, b) => a - b)[Math.floor(samples.length / 2)]!;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Counts module loads announced by bench/fixtures/announce.mjs, and waits for the nth. */
function loads() {
  const channel = new BroadcastChannel("backplane-bench-loaded");
  let count = 0;
  let waiter: { n: number; resolve: () => void } | undefined;
  channel.onmessage = () => {
    count++;
    if (waiter !== undefined && count >= waiter.n) {
      waiter.resolve();
      waiter = undefined;
    }
  };
  return {
    atLeast: (n: number) => (count >= n ? Promise.resolve() : new Promise<void>((resolve) => (waiter = { n, resolve }))),
    close: () => channel.close(),
  };
}

/**
 * Executor: a spinning call is cancelled (its worker is terminated, the
 * same path as a timeout) → the next call is answered. With standby, the
 * kill comes once the reserve has loaded, as it would between failures that
 * are not back to back. Median ms of `rounds`.
 */
async function executorKill(standby: boolean, rounds: number): Promise<number> {
  const samples: number[] = [];
  const executor = new Executor<[boolean, number, number], number>({ module: announce, export: "work", size: 1, standby });
  await executor.execute([false, 1, 2]);
  for (let i = 0; i < rounds; i++) {
    await pause(50);
    const controller = new AbortController();
    const killed = executor.execute([true, 0, 0], { signal: controller.signal }).then(
      () => Number.NaN,
      () => performance.now(),
    );
    if (standby) await executor.warm(); // the reserve has loaded
    else await pause(10);
    controller.abort();
    const killedAt = await killed;
    await executor.execute([false, 1, 2]);
    samples.push(performance.now() - killedAt);
  }
  await executor.close();
  return median(samples);
}

/**
 * Supervisor: terminate a spinning isolated server (brutal) → restart → the
 * new worker answers a call. With standby, each round starts once the spare
 * has loaded. Median ms of `rounds`.
 */
async function supervisedKill(standby: boolean, rounds: number): Promise<number> {
  const samples: number[] = [];
  const loaded = loads();
  const registry = new Registry();
  const sup = new Supervisor({ intensity: 1000, children: [isolatedServer({ id: "s", module: announce, export: "handle", register: "s", registry, shutdown: "brutal", standby })] });
  await sup.start();
  await call("s", "warm", { registry });
  for (let i = 0; i < rounds; i++) {
    // Cold: one load per incarnation. Standby: the first worker, then one spare per adoption.
    if (standby) await loaded.atLeast(2 + i);
    await pause(50);
    void call("s", "spin", { registry }).catch(() => {});
    await pause(5);
    const t = performance.now();
    await sup.terminateChild("s"); // brutal: the spinning worker is terminated at once
    await sup.restartChild("s");
    await call("s", "ping", { registry });
    samples.push(performance.now() - t);
  }
  await sup.stop();
  loaded.close();
  return median(samples);
}

/**
 * Time from killing a spinning worker to its replacement serving, cold (a
 * new thread is started and loads the module) and with a warm standby
 * (a pre-started thread is adopted), in the same run; the median of 15
 * rounds each.
 */
export async function killBenchmarks(): Promise<KillRow[]> {
  const rounds = 15;
  const executorCold = await executorKill(false, rounds);
  const executorWarm = await executorKill(true, rounds);
  const supervisedCold = await supervisedKill(false, rounds);
  const supervisedWarm = await supervisedKill(true, rounds);
  process.stderr.write(`  kill → replacement · executor ${executorCold.toFixed(2)} → ${executorWarm.toFixed(2)} ms; supervised ${supervisedCold.toFixed(2)} → ${supervisedWarm.toFixed(2)} ms\n`);
  return [
    { what: "Executor: a spinning call is cancelled (as a timeout does) → its worker is terminated → a new worker answers the next call (cold)", ms: executorCold },
    { what: "Executor with `standby: true`: the same, the reserve answers", ms: executorWarm },
    { what: "Supervisor: terminate a spinning isolated server (brutal) → restart → the new worker answers a call (cold)", ms: supervisedCold },
    { what: "Supervisor, isolated server with `standby: true`: the same, the restart adopts the pre-started worker", ms: supervisedWarm },
  ];
}
