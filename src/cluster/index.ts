/**
 * `backplane/cluster`: links, calls, names and supervision across processes
 * and machines, over NATS (the `nats` package is an optional peer
 * dependency of this subpath only). See docs/cluster.md.
 */
export { ClusterError, type ClusterErrorCode } from "./cluster-error.js";
export {
  ClusterNode,
  connectNode,
  type DownReason,
  type NodeEvents,
  type NodeId,
  type NodeOptions,
  type NodeStats,
  type RemoteCallOptions,
  type RemoteServeOptions,
  type SpawnFunction,
} from "./node.js";
export { RemoteLine } from "./remote-line.js";
export { type RemoteChildOptions, remoteChild } from "./remote-child.js";
