/**
 * Cluster behaviour with nodes in this process (each its own NATS
 * connection) against a real nats-server: membership, names, links across
 * nodes, calls, remote children. Failure scenarios with real processes are
 * in scenarios.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Device } from "../../src/core/device.js";
import { Supervisor } from "../../src/supervisor/supervisor.js";
import { type ClusterNode, ClusterError, connectNode, type RemoteLine, remoteChild } from "../../src/cluster/index.js";
import { BackplaneError } from "../../src/core/error.js";
import { type AddressInfo, createConnection, createServer } from "node:net";
import { connect } from "nats";
import { cleanup, NatsServer, natsMissing } from "./harness.js";

const why = natsMissing();
const HB = 200;
const MISSED = 4;

describe.skipIf(why)(why ? `cluster (skipped: ${why})` : "cluster", () => {
  let server: NatsServer;
  const nodes: ClusterNode[] = [];
  let seq = 0;

  beforeAll(async () => {
    server = await NatsServer.start();
  });
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.close()));
  });
  afterAll(cleanup);

  async function join(name: string): Promise<ClusterNode> {
    const n = await connectNode({ servers: server.url, name, cluster: `c${++seq}`, heartbeatMs: HB, missedHeartbeats: MISSED });
    nodes.push(n);
    return n;
  }
  const clusters = new WeakMap<ClusterNode, string>();
  function clusterOf(n: ClusterNode): string {
    return clusters.get(n)!;
  }
  /** Two nodes of one fresh cluster that have heard each other. */
  async function pair(): Promise<[ClusterNode, ClusterNode]> {
    const cluster = `c${++seq}`;
    const a = await connectNode({ servers: server.url, name: "a", cluster, heartbeatMs: HB, missedHeartbeats: MISSED });
    const b = await connectNode({ servers: server.url, name: "b", cluster, heartbeatMs: HB, missedHeartbeats: MISSED });
    nodes.push(a, b);
    clusters.set(a, cluster);
    clusters.set(b, cluster);
    await Promise.all([until(a, "b"), until(b, "a")]);
    return [a, b];
  }
  function until(n: ClusterNode, peer: string): Promise<void> {
    if (n.members().some((m) => m.name === peer)) return Promise.resolve();
    return new Promise((resolve) => {
      const on = (id: { name: string }): void => {
        if (id.name !== peer) return;
        n.off("node-up", on);
        resolve();
      };
      n.on("node-up", on);
    });
  }

  describe("membership", () => {
    it("two nodes hear each other; members lists both, each with its incarnation", async () => {
      const [a, b] = await pair();
      expect(a.members().map((m) => m.name)).toEqual(["a", "b"]);
      expect(b.members().find((m) => m.name === "a")?.incarnation).toBe(a.id.incarnation);
    });

    it("a node that closes is down for the others at once, reason left; it emits closed with no error", async () => {
      const [a, b] = await pair();
      const down = new Promise<{ node: { name: string }; reason: string }>((resolve) => a.on("node-down", resolve));
      const closed = new Promise<{ error: unknown }>((resolve) => b.on("closed", resolve));
      await b.close();
      expect(await down).toMatchObject({ node: { name: "b" }, reason: "left" });
      expect(await closed).toEqual({ error: undefined });
      expect(a.members().map((m) => m.name)).toEqual(["a"]);
    });

    it("two nodes starting under one name at the same instant: exactly one joins, the other is refused with name-taken", { timeout: 30_000 }, async () => {
      for (let round = 0; round < 5; round++) {
        const cluster = `c${++seq}`;
        const starts = await Promise.allSettled(
          [0, 1, 2].map(() => connectNode({ servers: server.url, name: "twin", cluster, heartbeatMs: HB, missedHeartbeats: MISSED })),
        );
        const joined = starts.filter((r): r is PromiseFulfilledResult<ClusterNode> => r.status === "fulfilled").map((r) => r.value);
        nodes.push(...joined);
        expect(joined).toHaveLength(1);
        for (const r of starts) if (r.status === "rejected") expect(r.reason).toMatchObject({ code: "name-taken" });
      }
    });

    it("a node name whose holder is gone without closing (nothing answers its ping, as after a crash) is taken over at once", async () => {
      const cluster = `c${++seq}`;
      // The claim a crashed process leaves behind: its entry, and nobody listening for its incarnation.
      const nc = await connect({ servers: server.url });
      const claims = await nc.jetstream().views.kv(`bp_${cluster}_nodes`, { history: 1 });
      await claims.create("phoenix", new TextEncoder().encode(JSON.stringify({ k: "phoenix.crashed0" })));
      const again = await connectNode({ servers: server.url, name: "phoenix", cluster, heartbeatMs: HB, missedHeartbeats: MISSED });
      nodes.push(again);
      const entry = await claims.get("phoenix");
      expect(JSON.parse(new TextDecoder().decode(entry!.value))).toEqual({ k: `phoenix.${again.id.incarnation}` });
      // Renewed as a lease, once a heartbeat.
      const renewed = entry!.revision;
      await new Promise<void>((resolve) => {
        const look = (): void => void claims.get("phoenix").then((e) => (e !== null && e.revision > renewed ? resolve() : setTimeout(look, HB / 2)));
        look();
      });
      await again.close();
      expect((await claims.get("phoenix"))?.operation).not.toBe("PUT"); // close frees the name
      await nc.close();
    });

    it("a claim whose create times out here but reaches the bucket is recognised as this node's own (not name-taken by itself)", async () => {
      const cluster = `c${++seq}`;
      // A proxy that holds the claim's create past the client's timeout (1 s), and the read that follows until after it.
      const held: NodeJS.Timeout[] = [];
      let stage: "create" | "get" | "done" = "create";
      const proxy = createServer((client) => {
        const upstream = createConnection({ host: "127.0.0.1", port: server.port });
        client.on("data", (data) => {
          const text = data.toString("latin1");
          if (stage === "create" && text.includes(`$KV.bp_${cluster}_nodes.held`)) {
            stage = "get";
            held.push(setTimeout(() => upstream.write(data), 1_200));
          } else if (stage === "get" && text.includes("MSG.GET")) {
            stage = "done";
            held.push(setTimeout(() => upstream.write(data), 500));
          } else upstream.write(data);
        });
        upstream.pipe(client);
        for (const s of [client, upstream]) s.on("error", () => {}).on("close", () => (client.destroy(), upstream.destroy()));
      });
      await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
      try {
        const node = await connectNode({ servers: `nats://127.0.0.1:${(proxy.address() as AddressInfo).port}`, name: "held", cluster, heartbeatMs: HB, missedHeartbeats: MISSED });
        nodes.push(node);
        expect(stage).toBe("done"); // the create was really held past its timeout, and the read after it
        const nc = await connect({ servers: server.url });
        const entry = await (await nc.jetstream().views.kv(`bp_${cluster}_nodes`)).get("held");
        expect(JSON.parse(new TextDecoder().decode(entry!.value))).toEqual({ k: `held.${node.id.incarnation}` });
        await nc.close();
      } finally {
        for (const t of held) clearTimeout(t);
        await Promise.all(nodes.splice(0).map((n) => n.close()));
        await new Promise((resolve) => proxy.close(resolve));
      }
    });

    it("a node whose name was taken while it was cut off closes itself with name-taken", async () => {
      const cluster = `c${++seq}`;
      const node = await connectNode({ servers: server.url, name: "usurped", cluster, heartbeatMs: HB, missedHeartbeats: MISSED });
      const closed = new Promise<{ error: unknown }>((resolve) => node.on("closed", resolve));
      // Another node took the name (as one started while this one was unreachable would): its incarnation answers pings.
      const nc = await connect({ servers: server.url });
      nc.subscribe(`bp.${cluster}.ping.usurped.taker0`, { callback: (_e, m) => void m.respond(new Uint8Array()) });
      await nc.flush();
      const claims = await nc.jetstream().views.kv(`bp_${cluster}_nodes`, { history: 1 });
      await claims.put("usurped", new TextEncoder().encode(JSON.stringify({ k: "usurped.taker0" })));
      expect(await closed).toMatchObject({ error: { code: "name-taken" } });
      expect(JSON.parse(new TextDecoder().decode((await claims.get("usurped"))!.value))).toEqual({ k: "usurped.taker0" }); // not deleted on the way out
      await expect(node.lookup("x")).rejects.toMatchObject({ code: "closed" });
      await nc.close();
    });

    it("a second live node with the same name is refused with name-taken (two would fence each other in turn)", async () => {
      const [a] = await pair();
      const err = await connectNode({ servers: server.url, name: "a", cluster: clusterOf(a), heartbeatMs: HB, missedHeartbeats: MISSED }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "name-taken" });
    });

    it("close leaves no handle (no timer, no socket) after calls, links and casts; closing twice is fine", async () => {
      const count = (): Record<string, number> => {
        const out: Record<string, number> = {};
        for (const r of process.getActiveResourcesInfo()) if (r === "Timeout" || r === "TCPSocketWrap") out[r] = (out[r] ?? 0) + 1;
        return out;
      };
      const before = count();
      const [a, b] = await pair();
      await b.serve(new Device(), (x: unknown) => x, { name: "e" });
      await a.call("e", 1, { timeout: 1_000 });
      const w = new Device();
      w.link((await a.lookup("e"))!, "peer");
      await a.flush();
      a.cast("e", "x");
      await a.close();
      await b.close();
      await a.close();
      // A destroyed socket's handle is released in the event loop's close phase, after the turn that destroyed it.
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
      const after = count();
      // No more than before (sockets of earlier tests' nodes may still have been closing then).
      expect(after.TCPSocketWrap ?? 0).toBeLessThanOrEqual(before.TCPSocketWrap ?? 0);
      expect(after.Timeout ?? 0).toBeLessThanOrEqual(before.Timeout ?? 0); // the test runner's own timers come and go
    });

    it("bad options are typed errors", async () => {
      await expect(connectNode({ servers: server.url, name: "bad name" })).rejects.toMatchObject({ code: "invalid-argument" });
      await expect(connectNode({ servers: server.url, name: "x", heartbeatMs: -1 })).rejects.toBeInstanceOf(ClusterError);
      await expect(connectNode({ servers: server.url, name: "x", missedHeartbeats: 1 })).rejects.toBeInstanceOf(BackplaneError);
      // Over-long names and clusters would make subjects past the server's protocol line: refused up front, not a timeout.
      await expect(connectNode({ servers: server.url, name: "n".repeat(4_000) })).rejects.toMatchObject({ code: "invalid-argument" });
      await expect(connectNode({ servers: server.url, name: "x", cluster: "c".repeat(65) })).rejects.toMatchObject({ code: "invalid-argument" });
      // More replicas than servers: the bucket cannot be made, and says so as a ClusterError.
      await expect(connectNode({ servers: server.url, name: "x", cluster: `c${++seq}`, replicas: 9 })).rejects.toMatchObject({ code: "remote-error" });
    });

    it("serve() with a bad concurrency or signal is a ClusterError invalid-argument; remoteChild refuses a bad node name when made", async () => {
      const a = await join("s");
      await expect(a.serve(new Device(), () => 1, { name: "svc", concurrency: 0 })).rejects.toMatchObject({ name: "ClusterError", code: "invalid-argument" });
      await expect(a.serve(new Device(), () => 1, { name: "svc", signal: "no" as unknown as AbortSignal })).rejects.toMatchObject({ name: "ClusterError", code: "invalid-argument" });
      expect(() => remoteChild({ id: "r", on: "a.b", node: a, spawn: "k" })).toThrow(expect.objectContaining({ code: "invalid-argument" }));
    });
  });

  describe("names", () => {
    it("export then lookup from another node; a second export of a live name is name-taken", async () => {
      const [a, b] = await pair();
      const d = new Device();
      const line = await a.export(d, { name: "billing" });
      expect(line.remoteId).toBe(d.id);
      const found = await b.lookup("billing");
      expect(found?.node).toBe("a");
      expect(found?.remoteId).toBe(d.id);
      const err = await b.export(new Device(), { name: "billing" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ClusterError);
      expect((err as ClusterError).code).toBe("name-taken");
      expect(await b.lookup("nobody")).toBeUndefined();
    });

    it("a name is withdrawn when its device ends, and can be taken again", async () => {
      const [a, b] = await pair();
      const d = new Device();
      await a.export(d, { name: "job" });
      const gone = waitFor(async () => (await b.lookup("job")) === undefined);
      d.disconnect();
      await gone;
      await b.export(new Device(), { name: "job" });
    });

    it("a lost node's names are deleted by the survivors", async () => {
      const [a, b] = await pair();
      await b.export(new Device(), { name: "held-by-b" });
      await b.close();
      await waitFor(async () => (await a.lookup("held-by-b")) === undefined);
    });

    it("a bad name is invalid-argument", async () => {
      const a = await join("n");
      await expect(a.export(new Device(), { name: "has space" })).rejects.toMatchObject({ code: "invalid-argument" });
      await expect(a.lookup("*")).rejects.toMatchObject({ code: "invalid-argument" });
    });
  });

  describe("links across nodes", () => {
    it("a remote error reaches the monitor with its message preserved", async () => {
      const [a, b] = await pair();
      const { device: worker, line } = await exportedTo(a, b, "w");
      const watcher = new Device();
      watcher.link(line, "monitor");
      await a.flush();
      worker.disconnect({ kind: "error", error: new TypeError("disk full") });
      const m = await watcher.receive();
      expect(m).toMatchObject({ kind: "disconnected", from: line.id, fault: { kind: "error" } });
      const error = (m as { fault: { error: Error } }).fault.error;
      expect(error.message).toBe("disk full");
      expect(error.name).toBe("TypeError");
      expect(watcher.tryReceive()).toBeUndefined();
    });

    it("monitoring a remote device already gone notifies at once with its ending", async () => {
      const [a, b] = await pair();
      const { device: worker, line } = await exportedTo(a, b, "w");
      worker.disconnect({ kind: "error", error: new Error("ended before the link") });
      const watcher = new Device();
      watcher.link(line, "monitor");
      const m = await watcher.receive();
      expect((m as { fault: { error: Error } }).fault.error.message).toBe("ended before the link");
    });

    it("a remote clean exit is a clean ending", async () => {
      const [a, b] = await pair();
      const { device: worker, line } = await exportedTo(a, b, "w");
      const watcher = new Device();
      watcher.link(line, "monitor");
      worker.disconnect();
      expect(await watcher.receive()).toEqual({ kind: "disconnected", from: line.id });
    });

    it("notify towards a remote device: it hears the local device's fault, and its managed work cascades", async () => {
      const [a, b] = await pair();
      const remote = new Device();
      await b.export(remote, { name: "r" });
      const ran = remote.manage((signal) => new Promise((resolve) => signal.addEventListener("abort", resolve)));
      const line = (await a.lookup("r"))!;
      const local = new Device();
      local.link(line, "notify");
      await a.flush();
      local.disconnect({ kind: "error", error: new Error("local failure") });
      await expect(ran).rejects.toMatchObject({ kind: "cascade" });
      expect(remote.fault).toMatchObject({ kind: "cascade" });
    });

    it("a notify link made and ended in the same tick still reaches the remote device", async () => {
      const [a, b] = await pair();
      const { device: remote, line } = await exportedTo(a, b, "r");
      const local = new Device();
      local.link(line, "notify");
      local.disconnect({ kind: "error", error: new Error("at once") });
      const m = await remote.receive();
      expect(m).toMatchObject({ kind: "disconnected", fault: { kind: "error" } });
    });

    it("unlink removes a remote notify link: the remote device hears nothing", async () => {
      const [a, b] = await pair();
      const { device: remote, line } = await exportedTo(a, b, "r");
      const local = new Device();
      local.link(line, "notify");
      await a.flush();
      local.unlink(line, "notify");
      await a.flush();
      local.disconnect({ kind: "error", error: new Error("unheard") });
      // A second, later link proves the channel has delivered everything sent before it.
      const probe = new Device();
      probe.link(line, "notify");
      probe.disconnect({ kind: "error", error: new Error("probe") });
      const m = await remote.receive();
      expect((m as { fault: { error: Error } }).fault.error.message).toBe("probe");
    });

    it("a remote shutdown request reaches the device's mailbox", async () => {
      const [a, b] = await pair();
      const remote = new Device();
      await b.export(remote, { name: "r" });
      const ran = remote.manage((signal) => new Promise((resolve) => signal.addEventListener("abort", resolve)));
      const line = (await a.lookup("r"))!;
      const me = new Device();
      expect(line.shutdown(me.id)).toBe(true);
      await expect(ran).rejects.toMatchObject({ kind: "shutdown" });
    });

    it("peer link across nodes: a node leaving fires noconnection on both sides", async () => {
      const [a, b] = await pair();
      const { device: remote, line } = await exportedTo(a, b, "r");
      const local = new Device();
      local.link(line, "peer");
      await a.flush();
      const heard = local.receive();
      await b.close();
      expect(await heard).toEqual({ kind: "disconnected", from: line.id, fault: { kind: "noconnection", node: "b" } });
      expect(local.tryReceive()).toBeUndefined();
    });
  });

  describe("calls", () => {
    it("call a remote server by name; a thrown error comes back as server-down with its message", async () => {
      const [a, b] = await pair();
      await b.serve(new Device(), (n: number) => {
        if (n < 0) throw new RangeError("negative");
        return n * 2;
      }, { name: "doubler" });
      expect(await a.call("doubler", 21)).toBe(42);
      const err = (await a.call("doubler", -1).catch((e: unknown) => e)) as ClusterError;
      expect(err.code).toBe("server-down");
      expect(err.fault).toMatchObject({ kind: "error" });
      expect(((err.fault as { error: Error }).error).message).toBe("negative");
    });

    it("strings and bytes cross as themselves (not through v8), other values by structured clone", async () => {
      const [a, b] = await pair();
      await b.serve(new Device(), (x: unknown) => x, { name: "echo" });
      expect(await a.call("echo", "héllo ✓")).toBe("héllo ✓");
      expect(await a.call("echo", "")).toBe("");
      expect(await a.call("echo", new Uint8Array([1, 2, 255]))).toEqual(new Uint8Array([1, 2, 255]));
      expect(await a.call("echo", { nested: [1, "x", new Map([[1, 2]])] })).toEqual({ nested: [1, "x", new Map([[1, 2]])] });
    });

    it("a call to a name nobody holds fails with no-responders (not at its timeout)", async () => {
      const a = await join("caller");
      await expect(a.call("nobody-here", 1, { timeout: 60_000 })).rejects.toMatchObject({ code: "no-responders" });
    });

    it("a call in flight whose callee node leaves fails with noconnection", async () => {
      const [a, b] = await pair();
      let arrived!: () => void;
      const inFlight = new Promise<void>((r) => (arrived = r));
      await b.serve(new Device(), () => {
        arrived();
        return new Promise(() => {});
      }, { name: "stuck" });
      await a.lookup("stuck"); // learn who holds it
      const failed = expect(a.call("stuck", 1)).rejects.toMatchObject({ code: "noconnection", fault: { kind: "noconnection", node: "b" } });
      await inFlight; // b is handling it: the call is in flight, not refused as no-responders
      await b.close();
      await failed;
    });

    it("a call that times out rejects with timeout; its late reply is dropped", async () => {
      const [a, b] = await pair();
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      await b.serve(new Device(), async (x: number) => {
        await gate;
        return x;
      }, { name: "slow" });
      await expect(a.call("slow", 1, { timeout: 20 })).rejects.toMatchObject({ code: "timeout" });
      release();
      expect(await a.call("slow", 2)).toBe(2);
    });

    it("casts arrive; a cast to nobody is counted as undelivered", async () => {
      const [a, b] = await pair();
      const got: number[] = [];
      await b.serve(new Device(), (n: number) => void got.push(n), { name: "sink" });
      for (let i = 0; i < 10; i++) a.cast("sink", i);
      expect(await a.call("sink", 10)).toBeUndefined();
      expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      a.cast("nobody", 1);
      await waitFor(async () => a.stats().castsUndelivered === 1);
    });

    it("a request that cannot be serialised is not-cloneable", async () => {
      const a = await join("n");
      await expect(a.call("x", () => 1)).rejects.toMatchObject({ code: "not-cloneable" });
    });
  });

  describe("remote children", () => {
    it("a remote child that fails is restarted by its supervisor; its error is the failure", async () => {
      const [a, b] = await pair();
      let starts = 0;
      b.spawner("flaky", async (args) => {
        starts++;
        if (starts === 1) throw new Error(`first run fails (${String(args)})`);
        await new Promise(() => {});
      });
      const sup = new Supervisor({ children: [remoteChild({ id: "r", on: "b", node: a, spawn: "flaky", args: "x" })], intensity: 3, period: 10_000 });
      const exited = new Promise<unknown>((resolve) => sup.on("child-exited", resolve));
      await sup.start();
      const e = (await exited) as { fault?: { kind: string; error?: Error } };
      expect(e.fault?.error?.message).toBe("first run fails (x)");
      await waitFor(async () => starts === 2);
      await sup.stop();
    });

    it("stopping the supervisor stops the remote child", async () => {
      const [a, b] = await pair();
      let stopped!: () => void;
      const wasStopped = new Promise<void>((r) => (stopped = r));
      b.spawner("sleeper", (_args, signal) => new Promise<void>((resolve) => signal.addEventListener("abort", () => {
        stopped();
        resolve();
      })));
      const sup = new Supervisor({ children: [remoteChild({ id: "s", on: "b", node: a, spawn: "sleeper" })] });
      await sup.start();
      await sup.stop();
      await wasStopped;
    });

    it("a spawn whose reply comes after its timeout: the caller gets timeout, and the child it started is stopped, not left unsupervised", async () => {
      const [a, b] = await pair();
      let stopped!: () => void;
      const wasStopped = new Promise<void>((r) => (stopped = r));
      b.spawner("slow", (_args, signal) => {
        // Both nodes share this event loop: while it is blocked, the caller's timer expires, and it fires before the reply is read.
        const until = Date.now() + 100;
        while (Date.now() < until);
        return new Promise<void>((resolve) => signal.addEventListener("abort", () => (stopped(), resolve())));
      });
      await expect(a.spawn("b", "slow", null, { parent: new Device(), timeout: 20 })).rejects.toMatchObject({ code: "timeout" });
      await wasStopped;
    });

    it("remoteChild refuses a bad startTimeout when the spec is made, not at its first start", async () => {
      const [a] = await pair();
      for (const startTimeout of [-1, Number.NaN, "5" as unknown as number]) {
        expect(() => remoteChild({ id: "x", on: "b", node: a, spawn: "k", startTimeout })).toThrow(expect.objectContaining({ code: "invalid-argument" }));
      }
    });
  });

  /** A new device on node `b`, exported as `name`, and the line to it that node `a` finds by that name. */
  async function exportedTo(a: ClusterNode, b: ClusterNode, name: string): Promise<{ device: Device; line: RemoteLine }> {
    const device = new Device();
    await b.export(device, { name });
    return { device, line: (await a.lookup(name))! };
  }
});

async function waitFor(check: () => Promise<boolean>): Promise<void> {
  for (;;) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}
