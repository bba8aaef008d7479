/**
 * A thin layer over mitata's `measure`: run named workloads in one process,
 * keep their median ns/op, and print them as a Markdown table with ratios
 * against a baseline row, so peers are always compared in the same run.
 */
import { measure } from "mitata";

export interface Row {
  group: string;
  name: string;
  ns: number;
  /** The row this one is compared with (same group), if any. */
  versus?: string;
}

const rows: Row[] = [];

export async function time(group: string, name: string, fn: () => unknown, versus?: string): Promise<number> {
  // A few thousand calls first, so every path is optimised before sampling.
  for (let i = 0; i < 2_000; i++) await fn();
  const stats = await measure(fn, { min_cpu_time: 300 * 1e6 });
  const row: Row = { group, name, ns: stats.p50, ...(versus !== undefined && { versus }) };
  rows.push(row);
  process.stderr.write(`  ${group} · ${name}: ${format(row.ns)}\n`);
  return row.ns;
}

export function format(ns: number): string {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`;
  return `${ns.toFixed(1)} ns`;
}

/** The run's results as Markdown: one table per group, each peer row with "ours is N× faster". */
export function report(): string {
  const out: string[] = [];
  const groups = [...new Set(rows.map((r) => r.group))];
  for (const g of groups) {
    out.push(`### ${g}`, "", "| workload | median | backplane is |", "|---|---:|---:|");
    const inGroup = rows.filter((r) => r.group === g);
    for (const r of inGroup) {
      const base = r.versus === undefined ? undefined : inGroup.find((x) => x.name === r.versus);
      const ratio = base === undefined ? "" : r.ns >= base.ns ? `${(r.ns / base.ns).toFixed(1)}× faster` : `${(base.ns / r.ns).toFixed(1)}× slower`;
      out.push(`| ${r.name} | ${format(r.ns)} | ${ratio} |`);
    }
    out.push("");
  }
  return out.join("\n");
}
