/**
 * Bytes per idle connected device, per link and per line, from
 * `process.memoryUsage().heapUsed` around 10⁶ allocations, with full
 * collections (`--expose-gc`) before each reading.
 */
import { Device } from "../src/index.js";

const gc = (globalThis as { gc?: () => void }).gc;

function heap(): number {
  for (let i = 0; i < 4; i++) gc!();
  return process.memoryUsage().heapUsed;
}

/** Heap bytes per item that `make(i)` allocates, less the 8 B array slot holding it. */
function perItem<T>(count: number, make: (i: number) => T): { bytes: number; keep: T[] } {
  const keep: T[] = new Array(count);
  for (let i = 0; i < count; i++) keep[i] = undefined as T;
  const before = heap();
  for (let i = 0; i < count; i++) keep[i] = make(i);
  const after = heap();
  return { bytes: (after - before) / count, keep };
}

export interface MemoryRow {
  what: string;
  bytes: number;
}

export function memoryBenchmarks(): MemoryRow[] {
  if (gc === undefined) throw new Error("run with node --expose-gc");
  const N = 1_000_000;
  const rows: MemoryRow[] = [];

  const idle = perItem(N, () => new Device());
  rows.push({ what: "idle connected device", bytes: idle.bytes });

  const dropped = perItem(N, () => new Device({ detectDrop: true }));
  rows.push({ what: "idle connected device with detectDrop", bytes: dropped.bytes });
  for (const d of dropped.keep) d.disconnect();

  const base = idle.keep;
  const lines = perItem(N, (i) => base[i]!.line());
  rows.push({ what: "a Line", bytes: lines.bytes });

  // One monitor link per device (pairs): both ends keep the other in a plain field.
  const pairs = perItem(N / 2, (i) => {
    base[2 * i]!.link(base[2 * i + 1]!, "monitor");
    return null;
  });
  rows.push({ what: "a device's first link (monitor)", bytes: pairs.bytes });

  // A second link turns the device's list into a Set.
  const second = perItem(N / 4, (i) => {
    base[4 * i]!.link(base[4 * i + 3]!, "monitor");
    return null;
  });
  rows.push({ what: "a device's second link (its list becomes a Set)", bytes: second.bytes });

  // Fan-in: 10⁵ fresh devices all monitoring one hub: each adds one entry to the hub's Set.
  const hub = new Device();
  const fresh = Array.from({ length: N / 10 }, () => new Device());
  const fan = perItem(N / 10, (i) => {
    fresh[i]!.link(hub, "monitor");
    return null;
  });
  rows.push({ what: "each further link into a Set (10⁵ monitors of one device)", bytes: fan.bytes });
  for (const d of fresh) d.disconnect();

  for (const d of base) d.disconnect();
  hub.disconnect();
  return rows;
}
