import { BroadcastChannel } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type ExecutionRecord, ExecutionError, Executor, LISTENER_WARNING } from "../../src/index.js";

const math = fileURLToPath(new URL("../fixtures/math.mjs", import.meta.url));
const announce = fileURLToPath(new URL("../fixtures/announce.mjs", import.meta.url));
const open: Executor[] = [];
function executor<A extends unknown[] = unknown[], R = unknown>(options: ConstructorParameters<typeof Executor>[0]): Executor<A, R> {
  const e = new Executor<A, R>(options);
  open.push(e);
  return e;
}
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(open.splice(0).map((e) => e.close({ timeout: 0 })));
});
const codeOf = (p: Promise<unknown>) => p.then(() => "resolved", (e: unknown) => (e instanceof ExecutionError ? e.code : `other: ${String(e)}`));

/** Announcements of the announce.mjs fixture: every thread that loads it, and every child that runs on one. */
function announcements() {
  const channel = new BroadcastChannel("backplane-test-announce");
  const seen: { event: string; threadId: number }[] = [];
  const waiters: { n: number; event: string; resolve: (id: number) => void }[] = [];
  channel.onmessage = (m) => {
    const data = (m as MessageEvent).data as { event: string; threadId: number };
    seen.push(data);
    for (const w of [...waiters]) {
      const matching = seen.filter((s) => s.event === w.event);
      if (matching.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(matching[w.n - 1]!.threadId);
      }
    }
  };
  return {
    /** The thread id of the nth `event` ("loaded" or "running"), once it has come. */
    nth(n: number, event = "loaded"): Promise<number> {
      const matching = seen.filter((s) => s.event === event);
      if (matching.length >= n) return Promise.resolve(matching[n - 1]!.threadId);
      return new Promise((resolve) => waiters.push({ n, event, resolve }));
    },
    close: () => channel.close(),
  };
}

describe("Executor timeouts of any length", () => {
  it("a call timeout of 2³¹ ms or more does not terminate the worker early; it fires at its time", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const spin = executor({ module: math, export: "spin", size: 1, idleTimeout: Number.POSITIVE_INFINITY });
    const long = 2 ** 31 + 10;
    let code: string | undefined;
    void codeOf(spin.execute([], { timeout: long })).then((c) => (code = c));
    await vi.waitFor(() => expect(vi.getTimerCount()).toBe(1), { interval: 5, timeout: 20_000 }); // the call has reached a worker
    await vi.advanceTimersByTimeAsync(86_400_000);
    expect(code).toBeUndefined();
    expect(spin.workers).toBe(1);
    await vi.advanceTimersByTimeAsync(long - 86_400_000);
    await vi.waitFor(() => expect(code).toBe("timeout"), { interval: 5 });
  });

  it("idleTimeout Infinity keeps an idle worker with no timer", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const add = executor<[number, number], number>({ module: math, export: "add", size: 1, idleTimeout: Number.POSITIVE_INFINITY });
    await expect(add.execute([1, 2])).resolves.toBe(3);
    expect(vi.getTimerCount()).toBe(0);
    expect(add.workers).toBe(1);
  });
});

describe("Executor cancellation", () => {
  it("an already-aborted signal rejects at once with aborted, the reason as cause, and starts no worker", async () => {
    const add = executor({ module: math, export: "add", size: 1 });
    const reason = new Error("no longer needed");
    const error = await add.execute([1, 2], { signal: AbortSignal.abort(reason) }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "ExecutionError", code: "aborted", cause: reason });
    expect(add.workers).toBe(0);
  });

  it("aborting a running call terminates its worker (even inside for(;;)), with aborted; other calls are untouched", async () => {
    const spin = executor({ module: math, export: "spin", size: 2 });
    const records: ExecutionRecord[] = [];
    spin.on("record", (r) => records.push(r));
    const controller = new AbortController();
    await spin.warm();
    const running = spin.execute([], { signal: controller.signal }).catch((e: unknown) => e);
    controller.abort("user cancelled");
    expect(await running).toMatchObject({ code: "aborted", cause: "user cancelled" });
    expect(spin.workers).toBe(0);
    expect(records[0]).toMatchObject({ outcome: "shutdown" });
    const add = executor<[number, number], number>({ module: math, export: "add", size: 1 });
    await expect(add.execute([2, 2])).resolves.toBe(4);
  });

  it("aborting a queued call drops it from the queue; the call ahead finishes", async () => {
    const slow = executor<[number, string], string>({ module: math, export: "slow", size: 1 });
    await slow.warm();
    const ahead = slow.execute([30, "ahead"]);
    const controller = new AbortController();
    const queued = codeOf(slow.execute([0, "queued"], { signal: controller.signal }));
    controller.abort();
    expect(await queued).toBe("aborted");
    await expect(ahead).resolves.toBe("ahead");
  });

  it("a shared signal collects no listeners: each settled call removes its own", async () => {
    const add = executor<[number, number], number>({ module: math, export: "add", size: 1 });
    const controller = new AbortController();
    const added = vi.spyOn(controller.signal, "addEventListener");
    const removed = vi.spyOn(controller.signal, "removeEventListener");
    for (let i = 0; i < 20; i++) await add.execute([i, 1], { signal: controller.signal });
    expect(added).toHaveBeenCalledTimes(20);
    expect(removed).toHaveBeenCalledTimes(20);
  });
});

describe("Executor close", () => {
  it("close({ timeout }) terminates a runaway call after the timeout: it fails with closed, and close resolves", async () => {
    const spin = executor({ module: math, export: "spin", size: 1 });
    const records: ExecutionRecord[] = [];
    spin.on("record", (r) => records.push(r));
    await spin.warm();
    const runaway = spin.execute([]).catch((e: unknown) => e);
    await spin.close({ timeout: 20 });
    expect(await runaway).toMatchObject({ name: "ExecutionError", code: "closed" });
    expect(spin.workers).toBe(0);
    expect(records[0]).toMatchObject({ outcome: "killed", fault: { kind: "killed" } });
  });

  it("a bounded close given while an unbounded one waits still bounds it", async () => {
    const spin = executor({ module: math, export: "spin", size: 1 });
    await spin.warm();
    const runaway = codeOf(spin.execute([]));
    const first = spin.close();
    const second = spin.close({ timeout: 0 });
    expect(second).toBe(first);
    await first;
    expect(await runaway).toBe("closed");
  });

  it("await using closes the executor at the end of the scope", async () => {
    let escaped: Executor<[number, number], number>;
    {
      await using add = new Executor<[number, number], number>({ module: math, export: "add", size: 1 });
      escaped = add;
      await expect(add.execute([1, 1])).resolves.toBe(2);
    }
    expect(escaped.workers).toBe(0);
    expect(await codeOf(escaped.execute([1, 1]))).toBe("closed");
  });

  it("warm() after close is refused with closed, and a warm() waiting when close comes is rejected", async () => {
    const add = executor({ module: math, export: "add", size: 1 });
    const waiting = codeOf(add.warm());
    await add.close();
    expect(await waiting).toBe("closed");
    expect(await codeOf(add.warm())).toBe("closed");
  });
});

describe("Executor record listeners", () => {
  it("a record listener that throws is reported as a warning; the call and the pool are unharmed", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const add = executor<[number, number], number>({ module: math, export: "add", size: 1 });
      add.on("record", () => {
        throw new Error("record listener bug");
      });
      await expect(add.execute([1, 2])).resolves.toBe(3);
      await expect(add.execute([2, 2])).resolves.toBe(4);
      await new Promise((r) => setImmediate(r));
      expect(warnings.some((w) => w.name === LISTENER_WARNING && /record listener bug/.test(w.message))).toBe(true);
    } finally {
      process.off("warning", onWarning);
    }
  });
});

describe("Executor standby", () => {
  it("a call after a kill is served by the reserve that was started before the kill", async () => {
    const heard = announcements();
    try {
      const pool = executor<[mode?: string], { threadId: number }>({ module: announce, export: "tid", size: 1, standby: true });
      const first = await heard.nth(1); // the reserve, started with the executor
      await pool.warm();
      const controller = new AbortController();
      const spinning = codeOf(pool.execute(["spin"], { signal: controller.signal }));
      const reserve = await heard.nth(2); // the first worker is busy: a new reserve was started
      expect(reserve).not.toBe(first);
      await pool.warm(); // …and it has loaded
      controller.abort();
      expect(await spinning).toBe("aborted");
      expect(pool.workers).toBe(1); // the killed worker is gone; the reserve is idle
      const answer = await pool.execute([]);
      expect(answer.threadId).toBe(reserve);
    } finally {
      heard.close();
    }
  });

  it("the reserve is not reaped by idleTimeout; extra idle workers are", async () => {
    const pool = executor<[], { threadId: number }>({ module: announce, export: "tid", size: 2, standby: true, idleTimeout: 0 });
    await pool.warm();
    await Promise.all([pool.execute([]), pool.execute([])]);
    await vi.waitFor(() => expect(pool.workers).toBe(1), { interval: 5, timeout: 10_000 });
    await expect(pool.warm()).resolves.toBeUndefined();
  });
});

describe.each(["thread", "process"] as const)("a kill that really kills (%s)", (via) => {
  it("aborting a spinning call ends its worker; the next call runs on a new one", async () => {
    const pid = executor<[], string>({ module: math, export: "pid", size: 1, via });
    const spin = executor({ module: math, export: "spin", size: 1, via });
    await spin.warm();
    const controller = new AbortController();
    const running = codeOf(spin.execute([], { signal: controller.signal }));
    controller.abort();
    expect(await running).toBe("aborted");
    expect(spin.workers).toBe(0);
    await expect(pid.execute([])).resolves.toMatch(/:1$/);
  });

  it("close({ timeout: 0 }) ends a spinning worker and resolves once it has exited", async () => {
    const spin = executor({ module: math, export: "spin", size: 1, via });
    await spin.warm();
    const runaway = codeOf(spin.execute([]));
    await spin.close({ timeout: 0 });
    expect(await runaway).toBe("closed");
    expect(spin.workers).toBe(0);
  });

  it("standby works the same way: after a kill, the call is answered by a worker loaded before the kill", async () => {
    const pool = executor<[spin: boolean], number>({ module: math, export: "loadedOrSpin", size: 1, via, standby: true });
    await pool.warm();
    const controller = new AbortController();
    const spinning = codeOf(pool.execute([true], { signal: controller.signal }));
    await pool.warm(); // the reserve has loaded
    controller.abort();
    expect(await spinning).toBe("aborted");
    const killedAt = Date.now();
    expect(await pool.execute([false])).toBeLessThanOrEqual(killedAt); // a cold worker would load after the kill
  });
});

describe("Executor close leaves no timer", () => {
  it("a bounded close asked after the executor has closed arms nothing", async () => {
    const add = executor({ module: math, export: "add", size: 1 });
    await add.close();
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    await add.close({ timeout: 60_000 });
    expect(vi.getTimerCount()).toBe(0);
  });
});
