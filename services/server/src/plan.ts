/**
 * The sizing calculator behind `rtmp-relay plan` and docs/SIZING.md: from an audience (streams, bitrate, viewers)
 * and a node shape (cores, NIC) to how many origins, parent edges and leaf edges to run, and the egress per tier.
 * Pure arithmetic on measured costs (the `CostModel`, from docs/BENCHMARKS.md); no I/O.
 */

/** What one node costs, measured (docs/BENCHMARKS.md); `plan` prints the model it used. */
export interface CostModel {
  /** Server CPU in ms per viewer-second at `referenceKbps` (fan-out, kernel sends included). */
  cpuMsPerViewerSecond: number;
  /** Bitrate the CPU figure was measured at; the cost is scaled by bitrate (bytes dominate the send path). */
  referenceKbps: number;
  /** Resident memory per connected viewer. */
  rssKiBPerViewer: number;
  /** Resident memory per live stream on a node (hub, GOP cache of ~2 s). */
  rssMiBPerStream: number;
  /**
   * Resident memory of each node process before viewers and streams: the runtime and the code, plus dead Buffers
   * waiting for V8's next full collection (tens of MiB under load), which the allocator keeps resident after it.
   * One process per core.
   */
  rssMiBPerProcess: number;
  /** CPU of ingesting one stream (a publisher or an upstream pull), in ms per second. */
  cpuMsPerIngestSecond: number;
}

/** Measured on the benchmark machine (docs/BENCHMARKS.md, default configuration, 2000 viewers, 2.71 Mbit/s). */
export const MEASURED_COSTS: CostModel = {
  cpuMsPerViewerSecond: 0.29,
  referenceKbps: 2710,
  rssKiBPerViewer: 25,
  rssMiBPerStream: 2,
  rssMiBPerProcess: 170,
  cpuMsPerIngestSecond: 6,
};

export interface PlanInput {
  streams: number;
  /** Average stream bitrate, kbit/s. */
  bitrateKbps: number;
  /** Concurrent viewers in total. */
  viewers: number;
  /** Share of all viewers on the most watched stream (0-1): drives how many edges carry it. */
  hotShare: number;
  /** Cores per node (one Node.js process per core). */
  cores: number;
  /** NIC bandwidth per node, Gbit/s. */
  nicGbps: number;
  /** Plan nodes to this share of CPU and NIC, leaving headroom for bursts and failures (0-1). */
  utilization: number;
  /** Leaf edges one stream may pull from the origin directly before a parent tier is worth it. */
  maxOriginPullsPerStream: number;
  /** Spare nodes per tier for failures and rolling updates (N+k). */
  spare: number;
}

export const DEFAULT_PLAN_INPUT: Omit<PlanInput, 'streams' | 'bitrateKbps' | 'viewers'> = {
  hotShare: 0.3,
  cores: 8,
  nicGbps: 10,
  utilization: 0.6,
  maxOriginPullsPerStream: 16,
  spare: 1,
};

export interface TierPlan {
  nodes: number;
  /** Egress of the whole tier and of one node, Gbit/s. */
  egressGbps: number;
  egressGbpsPerNode: number;
  /** Connections served by one node (viewers or downstream pulls). */
  connectionsPerNode: number;
  cpuUtilization: number;
  memoryGiBPerNode: number;
}

export interface Plan {
  input: PlanInput;
  costs: CostModel;
  /** Viewers one leaf node holds within the CPU and NIC budgets, and which one binds. */
  viewersPerNode: number;
  bound: 'cpu' | 'nic';
  origins: TierPlan;
  parents: TierPlan | undefined;
  leaves: TierPlan;
  /** Pulls the hottest stream causes at the origin tier, with and without a parent tier. */
  hotStreamOriginPulls: number;
}

const KBPS_PER_GBPS = 1_000_000;
const MS_PER_SECOND = 1000;
const KIB_PER_GIB = 1024 * 1024;
const MIB_PER_GIB = 1024;
/** A cluster never runs fewer than two nodes in a tier (one failure must not take the tier away). */
const MIN_NODES_PER_TIER = 2;

/** Viewers (or downstream pulls) one node can serve: the smaller of its CPU and NIC budgets. */
function perNodeCapacity(input: PlanInput, costs: CostModel): { viewers: number; bound: 'cpu' | 'nic' } {
  const cpuPerViewer = costs.cpuMsPerViewerSecond * (input.bitrateKbps / costs.referenceKbps);
  const byCpu = Math.floor((input.cores * MS_PER_SECOND * input.utilization) / cpuPerViewer);
  const byNic = Math.floor((input.nicGbps * KBPS_PER_GBPS * input.utilization) / input.bitrateKbps);
  return byCpu <= byNic ? { viewers: byCpu, bound: 'cpu' } : { viewers: byNic, bound: 'nic' };
}

function tier(
  input: PlanInput,
  costs: CostModel,
  connections: number,
  streamsPerNode: number,
  minNodes: number,
): TierPlan {
  const { viewers: capacity } = perNodeCapacity(input, costs);
  const needed = Math.max(minNodes, Math.ceil(connections / capacity));
  const nodes = needed + input.spare;
  const perNode = Math.ceil(connections / needed);
  const egressGbps = (connections * input.bitrateKbps) / KBPS_PER_GBPS;
  const cpuMs =
    perNode * costs.cpuMsPerViewerSecond * (input.bitrateKbps / costs.referenceKbps) +
    streamsPerNode * costs.cpuMsPerIngestSecond;
  const memoryGiB =
    (input.cores * costs.rssMiBPerProcess) / MIB_PER_GIB +
    (perNode * costs.rssKiBPerViewer) / KIB_PER_GIB +
    (streamsPerNode * costs.rssMiBPerStream) / MIB_PER_GIB;
  return {
    nodes,
    egressGbps: round(egressGbps),
    egressGbpsPerNode: round(egressGbps / needed),
    connectionsPerNode: perNode,
    cpuUtilization: round(cpuMs / (input.cores * MS_PER_SECOND)),
    memoryGiBPerNode: round(memoryGiB),
  };
}

/**
 * Leaves hold the viewers. With stream-aware routing a stream is carried by as few leaves as its audience needs,
 * so the origin tier serves one pull per (stream, leaf carrying it); a hot stream on more leaves than
 * `maxOriginPullsPerStream` gets a parent tier, which pulls each stream once per parent and feeds the leaves.
 */
export function planTopology(input: PlanInput, costs: CostModel = MEASURED_COSTS): Plan {
  for (const [k, v] of Object.entries(input)) {
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`${k} must be a non-negative number, got ${v}`);
  }
  if (input.streams < 1 || input.viewers < 1 || input.bitrateKbps <= 0)
    throw new RangeError('streams, viewers and bitrate must be positive');
  if (input.hotShare > 1 || input.utilization <= 0 || input.utilization > 1)
    throw new RangeError('hotShare and utilization are shares (0-1]');
  const { viewers: viewersPerNode, bound } = perNodeCapacity(input, costs);
  if (viewersPerNode < 1)
    throw new RangeError('one node cannot serve a single viewer at this bitrate: more cores or NIC');

  const leaves = tier(input, costs, input.viewers, input.streams, MIN_NODES_PER_TIER);
  const leafNodes = leaves.nodes - input.spare;
  // Leaves carrying each stream: the hot stream fills whole leaves; the rest share leaves, one pull per stream and
  // leaf that has its viewers (at least one leaf each, at most every leaf).
  // With one stream, every viewer watches it.
  const hotViewers = input.streams === 1 ? input.viewers : Math.ceil(input.viewers * input.hotShare);
  const hotLeaves = Math.min(leafNodes, Math.max(1, Math.ceil(hotViewers / viewersPerNode)));
  const otherStreams = Math.max(0, input.streams - 1);
  const otherViewers = input.viewers - hotViewers;
  const leavesPerOther =
    otherStreams === 0 ? 0 : Math.min(leafNodes, Math.max(1, Math.ceil(otherViewers / otherStreams / viewersPerNode)));
  const leafPulls = hotLeaves + otherStreams * leavesPerOther;

  let parents: TierPlan | undefined;
  let originPulls = leafPulls;
  let hotStreamOriginPulls = hotLeaves;
  if (hotLeaves > input.maxOriginPullsPerStream) {
    // Parents take the leaves' pulls; each stream reaches the origins once per parent that carries it.
    // Rendezvous hashing sends every leaf that wants a stream to the same parent: one origin pull per stream,
    // more only when a stream's leaves overflow one parent.
    parents = tier(input, costs, leafPulls, input.streams, MIN_NODES_PER_TIER);
    const hotParents = Math.ceil(hotLeaves / viewersPerNode);
    hotStreamOriginPulls = hotParents;
    originPulls = hotParents + otherStreams * Math.ceil(leavesPerOther / viewersPerNode);
  }
  const originsForIngest = Math.ceil(
    (input.streams * costs.cpuMsPerIngestSecond) / (input.cores * MS_PER_SECOND * input.utilization),
  );
  const origins = tier(input, costs, originPulls, input.streams, Math.max(MIN_NODES_PER_TIER, originsForIngest));
  // Streams are spread over origins: each holds its share (hubs, ingest), not all of them.
  const originStreams = Math.ceil(input.streams / (origins.nodes - input.spare));
  const originCpuMs =
    origins.connectionsPerNode * costs.cpuMsPerViewerSecond * (input.bitrateKbps / costs.referenceKbps) +
    originStreams * costs.cpuMsPerIngestSecond;
  origins.cpuUtilization = round(originCpuMs / (input.cores * MS_PER_SECOND));
  origins.memoryGiBPerNode = round(
    (input.cores * costs.rssMiBPerProcess) / MIB_PER_GIB +
      (origins.connectionsPerNode * costs.rssKiBPerViewer) / KIB_PER_GIB +
      (originStreams * costs.rssMiBPerStream) / MIB_PER_GIB,
  );
  return { input, costs, viewersPerNode, bound, origins, parents, leaves, hotStreamOriginPulls };
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** The plan as text, one tier a line, with the model and assumptions it used. */
export function formatPlan(plan: Plan): string {
  const { input: i, costs: c } = plan;
  const line = (name: string, t: TierPlan, what: string): string =>
    `${name.padEnd(8)} ${String(t.nodes).padStart(5)} nodes   ${String(t.connectionsPerNode).padStart(6)} ${what}/node   ` +
    `egress ${t.egressGbpsPerNode} Gbit/s/node (${t.egressGbps} total)   CPU ${Math.round(t.cpuUtilization * 100)}%   ` +
    `RAM ${t.memoryGiBPerNode} GiB/node`;
  return [
    `audience: ${i.streams} streams at ${i.bitrateKbps} kbit/s, ${i.viewers} viewers (${Math.round(i.hotShare * 100)}% on the most watched)`,
    `nodes: ${i.cores} cores, ${i.nicGbps} Gbit/s NIC, planned to ${Math.round(i.utilization * 100)}%, +${i.spare} spare per tier`,
    `one node holds ${plan.viewersPerNode} viewers (${plan.bound}-bound)`,
    '',
    line('origins', plan.origins, 'pulls'),
    ...(plan.parents ? [line('parents', plan.parents, 'pulls')] : []),
    line('edges', plan.leaves, 'viewers'),
    '',
    `the most watched stream: ${plan.hotStreamOriginPulls} pulls at the origin tier` +
      (plan.parents ? ' (through parent edges: EDGE_TIER=parent / leaf)' : ''),
    `cost model: ${c.cpuMsPerViewerSecond} ms CPU per viewer-second at ${c.referenceKbps} kbit/s (scaled by bitrate), ` +
      `${c.rssKiBPerViewer} KiB per viewer, ${c.rssMiBPerStream} MiB and ${c.cpuMsPerIngestSecond} ms/s per stream, ` +
      `${c.rssMiBPerProcess} MiB per process (one per core) (docs/SIZING.md)`,
  ].join('\n');
}
