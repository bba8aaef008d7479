/**
 * Observer benchmarks (run alone: `node --expose-gc --import tsx bench/observer.ts`):
 *
 * 1. crash → shown: with 1 000 children, the time from a child's crash to
 *    an SSE client holding the patch that shows it restarted (target p95 ≤
 *    250 ms), and, when Chromium is installed, to the page's element
 *    carrying the new `data-restarts` (a MutationObserver in the page
 *    stamps it);
 * 2. the cost to the app's restart path (a child fails → its next run has
 *    begun) in a tree of 1 000 children: no observer, an observer with no
 *    client (target: the same), an observer with one client connected in
 *    another process (target ≤ 10 % slower) or in this one, and, to tell the observer's
 *    own share from the events' cost, a no-op subscriber on the
 *    `backplane:events` channel with no observer at all. All are measured
 *    in interleaved rounds of the same run, so drift hits them alike.
 */
import { spawn } from "node:child_process";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ChildSpec, EVENTS_CHANNEL, Supervisor } from "../src/index.js";
import { observe } from "../src/observer/index.js";

const CHILDREN = 1_000;
const LATENCY_SAMPLES = 200;
const ROUNDS = 9;
const RESTARTS_PER_ROUND = 20_000;

interface Tree {
  sup: Supervisor;
  /** Make child `i` fail; resolves once its next run has begun. */
  crash(i: number): Promise<void>;
}

/** A one-for-one tree of `n` children, each failing on demand; no listener attached (so an unobserved tree pays nothing). */
async function tree(n: number): Promise<Tree> {
  const fail: ((e: Error) => void)[] = new Array(n);
  const began: ((() => void) | undefined)[] = new Array(n);
  const error = new Error("bench");
  const children: ChildSpec[] = Array.from({ length: n }, (_, i) => ({
    id: `c${i}`,
    shutdown: "brutal", // its run ignores its signal: stop() kills it at once instead of waiting out a grace period
    run: () => {
      const b = began[i];
      began[i] = undefined;
      b?.();
      return new Promise<never>((_, reject) => (fail[i] = reject));
    },
  }));
  const sup = new Supervisor({ name: "bench", intensity: 1_000_000_000, period: 1, records: 20, children });
  await sup.start();
  return {
    sup,
    crash(i) {
      const next = new Promise<void>((resolve) => (began[i] = resolve));
      (fail[i] as (e: Error) => void)(error);
      return next;
    },
  };
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

function median(xs: number[]): number {
  return quantile([...xs].sort((a, b) => a - b), 0.5);
}

/** An in-process SSE reader that resolves waiters when a patch shows a child with at least `restarts`. */
async function sseClient(url: string) {
  const controller = new AbortController();
  const res = await fetch(new URL("events", url), { signal: controller.signal });
  const reader = (res.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
  const restarts = new Map<string, number>();
  let waiter: { id: string; restarts: number; resolve: () => void } | undefined;
  let buf = "";
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value;
        let i: number;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block.split("\n").find((l) => l.startsWith("data: "));
          if (data === undefined) continue;
          const msg = JSON.parse(data.slice(6)) as { nodes?: { id: string; restarts: number }[]; changed?: { id: string; restarts: number }[] };
          for (const n of msg.nodes ?? msg.changed ?? []) restarts.set(n.id, n.restarts);
          if (waiter !== undefined && (restarts.get(waiter.id) ?? 0) >= waiter.restarts) {
            const w = waiter;
            waiter = undefined;
            w.resolve();
          }
        }
      }
    } catch {
      // aborted at the end
    }
  })();
  return {
    shown(id: string, atLeast: number): Promise<void> {
      if ((restarts.get(id) ?? 0) >= atLeast) return Promise.resolve();
      return new Promise((resolve) => (waiter = { id, restarts: atLeast, resolve }));
    },
    close: () => controller.abort(),
  };
}

async function crashToShown(): Promise<string[]> {
  const lines: string[] = [];
  const t = await tree(CHILDREN);
  const view = await observe(t.sup);
  const client = await sseClient(view.url);
  const counts = new Array<number>(CHILDREN).fill(0);
  const samples: number[] = [];
  for (let k = 0; k < LATENCY_SAMPLES; k++) {
    const i = (k * 7919) % CHILDREN;
    const t0 = performance.now();
    void t.crash(i);
    counts[i] = (counts[i] as number) + 1;
    await client.shown(`c${i}`, counts[i] as number);
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  process.stderr.write("  page…\n");
  lines.push(`| crash → SSE client holds the patch (in-process client) | ${quantile(samples, 0.5).toFixed(1)} ms | ${quantile(samples, 0.95).toFixed(1)} ms | ${quantile(samples, 0.99).toFixed(1)} ms | ${samples.length} |`);
  client.close();
  process.stderr.write(`${lines[0]}\n`);

  const browser = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
  if (browser === undefined) lines.push("| crash → page element updated | skipped: no Chromium found | | | |");
  else {
    const { chromium } = await import("playwright-core");
    const profile = await mkdtemp(join(tmpdir(), "backplane-bench-"));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: browser,
      headless: true,
      args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    try {
      const page = await context.newPage();
      await page.goto(view.url);
      await page.waitForSelector(`[data-child-id="c${CHILDREN - 1}"]`, { state: "attached" });
      // Stamp (wall clock, shared with this process) every data-restarts change as the page makes it.
      // (These functions run in the page: DOM types are not part of this project's compilation, hence the loose typing.)
      await page.evaluate(() => {
        const w = globalThis as any;
        const seen: Record<string, { restarts: string; at: number }> = {};
        w.__seen = seen;
        new w.MutationObserver((records: { target: { dataset: Record<string, string> } }[]) => {
          const at = Date.now();
          for (const r of records) seen[r.target.dataset.childId as string] = { restarts: r.target.dataset.restarts as string, at };
        }).observe(w.document.getElementById("tree"), { subtree: true, attributes: true, attributeFilter: ["data-restarts"] });
      });
      const pageSamples: number[] = [];
      for (let k = 0; k < LATENCY_SAMPLES / 2; k++) {
        const i = (k * 104_729) % CHILDREN;
        counts[i] = (counts[i] as number) + 1;
        const want = String(counts[i]);
        const t0 = Date.now();
        void t.crash(i);
        const at = await page.waitForFunction(
          ([id, r]) => {
            const s = (globalThis as any).__seen[id as string] as { restarts: string; at: number } | undefined;
            return s !== undefined && s.restarts === r ? s.at : false;
          },
          [`c${i}`, want],
          { polling: 5, timeout: 10_000 },
        ).catch(async (e: unknown) => {
          const state = await page.evaluate((id) => {
            const w = globalThis as any;
            return { el: String(w.document.querySelector(`[data-child-id="${id}"]`)?.outerHTML).slice(0, 300), seen: Object.keys(w.__seen).length };
          }, `c${i}`);
          throw new Error(`page never showed c${i} restarts ${want}: ${JSON.stringify(state)}`, { cause: e });
        });
        pageSamples.push(Number(await at.jsonValue()) - t0);
      }
      pageSamples.sort((a, b) => a - b);
      lines.push(`| crash → page element updated (headless Chromium, Date.now() resolution) | ${quantile(pageSamples, 0.5).toFixed(0)} ms | ${quantile(pageSamples, 0.95).toFixed(0)} ms | ${quantile(pageSamples, 0.99).toFixed(0)} ms | ${pageSamples.length} |`);
    } finally {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    }
  }
  await view.close();
  await t.sup.stop();
  return lines;
}

/** An SSE client in another process (as a browser would be), reading and discarding. */
function externalClient(url: string): Promise<{ stop(): void }> {
  return new Promise((resolve, reject) => {
    const script = `fetch(${JSON.stringify(new URL("events", url).href)}).then(async (r) => { process.stdout.write("connected\\n"); for await (const _ of r.body) {} })`;
    const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    child.once("error", reject);
    child.stdout.once("data", () => resolve({ stop: () => child.kill() }));
  });
}

/** An SSE client in this process, reading and discarding. */
async function readingClient(url: string): Promise<{ stop(): void }> {
  const controller = new AbortController();
  const res = await fetch(new URL("events", url), { signal: controller.signal });
  void (async () => {
    try {
      for await (const _ of res.body as ReadableStream<Uint8Array>) {
        // discard
      }
    } catch {
      // aborted
    }
  })();
  return { stop: () => controller.abort() };
}

async function restartCost(): Promise<string[]> {
  const FLOOR = "no observer; a no-op subscriber on backplane:events (what any channel consumer costs)";
  const IN_PROCESS = "observer, one client reading in this process (no second process competing for a core)";
  const configs = ["no observer", "observer, no client", FLOOR, IN_PROCESS, "observer, one client connected"] as const;
  const results: Record<(typeof configs)[number], number[]> = { "no observer": [], "observer, no client": [], [FLOOR]: [], [IN_PROCESS]: [], "observer, one client connected": [] };
  const noop = (): void => {};
  const t = await tree(CHILDREN);
  let i = 0;
  const restarts = async (n: number): Promise<number> => {
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < n; k++) await t.crash(i++ % CHILDREN);
    return Number(process.hrtime.bigint() - t0) / n;
  };
  await restarts(RESTARTS_PER_ROUND); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order each round so no configuration always runs first.
    for (let c = 0; c < configs.length; c++) {
      const config = configs[(c + round) % configs.length] as (typeof configs)[number];
      globalThis.gc?.();
      if (config === "no observer") results[config].push(await restarts(RESTARTS_PER_ROUND));
      else if (config === FLOOR) {
        subscribe(EVENTS_CHANNEL, noop);
        results[config].push(await restarts(RESTARTS_PER_ROUND));
        unsubscribe(EVENTS_CHANNEL, noop);
      } else {
        const view = await observe(t.sup);
        const client = config === "observer, one client connected" ? await externalClient(view.url) : config === IN_PROCESS ? await readingClient(view.url) : undefined;
        results[config].push(await restarts(RESTARTS_PER_ROUND));
        client?.stop();
        await view.close();
      }
    }
  }
  await t.sup.stop();
  const base = median(results["no observer"]);
  const bestBase = Math.min(...results["no observer"]);
  return configs.map((config) => {
    const m = median(results[config]);
    const spread = `${(Math.min(...results[config]) / 1000).toFixed(2)}–${(Math.max(...results[config]) / 1000).toFixed(2)} µs`;
    const best = Math.min(...results[config]);
    const ratio = config === "no observer" ? "baseline" : `${((m / base - 1) * 100).toFixed(1)} %`;
    const bestRatio = config === "no observer" ? "baseline" : `${((best / bestBase - 1) * 100).toFixed(1)} %`;
    return `| ${config} | ${(m / 1000).toFixed(2)} µs | ${ratio} | ${(best / 1000).toFixed(2)} µs | ${bestRatio} | ${spread} |`;
  });
}

const started = new Date().toISOString();
process.stderr.write("observer bench: crash → shown…\n");
const latency = await crashToShown();
process.stderr.write("observer bench: restart path cost…\n");
const cost = await restartCost();
console.log(`Observer benchmarks — ${started}, Node ${process.version}, ${CHILDREN} children`);
console.log("Command: node --expose-gc --import tsx bench/observer.ts\n");
console.log("#### Crash → shown (target p95 ≤ 250 ms)\n");
console.log("| path | p50 | p95 | p99 | samples |\n|---|---:|---:|---:|---:|");
for (const l of latency) console.log(l);
console.log(`\n#### Restart path, a child fails → its next run has begun, tree of ${CHILDREN} (medians of ${ROUNDS} interleaved rounds × ${RESTARTS_PER_ROUND} restarts)\n`);
console.log("| configuration | median round, per restart | vs no observer | best round | vs no observer | spread of rounds |\n|---|---:|---:|---:|---:|---:|");
for (const l of cost) console.log(l);
