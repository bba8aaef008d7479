/**
 * A cluster node: one NATS connection, a failure detector, cluster-wide
 * names, links across nodes, calls and a spawner for remote children.
 *
 * Three planes, each with the guarantee it needs:
 * - heartbeats and down notices: NATS core pub/sub, lossy on purpose — a
 *   missed heartbeat is what the detector measures;
 * - the control plane (links, endings, shutdowns; control-plane.ts): one
 *   ordered channel per pair of node incarnations, every batch acknowledged
 *   and retried until acknowledged or the peer is declared down, applied
 *   once (sequence numbers), so a server blip shorter than the detection
 *   bound loses nothing;
 * - calls and casts: NATS request/reply (no-responders fails fast), casts
 *   at most once and counted when lost.
 * The node's own name is a claim renewed as a lease (node-claim.ts); on a
 * cluster of NATS servers fencing and the take-over of a lost node's names
 * go by it.
 */
import { connect, type KV, type Msg, type NatsConnection, type Subscription } from "nats";
import { Device } from "../core/device.js";
import type { DeviceId } from "../core/device-id.js";
import { Emitter } from "../core/emitter.js";
import type { Fault } from "../core/fault.js";
import type { Message } from "../core/message.js";
import { deliver, disconnect, isClosed, link, Plugboard, type RunSink, unlink } from "../core/plugboard.js";
import { type AnyTimer, clearAnyTimeout, describeValue, durationProblem, MAX_TIMER_MS, setAnyTimeout } from "../core/timer.js";
import { errorText } from "../core/describe.js";
import { CallError } from "../calls/call-error.js";
import { serve, type Server } from "../calls/server.js";
import { ClusterError, type ClusterErrorCode } from "./cluster-error.js";
import { type Channel, type ControlHost, ControlPlane, type Op } from "./control-plane.js";
import { NameDeletions } from "./name-deletions.js";
import { type ClaimHost, NodeClaim } from "./node-claim.js";
import { type ProxyRef, RemoteLine } from "./remote-line.js";
import { decodeJson, decodeValue, encodeJson, encodeValue, faultFromWire, faultToWire, type WireFault } from "./wire.js";

/** A node as the cluster knows it: a name, and the incarnation that tells restarts apart. */
export interface NodeId {
  readonly name: string;
  readonly incarnation: string;
}

/** Options of {@link connectNode}. */
export interface NodeOptions {
  /** NATS server URL(s). */
  servers: string | string[];
  /** This node's name: unique among live nodes of the cluster (`[A-Za-z0-9_-]+`). */
  name: string;
  /** Several clusters can share one NATS: each has its own subjects and name bucket. Default `"backplane"`. */
  cluster?: string;
  /** ms between heartbeats. Default 1000. */
  heartbeatMs?: number;
  /** Heartbeats a peer may miss before it is declared down. Default 5. */
  missedHeartbeats?: number;
  /** Replicas of the name bucket (3 on a three-server cluster). Default 1. */
  replicas?: number;
  /** ms to wait for the first connection. Default 10 000. */
  connectTimeoutMs?: number;
  /**
   * On a cluster of NATS servers only: how long a node may go without a
   * confirmed lease renewal before it fences whatever else it hears, and how
   * long after declaring a node down the others wait before they take its
   * names over. Must outlast a JetStream leader election (4–9 s on
   * nats-server 2.9, plus a heartbeat either side). Default the larger of
   * 15 000 and `heartbeatMs × missedHeartbeats`.
   */
  leaseMs?: number;
}

/**
 * Why a node was declared down: `heartbeat` (silent for the bound), `down-notice`
 * (another node declared it down), `restarted` (a new incarnation of its name
 * appeared), `left` (it closed), `fenced` (this node was cut off: it gave up on every peer).
 */
export type DownReason = "heartbeat" | "down-notice" | "restarted" | "left" | "fenced";

/** Events of a {@link ClusterNode}. */
export interface NodeEvents {
  /** A node was heard for the first time (or again, under a new incarnation). */
  "node-up": [node: NodeId];
  /** A node was lost: every link to its devices has fired `noconnection`. */
  "node-down": [event: { node: NodeId; reason: DownReason }];
  /** This node lost the cluster for longer than the bound and rejoined under a new incarnation. */
  fenced: [event: { previous: NodeId; current: NodeId }];
  /**
   * The node closed: `error` is undefined after `close()`, and a `name-taken`
   * ClusterError when it closed itself because, while it was cut off, another
   * live node took its name.
   */
  closed: [event: { error: ClusterError | undefined }];
}

/** Options of one remote call. */
export interface RemoteCallOptions {
  /** ms before the call rejects with `timeout`. Default: none (a lost node still fails it within the detection bound). */
  timeout?: number;
}

/** Options of {@link ClusterNode.serve}. */
export interface RemoteServeOptions {
  /** The cluster-wide name callers address. */
  name: string;
  /** Requests handled at once. Default 1. */
  concurrency?: number;
  /** As for the local `serve`: the signal of whoever runs the device (a supervised child's `ctx.signal`). */
  signal?: AbortSignal;
}

/** What a node spawner runs for a remote child: its life, under `device.manage` on the spawning node. */
export type SpawnFunction = (args: unknown, signal: AbortSignal) => unknown;

/** Counters of what the node could not deliver. */
export interface NodeStats {
  castsSent: number;
  /** Casts that reached no server (no responders). */
  castsUndelivered: number;
  /** Casts a server here saw missing from a caller's sequence, or could not take (server ended, caller fenced). */
  castsLost: number;
  /** Control batches sent again after a timeout or a failed send. */
  controlRetries: number;
}

const DEFAULT_HEARTBEAT_MS = 1000;
const DEFAULT_MISSED = 5;
const TOKEN = /^[A-Za-z0-9_-]+$/;
const NAME = /^[A-Za-z0-9_=/-]+(\.[A-Za-z0-9_=/-]+)*$/;
const OK = new TextEncoder().encode("ok");
const REFUSED = new TextEncoder().encode("refused");
const DECODER = new TextDecoder();
/** Endings remembered for devices whose id left this node, so a late monitor still hears the real one. */
const ENDED_MEMORY = 65_536;

interface Peer {
  readonly key: string;
  readonly name: string;
  readonly inc: string;
  lastSeen: number;
  /** A heartbeat was heard (node-up emitted). */
  up: boolean;
  readonly proxies: Set<StandIn>;
  /** The ordered control channel from this node to the peer. */
  channel: Channel | undefined;
  /** Last sequence number applied from the peer's channel. */
  applied: number;
}

/** A name this node holds. */
interface Export {
  readonly board: Plugboard;
  readonly revision: number;
  /** The request subscription of a name given by serve(). */
  sub: Subscription | undefined;
}

interface PendingCall {
  readonly token: number;
  /** ms it may take (Infinity: no timer). */
  readonly timeout: number;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  timer: AnyTimer;
  /** The callee's node key, when known: its loss fails the call at once. */
  peer: string | undefined;
  /** The name called, for a callee learned only later (the name watcher lags by a round trip). */
  name: string | undefined;
  what: string;
  /** A spawn's parent device and target node. */
  spawnedFor?: { parent: DeviceId; on: string };
}

/** The local stand-in of a remote device (see remote-line.ts). */
class StandIn implements ProxyRef, RunSink {
  readonly board: Plugboard;
  readonly nodeName: string;
  readonly incarnation: string;
  readonly remoteId: DeviceId;
  /** Local devices whose notify link to this proxy has been forwarded. */
  readonly synced = new Set<DeviceId>();
  syncQueued = false;

  constructor(
    readonly node: ClusterNode,
    readonly peer: Peer,
    remoteId: DeviceId,
  ) {
    this.board = new Plugboard(`${peer.name}#${remoteId}`);
    this.nodeName = peer.name;
    this.incarnation = peer.inc;
    this.remoteId = remoteId;
    this.board.sink = this;
    // The hook: the core changes `watching` when a notify link towards this proxy is made or removed.
    let watching: Plugboard["watching"] = null;
    Object.defineProperty(this.board, "watching", {
      configurable: true,
      enumerable: true,
      get: () => watching,
      set: (value: Plugboard["watching"]) => {
        watching = value;
        node._touched(this);
      },
    });
  }

  /** A local device notify-linked to the proxy ended (the core delivered its ending here). */
  deliver(message: Message | undefined): void {
    this.board.sink = this;
    if (message === undefined || message.kind !== "disconnected") return;
    this.node._localEndedTowards(this, message.from, message.fault);
  }
}

/**
 * Join a cluster: connect to NATS, start heartbeats, open the name bucket.
 *
 * Failure detection: a peer is declared down after `heartbeatMs ×
 * missedHeartbeats` without a heartbeat, checked every `heartbeatMs / 4`,
 * so a crash, a hang or a cut is detected within `heartbeatMs ×
 * missedHeartbeats + heartbeatMs + 100 ms`. Defaults: 1000 ms × 5 (about 5 s,
 * as Akka's default; Erlang's `net_ticktime` takes 45–75 s).
 *
 * @throws {ClusterError} `invalid-argument` for bad options; `name-taken` when a live node of the cluster already has the name; the NATS error when it cannot connect.
 * @example
 * ```ts
 * const node = await connectNode({ servers: "nats://127.0.0.1:4222", name: "a" });
 * node.on("node-down", ({ node: lost }) => console.warn("lost", lost.name));
 * ```
 */
export async function connectNode(options: NodeOptions): Promise<ClusterNode> {
  if (typeof options !== "object" || options === null) throw new ClusterError("invalid-argument", "connectNode() takes an options object");
  const { servers, name, cluster = "backplane", heartbeatMs = DEFAULT_HEARTBEAT_MS, missedHeartbeats = DEFAULT_MISSED, replicas = 1, connectTimeoutMs = 10_000 } = options;
  const leaseMs = options.leaseMs ?? Math.max(15_000, heartbeatMs * missedHeartbeats);
  if (!(typeof servers === "string" || (Array.isArray(servers) && servers.length > 0 && servers.every((s) => typeof s === "string")))) {
    throw new ClusterError("invalid-argument", `servers must be a URL or a non-empty array of URLs, not ${describeValue(servers)}`);
  }
  // Capped so that every subject built from them stays far below the server's 4 KiB protocol line.
  if (typeof name !== "string" || !TOKEN.test(name) || name.length > 64) throw new ClusterError("invalid-argument", `name must match [A-Za-z0-9_-]+ (at most 64 characters), not ${describeValue(name)}`);
  if (typeof cluster !== "string" || !TOKEN.test(cluster) || cluster.length > 64) throw new ClusterError("invalid-argument", `cluster must match [A-Za-z0-9_-]+ (at most 64 characters), not ${describeValue(cluster)}`);
  const bad = durationProblem("heartbeatMs", heartbeatMs) ?? durationProblem("connectTimeoutMs", connectTimeoutMs);
  if (bad !== undefined) throw new ClusterError("invalid-argument", bad);
  if (!(heartbeatMs >= 10 && Number.isFinite(heartbeatMs))) throw new ClusterError("invalid-argument", `heartbeatMs must be a finite number ≥ 10, not ${describeValue(heartbeatMs)}`);
  if (!(Number.isInteger(missedHeartbeats) && missedHeartbeats >= 2)) throw new ClusterError("invalid-argument", `missedHeartbeats must be an integer ≥ 2, not ${describeValue(missedHeartbeats)}`);
  // The NATS client arms plain Node timers with these: past 2³¹ ms (or Infinity) they would fire at once.
  if (!(connectTimeoutMs > 0 && connectTimeoutMs <= MAX_TIMER_MS)) throw new ClusterError("invalid-argument", `connectTimeoutMs must be a number of ms from 1 to ${MAX_TIMER_MS}, not ${describeValue(connectTimeoutMs)}`);
  if (heartbeatMs * missedHeartbeats > MAX_TIMER_MS) throw new ClusterError("invalid-argument", `heartbeatMs × missedHeartbeats must stay under ${MAX_TIMER_MS} ms`);
  if (!(Number.isInteger(replicas) && replicas >= 1)) throw new ClusterError("invalid-argument", `replicas must be an integer ≥ 1, not ${describeValue(replicas)}`);
  if (!(typeof leaseMs === "number" && Number.isFinite(leaseMs) && leaseMs >= heartbeatMs * missedHeartbeats && leaseMs <= MAX_TIMER_MS)) {
    throw new ClusterError("invalid-argument", `leaseMs must be a number of ms from heartbeatMs × missedHeartbeats (${heartbeatMs * missedHeartbeats}) to ${MAX_TIMER_MS}, not ${describeValue(leaseMs)}`);
  }

  const downAfter = heartbeatMs * missedHeartbeats;
  const nc = await connect({
    servers,
    name: `${cluster}:${name}`,
    // The client's defaults give up after 10 attempts and ping every 2 minutes: a node must never give up,
    // and must notice a dead connection about as fast as its peers notice it.
    maxReconnectAttempts: -1,
    reconnectTimeWait: Math.min(250, heartbeatMs),
    reconnectJitter: Math.min(50, heartbeatMs / 4),
    pingInterval: Math.max(50, Math.floor(downAfter / 2)),
    maxPingOut: 2,
    timeout: connectTimeoutMs,
  });
  let node: ClusterNode | undefined;
  try {
    const js = nc.jetstream();
    // Reads that a compare-and-set relies on go to the stream leader (allow_direct off): on nats-server 2.9 a replica
    // can serve a deposed leader's uncommitted write after a split heals, and a compare-and-set on that revision then
    // overwrites a newer holder. lookup() reads any replica, so names still resolve while a new leader is elected.
    // (This order: the first open creates the bucket, with direct reads allowed; the second only opts out of them.)
    const names = await openBucket(() => js.views.kv(`bp_${cluster}_names`, { history: 1, replicas }));
    const kv = await openBucket(() => js.views.kv(`bp_${cluster}_names`, { history: 1, replicas, allow_direct: false }));
    // One entry per node name: who holds it (create-if-absent, so two nodes starting at once cannot both have it),
    // renewed every heartbeat as a lease that needs the bucket's quorum. A renewal that cannot finish within two
    // heartbeats (at least a second) is given up and tried again: the timeout is the JetStream context's (the
    // bucket's own `timeout` option does not reach its reads and writes in nats 2.x).
    const claimsJs = nc.jetstream({ timeout: Math.max(1_000, heartbeatMs * 2) });
    const claims = await openBucket(() => claimsJs.views.kv(`bp_${cluster}_nodes`, { history: 1, replicas, allow_direct: false }));
    node = new ClusterNode(nc, kv, names, claims, name, cluster, heartbeatMs, missedHeartbeats, leaseMs);
    await node._start();
    if (replicas === 1 && nc.info?.cluster !== undefined) {
      // One copy of each bucket: losing the server that holds it stalls every lease, and every node fences.
      process.emitWarning(
        `backplane cluster: node ${name} joined a NATS cluster with replicas 1: the loss of the server holding the buckets fences every node (use replicas: 3)`,
        { type: "BackplaneClusterWarning" },
      );
    }
    return node;
  } catch (error) {
    // A node that got as far as its watcher and timers is closed whole, so no retry loop outlives the failure.
    if (node !== undefined) await node.close().catch(() => {});
    await nc.close().catch(() => {});
    throw error;
  }
}

/**
 * Open (or create) a bucket. Nodes that start at once race to create it, and
 * the server refuses all but one ("subjects overlap with an existing
 * stream"); the others find it made when they look again.
 */
async function openBucket(open: () => Promise<KV>): Promise<KV> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await open();
    } catch (error) {
      if (attempt >= 3) throw new ClusterError("remote-error", `could not open the cluster's buckets (is JetStream enabled, with room for the replicas asked for?): ${String(error)}`, { cause: error });
    }
  }
}

/** A new incarnation token: time-ordered, random tail, a valid subject token. */
function newIncarnation(): string {
  return `${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 4)
    .toString(36)
    .padStart(4, "0")}`;
}

/**
 * A member of a cluster. Made by {@link connectNode}.
 *
 * @example
 * ```ts
 * const node = await connectNode({ servers, name: "b" });
 * const line = await node.serve(new Device(), (n: number) => n * 2, { name: "doubler" });
 * await otherNode.call("doubler", 21); // 42
 * ```
 */
// It is the LineHost of its RemoteLines (structurally: the interface is internal and stays out of the declarations).
export class ClusterNode extends Emitter<NodeEvents> {
  readonly #nc: NatsConnection;
  /** The name bucket, read through its stream leader (for compare-and-set). */
  readonly #kv: KV;
  /** The same bucket, read from any replica (lookups stay available during a leader election). */
  readonly #lookups: KV;
  /** This node's claim on its name, renewed as a lease (see node-claim.ts). */
  readonly #claim: NodeClaim;
  readonly #cluster: string;
  readonly #name: string;
  #inc: string;
  #key: string;
  readonly heartbeatMs: number;
  readonly missedHeartbeats: number;
  /** No heartbeat for this long: the peer is down. */
  readonly #downAfter: number;
  /** No echo of our own heartbeat for this long: we are cut off, fence. Shorter than #downAfter, so we stop before peers take over. */
  readonly #fenceAfter: number;
  #status: "up" | "closing" | "closed" = "up";

  readonly #peers = new Map<string, Peer>();
  readonly #tombstones = new Set<string>();
  /**
   * Node incarnations whose names may be taken over: down, and (on a NATS
   * cluster) their lease seen to lapse — a node cut off from us may still be
   * running, and it stops by then (see #checkFence).
   */
  readonly #lapsed = new Set<string>();
  /** When this node declared each peer incarnation down (recent ones; see #hearsMajority and #fence). */
  readonly #declaredAt = new Map<string, number>();
  /** See NodeOptions.leaseMs. */
  readonly #leaseMs: number;
  /** Name deletions waiting for the bucket's answer, by token. */
  readonly #deletions: NameDeletions;
  /** Where this incarnation's deletion answers come back (plus a token). */
  #deletePrefix = "";
  /** Waits that close() ends early. */
  readonly #sleeps = new Set<{ timer: AnyTimer; resolve: () => void }>();
  readonly #proxies = new Map<string, StandIn>();
  /** Local devices whose id left this node, and the peers that want their ending. */
  readonly #tracked = new Map<DeviceId, { board: Plugboard; interested: Set<string> | null }>();
  readonly #ended = new Map<DeviceId, Fault | undefined>();
  /** Hears every tracked device's ending. */
  readonly #agent: Plugboard;

  /** Names this node holds: name → its bucket revision and device. */
  readonly #exports = new Map<string, Export>();
  /** The names each exported device holds (usually one). */
  readonly #exportsOf = new Map<DeviceId, string[]>();
  /** Every name in the bucket, as last seen by the watcher: who holds it. */
  readonly #names = new Map<string, { key: string; dev: number; revision: number }>();
  readonly #spawners = new Map<string, SpawnFunction>();

  readonly #pending = new Map<number, PendingCall>();
  /** Spawns given up at their timeout, by token: the parent to name when stopping a child whose reply comes late. */
  readonly #abandoned = new Map<number, { parent: DeviceId; on: string }>();
  #token = 0;
  /** Per name cast to: its subject and this incarnation's sequence number. */
  readonly #castTargets = new Map<string, { subject: string; seq: number }>();
  #castPrefix = "";
  readonly #prefixLength: number;
  readonly #stats: NodeStats = { castsSent: 0, castsUndelivered: 0, castsLost: 0, controlRetries: 0 };

  /** Where this incarnation's control acknowledgements come back (plus a token). */
  #ackPrefix = "";
  /** When our own heartbeat last came back. */
  #lastEcho: number;
  /**
   * Since the last fence our heartbeat came back. Until it has, and the claim
   * names the new incarnation, we are isolated, and fencing again would only
   * burn incarnations.
   */
  #echoSinceFence = true;
  /** Why the node closed itself (its name was taken while it was cut off). */
  #closeError: ClusterError | undefined;
  #lastBeat = 0;
  #tick: AnyTimer = undefined;
  #subs: Subscription[] = [];
  #incSubs: Subscription[] = [];
  readonly #background: Promise<unknown>[] = [];
  #watcher: { stop(): void } | undefined = undefined;
  #statusIter: { stop(): void } | undefined = undefined;
  /** The wait before watching the bucket again; close() ends it early. */
  #watchRetry: { timer: AnyTimer; resolve: () => void } | undefined = undefined;

  /** @internal Use {@link connectNode}. */
  constructor(nc: NatsConnection, kv: KV, lookups: KV, claims: KV, name: string, cluster: string, heartbeatMs: number, missedHeartbeats: number, leaseMs: number) {
    super();
    this.#nc = nc;
    this.#kv = kv;
    this.#lookups = lookups;
    this.#claim = new NodeClaim(nc, claims, this.#claimHost, name, heartbeatMs * missedHeartbeats, heartbeatMs);
    this.#name = name;
    this.#cluster = cluster;
    this.#deletions = new NameDeletions(nc, `$KV.bp_${cluster}_names.`, () => this.#deletePrefix);
    this.heartbeatMs = heartbeatMs;
    this.missedHeartbeats = missedHeartbeats;
    this.#downAfter = heartbeatMs * missedHeartbeats;
    this.#fenceAfter = this.#downAfter - heartbeatMs / 2;
    this.#leaseMs = leaseMs;
    this.#prefixLength = `bp.${cluster}.`.length;
    this.#inc = newIncarnation();
    this.#key = `${name}.${this.#inc}`;
    // Messages can arrive while _start() still awaits: the fence clock starts now, not at 0.
    this.#lastEcho = performance.now();
    this.#agent = new Plugboard(`cluster:${name}`);
    this.#agent.sink = { deliver: (m) => this.#agentHeard(m) };
  }

  // ------------------------------------------------------------------ identity

  /**
   * This node's name and current incarnation (a new one after a fence).
   *
   * @example
   * ```ts
   * console.log(`${node.id.name}@${node.id.incarnation}`);
   * ```
   */
  get id(): NodeId {
    return { name: this.#name, incarnation: this.#inc };
  }

  /**
   * The nodes currently up, this one first.
   *
   * @example
   * ```ts
   * node.members().map((m) => m.name); // ["a", "b", "c"]
   * ```
   */
  members(): NodeId[] {
    const out: NodeId[] = [{ name: this.#name, incarnation: this.#inc }];
    for (const p of this.#peers.values()) if (p.up) out.push({ name: p.name, incarnation: p.inc });
    return out;
  }

  /**
   * What could not be delivered so far.
   *
   * @example
   * ```ts
   * const { castsUndelivered, castsLost } = node.stats();
   * ```
   */
  stats(): NodeStats {
    return { ...this.#stats };
  }

  /**
   * The detection bound: a lost peer is declared down within this many ms.
   *
   * @example
   * ```ts
   * node.detectionBoundMs; // 6100 with the defaults
   * ```
   */
  get detectionBoundMs(): number {
    return this.#downAfter + this.heartbeatMs + 100;
  }

  #subject(...parts: string[]): string {
    return `bp.${this.#cluster}.${parts.join(".")}`;
  }

  // ------------------------------------------------------------------ start, heartbeats, failure detection

  /** @internal */
  async _start(): Promise<void> {
    const nc = this.#nc;
    // The ping responder is live before the claim names this incarnation, so whoever reads the claim can ask it.
    this.#subscribeIncarnation();
    await nc.flush();
    await this.#claim.take(this.#key);
    this.#subs.push(nc.subscribe(this.#subject("hb"), { callback: (_e, m) => this.#onHeartbeat(m) }));
    this.#subs.push(nc.subscribe(this.#subject("down"), { callback: (_e, m) => this.#onDownNotice(m) }));
    this.#subs.push(nc.subscribe(this.#subject("spawn", this.#name), { callback: (_e, m) => this.#onSpawn(m) }));
    await this.#startWatcher();
    await nc.flush();
    this.#lastEcho = performance.now();
    this.#beat();
    this.#arm();
  }

  readonly #claimHost: ClaimHost = {
    pingSubject: (key) => this.#subject("ping", key),
    up: () => this.#status === "up",
    later: (p) => this.#later(p),
    lost: (error) => {
      this.#closeError = error;
      void this.close();
    },
    lapsed: (key) => {
      if (key === this.#key) this.#fence();
    },
  };

  /** Keep `p` in #background until it settles (close() waits for it). */
  #later(p: Promise<unknown>): void {
    const kept: Promise<unknown> = p
      .catch((error: unknown) => process.emitWarning(`backplane cluster: background work failed: ${errorText(error)}`, { type: "BackplaneClusterWarning" }))
      .finally(() => {
        const i = this.#background.indexOf(kept);
        if (i >= 0) this.#background.splice(i, 1);
      });
    this.#background.push(kept);
  }

  #subscribeIncarnation(): void {
    for (const s of this.#incSubs) s.unsubscribe();
    this.#claim.answerFor(this.#key);
    this.#castPrefix = `${this.#subject("c", this.#name, this.#inc)}.`;
    this.#ackPrefix = `${this.#subject("a", this.#name, this.#inc)}.`;
    this.#deletePrefix = `${this.#subject("k", this.#name, this.#inc)}.`;
    // Sequence numbers are per incarnation: a receiver keys them by the caller's incarnation.
    for (const t of this.#castTargets.values()) t.seq = 0;
    const nc = this.#nc;
    this.#incSubs = [
      nc.subscribe(this.#subject("ctl", this.#name, this.#inc), { callback: (_e, m) => this.#onControl(m) }),
      nc.subscribe(this.#subject("r", this.#name, this.#inc, "*"), { callback: (_e, m) => this.#onReply(m) }),
      nc.subscribe(this.#subject("c", this.#name, this.#inc, "*"), { callback: (_e, m) => this.#onCastBounce(m) }),
      nc.subscribe(this.#subject("k", this.#name, this.#inc, "*"), { callback: (_e, m) => this.#deletions.answered(Number(m.subject.slice(m.subject.lastIndexOf(".") + 1)), m) }),
      nc.subscribe(this.#subject("a", this.#name, this.#inc, "*"), { callback: (_e, m) => this.#control.onAck(Number(m.subject.slice(m.subject.lastIndexOf(".") + 1)), m) }),
    ];
  }

  /**
   * Follow the name bucket into #names. A watch ends when the server
   * restarts (nats 2.x), so it is made again, from a clean cache, for as
   * long as the node is up.
   */
  async #startWatcher(): Promise<void> {
    const first = await this.#kv.watch();
    this.#background.push(this.#followNames(first));
    // The watch's consumer does not survive a server restart and stalls without a word: after every reconnect it is made again.
    const status = this.#nc.status();
    // nats 2.x returns a queued iterator with stop(), typed only as AsyncIterable.
    this.#statusIter = status as unknown as { stop(): void };
    this.#background.push(
      (async () => {
        for await (const s of status) if (s.type === "reconnect" && this.#status === "up") this.#watcher?.stop();
      })().catch(() => {}),
    );
  }

  async #followNames(first: Awaited<ReturnType<KV["watch"]>>): Promise<void> {
    let iter: Awaited<ReturnType<KV["watch"]>> | undefined = first;
    while (this.#status === "up") {
      if (iter === undefined) {
        try {
          iter = await this.#kv.watch();
          if (this.#status !== "up") {
            iter.stop(); // close() came while this watch was being made: it stopped the old one only
            break;
          }
          this.#names.clear();
        } catch {
          // the server is still away: try again shortly
          await new Promise<void>((resolve) => {
            this.#watchRetry = { timer: setAnyTimeout(resolve, Math.min(250, this.heartbeatMs)), resolve };
          });
          this.#watchRetry = undefined;
          continue;
        }
      }
      const current = iter;
      this.#watcher = { stop: () => current.stop() };
      try {
        for await (const e of current) this.#nameChanged(e.key, e.operation, e.value, e.revision);
      } catch {
        // ended by a server restart or by close(): made again below while up
      }
      iter = undefined;
    }
  }

  #nameChanged(key: string, operation: string, value: Uint8Array, revision: number): void {
    if (operation !== "PUT") {
      this.#names.delete(key);
      return;
    }
    let v: { k: string; d: number };
    try {
      v = JSON.parse(DECODER.decode(value)) as { k: string; d: number };
    } catch {
      return; // not one of ours
    }
    this.#names.set(key, { key: v.k, dev: v.d, revision });
    // A name held by a node already known to be gone: the survivors delete it.
    if (this.#lapsed.has(v.k)) this.#deletions.delete(key, revision);
    // A holder never heard yet is watched like any peer: silent for the bound, it is down and its names go.
    else this.#peerOf(v.k);
  }

  #arm(): void {
    this.#tick = setAnyTimeout(this.#onTick, Math.max(5, this.heartbeatMs / 4));
  }

  readonly #onTick = (): void => {
    this.#tick = undefined;
    if (this.#status !== "up") return;
    if (!this.#checkFence()) {
      const now = performance.now();
      if (now - this.#lastBeat >= this.heartbeatMs * 0.9) this.#beat();
      this.#claim.renew(now, this.#key);
      for (const p of [...this.#peers.values()]) {
        if (now - p.lastSeen > this.#downAfter) this.#declareDown(p.key, "heartbeat");
      }
      this.#control.retransmit(now, Math.max(50, this.heartbeatMs));
      this.#deletions.resend(now, Math.max(50, this.heartbeatMs));
    }
    if (this.#status === "up") this.#arm();
  };

  #beat(): void {
    this.#lastBeat = performance.now();
    // `c`: the claim bucket names this incarnation. Peers count only such heartbeats (see #onHeartbeat).
    this.#publish(this.#subject("hb"), encodeJson(this.#claim.names(this.#key) ? { k: this.#key, c: 1 } : { k: this.#key }));
  }

  #publish(subject: string, data: Uint8Array, reply?: string): boolean {
    try {
      this.#nc.publish(subject, data, reply === undefined ? undefined : { reply });
      return true;
    } catch {
      // closed or draining: the caller decides what a lost message means
      return false;
    }
  }

  /**
   * Fence when our own heartbeat has not come back for longer than the fence
   * threshold, or — on a cluster of NATS servers — when no lease renewal sent
   * within it was confirmed: a node whose server is split from the bucket's
   * quorum still hears itself, but must stop before the majority takes its
   * names over. Every handler calls this first, so a node resuming from a
   * pause acts on nothing before it has fenced. True if it fenced.
   */
  #checkFence(): boolean {
    if (this.#status !== "up" || !this.#echoSinceFence || !this.#claim.names(this.#key)) return false;
    const now = performance.now();
    if (now - this.#lastEcho <= this.#fenceAfter) {
      if (!this.#clustered()) return false;
      const age = now - this.#claim.leaseAt;
      // Stale past the fence threshold: fence, unless this node still hears most of the others — then only once the
      // lease has lapsed, which is when the others start taking its names over (see #awaitLapse).
      if (age <= this.#fenceAfter || (age <= this.#leaseMs && this.#hearsMajority(now))) return false;
    }
    this.#fence();
    return true;
  }

  /** Connected to a server that is part of a NATS cluster (with a single server, hearing ourselves is reaching the bucket). */
  #clustered(): boolean {
    return this.#nc.info?.cluster !== undefined;
  }

  /**
   * This node hears more than half of the nodes it knows (itself included) —
   * heard: a heartbeat within the last two. A stale lease alone does not
   * fence such a node: every lease goes stale while JetStream elects a new
   * bucket leader (4–9 s on nats-server 2.9), and the nodes still hearing
   * each other then are not the ones cut off.
   */
  #hearsMajority(now: number): boolean {
    let known = 1;
    let heard = 1;
    for (const p of this.#peers.values()) {
      if (!p.up) continue;
      known++;
      if (now - p.lastSeen <= this.heartbeatMs * 2) heard++;
    }
    // Peers this node declared down since its lease went stale still count as known: a node cut off from the
    // bucket may declare the other side down before its own check runs, and must not then hear "a majority" of the
    // few it has left.
    const staleSince = this.#claim.leaseAt;
    for (const at of this.#declaredAt.values()) if (at > staleSince) known++;
    return heard * 2 > known;
  }

  #onHeartbeat(m: Msg): void {
    if (this.#checkFence() || this.#status !== "up") return;
    const beat = noticeOf(m);
    if (beat === undefined) return;
    const key = beat.k;
    if (key === this.#key) {
      this.#lastEcho = performance.now();
      this.#echoSinceFence = true;
      return;
    }
    if (this.#tombstones.has(key)) {
      // A node we declared down is still talking: tell it, so it fences.
      this.#publish(this.#subject("down"), encodeJson({ k: key }));
      return;
    }
    // Only an incarnation the claim bucket names counts. One not yet confirmed — a node rejoining after a fence —
    // may be the old holder of a name another node has taken meanwhile: taken for a restart, it would make the
    // rightful holder be declared down.
    if (beat.c !== 1) {
      // It still shows it is alive to a peer record made by its control traffic: it is not declared down for silence.
      const known = this.#peers.get(key);
      if (known !== undefined) known.lastSeen = performance.now();
      return;
    }
    const peer = this.#peerOf(key);
    if (peer === undefined) return;
    peer.lastSeen = performance.now();
    if (!peer.up) {
      peer.up = true;
      // A new incarnation of a name we knew: the old one is gone (restarted), whatever its heartbeats say.
      for (const other of [...this.#peers.values()]) if (other !== peer && other.name === peer.name) this.#declareDown(other.key, "restarted");
      this.emit("node-up", { name: peer.name, incarnation: peer.inc });
    }
  }

  #onDownNotice(m: Msg): void {
    if (this.#status !== "up") return;
    const notice = noticeOf(m);
    if (notice === undefined) return;
    const key = notice.k;
    if (key === this.#key) {
      this.#fence();
      return;
    }
    if (this.#checkFence()) return;
    // `l`: the node said it itself, leaving.
    this.#declareDown(key, notice.l === 1 ? "left" : "down-notice");
  }

  /** The peer record for a key, made on first contact; undefined for ourselves or a tombstone. */
  #peerOf(key: string): Peer | undefined {
    let peer = this.#peers.get(key);
    if (peer !== undefined) return peer;
    if (key === this.#key || this.#tombstones.has(key)) return undefined;
    const dot = key.indexOf(".");
    if (dot <= 0) return undefined;
    peer = { key, name: key.slice(0, dot), inc: key.slice(dot + 1), lastSeen: performance.now(), up: false, proxies: new Set(), channel: undefined, applied: 0 };
    this.#peers.set(key, peer);
    return peer;
  }

  /** The one place a peer incarnation is given up: its links fire noconnection, its calls fail, its names go. */
  #declareDown(key: string, reason: DownReason): void {
    if (this.#tombstones.has(key) || key === this.#key) return;
    this.#tombstones.add(key);
    this.#publish(this.#subject("down"), encodeJson({ k: key }));
    const peer = this.#peers.get(key);
    const name = nodeOf(key);
    if (peer !== undefined) {
      this.#peers.delete(key);
      this.#dropPeer(peer);
    }
    this.#failPending(
      (p) => (p.peer ?? (p.name === undefined ? undefined : this.#names.get(p.name)?.key)) === key,
      (p) => new ClusterError("noconnection", `${p.what}: its node ${name} was lost`, { fault: { kind: "noconnection", node: name } }),
    );
    for (const t of this.#tracked.values()) t.interested?.delete(key);
    // Declared for silence (here or by another node): what a split looks like. A node that left or restarted is not.
    if (peer?.up === true && (reason === "heartbeat" || reason === "down-notice")) this.#noteDeclared(key);
    if (this.#clustered()) this.#later(this.#awaitLapse(key));
    else this.#lapse(key);
    if (peer?.up === true) this.emit("node-down", { node: { name: peer.name, incarnation: peer.inc }, reason });
  }

  #noteDeclared(key: string): void {
    const now = performance.now();
    this.#declaredAt.set(key, now);
    // Only declarations newer than a lease matter (see #hearsMajority): forget the older ones.
    for (const [k, at] of this.#declaredAt) if (now - at > this.#leaseMs * 2) this.#declaredAt.delete(k);
  }

  /** `key`'s names may be taken over: delete them (compare-and-set, so never a newer holder's). */
  #lapse(key: string): void {
    this.#lapsed.add(key);
    for (const [n, holder] of this.#names) if (holder.key === key) this.#deletions.delete(n, holder.revision);
  }

  /**
   * On a NATS cluster a node we lost may only be cut off from us and still
   * be running. Its names are taken over once its lease has lapsed: its claim
   * entry unchanged for `leaseMs` plus a heartbeat — by then it has fenced
   * (it cannot have renewed without the entry changing). If it did renew, it
   * still reaches the bucket's quorum: its names stay with it.
   */
  async #awaitLapse(key: string): Promise<void> {
    const me = this.#key;
    const name = nodeOf(key);
    const before = await this.#readClaim(name);
    if (before === undefined) return; // closing
    if (!(await this.#sleep(this.#leaseMs + this.heartbeatMs))) return;
    for (;;) {
      // This node fenced meanwhile (its verdicts of that time are dropped), or learned the peer is alive after all.
      if (this.#key !== me || !this.#tombstones.has(key)) return;
      if (before.holder !== key) break; // the claim had moved on already: the lost incarnation cannot renew
      // The decision is a write: a compare-and-set of a lapse marker against the revision read a lease ago. A read
      // alone could come from a deposed stream leader and show a live node's entry as unchanged.
      const marked = await this.#claim.markLapsed(name, key, before.revision);
      if (marked === false) return; // it renewed: alive, and its names are its own
      if (marked === true) break;
      if (!(await this.#sleep(this.heartbeatMs))) return; // the bucket did not answer: try again
    }
    this.#lapse(key);
  }

  /** A node's claim entry, read again every heartbeat until the bucket answers; undefined once this node closes. */
  async #readClaim(name: string): Promise<{ revision: number; holder: string | undefined } | undefined> {
    while (this.#status === "up") {
      try {
        return await this.#claim.read(name);
      } catch {
        if (!(await this.#sleep(this.heartbeatMs))) return undefined;
      }
    }
    return undefined;
  }

  /** Wait `ms`; false when close() ended the wait. */
  #sleep(ms: number): Promise<boolean> {
    if (this.#status !== "up") return Promise.resolve(false);
    return new Promise((resolve) => {
      const wait = {
        timer: setAnyTimeout(() => {
          this.#sleeps.delete(wait);
          resolve(this.#status === "up");
        }, ms),
        resolve: () => resolve(false),
      };
      this.#sleeps.add(wait);
    });
  }

  /** A peer incarnation is given up: its control channel closes and every link to its devices fires noconnection. */
  #dropPeer(peer: Peer): void {
    if (peer.channel !== undefined) this.#control.close(peer.channel);
    const fault: Fault = { kind: "noconnection", node: peer.name };
    for (const proxy of [...peer.proxies]) this.#closeProxy(proxy, fault);
  }

  /** Reject the calls and spawns in flight that `which` picks, each with its own error. */
  #failPending(which: (p: PendingCall) => boolean, error: (p: PendingCall) => ClusterError): void {
    for (const [token, p] of [...this.#pending]) {
      if (!which(p)) continue;
      this.#pending.delete(token);
      clearAnyTimeout(p.timer);
      p.reject(error(p));
    }
  }

  /**
   * We lost the cluster for longer than the fence threshold (or a peer said
   * we are down): every remote link fires noconnection, exported devices are
   * disconnected with noconnection and their names withdrawn, calls in
   * flight fail, and the node rejoins under a new incarnation whose old
   * messages every peer refuses.
   */
  #fence(): void {
    if (this.#status !== "up") return;
    this.#echoSinceFence = false;
    const previous = { name: this.#name, incarnation: this.#inc };
    const oldKey = this.#key;
    this.#tombstones.add(oldKey);
    this.#inc = newIncarnation();
    this.#key = `${this.#name}.${this.#inc}`;
    this.#subscribeIncarnation();

    const peers = [...this.#peers.values()];
    this.#peers.clear();
    for (const peer of peers) this.#dropPeer(peer);
    // Peers declared down while our own lease was stale were declared by the node that was cut off: forget those
    // verdicts, so that after the heal their heartbeats make them peers again instead of drawing a down notice
    // that would fence them.
    const staleSince = this.#claim.leaseAt;
    for (const [k, at] of this.#declaredAt) {
      if (at <= staleSince) continue;
      this.#tombstones.delete(k);
      this.#declaredAt.delete(k);
    }
    this.#failPending(
      () => true,
      (p) => new ClusterError("noconnection", `${p.what}: this node was cut off from the cluster (fenced)`, { fault: { kind: "noconnection", node: p.peer === undefined ? this.#name : nodeOf(p.peer) } }),
    );
    for (const t of this.#tracked.values()) t.interested = null;
    const own: Fault = { kind: "noconnection", node: this.#name };
    for (const [name, ex] of [...this.#exports]) {
      this.#unexport(name, ex);
      this.#deletions.delete(name, ex.revision);
      disconnect(ex.board, own);
    }
    this.#publish(this.#subject("down"), encodeJson({ k: oldKey }));
    this.#lastEcho = performance.now();
    this.#beat();
    // Peers count the new incarnation once the claim names it: ask the bucket now rather than at the next tick.
    this.#claim.renewNow(this.#key);
    for (const peer of peers) if (peer.up) this.emit("node-down", { node: { name: peer.name, incarnation: peer.inc }, reason: "fenced" });
    this.emit("fenced", { previous, current: { name: this.#name, incarnation: this.#inc } });
  }

  // ------------------------------------------------------------------ the control plane

  /**
   * Resolves once every link change, ending and shutdown request queued so
   * far has been acknowledged by its peer (or the peer was declared down).
   * Links made with `Device.link` are forwarded after the current
   * synchronous code, so call it after making them.
   *
   * @example
   * ```ts
   * me.link(remote, "notify");
   * await node.flush(); // the remote node now knows
   * ```
   */
  async flush(): Promise<void> {
    // A link made just before is forwarded in a microtask, and its operation queued in another.
    await Promise.resolve();
    await Promise.resolve();
    if (this.#status !== "up") return;
    await this.#control.whenQuiet();
  }

  readonly #controlHost: ControlHost = {
    key: () => this.#key,
    peers: () => this.#peers.values(),
    transmit: (peer, data, token) => this.#publish(this.#subject("ctl", peer.name, peer.inc), data, this.#ackPrefix + token),
    refused: () => this.#fence(),
    retried: () => void this.#stats.controlRetries++,
  };
  readonly #control = new ControlPlane(this.#controlHost);

  #onControl(m: Msg): void {
    if (this.#checkFence() || this.#status !== "up") return;
    let batch: { f: string; s: number; o: Op[] };
    try {
      batch = decodeJson(m.data);
    } catch {
      return;
    }
    if (this.#tombstones.has(batch.f)) {
      m.respond(REFUSED);
      return;
    }
    const peer = this.#peerOf(batch.f);
    if (peer === undefined) return;
    peer.lastSeen = Math.max(peer.lastSeen, performance.now());
    if (batch.s > peer.applied) {
      peer.applied = batch.s;
      for (const op of batch.o) {
        try {
          this.#apply(peer, op);
        } catch (error) {
          // A malformed operation must not cost the rest of the batch; it is reported, never silent.
          process.emitWarning(`backplane cluster: control operation ${JSON.stringify(op)} from ${peer.key} failed: ${errorText(error)}`, { type: "BackplaneClusterWarning" });
        }
      }
    }
    m.respond(OK);
  }

  #apply(peer: Peer, op: Op): void {
    switch (op[0]) {
      case "mon": {
        const dev = op[1];
        const t = this.#tracked.get(dev);
        if (t !== undefined && !isClosed(t.board)) {
          (t.interested ??= new Set()).add(peer.key);
        } else {
          this.#control.send(peer, ["end", dev, this.#endingWire(dev)]);
        }
        return;
      }
      case "end": {
        const proxy = this.#proxies.get(`${peer.key}/${op[1]}`);
        if (proxy !== undefined) this.#closeProxy(proxy, faultFromWire(op[2]));
        return;
      }
      case "nfy": {
        const target = this.#tracked.get(op[2]);
        const proxy = this.#proxyFor(peer, op[1]);
        if (op[3] === 1) {
          if (target === undefined || isClosed(target.board)) return; // notify towards a gone device does nothing
          if (isClosed(proxy.board)) deliver(target.board, endingMessage(proxy.board));
          else link(proxy.board, target.board, "notify");
        } else if (target !== undefined) unlink(proxy.board, target.board, "notify");
        return;
      }
      case "stop": {
        const target = this.#tracked.get(op[1]);
        if (target === undefined) return;
        const proxy = this.#proxyFor(peer, op[2]);
        deliver(target.board, { kind: "shutdown", from: proxy.board.id });
        return;
      }
    }
  }

  #endingWire(dev: DeviceId): WireFault | null {
    if (this.#ended.has(dev)) return faultToWire(this.#ended.get(dev));
    // Erlang's noproc: an id this node never gave out, or one ended too long ago to remember.
    return faultToWire({ kind: "error", error: new ClusterError("remote-error", `noproc: device ${dev} on node ${this.#name} is unknown or long gone`) });
  }

  // ------------------------------------------------------------------ local devices seen from elsewhere

  /** Make `board`'s id resolvable by peers, and hear its ending. */
  #track(board: Plugboard): void {
    if (this.#tracked.has(board.id)) return;
    if (isClosed(board)) {
      this.#remember(board.id, board.fault);
      return;
    }
    this.#tracked.set(board.id, { board, interested: null });
    link(this.#agent, board, "monitor");
  }

  #remember(dev: DeviceId, fault: Fault | undefined): void {
    if (this.#ended.has(dev)) return;
    if (this.#ended.size >= ENDED_MEMORY) this.#ended.delete(this.#ended.keys().next().value as DeviceId);
    this.#ended.set(dev, fault);
  }

  #agentHeard(message: Message | undefined): void {
    this.#agent.sink = { deliver: (m) => this.#agentHeard(m) };
    if (message === undefined || message.kind !== "disconnected") return;
    const dev = message.from;
    const t = this.#tracked.get(dev);
    this.#tracked.delete(dev);
    this.#remember(dev, message.fault);
    if (t?.interested != null) {
      const wire = faultToWire(message.fault);
      for (const key of t.interested) {
        const peer = this.#peers.get(key);
        if (peer !== undefined) this.#control.send(peer, ["end", dev, wire]);
      }
    }
    const names = this.#exportsOf.get(dev);
    // The ending goes out before the bucket write: the deletion waits one turn of the event loop.
    if (names !== undefined) {
      for (const name of [...names]) {
        const ex = this.#exports.get(name)!;
        this.#unexport(name, ex);
        this.#deletions.soon(name, ex.revision);
      }
    }
  }

  /** @internal A local device notify-linked to `proxy` ended: make sure the remote device hears it. */
  _localEndedTowards(proxy: StandIn, dev: DeviceId, fault: Fault | undefined): void {
    if (proxy.synced.delete(dev)) return; // forwarded already: the agent sends the ending
    if (isClosed(proxy.board) || this.#tombstones.has(proxy.peer.key)) return;
    this.#remember(dev, fault);
    this.#control.send(proxy.peer, ["nfy", dev, proxy.remoteId, 1]);
    this.#control.send(proxy.peer, ["end", dev, faultToWire(fault)]);
  }

  /** @internal A notify link towards this proxy was made or removed; look at it after the current code. */
  _touched(ref: StandIn): void {
    if (ref.syncQueued || isClosed(ref.board)) return;
    ref.syncQueued = true;
    queueMicrotask(() => this.#sync(ref));
  }

  /** Forward the notify links made or removed towards `proxy` since the last look. */
  #sync(proxy: StandIn): void {
    proxy.syncQueued = false;
    if (isClosed(proxy.board)) return;
    const watching = proxy.board.watching;
    const now = new Set<Plugboard>();
    if (watching instanceof Plugboard) now.add(watching);
    else if (watching !== null) for (const b of watching) now.add(b);
    for (const b of now) {
      if (proxy.synced.has(b.id)) continue;
      proxy.synced.add(b.id);
      this.#track(b);
      this.#control.send(proxy.peer, ["nfy", b.id, proxy.remoteId, 1]);
    }
    if (proxy.synced.size > now.size) {
      const ids = new Set<DeviceId>();
      for (const b of now) ids.add(b.id);
      for (const id of [...proxy.synced]) {
        if (ids.has(id)) continue;
        proxy.synced.delete(id);
        this.#control.send(proxy.peer, ["nfy", id, proxy.remoteId, 0]);
      }
    }
  }

  /** @internal LineHost */
  shutdownRemote(ref: ProxyRef, from: DeviceId): boolean {
    if (!(ref instanceof StandIn)) return deliver(ref.board, { kind: "shutdown", from });
    if (isClosed(ref.board) || this.#tombstones.has(ref.peer.key)) return false;
    const local = this.#localBoard(from);
    if (local !== undefined) this.#track(local);
    this.#control.send(ref.peer, ["stop", ref.remoteId, from]);
    return true;
  }

  /** Boards of this node reachable by id: tracked ones (a shutdown's sender must be). */
  #localBoard(id: DeviceId): Plugboard | undefined {
    return this.#tracked.get(id)?.board;
  }

  #proxyFor(peer: Peer, dev: DeviceId): StandIn {
    const k = `${peer.key}/${dev}`;
    let proxy = this.#proxies.get(k);
    if (proxy !== undefined) return proxy;
    proxy = new StandIn(this, peer, dev);
    this.#proxies.set(k, proxy);
    peer.proxies.add(proxy);
    this.#control.send(peer, ["mon", dev]);
    return proxy;
  }

  #closeProxy(proxy: StandIn, fault: Fault | undefined): void {
    this.#proxies.delete(`${proxy.peer.key}/${proxy.remoteId}`);
    proxy.peer.proxies.delete(proxy);
    proxy.board.sink = null;
    disconnect(proxy.board, fault);
  }

  /** A line to device `dev` of node `key`: a proxy, or the device itself when it is ours. */
  #lineTo(key: string, dev: DeviceId, name: string | undefined): RemoteLine | undefined {
    if (key === this.#key) {
      const t = this.#tracked.get(dev);
      if (t === undefined) return undefined;
      return new RemoteLine(this, { board: t.board, nodeName: this.#name, incarnation: this.#inc, remoteId: dev }, name);
    }
    if (this.#tombstones.has(key)) {
      const node = nodeOf(key);
      const board = new Plugboard(`${node}#${dev}`);
      disconnect(board, { kind: "noconnection", node });
      return new RemoteLine(this, { board, nodeName: node, incarnation: key.slice(node.length + 1), remoteId: dev }, name);
    }
    const peer = this.#peerOf(key)!;
    return new RemoteLine(this, this.#proxyFor(peer, dev), name);
  }

  // ------------------------------------------------------------------ names

  #checkName(name: unknown): string {
    if (typeof name !== "string" || !NAME.test(name) || name.length > 200) {
      throw new ClusterError("invalid-argument", `a cluster name must be letters, digits, "_-=/" and single dots, not ${describeValue(name)}`);
    }
    return name;
  }

  #checkUp(what: string): void {
    if (this.#status !== "up") throw new ClusterError("closed", `${what}: node ${this.#name} is closed`);
  }

  /**
   * Give `device` a cluster-wide unique name. Resolves with a RemoteLine to
   * it; the name is withdrawn when the device ends (or this node fences).
   *
   * @throws {ClusterError} `name-taken` when a live device already holds it; `invalid-argument`; `closed`.
   * @example
   * ```ts
   * const line = await node.export(worker, { name: "billing" });
   * ```
   */
  async export(device: Device, options: { name: string }): Promise<RemoteLine> {
    this.#checkUp("export");
    if (!(device instanceof Device)) throw new ClusterError("invalid-argument", "export() takes a Device");
    const name = this.#checkName(options?.name);
    if (!device.isConnected) throw new ClusterError("invalid-argument", `device ${device.id} has already disconnected`);
    return this.#export(device, name, undefined);
  }

  async #export(device: Device, name: string, server: Server | undefined): Promise<RemoteLine> {
    const board = device._board;
    if (this.#exports.has(name)) throw new ClusterError("name-taken", `name "${name}" is already held on this node`);
    const key = this.#key;
    let revision: number;
    try {
      revision = await this.#kv.create(name, encodeJson({ k: key, d: board.id }));
    } catch (error) {
      const held = await this.#kv.get(name).catch(() => null);
      if (held !== null && held.operation === "PUT") {
        let holder: { k: string; d: number };
        try {
          holder = decodeJson<{ k: string; d: number }>(held.value);
        } catch (e) {
          throw new ClusterError("remote-error", `name "${name}" holds an entry this library did not write`, { cause: e });
        }
        if (holder.k === key && holder.d === board.id) {
          // Our own create: it timed out here but reached the bucket.
          revision = held.revision;
        } else if (this.#lapsed.has(holder.k)) {
          // Held by a node known to be gone (and its lease lapsed): take it over with a compare-and-set on its revision.
          revision = await this.#kv.update(name, encodeJson({ k: key, d: board.id }), held.revision).catch((e: unknown) => {
            throw new ClusterError("name-taken", `name "${name}" was taken over by another node first`, { cause: e });
          });
        } else throw new ClusterError("name-taken", `name "${name}" is held by node ${holder.k}`, { cause: error });
      } else throw new ClusterError("remote-error", `could not register name "${name}"`, { cause: error });
    }
    // A concurrent export of the same name here won (an entry naming this device reads as our own create).
    if (this.#exports.has(name)) throw new ClusterError("name-taken", `name "${name}" is already held on this node`);
    if (key !== this.#key || isClosed(board) || this.#status !== "up") {
      // Fenced, closed or the device ended while we waited: give the name back.
      this.#deletions.delete(name, revision);
      if (this.#status !== "up") throw new ClusterError("closed", `export: node ${this.#name} closed`);
      throw new ClusterError("noconnection", `export of "${name}": the node fenced or the device ended meanwhile`, { fault: { kind: "noconnection", node: this.#name } });
    }
    this.#track(board);
    const entry: Export = { board, revision, sub: undefined };
    const seen = new Map<string, number>();
    if (server !== undefined) entry.sub = this.#nc.subscribe(this.#subject("svc", name), { callback: (_e, m) => this.#onRequest(seen, server, m) });
    this.#exports.set(name, entry);
    const held = this.#exportsOf.get(board.id);
    if (held === undefined) this.#exportsOf.set(board.id, [name]);
    else held.push(name);
    this.#names.set(name, { key, dev: board.id, revision });
    // serve() resolves once the server has the subscription: a call made right after it is not a no-responders.
    if (entry.sub !== undefined) await this.#nc.flush().catch(() => {});
    return new RemoteLine(this, { board, nodeName: this.#name, incarnation: this.#inc, remoteId: board.id }, name);
  }

  /** Give up name `name` here: no longer exported, no longer served; the caller deletes it from the bucket. */
  #unexport(name: string, ex: Export): void {
    this.#exports.delete(name);
    const held = this.#exportsOf.get(ex.board.id);
    if (held !== undefined) {
      held.splice(held.indexOf(name), 1);
      if (held.length === 0) this.#exportsOf.delete(ex.board.id);
    }
    ex.sub?.unsubscribe();
  }

  /**
   * The device holding `name`, or undefined when nobody does (or its holder
   * is a node known to be gone).
   *
   * @example
   * ```ts
   * const line = await node.lookup("billing");
   * ```
   */
  async lookup(name: string): Promise<RemoteLine | undefined> {
    this.#checkUp("lookup");
    this.#checkName(name);
    let e: Awaited<ReturnType<KV["get"]>>;
    let v: { k: string; d: number };
    try {
      e = await this.#lookups.get(name);
      if (e === null || e.operation !== "PUT") return undefined;
      v = decodeJson<{ k: string; d: number }>(e.value);
    } catch (error) {
      throw new ClusterError("remote-error", `could not look up name "${name}"`, { cause: error });
    }
    if (this.#lapsed.has(v.k)) {
      this.#deletions.delete(name, e.revision);
      return undefined;
    }
    if (this.#tombstones.has(v.k)) return undefined; // its node is gone; its names go once its lease has lapsed
    this.#names.set(name, { key: v.k, dev: v.d, revision: e.revision });
    return this.#lineTo(v.k, v.d, name);
  }

  // ------------------------------------------------------------------ calls

  /**
   * Serve requests for `name` across the cluster with `handler` (the local
   * `serve` on `device`, plus the name). Resolves once the name is held.
   *
   * @throws {ClusterError} `name-taken`, `invalid-argument`, `closed`.
   * @example
   * ```ts
   * await node.serve(new Device({ name: "doubler" }), (n: number) => n * 2, { name: "doubler" });
   * ```
   */
  async serve<Req, Res>(device: Device, handler: (request: Req) => Res | PromiseLike<Res>, options: RemoteServeOptions): Promise<RemoteLine> {
    this.#checkUp("serve");
    if (!(device instanceof Device)) throw new ClusterError("invalid-argument", "serve() takes a Device");
    if (typeof handler !== "function") throw new ClusterError("invalid-argument", "serve() takes a handler function");
    const name = this.#checkName(options?.name);
    if (!device.isConnected) throw new ClusterError("invalid-argument", `device ${device.id} has already disconnected`);
    // The name first: a refused name must not leave a server running on the user's device.
    let server: Server;
    try {
      server = serve(device, handler, { name, ...(options.concurrency !== undefined && { concurrency: options.concurrency }), ...(options.signal !== undefined && { signal: options.signal }) }) as Server;
    } catch (error) {
      // The local serve() checks concurrency and signal: its refusal is this API's invalid-argument.
      if (error instanceof CallError) throw new ClusterError(error.code === "invalid-argument" ? "invalid-argument" : "remote-error", error.message, { cause: error });
      throw error;
    }
    try {
      return await this.#export(device, name, server);
    } catch (error) {
      void server.stop();
      throw error;
    }
  }

  #onRequest(seen: Map<string, number>, server: Server, m: Msg): void {
    if (this.#checkFence()) return;
    const reply = m.reply;
    if (reply === undefined) return;
    // reply = bp.<cluster>.<r|c>.<caller name>.<caller incarnation>.<token>; our own cluster prefix is known.
    const at = this.#prefixLength;
    const last = reply.lastIndexOf(".");
    if (last <= at + 2 || reply.charCodeAt(at + 1) !== 46 /* . */) return;
    const isCast = reply.charCodeAt(at) === 99; /* c */
    const caller = reply.slice(at + 2, last);
    if (this.#tombstones.has(caller)) {
      if (isCast) this.#stats.castsLost++;
      return; // an old incarnation's traffic is refused
    }
    let request: unknown;
    try {
      request = decodeValue(m.data);
    } catch {
      if (!isCast) this.#respond(reply, [1, "not-cloneable", "the request could not be deserialised", null]);
      return;
    }
    if (isCast) {
      // Casts carry a per-caller, per-name sequence number: a gap is a cast lost on the way.
      const seq = Number(reply.slice(last + 1));
      const before = seen.get(caller) ?? 0;
      if (seq > before + 1) this.#stats.castsLost += seq - before - 1;
      if (seq > before) seen.set(caller, seq);
      if (!server.cast(request)) this.#stats.castsLost++;
      return;
    }
    server
      .call(request)
      .then(
        (value) => this.#respond(reply, [0, value]),
        (error: unknown) => {
          if (error instanceof CallError) this.#respond(reply, [1, error.code === "server-down" ? "server-down" : "remote-error", error.message, faultToWire(error.fault)]);
          else this.#respond(reply, [1, "remote-error", errorText(error), null]);
        },
      )
      // Whatever goes wrong answering, the caller still gets an answer and nothing rejects unheard.
      .catch(() => this.#respond(reply, [1, "remote-error", "the reply could not be sent", null]));
  }

  #respond(reply: string, answer: unknown[]): void {
    let data: Uint8Array;
    try {
      data = encodeValue(answer);
    } catch {
      data = encodeValue([1, "not-cloneable", "the reply cannot be serialised (v8 structured clone)", null]);
    }
    this.#publish(reply, data);
  }

  /**
   * Call the server holding `target` (a name, or a RemoteLine found by
   * name). Fails in milliseconds when nobody serves the name
   * (`no-responders`) or its node is known to be gone (`noconnection`); a
   * call in flight whose callee's node is lost fails with `noconnection`
   * within the detection bound; a late reply is dropped.
   *
   * @throws {ClusterError} `no-responders`, `noconnection`, `server-down`, `timeout`, `not-cloneable`, `closed`, `invalid-argument`.
   * @example
   * ```ts
   * const doubled = await node.call<number>("doubler", 21, { timeout: 1_000 });
   * ```
   */
  call<Res = unknown>(target: string | RemoteLine, request: unknown, options?: RemoteCallOptions): Promise<Res> {
    let name: string;
    let peer: string | undefined;
    try {
      if (this.#status !== "up") throw new ClusterError("closed", `call: node ${this.#name} is closed`);
      ({ name, peer } = this.#target(target));
      const timeout = options?.timeout ?? Number.POSITIVE_INFINITY;
      const bad = durationProblem("timeout", timeout);
      if (bad !== undefined) throw new ClusterError("invalid-argument", bad);
      if (peer !== undefined && this.#tombstones.has(peer)) {
        throw new ClusterError("noconnection", `call to "${name}": its node ${peer} is gone`, { fault: { kind: "noconnection", node: nodeOf(peer) } });
      }
      return this.#request<Res>(this.#subject("svc", name), this.#encodeRequest(request), timeout, { peer, name, what: `call to "${name}"` });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Send `request` to the server holding `target` without waiting: at most
   * once, as in Erlang. Returns false when it could not be sent at all;
   * casts nobody received are counted in {@link stats}.
   *
   * @example
   * ```ts
   * node.cast("logger", { line: "hello" });
   * ```
   */
  cast(target: string | RemoteLine, request: unknown): boolean {
    if (this.#status !== "up") return false;
    const name = target instanceof RemoteLine ? this.#target(target).name : target;
    let to = this.#castTargets.get(name);
    if (to === undefined) {
      to = { subject: this.#subject("svc", this.#checkName(name)), seq: 0 };
      this.#castTargets.set(name, to);
    }
    const data = this.#encodeRequest(request);
    this.#stats.castsSent++;
    if (this.#publish(to.subject, data, this.#castPrefix + ++to.seq)) return true;
    this.#stats.castsUndelivered++;
    return false;
  }

  #target(target: string | RemoteLine): { name: string; peer: string | undefined } {
    if (target instanceof RemoteLine) {
      if (target.name === undefined) throw new ClusterError("invalid-argument", "call() needs a name, or a RemoteLine found by name");
      return { name: target.name, peer: `${target.node}.${target.incarnation}` };
    }
    const name = this.#checkName(target);
    return { name, peer: this.#names.get(name)?.key };
  }

  /**
   * Publish a request whose reply comes back on this incarnation's `r.<token>`
   * subject (one subscription for all of them, no inbox per request).
   */
  #request<T>(subject: string, data: Uint8Array, timeout: number, about: Pick<PendingCall, "peer" | "name" | "what" | "spawnedFor">): Promise<T> {
    const token = ++this.#token;
    return new Promise<T>((resolve, reject) => {
      const pending: PendingCall = { token, timeout, resolve: resolve as (v: unknown) => void, reject, timer: undefined, ...about };
      pending.timer = setAnyTimeout(this.#timedOut, timeout, pending);
      this.#pending.set(token, pending);
      if (!this.#publish(subject, data, this.#subject("r", this.#name, this.#inc, String(token)))) {
        this.#pending.delete(token);
        clearAnyTimeout(pending.timer);
        reject(new ClusterError("closed", `${about.what}: the connection is closed`));
      }
    });
  }

  readonly #timedOut = (pending: PendingCall): void => {
    const token = pending.token;
    if (this.#pending.get(token) !== pending) return;
    this.#pending.delete(token);
    // A spawn that answers after its caller gave up started a child nobody supervises: it is stopped when its reply comes.
    if (pending.spawnedFor !== undefined) {
      if (this.#abandoned.size >= 1024) this.#abandoned.delete(this.#abandoned.keys().next().value as number);
      this.#abandoned.set(token, pending.spawnedFor);
    }
    pending.reject(new ClusterError("timeout", `${pending.what}: no reply within ${pending.timeout} ms`));
  };

  #encodeRequest(request: unknown): Uint8Array {
    try {
      return encodeValue(request);
    } catch (error) {
      throw new ClusterError("not-cloneable", "the request cannot be serialised (v8 structured clone)", { cause: error });
    }
  }

  #onReply(m: Msg): void {
    if (this.#checkFence()) return;
    const subject = m.subject;
    const token = Number(subject.slice(subject.lastIndexOf(".") + 1));
    const pending = this.#pending.get(token);
    if (pending === undefined) {
      // Late: the caller already gave up. A late spawn's child is stopped, so it is not left running unsupervised.
      const spawn = this.#abandoned.get(token);
      if (spawn !== undefined) {
        this.#abandoned.delete(token);
        this.#stopLateChild(m, spawn);
      }
      return;
    }
    this.#pending.delete(token);
    clearAnyTimeout(pending.timer);
    if (m.headers?.code === 503) {
      if (pending.peer !== undefined && this.#tombstones.has(pending.peer)) {
        pending.reject(new ClusterError("noconnection", `${pending.what}: its node is gone`, { fault: { kind: "noconnection", node: nodeOf(pending.peer) } }));
      } else pending.reject(new ClusterError("no-responders", `${pending.what}: nobody serves it`));
      return;
    }
    let answer: unknown[];
    try {
      answer = decodeValue(m.data) as unknown[];
    } catch (error) {
      pending.reject(new ClusterError("not-cloneable", `${pending.what}: the reply could not be deserialised`, { cause: error }));
      return;
    }
    if (answer[0] === 0) pending.resolve(answer[1]);
    else {
      const fault = faultFromWire(answer[3] as WireFault | null);
      pending.reject(new ClusterError(answer[1] as ClusterErrorCode, `${pending.what}: ${String(answer[2])}`, { fault, cause: fault?.kind === "error" ? fault.error : undefined }));
    }
  }

  #stopLateChild(m: Msg, spawn: { parent: DeviceId; on: string }): void {
    let answer: unknown[];
    try {
      answer = decodeValue(m.data) as unknown[];
    } catch {
      return;
    }
    if (answer[0] !== 0) return;
    const [dev, inc] = answer[1] as [number, string];
    const peer = this.#peerOf(`${spawn.on}.${inc}`);
    if (peer !== undefined) this.#control.send(peer, ["stop", dev, spawn.parent]);
  }

  #onCastBounce(m: Msg): void {
    if (m.headers?.code === 503) this.#stats.castsUndelivered++;
  }

  // ------------------------------------------------------------------ remote children

  /**
   * Let other nodes start children here: `fn(args, signal)` is the child's
   * life, run under `device.manage` of a new device (see `remoteChild`).
   *
   * @example
   * ```ts
   * node.spawner("worker", async (args, signal) => { await work(args, signal); });
   * ```
   */
  spawner(kind: string, fn: SpawnFunction): void {
    if (typeof kind !== "string" || kind.length === 0) throw new ClusterError("invalid-argument", `spawner kind must be a non-empty string, not ${describeValue(kind)}`);
    if (typeof fn !== "function") throw new ClusterError("invalid-argument", "spawner() takes a function");
    this.#spawners.set(kind, fn);
  }

  /**
   * Start a `kind` child on node `on`, linked to `parent` (the child hears
   * when `parent` ends or this node is lost, so it is never orphaned).
   *
   * @throws {ClusterError} `no-responders` (no such node up), `remote-error` (no such spawner), `timeout`, `closed`.
   * @example
   * ```ts
   * const child = await node.spawn("b", "worker", { n: 1 }, { parent: me });
   * ```
   */
  spawn(on: string, kind: string, args: unknown, options: { parent: Device; timeout?: number }): Promise<RemoteLine> {
    try {
      this.#checkUp("spawn");
      if (typeof on !== "string" || !TOKEN.test(on)) throw new ClusterError("invalid-argument", `on must be a node name, not ${describeValue(on)}`);
      if (on === this.#name) throw new ClusterError("invalid-argument", `spawn() starts a child on another node; "${on}" is this node (start it under a local supervisor instead)`);
      if (!(options?.parent instanceof Device)) throw new ClusterError("invalid-argument", "spawn() needs options.parent, a Device");
      const timeout = options.timeout ?? 5_000;
      const bad = durationProblem("timeout", timeout);
      if (bad !== undefined) throw new ClusterError("invalid-argument", bad);
      const parent = options.parent._board;
      this.#track(parent);
      const data = this.#encodeRequest([kind, args, this.#key, parent.id]);
      return this.#request<[number, string]>(this.#subject("spawn", on), data, timeout, { peer: undefined, name: undefined, what: `spawn of "${kind}" on ${on}`, spawnedFor: { parent: parent.id, on } }).then(
        ([dev, inc]) => this.#lineTo(`${on}.${inc}`, dev, undefined)!,
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #onSpawn(m: Msg): void {
    if (this.#checkFence() || m.reply === undefined) return;
    const reply = m.reply;
    let kind: string, args: unknown, parentKey: string, parentDev: number;
    try {
      [kind, args, parentKey, parentDev] = decodeValue(m.data) as [string, unknown, string, number];
    } catch {
      this.#respond(reply, [1, "not-cloneable", "the spawn request could not be deserialised", null]);
      return;
    }
    const fn = this.#spawners.get(kind);
    if (fn === undefined) {
      this.#respond(reply, [1, "remote-error", `node ${this.#name} has no spawner "${kind}"`, null]);
      return;
    }
    const peer = this.#peerOf(parentKey);
    if (peer === undefined) {
      this.#respond(reply, [1, "noconnection", `the parent's node ${parentKey} is gone`, faultToWire({ kind: "noconnection", node: nodeOf(parentKey) })]);
      return;
    }
    const device = new Device({ name: kind });
    this.#track(device._board);
    // The child hears its parent's ending, or noconnection when the parent's node is lost: never orphaned.
    link(this.#proxyFor(peer, parentDev).board, device._board, "notify");
    device.manage((signal) => fn(args, signal)).catch(() => {});
    this.#respond(reply, [0, [device.id, this.#inc]]);
  }

  // ------------------------------------------------------------------ close

  /**
   * Leave the cluster: names withdrawn, peers told at once (their links to
   * this node's devices fire `noconnection`), remote links here fire
   * `noconnection`, calls in flight fail with `closed`, timers and the
   * connection closed. Idempotent.
   *
   * @example
   * ```ts
   * await node.close();
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  #closing: Promise<void> | undefined;

  async #close(): Promise<void> {
    if (this.#status !== "up") return;
    // Endings and link changes already queued go out first (a peer that is gone is declared down meanwhile: the tick still runs).
    await this.flush();
    if (this.#status !== "up") return;
    this.#status = "closing";
    clearAnyTimeout(this.#tick);
    this.#tick = undefined;
    for (const [name, ex] of [...this.#exports]) {
      this.#unexport(name, ex);
      this.#deletions.delete(name, ex.revision);
    }
    this.#publish(this.#subject("down"), encodeJson({ k: this.#key, l: 1 }));
    for (const peer of this.#peers.values()) this.#dropPeer(peer);
    this.#peers.clear();
    this.#failPending(
      () => true,
      (p) => new ClusterError("closed", `${p.what}: node ${this.#name} closed`),
    );
    this.#agent.sink = null;
    disconnect(this.#agent, undefined);
    this.#deletions.now();
    this.#control.release();
    this.#watcher?.stop();
    this.#statusIter?.stop();
    if (this.#watchRetry !== undefined) {
      clearAnyTimeout(this.#watchRetry.timer);
      this.#watchRetry.resolve();
    }
    for (const wait of this.#sleeps) {
      clearAnyTimeout(wait.timer);
      wait.resolve();
    }
    this.#sleeps.clear();
    await Promise.allSettled([...this.#background]);
    // The names withdrawn above are gone once the bucket answers. With the bucket away, give up after two
    // heartbeats: the others delete them when they take this node's leaving for a loss.
    await this.#deletions.settle(Math.max(250, this.heartbeatMs * 2), Math.max(50, this.heartbeatMs));
    // The node name is free again (unless it is someone else's now: then the revision no longer matches).
    await this.#claim.release();
    // Drain (deliver what is buffered), but not forever: with the server away a drain waits for a reconnect.
    let timer: AnyTimer;
    const gaveUp = new Promise<"late">((resolve) => (timer = setAnyTimeout(() => resolve("late"), this.detectionBoundMs)));
    const drained = await Promise.race([this.#nc.drain().then(() => "ok" as const, () => "failed" as const), gaveUp]);
    clearAnyTimeout(timer);
    // nats 2.x resolves a drain that could not flush (the server is away) without closing: close in any case.
    if (drained !== "ok" || !this.#nc.isClosed()) await this.#nc.close().catch(() => {});
    // The socket is gone when close() resolves (bounded: a connection closed while reconnecting may never report it).
    let closedTimer: AnyTimer;
    await Promise.race([this.#nc.closed(), new Promise<void>((resolve) => (closedTimer = setAnyTimeout(resolve, this.heartbeatMs)))]);
    clearAnyTimeout(closedTimer);
    await Promise.allSettled([...this.#background]);
    this.#status = "closed";
    this.emit("closed", { error: this.#closeError });
  }
}

/**
 * A heartbeat or a down notice: the node key `k`, plus `c` (heartbeat: the
 * claim names this incarnation) or `l` (down notice: the node is leaving).
 * Undefined for a message this library did not write.
 */
function noticeOf(m: Msg): { k: string; c?: unknown; l?: unknown } | undefined {
  try {
    const notice = decodeJson<{ k?: unknown; c?: unknown; l?: unknown }>(m.data);
    return typeof notice.k === "string" ? (notice as { k: string; c?: unknown; l?: unknown }) : undefined;
  } catch {
    return undefined;
  }
}

/** The node name of a node key (`name.incarnation`). */
function nodeOf(key: string): string {
  const dot = key.indexOf(".");
  return dot < 0 ? key : key.slice(0, dot);
}

function endingMessage(board: Plugboard): Message {
  return board.fault === undefined ? { kind: "disconnected", from: board.id } : { kind: "disconnected", from: board.id, fault: board.fault };
}

