// What an ESM user writes; typechecked against the packed declarations (import conditions).
import { BackplaneError, Crash, Device, Fault, LinkError, Supervisor, TaskSupervisor, type ManageOptions, type Message, type Work } from "backplane";
import * as cluster from "backplane/cluster";
import * as observer from "backplane/observer";
import * as otel from "backplane/otel";

const options: ManageOptions = { timeout: 1_000, grace: Number.POSITIVE_INFINITY };
const work: Work<number> = async (signal) => (signal.aborted ? 0 : 1);
const forwarded: Work<number> = (...args) => work(...args);

export async function run(): Promise<number> {
  const watcher = new Device({ name: "watcher" });
  const worker = new Device({ name: "worker" });
  watcher.link(worker, "monitor");
  const value = await worker.manage(forwarded, options);
  const heard: Message | undefined = await watcher.receive();
  if (heard?.kind === "disconnected" && heard.fault?.kind === "error") throw new Error("unexpected fault");
  try {
    await new Device().manage(() => Promise.reject(new Error("boom")));
  } catch (e) {
    if (e instanceof Crash) console.log(e.kind, e.message, e.device);
    if (e instanceof BackplaneError) console.log(e.code);
  }
  const tasks = new TaskSupervisor({ name: "jobs" });
  const doubled = await tasks.async(async () => value * 2);
  await tasks.stop();
  return doubled;
}

export const values: unknown[] = [Fault.timeout, LinkError, Supervisor, cluster, observer, otel];
