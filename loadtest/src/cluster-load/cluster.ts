/**
 * The cluster a scenario runs against: either started by the runner (local-cluster.ts: real processes it can stop
 * and replace) or an existing one it was pointed at (existing-cluster.ts: addresses only, nothing to restart).
 */
import type { ProcSample } from './procinfo.js';

export type Role = 'origin' | 'edge';

/** Where a node's CPU and RSS come from: /proc of a child process, or the node's own Prometheus /metrics. */
export type UsageSource = 'proc' | 'metrics';

/** One origin or edge as the runner uses it. */
export interface NodeHandle {
  /** The node's own id (NODE_ID): what the route API answers with. */
  readonly id: string;
  readonly role: Role;
  /** host:port of its RTMP listener, as the runner reaches it. */
  readonly rtmpAddr: string;
  /** Base URL of its public HTTP listener (the route API); undefined when not known. */
  readonly publicHttp: string | undefined;
  /** False once the runner knows it has gone (a process it stopped); always true for a node it did not start. */
  readonly alive: boolean;
  readonly usageSource: UsageSource;
  url(key: string): string;
  /** GET on the node's admin listener (/api, /metrics), with the API token when there is one. */
  json<T>(path: string): Promise<T>;
  metrics(): Promise<string>;
  usage(): Promise<ProcSample>;
}

/** Redis as the runner measures it: commands processed, and the stream keys left (leak check). */
export interface RedisProbe {
  totalCommands(): Promise<number>;
  keys(match: string): Promise<string[]>;
}

/** NATS as the runner measures it: its monitoring endpoint (/varz, /subsz). */
export interface NatsProbe {
  monitor<T = Record<string, unknown>>(path: string): Promise<T>;
}

/** Stopping and starting nodes: only for a cluster the runner started (rolling updates need it). */
export interface NodeLifecycle {
  startNode(role: Role, index: number): Promise<NodeHandle>;
  /** `signal`, then SIGKILL after `killAfterMs`; resolves once the process is gone. */
  stopNode(node: NodeHandle, signal: NodeJS.Signals, killAfterMs: number): Promise<void>;
}

export interface ClusterUnderTest {
  /** Current nodes (rolling updates replace entries). */
  readonly origins: NodeHandle[];
  readonly edges: NodeHandle[];
  readonly redis: RedisProbe | undefined;
  readonly nats: NatsProbe | undefined;
  /** CLUSTER_PREFIX of the nodes (Redis keys). */
  readonly prefix: string;
  /** Base URLs the route API is asked at, in turn (like a load balancer in front of it). */
  routeBases(): string[];
  readonly lifecycle: NodeLifecycle | undefined;
  /** What the report says about where things were measured. */
  readonly description: string;
  close(): Promise<void>;
}
