/**
 * What the load balancer did with the audience, measured at the end of the steady window: upstream pulls per
 * stream (the edges that hold one), how many viewers' plays were cold starts, and viewers per edge.
 *
 * A viewer's play is a cold start when its edge held no pull for its stream when it joined: by the runner's own
 * bookkeeping, no earlier viewer of that stream was on that edge, or the last one left longer than the pull linger
 * (+1 s) before (the runner is the cluster's only audience). The edges' own count of pulls started
 * (rtmp_pull_starts_total, over the ramp and the steady window) is reported next to it as a cross-check: with no
 * pull breaking, the two are equal.
 */
import { summarize, type Summary } from '../stats.js';
import type { LbMode } from './options.js';

export interface BalanceOutcome {
  lb: LbMode;
  seed: number;
  /** Upstream pulls per stream with viewers (edges holding a pull of it), and their total. */
  pullsPerStream: { mean: number; max: number; total: number; streams: number; summary: Summary };
  /** Pull connections the edges started (first pulls and re-pulls) over the ramp and steady window; NaN if unread. */
  pullStarts: number;
  /** Viewers that joined in the ramp (and how many per stream index: the audience, equal for equal seeds), and those
   * whose play was a cold start. */
  rampViewers: number;
  rampViewersPerStream: number[];
  coldStarts: number;
  coldShare: number;
  coldStartMethod: string;
  /** Viewers playing at the end of the steady window, per edge id (in the runner's edge order). */
  viewersPerEdge: Record<string, number>;
  /** Route mode: the router's reasons (warm, cold, spill) over every routed join; failed route queries. */
  routeReasons: Record<string, number>;
  routeFailures: number;
}

export interface BalanceInputs {
  lb: LbMode;
  seed: number;
  streams: number;
  edgeIds: string[];
  viewers: ReadonlyArray<{ stream: number; edge: number; cold: boolean; openedIn: string; playing: boolean }>;
  /** Per stream index with viewers: edges that hold a pull of it. */
  pullingEdges: ReadonlyMap<number, number>;
  pullStarts: number;
  routeReasons: Record<string, number>;
  routeFailures: number;
}

export const COLD_START_METHOD =
  "runner bookkeeping: the viewer was the first on its edge for its stream, or the last one had left more than the pull linger + 1 s before; cross-checked by the edges' rtmp_pull_starts_total";

export function measureBalance(i: BalanceInputs): BalanceOutcome {
  const ramp = i.viewers.filter((v) => v.openedIn === 'ramp');
  const coldStarts = ramp.filter((v) => v.cold).length;
  const pulls = [...i.pullingEdges.values()];
  const total = pulls.reduce((a, b) => a + b, 0);
  const viewersPerEdge: Record<string, number> = Object.fromEntries(i.edgeIds.map((id) => [id, 0]));
  for (const v of i.viewers) {
    const id = i.edgeIds[v.edge];
    if (v.playing && id !== undefined) viewersPerEdge[id] = (viewersPerEdge[id] ?? 0) + 1;
  }
  return {
    lb: i.lb,
    seed: i.seed,
    pullsPerStream: {
      mean: pulls.length ? total / pulls.length : NaN,
      max: pulls.length ? Math.max(...pulls) : NaN,
      total,
      streams: pulls.length,
      summary: summarize(pulls),
    },
    pullStarts: i.pullStarts,
    rampViewers: ramp.length,
    rampViewersPerStream: Array.from({ length: i.streams }, (_, si) => ramp.filter((v) => v.stream === si).length),
    coldStarts,
    coldShare: ramp.length ? coldStarts / ramp.length : NaN,
    coldStartMethod: COLD_START_METHOD,
    viewersPerEdge,
    routeReasons: i.routeReasons,
    routeFailures: i.routeFailures,
  };
}
