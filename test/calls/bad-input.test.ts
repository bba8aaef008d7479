import { describe, expect, it, vi } from "vitest";
import { BackplaneError, CallError, Client, call, cast, Device, Registry, serve, TaskSupervisor } from "../../src/index.js";

/** What a bad input produced: the class and code of what was thrown or rejected, or "accepted". */
async function outcome(attempt: () => unknown): Promise<string> {
  try {
    const result = attempt();
    if (result instanceof Promise) await result;
    return "accepted";
  } catch (e) {
    return e instanceof BackplaneError ? `${e.name}:${e.code}` : `untyped ${String(e)}`;
  }
}

const alive = () => serve(new Device(), (x: unknown) => x);

describe("bad input to the calling side: a typed error naming what is wrong, never a TypeError from inside", () => {
  const cases: [string, () => unknown, string][] = [
    ["serve(5)", () => serve(5 as never, () => 1), "CallError:invalid-argument"],
    ["serve(null)", () => serve(null as never, () => 1), "CallError:invalid-argument"],
    ["serve without a handler", () => serve(new Device(), 5 as never), "CallError:invalid-argument"],
    ["serve with options 5", () => serve(new Device(), () => 1, 5 as never), "CallError:invalid-argument"],
    ["serve with a bad signal", () => serve(new Device(), () => 1, { signal: {} as never }), "CallError:invalid-argument"],
    ["serve with concurrency 0", () => serve(new Device(), () => 1, { concurrency: 0 }), "CallError:invalid-argument"],
    ["serve with a numeric name", () => serve(new Device(), () => 1, { name: 5 as never }), "CallError:invalid-argument"],
    ["serve on a disconnected device", () => {
      const d = new Device();
      d.disconnect();
      return serve(d, () => 1);
    }, "CallError:server-down"],
    ["new Client(5)", () => new Client(5 as never), "CallError:invalid-argument"],
    ["new Client({})", () => new Client({} as never), "CallError:invalid-argument"],
    ["new Client('')", () => new Client(""), "CallError:invalid-argument"],
    ["new Client with a bad registry", () => new Client("x", { registry: {} as never }), "CallError:invalid-argument"],
    ["Client.call with a non-function callback", () => new Client(alive()).call(1, {}, 5 as never), "CallError:invalid-argument"],
    ["Client.call with options 5", () => new Client(alive()).call(1, 5 as never), "CallError:invalid-argument"],
    ["Client.call with timeout -1", () => new Client(alive()).call(1, { timeout: -1 }), "CallError:invalid-argument"],
    ["Client.call with timeout NaN", () => new Client(alive()).call(1, { timeout: Number.NaN }), "CallError:invalid-argument"],
    ["Client.call with a bad signal", () => new Client(alive()).call(1, { signal: "x" as never }), "CallError:invalid-argument"],
    ["Client.call with waitForName -5", () => new Client("nobody").call(1, { waitForName: -5 }), "CallError:invalid-argument"],
    ["call(5, …)", () => call(5 as never, 1), "CallError:invalid-argument"],
    ["call({}, …)", () => call({} as never, 1), "CallError:invalid-argument"],
    ["call with a bad registry", () => call("x", 1, { registry: [] as never }), "CallError:invalid-argument"],
    ["call with timeout 'soon'", () => call(alive(), 1, { timeout: "soon" as never }), "CallError:invalid-argument"],
    ["call to an unknown name", () => call("no-such-server", 1), "CallError:unknown-name"],
    ["cast(5, …)", () => cast(5 as never, 1), "CallError:invalid-argument"],
    ["cast with options 5", () => cast(alive(), 1, 5 as never), "CallError:invalid-argument"],
    ["cast with a bad registry", () => cast("x", 1, { registry: 1 as never }), "CallError:invalid-argument"],
    ["registry.register('', …)", () => new Registry().register("", new Device()), "RegistryError:invalid-argument"],
    ["registry.register(5, …)", () => new Registry().register(5 as never, new Device()), "RegistryError:invalid-argument"],
    ["registry.register of a number", () => new Registry().register("x", 5 as never), "RegistryError:invalid-argument"],
    ["registry.register of an object without a device", () => new Registry().register("x", { device: 5 } as never), "RegistryError:invalid-argument"],
    ["registry.register of an object whose device getter throws", () => new Registry().register("x", { get device(): never { throw new Error("no") } }), "RegistryError:invalid-argument"],
    ["registry.lookup(5)", () => new Registry().lookup(5 as never), "RegistryError:invalid-argument"],
    ["registry.unregister(null)", () => new Registry().unregister(null as never), "RegistryError:invalid-argument"],
    ["registry.whereis with a non-class type", () => new Registry().whereis("x", 5 as never), "RegistryError:invalid-argument"],
    ["registry.whenRegistered('')", () => new Registry().whenRegistered(""), "RegistryError:invalid-argument"],
    ["registry.whenRegistered with timeout -1", () => new Registry().whenRegistered("x", { timeout: -1 }), "RegistryError:invalid-argument"],
    ["registry.whenRegistered with a bad signal", () => new Registry().whenRegistered("x", { signal: {} as never }), "RegistryError:invalid-argument"],
  ];
  it.each(cases)("%s", async (_what, attempt, expected) => {
    expect(await outcome(attempt)).toBe(expected);
  });

  it("a refused serve() leaves nothing behind: the device is still unmanaged and connected", async () => {
    const device = new Device();
    expect(() => serve(device, () => 1, { signal: 5 as never })).toThrow(CallError);
    expect(device.isConnected).toBe(true);
    const server = serve(device, () => 1); // the device can still be served
    await expect(server.call(0)).resolves.toBe(1);
    await server.stop();
  });
});

describe("a handler that returns a bad thenable", () => {
  it("a thenable whose then throws: the caller gets server-down with that error, and no timer is left", async () => {
    vi.useFakeTimers();
    try {
      const boom = new Error("then exploded");
      const server = serve(new Device(), () => ({ then() { throw boom; } }));
      const error = await server.call(1, { timeout: 60_000 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CallError);
      expect(error).toMatchObject({ code: "server-down", fault: { kind: "error", error: boom }, cause: boom });
      await vi.advanceTimersByTimeAsync(0);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it("a then getter that throws is the handler failing, too", async () => {
    const boom = new Error("getter exploded");
    const server = serve(new Device(), () => ({ get then(): never { throw boom; } }));
    await expect(server.call(1)).rejects.toMatchObject({ code: "server-down", cause: boom });
  });

  it("a thenable that calls back twice, both ways: the first answer wins and the server lives on", async () => {
    const twice = (n: number) => ({ then(ok: (v: number) => void, fail: (e: unknown) => void) { ok(n); ok(n + 1); fail(new Error("late")); } });
    const server = serve(new Device(), twice as unknown as (n: number) => PromiseLike<number>);
    await expect(server.call(1)).resolves.toBe(1);
    await expect(server.call(5)).resolves.toBe(5);
    expect(server.isUp).toBe(true);
    await server.stop();
  });
});

describe("the registry holds anything with a device", () => {
  it("an object with a device (a supervisor, say) is registered, typed by whereis, and freed when its device ends", async () => {
    class Pool {
      readonly device = new Device({ name: "pool" });
      jobs = 0;
    }
    const registry = new Registry();
    const pool = new Pool();
    registry.register("pool", pool);
    expect(registry.whereis("pool", Pool)?.jobs).toBe(0);
    expect(registry.whereis("pool", Device)).toBeUndefined(); // of another class: undefined, not a lie
    expect(registry.whereis<Pool>("pool")).toBe(pool);
    await expect(call("pool", 1, { registry })).rejects.toMatchObject({ code: "unknown-name", message: expect.stringContaining("not to a server") });
    pool.device.disconnect();
    expect(registry.whereis("pool", Pool)).toBeUndefined();
    expect(registry.names()).toEqual([]);
    expect(() => registry.register("pool", pool)).toThrow(expect.objectContaining({ name: "RegistryError", code: "device-down" }));
  });
});

describe("a TaskSupervisor reached by name", () => {
  it("registered, found typed with whereis, used, and freed when it stops", async () => {
    const registry = new Registry();
    const jobs = new TaskSupervisor({ name: "jobs" });
    registry.register("jobs", jobs);
    const found = registry.whereis("jobs", TaskSupervisor);
    expect(found).toBe(jobs);
    await expect(Promise.resolve(found!.async(async () => 6 * 7))).resolves.toBe(42);
    await jobs.stop();
    expect(registry.whereis("jobs", TaskSupervisor)).toBeUndefined();
  });
});
