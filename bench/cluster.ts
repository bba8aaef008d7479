/**
 * Cluster benchmarks (run alone: `node --import tsx bench/cluster.ts`): a
 * real nats-server, this process as node "a" and a forked node "b".
 *
 * - remote call round trip vs a plain NATS request between the same two processes
 * - cross-node notification latency (ping-pong of two notifications, halved)
 * - failure detection after SIGKILL and after SIGSTOP, against the configured bound
 * - a call to a name nobody serves (NATS no-responders)
 * - cast throughput (64-byte payloads, one connection), counted at the receiver
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { connect } from "nats";
import { Device } from "../src/core/device.js";
import { connectNode } from "../src/cluster/index.js";
import { cleanup, NatsServer, natsMissing } from "../test/cluster/harness.js";

const PEER = fileURLToPath(new URL("./cluster-peer.ts", import.meta.url));

class Peer {
  #next = 0;
  readonly #waiting = new Map<number, (v: unknown) => void>();
  readonly exited: Promise<void>;
  constructor(readonly proc: ChildProcess) {
    proc.on("message", (m: { id: number; value: unknown }) => {
      this.#waiting.get(m.id)?.(m.value);
      this.#waiting.delete(m.id);
    });
    this.exited = new Promise((r) => proc.once("exit", () => r()));
  }
  static start(): Peer {
    return new Peer(fork(PEER, [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] }));
  }
  cmd<T>(op: string, args?: unknown): Promise<T> {
    const id = ++this.#next;
    return new Promise((resolve) => {
      this.#waiting.set(id, resolve as (v: unknown) => void);
      this.proc.send({ id, op, args });
    });
  }
  async kill(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGCONT");
    this.proc.kill("SIGKILL");
    await this.exited;
  }
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}
function us(ms: number): string {
  return `${(ms * 1000).toFixed(0)} µs`;
}
async function sample(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out.sort((x, y) => x - y);
}

/** For each pair in turn: end `start` with a fault, wait until `watcher` hears the answer; half of each round trip, sorted. */
async function halfRoundTrips(pairs: { start: Device; watcher: Device }[]): Promise<number[]> {
  const out: number[] = [];
  for (const { start, watcher } of pairs) {
    const t = performance.now();
    start.disconnect({ kind: "error", error: new Error("ping") });
    await watcher.receive();
    out.push((performance.now() - t) / 2);
  }
  return out.sort((x, y) => x - y);
}

const lines: string[] = [];
function row(...cells: string[]): void {
  lines.push(`| ${cells.join(" | ")} |`);
  process.stderr.write(`  ${cells.join(" · ")}\n`);
}

async function main(): Promise<void> {
  const missing = natsMissing();
  if (missing !== undefined) {
    console.log(`cluster benchmarks skipped: ${missing}`);
    return;
  }
  const server = await NatsServer.start();
  const base = { servers: server.url, cluster: "bench" };
  const a = await connectNode({ ...base, name: "a", heartbeatMs: 250, missedHeartbeats: 4 });
  const peer = Peer.start();
  try {
    await peer.cmd("start", { ...base, name: "b", heartbeatMs: 250, missedHeartbeats: 4, plain: true });
    const plain = await connect({ servers: server.url });
    const payload = new Uint8Array(64);

    lines.push("| workload | p50 | p99 | vs baseline |", "|---|---:|---:|---:|");
    // Calls: warm both paths, then interleave rounds so load drift hits both alike.
    const N = 2_000;
    await sample(500, () => plain.request("bench.plain", payload, { timeout: 5_000 }));
    await sample(500, () => a.call("echo", payload));
    const plainT: number[] = [];
    const callT: number[] = [];
    for (let round = 0; round < 5; round++) {
      plainT.push(...(await sample(N / 5, () => plain.request("bench.plain", payload, { timeout: 5_000 }))));
      callT.push(...(await sample(N / 5, () => a.call("echo", payload))));
    }
    plainT.sort((x, y) => x - y);
    callT.sort((x, y) => x - y);
    row("plain NATS request (64 B, between the same two processes)", us(pct(plainT, 50)), us(pct(plainT, 99)), "baseline");
    row("node.call (64 B echo)", us(pct(callT, 50)), us(pct(callT, 99)), `${(pct(callT, 50) / pct(plainT, 50)).toFixed(2)}× p50`);

    // Notification latency: a's device ends → b's device hears (notify) → b ends another → a's monitor hears. Halved.
    const PAIRS = 300;
    await peer.cmd("pongs", { count: PAIRS });
    const pairs: { start: Device; watcher: Device }[] = [];
    for (let i = 0; i < PAIRS; i++) {
      const input = (await a.lookup(`in-${i}`))!;
      const output = (await a.lookup(`out-${i}`))!;
      const local = new Device();
      local.link(input, "notify");
      const watcher = new Device();
      watcher.link(output, "monitor");
      pairs.push({ start: local, watcher });
    }
    await a.flush();
    const notify = await halfRoundTrips(pairs);
    row("cross-node notification, named devices (half a ping-pong of two)", us(pct(notify, 50)), us(pct(notify, 99)), "target p50 ≤ 400 µs");

    // The same without names: a child spawned on b, linked to a parent here; the parent's fault cascades into the child, whose ending comes back.
    const spawned: { start: Device; watcher: Device }[] = [];
    for (let i = 0; i < PAIRS; i++) {
      const parent = new Device();
      const child = await a.spawn("b", "linked", null, { parent });
      const watcher = new Device();
      watcher.link(child, "monitor");
      spawned.push({ start: parent, watcher });
    }
    await a.flush();
    const cascade = await halfRoundTrips(spawned);
    row("cross-node notification, spawned child (half of: fault → child cascades → its ending back)", us(pct(cascade, 50)), us(pct(cascade, 99)), "target p50 ≤ 400 µs");

    // Call to nobody: NATS no-responders.
    const nobody = await sample(500, () => a.call("nobody", 1).catch(() => {}));
    row("call to a name nobody serves (no-responders)", us(pct(nobody, 50)), us(pct(nobody, 99)), "target ≤ 5 ms");

    // Cast throughput, counted at the receiver.
    const CASTS = 200_000;
    const before = await peer.cmd<number>("received");
    const t0 = performance.now();
    for (let i = 0; i < CASTS; i++) {
      a.cast("sink", payload);
      if ((i & 4095) === 0) await new Promise((r) => setImmediate(r));
    }
    while ((await peer.cmd<number>("received")) - before < CASTS * 0.999) await new Promise((r) => setTimeout(r, 5));
    const got = (await peer.cmd<number>("received")) - before;
    const secs = (performance.now() - t0) / 1000;
    row(`casts, 64 B, one connection (${CASTS} sent, ${got} received)`, `${Math.round(got / secs).toLocaleString("en")}/s`, "", "target ≥ 100 000/s");
    await plain.close();
  } finally {
    await peer.kill();
  }

  // Detection: how long after SIGKILL / SIGSTOP node a declares b down, against the bound.
  // (BENCH_NO_DETECTION=1 skips it: about a minute, and it measures timers, not code.)
  if (process.env.BENCH_NO_DETECTION !== undefined) {
    await a.close();
    await cleanup();
    console.log(lines.join("\n"));
    return;
  }
  lines.push("", "| detection (heartbeatMs × missed) | bound | p50 | max | runs |", "|---|---:|---:|---:|---:|");
  for (const [hb, missed] of [
    [250, 4],
    [1000, 5],
  ] as const) {
    const bound = hb * missed + hb + 100;
    for (const sig of ["SIGKILL", "SIGSTOP"] as const) {
      const runs = hb === 1000 ? 3 : 6;
      const took: number[] = [];
      for (let r = 0; r < runs; r++) {
        const cluster = `det-${hb}-${sig}-${r}`;
        const watcher = await connectNode({ servers: server.url, name: "a", cluster, heartbeatMs: hb, missedHeartbeats: missed });
        const victim = Peer.start();
        await victim.cmd("start", { servers: server.url, name: "b", cluster, heartbeatMs: hb, missedHeartbeats: missed });
        await new Promise<void>((resolve) => {
          if (watcher.members().some((m) => m.name === "b")) resolve();
          else watcher.once("node-up", () => resolve());
        });
        // Let it beat steadily for a moment, so the kill lands anywhere in a heartbeat interval.
        await new Promise((r) => setTimeout(r, hb * 2 + Math.random() * hb));
        const down = new Promise<number>((resolve) => watcher.once("node-down", () => resolve(performance.now())));
        const t = performance.now();
        victim.proc.kill(sig);
        took.push((await down) - t);
        await victim.kill();
        await watcher.close();
      }
      took.sort((x, y) => x - y);
      row(`${sig} (${hb} ms × ${missed})`, `${bound} ms`, `${pct(took, 50).toFixed(0)} ms`, `${took[took.length - 1]!.toFixed(0)} ms`, String(runs));
    }
  }
  await a.close();
  await cleanup();
  console.log(lines.join("\n"));
}

await main();
