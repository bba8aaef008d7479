/**
 * The cluster invariant, as a property: over random schedules of remote
 * links, device endings and node losses, every monitor of a remote device
 * hears exactly one ending — the device's own, or noconnection of its node —
 * never both, never none.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Device } from "../../src/core/device.js";
import type { Fault } from "../../src/core/fault.js";
import type { Message } from "../../src/core/message.js";
import { type ClusterNode, connectNode, type RemoteLine } from "../../src/cluster/index.js";
import { cleanup, NatsServer, natsMissing } from "./harness.js";

const why = natsMissing();
const DEVICES = 4;

type Step =
  | { op: "link"; at: number; target: number; mode: "monitor" | "peer" }
  | { op: "end"; target: number; clean: boolean }
  | { op: "lose"; node: number };

const target = fc.integer({ min: 0, max: 2 * DEVICES - 1 }); // devices 0..3 on node 1, 4..7 on node 2
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant("link" as const), at: fc.integer({ min: 0, max: 2 }), target, mode: fc.constantFrom("monitor" as const, "peer" as const) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("end" as const), target, clean: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("lose" as const), node: fc.constantFrom(1, 2) }) },
);

describe.skipIf(why)(why ? `cluster property (skipped: ${why})` : "cluster property", { timeout: 120_000 }, () => {
  let server: NatsServer;
  let run = 0;
  beforeAll(async () => {
    server = await NatsServer.start();
  });
  afterAll(cleanup);

  it("exactly one ending per monitor over random link / end / node-loss schedules", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 25 }), async (steps) => {
        const cluster = `p${++run}`;
        const nodes: ClusterNode[] = [];
        for (const name of ["n0", "n1", "n2"]) nodes.push(await connectNode({ servers: server.url, name, cluster, heartbeatMs: 200, missedHeartbeats: 4 }));
        try {
          const devices: Device[] = [];
          for (let i = 0; i < 2 * DEVICES; i++) {
            const d = new Device();
            devices.push(d);
            await nodes[i < DEVICES ? 1 : 2]!.export(d, { name: `d${i}` });
          }
          const lost = new Set<number>();
          const lines = new Map<string, RemoteLine>();
          const watchers: { watcher: Device; target: number; at: number }[] = [];
          /** What each device ended with before its node was lost ("alive" = not ended). */
          const endedWith = new Map<number, string>();
          for (const s of steps) {
            if (s.op === "link") {
              const home = s.target < DEVICES ? 1 : 2;
              if (s.at === home || lost.has(s.at)) continue; // links across nodes only, from live nodes
              const key = `${s.at}/${s.target}`;
              let line = lines.get(key);
              if (line === undefined) {
                line = (await nodes[s.at]!.lookup(`d${s.target}`).catch(() => undefined)) ?? undefined;
                if (line === undefined) continue; // its name is gone already (ended or its node lost)
                lines.set(key, line);
              }
              const watcher = new Device();
              watcher.link(line, s.mode);
              watchers.push({ watcher, target: s.target, at: s.at });
            } else if (s.op === "end") {
              const home = s.target < DEVICES ? 1 : 2;
              if (lost.has(home) || endedWith.has(s.target)) continue;
              endedWith.set(s.target, s.clean ? "clean" : `error:d${s.target}`);
              devices[s.target]!.disconnect(s.clean ? undefined : { kind: "error", error: new Error(`d${s.target}`) });
            } else if (!lost.has(s.node)) {
              lost.add(s.node);
              await nodes[s.node]!.close();
            }
          }
          // Whatever is still alive ends now, so every watcher has something to hear.
          for (let i = 0; i < 2 * DEVICES; i++) {
            const home = i < DEVICES ? 1 : 2;
            if (lost.has(home) || endedWith.has(i)) continue;
            endedWith.set(i, `error:d${i}`);
            devices[i]!.disconnect({ kind: "error", error: new Error(`d${i}`) });
          }
          for (const { watcher, target: t, at } of watchers) {
            const m = (await watcher.receive()) as Extract<Message, { kind: "disconnected" }>;
            const fault: Fault | undefined = m.fault;
            const heard = fault === undefined ? "clean" : fault.kind === "error" ? `error:${(fault.error as Error).message}` : fault.kind;
            const home = t < DEVICES ? 1 : 2;
            const own = endedWith.get(t);
            // Its own ending, or noconnection when its node (or the watcher's own node) left (an ending in flight then may be either).
            expect(heard === own || (heard === "noconnection" && (lost.has(home) || lost.has(at))), `watcher of d${t} on n${at}: heard ${heard}, own ${own}`).toBe(true);
          }
          for (const n of nodes) if (!lost.has(nodes.indexOf(n))) await n.flush();
          for (const { watcher } of watchers) expect(watcher.tryReceive()).toBeUndefined();
        } finally {
          await Promise.all(nodes.map((n) => n.close()));
        }
      }),
      { numRuns: 40 },
    );
  });
});
