import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CallError, Client, call, Fault, IsolatedServer, isolated, isolatedServer, Registry, StartError, type SupervisorEvents, Supervisor, serveIsolated, WorkerExitError } from "../../src/index.js";

const child = fileURLToPath(new URL("../fixtures/child.mjs", import.meta.url));
const echo = fileURLToPath(new URL("../fixtures/echo-server.mjs", import.meta.url));

function nextEvent<E extends keyof SupervisorEvents>(sup: Supervisor, event: E, where: (p: SupervisorEvents[E][0]) => boolean = () => true): Promise<SupervisorEvents[E][0]> {
  return new Promise((resolve) => {
    const listener = (payload: SupervisorEvents[E][0]) => {
      if (!where(payload)) return;
      sup.off(event, listener as never);
      resolve(payload);
    };
    sup.on(event, listener as never);
  });
}

describe.each(["thread", "process"] as const)("isolated children (%s)", (via) => {
  it("a runaway for(;;) loop is killed after its grace period, and the rest of the tree keeps running", async () => {
    let ticks = 0;
    const sup = new Supervisor({
      children: [
        isolated({ id: "spin", module: child, export: "spin", shutdown: 50, via }),
        { id: "alive", run: (ctx) => new Promise<void>((resolve) => {
          const t = setInterval(() => ticks++, 1);
          ctx.signal.addEventListener("abort", () => (clearInterval(t), resolve()));
        }) },
      ],
    });
    await sup.start();
    const before = ticks;
    await new Promise((r) => setTimeout(r, 30));
    expect(ticks).toBeGreaterThan(before); // the main thread is not frozen by the spinning worker
    const exited = nextEvent(sup, "child-exited", (e) => e.id === "spin");
    await sup.terminateChild("spin");
    expect(await exited).toMatchObject({ fault: Fault.killed, requested: true });
    expect(sup.whichChildren().find((c) => c.id === "alive")?.status).toBe("running");
    await sup.stop();
  });

  it("the signal crosses the boundary: a cooperative worker stops cleanly when asked", async () => {
    const sup = new Supervisor({ children: [isolated({ id: "co", module: child, export: "cooperative", args: ["x"], shutdown: 5000, via })] });
    await sup.start();
    const exited = nextEvent(sup, "child-exited");
    await sup.terminateChild("co");
    expect(await exited).toMatchObject({ fault: undefined, requested: true });
    await sup.stop();
  });

  it("a thrown error becomes fault error with the worker's message and stack", async () => {
    const sup = new Supervisor({ children: [isolated({ id: "f", module: child, export: "fails", restart: "temporary", via })] });
    const exited = nextEvent(sup, "child-exited");
    await sup.start();
    const { fault } = await exited;
    expect(fault?.kind).toBe("error");
    const error = (fault as { error: Error }).error;
    expect(error).toMatchObject({ name: "TypeError", message: "worker boom" });
    expect(error.stack).toContain("child.mjs");
    await sup.stop();
  });

  it("process.exit(3) is a fault carrying the exit code; exit(0) is a clean end", async () => {
    const sup = new Supervisor({
      children: [
        isolated({ id: "e3", module: child, export: "exits", restart: "temporary", via }),
        isolated({ id: "e0", module: child, export: "exitsCleanly", restart: "temporary", via }),
      ],
    });
    const faults = new Map<string, Fault | undefined>();
    const both = new Promise<void>((resolve) =>
      sup.on("child-exited", (e) => {
        faults.set(e.id, e.fault);
        if (faults.size === 2) resolve();
      }),
    );
    await sup.start();
    await both;
    const error = (faults.get("e3") as { error: unknown }).error;
    expect(error).toBeInstanceOf(WorkerExitError);
    expect(error).toMatchObject({ exitCode: 3 });
    expect(faults.get("e0")).toBeUndefined();
    await sup.stop();
  });

  it("an uncaught exception in the worker is the child's fault", async () => {
    const sup = new Supervisor({ children: [isolated({ id: "u", module: child, export: "uncaught", restart: "temporary", via })] });
    const exited = nextEvent(sup, "child-exited");
    await sup.start();
    expect((await exited).fault).toMatchObject({ kind: "error", error: { name: "RangeError", message: "uncaught in worker" } });
    await sup.stop();
  });

  it("an unknown module or export is a failed start: StartError with the loader's error", async () => {
    const bad = new Supervisor({ children: [isolated({ id: "nope", module: "./test/fixtures/missing.mjs", via })] });
    const error = await bad.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StartError);
    expect((error as StartError).cause).toMatchObject({ message: expect.stringMatching(/Cannot find module|not found/i) });
    const noExport = new Supervisor({ children: [isolated({ id: "x", module: child, export: "nothing", via })] });
    const missing = await noExport.start().catch((e: unknown) => e);
    expect((missing as StartError).cause).toMatchObject({ code: "ERR_EXPORT_NOT_FOUND" });
  });

  it("a worker that finishes before run() begins still reports its outcome", async () => {
    const sup = new Supervisor({ children: [isolated({ id: "q", module: child, export: "fails", restart: "temporary", via })] });
    const exited = nextEvent(sup, "child-exited");
    await sup.start();
    expect((await exited).fault).toMatchObject({ kind: "error", error: { message: "worker boom" } });
    await sup.stop();
  });

  it("arguments that cannot be cloned are refused when the spec is made", () => {
    expect(() => isolated({ id: "bad", module: child, args: [() => 1], via })).toThrow(expect.objectContaining({ code: "invalid-spec" }));
  });
});

describe("isolated children: the worker's own flags", () => {
  it("the bootstrap runs when the worker evaluates it as a module (a parent started with --input-type=module)", async () => {
    const sup = new Supervisor({ children: [isolated({ id: "esm", module: child, export: "quick", args: [1, 2], restart: "transient", execArgv: ["--input-type=module"] })] });
    const exited = nextEvent(sup, "child-exited");
    await sup.start();
    expect((await exited).fault).toBeUndefined();
    await sup.stop();
  });
});

describe("isolated children: memory limits", () => {
  it("out of memory under resourceLimits becomes a fault, and the parent lives on", async () => {
    const sup = new Supervisor({ children: [isolated({ id: "hog", module: child, export: "oom", restart: "temporary", resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 } })] });
    const exited = nextEvent(sup, "child-exited");
    await sup.start();
    expect((await exited).fault).toMatchObject({ kind: "error", error: { code: "ERR_WORKER_OUT_OF_MEMORY" } });
    await sup.stop();
  }, 20_000);
});

describe.each(["thread", "process"] as const)("isolated servers (%s)", (via) => {
  it("calls cross by structured clone; a non-cloneable request or reply is not-cloneable and the server lives on", async () => {
    const server = serveIsolated({ module: echo, via });
    const client = new Client(server);
    await expect(client.call("hi")).resolves.toEqual({ echo: "hi", thread: via });
    await expect(client.call(() => 1)).rejects.toMatchObject({ code: "not-cloneable" });
    await expect(client.call("fn")).rejects.toMatchObject({ code: "not-cloneable" });
    await expect(client.call("again")).resolves.toMatchObject({ echo: "again" });
    await server.stop();
  });

  it("a worker that dies mid-call fails the call at once with server-down and the worker's fault", async () => {
    const server = serveIsolated({ module: echo, via });
    const t0 = Date.now();
    const error = await server.call("exit", { timeout: 60_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CallError);
    expect(error).toMatchObject({ code: "server-down", fault: { kind: "error", error: { exitCode: 2 } } });
    expect(Date.now() - t0).toBeLessThan(60_000);
  });

  it("supervised and registered: a crash restarts it and calls by name reach the new worker", async () => {
    const registry = new Registry();
    const sup = new Supervisor({ children: [isolatedServer({ id: "echo", module: echo, register: "echo", registry, via })] });
    await sup.start();
    await expect(call("echo", "a", { registry })).resolves.toMatchObject({ echo: "a" });
    const restarted = nextEvent(sup, "child-restarted");
    await expect(call("echo", "crash", { registry })).rejects.toMatchObject({ code: "server-down" });
    await restarted;
    await expect(call("echo", "b", { registry })).resolves.toMatchObject({ echo: "b" });
    await sup.stop();
    await expect(call("echo", "c", { registry })).rejects.toMatchObject({ code: "unknown-name" });
  });

  it("a server stuck in a loop is killed after its grace period when stopped; the stuck call fails with server-down", async () => {
    const registry = new Registry();
    const sup = new Supervisor({ children: [isolatedServer({ id: "s", module: echo, register: "s", registry, shutdown: 50, via })] });
    await sup.start();
    await expect(call("s", "warm", { registry })).resolves.toMatchObject({ echo: "warm" });
    const stuck = call("s", "spin", { registry }).catch((e: CallError) => e.code);
    await new Promise((r) => setTimeout(r, 20));
    const exited = nextEvent(sup, "child-exited");
    await sup.stop();
    expect(await exited).toMatchObject({ fault: Fault.killed, requested: true });
    expect(await stuck).toBe("server-down");
  });
});

describe("isolated servers: hot deploy", () => {
  const v1 = fileURLToPath(new URL("../fixtures/server-v1.mjs", import.meta.url));
  const v2 = fileURLToPath(new URL("../fixtures/server-v2.mjs", import.meta.url));

  it("new calls use the new version; a call in flight finishes on the old one", async () => {
    const server = serveIsolated<string, string>({ module: v1, version: "1" });
    await expect(server.call("hi")).resolves.toBe("v1");
    const inFlight = server.call("slow");
    await server.deploy(v2, { version: "2" });
    expect(server.version).toBe("2");
    await expect(server.call("hi")).resolves.toBe("v2");
    await expect(inFlight).resolves.toBe("v1");
    await server.stop();
  });

  it("a deploy whose module cannot be loaded is refused, and the old version keeps serving", async () => {
    const server = serveIsolated<string, string>({ module: v1 });
    await server.call("warm");
    await expect(server.deploy("./test/fixtures/missing-v3.mjs")).rejects.toMatchObject({ name: "ExecutionError", code: "spawn-failed" });
    await expect(server.call("hi")).resolves.toBe("v1");
    expect(server.isUp).toBe(true);
    await server.stop();
  });

  it("under a supervisor, a restart after a deploy loads the deployed version", async () => {
    const registry = new Registry();
    const sup = new Supervisor({ children: [isolatedServer({ id: "s", module: v1, register: "s", registry })] });
    await sup.start();
    await (registry.lookup("s") as IsolatedServer).deploy(v2, { version: "2" });
    const restarted = nextEvent(sup, "child-restarted");
    await expect(call("s", "crash", { registry })).rejects.toMatchObject({ code: "server-down" });
    await restarted;
    await expect(call("s", "hi", { registry })).resolves.toBe("v2");
    await sup.stop();
  });
});
