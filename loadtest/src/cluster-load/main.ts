#!/usr/bin/env node
/**
 * `npm run cluster-load -- [options]`: the cluster scenario runner (see runner.ts). Prints progress every second on
 * stderr, a readable summary on stdout, and the JSON report to --json. Exit code 1 when an invariant fails (viewer
 * failures in the steady phase, a (stream, edge) without exactly one pull, or a leak). `--compare-lb` runs the same
 * audience under several load balancers and prints them side by side; `--origins-at`/`--edges-at` target an
 * existing cluster instead of starting one.
 */
import { writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { isMainModule } from '../main-module.js';
import { NODE_MALLOCS, type NodeMalloc } from '../node-flags.js';
import { fmt, jsonSafe, type Summary } from '../stats.js';
import { compareLoadBalancers, formatLbComparison } from './compare.js';
import {
  DEFAULT_OPTIONS,
  LB_MODES,
  UsageError,
  type ClusterLoadOptions,
  type ExistingClusterTarget,
  type LbMode,
} from './options.js';
import { runClusterLoad, type ClusterLoadReport, type PhaseOutcome } from './runner.js';
import { parseHostPortList } from './targets.js';

const s = (x: Summary, d = 0): string =>
  `p50 ${fmt(x.p50, d)} p99 ${fmt(x.p99, d)} max ${fmt(x.max, d)} (n=${x.count})`;
const p50p99 = (x: Summary): string => `${fmt(x.p50, 0)} / ${fmt(x.p99, 0)}`;

function phase(name: string, p: PhaseOutcome | undefined): string[] {
  if (!p) return [];
  return [
    `${name}: ${p.viewersDisconnected} viewers disconnected ${JSON.stringify(p.disconnectReasons)} (${p.slowViewerDrops} by the edges' slow-viewer policy), gap per stream ${s(p.gapPerStreamMs)} ms, ` +
      `${p.streamsWithGapOver1s} streams with a gap > 1 s, ${p.streamsLost} streams lost, ${p.timestampRegressions} timestamp regressions, ${fmt(p.durationMs / 1000, 1)} s; ` +
      `runner loop delay p99 ${fmt(p.runnerLagMs.p99, 0)} max ${fmt(p.runnerLagMs.max, 0)} ms`,
    ...p.notes.map((n) => `  note: ${n}`),
  ];
}

export function formatClusterReport(r: ClusterLoadReport): string {
  const o = r.options;
  const b = r.balance;
  const lines = [
    `cluster-load: ${o.origins} origins, ${o.edges} edges, ${o.streams} streams (${o.hotStreams} at 2.5 Mbit/s, rest ${o.lowKbps} kbit/s), ${o.viewers} viewers, load balancer ${o.lb} (seed ${o.seed}); load avg ${r.load.loadavg.map((l) => l.toFixed(2)).join(' ')} on ${r.load.cores} cores`,
    `cluster: ${r.cluster}`,
    `viewers: ${r.viewers.up}/${r.viewers.opened} up (opened over the whole run), ${r.viewers.failed} failed ${JSON.stringify(r.viewers.failedByReason)}; ` +
      `in the ramp and steady window: ${r.steadyFailures} ${JSON.stringify(r.viewers.steadyFailedByReason)}`,
    `runner event-loop delay: p50 ${fmt(r.runnerLagMs.p50, 0)} p99 ${fmt(r.runnerLagMs.p99, 0)} max ${fmt(r.runnerLagMs.max, 0)} ms (high = the runner's own timings are inflated)`,
    r.publisherLagMs
      ? `publisher thread event-loop delay: p50 ${fmt(r.publisherLagMs.p50, 0)} p99 ${fmt(r.publisherLagMs.p99, 0)} max ${fmt(r.publisherLagMs.max, 0)} ms (high = the publishers' sends and reconnects were late)`
      : `publishers ran in the runner's thread (--no-publisher-thread): its delay above is theirs too`,
    `runner memory at the end of the phases: RSS ${fmt(r.runnerMemory.rssMiB, 0)} MiB, heap used ${fmt(r.runnerMemory.heapUsedMiB, 0)} MiB, ${r.runnerMemory.followedViewers} viewers followed (of ${r.viewers.opened} opened)`,
    `delivered (steady ${o.durationS} s): ${s(r.delivery.deliveredPercent, 1)} %; min ${fmt(r.delivery.deliveredPercent.min, 1)} %; ${r.delivery.under99} viewers under 99 % of ${r.delivery.viewersMeasured}`,
    `stalls (> ${o.stallMs} ms) in the window: ${r.stalls.total} (${r.stalls.viewersWithStalls} viewers)`,
    `TTFF cold (first viewer of a stream on an edge): ${s(r.ttffColdMs)} ms`,
    `TTFF warm (stream already pulled): ${s(r.ttffWarmMs)} ms`,
    `  split (p50 / p99 ms): cold connect ${p50p99(r.ttffRampSplitMs.cold.connect)} + play ${p50p99(r.ttffRampSplitMs.cold.play)}; ` +
      `warm connect ${p50p99(r.ttffRampSplitMs.warm.connect)} + play ${p50p99(r.ttffRampSplitMs.warm.play)} ` +
      `(connect: TCP, handshake, connect, createStream; play: play sent to first frame)`,
    `  (both during the ramp: ${o.rampPerSecond} joins/s; single joins afterwards: cold ${s(r.ttffColdProbeMs)} ms, warm ${s(r.ttffWarmProbeMs)} ms)`,
    `publish-to-view latency: ${s(r.latencyMs)} ms`,
    `pulls: ${r.pulls.pairsWithExactlyOnePull}/${r.pulls.pairsWithViewers} (stream, edge) pairs with viewers have exactly one pull; ${r.pulls.mismatches.length} mismatches; ${r.pulls.afterLinger} pulls after linger`,
    ...r.pulls.mismatches.slice(0, 5).map((m) => `  mismatch: ${m}`),
    `upstream pulls per stream (${o.lb}): mean ${fmt(b.pullsPerStream.mean, 2)} max ${fmt(b.pullsPerStream.max, 0)} total ${b.pullsPerStream.total} over ${b.pullsPerStream.streams} streams; edges' pull starts ${fmt(b.pullStarts, 0)}`,
    `cold starts: ${b.coldStarts}/${b.rampViewers} ramp viewers (${fmt(100 * b.coldShare, 1)} %) — ${b.coldStartMethod}`,
    `viewers per edge: ${Object.entries(b.viewersPerEdge)
      .map(([id, n]) => `${id} ${n}`)
      .join(
        ', ',
      )}${o.lb === 'route' ? `; route reasons ${JSON.stringify(b.routeReasons)}, ${b.routeFailures} failed queries` : ''}`,
    `Redis ${fmt(r.redisCommandsPerSecPerStream, 2)} commands/s and NATS ${fmt(r.natsMsgsPerSecPerStream, 2)} msgs/s per live stream`,
    ...r.nodes.map(
      (n) =>
        `  ${n.id.padEnd(14)} ${n.role.padEnd(6)} [${n.source}] CPU ${fmt(n.cpuPercent, 0).padStart(4)} %  RSS ${fmt(n.rssStartMiB, 0)} → ${fmt(n.rssMiB, 0)} MiB (${fmt(n.rssChangePercent, 1)} %); Buffers floor ${fmt(n.buffersSteadyMiB.floor, 0)}, p50 ${fmt(n.buffersSteadyMiB.median, 0)}, max ${fmt(n.buffersSteadyMiB.max, 0)} MiB; after churn ${fmt(n.rssAfterChurnMiB, 0)} MiB (${fmt(n.rssChurnChangePercent, 1)} %)` +
        (n.churnMemory
          ? `; churn after warm-up: RSS ${fmt(n.churnMemory.rssWarmMiB, 0)} → ${fmt(n.churnMemory.rssEndMiB, 0)} MiB (${fmt(n.churnMemory.rssDriftPercent, 1)} %), RSS floor ${fmt(n.churnMemory.rssFloorWarmMiB, 0)} → ${fmt(n.churnMemory.rssFloorEndMiB, 0)} MiB (${fmt(n.churnMemory.rssFloorDriftPercent, 1)} %), heap floor ${fmt(n.churnMemory.heapFloorWarmMiB, 1)} → ${fmt(n.churnMemory.heapFloorEndMiB, 1)} MiB (${fmt(n.churnMemory.heapDriftPercent, 1)} %); ` +
            `steady window mean → churn's last window: RSS ${fmt(n.rssSteadyMeanMiB, 0)} → ${fmt(n.churnMemory.rssEndMiB, 0)} MiB (${fmt(n.rssSteadyToChurnEndPercent, 1)} %); ` +
            `from churn start: RSS ${fmt(n.churnMemory.rssStartMiB, 0)} → ${fmt(n.churnMemory.rssEndMiB, 0)}, V8 heap committed ${fmt(n.churnMemory.heapTotalStartMiB, 0)} → ${fmt(n.churnMemory.heapTotalEndMiB, 0)}, external ${fmt(n.churnMemory.externalStartMiB, 0)} → ${fmt(n.churnMemory.externalEndMiB, 0)} MiB`
          : ''),
    ),
    ...(r.churn
      ? [
          `churn: ${r.churn.publisherStops} publisher stops, ${r.churn.viewerLeaves} leaves, ${r.churn.viewerJoins} joins, ` +
            `join failures ${JSON.stringify(r.churn.joinFailures)}`,
        ]
      : []),
    ...phase('churn', r.churn),
    ...(r.rolling
      ? [
          `origin rollout: ${r.rolling.reconnectRequests} E-RTMP ReconnectRequests, switch ${s(r.rolling.switchMs)} ms; ` +
            `gap per stream E-RTMP ${s(r.rolling.gapErtmpMs)} ms, legacy ${s(r.rolling.gapLegacyMs)} ms ` +
            `(legacy encoders' own reconnect ${s(r.rolling.legacyReconnectMs)} ms; the relay's share of a legacy gap ${s(r.rolling.gapLegacyRelayMs)} ms)`,
        ]
      : []),
    ...phase('origin rollout', r.rolling),
    ...phase('edge rollout', r.rollingEdges),
    `leaks after linger: hubs ${r.leaks.hubs}, pulls ${r.leaks.pulls}, leases ${r.leaks.leases}, Redis stream keys ${r.leaks.redisStreamKeys}, NATS subscriptions over baseline ${r.leaks.natsSubscriptionsOverBaseline} → ${r.leaks.ok ? 'none' : 'LEAK'}`,
    `publishers: ${r.publishers.connects} connects, failures ${JSON.stringify(r.publishers.failuresByReason)}`,
    `timestamp regressions seen by viewers: ${r.timestampRegressions}; run took ${fmt(r.durationS, 0)} s`,
  ];
  return lines.join('\n');
}

/** The invariants a run must meet (used for the exit code and by the CI test). */
export function invariantFailures(r: ClusterLoadReport): string[] {
  const out: string[] = [];
  if (r.steadyFailures > 0) out.push(`${r.steadyFailures} viewers failed in the ramp or steady window`);
  if (r.delivery.viewersMeasured === 0) out.push('no viewer measured');
  if (r.pulls.pairsWithExactlyOnePull !== r.pulls.pairsWithViewers) out.push('pulls per (stream, edge) != 1');
  if (!r.leaks.ok) out.push('leak after linger');
  if (r.timestampRegressions > 0) out.push('timestamp regressions');
  return out;
}

async function main(): Promise<void> {
  const d = DEFAULT_OPTIONS;
  const num = (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`not a non-negative number: ${v}`);
    return n;
  };
  const program = new Command('cluster-load')
    .description(
      'Cluster scenario runner: real Redis, NATS, origins and edges; many streams and viewers; churn, rolling updates, leak check',
    )
    .option('--origins <n>', 'origins', num, d.origins)
    .option('--edges <n>', 'edges', num, d.edges)
    .option('--streams <n>', 'streams published', num, d.streams)
    .option('--viewers <n>', 'viewers over the edges', num, d.viewers)
    .option('--hot-streams <n>', 'streams at full 2.5 Mbit/s 720p30', num, d.hotStreams)
    .option('--low-kbps <n>', 'video bitrate of the other streams', num, d.lowKbps)
    .option('--zipf <s>', 'popularity exponent', num, d.zipf)
    .option('--ramp <n>', 'viewers opened per second', num, d.rampPerSecond)
    .option('--duration <s>', 'steady measurement window, seconds', num, d.durationS)
    .option('--settle-ms <ms>', 'pause after the ramp and after the window (x2 after churn, rollouts)', num, d.settleMs)
    .option('--stall-ms <ms>', 'a longer gap between video frames is a stall', num, d.stallMs)
    .option('--churn <s>', 'churn phase, seconds (0 = none)', num, d.churnS)
    .option('--publisher-churn <n>', 'publisher stops per second during churn', num, d.publisherChurnPerS)
    .option('--drop-fraction <f>', 'share of stops that drop TCP instead of unpublishing', num, d.dropFraction)
    .option('--republish-delay-ms <ms>', 'a stopped publisher comes back after this', num, d.republishDelayMs)
    .option('--viewer-churn <n>', 'viewers leaving and joining per second during churn', num, d.viewerChurnPerS)
    .option('--rolling', 'rolling update of every origin (SIGTERM in turn, replacement first)', d.rolling)
    .option('--rolling-edges', 'then of every edge', d.rollingEdges)
    .option('--ertmp-fraction <f>', 'share of publishers that negotiate E-RTMP Reconnect', num, d.ertmpFraction)
    .option('--reconnect-delay-ms <ms>', "publishers' first reconnect back-off", num, d.reconnectDelayMs)
    .option('--publisher-thread', "publishers in a worker thread of their own, apart from the viewers' (default)")
    .option('--no-publisher-thread', "publishers in the runner's thread, with the viewers")
    .option('--lease-ms <ms>', 'LEASE_MS of the nodes', num, d.leaseMs)
    .option('--linger-ms <ms>', 'PULL_LINGER_MS of the edges', num, d.pullLingerMs)
    .option('--shutdown-timeout-ms <ms>', 'SHUTDOWN_TIMEOUT_MS of the nodes', num, d.shutdownTimeoutMs)
    .addOption(
      new Option('--lb <mode>', 'how viewers pick an edge: random, round-robin, or the route API (route)')
        .choices(LB_MODES)
        .default(d.lb),
    )
    .option(
      '--compare-lb [modes]',
      'run the same audience under each load balancer (comma-separated) on one cluster, side by side',
    )
    .option('--seed <n>', 'seed of the audience, churn and probes', num, d.seed)
    .option('--probes <n>', 'single-join TTFF probes of each kind after the steady window', num, d.probes)
    .option('--route-max-viewers <n>', 'ROUTE_MAX_VIEWERS of the nodes the runner starts', num)
    .option('--heartbeat-ms <ms>', 'HEARTBEAT_MS of the nodes the runner starts', num)
    .option('--origins-at <list>', 'existing cluster: origins RTMP host:port[,...] (publishers go there)')
    .option('--edges-at <list>', 'existing cluster: edges RTMP host:port[,...] (viewers go there)')
    .option('--api-at <list>', "existing cluster: every node's admin HTTP host:port (/api, /metrics), any order")
    .option('--route-at <list>', 'existing cluster: public HTTP host:port[,...] for the route API (default --api-at)')
    .option('--api-token <token>', 'existing cluster: API_TOKEN of the nodes (or env CLUSTER_LOAD_API_TOKEN)')
    .option('--redis-url <url>', 'existing cluster: its Redis (redis://[user:pass@]host:port[/db]) for load and leaks')
    .option('--nats-monitor-url <url>', "existing cluster: nats-server's monitoring endpoint (http://host:8222)")
    .option('--cluster-prefix <p>', "existing cluster: the nodes' CLUSTER_PREFIX", 'rtmp')
    .option('--allow-remote', 'allow non-loopback addresses for an existing cluster (prints a warning)')
    .option('--time-limit <s>', 'hard bound on the run', num, d.timeLimitS)
    .option(
      '--cpu-prof-dir <dir>',
      'V8 CPU profile of every node the runner starts, <dir>/<node id>.cpuprofile (read: npm run cpu-top)',
    )
    .addOption(
      new Option('--malloc <kind>', 'allocator of the nodes the runner starts (the image preloads jemalloc)')
        .choices(NODE_MALLOCS)
        .default(d.malloc),
    )
    .option('--json <path>', 'write the JSON report here')
    .option('--quiet', 'no progress lines');
  program.parse();
  const a = program.opts();
  const options: ClusterLoadOptions = {
    ...d,
    origins: a.origins,
    edges: a.edges,
    streams: a.streams,
    viewers: a.viewers,
    hotStreams: a.hotStreams,
    lowKbps: a.lowKbps,
    zipf: a.zipf,
    rampPerSecond: a.ramp,
    durationS: a.duration,
    settleMs: a.settleMs,
    stallMs: a.stallMs,
    churnS: a.churn,
    publisherChurnPerS: a.publisherChurn,
    dropFraction: a.dropFraction,
    republishDelayMs: a.republishDelayMs,
    viewerChurnPerS: a.viewerChurn,
    rolling: Boolean(a.rolling),
    rollingEdges: Boolean(a.rollingEdges),
    ertmpFraction: a.ertmpFraction,
    reconnectDelayMs: a.reconnectDelayMs,
    publisherThread: a.publisherThread !== false,
    leaseMs: a.leaseMs,
    pullLingerMs: a.lingerMs,
    shutdownTimeoutMs: a.shutdownTimeoutMs,
    lb: a.lb as LbMode,
    seed: a.seed,
    probes: a.probes,
    routeMaxViewers: a.routeMaxViewers,
    heartbeatMs: a.heartbeatMs,
    target: existingTarget(a),
    timeLimitS: a.timeLimit,
    cpuProfDir: a.cpuProfDir,
    malloc: a.malloc as NodeMalloc,
    json: a.json,
    progress: !a.quiet,
  };
  const compare = compareModes(a.compareLb);
  const hardStop = setTimeout(
    () => {
      process.stderr.write(`cluster-load: time limit ${options.timeLimitS} s reached\n`);
      process.exit(2);
    },
    (options.timeLimitS + 60) * 1000,
  );
  hardStop.unref();
  if (compare) {
    const c = await compareLoadBalancers(options, compare);
    if (options.json) writeFileSync(options.json, JSON.stringify({ compareLb: c }, jsonSafe, 2));
    const failures: string[] = [];
    for (const mode of c.modes) {
      const r = c.reports[mode]!;
      process.stdout.write(`=== ${mode} ===\n${formatClusterReport(r)}\n`);
      failures.push(...invariantFailures(r).map((f) => `${mode}: ${f}`));
    }
    process.stdout.write(`${formatLbComparison(c)}\n`);
    if (failures.length) process.stdout.write(`INVARIANTS FAILED: ${failures.join('; ')}\n`);
    process.exit(failures.length ? 1 : 0);
  }
  const report = await runClusterLoad(options);
  if (options.json) writeFileSync(options.json, JSON.stringify(report, jsonSafe, 2));
  process.stdout.write(`${formatClusterReport(report)}\n`);
  const failures = invariantFailures(report);
  if (failures.length) process.stdout.write(`INVARIANTS FAILED: ${failures.join('; ')}\n`);
  process.exit(failures.length ? 1 : 0);
}

/** The load balancers of `--compare-lb [modes]` (bare flag: route and round-robin), or undefined without it. */
export function compareModes(value: string | boolean | undefined): LbMode[] | undefined {
  if (value === undefined || value === false) return undefined;
  const modes = value === true ? ['route', 'round-robin'] : value.split(',').map((m) => m.trim());
  const bad = modes.filter((m) => !(LB_MODES as readonly string[]).includes(m));
  if (bad.length || modes.length < 2)
    throw new UsageError(`--compare-lb ${String(value)}: expected two or more of ${LB_MODES.join(', ')}`);
  return modes as LbMode[];
}

/** The `--*-at` flags as a target, or undefined when none is given (the runner starts its own cluster). */
export function existingTarget(a: Record<string, unknown>): ExistingClusterTarget | undefined {
  const list = (flag: string, key: string) => (typeof a[key] === 'string' ? parseHostPortList(a[key], flag) : []);
  const target: ExistingClusterTarget = {
    originsAt: list('--origins-at', 'originsAt'),
    edgesAt: list('--edges-at', 'edgesAt'),
    apiAt: list('--api-at', 'apiAt'),
    routeAt: list('--route-at', 'routeAt'),
    apiToken: (a.apiToken as string | undefined) ?? process.env.CLUSTER_LOAD_API_TOKEN,
    redisUrl: a.redisUrl as string | undefined,
    natsMonitorUrl: a.natsMonitorUrl as string | undefined,
    clusterPrefix: (a.clusterPrefix as string | undefined) ?? 'rtmp',
    allowRemote: Boolean(a.allowRemote),
  };
  const given = target.originsAt.length + target.edgesAt.length + target.apiAt.length + target.routeAt.length;
  if (given === 0 && !target.redisUrl && !target.natsMonitorUrl) return undefined;
  if (!target.originsAt.length || !target.edgesAt.length || !target.apiAt.length)
    throw new UsageError('an existing cluster needs --origins-at, --edges-at and --api-at together');
  return target;
}

if (isMainModule(import.meta.url)) {
  main().catch((err) => {
    const usage = err instanceof UsageError;
    process.stderr.write(`cluster-load: ${usage ? err.message : ((err as Error).stack ?? String(err))}\n`);
    process.exit(1);
  });
}
