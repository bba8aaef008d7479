import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { type ExecutionRecord, ExecutionError, Executor } from "../../src/index.js";

const math = fileURLToPath(new URL("../fixtures/math.mjs", import.meta.url));
const mathV2 = fileURLToPath(new URL("../fixtures/math-v2.mjs", import.meta.url));
const open: Executor[] = [];
function executor<A extends unknown[] = unknown[], R = unknown>(options: ConstructorParameters<typeof Executor>[0]): Executor<A, R> {
  const e = new Executor<A, R>(options);
  open.push(e);
  return e;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((e) => e.close()));
});
const codeOf = (p: Promise<unknown>) => p.then(() => "resolved", (e: unknown) => (e instanceof ExecutionError ? e.code : `other: ${String(e)}`));

describe.each(["thread", "process"] as const)("Executor (%s)", (via) => {
  it("runs the exported function with the arguments and resolves its result", async () => {
    const add = executor<[number, number], number>({ module: math, export: "add", via, size: 2 });
    await expect(add.execute([2, 3])).resolves.toBe(5);
    await expect(Promise.all([add.execute([1, 1]), add.execute([2, 2]), add.execute([3, 3])])).resolves.toEqual([2, 4, 6]);
    expect(add.workers).toBeLessThanOrEqual(2);
  });

  it("a thrown error is ExecutionError error with the worker's error as cause; the worker lives on", async () => {
    const fail = executor<[string]>({ module: math, export: "fail", via, size: 1 });
    const error = await fail.execute(["bad input"]).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "error", cause: { message: "bad input" } });
    expect((error as ExecutionError).cause).toHaveProperty("stack", expect.stringContaining("math.mjs"));
    await expect(codeOf(fail.execute(["again"]))).resolves.toBe("error");
    expect(fail.workers).toBe(1);
  });

  it("a timeout terminates a spinning worker: timeout, and the other calls are untouched", async () => {
    const spin = executor({ module: math, export: "spin", via, size: 2 });
    const add = executor<[number, number], number>({ module: math, export: "add", via, size: 1 });
    const stuck = codeOf(spin.execute([], { timeout: 100 }));
    await expect(add.execute([1, 2])).resolves.toBe(3);
    expect(await stuck).toBe("timeout");
    expect(spin.workers).toBe(0);
  });

  it("a crash (process.exit) fails only its own call, and a new worker serves the next", async () => {
    const crash = executor({ module: math, export: "crash", via, size: 1 });
    const error = await crash.execute([]).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "crashed" });
    const pid = executor<[], string>({ module: math, export: "pid", via, size: 2 });
    const [a, b] = await Promise.all([pid.execute([]), crash.execute([]).catch(() => "crashed")]);
    expect(a).toMatch(/:1$/);
    expect(b).toBe("crashed");
  });

  it("unknown module or export: spawn-failed with the loader's error", async () => {
    const missing = executor({ module: "./test/fixtures/nope.mjs", via });
    expect(await codeOf(missing.execute([]))).toBe("spawn-failed");
    const noExport = executor({ module: math, export: "nothing", via });
    const error = await noExport.execute([]).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "spawn-failed", cause: { code: "ERR_EXPORT_NOT_FOUND" } });
  });

  it("non-cloneable arguments or results: not-cloneable, and the worker lives on", async () => {
    const add = executor({ module: math, export: "add", via, size: 1 });
    expect(await codeOf(add.execute([() => 1, 2]))).toBe("not-cloneable");
    const fn = executor({ module: math, export: "notCloneable", via, size: 1 });
    expect(await codeOf(fn.execute([]))).toBe("not-cloneable");
    await expect(add.execute([1, 2])).resolves.toBe(3);
  });

  it("workers are reused: repeated calls do not pay a worker start each time", async () => {
    const pid = executor<[], string>({ module: math, export: "pid", via, size: 1 });
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await pid.execute([]));
    expect(new Set(results.map((r) => r.split(":")[0])).size).toBe(1);
    expect(results.at(-1)).toMatch(/:5$/);
  });

  it("deploy: calls in flight finish on the old version, new calls use the new one, old workers retire", async () => {
    const version = executor<[], string>({ module: math, via, size: 2, version: "1" });
    await expect(version.execute([])).resolves.toBe("v1");
    version.deploy(mathV2, { version: "2" });
    expect(version.version).toBe("2");
    await expect(version.execute([])).resolves.toBe("v2");
    expect(version.workers).toBe(1);
  });

  it("deploy while the first worker is still starting: the waiting call runs on the new version", async () => {
    const version = executor<[], string>({ module: math, via, size: 1 });
    const first = version.execute([]);
    version.deploy(mathV2);
    await expect(first).resolves.toBe("v2");
  });

  it("deploy while a call runs: it completes on the old version", async () => {
    const slow = executor<[number, string], string>({ module: math, export: "slow", via, size: 1 });
    await slow.execute([0, "warm"]);
    const inFlight = slow.execute([100, "old"]);
    slow.deploy(math, { export: "slow", version: "2" });
    const next = slow.execute([1, "new"]);
    await expect(inFlight).resolves.toBe("old");
    await expect(next).resolves.toBe("new");
  });

  it("records: each execution is observed with name, version, timing and outcome", async () => {
    const fail = executor<[string]>({ module: math, export: "fail", via, size: 1, version: "7", name: "validator" });
    const records: ExecutionRecord[] = [];
    fail.on("record", (r) => records.push(r));
    await fail.execute(["x"]).catch(() => {});
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ name: "validator", version: "7", outcome: "error", fault: { kind: "error" } });
    expect(records[0]!.duration).toBeGreaterThanOrEqual(0);
  });

  it("close: queued calls fail with closed, the one in flight finishes, new calls are refused", async () => {
    const slow = executor<[number, string], string>({ module: math, export: "slow", via, size: 1 });
    await slow.execute([0, "warm"]); // the worker is up: the next call is in flight at once
    const inFlight = slow.execute([50, "done"]);
    const queued = codeOf(slow.execute([1, "queued"]));
    const closing = slow.close();
    expect(await queued).toBe("closed");
    await expect(inFlight).resolves.toBe("done");
    await closing;
    expect(slow.workers).toBe(0);
    expect(await codeOf(slow.execute([1, "late"]))).toBe("closed");
  });
});

describe("Executor: bad input", () => {
  it("is ExecutionError invalid-argument", async () => {
    expect(() => new Executor({ module: math, size: 0 })).toThrow(ExecutionError);
    expect(() => new Executor({} as never)).toThrow(expect.objectContaining({ code: "invalid-argument" }));
    const e = executor({ module: math, export: "add" });
    expect(await codeOf(e.execute("x" as never))).toBe("invalid-argument");
    expect(await codeOf(e.execute([], { timeout: -1 }))).toBe("invalid-argument");
  });
});

describe("Executor: loading failures, records, close and idle workers", () => {
  const exitsOnLoad = fileURLToPath(new URL("../fixtures/exits-on-load.mjs", import.meta.url));

  it("a module that exits (even with code 0) while loading is spawn-failed, not an endless respawn", async () => {
    const e = executor({ module: exitsOnLoad, size: 1 });
    expect(await codeOf(e.execute([]))).toBe("spawn-failed");
    expect(e.workers).toBe(0);
  });

  it("a worker that cannot even be created (bad execArgv) is spawn-failed, and close() still works", async () => {
    const e = executor({ module: math, export: "add", execArgv: ["--no-such-flag-at-all"], size: 1 });
    expect(await codeOf(e.execute([1, 2]))).toBe("spawn-failed");
    expect(await codeOf(e.execute([1, 2]))).toBe("spawn-failed");
    await e.close();
  });

  it("records carry the version the call ran on, and a crash is an error with its cause", async () => {
    const slow = executor<[number, string], string>({ module: math, export: "slow", size: 1, version: "1" });
    const records: ExecutionRecord[] = [];
    slow.on("record", (r) => records.push(r));
    await slow.execute([0, "warm"]);
    const inFlight = slow.execute([50, "old"]);
    slow.deploy(math, { export: "slow", version: "2" });
    await inFlight;
    await slow.execute([0, "new"]);
    expect(records.map((r) => r.version)).toEqual(["1", "1", "2"]);
    const crash = executor({ module: math, export: "crash", size: 1 });
    const crashes: ExecutionRecord[] = [];
    crash.on("record", (r) => crashes.push(r));
    await crash.execute([]).catch(() => {});
    expect(crashes[0]).toMatchObject({ outcome: "error", fault: { kind: "error", error: { exitCode: 1 } } });
  });

  it("close() resolves once the workers have exited", async () => {
    const e = executor({ module: math, export: "add", size: 2 });
    await Promise.all([e.execute([1, 1]), e.execute([2, 2])]);
    await e.close();
    expect(e.workers).toBe(0);
  });
});

describe("Executor: idle reaping", () => {
  it("a worker idle for idleTimeout is ended, and the next call starts a new one", async () => {
    const pid = executor<[], string>({ module: math, export: "pid", size: 1, idleTimeout: 30 });
    const first = await pid.execute([]);
    expect(pid.workers).toBe(1);
    await new Promise((r) => setTimeout(r, 120));
    expect(pid.workers).toBe(0);
    const second = await pid.execute([]);
    expect(second).toMatch(/:1$/); // a fresh worker: its call count starts again
    expect(first).toMatch(/:1$/);
  });
});
