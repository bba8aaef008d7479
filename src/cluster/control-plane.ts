/**
 * The control plane: link changes, endings and shutdown requests between
 * two node incarnations, on one ordered channel per pair.
 *
 * Why not plain publishes: NATS core pub/sub loses messages across a server
 * restart without an error, and an ending lost is a monitor that never
 * hears. So each channel keeps one batch in flight, the peer acknowledges
 * it, and the node's tick sends it again until it is acknowledged or the
 * peer is declared down; sequence numbers let the peer apply each batch
 * once. Acknowledgements come back on the sender's own subject tagged with
 * a token per transmission: no timer, no promise and no inbox per batch.
 */
import type { Msg } from "nats";
import { encodeJson, type WireFault } from "./wire.js";

/** One control operation. */
export type Op =
  | [op: "mon", dev: number]
  | [op: "end", dev: number, fault: WireFault | null]
  | [op: "nfy", from: number, to: number, on: 0 | 1]
  | [op: "stop", to: number, from: number];

/** The peer end of a channel: a node incarnation. */
export interface ChannelPeer {
  readonly name: string;
  readonly inc: string;
  /** The ordered channel from this node to the peer, while one is open. */
  channel: Channel | undefined;
}

/** An ordered channel to one peer incarnation. */
export interface Channel {
  readonly peer: ChannelPeer;
  /** The key of the incarnation that opened it: a refusal of an older one is no news. */
  readonly from: string;
  queue: Op[];
  inFlight: Op[] | null;
  seq: number;
  /** The batch in flight, encoded, for sending again. */
  data: Uint8Array | undefined;
  sentAt: number;
  /** The token of its latest transmission (0: none waiting). */
  token: number;
  scheduled: boolean;
  closed: boolean;
  /** Flushes the queue after the current synchronous code (one function per channel, not one per batch). */
  readonly later: () => void;
}

/** What the control plane needs from its node. */
export interface ControlHost {
  /** This node's current key (`name.incarnation`). */
  key(): string;
  /** Every peer with a channel that may be open. */
  peers(): Iterable<ChannelPeer>;
  /** Publish `data` to the peer's control subject, acknowledgements to `token`. False when it could not be sent. */
  transmit(peer: ChannelPeer, data: Uint8Array, token: number): boolean;
  /** A peer refused our current incarnation: it has declared us down, and we are the one cut off. */
  refused(): void;
  /** A batch was sent again. */
  retried(): void;
}

const OK_LENGTH = 2; // "ok"

/** The node's control plane. */
export class ControlPlane {
  /** Channels waiting for an acknowledgement, by transmission token. */
  readonly #acks = new Map<number, Channel>();
  #token = 0;
  #waiters: (() => void)[] = [];
  readonly #decoder = new TextDecoder();

  constructor(private readonly host: ControlHost) {}

  /** Queue `op` to `peer`; it goes out after the current synchronous code, batched with whatever else is queued. */
  send(peer: ChannelPeer, op: Op): void {
    let ch = peer.channel;
    if (ch === undefined) {
      const made: Channel = {
        peer,
        from: this.host.key(),
        queue: [],
        inFlight: null,
        seq: 0,
        data: undefined,
        sentAt: 0,
        token: 0,
        scheduled: false,
        closed: false,
        later: () => {
          made.scheduled = false;
          if (made.inFlight === null) this.#flush(made);
        },
      };
      ch = peer.channel = made;
    }
    ch.queue.push(op);
    if (ch.inFlight === null && !ch.scheduled) {
      ch.scheduled = true;
      queueMicrotask(ch.later);
    }
  }

  #flush(ch: Channel): void {
    if (ch.closed || ch.queue.length === 0) return;
    ch.inFlight = ch.queue;
    ch.queue = [];
    ch.seq++;
    this.#transmit(ch, encodeJson({ f: ch.from, s: ch.seq, o: ch.inFlight }));
  }

  /** Send one batch; the tick sends it again until it is acknowledged, the peer is declared down, or we fence. */
  #transmit(ch: Channel, data: Uint8Array): void {
    if (ch.closed) return;
    if (ch.token !== 0) this.#acks.delete(ch.token);
    const token = ++this.#token;
    ch.token = token;
    ch.data = data;
    ch.sentAt = performance.now();
    this.#acks.set(token, ch);
    this.host.transmit(ch.peer, data, token);
  }

  /** An acknowledgement (or a no-responders status) for transmission `token`. */
  onAck(token: number, m: Msg): void {
    const ch = this.#acks.get(token);
    if (ch === undefined) return; // an acknowledgement of a transmission sent again since: the newer one counts
    this.#acks.delete(token);
    ch.token = 0;
    if (ch.closed) return;
    if (m.headers?.code === 503) {
      // Nobody listens on the peer's channel right now (it is reconnecting, or gone): the tick sends it again.
      ch.sentAt = Number.NEGATIVE_INFINITY;
      return;
    }
    if (m.data.length !== OK_LENGTH && this.#decoder.decode(m.data) === "refused") {
      if (ch.from === this.host.key()) this.host.refused();
      return;
    }
    ch.inFlight = null;
    ch.data = undefined;
    this.#flush(ch);
    this.#wake();
  }

  /** From the tick: send again every batch unacknowledged for `wait` ms (or refused by no-responders). */
  retransmit(now: number, wait: number): void {
    for (const peer of this.host.peers()) {
      const ch = peer.channel;
      if (ch === undefined || ch.inFlight === null || ch.data === undefined || now - ch.sentAt < wait) continue;
      this.host.retried();
      this.#transmit(ch, ch.data);
    }
  }

  /** True when no control message waits to be sent or acknowledged. */
  quiet(): boolean {
    for (const p of this.host.peers()) {
      const ch = p.channel;
      if (ch !== undefined && (ch.inFlight !== null || ch.queue.length > 0 || ch.scheduled)) return false;
    }
    return true;
  }

  /** Resolves when the plane is quiet (or release() is called). */
  whenQuiet(): Promise<void> {
    if (this.quiet()) return Promise.resolve();
    return new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  /** Let every whenQuiet() go (the node is closing). */
  release(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  #wake(): void {
    if (this.#waiters.length === 0 || !this.quiet()) return;
    this.release();
  }

  /** The peer is given up (declared down, or we fenced): what it had queued or in flight is dropped. */
  close(ch: Channel): void {
    ch.closed = true;
    if (ch.token !== 0) this.#acks.delete(ch.token);
    ch.token = 0;
    ch.data = undefined;
    ch.queue = [];
    ch.inFlight = null;
    ch.peer.channel = undefined;
    // The peer may still be listed until the caller removes it: look once it has.
    queueMicrotask(() => this.#wake());
  }
}
