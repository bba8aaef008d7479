import type { DeviceId } from "./device-id.js";
import { Fault, isFault } from "./fault.js";
import { LinkError } from "./link-error.js";
import type { LinkMode } from "./link-mode.js";
import { boardOf, checkMode, Line } from "./line.js";
import { type ManageOptions, startManaged, type Work } from "./manage.js";
import type { Message } from "./message.js";
import { detectDrop, disconnect, isClosed, link, Plugboard, take, unlink } from "./plugboard.js";
import { runWatch, type Watched } from "./watch.js";

/** Options of `new Device()`. */
export interface DeviceOptions {
  /** A name for logs and dumps; not unique, not a registry entry. */
  name?: string;
  /**
   * Tell this device's listeners with fault `drop` if the Device object is
   * garbage-collected while still connected. Opt-in: registration costs
   * about 0.5 µs.
   */
  detectDrop?: boolean;
}

const DRAINED: Promise<undefined> = Promise.resolve(undefined);

// A static executor: `receive()` then allocates the promise and its resolver, nothing of ours.
let captured: ((message: Message | undefined) => void) | undefined;
function captureResolve(resolve: (message: Message | undefined) => void): void {
  captured = resolve;
}

/**
 * An owned presence on the backplane: one per task. It has a mailbox of
 * control messages and a set of links; when it disconnects, every device
 * that chose to hear about it is sent `{ kind: "disconnected", from, fault }`.
 *
 * @example
 * ```ts
 * const watcher = new Device({ name: "watcher" });
 * const worker = new Device({ name: "worker" });
 * watcher.link(worker, "monitor");
 * worker.manage(async () => { throw new Error("boom"); }).catch(() => {});
 * const message = await watcher.receive();
 * // { kind: "disconnected", from: worker.id, fault: { kind: "error", error: Error("boom") } }
 * ```
 */
export class Device implements AsyncIterable<Message>, Disposable {
  /** @internal */
  readonly _board: Plugboard;

  constructor(options?: DeviceOptions) {
    let name: string | undefined;
    if (options !== undefined) {
      if (typeof options !== "object" || options === null) throw new LinkError("invalid-argument", "Device options must be an object");
      name = options.name;
      if (name !== undefined && typeof name !== "string") throw new LinkError("invalid-argument", "Device name must be a string");
    }
    this._board = new Plugboard(name);
    if (options?.detectDrop === true) detectDrop(this, this._board);
  }

  /** Unique for the process lifetime, never reused. */
  get id(): DeviceId {
    return this._board.id;
  }

  get name(): string | undefined {
    return this._board.name;
  }

  /** False once it has disconnected. */
  get isConnected(): boolean {
    return !isClosed(this._board);
  }

  /** After it disconnected: the fault it ended with (`undefined` for a clean exit, or while connected). */
  get fault(): Fault | undefined {
    return this._board.fault;
  }

  /**
   * A weak handle to this device: it can send, link and check liveness, and
   * never keeps the device alive.
   *
   * @example
   * ```ts
   * const line = device.line();
   * line.send(Message.shutdown(me.id));
   * ```
   */
  line(): Line {
    return new Line(this._board);
  }

  /**
   * Link this device with `other`: `monitor` (this hears when other
   * disconnects), `notify` (other hears when this disconnects) or `peer`
   * (both). Modes add up; linking twice is linking once. Monitoring a device
   * that has already disconnected sends its ending at once.
   *
   * @throws {LinkError} `self-link`, `device-down` (this device has disconnected), `invalid-argument`.
   * @example
   * ```ts
   * supervisor.link(worker, "monitor");
   * ```
   */
  link(other: Device | Line, mode: LinkMode): void {
    link(this._board, boardOf(other), checkMode(mode));
  }

  /**
   * Undo `link(other, mode)`: `unlink(x, "notify")` after `link(x, "peer")`
   * leaves a monitor.
   *
   * @example
   * ```ts
   * a.unlink(b, "peer");
   * ```
   */
  unlink(other: Device | Line, mode: LinkMode): void {
    unlink(this._board, boardOf(other), checkMode(mode));
  }

  /**
   * Disconnect now, telling every listener. No fault means a clean exit.
   * Returns true if this call disconnected it, false if it already had.
   * Messages already queued can still be received afterwards.
   *
   * @example
   * ```ts
   * device.disconnect(Fault.error(new Error("lost connection")));
   * ```
   */
  disconnect(fault?: Fault): boolean {
    if (fault !== undefined && !isFault(fault)) throw new LinkError("invalid-argument", "disconnect() takes a Fault or nothing");
    return disconnect(this._board, fault);
  }

  /**
   * The oldest queued message, without waiting; `undefined` if none.
   *
   * @example
   * ```ts
   * for (let m = device.tryReceive(); m; m = device.tryReceive()) handle(m);
   * ```
   */
  tryReceive(): Message | undefined {
    return take(this._board);
  }

  /**
   * The next message; resolves `undefined` once the device has disconnected
   * and its mailbox is drained. One reader at a time: while a receive, watch
   * or manage is waiting, another rejects with `LinkError` `busy`.
   *
   * @example
   * ```ts
   * const message = await device.receive();
   * ```
   */
  receive(): Promise<Message | undefined> {
    const b = this._board;
    const queued = take(b);
    if (queued !== undefined) return Promise.resolve(queued);
    if (isClosed(b)) return DRAINED;
    if (b.sink !== null) return Promise.reject(new LinkError("busy", `device ${b.id} already has a reader (receive, watch or manage)`));
    const promise = new Promise<Message | undefined>(captureResolve);
    b.sink = captured!;
    return promise;
  }

  /**
   * Iterate over messages until the device has disconnected and its mailbox
   * is drained. Breaking out of the loop leaves the device as it is.
   *
   * @example
   * ```ts
   * for await (const message of device) console.log(message);
   * ```
   */
  async *[Symbol.asyncIterator](): AsyncIterator<Message> {
    for (;;) {
      const message = await this.receive();
      if (message === undefined) return;
      yield message;
    }
  }

  /**
   * Still connected? Disconnect with fault `drop`: leaving a scope without
   * ending on purpose is not a clean exit. Disposing twice does nothing.
   *
   * @example
   * ```ts
   * { using device = new Device(); … } // listeners hear fault "drop" unless it ended first
   * ```
   */
  [Symbol.dispose](): void {
    disconnect(this._board, Fault.drop);
  }

  /**
   * Race `work` against the next message. A message already queued wins at
   * once. Rejects with `LinkError` `device-down` if the device disconnects
   * while watched (no message can come, and waiting on `work` alone could hang).
   *
   * @example
   * ```ts
   * const w = await device.watch(job);
   * if (w.kind === "completed") use(w.value);
   * ```
   */
  watch<T>(work: PromiseLike<T>): Promise<Watched<T>> {
    return runWatch(this._board, work);
  }

  /**
   * Run `work(signal)` while listening to the mailbox, and end the device
   * with it: success disconnects cleanly and resolves the value; a throw
   * disconnects with fault `error` and rejects with a `Crash`; a shutdown
   * message, a linked device's fault, a timeout or `options.signal` aborting
   * end the run early, abort `signal`, and abandon the work (its late result
   * is dropped, never unhandled).
   *
   * The signal is only created for work that could read it: `() => …` gets
   * none; `(signal) => …`, `(...args) => …` and default parameters get one.
   *
   * @example
   * ```ts
   * const body = await device.manage(async (signal) => (await fetch(url, { signal })).text(), { timeout: 5_000 });
   * ```
   */
  manage<T>(work: Work<T>, options?: ManageOptions): Promise<T> {
    return startManaged(this._board, work, options, "disconnect");
  }

  /**
   * `manage`, except that on success the device stays connected, so it can
   * run more work or receive more messages.
   *
   * @example
   * ```ts
   * const config = await device.partManage(loadConfig);
   * await device.manage(() => serve(config));
   * ```
   */
  partManage<T>(work: Work<T>, options?: ManageOptions): Promise<T> {
    return startManaged(this._board, work, options, "stay");
  }
}
