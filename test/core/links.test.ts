import { describe, expect, it } from "vitest";
import { Device, Fault, LinkError, LinkMode, Message } from "../../src/index.js";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(LinkError);
    return (e as LinkError).code;
  }
  return undefined;
}

describe("links", () => {
  it("monitor: a is told when b disconnects, b is not told about a", () => {
    const a = new Device();
    const b = new Device();
    a.link(b, LinkMode.Monitor);
    b.disconnect(Fault.error("x"));
    expect(a.tryReceive()).toEqual({ kind: "disconnected", from: b.id, fault: { kind: "error", error: "x" } });
    const c = new Device();
    const d = new Device();
    c.link(d, "monitor");
    c.disconnect();
    expect(d.tryReceive()).toBeUndefined();
  });

  it("notify: b is told when a disconnects, a is not told about b", () => {
    const a = new Device();
    const b = new Device();
    a.link(b, "notify");
    a.disconnect();
    expect(b.tryReceive()).toEqual({ kind: "disconnected", from: a.id });
    const c = new Device();
    const d = new Device();
    c.link(d, "notify");
    d.disconnect();
    expect(c.tryReceive()).toBeUndefined();
  });

  it("peer: both are told", () => {
    const a = new Device();
    const b = new Device();
    a.link(b, "peer");
    b.disconnect(Fault.timeout);
    expect(a.tryReceive()).toEqual({ kind: "disconnected", from: b.id, fault: Fault.timeout });
    const c = new Device();
    const d = new Device();
    c.link(d, "peer");
    c.disconnect(Fault.killed);
    expect(d.tryReceive()).toEqual({ kind: "disconnected", from: c.id, fault: Fault.killed });
  });

  it("modes add up: monitor then notify is a peer link", () => {
    const a = new Device();
    const b = new Device();
    a.link(b, "monitor");
    a.link(b, "notify");
    a.unlink(b, "monitor");
    b.disconnect(); // only the notify half is left: a hears nothing
    expect(a.tryReceive()).toBeUndefined();

    const c = new Device();
    const d = new Device();
    c.link(d, "monitor");
    c.link(d, "notify");
    c.disconnect();
    expect(d.tryReceive()).toEqual({ kind: "disconnected", from: c.id });
  });

  it("unlink subtracts: unlinking notify from a peer leaves a monitor", () => {
    const a = new Device();
    const b = new Device();
    a.link(b, "peer");
    a.unlink(b, "notify");
    b.disconnect();
    expect(a.tryReceive()).toEqual({ kind: "disconnected", from: b.id });
    const c = new Device();
    const d = new Device();
    c.link(d, "peer");
    c.unlink(d, "notify");
    c.disconnect();
    expect(d.tryReceive()).toBeUndefined();
  });

  it("linking twice is linking once: one notification per disconnect", () => {
    const a = new Device();
    const b = new Device();
    a.link(b, "monitor");
    a.link(b, "monitor");
    a.link(b.line(), "peer");
    b.line().link(a.line(), "notify");
    b.disconnect();
    expect(a.tryReceive()).toEqual({ kind: "disconnected", from: b.id });
    expect(a.tryReceive()).toBeUndefined();
  });

  it("one unlink undoes any number of identical links", () => {
    const a = new Device();
    const b = new Device();
    a.link(b, "monitor");
    a.link(b, "monitor");
    a.unlink(b, "monitor");
    b.disconnect();
    expect(a.tryReceive()).toBeUndefined();
  });

  it("self-link throws LinkError self-link, through a device or a line", () => {
    const a = new Device();
    expect(codeOf(() => a.link(a, "peer"))).toBe("self-link");
    expect(codeOf(() => a.link(a.line(), "monitor"))).toBe("self-link");
    expect(codeOf(() => a.line().link(a.line(), "notify"))).toBe("self-link");
    expect(codeOf(() => a.unlink(a, "peer"))).toBe("self-link");
  });

  it("linking from a disconnected device throws LinkError device-down", () => {
    const a = new Device();
    const b = new Device();
    const line = a.line();
    a.disconnect();
    expect(codeOf(() => a.link(b, "monitor"))).toBe("device-down");
    expect(codeOf(() => line.link(b.line(), "peer"))).toBe("device-down");
  });

  it("monitoring a device that already disconnected sends its ending at once (noproc)", () => {
    const a = new Device();
    const b = new Device();
    b.disconnect(Fault.error("gone"));
    a.link(b, "monitor");
    expect(a.tryReceive()).toEqual({ kind: "disconnected", from: b.id, fault: Fault.error("gone") });
    const c = new Device();
    c.link(b.line(), "peer"); // the monitor half of a peer link obeys the same rule
    expect(c.tryReceive()).toEqual({ kind: "disconnected", from: b.id, fault: Fault.error("gone") });
  });

  it("monitoring a device that ended cleanly sends a clean ending at once", () => {
    const a = new Device();
    const b = new Device();
    b.disconnect();
    a.link(b, "monitor");
    expect(a.tryReceive()).toEqual({ kind: "disconnected", from: b.id });
  });

  it("notify towards a disconnected device does nothing", () => {
    const a = new Device();
    const b = new Device();
    b.disconnect();
    a.link(b, "notify");
    a.disconnect();
    expect(a.tryReceive()).toBeUndefined();
    expect(b.tryReceive()).toBeUndefined();
  });

  it("a disconnected device leaves the devices it watched: they never tell it again", () => {
    const a = new Device();
    const b = new Device();
    a.link(b, "monitor");
    a.disconnect();
    // b's listener list no longer holds a; b's disconnect reaches nobody.
    expect(b.disconnect()).toBe(true);
    expect(a.tryReceive()).toBeUndefined();
  });

  it("bad arguments are LinkError invalid-argument", () => {
    const a = new Device();
    const b = new Device();
    expect(codeOf(() => a.link({} as Device, "peer"))).toBe("invalid-argument");
    expect(codeOf(() => a.link(b, "both" as LinkMode))).toBe("invalid-argument");
    expect(codeOf(() => a.unlink(b, 3 as unknown as LinkMode))).toBe("invalid-argument");
    expect(codeOf(() => a.disconnect({ kind: "oops" } as unknown as Fault))).toBe("invalid-argument");
    expect(codeOf(() => new Device({ name: 5 as unknown as string }))).toBe("invalid-argument");
    expect(codeOf(() => a.line().send({ kind: "hello" } as unknown as Message))).toBe("invalid-argument");
  });
});

describe("lines", () => {
  it("a line sends to its device and reports whether it is connected", () => {
    const d = new Device();
    const line = d.line();
    expect(line.id).toBe(d.id);
    expect(line.isConnected).toBe(true);
    expect(line.send(Message.shutdown(99))).toBe(true);
    expect(d.tryReceive()).toEqual({ kind: "shutdown", from: 99 });
    expect(line.shutdown(98)).toBe(true);
    expect(d.tryReceive()).toEqual({ kind: "shutdown", from: 98 });
  });

  it("sending to a dead line returns false and the message is not delivered", () => {
    const d = new Device();
    const line = d.line();
    d.disconnect();
    expect(line.isConnected).toBe(false);
    expect(line.send(Message.shutdown(1))).toBe(false);
    expect(line.shutdown(1)).toBe(false);
    expect(d.tryReceive()).toBeUndefined();
  });

  it("clones and equals: lines to the same device are equal", () => {
    const d = new Device();
    const e = new Device();
    const line = d.line();
    expect(line.clone().equals(line)).toBe(true);
    expect(d.line().equals(line)).toBe(true);
    expect(e.line().equals(line)).toBe(false);
  });

  it("holding a line never keeps the device connected", () => {
    const d = new Device();
    const line = d.line();
    d.disconnect();
    expect(line.isConnected).toBe(false);
  });
});

describe("ids and names", () => {
  it("ids are unique and increasing, never reused", () => {
    const ids = Array.from({ length: 100 }, () => new Device().id);
    expect(new Set(ids).size).toBe(100);
    expect([...ids].sort((x, y) => x - y)).toEqual(ids);
  });
  it("a device keeps its name", () => {
    expect(new Device({ name: "db" }).name).toBe("db");
    expect(new Device().name).toBeUndefined();
  });
});
