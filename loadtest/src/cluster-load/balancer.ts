/**
 * The load balancer in front of the edges, as a viewer meets it: which edge a viewer of a stream plays on.
 * `random` and `round-robin` ignore the stream (an L4 balancer); `route` asks the cluster's stream-aware router
 * (GET /api/cluster/route on a node, the nodes taken in turn as a balancer in front of that API would).
 */
import type { NodeHandle } from './cluster.js';
import type { LbMode } from './options.js';

const ROUTE_TIMEOUT_MS = 5000;

export interface EdgeChoice {
  /** Index into the runner's edge list. */
  edge: number;
  /** The router's reason (warm, cold, spill); only for `route`. */
  reason?: string;
}

export interface ViewerBalancer {
  readonly mode: LbMode;
  /** The edge for one viewer of `key`; rejects when the router answers no edge (a viewer that cannot play). */
  pick(key: string): Promise<EdgeChoice>;
}

export class RouteError extends Error {
  constructor(
    message: string,
    /** Short reason for the failure counters (`route:503`, `route:unknown_edge`, `route:network`). */
    readonly reason: string,
  ) {
    super(message);
  }
}

export function createBalancer(
  mode: LbMode,
  edges: () => readonly NodeHandle[],
  routeBases: () => readonly string[],
  rand: () => number,
): ViewerBalancer {
  switch (mode) {
    case 'random':
      return { mode, pick: async () => ({ edge: Math.floor(rand() * edges().length) }) };
    case 'round-robin': {
      let next = 0;
      return { mode, pick: async () => ({ edge: next++ % edges().length }) };
    }
    case 'route':
      return new RouteBalancer(edges, routeBases);
  }
}

interface Routed {
  url: string;
  nodeId: string;
  reason: string;
}

class RouteBalancer implements ViewerBalancer {
  readonly mode = 'route' as const;
  private next = 0;

  constructor(
    private readonly edges: () => readonly NodeHandle[],
    private readonly bases: () => readonly string[],
  ) {}

  async pick(key: string): Promise<EdgeChoice> {
    const bases = this.bases();
    if (bases.length === 0) throw new RouteError('no node to ask the route API', 'route:no_node');
    const base = bases[this.next++ % bases.length]!;
    const url = `${base}/api/cluster/route?stream=${encodeURIComponent(key)}&protocol=rtmp`;
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(ROUTE_TIMEOUT_MS) });
    } catch (err) {
      throw new RouteError(`${url}: ${(err as Error).message}`, 'route:network');
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new RouteError(`${url}: HTTP ${res.status}`, `route:${res.status}`);
    }
    const routed = (await res.json()) as Routed;
    const edge = edgeIndex(this.edges(), routed);
    if (edge < 0)
      throw new RouteError(`${url}: answered ${routed.nodeId} (${routed.url}), not a known edge`, 'route:unknown_edge');
    return { edge, reason: routed.reason };
  }
}

/**
 * The runner's edge the router chose: by node id (NODE_ID; the runner knows its edges' ids), else by the RTMP
 * address in the answered URL (host:port, then port alone when only one edge has it: the advertised host may not be
 * the one the runner reaches the edge at).
 */
export function edgeIndex(edges: readonly NodeHandle[], routed: { nodeId: string; url: string }): number {
  const byId = edges.findIndex((e) => e.id === routed.nodeId);
  if (byId >= 0) return byId;
  let addr: URL;
  try {
    addr = new URL(routed.url);
  } catch {
    return -1;
  }
  const byAddr = edges.findIndex((e) => e.rtmpAddr === addr.host);
  if (byAddr >= 0) return byAddr;
  const samePort = edges.flatMap((e, i) => (e.rtmpAddr.endsWith(`:${addr.port}`) ? [i] : []));
  return samePort.length === 1 ? samePort[0]! : -1;
}
