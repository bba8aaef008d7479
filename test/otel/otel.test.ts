import { MeterProvider, MetricReader, type ResourceMetrics } from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { hasSubscribers } from "node:diagnostics_channel";
import { afterEach, describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";
import { Client, Device, Executor, serve, Supervisor, TaskSupervisor } from "../../src/index.js";
import { EVENTS_CHANNEL } from "../../src/core/emitter.js";
import { runRecords } from "../../src/core/records.js";
import { instrument } from "../../src/otel/index.js";
import { next, worker } from "../supervisor/helpers.js";

/** A pull reader: the test decides when metrics are collected. */
class TestReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

function setup() {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const reader = new TestReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  return { exporter, tracerProvider, reader, meterProvider };
}

async function collect(reader: TestReader): Promise<Map<string, { value: unknown; attributes: Record<string, unknown> }[]>> {
  const { resourceMetrics } = (await reader.collect()) as { resourceMetrics: ResourceMetrics };
  const out = new Map<string, { value: unknown; attributes: Record<string, unknown> }[]>();
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      out.set(
        metric.descriptor.name,
        metric.dataPoints.map((p) => ({ value: p.value, attributes: p.attributes as Record<string, unknown> })),
      );
    }
  }
  return out;
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("OpenTelemetry: records as spans", () => {
  it("a child run that crashed: one span with the record's times, error.type, the exception event and status ERROR", async () => {
    const { exporter, tracerProvider, meterProvider } = setup();
    cleanups.push(instrument({ tracerProvider, meterProvider }));
    const db = worker("db");
    const sup = new Supervisor({ name: "app", children: [db.spec] });
    cleanups.push(() => sup.stop());
    await sup.start();
    const record = next(sup, "record");
    const restarted = next(sup, "child-restarted");
    db.current.crash(new TypeError("bad row"));
    const r = await record;
    await restarted;
    const spans = exporter.getFinishedSpans();
    expect(spans).toHaveLength(1);
    const span = spans[0]!;
    expect(span.name).toBe("run db");
    expect(span.attributes).toMatchObject({ "backplane.operation": "run", "backplane.name": "db", "backplane.source": "app", "backplane.outcome": "error", "error.type": "error", "backplane.record.id": r.id });
    expect(span.status).toEqual({ code: 2, message: "error: bad row" }); // SpanStatusCode.ERROR
    expect(span.parentSpanContext).toBeUndefined();
    const exception = span.events.find((e) => e.name === "exception");
    expect(exception?.attributes).toMatchObject({ "exception.type": "TypeError", "exception.message": "bad row" });
    expect(String(exception?.attributes?.["exception.stacktrace"])).toContain("otel.test.ts");
    const ms = (t: [number, number]) => t[0] * 1000 + t[1] / 1e6;
    expect(ms(span.startTime)).toBeCloseTo(r.start, 0);
    expect(ms(span.endTime) - ms(span.startTime)).toBeCloseTo(r.duration, 0);
  });

  it("a clean run and a requested stop are spans without error", async () => {
    const { exporter, tracerProvider, meterProvider } = setup();
    cleanups.push(instrument({ tracerProvider, meterProvider }));
    const calm = worker("calm", { restart: "transient" });
    const other = worker("other");
    const sup = new Supervisor({ name: "app", children: [calm.spec, other.spec] });
    await sup.start();
    const exited = next(sup, "child-exited");
    calm.current.finish();
    await exited;
    await sup.stop();
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name).sort()).toEqual(["run calm", "run other"]);
    for (const s of spans) {
      expect(s.status.code).toBe(0); // UNSET
      expect(s.attributes["error.type"]).toBeUndefined();
    }
    expect(spans.find((s) => s.name === "run other")?.attributes["backplane.outcome"]).toBe("shutdown");
  });

  it("task supervisor tasks, managed runs (runs: true), and explicit sources", async () => {
    const { exporter, tracerProvider, meterProvider } = setup();
    cleanups.push(instrument({ tracerProvider, meterProvider, runs: true, spans: true }));
    const tasks = new TaskSupervisor({ name: "jobs" });
    cleanups.push(() => tasks.stop());
    await tasks.async(async () => 1);
    await new Device({ name: "loader" }).manage(() => 2);
    const names = exporter.getFinishedSpans().map((s) => s.name);
    expect(names).toContain("manage loader");
    expect(names.some((n) => /^run /.test(n))).toBe(true);
  });

  it("an Executor's executions and a Server's calls, given as sources: execute and call spans", async () => {
    const { exporter, tracerProvider, meterProvider } = setup();
    const executor = new Executor({ module: fileURLToPath(new URL("../fixtures/math.mjs", import.meta.url)), export: "fail", name: "math", version: "v1", size: 1 });
    cleanups.push(() => executor.close());
    const server = serve(new Device({ name: "doubler" }), (n: number) => n * 2);
    cleanups.push(() => server.device.disconnect());
    cleanups.push(instrument({ tracerProvider, meterProvider, sources: [executor, server] }));
    await expect(executor.execute(["disk full"])).rejects.toMatchObject({ name: "ExecutionError" });
    expect(await new Client<number, number>(server).call(21)).toBe(42);
    const spans = exporter.getFinishedSpans();
    const execute = spans.find((s) => s.name === "execute math");
    expect(execute?.attributes).toMatchObject({ "backplane.operation": "execute", "backplane.version": "v1", "error.type": "error" });
    expect(execute?.status.code).toBe(2);
    expect(spans.find((s) => s.name === "call doubler")?.attributes).toMatchObject({ "backplane.operation": "call", "backplane.outcome": "ok" });
  });

  it("a source both listened to and on the channel is counted once", async () => {
    const { exporter, tracerProvider, meterProvider } = setup();
    const db = worker("db");
    const sup = new Supervisor({ name: "app", children: [db.spec] });
    cleanups.push(instrument({ tracerProvider, meterProvider, sources: [sup] }));
    await sup.start();
    await sup.stop();
    expect(exporter.getFinishedSpans()).toHaveLength(1);
  });
});

describe("OpenTelemetry: metrics", () => {
  it("restarts, faults by kind, run durations, supervisors giving up, mailbox lengths", async () => {
    const { tracerProvider, meterProvider, reader } = setup();
    const db = worker("db");
    const w = worker("w");
    const sup = new Supervisor({ name: "app", intensity: 5, children: [db.spec, Supervisor.child("pool", () => ({ name: "pool", intensity: 0, children: [w.spec] }))] });
    cleanups.push(() => sup.stop());
    await sup.start();
    cleanups.push(instrument({ tracerProvider, meterProvider, roots: [sup], spans: false }));
    const restarted = next(sup, "child-restarted");
    db.current.crash();
    await restarted;
    const poolRestarted = next(sup, "child-restarted");
    w.current.crash(); // pool gives up (intensity 0), app restarts it
    await poolRestarted;
    const m = await collect(reader);
    const restarts = m.get("backplane.restarts") ?? [];
    expect(restarts).toEqual(expect.arrayContaining([{ value: 1, attributes: { "backplane.source": "app", "backplane.child": "db" } }, { value: 1, attributes: { "backplane.source": "app", "backplane.child": "pool" } }]));
    expect(m.get("backplane.intensity_exceeded")).toEqual([{ value: 1, attributes: { "backplane.source": "pool", "backplane.child": "w" } }]);
    const faults = m.get("backplane.faults") ?? [];
    const errorFaults = faults.filter((f) => f.attributes["error.type"] === "error").reduce((n, f) => n + (f.value as number), 0);
    expect(errorFaults).toBe(3); // db, w, and the pool itself (it ended with intensity-exceeded)
    const durations = m.get("backplane.run.duration") ?? [];
    expect(durations.length).toBeGreaterThan(0);
    expect(durations.every((d) => typeof (d.value as { count: number }).count === "number")).toBe(true);
    const mailboxes = m.get("backplane.mailbox.length") ?? [];
    expect(mailboxes.map((p) => p.attributes["backplane.path"])).toEqual(expect.arrayContaining(["app", "app/db", "app/pool", "app/pool/w"]));
    expect(mailboxes.every((p) => typeof p.value === "number")).toBe(true);
  });
});

describe("OpenTelemetry: the disposer", () => {
  it("unsubscribes from the channel, removes its listeners and its gauge callback", async () => {
    const { exporter, tracerProvider, meterProvider, reader } = setup();
    const sup = new Supervisor({ name: "app", children: [worker("db").spec] });
    await sup.start();
    const before = { channel: hasSubscribers(EVENTS_CHANNEL), runs: runRecords.listenerCount("record") };
    const stop = instrument({ tracerProvider, meterProvider, roots: [sup], sources: [sup], runs: true });
    expect(hasSubscribers(EVENTS_CHANNEL)).toBe(true);
    expect(sup.listenerCount("record")).toBe(1);
    stop();
    stop(); // twice is harmless
    expect(hasSubscribers(EVENTS_CHANNEL)).toBe(before.channel);
    expect(runRecords.listenerCount("record")).toBe(before.runs);
    expect(sup.eventNames()).toEqual([]);
    await sup.stop();
    expect(exporter.getFinishedSpans()).toHaveLength(0);
    expect((await collect(reader)).get("backplane.mailbox.length") ?? []).toEqual([]);
  });

  it("bad options are typed errors", () => {
    expect(() => instrument({ roots: [{}] as never })).toThrow(expect.objectContaining({ code: "invalid-argument" }));
    expect(() => instrument({ sources: [1] as never })).toThrow(expect.objectContaining({ code: "invalid-argument" }));
    expect(() => instrument(null as never)).toThrow(expect.objectContaining({ code: "invalid-argument" }));
  });

  it("a tracer that throws never reaches the supervisor", async () => {
    const { meterProvider } = setup();
    const broken = { getTracer: () => ({ startSpan: () => { throw new Error("exporter down"); }, startActiveSpan: () => { throw new Error("x"); } }) };
    cleanups.push(instrument({ tracerProvider: broken as never, meterProvider }));
    const db = worker("db");
    const sup = new Supervisor({ name: "app", children: [db.spec] });
    cleanups.push(() => sup.stop());
    await sup.start();
    const restarted = next(sup, "child-restarted");
    db.current.crash();
    await restarted;
    expect(sup.whichChildren()[0]).toMatchObject({ status: "running", restarts: 1 });
  });
});

describe("OpenTelemetry is optional", () => {
  it("nothing the root entry imports, directly or not, imports @opentelemetry (only the backplane/otel subpath does)", async () => {
    const { readFile } = await import("node:fs/promises");
    const { dirname, resolve } = await import("node:path");
    const seen = new Set<string>();
    const offenders: string[] = [];
    const visit = async (file: string): Promise<void> => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = await readFile(file, "utf8");
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)) {
        const spec = m[1] as string;
        if (spec.startsWith("@opentelemetry")) offenders.push(file);
        else if (spec.startsWith(".")) await visit(resolve(dirname(file), spec.replace(/\.js$/, ".ts")));
      }
    };
    await visit(fileURLToPath(new URL("../../src/index.ts", import.meta.url)));
    expect(seen.size).toBeGreaterThan(10);
    expect(offenders).toEqual([]);
  });
});

describe("instrument: a setup that fails leaves nothing behind", () => {
  it("a meter whose gauge callback cannot be added: instrument throws, and no subscription or listener stays", () => {
    const sup = new Supervisor({ name: "app", children: [] });
    const gauge = { addCallback: () => { throw new Error("meter broken"); }, removeCallback: () => {} };
    const meter = { createCounter: () => ({ add() {} }), createHistogram: () => ({ record() {} }), createObservableGauge: () => gauge, createUpDownCounter: () => ({ add() {} }) };
    const meterProvider = { getMeter: () => meter } as never;
    const before = sup.listenerCount("record");
    expect(() => instrument({ meterProvider, roots: [sup], sources: [sup] })).toThrow("meter broken");
    expect(hasSubscribers(EVENTS_CHANNEL)).toBe(false);
    expect(sup.listenerCount("record")).toBe(before);
  });
});
