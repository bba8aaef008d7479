import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { BackplaneError, Device, Executor, isolated, isolatedServer, StartError, Supervisor, serveIsolated } from "../../src/index.js";

const math = fileURLToPath(new URL("../fixtures/math.mjs", import.meta.url));
const echo = fileURLToPath(new URL("../fixtures/echo-server.mjs", import.meta.url));
const index = fileURLToPath(new URL("../../src/index.ts", import.meta.url));

async function outcome(attempt: () => unknown): Promise<string> {
  try {
    const result = attempt();
    if (result instanceof Promise) await result;
    return "accepted";
  } catch (e) {
    return e instanceof BackplaneError ? `${e.name}:${e.code}` : `untyped ${String(e)}`;
  }
}

/** An executor used only to be handed bad input: it never starts a worker. */
const idle = () => new Executor({ module: math, export: "add", size: 1 });

describe("bad input to isolation: a typed error naming the field, before anything starts", () => {
  const spec = "SupervisorError:invalid-spec";
  const arg = "ExecutionError:invalid-argument";
  const cases: [string, () => unknown, string][] = [
    ["isolated(5)", () => isolated(5 as never), spec],
    ["isolated without an id", () => isolated({ module: math } as never), spec],
    ["isolated without a module", () => isolated({ id: "x" } as never), spec],
    ["isolated with module 5", () => isolated({ id: "x", module: 5 as never }), spec],
    ["isolated with via 'bogus'", () => isolated({ id: "x", module: math, via: "bogus" as never }), spec],
    ["isolated with export ''", () => isolated({ id: "x", module: math, export: "" }), spec],
    ["isolated with args 'x'", () => isolated({ id: "x", module: math, args: "x" as never }), spec],
    ["isolated with args that cannot be cloned", () => isolated({ id: "x", module: math, args: [() => 1] }), spec],
    ["isolated with execArgv 'x'", () => isolated({ id: "x", module: math, execArgv: "x" as never }), spec],
    ["isolated with env 5", () => isolated({ id: "x", module: math, env: 5 as never }), spec],
    ["isolated with resourceLimits 5", () => isolated({ id: "x", module: math, resourceLimits: 5 as never }), spec],
    ["isolated with resourceLimits.maxOldGenerationSizeMb -1", () => isolated({ id: "x", module: math, resourceLimits: { maxOldGenerationSizeMb: -1 } }), spec],
    ["isolated with an unknown resourceLimits field", () => isolated({ id: "x", module: math, resourceLimits: { heapMb: 5 } as never }), spec],
    ["isolated with standby 'yes'", () => isolated({ id: "x", module: math, standby: "yes" as never }), spec],
    ["isolated with standby.linger -1", () => isolated({ id: "x", module: math, standby: { linger: -1 } }), spec],
    ["isolated with standby.linger Infinity", () => isolated({ id: "x", module: math, standby: { linger: Number.POSITIVE_INFINITY } }), spec],
    ["isolatedServer without a module", () => isolatedServer({ id: "x" } as never), spec],
    ["isolatedServer with via 'bogus'", () => isolatedServer({ id: "x", module: echo, via: "bogus" as never }), spec],
    ["isolatedServer with register 5", () => isolatedServer({ id: "x", module: echo, register: 5 as never }), spec],
    ["isolatedServer with a bad registry", () => isolatedServer({ id: "x", module: echo, registry: {} as never }), spec],
    ["isolatedServer with version 2", () => isolatedServer({ id: "x", module: echo, version: 2 as never }), spec],
    ["serveIsolated(5)", () => serveIsolated(5 as never), "CallError:invalid-argument"],
    ["serveIsolated without a module", () => serveIsolated({} as never), "CallError:invalid-argument"],
    ["serveIsolated with via 'bogus'", () => serveIsolated({ module: echo, via: "bogus" as never }), "CallError:invalid-argument"],
    ["serveIsolated with env 'x'", () => serveIsolated({ module: echo, env: "x" as never }), "CallError:invalid-argument"],
    ["serveIsolated on a non-device", () => serveIsolated({ module: echo }, 5 as never), "CallError:invalid-argument"],
    ["serveIsolated on a disconnected device", () => {
      const d = new Device();
      d.disconnect();
      return serveIsolated({ module: echo }, d);
    }, "CallError:server-down"],
    ["new Executor(5)", () => new Executor(5 as never), arg],
    ["new Executor without a module", () => new Executor({} as never), arg],
    ["new Executor with via 'bogus'", () => new Executor({ module: math, via: "bogus" as never }), arg],
    ["new Executor with size 0", () => new Executor({ module: math, size: 0 }), arg],
    ["new Executor with size 1.5", () => new Executor({ module: math, size: 1.5 }), arg],
    ["new Executor with idleTimeout -1", () => new Executor({ module: math, idleTimeout: -1 }), arg],
    ["new Executor with idleTimeout NaN", () => new Executor({ module: math, idleTimeout: Number.NaN }), arg],
    ["new Executor with name 5", () => new Executor({ module: math, name: 5 as never }), arg],
    ["new Executor with standby 1", () => new Executor({ module: math, standby: 1 as never }), arg],
    ["execute('x')", () => idle().execute("x" as never), arg],
    ["execute with options 5", () => idle().execute([], 5 as never), arg],
    ["execute with timeout -1", () => idle().execute([], { timeout: -1 }), arg],
    ["execute with timeout '1s'", () => idle().execute([], { timeout: "1s" as never }), arg],
    ["execute with a bad signal", () => idle().execute([], { signal: {} as never }), arg],
    ["execute with an aborted signal", () => idle().execute([], { signal: AbortSignal.abort() }), "ExecutionError:aborted"],
    ["deploy(5)", () => idle().deploy(5 as never), arg],
    ["deploy with via 'bogus' kept from nowhere: export 7", () => idle().deploy(math, { export: 7 as never }), arg],
    ["deploy with options 'x'", () => idle().deploy(math, "x" as never), arg],
    ["deploy after close", () => {
      const e = idle();
      void e.close();
      e.deploy(math);
    }, "ExecutionError:closed"],
    ["close with timeout -5", () => idle().close({ timeout: -5 }), arg],
    ["close with options 5", () => idle().close(5 as never), arg],
    ["execute after close", () => {
      const e = idle();
      void e.close();
      return e.execute([1, 2]);
    }, "ExecutionError:closed"],
  ];
  it.each(cases)("%s", async (_what, attempt, expected) => {
    expect(await outcome(attempt)).toBe(expected);
  });

  it("a process that met bad input and started nothing still exits by itself (no port, worker or timer left)", () => {
    const script = `
      const b = await import(${JSON.stringify(index)});
      const tries = [
        () => b.serveIsolated({ module: ${JSON.stringify(echo)}, via: "bogus" }),
        () => b.serveIsolated({ module: ${JSON.stringify(echo)}, resourceLimits: { maxOldGenerationSizeMb: -1 } }),
        () => b.serveIsolated({ module: ${JSON.stringify(echo)}, env: 5 }),
        () => b.serveIsolated({}),
        () => b.serve(5, () => 1),
        () => b.serve(new b.Device(), () => 1, { signal: {} }),
        () => new b.Executor({ module: ${JSON.stringify(math)}, via: "bogus" }),
        () => b.isolatedServer({ id: "x" }),
      ];
      let refused = 0;
      for (const t of tries) { try { t(); } catch (e) { if (e instanceof b.BackplaneError) refused++; } }
      await new b.Executor({ module: ${JSON.stringify(math)} }).execute([], { timeout: -1 }).catch((e) => { if (e instanceof b.BackplaneError) refused++; });
      console.log("refused", refused);
    `;
    const child = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8", timeout: 30_000 });
    expect(child.error).toBeUndefined(); // a timeout (the process hung) would be an ETIMEDOUT error here
    expect(child.stderr).not.toMatch(/Error/);
    expect(child.stdout.trim()).toBe("refused 9");
    expect(child.status).toBe(0);
  }, 40_000);
});

describe("bad input to a running isolated server", () => {
  it("deploy refuses a bad module or options with invalid-argument, and the server keeps serving", async () => {
    await using server = serveIsolated<string, { echo: string }>({ module: echo });
    await expect(server.call("a")).resolves.toMatchObject({ echo: "a" });
    expect(await outcome(() => server.deploy(5 as never))).toBe("ExecutionError:invalid-argument");
    expect(await outcome(() => server.deploy(echo, "x" as never))).toBe("ExecutionError:invalid-argument");
    expect(await outcome(() => server.deploy(echo, { version: 2 as never }))).toBe("ExecutionError:invalid-argument");
    expect(await outcome(() => server.deploy(echo, { export: "" }))).toBe("ExecutionError:invalid-argument");
    expect(await outcome(() => server.call("b", { timeout: -1 }))).toBe("CallError:invalid-argument");
    await expect(server.call("b")).resolves.toMatchObject({ echo: "b" });
  });

  it("await using stops an isolated server (and ends its worker) at the end of the scope", async () => {
    let device: Device;
    {
      await using server = serveIsolated({ module: echo });
      device = server.device;
      await server.call("hi");
    }
    expect(device.isConnected).toBe(false);
  });
});

describe("an isolated server whose module cannot be loaded", () => {
  it("is a failed start (StartError with the loader's error), not a crash loop of restarts", async () => {
    let restarts = 0;
    const sup = new Supervisor({ children: [isolatedServer({ id: "ghost", module: "./test/fixtures/no-such-handler.mjs" })] });
    sup.on("child-restarted", () => restarts++);
    const error = await sup.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StartError);
    expect((error as Error).cause).toMatchObject({ message: expect.stringMatching(/Cannot find module|not found/i) });
    expect(restarts).toBe(0);
  });

  it("an isolated child whose worker cannot even be created (bad execArgv) is a failed start too", async () => {
    const sup = new Supervisor({ children: [isolated({ id: "flags", module: math, execArgv: ["--no-such-flag-at-all"] })] });
    const error = await sup.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StartError);
    expect((error as Error).cause).toMatchObject({ code: "ERR_WORKER_INVALID_EXEC_ARGV" });
  });

  it("a worker that cannot even be created (bad execArgv) is a failed start with spawn-failed", async () => {
    const sup = new Supervisor({ children: [isolatedServer({ id: "flags", module: echo, execArgv: ["--no-such-flag-at-all"] })] });
    const error = await sup.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StartError);
    expect((error as Error).cause).toMatchObject({ name: "ExecutionError", code: "spawn-failed" });
  });
});
