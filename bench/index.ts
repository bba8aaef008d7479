/**
 * `npm run bench`: every benchmark in one run, peers side by side, then a
 * Markdown report on stdout (progress goes to stderr). The figures in
 * docs/benchmarks.md come from this command. `npm run bench -- core`,
 * `-- supervisor`, `-- calls` or `-- memory` runs one part.
 */
import os from "node:os";
import { crateBenchmarks, lifecycleBenchmarks as unitLifecycle, manageBenchmarks, notificationBenchmarks } from "./core.js";
import { format, report } from "./harness.js";
import { callBenchmarks, killBenchmarks } from "./calls.js";
import { memoryBenchmarks } from "./memory.js";
import { lifecycleBenchmarks, restartBenchmarks, supervisedMemory } from "./supervisor.js";

const only = process.argv[2];
const want = (part: string) => only === undefined || only === part;

process.stderr.write(`node ${process.version}, ${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}\n`);
if (want("core")) {
  await crateBenchmarks();
  await notificationBenchmarks();
  await manageBenchmarks();
  await unitLifecycle();
}
if (want("supervisor")) await restartBenchmarks();
const lifecycle = want("supervisor") ? await lifecycleBenchmarks() : [];
if (want("calls")) await callBenchmarks();
const kills = want("calls") ? await killBenchmarks() : [];
const memory = want("memory") ? memoryBenchmarks() : [];
const perChild = want("memory") ? await supervisedMemory() : undefined;

console.log(`## Run of ${new Date().toISOString().slice(0, 10)} — node ${process.version}, ${os.cpus()[0]?.model ?? "cpu"}, ${os.cpus().length} cores\n`);
console.log(report());
if (lifecycle.length > 0) {
  console.log("### supervisor start/stop with 10⁴ children (median of 5 rounds)\n\n| what | total | per child |\n|---|---:|---:|");
  for (const r of lifecycle) console.log(`| ${r.what} | ${r.ms.toFixed(1)} ms | ${format(r.perChildUs * 1000)} |`);
  console.log("");
}
if (kills.length > 0) {
  console.log("### killing a spinning worker until its replacement serves (median of 15 rounds)\n\n| what | time |\n|---|---:|");
  for (const r of kills) console.log(`| ${r.what} | ${r.ms.toFixed(2)} ms |`);
  console.log("");
}
if (memory.length > 0) {
  console.log("### memory (heapUsed after full GC)\n\n| what | bytes |\n|---|---:|");
  for (const r of memory) console.log(`| ${r.what} (10⁶) | ${Math.round(r.bytes)} |`);
  if (perChild !== undefined) console.log(`| a supervised idle child, all included (10⁴) | ${Math.round(perChild)} |`);
}
