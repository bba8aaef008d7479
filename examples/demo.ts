/**
 * `npm run demo`: a small supervision tree whose workers fail at random.
 * Every crash and restart is printed as it happens, the tree is drawn as it
 * heals, and after a few seconds the whole tree stops cleanly by itself.
 *
 *   npm run demo                 # the default seed
 *   npm run demo -- --seed 7     # another run of bad luck
 *   npm run demo -- --reports    # every crash as a full SASL-style crash report
 *   npm run demo -- --observe    # open the tree in the browser; it keeps failing and healing until Ctrl-C
 */
import { fileURLToPath } from "node:url";
import { type ChildContext, type ChildSpec, dumpTree, type Fault, isolated, Supervisor, type SupervisorEvents, TaskSupervisor } from "../src/index.js";
import { attachCrashReports, type CrashLogger, observe } from "../src/observer/index.js";

const observing = process.argv.includes("--observe");
const allReports = process.argv.includes("--reports");
const seedArg = process.argv.indexOf("--seed");
let seed = seedArg > 0 ? Number(process.argv[seedArg + 1]) : 42;
/** A seeded generator (mulberry32), so a given seed always tells the same story. */
function random(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const color = process.stdout.isTTY ? (code: number, s: string) => `\x1b[${code}m${s}\x1b[0m` : (_: number, s: string) => s;
const red = (s: string) => color(31, s);
const green = (s: string) => color(32, s);
const yellow = (s: string) => color(33, s);
const dim = (s: string) => color(2, s);

const t0 = Date.now();
const clock = () => dim(`${((Date.now() - t0) / 1000).toFixed(2).padStart(5)}s`);
const say = (line: string) => console.log(`${clock()}  ${line}`);

/** Wait `ms`, or less if `signal` aborts; the listener is removed either way, so loops do not pile them up. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

function why(fault: Fault | undefined): string {
  if (fault === undefined) return "exited cleanly";
  if (fault.kind === "error") return `crashed: ${(fault.error as Error).message ?? String(fault.error)}`;
  if (fault.kind === "cascade") return `went down with device #${fault.from}`;
  return `ended: ${fault.kind}`;
}

/** A worker that does a unit of work every `every` ms and fails with probability `risk` each time. */
function flaky(id: string, every: number, risk: number, failure: string): ChildSpec {
  return {
    id,
    shutdown: 500,
    async run(ctx: ChildContext) {
      while (!ctx.signal.aborted) {
        await sleep(every, ctx.signal);
        if (!ctx.signal.aborted && random() < risk) throw new Error(failure);
      }
    },
  };
}

/**
 * Crash reports (off by default in the library): the first crash is shown in
 * full, as OTP's SASL would print it; after that one line each, unless
 * `--reports` asks for every report.
 */
let fullReportsLeft = allReports ? Number.POSITIVE_INFINITY : 1;
const reports: CrashLogger = (text, report) => {
  if (report.kind !== "child-terminated" || fullReportsLeft <= 0) return;
  fullReportsLeft--;
  console.log(`\n${dim(text)}\n${allReports ? "" : dim("   (the first crash report in full; npm run demo -- --reports prints them all)\n")}`);
};

/** Print a supervisor's events, indented by its depth in the tree. */
function narrate(sup: Supervisor, label: string): void {
  attachCrashReports(sup, reports, { label, stackLines: 4 });
  const on = sup.on.bind(sup) as <E extends keyof SupervisorEvents>(e: E, f: (p: SupervisorEvents[E][0]) => void) => void;
  on("child-exited", (e) => {
    if (e.requested) return;
    say(`${e.fault ? red("✗") : "·"} ${label}/${e.id} ${why(e.fault)}`);
  });
  on("child-restarted", (e) => say(`${green("↻")} ${label}/${e.id} restarted (restart #${e.restarts}${e.delay > 0 ? `, after ${Math.round(e.delay)} ms backoff` : ""})`));
  on("restart-intensity-exceeded", (e) => say(yellow(`⚠ ${label}: too many restarts (${e.intensity} in ${e.period} ms) — giving up, escalating to its parent`)));
}

async function main(): Promise<void> {
  console.log("A supervision tree that fails at random and heals itself.\n");
  const app = new Supervisor({
    name: "app",
    strategy: "one-for-one",
    intensity: 10,
    period: 5000,
    children: [
      flaky("db", 400, 0.15, "connection reset by peer"),
      Supervisor.child("pipeline", () => {
        const pipeline = new Supervisor({
          name: "pipeline",
          strategy: "rest-for-one",
          intensity: 2,
          period: 2000,
          backoff: { min: 50, max: 400 },
          children: [flaky("fetch", 300, 0.12, "upstream 503"), flaky("parse", 250, 0.1, "unexpected token"), flaky("store", 350, 0.05, "disk full")],
        });
        narrate(pipeline, "app/pipeline");
        return pipeline;
      }),
      TaskSupervisor.child("jobs", { shutdown: 500 }),
      // Runs in a worker thread; after 1.5 s it runs away into for(;;){} and ignores its signal.
      isolated({ id: "cruncher", module: fileURLToPath(new URL("./runaway.mjs", import.meta.url)), export: "crunch", args: [1500], shutdown: 300 }),
    ],
  });
  narrate(app, "app");
  await app.start();
  console.log(`${dumpTree(app)}\n`);

  if (observing) {
    const view = await observe(app);
    console.log(`${green("observer:")} ${view.url}  ${dim("(open it in a browser; Ctrl-C stops the tree and the observer)")}\n`);
    app.done.catch(() => {});
    const bye = async () => {
      say("Ctrl-C: stopping the tree and the observer…");
      await view.close();
      await app.stop();
      say(green("stopped cleanly."));
      process.exit(0);
    };
    process.once("SIGINT", () => void bye());
    process.once("SIGTERM", () => void bye());
    app.done.then(undefined, async (error: unknown) => {
      say(red(`app gave up: ${error instanceof Error ? error.message : String(error)}`));
      await view.close();
      process.exit(1);
    });
  }

  // Feed the task supervisor a stream of short jobs, some of which fail.
  const tasks = app.stateOf<TaskSupervisor>("jobs");
  if (tasks !== undefined) {
    void (async () => {
      let n = 0;
      const inputs = (async function* () {
        while (tasks.device.isConnected && (observing || n < 12)) {
          yield ++n;
          await new Promise((r) => setTimeout(r, 300));
        }
      })();
      for await (const r of tasks.asyncStream(
        inputs,
        async (job, signal) => {
          await sleep(100 + random() * 200, signal);
          if (random() < 0.25) throw new Error(`job ${job} hit a bad record`);
          return job;
        },
        { maxConcurrency: 3, timeout: 1000 },
      )) {
        if (r.status === "ok") say(`${dim("✓")} app/jobs finished job ${r.value}`);
        else say(`${red("✗")} app/jobs ${r.reason.cause instanceof Error ? r.reason.cause.message : r.reason.message}`);
      }
    })().catch(() => {});
  }

  await new Promise((r) => setTimeout(r, 2000));
  console.log(`\n${dumpTree(app)}\n`);

  // A watchdog's view: the cruncher has been stuck in a loop since 1.5 s. Only an isolated child can be stopped from that.
  say(yellow("⚠ app/cruncher is stuck in for(;;){} — asking it to stop (300 ms grace, then its thread is terminated)"));
  const killStarted = Date.now();
  await app.terminateChild("cruncher");
  const fault = app.whichChildren().find((c) => c.id === "cruncher")?.lastFault;
  say(`${red("✗")} app/cruncher ${fault?.kind === "killed" ? "killed" : "stopped"} after ${Date.now() - killStarted} ms; the rest of the tree never stopped running`);
  if (observing) {
    // It would run away again in its new thread and burn a core for as long as the view is open: it stays stopped.
    say(dim("app/cruncher stays stopped while observing (restarted, it would spin a core again); the rest keeps failing and healing"));
    return new Promise<void>(() => {}); // until Ctrl-C
  }
  await app.restartChild("cruncher");
  say(`${green("↻")} app/cruncher started again in a fresh worker thread`);

  await new Promise((r) => setTimeout(r, 2000));
  console.log(`\n${dumpTree(app)}\n`);
  await new Promise((r) => setTimeout(r, 1000));
  say("stopping the tree (children stop in reverse order, each with its grace period)…");
  await app.stop();
  console.log(`\n${dumpTree(app)}\n`);
  say(green("stopped cleanly."));
}

await main();
