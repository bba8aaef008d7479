/**
 * Who hears about whose disconnection. Modes add up: `monitor` + `notify` is
 * `peer`, and `unlink` subtracts.
 *
 * - `monitor`: `a.link(b, "monitor")` tells `a` when `b` disconnects.
 * - `notify`:  `a.link(b, "notify")` tells `b` when `a` disconnects.
 * - `peer`:    both (Erlang's `link`).
 *
 * @example
 * ```ts
 * watcher.link(worker, LinkMode.Monitor);
 * a.link(b, "peer");
 * ```
 */
export const LinkMode = { Monitor: "monitor", Notify: "notify", Peer: "peer" } as const;
export type LinkMode = (typeof LinkMode)[keyof typeof LinkMode];

/** @internal */
export function isLinkMode(x: unknown): x is LinkMode {
  return x === "monitor" || x === "notify" || x === "peer";
}
