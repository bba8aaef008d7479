/**
 * `watch(p)`: race a promise against the device's next message.
 */
import { LinkError } from "./link-error.js";
import type { Message } from "./message.js";
import { isClosed, type Plugboard, type RunSink, take } from "./plugboard.js";

/**
 * Which came first in {@link Device.watch}: the promise's value, or a message.
 *
 * @example
 * ```ts
 * const w = await device.watch(fetchJob());
 * if (w.kind === "messaged") console.log("interrupted by", w.message);
 * else use(w.value);
 * ```
 */
export type Watched<T> = { readonly kind: "completed"; readonly value: T } | { readonly kind: "messaged"; readonly message: Message };

class WatchRun<T> implements RunSink {
  settled = false;
  constructor(
    readonly board: Plugboard,
    readonly resolve: (w: Watched<T>) => void,
    readonly reject: (e: unknown) => void,
  ) {}

  deliver(message: Message | undefined): void {
    if (this.settled) return;
    this.settled = true;
    if (message !== undefined) this.resolve({ kind: "messaged", message });
    else {
      // No message can come any more, and the promise alone may never settle: refuse rather than hang.
      this.reject(new LinkError("device-down", `device ${this.board.id} disconnected while it was watched`));
    }
  }

  completed(value: T): void {
    if (this.settled) return;
    this.settled = true;
    if (this.board.sink === this) this.board.sink = null;
    this.resolve({ kind: "completed", value });
  }

  failed(error: unknown): void {
    if (this.settled) return; // a message won: the promise's late rejection is dropped, never unhandled
    this.settled = true;
    if (this.board.sink === this) this.board.sink = null;
    this.reject(error);
  }
}

/** `work` will not be waited for: its rejection, if it comes, is dropped rather than left unhandled. */
function abandon(work: PromiseLike<unknown>): void {
  Promise.resolve(work).then(undefined, () => {});
}

/** @internal */
export function runWatch<T>(b: Plugboard, work: PromiseLike<T>): Promise<Watched<T>> {
  const queued = take(b);
  if (queued !== undefined) {
    // The message was there first; the promise is not waited for, and its rejection is not left unhandled.
    abandon(work);
    return Promise.resolve({ kind: "messaged", message: queued });
  }
  if (isClosed(b)) {
    abandon(work);
    return Promise.reject(new LinkError("device-down", `device ${b.id} has disconnected and cannot be watched`));
  }
  if (b.sink !== null) {
    abandon(work);
    return Promise.reject(new LinkError("busy", `device ${b.id} already has a reader (receive, watch or manage)`));
  }
  return new Promise<Watched<T>>((resolve, reject) => {
    const run = new WatchRun<T>(b, resolve, reject);
    b.sink = run;
    Promise.resolve(work).then(
      (value) => run.completed(value),
      (error: unknown) => run.failed(error),
    );
  });
}
