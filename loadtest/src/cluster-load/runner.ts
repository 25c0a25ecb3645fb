/**
 * The cluster scenario runner: Redis, NATS, O origins and E edges as real processes; S paced streams published from
 * this process; V viewers over the edges with a skewed popularity. Phases: ramp → steady window (delivery, TTFF,
 * latency, pulls per (stream, edge), Redis/NATS traffic, CPU/RSS) → churn → rolling updates → leak check.
 */
import {
  MemoryTrend,
  bufferSpread,
  meanRssMiB,
  memoryDrift,
  type BufferSpread,
  type MemoryDrift,
  type MemoryPoint,
} from './memory-trend.js';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseRtmpUrl } from '@rtmp-relay/rtmp';
import { generateFlv, loadFlv, type FlvSource } from '../source.js';
import { ReasonCounter, Reservoir, SampleBuffer, summarize, type Summary } from '../stats.js';
import { LightViewer, type ViewerSink } from '../viewer.js';
import { measureBalance, type BalanceOutcome } from './balance.js';
import { createBalancer, RouteError, type EdgeChoice } from './balancer.js';
import type { ClusterUnderTest, NatsProbe, NodeHandle, Role, UsageSource } from './cluster.js';
import { connectExistingCluster } from './existing-cluster.js';
import { startLocalCluster } from './local-cluster.js';
import { optionProblems, reportedOptions, UsageError, type ClusterLoadOptions } from './options.js';
import { metricValue, waitUntil } from './processes.js';
import {
  createPublisherSet,
  loopDelayMs,
  type LoopDelay,
  type PublisherHandle,
  type PublisherSet,
} from './publishers.js';
import type { ProcSample } from './procinfo.js';
import { prng } from '../prng.js';
import { InFlight } from './in-flight.js';
import { RateClock } from './rate-clock.js';
import { ViewerBook } from './viewer-book.js';

const LIVE_WAIT_MS = 30_000;
const CONNECT_TIMEOUT_MS = 10_000;
const LATENCY_SAMPLE_EVERY = 8;
const PROGRESS_MS = 1000;
/** Latency is sampled from this long after a viewer's first frame (past its GOP-cache burst). */
const LATENCY_AFTER_FIRST_MS = 3000;
/** Route mode: how long to wait for the registry to list every edge as ready before the first route query. */
const ROUTE_READY_WAIT_MS = 15_000;
/** A playing viewer without a frame for this long at the end of a phase has lost its stream. */
const LOST_AFTER_MS = 3000;
/** Single-join TTFF probes, one at a time. */
const PROBE_TIMEOUT_MS = 10_000;
const PROBE_SPACING_MS = 100;
/** Memory samples of every node during churn. */
const MEMORY_SAMPLE_MS = 5000;
/**
 * Memory samples during the steady window: often enough for the median and the peak of the Buffers between full
 * collections (every few seconds under fan-out), rarely enough that the scrapes don't show in a node's profile.
 */
const STEADY_MEMORY_SAMPLE_MS = 2000;
const MIB = 1024 * 1024;
/** Churn: most publisher stops, and most viewer leave+join pairs, one turn of the churn loop may catch up on. */
const CHURN_EVENTS_PER_TURN = 25;
/** Churn: events due longer ago than this are dropped rather than caught up on in a burst. */
const CHURN_BACKLOG_MS = 1000;

export interface NodeUsage {
  id: string;
  role: Role;
  /** /proc of a process the runner started, or the node's /metrics (an existing cluster). */
  source: UsageSource;
  cpuPercent: number;
  rssMiB: number;
  rssStartMiB: number;
  rssChangePercent: number;
  /** RSS at the end of the churn phase (same process as at the start of the steady window), and its change. */
  rssAfterChurnMiB: number;
  rssChurnChangePercent: number;
  /** RSS and heap-floor drift from the churn phase's warm-up window to its last window (memory-trend.ts). */
  churnMemory?: MemoryDrift;
  /**
   * Mean RSS over the steady window (sampled every few seconds), and the change from it to the mean of the churn's
   * last window: RSS swings with the Buffer garbage between full collections, so one sample at the window's start
   * can sit on a peak; means over both windows compare like with like.
   */
  rssSteadyMeanMiB: number;
  rssSteadyToChurnEndPercent: number;
  /** Buffer (external) memory through the steady window: the floor is what the node keeps, the rest garbage. */
  buffersSteadyMiB: BufferSpread;
}

export interface PhaseOutcome {
  viewersDisconnected: number;
  disconnectReasons: Record<string, number>;
  /**
   * Viewers the edges disconnected by their slow-viewer policy during the phase (rtmp_slow_viewers_disconnected_total
   * of the edges up at its end; NaN if one did not answer): a viewer that stops reading, here the runner when its
   * loop stalls, is closed by the edge (`closed_by_server` in disconnectReasons).
   */
  slowViewerDrops: number;
  /**
   * The runner's event-loop delay during the phase: a stall of the runner delays every viewer's frames at once, so
   * each stream's gap is at least the runner's longest stall (its viewers are timed when the runner reads them).
   */
  runnerLagMs: LoopDelay;
  /** Per stream: the longest gap between video frames any of its viewers saw, ms. */
  gapPerStreamMs: Summary;
  /** Longest gap per stream index. */
  gapByStream: Map<number, number>;
  streamsWithGapOver1s: number;
  streamsLost: number;
  timestampRegressions: number;
  durationMs: number;
  notes: string[];
}

const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

export interface ClusterLoadReport {
  options: Omit<ClusterLoadOptions, 'log'>;
  /** Which cluster ran: started by the runner, or an existing one (and what could be measured there). */
  cluster: string;
  load: { loadavg: number[]; cores: number };
  viewers: {
    opened: number;
    up: number;
    failed: number;
    failedByReason: Record<string, number>;
    /** Failures during the ramp and steady window only. */
    steadyFailedByReason: Record<string, number>;
  };
  /** The runner's own event-loop delay (ms): when high, its timings include its own lag, not only the cluster's. */
  runnerLagMs: LoopDelay;
  /**
   * The publishers' thread's event-loop delay (ms), measured the same way (`--publisher-thread`); undefined when they
   * share the runner's thread (then runnerLagMs is theirs too).
   */
  publisherLagMs: LoopDelay | undefined;
  /**
   * The runner's own memory when the phases end (before the leak check stops everyone), and the viewers it still
   * followed then: those it stopped (churn leaves, probes) are retired, so after hours of churn the runner is the size
   * of its audience, not of every viewer it ever opened.
   */
  runnerMemory: { rssMiB: number; heapUsedMiB: number; followedViewers: number };
  delivery: { viewersMeasured: number; deliveredPercent: Summary; under99: number };
  stalls: { total: number; viewersWithStalls: number };
  /** TTFF during the ramp (a join storm: rampPerSecond new viewers a second). */
  ttffColdMs: Summary;
  ttffWarmMs: Summary;
  /**
   * The ramp's TTFF in two parts: `connect` is TCP + RTMP handshake + connect + createStream (until play is sent: the
   * edge admitting a connection, so CPU starvation of the edge or the machine shows here); `play` is play sent →
   * first video frame (the edge's play path: pull and Redis lookup when cold, the GOP cache when warm).
   */
  ttffRampSplitMs: Record<'cold' | 'warm', { connect: Summary; play: Summary }>;
  /** TTFF of single joins after the steady window (one at a time): cold = no viewer of the stream on that edge. */
  ttffColdProbeMs: Summary;
  ttffWarmProbeMs: Summary;
  latencyMs: Summary;
  /**
   * The steady window in µs of the machine's monotonic clock (process.hrtime), the clock V8's CPU profiles use:
   * `npm run cpu-top -- <profile> --report <this JSON>` keeps only the samples inside it.
   */
  steadyWindowMonoUs: [number, number];
  pulls: {
    pairsWithViewers: number;
    pairsWithExactlyOnePull: number;
    mismatches: string[];
    afterLinger: number;
  };
  redisCommandsPerSecPerStream: number;
  natsMsgsPerSecPerStream: number;
  /** How the load balancer spread the audience: edges per stream, cold starts, viewers per edge. */
  balance: BalanceOutcome;
  nodes: NodeUsage[];
  churn:
    | (PhaseOutcome & {
        publisherStops: number;
        viewerLeaves: number;
        viewerJoins: number;
        /** Viewers that joined during churn and failed (e.g. StreamNotFound for a stream coming back), by reason. */
        joinFailures: Record<string, number>;
        /** Every node's RSS and heap in use, sampled through the phase, by node id. */
        memoryTrend: Record<string, MemoryPoint[]>;
        /** Where the windows memoryDrift compares are: after `warmupS`, each `windowS` long. */
        memoryWindows: { warmupS: number; windowS: number };
      })
    | undefined;
  rolling:
    | (PhaseOutcome & {
        reconnectRequests: number;
        switchMs: Summary;
        /** Gap per stream, split by whether the publisher followed ReconnectRequest (E-RTMP) or reconnected. */
        gapErtmpMs: Summary;
        gapLegacyMs: Summary;
        /**
         * Legacy publishers' own reconnect in the phase (loss to publishing again: back-off, connect, publish), and per
         * stream the relay's share of its gap: the gap less the stream's shortest reconnect in the phase (the shortest,
         * so a stream moved twice is not credited with its slower reconnect).
         */
        legacyReconnectMs: Summary;
        gapLegacyRelayMs: Summary;
      })
    | undefined;
  publishers: { connects: number; failuresByReason: Record<string, number> };
  rollingEdges: PhaseOutcome | undefined;
  leaks: {
    hubs: number;
    pulls: number;
    leases: number;
    redisStreamKeys: number;
    natsSubscriptionsOverBaseline: number;
    ok: boolean;
  };
  timestampRegressions: number;
  /** Viewers that failed during the ramp and the steady window (must be 0). */
  steadyFailures: number;
  durationS: number;
}

interface ViewerState {
  v: LightViewer;
  stream: number;
  edge: number;
  cold: boolean;
  /** The phase the viewer joined in. */
  openedIn: string;
  ttffDone: boolean;
  firstFrameAt: number;
  lastFrameAt: number;
  lastTs: number;
  maxGapMs: number;
  regressions: number;
}

/** Popularity: stream index per viewer (every stream gets one, the rest by 1/rank^s). */
export function assignStreams(streams: number, viewers: number, s: number, rand: () => number): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(streams, viewers); i++) out.push(i);
  const weights = Array.from({ length: streams }, (_, i) => 1 / Math.pow(i + 1, s));
  const total = weights.reduce((a, b) => a + b, 0);
  const cdf: number[] = [];
  let acc = 0;
  for (const w of weights) cdf.push((acc += w / total));
  while (out.length < viewers) {
    const r = rand();
    let lo = 0;
    let hi = cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < r) lo = mid + 1;
      else hi = mid;
    }
    out.push(lo);
  }
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts the cluster (or connects to the existing one it is pointed at), runs one scenario, stops what it started. */
export async function runClusterLoad(o: ClusterLoadOptions): Promise<ClusterLoadReport> {
  const cluster = await openCluster(o);
  try {
    return await runScenario(cluster, o);
  } finally {
    await cluster.close();
  }
}

/** The cluster the options name: an existing one (`target`), else one the runner starts. Throws on bad options. */
export async function openCluster(o: ClusterLoadOptions): Promise<ClusterUnderTest> {
  const problems = optionProblems(o);
  if (problems.length) throw new UsageError(problems.join('; '));
  const cluster = o.target ? await connectExistingCluster(o.target, o.log) : await startLocalCluster(o);
  o.log(`cluster: ${cluster.description}`);
  return cluster;
}

/**
 * One scenario on `cluster`: publishes, the audience joins through the load balancer `o.lb`, then the phases; ends
 * with every viewer and publisher gone and the leak check (so the next scenario on the same cluster starts clean).
 */
export async function runScenario(cluster: ClusterUnderTest, o: ClusterLoadOptions): Promise<ClusterLoadReport> {
  const problems = optionProblems(o);
  if (problems.length) throw new UsageError(problems.join('; '));
  const t0 = performance.now();
  const deadline = Date.now() + o.timeLimitS * 1000;
  // Separate streams of randomness, so the audience, churn and probes are the same whatever the load balancer does.
  const audienceRand = prng(o.seed);
  const churnRand = prng(o.seed + 1);
  const probeRand = prng(o.seed + 2);
  const log = o.log;
  const { origins, edges } = cluster;
  o = { ...o, origins: origins.length, edges: edges.length }; // an existing cluster's sizes are what it has
  /** Every node measured (replacements too). */
  const nodes: NodeHandle[] = [...origins, ...edges];
  const lifecycle = cluster.lifecycle;
  const viewers = new ViewerBook<ViewerState>();
  let pubSet: PublisherSet | undefined;
  let publishers: readonly PublisherHandle[] = [];
  const failed = new ReasonCounter();
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  let progressTimer: NodeJS.Timeout | undefined;
  let phase = 'start';
  try {
    const natsBaseline = cluster.nats ? await natsSubscriptions(cluster.nats) : NaN;

    // Sources: one small low-bitrate FLV for the many, the issue's full 2.5 Mbit/s for the hot ones.
    const low = loadFlv(
      await generateFlv(
        { width: 320, height: 180, fps: 15, videoKbps: o.lowKbps, audioKbps: 32, seconds: 6, gopSeconds: 2 },
        log,
      ),
    );
    const hot: FlvSource | undefined = o.hotStreams > 0 ? loadFlv(await generateFlv({}, log)) : undefined;
    const originUrls = (): string[] => origins.filter((n) => n.alive).map((n) => `rtmp://${n.rtmpAddr}`);
    const ertmpCount = Math.round(o.streams * o.ertmpFraction);
    pubSet = await createPublisherSet(
      Array.from({ length: o.streams }, (_, s) => ({
        key: `live/s${s}`,
        source: s < o.hotStreams && hot ? hot : low,
        // Interleave E-RTMP and legacy publishers across popularity ranks.
        ertmp: s % 2 === 0 ? s / 2 < ertmpCount : false,
        seed: o.seed * 65_537 + s, // its origin picks follow the run's seed
      })),
      {
        thread: o.publisherThread,
        origins: originUrls,
        reconnectDelayMs: o.reconnectDelayMs,
        connectTimeoutMs: CONNECT_TIMEOUT_MS,
        log,
      },
    );
    publishers = pubSet.handles;
    phase = 'publish';
    await Promise.all(publishers.map((p) => p.start()));
    await waitUntil('every stream to be published', () => publishers.every((p) => p.live), LIVE_WAIT_MS);
    log(
      `${o.streams} streams live (${o.hotStreams} at full bitrate), publishers ${pubSet.threaded ? 'in a worker thread' : "in the runner's thread"}`,
    );

    // Viewers.
    const pairActive = new Map<string, number>();
    const pairLastLeft = new Map<string, number>();
    const ttffCold = new SampleBuffer();
    const ttffWarm = new SampleBuffer();
    const ttffSplit = {
      cold: { connect: new SampleBuffer(), play: new SampleBuffer() },
      warm: { connect: new SampleBuffer(), play: new SampleBuffer() },
    };
    // Sampled over the whole run: hours of it must not grow the runner.
    const latency = new Reservoir();
    let everUp = 0;
    let stallsInWindow = 0;
    let windowOpen = false;
    let frameCounter = 0;
    const sink: ViewerSink = {
      up: () => {},
      failed: (v, reason) => {
        const st = viewers.get(v);
        if (st) leavePair(st);
        failed.add(reason);
      },
      videoFrame: (v, ts, now) => {
        const st = viewers.get(v);
        if (!st) return; // stopped and retired
        if (!st.ttffDone) {
          st.ttffDone = true;
          everUp++;
          st.firstFrameAt = now;
          if (st.openedIn === 'ramp') {
            (st.cold ? ttffCold : ttffWarm).push(now - v.startedAt);
            const split = st.cold ? ttffSplit.cold : ttffSplit.warm;
            split.connect.push(v.playSentAt - v.startedAt);
            split.play.push(now - v.playSentAt);
          }
        } else {
          const gap = now - st.lastFrameAt;
          if (gap > st.maxGapMs) st.maxGapMs = gap;
          if (ts <= st.lastTs) st.regressions++;
        }
        st.lastFrameAt = now;
        st.lastTs = ts;
        // Not the GOP-cache burst a viewer starts with (those frames were sent up to a GOP ago).
        if (++frameCounter % LATENCY_SAMPLE_EVERY === 0 && now - st.firstFrameAt > LATENCY_AFTER_FIRST_MS) {
          const sent = publishers[st.stream]!.sentAt(ts);
          if (sent !== undefined) latency.push(now - sent);
        }
      },
      stall: () => {
        if (windowOpen) stallsInWindow++;
      },
      ended: () => {},
    };
    const pairKey = (st: { stream: number; edge: number }): string => `${st.stream}|${st.edge}`;
    function leavePair(st: ViewerState): void {
      const k = pairKey(st);
      const n = (pairActive.get(k) ?? 1) - 1;
      pairActive.set(k, n);
      if (n <= 0) pairLastLeft.set(k, performance.now());
    }
    let nextId = 0;
    const balancer = createBalancer(
      o.lb,
      () => edges,
      () => cluster.routeBases(),
      prng(o.seed + 3),
    );
    const routeReasons = new ReasonCounter();
    const routeErrorsLogged = new Set<string>();
    /** A viewer arriving at the load balancer: it plays where the balancer sends it (undefined: nowhere). */
    const join = async (stream: number, phaseAtJoin = phase): Promise<ViewerState | undefined> => {
      let choice: EdgeChoice;
      try {
        choice = await balancer.pick(publishers[stream]!.key);
      } catch (err) {
        if (!(err instanceof RouteError)) throw err;
        failed.add(err.reason);
        if (!routeErrorsLogged.has(err.reason)) log(`route failed: ${err.message}`);
        routeErrorsLogged.add(err.reason);
        return undefined;
      }
      if (choice.reason) routeReasons.add(choice.reason);
      return open(stream, choice.edge, phaseAtJoin);
    };
    const open = (stream: number, edge: number, openedIn = phase): ViewerState => {
      const k = `${stream}|${edge}`;
      const active = pairActive.get(k) ?? 0;
      const left = pairLastLeft.get(k);
      // Cold: nobody on this edge watches the stream and its pull has lingered out (or never existed).
      const cold = active === 0 && (left === undefined || performance.now() - left > o.pullLingerMs + 1000);
      pairActive.set(k, active + 1);
      const e = edges[edge]!;
      const v = new LightViewer(
        nextId++,
        {
          target: parseRtmpUrl(e.url(publishers[stream]!.key)),
          window: publishers[stream]!.window,
          connectTimeoutMs: CONNECT_TIMEOUT_MS,
          stallMs: o.stallMs,
        },
        sink,
      );
      const st: ViewerState = {
        v,
        stream,
        edge,
        cold,
        openedIn,
        ttffDone: false,
        firstFrameAt: NaN,
        lastFrameAt: NaN,
        lastTs: -1,
        maxGapMs: 0,
        regressions: 0,
      };
      viewers.add(st);
      v.start();
      return st;
    };

    const progress = (): void => {
      const up = viewers.filter((s) => s.v.isUp).length;
      const live = publishers.filter((p) => p.live).length;
      log(
        `[${((performance.now() - t0) / 1000).toFixed(0)}s ${phase}] viewers up ${up}/${viewers.opened} failed ${failed.total} ` +
          `streams live ${live}/${publishers.length} frames ${frameCounter} stalls(window) ${stallsInWindow}`,
      );
    };
    if (o.progress) progressTimer = setInterval(progress, PROGRESS_MS);

    if (o.lb === 'route') await waitRouteReady(cluster, log);
    const pullStartsBefore = await edgePullStarts(edges);
    phase = 'ramp';
    const plan = audiencePlan(o, audienceRand);
    const perTick = Math.max(1, Math.round(o.rampPerSecond / 10));
    const joining: Array<Promise<unknown>> = [];
    for (let i = 0; i < plan.length; i += perTick) {
      for (const s of plan.slice(i, i + perTick)) joining.push(join(s));
      await sleep(100);
    }
    await Promise.all(joining);
    await waitUntil(
      'every viewer to be up or failed',
      () => viewers.filter((s) => !s.v.isDone && !s.ttffDone).length === 0,
      Math.max(30_000, (o.viewers / o.rampPerSecond) * 1000),
    ).catch((e: Error) => log(e.message));
    await sleep(o.settleMs);

    // Steady window.
    phase = 'steady';
    const redisBefore = await redisCommands(cluster);
    const natsBefore = await natsMsgs(cluster);
    const procBefore = await Promise.all(nodes.map((n) => n.usage()));
    const windowStartedAt = performance.now();
    const windowStartMonoUs = monoUs();
    for (const p of publishers) {
      p.windowBytes = 0; // first: nothing is counted before t0 moves
      p.window.t0 = p.timestamp;
    }
    windowOpen = true;
    const steadyMemory = new MemoryTrend(() => nodes, STEADY_MEMORY_SAMPLE_MS);
    const upAtOpen = viewers.filter((s) => s.v.isUp && s.ttffDone);
    const stallsAtOpen = new Map(upAtOpen.map((st) => [st, st.v.stalls]));
    await sleep(o.durationS * 1000);
    for (const p of publishers) p.window.t1 = p.timestamp;
    const windowS = (performance.now() - windowStartedAt) / 1000;
    const steadyWindowMonoUs: [number, number] = [windowStartMonoUs, monoUs()];
    const redisAfter = await redisCommands(cluster);
    const natsAfter = await natsMsgs(cluster);
    const procAfter = await Promise.all(nodes.map((n) => n.usage()));
    const steadyMemoryPoints = await steadyMemory.stop();
    await sleep(o.settleMs); // media up to t1 still in flight
    windowOpen = false;
    const viewersWithStalls = upAtOpen.filter((st) => st.v.stalls > stallsAtOpen.get(st)!).length;
    const steadyFailures = failed.total;
    const steadyFailedByReason = failed.toJSON();
    const delivered = new SampleBuffer();
    let under99 = 0;
    for (const st of upAtOpen) {
      const expected = publishers[st.stream]!.windowBytes;
      if (expected <= 0) continue;
      const pct = (100 * st.v.windowTsBytes) / expected;
      delivered.push(pct);
      if (pct < 99) under99++;
    }
    const { pullingEdges, ...pulls } = await checkPulls(origins, edges, publishers, viewers);
    const pullStartsAfter = await edgePullStarts(edges);
    const balance = measureBalance({
      lb: o.lb,
      seed: o.seed,
      streams: publishers.length,
      edgeIds: edges.map((e) => e.id),
      viewers: [...viewers].map((st) => ({ ...st, playing: st.v.isUp && st.ttffDone })),
      pullingEdges,
      pullStarts: pullStartsAfter - pullStartsBefore,
      routeReasons: routeReasons.toJSON(),
      routeFailures: Object.entries(failed.toJSON())
        .filter(([k]) => k.startsWith('route:'))
        .reduce((n, [, v]) => n + v, 0),
    });
    log(
      `balance (${o.lb}): ${balance.pullsPerStream.total} pulls for ${balance.pullsPerStream.streams} streams, ` +
        `${balance.coldStarts}/${balance.rampViewers} cold starts, edges' pull starts ${balance.pullStarts}`,
    );

    // Probes: single joins on the loaded cluster, one at a time, cold (nobody on that edge watches the stream and no
    // pull lingers) and warm (the stream is already pulled there). Each probe leaves once it has its first frame.
    phase = 'probes';
    const probeCold = new SampleBuffer();
    const probeWarm = new SampleBuffer();
    const watched = new Set(viewers.filter((st) => !st.v.isDone).map((st) => `${st.stream}|${st.edge}`));
    const coldPairs: Array<[number, number]> = [];
    const warmPairs: Array<[number, number]> = [];
    for (let si = 0; si < publishers.length; si++)
      for (let ei = 0; ei < edges.length; ei++) {
        const k = `${si}|${ei}`;
        if (!watched.has(k) && !pairLastLeft.has(k)) coldPairs.push([si, ei]);
        else if (watched.has(k)) warmPairs.push([si, ei]);
      }
    for (const [pairs, into] of [
      [coldPairs, probeCold],
      [warmPairs, probeWarm],
    ] as const) {
      for (let i = 0; i < Math.min(o.probes, pairs.length); i++) {
        const [si, ei] = pairs[Math.floor(probeRand() * pairs.length)]!;
        const st = open(si, ei);
        await waitUntil('probe first frame', () => st.ttffDone || st.v.isDone, PROBE_TIMEOUT_MS).catch(() => undefined);
        if (st.ttffDone) into.push(st.firstFrameAt - st.v.startedAt);
        st.v.stop();
        leavePair(st);
        viewers.retire(st);
        await sleep(PROBE_SPACING_MS);
      }
    }
    const liveStreams = publishers.filter((p) => p.live).length || 1;
    const nodesUsage: NodeUsage[] = nodes.map((n, i) => ({
      id: n.id,
      role: n.role,
      source: n.usageSource,
      cpuPercent: cpuPercent(procBefore[i]!, procAfter[i]!),
      rssMiB: procAfter[i]!.rssKiB / 1024,
      rssStartMiB: procBefore[i]!.rssKiB / 1024,
      rssChangePercent: NaN,
      rssAfterChurnMiB: NaN,
      rssChurnChangePercent: NaN,
      rssSteadyMeanMiB: meanRssMiB(steadyMemoryPoints.get(n.id) ?? []),
      buffersSteadyMiB: bufferSpread(steadyMemoryPoints.get(n.id) ?? []),
      rssSteadyToChurnEndPercent: NaN,
    }));
    log(`steady window done: ${delivered.length} viewers measured, ${under99} under 99 %`);

    // Churn.
    let churn: ClusterLoadReport['churn'];
    if (o.churnS > 0 && Date.now() < deadline) {
      phase = 'churn';
      const startedAt = performance.now();
      const before = snapshotFailures(viewers);
      let stops = 0;
      let leaves = 0;
      let joins = 0;
      const end = Math.min(Date.now() + o.churnS * 1000, deadline);
      const pubEvery = 1000 / Math.max(0.001, o.publisherChurnPerS);
      const viewEvery = 1000 / Math.max(0.001, o.viewerChurnPerS);
      const stopsDue = new RateClock(pubEvery, performance.now(), CHURN_EVENTS_PER_TURN, CHURN_BACKLOG_MS);
      const leavesAndJoinsDue = new RateClock(viewEvery, performance.now(), CHURN_EVENTS_PER_TURN, CHURN_BACKLOG_MS);
      // Publisher restarts and viewer joins under way (settled ones are not kept).
      const churnWork = new InFlight();
      const churnedStreams = new Set<number>();
      let notRouted = 0;
      viewers.beginPhase();
      const churnProbes = await startPhaseProbes(edges);
      const memory = new MemoryTrend(() => nodes, MEMORY_SAMPLE_MS);
      while (Date.now() < end) {
        const now = performance.now();
        for (let due = stopsDue.take(now); due > 0; due--) {
          const idx = Math.floor(churnRand() * publishers.length);
          const p = publishers[idx]!;
          if (p.live) {
            stops++;
            churnedStreams.add(idx);
            // Not live from here on; the restart goes after the stop (one ordered channel to the publishers' thread).
            const stopped = p.stop(churnRand() >= o.dropFraction);
            churnWork.add(Promise.all([stopped, sleep(o.republishDelayMs).then(() => p.start())]));
          }
        }
        for (let due = leavesAndJoinsDue.take(now); due > 0; due--) {
          const upList = viewers.filter((s) => s.v.isUp);
          const leaving = upList[Math.floor(churnRand() * upList.length)];
          if (leaving) {
            leaving.v.stop();
            leavePair(leaving);
            viewers.retire(leaving);
            leaves++;
          }
          const [s] = assignStreams(o.streams, o.streams + 1, o.zipf, churnRand).slice(o.streams);
          churnWork.add(join(s!).then((st) => void (st ? undefined : notRouted++)));
          joins++;
        }
        await sleep(20);
      }
      const churnS = (performance.now() - startedAt) / 1000;
      await churnWork.settled();
      await waitUntil('churned streams live again', () => publishers.every((p) => p.live), LIVE_WAIT_MS).catch(
        (e: Error) => log(e.message),
      );
      await sleep(o.settleMs * 2);
      const memoryTrend = await memory.stop();
      // Heaps size themselves to the churn in its first minute or so: compare what comes after that.
      const memoryWindows = { warmupS: Math.min(60, o.churnS / 4), windowS: Math.min(60, o.churnS / 4) };
      for (const [i, n] of nodes.entries()) {
        const u = nodesUsage[i];
        if (!u || !n.alive) continue;
        u.rssAfterChurnMiB = (await n.usage()).rssKiB / 1024;
        u.rssChurnChangePercent = (100 * (u.rssAfterChurnMiB - u.rssStartMiB)) / u.rssStartMiB;
        const points = memoryTrend.get(n.id);
        if (points) u.churnMemory = memoryDrift(points, memoryWindows.warmupS, memoryWindows.windowS);
        if (u.churnMemory)
          u.rssSteadyToChurnEndPercent = (100 * (u.churnMemory.rssEndMiB - u.rssSteadyMeanMiB)) / u.rssSteadyMeanMiB;
      }
      churn = {
        ...phaseOutcome(viewers, before, startedAt, o.stallMs, publishers, undefined),
        ...(await churnProbes()),
        memoryTrend: Object.fromEntries(memoryTrend),
        memoryWindows,
        publisherStops: stops,
        viewerLeaves: leaves,
        viewerJoins: joins,
        joinFailures: mergeCounts([
          // Failed viewers are never retired: every churn joiner that failed is still followed.
          ...viewers
            .filter((j) => j.openedIn === 'churn' && j.v.phase === 'failed')
            .map((j) => ({ [j.v.failReason ?? 'unknown']: 1 })),
          notRouted ? { route: notRouted } : {},
        ]),
      };
      // Viewers that joined a stream while its publisher was away and gave up (play wait) are failures too.
      log(
        `churn done: ${stops} publisher stops (${(stops / churnS).toFixed(2)}/s of ${o.publisherChurnPerS} asked), ` +
          `${leaves} leaves, ${joins} joins (${(joins / churnS).toFixed(1)}/s of ${o.viewerChurnPerS} asked; ` +
          `${leavesAndJoinsDue.dropped} pairs and ${stopsDue.dropped} stops dropped by a runner more than ` +
          `${CHURN_BACKLOG_MS} ms late), ` +
          `${churn.viewersDisconnected} disconnected`,
      );
    }

    // Rolling update of the origins (and optionally the edges).
    let rolling: ClusterLoadReport['rolling'];
    let rollingEdges: ClusterLoadReport['rollingEdges'];
    if (o.rolling && lifecycle && Date.now() < deadline) {
      phase = 'rolling-origins';
      const startedAt = performance.now();
      const before = snapshotFailures(viewers);
      viewers.beginPhase();
      const countersBefore = await pubSet.counters();
      const reqBefore = countersBefore.reduce((n, c) => n + c.reconnectRequests, 0);
      const switchBefore = countersBefore.map((c) => c.switchMs.length);
      const awayBefore = countersBefore.map((c) => c.awayMs.length);
      const rollingProbes = await startPhaseProbes(edges);
      for (const [i, old] of [...origins].entries()) {
        // A replacement first (surge rollout, maxUnavailable 0), then the old one drains; the load balancer stops
        // sending it publishers as soon as it is not ready (the runner's origin list models that).
        const fresh = await lifecycle.startNode('origin', i);
        origins.push(fresh);
        nodes.push(fresh);
        origins.splice(origins.indexOf(old), 1);
        await pubSet.syncOrigins(); // the balancer sends no new publisher to the old one from here on
        await lifecycle.stopNode(old, 'SIGTERM', o.shutdownTimeoutMs + 10_000);
        log(`origin ${old.id} drained and exited; ${fresh.id} up`);
      }
      await waitUntil(
        'every stream live after the origin rollout',
        () => publishers.every((p) => p.live),
        LIVE_WAIT_MS,
      ).catch((e: Error) => log(e.message));
      await sleep(o.settleMs * 2);
      const countersAfter = await pubSet.counters();
      const switchMs = countersAfter.flatMap((c, i) => c.switchMs.slice(switchBefore[i]));
      const outcome = phaseOutcome(viewers, before, startedAt, o.stallMs, publishers, undefined);
      const gaps = [...outcome.gapByStream.entries()];
      const byKind = (ertmp: boolean): number[] =>
        gaps.filter(([i]) => publishers[i]!.ertmp === ertmp).map(([, g]) => g);
      const awayInPhase = countersAfter.map((c, i) => c.awayMs.slice(awayBefore[i]));
      rolling = {
        ...outcome,
        ...(await rollingProbes()),
        reconnectRequests: countersAfter.reduce((n, c) => n + c.reconnectRequests, 0) - reqBefore,
        switchMs: summarize(switchMs),
        gapErtmpMs: summarize(byKind(true)),
        gapLegacyMs: summarize(byKind(false)),
        legacyReconnectMs: summarize(awayInPhase.flatMap((away, i) => (publishers[i]!.ertmp ? [] : away))),
        gapLegacyRelayMs: summarize(
          gaps
            .filter(([i]) => !publishers[i]!.ertmp && awayInPhase[i]!.length > 0)
            .map(([i, gap]) => gap - Math.min(...awayInPhase[i]!)),
        ),
      };
      log(
        `origin rollout done: ${rolling.viewersDisconnected} viewers disconnected, gap p50 ${rolling.gapPerStreamMs.p50} max ${rolling.gapPerStreamMs.max} ms`,
      );
      if (o.rollingEdges && Date.now() < deadline) {
        phase = 'rolling-edges';
        const eStarted = performance.now();
        const eBefore = snapshotFailures(viewers);
        viewers.beginPhase();
        const edgeProbes = await startPhaseProbes(edges);
        for (let i = 0; i < edges.length; i++) {
          const old = edges[i]!;
          const fresh = await lifecycle.startNode('edge', i);
          edges[i] = fresh;
          nodes.push(fresh);
          const orphaned = viewers.filter((s) => s.edge === i && !s.v.isDone);
          await lifecycle.stopNode(old, 'SIGTERM', o.shutdownTimeoutMs + 10_000);
          // Players reconnect through the load balancer once their edge closes (its replacement is in the list).
          await Promise.all(orphaned.filter((st) => st.v.isDone).map((st) => join(st.stream)));
        }
        await sleep(o.settleMs * 2);
        rollingEdges = {
          ...phaseOutcome(
            viewers,
            eBefore,
            eStarted,
            o.stallMs,
            publishers,
            `edges closed their viewers; players rejoined through the load balancer (${o.lb})`,
          ),
          ...(await edgeProbes()),
        };
      }
    }

    // Leak check: everything stops; after the linger nothing may remain.
    phase = 'leak-check';
    if (progressTimer) clearInterval(progressTimer);
    const live = nodes.filter((n) => n.alive);
    const rssBeforeStop = await Promise.all(live.map(async (n) => ({ id: n.id, kib: (await n.usage()).rssKiB })));
    const own = process.memoryUsage();
    const runnerMemory = { rssMiB: own.rss / MIB, heapUsedMiB: own.heapUsed / MIB, followedViewers: viewers.size };
    for (const st of viewers) st.v.stop();
    const publisherCounters = await pubSet.counters();
    const publisherLagMs = await pubSet.loopDelay();
    await pubSet.close();
    const leakDeadline = o.pullLingerMs + o.leaseMs + 10_000;
    let leaks = await leakCheck(live, cluster, natsBaseline);
    const stopAt = Date.now() + leakDeadline;
    while (!leaks.ok && Date.now() < stopAt) {
      await sleep(500);
      leaks = await leakCheck(live, cluster, natsBaseline);
    }
    for (const u of nodesUsage) {
      const end = rssBeforeStop.find((r) => r.id === u.id);
      if (end) {
        u.rssMiB = end.kib / 1024;
        u.rssChangePercent = (100 * (u.rssMiB - u.rssStartMiB)) / u.rssStartMiB;
      }
    }
    const afterLinger = leaks.pulls;
    const regressions = viewers.totalRegressions();
    const report: ClusterLoadReport = {
      options: reportedOptions(o),
      cluster: cluster.description,
      load: { loadavg: (await import('node:os')).loadavg(), cores: (await import('node:os')).cpus().length },
      viewers: {
        opened: viewers.opened,
        up: everUp,
        failed: failed.total,
        failedByReason: failed.toJSON(),
        steadyFailedByReason,
      },
      runnerLagMs: loopDelayMs(lag),
      publisherLagMs,
      runnerMemory,
      delivery: { viewersMeasured: delivered.length, deliveredPercent: summarize(delivered.view()), under99 },
      stalls: {
        total: stallsInWindow,
        viewersWithStalls,
      },
      ttffColdMs: summarize(ttffCold.view()),
      ttffWarmMs: summarize(ttffWarm.view()),
      ttffRampSplitMs: {
        cold: { connect: summarize(ttffSplit.cold.connect.view()), play: summarize(ttffSplit.cold.play.view()) },
        warm: { connect: summarize(ttffSplit.warm.connect.view()), play: summarize(ttffSplit.warm.play.view()) },
      },
      steadyWindowMonoUs,
      ttffColdProbeMs: summarize(probeCold.view()),
      ttffWarmProbeMs: summarize(probeWarm.view()),
      latencyMs: latency.summary(),
      pulls: { ...pulls, afterLinger },
      redisCommandsPerSecPerStream: (redisAfter - redisBefore) / windowS / liveStreams,
      natsMsgsPerSecPerStream: (natsAfter - natsBefore) / windowS / liveStreams,
      balance,
      nodes: nodesUsage,
      publishers: {
        connects: publisherCounters.reduce((n, c) => n + c.connects, 0),
        failuresByReason: mergeCounts(publisherCounters.map((c) => c.failures)),
      },
      churn,
      rolling,
      rollingEdges,
      leaks,
      timestampRegressions: regressions,
      steadyFailures,
      durationS: (performance.now() - t0) / 1000,
    };
    return report;
  } finally {
    if (progressTimer) clearInterval(progressTimer);
    lag.disable();
    for (const st of viewers) st.v.stop();
    // Also on errors: every publisher stops and the publishers' thread ends (idempotent after the leak check's).
    await pubSet?.close().catch((e: Error) => log(`closing the publishers: ${e.message}`));
  }
}

function mergeCounts(all: Array<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of all) for (const [k, v] of Object.entries(c)) out[k] = (out[k] ?? 0) + v;
  return out;
}

function snapshotFailures(viewers: ViewerBook<ViewerState>): Set<ViewerState> {
  return new Set(viewers.filter((s) => s.v.phase === 'failed'));
}

function phaseOutcome(
  viewers: ViewerBook<ViewerState>,
  failedBefore: Set<ViewerState>,
  startedAt: number,
  stallMs: number,
  publishers: readonly PublisherHandle[],
  note: string | undefined,
): Omit<PhaseOutcome, 'slowViewerDrops' | 'runnerLagMs'> {
  const reasons = new ReasonCounter();
  let disconnected = 0;
  for (const s of viewers) {
    if (s.v.phase !== 'failed' || failedBefore.has(s) || s.v.startedAt >= startedAt) continue;
    disconnected++;
    reasons.add(s.v.failReason ?? 'unknown');
  }
  const retired = viewers.retiredInPhase();
  const gapByStream = new Map(retired.gapByStream);
  let regressions = retired.regressions;
  const now = performance.now();
  for (const s of viewers) {
    if (!s.ttffDone || s.v.phase === 'failed') continue;
    // A viewer that left before the phase (churn) saw none of it: counted, it gave its stream a gap of 0.
    if (!s.v.isUp && s.maxGapMs === 0) continue;
    // A gap still open at the end of the phase counts as far as it has gone: a stream whose viewers are still
    // waiting would otherwise show only the gaps that ended.
    const open = s.v.isUp ? now - s.lastFrameAt : 0;
    gapByStream.set(s.stream, Math.max(gapByStream.get(s.stream) ?? 0, s.maxGapMs, open));
    regressions += s.regressions;
  }
  const gaps = [...gapByStream.values()];
  const silent = new Set(
    viewers.filter((s) => s.v.isUp && s.ttffDone && now - s.lastFrameAt > LOST_AFTER_MS).map((s) => s.stream),
  );
  const lost = publishers.filter((p, i) => !p.live || silent.has(i)).length;
  return {
    viewersDisconnected: disconnected,
    disconnectReasons: reasons.toJSON(),
    gapPerStreamMs: summarize(gaps),
    gapByStream,
    streamsWithGapOver1s: gaps.filter((g) => g > Math.max(1000, stallMs)).length,
    streamsLost: lost,
    timestampRegressions: regressions,
    durationMs: performance.now() - startedAt,
    notes: note ? [note] : [],
  };
}

/** The audience: a stream index per viewer (Zipf popularity), shuffled so the first viewer of each (stream, edge)
 * arrives at a random point of the ramp. Depends only on the sizes and the seed's generator. */
export function audiencePlan(
  o: Pick<ClusterLoadOptions, 'streams' | 'viewers' | 'zipf'>,
  rand: () => number,
): number[] {
  const plan = assignStreams(o.streams, o.viewers, o.zipf, rand);
  for (let i = plan.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [plan[i], plan[j]] = [plan[j]!, plan[i]!];
  }
  return plan;
}

async function redisCommands(cluster: ClusterUnderTest): Promise<number> {
  return cluster.redis ? cluster.redis.totalCommands() : NaN;
}

async function natsMsgs(cluster: ClusterUnderTest): Promise<number> {
  if (!cluster.nats) return NaN;
  const v = await cluster.nats.monitor<{ in_msgs: number }>('varz').catch(() => ({ in_msgs: NaN }));
  return v.in_msgs;
}

async function natsSubscriptions(nats: NatsProbe): Promise<number> {
  const v = await nats.monitor<{ num_subscriptions: number }>('subsz').catch(() => ({ num_subscriptions: NaN }));
  return v.num_subscriptions;
}

/**
 * A counter of each edge, by node id: NaN where the edge did not answer or does not declare it (a counter with labels
 * prints no sample before its first event, so its absence alone cannot tell 0 from a wrong name).
 */
async function edgeCounter(edges: readonly NodeHandle[], name: string): Promise<Map<string, number>> {
  const counts = await Promise.all(
    edges
      .map(async (e) => {
        const text = await e.metrics();
        return text.includes(`# TYPE ${name} counter`) ? metricValue(text, name) : NaN;
      })
      .map((p) => p.catch(() => NaN)),
  );
  return new Map(edges.map((e, i) => [e.id, counts[i]!]));
}

/** Pull connections the edges have started so far (rtmp_pull_starts_total summed; NaN if any edge does not answer). */
async function edgePullStarts(edges: readonly NodeHandle[]): Promise<number> {
  let sum = 0;
  for (const n of (await edgeCounter(edges, 'rtmp_pull_starts_total')).values()) sum += n;
  return sum;
}

const SLOW_DROPS_METRIC = 'rtmp_slow_viewers_disconnected_total';

/**
 * What every phase measures besides its viewers: the edges' slow-viewer drops and the runner's own loop delay. Starts
 * both; the returned function reads them for the phase. `edges` is read again at the end (a rollout replaces edges:
 * those up at the end count, a new one from 0).
 */
async function startPhaseProbes(
  edges: readonly NodeHandle[],
): Promise<() => Promise<Pick<PhaseOutcome, 'slowViewerDrops' | 'runnerLagMs'>>> {
  const dropsBefore = await edgeCounter(edges, SLOW_DROPS_METRIC);
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  return async () => {
    lag.disable();
    let slowViewerDrops = 0;
    for (const [id, n] of await edgeCounter(edges, SLOW_DROPS_METRIC))
      slowViewerDrops += n - (dropsBefore.get(id) ?? 0);
    return {
      slowViewerDrops,
      runnerLagMs: loopDelayMs(lag),
    };
  };
}

/** Route mode: wait (bounded) until the registry lists every edge as ready, so the router can choose among all. */
async function waitRouteReady(cluster: ClusterUnderTest, log: (line: string) => void): Promise<void> {
  const asker = cluster.origins[0] ?? cluster.edges[0];
  if (!asker) return;
  const ids = new Set(cluster.edges.map((e) => e.id));
  type Rec = { id: string; role: string; ready?: boolean; draining?: boolean };
  await waitUntil(
    'the registry to list every edge as ready',
    async () => {
      const recs = await asker.json<{ nodes: Rec[] }>('/api/cluster/nodes').catch(() => ({ nodes: [] as Rec[] }));
      return recs.nodes.filter((n) => ids.has(n.id) && n.ready !== false && n.draining !== true).length === ids.size;
    },
    ROUTE_READY_WAIT_MS,
  ).catch((e: Error) => log(`${e.message}; routing among the edges it lists`));
}

function cpuPercent(a: ProcSample, b: ProcSample): number {
  return (100 * (b.cpuMs - a.cpuMs)) / Math.max(1, b.at - a.at);
}

interface ApiStream {
  key: string;
  viewers: number | { total?: number };
  publisher: string | null;
}

const apiStreams = async (n: NodeHandle): Promise<ApiStream[]> =>
  (await n.json<{ streams: ApiStream[] }>('/api/streams')).streams;

const viewerCount = (s: ApiStream): number => (typeof s.viewers === 'number' ? s.viewers : (s.viewers?.total ?? 0));

/**
 * Pulls per (stream, edge): every edge that has viewers of a stream must hold exactly one pull (its hub's publisher
 * is `pull:<key>`), and the owning origins together must serve exactly as many pull connections as there are such
 * edges (a second, leaked pull from the same edge shows up there). Also counts, per stream with viewers, the edges
 * holding a pull of it (with viewers or lingering): the stream's upstream pulls.
 */
async function checkPulls(
  origins: readonly NodeHandle[],
  edges: readonly NodeHandle[],
  publishers: readonly PublisherHandle[],
  viewers: Iterable<ViewerState>,
): Promise<{
  pairsWithViewers: number;
  pairsWithExactlyOnePull: number;
  mismatches: string[];
  pullingEdges: Map<number, number>;
}> {
  const mismatches: string[] = [];
  const edgeStreams = await Promise.all(edges.map((e) => apiStreams(e)));
  const originStreams = await Promise.all(origins.map((n) => apiStreams(n)));
  const pullsAtOrigins = new Map<string, number>();
  for (const list of originStreams)
    for (const s of list) pullsAtOrigins.set(s.key, (pullsAtOrigins.get(s.key) ?? 0) + viewerCount(s));
  let pairs = 0;
  let exact = 0;
  const pullingEdges = new Map<number, number>();
  const watched = new Set<string>();
  for (const v of viewers) if (v.v.isUp) watched.add(`${v.stream}|${v.edge}`);
  for (let si = 0; si < publishers.length; si++) {
    const key = publishers[si]!.key;
    let edgesWith = 0;
    const pulling = edgeStreams.filter((list) => list.some((s) => s.key === key && s.publisher === `pull:${key}`));
    for (let ei = 0; ei < edges.length; ei++) {
      if (!watched.has(`${si}|${ei}`)) continue;
      pairs++;
      edgesWith++;
      const hub = edgeStreams[ei]!.find((s) => s.key === key);
      if (hub?.publisher === `pull:${key}`) exact++;
      else mismatches.push(`${key}@${edges[ei]!.id}: ${hub ? `publisher ${hub.publisher}` : 'no hub'}`);
    }
    if (edgesWith > 0) pullingEdges.set(si, pulling.length);
    const atOrigins = pullsAtOrigins.get(key) ?? 0;
    if (atOrigins < edgesWith || atOrigins > edges.length)
      mismatches.push(`${key}: ${atOrigins} pull connections at origins for ${edgesWith} edges with viewers`);
  }
  return { pairsWithViewers: pairs, pairsWithExactlyOnePull: exact, mismatches: mismatches.slice(0, 50), pullingEdges };
}

/**
 * What is left once every viewer and publisher went: hubs, pulls and leases on the nodes, stream keys in Redis and
 * NATS subscriptions over the baseline (NaN: not measured, e.g. an existing cluster without --redis-url).
 */
async function leakCheck(
  nodes: readonly NodeHandle[],
  cluster: ClusterUnderTest,
  natsBaseline: number,
): Promise<ClusterLoadReport['leaks']> {
  let hubs = 0;
  let pulls = 0;
  let leases = 0;
  for (const n of nodes) {
    const streams = await apiStreams(n).catch(() => []);
    hubs += streams.length;
    const m = await n.metrics().catch(() => '');
    pulls += metricValue(m, 'rtmp_pulls_active');
    leases += metricValue(m, 'rtmp_owned_streams');
  }
  const redisStreamKeys = cluster.redis
    ? await cluster.redis
        .keys(`${cluster.prefix}:stream:*`)
        .then((k) => k.length)
        .catch(() => NaN)
    : NaN;
  const over = cluster.nats ? (await natsSubscriptions(cluster.nats)) - natsBaseline : NaN;
  return {
    hubs,
    pulls,
    leases,
    redisStreamKeys,
    natsSubscriptionsOverBaseline: over,
    ok:
      hubs === 0 &&
      pulls === 0 &&
      leases === 0 &&
      (!cluster.redis || redisStreamKeys === 0) &&
      (!cluster.nats || over <= 0),
  };
}
