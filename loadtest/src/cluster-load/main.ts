#!/usr/bin/env node
/**
 * `npm run cluster-load -- [options]`: the cluster scenario runner (see runner.ts). Prints progress every second on
 * stderr, a readable summary on stdout, and the JSON report to --json. Exit code 1 when an invariant fails (viewer
 * failures in the steady phase, a (stream, edge) without exactly one pull, or a leak).
 */
import { writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { isMainModule } from '../main-module.js';
import { fmt, jsonSafe, type Summary } from '../stats.js';
import { DEFAULT_OPTIONS, type ClusterLoadOptions } from './options.js';
import { runClusterLoad, type ClusterLoadReport, type PhaseOutcome } from './runner.js';

const s = (x: Summary, d = 0): string =>
  `p50 ${fmt(x.p50, d)} p99 ${fmt(x.p99, d)} max ${fmt(x.max, d)} (n=${x.count})`;

function phase(name: string, p: PhaseOutcome | undefined): string[] {
  if (!p) return [];
  return [
    `${name}: ${p.viewersDisconnected} viewers disconnected ${JSON.stringify(p.disconnectReasons)}, gap per stream ${s(p.gapPerStreamMs)} ms, ` +
      `${p.streamsWithGapOver1s} streams with a gap > 1 s, ${p.streamsLost} streams lost, ${p.timestampRegressions} timestamp regressions, ${fmt(p.durationMs / 1000, 1)} s`,
    ...p.notes.map((n) => `  note: ${n}`),
  ];
}

export function formatClusterReport(r: ClusterLoadReport): string {
  const o = r.options;
  const lines = [
    `cluster-load: ${o.origins} origins, ${o.edges} edges, ${o.streams} streams (${o.hotStreams} at 2.5 Mbit/s, rest ${o.lowKbps} kbit/s), ${o.viewers} viewers; load avg ${r.load.loadavg.map((l) => l.toFixed(2)).join(' ')} on ${r.load.cores} cores`,
    `viewers: ${r.viewers.up}/${r.viewers.opened} up (opened over the whole run), ${r.viewers.failed} failed ${JSON.stringify(r.viewers.failedByReason)}; ` +
      `in the ramp and steady window: ${r.steadyFailures} ${JSON.stringify(r.viewers.steadyFailedByReason)}`,
    `runner event-loop delay: p50 ${fmt(r.runnerLagMs.p50, 0)} p99 ${fmt(r.runnerLagMs.p99, 0)} max ${fmt(r.runnerLagMs.max, 0)} ms (high = the runner's own timings are inflated)`,
    `delivered (steady ${o.durationS} s): ${s(r.delivery.deliveredPercent, 1)} %; min ${fmt(r.delivery.deliveredPercent.min, 1)} %; ${r.delivery.under99} viewers under 99 % of ${r.delivery.viewersMeasured}`,
    `stalls (> ${o.stallMs} ms) in the window: ${r.stalls.total} (${r.stalls.viewersWithStalls} viewers)`,
    `TTFF cold (first viewer of a stream on an edge): ${s(r.ttffColdMs)} ms`,
    `TTFF warm (stream already pulled): ${s(r.ttffWarmMs)} ms`,
    `  (both during the ramp: ${o.rampPerSecond} joins/s; single joins afterwards: cold ${s(r.ttffColdProbeMs)} ms, warm ${s(r.ttffWarmProbeMs)} ms)`,
    `publish-to-view latency: ${s(r.latencyMs)} ms`,
    `pulls: ${r.pulls.pairsWithExactlyOnePull}/${r.pulls.pairsWithViewers} (stream, edge) pairs with viewers have exactly one pull; ${r.pulls.mismatches.length} mismatches; ${r.pulls.afterLinger} pulls after linger`,
    ...r.pulls.mismatches.slice(0, 5).map((m) => `  mismatch: ${m}`),
    `Redis ${fmt(r.redisCommandsPerSecPerStream, 2)} commands/s and NATS ${fmt(r.natsMsgsPerSecPerStream, 2)} msgs/s per live stream`,
    ...r.nodes.map(
      (n) =>
        `  ${n.id.padEnd(14)} ${n.role.padEnd(6)} CPU ${fmt(n.cpuPercent, 0).padStart(4)} %  RSS ${fmt(n.rssStartMiB, 0)} → ${fmt(n.rssMiB, 0)} MiB (${fmt(n.rssChangePercent, 1)} %); after churn ${fmt(n.rssAfterChurnMiB, 0)} MiB (${fmt(n.rssChurnChangePercent, 1)} %)`,
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
            `gap per stream E-RTMP ${s(r.rolling.gapErtmpMs)} ms, legacy ${s(r.rolling.gapLegacyMs)} ms`,
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
    .option('--lease-ms <ms>', 'LEASE_MS of the nodes', num, d.leaseMs)
    .option('--linger-ms <ms>', 'PULL_LINGER_MS of the edges', num, d.pullLingerMs)
    .option('--shutdown-timeout-ms <ms>', 'SHUTDOWN_TIMEOUT_MS of the nodes', num, d.shutdownTimeoutMs)
    .option('--time-limit <s>', 'hard bound on the run', num, d.timeLimitS)
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
    leaseMs: a.leaseMs,
    pullLingerMs: a.lingerMs,
    shutdownTimeoutMs: a.shutdownTimeoutMs,
    timeLimitS: a.timeLimit,
    json: a.json,
    progress: !a.quiet,
  };
  const hardStop = setTimeout(
    () => {
      process.stderr.write(`cluster-load: time limit ${options.timeLimitS} s reached\n`);
      process.exit(2);
    },
    (options.timeLimitS + 60) * 1000,
  );
  hardStop.unref();
  const report = await runClusterLoad(options);
  if (options.json) writeFileSync(options.json, JSON.stringify(report, jsonSafe, 2));
  process.stdout.write(`${formatClusterReport(report)}\n`);
  const failures = invariantFailures(report);
  if (failures.length) process.stdout.write(`INVARIANTS FAILED: ${failures.join('; ')}\n`);
  process.exit(failures.length ? 1 : 0);
}

if (isMainModule(import.meta.url)) {
  main().catch((err) => {
    process.stderr.write(`cluster-load: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
