import { afterEach, describe, expect, it, vi } from "vitest";
import { type ChildSpec, Crash, Device, Fault, IGNORE, StartError, Supervisor, SupervisorError } from "../../src/index.js";
import { next, signalled, statuses, until, worker } from "./helpers.js";

afterEach(() => {
  vi.useRealTimers();
});

async function started(options: ConstructorParameters<typeof Supervisor>[0]): Promise<Supervisor> {
  const sup = new Supervisor(options);
  await sup.start();
  return sup;
}

describe("start and stop", () => {
  it("children start in order, each after the previous init finished", async () => {
    const order: string[] = [];
    const spec = (id: string) => ({
      id,
      init: async () => {
        order.push(`init ${id} begins`);
        await new Promise((r) => setTimeout(r, 1));
        order.push(`init ${id} ends`);
      },
      run: (ctx: { signal: AbortSignal }) => new Promise((resolve) => ctx.signal.addEventListener("abort", resolve)),
    });
    const sup = await started({ children: [spec("a"), spec("b"), spec("c")] });
    expect(order).toEqual(["init a begins", "init a ends", "init b begins", "init b ends", "init c begins", "init c ends"]);
    expect(sup.whichChildren().map((c) => c.id)).toEqual(["a", "b", "c"]);
    await sup.stop();
  });

  it("stop stops children in reverse start order and ends cleanly", async () => {
    const a = worker("a");
    const b = worker("b");
    const c = worker("c");
    const log: string[] = [];
    for (const w of [a, b, c]) w.log.length = 0;
    const sup = await started({ children: [a.spec, b.spec, c.spec] });
    sup.on("child-exited", (e) => log.push(e.id));
    const monitor = new Device();
    monitor.link(sup.device, "monitor");
    await sup.stop();
    expect(log).toEqual(["c", "b", "a"]);
    await expect(sup.done).resolves.toBeUndefined();
    expect(monitor.tryReceive()).toEqual({ kind: "disconnected", from: sup.device.id });
    expect(sup.whichChildren().every((x) => x.status === "stopped" && x.device === undefined)).toBe(true);
  });

  it("a failed start stops the children already started, in reverse order, and rejects StartError", async () => {
    const a = worker("a");
    const b = worker("b");
    const exits: string[] = [];
    const sup = new Supervisor({ children: [a.spec, b.spec, worker("c", { failInit: () => new Error("no db") }).spec, worker("d").spec] });
    sup.on("child-exited", (e) => exits.push(e.id));
    const error = await sup.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StartError);
    expect(error).toMatchObject({ code: "start-failed", childId: "c" });
    expect((error as StartError).cause).toEqual(new Error("no db"));
    expect(exits).toEqual(["b", "a"]);
    await expect(sup.done).rejects.toBe(error);
    expect(sup.device.fault).toEqual({ kind: "error", error });
  });

  it("init returning IGNORE leaves the child listed as stopped and the start goes on", async () => {
    const b = worker("b");
    const sup = await started({ children: [{ id: "a", init: () => IGNORE, run: () => {} }, b.spec] });
    expect(statuses(sup)).toEqual({ a: "stopped", b: "running" });
    expect(sup.whichChildren()[0]!.device).toBeUndefined();
    await sup.stop();
  });

  it("a temporary child whose init returns IGNORE is not kept", async () => {
    const sup = await started({ children: [{ id: "t", restart: "temporary", init: () => IGNORE, run: () => {} }] });
    expect(sup.whichChildren()).toEqual([]);
    await sup.stop();
  });

  it("starting twice is already-started; stopping twice is the same ending", async () => {
    const sup = await started({ children: [] });
    await expect(sup.start()).rejects.toMatchObject({ code: "already-started" });
    await Promise.all([sup.stop(), sup.stop()]);
    await sup.stop();
    expect(sup.status).toBe("stopped");
  });

  it("a shutdown message to the supervisor's device stops it like stop()", async () => {
    const a = worker("a");
    const sup = await started({ children: [a.spec] });
    const shutdown = next(sup, "shutdown");
    sup.device.line().shutdown(0);
    expect((await shutdown).reason).toBe("shutdown-request");
    await expect(sup.done).resolves.toBeUndefined();
    expect(sup.device.fault).toBeUndefined();
  });

  it("a supervisor brought down by a faulted peer stops its children, and done rejects", async () => {
    const a = worker("a");
    const sup = await started({ children: [a.spec] });
    const peer = new Device();
    sup.device.link(peer, "peer");
    peer.disconnect(Fault.error("upstream"));
    await expect(sup.done).rejects.toBeInstanceOf(Crash);
    expect(statuses(sup)).toEqual({ a: "stopped" });
    expect(sup.device.fault).toEqual(Fault.cascade(peer.id));
  });
});

describe("restart types", () => {
  it("permanent: restarted after a crash and after a clean exit", async () => {
    const a = worker("a");
    const sup = await started({ children: [a.spec] });
    const restarted = next(sup, "child-restarted");
    a.current.crash();
    expect((await restarted).restarts).toBe(1);
    const again = next(sup, "child-restarted");
    a.current.finish();
    expect((await again).restarts).toBe(2);
    expect(a.runs).toHaveLength(3);
    await sup.stop();
  });

  it("transient: restarted after a crash, not after a clean exit", async () => {
    const a = worker("a", { restart: "transient" });
    const sup = await started({ children: [a.spec] });
    const restarted = next(sup, "child-restarted");
    a.current.crash();
    await restarted;
    const exited = next(sup, "child-exited");
    a.current.finish();
    expect((await exited).fault).toBeUndefined(); // the decision is made as the exit is reported
    expect(a.runs).toHaveLength(2);
    expect(statuses(sup)).toEqual({ a: "stopped" });
    await sup.stop();
  });

  it("transient: a shutdown sent to the child's device is a normal exit", async () => {
    const a = worker("a", { restart: "transient" });
    const sup = await started({ children: [a.spec] });
    const exited = next(sup, "child-exited");
    a.current.ctx.device.line().shutdown(0);
    expect((await exited).fault).toBeUndefined();
    expect(a.runs).toHaveLength(1);
    await sup.stop();
  });

  it("temporary: never restarted, and forgotten when it ends", async () => {
    const a = worker("a", { restart: "temporary" });
    const sup = await started({ children: [a.spec] });
    const exited = next(sup, "child-exited");
    a.current.crash();
    await exited;
    expect(sup.whichChildren()).toEqual([]);
    await sup.stop();
  });

  it("a child's cascade (a device it links to faults) is a crash", async () => {
    const upstream = new Device();
    const sup = await started({
      children: [{ id: "a", restart: "transient", run: (ctx) => (ctx.device.link(upstream, "monitor"), new Promise(() => {})) }],
    });
    const exited = next(sup, "child-exited");
    upstream.disconnect(Fault.error("gone"));
    expect((await exited).fault).toEqual(Fault.cascade(upstream.id));
    await next(sup, "child-restarted");
    await sup.stop();
  });
});

describe("strategies", () => {
  it("one-for-one: a crash restarts only that child", async () => {
    const [a, b, c] = [worker("a"), worker("b"), worker("c")];
    const sup = await started({ strategy: "one-for-one", children: [a.spec, b.spec, c.spec] });
    const restarted = next(sup, "child-restarted");
    b.current.crash();
    expect((await restarted).id).toBe("b");
    expect([a.runs.length, b.runs.length, c.runs.length]).toEqual([1, 2, 1]);
    await sup.stop();
  });

  it("one-for-all: a crash restarts every sibling, stopping them in reverse order first", async () => {
    const [a, b, c] = [worker("a"), worker("b"), worker("c")];
    const sup = await started({ strategy: "one-for-all", children: [a.spec, b.spec, c.spec] });
    const exits: string[] = [];
    const starts: string[] = [];
    sup.on("child-exited", (e) => exits.push(e.id));
    sup.on("child-started", (e) => starts.push(e.id));
    const last = new Promise<void>((resolve) => sup.on("child-started", (e) => e.id === "c" && resolve()));
    b.current.crash();
    await last;
    expect(exits).toEqual(["b", "c", "a"]);
    expect(starts).toEqual(["a", "b", "c"]);
    expect([a.runs.length, b.runs.length, c.runs.length]).toEqual([2, 2, 2]);
    expect(sup.whichChildren().map((x) => x.restarts)).toEqual([1, 1, 1]);
    await sup.stop();
  });

  it("rest-for-one: a crash restarts that child and those started after it", async () => {
    const [a, b, c] = [worker("a"), worker("b"), worker("c")];
    const sup = await started({ strategy: "rest-for-one", children: [a.spec, b.spec, c.spec] });
    const starts: string[] = [];
    sup.on("child-started", (e) => starts.push(e.id));
    const last = new Promise<void>((resolve) => sup.on("child-started", (e) => e.id === "c" && resolve()));
    b.current.crash();
    await last;
    expect(starts).toEqual(["b", "c"]);
    expect([a.runs.length, b.runs.length, c.runs.length]).toEqual([1, 2, 2]);
    await sup.stop();
  });

  it("one-for-all: temporary siblings stopped by the strategy are not brought back", async () => {
    const [a, t] = [worker("a"), worker("t", { restart: "temporary" })];
    const sup = await started({ strategy: "one-for-all", children: [a.spec, t.spec] });
    const restarted = next(sup, "child-restarted");
    a.current.crash();
    await restarted;
    expect(sup.whichChildren().map((x) => x.id)).toEqual(["a"]);
    await sup.stop();
  });

  it("one-for-all: a stopped sibling stays stopped", async () => {
    const [a, b] = [worker("a"), worker("b")];
    const sup = await started({ strategy: "one-for-all", children: [a.spec, b.spec] });
    await sup.terminateChild("b");
    const restarted = next(sup, "child-restarted");
    a.current.crash();
    await restarted;
    expect(statuses(sup)).toEqual({ a: "running", b: "stopped" });
    await sup.stop();
  });
});

describe("restart intensity", () => {
  it("more than `intensity` restarts within `period` stops every child in reverse order and fails the supervisor", async () => {
    const [a, b] = [worker("a"), worker("b")];
    const sup = await started({ intensity: 2, period: 10_000, children: [a.spec, b.spec] });
    const exceeded = next(sup, "restart-intensity-exceeded");
    const exits: string[] = [];
    sup.on("child-exited", (e) => exits.push(e.id));
    for (let i = 0; i < 2; i++) {
      const r = next(sup, "child-restarted");
      b.current.crash();
      await r;
    }
    b.current.crash();
    expect(await exceeded).toMatchObject({ id: "b", intensity: 2, period: 10_000 });
    const error = await sup.done.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SupervisorError);
    expect(error).toMatchObject({ code: "intensity-exceeded" });
    expect(exits).toEqual(["b", "b", "b", "a"]);
    expect(sup.device.fault).toEqual({ kind: "error", error });
  });

  it("intensity 0: the first restart is already one too many", async () => {
    const a = worker("a");
    const sup = await started({ intensity: 0, children: [a.spec] });
    a.current.crash();
    await expect(sup.done).rejects.toMatchObject({ code: "intensity-exceeded" });
  });

  it("restarts older than `period` no longer count (a sliding window)", async () => {
    vi.useFakeTimers();
    const a = worker("a");
    const sup = await started({ intensity: 1, period: 1000, children: [a.spec] });
    a.current.crash();
    await vi.advanceTimersByTimeAsync(1001);
    a.current.crash();
    await vi.advanceTimersByTimeAsync(1001);
    a.current.crash();
    await vi.advanceTimersByTimeAsync(0);
    expect(sup.status).toBe("running");
    expect(a.runs).toHaveLength(4);
    await sup.stop();
  });

  it("a failed restart counts too, and is retried until the intensity gives out", async () => {
    let failing = false;
    const a = worker("a", { failInit: () => (failing ? new Error("still broken") : undefined) });
    const sup = await started({ intensity: 3, period: 10_000, children: [a.spec] });
    failing = true;
    a.current.crash();
    await expect(sup.done).rejects.toMatchObject({ code: "intensity-exceeded" });
    expect(a.runs).toHaveLength(1);
    expect(sup.whichChildren()[0]!.lastFault).toEqual(Fault.error(new Error("still broken")));
  });

  it("a failed restart that then succeeds brings the child back, both attempts counted", async () => {
    let failures = 0;
    const a = worker("a", { failInit: () => (failures-- > 0 ? new Error("once") : undefined) });
    const sup = await started({ intensity: 5, children: [a.spec] });
    failures = 1;
    const restarted = next(sup, "child-restarted");
    a.current.crash();
    await restarted;
    expect(a.runs).toHaveLength(2);
    expect(sup.whichChildren()[0]).toMatchObject({ status: "running", restarts: 2 });
    await sup.stop();
  });

  it("a nested supervisor exceeding its intensity is restarted by its parent", async () => {
    const inner = worker("inner");
    const sup = await started({ children: [Supervisor.child("sub", () => ({ intensity: 0, children: [inner.spec] }))] });
    const restarted = next(sup, "child-restarted");
    inner.current.crash();
    const event = await restarted;
    expect(event.id).toBe("sub");
    expect(sup.whichChildren()[0]).toMatchObject({ id: "sub", type: "supervisor", status: "running", restarts: 1 });
    expect(sup.whichChildren()[0]!.lastFault).toMatchObject({ kind: "error", error: { code: "intensity-exceeded" } });
    expect(inner.runs).toHaveLength(2);
    await sup.stop();
  });
});

describe("shutdown: grace, brutal, infinity", () => {
  it("a child that ignores its signal is killed after its grace period; what it does later never reaches the supervisor", async () => {
    vi.useFakeTimers();
    const stubborn = worker("s", { stubborn: true, shutdown: 1000 });
    const sup = await started({ children: [stubborn.spec] });
    const exited = next(sup, "child-exited");
    const stopping = sup.stop();
    await vi.advanceTimersByTimeAsync(999);
    expect(sup.status).toBe("stopping");
    await vi.advanceTimersByTimeAsync(1);
    expect(await exited).toMatchObject({ id: "s", fault: Fault.killed, requested: true });
    await stopping;
    stubborn.current.crash(new Error("too late")); // dropped: that run was abandoned
    await vi.runAllTimersAsync();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("brutal: killed at once, signal already aborted", async () => {
    const b = worker("b", { stubborn: true, shutdown: "brutal" });
    const sup = await started({ children: [b.spec] });
    const exited = next(sup, "child-exited");
    await sup.terminateChild("b");
    expect((await exited).fault).toEqual(Fault.killed);
    expect(b.current.ctx.signal.aborted).toBe(true);
    await sup.stop();
  });

  it("infinity: the supervisor waits as long as the child takes", async () => {
    vi.useFakeTimers();
    const slow = worker("slow", { stubborn: true, shutdown: "infinity" });
    const sup = await started({ children: [slow.spec] });
    let stopped = false;
    const stopping = sup.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(1e9);
    expect(stopped).toBe(false);
    slow.current.finish();
    await stopping;
    expect(sup.device.fault).toBeUndefined();
  });

  it("a graceful child that finishes within its grace period exits cleanly", async () => {
    const a = worker("a", { shutdown: 5000 });
    const sup = await started({ children: [a.spec] });
    const exited = next(sup, "child-exited");
    await sup.terminateChild("a");
    expect(await exited).toMatchObject({ fault: undefined, requested: true });
    await sup.stop();
  });
});

describe("child API (OTP's answers)", () => {
  it("startChild adds at the end and starts; a duplicate id is already-started or already-present", async () => {
    const sup = await started({ children: [worker("a").spec] });
    const b = worker("b");
    const info = await sup.startChild(b.spec);
    expect(info).toMatchObject({ id: "b", status: "running", type: "worker", restarts: 0 });
    expect(info.device).toBe(b.current.ctx.device.id);
    await expect(sup.startChild(worker("b").spec)).rejects.toMatchObject({ code: "already-started" });
    await sup.terminateChild("b");
    await expect(sup.startChild(worker("b").spec)).rejects.toMatchObject({ code: "already-present" });
    expect(sup.whichChildren().map((c) => c.id)).toEqual(["a", "b"]);
    await sup.stop();
  });

  it("startChild whose init fails rejects StartError and the spec is not kept", async () => {
    const sup = await started({ children: [] });
    await expect(sup.startChild(worker("x", { failInit: () => new Error("bad") }).spec)).rejects.toBeInstanceOf(StartError);
    expect(sup.whichChildren()).toEqual([]);
    await sup.stop();
  });

  it("terminateChild keeps the spec, stopped; restartChild starts it again", async () => {
    const a = worker("a");
    const sup = await started({ children: [a.spec] });
    await sup.terminateChild("a");
    expect(sup.whichChildren()[0]).toMatchObject({ status: "stopped" });
    expect(sup.whichChildren()[0]!.device).toBeUndefined();
    expect(a.runs).toHaveLength(1); // not restarted: it was asked to stop
    const info = await sup.restartChild("a");
    expect(info.status).toBe("running");
    expect(a.runs).toHaveLength(2);
    await sup.stop();
  });

  it("terminateChild of a temporary child forgets it", async () => {
    const sup = await started({ children: [worker("t", { restart: "temporary" }).spec] });
    await sup.terminateChild("t");
    expect(sup.whichChildren()).toEqual([]);
    await sup.stop();
  });

  it("restartChild of a running child is running; deleteChild of a running child is running", async () => {
    const sup = await started({ children: [worker("a").spec] });
    await expect(sup.restartChild("a")).rejects.toMatchObject({ code: "running" });
    expect(() => sup.deleteChild("a")).toThrow(expect.objectContaining({ code: "running" }));
    await sup.terminateChild("a");
    sup.deleteChild("a");
    expect(sup.whichChildren()).toEqual([]);
    await sup.stop();
  });

  it("unknown ids are not-found everywhere", async () => {
    const sup = await started({ children: [] });
    await expect(sup.terminateChild("nope")).rejects.toMatchObject({ code: "not-found" });
    await expect(sup.restartChild("nope")).rejects.toMatchObject({ code: "not-found" });
    expect(() => sup.deleteChild("nope")).toThrow(expect.objectContaining({ code: "not-found" }));
    await sup.stop();
  });

  it("countChildren counts specs, running children and types", async () => {
    const sup = await started({ children: [worker("a").spec, worker("b").spec, Supervisor.child("s", () => ({ children: [] }))] });
    await sup.terminateChild("b");
    expect(sup.countChildren()).toEqual({ specs: 3, active: 2, supervisors: 1, workers: 2 });
    await sup.stop();
  });

  it("while a child waits out its backoff it is restarting: deleteChild and restartChild say so", async () => {
    vi.useFakeTimers();
    const a = worker("a");
    const sup = await started({ backoff: { min: 1000, max: 1000 }, children: [a.spec] });
    a.current.crash();
    await vi.advanceTimersByTimeAsync(0);
    expect(sup.whichChildren()[0]).toMatchObject({ status: "restarting" });
    expect(sup.whichChildren()[0]!.device).toBeUndefined();
    expect(() => sup.deleteChild("a")).toThrow(expect.objectContaining({ code: "restarting" }));
    await expect(sup.restartChild("a")).rejects.toMatchObject({ code: "restarting" });
    await vi.advanceTimersByTimeAsync(1000);
    expect(sup.whichChildren()[0]).toMatchObject({ status: "running", restarts: 1 });
    await sup.stop();
  });

  it("the API answers on a supervisor that is not running are not-running", async () => {
    const sup = new Supervisor({ children: [] });
    await expect(sup.startChild(worker("a").spec)).rejects.toMatchObject({ code: "not-running" });
    await sup.stop();
    await expect(sup.restartChild("a")).rejects.toMatchObject({ code: "not-running" });
  });
});

describe("validation", () => {
  const bad = (options: unknown) => () => new Supervisor(options as never);
  it("bad options are invalid-options", () => {
    for (const options of [null, { strategy: "all" }, { intensity: -1 }, { intensity: 1.5 }, { period: 0 }, { autoShutdown: "sometimes" }, { backoff: { min: 10, max: 5 } }, { children: {} }]) {
      expect(bad(options)).toThrow(expect.objectContaining({ name: "SupervisorError", code: "invalid-options" }));
    }
  });
  it("bad specs are invalid-spec, naming the field", () => {
    const run = () => {};
    for (const spec of [{}, { id: "" }, { id: "a" }, { id: "a", run, restart: "sometimes" }, { id: "a", run, shutdown: -1 }, { id: "a", run, type: "thread" }, { id: "a", run, init: 3 }]) {
      expect(bad({ children: [spec] })).toThrow(expect.objectContaining({ code: "invalid-spec" }));
    }
    expect(bad({ children: [{ id: "a", run }, { id: "a", run }] })).toThrow(/two children have the id "a"/);
  });
  it("significant children must be transient or temporary, under an autoShutdown other than never", () => {
    const run = () => {};
    expect(bad({ autoShutdown: "any-significant", children: [{ id: "a", run, significant: true }] })).toThrow(/transient or temporary/);
    expect(bad({ children: [{ id: "a", run, restart: "transient", significant: true }] })).toThrow(/autoShutdown/);
  });
});

describe("significant children and auto-shutdown", () => {
  it("any-significant: a significant transient child's clean exit shuts the supervisor down cleanly", async () => {
    const [a, s] = [worker("a"), worker("s", { restart: "transient", significant: true })];
    const sup = await started({ autoShutdown: "any-significant", children: [a.spec, s.spec] });
    const shutdown = next(sup, "shutdown");
    s.current.finish();
    expect(await shutdown).toMatchObject({ reason: "auto-shutdown", fault: undefined });
    await expect(sup.done).resolves.toBeUndefined();
    expect(sup.device.fault).toBeUndefined();
  });

  it("any-significant: a significant transient child's crash restarts it instead", async () => {
    const s = worker("s", { restart: "transient", significant: true });
    const sup = await started({ autoShutdown: "any-significant", children: [s.spec] });
    const restarted = next(sup, "child-restarted");
    s.current.crash();
    await restarted;
    expect(sup.status).toBe("running");
    await sup.stop();
  });

  it("all-significant: the supervisor shuts down when the last significant child has ended", async () => {
    const [s1, s2] = [worker("s1", { restart: "temporary", significant: true }), worker("s2", { restart: "temporary", significant: true })];
    const sup = await started({ autoShutdown: "all-significant", children: [s1.spec, s2.spec, worker("plain").spec] });
    const s1Exited = next(sup, "child-exited");
    s1.current.crash();
    await s1Exited;
    expect(sup.status).toBe("running");
    const shutdown = next(sup, "shutdown");
    s2.current.finish();
    expect((await shutdown).reason).toBe("auto-shutdown");
  });

  it("terminating a significant child does not shut the supervisor down", async () => {
    const s = worker("s", { restart: "transient", significant: true });
    const sup = await started({ autoShutdown: "any-significant", children: [s.spec] });
    await sup.terminateChild("s");
    expect(sup.status).toBe("running");
    await sup.stop();
  });
});

describe("restarts never block the API", () => {
  it("a child whose restart hangs in init: whichChildren answers, terminateChild and stop return (after its grace)", async () => {
    let hang = false;
    const a = {
      id: "a",
      shutdown: 50,
      init: () => (hang ? new Promise(() => {}) : undefined),
      run: () => new Promise((_, reject) => setTimeout(() => reject(new Error("x")), 0)),
    };
    const sup = await started({ children: [a, worker("b").spec] });
    hang = true;
    await new Promise((r) => setTimeout(r, 5));
    expect(statuses(sup)).toEqual({ a: "restarting", b: "running" });
    await sup.terminateChild("a");
    expect(statuses(sup)).toEqual({ a: "stopped", b: "running" });
    await sup.stop();
    expect(sup.status).toBe("stopped");
  });

  it("stop() during a backoff wait cancels the pending restart: no timer outlives it", async () => {
    vi.useFakeTimers();
    const a = worker("a");
    const sup = await started({ backoff: { min: 60_000, max: 60_000 }, children: [a.spec] });
    a.current.crash();
    await vi.advanceTimersByTimeAsync(0);
    await sup.stop();
    expect(vi.getTimerCount()).toBe(0);
    expect(a.runs).toHaveLength(1);
  });
});

describe("backoff", () => {
  it("restarts wait min, then twice as long each time, up to max", async () => {
    vi.useFakeTimers();
    const a = worker("a");
    const sup = await started({ intensity: 100, period: 1e9, backoff: { min: 100, max: 350 }, children: [a.spec] });
    const delays: number[] = [];
    sup.on("child-restarted", (e) => delays.push(e.delay));
    for (let i = 0; i < 4; i++) {
      a.current.crash();
      await vi.advanceTimersByTimeAsync(350);
    }
    expect(delays).toEqual([100, 200, 350, 350]);
    await sup.stop();
  });

  it("a child that ran quietly for the reset period starts again from min", async () => {
    vi.useFakeTimers();
    const a = worker("a");
    const sup = await started({ intensity: 100, backoff: { min: 100, max: 1000, reset: 5000 }, children: [a.spec] });
    const delays: number[] = [];
    sup.on("child-restarted", (e) => delays.push(e.delay));
    a.current.crash();
    await vi.advanceTimersByTimeAsync(100);
    a.current.crash();
    await vi.advanceTimersByTimeAsync(200);
    await vi.advanceTimersByTimeAsync(5000);
    a.current.crash();
    await vi.advanceTimersByTimeAsync(100);
    expect(delays).toEqual([100, 200, 100]);
    await sup.stop();
  });
});

describe("events", () => {
  it("child-started, child-exited (with the fault), child-restarted carry the child id, device and timing", async () => {
    const a = worker("a");
    const sup = new Supervisor({ children: [a.spec] });
    const startedEvent = next(sup, "child-started");
    await sup.start();
    const first = await startedEvent;
    expect(first).toMatchObject({ id: "a", restarts: 0, device: a.current.ctx.device.id });
    const exited = next(sup, "child-exited");
    const restarted = next(sup, "child-restarted");
    const boom = new Error("boom");
    a.current.crash(boom);
    expect(await exited).toMatchObject({ id: "a", device: first.device, fault: { kind: "error", error: boom }, requested: false });
    const r = await restarted;
    expect(r).toMatchObject({ id: "a", restarts: 1, delay: 0 });
    expect(r.device).not.toBe(first.device);
    await sup.stop();
  });
});

describe("execution records", () => {
  it("every child run that ends is a record (event and ring buffer of the last N)", async () => {
    const a = worker("a");
    const sup = await started({ records: 2, children: [a.spec] });
    const seen: string[] = [];
    sup.on("record", (r) => seen.push(r.outcome));
    for (let i = 0; i < 3; i++) {
      const restarted = next(sup, "child-restarted");
      a.current.crash(new Error(`crash ${i}`));
      await restarted;
    }
    await sup.stop();
    expect(seen).toEqual(["error", "error", "error", "shutdown"]);
    const kept = sup.records();
    expect(kept).toHaveLength(2);
    expect(kept[0]).toMatchObject({ name: "a", outcome: "error", fault: { kind: "error", error: new Error("crash 2") } });
    expect(kept[1]).toMatchObject({ name: "a", outcome: "shutdown" });
    expect(kept[1]!.id).toBeGreaterThan(kept[0]!.id);
    expect(kept[0]!.duration).toBeGreaterThanOrEqual(0);
  });
});

describe("overlapping restarts, plain-value runs, and the API during start()", () => {
  it("a run that returns a plain value (not a promise) is a clean exit, reported started then exited", async () => {
    const events: string[] = [];
    const sup = new Supervisor({ children: [{ id: "sync", restart: "transient", run: () => 42 }] });
    sup.on("child-started", () => events.push("started"));
    sup.on("child-exited", (e) => events.push(`exited ${e.fault === undefined ? "clean" : e.fault.kind}`));
    const exited = next(sup, "child-exited");
    await sup.start();
    await exited;
    expect(events).toEqual(["started", "exited clean"]);
    expect(statuses(sup)).toEqual({ sync: "stopped" });
    await sup.stop();
  });

  it("a permanent run that returns a plain value is restarted (until the intensity gives out) without an unhandled rejection", async () => {
    const sup = new Supervisor({ intensity: 2, children: [{ id: "sync", run: () => undefined }] });
    await sup.start().catch(() => {});
    await expect(sup.done).rejects.toMatchObject({ code: "intensity-exceeded" });
  });

  it("rest-for-one: a crash while a later sibling's restart is still in init restarts the whole rest", async () => {
    let hang = false;
    let release: () => void = () => {};
    const hanging = signalled();
    const a = worker("a");
    const c = worker("c");
    const b: ChildSpec = {
      id: "b",
      init: () => (hang ? new Promise<void>((r) => ((release = r), hanging.fire())) : undefined),
      run: (ctx) => new Promise((resolve, reject) => {
        bRuns.push(reject);
        ctx.signal.addEventListener("abort", () => resolve(undefined));
      }),
    };
    const bRuns: ((e: Error) => void)[] = [];
    const sup = await started({ strategy: "rest-for-one", intensity: 10, children: [a.spec, b, c.spec] });
    hang = true;
    bRuns.at(-1)!(new Error("b crashed"));
    await hanging.promise; // b's restart now hangs in init
    const aExited = next(sup, "child-exited");
    a.current.crash(); // a's restart takes over b and c (b's start is cancelled, given its grace)
    await aExited;
    hang = false;
    release(); // b's cancelled init winds down; a's restart then starts a, b, c
    await until(sup, () => Object.values(statuses(sup)).every((x) => x === "running") && a.runs.length === 2);
    expect(statuses(sup)).toEqual({ a: "running", b: "running", c: "running" });
    await sup.stop();
  });

  it("rest-for-one with backoff: a later restart waiting out its delay yields to the earlier sibling's restart, in start order", async () => {
    vi.useFakeTimers();
    const [a, b, c] = [worker("a"), worker("b"), worker("c")];
    const sup = await started({ strategy: "rest-for-one", intensity: 10, backoff: { min: 100, max: 100 }, children: [a.spec, b.spec, c.spec] });
    const starts: string[] = [];
    sup.on("child-started", (e) => starts.push(e.id));
    b.current.crash();
    await vi.advanceTimersByTimeAsync(10);
    a.current.crash();
    await vi.advanceTimersByTimeAsync(200);
    expect(starts).toEqual(["a", "b", "c"]);
    expect(statuses(sup)).toEqual({ a: "running", b: "running", c: "running" });
    await sup.stop();
  });

  it("deleteChild or terminateChild during start() on a child not started yet: it is not started behind the supervisor's back", async () => {
    let release!: () => void;
    const first: ChildSpec = { id: "first", init: () => new Promise<void>((r) => (release = r)), run: (ctx) => new Promise((r) => ctx.signal.addEventListener("abort", r)) };
    const deleted = worker("deleted");
    const held = worker("held");
    const sup = new Supervisor({ children: [first, deleted.spec, held.spec] });
    const starting = sup.start(); // "first"'s init has begun: it runs within start()'s first step
    sup.deleteChild("deleted");
    await sup.terminateChild("held");
    release();
    await starting;
    expect(deleted.runs).toHaveLength(0);
    expect(held.runs).toHaveLength(0);
    expect(statuses(sup)).toEqual({ first: "running", held: "stopped" });
    await sup.stop();
  });

  it("a clean disconnect of the supervisor's device from outside stops the children before done resolves", async () => {
    const a = worker("a");
    const sup = await started({ children: [a.spec] });
    const shutdown = next(sup, "shutdown");
    sup.device.disconnect();
    await sup.done;
    expect(a.current.ctx.device.isConnected).toBe(false);
    expect(await shutdown).toMatchObject({ reason: "shutdown-request", fault: undefined, device: sup.device.id });
  });

  it("a shutdown queued on the supervisor's device before start(): start() refuses instead of leaving a zombie", async () => {
    const a = worker("a");
    const sup = new Supervisor({ children: [a.spec] });
    sup.device.line().shutdown(0);
    await expect(sup.start()).rejects.toMatchObject({ code: "not-running" });
    expect(a.runs).toHaveLength(0);
    await expect(sup.done).resolves.toBeUndefined();
    expect(sup.status).toBe("stopped");
  });

  it("start() after stop() is not-running", async () => {
    const sup = new Supervisor({ children: [] });
    await sup.stop();
    await expect(sup.start()).rejects.toMatchObject({ code: "not-running" });
  });
});

describe("stopping while something is starting or restarting", () => {
  it("an init that stops its own supervisor synchronously: start() and stop() both settle", async () => {
    let sup!: Supervisor;
    const a = worker("a");
    sup = new Supervisor({ children: [a.spec, { id: "b", init: () => (void sup.stop(), 1), run: (ctx) => new Promise((r) => ctx.signal.addEventListener("abort", r)) }] });
    const started = sup.start().catch((e: unknown) => e);
    await expect(started).resolves.toMatchObject({ code: "not-running" });
    await sup.stop();
    expect(statuses(sup)).toEqual({ a: "stopped", b: "stopped" });
  });

  it("terminateChild of one member during a one-for-all restart: the rest of the group still comes back", async () => {
    let hang = false;
    const hanging = signalled();
    const b = worker("b");
    const sup = await started({
      strategy: "one-for-all",
      intensity: 10,
      children: [{ id: "a", shutdown: 20, init: () => (hang ? (hanging.fire(), new Promise(() => {})) : undefined), run: (ctx) => new Promise((r) => ctx.signal.addEventListener("abort", r)) }, b.spec],
    });
    hang = true;
    b.current.crash();
    await hanging.promise; // a's restart is now hanging in init
    await sup.terminateChild("a");
    await until(sup, () => statuses(sup).b === "running");
    expect(statuses(sup)).toEqual({ a: "stopped", b: "running" });
    await sup.stop();
  });

  it("stop() while a nested supervisor is starting waits until its children have stopped", async () => {
    // The grandchild takes 50 ms to wind down after it is asked to stop.
    const innerDevices: Device[] = [];
    const inner: ChildSpec = {
      id: "inner",
      run: (ctx) => {
        innerDevices.push(ctx.device);
        return new Promise((r) => ctx.signal.addEventListener("abort", () => setTimeout(r, 50)));
      },
    };
    const parent = new Supervisor({
      children: [
        Supervisor.child("sub", () => ({
          children: [inner, { id: "slow", init: () => new Promise(() => {}), run: () => new Promise(() => {}), shutdown: "brutal" }],
        })),
      ],
    });
    const starting = parent.start().catch(() => {});
    await new Promise((r) => setTimeout(r, 10)); // sub has started "inner" and hangs in "slow"'s init
    expect(innerDevices).toHaveLength(1);
    await parent.stop();
    expect(innerDevices[0]!.isConnected).toBe(false); // no grandchild outlives stop()
    await starting;
  });
});
