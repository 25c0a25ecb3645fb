import type { NodeMalloc } from '../node-flags.js';
import type { HostPort } from './targets.js';

/** A flag the runner cannot honour: main prints its message alone, without a stack. */
export class UsageError extends Error {}

/**
 * How viewers pick an edge, as the load balancer in front of the edges would: `random` (the runner's original
 * behaviour and the default), `round-robin` (a plain L4 balancer), or `route` (ask a node's
 * /api/cluster/route, spread over the nodes, and play on the edge it answers).
 */
export const LB_MODES = ['random', 'round-robin', 'route'] as const;
export type LbMode = (typeof LB_MODES)[number];

/** An existing cluster to run against instead of starting one (`--origins-at`, `--edges-at`, ...). */
export interface ExistingClusterTarget {
  /** RTMP listeners of the origins (publishers) and of the edges (viewers). */
  originsAt: HostPort[];
  edgesAt: HostPort[];
  /** Admin HTTP listeners (/api/node, /api/streams, /metrics) of those nodes, in any order. */
  apiAt: HostPort[];
  /** Public HTTP listeners the route API is asked at; empty: the --api-at addresses. */
  routeAt: HostPort[];
  apiToken: string | undefined;
  /** For Redis commands/s and the leak check's stream keys; undefined: not measured. */
  redisUrl: string | undefined;
  /** nats-server's monitoring endpoint (http://host:8222) for messages/s and subscriptions; undefined: not measured. */
  natsMonitorUrl: string | undefined;
  /** CLUSTER_PREFIX of the nodes. */
  clusterPrefix: string;
  /** Allow non-loopback addresses (a warning is printed). */
  allowRemote: boolean;
}

/** Every size and rate of a cluster run, with the defaults sized for a 2-core machine. */
export interface ClusterLoadOptions {
  origins: number;
  edges: number;
  streams: number;
  viewers: number;
  /** Streams published at full bitrate (~2.5 Mbit/s 720p30); the rest are low bitrate. */
  hotStreams: number;
  lowKbps: number;
  /** Zipf exponent of stream popularity (every stream gets one viewer first; the rest follow 1/rank^s). */
  zipf: number;
  /** Viewers opened per second during the ramp. */
  rampPerSecond: number;
  /** Steady measurement window. */
  durationS: number;
  /** Pause after the ramp and after the window (media in flight), twice that after churn and rollouts. */
  settleMs: number;
  /** A gap between two video frames longer than this is a stall. */
  stallMs: number;
  /** Churn phase length (0 = none): publishers stop/restart, viewers leave/join. */
  churnS: number;
  publisherChurnPerS: number;
  /** Share of churned publishers that go by dropping TCP (the rest stop cleanly). */
  dropFraction: number;
  /** A churned publisher publishes again after this (OBS reconnects about a second later). */
  republishDelayMs: number;
  viewerChurnPerS: number;
  /** SIGTERM each origin in turn (and start a replacement) while publishers reconnect. */
  rolling: boolean;
  /** SIGTERM each edge in turn after the origins (its viewers reconnect to another edge). */
  rollingEdges: boolean;
  /** Share of publishers that negotiate E-RTMP v2 Reconnect. */
  ertmpFraction: number;
  /** Publishers' first reconnect back-off. */
  reconnectDelayMs: number;
  /**
   * Run every publisher in one worker thread (the default), so the viewers' reads in the runner's thread do not
   * delay their paced sends, ReconnectRequest handling and reconnects.
   */
  publisherThread: boolean;
  /** Node settings. */
  leaseMs: number;
  pullLingerMs: number;
  shutdownTimeoutMs: number;
  /** How viewers choose their edge. */
  lb: LbMode;
  /** Seed of the audience (stream popularity, join order), of churn and probes: equal seeds, equal audiences. */
  seed: number;
  /** Single-join TTFF probes of each kind (cold, warm) after the steady window. */
  probes: number;
  /** ROUTE_MAX_VIEWERS / HEARTBEAT_MS of the nodes the runner starts (undefined: the server's defaults). */
  routeMaxViewers: number | undefined;
  heartbeatMs: number | undefined;
  /** Run against this cluster instead of starting one (rolling updates are then refused). */
  target: ExistingClusterTarget | undefined;
  /**
   * Start every node with V8's sampling profiler (`--cpu-prof`, which NODE_OPTIONS refuses), writing
   * `<dir>/<node id>.cpuprofile` when it exits; nodes are then stopped with SIGTERM at the end, not SIGKILL.
   */
  cpuProfDir: string | undefined;
  /** Allocator of the nodes the runner starts: jemalloc, as the image runs them (falls back, with a warning). */
  malloc: NodeMalloc;
  /** Hard bound on the whole run (the runner stops everything then). */
  timeLimitS: number;
  /** Write the JSON report here. */
  json: string | undefined;
  /** Print a progress line every second. */
  progress: boolean;
  log: (line: string) => void;
}

export const DEFAULT_OPTIONS: ClusterLoadOptions = {
  origins: 2,
  edges: 3,
  streams: 200,
  viewers: 2000,
  hotStreams: 1,
  lowKbps: 150,
  zipf: 1,
  rampPerSecond: 250,
  durationS: 30,
  settleMs: 1500,
  stallMs: 1000,
  churnS: 0,
  publisherChurnPerS: 2,
  dropFraction: 0.5,
  republishDelayMs: 1000,
  viewerChurnPerS: 10,
  rolling: false,
  rollingEdges: false,
  ertmpFraction: 0.5,
  reconnectDelayMs: 1000,
  publisherThread: true,
  leaseMs: 5000,
  pullLingerMs: 3000,
  shutdownTimeoutMs: 8000,
  lb: 'random',
  seed: 9,
  probes: 30,
  routeMaxViewers: undefined,
  heartbeatMs: undefined,
  target: undefined,
  cpuProfDir: undefined,
  malloc: 'jemalloc',
  timeLimitS: 900,
  json: undefined,
  progress: true,
  log: (line) => process.stderr.write(`${line}\n`),
};

/** Options a run cannot honour, as messages (empty: fine). */
export function optionProblems(o: ClusterLoadOptions): string[] {
  const out: string[] = [];
  if (!LB_MODES.includes(o.lb)) out.push(`--lb ${o.lb}: expected one of ${LB_MODES.join(', ')}`);
  if (o.target) {
    const restarts = [o.rolling && '--rolling', o.rollingEdges && '--rolling-edges'].filter(Boolean);
    if (restarts.length)
      out.push(
        `${restarts.join(' and ')} stop and start node processes: not possible against an existing cluster ` +
          '(--origins-at/--edges-at); run them on a cluster the runner starts',
      );
    if (o.routeMaxViewers !== undefined || o.heartbeatMs !== undefined)
      out.push(
        '--route-max-viewers / --heartbeat-ms set the settings of nodes the runner starts, not of an existing cluster',
      );
    if (o.cpuProfDir !== undefined)
      out.push('--cpu-prof-dir profiles nodes the runner starts; profile an existing cluster where it runs');
  }
  return out;
}

/** The options as the report shows them: no logger, no secrets. */
export function reportedOptions(o: ClusterLoadOptions): Omit<ClusterLoadOptions, 'log'> {
  const { log: _log, ...rest } = o;
  if (!rest.target) return rest;
  const redisUrl = rest.target.redisUrl?.replace(/\/\/[^@/]*@/, '//***@');
  return { ...rest, target: { ...rest.target, apiToken: rest.target.apiToken && '***', redisUrl } };
}
