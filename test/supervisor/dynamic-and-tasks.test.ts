import { afterEach, describe, expect, it, vi } from "vitest";
import { Crash, Device, DynamicSupervisor, Fault, Supervisor, SupervisorError, TaskSupervisor } from "../../src/index.js";
import { next, statuses, worker } from "./helpers.js";

afterEach(() => {
  vi.useRealTimers();
});

describe("DynamicSupervisor", () => {
  it("starts children on demand, with extraArguments before startChild's arguments", async () => {
    const dyn = new DynamicSupervisor({ extraArguments: ["db"] });
    await dyn.start();
    let seen: readonly unknown[] = [];
    const info = await dyn.startChild({ run: (ctx) => ((seen = ctx.args), new Promise(() => {})), shutdown: "brutal" }, "socket-1");
    expect(seen).toEqual(["db", "socket-1"]);
    expect(info.status).toBe("running");
    expect(info.id).toMatch(/\/1$/);
    await dyn.stop();
  });

  it("maxChildren: one more is max-children", async () => {
    const dyn = new DynamicSupervisor({ maxChildren: 2 });
    await dyn.start();
    await dyn.startChild(worker("a").spec);
    await dyn.startChild(worker("b").spec);
    await expect(dyn.startChild(worker("c").spec)).rejects.toMatchObject({ code: "max-children" });
    await dyn.terminateChild("a");
    await expect(dyn.startChild(worker("c").spec)).resolves.toMatchObject({ id: "c" });
    await dyn.stop();
  });

  it("one-for-one restarts; a child that stops for good is forgotten", async () => {
    const dyn = new DynamicSupervisor();
    await dyn.start();
    const a = worker("a");
    const t = worker("t", { restart: "transient" });
    await dyn.startChild(a.spec);
    await dyn.startChild(t.spec);
    const restarted = next(dyn, "child-restarted");
    a.current.crash();
    expect((await restarted).id).toBe("a");
    const tExited = next(dyn, "child-exited");
    t.current.finish();
    await tExited;
    expect(statuses(dyn)).toEqual({ a: "running" });
    await dyn.terminateChild("a");
    expect(dyn.whichChildren()).toEqual([]);
    await dyn.stop();
  });

  it("stops its children all at once, not one by one", async () => {
    vi.useFakeTimers();
    const dyn = new DynamicSupervisor();
    await dyn.start();
    for (const id of ["a", "b", "c"]) await dyn.startChild(worker(id, { stubborn: true, shutdown: 1000 }).spec);
    const stopping = dyn.stop();
    await vi.advanceTimersByTimeAsync(1000); // one grace period for all three, not three in a row
    await stopping;
    expect(dyn.status).toBe("stopped");
  });

  it("bad options are invalid-options", () => {
    expect(() => new DynamicSupervisor({ maxChildren: -1 })).toThrow(SupervisorError);
  });
});

describe("TaskSupervisor", () => {
  it("async: await a task's value", async () => {
    const tasks = new TaskSupervisor();
    await expect(tasks.async(async () => 42)).resolves.toBe(42);
    await tasks.stop();
  });

  it("async: a failing task rejects with Crash error; unawaited, it raises no unhandled rejection", async () => {
    const tasks = new TaskSupervisor();
    const failing = tasks.async(async () => {
      throw new Error("nope");
    });
    await expect(failing).rejects.toMatchObject({ kind: "error", cause: new Error("nope") });
    tasks.async(async () => {
      throw new Error("ignored");
    });
    await next(tasks as never, "child-exited"); // it failed, and nobody awaited it
    await tasks.stop();
  });

  it("async: cancel aborts the task's signal and resolves when it has ended", async () => {
    const tasks = new TaskSupervisor();
    let aborted = false;
    const task = tasks.async((signal) => new Promise((resolve) => signal.addEventListener("abort", () => ((aborted = true), resolve(1)))));
    await task.cancel();
    expect(aborted).toBe(true);
    await expect(task).rejects.toMatchObject({ kind: "shutdown" });
    expect(tasks.size).toBe(0);
    await tasks.stop();
  });

  it("async: a timeout ends the task with Crash timeout", async () => {
    vi.useFakeTimers();
    const tasks = new TaskSupervisor();
    const task = tasks.async(() => new Promise(() => {}), { timeout: 100 });
    const outcome = Promise.resolve(task).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(100);
    expect(await outcome).toMatchObject({ kind: "timeout" });
    expect(task.device.fault).toEqual(Fault.timeout);
    await tasks.stop();
  });

  it("stop cancels every running task (grace then kill) and refuses new ones", async () => {
    vi.useFakeTimers();
    const tasks = new TaskSupervisor({ shutdown: 500 });
    const stubborn = tasks.async(() => new Promise(() => {}));
    const stopping = tasks.stop();
    await vi.advanceTimersByTimeAsync(500);
    await stopping;
    await expect(stubborn).rejects.toMatchObject({ kind: "killed" });
    expect(() => tasks.async(() => 1)).toThrow(expect.objectContaining({ code: "not-running" }));
    await expect(tasks.done).resolves.toBeUndefined();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("asyncStream: ordered results, never more than maxConcurrency tasks at once", async () => {
    const tasks = new TaskSupervisor();
    let running = 0;
    let most = 0;
    const results: number[] = [];
    const stream = tasks.asyncStream(
      [5, 1, 4, 2, 3],
      async (n) => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, n));
        running--;
        return n * 10;
      },
      { maxConcurrency: 2 },
    );
    for await (const r of stream) if (r.status === "ok") results.push(r.value);
    expect(results).toEqual([50, 10, 40, 20, 30]);
    expect(most).toBe(2);
    await tasks.stop();
  });

  it("asyncStream: unordered yields as tasks finish", async () => {
    const tasks = new TaskSupervisor();
    const results: number[] = [];
    for await (const r of tasks.asyncStream([30, 1], async (n) => (await new Promise((res) => setTimeout(res, n)), n), { maxConcurrency: 2, ordered: false })) {
      if (r.status === "ok") results.push(r.value);
    }
    expect(results).toEqual([1, 30]);
    await tasks.stop();
  });

  it("asyncStream: a failing task is yielded as an exit with its Crash", async () => {
    const tasks = new TaskSupervisor();
    const out = [];
    for await (const r of tasks.asyncStream([1, 2], (n) => {
      if (n === 2) throw new Error("two");
      return n;
    })) out.push(r);
    expect(out[0]).toEqual({ status: "ok", value: 1 });
    expect(out[1]).toMatchObject({ status: "exit", reason: { kind: "error" } });
    expect((out[1] as { reason: Crash }).reason).toBeInstanceOf(Crash);
    await tasks.stop();
  });

  it("asyncStream: onTimeout throw ends the stream; kill-task yields the exit and goes on", async () => {
    const tasks = new TaskSupervisor();
    const slow = (n: number) => new Promise<number>((r) => setTimeout(() => r(n), n));
    const thrown = await (async () => {
      for await (const _ of tasks.asyncStream([1, 200], slow, { timeout: 20 })) void _;
    })().catch((e: unknown) => e);
    expect(thrown).toMatchObject({ kind: "timeout" });
    const out = [];
    for await (const r of tasks.asyncStream([200, 1], slow, { timeout: 20, onTimeout: "kill-task" })) out.push(r.status);
    expect(out).toEqual(["exit", "ok"]);
    await tasks.stop();
  });

  it("asyncStream: leaving early cancels running tasks and stops pulling inputs", async () => {
    const tasks = new TaskSupervisor();
    let pulled = 0;
    function* endless() {
      for (;;) yield ++pulled;
    }
    const aborted: number[] = [];
    for await (const r of tasks.asyncStream(endless(), (n, signal) => {
      if (n === 1) return n;
      return new Promise((resolve) => signal.addEventListener("abort", () => (aborted.push(n), resolve(n))));
    }, { maxConcurrency: 3 })) {
      expect(r).toEqual({ status: "ok", value: 1 });
      break;
    }
    expect(aborted.sort()).toEqual([2, 3]);
    expect(pulled).toBe(3);
    expect(tasks.size).toBe(0);
    await tasks.stop();
  });

  it("runs under a Supervisor as a child, and stops with it", async () => {
    const sup = new Supervisor({ children: [TaskSupervisor.child("tasks")] });
    await sup.start();
    expect(sup.whichChildren()[0]).toMatchObject({ id: "tasks", type: "supervisor", status: "running" });
    await sup.stop();
    expect(statuses(sup)).toEqual({ tasks: "stopped" });
  });
});

describe("TaskSupervisor: its own device", () => {
  it("a shutdown message stops it like stop()", async () => {
    const tasks = new TaskSupervisor();
    const task = tasks.async((signal) => new Promise((r) => signal.addEventListener("abort", r)));
    tasks.device.line().shutdown(0);
    await expect(tasks.done).resolves.toBeUndefined();
    await expect(task).rejects.toMatchObject({ kind: "shutdown" });
  });

  it("a faulted peer brings it down: its tasks are stopped and done rejects", async () => {
    const tasks = new TaskSupervisor();
    const task = tasks.async((signal) => new Promise((r) => signal.addEventListener("abort", r)));
    const peer = new Device();
    tasks.device.link(peer, "peer");
    peer.disconnect(Fault.error("upstream"));
    await expect(tasks.done).rejects.toMatchObject({ kind: "cascade", from: peer.id });
    await expect(task).rejects.toBeInstanceOf(Crash);
  });

  it("cancel() under shutdown brutal kills at once", async () => {
    const tasks = new TaskSupervisor({ shutdown: "brutal" });
    const task = tasks.async(() => new Promise(() => {}));
    await task.cancel();
    await expect(task).rejects.toMatchObject({ kind: "killed" });
    await tasks.stop();
  });
});

describe("TaskSupervisor: how it fails and what it refuses", () => {
  it("a faulted peer: done rejects with the cascade's Crash, not a made-up one", async () => {
    const tasks = new TaskSupervisor();
    const peer = new Device();
    tasks.device.link(peer, "peer");
    peer.disconnect(Fault.error("upstream"));
    await expect(tasks.done).rejects.toMatchObject({ kind: "cascade", from: peer.id });
  });

  it("a bad timeout is refused before any task starts", () => {
    const tasks = new TaskSupervisor();
    expect(() => tasks.async(() => 1, { timeout: -1 })).toThrow(expect.objectContaining({ code: "invalid-options" }));
    expect(tasks.size).toBe(0);
  });
});
