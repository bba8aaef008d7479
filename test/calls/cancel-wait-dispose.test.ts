import { afterEach, describe, expect, it, vi } from "vitest";
import { CallError, Client, call, Device, type ExecutionRecord, LISTENER_WARNING, Registry, RegistryError, serve } from "../../src/index.js";

afterEach(() => {
  vi.useRealTimers();
});

const never = () => new Promise<never>(() => {});

describe("call timeouts of any length", () => {
  it("a timeout of 2³¹ ms or more does not fire early: the call is still pending a day later, and times out at its time", async () => {
    vi.useFakeTimers();
    const server = serve(new Device(), never);
    const long = 2 ** 31 + 1000;
    let settled: unknown;
    server.call(1, { timeout: long }).catch((e: unknown) => (settled = e));
    await vi.advanceTimersByTimeAsync(86_400_000);
    expect(settled).toBeUndefined();
    await vi.advanceTimersByTimeAsync(long - 86_400_000);
    expect(settled).toMatchObject({ name: "CallError", code: "timeout" });
    expect(vi.getTimerCount()).toBe(0);
  });

  it("timeout Infinity is no timeout at all: no timer is armed", async () => {
    vi.useFakeTimers();
    const server = serve(new Device(), never);
    void server.call(1, { timeout: Number.POSITIVE_INFINITY }).catch(() => {});
    expect(vi.getTimerCount()).toBe(0);
    server.device.disconnect();
  });
});

describe("cancelling a call with a signal", () => {
  it("an already-aborted signal rejects at once with aborted and the reason as cause; the handler never runs", async () => {
    let handled = 0;
    const server = serve(new Device(), () => ++handled);
    const reason = new Error("user left");
    const error = await server.call(1, { signal: AbortSignal.abort(reason) }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "CallError", code: "aborted", cause: reason });
    expect(handled).toBe(0);
    await server.stop();
  });

  it("aborting a call in flight rejects it with aborted; the server goes on and its late reply is dropped", async () => {
    let release!: (v: string) => void;
    const server = serve(new Device(), (x: string) => (x === "slow" ? new Promise<string>((r) => (release = r)) : x));
    const records: ExecutionRecord[] = [];
    server.on("record", (r) => records.push(r));
    const controller = new AbortController();
    const slow = server.call("slow", { signal: controller.signal });
    const queued = server.call("queued");
    controller.abort("changed my mind");
    await expect(slow).rejects.toMatchObject({ code: "aborted", cause: "changed my mind" });
    release("late");
    await expect(queued).resolves.toBe("queued");
    expect(records.map((r) => r.outcome)).toEqual(["shutdown", "ok"]);
    await server.stop();
  });

  it("a queued call that is aborted is never handled", async () => {
    const seen: string[] = [];
    let release!: () => void;
    const server = serve(new Device(), async (x: string) => {
      seen.push(x);
      if (x === "first") await new Promise<void>((r) => (release = r));
      return x;
    });
    const controller = new AbortController();
    const first = server.call("first");
    const second = server.call("second", { signal: controller.signal });
    controller.abort();
    await expect(second).rejects.toMatchObject({ code: "aborted" });
    release();
    await expect(first).resolves.toBe("first");
    expect(seen).toEqual(["first"]);
    await server.stop();
  });

  it("a shared signal collects no listeners: each settled call removes its own", async () => {
    const server = serve(new Device(), (x: number) => x);
    const controller = new AbortController();
    const added = vi.spyOn(controller.signal, "addEventListener");
    const removed = vi.spyOn(controller.signal, "removeEventListener");
    for (let i = 0; i < 50; i++) await server.call(i, { signal: controller.signal, timeout: 1_000 });
    await server.call(-1, { signal: controller.signal }).catch(() => {});
    expect(added).toHaveBeenCalledTimes(51);
    expect(removed).toHaveBeenCalledTimes(51);
    await server.stop();
  });

  it("the free call and Client.call take the signal too", async () => {
    const registry = new Registry();
    registry.register("stuck", serve(new Device(), never));
    const controller = new AbortController();
    const viaName = call("stuck", 1, { registry, signal: controller.signal });
    const viaClient = new Client("stuck", { registry }).call(2, { signal: controller.signal });
    controller.abort();
    await expect(viaName).rejects.toMatchObject({ code: "aborted" });
    await expect(viaClient).rejects.toMatchObject({ code: "aborted" });
  });
});

describe("waiting for a name", () => {
  it("whenRegistered resolves with the target once it is registered (at once if it already is)", async () => {
    const registry = new Registry();
    const waiting = registry.whenRegistered("db");
    const device = new Device();
    registry.register("db", device);
    await expect(waiting).resolves.toBe(device);
    await expect(registry.whenRegistered("db")).resolves.toBe(device);
  });

  it("whenRegistered times out with RegistryError timeout, and leaves no timer", async () => {
    vi.useFakeTimers();
    const registry = new Registry();
    const waiting = registry.whenRegistered("db", { timeout: 500 }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(500);
    expect(await waiting).toBeInstanceOf(RegistryError);
    expect(await waiting).toMatchObject({ code: "timeout" });
    expect(vi.getTimerCount()).toBe(0);
  });

  it("whenRegistered stops waiting when its signal aborts; a name registered later does not resurrect it", async () => {
    vi.useFakeTimers();
    const registry = new Registry();
    const controller = new AbortController();
    const waiting = registry.whenRegistered("db", { signal: controller.signal, timeout: 10_000 }).catch((e: unknown) => e);
    controller.abort("bye");
    expect(await waiting).toMatchObject({ name: "RegistryError", code: "aborted", cause: "bye" });
    expect(vi.getTimerCount()).toBe(0);
    registry.register("db", new Device());
  });

  it("call with waitForName: the caller of a restarting server waits for it to come back instead of failing", async () => {
    const registry = new Registry();
    const first = serve(new Device(), (x: number) => x);
    registry.register("adder", first);
    first.device.disconnect(); // it went down…
    const pending = call<number, number>("adder", 41, { registry, waitForName: 5_000 });
    registry.register("adder", serve(new Device(), (x: number) => x + 1)); // …and its replacement registers
    await expect(pending).resolves.toBe(42);
  });

  it("call with waitForName: nobody comes back in time → unknown-name, the registry's timeout as cause", async () => {
    vi.useFakeTimers();
    const registry = new Registry();
    const pending = call("ghost", 1, { registry, waitForName: 200 }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(200);
    const error = await pending;
    expect(error).toBeInstanceOf(CallError);
    expect(error).toMatchObject({ code: "unknown-name", cause: { name: "RegistryError", code: "timeout" } });
  });

  it("without waitForName a missing name fails at once, as before", async () => {
    await expect(call("ghost", 1, { registry: new Registry() })).rejects.toMatchObject({ code: "unknown-name" });
  });
});

describe("await using a server", () => {
  it("Symbol.asyncDispose stops the server at the end of the scope", async () => {
    const device = new Device();
    {
      await using server = serve(device, (x: number) => x);
      await expect(server.call(1)).resolves.toBe(1);
    }
    expect(device.isConnected).toBe(false);
  });
});

describe("a throwing record listener never breaks a server", () => {
  it("is reported as a process warning; the call still gets its reply and the next call works", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const server = serve(new Device({ name: "fragile" }), (x: number) => x * 2);
      server.on("record", () => {
        throw new Error("listener bug");
      });
      await expect(server.call(2)).resolves.toBe(4);
      await expect(server.call(3)).resolves.toBe(6);
      expect(server.isUp).toBe(true);
      await server.stop();
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      expect(warnings.some((w) => w.name === LISTENER_WARNING && /listener bug/.test(w.message))).toBe(true);
    } finally {
      process.off("warning", onWarning);
    }
  });
});
