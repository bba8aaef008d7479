/**
 * End to end in a real browser: headless Chromium (Debian's `chromium`
 * package, never a downloaded one) driven by playwright-core opens the
 * observer, a child crashes, and the page shows it restarted. The
 * screenshot is kept in test/observer/artifacts/ (and, with
 * UPDATE_DOCS_SCREENSHOT=1, copied to docs/observer.png).
 */
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamicSupervisor, Supervisor, TaskSupervisor } from "../../src/index.js";
import { type Observer, observe } from "../../src/observer/index.js";
import { next, worker } from "../supervisor/helpers.js";

const candidates = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].filter((p): p is string => typeof p === "string" && p !== "");
const executablePath = candidates.find((p) => existsSync(p));
const why = executablePath === undefined ? `no Chromium found (looked at ${candidates.join(", ")}; apt-get install chromium)` : undefined;

const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));
const DOCS_PNG = fileURLToPath(new URL("../../docs/observer.png", import.meta.url));
const TOKEN = "e2e-token-0f3c9a";

describe.skipIf(why)(why ? `observer in a real browser (skipped: ${why})` : "observer in a real browser", () => {
  let context: Awaited<ReturnType<typeof chromium.launchPersistentContext>>;
  let profile: string;

  beforeAll(async () => {
    profile = await mkdtemp(join(tmpdir(), "backplane-chromium-"));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: executablePath as string,
      headless: true,
      viewport: { width: 1280, height: 720 },
      args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    if (profile !== undefined) await rm(profile, { recursive: true, force: true });
  });

  it("a crashed child shows restarted on the page; search filters; a terminate from the page stops a child", async () => {
    const db = worker("db");
    const fetcher = worker("fetch");
    const parse = worker("parse");
    const store = worker("store");
    const cache = worker("cache");
    const app = new Supervisor({
      name: "app",
      intensity: 10,
      children: [
        db.spec,
        Supervisor.child("pipeline", () => ({ name: "pipeline", strategy: "rest-for-one", intensity: 5, period: 2000, children: [fetcher.spec, parse.spec, store.spec] })),
        TaskSupervisor.child("jobs"),
        cache.spec,
      ],
    });
    await app.start();
    let view: Observer | undefined;
    try {
      view = await observe(app, { actions: true, token: TOKEN });
      // A history worth looking at: a parse error that took store down with it (rest-for-one).
      const pipeline = app.stateOf<Supervisor>("pipeline") as Supervisor;
      const healed = next(pipeline, "child-restarted");
      parse.current.crash(new Error("unexpected token < in JSON at position 0"));
      await healed;

      const page = await context.newPage();
      // The token travels in the fragment, which the browser never sends; the page moves it to a header.
      await page.goto(`${view.url}#token=${TOKEN}`);
      await page.waitForSelector('[data-child-id="db"][data-status="running"][data-restarts="0"]');
      expect(page.url()).not.toContain(TOKEN);
      expect(await page.locator("[data-child-id]").count()).toBe(8);

      const restarted = next(app, "child-restarted");
      db.current.crash(new Error("connection reset by peer"));
      await restarted;
      await page.waitForSelector('[data-child-id="db"][data-restarts="1"][data-status="running"]');
      await expect.poll(() => page.locator('[data-child-id="db"] .f').first().textContent()).toContain("connection reset by peer");

      // Search: only matches and their ancestors stay visible.
      await page.fill("#q", "store");
      await page.waitForSelector('[data-child-id="db"]', { state: "hidden" });
      expect(await page.locator('[data-child-id="store"]').isVisible()).toBe(true);
      expect(await page.locator('[data-child-id="pipeline"]').isVisible()).toBe(true);
      await page.fill("#q", "");
      await page.waitForSelector('[data-child-id="db"]', { state: "visible" });

      // An action from the page itself: select cache, terminate it.
      await page.click('[data-child-id="cache"] > .r');
      await page.click('button[data-action="terminate"]');
      await page.waitForSelector('[data-child-id="cache"][data-status="stopped"]');
      expect(app.whichChildren().find((c) => c.id === "cache")?.status).toBe("stopped");

      await page.click('[data-child-id="parse"] > .r');
      await mkdir(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, "observer-e2e.png");
      await page.screenshot({ path: shot });
      if (process.env.UPDATE_DOCS_SCREENSHOT === "1") await copyFile(shot, DOCS_PNG);
      expect(existsSync(shot)).toBe(true);
      await page.close();
    } finally {
      await view?.close();
      await app.stop();
    }
  }, 60_000);

  it("thousands of children: the page loads them all, a crash among them shows, search finds one", async () => {
    const pool = new DynamicSupervisor({ name: "pool", intensity: 100 });
    await pool.start();
    const fails = new Map<string, (e: Error) => void>();
    const spec = (id: string) => ({ id, run: (ctx: { signal: AbortSignal }) => new Promise<void>((resolve, reject) => {
      fails.set(id, reject);
      ctx.signal.addEventListener("abort", () => resolve());
    }) });
    for (let i = 0; i < 3000; i++) await pool.startChild(spec(`w${i}`));
    let view: Observer | undefined;
    try {
      view = await observe(pool);
      const page = await context.newPage();
      await page.goto(view.url);
      await page.waitForSelector('[data-child-id="w2999"]', { state: "attached" });
      expect(await page.locator(".n.k-worker").count()).toBe(3000);
      const restarted = next(pool, "child-restarted");
      fails.get("w1234")?.(new Error("one in three thousand"));
      await restarted;
      await page.waitForSelector('[data-child-id="w1234"][data-restarts="1"][data-status="running"]', { state: "attached" });
      await page.fill("#q", "w2999");
      await page.waitForSelector('[data-child-id="w2999"]', { state: "visible" });
      expect(await page.locator('[data-child-id="w1"]').isVisible()).toBe(false);
      await page.close();
    } finally {
      await view?.close();
      await pool.stop();
    }
  }, 60_000);
});
