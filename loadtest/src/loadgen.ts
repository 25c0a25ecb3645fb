#!/usr/bin/env node
/**
 * RTMP load generator: one process that publishes a real-time paced FLV (looped, continuous timestamps) and opens N
 * cheap viewers ramped at R per second, then measures what each viewer gets.
 *
 *   npm run loadgen -- --url rtmp://127.0.0.1:1935/live/bench --viewers 500 --ramp 200 --duration 30 \
 *     [--input file.flv | --generate] [--json out.json] [--no-publish] [--server-pid PID]
 *
 * Timeline: publish, warm up (the server caches a GOP; server CPU with the publisher alone and the RSS baseline
 * are taken here), ramp viewers, hold the full audience for --duration seconds. The steady window is the part of
 * that hold after --settle seconds: delivery, latency, stalls, and the server's CPU and RSS are measured in it.
 *
 * Delivered/expected: audio+video payload bytes each viewer received in the window, over the payload bytes the
 * publisher sent in the window (the publisher's byte rate x window length). Latency: the publisher records when
 * it wrote each video timestamp; a viewer looks the timestamp up when that message has fully arrived (frames sent
 * before the viewer's play, i.e. the GOP cache burst, are excluded). TTFF: play sent -> first keyframe.
 *
 * Only 127.0.0.1 / ::1 are targeted unless --allow-remote is given.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseRtmpUrl, type RtmpUrl } from '@rtmp-relay/rtmp';
import { Command, Option } from 'commander';
import { sampleQueues, type QueueSample } from './socket-queues.js';
import { FFMPEG_PLAYER_MODES, FfmpegPlayer, type FfmpegPlayerMode, type FfmpegPlayerResult } from './ffmpeg-player.js';
import { isMainModule } from './main-module.js';
import { processTree, sampleCore, sampleTree, type CoreTimes, type TreeSample } from './procstat.js';
import { generateFlv, loadFlv, PacedPublisher, type GenerateOptions, type PublisherStats } from './source.js';
import { jsonSafe, round, roundSummary, summarize, type Summary } from './stats.js';
import type { ViewerProtocol } from './flv-viewer.js';
import { LocalPool, WorkerPool, type PoolHandle } from './pools.js';
import {
  createSentRing,
  lookupSent,
  recordSent,
  SharedTimestampWindow,
  type PoolConfig,
  type PoolResult,
  type PoolStatus,
} from './viewer-pool.js';

export interface LoadOptions {
  url: string;
  /** Where the publisher publishes (default `url`): an origin, while viewers play `url` on an edge. */
  publishUrl?: string;
  viewers: number;
  /** Viewers opened per second. */
  rampPerSecond: number;
  /** How long the full audience is held after the ramp (the steady window is its part after `settleSeconds`). */
  durationSeconds: number;
  /** Skipped at the start of the hold before the steady window opens (default min(2, duration / 2)). */
  settleSeconds?: number;
  /** Publisher alone before the first viewer (default 3 s; at least one GOP so the server has a keyframe). */
  warmupSeconds?: number;
  /** FLV file to publish; without it (and with `generate`) a test stream is generated with ffmpeg. */
  input?: string;
  generate?: boolean | Partial<GenerateOptions>;
  /** Publish the stream (default true). Without a publisher, latency is not measured. */
  publish?: boolean;
  /** Stream rate for delivered/expected when not publishing (bytes per second of audio+video payload). */
  streamBytesPerSecond?: number;
  connectTimeoutMs?: number;
  readTimeoutMs?: number;
  stallMs?: number;
  allowRemote?: boolean;
  /** Server process to sample (CPU from /proc/<pid>/stat, RSS from VmRSS; its descendants included). */
  serverPid?: number;
  /** CPU the server is pinned to alone: its whole busy time (incl. softirq/ksoftirqd network work) is sampled too. */
  serverCore?: number;
  /** CPU this process is pinned to: other processes' use of it is reported as noise. */
  loadgenCore?: number;
  viewerImpl?: 'light' | 'client';
  /**
   * Independent cross-check: this many FFmpeg players (real decoders) read the stream during the run; their decoded
   * frames and sampled latency are reported beside the light viewers' (default 0).
   */
  ffmpegPlayers?: number;
  /** What the FFmpeg players do: decode every video frame, or only demux packets (cheap; default `decode`). */
  ffmpegMode?: FfmpegPlayerMode;
  /** Spread the viewers over this many worker threads (0 = all in this thread, the default). */
  workers?: number;
  /** Cores this process may use (default: its CPU affinity): the CPU percent is also reported against them. */
  loadgenCores?: number;
  /**
   * How viewers play (default rtmp). http-flv / ws-flv play `<httpUrl>/<app>/<stream>.flv` (the publisher stays
   * RTMP); they always use the header-only FLV walker (flv-viewer.ts).
   */
  protocol?: ViewerProtocol;
  /** http://host:port of the server's HTTP listener, for http-flv / ws-flv. */
  httpUrl?: string;
  /** Progress lines (one per second): true = stderr, or a function. */
  progress?: boolean | ((line: string) => void);
  /** Everything ends by then, whatever happens (default: the planned run + 60 s). */
  hardStopSeconds?: number;
  signal?: AbortSignal;
}

export interface ServerReport {
  pid: number;
  pids: number[];
  baselineRssKiB: number;
  endRssKiB: number;
  peakRssKiB: number;
  rssPerViewerKiB: number;
  /** Server CPU in the steady window. */
  cpuMs: number;
  cpuPercent: number;
  cpuMsPerViewerSecond: number;
  /** CPU with the publisher alone (warmup), percent of one core. */
  publisherOnlyCpuPercent: number;
  /** Same, after subtracting the publisher-only rate. */
  cpuMsPerViewerSecondNet: number;
  /**
   * With serverCore: that CPU's busy time in the window (user+system+irq+softirq+steal from /proc/stat), which
   * also counts the kernel's network work done for the server in ksoftirqd, invisible in the process's own times.
   */
  core?: {
    cpu: number;
    busyPercent: number;
    softirqPercent: number;
    msPerViewerSecond: number;
    publisherOnlyBusyPercent: number;
    msPerViewerSecondNet: number;
  };
}

export interface Report {
  startedAt: string;
  url: string;
  viewerImpl: 'light' | 'client';
  protocol: ViewerProtocol;
  aborted: string | undefined;
  options: {
    viewers: number;
    rampPerSecond: number;
    durationSeconds: number;
    settleSeconds: number;
    warmupSeconds: number;
    stallMs: number;
  };
  stream: {
    source: string | undefined;
    bytesPerSecond: number;
    mbps: number;
    loopSeconds: number;
    publisher: (PublisherStats & { closedReason: string | undefined }) | undefined;
  };
  viewers: {
    requested: number;
    attempted: number;
    /** Up when the window opened. */
    upAtWindowStart: number;
    upAtEnd: number;
    everUp: number;
    failures: Record<string, number>;
    failuresTotal: number;
    /** Failures after being up (disconnects). */
    disconnected: number;
    /** Viewers told the stream ended (unpublish) while playing. */
    ended: number;
    rampSeconds: number;
  };
  window: { seconds: number; viewerSeconds: number };
  delivery: {
    /**
     * timestamp: bytes of messages whose timestamps fall in the window (arrived by its end + a 500 ms grace),
     * over what the publisher sent with those timestamps; exact and independent of latency. arrival: bytes that
     * arrived during the window over bytes published during it (used when the server rewrites timestamps).
     */
    method: 'timestamp' | 'arrival';
    receivedBytes: number;
    expectedBytes: number;
    ratio: number;
    ratioByArrival: number;
    minViewerRatio: number;
    viewersUnder90: number;
    /** Mean receive rate of all viewers during the window (all bytes, Mbit/s). */
    mbpsIn: number;
  };
  stalls: { total: number; inWindow: number; viewersWithStalls: number };
  ttffMs: Summary;
  /** Play sent -> first video frame of any kind (servers without a GOP cache send inter frames first). */
  ttffAnyMs: Summary;
  viewersWithoutKeyframe: number;
  /** Play sent -> last frame of the server's GOP cache burst (frames published before the play). */
  cacheBurstMs: Summary;
  latencyMs: Summary;
  /**
   * Keyframes only (their samples are also in latencyMs). A keyframe is the largest message of the stream, written
   * to every viewer in one pass, so this is where a fan-out's byte cost shows: the last viewer of the pass waits for
   * everyone before it.
   */
  latencyKeyframeMs: Summary;
  latencyAllMs: Summary;
  latencyUnmatched: number;
  loadgen: {
    workers: number;
    cores: number;
    cpuMs: number;
    /** Percent of one core in the window: near 100 means the load generator, not the server, may be the limit. */
    cpuPercent: number;
    /** Percent of all the cores it may use. */
    cpuPercentOfCores: number;
    /** Worst p99 event loop delay of the worker threads (0 without workers). */
    workerEventLoopDelayP99Ms: number;
    /**
     * Event loop utilization in the window (0..1): this thread's, and the busiest worker's (NaN without workers).
     * A worker's timers can starve while its sockets keep it in libuv's poll phase (up to 48 rounds of 1024 ready
     * sockets before timers run), so its timer-based loop delay can read seconds while every socket is still read
     * promptly; utilization and CPU say whether it had time to spare.
     */
    eventLoopUtilization: number;
    workerEventLoopUtilization: number;
    /** The generator itself was the limit (CPU or loop delay past the bounds): its latency and delivery are its own. */
    saturated: boolean;
    warnings: string[];
    cpuPercentRun: number;
    eventLoopDelayP99Ms: number;
    eventLoopDelayMaxMs: number;
    /** Longest once-a-second bookkeeping pass (progress, timeouts, /proc sampling). */
    tickMaxMs: number;
    rssMiB: number;
  };
  server: ServerReport | undefined;
  /** FFmpeg players read through the same load (a second, independent client). */
  crossCheck:
    | {
        players: number;
        videoFramesSent: number;
        results: FfmpegPlayerResult[];
        /** Their own CPU in the window (percent of one core, all players), left out of the noise figure. */
        cpuPercent: number;
      }
    | undefined;
  /**
   * CPU used on the pinned cores by anything but the server / this process (other workloads on the machine), in
   * percent of that core over the window: high values mean the run was disturbed.
   */
  noise: { serverCorePercent: number; loadgenCorePercent: number } | undefined;
  /**
   * Kernel socket queues on the viewers' port, sampled once a second in the window (socket-queues.ts); undefined
   * for remote targets. `serverSend`: bytes the server's writes had queued because viewers' receive buffers were
   * full (0 while every viewer keeps up); `generatorReceive`: bytes received but not yet read by the viewers (the
   * generator's own lag), also in ms of stream per viewer.
   */
  socketQueues:
    | {
        samples: number;
        serverSendKiB: { p50: number; max: number };
        serverSendMaxSocketKiB: number;
        generatorReceiveKiB: { p50: number; max: number };
        generatorReceiveMaxSocketKiB: number;
        /** Mean unread bytes per viewer over the stream's byte rate: how far behind the viewers' reads were. */
        generatorLagMs: { p50: number; max: number };
      }
    | undefined;
}

const ELD_RESOLUTION_MS = 10;
/** Past these the load generator, not the server, is the limit: the result is marked saturated and invalid. */
export const SATURATED_CPU_PERCENT = 85;
export const SATURATED_LOOP_DELAY_MS = 50;

/** CPUs this process may run on (its affinity, e.g. taskset), from /proc/self/status; else the machine's count. */
function cpuCount(): number {
  try {
    const m = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) {
      let n = 0;
      for (const part of m[1]!.split(',')) {
        const [a, b] = part.split('-').map(Number);
        n += b === undefined ? 1 : b - a! + 1;
      }
      if (n > 0) return n;
    }
  } catch {
    // not Linux
  }
  return availableParallelism();
}

/** Adds the saturation verdict: CPU of its cores or any of its loops' delay past the bounds. */
function saturation(l: Omit<Report['loadgen'], 'saturated' | 'warnings'>): Report['loadgen'] {
  const warnings: string[] = [];
  if (l.cpuPercentOfCores >= SATURATED_CPU_PERCENT)
    warnings.push(`load generator CPU ${l.cpuPercentOfCores}% of its ${l.cores} core(s) >= ${SATURATED_CPU_PERCENT}%`);
  const delay = Math.max(l.eventLoopDelayP99Ms, l.workerEventLoopDelayP99Ms);
  if (delay >= SATURATED_LOOP_DELAY_MS)
    warnings.push(`load generator event loop delay p99 ${delay} ms >= ${SATURATED_LOOP_DELAY_MS} ms`);
  return { ...l, saturated: warnings.length > 0, warnings };
}

function mergeFailures(list: readonly PoolStatus[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of list) for (const [k, v] of Object.entries(s.failures)) out[k] = (out[k] ?? 0) + v;
  return Object.fromEntries(Object.entries(out).sort((a, b) => b[1] - a[1]));
}

function formatFailures(f: Record<string, number>): string {
  return Object.entries(f)
    .map(([k, v]) => `${k}:${v}`)
    .join(' ');
}

function safeCore(cpu: number): CoreTimes | undefined {
  try {
    return sampleCore(cpu);
  } catch {
    return undefined;
  }
}
const DELIVERY_GRACE_MS = 500;
const LOCAL_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);

/** Throws unless the URL targets loopback (or remote is allowed). Returns the parsed URL (localhost -> 127.0.0.1). */
export function checkTarget(url: string, allowRemote = false): RtmpUrl {
  const target = parseRtmpUrl(url);
  if (!target.stream) throw new Error(`${url}: no stream name (rtmp://host:port/app/stream)`);
  if (target.secure) throw new Error(`${url}: the load generator's viewers speak plain RTMP only (no rtmps://)`);
  if (!LOCAL_HOSTS.has(target.host) && !allowRemote) {
    throw new Error(
      `refusing to load ${target.host}: only 127.0.0.1 and ::1 are targeted unless --allow-remote is given`,
    );
  }
  if (target.host === 'localhost') target.host = '127.0.0.1';
  return target;
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Runs one load test and resolves with its report (also when stopped early: see `aborted`). */
export async function runLoad(options: LoadOptions): Promise<Report> {
  const target = checkTarget(options.url, options.allowRemote);
  const publishUrl = options.publishUrl ?? options.url;
  if (options.publishUrl) checkTarget(options.publishUrl, options.allowRemote);
  const n = Math.max(0, Math.floor(options.viewers));
  const rate = Math.max(1, options.rampPerSecond);
  const duration = Math.max(0.5, options.durationSeconds);
  const settle = Math.min(options.settleSeconds ?? 2, duration / 2);
  const warmup = Math.max(0, options.warmupSeconds ?? 3);
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  const readTimeoutMs = options.readTimeoutMs ?? 10_000;
  const stallMs = options.stallMs ?? 1000;
  const impl = options.viewerImpl ?? 'light';
  const protocol = options.protocol ?? 'rtmp';
  let flvUrl = '';
  if (protocol !== 'rtmp') {
    if (!options.httpUrl) throw new Error(`--protocol ${protocol} needs --http-url http://host:port`);
    const http = new URL(options.httpUrl);
    if (http.protocol !== 'http:') throw new Error(`--http-url ${options.httpUrl}: expected http://host:port`);
    const host = http.hostname.replace(/^\[|\]$/g, '');
    if (!LOCAL_HOSTS.has(host) && !options.allowRemote)
      throw new Error(`refusing to load ${host}: only 127.0.0.1 and ::1 are targeted unless --allow-remote is given`);
    flvUrl = `${http.origin.replace('//localhost', '//127.0.0.1')}/${target.app}/${target.stream}.flv`;
  }
  const publish = options.publish ?? true;
  const log: (line: string) => void =
    typeof options.progress === 'function'
      ? options.progress
      : options.progress
        ? (l) => process.stderr.write(`${l}\n`)
        : () => {};
  const hardStopMs = (options.hardStopSeconds ?? warmup + n / rate + connectTimeoutMs / 1000 + duration + 60) * 1000;
  const startedAtIso = new Date().toISOString();
  const runStart = performance.now();
  const cpuRunStart = process.cpuUsage();
  const signal = options.signal;
  let aborted: string | undefined;
  const hardStop = new AbortController();
  const hardTimer = setTimeout(() => {
    aborted ??= 'hard_stop';
    hardStop.abort();
  }, hardStopMs);
  const stopSignal = signal ? AbortSignal.any([signal, hardStop.signal]) : hardStop.signal;
  const onAbort = (): void => {
    aborted ??= signal?.aborted ? 'interrupted' : 'hard_stop';
  };
  stopSignal.addEventListener('abort', onAbort, { once: true });

  // --- source and publisher (its send times go to shared memory, for viewers in any thread)
  const sentRing = createSentRing();
  let source: ReturnType<typeof loadFlv> | undefined;
  let publisher: PacedPublisher | undefined;
  if (publish) {
    let path = options.input;
    if (!path) path = await generateFlv(typeof options.generate === 'object' ? options.generate : {}, log);
    source = loadFlv(path);
    publisher = new PacedPublisher(publishUrl.replace('//localhost', '//127.0.0.1'), source, { connectTimeoutMs });
    publisher.onVideoSent = (ts, at) => recordSent(sentRing, ts, at);
    try {
      await publisher.start();
    } catch (err) {
      publisher.stop();
      clearTimeout(hardTimer);
      throw new Error(`publisher failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    log(
      `publishing ${path}: ${((source.bytesPerSecond * 8) / 1e6).toFixed(2)} Mbit/s, loop ${(source.loopMs / 1000).toFixed(1)} s`,
    );
  }
  const bytesPerSecond = source?.bytesPerSecond ?? options.streamBytesPerSecond ?? NaN;

  // --- warmup: publisher alone (server baseline)
  const serverPid = options.serverPid;
  let serverPids: number[] | undefined;
  const serverSample = (rescan = false): TreeSample | undefined => {
    if (!serverPid) return undefined;
    try {
      if (rescan || !serverPids) serverPids = processTree(serverPid);
      return sampleTree(serverPid, serverPids);
    } catch {
      return undefined;
    }
  };
  const core = options.serverCore;
  const coreSample = (): CoreTimes | undefined => {
    if (core === undefined) return undefined;
    try {
      return sampleCore(core);
    } catch {
      return undefined;
    }
  };
  let pubOnly0: TreeSample | undefined;
  let corePubOnly0: CoreTimes | undefined;
  if (warmup > 0) {
    await delay(Math.min(1000, warmup * 1000), stopSignal);
    pubOnly0 = serverSample();
    corePubOnly0 = coreSample();
    await delay(Math.max(0, warmup * 1000 - 1000), stopSignal);
  }
  const baseline = serverSample(true); // rescan: nginx's worker exists by now
  const coreBaseline = coreSample();
  const corePubOnlyPercent =
    corePubOnly0 && coreBaseline && coreBaseline.at > corePubOnly0.at
      ? ((coreBaseline.busyMs - corePubOnly0.busyMs) / (coreBaseline.at - corePubOnly0.at)) * 100
      : NaN;
  const pubOnlyCpuPercent =
    pubOnly0 && baseline && baseline.at > pubOnly0.at
      ? ((baseline.cpuMs - pubOnly0.cpuMs) / (baseline.at - pubOnly0.at)) * 100
      : NaN;
  let peakRss = baseline?.rssKiB ?? NaN;

  // --- viewers: in this thread, or spread over worker threads (send times and window bounds in shared memory)
  const tsWindow = new SharedTimestampWindow();
  const poolConfig: PoolConfig = {
    target,
    flvUrl,
    protocol,
    impl,
    connectTimeoutMs,
    readTimeoutMs,
    stallMs,
    measureLatency: publisher !== undefined,
  };
  const workers = Math.max(0, Math.floor(options.workers ?? 0));
  const pools: PoolHandle[] =
    workers > 0
      ? Array.from({ length: workers }, () => new WorkerPool(poolConfig, tsWindow, sentRing))
      : [new LocalPool(poolConfig, tsWindow, sentRing)];
  let launched = 0;
  const statuses = (): PoolStatus[] => pools.map((p) => p.last).filter((s): s is PoolStatus => s !== undefined);
  const sum = (list: PoolStatus[], f: (s: PoolStatus) => number): number => list.reduce((a, s) => a + f(s), 0);

  // --- progress + timeouts, once a second
  let lastTick = performance.now();
  let lastCpu = process.cpuUsage();
  let lastBytes = 0;
  let tickMaxMs = 0;
  let ticking = false;
  // Kernel socket queues on the viewers' port, once a second in the window (loopback targets only).
  const queuePort = LOCAL_HOSTS.has(target.host)
    ? protocol === 'rtmp'
      ? target.port
      : Number(new URL(options.httpUrl ?? 'http://127.0.0.1:0').port)
    : 0;
  let queueSampling = false;
  const queueSamples: QueueSample[] = [];
  let queueSampleInFlight = false;
  const tick = async (): Promise<void> => {
    if (ticking) return; // a worker still answering the last one
    ticking = true;
    const t0 = performance.now();
    try {
      const list = await Promise.all(pools.map((p) => p.tick()));
      tickBody(performance.now(), list);
    } catch {
      // a failed worker is reported by its pool's next request
    } finally {
      ticking = false;
      tickMaxMs = Math.max(tickMaxMs, performance.now() - t0);
    }
  };
  const tickBody = (now: number, list: PoolStatus[]): void => {
    if (queueSampling && queuePort && !queueSampleInFlight) {
      queueSampleInFlight = true;
      void sampleQueues(queuePort)
        .then((q) => {
          if (q && queueSampling) queueSamples.push(q);
        })
        .finally(() => (queueSampleInFlight = false));
    }
    const bytes = sum(list, (s) => s.totalBytes);
    const failures = mergeFailures(list);
    const failuresTotal = Object.values(failures).reduce((a, b) => a + b, 0);
    publisher?.prune();
    const s = serverSample();
    if (s && !(s.rssKiB <= peakRss)) peakRss = s.rssKiB;
    const dt = (now - lastTick) / 1000;
    const cpu = process.cpuUsage(lastCpu);
    const cpuPct = ((cpu.user + cpu.system) / 1000 / (now - lastTick)) * 100;
    // Over several pools: the worst pool's figures.
    const worst = (f: (s: PoolStatus) => number): number => Math.max(...list.map(f).filter((v) => Number.isFinite(v)));
    const latP50 = worst((x) => x.latP50);
    const latP95 = worst((x) => x.latP95);
    const ttffP50 = worst((x) => x.ttffP50);
    const upNow = sum(list, (x) => x.upNow);
    const pending = launched - sum(list, (x) => x.everUp + x.failedBeforeUp);
    log(
      `[${((now - runStart) / 1000).toFixed(1).padStart(6)}s] up ${upNow}/${n} pending ${pending} ` +
        `fail ${failuresTotal}${failuresTotal ? ` (${formatFailures(failures)})` : ''} in ${(((bytes - lastBytes) * 8) / 1e6 / dt).toFixed(1)} Mbit/s ` +
        `lat p50 ${latP50.toFixed(1)} p95 ${latP95.toFixed(1)} ms ttff p50 ${ttffP50.toFixed(0)} ms stalls ${sum(list, (x) => x.stallsTotal)} ` +
        `cpu ${cpuPct.toFixed(0)}%${s ? ` server ${(((s.cpuMs - (lastServer?.cpuMs ?? s.cpuMs)) / (now - lastTick)) * 100).toFixed(0)}% ${(s.rssKiB / 1024).toFixed(0)} MiB` : ''}` +
        `${publisher?.closedReason ? ` PUBLISHER CLOSED (${publisher.closedReason})` : ''}`,
    );
    if (s) lastServer = s;
    lastTick = now;
    lastCpu = process.cpuUsage();
    lastBytes = bytes;
  };
  let lastServer: TreeSample | undefined = baseline;
  const ticker = setInterval(() => void tick(), 1000);

  // --- cross-check players (FFmpeg) join first, like any viewer
  const players: FfmpegPlayer[] = [];
  if (publisher)
    for (let i = 0; i < (options.ffmpegPlayers ?? 0); i++) {
      const p = new FfmpegPlayer(
        options.url.replace('//localhost', '//127.0.0.1'),
        (ts) => lookupSent(sentRing, ts),
        options.ffmpegMode,
      );
      p.start();
      players.push(p);
    }
  const playersCpu = (): number => {
    let ms = 0;
    for (const p of players) {
      try {
        if (p.pid) ms += sampleTree(p.pid, [p.pid]).cpuMs;
      } catch {
        // exited
      }
    }
    return ms;
  };

  // --- ramp: viewers go to the pools in turn
  const rampStart = performance.now();
  await new Promise<void>((resolve) => {
    let next = 0;
    const launch = async (): Promise<void> => {
      if (stopSignal.aborted) return resolve();
      const due = Math.min(n, Math.floor(((performance.now() - rampStart) / 1000) * rate) + 1);
      if (launched < due) {
        const byPool: number[][] = pools.map(() => []);
        for (; launched < due; launched++) byPool[next++ % pools.length]!.push(launched);
        byPool.forEach((ids, i) => ids.length && pools[i]!.launch(ids));
      }
      if (launched >= n) {
        const list = await Promise.all(pools.map((p) => p.status())).catch(() => statuses());
        if (launched - sum(list, (x) => x.everUp + x.failedBeforeUp) <= 0) return resolve();
      }
      setTimeout(() => void launch(), 5);
    };
    void launch();
  });
  const rampDoneAt = performance.now();
  {
    const list = statuses();
    log(
      `ramp done in ${((rampDoneAt - rampStart) / 1000).toFixed(1)} s: ${sum(list, (x) => x.upNow)} up, ${sum(list, (x) => x.failedBeforeUp + x.disconnected)} failed`,
    );
  }

  // --- steady window
  await delay(settle * 1000, stopSignal);
  const windowStart = performance.now();
  const starts = await Promise.all(pools.map((p) => p.windowStart()));
  for (const p of players) p.windowStart();
  const playersCpu0 = playersCpu();
  const videoFrames0 = publisher?.stats.videoFramesSent ?? 0;
  const pubBytes0 = publisher?.stats.bytesSent ?? 0;
  if (publisher) tsWindow.t0 = publisher.stats.lastTimestamp;
  const totalBytes0 = starts.reduce((a, s) => a + s.totalBytes, 0);
  const cpuWin0 = process.cpuUsage();
  const serverWin0 = serverSample();
  const coreWin0 = coreSample();
  const lgCore0 = options.loadgenCore !== undefined ? safeCore(options.loadgenCore) : undefined;
  const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  eld.enable();
  const elu0 = performance.eventLoopUtilization();
  queueSampling = true;
  await delay(Math.max(0, rampDoneAt + duration * 1000 - performance.now()), stopSignal);
  const windowEnd = performance.now();
  eld.disable();
  const elu = performance.eventLoopUtilization(elu0).utilization;
  queueSampling = false;
  const cpuWin = process.cpuUsage(cpuWin0);
  const serverWin1 = serverSample();
  const coreWin1 = coreSample();
  const lgCore1 = options.loadgenCore !== undefined ? safeCore(options.loadgenCore) : undefined;
  if (serverWin1 && !(serverWin1.rssKiB <= peakRss)) peakRss = serverWin1.rssKiB;
  const pubBytes1 = publisher?.stats.bytesSent ?? 0;
  if (publisher) tsWindow.t1 = publisher.stats.lastTimestamp;
  for (const p of players) p.windowEnd();
  const playersCpuMs = playersCpu() - playersCpu0;
  const videoFramesInWindow = (publisher?.stats.videoFramesSent ?? 0) - videoFrames0;
  // Arrival-based counts are taken now; timestamp-based ones after a short grace for messages still in flight.
  const ends = await Promise.all(pools.map((p) => p.windowEnd()));
  const totalBytes1 = ends.reduce((a, e) => a + e.totalBytes, 0);
  const windowMs = windowEnd - windowStart;
  if (publisher && !stopSignal.aborted) await delay(DELIVERY_GRACE_MS, stopSignal);
  // Timestamps are comparable only when the server passed the publisher's through (latency lookups matched).
  const latencyAllCount = ends.reduce((a, e) => a + e.latencyAllCount, 0);
  const unmatched = ends.reduce((a, e) => a + e.unmatched, 0);
  const byTimestamp = publisher !== undefined && latencyAllCount > 0 && unmatched <= latencyAllCount * 0.01;

  // --- measure before tearing down
  const expected = publisher ? pubBytes1 - pubBytes0 : (bytesPerSecond * windowMs) / 1000;
  const results = await Promise.all(pools.map((p) => p.measure({ expected, byTimestamp, windowStart, windowEnd })));
  const winViewerCount = results.reduce((a, r) => a + r.winViewers, 0);
  const received = results.reduce((a, r) => a + r.received, 0);
  const receivedByArrival = results.reduce((a, r) => a + r.receivedByArrival, 0);
  const under90 = results.reduce((a, r) => a + r.under90, 0);
  const minRatio = Math.min(...results.map((r) => r.minRatio));
  const viewerMs = results.reduce((a, r) => a + r.viewerMs, 0);
  const concat = (f: (r: PoolResult) => Float64Array): Float64Array => {
    const out = new Float64Array(results.reduce((a, r) => a + f(r).length, 0));
    let at = 0;
    for (const r of results) {
      out.set(f(r), at);
      at += f(r).length;
    }
    return out;
  };
  const finalStatuses = results.map((r) => r.status);
  const failures = mergeFailures(finalStatuses);
  const failuresTotal = Object.values(failures).reduce((a, b) => a + b, 0);
  const upAtEnd = results.reduce((a, r) => a + r.upAtEnd, 0);
  const workerEld = ends.filter((e) => Number.isFinite(e.eldP99Ms));
  // Frames still in flight at the window's end arrive within the grace: let the players' counters catch up.
  const crossResults = players.map((p) => p.result(videoFramesInWindow, summarize));

  // --- tear down
  clearInterval(ticker);
  clearTimeout(hardTimer);
  stopSignal.removeEventListener('abort', onAbort);
  await Promise.all([...pools.map((p) => p.stop()), ...players.map((p) => p.stop())]);
  publisher?.stop();

  let server: ServerReport | undefined;
  if (serverPid && baseline && serverWin0 && serverWin1) {
    const cpuMs = serverWin1.cpuMs - serverWin0.cpuMs;
    const viewerSeconds = viewerMs / 1000;
    const pubOnlyMs = Number.isFinite(pubOnlyCpuPercent) ? (pubOnlyCpuPercent / 100) * windowMs : NaN;
    server = {
      pid: serverPid,
      pids: serverWin1.pids,
      baselineRssKiB: baseline.rssKiB,
      endRssKiB: serverWin1.rssKiB,
      peakRssKiB: peakRss,
      rssPerViewerKiB: round(upAtEnd > 0 ? (serverWin1.rssKiB - baseline.rssKiB) / upAtEnd : NaN, 2),
      cpuMs: round(cpuMs, 1),
      cpuPercent: round((cpuMs / windowMs) * 100, 1),
      cpuMsPerViewerSecond: round(viewerSeconds > 0 ? cpuMs / viewerSeconds : NaN, 4),
      publisherOnlyCpuPercent: round(pubOnlyCpuPercent, 2),
      cpuMsPerViewerSecondNet: round(viewerSeconds > 0 ? (cpuMs - pubOnlyMs) / viewerSeconds : NaN, 4),
    };
    if (core !== undefined && coreWin0 && coreWin1) {
      const busy = coreWin1.busyMs - coreWin0.busyMs;
      const pubOnlyBusy = Number.isFinite(corePubOnlyPercent) ? (corePubOnlyPercent / 100) * windowMs : NaN;
      server.core = {
        cpu: core,
        busyPercent: round((busy / windowMs) * 100, 1),
        softirqPercent: round(((coreWin1.softirqMs - coreWin0.softirqMs) / windowMs) * 100, 1),
        msPerViewerSecond: round(viewerSeconds > 0 ? busy / viewerSeconds : NaN, 4),
        publisherOnlyBusyPercent: round(corePubOnlyPercent, 2),
        msPerViewerSecondNet: round(viewerSeconds > 0 ? (busy - pubOnlyBusy) / viewerSeconds : NaN, 4),
      };
    }
  }
  let noise: Report['noise'];
  if ((server?.core || (lgCore0 && lgCore1)) && windowMs > 0) {
    const serverForeign = server?.core ? server.core.busyPercent - server.cpuPercent - server.core.softirqPercent : NaN;
    const lgBusy =
      lgCore0 && lgCore1
        ? ((lgCore1.busyMs - lgCore0.busyMs - (lgCore1.softirqMs - lgCore0.softirqMs)) / windowMs) * 100
        : NaN;
    const lgOwn = ((cpuWin.user + cpuWin.system + playersCpuMs * 1000) / 1000 / windowMs) * 100;
    noise = {
      serverCorePercent: round(Math.max(0, serverForeign), 1),
      loadgenCorePercent: round(Math.max(0, lgBusy - lgOwn), 1),
    };
  }
  const runCpu = process.cpuUsage(cpuRunStart);
  const lgCores = options.loadgenCores ?? cpuCount();
  const runMs = performance.now() - runStart;
  const report: Report = {
    startedAt: startedAtIso,
    url: options.url,
    viewerImpl: impl,
    protocol,
    aborted,
    options: {
      viewers: n,
      rampPerSecond: rate,
      durationSeconds: duration,
      settleSeconds: settle,
      warmupSeconds: warmup,
      stallMs,
    },
    stream: {
      source: source?.path,
      bytesPerSecond: round(bytesPerSecond, 0),
      mbps: round((bytesPerSecond * 8) / 1e6, 3),
      loopSeconds: source ? round(source.loopMs / 1000, 3) : NaN,
      publisher: publisher
        ? { ...publisher.stats, maxLateMs: round(publisher.stats.maxLateMs, 1), closedReason: publisher.closedReason }
        : undefined,
    },
    viewers: {
      requested: n,
      attempted: launched,
      upAtWindowStart: winViewerCount,
      upAtEnd,
      everUp: sum(finalStatuses, (x) => x.everUp),
      failures,
      failuresTotal,
      disconnected: sum(finalStatuses, (x) => x.disconnected),
      ended: sum(finalStatuses, (x) => x.ended),
      rampSeconds: round((rampDoneAt - rampStart) / 1000, 2),
    },
    window: { seconds: round(windowMs / 1000, 2), viewerSeconds: round(viewerMs / 1000, 1) },
    delivery: {
      receivedBytes: received,
      expectedBytes: round(expected * winViewerCount, 0),
      method: byTimestamp ? 'timestamp' : 'arrival',
      ratio: round(expected > 0 && winViewerCount > 0 ? received / (expected * winViewerCount) : NaN, 4),
      ratioByArrival: round(
        expected > 0 && winViewerCount > 0 ? receivedByArrival / (expected * winViewerCount) : NaN,
        4,
      ),
      minViewerRatio: round(winViewerCount ? minRatio : NaN, 4),
      viewersUnder90: under90,
      mbpsIn: round(((totalBytes1 - totalBytes0) * 8) / 1e6 / (windowMs / 1000), 1),
    },
    stalls: {
      total: results.reduce((a, r) => a + r.stallsTotal, 0),
      inWindow: results.reduce((a, r) => a + r.stallsInWindow, 0),
      viewersWithStalls: results.reduce((a, r) => a + r.viewersWithStalls, 0),
    },
    ttffMs: roundSummary(summarize(concat((r) => r.ttff))),
    ttffAnyMs: roundSummary(summarize(concat((r) => r.ttffAny))),
    viewersWithoutKeyframe: results.reduce((a, r) => a + r.noKeyframe, 0),
    cacheBurstMs: roundSummary(summarize(concat((r) => r.burst))),
    latencyMs: roundSummary(summarize(concat((r) => r.latencyWin))),
    latencyKeyframeMs: roundSummary(summarize(concat((r) => r.latencyKeyWin))),
    latencyAllMs: roundSummary(summarize(concat((r) => r.latencyAll))),
    latencyUnmatched: unmatched,
    loadgen: saturation({
      workers,
      cores: lgCores,
      cpuMs: round((cpuWin.user + cpuWin.system) / 1000, 0),
      cpuPercent: round(((cpuWin.user + cpuWin.system) / 1000 / windowMs) * 100, 1),
      cpuPercentOfCores: round(((cpuWin.user + cpuWin.system) / 1000 / windowMs / lgCores) * 100, 1),
      cpuPercentRun: round(((runCpu.user + runCpu.system) / 1000 / runMs) * 100, 1),
      // The histogram records timer intervals: subtract the sampling resolution to get the lag.
      eventLoopDelayP99Ms: round(Math.max(0, eld.percentile(99) / 1e6 - ELD_RESOLUTION_MS), 2),
      eventLoopDelayMaxMs: round(Math.max(0, eld.max / 1e6 - ELD_RESOLUTION_MS), 2),
      workerEventLoopDelayP99Ms: round(Math.max(0, ...workerEld.map((e) => e.eldP99Ms)), 2),
      eventLoopUtilization: round(elu, 3),
      workerEventLoopUtilization: round(workerEld.length ? Math.max(...workerEld.map((e) => e.elu)) : NaN, 3),
      tickMaxMs: round(tickMaxMs, 1),
      rssMiB: round(process.memoryUsage.rss() / 1024 / 1024, 1),
    }),
    server,
    crossCheck: players.length
      ? {
          players: players.length,
          videoFramesSent: videoFramesInWindow,
          results: crossResults.map((c) => ({
            ...c,
            ratio: round(c.ratio, 4),
            latencyMs: {
              count: c.latencyMs.count,
              p50: round(c.latencyMs.p50, 1),
              p95: round(c.latencyMs.p95, 1),
              p99: round(c.latencyMs.p99, 1),
            },
          })),
          cpuPercent: round((playersCpuMs / windowMs) * 100, 1),
        }
      : undefined,
    noise,
    socketQueues: summarizeQueues(queueSamples, upAtEnd, bytesPerSecond),
  };
  return report;
}

function summarizeQueues(
  samples: readonly QueueSample[],
  viewers: number,
  streamBytesPerSecond: number | undefined,
): Report['socketQueues'] {
  if (samples.length === 0) return undefined;
  const kib = (f: (q: QueueSample) => number): { p50: number; max: number } => {
    const s = summarize(Float64Array.from(samples, (q) => f(q) / 1024));
    return { p50: round(s.p50, 1), max: round(s.max, 1) };
  };
  const rate = streamBytesPerSecond && viewers > 0 ? streamBytesPerSecond / 1000 : NaN;
  const lag = summarize(Float64Array.from(samples, (q) => q.clientReceiveBytes / Math.max(1, viewers) / rate));
  return {
    samples: samples.length,
    serverSendKiB: kib((q) => q.serverSendBytes),
    serverSendMaxSocketKiB: round(Math.max(...samples.map((q) => q.serverSendMaxBytes)) / 1024, 1),
    generatorReceiveKiB: kib((q) => q.clientReceiveBytes),
    generatorReceiveMaxSocketKiB: round(Math.max(...samples.map((q) => q.clientReceiveMaxBytes)) / 1024, 1),
    generatorLagMs: { p50: round(lag.p50, 1), max: round(lag.max, 1) },
  };
}

/** A few human lines for the end of a run. */
export function formatReport(r: Report): string {
  const l = r.latencyMs;
  const t = r.ttffMs;
  const lines = [
    `viewers up ${r.viewers.upAtWindowStart}/${r.viewers.requested} (end ${r.viewers.upAtEnd}), failures ${r.viewers.failuresTotal}` +
      `${r.viewers.failuresTotal ? ` ${JSON.stringify(r.viewers.failures)}` : ''}${r.aborted ? `, ABORTED: ${r.aborted}` : ''}`,
    `delivered/expected ${(r.delivery.ratio * 100).toFixed(2)}% (min viewer ${(r.delivery.minViewerRatio * 100).toFixed(1)}%), ` +
      `viewers < 90%: ${r.delivery.viewersUnder90}, stalls ${r.stalls.inWindow} in window (${r.stalls.viewersWithStalls} viewers), in ${r.delivery.mbpsIn} Mbit/s`,
    `ttff p50/p95/p99 ${t.p50}/${t.p95}/${t.p99} ms; latency p50/p95/p99 ${l.p50}/${l.p95}/${l.p99} ms (${l.count} samples` +
      `${r.latencyUnmatched ? `, ${r.latencyUnmatched} unmatched timestamps` : ''}), ` +
      `keyframes p50/p99 ${r.latencyKeyframeMs.p50}/${r.latencyKeyframeMs.p99} ms`,
    `load generator cpu ${r.loadgen.cpuPercent}% of a core (${r.loadgen.cpuPercentOfCores}% of its ${r.loadgen.cores}, ` +
      `${r.loadgen.workers} workers) in the window, event loop delay p99 ${r.loadgen.eventLoopDelayP99Ms} ms` +
      `${r.loadgen.workers ? ` (workers ${r.loadgen.workerEventLoopDelayP99Ms} ms)` : ''}, loop utilization ` +
      `${r.loadgen.eventLoopUtilization}${r.loadgen.workers ? ` (busiest worker ${r.loadgen.workerEventLoopUtilization})` : ''}`,
  ];
  if (r.loadgen.saturated)
    lines.unshift(
      `!!! LOAD GENERATOR SATURATED: this result measures the generator, not the server (invalid): ${r.loadgen.warnings.join('; ')} !!!`,
    );
  if (r.crossCheck) {
    const c = r.crossCheck;
    lines.push(
      `cross-check: ${c.players} ffmpeg players ${c.results[0]?.mode === 'packets' ? 'demuxed' : 'decoded'} ${c.results.map((x) => `${(x.ratio * 100).toFixed(1)}%`).join(', ')} of ${c.videoFramesSent} video frames, ` +
        `latency p50/p99 ${c.results.map((x) => `${x.latencyMs.p50}/${x.latencyMs.p99}`).join(', ')} ms${c.results.some((x) => x.error) ? ` ERRORS: ${c.results.map((x) => x.error ?? 'ok').join('; ')}` : ''} (their cpu ${c.cpuPercent}%)`,
    );
  }
  if (r.socketQueues) {
    const q = r.socketQueues;
    lines.push(
      `socket queues: server send ${q.serverSendKiB.p50}/${q.serverSendKiB.max} KiB (p50/max, largest socket ${q.serverSendMaxSocketKiB} KiB), ` +
        `unread by the generator ${q.generatorReceiveKiB.p50}/${q.generatorReceiveKiB.max} KiB = ${q.generatorLagMs.p50}/${q.generatorLagMs.max} ms of stream per viewer`,
    );
  }
  if (r.noise)
    lines.push(
      `noise: other processes used ${r.noise.serverCorePercent}% of the server's core, ${r.noise.loadgenCorePercent}% of ours`,
    );
  if (r.server) {
    const s = r.server;
    lines.push(
      `server cpu ${s.cpuPercent}% = ${s.cpuMsPerViewerSecond} ms per viewer-second (net of publisher ${s.cpuMsPerViewerSecondNet}), ` +
        `rss ${(s.endRssKiB / 1024).toFixed(1)} MiB = ${s.rssPerViewerKiB} KiB per viewer over baseline ${(s.baselineRssKiB / 1024).toFixed(1)} MiB`,
    );
    if (s.core) {
      lines.push(
        `server core cpu${s.core.cpu} busy ${s.core.busyPercent}% (softirq ${s.core.softirqPercent}%) = ${s.core.msPerViewerSecond} ms per viewer-second`,
      );
    }
  }
  return lines.join('\n');
}

function intArg(name: string, min = 0) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name}: expected a number >= ${min}, got '${v}'`);
    return n;
  };
}

async function main(argv: string[]): Promise<number> {
  const program = new Command('loadgen')
    .description('RTMP load generator: one real-time publisher and N ramped viewers, measured')
    .option('--url <url>', 'rtmp://host:port/app/stream to publish and play', 'rtmp://127.0.0.1:1935/live/bench')
    .option('--publish-url <url>', 'publish here instead of --url (e.g. an origin, viewers on an edge)')
    .option('--viewers <n>', 'viewers to open', intArg('viewers'), 100)
    .option('--ramp <n>', 'viewers opened per second', intArg('ramp', 1), 200)
    .option('--duration <s>', 'seconds the full audience is held after the ramp', intArg('duration', 0.5), 30)
    .option('--settle <s>', 'seconds of the hold skipped before the steady window', intArg('settle'), 2)
    .option('--warmup <s>', 'seconds of publisher alone before the first viewer', intArg('warmup'), 3)
    .option('--input <file>', 'FLV file to publish (looped)')
    .option('--generate', 'generate the test stream with ffmpeg (default when no --input)')
    .option('--no-publish', 'only play (someone else publishes); latency is not measured')
    .option('--stream-kbps <n>', 'with --no-publish: stream payload rate for delivered/expected', intArg('stream-kbps'))
    .option('--json <file>', 'write the final report there instead of stdout')
    .option(
      '--connect-timeout <ms>',
      'TCP + handshake + connect + play must finish within this',
      intArg('connect-timeout', 1),
      10_000,
    )
    .option(
      '--read-timeout <ms>',
      'a playing viewer that receives nothing this long fails',
      intArg('read-timeout'),
      10_000,
    )
    .option('--stall-ms <ms>', 'a gap between video frames longer than this is a stall', intArg('stall-ms', 1), 1000)
    .addOption(
      new Option('--viewer-impl <impl>', 'light: header-only walker; client: RtmpClient')
        .choices(['light', 'client'])
        .default('light'),
    )
    .addOption(
      new Option('--protocol <protocol>', 'how viewers play (the publisher is always RTMP)')
        .choices(['rtmp', 'http-flv', 'ws-flv'])
        .default('rtmp'),
    )
    .option('--http-url <url>', 'http://host:port of the server (for --protocol http-flv / ws-flv)')
    .option('--server-pid <pid>', 'sample this server process (CPU, RSS) from /proc', intArg('server-pid', 1))
    .option(
      '--server-core <cpu>',
      'the CPU the server is pinned to alone: sample its busy time from /proc/stat',
      intArg('server-core'),
    )
    .option(
      '--loadgen-core <cpu>',
      'the CPU this process is pinned to: report other processes using it',
      intArg('loadgen-core'),
    )
    .option(
      '--ffmpeg-players <n>',
      'cross-check: FFmpeg players decoding the stream during the run',
      intArg('ffmpeg-players'),
      0,
    )
    .addOption(
      new Option('--ffmpeg-mode <mode>', 'FFmpeg players: decode every video frame, or only demux packets (cheaper)')
        .choices(FFMPEG_PLAYER_MODES)
        .default('decode'),
    )
    .option('--workers <n>', 'spread the viewers over this many worker threads (0 = this thread)', intArg('workers'), 0)
    .option('--hard-stop <s>', 'end everything after this many seconds whatever happens', intArg('hard-stop', 1))
    .option('--allow-remote', 'allow targets other than 127.0.0.1 / ::1')
    .option('--quiet', 'no progress lines')
    .parse(argv);
  const o = program.opts<{
    url: string;
    publishUrl?: string;
    viewers: number;
    ramp: number;
    duration: number;
    settle: number;
    warmup: number;
    input?: string;
    generate?: boolean;
    publish: boolean;
    streamKbps?: number;
    json?: string;
    connectTimeout: number;
    readTimeout: number;
    stallMs: number;
    viewerImpl: 'light' | 'client';
    protocol: ViewerProtocol;
    httpUrl?: string;
    serverPid?: number;
    serverCore?: number;
    loadgenCore?: number;
    workers: number;
    ffmpegPlayers: number;
    ffmpegMode: FfmpegPlayerMode;
    hardStop?: number;
    allowRemote?: boolean;
    quiet?: boolean;
  }>();
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (): void => {
    if (++interrupts > 1) process.exit(130);
    process.stderr.write('interrupted: stopping and reporting (again to exit now)\n');
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const report = await runLoad({
    url: o.url,
    publishUrl: o.publishUrl,
    viewers: o.viewers,
    rampPerSecond: o.ramp,
    durationSeconds: o.duration,
    settleSeconds: o.settle,
    warmupSeconds: o.warmup,
    input: o.input,
    generate: o.generate ?? !o.input,
    publish: o.publish,
    streamBytesPerSecond: o.streamKbps ? (o.streamKbps * 1000) / 8 : undefined,
    connectTimeoutMs: o.connectTimeout,
    readTimeoutMs: o.readTimeout,
    stallMs: o.stallMs,
    viewerImpl: o.viewerImpl,
    protocol: o.protocol,
    httpUrl: o.httpUrl,
    serverPid: o.serverPid,
    serverCore: o.serverCore,
    loadgenCore: o.loadgenCore,
    workers: o.workers,
    ffmpegPlayers: o.ffmpegPlayers,
    ffmpegMode: o.ffmpegMode,
    hardStopSeconds: o.hardStop,
    allowRemote: o.allowRemote,
    progress: !o.quiet,
    signal: controller.signal,
  });
  const json = JSON.stringify(report, jsonSafe, 2);
  if (o.json) writeFileSync(o.json, `${json}\n`);
  else process.stdout.write(`${json}\n`);
  process.stderr.write(`${formatReport(report)}\n`);
  return report.aborted ? 3 : 0;
}

if (isMainModule(import.meta.url)) {
  main(process.argv).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`loadgen: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
