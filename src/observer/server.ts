/**
 * `observe()`: a small `node:http` server showing live supervision trees.
 *
 * Never harms the application it observes:
 * - while no client is connected to `/events` it holds no listener, no
 *   diagnostics-channel subscription and no timer of its own: the observed
 *   supervisors pay nothing;
 * - while clients are connected, changes come from the `backplane:changes`
 *   diagnostics channel (no listeners on the supervisors), are coalesced
 *   into one patch per flush, and a flush is spaced so that its cost stays
 *   a small fraction of the time (a restart storm is one update per window);
 * - a client that cannot keep up is not buffered for: past 256 KiB unsent
 *   it is skipped until its socket drains, then sent one fresh snapshot;
 *   one still that far behind at two heartbeats in a row, or that would
 *   pass `maxBuffered`, is dropped;
 * - a request handler can never throw into the app; `close()` ends every
 *   response and connection.
 *
 * Safe by default: bound to 127.0.0.1; any other host needs a token; a
 * request whose `Host` header is not the bound address is refused (DNS
 * rebinding); data endpoints need the token when there is one; actions are
 * off unless asked for, and then need the token and a same-origin request.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import { isIP } from "node:net";
import { hostname as osHostname } from "node:os";
import { errorText } from "../core/describe.js";
import { CHANGES_CHANNEL } from "../core/emitter.js";
import { BackplaneError } from "../core/error.js";
import { type AnyTimer, clearAnyTimeout, describeValue, durationProblem, setAnyTimeout } from "../core/timer.js";
import { dumpTree } from "../supervisor/dump.js";
import { Supervisor } from "../supervisor/supervisor.js";
import { TaskSupervisor } from "../supervisor/task.js";
import { type Observable, type Patch, TreeModel } from "./model.js";
import { pageHtml } from "./page.js";

/**
 * Why `observe()` refused.
 *
 * @example
 * ```ts
 * const code: ObserverErrorCode = "token-required";
 * ```
 */
export type ObserverErrorCode = "invalid-argument" | "token-required" | "listen-failed";

/**
 * A refusal of {@link observe}: a bad option, a missing token, or a port it
 * could not listen on (`cause` holds the system error).
 *
 * @example
 * ```ts
 * try { await observe(app, { host: "0.0.0.0" }); }
 * catch (e) { if (e instanceof ObserverError && e.code === "token-required") … }
 * ```
 */
export class ObserverError extends BackplaneError<ObserverErrorCode> {}
ObserverError.prototype.name = "ObserverError";

/**
 * Options of {@link observe}.
 *
 * @example
 * ```ts
 * await observe(app, { host: "0.0.0.0", port: 9000, token: process.env.OBSERVER_TOKEN, actions: true });
 * ```
 */
export interface ObserveOptions {
  /** Address to bind. Default `"127.0.0.1"`; anything but a loopback address needs a `token`. */
  host?: string;
  /** Port; default 0 (any free port: read it from `url`). */
  port?: number;
  /**
   * A shared secret. When set, every data endpoint and action needs it as
   * `Authorization: Bearer <token>`; the page takes it from the URL fragment
   * (`#token=…`, never sent to the server) or asks for it. Required when
   * `host` is not loopback, and when `actions` is true.
   */
  token?: string;
  /** Serve POST endpoints to terminate and restart children. Default false. */
  actions?: boolean;
  /** Extra host names the `Host` header may carry (e.g. a DNS name behind which a non-loopback bind is reached). */
  allowedHosts?: string[];
  /** Execution records kept per supervisor in the view. Default 20. */
  records?: number;
  /** ms to gather changes into one update. Default 25. */
  coalesce?: number;
  /** ms between SSE keep-alive comments (and a refresh of time-dependent figures such as intensity); a client still stuck since the previous one is dropped. Default 10000. */
  heartbeat?: number;
  /** Bytes a client's socket may hold unsent before the client is dropped. Default 4 MiB. */
  maxBuffered?: number;
  /** Live `/events` clients at once; one more is answered 503. Default 16. */
  maxClients?: number;
  /** Open HTTP connections at once (Node's `server.maxConnections`); more are refused at accept. Default 64. */
  maxConnections?: number;
}

/**
 * A running observer: its URL and how to stop it (`close()` or `await using`).
 *
 * @example
 * ```ts
 * await using view = await observe(app);
 * console.log(view.url);
 * ```
 */
export interface Observer extends AsyncDisposable {
  /** `http://host:port/`. */
  readonly url: string;
  /** Stop serving: every SSE stream ended, every connection closed, nothing left behind. Idempotent. */
  close(): Promise<void>;
}

interface Client {
  res: ServerResponse;
  /** Changes were skipped while its socket was full: it gets a fresh snapshot when it drains. */
  missed: boolean;
  /** Its socket was still full at the previous heartbeat. */
  stuck: boolean;
}

/** Above this many unsent bytes a client is "behind": changes are skipped for it (and summed up by a snapshot once it drains). */
const BEHIND = 256 * 1024;

/** ms between two flushes while changes keep coming. */
const MIN_FLUSH_GAP = 50;

const BODY_LIMIT = 4096;

/**
 * Serve a live view of one or more supervision trees (any Supervisor,
 * DynamicSupervisor or TaskSupervisor, nested children included) over HTTP:
 * `GET /` the page, `/snapshot.json`, `/tree.txt`, `/events` (SSE), and with
 * `actions: true`, `POST /actions/terminate` and `/actions/restart`. See
 * docs/observer.md.
 *
 * @throws {ObserverError} `invalid-argument`, `token-required` (non-loopback host or actions without a token), `listen-failed`.
 * @example
 * ```ts
 * import { observe } from "backplane/observer";
 * const view = await observe(app);
 * console.log(`observer: ${view.url}`);
 * …
 * await view.close();
 * ```
 */
export async function observe(root: Observable | readonly Observable[], options: ObserveOptions = {}): Promise<Observer> {
  const roots = Array.isArray(root) ? [...(root as readonly Observable[])] : [root as Observable];
  const config = checkOptions(roots, options);
  const hub = new Hub(roots, config);
  // Header and request timeouts are only enforced as often as this interval says (Node's default: 30 s).
  const server = createServer({ connectionsCheckingInterval: 1_000 }, (req, res) => hub.handle(req, res));
  server.maxConnections = config.maxConnections;
  // Bad bytes on a connection end that connection, never the process.
  server.on("clientError", (_error, socket) => socket.destroy());
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  const port = await new Promise<number>((resolve, reject) => {
    const failed = (error: Error) => reject(new ObserverError("listen-failed", `could not listen on ${config.host}:${config.port}: ${error.message}`, error));
    server.once("error", failed);
    server.listen(config.port, config.host, () => {
      server.off("error", failed);
      const address = server.address();
      resolve(typeof address === "object" && address !== null ? address.port : config.port);
    });
  });
  // A server error after listening (rare: EMFILE on accept) must not become an uncaught 'error'.
  server.on("error", () => {});
  hub.bound(port);
  const url = `http://${isIP(config.host) === 6 ? `[${config.host}]` : config.host}:${port}/`;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= hub.closeAll(server);
    return closing;
  };
  return { url, close, [Symbol.asyncDispose]: close };
}

interface Config {
  host: string;
  port: number;
  token: string | undefined;
  actions: boolean;
  allowedHosts: string[];
  records: number;
  coalesce: number;
  heartbeat: number;
  maxBuffered: number;
  maxClients: number;
  maxConnections: number;
}

function checkOptions(roots: Observable[], options: ObserveOptions): Config {
  if (typeof options !== "object" || options === null) throw bad(`options must be an object, not ${describeValue(options)}`);
  if (roots.length === 0) throw bad("observe() needs at least one supervisor");
  for (const r of roots) {
    if (!(r instanceof Supervisor) && !(r instanceof TaskSupervisor)) throw bad(`observe() watches a Supervisor, DynamicSupervisor or TaskSupervisor, not ${describeValue(r)}`);
  }
  const { host = "127.0.0.1", port = 0, token, actions = false, allowedHosts = [], records = 20, coalesce = 25, heartbeat = 10_000, maxBuffered = 4 * 1024 * 1024, maxClients = 16, maxConnections = 64 } = options;
  if (!Number.isInteger(maxClients) || maxClients < 1) throw bad(`maxClients must be an integer ≥ 1, not ${describeValue(maxClients)}`);
  if (!Number.isInteger(maxConnections) || maxConnections < 1) throw bad(`maxConnections must be an integer ≥ 1, not ${describeValue(maxConnections)}`);
  if (typeof host !== "string" || host === "") throw bad(`host must be a non-empty string, not ${describeValue(host)}`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw bad(`port must be an integer from 0 to 65535, not ${describeValue(port)}`);
  if (token !== undefined && (typeof token !== "string" || token === "")) throw bad("token must be a non-empty string");
  if (typeof actions !== "boolean") throw bad(`actions must be true or false, not ${describeValue(actions)}`);
  if (!Array.isArray(allowedHosts) || !allowedHosts.every((h) => typeof h === "string")) throw bad("allowedHosts must be an array of host names");
  if (!Number.isInteger(records) || records < 0) throw bad(`records must be an integer ≥ 0, not ${describeValue(records)}`);
  const badTime = durationProblem("coalesce", coalesce) ?? durationProblem("heartbeat", heartbeat);
  if (badTime !== undefined) throw bad(badTime);
  if (coalesce === Number.POSITIVE_INFINITY) throw bad("coalesce must be finite: changes would never be sent");
  // Each heartbeat re-reads the whole tree: faster than this would cost the observed app more than the view is worth.
  if (heartbeat < 10) throw bad(`heartbeat must be at least 10 ms, not ${describeValue(heartbeat)}`);
  if (typeof maxBuffered !== "number" || !(maxBuffered > 0)) throw bad(`maxBuffered must be a number of bytes > 0, not ${describeValue(maxBuffered)}`);
  if (token === undefined && !isLoopback(host)) {
    throw new ObserverError("token-required", `host ${host} is reachable from other machines: pass a token (observe(root, { host, token }))`);
  }
  if (token === undefined && actions) throw new ObserverError("token-required", "actions: true needs a token, so that only who holds it can terminate or restart children");
  return { host, port, token, actions, allowedHosts: allowedHosts.map((h) => h.toLowerCase()), records, coalesce, heartbeat, maxBuffered, maxClients, maxConnections };
}

function bad(message: string): ObserverError {
  return new ObserverError("invalid-argument", message);
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The clients, the model and the one diagnostics-channel subscription, alive only while a client is. */
class Hub {
  readonly #config: Config;
  readonly #model: TreeModel;
  readonly #clients = new Set<Client>();
  readonly #page: string;
  readonly #csp: string;
  #tokenDigest: Buffer | undefined;
  /** Host headers accepted (lower case, with the port). */
  #hosts = new Set<string>();
  #anyIpHost = false;
  #port = 0;
  #flushTimer: AnyTimer;
  #heartbeatTimer: AnyTimer;
  #lastFlushCost = 0;
  #lastFlushEnd = 0;
  #closed = false;
  #seq = 0;

  constructor(roots: Observable[], config: Config) {
    this.#config = config;
    this.#model = new TreeModel(roots, config.records);
    if (config.token !== undefined) this.#tokenDigest = digest(config.token);
    const page = pageHtml();
    this.#page = page.html;
    this.#csp = `default-src 'none'; script-src 'sha256-${page.scriptHash}'; style-src 'sha256-${page.styleHash}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
  }

  bound(port: number): void {
    this.#port = port;
    const names = new Set<string>([this.#config.host.toLowerCase(), ...this.#config.allowedHosts]);
    if (isLoopback(this.#config.host)) {
      names.add("localhost");
      names.add("127.0.0.1");
      names.add("[::1]");
    }
    if (isIP(this.#config.host) === 6) names.add(`[${this.#config.host.toLowerCase()}]`);
    // Bound to every interface: any address of this machine is the bound one; names only when listed.
    this.#anyIpHost = this.#config.host === "0.0.0.0" || this.#config.host === "::";
    if (this.#anyIpHost) names.add(osHostname().toLowerCase());
    for (const n of names) this.#hosts.add(`${n}:${port}`);
  }

  // ------------------------------------------------------------ requests

  handle(req: IncomingMessage, res: ServerResponse): void {
    try {
      req.on("error", () => res.destroy());
      res.on("error", () => {});
      this.#route(req, res);
    } catch {
      // Our bug or a broken socket: answer if still possible, never throw into the app.
      try {
        if (!res.headersSent) send(res, 500, "text/plain", "internal error\n");
        else res.destroy();
      } catch {
        res.destroy();
      }
    }
  }

  #route(req: IncomingMessage, res: ServerResponse): void {
    if (this.#closed) return send(res, 503, "text/plain", "closing\n");
    if (!this.#hostAllowed(req.headers.host)) return send(res, 403, "text/plain", "host not allowed\n");
    const path = pathOf(req.url);
    const method = req.method ?? "GET";
    if (path === "/actions/terminate" || path === "/actions/restart") {
      if (method !== "POST") return send(res, 405, "text/plain", "use POST\n", { Allow: "POST" });
      return this.#action(req, res, path === "/actions/terminate" ? "terminate" : "restart");
    }
    if (method !== "GET" && method !== "HEAD") return send(res, 405, "text/plain", "use GET\n", { Allow: "GET, HEAD" });
    switch (path) {
      case "/":
      case "/index.html":
        return send(res, 200, "text/html; charset=utf-8", this.#page, { "Content-Security-Policy": this.#csp });
      case "/favicon.ico":
        return send(res, 204, "text/plain", "");
      case "/snapshot.json":
        if (!this.#authorized(req)) return unauthorized(res);
        this.#model.collect();
        send(res, 200, "application/json", `${JSON.stringify(this.#hello(), null, 2)}\n`);
        if (this.#clients.size === 0) this.#model.reset(); // hold nothing while nobody watches
        return;
      case "/tree.txt":
        if (!this.#authorized(req)) return unauthorized(res);
        return send(res, 200, "text/plain; charset=utf-8", `${this.#model.roots().map((r) => dumpTree(r)).join("\n\n")}\n`);
      case "/events":
        if (!this.#authorized(req)) return unauthorized(res);
        if (method === "HEAD") return send(res, 200, "text/event-stream; charset=utf-8", ""); // no stream to hold open for a HEAD
        return this.#connect(req, res);
      default:
        return send(res, 404, "text/plain", "not found\n");
    }
  }

  #hostAllowed(host: string | undefined): boolean {
    if (host === undefined) return false;
    const h = host.toLowerCase();
    if (this.#hosts.has(h)) return true;
    if (!this.#anyIpHost) return false;
    // Bound to every interface: an IP literal with our port is one of ours (a rebinding attack always carries a name).
    const m = /^(\[[0-9a-f:.]+\]|[0-9.]+):(\d+)$/.exec(h);
    return m !== null && Number(m[2]) === this.#port && isIP((m[1] ?? "").replace(/^\[|\]$/g, "")) !== 0;
  }

  #authorized(req: IncomingMessage): boolean {
    if (this.#tokenDigest === undefined) return true;
    const header = req.headers.authorization;
    if (typeof header !== "string" || !header.startsWith("Bearer ")) return false;
    return timingSafeEqual(digest(header.slice(7).trim()), this.#tokenDigest);
  }

  #sameOrigin(req: IncomingMessage): boolean {
    const site = req.headers["sec-fetch-site"];
    if (site !== undefined && site !== "same-origin") return false;
    const origin = req.headers.origin;
    return typeof origin === "string" && origin.toLowerCase() === `http://${(req.headers.host ?? "").toLowerCase()}`;
  }

  #action(req: IncomingMessage, res: ServerResponse, what: "terminate" | "restart"): void {
    if (!this.#config.actions) return send(res, 403, "text/plain", "actions are off (observe(root, { actions: true, token }))\n");
    if (!this.#authorized(req)) return send(res, 403, "text/plain", "a valid token is needed (Authorization: Bearer …)\n");
    if (!this.#sameOrigin(req)) return send(res, 403, "text/plain", "actions are taken only from the observer's own page (same origin)\n");
    if (!(req.headers["content-type"] ?? "").startsWith("application/json")) return send(res, 415, "text/plain", "send JSON: { \"path\": \"…\" }\n");
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > BODY_LIMIT) {
        send(res, 413, "text/plain", "body too large\n");
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      // A request that goes wrong answers 500; it never throws into the observed app.
      try {
        this.#act(res, what, size, chunks);
      } catch {
        if (!res.headersSent) send(res, 500, "text/plain", "the action failed\n");
      }
    });
  }

  #act(res: ServerResponse, what: "terminate" | "restart", size: number, chunks: Buffer[]): void {
    if (size > BODY_LIMIT) return;
    let path: unknown;
    try {
      path = (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { path?: unknown }).path;
    } catch {
      return send(res, 400, "text/plain", "body is not JSON\n");
    }
    if (typeof path !== "string") return send(res, 400, "text/plain", 'send { "path": "<node path>" }\n');
    let target: ReturnType<TreeModel["locate"]>;
    try {
      target = this.#model.locate(path);
    } finally {
      if (this.#clients.size === 0) this.#model.reset();
    }
    if (target === undefined || !(target.parent instanceof Supervisor)) return send(res, 404, "text/plain", "no such child of a supervisor\n");
    const { parent, id } = target;
    // "restart" is what an operator means by it: a running child is terminated first (OTP's restart_child alone refuses a running one).
    const running = parent.whichChildren().find((c) => c.id === id)?.status === "running";
    const done = what === "terminate" ? parent.terminateChild(id) : running ? parent.terminateChild(id).then(() => parent.restartChild(id)) : parent.restartChild(id);
    done.then(
      () => send(res, 200, "application/json", `${JSON.stringify({ ok: true, action: what, path })}\n`),
      (error: unknown) => {
        const code = error instanceof BackplaneError ? error.code : "failed";
        send(res, 409, "application/json", `${JSON.stringify({ ok: false, code, message: errorText(error) })}\n`);
      },
    );
  }

  // ------------------------------------------------------------ SSE

  #connect(req: IncomingMessage, res: ServerResponse): void {
    if (this.#clients.size >= this.#config.maxClients) return send(res, 503, "text/plain", "too many observers connected\n");
    try {
      this.#open(req, res);
    } catch {
      // The first picture could not be made: leave nothing subscribed behind, answer the one client.
      for (const client of this.#clients) if (client.res === res) this.#drop(client, true);
      if (this.#clients.size === 0) this.#detach();
      if (!res.headersSent) send(res, 500, "text/plain", "the view could not be built\n");
      else res.destroy();
    }
  }

  #open(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store", Connection: "keep-alive", "X-Accel-Buffering": "no", "X-Content-Type-Options": "nosniff" });
    const client: Client = { res, missed: false, stuck: false };
    const first = this.#clients.size === 0;
    if (first) this.#attach();
    else this.#flushNow(); // bring the others up to date, so the new one starts from the same picture
    this.#clients.add(client);
    if (first) this.#model.diff(); // the model's "sent" state is now what this client gets
    this.#write(client, this.#snapshotMessage());
    const gone = () => this.#drop(client);
    req.on("close", gone);
    res.on("close", gone);
    res.on("drain", () => {
      if (!client.missed || !this.#clients.has(client)) return;
      // Bring the others (and the model's sent picture) up to date first, so later patches are relative to what this client gets.
      this.#flushNow();
      client.missed = false;
      client.stuck = false;
      this.#write(client, this.#snapshotMessage());
    });
  }

  #snapshotMessage(): string {
    return `event: snapshot\nid: ${++this.#seq}\ndata: ${JSON.stringify(this.#hello())}\n\n`;
  }

  #hello(): { at: number; roots: string[]; actions: boolean; nodes: ReturnType<TreeModel["all"]> } {
    return { at: Date.now(), roots: this.#model.rootPaths, actions: this.#config.actions, nodes: this.#model.all() };
  }

  #write(client: Client, message: string): void {
    const res = client.res;
    const queued = res.writableLength;
    if (queued > Math.min(BEHIND, this.#config.maxBuffered)) {
      client.missed = true; // summed up by a snapshot when it drains
      return;
    }
    // Never more than maxBuffered unsent (one message may exceed it on an empty socket: a big tree's first snapshot).
    if (queued > 0 && queued + message.length > this.#config.maxBuffered) return this.#drop(client, true);
    res.write(message);
  }

  #drop(client: Client, destroy = false): void {
    if (!this.#clients.delete(client)) return;
    if (destroy) client.res.destroy();
    else if (!client.res.writableEnded) client.res.end();
    if (this.#clients.size === 0) this.#detach();
  }

  #attach(): void {
    subscribe(CHANGES_CHANNEL, this.#onEvent);
    this.#model.collect();
    this.#heartbeatTimer = setAnyTimeout(this.#beat, this.#config.heartbeat);
  }

  #detach(): void {
    unsubscribe(CHANGES_CHANNEL, this.#onEvent);
    clearAnyTimeout(this.#flushTimer);
    clearAnyTimeout(this.#heartbeatTimer);
    this.#flushTimer = undefined;
    this.#heartbeatTimer = undefined;
    this.#model.reset();
  }

  // A channel subscriber that throws becomes an uncaught exception in the observed app: this one never throws.
  readonly #onEvent = (message: unknown): void => {
    try {
      this.#noteChange(message as object);
    } catch {
      // A model that cannot take this event is rebuilt from scratch at the next heartbeat.
    }
  };

  // Only *that* a watched supervisor changed: on the payload-free change channel, no emitter builds an event for us.
  #noteChange(source: object): void {
    if (!this.#model.sources.has(source)) return;
    if (this.#flushTimer !== undefined) return;
    // The first change after a quiet spell goes out after `coalesce`; while changes keep coming, flushes are at
    // least 50 ms apart (twenty updates a second is more than a person can follow) and 19× their own cost (≤ ~5% of the process).
    const spaced = this.#lastFlushEnd + Math.max(MIN_FLUSH_GAP, 19 * this.#lastFlushCost) - performance.now();
    this.#flushTimer = setAnyTimeout(this.#flush, Math.max(this.#config.coalesce, spaced));
  }

  readonly #flush = (): void => {
    this.#flushTimer = undefined;
    this.#safely(false);
  };

  /** A flush from a timer: whatever goes wrong stays in the observer (clients get a fresh picture next time), never the app's. */
  #safely(full: boolean): void {
    try {
      this.#flushNow(full);
    } catch {
      // Nothing to undo: the next heartbeat walks the whole tree again and sends what changed.
    }
  }

  /** Send what changed to every client. `full` also re-reads mailbox lengths (they change without events). */
  #flushNow(full = false): void {
    if (this.#clients.size === 0) return;
    const t0 = performance.now();
    let patch: Patch;
    try {
      patch = this.#model.diff(full);
    } catch {
      return; // a tree mid-change that cannot be walked: the next event tries again
    }
    if (patch.changed.length > 0 || patch.removed.length > 0) {
      const head = JSON.stringify({ at: Date.now(), roots: this.#model.rootPaths, removed: patch.removed });
      const message = `event: patch\nid: ${++this.#seq}\ndata: ${head.slice(0, -1)},"changed":[${patch.changedJson.join(",")}]}\n\n`;
      for (const client of this.#clients) this.#write(client, message);
    }
    this.#lastFlushEnd = performance.now();
    this.#lastFlushCost = this.#lastFlushEnd - t0;
  }

  readonly #beat = (): void => {
    this.#heartbeatTimer = undefined;
    for (const client of [...this.#clients]) {
      if (client.res.writableLength > Math.min(BEHIND, this.#config.maxBuffered)) {
        // Still full since the previous heartbeat: it is not reading. Drop it rather than hold its backlog.
        if (client.stuck) this.#drop(client, true);
        else client.stuck = true;
      } else {
        client.stuck = false;
        client.res.write(": ping\n\n");
      }
    }
    if (this.#clients.size === 0) return;
    this.#heartbeatTimer = setAnyTimeout(this.#beat, this.#config.heartbeat);
    this.#safely(true); // figures that move without events: intensity inside its window, mailbox lengths
  };

  async closeAll(server: HttpServer): Promise<void> {
    this.#closed = true;
    for (const client of [...this.#clients]) this.#drop(client);
    this.#detach();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }
}

// ------------------------------------------------------------ helpers

function digest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

function pathOf(url: string | undefined): string {
  const raw = url ?? "/";
  const q = raw.indexOf("?");
  return q < 0 ? raw : raw.slice(0, q);
}

function send(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    "Content-Type": type,
    "Content-Length": Buffer.byteLength(body),
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    ...headers,
  });
  res.end(res.req?.method === "HEAD" ? undefined : body);
}

function unauthorized(res: ServerResponse): void {
  send(res, 401, "text/plain", "a token is needed: Authorization: Bearer <token>\n", { "WWW-Authenticate": 'Bearer realm="backplane observer"' });
}
