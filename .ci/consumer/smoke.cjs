// CommonJS require of the installed package (on Node < 22 this needs require(esm): p-queue is ESM-only).
const { Crash, Device, TaskSupervisor } = require("backplane");

(async () => {
  const watcher = new Device();
  const worker = new Device({ name: "worker" });
  watcher.link(worker, "monitor");
  const crash = await worker.manage(() => Promise.reject(new Error("boom"))).catch((e) => e);
  if (!(crash instanceof Crash) || crash.kind !== "error") throw new Error(`expected a Crash, got ${crash}`);
  if ((await watcher.receive())?.fault?.kind !== "error") throw new Error("the monitor did not hear the fault");
  const tasks = new TaskSupervisor({ name: "jobs" });
  if ((await tasks.async(async () => 21 * 2)) !== 42) throw new Error("task result");
  await tasks.stop();
  console.log(`CJS require of the packed package ok on node ${process.version}`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
