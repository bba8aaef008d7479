/**
 * Real parts for the cluster tests: a `nats-server` with JetStream in a temp
 * dir on a random port, node processes (`child_process.fork` of a fixture
 * script), and a TCP proxy between a node and the server that can pause
 * (a silent partition) or cut its connections. Everything started here is
 * stopped by `cleanup()`, which every suite calls in `afterAll` (and which
 * kills whatever is left if a test failed half-way).
 */
import { type ChildProcess, fork, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer, type Server as NetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

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
  static async start(options: { servers: string; name: string; heartbeatMs: number; missedHeartbeats: number; cluster?: string }): Promise<NodeProcess> {
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
