#!/usr/bin/env node
/**
 * LL-HLS vs HTTP-FLV on one node, in the same run: CPU per viewer-second of the server process, requests per
 * viewer-second, and LL-HLS publish-to-view latency.
 *
 *   npx tsx loadtest/src/hls-bench.ts [--viewers 50] [--seconds 20] [--part-ms 500] [--segment-ms 2000]
 *
 * One rtmp-relay standalone node (a child process, from source through tsx) and one paced publisher (a generated
 * FLV, looped; it records when it wrote each video timestamp). Phases, each `--seconds` long and measured after a
 * settle time: publisher only (baseline), N HTTP-FLV viewers, N LL-HLS viewers (LightHlsViewer: blocking reloads
 * and every part). CPU is utime+stime of the server from /proc, minus the baseline, per viewer-second.
 * Latency (HLS): a part complete at the viewer minus the publisher's write of its first video frame (the part's
 * oldest frame: an upper bound for the frames in it); and the part's EXT-X-PROGRAM-DATE-TIME minus that write
 * (how far the node's PDT is from the publisher's clock). Reports p50/p99, the machine's load average and cores.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { LightHlsViewer } from './hls-client.js';
import { isMainModule } from './main-module.js';
import { parseStat } from './procstat.js';
import { generateFlv, loadFlv, PacedPublisher } from './source.js';
import { percentile } from './stats.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const SETTLE_MS = 3000;
const STREAM = 'live/bench';

interface Options {
  viewers: number;
  seconds: number;
  partMs: number;
  segmentMs: number;
  width: number;
  height: number;
  videoKbps: number;
}

export interface PhaseResult {
  name: string;
  viewers: number;
  seconds: number;
  cpuMs: number;
  /** Server CPU ms per viewer-second, baseline subtracted. */
  cpuMsPerViewerSecond: number;
  requestsPerViewerSecond: number;
  bytesPerViewerSecond: number;
  errors: number;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function cpuMsOf(pid: number): number {
  return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).cpuMs;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A minimal HTTP-FLV viewer: one GET, bytes counted, nothing parsed (the cheapest client, like the HLS one). */
function flvViewer(url: string): { stop(): void; bytes: () => number; failed: () => boolean } {
  let bytes = 0;
  let failed = false;
  const req = httpRequest(url, { agent: false }, (res) => {
    if (res.statusCode !== 200) failed = true;
    res.on('data', (c: Buffer) => (bytes += c.length));
    res.on('error', () => {});
  });
  req.on('error', () => (failed = true));
  req.end();
  return { stop: () => req.destroy(), bytes: () => bytes, failed: () => failed };
}

async function metric(httpPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

export async function runHlsBench(o: Options, log: (line: string) => void = console.error): Promise<object> {
  const [rtmpPort, httpPort] = [await freePort(), await freePort()];
  const server = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', 'services/server/src/cli.ts', 'standalone'],
    {
      cwd: repoRoot,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        RTMP_HOST: '127.0.0.1',
        RTMP_PORT: String(rtmpPort),
        HTTP_HOST: '127.0.0.1',
        HTTP_PORT: String(httpPort),
        LOG_LEVEL: 'warn',
        HLS_PART_MS: String(o.partMs),
        HLS_SEGMENT_MS: String(o.segmentMs),
        HLS_LINGER_MS: '2000',
      },
    },
  );
  let stderr = '';
  server.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const pid = server.pid!;
  const publisher = new PacedPublisher(
    `rtmp://127.0.0.1:${rtmpPort}/${STREAM}`,
    loadFlv(
      await generateFlv(
        { width: o.width, height: o.height, videoKbps: o.videoKbps, fps: 30, gopSeconds: o.segmentMs / 1000 },
        log,
      ),
    ),
    { connectTimeoutMs: 10_000, keepSentMs: 120_000 },
  );
  try {
    for (let i = 0; ; i++) {
      try {
        await fetch(`http://127.0.0.1:${httpPort}/healthz`);
        break;
      } catch {
        if (i > 200) throw new Error(`server did not start: ${stderr}`);
        await sleep(100);
      }
    }
    await publisher.start();
    await sleep(SETTLE_MS);

    /** Start of the current phase's measured window (after its settle time). */
    let measuredFrom = 0;
    const measure = async (
      name: string,
      n: number,
      start: () => Array<() => void>,
      count: () => { requests: number; bytes: number; errors: number },
    ): Promise<PhaseResult> => {
      const stops = start();
      await sleep(SETTLE_MS);
      const c0 = cpuMsOf(pid);
      const k0 = count();
      const t0 = performance.now();
      measuredFrom = t0;
      await sleep(o.seconds * 1000);
      const seconds = (performance.now() - t0) / 1000;
      const cpuMs = cpuMsOf(pid) - c0;
      const k1 = count();
      for (const s of stops) s();
      const vs = Math.max(1, n) * seconds;
      return {
        name,
        viewers: n,
        seconds,
        cpuMs,
        cpuMsPerViewerSecond: 0,
        requestsPerViewerSecond: (k1.requests - k0.requests) / vs,
        bytesPerViewerSecond: (k1.bytes - k0.bytes) / vs,
        errors: k1.errors,
      };
    };

    const baseline = await measure(
      'baseline (publisher only)',
      0,
      () => [],
      () => ({ requests: 0, bytes: 0, errors: 0 }),
    );
    log(`baseline: ${(baseline.cpuMs / baseline.seconds).toFixed(1)} ms CPU/s`);

    const flv: Array<ReturnType<typeof flvViewer>> = [];
    const flvPhase = await measure(
      'HTTP-FLV',
      o.viewers,
      () => {
        for (let i = 0; i < o.viewers; i++) flv.push(flvViewer(`http://127.0.0.1:${httpPort}/${STREAM}.flv`));
        return flv.map((v) => v.stop);
      },
      () => ({
        requests: o.viewers,
        bytes: flv.reduce((n, v) => n + v.bytes(), 0),
        errors: flv.filter((v) => v.failed()).length,
      }),
    );
    flvPhase.requestsPerViewerSecond = 0; // one long response each
    await sleep(SETTLE_MS);

    const hls: LightHlsViewer[] = [];
    let windowBytes = NaN;
    const hlsPhase = await measure(
      'LL-HLS',
      o.viewers,
      () => {
        for (let i = 0; i < o.viewers; i++) {
          const v = new LightHlsViewer(`http://127.0.0.1:${httpPort}/${STREAM}/index.m3u8`);
          hls.push(v);
          void v.run();
        }
        return [
          () => {
            void metric(httpPort, 'hls_window_bytes').then((b) => (windowBytes = b));
          },
          ...hls.map((v) => () => v.stop()),
        ];
      },
      () => ({
        requests: hls.reduce((n, v) => n + v.stats.requests, 0),
        bytes: hls.reduce((n, v) => n + v.stats.bytes, 0),
        errors: hls.reduce((n, v) => n + v.stats.errors, 0),
      }),
    );
    await sleep(200);
    const baseRate = baseline.cpuMs / baseline.seconds;
    for (const p of [flvPhase, hlsPhase]) p.cpuMsPerViewerSecond = (p.cpuMs / p.seconds - baseRate) / p.viewers;

    // Latency: every part received in the measured window (not the joins' catch-up), against the publisher's write
    // of its first video frame.
    const g2g: number[] = [];
    const pdtError: number[] = [];
    for (const v of hls) {
      for (const p of v.stats.parts) {
        if (p.videoMs === undefined || p.receivedAt < measuredFrom) continue;
        const wroteAt = publisher.sentVideo.get(Math.round(p.videoMs));
        if (wroteAt === undefined) continue;
        g2g.push(p.receivedAt - wroteAt);
        if (p.programDateTime !== undefined) pdtError.push(p.programDateTime - (performance.timeOrigin + wroteAt));
      }
    }
    const pct = (xs: number[], q: number): number =>
      Math.round(
        percentile(
          [...xs].sort((a, b) => a - b),
          q,
        ),
      );
    const report = {
      options: o,
      machine: { cores: cpus().length, loadavg: loadavg().map((x) => Number(x.toFixed(2))) },
      phases: [baseline, flvPhase, hlsPhase].map((p) => ({
        ...p,
        cpuMs: Math.round(p.cpuMs),
        cpuMsPerViewerSecond: Number(p.cpuMsPerViewerSecond.toFixed(3)),
        requestsPerViewerSecond: Number(p.requestsPerViewerSecond.toFixed(2)),
        bytesPerViewerSecond: Math.round(p.bytesPerViewerSecond),
        seconds: Number(p.seconds.toFixed(1)),
      })),
      hlsVsFlvCpu: Number((hlsPhase.cpuMsPerViewerSecond / flvPhase.cpuMsPerViewerSecond).toFixed(2)),
      latency: {
        parts: g2g.length,
        publishToPartAvailableMs: { p50: pct(g2g, 50), p99: pct(g2g, 99) },
        pdtMinusPublisherClockMs: { p50: pct(pdtError, 50), p99: pct(pdtError, 99) },
      },
      hlsWindowBytes: windowBytes,
    };
    return report;
  } finally {
    publisher.stop();
    server.kill('SIGTERM');
  }
}

if (isMainModule(import.meta.url)) {
  const program = new Command()
    .name('hls-bench')
    .description('LL-HLS vs HTTP-FLV: server CPU per viewer-second, requests per viewer, publish-to-view latency')
    .option('--viewers <n>', 'viewers per protocol', '50')
    .option('--seconds <s>', 'measured seconds per phase', '20')
    .option('--part-ms <ms>', 'HLS_PART_MS', '500')
    .option('--segment-ms <ms>', 'HLS_SEGMENT_MS (and the source GOP)', '2000')
    .option('--size <WxH>', 'source picture size', '1280x720')
    .option('--video-kbps <k>', 'source video bit rate', '2500')
    .parse();
  const a = program.opts<Record<string, string>>();
  const [width, height] = a.size!.split('x').map(Number) as [number, number];
  const report = await runHlsBench({
    viewers: Number(a.viewers),
    seconds: Number(a.seconds),
    partMs: Number(a.partMs),
    segmentMs: Number(a.segmentMs),
    width,
    height,
    videoKbps: Number(a.videoKbps),
  });
  console.log(JSON.stringify(report, null, 2));
  process.exit(0);
}
