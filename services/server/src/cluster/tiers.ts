/**
 * Tiered edges: leaf edges that pull from a tier of parent edges instead of from the origin, so the origin serves one
 * pull per (stream, parent), not per (stream, edge).
 *
 * A leaf with EDGE_UPSTREAM=parents picks the parent of a stream by rendezvous (highest-random-weight) hashing of the
 * stream key over the live parents in the node registry: every leaf that wants stream X asks the same parent, and
 * when a parent goes away only the streams it carried move (to the next parent in each stream's hash order).
 * Loops are impossible by construction: only parent-tier edges are candidates (never a leaf, never an origin, never
 * the node itself), and a parent always pulls from the origin (runtime.ts never gives a parent a selector).
 * With no live parent the leaf pulls from the origin itself, so a parent-tier outage costs origin egress, not viewers.
 */
import { createHash } from 'node:crypto';

export const EDGE_TIERS = ['leaf', 'parent'] as const;
export type EdgeTier = (typeof EDGE_TIERS)[number];
export const EDGE_UPSTREAMS = ['origin', 'parents'] as const;
export type EdgeUpstream = (typeof EDGE_UPSTREAMS)[number];

/** The node record fields tiering reads (Redis node records carry them; older nodes lack tier/draining/ready). */
export interface TierNode {
  id: string;
  role: string;
  rtmpAddr: string;
  tier?: EdgeTier | undefined;
  draining?: boolean | undefined;
  ready?: boolean | undefined;
}

/** Rendezvous weight of (key, node): the first 48 bits of SHA-256, uniform and stable across processes. */
export function rendezvousWeight(key: string, nodeId: string): number {
  return createHash('sha256').update(key).update('\0').update(nodeId).digest().readUIntBE(0, 6);
}

/** `nodes` in the rendezvous order of `key`: highest weight first (ties, which need a hash collision, by id). */
export function rendezvousOrder<T extends { id: string }>(key: string, nodes: readonly T[]): T[] {
  return nodes
    .map((n) => ({ n, w: rendezvousWeight(key, n.id) }))
    .sort((a, b) => b.w - a.w || (a.n.id < b.n.id ? -1 : 1))
    .map((x) => x.n);
}

/** Parent-tier edges that may serve as an upstream for `selfId`: live, ready, not draining, not itself. */
export function parentCandidates<T extends TierNode>(nodes: readonly T[], selfId: string): T[] {
  return nodes.filter(
    (n) => n.role === 'edge' && n.tier === 'parent' && n.id !== selfId && n.draining !== true && n.ready !== false,
  );
}

export interface ParentSelectorOptions {
  /** This node's id (never chosen). */
  selfId: string;
  /** Reuse one registry read this long (pulls of many streams starting at once share it). */
  cacheMs: number;
  /** A parent whose pull broke or was refused is skipped this long (its record may outlive it by a TTL). */
  suspectMs: number;
  now?: () => number;
}

/**
 * Chooses the parent of a stream for a leaf: the first live, unsuspected parent in the key's rendezvous order, or
 * undefined (pull from the origin). The node list comes from the registry (Redis), cached briefly.
 */
export class ParentSelector {
  private cached: { at: number; nodes: TierNode[] } | undefined;
  private readonly suspects = new Map<string, number>();
  private readonly now: () => number;

  constructor(
    private readonly listNodes: () => Promise<TierNode[]>,
    private readonly options: ParentSelectorOptions,
  ) {
    this.now = options.now ?? (() => performance.now());
  }

  async choose(key: string): Promise<TierNode | undefined> {
    const nodes = await this.nodes();
    const now = this.now();
    for (const [id, until] of this.suspects) if (until <= now) this.suspects.delete(id);
    return rendezvousOrder(key, parentCandidates(nodes, this.options.selfId)).find((n) => !this.suspects.has(n.id));
  }

  /** The pull from this parent broke or was refused, or it announced node.down: skip it for a while. */
  suspect(nodeId: string): void {
    this.suspects.set(nodeId, this.now() + this.options.suspectMs);
  }

  private async nodes(): Promise<TierNode[]> {
    const now = this.now();
    if (this.cached && now - this.cached.at < this.options.cacheMs) return this.cached.nodes;
    try {
      const nodes = await this.listNodes();
      this.cached = { at: now, nodes };
      return nodes;
    } catch {
      // Registry unreachable: the last list we had (parents are found again once it answers), else none (origin).
      return this.cached?.nodes ?? [];
    }
  }
}
