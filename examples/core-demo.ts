/**
 * The core on its own: a few managed tasks linked as peers and monitors. The
 * database connection fails; the failure cascades along the peer links and
 * the watcher, which monitors every task, prints each ending as it hears it.
 *
 *   npx tsx examples/core-demo.ts
 */
import { Device, type Fault } from "../src/index.js";

const start = Date.now();
const stamp = () => `${String(Date.now() - start).padStart(4)} ms`;
/** Wait `ms`, or less if `signal` aborts; the listener is removed either way. */
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });

function describe(fault: Fault | undefined, names: Map<number, string>): string {
  if (fault === undefined) return "ended cleanly";
  switch (fault.kind) {
    case "error":
      return `FAILED: ${(fault.error as Error).message}`;
    case "cascade":
      return `went down with ${names.get(fault.from)} (cascade)`;
    default:
      return `ended with fault "${fault.kind}"`;
  }
}

export async function coreDemo(): Promise<void> {
  const watcher = new Device({ name: "watcher" });
  const db = new Device({ name: "db" });
  const cache = new Device({ name: "cache" });
  const api = new Device({ name: "api" });
  const metrics = new Device({ name: "metrics" });
  const logger = new Device({ name: "logger" });
  const tasks = [db, cache, api, metrics, logger];
  const names = new Map(tasks.map((d) => [d.id, d.name!]));

  // db ⇄ cache ⇄ api are peers: each goes down when the other does.
  cache.link(db, "peer");
  api.link(cache, "peer");
  // metrics monitors api: it hears of api's end; being managed, a faulted end cascades into it.
  metrics.link(api, "monitor");
  // The watcher monitors every task but runs no managed work: it just reads its mailbox.
  for (const d of tasks) watcher.link(d, "monitor");

  console.log("db ⇄ cache ⇄ api are peers, metrics monitors api, logger is on its own;");
  console.log("the watcher monitors all five and prints what it hears:\n");

  const runs = [
    db.manage(async () => {
      await sleep(300);
      throw new Error("connection reset by peer");
    }),
    cache.manage((signal) => sleep(10_000, signal)),
    api.manage((signal) => sleep(10_000, signal)),
    metrics.manage((signal) => sleep(10_000, signal)),
    logger.manage(() => sleep(500)),
  ];
  for (const r of runs) r.catch(() => {}); // the watcher reports the endings

  let ended = 0;
  for await (const message of watcher) {
    if (message.kind !== "disconnected") continue;
    console.log(`${stamp()}  ${names.get(message.from)?.padEnd(8)} ${describe(message.fault, names)}`);
    if (++ended === tasks.length) break;
  }
  watcher.disconnect();
}

if (import.meta.url === `file://${process.argv[1]}`) await coreDemo();
