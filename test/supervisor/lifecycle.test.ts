/**
 * Behaviours of the lifecycle redesign, each named for the OTP/Elixir
 * scenario it proves. Every one of them failed on the previous shape.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  attachCrashReports,
  type ChildSpec,
  describeFault,
  Device,
  dumpTree,
  formatCrashReport,
  snapshot,
  treeToMermaid,
  DynamicSupervisor,
  IGNORE,
  LISTENER_WARNING,
  registry,
  runRecords,
  Supervisor,
  TaskSupervisor,
} from "../../src/index.js";
import { next, signalled, statuses, until, worker } from "./helpers.js";

afterEach(() => {
  vi.useRealTimers();
});

describe("one-for-all: a sibling fails to restart (OTP one_for_all_other_child_fails_restart)", () => {
  it("children started during the failed attempt are stopped in reverse order and the whole group starts again in order", async () => {
    const log: string[] = [];
    let failC = 0; // how many of c's next starts fail
    const spec = (id: string, failing = false): ChildSpec => ({
      id,
      init: () => {
        if (failing && failC > 0) {
          failC--;
          log.push(`init ${id} fails`);
          throw new Error(`${id} cannot start`);
        }
        log.push(`init ${id}`);
      },
      run: (ctx) =>
        new Promise((resolve, reject) => {
          runs.set(id, reject);
          ctx.signal.addEventListener("abort", () => {
            log.push(`stop ${id}`);
            resolve(undefined);
          });
        }),
    });
    const runs = new Map<string, (e: Error) => void>();
    const sup = new Supervisor({ strategy: "one-for-all", intensity: 10, children: [spec("a"), spec("b"), spec("c", true)] });
    await sup.start();
    log.length = 0;
    failC = 1;
    const restarted = until(sup, () => sup.whichChildren().every((c) => c.status === "running") && log.length > 6);
    runs.get("b")!(new Error("b crashed"));
    await restarted;
    expect(log).toEqual([
      "stop c", // the group goes down in reverse order (b is already down)
      "stop a",
      "init a", // first attempt: a and b come back, c fails
      "init b",
      "init c fails",
      "stop b", // what the failed attempt started goes down again, in reverse order
      "stop a",
      "init a", // and the whole group starts again, in order
      "init b",
      "init c",
    ]);
    expect(sup.intensity.used).toBe(2); // the crash and the retry, each counted
    await sup.stop();
  });

  it("rest-for-one keeps resuming at the child that failed", async () => {
    const log: string[] = [];
    let failC = 0;
    const runs = new Map<string, (e: Error) => void>();
    const spec = (id: string): ChildSpec => ({
      id,
      init: () => {
        if (id === "c" && failC-- > 0) {
          log.push("init c fails");
          throw new Error("no");
        }
        log.push(`init ${id}`);
      },
      run: (ctx) =>
        new Promise((resolve, reject) => {
          runs.set(id, reject);
          ctx.signal.addEventListener("abort", () => {
            log.push(`stop ${id}`);
            resolve(undefined);
          });
        }),
    });
    const sup = new Supervisor({ strategy: "rest-for-one", intensity: 10, children: [spec("a"), spec("b"), spec("c"), spec("d")] });
    await sup.start();
    log.length = 0;
    failC = 1;
    const back = until(sup, () => sup.whichChildren().every((c) => c.status === "running") && log.includes("init d"));
    runs.get("b")!(new Error("b crashed"));
    await back;
    expect(log).toEqual(["stop d", "stop c", "init b", "init c fails", "init c", "init d"]);
    await sup.stop();
  });
});

describe("a failed restart's retry never blocks the process", () => {
  it("each retry is its own turn of the event loop: between attempts the child is restarting and the API is served", async () => {
    let inits = 0;
    let failing = false;
    const devices: Device[] = [];
    const a = worker("a");
    const sup = new Supervisor({
      intensity: 100_000,
      period: 60_000,
      children: [
        {
          id: "flaky",
          init: () => {
            inits++;
            if (failing) throw new Error("down");
          },
          run: (ctx) => (devices.push(ctx.device), new Promise(() => {})),
        },
        a.spec,
      ],
    });
    await sup.start();
    failing = true;
    const exited = next(sup, "child-exited");
    devices[0]!.disconnect({ kind: "error", error: new Error("boom") }); // from now on every restart attempt fails at once
    await exited;
    const initsWhenTimerRan = await new Promise<number>((resolve) => setTimeout(() => resolve(inits), 0));
    // A timer got its turn after a handful of attempts, not after 100 000 of them in one synchronous loop.
    expect(initsWhenTimerRan).toBeLessThan(100);
    expect(statuses(sup)).toEqual({ flaky: "restarting", a: "running" });
    // The API is served between attempts: terminateChild ends the loop.
    await sup.terminateChild("flaky");
    const after = inits;
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 0));
    expect(inits).toBe(after);
    expect(statuses(sup)).toEqual({ flaky: "stopped", a: "running" });
    await sup.stop();
  });

  it("a restarting child counts toward maxChildren, and stop() ends the retry loop", async () => {
    let failing = false;
    const dyn = new DynamicSupervisor({ maxChildren: 1, intensity: 100_000, period: 60_000 });
    await dyn.start();
    const devices: Device[] = [];
    const info = await dyn.startChild({
      init: () => {
        if (failing) throw new Error("down");
      },
      run: (ctx) => (devices.push(ctx.device), new Promise(() => {})),
    });
    failing = true;
    const device = devices[0]!;
    const exited = next(dyn, "child-exited");
    device.disconnect({ kind: "error", error: new Error("boom") });
    await exited;
    await new Promise((r) => setImmediate(r));
    expect(dyn.whichChildren()).toMatchObject([{ id: info.id, status: "restarting" }]);
    await expect(dyn.startChild({ run: () => new Promise(() => {}) })).rejects.toMatchObject({ code: "max-children" });
    await dyn.stop();
    expect(dyn.whichChildren()).toEqual([]);
  });
});

describe("DynamicSupervisor: an ignored child is not kept (Elixir)", () => {
  it("a start whose init returns IGNORE adds nothing and does not count toward maxChildren", async () => {
    const dyn = new DynamicSupervisor({ maxChildren: 1 });
    await dyn.start();
    const ignored = await dyn.startChild({ init: () => IGNORE, run: () => undefined });
    expect(ignored.status).toBe("stopped");
    expect(dyn.whichChildren()).toEqual([]);
    await dyn.startChild({ run: () => new Promise(() => {}), shutdown: "brutal" });
    expect(dyn.countChildren().specs).toBe(1);
    await dyn.stop();
  });

  it("a restart whose init returns IGNORE forgets the child", async () => {
    let ignore = false;
    const dyn = new DynamicSupervisor({ intensity: 5 });
    await dyn.start();
    const devices: Device[] = [];
    await dyn.startChild({ init: () => (ignore ? IGNORE : undefined), run: (ctx) => (devices.push(ctx.device), new Promise(() => {})), shutdown: "brutal" });
    ignore = true;
    const device = devices[0]!;
    const restarted = new Promise<void>((resolve) => {
      const check = () => {
        if (dyn.whichChildren().length === 0) resolve();
        else setImmediate(check);
      };
      dyn.once("child-exited", () => setImmediate(check));
    });
    device.disconnect({ kind: "error", error: new Error("boom") });
    await restarted;
    expect(dyn.whichChildren()).toEqual([]);
    await dyn.stop();
  });
});

describe("a temporary child that ends is forgotten at once", () => {
  it("even while a group restart is stopping its siblings: restartChild of it is then not-found", async () => {
    // one-for-all: "slow" takes its grace to stop; meanwhile the temporary "temp" ends on its own.
    let releaseSlow: (() => void) | undefined;
    let endTemp!: (e?: Error) => void;
    const a = worker("a");
    const sup = new Supervisor({
      strategy: "one-for-all",
      intensity: 10,
      children: [
        a.spec,
        { id: "temp", restart: "temporary", run: () => new Promise((resolve, reject) => (endTemp = (e) => (e ? reject(e) : resolve(undefined)))) },
        // The first time it is asked to stop, it waits to be released; later it stops at once.
        { id: "slow", shutdown: "infinity", run: (ctx) => new Promise((r) => ctx.signal.addEventListener("abort", () => (releaseSlow ? r(undefined) : (releaseSlow = () => r(undefined))))) },
      ],
    });
    await sup.start();
    const slowAsked = new Promise<void>((resolve) => {
      const poll = () => (releaseSlow ? resolve() : setImmediate(poll));
      poll();
    });
    a.current.crash(); // the group restart stops "slow" first (it is last), which takes its time
    await slowAsked;
    const tempGone = next(sup, "child-exited");
    endTemp(new Error("temp failed"));
    await tempGone;
    expect(sup.whichChildren().map((c) => c.id)).toEqual(["a", "slow"]);
    await expect(sup.restartChild("temp")).rejects.toMatchObject({ code: "not-found" });
    releaseSlow!();
    await until(sup, () => statuses(sup).a === "running" && statuses(sup).slow === "running");
    await sup.stop();
  });
});

describe("asyncStream, ordered: a task fails to start", () => {
  it("the stream raises at once and shuts down the tasks it started, instead of waiting behind earlier results", async () => {
    const tasks = new TaskSupervisor({ maxChildren: 2, shutdown: "brutal" });
    const signals: AbortSignal[] = [];
    const stream = tasks.asyncStream(
      [1, 2, 3],
      (_n, signal) => {
        signals.push(signal);
        return new Promise(() => {}); // never settles: only the failure can end the stream
      },
      { maxConcurrency: 3, timeout: Number.POSITIVE_INFINITY },
    );
    const error = await (async () => {
      for await (const _ of stream) {
        /* nothing arrives */
      }
    })().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "max-children" });
    expect(signals).toHaveLength(2);
    expect(signals.every((s) => s.aborted)).toBe(true);
    expect(tasks.size).toBe(0);
    await tasks.stop();
  });

  it("aborting the stream's signal ends it with the signal's reason and cancels its tasks", async () => {
    const tasks = new TaskSupervisor({ shutdown: "brutal" });
    const controller = new AbortController();
    const signals: AbortSignal[] = [];
    const consumed = (async () => {
      for await (const _ of tasks.asyncStream([1, 2], (_n, s) => (signals.push(s), new Promise(() => {})), { signal: controller.signal, timeout: Number.POSITIVE_INFINITY })) {
        /* nothing arrives */
      }
    })().catch((e: unknown) => e);
    await new Promise((r) => setImmediate(r));
    controller.abort(new Error("user left"));
    expect(await consumed).toMatchObject({ message: "user left" });
    expect(signals.every((s) => s.aborted)).toBe(true);
    await tasks.stop();
  });
});

describe("stop() resolves only when the whole subtree is down", () => {
  for (const shutdown of ["brutal", 20, "infinity"] as const) {
    it(`nested supervisor with shutdown ${String(shutdown)}: no grandchild device is connected after the root's stop()`, async () => {
      const grandchildren: Device[] = [];
      const stubborn: ChildSpec = {
        id: "stubborn",
        shutdown: 50,
        run: (ctx) => {
          grandchildren.push(ctx.device);
          return new Promise(() => {}); // ignores its signal: only a kill ends it
        },
      };
      const polite: ChildSpec = {
        id: "polite",
        run: (ctx) => {
          grandchildren.push(ctx.device);
          return new Promise((r) => ctx.signal.addEventListener("abort", () => setTimeout(r, 10)));
        },
      };
      const root = new Supervisor({
        children: [Supervisor.child("mid", () => ({ children: [polite, stubborn, TaskSupervisor.child("tasks", { shutdown: 30 })] }), { shutdown })],
      });
      await root.start();
      const tasks = root.stateOf<Supervisor>("mid")!.stateOf<TaskSupervisor>("tasks")!;
      const task = tasks.async(() => new Promise(() => {}));
      grandchildren.push(task.device);
      await root.stop();
      expect(grandchildren.map((d) => d.isConnected)).toEqual([false, false, false]);
    });
  }
});

describe("a listener that throws never breaks the supervisor", () => {
  it("throwing child-started/child-exited/child-restarted/record/restart-intensity-exceeded/shutdown listeners: warnings, restarts still happen, stop() resolves", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => {
      if (w.name === LISTENER_WARNING) warnings.push(w.message);
    };
    process.on("warning", onWarning);
    try {
      const a = worker("a");
      const sup = new Supervisor({ intensity: 1, children: [a.spec] });
      for (const e of ["child-started", "child-exited", "child-restarted", "record", "restart-intensity-exceeded", "shutdown"] as const) {
        sup.on(e, () => {
          throw new Error(`listener of ${e} broke`);
        });
      }
      const restarted = next(sup, "child-restarted");
      await sup.start();
      a.current.crash();
      await restarted;
      expect(statuses(sup)).toEqual({ a: "running" });
      a.current.crash(); // the second restart within the period is one too many
      await expect(sup.done).rejects.toMatchObject({ code: "intensity-exceeded" });
      await sup.stop();
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      for (const e of ["child-started", "child-exited", "child-restarted", "record", "restart-intensity-exceeded", "shutdown"]) {
        expect(warnings.some((w) => w.includes(`listener of ${e} broke`))).toBe(true);
      }
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("a throwing runRecords listener does not break a managed run", async () => {
    const warned = new Promise<Error>((resolve) => process.once("warning", resolve));
    const listener = () => {
      throw new Error("records listener broke");
    };
    runRecords.on("record", listener);
    try {
      await expect(new Device().manage(() => 7)).resolves.toBe(7);
      expect((await warned).message).toContain("records listener broke");
    } finally {
      runRecords.off("record", listener);
    }
  });
});

describe("reaching a child you declared", () => {
  it("stateOf gives the nested supervisor a child's init returned; undefined while it is not running", async () => {
    const app = new Supervisor({ children: [TaskSupervisor.child("jobs")] });
    await app.start();
    const jobs = app.stateOf<TaskSupervisor>("jobs");
    expect(jobs).toBeInstanceOf(TaskSupervisor);
    await expect(jobs!.async(() => 2 + 2)).resolves.toBe(4);
    await app.terminateChild("jobs");
    expect(app.stateOf("jobs")).toBeUndefined();
    expect(() => app.stateOf("nope")).toThrow(expect.objectContaining({ code: "not-found" }));
    await app.stop();
  });

  it("a TaskSupervisor with register: true is reached by name through the registry, and freed when it stops", async () => {
    const app = new Supervisor({ children: [TaskSupervisor.child("mailer", { register: true })] });
    await app.start();
    const mailer = registry.whereis("mailer", TaskSupervisor);
    expect(mailer).toBe(app.stateOf("mailer"));
    await expect(mailer!.async(() => "sent")).resolves.toBe("sent");
    await app.stop();
    expect(registry.whereis("mailer")).toBeUndefined();
  });

  it("await using stops a supervisor at the end of its scope", async () => {
    const a = worker("a");
    let sup!: Supervisor;
    {
      await using s = new Supervisor({ children: [a.spec] });
      sup = s;
      await s.start();
    }
    expect(sup.status).toBe("stopped");
  });
});

describe("crash reports through the logger option", () => {
  it("a faulted child and its restart are reported; a nested supervisor reports under its path; a throwing logger breaks nothing", async () => {
    const lines: string[] = [];
    const logger = { error: (t: string) => lines.push(`E ${t}`), info: (t: string) => lines.push(`I ${t}`) };
    const inner = worker("inner");
    const app = new Supervisor({ name: "app", logger, children: [Supervisor.child("pipeline", () => ({ children: [inner.spec] }))] });
    await app.start();
    const pipeline = app.stateOf<Supervisor>("pipeline")!;
    const restarted = next(pipeline, "child-restarted");
    inner.current.crash(new Error("disk full"));
    await restarted;
    const text = lines.join("\n");
    expect(text).toContain("app/pipeline");
    expect(text).toContain("disk full");
    expect(lines.some((l) => l.startsWith("I "))).toBe(true);
    await app.stop();

    const broken = new Supervisor({ logger: () => { throw new Error("logger down"); }, children: [worker("w").spec] });
    await broken.start();
    await broken.stop();
    expect(() => new Supervisor({ logger: 5 as never })).toThrow(expect.objectContaining({ code: "invalid-options" }));
  });
});

describe("what a child owns, and what it only uses", () => {
  it("a worker whose init returns a shared TaskSupervisor does not own it: its crash is a crash, its stop never touches the shared tasks", async () => {
    const shared = new TaskSupervisor({ name: "shared" });
    const longTask = shared.async((signal) => new Promise((resolve) => signal.addEventListener("abort", resolve)));
    const crashes: ((e: Error) => void)[] = [];
    const sup = new Supervisor({ children: [{ id: "user", shutdown: "brutal", init: () => shared, run: () => new Promise((_, reject) => crashes.push(reject)) }] });
    await sup.start();
    const restarted = next(sup, "child-restarted");
    crashes[0]!(new Error("worker crashed"));
    await restarted;
    await sup.stop();
    expect(shared.size).toBe(1); // the long task still runs
    await shared.stop();
    await expect(longTask).rejects.toMatchObject({ kind: "shutdown" });
  });

  it("a nested supervisor that finishes starting just as its start is cancelled is stopped with it", async () => {
    let nested: Supervisor | undefined;
    const sup = new Supervisor({ children: [] });
    await sup.start();
    const starting = sup.startChild(
      Supervisor.child("n", () => {
        nested = new Supervisor({ children: [worker("g").spec] });
        return nested;
      }),
    );
    void sup.terminateChild("n"); // lands while the nested supervisor is starting
    await starting.catch(() => {});
    await sup.stop();
    expect(nested!.status).toBe("stopped");
  });

  it("a nested supervisor killed while it is still starting kills its starting grandchild too (no hang, nothing left connected)", async () => {
    const devices: Device[] = [];
    const hanging = signalled();
    const sup = new Supervisor({
      children: [
        Supervisor.child(
          "n",
          () => ({ children: [{ id: "g", shutdown: "infinity", init: (ctx) => (devices.push(ctx.device), hanging.fire(), new Promise(() => {})), run: () => undefined }] }),
          { shutdown: "brutal" },
        ),
      ],
    });
    const starting = sup.start().catch((e: unknown) => e);
    await hanging.promise;
    await sup.stop();
    await starting;
    expect(devices.every((d) => !d.isConnected)).toBe(true);
  });
});

describe("a group restart holds its members from the moment it stops them", () => {
  it("deleteChild of a sibling the restart has just stopped is refused (restarting): it is never started behind the supervisor's back", async () => {
    const [a, b, c] = [worker("a"), worker("b"), worker("c")];
    const sup = new Supervisor({ strategy: "one-for-all", children: [a.spec, b.spec, c.spec] });
    await sup.start();
    const answers: string[] = [];
    sup.on("child-exited", (e) => {
      if (e.id !== "c" || !e.requested) return;
      try {
        sup.deleteChild("c");
        answers.push("deleted");
      } catch (error) {
        answers.push((error as { code: string }).code);
      }
    });
    const restartsOf = (id: string) => sup.whichChildren().find((x) => x.id === id)?.restarts;
    const back = until(sup, () => restartsOf("c") === 1 && Object.values(statuses(sup)).every((x) => x === "running"));
    b.current.crash();
    await back;
    expect(answers).toEqual(["restarting"]);
    expect(statuses(sup)).toEqual({ a: "running", b: "running", c: "running" });
    await sup.stop();
  });

  it("terminateChild from a child-restarted listener during the start phase: the next members are still started", async () => {
    const [a, b, c] = [worker("a"), worker("b"), worker("c")];
    const sup = new Supervisor({ strategy: "one-for-all", children: [a.spec, b.spec, c.spec] });
    await sup.start();
    sup.on("child-restarted", (e) => {
      if (e.id === "a") void sup.terminateChild("a");
    });
    const back = until(sup, () => statuses(sup).c === "running" && sup.whichChildren()[2]!.restarts === 1);
    b.current.crash();
    await back;
    expect(statuses(sup)).toEqual({ a: "stopped", b: "running", c: "running" });
    await sup.stop();
  });

  it("an overlapping restart takes over only what the older one still holds (rest-for-one: an earlier sibling already back is left alone)", async () => {
    const hang = signalled();
    let releaseC!: () => void;
    let holdC = false;
    const [a, b, d] = [worker("a"), worker("b"), worker("d")];
    const c: ChildSpec = { id: "c", init: () => (holdC ? (hang.fire(), new Promise<void>((r) => (releaseC = r))) : undefined), run: (ctx) => new Promise((r) => ctx.signal.addEventListener("abort", r)) };
    const sup = new Supervisor({ strategy: "rest-for-one", intensity: 10, children: [a.spec, b.spec, c, d.spec] });
    await sup.start();
    holdC = true;
    a.current.crash(); // restarts a, b, c, d; c's start hangs
    await hang.promise;
    holdC = false;
    const bExited = next(sup, "child-exited");
    b.current.crash(); // a newer restart of b, c, d takes over c and d, not a
    await bExited;
    releaseC();
    await until(sup, () => Object.values(statuses(sup)).every((s) => s === "running") && sup.whichChildren()[3]!.restarts === 1);
    // a was restarted once, by the first restart only; c's hanging start was taken over; d was first reached by the second
    expect(sup.whichChildren().map((x) => x.restarts)).toEqual([1, 2, 2, 1]);
    await sup.stop();
  });
});

describe("bad options, refused", () => {
  it("infinite backoff values, significant dynamic children, a second registration of a task supervisor name", async () => {
    for (const backoff of [{ min: Number.POSITIVE_INFINITY, max: Number.POSITIVE_INFINITY }, { min: 1, max: 2, jitter: Number.POSITIVE_INFINITY }, { min: 1, max: 2, reset: Number.NaN }]) {
      expect(() => new Supervisor({ backoff })).toThrow(expect.objectContaining({ code: "invalid-options" }));
    }
    const dyn = new DynamicSupervisor();
    await dyn.start();
    await expect(dyn.startChild({ run: () => undefined, significant: true } as never)).rejects.toMatchObject({ code: "invalid-spec" });
    await dyn.stop();
    const first = new TaskSupervisor({ name: "unique-jobs", register: true });
    expect(() => new TaskSupervisor({ name: "unique-jobs", register: true })).toThrow(expect.objectContaining({ name: "SupervisorError", code: "invalid-options" }));
    await first.stop();
  });
});

describe("listeners are checked when added", () => {
  it("a listener that is not a function is refused with invalid-argument, on every emitter", () => {
    const sup = new Supervisor({});
    for (const add of ["on", "once", "addListener"] as const) {
      expect(() => sup[add]("child-started", 5 as never)).toThrow(expect.objectContaining({ code: "invalid-argument" }));
    }
    expect(() => runRecords.on("record", null as never)).toThrow(expect.objectContaining({ code: "invalid-argument" }));
  });
});

describe("crash reports of hostile errors", () => {
  it("an error whose message getter throws, with a logger: reported by its type, and the child is still restarted", async () => {
    const lines: string[] = [];
    const hostile = Object.create(Error.prototype, { message: { get: () => { throw new Error("no message for you"); } } }) as Error;
    let runs = 0;
    const sup = new Supervisor({ logger: (text) => lines.push(text), intensity: 5, children: [{ id: "h", run: () => (++runs === 1 ? Promise.reject(hostile) : new Promise(() => {})), shutdown: "brutal" }] });
    const restarted = next(sup, "child-restarted");
    await sup.start();
    await restarted;
    expect(runs).toBe(2);
    expect(lines.length).toBeGreaterThan(0);
    await sup.stop();
  });
});

describe("bad input at the boundary of the supervisor and its helpers", () => {
  const hostile = {
    toString() {
      throw new Error("my own toString");
    },
  };

  it("a value whose toString throws is refused with a typed error, never the user's own error", () => {
    for (const options of [{ intensity: hostile }, { period: hostile }, { strategy: hostile }, { autoShutdown: hostile }, { records: hostile }, { backoff: { min: hostile, max: 1 } }]) {
      expect(() => new Supervisor(options as never)).toThrow(expect.objectContaining({ code: "invalid-options" }));
    }
    for (const field of ["restart", "shutdown", "type"]) {
      expect(() => new Supervisor({ children: [{ id: "x", run: () => undefined, [field]: hostile } as never] })).toThrow(expect.objectContaining({ code: "invalid-spec" }));
    }
    expect(() => new Device().link(new Device(), hostile as never)).toThrow(expect.objectContaining({ code: "invalid-argument" }));
  });

  it("null is not a default: null restart, shutdown, type and significant are invalid-spec", () => {
    for (const field of ["restart", "shutdown", "type", "significant"]) {
      expect(() => new Supervisor({ children: [{ id: "x", run: () => undefined, [field]: null } as never] })).toThrow(expect.objectContaining({ code: "invalid-spec" }));
    }
  });

  it("records beyond a million are invalid-options, not a RangeError from an array", () => {
    expect(() => new Supervisor({ records: 2 ** 32 })).toThrow(expect.objectContaining({ code: "invalid-options" }));
  });

  it("the child API with an id that is not a string is invalid-argument", async () => {
    const sup = new Supervisor({ children: [] });
    await sup.start();
    expect(() => sup.stateOf(hostile as never)).toThrow(expect.objectContaining({ code: "invalid-argument" }));
    expect(() => sup.deleteChild(5 as never)).toThrow(expect.objectContaining({ code: "invalid-argument" }));
    await expect(sup.terminateChild(hostile as never)).rejects.toMatchObject({ code: "invalid-argument" });
    await sup.stop();
  });

  it("dumps, crash reports and describeFault refuse or render what is not theirs, typed and without throwing from inside", () => {
    for (const dump of [dumpTree, snapshot, treeToMermaid]) expect(() => dump({} as never)).toThrow(expect.objectContaining({ code: "invalid-argument" }));
    expect(() => attachCrashReports(5 as never, console)).toThrow(expect.objectContaining({ code: "invalid-argument" }));
    expect(() => attachCrashReports(new Supervisor({}), {} as never)).toThrow(expect.objectContaining({ code: "invalid-argument" }));
    expect(() => formatCrashReport({} as never)).toThrow(expect.objectContaining({ code: "invalid-argument" }));
    expect(() => formatCrashReport(null as never)).toThrow(expect.objectContaining({ code: "invalid-argument" }));
    expect(describeFault(null as never)).toBe("clean");
  });

  it("a nested supervisor without a name is named after its child id (its give-up error says so)", async () => {
    const app = new Supervisor({ children: [Supervisor.child("pipeline", () => ({ children: [] }))] });
    await app.start();
    expect(app.stateOf<Supervisor>("pipeline")!.name).toBe("pipeline");
    await app.stop();
  });
});

describe("listeners keep eventemitter3's meaning", () => {
  it("a once listener runs once and is removed; a listener's context is its this", async () => {
    const a = worker("a");
    const sup = new Supervisor({ intensity: 10, children: [a.spec] });
    let onceCalls = 0;
    const ctx = { seen: [] as string[] };
    sup.once("child-started", () => onceCalls++);
    sup.on(
      "child-started",
      function (this: typeof ctx, e) {
        this.seen.push(e.id);
      },
      ctx,
    );
    await sup.start();
    const restarted = next(sup, "child-restarted");
    a.current.crash();
    await restarted;
    expect(onceCalls).toBe(1);
    expect(sup.listenerCount("child-started")).toBe(1);
    expect(ctx.seen).toEqual(["a", "a"]);
    await sup.stop();
  });
});

describe("a signal handed out during init", () => {
  it("aborts when the run ends at once because a peer faulted while init ran", async () => {
    const peer = new Device();
    let initSignal!: AbortSignal;
    const sup = new Supervisor({
      children: [
        {
          id: "c",
          restart: "temporary",
          init: (ctx) => {
            initSignal = ctx.signal;
            ctx.device.link(peer, "monitor");
            peer.disconnect({ kind: "error", error: new Error("peer down") });
          },
          run: () => new Promise(() => {}),
        },
      ],
    });
    const exited = next(sup, "child-exited");
    await sup.start();
    expect((await exited).fault?.kind).toBe("cascade");
    expect(initSignal.aborted).toBe(true);
    await sup.stop();
  });
});
