import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { BroadcastChannel } from "node:worker_threads";
import { afterEach, describe, expect, it, vi } from "vitest";
import { call, Fault, type IsolatedServer, isolated, isolatedServer, Registry, type SupervisorEvents, Supervisor } from "../../src/index.js";
import { REFILL_DELAY_MS, Standby } from "../../src/isolation/standby.js";

const announce = fileURLToPath(new URL("../fixtures/announce.mjs", import.meta.url));
const v2 = fileURLToPath(new URL("../fixtures/server-v2.mjs", import.meta.url));
const index = fileURLToPath(new URL("../../src/index.ts", import.meta.url));

afterEach(() => {
  vi.useRealTimers();
});

function nextEvent<E extends keyof SupervisorEvents>(sup: Supervisor, event: E): Promise<SupervisorEvents[E][0]> {
  return new Promise((resolve) => sup.once(event, resolve as never));
}

/** Thread ids announced by announce.mjs, per event, awaited as they come. */
function announcements() {
  const channel = new BroadcastChannel("backplane-test-announce");
  const seen: { event: string; threadId: number }[] = [];
  const waiters: (() => void)[] = [];
  channel.onmessage = (m) => {
    seen.push((m as MessageEvent).data as { event: string; threadId: number });
    for (const w of waiters.splice(0)) w();
  };
  const of = (event: string) => seen.filter((s) => s.event === event).map((s) => s.threadId);
  return {
    async nth(n: number, event = "loaded"): Promise<number> {
      while (of(event).length < n) await new Promise<void>((resolve) => waiters.push(resolve));
      return of(event)[n - 1]!;
    },
    close: () => channel.close(),
  };
}

describe("warm standby for supervised isolated children", () => {
  it("isolated server: after its worker is killed, the restarted server answers from the thread started before the kill", async () => {
    const heard = announcements();
    const registry = new Registry();
    const sup = new Supervisor({ children: [isolatedServer({ id: "s", module: announce, register: "s", registry, standby: true })] });
    try {
      await sup.start();
      const serving = await heard.nth(1);
      const spare = await heard.nth(2); // started once the first worker served
      expect((await call<string, { threadId: number }>("s", "who", { registry })).threadId).toBe(serving);
      const restarted = nextEvent(sup, "child-restarted");
      registry.whereis<IsolatedServer>("s")!.device.disconnect(Fault.killed); // kill it from outside: a fault, so a restart
      await restarted;
      const answer = await call<string, { threadId: number }>("s", "who", { registry, waitForName: 10_000 });
      expect(answer.threadId).toBe(spare);
      await heard.nth(3); // and a new spare is started for the next time
    } finally {
      await sup.stop();
      heard.close();
    }
  });

  it("isolated child: after its worker dies, the restarted child runs on the pre-started thread", async () => {
    const heard = announcements();
    const killer = new BroadcastChannel("backplane-test-announce");
    const sup = new Supervisor({ children: [isolated({ id: "c", module: announce, export: "child", standby: true })] });
    try {
      await sup.start();
      const first = await heard.nth(1, "running");
      const spare = await heard.nth(2, "loaded");
      expect(spare).not.toBe(first);
      const exited = nextEvent(sup, "child-exited");
      killer.postMessage({ event: "die", threadId: first });
      expect((await exited).fault).toMatchObject({ kind: "error", error: { exitCode: 3 } });
      expect(await heard.nth(2, "running")).toBe(spare);
    } finally {
      await sup.stop();
      killer.close();
      heard.close();
    }
  });

  it("a deploy replaces the spare: the restart after it serves the deployed version", async () => {
    const registry = new Registry();
    const heard = announcements();
    const sup = new Supervisor({ children: [isolatedServer({ id: "s", module: announce, register: "s", registry, standby: true })] });
    try {
      await sup.start();
      await heard.nth(2); // the spare of the first version exists
      await registry.whereis<IsolatedServer>("s")!.deploy(v2, { version: "2" });
      const restarted = nextEvent(sup, "child-restarted");
      registry.whereis<IsolatedServer>("s")!.device.disconnect(Fault.killed);
      await restarted;
      await expect(call("s", "hi", { registry, waitForName: 10_000 })).resolves.toBe("v2");
    } finally {
      await sup.stop();
      heard.close();
    }
  });
});

describe("the standby's lifetime", () => {
  const settings = { module: announce, export: "tid" };

  it("the spare ends `linger` ms after the last incarnation ended; a take within the linger adopts it", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const standby = new Standby(100);
    expect(standby.take(settings)).toBeUndefined(); // nothing warm yet: the caller starts its own
    standby.refill(settings);
    await vi.advanceTimersByTimeAsync(REFILL_DELAY_MS); // the spare starts a little after, off the adopter's path
    await standby.whenReady();
    standby.release(false); // the incarnation ended by a fault: a restart may follow
    await vi.advanceTimersByTimeAsync(99);
    expect(standby.ready).toBe(true);
    const adopted = standby.take(settings); // a restart within the linger
    expect(adopted?.loaded).toBe(true);
    adopted!.kill();
    standby.refill(settings);
    await vi.advanceTimersByTimeAsync(REFILL_DELAY_MS);
    await standby.whenReady();
    standby.release(false);
    await vi.advanceTimersByTimeAsync(100); // no restart came
    expect(standby.ready).toBe(false);
  });

  it("after a requested stop the spare ends at the next timer turn, even while a linger runs", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const standby = new Standby(60_000);
    standby.take(settings);
    standby.take(settings);
    standby.refill(settings);
    await vi.advanceTimersByTimeAsync(REFILL_DELAY_MS);
    await standby.whenReady();
    standby.release(false); // one incarnation crashed…
    standby.release(true); // …the other was stopped, and it was the last
    expect(standby.ready).toBe(true); // a restart in this same turn would still adopt it
    await vi.advanceTimersByTimeAsync(0);
    expect(standby.ready).toBe(false);
  });

  it("a spare of other settings (another version) is ended, not adopted", async () => {
    const standby = new Standby(1000);
    standby.take(settings);
    standby.refill(settings);
    await standby.whenReady();
    expect(standby.take({ ...settings })).toBeUndefined();
    expect(standby.ready).toBe(false);
    standby.close();
  });

  it("a process whose supervisor used a standby and stopped exits by itself", () => {
    const script = `
      const b = await import(${JSON.stringify(index)});
      const sup = new b.Supervisor({ children: [
        b.isolated({ id: "c", module: ${JSON.stringify(announce)}, export: "child", standby: { linger: 60000 } }),
        b.isolatedServer({ id: "s", module: ${JSON.stringify(announce)}, standby: true }),
      ] });
      await sup.start();
      await new Promise((r) => setTimeout(r, 300)); // let the spares start
      await sup.stop();
      console.log("stopped");
    `;
    const child = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8", timeout: 30_000 });
    expect(child.error).toBeUndefined(); // a hang would be ETIMEDOUT
    expect(child.stdout.trim()).toBe("stopped");
    expect(child.status).toBe(0);
  }, 40_000);
});
