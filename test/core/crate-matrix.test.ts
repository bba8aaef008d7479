/**
 * The Rust crate async-backplane's test matrix, translated:
 * {watch, manage, partManage} × {monitor, peer} × {through a Device, through a Line}
 * × the other side {succeeds, errors, is dropped}.
 *
 * d2 links d1; d3 links d2 the same way. d1 ends first, then d2 runs.
 * We check what d2's call returns and what d3 then sees.
 */
import { describe, expect, it } from "vitest";
import { Crash, Device, Fault, type LinkMode } from "../../src/index.js";

type Via = "device" | "line";
type Ending = "succeeds" | "errors" | "drops";

const modes: LinkMode[] = ["monitor", "peer"];
const vias: Via[] = ["device", "line"];
const endings: Ending[] = ["succeeds", "errors", "drops"];

function linkVia(from: Device, to: Device, mode: LinkMode, via: Via): void {
  if (via === "device") from.link(to, mode);
  else from.line().link(to.line(), mode);
}

/** End d1 the way the scenario says; returns the fault d1 ended with. */
function end(d1: Device, ending: Ending): Fault | undefined {
  switch (ending) {
    case "succeeds":
      d1.disconnect();
      return undefined;
    case "errors":
      d1.disconnect(Fault.error("d1 failed"));
      return Fault.error("d1 failed");
    case "drops": {
      using _scoped = d1; // leaving the scope without disconnecting is a drop
      return Fault.drop;
    }
  }
}

const never = () => new Promise<never>(() => {});

describe("crate matrix: solo", () => {
  it("watch: a lone device watching a ready promise sees it complete", async () => {
    const d = new Device();
    await expect(d.watch(Promise.resolve(1))).resolves.toEqual({ kind: "completed", value: 1 });
  });
  it("manage: a lone device's succeeding work returns its value and ends it cleanly", async () => {
    const d = new Device();
    await expect(d.manage(() => Promise.resolve(7))).resolves.toBe(7);
    expect(d.isConnected).toBe(false);
    expect(d.fault).toBeUndefined();
  });
  it("partManage: a lone device's succeeding work returns its value and keeps it connected", async () => {
    const d = new Device();
    await expect(d.partManage(() => Promise.resolve(7))).resolves.toBe(7);
    expect(d.isConnected).toBe(true);
  });
});

for (const mode of modes) {
  for (const via of vias) {
    for (const ending of endings) {
      const name = `${mode} through a ${via}, d1 ${ending}`;

      it(`watch: ${name} → d2 is messaged with d1's ending`, async () => {
        const d1 = new Device();
        const d2 = new Device();
        linkVia(d2, d1, mode, via);
        const fault = end(d1, ending);
        const watched = await d2.watch(never());
        expect(watched).toEqual({ kind: "messaged", message: { kind: "disconnected", from: d1.id, ...(fault && { fault }) } });
      });

      it(`manage: ${name} → ${ending === "succeeds" ? "work runs and d3 sees a clean exit" : "d2 cascades and d3 sees it"}`, async () => {
        const d1 = new Device();
        const d2 = new Device();
        const d3 = new Device();
        linkVia(d2, d1, mode, via);
        linkVia(d3, d2, mode, via);
        const fault = end(d1, ending);
        if (fault === undefined) {
          await expect(d2.manage(() => Promise.resolve("ok"))).resolves.toBe("ok");
          expect(await d3.receive()).toEqual({ kind: "disconnected", from: d2.id });
        } else {
          const crash = await d2.manage(never).catch((e: unknown) => e);
          expect(crash).toBeInstanceOf(Crash);
          expect(crash).toMatchObject({ kind: "cascade", from: d1.id, fault });
          expect(await d3.receive()).toEqual({ kind: "disconnected", from: d2.id, fault: Fault.cascade(d1.id) });
        }
      });

      it(`partManage: ${name} → ${ending === "succeeds" ? "d2 stays connected and d3 hears nothing" : "d2 cascades and d3 sees it"}`, async () => {
        const d1 = new Device();
        const d2 = new Device();
        const d3 = new Device();
        linkVia(d2, d1, mode, via);
        linkVia(d3, d2, mode, via);
        const fault = end(d1, ending);
        if (fault === undefined) {
          await expect(d2.partManage(() => Promise.resolve("ok"))).resolves.toBe("ok");
          expect(d2.isConnected).toBe(true);
          expect(await d3.watch(Promise.resolve("quiet"))).toEqual({ kind: "completed", value: "quiet" });
        } else {
          const crash = await d2.partManage(never).catch((e: unknown) => e);
          expect(crash).toMatchObject({ kind: "cascade", from: d1.id, fault });
          expect(await d3.receive()).toEqual({ kind: "disconnected", from: d2.id, fault: Fault.cascade(d1.id) });
        }
      });
    }
  }
}
