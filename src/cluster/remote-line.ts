/**
 * A handle to a device on another node (or on this one, through a name).
 *
 * The core links to anything whose `_board` is a core plugboard. A remote
 * device is stood for, on each node that refers to it, by one local proxy
 * plugboard: the node closes it exactly once, with the remote device's own
 * ending or with `noconnection` when its node is lost, so every local
 * monitor hears exactly one ending. The proxy's `watching` field (the
 * devices it hears about: notify links towards the remote device) is an
 * accessor: each change asks the node to look at it after the current
 * synchronous code, and to forward new or removed notify links.
 */
import type { DeviceId } from "../core/device-id.js";
import { Line } from "../core/line.js";
import type { Message } from "../core/message.js";
import type { Plugboard } from "../core/plugboard.js";
import { ClusterError } from "./cluster-error.js";

/** @internal What a RemoteLine needs from its node. */
export interface LineHost {
  /** Send a shutdown request to the remote device; false when it is known to be gone. */
  shutdownRemote(proxy: ProxyRef, from: DeviceId): boolean;
}

/** @internal The node-side record behind a RemoteLine. */
export interface ProxyRef {
  readonly board: Plugboard;
  /** The remote node's name and incarnation, and the device's id on it. */
  readonly nodeName: string;
  readonly incarnation: string;
  readonly remoteId: DeviceId;
}

/**
 * A line to a device that may live on another node: `Device.link` accepts
 * it with the local semantics (monitor, notify, peer), `node.call` can
 * address it when it was found by name, and `shutdown` asks the remote
 * device to stop. It is a `Line` whose device is the node's local stand-in
 * for the remote one.
 *
 * A monitor of a RemoteLine hears exactly one ending: the device's own
 * (its fault preserved; an error keeps its name, message, stack and `code`)
 * or `{ kind: "noconnection", node }` when its node is lost.
 *
 * @example
 * ```ts
 * const billing = await node.lookup("billing");
 * if (billing) me.link(billing, "monitor");
 * const m = await me.receive(); // { kind: "disconnected", from, fault: { kind: "noconnection", node: "b" } } if b is lost
 * ```
 */
export class RemoteLine extends Line {
  readonly #host: LineHost;
  readonly #proxy: ProxyRef;
  /** The name it was exported or found under, if any. */
  readonly name: string | undefined;

  /** @internal Made by the node (`export`, `lookup`, `spawn`). */
  constructor(host: LineHost, proxy: ProxyRef, name: string | undefined) {
    super(proxy.board);
    this.#host = host;
    this.#proxy = proxy;
    this.name = name;
  }

  /** The name of the node the device lives on. */
  get node(): string {
    return this.#proxy.nodeName;
  }

  /** The incarnation of that node the device belongs to. */
  get incarnation(): string {
    return this.#proxy.incarnation;
  }

  /** The device's id on its own node (`id` is the id of the local stand-in: the `from` its monitors hear). */
  get remoteId(): DeviceId {
    return this.#proxy.remoteId;
  }

  /**
   * Only `shutdown` messages cross nodes (endings travel by links).
   *
   * @throws {ClusterError} `invalid-argument` for anything but a shutdown.
   * @example
   * ```ts
   * line.send(Message.shutdown(me.id));
   * ```
   */
  override send(message: Message): boolean {
    if (message?.kind !== "shutdown") throw new ClusterError("invalid-argument", "only shutdown messages can be sent to a remote device; endings travel by links");
    return this.shutdown(message.from);
  }

  /**
   * Ask the device to stop (a `shutdown` message from `from`, delivered on
   * the acknowledged control plane). False when it is known to be gone.
   *
   * @example
   * ```ts
   * child.shutdown(me.id);
   * ```
   */
  override shutdown(from: DeviceId): boolean {
    if (typeof from !== "number") throw new ClusterError("invalid-argument", "shutdown() takes the id of the asking device");
    return this.#host.shutdownRemote(this.#proxy, from);
  }
}
