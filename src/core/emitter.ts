/**
 * The event emitter every backplane class that has events extends: typed
 * events (eventemitter3), listeners that cannot hurt the emitter, and every
 * event also published on a `node:diagnostics_channel` channel.
 *
 * A listener is the user's code: when it throws, the throw is reported as a
 * process warning and the remaining listeners still run — the library's own
 * state (a restart in progress, a stop) is never cut short by it.
 */
import { channel } from "node:diagnostics_channel";
import { EventEmitter } from "eventemitter3";
import { errorText } from "./describe.js";
import { BackplaneError } from "./error.js";
import { describeValue } from "./timer.js";

/** What a backplane diagnostics channel carries: who emitted, which event, and its payload. */
export interface ChannelMessage {
  /** The emitter: a Supervisor, DynamicSupervisor, TaskSupervisor, Executor or Server. */
  readonly source: object;
  readonly event: string;
  readonly payload: unknown;
}

/**
 * `backplane:events`: every event of every backplane emitter, as
 * {@link ChannelMessage}. Publishing costs nothing while nobody subscribes.
 *
 * @example
 * ```ts
 * import { subscribe } from "node:diagnostics_channel";
 * subscribe("backplane:events", (m) => console.log((m as ChannelMessage).event));
 * ```
 */
export const EVENTS_CHANNEL = "backplane:events";
const events = channel(EVENTS_CHANNEL);

/**
 * `backplane:changes`: the emitter itself, once per event, with no payload.
 * For watchers that only need to know *what* changed (the observer): a
 * subscriber here makes no emitter build an event payload, so it costs the
 * observed app one publish per event and nothing more.
 *
 * @example
 * ```ts
 * subscribe("backplane:changes", (source) => dirty.add(source as object));
 * ```
 */
export const CHANGES_CHANNEL = "backplane:changes";
const changes = channel(CHANGES_CHANNEL);

/** The warning `type` under which a throwing listener is reported (`process.on("warning", …)`). */
export const LISTENER_WARNING = "BackplaneListenerWarning";

/**
 * An eventemitter3 emitter whose listeners cannot break it, and whose events
 * are also published on {@link EVENTS_CHANNEL}.
 *
 * @example
 * ```ts
 * class Pool extends Emitter<{ drained: [count: number] }> {
 *   drain() { this.emit("drained", 3); } // a throwing "drained" listener is reported, not raised
 * }
 * ```
 */
export class Emitter<Events extends EventEmitter.ValidEventTypes> extends EventEmitter<Events> {
  /**
   * True when an event would reach anyone (a listener or a subscriber of
   * {@link EVENTS_CHANNEL}): callers build payloads only then, so an
   * unwatched hot path allocates nothing. When only {@link CHANGES_CHANNEL}
   * is watched, its subscribers are told here that this emitter changed,
   * and no payload is built.
   */
  wants(event: EventEmitter.EventNames<Events>): boolean {
    if (events.hasSubscribers || this.listenerCount(event) > 0) return true;
    if (changes.hasSubscribers) changes.publish(this);
    return false;
  }

  /** Add a listener; anything but a function is refused here, not when the event comes. */
  override on<T extends EventEmitter.EventNames<Events>>(event: T, fn: EventEmitter.EventListener<Events, T>, context?: unknown): this {
    return super.on(event, checkListener(fn), context);
  }

  override addListener<T extends EventEmitter.EventNames<Events>>(event: T, fn: EventEmitter.EventListener<Events, T>, context?: unknown): this {
    return super.addListener(event, checkListener(fn), context);
  }

  override once<T extends EventEmitter.EventNames<Events>>(event: T, fn: EventEmitter.EventListener<Events, T>, context?: unknown): this {
    return super.once(event, checkListener(fn), context);
  }

  /**
   * Call every listener of `event` as eventemitter3 would (a `once` listener
   * is removed before it runs, each with the `context` it was added with);
   * one that throws is reported and the rest still run.
   */
  override emit<T extends EventEmitter.EventNames<Events>>(event: T, ...args: EventEmitter.EventArgs<Events, T>): boolean {
    if (events.hasSubscribers) publish(this, event as string, args[0]);
    if (changes.hasSubscribers) changes.publish(this);
    // eventemitter3's own table: { fn, context, once }, or an array of them once there are two.
    const table = (this as unknown as { _events: Record<string | symbol, Entry | Entry[] | undefined> })._events;
    const found = table[PREFIX === false ? (event as string | symbol) : `${PREFIX}${String(event)}`];
    if (found === undefined) return false;
    if (!Array.isArray(found)) {
      this.#call(event, found, args);
      return true;
    }
    for (const entry of found.slice()) this.#call(event, entry, args);
    return true;
  }

  #call(event: EventEmitter.EventNames<Events>, entry: Entry, args: unknown[]): void {
    if (entry.once) this.removeListener(event, entry.fn as never, undefined, true);
    try {
      entry.fn.apply(entry.context, args);
    } catch (error) {
      reportListenerError(this, `a "${String(event)}" listener`, error);
    }
  }

}

// A subscriber that throws is Node's business: diagnostics_channel rethrows it on its own tick, never into this call.
/** One listener in eventemitter3's table. */
interface Entry {
  fn: (...args: unknown[]) => unknown;
  context: unknown;
  once: boolean;
}

/** eventemitter3 prefixes event names with "~" where objects cannot be made without a prototype (never on Node). */
const PREFIX = (EventEmitter as unknown as { prefixed: string | false }).prefixed;

function checkListener<F>(fn: F): F {
  if (typeof fn !== "function") throw new BackplaneError("invalid-argument", `an event listener must be a function, not ${describeValue(fn)}`);
  return fn;
}

/** @internal Whether anyone subscribes to {@link EVENTS_CHANNEL} (no side effect, unlike `wants`). */
export function eventsWatched(): boolean {
  return events.hasSubscribers;
}

function publish(source: object, event: string, payload: unknown): void {
  events.publish({ source, event, payload } satisfies ChannelMessage);
}

/**
 * Report a user callback that threw (`what`: `a "record" listener`, `the
 * onExit callback`) as a process warning, without letting it reach the
 * library's own control flow.
 *
 * @example
 * ```ts
 * try { callback(value); } catch (e) { reportListenerError(this, "the call's callback", e); }
 * ```
 */
export function reportListenerError(source: object, what: string, error: unknown): void {
  // Must never throw itself: it is the last line between a user's callback and the library's state.
  let owner = "an emitter";
  let detail: string | undefined;
  try {
    const name = (source as { name?: unknown }).name;
    owner = typeof name === "string" ? `"${name}"` : source.constructor.name;
  } catch {}
  try {
    const stack = error instanceof Error ? error.stack : undefined;
    detail = typeof stack === "string" ? stack : undefined;
  } catch {}
  try {
    process.emitWarning(`${what} of ${owner} threw: ${errorText(error)}`, { type: LISTENER_WARNING, ...(detail !== undefined && { detail }) });
  } catch {}
}
