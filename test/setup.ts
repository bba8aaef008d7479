// Fail the test that is running when a promise rejects with nobody listening,
// on top of Vitest's own end-of-run report: the library promises none ever does.
import { afterEach } from "vitest";

const unhandled: unknown[] = [];
process.on("unhandledRejection", (reason) => {
  unhandled.push(reason);
});

afterEach(async () => {
  // Node reports unhandled rejections after the microtask queue drains: give it a turn.
  await new Promise((resolve) => setImmediate(resolve));
  if (unhandled.length > 0) {
    const reasons = unhandled.splice(0);
    throw new Error(`unhandled rejection(s) during the test: ${reasons.map(String).join("; ")}`);
  }
});
