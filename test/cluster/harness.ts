/**
 * Real parts for the cluster tests: a `nats-server` with JetStream in a temp
 * dir on a random port, node processes (`child_process.fork` of a fixture
 * script), and a TCP proxy between a node and the server that can pause
 * (a silent partition) or cut its connections; and `NatsCluster`, three
 * servers with clustered JetStream whose routes go through proxies, so a
 * test can split one server from the other two. Everything started here is
 * stopped by `cleanup()`, which every suite calls in `afterAll` (and which
 * kills whatever is left if a test failed half-way).
 */
import { type ChildProcess, fork, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer, type Server as NetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect as natsConnect } from "nats";

/** Why the cluster tests cannot run here, or undefined when they can. */
export function natsMissing(): string | undefined {
  try {
    const r = spawnSync("nats-server", ["--version"], { encoding: "utf8" });
    if (r.error !== undefined || r.status !== 0) return "nats-server is not installed (apt-get install nats-server)";
  } catch {
    return "nats-server is not installed (apt-get install nats-server)";
  }
  return undefined;
}

const cleanups: (() => Promise<void> | void)[] = [];
/** What must not outlive this process even when it ends without cleanup() (a killed run): kill and delete synchronously at exit. */
const atExit = new Set<() => void>();
process.once("exit", () => {
  for (const fn of atExit) {
    try {
      fn();
    } catch {
      // exiting anyway
    }
  }
});

/** Stop every server, proxy and node process this file started. */
export async function cleanup(): Promise<void> {
  const all = cleanups.splice(0).reverse();
  for (const c of all) {
    try {
      await c();
    } catch {
      // cleaning up after a failed test: keep going
    }
  }
}

/** A nats-server on 127.0.0.1, JetStream stored in its own temp dir. */
export class NatsServer {
  readonly dir: string;
  port = 0;
  #proc: ChildProcess | undefined;

  private constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "bp-nats-"));
  }

  static async start(): Promise<NatsServer> {
    const s = new NatsServer();
    cleanups.push(() => s.destroy());
    const last = (): void => {
      s.#proc?.kill("SIGKILL");
      rmSync(s.dir, { recursive: true, force: true });
    };
    atExit.add(last);
    cleanups.push(() => void atExit.delete(last));
    await s.#launch(-1);
    return s;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async #launch(port: number): Promise<void> {
    const proc = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", this.dir], { stdio: ["ignore", "ignore", "pipe"] });
    this.#proc = proc;
    await new Promise<void>((resolve, reject) => {
      let log = "";
      const onData = (chunk: Buffer): void => {
        log += chunk.toString();
        const m = /Listening for client connections on [\d.]+:(\d+)/.exec(log);
        if (m !== null && log.includes("Server is ready")) {
          this.port = Number(m[1]);
          proc.stderr!.off("data", onData);
          proc.stderr!.resume();
          resolve();
        }
      };
      proc.stderr!.on("data", onData);
      proc.once("exit", (code) => reject(new Error(`nats-server exited (${code}): ${log}`)));
    });
  }

  /** Stop the server (its data stays), for an outage. */
  async stop(): Promise<void> {
    const proc = this.#proc;
    this.#proc = undefined;
    if (proc === undefined || proc.exitCode !== null) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGKILL");
    await exited;
  }

  /** Start it again on the same port, with the same JetStream data. */
  async restart(): Promise<void> {
    await this.#launch(this.port);
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A TCP proxy in front of the server: `pause()` silently stops forwarding (a partition), `cut()` closes every connection. */
export class TcpProxy {
  readonly #server: NetServer;
  readonly #pairs = new Set<{ a: Socket; b: Socket; held: [Socket, Buffer][] }>();
  #paused = false;
  port = 0;

  private constructor(readonly target: number) {
    this.#server = createServer((client) => this.#accept(client));
  }

  static async start(target: number): Promise<TcpProxy> {
    const p = new TcpProxy(target);
    cleanups.push(() => p.close());
    await new Promise<void>((resolve) => p.#server.listen(0, "127.0.0.1", resolve));
    p.port = (p.#server.address() as { port: number }).port;
    return p;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  #accept(client: Socket): void {
    const upstream = createConnection({ host: "127.0.0.1", port: this.target });
    const pair = { a: client, b: upstream, held: [] as [Socket, Buffer][] };
    this.#pairs.add(pair);
    const forward = (to: Socket) => (data: Buffer) => {
      if (this.#paused) pair.held.push([to, data]);
      else to.write(data);
    };
    client.on("data", forward(upstream));
    upstream.on("data", forward(client));
    const end = (): void => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  }

  /** Hold every byte in both directions, as a network that silently drops packets (TCP would retransmit after it heals). */
  pause(): void {
    this.#paused = true;
  }

  /** Deliver what was held and forward again. */
  resume(): void {
    this.#paused = false;
    for (const pair of this.#pairs) {
      for (const [to, data] of pair.held.splice(0)) to.write(data);
    }
  }

  /** Close every connection through the proxy (new ones are accepted). */
  cut(): void {
    for (const pair of [...this.#pairs]) {
      pair.a.destroy();
      pair.b.destroy();
    }
    this.#pairs.clear();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

const FIXTURE = fileURLToPath(new URL("./fixtures/node-process.ts", import.meta.url));

/** A reply or an event from a node process. */
type FromChild = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string } | { event: string; data: unknown };

/** A cluster node in its own process, driven over IPC (see fixtures/node-process.ts for the commands). */
export class NodeProcess {
  readonly proc: ChildProcess;
  readonly events: { event: string; data: unknown; at: number }[] = [];
  #next = 0;
  readonly #waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #eventWaiters: { match: (e: { event: string; data: unknown }) => boolean; resolve: (e: { event: string; data: unknown }) => void }[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(proc: ChildProcess) {
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
    proc.on("message", (m: FromChild) => {
      if ("event" in m) {
        const e = { event: m.event, data: m.data, at: performance.now() };
        this.events.push(e);
        for (let i = 0; i < this.#eventWaiters.length; i++) {
          const w = this.#eventWaiters[i]!;
          if (w.match(e)) {
            this.#eventWaiters.splice(i--, 1);
            w.resolve(e);
          }
        }
        return;
      }
      const w = this.#waiting.get(m.id);
      if (w === undefined) return;
      this.#waiting.delete(m.id);
      if (m.ok) w.resolve(m.value);
      else w.reject(new Error(m.error));
    });
    void this.exited.then(() => {
      for (const w of this.#waiting.values()) w.reject(new Error("node process exited"));
      this.#waiting.clear();
    });
  }

  /** Fork a node process and connect it to `servers` as `name`. */
  static async start(options: { servers: string | string[]; name: string; heartbeatMs: number; missedHeartbeats: number; cluster?: string; replicas?: number; leaseMs?: number }): Promise<NodeProcess> {
    const proc = fork(FIXTURE, [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const node = new NodeProcess(proc);
    cleanups.push(() => node.kill());
    const last = (): void => void proc.kill("SIGKILL");
    atExit.add(last);
    void node.exited.then(() => atExit.delete(last));
    await node.cmd("connect", options);
    return node;
  }

  /** Run one command in the process (see the fixture for the list). */
  cmd<T = unknown>(op: string, args?: unknown): Promise<T> {
    const id = ++this.#next;
    return new Promise<T>((resolve, reject) => {
      this.#waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.proc.send({ id, op, args });
    });
  }

  /** The next event matching `match` (or one already seen, when `seen` is true). */
  waitEvent(match: (e: { event: string; data: unknown }) => boolean, seen = true): Promise<{ event: string; data: unknown }> {
    if (seen) {
      const found = this.events.find(match);
      if (found !== undefined) return Promise.resolve(found);
    }
    return new Promise((resolve) => this.#eventWaiters.push({ match, resolve }));
  }

  signal(sig: NodeJS.Signals): void {
    this.proc.kill(sig);
  }

  async kill(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGCONT");
    this.proc.kill("SIGKILL");
    await this.exited;
  }
}

/** Register something else to clean up after the suite. */
export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

/**
 * A forwarder for one route (server `from` dials server `to`): it connects to
 * whatever `target()` says now (a restarted server keeps its ports), and while
 * `blocked` it refuses new connections; `cut()` closes the ones it carries.
 */
class RouteProxy {
  readonly #server: NetServer;
  readonly #sockets = new Set<Socket>();
  blocked = false;
  port = 0;

  constructor(readonly target: () => number) {
    this.#server = createServer((client) => this.#accept(client));
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    this.port = (this.#server.address() as { port: number }).port;
  }

  #accept(client: Socket): void {
    const port = this.target();
    if (this.blocked || port === 0) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: "127.0.0.1", port });
    this.#sockets.add(client).add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = (): void => {
      this.#sockets.delete(client);
      this.#sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  }

  /** How many connections it carries now. */
  get carried(): number {
    return this.#sockets.size / 2;
  }

  cut(): void {
    for (const s of [...this.#sockets]) s.destroy();
    this.#sockets.clear();
  }

  async close(): Promise<void> {
    this.blocked = true;
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** One server of a NatsCluster: its ports are picked at its first start and kept over restarts. */
class ClusterMember {
  readonly dir: string;
  port = 0;
  routePort = 0;
  httpPort = 0;
  #proc: ChildProcess | undefined;

  constructor(
    readonly index: number,
    readonly name: string,
    readonly clusterName: string,
    readonly routes: () => number[],
  ) {
    this.dir = mkdtempSync(join(tmpdir(), `bp-nats-${index}-`));
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#proc !== undefined && this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /**
   * The config: routes only through this server's proxies; `advertise` is a
   * port where nothing listens, so a route URL gossiped by a peer (an implicit
   * route) leads nowhere and every route goes through a proxy; `no_advertise`
   * keeps the other servers' client URLs from the clients, so a client stays
   * on the servers it was given.
   */
  #config(): string {
    const port = (p: number): string => (p === 0 ? "-1" : String(p));
    return [
      `server_name: ${this.name}`,
      `listen: "127.0.0.1:${port(this.port)}"`,
      `http: "127.0.0.1:${port(this.httpPort)}"`,
      `jetstream {`,
      `  store_dir: "${join(this.dir, "js")}"`,
      `}`,
      `cluster {`,
      `  name: ${this.clusterName}`,
      `  listen: "127.0.0.1:${port(this.routePort)}"`,
      `  advertise: "127.0.0.1:${NOWHERE}"`,
      `  no_advertise: true`,
      `  connect_retries: 0`,
      `  routes: [${this.routes()
        .map((p) => `"nats-route://127.0.0.1:${p}"`)
        .join(", ")}]`,
      `}`,
      ``,
    ].join("\n");
  }

  async launch(): Promise<void> {
    const file = join(this.dir, "server.conf");
    writeFileSync(file, this.#config());
    const proc = spawn("nats-server", ["-c", file], { stdio: ["ignore", "ignore", "pipe"] });
    this.#proc = proc;
    await new Promise<void>((resolve, reject) => {
      let log = "";
      const onData = (chunk: Buffer): void => {
        log += chunk.toString();
        const client = /Listening for client connections on [\d.]+:(\d+)/.exec(log);
        const route = /Listening for route connections on [\d.]+:(\d+)/.exec(log);
        const http = /Starting http monitor on [\d.]+:(\d+)/.exec(log);
        if (client !== null && route !== null && http !== null && log.includes("Server is ready")) {
          this.port = Number(client[1]);
          this.routePort = Number(route[1]);
          this.httpPort = Number(http[1]);
          proc.stderr!.off("data", onData);
          proc.stderr!.resume();
          resolve();
        }
      };
      proc.stderr!.on("data", onData);
      proc.once("exit", (code) => reject(new Error(`nats-server ${this.name} exited (${code}): ${log}`)));
    });
  }

  async stop(): Promise<void> {
    const proc = this.#proc;
    this.#proc = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGKILL");
    await exited;
  }

  killNow(): void {
    this.#proc?.kill("SIGKILL");
  }

  /** A monitoring endpoint's JSON (`routez`, `jsz`, ...). */
  async monitor(path: string): Promise<any> {
    const r = await fetch(`http://127.0.0.1:${this.httpPort}/${path}`);
    return r.json();
  }
}

/** A port where nothing listens (tcpmux, never served here): what the servers advertise as their route URL, so gossip leads nowhere. */
const NOWHERE = 1;

/**
 * Three nats-servers on 127.0.0.1 in one cluster with clustered JetStream,
 * every route between them through a proxy of the harness: `isolate(i)`
 * splits server i from the other two (a network split between servers; the
 * clients of server i still reach it), `heal()` joins them again.
 */
export class NatsCluster {
  readonly servers: ClusterMember[] = [];
  /** proxies[i][j]: the route server i dials to reach server j (undefined for i = j). */
  readonly #proxies: (RouteProxy | undefined)[][] = [];
  #isolated = new Set<number>();

  private constructor() {}

  /** Start the three servers; resolves once every server has both routes and JetStream takes an R3 stream. */
  static async start(options: { clusterName?: string } = {}): Promise<NatsCluster> {
    const c = new NatsCluster();
    const clusterName = options.clusterName ?? "bp";
    for (let i = 0; i < 3; i++) {
      c.#proxies.push([]);
      for (let j = 0; j < 3; j++) {
        if (i === j) {
          c.#proxies[i]!.push(undefined);
          continue;
        }
        const to = j;
        const p = new RouteProxy(() => c.servers[to]!.routePort);
        c.#proxies[i]!.push(p);
      }
    }
    for (let i = 0; i < 3; i++) {
      const from = i;
      c.servers.push(
        new ClusterMember(i, `n${i}`, clusterName, () =>
          c.#proxies[from]!.filter((p): p is RouteProxy => p !== undefined).map((p) => p.port),
        ),
      );
    }
    cleanups.push(() => c.destroy());
    const last = (): void => {
      for (const s of c.servers) {
        s.killNow();
        rmSync(s.dir, { recursive: true, force: true });
      }
    };
    atExit.add(last);
    cleanups.push(() => void atExit.delete(last));
    await Promise.all(c.#proxies.flat().map((p) => p?.listen()));
    await Promise.all(c.servers.map((s) => s.launch()));
    await c.ready();
    return c;
  }

  /** The client URLs of the three servers. */
  get urls(): string[] {
    return this.servers.map((s) => s.url);
  }

  /** The routes server i has now: the server names on their other ends. */
  async routes(i: number): Promise<string[]> {
    const z = (await this.servers[i]!.monitor("routez")) as { routes?: { remote_id: string }[] };
    const ids = new Map<string, string>();
    for (const s of this.servers) {
      if (!s.running) continue;
      const v = (await s.monitor("varz")) as { server_id: string; server_name: string };
      ids.set(v.server_id, v.server_name);
    }
    return (z.routes ?? []).map((r) => ids.get(r.remote_id) ?? r.remote_id).sort();
  }

  /** How many connections the route proxies carry now (one per route when every route goes through them). */
  get proxiedRoutes(): number {
    return this.#proxies.flat().reduce((n, p) => n + (p?.carried ?? 0), 0);
  }

  /** The names of the client connections on server i (a cluster node's is `${cluster}:${name}`). */
  async clients(i: number): Promise<string[]> {
    const z = (await this.servers[i]!.monitor("connz")) as { connections?: { name?: string }[] };
    return (z.connections ?? []).map((c) => c.name ?? "").sort();
  }

  /**
   * Wait until every running server has a route to every other running one
   * across no split, and JetStream answers through each server on the
   * majority side: with all three servers joined, each of them creates (and
   * deletes) an R3 stream; otherwise each answers an account-info request
   * (which needs a meta leader). After a heal the server that was split off
   * can answer 503 (no responders) for its JetStream API for 6–10 s.
   */
  async ready(timeoutMs = 60_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const up = (): ClusterMember[] => this.servers.filter((s) => s.running);
    for (;;) {
      const want = (i: number) =>
        up()
          .filter((s) => s.index !== i && !this.#isolated.has(s.index) && !this.#isolated.has(i))
          .map((s) => s.name)
          .sort();
      let formed = true;
      for (const s of up()) {
        const have = await this.routes(s.index).catch(() => []);
        if (JSON.stringify(have) !== JSON.stringify(want(s.index))) formed = false;
      }
      if (formed) break;
      if (performance.now() > deadline) throw new Error("the NATS cluster did not form its routes in time");
      await sleep(50);
    }
    const whole = up().length === 3 && this.#isolated.size === 0;
    const majority = up().filter((s) => !this.#isolated.has(s.index));
    await Promise.all(
      majority.map(async (s) => {
        const nc = await natsConnect({ servers: s.url, name: "harness-ready" });
        try {
          const jsm = await nc.jetstreamManager({ checkAPI: false, timeout: 1_000 });
          const name = `bp_ready_${s.name}_${Math.random().toString(36).slice(2, 8)}`;
          for (;;) {
            try {
              if (whole) {
                await jsm.streams.add({ name, subjects: [`${name}.>`], num_replicas: 3 });
                await jsm.streams.delete(name);
              } else {
                await jsm.getAccountInfo();
              }
              return;
            } catch (e) {
              if (performance.now() > deadline) throw new Error(`JetStream through ${s.name} did not answer in time: ${(e as Error).message}`);
              await sleep(100);
            }
          }
        } finally {
          await nc.close();
        }
      }),
    );
  }

  /** A running server on the majority side, to ask things through. */
  #via(): ClusterMember {
    const s = this.servers.find((x) => x.running && !this.#isolated.has(x.index));
    if (s === undefined) throw new Error("no server of the cluster is running");
    return s;
  }

  /** The server (its name, `n0`...) leading JetStream stream `stream` now, or undefined (no leader, or no such stream). */
  async streamLeader(stream: string): Promise<string | undefined> {
    const via = this.#via();
    const nc = await natsConnect({ servers: via.url });
    try {
      const jsm = await nc.jetstreamManager({ checkAPI: false, timeout: 1_000 });
      return await jsm.streams.info(stream).then(
        (i) => i.cluster?.leader,
        () => undefined,
      );
    } finally {
      await nc.close();
    }
  }

  /**
   * Make server i the leader of stream `stream` (asking its leader to step
   * down until the election lands on i). False if the stream does not exist.
   */
  async leadStreamOn(stream: string, i: number, timeoutMs = 20_000): Promise<boolean> {
    const want = this.servers[i]!.name;
    const via = this.#via();
    const nc = await natsConnect({ servers: via.url });
    const deadline = performance.now() + timeoutMs;
    try {
      const jsm = await nc.jetstreamManager({ checkAPI: false, timeout: 1_000 });
      for (;;) {
        let leader: string | undefined;
        try {
          leader = (await jsm.streams.info(stream)).cluster?.leader;
        } catch (e) {
          if ((e as { api_error?: { err_code?: number } }).api_error?.err_code === 10059) return false; // stream not found
        }
        if (leader === want) return true;
        if (performance.now() > deadline) throw new Error(`could not move the leader of ${stream} to ${want} (it is on ${leader})`);
        if (leader !== undefined) await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, undefined, { timeout: 2_000 }).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await nc.close();
    }
  }

  /**
   * Cut every route to and from server i, and keep refusing new ones until
   * heal(). Resolves once no running server reports a route across the split.
   */
  async isolate(i: number): Promise<void> {
    this.#isolated.add(i);
    for (let a = 0; a < 3; a++) {
      for (let b = 0; b < 3; b++) {
        const p = this.#proxies[a]![b];
        if (p === undefined || (a !== i && b !== i)) continue;
        p.blocked = true;
        p.cut();
      }
    }
    const deadline = performance.now() + 5_000;
    for (;;) {
      const across = await Promise.all(
        this.servers
          .filter((s) => s.running)
          .map(async (s) => (await this.routes(s.index)).some((r) => (s.index === i ? true : r === this.servers[i]!.name))),
      );
      if (!across.includes(true)) return;
      if (performance.now() > deadline) throw new Error(`server ${i} still has routes across the split`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Let every route through again; resolves once the routes have formed again and JetStream takes an R3 stream. */
  async heal(): Promise<void> {
    this.#isolated.clear();
    for (const p of this.#proxies.flat()) if (p !== undefined) p.blocked = false;
    await this.ready();
  }

  /** SIGKILL server i (its JetStream data stays). */
  async stop(i: number): Promise<void> {
    await this.servers[i]!.stop();
  }

  /** Start server i again on the same ports with the same data. */
  async restart(i: number): Promise<void> {
    await this.servers[i]!.launch();
  }

  async destroy(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.stop()));
    await Promise.all(this.#proxies.flat().map((p) => p?.close()));
    for (const s of this.servers) rmSync(s.dir, { recursive: true, force: true });
  }
}

/**
 * The singleton starts and stops that node processes reported (the fixture's
 * `singleton` command), as one timeline in the order this process received
 * them (IPC is not partitioned), and the most copies running at once.
 */
export function singletonTimeline(nodes: Record<string, NodeProcess>): { order: string[]; most: number } {
  const timeline = Object.entries(nodes)
    .flatMap(([who, p]) => p.events.map((e) => ({ ...e, who })))
    .filter((e) => e.event.startsWith("singleton"))
    .sort((x, y) => x.at - y.at);
  let running = 0;
  let most = 0;
  for (const e of timeline) {
    running += e.event === "singleton-start" ? 1 : -1;
    most = Math.max(most, running);
  }
  return { order: timeline.map((e) => `${e.who}:${e.event}`), most };
}
