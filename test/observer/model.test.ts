import { describe, expect, it } from "vitest";
import { Supervisor, TaskSupervisor } from "../../src/index.js";
import { TreeModel } from "../../src/observer/model.js";
import { next, worker } from "../supervisor/helpers.js";

describe("the observer's model", () => {
  it("the quick walk (whichChildren/stateOf) and the full one (snapshot) agree on every node", async () => {
    const db = worker("db");
    const w1 = worker("w1");
    const gone = worker("gone", { restart: "temporary" });
    const app = new Supervisor({
      name: "app",
      children: [db.spec, Supervisor.child("pool", () => ({ name: "pool", strategy: "one-for-all", children: [w1.spec, gone.spec] })), TaskSupervisor.child("jobs"), Supervisor.child("later", () => ({ name: "later" }))],
    });
    await app.start();
    const restarted = next(app, "child-restarted");
    db.current.crash(new Error("boom"));
    await restarted;
    await app.terminateChild("later"); // a supervisor child that is not running
    await (app.stateOf<TaskSupervisor>("jobs") as TaskSupervisor).async(async () => 1);
    const quick = new TreeModel([app], 5);
    const full = new TreeModel([app], 5);
    full.collect(true);
    quick.collect(true); // its mailbox cache
    quick.collect(false);
    expect(quick.all()).toEqual(full.all());
    expect(full.all().map((n) => `${n.path} ${n.kind} ${n.status}`)).toEqual([
      "app supervisor running",
      "app/db worker running",
      "app/pool supervisor running",
      "app/pool/w1 worker running",
      "app/pool/gone worker running",
      "app/jobs tasks running",
      "app/later supervisor stopped",
    ]);
    await app.stop();
    quick.collect(false);
    full.collect(true);
    expect(quick.all()).toEqual(full.all());
  });

  it("diff: only what changed, and what is gone", async () => {
    const a = worker("a");
    const b = worker("b", { restart: "temporary" });
    const app = new Supervisor({ name: "app", children: [a.spec, b.spec] });
    await app.start();
    const model = new TreeModel([app], 5);
    expect(model.diff(true).changed).toHaveLength(3);
    expect(model.diff()).toEqual({ changed: [], changedJson: [], removed: [] });
    const exited = next(app, "child-exited");
    b.current.finish(); // a temporary child is forgotten when it ends
    await exited;
    const patch = model.diff();
    expect(patch.removed).toEqual(["app/b"]);
    expect(patch.changed.map((n) => n.path)).toEqual(["app"]);
    await app.stop();
  });

  it("two roots with the same name get distinct paths", async () => {
    const one = new Supervisor({ name: "x" });
    const two = new Supervisor({ name: "x" });
    const model = new TreeModel([one, two], 5);
    model.collect(false);
    expect(model.rootPaths).toEqual(["x", "x~2"]);
  });
});
