/**
 * The Rust crate's benchmarks (benches/device.rs and benches/line.rs), the
 * same loops, plus manage() and the peers (Effect 4, XState 5) in the same run.
 */
import { do_not_optimize } from "mitata";
import { Device, Fault } from "../src/index.js";
import { pathToFileURL } from "node:url";
import { report, time } from "./harness.js";
import * as peers from "./peers.js";

const failure = new Error("bench");
const errorFault = Fault.error(failure);
const noop = (): void => {};

export async function crateBenchmarks(): Promise<void> {
  const g = "the crate's loops (synchronous)";
  await time(g, "device create_destroy", () => {
    new Device().disconnect();
  });
  await time(g, "device_monitor_drop", () => {
    const d1 = new Device();
    const d2 = new Device();
    d1.link(d2, "monitor");
    d1[Symbol.dispose]();
    d2[Symbol.dispose]();
  });
  await time(g, "line_monitor_drop", () => {
    const d1 = new Device();
    const d2 = new Device();
    d1.link(d2.line(), "monitor");
    d1[Symbol.dispose]();
    d2[Symbol.dispose]();
  });
  for (const via of ["device", "line"] as const) {
    for (const mode of ["monitor", "peer"] as const) {
      for (const ending of ["drop", "error"] as const) {
        await time(g, `${via}_${mode}_${ending}_notify`, () => {
          const d1 = new Device();
          const d2 = new Device();
          d1.link(via === "device" ? d2 : d2.line(), mode);
          if (ending === "drop") d2[Symbol.dispose]();
          else d2.disconnect(errorFault);
          d1.tryReceive();
          d1[Symbol.dispose]();
        });
      }
    }
  }
  const d = new Device();
  await time(g, "line create_destroy", () => {
    do_not_optimize(d.line());
  });
}

export async function notificationBenchmarks(): Promise<void> {
  const g = "monitor + disconnect with a fault + notification received";
  await time(g, "backplane: link monitor, disconnect(error), await receive()", async () => {
    const m = new Device();
    const d = new Device();
    m.link(d, "monitor");
    d.disconnect(errorFault);
    await m.receive();
  });
  await time(g, "backplane: the same, the monitor already waiting in receive()", async () => {
    const m = new Device();
    const d = new Device();
    m.link(d, "monitor");
    const heard = m.receive();
    d.disconnect(errorFault);
    await heard;
  });
  const ours = "backplane: link monitor, disconnect(error), await receive()";
  await time(g, "Effect 4: fork a failing fiber, await its exit (startImmediately)", peers.effectForkFailAwait, ours);
  await time(g, "Effect 4: fork a failing fiber, await its exit (default fork)", peers.effectForkFailAwaitDefault, ours);
  await time(g, "XState 5: failing promise actor, error observed", peers.xstateFailingPromiseActor, ours);
}

export async function lifecycleBenchmarks(): Promise<void> {
  const g = "start and stop a unit of work";
  const ours = "backplane: new Device, manage pending work, shutdown, await Crash";
  await time(g, ours, async () => {
    const d = new Device();
    const run = d.manage(() => new Promise(noop));
    d.line().shutdown(0);
    await run.catch(noop);
  });
  await time(g, "Effect 4: fork Effect.never and interrupt it (startImmediately)", peers.effectForkInterrupt, ours);
  await time(g, "Effect 4: fork Effect.never and interrupt it (default fork)", peers.effectForkInterruptDefault, ours);
  await time(g, "XState 5: create + start + stop an actor", peers.xstateCreateStartStop, ours);
}

export async function manageBenchmarks(): Promise<void> {
  const g = "manage()";
  await time(g, "backplane: manage(() => value)", async () => {
    await new Device().manage(() => 1);
  });
  const ok = "backplane: manage(async () => value)";
  await time(g, ok, async () => {
    await new Device().manage(async () => 1);
  });
  await time(g, "backplane: manage(async (signal) => value) (the signal is created)", async () => {
    await new Device().manage(async (signal) => signal);
  });
  await time(g, "backplane: manage(async () => value, { timeout: 60_000 }) (a timer armed and cleared)", async () => {
    await new Device().manage(async () => 1, { timeout: 60_000 });
  });
  await time(g, "Effect 4: fork a succeeding fiber, await it (startImmediately)", peers.effectForkSucceedAwait, ok);
  await time(g, "XState 5: succeeding promise actor, output observed", peers.xstateSucceedingPromiseActor, ok);

  const gf = "managed work that throws, observed by a monitoring device";
  const fail = "backplane: manage(async () => { throw }), monitor's await receive()";
  await time(gf, fail, async () => {
    const m = new Device();
    const d = new Device();
    m.link(d, "monitor");
    d.manage(async () => {
      throw failure;
    }).catch(noop);
    await m.receive();
  });
  await time(gf, "backplane: manage(() => { throw }) (synchronous throw), monitor's await receive()", async () => {
    const m = new Device();
    const d = new Device();
    m.link(d, "monitor");
    d.manage(() => {
      throw failure;
    }).catch(noop);
    await m.receive();
  });
  await time(gf, "Effect 4: fork a failing fiber, await its exit (startImmediately)", peers.effectForkFailAwait, fail);
  await time(gf, "Effect 4: fork a failing fiber, await its exit (default fork)", peers.effectForkFailAwaitDefault, fail);
  await time(gf, "XState 5: failing promise actor, error observed", peers.xstateFailingPromiseActor, fail);
}

// Run on its own: `node --expose-gc --import tsx bench/core.ts [crate|notify|manage|lifecycle]…`
// (no argument runs every core group), then the Markdown report on stdout.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const parts = process.argv.slice(2);
  const want = (part: string) => parts.length === 0 || parts.includes(part);
  if (want("crate")) await crateBenchmarks();
  if (want("notify")) await notificationBenchmarks();
  if (want("manage")) await manageBenchmarks();
  if (want("lifecycle")) await lifecycleBenchmarks();
  console.log(report());
}
