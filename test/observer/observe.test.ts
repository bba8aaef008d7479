import { hasSubscribers } from "node:diagnostics_channel";
import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { dumpTree, Supervisor, TaskSupervisor } from "../../src/index.js";
import { CHANGES_CHANNEL } from "../../src/core/emitter.js";
import { type Observer, ObserverError, observe } from "../../src/observer/index.js";
import { next, worker } from "../supervisor/helpers.js";
import { request, sse, until } from "./helpers.js";

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) await o.close();
});

async function started(sup: Supervisor): Promise<Supervisor> {
  open.push({ close: () => sup.stop() });
  await sup.start();
  return sup;
}

async function watch(root: Parameters<typeof observe>[0], options?: Parameters<typeof observe>[1]): Promise<Observer> {
  const view = await observe(root, options);
  open.unshift(view); // closed before the supervisors stop
  return view;
}

function app() {
  const db = worker("db");
  const w1 = worker("w1");
  const w2 = worker("w2");
  const sup = new Supervisor({
    name: "app",
    intensity: 50,
    children: [db.spec, Supervisor.child("pool", () => ({ name: "pool", strategy: "one-for-all", children: [w1.spec, w2.spec] })), TaskSupervisor.child("jobs")],
  });
  return { sup, db, w1, w2 };
}

const activeTimers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

describe("observe: the endpoints", () => {
  it("GET / is one self-contained page: inline script and style under a strict CSP, nothing fetched from elsewhere", async () => {
    const { sup } = app();
    await started(sup);
    const view = await watch(sup);
    expect(view.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const res = await request(view.url);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(res.headers["content-security-policy"]).toMatch(/default-src 'none'; script-src 'sha256-[^']+'/);
    expect(res.body).toMatch(/^<!doctype html>/);
    expect(res.body).not.toMatch(/<script[^>]+src=|<link[^>]+href=|https?:\/\//);
    expect(res.body).toContain("dataset.childId");
  });

  it("GET /snapshot.json: every node flat with its path, nested supervisors walked, strategy, intensity, mailbox", async () => {
    const { sup } = app();
    await started(sup);
    const view = await watch(sup);
    const res = await request(new URL("snapshot.json", view.url).href);
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body);
    expect(body.roots).toEqual(["app"]);
    expect(body.actions).toBe(false);
    const byPath = new Map(body.nodes.map((n: { path: string }) => [n.path, n]));
    expect([...byPath.keys()]).toEqual(["app", "app/db", "app/pool", "app/pool/w1", "app/pool/w2", "app/jobs"]);
    expect(byPath.get("app")).toMatchObject({ parent: null, kind: "supervisor", status: "running", strategy: "one-for-one", intensity: { used: 0, allowed: 50, period: 5000 }, children: ["app/db", "app/pool", "app/jobs"], records: [] });
    expect(byPath.get("app/pool")).toMatchObject({ parent: "app", kind: "supervisor", strategy: "one-for-all", children: ["app/pool/w1", "app/pool/w2"] });
    expect(byPath.get("app/pool/w1")).toMatchObject({ id: "w1", kind: "worker", status: "running", restarts: 0, mailbox: 0 });
    expect(byPath.get("app/jobs")).toMatchObject({ kind: "tasks", tasks: 0 });
  });

  it("GET /tree.txt is the text dump of every root", async () => {
    const { sup } = app();
    await started(sup);
    const other = await started(new Supervisor({ name: "other", children: [worker("x").spec] }));
    const view = await watch([sup, other]);
    const res = await request(new URL("tree.txt", view.url).href);
    expect(res.body).toBe(`${dumpTree(sup)}\n\n${dumpTree(other)}\n`);
  });

  it("unknown paths are 404, other methods 405, HEAD has no body", async () => {
    const { sup } = app();
    await started(sup);
    const view = await watch(sup);
    expect((await request(new URL("nope", view.url).href)).status).toBe(404);
    expect((await request(view.url, { method: "DELETE" })).status).toBe(405);
    const head = await request(new URL("snapshot.json", view.url).href, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.body).toBe("");
    const headEvents = await request(new URL("events", view.url).href, { method: "HEAD" });
    expect(headEvents.status).toBe(200);
    expect(hasSubscribers(CHANGES_CHANNEL)).toBe(false); // a HEAD opens no stream
  });
});

describe("observe: live changes over Server-Sent Events", () => {
  it("a first snapshot, then a crash and its restart as a patch of only the nodes that changed", async () => {
    const { sup, db } = app();
    await started(sup);
    const view = await watch(sup);
    const events = await sse(view.url);
    expect(events.contentType).toBe("text/event-stream; charset=utf-8");
    const first = await events.next();
    expect(first.event).toBe("snapshot");
    expect(first.data.nodes).toHaveLength(6);
    const restarted = next(sup, "child-restarted");
    db.current.crash(new Error("connection reset"));
    await restarted;
    const patch = await events.next("patch");
    const paths = patch.data.changed.map((n: { path: string }) => n.path);
    expect(paths).toContain("app/db");
    expect(paths).not.toContain("app/pool/w1");
    const dbNode = patch.data.changed.find((n: { path: string }) => n.path === "app/db");
    expect(dbNode).toMatchObject({ status: "running", restarts: 1, lastFault: "error: connection reset", lastFaultKind: "error" });
    expect(typeof dbNode.lastFaultAt).toBe("number");
    const root = patch.data.changed.find((n: { path: string }) => n.path === "app");
    expect(root.intensity.used).toBe(1);
    expect(root.records.at(-1)).toMatchObject({ name: "db", outcome: "error", fault: "error: connection reset" });
    events.close();
  });

  it("a burst of restarts is one update", async () => {
    const workers = Array.from({ length: 50 }, (_, i) => worker(`w${i}`));
    const sup = await started(new Supervisor({ name: "burst", intensity: 100, children: workers.map((w) => w.spec) }));
    const view = await watch(sup);
    const events = await sse(view.url);
    await events.next("snapshot");
    let restarts = 0;
    const all = new Promise<void>((resolve) => sup.on("child-restarted", () => ++restarts === 50 && resolve()));
    for (const w of workers) w.current.crash();
    await all;
    const patch = await events.next("patch");
    expect(patch.data.changed.filter((n: { kind: string }) => n.kind === "worker")).toHaveLength(50);
    expect(patch.data.changed.every((n: { status: string }) => n.status === "running")).toBe(true);
    events.close();
  });

  it("a nested supervisor restarted is a new object: its children are still followed", async () => {
    const w1 = worker("w1");
    const sup = await started(new Supervisor({ name: "app", children: [Supervisor.child("pool", () => ({ name: "pool", intensity: 0, children: [w1.spec] }))] }));
    const view = await watch(sup);
    const events = await sse(view.url);
    await events.next("snapshot");
    // The pool gives up at the first crash (intensity 0): the app restarts it as a fresh supervisor.
    const poolRestarted = next(sup, "child-restarted");
    w1.current.crash();
    await poolRestarted;
    let pool: { restarts: number; status: string } | undefined;
    while (pool?.restarts !== 1 || pool.status !== "running") pool = (await events.next("patch")).data.changed.find((n: { path: string }) => n.path === "app/pool") ?? pool;
    // An event of the new pool (a source the observer has not seen before) still reaches the page.
    const newPool = sup.stateOf<Supervisor>("pool") as Supervisor;
    const terminated = next(newPool, "child-exited");
    void newPool.terminateChild("w1");
    await terminated;
    for (;;) {
      const w = (await events.next("patch")).data.changed.find((n: { path: string }) => n.path === "app/pool/w1");
      if (w?.status === "stopped") break;
    }
    events.close();
  });

  it("task supervisors: tasks running and their execution records", async () => {
    const { sup } = app();
    await started(sup);
    const view = await watch(sup);
    const events = await sse(view.url);
    await events.next("snapshot");
    const jobs = sup.stateOf<TaskSupervisor>("jobs") as TaskSupervisor;
    await jobs.async(async () => 1);
    for (;;) {
      const node = (await events.next("patch")).data.changed.find((n: { path: string }) => n.path === "app/jobs");
      if (node?.records?.length === 1) {
        expect(node.records[0]).toMatchObject({ outcome: "ok" });
        break;
      }
    }
    events.close();
  });
});

describe("observe: never harms the app", () => {
  it("zero cost while no client is connected: no channel subscription, no listener, no timer", async () => {
    const { sup } = app();
    await started(sup);
    const timers = activeTimers();
    const view = await watch(sup);
    expect(hasSubscribers(CHANGES_CHANNEL)).toBe(false);
    expect(sup.eventNames()).toEqual([]);
    await request(new URL("snapshot.json", view.url).href);
    expect(hasSubscribers(CHANGES_CHANNEL)).toBe(false);
    expect(activeTimers()).toBe(timers);

    const events = await sse(view.url);
    await events.next("snapshot");
    expect(hasSubscribers(CHANGES_CHANNEL)).toBe(true);
    expect(sup.eventNames()).toEqual([]); // changes come from the channel, not from listeners
    events.close();
    await until(() => !hasSubscribers(CHANGES_CHANNEL), "the last client is gone");
    expect(activeTimers()).toBeLessThanOrEqual(timers); // its heartbeat and flush timers are gone
  });

  it("a client that stops reading is dropped, not buffered for", async () => {
    const workers = Array.from({ length: 400 }, (_, i) => worker(`a-rather-long-child-name-to-fill-the-socket-${i}`));
    const sup = await started(new Supervisor({ name: "busy", intensity: 1_000_000, children: workers.map((w) => w.spec) }));
    const view = await watch(sup, { heartbeat: 20, coalesce: 0 });
    const { port } = new URL(view.url);
    const socket = connect(Number(port), "127.0.0.1");
    socket.on("error", () => {});
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    socket.pause(); // never reads again
    await until(() => hasSubscribers(CHANGES_CHANNEL), "the client is connected");
    let rounds = 0;
    while (hasSubscribers(CHANGES_CHANNEL)) {
      if (++rounds > 2000) throw new Error("the stuck client was never dropped");
      let n = 0;
      const all = new Promise<void>((resolve) => {
        const on = () => {
          if (++n < workers.length) return;
          sup.off("child-restarted", on);
          resolve();
        };
        sup.on("child-restarted", on);
      });
      for (const w of workers) w.current.crash();
      await all;
      await new Promise((resolve) => setTimeout(resolve, 1)); // let a flush and a heartbeat run between bursts
    }
    expect(rounds).toBeGreaterThan(1);
    socket.destroy();
  });

  it("a first snapshot bigger than the socket's buffer is sent once, then patches (no resync loop)", async () => {
    const workers = Array.from({ length: 300 }, (_, i) => worker(`worker-with-a-long-enough-name-${i}`));
    const sup = await started(new Supervisor({ name: "wide", children: workers.map((w) => w.spec) }));
    const view = await watch(sup);
    const events = await sse(view.url);
    const first = await events.next();
    expect(first.event).toBe("snapshot");
    expect(JSON.stringify(first.data).length).toBeGreaterThan(64 * 1024); // far above the 16 KiB high-water mark
    const restarted = next(sup, "child-restarted");
    workers[0]?.current.crash();
    await restarted;
    expect((await events.next()).event).toBe("patch");
    events.close();
  });

  it("a client that vanishes mid-stream is forgotten", async () => {
    const { sup, db } = app();
    await started(sup);
    const view = await watch(sup);
    const a = await sse(view.url);
    const b = await sse(view.url);
    await a.next("snapshot");
    await b.next("snapshot");
    a.close();
    const restarted = next(sup, "child-restarted");
    db.current.crash();
    await restarted;
    expect((await b.next("patch")).data.changed.length).toBeGreaterThan(0);
    b.close();
    await until(() => !hasSubscribers(CHANGES_CHANNEL), "both clients are gone");
  });

  it("garbage on the wire, a huge body, bad JSON: each refused, the app untouched", async () => {
    const { sup } = app();
    await started(sup);
    const view = await watch(sup, { actions: true, token: "t0k3n" });
    const { port, host } = new URL(view.url);
    const socket = connect(Number(port), "127.0.0.1");
    socket.on("error", () => {});
    const closed = new Promise((resolve) => socket.on("close", resolve));
    socket.end("THIS IS NOT HTTP\r\n\r\n");
    await closed;
    const headers = { Authorization: "Bearer t0k3n", Origin: `http://${host}`, "Content-Type": "application/json", Host: host };
    const huge = await request(new URL("actions/restart", view.url).href, { method: "POST", headers, body: "x".repeat(100_000) }).catch((e: Error) => ({ status: 413, body: e.message }));
    expect(huge.status).toBe(413);
    expect((await request(new URL("actions/restart", view.url).href, { method: "POST", headers, body: "{" })).status).toBe(400);
    expect((await request(new URL("actions/restart", view.url).href, { method: "POST", headers, body: '{"path":"nope/x"}' })).status).toBe(404);
    expect((await request(new URL("actions/restart", view.url).href, { method: "POST", headers, body: '{"path":"app"}' })).status).toBe(404);
    expect(sup.status).toBe("running");
    expect((await request(new URL("snapshot.json", view.url).href, { headers: { Authorization: "Bearer t0k3n" } })).status).toBe(200);
  });

  it("close() ends the streams and leaves no handle behind", async () => {
    const { sup } = app();
    await started(sup);
    const count = (kind: string) => process.getActiveResourcesInfo().filter((r) => r === kind).length;
    const before = { sockets: count("TCPSocketWrap"), timers: count("Timeout") };
    const view = await observe(sup);
    const events = await sse(view.url);
    await events.next("snapshot");
    await view.close();
    await events.ended(); // the stream was ended by the server, not left hanging
    await view.close(); // idempotent
    expect(hasSubscribers(CHANGES_CHANNEL)).toBe(false);
    expect(count("Timeout")).toBeLessThanOrEqual(before.timers);
    await until(() => count("TCPSocketWrap") <= before.sockets, "every connection is closed");
    await expect(request(view.url)).rejects.toThrow(/ECONNREFUSED/); // not listening any more
  });

  it("await using closes it", async () => {
    const { sup } = app();
    await started(sup);
    let url = "";
    {
      await using view = await observe(sup);
      url = view.url;
      expect((await request(url)).status).toBe(200);
    }
    await expect(request(url)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe("observe: safe by default", () => {
  it("bad arguments are typed errors", async () => {
    const sup = new Supervisor({ name: "s" });
    await expect(observe([] as never)).rejects.toMatchObject({ code: "invalid-argument" });
    await expect(observe({} as never)).rejects.toBeInstanceOf(ObserverError);
    await expect(observe(sup, { port: -1 })).rejects.toMatchObject({ code: "invalid-argument" });
    await expect(observe(sup, { coalesce: Number.NaN })).rejects.toMatchObject({ code: "invalid-argument" });
    await expect(observe(sup, { token: "" })).rejects.toMatchObject({ code: "invalid-argument" });
  });

  it("any host but loopback needs a token; so do actions", async () => {
    const sup = new Supervisor({ name: "s" });
    await expect(observe(sup, { host: "0.0.0.0" })).rejects.toMatchObject({ name: "ObserverError", code: "token-required" });
    await expect(observe(sup, { actions: true })).rejects.toMatchObject({ code: "token-required" });
  });

  it("a port in use is a typed error", async () => {
    const sup = new Supervisor({ name: "s" });
    const view = await watch(sup);
    await expect(observe(sup, { port: Number(new URL(view.url).port) })).rejects.toMatchObject({ code: "listen-failed" });
  });

  it("a Host header other than the bound address is refused (DNS rebinding)", async () => {
    const sup = new Supervisor({ name: "s" });
    const view = await watch(sup);
    const { port } = new URL(view.url);
    for (const host of [`evil.example:${port}`, `127.0.0.1:${Number(port) + 1}`, `attacker.test`]) {
      const res = await request(new URL("snapshot.json", view.url).href, { headers: { Host: host } });
      expect(res.status).toBe(403);
    }
    expect((await request(new URL("snapshot.json", view.url).href, { headers: { Host: `localhost:${port}` } })).status).toBe(200);
  });

  it("with a token: data needs it, the page never contains it", async () => {
    const { sup } = app();
    await started(sup);
    const token = "s3cret-Token-value";
    const view = await watch(sup, { token });
    const page = await request(view.url);
    expect(page.status).toBe(200);
    expect(page.body).not.toContain(token);
    for (const path of ["snapshot.json", "tree.txt", "events"]) {
      const res = await request(new URL(path, view.url).href);
      expect(res.status).toBe(401);
      expect(res.body).not.toContain(token);
      expect((await request(new URL(path, view.url).href, { headers: { Authorization: "Bearer wrong" } })).status).toBe(401);
    }
    expect((await request(new URL("tree.txt", view.url).href, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
    const events = await sse(view.url, { Authorization: `Bearer ${token}` });
    expect((await events.next()).event).toBe("snapshot");
    events.close();
  });

  it("bound to every interface with a token: IP literals of this machine are accepted, names are not", async () => {
    const sup = new Supervisor({ name: "s" });
    const view = await watch(sup, { host: "0.0.0.0", token: "t", allowedHosts: ["observer.internal"] });
    const { port } = new URL(view.url);
    const url = `http://127.0.0.1:${port}/snapshot.json`;
    const auth = { Authorization: "Bearer t" };
    expect((await request(url, { headers: { ...auth, Host: `10.1.2.3:${port}` } })).status).toBe(200);
    expect((await request(url, { headers: { ...auth, Host: `observer.internal:${port}` } })).status).toBe(200);
    expect((await request(url, { headers: { ...auth, Host: `rebind.attacker.test:${port}` } })).status).toBe(403);
  });
});

describe("observe: actions", () => {
  const token = "act-token";

  it("a supervisor's refusal is answered 409 with its code", async () => {
    let broken = false;
    const fragile = worker("fragile", { failInit: () => (broken ? new Error("no config") : undefined) });
    const sup = await started(new Supervisor({ name: "app", children: [fragile.spec] }));
    const view = await watch(sup, { actions: true, token });
    const { host } = new URL(view.url);
    const headers = { "Content-Type": "application/json", Authorization: `Bearer ${token}`, Origin: `http://${host}` };
    broken = true;
    const res = await request(new URL("actions/restart", view.url).href, { method: "POST", headers, body: '{"path":"app/fragile"}' });
    expect(res.status).toBe(409);
    expect(JSON.parse(res.body)).toMatchObject({ ok: false, code: "start-failed" });
  });

  it("off by default: 403", async () => {
    const { sup } = app();
    await started(sup);
    const view = await watch(sup);
    const { host } = new URL(view.url);
    const res = await request(new URL("actions/restart", view.url).href, { method: "POST", headers: { Origin: `http://${host}`, "Content-Type": "application/json" }, body: '{"path":"app/db"}' });
    expect(res.status).toBe(403);
    expect(sup.whichChildren()[0]?.restarts).toBe(0);
  });

  it("refused without the token, or from another origin, or without an origin", async () => {
    const { sup } = app();
    await started(sup);
    const view = await watch(sup, { actions: true, token });
    const { host } = new URL(view.url);
    const url = new URL("actions/terminate", view.url).href;
    const body = '{"path":"app/db"}';
    const json = { "Content-Type": "application/json" };
    expect((await request(url, { method: "POST", headers: { ...json, Origin: `http://${host}` }, body })).status).toBe(403);
    expect((await request(url, { method: "POST", headers: { ...json, Origin: `http://${host}`, Authorization: "Bearer nope" }, body })).status).toBe(403);
    expect((await request(url, { method: "POST", headers: { ...json, Authorization: `Bearer ${token}`, Origin: "http://evil.example" }, body })).status).toBe(403);
    expect((await request(url, { method: "POST", headers: { ...json, Authorization: `Bearer ${token}` }, body })).status).toBe(403);
    expect((await request(url, { method: "POST", headers: { ...json, Authorization: `Bearer ${token}`, Origin: `http://${host}`, "Sec-Fetch-Site": "cross-site" }, body })).status).toBe(403);
    expect(sup.whichChildren()[0]?.status).toBe("running");
  });

  it("with the token from the same origin: terminate, then restart a nested child", async () => {
    const { sup } = app();
    await started(sup);
    const view = await watch(sup, { actions: true, token });
    const { host } = new URL(view.url);
    const headers = { "Content-Type": "application/json", Authorization: `Bearer ${token}`, Origin: `http://${host}`, "Sec-Fetch-Site": "same-origin" };
    const terminated = await request(new URL("actions/terminate", view.url).href, { method: "POST", headers, body: '{"path":"app/pool/w2"}' });
    expect(terminated.status).toBe(200);
    expect(JSON.parse(terminated.body)).toEqual({ ok: true, action: "terminate", path: "app/pool/w2" });
    const pool = sup.stateOf<Supervisor>("pool") as Supervisor;
    expect(pool.whichChildren()[1]?.status).toBe("stopped");
    const restarted = await request(new URL("actions/restart", view.url).href, { method: "POST", headers, body: '{"path":"app/pool/w2"}' });
    expect(restarted.status).toBe(200);
    expect(pool.whichChildren()[1]?.status).toBe("running");
    // Restarting a running child terminates it first, then starts it again.
    const deviceBefore = sup.whichChildren()[0]?.device;
    const again = await request(new URL("actions/restart", view.url).href, { method: "POST", headers, body: '{"path":"app/db"}' });
    expect(again.status).toBe(200);
    expect(sup.whichChildren()[0]?.status).toBe("running");
    expect(sup.whichChildren()[0]?.device).not.toBe(deviceBefore);
    // A supervisor's refusal is passed on with its code: the pool cannot restart a child it no longer has.
    const pool2 = sup.stateOf<Supervisor>("pool") as Supervisor;
    await pool2.terminateChild("w2");
    pool2.deleteChild("w2");
    const gone = await request(new URL("actions/restart", view.url).href, { method: "POST", headers, body: '{"path":"app/pool/w2"}' });
    expect(gone.status).toBe(404);
  });
});

describe("observe: hostile trees and clients never reach the observed app", () => {
  const token = "hostile-test-token";

  it("a child id with a lone surrogate half: actions, snapshots and live updates still work", async () => {
    const cut = "🚀rocket".slice(1); // a lone low surrogate, as .slice() makes of an emoji
    const odd = worker(cut);
    const db = worker("db");
    const sup = await started(new Supervisor({ name: "app", children: [odd.spec, db.spec] }));
    const view = await watch(sup, { actions: true, token });
    const client = await sse(view.url, { Authorization: `Bearer ${token}` });
    expect((await client.next("snapshot")).data.nodes.length).toBeGreaterThan(1);
    const { host } = new URL(view.url);
    const headers = { "Content-Type": "application/json", Authorization: `Bearer ${token}`, Origin: `http://${host}`, "Sec-Fetch-Site": "same-origin" };
    const res = await request(new URL("actions/terminate", view.url).href, { method: "POST", headers, body: '{"path":"app/db"}' });
    expect(res.status).toBe(200);
    expect((await request(new URL("snapshot.json", view.url).href, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
    client.close();
  });

  it("a task that fails with a revoked Proxy while a page is open: the app goes on", async () => {
    const tasks = new TaskSupervisor({ name: "jobs" });
    open.push({ close: () => tasks.stop() });
    const view = await watch(tasks, { token });
    const client = await sse(view.url, { Authorization: `Bearer ${token}` });
    await client.next("snapshot");
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    await expect(tasks.async(() => Promise.reject(proxy))).rejects.toBeDefined();
    await expect(tasks.async(() => 1)).resolves.toBe(1);
    client.close();
  });

  it("more /events clients than maxClients are answered 503; too-fast heartbeats and bad caps are refused", async () => {
    const { sup } = app();
    await started(sup);
    const view = await watch(sup, { token, maxClients: 1 });
    const first = await sse(view.url, { Authorization: `Bearer ${token}` });
    const second = await request(new URL("events", view.url).href, { headers: { Authorization: `Bearer ${token}` } });
    expect(second.status).toBe(503);
    first.close();
    await expect(observe(sup, { heartbeat: 0 })).rejects.toMatchObject({ code: "invalid-argument" });
    await expect(observe(sup, { maxClients: 0 })).rejects.toMatchObject({ code: "invalid-argument" });
  });

  it("roots with colliding names still get one path each (app, app, app~2)", async () => {
    const a = worker("a");
    const b = worker("b");
    const c = worker("c");
    const roots = [new Supervisor({ name: "app", children: [a.spec] }), new Supervisor({ name: "app", children: [b.spec] }), new Supervisor({ name: "app~2", children: [c.spec] })];
    for (const r of roots) await started(r);
    const view = await watch(roots, { token });
    const res = await request(new URL("snapshot.json", view.url).href, { headers: { Authorization: `Bearer ${token}` } });
    const snap = JSON.parse(res.body) as { roots: string[] };
    expect(new Set(snap.roots).size).toBe(3);
  });
});
