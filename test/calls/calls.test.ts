import { afterEach, describe, expect, it, vi } from "vitest";
import { CallError, Client, call, cast, Device, Fault, Registry, RegistryError, registry, Supervisor, serve } from "../../src/index.js";

afterEach(() => {
  vi.useRealTimers();
});

const codeOf = (p: Promise<unknown>) => p.then(() => "resolved", (e: unknown) => (e instanceof CallError ? e.code : `other: ${String(e)}`));

describe("serve and call", () => {
  it("a call gets the handler's reply; requests are handled one at a time in order", async () => {
    const seen: number[] = [];
    let total = 0;
    const server = serve(new Device({ name: "counter" }), async (n: number) => {
      seen.push(n);
      await Promise.resolve();
      return (total += n);
    });
    const client = new Client<number, number>(server);
    const replies = await Promise.all([client.call(1), client.call(2), client.call(3)]);
    expect(replies).toEqual([1, 3, 6]);
    expect(seen).toEqual([1, 2, 3]);
    await server.stop();
  });

  it("cast is fire and forget", async () => {
    const got: string[] = [];
    const server = serve(new Device(), (s: string) => void got.push(s));
    expect(cast(server, "a")).toBe(true);
    expect(new Client(server).cast("b")).toBe(true);
    await Promise.resolve();
    expect(got).toEqual(["a", "b"]);
    await server.stop();
    expect(cast(server, "c")).toBe(false);
  });

  it("the callback form gets (null, reply) or (CallError)", async () => {
    const server = serve(new Device(), (n: number) => n * 2);
    const client = new Client<number, number>(server);
    const reply = await new Promise((resolve) => client.call(21, {}, (error, value) => resolve([error, value])));
    expect(reply).toEqual([null, 42]);
    await server.stop();
    const failed = await new Promise<unknown[]>((resolve) => client.call(1, undefined, (error, value) => resolve([error, value])));
    expect(failed[0]).toBeInstanceOf(CallError);
    expect(failed[1]).toBeUndefined();
  });

  it("a call to a dead server rejects at once with server-down carrying its fault", async () => {
    const device = new Device();
    const server = serve(device, (x: unknown) => x);
    device.disconnect(Fault.error("oom"));
    await Promise.resolve();
    const error = await server.call(1).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "server-down", fault: Fault.error("oom") });
  });

  it("a server that dies mid-call fails the call at once, not at its timeout", async () => {
    vi.useFakeTimers();
    const device = new Device();
    const server = serve(device, () => new Promise(() => {}));
    const client = new Client(server);
    const inFlight = codeOf(client.call("slow", { timeout: 60_000 }));
    const queued = client.call("queued", { timeout: 60_000 }).catch((e: CallError) => e.fault);
    device.disconnect(Fault.killed);
    await vi.advanceTimersByTimeAsync(0);
    expect(await inFlight).toBe("server-down");
    expect(await queued).toEqual(Fault.killed);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("a handler that throws crashes the server: the caller and waiting callers get server-down with that fault", async () => {
    const device = new Device();
    const monitor = new Device();
    monitor.link(device, "monitor");
    const boom = new Error("bad request");
    const server = serve(device, (n: number) => {
      if (n < 0) throw boom;
      return n;
    });
    const error = await server.call(-1).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "server-down", fault: { kind: "error", error: boom }, cause: boom });
    expect(device.fault).toEqual({ kind: "error", error: boom });
    expect(monitor.tryReceive()).toMatchObject({ from: device.id, fault: { kind: "error" } });
    await expect(server.done).rejects.toMatchObject({ code: "server-down" });
  });

  it("a timed-out call rejects with timeout; the late reply is dropped and the server goes on", async () => {
    vi.useFakeTimers();
    let release!: (v: string) => void;
    const server = serve(new Device(), (req: string) => (req === "slow" ? new Promise<string>((r) => (release = r)) : req));
    const slow = codeOf(server.call("slow", { timeout: 100 }));
    await vi.advanceTimersByTimeAsync(100);
    expect(await slow).toBe("timeout");
    release("late");
    await expect(server.call("next")).resolves.toBe("next");
    await server.stop();
  });

  it("a call that timed out while queued is never handled", async () => {
    vi.useFakeTimers();
    const handled: string[] = [];
    let release!: () => void;
    const server = serve(new Device(), (req: string) => {
      handled.push(req);
      return req === "first" ? new Promise<void>((r) => (release = r)) : undefined;
    });
    void server.call("first");
    const queued = codeOf(server.call("queued", { timeout: 10 }));
    await vi.advanceTimersByTimeAsync(10);
    expect(await queued).toBe("timeout");
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(handled).toEqual(["first"]);
    await server.stop();
  });

  it("a shutdown message stops a server on its own device: in-flight calls finish, then it ends cleanly", async () => {
    let release!: (v: string) => void;
    const device = new Device();
    const server = serve(device, () => new Promise<string>((r) => (release = r)));
    const inFlight = server.call("x");
    device.line().shutdown(0);
    await Promise.resolve();
    expect(device.isConnected).toBe(true);
    expect(await codeOf(server.call("late"))).toBe("server-down");
    release("done");
    await expect(inFlight).resolves.toBe("done");
    await expect(server.done).resolves.toBeUndefined();
    expect(device.fault).toBeUndefined();
  });

  it("as a supervised child: the handler's crash restarts the server, and callers by name reach the new one", async () => {
    const sup = new Supervisor({
      children: [
        {
          id: "echo",
          run: (ctx) => {
            const server = serve(ctx.device, (req: string) => {
              if (req === "crash") throw new Error("asked to");
              return `echo ${req}`;
            }, { signal: ctx.signal, name: "echo" });
            registry.register("echo", server);
            return server.done;
          },
        },
      ],
    });
    await sup.start();
    await expect(call("echo", "a")).resolves.toBe("echo a");
    const restarted = new Promise((r) => sup.once("child-restarted", r));
    expect(await codeOf(call("echo", "crash"))).toBe("server-down");
    await restarted;
    await expect(call("echo", "b")).resolves.toBe("echo b");
    expect(sup.whichChildren()[0]).toMatchObject({ restarts: 1, lastFault: { kind: "error" } });
    await sup.stop();
    expect(await codeOf(call("echo", "c"))).toBe("unknown-name");
  });

  it("bad input is a typed CallError", async () => {
    expect(() => serve(new Device(), 5 as never)).toThrow(CallError);
    const server = serve(new Device(), (x: unknown) => x);
    expect(await codeOf(server.call(1, { timeout: -5 }))).toBe("invalid-argument");
    expect(await codeOf(call(42 as never, 1))).toBe("invalid-argument");
    await server.stop();
  });
});

describe("registry", () => {
  it("register, lookup, unregister; a second live registration is already-registered", () => {
    const reg = new Registry();
    const d = new Device();
    reg.register("db", d);
    expect(reg.lookup("db")).toBe(d);
    expect(() => reg.register("db", new Device())).toThrow(expect.objectContaining({ code: "already-registered" }));
    expect(reg.names()).toEqual(["db"]);
    expect(reg.unregister("db")).toBe(true);
    expect(reg.lookup("db")).toBeUndefined();
  });

  it("a name is freed the moment its device disconnects, and can be taken again", async () => {
    const reg = new Registry();
    const d = new Device();
    reg.register("db", d);
    d.disconnect();
    expect(reg.lookup("db")).toBeUndefined();
    const e = new Device();
    reg.register("db", e);
    expect(reg.lookup("db")).toBe(e);
    await Promise.resolve();
    expect(reg.names()).toEqual(["db"]);
  });

  it("bad registrations are RegistryError", () => {
    const reg = new Registry();
    const dead = new Device();
    dead.disconnect();
    expect(() => reg.register("", new Device())).toThrow(RegistryError);
    expect(() => reg.register("x", {} as Device)).toThrow(expect.objectContaining({ code: "invalid-argument" }));
    expect(() => reg.register("x", dead)).toThrow(expect.objectContaining({ code: "device-down" }));
  });

  it("calling a dead or unknown name is unknown-name; calling a plain device's name too", async () => {
    const reg = new Registry();
    reg.register("plain", new Device());
    expect(await codeOf(call("nobody", 1, { registry: reg }))).toBe("unknown-name");
    expect(await codeOf(call("plain", 1, { registry: reg }))).toBe("unknown-name");
    expect(cast("nobody", 1, { registry: reg })).toBe(false);
  });
});

describe("calls: a dying server in the same tick, timed-out records", () => {
  it("a call made in the same tick as the device's disconnect is refused, even when someone else reads the device", async () => {
    const device = new Device();
    const controller = new AbortController();
    const server = serve(device, (x: number) => x, { signal: controller.signal });
    device.disconnect();
    expect(await codeOf(server.call(1))).toBe("server-down");
    expect(server.cast(1)).toBe(false);
  });

  it("records: a call that timed out on the caller's side is recorded as a timeout", async () => {
    vi.useFakeTimers();
    let release!: () => void;
    const server = serve(new Device(), () => new Promise<void>((r) => (release = r)));
    const outcomes: string[] = [];
    server.on("record", (r) => outcomes.push(r.outcome));
    const call1 = codeOf(server.call(1, { timeout: 10 }));
    await vi.advanceTimersByTimeAsync(10);
    expect(await call1).toBe("timeout");
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(outcomes).toEqual(["timeout"]);
    await server.stop();
  });
});

describe("calls: long queues and long-lived signals", () => {
  it("a long queue answered synchronously after an async reply is served without recursion", async () => {
    let release!: (v: number) => void;
    const server = serve(new Device(), (n: number) => (n === 0 ? new Promise<number>((r) => (release = r)) : n));
    const first = server.call(0);
    const rest = Array.from({ length: 20_000 }, (_, i) => server.call(i + 1));
    release(0);
    const replies = await Promise.all([first, ...rest]);
    expect(replies).toHaveLength(20_001);
    expect(replies.at(-1)).toBe(20_000);
    expect(server.isUp).toBe(true);
    await server.stop();
  });

  it("ended servers leave no listener on a long-lived signal", async () => {
    const app = new AbortController();
    for (let i = 0; i < 20; i++) {
      const device = new Device();
      const server = serve(device, (x: unknown) => x, { signal: app.signal });
      device.disconnect();
      await server.done;
    }
    const { getEventListeners } = (await import("node:events")) as unknown as { getEventListeners: (target: EventTarget, name: string) => unknown[] };
    expect(getEventListeners(app.signal, "abort")).toHaveLength(0);
  });
});
