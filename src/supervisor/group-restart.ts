/**
 * Carrying out one restart decision: stop the group's other members in
 * reverse start order, wait the backoff delay, start them again in order.
 * A small state machine driven by events — a member is down, a delay
 * elapsed, a start settled — so the supervisor never waits inside a
 * restart and serves its API between any two steps (OTP's supervisor gets
 * the same by sending itself `try_again_restart`).
 *
 * A failed start is counted against the intensity (by the host) and tried
 * again on a later turn of the event loop: one-for-all stops what this
 * attempt started and starts the whole group again; rest-for-one and
 * one-for-one resume at the child that failed (OTP's
 * `one_for_all_other_child_fails_restart` and its rest_for_one twin).
 */
import type { Child, StartOutcome } from "./child.js";
import type { Strategy } from "./child-spec.js";
import { clearAnyTimeout, setAnyTimeout, type AnyTimer } from "../core/timer.js";

/** What a restart needs from its supervisor. */
export interface RestartHost {
  readonly strategy: Strategy;
  /** The supervisor's device id: who asks members to stop. */
  readonly deviceId: number;
  /** A member is not coming back (temporary; or ignored under a DynamicSupervisor): drop its spec now. */
  forget(child: Child): void;
  /** Forget a member whose start was ignored, when its supervisor keeps no ignored children. */
  ignored(child: Child): void;
  /** A start of `child` failed: count it; the delay before trying again, or undefined when the supervisor gave up. */
  retryDelay(child: Child): number | undefined;
  /** The restart has nothing more to do. */
  finished(plan: GroupRestart): void;
}

/** Where a restart is. */
type Phase =
  /** Stopping members in reverse order; `child` is the one going down now. */
  | { readonly kind: "stopping"; readonly child: Child | undefined }
  /** Waiting out a backoff delay, or the turn before a retry. */
  | { readonly kind: "waiting"; readonly timer: AnyTimer | ReturnType<typeof setImmediate>; readonly immediate: boolean }
  /** Starting members in order; `child` is the one whose init is in flight. */
  | { readonly kind: "starting"; readonly child: Child }
  | { readonly kind: "done" };

const DONE: Phase = { kind: "done" };

/** Timer callback with the restart as its argument: no closure per restart. */
function elapsed(plan: GroupRestart): void {
  plan.elapsed();
}
const BEGIN: Phase = { kind: "stopping", child: undefined };

export class GroupRestart {
  /** The members in start order: the child that failed and the siblings its strategy takes along. */
  readonly members: Child[];
  /** ms waited before the current attempt (for `child-restarted`). */
  delay: number;
  readonly #host: RestartHost;
  #phase: Phase = BEGIN;
  /** Whether the next wait is before a retry (a separate turn of the event loop even without backoff). */
  #retrying = false;

  constructor(host: RestartHost, members: Child[], delay: number) {
    this.#host = host;
    this.members = members;
    this.delay = delay;
  }

  get active(): boolean {
    return this.#phase.kind !== "done";
  }

  /**
   * Does this restart hold `child` — still to be stopped, or down and
   * waiting for its start, or being started by it? A member it has already
   * started again is on its own: a new exit of it is a new decision.
   */
  holds(child: Child): boolean {
    if (!this.active || !this.members.includes(child)) return false;
    if (this.#phase.kind === "stopping") return true;
    const life = child.life;
    return (life.kind === "restarting" && life.plan === this) || (life.kind === "starting" && life.owner === this);
  }

  /** Begin: members already down wait for their start; the others are stopped from the last one back. */
  begin(): void {
    for (const m of this.members) if (!m.isUp) m.awaitRestart(this);
    this.#stopNext();
  }

  /** A member that this restart had not stopped yet went down on its own: no decision, it simply waits. */
  fell(child: Child): void {
    if (child.spec.restart === "temporary") this.drop(child);
    else child.awaitRestart(this);
  }

  /** `child` leaves this restart (terminated, deleted, or forgotten): it will not be started by it. */
  drop(child: Child): void {
    const at = this.members.indexOf(child);
    if (at < 0) return;
    this.members.splice(at, 1);
    child.release();
    // Its start in flight is being cancelled by whoever dropped it: go on with the next member now.
    if (this.#phase.kind === "starting" && this.#phase.child === child) this.#startNext();
  }

  /** The supervisor is stopping, or a newer restart took these members over: let go of everything. */
  cancel(): void {
    const phase = this.#phase;
    if (phase.kind === "waiting") {
      if (phase.immediate) clearImmediate(phase.timer as ReturnType<typeof setImmediate>);
      else clearAnyTimeout(phase.timer as AnyTimer);
    }
    this.#phase = DONE;
    for (const m of this.members) m.release();
  }

  /** A start this restart made has settled (a start through `init`). */
  startSettled(child: Child, outcome: StartOutcome): void {
    const phase = this.#phase;
    if (phase.kind !== "starting" || phase.child !== child) return; // not the start this restart waits for
    switch (outcome.kind) {
      case "started":
      case "cancelled":
        this.#startNext();
        return;
      case "ignored":
        this.#host.ignored(child);
        this.#startNext();
        return;
      case "failed": {
        child.awaitRestart(this);
        const delay = this.#host.retryDelay(child);
        if (delay === undefined || !this.active) return; // gave up: the supervisor is ending
        this.delay = delay;
        this.#retrying = true;
        // one-for-all stops what this attempt started, then brings the whole group back in order;
        // the others resume at the child that failed (the ones before it are running: skipped).
        if (this.#host.strategy === "one-for-all") this.#stopNext();
        else this.#wait();
      }
    }
  }

  // ------------------------------------------------------------------ steps

  /** Stop the last member still up (one at a time, from the end back); none left: wait, then start. */
  #stopNext(): void {
    for (let i = this.members.length - 1; i >= 0; i--) {
      const m = this.members[i]!;
      if (!m.isUp) continue;
      this.#phase = { kind: "stopping", child: m };
      void m.stop(this.#host.deviceId, { by: "restart", plan: this }).then(() => this.#stopped(m));
      return;
    }
    this.#wait();
  }

  /** A member this restart asked to stop is down. */
  #stopped(child: Child): void {
    const phase = this.#phase;
    if (phase.kind !== "stopping" || phase.child !== child) return; // cancelled meanwhile
    if (this.members.includes(child)) {
      if (child.spec.restart === "temporary") {
        this.drop(child); // temporary siblings are not brought back
        this.#host.forget(child);
      } else child.awaitRestart(this);
    }
    this.#stopNext();
  }

  /** Wait the delay (a retry always waits at least one turn of the event loop), then start. */
  #wait(): void {
    const delay = this.delay;
    if (delay > 0) this.#phase = { kind: "waiting", timer: setAnyTimeout(elapsed, delay, this), immediate: false };
    else if (this.#retrying) this.#phase = { kind: "waiting", timer: setImmediate(elapsed, this), immediate: true };
    else this.#startNext();
  }

  /** @internal The delay (or the turn before a retry) is over. */
  elapsed(): void {
    if (this.#phase.kind === "waiting") this.#startNext();
  }

  /**
   * Start, in order, every member waiting for this restart; a start through
   * init is waited for (its settlement comes back as an event). The next
   * member is looked up afresh each time: a listener or a child's run may
   * terminate or delete members while this runs.
   */
  #startNext(): void {
    for (let m = this.#nextToStart(); m !== undefined; m = this.#nextToStart()) {
      m.restarts++;
      void m.start(this);
      if (m.life.kind === "starting") {
        this.#phase = { kind: "starting", child: m };
        return; // init in flight: startSettled continues
      }
      if (!this.active) return; // a listener stopped the supervisor
    }
    this.#phase = DONE;
    this.#host.finished(this);
  }

  /** The first member, in start order, that is down and held by this restart. */
  #nextToStart(): Child | undefined {
    for (const m of this.members) {
      const life = m.life;
      if (life.kind === "restarting" && life.plan === this) return m;
    }
    return undefined;
  }
}
