/**
 * The state a device shares with its lines: mailbox, links and ending.
 *
 * Three roles, as in the Rust crate: the owned `Device`, the weak `Line`, and
 * this plugboard that both point at. Nothing here points back at a Device
 * object, so holding lines (or being linked) never keeps one alive, and
 * `detectDrop` can notice when it is collected.
 *
 * Everything on the hot path (link, deliver, disconnect) is a plain function
 * over plain fields: no closures, no per-message allocation beyond the one
 * notification object a disconnect shares between all its listeners.
 */
import type { DeviceId } from "./device-id.js";
import { nextDeviceId } from "./device-id.js";
import { Fault } from "./fault.js";
import { LinkError } from "./link-error.js";
import type { LinkMode } from "./link-mode.js";
import type { Message } from "./message.js";

/** Whoever is waiting on the mailbox: a `receive()` resolver, or a manage/watch run. */
export type Sink = ((message: Message | undefined) => void) | RunSink;

/** A reader that stays installed across messages (manage, watch). `undefined` = the device disconnected. */
export interface RunSink {
  deliver(message: Message | undefined): void;
}

/**
 * Messages waiting beyond the first. `take` advances `head` instead of
 * shifting the array, so draining a long mailbox is linear; made only once
 * a second message waits.
 */
class Backlog {
  readonly items: Message[];
  head = 0;
  constructor(first: Message, second: Message) {
    this.items = [first, second];
  }
}

/** A set of plugboards that is usually empty or holds one: kept without a `Set` until a second member. */
type Peers = Plugboard | Set<Plugboard> | null;

const CLOSED = 1;
const DETECT_DROP = 2;

export class Plugboard {
  readonly id: DeviceId;
  readonly name: string | undefined;
  flags = 0;
  /** Queued messages, oldest first: one message, or a Backlog once a second one waits. */
  inbox: Message | Backlog | null = null;
  /** The reader waiting for the next message, if any. */
  sink: Sink | null = null;
  /** Who to tell when this disconnects. */
  watchers: Peers = null;
  /** Whose `watchers` this is in, so a disconnect can leave them and no dead board lingers. */
  watching: Peers = null;
  /** The fault it ended with; meaningful once closed. */
  fault: Fault | undefined = undefined;

  constructor(name: string | undefined) {
    this.id = nextDeviceId();
    this.name = name;
  }
}

// ---------------------------------------------------------------- reactions
// What a managed run does about a fatal message (disconnect, cascade) runs
// from this queue, not from inside the disconnect that sent the message:
// every listener of a device hears its ending before any of them reacts
// (the failure is heard before the cascades it causes), and a long chain of
// peers cascades iteratively instead of one stack frame per device.

/** Something to do once the current disconnect has told all its listeners. */
export interface Reaction {
  react(): void;
}

const reactions: Reaction[] = [];
let draining = false;

export function schedule(reaction: Reaction): void {
  reactions.push(reaction);
  if (!draining) drain();
}

function drain(): void {
  draining = true;
  try {
    for (let i = 0; i < reactions.length; i++) reactions[i]!.react();
  } finally {
    reactions.length = 0;
    draining = false;
  }
}

export function isClosed(b: Plugboard): boolean {
  return (b.flags & CLOSED) !== 0;
}

// ---------------------------------------------------------------- drop detection

const dropRegistry = new FinalizationRegistry<Plugboard>((b) => {
  disconnect(b, Fault.drop);
});

/** Tell `b`'s listeners with fault `drop` if `owner` is collected while `b` is still connected. */
export function detectDrop(owner: object, b: Plugboard): void {
  b.flags |= DETECT_DROP;
  dropRegistry.register(owner, b, b);
}

// ---------------------------------------------------------------- peers sets

function addPeer(peers: Peers, b: Plugboard): Peers {
  if (peers === null) return b;
  if (peers === b) return peers;
  if (peers instanceof Plugboard) {
    const set = new Set<Plugboard>();
    set.add(peers);
    set.add(b);
    return set;
  }
  peers.add(b);
  return peers;
}

function removePeer(peers: Peers, b: Plugboard): Peers {
  if (peers === b) return null;
  if (peers instanceof Set && peers.delete(b) && peers.size === 0) return null;
  return peers;
}

// ---------------------------------------------------------------- links

/** `watcher` hears when `target` disconnects. */
function watch(watcher: Plugboard, target: Plugboard): void {
  if (isClosed(target)) {
    // Erlang's noproc rule: a monitor of a dead device hears its ending at once.
    deliver(watcher, endingOf(target));
    return;
  }
  target.watchers = addPeer(target.watchers, watcher);
  watcher.watching = addPeer(watcher.watching, target);
}

function unwatch(watcher: Plugboard, target: Plugboard): void {
  target.watchers = removePeer(target.watchers, watcher);
  watcher.watching = removePeer(watcher.watching, target);
}

export function link(from: Plugboard, to: Plugboard, mode: LinkMode): void {
  if (from === to) throw new LinkError("self-link", `device ${from.id} cannot link to itself`);
  if (isClosed(from)) throw new LinkError("device-down", `device ${from.id} has disconnected and cannot link`);
  switch (mode) {
    case "monitor":
      watch(from, to);
      return;
    case "notify":
      // Notify towards a disconnected device does nothing: nobody is left to tell.
      if (!isClosed(to)) watch(to, from);
      return;
    case "peer":
      if (!isClosed(to)) watch(to, from);
      watch(from, to);
      return;
    default:
      throw invalidMode(mode);
  }
}

export function unlink(from: Plugboard, to: Plugboard, mode: LinkMode): void {
  if (from === to) throw new LinkError("self-link", `device ${from.id} cannot unlink from itself`);
  switch (mode) {
    case "monitor":
      unwatch(from, to);
      return;
    case "notify":
      unwatch(to, from);
      return;
    case "peer":
      unwatch(from, to);
      unwatch(to, from);
      return;
    default:
      throw invalidMode(mode);
  }
}

function invalidMode(mode: unknown): LinkError {
  return new LinkError("invalid-argument", `link mode must be "monitor", "notify" or "peer", not ${String(mode)}`);
}

// ---------------------------------------------------------------- mailbox

/** Put `message` in `b`'s mailbox, or hand it to the waiting reader. False once `b` has disconnected. */
export function deliver(b: Plugboard, message: Message): boolean {
  if ((b.flags & CLOSED) !== 0) return false;
  const sink = b.sink;
  if (sink !== null) {
    // A reader takes one message; a run that wants more installs itself again.
    b.sink = null;
    if (typeof sink === "function") sink(message);
    else sink.deliver(message);
    return true;
  }
  const inbox = b.inbox;
  if (inbox === null) b.inbox = message;
  else if (inbox instanceof Backlog) inbox.items.push(message);
  else b.inbox = new Backlog(inbox, message);
  return true;
}

/** Take the oldest queued message, if any. */
export function take(b: Plugboard): Message | undefined {
  const inbox = b.inbox;
  if (inbox === null) return undefined;
  if (!(inbox instanceof Backlog)) {
    b.inbox = null;
    return inbox;
  }
  const items = inbox.items;
  const message = items[inbox.head];
  items[inbox.head++] = undefined as unknown as Message; // let it be collected
  if (inbox.head === items.length) b.inbox = null;
  return message;
}

// ---------------------------------------------------------------- disconnect

/** The message every listener of a closed board hears. */
function endingOf(b: Plugboard): Message {
  const fault = b.fault;
  return fault === undefined ? { kind: "disconnected", from: b.id } : { kind: "disconnected", from: b.id, fault };
}

/**
 * The one place a device ends: close the mailbox, leave the boards it
 * watched, wake its reader, tell everyone who hears about it. Returns false
 * if it had already ended.
 */
export function disconnect(b: Plugboard, fault: Fault | undefined): boolean {
  const flags = b.flags;
  if ((flags & CLOSED) !== 0) return false;
  b.flags = flags | CLOSED;
  b.fault = fault;
  if ((flags & DETECT_DROP) !== 0) dropRegistry.unregister(b);

  const watching = b.watching;
  if (watching !== null) {
    b.watching = null;
    if (watching instanceof Plugboard) watching.watchers = removePeer(watching.watchers, b);
    else for (const target of watching) target.watchers = removePeer(target.watchers, b);
  }

  const sink = b.sink;
  if (sink !== null) {
    b.sink = null;
    if (typeof sink === "function") sink(undefined);
    else sink.deliver(undefined);
  }

  const watchers = b.watchers;
  if (watchers !== null) {
    b.watchers = null;
    const ending = endingOf(b);
    if (watchers instanceof Plugboard) {
      watchers.watching = removePeer(watchers.watching, b);
      deliver(watchers, ending);
    } else {
      const outer = draining;
      draining = true; // hold reactions until every listener has heard
      try {
        for (const w of watchers) {
          w.watching = removePeer(w.watching, b);
          deliver(w, ending);
        }
      } finally {
        if (!outer) {
          draining = false;
          if (reactions.length > 0) drain();
        }
      }
    }
  }
  return true;
}
