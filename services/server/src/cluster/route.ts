/**
 * Stream-aware viewer routing: which edge a viewer of stream X should use, from the node records in the registry.
 *
 * 1. Warm: a leaf edge that already carries X (its record lists X: the pull is up, so the viewer starts at once and
 *    no new pull is opened), below its cap (ROUTE_MAX_VIEWERS, declared in each node's record) — the first such edge in X's rendezvous order, so one edge fills
 *    before the next one is opened.
 * 2. Spill / cold: otherwise the first edge below `maxViewers` in X's rendezvous order (consistent hashing with
 *    bounded loads: every node asks the same edges in the same order, and a full one is skipped). `spill` when a
 *    warm edge existed but was full, `cold` when no edge carried X.
 * 3. Every edge full: the least loaded one (`spill`).
 * Never a draining or unready node. Leaves first; parent-tier edges take viewers only when there is no leaf.
 * Loads are the heartbeat's (HEARTBEAT_MS old at most); the viewers a node routed itself that the records do not
 * show yet are added to them (PendingRoutes), so a burst through one router does not overshoot a cap. Routers do not
 * see each other's answers: with R routers a burst may overshoot by what the others sent within a beat.
 */
import { rendezvousOrder, type EdgeTier } from './tiers.js';

export const ROUTE_PROTOCOLS = ['rtmp', 'http-flv', 'ws-flv'] as const;
export type RouteProtocol = (typeof ROUTE_PROTOCOLS)[number];
export type RouteReason = 'warm' | 'spill' | 'cold';

/** What a node record carries for routing (runtime.ts record()). */
export interface RoutingFields {
  /** Viewers per local stream key (a key present: the node carries the stream). */
  streams: Record<string, number>;
  tier?: EdgeTier;
  draining: boolean;
  ready: boolean;
  /** Viewers routing fills this node up to (ROUTE_MAX_VIEWERS of the node: nodes may differ in size). */
  maxViewers: number;
}

/** The node record fields routing reads (older nodes may lack tier/draining/ready/streams). */
export interface RouteNode {
  id: string;
  role: string;
  rtmpAddr: string;
  httpAddr: string;
  load?: { viewers: number } | undefined;
  streams?: Record<string, number> | undefined;
  tier?: string | undefined;
  draining?: boolean | undefined;
  ready?: boolean | undefined;
  maxViewers?: number | undefined;
}

export interface RouteChoice<T extends RouteNode = RouteNode> {
  node: T;
  reason: RouteReason;
}

const viewersOf = (n: RouteNode): number => n.load?.viewers ?? 0;
const usable = (n: RouteNode): boolean => n.role === 'edge' && n.draining !== true && n.ready !== false;

/**
 * The edge for a viewer of `key`, or undefined when no edge can take viewers. A node's cap is the one its record
 * declares, else `options.maxViewers`.
 */
export function chooseEdge<T extends RouteNode>(
  nodes: readonly T[],
  key: string,
  options: { maxViewers: number },
): RouteChoice<T> | undefined {
  const edges = nodes.filter(usable);
  const leaves = edges.filter((n) => (n.tier ?? 'leaf') === 'leaf');
  const ranked = rendezvousOrder(key, leaves.length > 0 ? leaves : edges);
  if (ranked.length === 0) return undefined;
  const below = (n: T): boolean => viewersOf(n) < (n.maxViewers ?? options.maxViewers);
  const warm = ranked.filter((n) => n.streams?.[key] !== undefined);
  const warmFree = warm.find(below);
  if (warmFree) return { node: warmFree, reason: 'warm' };
  const free = ranked.find(below);
  if (free) return { node: free, reason: warm.length > 0 ? 'spill' : 'cold' };
  const least = ranked.reduce((a, b) => (viewersOf(b) < viewersOf(a) ? b : a));
  return { node: least, reason: 'spill' };
}

/** Routed viewers an edge's heartbeat may not report yet: two beats and a connect's worth. */
export function routePendingMs(heartbeatMs: number): number {
  return 2 * heartbeatMs + 1000;
}

/** Routed viewers remembered at most per node: a flood of route requests must not grow memory without bound. */
const MAX_PENDING_PER_NODE = 10_000;

/**
 * The viewers this node routed to each edge that the edge's heartbeat does not show yet, added to its reported load:
 * a viewer sent to an edge counts at once, not only after it connected and the next heartbeat reported it. A node's
 * routed viewers are "shown" once its reported count has grown by as many since the oldest of them was routed; they
 * are forgotten after `ttlMs` in any case (a viewer that never connected, or departures that hide the growth).
 */
export class PendingRoutes {
  private readonly perNode = new Map<string, Array<{ expiresAt: number; reportedThen: number }>>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** A viewer was sent to `node` (as its record was when routing chose it). */
  add(node: RouteNode): void {
    let list = this.perNode.get(node.id);
    if (!list) this.perNode.set(node.id, (list = []));
    if (list.length >= MAX_PENDING_PER_NODE) list.shift();
    list.push({ expiresAt: this.now() + this.ttlMs, reportedThen: viewersOf(node) });
  }

  /** Routed viewers of `node` its record does not show yet. */
  pending(node: RouteNode): number {
    const list = this.perNode.get(node.id);
    if (!list) return 0;
    const now = this.now();
    while (list.length > 0 && list[0]!.expiresAt <= now) list.shift();
    if (list.length === 0) {
      this.perNode.delete(node.id);
      return 0;
    }
    const shown = Math.max(0, viewersOf(node) - list[0]!.reportedThen);
    return Math.max(0, list.length - shown);
  }

  /** `nodes` (as their records say) with the viewers routed to each and not shown yet added to their load. */
  apply<T extends RouteNode>(nodes: readonly T[]): T[] {
    return nodes.map((n) => {
      const extra = this.pending(n);
      return extra > 0 ? { ...n, load: { ...n.load, viewers: viewersOf(n) + extra } } : n;
    });
  }
}

/** The viewer URL of `app/name` on `node` for `protocol` (`query` without `?`, passed through: play tokens). */
export function edgeUrl(node: RouteNode, app: string, name: string, protocol: RouteProtocol, query = ''): string {
  const path = `${encodeURIComponent(app)}/${encodeURIComponent(name)}`;
  const q = query ? `?${query}` : '';
  switch (protocol) {
    case 'rtmp':
      return `rtmp://${node.rtmpAddr}/${path}${q}`;
    case 'http-flv':
      return `http://${node.httpAddr}/${path}.flv${q}`;
    case 'ws-flv':
      return `ws://${node.httpAddr}/${path}.flv${q}`;
  }
}
