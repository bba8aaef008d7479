// ESM import of the installed package: a monitored failure, and a task on TaskSupervisor (its queue is p-queue, ESM-only).
import { Crash, Device, TaskSupervisor } from "backplane";

const watcher = new Device();
const worker = new Device({ name: "worker" });
watcher.link(worker, "monitor");
const crash = await worker.manage(() => Promise.reject(new Error("boom"))).catch((e) => e);
if (!(crash instanceof Crash) || crash.kind !== "error") throw new Error(`expected a Crash, got ${crash}`);
if ((await watcher.receive())?.fault?.kind !== "error") throw new Error("the monitor did not hear the fault");
const tasks = new TaskSupervisor({ name: "jobs" });
if ((await tasks.async(async () => 21 * 2)) !== 42) throw new Error("task result");
await tasks.stop();
console.log(`ESM import of the packed package ok on node ${process.version}`);
