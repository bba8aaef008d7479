/**
 * The code that runs first in every worker thread or child process: load
 * the user's module, then act on the parent's messages. It is plain
 * JavaScript in a string, evaluated by `new Worker(code, { eval: true })` or
 * `node -e`, so it needs no file of its own in the package and runs the same
 * from the sources, the ESM build and the CJS build.
 *
 * The messages it takes and sends are the unions of ./protocol.ts
 * (`ParentMessage`, `WorkerMessage`); keep the two in step.
 */
export const BOOTSTRAP = String.raw`
// Written to run both as a script and as a module (a worker inherits the
// parent's flags, --input-type=module among them): no require, no top-level await.
// A child process has an IPC channel (process.send); a worker thread does not.
const thread = typeof process.send !== "function";
// IPC messages with no listener yet are lost (a MessagePort buffers them): listen now, handle once ready.
const early = [];
let handle;
if (!thread) process.on("message", (m) => (handle ? handle(m) : early.push(m)));
(async () => {
const threads = thread ? await import("node:worker_threads") : undefined;
const send = thread ? (m) => threads.parentPort.postMessage(m) : (m, cb) => process.send(m, cb);
const listen = (f) => {
  if (thread) return threads.parentPort.on("message", f);
  handle = f;
  for (const m of early.splice(0)) f(m);
};
const ser = (e) =>
  e !== null && typeof e === "object"
    ? { name: String(e.name ?? "Error"), message: String(e.message ?? ""), stack: typeof e.stack === "string" ? e.stack : undefined, code: e.code }
    : { name: "Error", message: String(e) };
if (!thread) {
  // A child process has no 'error' event in its parent: report the error, then exit.
  process.on("uncaughtException", (e) => send({ t: "uncaught", error: ser(e) }, () => process.exit(1)));
  process.on("disconnect", () => process.exit(0));
}
// Made up front, so a stop that arrives while the module is still loading is not lost.
const controller = new AbortController();
// Calls (and a run) that arrive while the module is still loading wait for it.
let markReady;
const ready = new Promise((resolve) => (markReady = resolve));
listen(async (m) => {
  if (m.t === "stop") return controller.abort(new Error("stop requested by the supervisor"));
  if (m.t === "call") {
    await ready;
    let value;
    try {
      value = await fn(...m.args);
    } catch (e) {
      return send({ t: "err", id: m.id, error: ser(e) });
    }
    try {
      send({ t: "ok", id: m.id, value });
    } catch (e) {
      // A send can only fail on what it cannot serialize (DataCloneError, or a TypeError for a bare function).
      send({ t: "err", id: m.id, error: ser(e), notCloneable: true });
    }
    return;
  }
  if (m.t === "run") {
    await ready;
    let value;
    try {
      value = await fn({ id: m.id, args: m.args, signal: controller.signal });
    } catch (e) {
      return send({ t: "error", error: ser(e) });
    }
    try {
      send({ t: "done", value });
    } catch {
      send({ t: "done", value: undefined });
    }
    return;
  }
  if (m.t !== "load") return;
  let loaded;
  try {
    const mod = await import(m.module);
    loaded = m.export === "default" && typeof mod.default !== "function" && mod.default && typeof mod.default.default === "function" ? mod.default.default : mod[m.export];
    if (typeof loaded !== "function") throw Object.assign(new Error("module " + m.module + " has no exported function " + JSON.stringify(m.export)), { code: "ERR_EXPORT_NOT_FOUND" });
  } catch (e) {
    return send({ t: "fatal", error: ser(e) });
  }
  globalThis.__backplaneFn = loaded;
  markReady();
  send({ t: "ready" });
});
const fn = (...args) => globalThis.__backplaneFn(...args);
})();
`;
