import { describe, expect, it } from "vitest";
import { Device, Fault } from "../../src/index.js";

describe("watch", () => {
  it("the promise completing first → completed with its value", async () => {
    const d = new Device();
    await expect(d.watch(Promise.resolve("v"))).resolves.toEqual({ kind: "completed", value: "v" });
    expect(d.isConnected).toBe(true);
  });

  it("a message arriving first → messaged, and the promise's late rejection is dropped", async () => {
    const d = new Device();
    let fail!: (e: Error) => void;
    const watching = d.watch(new Promise((_, reject) => (fail = reject)));
    d.line().shutdown(5);
    await expect(watching).resolves.toEqual({ kind: "messaged", message: { kind: "shutdown", from: 5 } });
    fail(new Error("late"));
    await new Promise((r) => setImmediate(r));
  });

  it("a message already queued wins over a promise already resolved", async () => {
    const d = new Device();
    d.line().shutdown(1);
    await expect(d.watch(Promise.resolve(0))).resolves.toEqual({ kind: "messaged", message: { kind: "shutdown", from: 1 } });
  });

  it("the promise rejecting first → watch rejects with its error", async () => {
    const d = new Device();
    await expect(d.watch(Promise.reject(new Error("own")))).rejects.toThrow("own");
    expect(d.isConnected).toBe(true);
  });

  it("watch does not consume the message stream after it settles", async () => {
    const d = new Device();
    await d.watch(Promise.resolve(1));
    d.line().shutdown(2);
    expect(d.tryReceive()).toEqual({ kind: "shutdown", from: 2 });
  });

  it("the device disconnecting while watched → LinkError device-down, never a hang", async () => {
    const d = new Device();
    const watching = d.watch(new Promise(() => {}));
    d.disconnect(Fault.killed);
    await expect(watching).rejects.toMatchObject({ name: "LinkError", code: "device-down" });
  });

  it("a disconnected device with messages still queued is messaged with them", async () => {
    const d = new Device();
    d.line().shutdown(3);
    d.disconnect();
    await expect(d.watch(new Promise(() => {}))).resolves.toEqual({ kind: "messaged", message: { kind: "shutdown", from: 3 } });
  });

  it("a second reader while watching is LinkError busy", async () => {
    const d = new Device();
    const watching = d.watch(new Promise(() => {}));
    await expect(d.watch(Promise.resolve(1))).rejects.toMatchObject({ code: "busy" });
    d.disconnect();
    await expect(watching).rejects.toMatchObject({ code: "device-down" });
  });
});
