import { describe, expect, it } from "vitest";
import { Device, Fault, LinkError, Message } from "../../src/index.js";

describe("mailbox", () => {
  it("tryReceive is non-blocking: undefined when empty", () => {
    expect(new Device().tryReceive()).toBeUndefined();
  });

  it("messages from one sender arrive in the order they were sent", async () => {
    const d = new Device();
    const line = d.line();
    for (let i = 1; i <= 5; i++) line.shutdown(i);
    const got = [];
    for (let i = 0; i < 5; i++) got.push((await d.receive())?.from);
    expect(got).toEqual([1, 2, 3, 4, 5]);
  });

  it("receive waits for the next message", async () => {
    const d = new Device();
    const pending = d.receive();
    d.line().shutdown(42);
    await expect(pending).resolves.toEqual({ kind: "shutdown", from: 42 });
  });

  it("a pending receive resolves undefined when the device disconnects", async () => {
    const d = new Device();
    const pending = d.receive();
    d.disconnect();
    await expect(pending).resolves.toBeUndefined();
  });

  it("after disconnect, queued messages can still be drained, then receive resolves undefined", async () => {
    const d = new Device();
    d.line().shutdown(1);
    d.line().shutdown(2);
    d.disconnect();
    expect(d.line().send(Message.shutdown(3))).toBe(false);
    expect(await d.receive()).toEqual({ kind: "shutdown", from: 1 });
    expect(d.tryReceive()).toEqual({ kind: "shutdown", from: 2 });
    expect(await d.receive()).toBeUndefined();
    expect(await d.receive()).toBeUndefined();
  });

  it("one reader at a time: a second concurrent receive is LinkError busy", async () => {
    const d = new Device();
    const first = d.receive();
    await expect(d.receive()).rejects.toMatchObject({ name: "LinkError", code: "busy" });
    d.line().shutdown(1);
    await expect(first).resolves.toEqual({ kind: "shutdown", from: 1 });
  });

  it("async iteration yields every message and ends once disconnected and drained", async () => {
    const d = new Device();
    const a = new Device();
    const b = new Device();
    d.link(a, "monitor");
    d.link(b, "monitor");
    a.disconnect();
    b.disconnect(Fault.error("b"));
    setTimeout(() => d.disconnect(), 0);
    const seen: Message[] = [];
    for await (const m of d) seen.push(m);
    expect(seen).toEqual([
      { kind: "disconnected", from: a.id },
      { kind: "disconnected", from: b.id, fault: Fault.error("b") },
    ]);
  });

  it("breaking out of for-await leaves the device connected and its mailbox usable", async () => {
    const d = new Device();
    d.line().shutdown(1);
    d.line().shutdown(2);
    for await (const m of d) {
      expect(m).toEqual({ kind: "shutdown", from: 1 });
      break;
    }
    expect(d.isConnected).toBe(true);
    expect(d.tryReceive()).toEqual({ kind: "shutdown", from: 2 });
  });
});

describe("disconnect and disposal", () => {
  it("disconnect is idempotent: the second call does nothing and returns false", () => {
    const d = new Device();
    const m = new Device();
    m.link(d, "monitor");
    expect(d.disconnect(Fault.error("first"))).toBe(true);
    expect(d.disconnect(Fault.error("second"))).toBe(false);
    expect(d.fault).toEqual(Fault.error("first"));
    expect(m.tryReceive()).toEqual({ kind: "disconnected", from: d.id, fault: Fault.error("first") });
    expect(m.tryReceive()).toBeUndefined();
  });

  it("a clean disconnect has no fault", () => {
    const d = new Device();
    d.disconnect();
    expect(d.isConnected).toBe(false);
    expect(d.fault).toBeUndefined();
  });

  it("using: leaving the scope while connected disconnects with fault drop", () => {
    const m = new Device();
    let id = 0;
    {
      using d = new Device();
      id = d.id;
      m.link(d, "monitor");
    }
    expect(m.tryReceive()).toEqual({ kind: "disconnected", from: id, fault: Fault.drop });
  });

  it("disposing a device that already ended does nothing; disposing twice does nothing", () => {
    const m = new Device();
    const d = new Device();
    m.link(d, "monitor");
    d.disconnect();
    d[Symbol.dispose]();
    d[Symbol.dispose]();
    expect(d.fault).toBeUndefined();
    expect(m.tryReceive()).toEqual({ kind: "disconnected", from: d.id });
    expect(m.tryReceive()).toBeUndefined();
  });

  it("using a disconnected device for watch is a typed error, not a hang", async () => {
    const d = new Device();
    d.disconnect();
    await expect(d.watch(new Promise(() => {}))).rejects.toBeInstanceOf(LinkError);
  });
});
