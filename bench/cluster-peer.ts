/**
 * The other process of bench/cluster.ts: a cluster node that serves an echo
 * (`echo`), a cast sink (`sink`), a plain NATS responder (`bench.plain`) on
 * its own connection, and ping-pong device pairs for notification latency.
 * Driven over IPC: `{ id, op, args }` → `{ id, value }`.
 */
import { connect } from "nats";
import { Device } from "../src/core/device.js";
import { type ClusterNode, connectNode } from "../src/cluster/index.js";

let node: ClusterNode | undefined;
let received = 0;

const ops: Record<string, (args: any) => unknown> = {
  async start(args: { servers: string; name: string; cluster: string; heartbeatMs: number; missedHeartbeats: number; plain?: boolean }) {
    node = await connectNode(args);
    if (args.plain === true) {
      // The baseline: a bare NATS responder on a connection of its own.
      const nc = await connect({ servers: args.servers });
      nc.subscribe("bench.plain", { callback: (_e, m) => m.respond(m.data) });
      await nc.flush();
      await node.serve(new Device(), (x: unknown) => x, { name: "echo" });
      await node.serve(new Device(), () => void received++, { name: "sink" });
      // A child that lives until its parent (a device on node a) ends: the parent's fault cascades into it.
      node.spawner("linked", () => new Promise(() => {}));
    }
    return node.id;
  },
  received: () => received,
  /** `count` pairs: when `in-i` hears of a linked device's ending, `out-i` ends with an error. */
  async pongs(args: { count: number }) {
    for (let i = 0; i < args.count; i++) {
      const input = new Device();
      const output = new Device();
      await node!.export(input, { name: `in-${i}` });
      await node!.export(output, { name: `out-${i}` });
      void input.receive().then(() => output.disconnect({ kind: "error", error: new Error("pong") }));
    }
    return true;
  },
};

process.on("message", async (m: { id: number; op: string; args: unknown }) => {
  const value = await ops[m.op]!(m.args);
  process.send?.({ id: m.id, value });
});
process.on("disconnect", () => process.exit(0));
