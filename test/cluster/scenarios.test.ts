/**
 * Failure scenarios with real parts: a nats-server, node processes that are
 * killed, paused and partitioned (a TCP proxy), and the test process as one
 * more node. Each test is named after the scenario it proves.
 */
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Device } from "../../src/core/device.js";
import type { Fault } from "../../src/core/fault.js";
import type { Message } from "../../src/core/message.js";
import { Supervisor } from "../../src/supervisor/supervisor.js";
import { type ClusterNode, connectNode, type RemoteLine, remoteChild } from "../../src/cluster/index.js";
import { cleanup, NatsServer, NodeProcess, natsMissing, onCleanup, singletonTimeline, TcpProxy } from "./harness.js";

const why = natsMissing();

describe.skipIf(why)(why ? `cluster scenarios (skipped: ${why})` : "cluster scenarios", { timeout: 30_000 }, () => {
  let server: NatsServer;
  let cluster = 0;
  const locals: ClusterNode[] = [];
  const procs: NodeProcess[] = [];

  beforeAll(async () => {
    server = await NatsServer.start();
  });
  afterEach(async () => {
    await Promise.all(locals.splice(0).map((n) => n.close()));
    await Promise.all(procs.splice(0).map((p) => p.kill()));
  });
  afterAll(cleanup);

  function config(hb: number, missed: number) {
    const c = `s${++cluster}`;
    return {
      local: async (name: string, servers = server.url) => {
        const n = await connectNode({ servers, name, cluster: c, heartbeatMs: hb, missedHeartbeats: missed });
        locals.push(n);
        return n;
      },
      proc: async (name: string, servers = server.url) => {
        const p = await NodeProcess.start({ servers, name, cluster: c, heartbeatMs: hb, missedHeartbeats: missed });
        procs.push(p);
        return p;
      },
    };
  }

  /** Resolves when `n` has heard a node named `name` (optionally not of incarnation `not`). */
  function upOn(n: ClusterNode, name: string, not?: string): Promise<string> {
    const found = n.members().find((m) => m.name === name && m.incarnation !== not);
    if (found !== undefined) return Promise.resolve(found.incarnation);
    return new Promise((resolve) => {
      const on = (id: { name: string; incarnation: string }): void => {
        if (id.name !== name || id.incarnation === not) return;
        n.off("node-up", on);
        resolve(id.incarnation);
      };
      n.on("node-up", on);
    });
  }
  function downOn(n: ClusterNode, name: string): Promise<{ node: { name: string }; reason: string }> {
    return new Promise((resolve) => {
      const on = (e: { node: { name: string }; reason: string }): void => {
        if (e.node.name !== name) return;
        n.off("node-down", on);
        resolve(e);
      };
      n.on("node-down", on);
    });
  }
  async function monitor(n: ClusterNode, name: string): Promise<{ watcher: Device; line: RemoteLine }> {
    const line = await n.lookup(name);
    if (line === undefined) throw new Error(`nobody holds ${name}`);
    const watcher = new Device();
    watcher.link(line, "monitor");
    return { watcher, line };
  }

  it("a remote error: the monitor in another process hears the error's message", async () => {
    const c = config(250, 4);
    const a = await c.local("a");
    const b = await c.proc("b");
    await b.cmd("export", { name: "w" });
    const { watcher } = await monitor(a, "w");
    await a.flush();
    await b.cmd("end", { name: "w", message: "remote failure" });
    const m = (await watcher.receive()) as { fault: { kind: string; error: Error } };
    expect(m.fault.kind).toBe("error");
    expect(m.fault.error.message).toBe("remote failure");
  });

  it("SIGKILL of a node: monitors hear noconnection once, peers break, calls in flight fail, names are freed", async () => {
    const c = config(250, 4);
    const a = await c.local("a");
    const b = await c.proc("b");
    await upOn(a, "b");
    await b.cmd("export", { name: "w" });
    await b.cmd("serve", { name: "slow", delayMs: 60_000 });
    const { watcher, line } = await monitor(a, "w");
    const peer = new Device();
    peer.link(line, "peer");
    await a.lookup("slow");
    await a.flush();
    const call = a.call("slow", 1).then(
      () => "resolved",
      (e: { code: string }) => e.code,
    );
    await b.waitEvent((e) => e.event === "request"); // the call is in flight: b is handling it
    const down = downOn(a, "b");
    b.signal("SIGKILL");
    expect((await down).reason).toBe("heartbeat");
    expect(await watcher.receive()).toEqual({ kind: "disconnected", from: line.id, fault: { kind: "noconnection", node: "b" } });
    expect(await peer.receive()).toMatchObject({ fault: { kind: "noconnection", node: "b" } });
    expect(await call).toBe("noconnection");
    await a.flush();
    expect(watcher.tryReceive()).toBeUndefined();
    for (;;) {
      if ((await a.lookup("w")) === undefined) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  it("SIGSTOP then SIGCONT: the paused node is declared down, fences itself on waking and rejoins under a new incarnation; its old incarnation is refused", async () => {
    const c = config(250, 4);
    const a = await c.local("a");
    const b = await c.proc("b");
    const oldInc = await upOn(a, "b");
    await b.cmd("export", { name: "w" });
    const { watcher, line } = await monitor(a, "w");
    await a.flush();
    // b also monitors a device of a: when b fences, that remote link fires noconnection on b's side.
    const aw = new Device();
    await a.export(aw, { name: "aw" });
    await b.cmd("monitor", { name: "aw", tag: "aw" });
    const down = downOn(a, "b");
    b.signal("SIGSTOP");
    await down;
    expect(await watcher.receive()).toEqual({ kind: "disconnected", from: line.id, fault: { kind: "noconnection", node: "b" } });
    const rejoined = upOn(a, "b", oldInc);
    b.signal("SIGCONT");
    const fenced = (await b.waitEvent((e) => e.event === "fenced")).data as { previous: { incarnation: string }; current: { incarnation: string } };
    expect(fenced.previous.incarnation).toBe(oldInc);
    expect(await rejoined).toBe(fenced.current.incarnation);
    expect((await b.waitEvent((e) => e.event === "ending")).data).toEqual({ tag: "aw", fault: { kind: "noconnection", node: "a" } });
    expect(aw.isConnected).toBe(true); // a's device was never touched: only the links broke
    // The old incarnation's exported device was stopped by the fence; its name is free again.
    await b.cmd("export", { name: "w" });
    await a.flush();
    expect(watcher.tryReceive()).toBeUndefined();
  });

  it("a server restart shorter than the bound: nothing fires, no ending is lost", async () => {
    const c = config(300, 6);
    const a = await c.local("a");
    const b = await c.proc("b");
    await upOn(a, "b");
    await b.cmd("export", { name: "w" });
    await b.cmd("listen", { name: "l" });
    const { watcher } = await monitor(a, "w");
    const local = new Device();
    local.link((await a.lookup("l"))!, "notify");
    await a.flush();
    const fired: string[] = [];
    a.on("node-down", (e) => fired.push(`a: down ${e.node.name}`));
    a.on("fenced", () => fired.push("a: fenced"));

    await server.stop();
    // Endings made while the server is away travel when it is back.
    local.disconnect({ kind: "error", error: new Error("ended during the outage") });
    await b.cmd("end", { name: "w", message: "also during the outage" });
    await server.restart();

    const m = (await watcher.receive()) as { fault: { kind: string; error: Error } };
    expect(m.fault.error.message).toBe("also during the outage");
    const heard = (await b.waitEvent((e) => e.event === "heard")).data as { fault: { message: string } };
    expect(heard.fault.message).toBe("ended during the outage");
    await a.flush();
    // Absence over the whole detection bound (waiting is the assertion here, not a synchronisation).
    await new Promise((r) => setTimeout(r, a.detectionBoundMs));
    expect(fired).toEqual([]);
    expect(b.events.filter((e) => e.event === "node-down" || e.event === "fenced")).toEqual([]);
    // The name of the device that ended during the outage was deleted once the bucket was back (sent again until answered).
    expect(await a.lookup("w")).toBeUndefined();
  });

  it("a cut connection that reconnects within the bound: nothing fires, no ending is lost", async () => {
    const c = config(300, 6);
    const proxy = await TcpProxy.start(server.port);
    const a = await c.local("a");
    const b = await c.proc("b", proxy.url);
    await upOn(a, "b");
    await b.cmd("export", { name: "w" });
    const { watcher } = await monitor(a, "w");
    await a.flush();
    const fired: string[] = [];
    a.on("node-down", (e) => fired.push(`down ${e.node.name}`));
    proxy.cut();
    await b.cmd("end", { name: "w", message: "ended while cut" });
    const m = (await watcher.receive()) as { fault: { error: Error } };
    expect(m.fault.error.message).toBe("ended while cut");
    // Absence over the whole detection bound (waiting is the assertion here, not a synchronisation).
    await new Promise((r) => setTimeout(r, a.detectionBoundMs));
    expect(fired).toEqual([]);
    expect(b.events.filter((e) => e.event === "node-down" || e.event === "fenced")).toEqual([]);
  });

  it("after a server restart, the name watch is made again: a call in flight by name still fails with noconnection when its node is lost", async () => {
    const c = config(300, 6);
    const a = await c.local("a");
    const b = await c.proc("b");
    await upOn(a, "b");
    await server.stop();
    await server.restart();
    // The bucket answers again once b has reconnected and JetStream has recovered.
    for (;;) {
      const served = await b.cmd("serve", { name: "after-restart", delayMs: 60_000 }).then(() => true, () => false);
      if (served) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const call = a.call("after-restart", 1).then(
      () => "resolved",
      (e: { code: string }) => e.code,
    );
    await b.waitEvent((e) => e.event === "request");
    b.signal("SIGKILL");
    expect(await call).toBe("noconnection");
  });

  it("close while the server is away settles, leaving no handle", async () => {
    const c = config(200, 4);
    const a = await c.local("a");
    await server.stop();
    try {
      await a.close();
    } finally {
      await server.restart();
    }
  });

  it("a process whose node closed while the server was away exits by itself (no reconnect loop survives close)", async () => {
    const child = fork(fileURLToPath(new URL("./fixtures/close-while-away.ts", import.meta.url)), [server.url], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    onCleanup(() => void child.kill("SIGKILL"));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    await new Promise((resolve) => child.once("message", resolve)); // ready
    await server.stop();
    try {
      const closed = new Promise((resolve) => child.once("message", resolve));
      child.send("close");
      await closed;
      expect(await exited).toBe(0);
    } finally {
      await server.restart();
    }
  });

  it("an outage longer than the bound: every node fences, every remote link fires noconnection once, and the nodes rejoin", async () => {
    const c = config(200, 4);
    const a = await c.local("a");
    const b = await c.proc("b");
    const oldB = await upOn(a, "b");
    await b.cmd("export", { name: "w" });
    const { watcher, line } = await monitor(a, "w");
    await a.flush();
    const aFenced = new Promise((resolve) => a.once("fenced", resolve));
    await server.stop();
    await aFenced;
    expect(await watcher.receive()).toEqual({ kind: "disconnected", from: line.id, fault: { kind: "noconnection", node: "b" } });
    await server.restart();
    await b.waitEvent((e) => e.event === "fenced");
    await upOn(a, "b", oldB);
    expect(watcher.tryReceive()).toBeUndefined();
  });

  it("a partition with a named singleton: the cut-off holder stops before another node takes over; never two running copies", async () => {
    const c = config(250, 4);
    const proxy = await TcpProxy.start(server.port);
    const b = await c.proc("b", proxy.url);
    const d = await c.proc("d");
    await b.cmd("singleton", { name: "leader", everyMs: 100 });
    await b.waitEvent((e) => e.event === "singleton-start");
    await d.cmd("singleton", { name: "leader", everyMs: 100 });
    proxy.pause();
    await d.waitEvent((e) => e.event === "singleton-start");
    proxy.resume();
    await b.waitEvent((e) => e.event === "fenced");
    const { order, most } = singletonTimeline({ b, d });
    expect(most).toBe(1);
    expect(order.slice(0, 3)).toEqual(["b:singleton-start", "b:singleton-stop", "d:singleton-start"]);
  });

  it("a paused node whose name was taken meanwhile: on waking it fences and closes itself with name-taken; the new holder and its names are untouched", async () => {
    const c = config(250, 4);
    const a = await c.local("a");
    const old = await c.proc("x");
    await upOn(a, "x");
    old.signal("SIGSTOP");
    // A new process under the same name: the paused holder does not answer its ping, so after the bound it takes the name.
    const fresh = await c.proc("x");
    await fresh.cmd("export", { name: "svc" });
    const fenced = fresh.waitEvent((e) => e.event === "fenced");
    old.signal("SIGCONT");
    expect((await old.waitEvent((e) => e.event === "closed")).data).toEqual({ code: "name-taken" });
    // The rightful holder kept its incarnation, its device and its name (waiting is the assertion: nothing may fire).
    const quiet = await Promise.race([fenced.then(() => "fenced"), new Promise((r) => setTimeout(r, a.detectionBoundMs, "quiet"))]);
    expect(quiet).toBe("quiet");
    expect(await a.lookup("svc")).toBeDefined();
    expect(a.members().filter((m) => m.name === "x")).toHaveLength(1);
  });

  it("remote supervision through kills and node loss: a lost node is one failure, the child comes back on the node's next incarnation", async () => {
    const c = config(250, 4);
    const a = await c.local("a");
    let b = await c.proc("b");
    await upOn(a, "b");
    const exits: { fault?: Fault }[] = [];
    const sup = new Supervisor({
      children: [remoteChild({ id: "remote", on: "b", node: a, spawn: "sleeper", startTimeout: 1_000 })],
      intensity: 50,
      period: 60_000,
      backoff: { min: 100, max: 400 },
    });
    sup.on("child-exited", (e) => exits.push(e as { fault?: Fault }));
    await sup.start();
    const lost = new Promise<void>((resolve) => sup.once("child-exited", () => resolve()));
    b.signal("SIGKILL");
    await lost;
    expect(exits[0]?.fault).toMatchObject({ kind: "error", error: { code: "noconnection" } });
    b = await c.proc("b");
    await new Promise<void>((resolve) => {
      const check = (): void => {
        const info = sup.whichChildren()[0];
        if (info?.status === "running" && info.restarts >= 1) resolve();
        else setTimeout(check, 50);
      };
      check();
    });
    const crash = new Promise<unknown>((resolve) => sup.once("child-exited", resolve));
    b.signal("SIGKILL");
    expect(await crash).toMatchObject({ fault: { kind: "error", error: { code: "noconnection" } } });
    await sup.stop();
  });

  it("soak: 20 rounds × 1 000 random cross-node links, one random SIGKILL per round — 0 lost, 0 duplicated endings, every call settled", { timeout: 150_000 }, async () => {
    const ROUNDS = 20;
    const LINKS = 1_000;
    const PER_NODE = 60;
    const c = config(200, 4);
    const a = await c.local("a");
    const names = ["b", "d", "e"];
    const nodes = new Map<string, NodeProcess>();
    for (const n of names) nodes.set(n, await c.proc(n));
    await Promise.all(names.map((n) => upOn(a, n)));
    let lost = 0;
    let duplicated = 0;
    let unsettled = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const prefix = (n: string) => `r${round}-${n}`;
      await Promise.all(names.map((n) => nodes.get(n)!.cmd("exportMany", { prefix: prefix(n), count: PER_NODE })));
      await Promise.all(names.map((n) => nodes.get(n)!.cmd("serve", { name: `${prefix(n)}-svc`, delayMs: 300 })));
      // Random links: each watcher monitors a random remote device (lines looked up once per device).
      const lines = new Map<string, RemoteLine>();
      await Promise.all(
        names.flatMap((n) =>
          Array.from({ length: PER_NODE }, async (_, i) => {
            const name = `${prefix(n)}-${i}`;
            lines.set(name, (await a.lookup(name))!);
          }),
        ),
      );
      const keys = [...lines.keys()];
      const watchers: { watcher: Device; target: string }[] = [];
      for (let i = 0; i < LINKS; i++) {
        const target = keys[Math.floor(Math.random() * keys.length)]!;
        const watcher = new Device();
        watcher.link(lines.get(target)!, Math.random() < 0.5 ? "monitor" : "peer");
        watchers.push({ watcher, target });
      }
      await Promise.all(names.map((n) => a.lookup(`${prefix(n)}-svc`)));
      const calls = names.map((n) => a.call(`${prefix(n)}-svc`, 1).then(() => "ok", (e: { code: string }) => e.code));
      await a.flush();
      // Some devices end on their own (an error named after them), then one node is killed.
      const ending = keys.filter(() => Math.random() < 0.3);
      await Promise.all(names.map((n) => nodes.get(n)!.cmd("endMany", { names: ending.filter((k) => k.startsWith(`${prefix(n)}-`)) })));
      const victim = names[Math.floor(Math.random() * names.length)]!;
      const down = downOn(a, victim);
      nodes.get(victim)!.signal("SIGKILL");
      // The survivors' devices that are left end too, so every watcher has an ending to hear.
      const rest = keys.filter((k) => !ending.includes(k));
      await Promise.all(names.filter((n) => n !== victim).map((n) => nodes.get(n)!.cmd("endMany", { names: rest.filter((k) => k.startsWith(`${prefix(n)}-`)) })));
      await down;
      // The victim's call fails with noconnection, the survivors' are answered: every call settles.
      const results = await Promise.all(calls);
      // (A call that had not reached the victim when it died finds nobody: no-responders, also settled.)
      unsettled += results.filter((r, i) => (names[i] === victim ? r !== "noconnection" && r !== "no-responders" : r !== "ok")).length;
      // Every watcher hears exactly one ending: its device's own error, or noconnection of the victim.
      for (const { watcher, target } of watchers) {
        const m = (await Promise.race([watcher.receive(), new Promise((r) => setTimeout(r, 5_000, "lost"))])) as Message | "lost";
        if (m === "lost") {
          lost++;
          continue;
        }
        const fault = (m as { fault?: Fault }).fault;
        const victimDevice = target.startsWith(`${prefix(victim)}-`);
        const ok = fault?.kind === "error" ? (fault.error as Error).message === target : fault?.kind === "noconnection" && victimDevice;
        if (!ok) lost++;
      }
      // Nothing more may arrive: a second ending would be a duplicate.
      await a.flush();
      for (const { watcher } of watchers) if (watcher.tryReceive() !== undefined) duplicated++;
      nodes.set(victim, await c.proc(victim));
      await upOn(a, victim);
    }
    expect({ lost, duplicated, unsettled }).toEqual({ lost: 0, duplicated: 0, unsettled: 0 });
  });
});
