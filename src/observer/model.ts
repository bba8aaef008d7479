/**
 * The observer's picture of the observed trees: every node flattened into a
 * map keyed by its path, built from the public `snapshot()` and walked
 * through `stateOf()` (to find the nested supervisors whose events count),
 * and diffed against what clients were last sent, so a change becomes a
 * patch of only the nodes that changed.
 */
import type { ExecutionRecord } from "../core/records.js";
import type { ChildInfo } from "../supervisor/child-spec.js";
import { describeFault, snapshot, type TreeNode } from "../supervisor/dump.js";
import { Supervisor } from "../supervisor/supervisor.js";
import { TaskSupervisor } from "../supervisor/task.js";

/**
 * What `observe()` can watch: any Supervisor, DynamicSupervisor or TaskSupervisor.
 *
 * @example
 * ```ts
 * const roots: Observable[] = [app, app.stateOf<TaskSupervisor>("jobs")!];
 * ```
 */
export type Observable = Supervisor | TaskSupervisor;

/**
 * One execution record as the page shows it.
 *
 * @example
 * ```ts
 * const r: RecordView = { name: "db", start: 1796184171155, duration: 412, outcome: "error", fault: "error: connection reset" };
 * ```
 */
export interface RecordView {
  name: string;
  start: number;
  duration: number;
  outcome: ExecutionRecord["outcome"];
  /** The fault in a few words (`describeFault`). */
  fault?: string;
}

/**
 * One node of the tree as sent to clients (`/events`, `/snapshot.json`):
 * flat, with its children as paths, so that a change is sent as the nodes
 * that changed and nothing else.
 */
export interface NodeView {
  /** Unique key: the ids from the root down, each URI-encoded, joined by `/`. */
  path: string;
  /** The parent's path; null for a root. */
  parent: string | null;
  id: string;
  kind: TreeNode["kind"];
  status: string;
  restarts: number;
  device?: number;
  /** The last fault in a few words, and its kind. */
  lastFault?: string;
  lastFaultKind?: string;
  lastFaultAt?: number;
  strategy?: string;
  intensity?: { used: number; allowed: number; period: number };
  tasks?: number;
  mailbox?: number;
  /** Paths of its children, in start order. */
  children: string[];
  /** Supervisors and task supervisors: their most recent execution records, oldest first. */
  records?: RecordView[];
}

/** @internal A change between two pictures. */
export interface Patch {
  changed: NodeView[];
  /** The same nodes, already serialized (the diff needed them): a patch message is put together from them, not serialized twice. */
  changedJson: string[];
  removed: string[];
}

/** What a node is made from: a child's info, or a root's own figures. */
type Base = Pick<ChildInfo, "id" | "restarts" | "device" | "lastFault" | "lastFaultAt"> & { status: string; type?: ChildInfo["type"] };

/** @internal The observed trees as flat nodes, and what changed since they were last sent. */
export class TreeModel {
  readonly #roots: readonly Observable[];
  readonly #recordLimit: number;
  /** Serialized node by path, as last sent. */
  #sent = new Map<string, string>();
  #nodes = new Map<string, NodeView>();
  /** Which supervisor object each supervisor node path stands for (for actions). */
  #objects = new Map<string, Observable>();
  /** Every supervisor and task supervisor in the trees: the sources whose changes matter. */
  sources = new Set<object>();
  rootPaths: string[] = [];

  constructor(roots: readonly Observable[], recordLimit: number) {
    this.#roots = roots;
    this.#recordLimit = recordLimit;
  }

  /** The observed roots. */
  roots(): readonly Observable[] {
    return this.#roots;
  }

  /**
   * Walk the trees now. `full` reads them through `snapshot()`, mailbox
   * lengths included; otherwise through `whichChildren()`/`stateOf()` only
   * (several times cheaper per node), with the mailbox lengths of the last
   * full walk — they change without events, so the heartbeat re-reads them.
   */
  collect(full = true): void {
    const nodes = new Map<string, NodeView>();
    const objects = new Map<string, Observable>();
    const sources = new Set<object>();
    const used = new Set<string>();
    const rootPaths: string[] = [];
    if (full) this.#mailboxes = new Map();
    for (const root of this.#roots) {
      // Unique even when names collide with a made-up suffix ("app", "app", "app~2").
      const base = pathSegment(root.name);
      let key = base;
      for (let n = 2; used.has(key); n++) key = `${base}~${n}`;
      used.add(key);
      rootPaths.push(key);
      if (full) this.#walk(snapshot(root), root, key, null, nodes, objects, sources);
      else {
        const status = root instanceof TaskSupervisor ? (root.device.isConnected ? "running" : "stopped") : root.status;
        this.#fast({ id: root.name, status, restarts: 0, device: root.device.id }, root, key, null, nodes, objects, sources);
      }
    }
    this.#nodes = nodes;
    this.#objects = objects;
    this.sources = sources;
    this.rootPaths = rootPaths;
  }

  /** Mailbox lengths by path, from the last full walk. */
  #mailboxes = new Map<string, number>();

  #fast(base: Base, obj: Observable | undefined, path: string, parent: string | null, nodes: Map<string, NodeView>, objects: Map<string, Observable>, sources: Set<object>): void {
    const view: NodeView = { path, parent, id: base.id, kind: "worker", status: base.status, restarts: base.restarts, children: [] };
    if (base.device !== undefined) view.device = base.device;
    if (base.lastFault !== undefined) {
      view.lastFault = describeFault(base.lastFault);
      view.lastFaultKind = base.lastFault.kind;
      if (base.lastFaultAt !== undefined) view.lastFaultAt = base.lastFaultAt;
    }
    if (obj instanceof Supervisor) {
      view.kind = "supervisor";
      view.strategy = obj.strategy;
      view.intensity = obj.intensity;
    } else if (obj instanceof TaskSupervisor) {
      view.kind = "tasks";
      view.tasks = obj.size;
    } else if (base.type === "supervisor") view.kind = "supervisor";
    // As snapshot() has it: supervisors and running children have a mailbox.
    if (obj !== undefined || (base.status === "running" && base.device !== undefined)) view.mailbox = this.#mailboxes.get(path) ?? 0;
    if (obj !== undefined) this.#owned(view, obj, path, objects, sources);
    nodes.set(path, view);
    if (!(obj instanceof Supervisor)) return;
    for (const info of obj.whichChildren()) {
      const childPath = `${path}/${pathSegment(info.id)}`;
      view.children.push(childPath);
      const childObj = info.type === "supervisor" && info.status === "running" ? stateOf(obj, info.id) : undefined;
      this.#fast(info, childObj, childPath, path, nodes, objects, sources);
    }
  }

  /** A supervisor's own part of its node: where it is, and its records. */
  #owned(view: NodeView, obj: Observable, path: string, objects: Map<string, Observable>, sources: Set<object>): void {
    objects.set(path, obj);
    sources.add(obj);
    const records = obj.records();
    view.records = (records.length > this.#recordLimit ? records.slice(records.length - this.#recordLimit) : records).map(viewOfRecord);
  }

  #walk(node: TreeNode, obj: Observable | undefined, path: string, parent: string | null, nodes: Map<string, NodeView>, objects: Map<string, Observable>, sources: Set<object>): void {
    const view: NodeView = { path, parent, id: node.id, kind: node.kind, status: node.status, restarts: node.restarts, children: [] };
    if (node.device !== undefined) view.device = node.device;
    if (node.lastFault !== undefined) {
      view.lastFault = describeFault(node.lastFault);
      view.lastFaultKind = node.lastFault.kind;
      if (node.lastFaultAt !== undefined) view.lastFaultAt = node.lastFaultAt;
    }
    if (node.strategy !== undefined) view.strategy = node.strategy;
    if (node.intensity !== undefined) view.intensity = node.intensity;
    if (node.tasks !== undefined) view.tasks = node.tasks;
    if (node.mailbox !== undefined) {
      view.mailbox = node.mailbox;
      this.#mailboxes.set(path, node.mailbox);
    }
    if (obj !== undefined) this.#owned(view, obj, path, objects, sources);
    nodes.set(path, view);
    for (const child of node.children) {
      const childPath = `${path}/${pathSegment(child.id)}`;
      view.children.push(childPath);
      const childObj = child.kind !== "worker" && obj instanceof Supervisor ? stateOf(obj, child.id) : undefined;
      this.#walk(child, childObj, childPath, path, nodes, objects, sources);
    }
  }

  /** Walk the trees (`full`: mailbox lengths too) and say what changed since the last diff (or since the start). */
  diff(full = false): Patch {
    this.collect(full);
    const changed: NodeView[] = [];
    const changedJson: string[] = [];
    const removed: string[] = [];
    const sent = new Map<string, string>();
    for (const [path, node] of this.#nodes) {
      const json = JSON.stringify(node);
      sent.set(path, json);
      if (this.#sent.get(path) !== json) {
        changed.push(node);
        changedJson.push(json);
      }
    }
    for (const path of this.#sent.keys()) if (!sent.has(path)) removed.push(path);
    this.#sent = sent;
    return { changed, changedJson, removed };
  }

  /** Every node of the last picture, roots first, parents before children. */
  all(): NodeView[] {
    return [...this.#nodes.values()];
  }

  /** Forget what was sent (no client left): the next diff starts from scratch. */
  reset(): void {
    this.#sent = new Map();
    this.#nodes = new Map();
    this.#objects = new Map();
    this.sources = new Set();
    this.#mailboxes = new Map();
  }

  /** The supervisor a node path stands for, and the child id, from a fresh walk. */
  locate(path: string): { parent: Observable; id: string } | undefined {
    this.collect();
    const node = this.#nodes.get(path);
    if (node === undefined || node.parent === null) return undefined;
    const parent = this.#objects.get(node.parent);
    return parent === undefined ? undefined : { parent, id: node.id };
  }
}

function stateOf(sup: Supervisor, id: string): Observable | undefined {
  try {
    const state = sup.stateOf(id);
    return state instanceof Supervisor || state instanceof TaskSupervisor ? state : undefined;
  } catch {
    return undefined; // gone between the snapshot and this call
  }
}

function viewOfRecord(r: ExecutionRecord): RecordView {
  const view: RecordView = { name: r.name, start: r.start, duration: r.duration, outcome: r.outcome };
  if (r.fault !== undefined) view.fault = describeFault(r.fault);
  return view;
}

/**
 * A child id as one segment of a node path. Never throws: an id with a lone
 * surrogate half (an emoji cut by `.slice()`) has it replaced first, where
 * `encodeURIComponent` alone would throw a URIError into the observer.
 */
export function pathSegment(id: string): string {
  return encodeURIComponent((String(id) as string & { toWellFormed(): string }).toWellFormed());
}
