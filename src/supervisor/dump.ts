/**
 * A readable picture of a live supervision tree: text for terminals and
 * logs, Mermaid for docs. Nested supervisors (and task supervisors) are
 * walked through the state their `init` returned.
 */
import type { Device } from "../core/device.js";
import { faultText } from "../core/describe.js";
import { describeValue } from "../core/timer.js";
import { SupervisorError } from "./errors.js";
import type { Fault } from "../core/fault.js";
import type { Strategy } from "./child-spec.js";
import type { Child } from "./child.js";
import { Supervisor } from "./supervisor.js";
import { TaskSupervisor } from "./task.js";

/** One node of a tree snapshot: a supervisor, a task supervisor or a worker, as plain data. */
export interface TreeNode {
  /** The child id (the supervisor's name at the root). */
  id: string;
  kind: "supervisor" | "tasks" | "worker";
  /** Children: `running`, `restarting` or `stopped`. The root: its own status (`idle`, `starting`, `running`, `stopping`, `stopped`). */
  status: string;
  restarts: number;
  device?: number;
  lastFault?: Fault;
  /** `Date.now()` when `lastFault` happened. */
  lastFaultAt?: number;
  /** Supervisors: their strategy. Task supervisors: tasks running. */
  detail?: string;
  /** Supervisors: their strategy. */
  strategy?: Strategy;
  /** Supervisors: restarts inside the current window, of how many allowed, within `period` ms. */
  intensity?: { used: number; allowed: number; period: number };
  /** Task supervisors: tasks running now. */
  tasks?: number;
  /** Messages waiting in the device's mailbox (running children and supervisors). */
  mailbox?: number;
  children: TreeNode[];
}

/**
 * A snapshot of the tree under `root`, as plain data.
 *
 * @example
 * ```ts
 * console.log(JSON.stringify(snapshot(app), null, 2));
 * ```
 */
export function snapshot(root: Supervisor | TaskSupervisor): TreeNode {
  if (!(root instanceof Supervisor) && !(root instanceof TaskSupervisor)) {
    throw new SupervisorError("invalid-argument", `a tree dump starts at a Supervisor, DynamicSupervisor or TaskSupervisor, not ${describeValue(root)}`);
  }
  if (root instanceof TaskSupervisor) return tasksNode({ id: root.name, status: statusOfTasks(root), restarts: 0, device: root.device.id }, root);
  return supervisorNode({ id: root.name, status: root.status, restarts: 0, device: root.device.id }, root);
}

type Base = Pick<TreeNode, "id" | "status" | "restarts" | "device" | "lastFault" | "lastFaultAt">;

function supervisorNode(base: Base, sup: Supervisor): TreeNode {
  return { ...base, kind: "supervisor", detail: sup.strategy, strategy: sup.strategy, intensity: sup.intensity, mailbox: mailboxOf(sup.device), children: sup.children().map(nodeOf) };
}

function tasksNode(base: Base, tasks: TaskSupervisor): TreeNode {
  return { ...base, kind: "tasks", detail: `${tasks.size} running`, tasks: tasks.size, mailbox: mailboxOf(tasks.device), children: [] };
}

function statusOfTasks(tasks: TaskSupervisor): string {
  return tasks.device.isConnected ? "running" : "stopped";
}

/** Messages queued on a device (0 once it has disconnected and drained). */
function mailboxOf(device: Device): number {
  const inbox = device._board.inbox;
  if (inbox === null) return 0;
  return "items" in inbox && Array.isArray(inbox.items) ? inbox.items.length - (inbox as { head: number }).head : 1;
}

function nodeOf(child: Child): TreeNode {
  const info = child.info();
  const base: Base = { id: info.id, status: info.status, restarts: info.restarts, ...(info.device !== undefined && { device: info.device }), ...(info.lastFault !== undefined && { lastFault: info.lastFault, lastFaultAt: info.lastFaultAt }) };
  const state = child.status === "running" ? child.state : undefined;
  if (state instanceof Supervisor) return supervisorNode(base, state);
  if (state instanceof TaskSupervisor) return tasksNode(base, state);
  const node: TreeNode = { ...base, kind: info.type === "supervisor" ? "supervisor" : "worker", children: [] };
  if (child.device !== undefined && child.status === "running") node.mailbox = mailboxOf(child.device);
  return node;
}

/**
 * A fault in a few words: `error: connection reset`, `cascade from device #12`,
 * `killed`. Never throws, whatever the fault carries (an error whose
 * `toString` or `message` throws is shown by its type).
 *
 * @example
 * ```ts
 * sup.on("child-exited", (e) => console.log(`${e.id}: ${describeFault(e.fault)}`)); // "db: error: connection reset"
 * ```
 */
export function describeFault(fault: Fault | undefined): string {
  return faultText(fault);
}

/**
 * The tree as indented text, one line per child: status, restarts, last fault.
 *
 * @example
 * ```ts
 * console.log(dumpTree(app));
 * // app (one-for-one) running
 * // ├─ db        running     restarts 2   last: error: connection reset
 * // └─ workers (one-for-all) running
 * //    └─ w1     restarting  restarts 1   last: cascade from #12
 * ```
 */
export function dumpTree(root: Supervisor | TaskSupervisor): string {
  const top = snapshot(root);
  const rows: [left: string, node: TreeNode][] = [];
  const walk = (nodes: TreeNode[], prefix: string): void => {
    nodes.forEach((node, i) => {
      const last = i === nodes.length - 1;
      const label = node.kind === "worker" ? node.id : `${node.id} (${node.detail ?? node.kind})`;
      rows.push([`${prefix}${last ? "└─ " : "├─ "}${label}`, node]);
      walk(node.children, prefix + (last ? "   " : "│  "));
    });
  };
  walk(top.children, "");
  const width = Math.max(0, ...rows.map(([left]) => left.length));
  const lines = [`${top.id}${top.detail !== undefined ? ` (${top.detail})` : ""} ${top.status}`];
  for (const [left, node] of rows) {
    const fault = node.lastFault !== undefined ? `  last: ${describeFault(node.lastFault)}` : "";
    lines.push(`${left.padEnd(width)}  ${node.status.padEnd(10)} restarts ${node.restarts}${fault}`.trimEnd());
  }
  return lines.join("\n");
}

/**
 * The tree as a Mermaid flowchart, for docs and dashboards.
 *
 * @example
 * ```ts
 * writeFileSync("tree.mmd", treeToMermaid(app));
 * ```
 */
export function treeToMermaid(root: Supervisor | TaskSupervisor): string {
  const lines = ["flowchart TD"];
  let n = 0;
  const visit = (node: TreeNode): string => {
    const key = `n${n++}`;
    const text = [node.id, node.detail, `${node.status}${node.restarts > 0 ? `, ${node.restarts} restarts` : ""}`].filter(Boolean).join("<br/>");
    const shape = node.kind === "worker" ? `("${escape(text)}")` : `["${escape(text)}"]`;
    lines.push(`  ${key}${shape}`);
    if (node.status !== "running") lines.push(`  class ${key} ${node.status}`);
    for (const child of node.children) lines.push(`  ${key} --> ${visit(child)}`);
    return key;
  };
  visit(snapshot(root));
  lines.push("  classDef restarting fill:#fff3cd,stroke:#d39e00", "  classDef stopped fill:#eee,stroke:#999,color:#666");
  return lines.join("\n");
}

function escape(text: string): string {
  return text.replace(/"/g, "#quot;");
}
