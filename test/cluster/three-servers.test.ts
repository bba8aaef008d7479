/**
 * Scenarios on a cluster of three nats-servers with clustered JetStream
 * (`NatsCluster`): a server restart the nodes ride out on the other servers,
 * and a network split between the servers (not between a node and its
 * server), where the node on the minority side still reaches its own server.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { connect } from "nats";
import { connectNode } from "../../src/cluster/index.js";
import { cleanup, NatsCluster, NodeProcess, natsMissing, singletonTimeline } from "./harness.js";

const why = natsMissing();

describe.skipIf(why)(why ? `three servers (skipped: ${why})` : "three servers", { timeout: 120_000 }, () => {
  let nats: NatsCluster;
  let cluster = 0;
  const procs: NodeProcess[] = [];

  beforeAll(async () => {
    nats = await NatsCluster.start();
  }, 90_000);
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill()));
    // Whatever a test did to the servers, the next one starts on a whole cluster.
    for (let i = 0; i < 3; i++) if (!nats.servers[i]!.running) await nats.restart(i);
    await nats.heal();
  }, 90_000);
  afterAll(cleanup);

  function config(hb: number, missed: number) {
    const c = `t${++cluster}`;
    return {
      name: c,
      boundMs: hb * missed + hb + 100,
      proc: async (name: string, servers: string | string[]) => {
        const p = await NodeProcess.start({ servers, name, cluster: c, heartbeatMs: hb, missedHeartbeats: missed, replicas: 3 });
        procs.push(p);
        return p;
      },
    };
  }

  /** Polls `check` every 50 ms until it is true (for states no event reports). */
  async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!(await check())) {
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Resolves when node process `p` has heard every node in `names`. */
  async function sees(p: NodeProcess, names: string[]): Promise<void> {
    await until(async () => {
      const members = await p.cmd<{ name: string }[]>("members");
      return names.every((n) => members.some((m) => m.name === n));
    }, `${names.join(", ")} to be up on a node`);
  }

  it("the split is real: no route of an isolated server is left, an R3 write through it fails while one through the majority succeeds", async () => {
    expect(nats.proxiedRoutes).toBe(3); // all three routes go through the harness's proxies
    const nc0 = await connect({ servers: nats.urls[0]!, name: "split-check-0" });
    const nc1 = await connect({ servers: nats.urls[1]!, name: "split-check-1" });
    try {
      const kv0 = await nc0.jetstream({ timeout: 1_000 }).views.kv("split_check", { replicas: 3 });
      const kv1 = await nc1.jetstream({ timeout: 1_000 }).views.kv("split_check", { replicas: 3 });
      await kv0.put("k", "before");
      await nats.isolate(0);
      expect(await nats.routes(0)).toEqual([]);
      expect(await nats.routes(1)).toEqual(["n2"]);
      expect(await nats.routes(2)).toEqual(["n1"]);
      expect(nats.proxiedRoutes).toBe(1);
      // The majority elects a new stream leader if it has to, then takes writes.
      await until(() => kv1.put("k", "majority").then(() => true, () => false), "a write through the majority");
      await expect(kv0.put("k", "minority")).rejects.toThrow();
      // Still no route after the servers' own retries (every second) and any gossip: nothing bypasses the proxies.
      await new Promise((r) => setTimeout(r, 2_500));
      expect(await nats.routes(0)).toEqual([]);
      await expect(kv0.put("k", "minority")).rejects.toThrow();
      await nats.heal();
      // (Reads are not checked here: after a heal, 2.9.10 can serve the deposed leader's uncommitted write from its replica for a while.)
      await until(() => kv0.put("k", "after").then(() => true, () => false), "a write through server 0 after the heal");
    } finally {
      await nc0.close();
      await nc1.close();
    }
  });

  /**
   * Wait until the nodes have all heard each other and no node-down or fenced
   * has come for one detection bound (moving a bucket's stream leader can make
   * nodes fence, and the scenario must start from a quiet cluster).
   */
  async function settle(nodes: NodeProcess[], names: string[], boundMs: number): Promise<void> {
    const deadline = performance.now() + 60_000;
    const count = (): number => nodes.reduce((n, p) => n + p.events.filter((x) => x.event === "node-down" || x.event === "fenced").length, 0);
    for (;;) {
      await Promise.all(nodes.map((p) => sees(p, names)));
      const before = count();
      // A quiet period is only seen by waiting through it.
      await new Promise((r) => setTimeout(r, boundMs));
      if (count() === before) return;
      if (performance.now() > deadline) throw new Error("the nodes did not settle");
    }
  }

  /** Every report of the nodes and the test's own marks, in ms from `t0`, for a failure message. */
  function story(nodes: Record<string, NodeProcess>, t0: number, marks: { at: number; what: string }[]): string {
    const lines = [
      ...Object.entries(nodes).flatMap(([who, p]) =>
        p.events.map((x) => ({ at: x.at, what: `${who}:${x.event}${x.event === "node-down" || x.event === "ending" ? ` ${JSON.stringify(x.data)}` : ""}` })),
      ),
      ...marks.map((m) => ({ at: m.at, what: `--- ${m.what}` })),
    ].sort((x, y) => x.at - y.at);
    return "\n" + lines.map((l) => `${Math.round(l.at - t0)} ms ${l.what}`).join("\n");
  }

  /** `p`, or an error telling the story when it takes longer than `ms`. */
  async function within<T>(p: Promise<T>, ms: number, what: string, tell: () => string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([p, new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms:${tell()}`)), ms)))]);
    } finally {
      clearTimeout(timer);
    }
  }

  // The buckets' stream leaders are placed on purpose: elsewhere (a plain reconnect), or on the restarted server
  // (JetStream must elect new stream leaders too, which 2.9 does after a 4–9 s election timeout).
  it.each([
    ["on another server", false],
    ["on the restarted server", true],
  ])("three servers: a node whose server restarts reconnects to another within the bound — nothing fires (bucket leaders %s)", async (_where, leadersOnVictim) => {
    const c = config(300, 6);
    const b = await c.proc("b", nats.urls);
    const d = await c.proc("d", nats.urls);
    const e = await c.proc("e", nats.urls);
    const all = [b, d, e];
    await Promise.all(all.map((p) => sees(p, ["b", "d", "e"])));
    // The server that carries the most nodes goes.
    const on = await Promise.all([0, 1, 2].map(async (i) => (await nats.clients(i)).filter((n) => n.startsWith(`${c.name}:`))));
    const victim = [0, 1, 2].sort((x, y) => on[y]!.length - on[x]!.length)[0]!;
    const moved = on[victim]!;
    expect(moved.length).toBeGreaterThan(0);
    for (const bucket of [`KV_bp_${c.name}_names`, `KV_bp_${c.name}_nodes`]) {
      const leader = await nats.streamLeader(bucket);
      if (leader === undefined) continue; // no such bucket (the claims bucket is newer than the names one)
      const onVictim = leader === nats.servers[victim]!.name;
      if (onVictim !== leadersOnVictim) await nats.leadStreamOn(bucket, leadersOnVictim ? victim : (victim + 1) % 3);
    }
    await settle(all, ["b", "d", "e"], c.boundMs);
    // Names exported once the cluster is quiet (a fence would have stopped their devices).
    await b.cmd("export", { name: "w" });
    await d.cmd("export", { name: "x" });

    const t0 = performance.now();
    const marks = [{ at: t0, what: `SIGKILL server ${victim} (it carries ${moved.join(", ")})` }];
    const tell = () => story({ b, d, e }, t0, marks);
    await nats.stop(victim);
    // The nodes that were on it reconnect to the other two servers.
    await until(async () => {
      const now = (await Promise.all([0, 1, 2].filter((i) => i !== victim).map((i) => nats.clients(i)))).flat();
      return moved.every((n) => now.includes(n));
    }, "the nodes to reconnect to the other servers");
    marks.push({ at: performance.now(), what: "the nodes are on the other servers; restart" });
    await nats.restart(victim);
    marks.push({ at: performance.now(), what: "restarted" });
    // Names still resolve, and the bucket takes new ones (JetStream keeps its quorum with two of three servers).
    expect(await e.cmd("monitor", { name: "w", tag: "w" }), tell()).toBe(true);
    expect(await b.cmd("monitor", { name: "x", tag: "x" }), tell()).toBe(true);
    await until(() => e.cmd("export", { name: "y" }).then(() => true, () => false), "a new name to be taken");
    expect(await d.cmd("monitor", { name: "y", tag: "y" }), tell()).toBe(true);
    // Absence over the whole detection bound (waiting is the assertion here, not a synchronisation).
    await new Promise((r) => setTimeout(r, c.boundMs));
    const fired = all.flatMap((p) => p.events.filter((x) => x.at > t0 && (x.event === "node-down" || x.event === "fenced" || x.event === "ending")));
    expect(fired.length, tell()).toBe(0);
  });

  // The buckets' stream leaders are placed on purpose: on the split-off server (the majority must elect new ones, after
  // 2.9's 4–9 s election timeout, and the old leader still takes writes it can never commit), or on the majority side.
  it.each([
    ["the minority side", 0],
    ["the majority side", 1],
  ])("a partition between servers with a named singleton: the minority side stops its copy before the majority starts one; never two running copies (bucket leaders on %s)", async (_where, leaderOn) => {
    const c = config(250, 4);
    // b reaches only server 0, the one to be split off; d and e reach only servers 1 and 2.
    const b = await c.proc("b", nats.urls[0]!);
    const d = await c.proc("d", nats.urls[1]!);
    const e = await c.proc("e", nats.urls[2]!);
    await Promise.all([b, d, e].map((p) => sees(p, ["b", "d", "e"])));
    expect(await nats.leadStreamOn(`KV_bp_${c.name}_names`, leaderOn)).toBe(true);
    await nats.leadStreamOn(`KV_bp_${c.name}_nodes`, leaderOn); // the claims bucket, where there is one
    await settle([b, d, e], ["b", "d", "e"], c.boundMs);
    await b.cmd("singleton", { name: "leader", everyMs: 100 });
    await b.waitEvent((x) => x.event === "singleton-start");
    await d.cmd("singleton", { name: "leader", everyMs: 100 });
    const t0 = performance.now();
    const marks = [{ at: t0, what: "isolate server 0 (b's)" }];
    const tell = () => story({ b, d, e }, t0, marks);
    await nats.isolate(0);
    marks.push({ at: performance.now(), what: "no route across the split" });
    await within(d.waitEvent((x) => x.event === "singleton-start"), 30_000, "singleton start on d", tell);
    const healAt = performance.now();
    marks.push({ at: healAt, what: "heal" });
    await nats.heal();
    marks.push({ at: performance.now(), what: "healed (routes formed, JetStream answers through every server)" });
    // b must have fenced since the split; if it has not, give it two more detection bounds before judging.
    const fenced =
      b.events.some((x) => x.event === "fenced" && x.at > t0) ||
      (await Promise.race([b.waitEvent((x) => x.event === "fenced", false).then(() => true), new Promise<false>((r) => setTimeout(r, c.boundMs * 2, false))]));
    // Nothing may start a second copy after the heal either (waiting is the assertion here, not a synchronisation).
    await new Promise((r) => setTimeout(r, c.boundMs));
    marks.push({ at: performance.now(), what: "judged" });
    const { order, most } = singletonTimeline({ b, d });
    expect(order.slice(0, 3), tell()).toEqual(["b:singleton-start", "b:singleton-stop", "d:singleton-start"]);
    expect(most, tell()).toBe(1);
    expect(fenced, tell()).toBe(true);
    // The side that kept the bucket does not fence during the split, nor when the cut-off node comes back (a down
    // notice from it would fence within a heartbeat or two). Later, a fence on a lapsed lease is possible: after a
    // heal nats-server 2.9 can take longer than leaseMs to serve the buckets again (16 s seen here) — safe, not a split.
    expect([d, e].flatMap((p) => p.events.filter((x) => x.event === "fenced" && x.at > t0 && x.at < healAt + c.boundMs * 2)), tell()).toEqual([]);
  });
  it("an uneven split — two nodes on the cut-off server, one on the side with the bucket's quorum — still never runs two copies: the cut-off pair fences when its lease lapses, the other side takes over only after", async () => {
    const c = config(250, 4);
    const b = await c.proc("b", nats.urls[0]!);
    const x = await c.proc("x", nats.urls[0]!);
    const d = await c.proc("d", nats.urls[1]!);
    await Promise.all([b, x, d].map((p) => sees(p, ["b", "x", "d"])));
    expect(await nats.leadStreamOn(`KV_bp_${c.name}_names`, 1)).toBe(true);
    await nats.leadStreamOn(`KV_bp_${c.name}_nodes`, 1);
    await settle([b, x, d], ["b", "x", "d"], c.boundMs);
    await b.cmd("singleton", { name: "leader", everyMs: 100 });
    await b.waitEvent((e) => e.event === "singleton-start");
    await d.cmd("singleton", { name: "leader", everyMs: 100 });
    const t0 = performance.now();
    const marks = [{ at: t0, what: "isolate server 0 (b's and x's)" }];
    const tell = () => story({ b, x, d }, t0, marks);
    await nats.isolate(0);
    marks.push({ at: performance.now(), what: "no route across the split" });
    // b and x still hear each other (two of three): they fence only when their lease has lapsed (leaseMs, 15 s by default).
    await within(d.waitEvent((e) => e.event === "singleton-start"), 40_000, "singleton start on d", tell);
    const healAt = performance.now();
    marks.push({ at: healAt, what: "heal" });
    await nats.heal();
    await new Promise((r) => setTimeout(r, c.boundMs)); // nothing may start a second copy after the heal either
    marks.push({ at: performance.now(), what: "judged" });
    const { order, most } = singletonTimeline({ b, d });
    expect(order.slice(0, 3), tell()).toEqual(["b:singleton-start", "b:singleton-stop", "d:singleton-start"]);
    expect(most, tell()).toBe(1);
    expect(b.events.some((e) => e.event === "fenced" && e.at > t0), tell()).toBe(true);
    // d kept the bucket: it does not fence when the cut-off pair comes back (their verdicts on d, made while their
    // own lease was stale, are dropped when they fence). See above for later fences.
    expect(d.events.filter((e) => e.event === "fenced" && e.at > t0 && e.at < healAt + c.boundMs * 2), tell()).toEqual([]);
  });

  it("a node joining a NATS cluster with replicas 1 is warned (losing the server that holds the buckets would fence every node)", async () => {
    const warned = new Promise<Error>((resolve) => {
      const on = (w: Error): void => {
        if (w.name !== "BackplaneClusterWarning") return;
        process.off("warning", on);
        resolve(w);
      };
      process.on("warning", on);
    });
    const node = await connectNode({ servers: nats.urls, name: "solo", cluster: `t${++cluster}`, heartbeatMs: 250, missedHeartbeats: 4 });
    try {
      expect((await warned).message).toMatch(/replicas 1/);
    } finally {
      await node.close();
    }
  });
});
