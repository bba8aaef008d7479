import { describe, expect, it } from "vitest";
import { Device, Fault } from "../../src/index.js";

const gc = (globalThis as { gc?: () => void }).gc;

async function collect(): Promise<void> {
  // Finalizers run on a later task after a full collection; a few rounds make it certain.
  for (let i = 0; i < 10; i++) {
    gc!();
    await new Promise((r) => setTimeout(r, 0));
  }
}

describe.runIf(gc !== undefined)("detectDrop", () => {
  it("a collected device that never disconnected tells its listeners with fault drop, even while lines to it are held", async () => {
    const monitor = new Device();
    const lines: unknown[] = [];
    let id = 0;
    (() => {
      const d = new Device({ detectDrop: true });
      id = d.id;
      monitor.link(d, "monitor");
      lines.push(d.line()); // a held line must not keep the Device object alive
    })();
    await collect();
    expect(monitor.tryReceive()).toEqual({ kind: "disconnected", from: id, fault: Fault.drop });
    expect(lines).toHaveLength(1);
  });

  it("without detectDrop nothing is reported on collection", async () => {
    const monitor = new Device();
    (() => {
      const d = new Device();
      monitor.link(d, "monitor");
    })();
    await collect();
    expect(monitor.tryReceive()).toBeUndefined();
  });

  it("a device that disconnected on purpose is not reported again when collected", async () => {
    const monitor = new Device();
    let id = 0;
    (() => {
      const d = new Device({ detectDrop: true });
      id = d.id;
      monitor.link(d, "monitor");
      d.disconnect();
    })();
    await collect();
    expect(monitor.tryReceive()).toEqual({ kind: "disconnected", from: id });
    expect(monitor.tryReceive()).toBeUndefined();
  });
});
