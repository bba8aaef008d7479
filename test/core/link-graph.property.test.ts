/**
 * Property: for random link graphs and random disconnect orders, every device
 * hears exactly the endings the model says (one per device it watched, with
 * the right fault, in order), nothing reaches a device after it disconnected,
 * and once every device has ended no plugboard still references another.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Device, Fault, LinkError, type LinkMode, type Message } from "../../src/index.js";

type Op =
  | { op: "link"; a: number; b: number; mode: LinkMode; viaLine: boolean }
  | { op: "unlink"; a: number; b: number; mode: LinkMode }
  | { op: "disconnect"; a: number; fault: Fault | undefined };

const N = 6;
const index = fc.integer({ min: 0, max: N - 1 });
const mode = fc.constantFrom<LinkMode>("monitor", "notify", "peer");
const fault = fc.constantFrom<Fault | undefined>(undefined, Fault.drop, Fault.timeout, Fault.killed, Fault.error("e"), Fault.cascade(0));
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant("link" as const), a: index, b: index, mode, viaLine: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("unlink" as const), a: index, b: index, mode }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("disconnect" as const), a: index, fault }) },
);

/** The reference model: who listens to whom, who has ended, what each mailbox should hold. */
class Model {
  listeners: Set<number>[] = Array.from({ length: N }, () => new Set());
  closed: (Fault | undefined | "open")[] = Array.from({ length: N }, () => "open" as const);
  inbox: { from: number; fault: Fault | undefined }[][] = Array.from({ length: N }, () => []);

  isOpen(i: number): boolean {
    return this.closed[i] === "open";
  }
  watch(watcher: number, target: number): void {
    if (this.isOpen(target)) this.listeners[target]!.add(watcher);
    else this.inbox[watcher]!.push({ from: target, fault: this.closed[target] as Fault | undefined });
  }
  apply(o: Op): "ok" | "self-link" | "device-down" {
    switch (o.op) {
      case "link":
        if (o.a === o.b) return "self-link";
        if (!this.isOpen(o.a)) return "device-down";
        if (o.mode !== "monitor" && this.isOpen(o.b)) this.listeners[o.a]!.add(o.b);
        if (o.mode !== "notify") this.watch(o.a, o.b);
        return "ok";
      case "unlink":
        if (o.a === o.b) return "self-link";
        if (o.mode !== "notify") this.listeners[o.b]!.delete(o.a);
        if (o.mode !== "monitor") this.listeners[o.a]!.delete(o.b);
        return "ok";
      case "disconnect": {
        if (!this.isOpen(o.a)) return "ok";
        this.closed[o.a] = o.fault;
        for (const set of this.listeners) set.delete(o.a); // it leaves what it watched
        for (const w of this.listeners[o.a]!) if (this.isOpen(w)) this.inbox[w]!.push({ from: o.a, fault: o.fault });
        this.listeners[o.a]!.clear();
        return "ok";
      }
    }
  }
}

function expected(m: { from: number; fault: Fault | undefined }, ids: number[]): Message {
  return m.fault === undefined ? { kind: "disconnected", from: ids[m.from]! } : { kind: "disconnected", from: ids[m.from]!, fault: m.fault };
}

describe("link graph properties", () => {
  it("every listener hears exactly the endings the model predicts, and nothing after its own end", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), fc.array(index, { minLength: N, maxLength: N }), (ops, finalOrder) => {
        const devices = Array.from({ length: N }, () => new Device());
        const ids = devices.map((d) => d.id);
        const model = new Model();
        const check = (o: Op): void => {
          const want = model.apply(o);
          let got = "ok";
          try {
            const a = devices[o.a]!;
            if (o.op === "link") {
              const b = devices[o.b]!;
              if (o.viaLine) a.line().link(b.line(), o.mode);
              else a.link(b, o.mode);
            } else if (o.op === "unlink") a.unlink(devices[o.b]!, o.mode);
            else a.disconnect(o.fault);
          } catch (e) {
            if (!(e instanceof LinkError)) throw e;
            got = e.code;
          }
          expect(got).toBe(want);
        };
        for (const o of ops) check(o);
        // End everything in a random order (the rest in index order).
        const order = [...new Set([...finalOrder, ...devices.keys()])];
        for (const i of order) check({ op: "disconnect", a: i, fault: Fault.error(i) });

        for (let i = 0; i < N; i++) {
          const got: Message[] = [];
          for (let m = devices[i]!.tryReceive(); m !== undefined; m = devices[i]!.tryReceive()) got.push(m);
          expect(got).toEqual(model.inbox[i]!.map((m) => expected(m, ids)));
        }
        // No dead plugboard lingers in another's lists.
        for (const d of devices) {
          expect(d._board.watchers).toBeNull();
          expect(d._board.watching).toBeNull();
        }
      }),
      { numRuns: 300 },
    );
  });

  it("each watched device is heard from at most once per listener", () => {
    fc.assert(
      fc.property(fc.array(fc.record({ a: index, b: index, mode }), { maxLength: 40 }), fc.shuffledSubarray([...Array(N).keys()], { minLength: N }), (links, order) => {
        const devices = Array.from({ length: N }, () => new Device());
        for (const { a, b, mode: m } of links) if (a !== b) devices[a]!.link(devices[b]!, m);
        for (const i of order) devices[i]!.disconnect(Fault.error(i));
        for (const d of devices) {
          const froms: number[] = [];
          for (let m = d.tryReceive(); m !== undefined; m = d.tryReceive()) froms.push(m.from);
          expect(new Set(froms).size).toBe(froms.length);
        }
      }),
      { numRuns: 300 },
    );
  });
});
