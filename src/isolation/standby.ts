/**
 * A warm standby: one worker started ahead of need, its module already
 * loaded, so that the replacement of a killed worker costs a message, not
 * the ~60 ms of starting a thread and loading a module.
 *
 * One `Standby` belongs to one child spec (`isolated`, `isolatedServer` with
 * `standby`): every incarnation of the spec takes its worker from it, and
 * after each adoption a new spare is started in the background. Lifetime:
 * the spare is always unref'd (it never keeps the process alive). When the
 * last incarnation of the spec ends after a requested stop (a supervisor's
 * stop, `terminateChild`), the spare ends at the next timer turn: a stop is
 * normally final, and nothing of the spec should outlive it. When it ends
 * by a fault or by itself, the spare waits `linger` ms for the restart
 * that normally follows (a supervisor's backoff included, if `linger` is
 * set above it). `close()` ends it at once.
 */
import { type AnyTimer, clearAnyTimeout, setAnyTimeout } from "../core/timer.js";
import { WorkerHandle, type WorkerSettings } from "./worker-handle.js";

/**
 * @internal How long after an adoption the next spare is started: starting a thread
 * costs the main thread 0.5–2.5 ms and a core for ~60 ms, which must not
 * land on the adopted worker's first calls (measured: it doubles their median).
 */
export const REFILL_DELAY_MS = 50;

/** @internal */
export class Standby {
  #spare: WorkerHandle | undefined = undefined;
  /** Incarnations that hold a worker taken from here and have not ended. */
  #live = 0;
  readonly #linger: number;
  #lingerTimer: AnyTimer = undefined;
  #refill: ReturnType<typeof setTimeout> | undefined = undefined;
  #refillSettings: WorkerSettings | undefined = undefined;
  #readyWaiters: (() => void)[] = [];
  /** Closed (linger over, or `close()`): no spare is started until the next `take`. */
  #closed = false;

  constructor(linger: number) {
    this.#linger = linger;
  }

  /** A spare of the same settings, its module loaded (or loading); undefined when there is none. The caller owns it now. */
  take(settings: WorkerSettings): WorkerHandle | undefined {
    this.#live++;
    this.#closed = false;
    clearAnyTimeout(this.#lingerTimer);
    this.#lingerTimer = undefined;
    const spare = this.#spare;
    this.#spare = undefined;
    if (spare === undefined) return undefined;
    // Another version (a deploy), or a spare that failed to load or died: a fresh start is the honest answer.
    if (spare.settings !== settings || !spare.isAlive || spare.loadError !== undefined) {
      spare.kill();
      return undefined;
    }
    return spare;
  }

  /** Start the next spare, {@link REFILL_DELAY_MS} later: off the caller's path (the adopted worker's first call must not wait behind a thread start). */
  refill(settings: WorkerSettings): void {
    this.#refillSettings = settings;
    if (this.#closed || this.#refill !== undefined || this.#spare !== undefined) return;
    this.#refill = setTimeout(this.#start, REFILL_DELAY_MS);
    this.#refill.unref();
  }

  /** The settings changed (a deploy): a spare of the old ones is ended, and one of the new ones started. */
  renew(settings: WorkerSettings): void {
    const spare = this.#spare;
    if (spare !== undefined && spare.settings !== settings) {
      this.#spare = undefined;
      spare.kill();
    }
    this.refill(settings);
  }

  /**
   * An incarnation that took from here has ended (`stopped`: after a
   * requested stop). With none left, the spare goes at the next timer turn
   * after a stop, `linger` ms after anything else.
   */
  release(stopped: boolean): void {
    if (this.#live > 0) this.#live--;
    if (this.#live > 0) return;
    if (this.#lingerTimer !== undefined) {
      if (!stopped) return;
      clearAnyTimeout(this.#lingerTimer); // a stop shortens a linger already running
    }
    // A zero delay, not an immediate end: a restart taken in this same turn (restartChild right after terminateChild) still finds the spare.
    this.#lingerTimer = setAnyTimeout(this.#expire, stopped ? 0 : this.#linger);
    this.#lingerTimer?.unref(); // a lingering spare never keeps the process alive, nor does its timer
  }

  /** End the spare now, and start no other until the next `take`. */
  close(): void {
    this.#closed = true;
    clearAnyTimeout(this.#lingerTimer);
    this.#lingerTimer = undefined;
    if (this.#refill !== undefined) clearTimeout(this.#refill);
    this.#refill = undefined;
    const spare = this.#spare;
    this.#spare = undefined;
    spare?.kill();
  }

  /** A spare is loaded and waiting. */
  get ready(): boolean {
    return this.#spare?.loaded === true;
  }

  /** Resolves once a spare is loaded and waiting (for tests and the bench: an event, not a delay). */
  whenReady(): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise((resolve) => this.#readyWaiters.push(resolve));
  }

  readonly #expire = (): void => {
    this.#lingerTimer = undefined;
    if (this.#live === 0) this.close();
  };

  readonly #start = (): void => {
    this.#refill = undefined;
    const settings = this.#refillSettings!;
    if (this.#spare !== undefined || this.#closed) return; // closed meanwhile
    let spare: WorkerHandle;
    try {
      spare = new WorkerHandle(settings);
    } catch {
      return; // the next incarnation's own start reports this error; a spare has no one to report it to
    }
    spare.setRef(false);
    this.#spare = spare;
    // A spare that dies or cannot load is dropped (not restarted here: that could loop); the next take starts fresh.
    spare.listen(
      (m) => {
        if (m.t === "ready" && this.#spare === spare) for (const resolve of this.#readyWaiters.splice(0)) resolve();
        if (m.t === "fatal" && this.#spare === spare) {
          this.#spare = undefined;
          spare.kill();
        }
      },
      () => {
        if (this.#spare === spare) this.#spare = undefined;
      },
    );
  };
}
