/**
 * `--compare-lb`: the same audience (same seed, so the same streams, popularity and join order) under several load
 * balancers, one scenario after the other on one cluster (each scenario ends when every pull has lingered out, so the
 * next starts cold), and the outcomes side by side.
 */
import { fmt } from '../stats.js';
import type { LbMode, ClusterLoadOptions } from './options.js';
import { openCluster, runScenario, type ClusterLoadReport } from './runner.js';

export interface LbComparison {
  modes: LbMode[];
  reports: Partial<Record<LbMode, ClusterLoadReport>>;
}

export async function compareLoadBalancers(o: ClusterLoadOptions, modes: readonly LbMode[]): Promise<LbComparison> {
  const reports: LbComparison['reports'] = {};
  const cluster = await openCluster(o);
  try {
    for (const mode of modes) {
      o.log(`--- load balancer: ${mode} (seed ${o.seed}) ---`);
      const r = await runScenario(cluster, { ...o, lb: mode });
      reports[mode] = r;
      if (!r.leaks.ok)
        o.log(`WARNING: ${mode} left state behind (${JSON.stringify(r.leaks)}); the next run starts warm`);
    }
  } finally {
    await cluster.close();
  }
  return { modes: [...modes], reports };
}

const pct = (x: number): string => `${fmt(100 * x, 1)} %`;

/** One row per measure, one column per load balancer. */
export function formatLbComparison(c: LbComparison): string {
  const runs = c.modes.flatMap((m) => (c.reports[m] ? [[m, c.reports[m]] as const] : []));
  const rows: Array<[string, (r: ClusterLoadReport) => string]> = [
    ['viewers up / failed', (r) => `${r.viewers.up} / ${r.viewers.failed}`],
    ['upstream pulls (total)', (r) => String(r.balance.pullsPerStream.total)],
    ['pulls per stream mean', (r) => fmt(r.balance.pullsPerStream.mean, 2)],
    ['pulls per stream max', (r) => fmt(r.balance.pullsPerStream.max, 0)],
    ["edges' pull starts", (r) => fmt(r.balance.pullStarts, 0)],
    ['cold starts', (r) => `${r.balance.coldStarts}/${r.balance.rampViewers} (${pct(r.balance.coldShare)})`],
    ['TTFF cold p50 / warm p50 ms', (r) => `${fmt(r.ttffColdMs.p50, 0)} / ${fmt(r.ttffWarmMs.p50, 0)}`],
    ['viewers per edge', (r) => Object.values(r.balance.viewersPerEdge).join(' / ')],
    ['(stream, edge) with 1 pull', (r) => `${r.pulls.pairsWithExactlyOnePull}/${r.pulls.pairsWithViewers}`],
    ['delivered min %', (r) => fmt(r.delivery.deliveredPercent.min, 1)],
    ['route reasons', (r) => JSON.stringify(r.balance.routeReasons)],
  ];
  const width = Math.max(...rows.map(([name]) => name.length)) + 2;
  const colWidth = Math.max(14, ...runs.flatMap(([, r]) => rows.map(([, f]) => f(r).length + 2)));
  const line = (name: string, cells: string[]): string =>
    name.padEnd(width) + cells.map((x) => x.padEnd(colWidth)).join('');
  return [
    `load balancers compared on the same audience (seed ${runs[0]?.[1].options.seed ?? '-'}); cold start = ${runs[0]?.[1].balance.coldStartMethod ?? '-'}`,
    line(
      '',
      runs.map(([m]) => m),
    ),
    ...rows.map(([name, f]) =>
      line(
        name,
        runs.map(([, r]) => f(r)),
      ),
    ),
  ].join('\n');
}
