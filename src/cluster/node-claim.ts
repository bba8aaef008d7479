/**
 * A node's claim on its name: one entry in the cluster's node bucket naming
 * the incarnation that holds the name, created at start and renewed once a
 * heartbeat as a lease.
 *
 * Why a bucket entry and not just asking "is anyone called this?": two nodes
 * starting under one name at the same instant would both hear silence. The
 * bucket orders their creates, and the loser finds a holder that answers.
 * Why renew it: a confirmed renewal proves the node reaches the bucket's
 * quorum, which is what a node on the minority side of a split between NATS
 * servers no longer does even though it still hears its own server.
 */
import type { KV, NatsConnection, Subscription } from "nats";
import { ClusterError } from "./cluster-error.js";
import { decodeJson, encodeJson } from "./wire.js";

const ANSWER = new Uint8Array(0);

/** What the claim needs from its node. */
export interface ClaimHost {
  /** The subject on which incarnation `key` (`name.incarnation`) answers pings. */
  pingSubject(key: string): string;
  /** The node is still up (not closing or closed). */
  up(): boolean;
  /** Keep a background promise until it settles (close waits for it). */
  later(p: Promise<unknown>): void;
  /** Another live node holds the name now: the node must close itself with this error. */
  lost(error: ClusterError): void;
  /** The others marked the lease of incarnation `key` lapsed (they took it for lost and may take its names): if it is the current one, the node must fence. */
  lapsed(key: string): void;
}

/** The claim of one node on its name. */
export class NodeClaim {
  /** The revision of our entry (the next renewal's compare-and-set); 0 until the name is ours. */
  #revision = 0;
  /** When the last renewal the bucket confirmed was sent. */
  #leaseAt: number;
  #sentAt = 0;
  #busy = false;
  /** The key the entry was last confirmed to name. */
  #confirmed = "";
  /** The node's current key (the latest answerFor()). */
  #current = "";
  /**
   * Ping responders by key: the current one, and older ones until the entry
   * names the current one. Their keys are also the ones an entry may name as
   * ours (a renewal of an older key can still land).
   */
  readonly #pings = new Map<string, Subscription>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly kv: KV,
    private readonly host: ClaimHost,
    private readonly name: string,
    /** How long a silent holder is given to answer: the time its peers take to declare it down. */
    private readonly silentFor: number,
    /** Renew at most this often. */
    private readonly everyMs: number,
  ) {
    this.#leaseAt = performance.now();
  }

  /** When the last confirmed renewal was sent (performance.now() time). */
  get leaseAt(): number {
    return this.#leaseAt;
  }

  /** The bucket has confirmed that the entry names `key`. */
  names(key: string): boolean {
    return this.#confirmed === key;
  }

  /** Answer pings for `key`, a new incarnation of this node, before any entry can name it. */
  answerFor(key: string): void {
    this.#current = key;
    this.#pings.set(key, this.nc.subscribe(this.host.pingSubject(key), { callback: (_e, m) => void m.respond(ANSWER) }));
  }

  /**
   * Take the name for `key` at start: create the entry, or take it over
   * (compare-and-set) from a holder that does not answer within `silentFor`.
   *
   * @throws {ClusterError} `name-taken` when a live node holds it; `remote-error` when the bucket cannot be written.
   */
  async take(key: string): Promise<void> {
    const value = encodeJson({ k: key });
    const sentAt = performance.now();
    for (let attempt = 1; ; attempt++) {
      try {
        this.#revision = await this.kv.create(this.name, value);
        break;
      } catch (error) {
        const held = await this.kv.get(this.name).catch((e: unknown) => {
          throw new ClusterError("remote-error", `could not claim the node name "${this.name}": the node bucket cannot be read (${String(e)})`, { cause: e });
        });
        if (held === null || held.operation !== "PUT") {
          if (attempt < 3) continue; // deleted meanwhile: create again
          throw new ClusterError("remote-error", `could not claim the node name "${this.name}"`, { cause: error });
        }
        const entry = entryOf(held.value);
        const holder = entry?.k;
        if (holder === key) {
          // Our own create: it timed out here but reached the bucket.
          this.#revision = held.revision;
          break;
        }
        // A holder whose lease the others marked lapsed has fenced (or will on its next renewal): no need to ask it.
        if (holder !== undefined && entry?.x !== 1 && (await this.#answers(holder))) {
          throw new ClusterError("name-taken", `a live node already has the name "${this.name}" (incarnation ${incarnationOf(holder)})`);
        }
        try {
          this.#revision = await this.kv.update(this.name, value, held.revision);
          break;
        } catch (lost) {
          // Someone else took it over from the same silent holder first: look again (it will answer).
          if (attempt >= 3) throw new ClusterError("name-taken", `the node name "${this.name}" was taken over by another node first`, { cause: lost });
        }
      }
    }
    this.#leaseAt = sentAt;
    this.#confirmed = key;
  }

  /** True when incarnation `key` answers a ping; false when nobody listens there or it stays silent for `silentFor`. */
  #answers(key: string): Promise<boolean> {
    return this.nc.request(this.host.pingSubject(key), undefined, { timeout: this.silentFor }).then(
      () => true,
      () => false,
    );
  }

  /** From the node's tick: write `key` over our entry (compare-and-set), at most once per `everyMs`, one write at a time. */
  renew(now: number, key: string): void {
    if (this.#busy || this.#revision === 0 || now - this.#sentAt < this.everyMs * 0.9) return;
    this.#busy = true;
    this.#sentAt = now;
    this.host.later(
      this.kv
        .update(this.name, encodeJson({ k: key }), this.#revision)
        .then(
          (revision) => this.#renewed(revision, now, key),
          () => this.#refused(now, key),
        )
        .finally(() => {
          this.#busy = false;
        }),
    );
  }

  /** Renew now, not at the next due time (after a fence: peers count the new incarnation once the entry names it). */
  renewNow(key: string): void {
    this.#sentAt = Number.NEGATIVE_INFINITY;
    this.renew(performance.now(), key);
  }

  #renewed(revision: number, sentAt: number, key: string): void {
    this.#revision = revision;
    this.#leaseAt = Math.max(this.#leaseAt, sentAt);
    this.#confirmed = key;
    // A renewal sent before a fence names the old incarnation: the next one names the current.
    if (key !== this.#current) return;
    // The entry names the current incarnation now: older ones need no answer to pings, and (one write at a
    // time) can no longer land in the entry as ours.
    for (const [k, sub] of this.#pings) {
      if (k === key) continue;
      sub.unsubscribe();
      this.#pings.delete(k);
    }
  }

  /**
   * A renewal failed. Most often the bucket was out of reach (the next tick
   * tries again); if the entry changed under us, find out whose it is now.
   */
  async #refused(sentAt: number, key: string): Promise<void> {
    const held = await this.kv.get(this.name).catch(() => undefined);
    if (held === undefined || !this.host.up()) return; // out of reach: try again next tick
    const value = encodeJson({ k: key });
    if (held === null || held.operation !== "PUT") {
      // Our entry was deleted (by hand, or the bucket was made again): claim it again.
      const revision = await this.kv.create(this.name, value).catch(() => undefined);
      if (revision !== undefined) this.#renewed(revision, sentAt, key);
      return;
    }
    if (held.revision === this.#revision) return; // unchanged: the write itself failed
    const entry = entryOf(held.value);
    const holder = entry?.k;
    if (holder !== undefined && this.#pings.has(holder)) {
      this.#revision = held.revision;
      // Marked lapsed: the others took this node for lost and may have taken its names. Fence (the next renewal
      // names the new incarnation, over the marker). Otherwise an earlier renewal of ours landed after all.
      if (entry?.x === 1) this.host.lapsed(holder);
      return;
    }
    const alive = holder !== undefined && (await this.#answers(holder));
    if (!this.host.up()) return;
    if (alive) {
      // While we were cut off, a node was started under our name and took it: it is the node now.
      this.host.lost(new ClusterError("name-taken", `node ${this.name} closed itself: while it was cut off, another node took its name (incarnation ${incarnationOf(holder)})`));
      return;
    }
    // A taker that is gone again: take the name back.
    const revision = await this.kv.update(this.name, value, held.revision).catch(() => undefined);
    if (revision !== undefined) this.#renewed(revision, sentAt, key);
  }

  /**
   * The claim entry of node `name` as the bucket's leader has it: its revision
   * and the incarnation it names (`undefined` when it names none: deleted, or
   * not one of ours). Rejects when the bucket cannot be read.
   */
  async read(name: string): Promise<{ revision: number; holder: string | undefined }> {
    const e = await this.kv.get(name);
    if (e === null) return { revision: 0, holder: undefined };
    return { revision: e.revision, holder: e.operation === "PUT" ? holderOf(e.value) : undefined };
  }

  /**
   * Mark node `name`'s lease lapsed, if its entry is still at `revision`
   * (compare-and-set: a write, so it needs the bucket's quorum — a read
   * could come from a deposed leader). True: marked, its names may be taken
   * over; false: the entry changed (it renewed: it is alive and reaches the
   * bucket); undefined: the bucket did not answer.
   */
  async markLapsed(name: string, holder: string, revision: number): Promise<boolean | undefined> {
    try {
      await this.kv.update(name, encodeJson({ k: holder, x: 1 }), revision);
      return true;
    } catch (error) {
      return (error as { api_error?: { err_code?: number } }).api_error?.err_code === 10071 ? false : undefined;
    }
  }

  /** Free the name on close (compare-and-set: never a taker's entry; nothing when the name was never ours). */
  async release(): Promise<void> {
    // Revision 0: the start was refused, and a delete without a revision would delete the holder's entry.
    if (this.#revision > 0) await this.kv.delete(this.name, { previousSeq: this.#revision }).catch(() => {});
  }
}

/** The node key a claim entry names; undefined for an entry this library did not write. */
function holderOf(value: Uint8Array): string | undefined {
  return entryOf(value)?.k;
}

/** A claim entry: the incarnation it names, and `x` when the others marked its lease lapsed. */
function entryOf(value: Uint8Array): { k: string; x?: 1 } | undefined {
  try {
    const e = decodeJson<{ k: unknown; x?: unknown }>(value);
    return typeof e.k === "string" ? (e.x === 1 ? { k: e.k, x: 1 } : { k: e.k }) : undefined;
  } catch {
    return undefined;
  }
}

function incarnationOf(key: string): string {
  return key.slice(key.indexOf(".") + 1);
}
