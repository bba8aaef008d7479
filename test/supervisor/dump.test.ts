import { describe, expect, it } from "vitest";
import { describeFault, dumpTree, Supervisor, snapshot, TaskSupervisor, treeToMermaid } from "../../src/index.js";
import { next, worker } from "./helpers.js";

describe("tree dumps", () => {
  it("text: every child with status, restarts and last fault, nested supervisors walked", async () => {
    const db = worker("db");
    const w1 = worker("w1");
    const app = new Supervisor({
      name: "app",
      children: [db.spec, Supervisor.child("workers", () => ({ name: "workers", strategy: "one-for-all", children: [w1.spec] })), TaskSupervisor.child("tasks")],
    });
    await app.start();
    const restarted = next(app, "child-restarted");
    db.current.crash(new Error("connection reset"));
    await restarted;
    const text = dumpTree(app);
    expect(text.split("\n")).toEqual([
      "app (one-for-one) running",
      "├─ db                     running    restarts 1  last: error: connection reset",
      "├─ workers (one-for-all)  running    restarts 0",
      "│  └─ w1                  running    restarts 0",
      "└─ tasks (0 running)      running    restarts 0",
    ]);
    const tree = snapshot(app);
    expect(tree.children.map((c) => c.kind)).toEqual(["worker", "supervisor", "tasks"]);
    const mermaid = treeToMermaid(app);
    expect(mermaid).toMatch(/^flowchart TD/);
    expect(mermaid).toContain('("db<br/>running, 1 restarts")');
    expect(mermaid).toContain("n0 --> n2");
    await app.stop();
    expect(dumpTree(app).split("\n")[0]).toBe("app (one-for-one) stopped");
  });
});

describe("tree dumps of hostile faults", () => {
  it("a fault whose error's toString and message throw is dumped by its type, never throws", async () => {
    const hostile = {
      toString() {
        throw new Error("no toString");
      },
    };
    const evil = Object.create(Error.prototype, { message: { get: () => { throw new Error("no message"); } } }) as Error;
    const app = new Supervisor({ name: "app", intensity: 10, children: [{ id: "w", restart: "transient", run: () => Promise.reject(hostile) }, { id: "v", restart: "transient", run: () => Promise.reject(evil) }] });
    await app.start();
    await new Promise<void>((resolve) => {
      let n = 0;
      app.on("child-exited", () => ++n === 2 && resolve());
    });
    const text = dumpTree(app);
    expect(text).toContain("last: error: [object Object]");
    expect(text).toMatch(/v .*last: error: \[object (Error|Object)\]/);
    await app.stop();
  });
});

describe("describeFault of a lost node", () => {
  it("names the node", () => {
    expect(describeFault({ kind: "noconnection", node: "b" })).toBe("noconnection: node b was lost");
  });
});
