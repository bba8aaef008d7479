import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { WorkerReply } from "../../src/isolation/protocol.js";
import { WorkerHandle, type WorkerSettings } from "../../src/isolation/worker-handle.js";

const math = fileURLToPath(new URL("../fixtures/math.mjs", import.meta.url));
const child = fileURLToPath(new URL("../fixtures/child.mjs", import.meta.url));

/** A worker whose replies are awaited one by one. */
function open(settings: WorkerSettings) {
  const replies: WorkerReply[] = [];
  const waiters: (() => void)[] = [];
  const worker = new WorkerHandle(settings);
  let ended = false;
  worker.listen(
    (m) => {
      replies.push(m);
      for (const w of waiters.splice(0)) w();
    },
    () => {
      ended = true;
      for (const w of waiters.splice(0)) w();
    },
  );
  return {
    worker,
    async next(): Promise<WorkerReply | "ended"> {
      while (replies.length === 0 && !ended) await new Promise<void>((resolve) => waiters.push(resolve));
      return replies.shift() ?? "ended";
    },
  };
}

describe.each(["thread", "process"] as const)("the worker protocol (%s)", (via) => {
  it("load → ready; call → ok or err by id, in any number", async () => {
    const { worker, next } = open({ module: math, export: "add", via });
    expect(await next()).toEqual({ t: "ready" });
    worker.send({ t: "call", id: 7, args: [2, 3] });
    expect(await next()).toEqual({ t: "ok", id: 7, value: 5 });
    worker.send({ t: "call", id: 8, args: [1n, 1] }); // BigInt + number throws in the worker
    expect(await next()).toMatchObject({ t: "err", id: 8, error: { name: "TypeError" } });
    worker.kill();
    expect(await next()).toBe("ended");
  });

  it("a result that cannot be cloned is err with notCloneable", async () => {
    const { worker, next } = open({ module: math, export: "notCloneable", via });
    expect(await next()).toEqual({ t: "ready" });
    worker.send({ t: "call", id: 1, args: [] });
    expect(await next()).toMatchObject({ t: "err", id: 1, notCloneable: true });
    worker.kill();
  });

  it("load of a missing export → fatal with ERR_EXPORT_NOT_FOUND", async () => {
    const { worker, next } = open({ module: math, export: "nothing", via });
    expect(await next()).toMatchObject({ t: "fatal", error: { code: "ERR_EXPORT_NOT_FOUND" } });
    worker.kill();
  });

  it("run calls the function once with { id, args, signal } → done; stop sent before run is kept", async () => {
    const quick = open({ module: child, export: "quick", via });
    expect(await quick.next()).toEqual({ t: "ready" });
    quick.worker.send({ t: "run", id: "q", args: [1, 2, 3] });
    expect(await quick.next()).toEqual({ t: "done", value: 6 });
    quick.worker.kill();

    const co = open({ module: child, export: "cooperative", via });
    co.worker.send({ t: "stop" }); // before the module has even loaded
    expect(await co.next()).toEqual({ t: "ready" });
    co.worker.send({ t: "run", id: "c", args: ["bye"] });
    expect(await co.next()).toEqual({ t: "done", value: "bye" });
    co.worker.kill();
  });

  it("run of a function that throws → error with name, message and stack", async () => {
    const { worker, next } = open({ module: child, export: "fails", via });
    expect(await next()).toEqual({ t: "ready" });
    worker.send({ t: "run", id: "f", args: [] });
    expect(await next()).toMatchObject({ t: "error", error: { name: "TypeError", message: "worker boom", stack: expect.stringContaining("child.mjs") } });
    worker.kill();
  });
});
