/**
 * `npm run bench`: every benchmark in one run, peers side by side, then a
 * Markdown report on stdout (progress goes to stderr). The figures in
 * docs/benchmarks.md come from this command.
 */
import os from "node:os";
import { crateBenchmarks, lifecycleBenchmarks, manageBenchmarks, notificationBenchmarks } from "./core.js";
import { report } from "./harness.js";
import { memoryBenchmarks } from "./memory.js";

const only = process.argv[2];
const suites: [string, () => Promise<unknown> | unknown][] = [
  ["core", crateBenchmarks],
  ["core", notificationBenchmarks],
  ["core", manageBenchmarks],
  ["core", lifecycleBenchmarks],
];

process.stderr.write(`node ${process.version}, ${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}\n`);
for (const [name, suite] of suites) if (only === undefined || only === name) await suite();

const memory = only === undefined || only === "memory" ? memoryBenchmarks() : [];
console.log(`## Run of ${new Date().toISOString().slice(0, 10)} — node ${process.version}, ${os.cpus().length} cores\n`);
console.log(report());
if (memory.length > 0) {
  console.log("### memory (10⁶ objects, heapUsed after full GC)\n\n| what | bytes |\n|---|---:|");
  for (const r of memory) console.log(`| ${r.what} | ${r.bytes.toFixed(0)} |`);
}
