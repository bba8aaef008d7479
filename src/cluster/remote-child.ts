/**
 * A supervised child that runs on another node, as a plain ChildSpec value:
 * restarts, intensity and escalation stay the supervisor's business.
 */
import { Device } from "../core/device.js";
import type { Restart, Shutdown, ChildSpec, ChildContext } from "../supervisor/child-spec.js";
import { describeValue, durationProblem } from "../core/timer.js";
import { ClusterError } from "./cluster-error.js";
import type { ClusterNode } from "./node.js";
import type { RemoteLine } from "./remote-line.js";

/** Options of {@link remoteChild}. */
export interface RemoteChildOptions {
  /** The child's id in its supervisor. */
  id: string;
  /** The name of the node to start it on (it must have registered the spawner). */
  on: string;
  /** This node: the one the supervisor runs on. */
  node: ClusterNode;
  /** The spawner kind registered on `on` with `node.spawner(kind, fn)`. */
  spawn: string;
  /** Given to the spawner's function (v8 structured clone). */
  args?: unknown;
  /** ms to wait for the remote start. Default 5000. */
  startTimeout?: number;
  restart?: Restart;
  shutdown?: Shutdown;
  significant?: boolean;
}

/**
 * A child started on node `on` through its spawner. `init` starts it
 * remotely (a refused or failed start is a failed start); `run` settles
 * when the remote child ends: it resolves on a clean exit and rejects with
 * the child's error (message preserved), or with a `ClusterError`
 * `noconnection` when its node is lost — one failure, counted like any
 * other. When the supervisor stops the child, the remote child is asked
 * to stop; if the supervisor kills it or this node is lost, the remote
 * child hears it through its link and ends too: no orphans.
 *
 * @example
 * ```ts
 * b.spawner("indexer", async (args, signal) => runIndexer(args, signal));   // on node b
 * const sup = new Supervisor({ children: [remoteChild({ id: "idx", on: "b", node: a, spawn: "indexer", args: { shard: 3 } })] });
 * await sup.start();
 * ```
 */
export function remoteChild(options: RemoteChildOptions): ChildSpec<RemoteLine> {
  if (typeof options !== "object" || options === null) throw new ClusterError("invalid-argument", "remoteChild() takes an options object");
  const { id, on, node, spawn, args, startTimeout = 5_000, restart, shutdown, significant } = options;
  if (typeof id !== "string" || id.length === 0) throw new ClusterError("invalid-argument", "remoteChild: id must be a non-empty string");
  if (typeof on !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(on)) throw new ClusterError("invalid-argument", `remoteChild: on must be a node name ([A-Za-z0-9_-]+), not ${describeValue(on)}`);
  if (typeof spawn !== "string" || spawn.length === 0) throw new ClusterError("invalid-argument", "remoteChild: spawn must be a spawner kind");
  if (node === null || typeof node !== "object" || typeof node.spawn !== "function") throw new ClusterError("invalid-argument", "remoteChild: node must be a ClusterNode");
  const bad = durationProblem("startTimeout", startTimeout);
  if (bad !== undefined) throw new ClusterError("invalid-argument", `remoteChild: ${bad}`);
  const spec: ChildSpec<RemoteLine> = {
    id,
    init: (ctx: ChildContext) => node.spawn(on, spawn, args, { parent: ctx.device, timeout: startTimeout }),
    run: (ctx: ChildContext, line: RemoteLine) => runRemote(ctx, line),
    ...(restart !== undefined && { restart }),
    ...(shutdown !== undefined && { shutdown }),
    ...(significant !== undefined && { significant }),
  };
  return spec;
}

function runRemote(ctx: ChildContext, line: RemoteLine): Promise<void> {
  const watcher = new Device({ name: `${ctx.id}:remote` });
  watcher.link(line, "monitor");
  const signal = ctx.signal;
  const onAbort = (): void => void line.shutdown(ctx.device.id);
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  return watcher.receive().then((m) => {
    signal.removeEventListener("abort", onAbort);
    watcher.disconnect();
    const fault = m?.kind === "disconnected" ? m.fault : undefined;
    if (fault === undefined) return;
    if (fault.kind === "error") throw fault.error;
    if (fault.kind === "noconnection") throw new ClusterError("noconnection", `remote child "${ctx.id}": node ${fault.node} was lost`, { fault });
    throw new ClusterError("remote-error", `remote child "${ctx.id}" ended with fault "${fault.kind}"`, { fault });
  });
}
