import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { serveIsolated } from "../../src/index.js";

const fixture = fileURLToPath(new URL("../fixtures/pid-after.mjs", import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The old process's exit is not an event this test can hear: poll its pid, bounded. */
async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 500 && alive(pid); i++) await new Promise((r) => setTimeout(r, 10));
  return !alive(pid);
}

describe("isolated server deploy: the old version retires", () => {
  it("the old worker is ended once its last call is answered, not at stop()", async () => {
    const server = serveIsolated<number, number>({ module: fixture, via: "process" });
    const oldPid = await server.call(0);
    const slow = server.call(100); // in flight on the old version across the deploy
    await server.deploy(fixture, { version: "2" });
    expect(await slow).toBe(oldPid);
    const newPid = await server.call(0);
    expect(newPid).not.toBe(oldPid);
    expect(await gone(oldPid)).toBe(true);
    expect(alive(newPid)).toBe(true);
    await server.stop();
  });
});
