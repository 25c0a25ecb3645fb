#!/usr/bin/env node
/**
 * Cold and warm TTFF through an edge when the edge and the origin are a round trip apart (another zone, another
 * region). A cold join waits for the edge's pull: the owner's lookup in Redis, then TCP, the RTMP handshake and the
 * pull's commands to the origin, each paying the round trip, then the origin's GOP; a warm join is served from the
 * edge's own cache. So the cold–warm difference counts the pull's round trips.
 *
 * Real processes: redis-server, nats-server, one `origin` and one `edge` of the built CLI (PULL_LINGER_MS short, so
 * every cold join finds no pull), a paced publisher on the origin, and a delay relay (`--rtt-ms`) between them: the
 * origin listens on 127.0.0.1:P and advertises 127.0.0.2:P, where the relay listens, so the edge reaches it only
 * through the relay. Joins are one at a time, each from connect to the first coded keyframe.
 *
 *   npm run cold-pull-bench -- [--rtt-ms 40] [--joins 15] [--runs 3] [--json file]
 */
import { writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { MessageType, parseVideoTag, RtmpClient } from '@rtmp-relay/rtmp';
import { DelayRelay } from './delay-relay.js';
import { nonNegativeInt, positiveInt } from './cli-args.js';
import { isMainModule } from './main-module.js';
import { NatsServer, RedisServer, RelayNode, freePort, metricValue, waitUntil } from './cluster-load/processes.js';
import { generateFlv, loadFlv, PacedPublisher } from './source.js';
import { fmt, summarize, type Summary } from './stats.js';

const KEY = 'live/cold';
const EDGE_LINGER_MS = 100;
const JOIN_TIMEOUT_MS = 15_000;
/** The origin advertises this loopback address; the relay listens there. */
const RELAY_HOST = '127.0.0.2';

export interface ColdPullBenchOptions {
  rttMs: number;
  joins: number;
  runs: number;
  log: (line: string) => void;
}

export interface ColdPullRun {
  cold: Summary;
  warm: Summary;
}

export interface ColdPullReport {
  options: Omit<ColdPullBenchOptions, 'log'>;
  runs: ColdPullRun[];
  /** Across runs: the median of the runs' p50s and p99s, with min–max. */
  coldP50: Summary;
  coldP99: Summary;
  warmP50: Summary;
  warmP99: Summary;
}

/** One viewer: connect, play, and the time until the first coded keyframe. */
async function joinOnce(url: string): Promise<number> {
  const started = performance.now();
  let resolveKey!: (at: number) => void;
  const keyframe = new Promise<number>((resolve) => (resolveKey = resolve));
  const client = await RtmpClient.connect(url, { connectTimeoutMs: JOIN_TIMEOUT_MS, readTimeoutMs: 0 });
  try {
    client.on('media', (m) => {
      if (m.type !== MessageType.Video || m.payload.length === 0) return;
      const info = parseVideoTag(m.payload);
      if (info.isKeyframe && !info.isSequenceHeader) resolveKey(performance.now());
    });
    await client.play(undefined, JOIN_TIMEOUT_MS);
    let timer: NodeJS.Timeout | undefined;
    const at = await Promise.race([
      keyframe,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('no keyframe within the join timeout')), JOIN_TIMEOUT_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    return at - started;
  } finally {
    client.close();
  }
}

/** Starts the origin on a port the relay can mirror on RELAY_HOST (retried if another process takes it first). */
async function startOriginBehindRelay(
  env: Record<string, string>,
  rttMs: number,
): Promise<{ origin: RelayNode; relay: DelayRelay }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    let relay: DelayRelay | undefined;
    try {
      relay = await DelayRelay.open({ host: RELAY_HOST, port }, { host: '127.0.0.1', port }, rttMs / 2);
      const origin = await RelayNode.start('origin', 'origin-0', {
        ...env,
        RTMP_PORT: String(port),
        ADVERTISE_HOST: RELAY_HOST,
      });
      return { origin, relay };
    } catch (err) {
      await relay?.close();
      if (attempt >= 3) throw err;
    }
  }
}

export async function runColdPullBench(o: ColdPullBenchOptions): Promise<ColdPullReport> {
  const redis = await RedisServer.start();
  const nats = await NatsServer.start();
  let relay: DelayRelay | undefined;
  let publisher: PacedPublisher | undefined;
  const nodes: RelayNode[] = [];
  try {
    const env = {
      REDIS_URL: redis.url,
      NATS_URL: nats.url,
      RTMP_HOST: '127.0.0.1',
      HTTP_HOST: '127.0.0.1',
      RTMP_PORT: '0',
      HTTP_PORT: '0',
      LOG_LEVEL: 'warn',
      MAX_CONNECTIONS_PER_IP: '0',
    };
    const started = await startOriginBehindRelay(env, o.rttMs);
    relay = started.relay;
    nodes.push(started.origin);
    const edge = await RelayNode.start('edge', 'edge-0', {
      ...env,
      ADVERTISE_HOST: '127.0.0.1',
      PULL_LINGER_MS: String(EDGE_LINGER_MS),
    });
    nodes.push(edge);
    const source = loadFlv(
      await generateFlv(
        { width: 320, height: 180, fps: 15, videoKbps: 150, audioKbps: 32, seconds: 6, gopSeconds: 2 },
        o.log,
      ),
    );
    publisher = new PacedPublisher(started.origin.url(KEY), source);
    await publisher.start();
    const viewerUrl = edge.url(KEY);
    const pulls = async (): Promise<number> => metricValue(await edge.metrics(), 'rtmp_pulls_active');
    // The stream is live at the origin (and its lease in Redis) once a first join through the edge plays.
    await joinOnce(viewerUrl);
    o.log(`origin behind a ${o.rttMs} ms round trip; ${o.runs} runs of ${o.joins} cold and ${o.joins} warm joins`);

    const runs: ColdPullRun[] = [];
    for (let r = 0; r < o.runs; r++) {
      const cold: number[] = [];
      for (let i = 0; i < o.joins; i++) {
        await waitUntil('the edge to drop its pull', async () => (await pulls()) === 0, 10_000);
        cold.push(await joinOnce(viewerUrl));
      }
      // Warm: one viewer holds the pull while the others join and leave.
      const holder = await RtmpClient.connect(viewerUrl, { connectTimeoutMs: JOIN_TIMEOUT_MS, readTimeoutMs: 0 });
      const warm: number[] = [];
      try {
        await holder.play(undefined, JOIN_TIMEOUT_MS);
        await waitUntil('the edge to pull', async () => (await pulls()) === 1, 10_000);
        for (let i = 0; i < o.joins; i++) warm.push(await joinOnce(viewerUrl));
      } finally {
        holder.close();
      }
      const run = { cold: summarize(cold), warm: summarize(warm) };
      runs.push(run);
      o.log(
        `run ${r + 1}: cold p50 ${fmt(run.cold.p50, 0)} p99 ${fmt(run.cold.p99, 0)} ms; ` +
          `warm p50 ${fmt(run.warm.p50, 0)} p99 ${fmt(run.warm.p99, 0)} ms`,
      );
    }
    return {
      options: { rttMs: o.rttMs, joins: o.joins, runs: o.runs },
      runs,
      coldP50: summarize(runs.map((x) => x.cold.p50)),
      coldP99: summarize(runs.map((x) => x.cold.p99)),
      warmP50: summarize(runs.map((x) => x.warm.p50)),
      warmP99: summarize(runs.map((x) => x.warm.p99)),
    };
  } finally {
    publisher?.stop();
    await relay?.close();
    await Promise.all(nodes.map((n) => n.proc.stop('SIGKILL')));
    await redis.stop();
    await nats.stop();
  }
}

export function formatColdPull(r: ColdPullReport): string {
  const row = (name: string, s: Summary): string =>
    `${name.padEnd(10)} ${fmt(s.p50, 0).padStart(6)} ms  (${fmt(s.min, 0)}–${fmt(s.max, 0)})`;
  return [
    `cold/warm TTFF through an edge, origin ${r.options.rttMs} ms round trip away; median of ${r.runs.length} runs (min–max)`,
    row('cold p50', r.coldP50),
    row('cold p99', r.coldP99),
    row('warm p50', r.warmP50),
    row('warm p99', r.warmP99),
    `cold − warm at p50: ${fmt(r.coldP50.p50 - r.warmP50.p50, 0)} ms = ${fmt((r.coldP50.p50 - r.warmP50.p50) / Math.max(1, r.options.rttMs), 1)} round trips`,
  ].join('\n');
}

async function main(): Promise<void> {
  const cmd = new Command('cold-pull-bench')
    .description('cold and warm TTFF through an edge whose origin is a round trip away')
    .option('--rtt-ms <ms>', 'round trip between the edge and the origin (a delay relay)', nonNegativeInt, 40)
    .option('--joins <n>', 'cold joins and warm joins per run', positiveInt, 15)
    .option('--runs <n>', 'runs', positiveInt, 3)
    .option('--json <path>', 'write the JSON report here')
    .parse();
  const a = cmd.opts<{ rttMs: number; joins: number; runs: number; json?: string }>();
  const report = await runColdPullBench({
    rttMs: a.rttMs,
    joins: a.joins,
    runs: a.runs,
    log: (l) => process.stderr.write(`${l}\n`),
  });
  console.log(formatColdPull(report));
  if (a.json) writeFileSync(a.json, JSON.stringify(report, null, 2));
}

if (isMainModule(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(`cold-pull-bench: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
