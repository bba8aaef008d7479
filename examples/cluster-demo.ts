/**
 * Two cluster nodes in one process (each its own NATS connection): a named
 * server on node "b", a monitor and calls from node "a", then node "b"
 * leaves and the monitor hears `noconnection`.
 *
 * Needs a nats-server with JetStream: `nats-server -js` then
 * `npx tsx examples/cluster-demo.ts [nats://127.0.0.1:4222]`.
 */
import { Device } from "../src/index.js";
import { connectNode } from "../src/cluster/index.js";

const servers = process.argv[2] ?? "nats://127.0.0.1:4222";
const options = { servers, cluster: "demo", heartbeatMs: 250, missedHeartbeats: 4 };
const a = await connectNode({ ...options, name: "a" });
const b = await connectNode({ ...options, name: "b" });
a.on("node-down", ({ node, reason }) => console.log(`a: node ${node.name} is down (${reason})`));

await b.serve(new Device({ name: "doubler" }), (n: number) => n * 2, { name: "doubler" });
console.log("a calls doubler(21):", await a.call("doubler", 21));

const line = await a.lookup("doubler");
const watcher = new Device({ name: "watcher" });
watcher.link(line!, "monitor");
await a.flush();

try {
  await a.call("nobody", 1, { timeout: 5_000 });
} catch (e) {
  console.log("a calls a name nobody serves:", (e as { code: string }).code);
}

await b.close();
console.log("the monitor heard:", await watcher.receive());
await a.close();
