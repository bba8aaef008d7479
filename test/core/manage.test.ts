import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Crash, Device, Fault, LinkError } from "../../src/index.js";

const never = () => new Promise<never>(() => {});

async function crashOf(p: Promise<unknown>): Promise<Crash> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(Crash);
  expect(e).toBeInstanceOf(Error);
  return e as Crash;
}

afterEach(() => {
  vi.useRealTimers();
});

describe("manage: outcomes", () => {
  it("work resolves v → manage resolves v and the device disconnects cleanly", async () => {
    const d = new Device();
    const m = new Device();
    m.link(d, "monitor");
    await expect(d.manage(async () => "v")).resolves.toBe("v");
    expect(d.isConnected).toBe(false);
    expect(m.tryReceive()).toEqual({ kind: "disconnected", from: d.id });
  });

  it("synchronous work returning a value is a success too", async () => {
    const d = new Device();
    await expect(d.manage(() => 5)).resolves.toBe(5);
    expect(d.isConnected).toBe(false);
  });

  it("work rejects e → disconnect with fault error e; Crash kind error with cause e", async () => {
    const d = new Device();
    const m = new Device();
    m.link(d, "monitor");
    const boom = new Error("boom");
    const crash = await crashOf(d.manage(async () => Promise.reject(boom)));
    expect(crash.kind).toBe("error");
    expect(crash.cause).toBe(boom);
    expect(crash.message).toContain("boom");
    expect(crash.stack).toContain(boom.stack);
    expect(d.fault).toEqual({ kind: "error", error: boom });
    expect(m.tryReceive()).toEqual({ kind: "disconnected", from: d.id, fault: { kind: "error", error: boom } });
  });

  it("a synchronous throw is a failure too, and settles without an unhandled rejection", async () => {
    const d = new Device();
    const crash = await crashOf(
      d.manage(() => {
        throw new TypeError("sync");
      }),
    );
    expect(crash.kind).toBe("error");
    expect((crash.cause as Error).message).toBe("sync");
  });

  it("a linked device faulting → signal aborts, cascade fault, Crash cascade with the peer's fault", async () => {
    const d = new Device();
    const peer = new Device();
    const m = new Device();
    d.link(peer, "peer");
    m.link(d, "monitor");
    let aborted: unknown;
    const run = d.manage((signal) => {
      signal.addEventListener("abort", () => (aborted = signal.reason));
      return never();
    });
    peer.disconnect(Fault.error("peer broke"));
    const crash = await crashOf(run);
    expect(crash).toMatchObject({ kind: "cascade", from: peer.id, fault: Fault.error("peer broke") });
    expect(aborted).toBe(crash);
    expect(d.fault).toEqual(Fault.cascade(peer.id));
    expect(m.tryReceive()).toEqual({ kind: "disconnected", from: d.id, fault: Fault.cascade(peer.id) });
  });

  it("a linked device exiting cleanly is unlinked and the work goes on", async () => {
    const d = new Device();
    const peer = new Device();
    d.link(peer, "monitor");
    let finish!: (v: string) => void;
    const run = d.manage(() => new Promise<string>((r) => (finish = r)));
    peer.disconnect();
    await Promise.resolve();
    expect(d.isConnected).toBe(true);
    finish("done");
    await expect(run).resolves.toBe("done");
  });

  it("a shutdown message → signal aborts, clean disconnect, Crash shutdown from the sender", async () => {
    const d = new Device();
    const m = new Device();
    m.link(d, "monitor");
    let signalSeen: AbortSignal | undefined;
    const run = d.manage((signal) => {
      signalSeen = signal;
      return never();
    });
    d.line().shutdown(m.id);
    const crash = await crashOf(run);
    expect(crash).toMatchObject({ kind: "shutdown", from: m.id });
    expect(signalSeen?.aborted).toBe(true);
    expect(d.fault).toBeUndefined();
    expect(m.tryReceive()).toEqual({ kind: "disconnected", from: d.id });
  });

  it("timeout elapses → signal aborts, fault timeout, Crash timeout", async () => {
    vi.useFakeTimers();
    const d = new Device();
    let signalSeen: AbortSignal | undefined;
    const run = d.manage(
      (signal) => {
        signalSeen = signal;
        return never();
      },
      { timeout: 1000 },
    );
    const result = crashOf(run);
    await vi.advanceTimersByTimeAsync(999);
    expect(d.isConnected).toBe(true);
    await vi.advanceTimersByTimeAsync(1);
    expect((await result).kind).toBe("timeout");
    expect(signalSeen?.aborted).toBe(true);
    expect(d.fault).toEqual(Fault.timeout);
  });

  it("work that finishes in time clears its timer", async () => {
    vi.useFakeTimers();
    const d = new Device();
    await expect(d.manage(async () => 1, { timeout: 1000 })).resolves.toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("aborting options.signal acts as a shutdown request", async () => {
    const d = new Device();
    const controller = new AbortController();
    const run = d.manage(never, { signal: controller.signal });
    controller.abort();
    const crash = await crashOf(run);
    expect(crash.kind).toBe("shutdown");
    expect(d.fault).toBeUndefined();
  });

  it("an already aborted options.signal stops the run before the work starts", async () => {
    const d = new Device();
    const work = vi.fn(never);
    const crash = await crashOf(d.manage(work, { signal: AbortSignal.abort() }));
    expect(crash.kind).toBe("shutdown");
    expect(work).not.toHaveBeenCalled();
  });

  it("abandoned work's late rejection is dropped: never unhandled, never reported", async () => {
    const d = new Device();
    let fail!: (e: Error) => void;
    const run = d.manage(() => new Promise<never>((_, reject) => (fail = reject)));
    d.line().shutdown(0);
    const crash = await crashOf(run);
    fail(new Error("late"));
    await new Promise((r) => setImmediate(r));
    expect(crash.kind).toBe("shutdown");
    expect(d.fault).toBeUndefined();
  });

  it("abandoned work's late value is dropped", async () => {
    const d = new Device();
    let finish!: (v: number) => void;
    const run = d.manage(() => new Promise<number>((r) => (finish = r)));
    d.disconnect(Fault.killed);
    const crash = await crashOf(run);
    finish(1);
    await Promise.resolve();
    expect(crash).toMatchObject({ kind: "killed", fault: Fault.killed });
    expect(d.fault).toEqual(Fault.killed);
  });

});

describe("manage: the work's signal", () => {
  it("work that declares a parameter gets an AbortSignal", async () => {
    await new Device().manage((signal) => {
      expect(signal).toBeInstanceOf(AbortSignal);
      return 1;
    });
  });

  it("a rest parameter gets the signal too: (...args) => f(...args) reads a real one", async () => {
    const d = new Device();
    const f = (signal: AbortSignal) => new Promise<boolean>((resolve) => signal.addEventListener("abort", () => resolve(signal.aborted)));
    const run = d.manage((...args: [AbortSignal]) => f(...args), { grace: 1_000 });
    await Promise.resolve();
    d.line().shutdown(1);
    const crash = await crashOf(run); // the work settled within its grace after its signal aborted: a clean stop
    expect(crash.kind).toBe("shutdown");
    expect(d.fault).toBeUndefined();
  });

  it("a default parameter gets the run's signal, not its default", async () => {
    const fallback = AbortSignal.abort();
    let seen: AbortSignal | undefined;
    await new Device().manage((signal: AbortSignal = fallback) => {
      seen = signal;
      return signal.aborted;
    });
    expect(seen).toBeInstanceOf(AbortSignal);
    expect(seen).not.toBe(fallback);
  });

  it("a function that reads arguments gets the signal", async () => {
    let args: unknown[] = [];
    await new Device().manage(function (this: unknown) {
      // biome-ignore lint: reading arguments on purpose
      args = [...arguments];
      return 1;
    });
    expect(args).toHaveLength(1);
    expect(args[0]).toBeInstanceOf(AbortSignal);
  });

  it("a bound function (source unknown) gets the signal", async () => {
    function work(this: { seen?: unknown }, signal: AbortSignal): number {
      this.seen = signal;
      return 1;
    }
    const target: { seen?: unknown } = {};
    const bound = work.bind(target) as unknown as () => number;
    Object.defineProperty(bound, "length", { value: 0 });
    await new Device().manage(bound);
    expect(target.seen).toBeInstanceOf(AbortSignal);
  });

  it("() => … is called without a signal, and none is created", async () => {
    const created = vi.spyOn(globalThis, "AbortController");
    try {
      let args: unknown[] = [];
      await new Device().manage((...none: unknown[]) => none.length); // the control: a rest parameter makes one
      expect(created).toHaveBeenCalledTimes(1);
      await new Device().manage(() => 1);
      await new Device().manage(async () => 1);
      await new Device().manage(function named() {
        return 1;
      });
      await new Device().manage(function () {
        args = [1];
        return 1;
      });
      expect(created).toHaveBeenCalledTimes(1);
      expect(args).toEqual([1]);
    } finally {
      created.mockRestore();
    }
  });
});

describe("manage: messages already queued when it starts", () => {
  it("a queued shutdown ends the device before the work runs", async () => {
    const d = new Device();
    d.line().shutdown(7);
    const work = vi.fn(() => 1);
    const crash = await crashOf(d.manage(work));
    expect(crash).toMatchObject({ kind: "shutdown", from: 7 });
    expect(work).not.toHaveBeenCalled();
    expect(d.isConnected).toBe(false);
  });

  it("a queued fault of a linked device cascades before the work runs", async () => {
    const d = new Device();
    const peer = new Device();
    d.link(peer, "monitor");
    peer.disconnect(Fault.error("early"));
    const work = vi.fn(() => 1);
    const crash = await crashOf(d.manage(work));
    expect(crash).toMatchObject({ kind: "cascade", from: peer.id });
    expect(work).not.toHaveBeenCalled();
  });

  it("queued clean exits are consumed and the work runs", async () => {
    const d = new Device();
    const peer = new Device();
    d.link(peer, "monitor");
    peer.disconnect();
    await expect(d.manage(() => "ran")).resolves.toBe("ran");
  });
});

describe("manage: misuse", () => {
  it("managing a disconnected device rejects with LinkError device-down", async () => {
    const d = new Device();
    d.disconnect();
    await expect(d.manage(() => 1)).rejects.toMatchObject({ name: "LinkError", code: "device-down" });
  });

  it("a device is managed by one run at a time: the second is LinkError busy", async () => {
    const d = new Device();
    const first = d.partManage(never);
    await expect(d.manage(() => 1)).rejects.toMatchObject({ code: "busy" });
    await expect(d.receive()).rejects.toMatchObject({ code: "busy" });
    d.disconnect();
    await expect(first).rejects.toBeInstanceOf(Crash);
  });

  it("bad work or options are LinkError invalid-argument", async () => {
    const d = new Device();
    await expect(d.manage(42 as unknown as () => 1)).rejects.toMatchObject({ code: "invalid-argument" });
    await expect(d.manage(() => 1, { timeout: -1 })).rejects.toMatchObject({ code: "invalid-argument" });
    await expect(d.manage(() => 1, { signal: {} as AbortSignal })).rejects.toBeInstanceOf(LinkError);
    expect(d.isConnected).toBe(true);
  });

  it("a clean external disconnect during the run is a shutdown from the device itself", async () => {
    const d = new Device();
    const run = d.manage(never);
    d.disconnect();
    const crash = await crashOf(run);
    expect(crash).toMatchObject({ kind: "shutdown", from: d.id });
  });
});

describe("partManage", () => {
  it("on success the device stays connected and can be managed again", async () => {
    const d = new Device();
    await expect(d.partManage(async () => 1)).resolves.toBe(1);
    expect(d.isConnected).toBe(true);
    await expect(d.manage(async () => 2)).resolves.toBe(2);
    expect(d.isConnected).toBe(false);
  });

  it("messages after a partManage go to the mailbox again", async () => {
    const d = new Device();
    await d.partManage(() => 1);
    d.line().shutdown(3);
    expect(d.tryReceive()).toEqual({ kind: "shutdown", from: 3 });
  });

  it("on failure it ends the device like manage", async () => {
    const d = new Device();
    const crash = await crashOf(d.partManage(() => Promise.reject(new Error("x"))));
    expect(crash.kind).toBe("error");
    expect(d.isConnected).toBe(false);
  });
});

describe("cascades", () => {
  it("every listener hears a failure before any cascade it causes", async () => {
    const watcher = new Device();
    const db = new Device();
    const cache = new Device();
    cache.link(db, "peer");
    watcher.link(db, "monitor");
    watcher.link(cache, "monitor");
    const run = cache.manage(never).catch(() => {});
    db.disconnect(Fault.error("reset"));
    await run;
    expect([watcher.tryReceive()?.from, watcher.tryReceive()?.from]).toEqual([db.id, cache.id]);
  });

  it("a long chain of peers cascades iteratively, without overflowing the stack", async () => {
    const chain = Array.from({ length: 20_000 }, () => new Device());
    for (let i = 1; i < chain.length; i++) chain[i]!.link(chain[i - 1]!, "peer");
    const runs = chain.slice(1).map((d) => crashOf(d.manage(never)));
    chain[0]!.disconnect(Fault.error("root"));
    const crashes = await Promise.all(runs);
    expect(crashes.every((c) => c.kind === "cascade")).toBe(true);
    expect(crashes[0]!.fault).toEqual(Fault.error("root"));
    // crashes[5] is chain[6]'s: it heard chain[5], which had cascaded from chain[4].
    expect(crashes[5]).toMatchObject({ from: chain[5]!.id, fault: Fault.cascade(chain[4]!.id) });
    expect(chain.every((d) => !d.isConnected)).toBe(true);
  });
});

describe("manage: durations of any length", () => {
  const DAY = 24 * 3_600_000;
  const LONG = [
    ["2³¹ ms", 2 ** 31],
    ["30 days", 30 * DAY],
  ] as const;

  for (const [label, ms] of LONG) {
    it(`a timeout of ${label} does not fire early, and fires on time`, async () => {
      vi.useFakeTimers();
      const d = new Device();
      const crashed = crashOf(d.manage(never, { timeout: ms }));
      await vi.advanceTimersByTimeAsync(ms - 1);
      expect(d.isConnected).toBe(true);
      await vi.advanceTimersByTimeAsync(1);
      expect((await crashed).kind).toBe("timeout");
      expect(d.fault).toEqual(Fault.timeout);
      expect(vi.getTimerCount()).toBe(0);
    });

    it(`a grace of ${label} waits that long before the kill, not less`, async () => {
      vi.useFakeTimers();
      const d = new Device();
      const crashed = crashOf(d.manage((signal) => new Promise(() => void signal), { grace: ms }));
      await Promise.resolve();
      d.line().shutdown(1);
      await vi.advanceTimersByTimeAsync(ms - 1);
      expect(d.isConnected).toBe(true);
      await vi.advanceTimersByTimeAsync(1);
      expect((await crashed).kind).toBe("killed");
      expect(vi.getTimerCount()).toBe(0);
    });
  }

  it("a run that settles during a long timeout leaves no timer behind", async () => {
    vi.useFakeTimers();
    let finish!: (v: number) => void;
    const run = new Device().manage(() => new Promise<number>((r) => (finish = r)), { timeout: 40 * DAY });
    expect(vi.getTimerCount()).toBe(1);
    finish(3);
    await expect(run).resolves.toBe(3);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("timeout Infinity is no timeout: no timer at all, the work runs as long as it takes", async () => {
    vi.useFakeTimers();
    let finish!: (v: string) => void;
    const d = new Device();
    const run = d.manage(() => new Promise<string>((r) => (finish = r)), { timeout: Number.POSITIVE_INFINITY });
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(1_000 * DAY);
    expect(d.isConnected).toBe(true);
    finish("done");
    await expect(run).resolves.toBe("done");
  });

  it("NaN, negative and non-number durations are LinkError invalid-argument, and nothing runs", async () => {
    const bad: unknown[] = [Number.NaN, -1, Number.NEGATIVE_INFINITY, "5", null, {}, 10n];
    for (const value of bad) {
      for (const option of ["timeout", "grace"] as const) {
        const d = new Device();
        const work = vi.fn(() => 1);
        const refusal = await d.manage(work, { [option]: value } as never).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(refusal, `${option}: ${String(value)}`).toBeInstanceOf(LinkError);
        expect(refusal).toMatchObject({ code: "invalid-argument" });
        expect((refusal as Error).message).toContain(option);
        expect(work).not.toHaveBeenCalled();
        expect(d.isConnected).toBe(true);
      }
    }
  });
});

describe("Crash", () => {
  it("can be constructed by users like any Error", () => {
    const c = new Crash("error", { cause: new Error("inner") });
    expect(c).toBeInstanceOf(Error);
    expect(c.kind).toBe("error");
    expect(c.message).toBe("managed work failed: inner");
    expect(c.name).toBe("Crash");
    expect(String(c)).toBe("Crash: managed work failed: inner");
    expect(new Crash("cascade", { from: 3, fault: Fault.drop }).message).toBe('linked device #3 disconnected with fault "drop"');
  });

  it("names the device by its name when it has one, else by #id", async () => {
    const named = await crashOf(new Device({ name: "db" }).manage(() => Promise.reject(new Error("refused"))));
    expect(named.message).toBe('device "db" (#' + named.device + "): managed work failed: refused");
    expect(named.deviceName).toBe("db");
    const anonymous = new Device();
    const crash = await crashOf(anonymous.manage(() => Promise.reject(new Error("refused"))));
    expect(crash.device).toBe(anonymous.id);
    expect(crash.message).toBe(`device #${anonymous.id}: managed work failed: refused`);
  });

  it("a cascade says which peer failed and with what, and its stack shows the peer's error", async () => {
    const api = new Device({ name: "api" });
    const db = new Device({ name: "db" });
    api.link(db, "peer");
    const run = api.manage(never);
    const refused = new Error("connection refused");
    db.disconnect(Fault.error(refused));
    const crash = await crashOf(run);
    expect(crash.message).toBe(`device "api" (#${api.id}): linked device #${db.id} disconnected with fault "error" (connection refused)`);
    expect(crash.stack).toContain(refused.stack);
  });

  it("a crash made by the library has an own stack (what Node's unhandled-rejection report needs), built when read", async () => {
    const crash = await crashOf(new Device({ name: "db" }).manage(() => Promise.reject(new TypeError("bad"))));
    expect(Object.hasOwn(crash, "stack")).toBe(true);
    expect(crash.stack?.split("\n")[0]).toBe(`Crash [error]: device "db" (#${crash.device}): managed work failed: bad`);
    crash.stack = "replaced";
    expect(crash.stack).toBe("replaced");
  });

  it("the crash a work's signal aborts with is printable the same way (its own stack)", async () => {
    const d = new Device({ name: "job" });
    let reason: unknown;
    const run = d.manage((signal) => new Promise((resolve) => signal.addEventListener("abort", () => resolve((reason = signal.reason)))));
    d.line().shutdown(9);
    await crashOf(run);
    expect(reason).toBeInstanceOf(Crash);
    expect(Object.hasOwn(reason as object, "stack")).toBe(true);
    expect((reason as Crash).stack).toBe(`Crash [shutdown]: device "job" (#${d.id}): shutdown requested by device #9`);
  });

  it("a cause whose stack or message getter throws still gives a message and a stack", async () => {
    const hostile = new Error("x");
    Object.defineProperty(hostile, "stack", { get: () => { throw new Error("no"); } });
    Object.defineProperty(hostile, "message", { get: () => { throw new Error("no"); } });
    const crash = await crashOf(new Device().manage(() => Promise.reject(hostile)));
    expect(crash.message).toContain("managed work failed");
    expect(crash.stack).toContain("Crash [error]");
  });
});

describe("Crash: left unhandled, Node's report says what happened", () => {
  const fixture = fileURLToPath(new URL("./fixtures/unhandled-crash.ts", import.meta.url));
  function runFixture(scenario: string): { status: number | null; stderr: string } {
    const r = spawnSync(process.execPath, ["--import", "tsx", fixture, scenario], { encoding: "utf8", timeout: 60_000 });
    return { status: r.status, stderr: r.stderr };
  }

  it("a named device whose work fails: the kind, the name, the cause's message and a stack line", () => {
    const { status, stderr } = runFixture("named");
    expect(status).not.toBe(0);
    expect(stderr).not.toContain('rejected with the reason "Crash"');
    expect(stderr).toContain("Crash [error]");
    expect(stderr).toContain('device "db"');
    expect(stderr).toContain("connection refused");
    expect(stderr).toMatch(/\n\s+at .*unhandled-crash\.ts:\d+:\d+/);
  });

  it("a device without a name is named by #id", () => {
    const { stderr } = runFixture("anonymous");
    expect(stderr).toMatch(/Crash \[error\]: device #\d+: managed work failed: connection refused/);
  });

  it("a cascade names the device, the peer and the peer's error", () => {
    const { stderr } = runFixture("cascade");
    expect(stderr).toMatch(/Crash \[cascade\]: device "api" \(#\d+\): linked device #\d+ disconnected with fault "error" \(connection refused\)/);
    expect(stderr).toMatch(/\n\s+at .*unhandled-crash\.ts:\d+:\d+/);
  });
});

describe("manage: shutdown grace period (options.grace)", () => {
  it("a shutdown aborts the signal and waits for the work: finishing in time is a clean stop", async () => {
    vi.useFakeTimers();
    const d = new Device();
    const m = new Device();
    m.link(d, "monitor");
    const run = d.manage(
      (signal) =>
        new Promise<string>((resolve) => {
          signal.addEventListener("abort", () => setTimeout(() => resolve("cleaned up"), 100));
        }),
      { grace: 1000 },
    );
    const outcome = crashOf(run);
    d.line().shutdown(m.id);
    await vi.advanceTimersByTimeAsync(50);
    expect(d.isConnected).toBe(true); // still cleaning up within its grace period
    await vi.advanceTimersByTimeAsync(50);
    expect(await outcome).toMatchObject({ kind: "shutdown", from: m.id });
    expect(d.fault).toBeUndefined();
    expect(m.tryReceive()).toEqual({ kind: "disconnected", from: d.id });
  });

  it("work that rejects with the abort reason is still a clean stop", async () => {
    const d = new Device();
    const run = d.manage(
      (signal) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason))),
      { grace: 1000 },
    );
    d.line().shutdown(0);
    expect((await crashOf(run)).kind).toBe("shutdown");
    expect(d.fault).toBeUndefined();
  });

  it("overrunning the grace period kills: fault killed, Crash killed, the work abandoned", async () => {
    vi.useFakeTimers();
    const d = new Device();
    const run = d.manage(() => new Promise(() => {}), { grace: 500 });
    const outcome = crashOf(run);
    d.line().shutdown(0);
    await vi.advanceTimersByTimeAsync(499);
    expect(d.isConnected).toBe(true);
    await vi.advanceTimersByTimeAsync(1);
    expect(await outcome).toMatchObject({ kind: "killed", fault: Fault.killed });
    expect(d.fault).toEqual(Fault.killed);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("grace Infinity waits as long as the work takes", async () => {
    vi.useFakeTimers();
    const d = new Device();
    let finish!: () => void;
    const run = d.manage(() => new Promise<void>((r) => (finish = r)), { grace: Number.POSITIVE_INFINITY });
    const outcome = crashOf(run);
    d.line().shutdown(0);
    await vi.advanceTimersByTimeAsync(1e9);
    expect(d.isConnected).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
    finish();
    expect((await outcome).kind).toBe("shutdown");
  });

  it("a cascade is not graceful: a faulted peer ends the run at once", async () => {
    const d = new Device();
    const peer = new Device();
    d.link(peer, "monitor");
    const run = d.manage(() => new Promise(() => {}), { grace: 1000 });
    peer.disconnect(Fault.error("x"));
    expect((await crashOf(run)).kind).toBe("cascade");
  });

  it("a faulted peer during the grace period still cascades at once", async () => {
    const d = new Device();
    const peer = new Device();
    d.link(peer, "monitor");
    const run = d.manage(() => new Promise(() => {}), { grace: 10_000 });
    d.line().shutdown(0);
    d.line().shutdown(1); // a second request changes nothing
    await Promise.resolve();
    expect(d.isConnected).toBe(true);
    peer.disconnect(Fault.error("x"));
    expect(await crashOf(run)).toMatchObject({ kind: "cascade", from: peer.id });
    expect(d.fault).toEqual(Fault.cascade(peer.id));
  });

  it("a bad grace is LinkError invalid-argument", async () => {
    await expect(new Device().manage(() => 1, { grace: Number.NaN })).rejects.toMatchObject({ code: "invalid-argument" });
  });
});

describe("manage: long mailboxes, hostile thenables, queued faults, records", () => {
  it("draining a long mailbox is linear (no quadratic shift)", () => {
    const d = new Device();
    const line = d.line();
    for (let i = 0; i < 100_000; i++) line.shutdown(i);
    let n = 0;
    while (d.tryReceive() !== undefined) n++;
    expect(n).toBe(100_000);
  });

  it("work returning a thenable whose then() throws is a failed run, not a throw from manage()", async () => {
    const d = new Device();
    const odd = { then() { throw new Error("bad thenable"); } };
    const crash = await crashOf(d.manage(() => odd as unknown as Promise<never>));
    expect(crash.kind).toBe("error");
    expect(d.isConnected).toBe(false);
  });
});

describe("manage: graceful shutdown meets a queued fault", () => {
  it("a fault that queues behind a deferred shutdown still cascades, and no grace timer is left behind", async () => {
    vi.useFakeTimers();
    const d = new Device();
    const peer = new Device();
    d.link(peer, "monitor");
    const run = crashOf(d.manage(() => new Promise(() => {}), { grace: 10_000 }));
    // m's abort listener runs inside a reaction: the shutdown it sends d is deferred, and the
    // fault it causes right after lands in d's mailbox before d's shutdown is acted on.
    const m = new Device();
    const mPeer = new Device();
    m.link(mPeer, "monitor");
    const mRun = m.manage((signal) => {
      signal.addEventListener("abort", () => {
        d.line().shutdown(m.id);
        peer.disconnect(Fault.error("x"));
      });
      return new Promise(() => {});
    });
    mRun.catch(() => {});
    mPeer.disconnect(Fault.error("start"));
    expect(await run).toMatchObject({ kind: "cascade", from: peer.id });
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("runRecords: every managed run, observed", () => {
  it("emits a record per managed run while someone listens, with name, timing, outcome and fault", async () => {
    const { runRecords } = await import("../../src/index.js");
    const seen: { name: string; outcome: string; fault?: unknown }[] = [];
    const listener = (r: { name: string; outcome: string; fault?: unknown; duration: number }) => {
      expect(r.duration).toBeGreaterThanOrEqual(0);
      seen.push({ name: r.name, outcome: r.outcome, ...(r.fault !== undefined && { fault: r.fault }) });
    };
    runRecords.on("record", listener);
    try {
      await new Device({ name: "ok" }).manage(async () => 1);
      await new Device({ name: "sync" }).manage(() => 1);
      await new Device({ name: "boom" }).manage(async () => Promise.reject(new Error("x"))).catch(() => {});
      const stopped = new Device({ name: "stopped" });
      const run = stopped.manage(never).catch(() => {});
      stopped.line().shutdown(0);
      await run;
    } finally {
      runRecords.off("record", listener);
    }
    expect(seen).toEqual([
      { name: "ok", outcome: "ok" },
      { name: "sync", outcome: "ok" },
      { name: "boom", outcome: "error", fault: { kind: "error", error: new Error("x") } },
      { name: "stopped", outcome: "shutdown" },
    ]);
    // Nobody listening: nothing is built.
    await new Device().manage(() => 1);
    expect(seen).toHaveLength(4);
  });
});
