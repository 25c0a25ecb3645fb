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
 * and every part), publisher only again once the HLS packager has lingered out (trailing baseline). CPU is
 * utime+stime of the server from /proc, minus the baseline (the mean of the two), per viewer-second. The baseline
 * moves from run to run; `hlsMinusFlvCpuMsPerViewerSecond` compares the two phases directly, without it.
 * Latency (HLS): a part complete at the viewer minus the publisher's write of its first video frame (the part's
 * oldest frame: an upper bound for the frames in it); and the part's EXT-X-PROGRAM-DATE-TIME minus that write
 * (how far the node's PDT is from the publisher's clock). Reports p50/p99, the machine's load average and cores.
 *
 * The viewers run in this process (the load generator): its CPU (% of one core) and event loop delay p99 are
 * reported per phase, and a run where it was saturated is flagged (its numbers are then partly the generator's).
 * The server's established HTTP connections at the end of each window show whether keep-alive is honoured.
 * The server is pinned to CPU 0 and the generator to CPU 1 (`--no-pin`: not), as in the fan-out bench.
 * `--runs N` repeats the whole run and reports medians with min–max; `--server-cpu-prof <dir>` runs the server
 * under `--cpu-prof` and reports its top self-time functions within each phase's measured window.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { topSelfTime, type CpuProfile, type SelfTimeEntry } from './cpu-profile.js';
import { LightHlsViewer } from './hls-client.js';
import { isMainModule } from './main-module.js';
import { parseStat } from './procstat.js';
import { generateFlv, loadFlv, PacedPublisher } from './source.js';
import { percentile } from './stats.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const SETTLE_MS = 3000;
const STREAM = 'live/bench';
/** The load generator counts as saturated at this share of its one core (its numbers are then partly its own). */
const GENERATOR_SATURATED_CPU_PERCENT = 85;
/** ... or at this event loop delay p99. */
const GENERATOR_SATURATED_LOOP_P99_MS = 50;
const LOOP_DELAY_RESOLUTION_MS = 10;
const PROFILE_TOP = 25;
/** How long the server may take to exit (and write its CPU profile) after SIGTERM. */
const SERVER_EXIT_MS = 15_000;
const TCP_ESTABLISHED = '01';
const SERVER_HLS_LINGER_MS = 2000;
const TASKSET = '/usr/bin/taskset';
const SERVER_CPU = '0';
const GENERATOR_CPU = '1';

interface Options {
  viewers: number;
  seconds: number;
  partMs: number;
  segmentMs: number;
  width: number;
  height: number;
  videoKbps: number;
  /** Run the server under --cpu-prof, writing the profile here. */
  serverCpuProf?: string;
  /** Pin the server to CPU 0 and this process (the load generator) to CPU 1, so they don't take each other's. */
  pin?: boolean;
}

export interface GeneratorLoad {
  /** This process's CPU over the window, in % of one core. */
  cpuPercent: number;
  loopDelayP99Ms: number;
  saturated: boolean;
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
  generator: GeneratorLoad;
  /** The server's established HTTP connections at the end of the window. */
  connections: number;
  /** The server's CPU in the window by thread (`main`, others by name). */
  cpuMsByThread: Record<string, number>;
  /** The window on the monotonic clock, µs (to cut a CPU profile). */
  windowUs: [number, number];
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

/**
 * CPU ms of a process's main thread (`main`: JavaScript, and the kernel's work for its syscalls) and of its other
 * threads by name (V8's GC helpers, libuv's pool). A thread that ended meanwhile is missing.
 */
function threadCpuMs(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = tid === String(pid) ? 'main' : readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const ms = parseStat(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')).cpuMs;
      out.set(name, (out.get(name) ?? 0) + ms);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

function threadCpuDelta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, ms] of after) {
    const d = Math.round(ms - (before.get(name) ?? 0));
    if (d > 0) out[name] = d;
  }
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);

/** Established TCP connections on 127.0.0.1:`port`, server side (keep-alive check: about one per viewer). */
function establishedOn(port: number): number {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let n = 0;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local && f[3] === TCP_ESTABLISHED) n++;
  }
  return n;
}

/** The main thread's profile of process `pid` in `dir` (`CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile`). */
function mainThreadProfile(dir: string, pid: number): string | undefined {
  const name = readdirSync(dir).find(
    (f) => f.endsWith('.cpuprofile') && f.split('.')[3] === String(pid) && f.split('.')[4] === '0',
  );
  return name === undefined ? undefined : join(dir, name);
}

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

export async function runHlsBench(o: Options, log: (line: string) => void = console.error) {
  const [rtmpPort, httpPort] = [await freePort(), await freePort()];
  const profileDir = o.serverCpuProf ? resolve(o.serverCpuProf) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const pin = o.pin === true && cpus().length >= 2 && existsSync(TASKSET);
  if (pin) execFileSync(TASKSET, ['-a', '-p', '-c', GENERATOR_CPU, String(process.pid)], { stdio: 'ignore' });
  const nodeArgs = [
    ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
    '--conditions=source',
    '--import',
    'tsx',
    'services/server/src/cli.ts',
    'standalone',
  ];
  // taskset execs node: the child's pid is the server's.
  const server = spawn(
    pin ? TASKSET : process.execPath,
    pin ? ['-c', SERVER_CPU, process.execPath, ...nodeArgs] : nodeArgs,
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
        HLS_LINGER_MS: String(SERVER_HLS_LINGER_MS),
      },
    },
  );
  let stderr = '';
  server.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const pid = server.pid!;
  const exited = new Promise<void>((r) => server.once('exit', () => r()));
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
      const loop = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
      loop.enable();
      const ownCpu0 = process.cpuUsage();
      const u0 = monotonicUs();
      const c0 = cpuMsOf(pid);
      const th0 = threadCpuMs(pid);
      const k0 = count();
      const t0 = performance.now();
      measuredFrom = t0;
      await sleep(o.seconds * 1000);
      const seconds = (performance.now() - t0) / 1000;
      const cpuMs = cpuMsOf(pid) - c0;
      const cpuMsByThread = threadCpuDelta(th0, threadCpuMs(pid));
      const k1 = count();
      const u1 = monotonicUs();
      const ownCpu = process.cpuUsage(ownCpu0);
      loop.disable();
      const connections = establishedOn(httpPort);
      for (const s of stops) s();
      const vs = Math.max(1, n) * seconds;
      const cpuPercent = (ownCpu.user + ownCpu.system) / 1000 / (seconds * 10);
      const loopDelayP99Ms = loop.percentile(99) / 1e6;
      return {
        name,
        viewers: n,
        seconds,
        cpuMs,
        cpuMsPerViewerSecond: 0,
        requestsPerViewerSecond: (k1.requests - k0.requests) / vs,
        bytesPerViewerSecond: (k1.bytes - k0.bytes) / vs,
        errors: k1.errors,
        generator: {
          cpuPercent: Math.round(cpuPercent),
          loopDelayP99Ms: Number(loopDelayP99Ms.toFixed(1)),
          saturated: cpuPercent >= GENERATOR_SATURATED_CPU_PERCENT || loopDelayP99Ms >= GENERATOR_SATURATED_LOOP_P99_MS,
        },
        connections,
        cpuMsByThread,
        windowUs: [u0, u1],
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
    const hlsMeasuredFrom = measuredFrom;
    // The packager lingers out (HLS_LINGER_MS) before the trailing baseline.
    await sleep(SERVER_HLS_LINGER_MS + SETTLE_MS);
    const trailing = await measure(
      'baseline after (publisher only)',
      0,
      () => [],
      () => ({ requests: 0, bytes: 0, errors: 0 }),
    );
    const baseRate = (baseline.cpuMs / baseline.seconds + trailing.cpuMs / trailing.seconds) / 2;
    for (const p of [flvPhase, hlsPhase]) p.cpuMsPerViewerSecond = (p.cpuMs / p.seconds - baseRate) / p.viewers;
    const hlsMinusFlv = (hlsPhase.cpuMs / hlsPhase.seconds - flvPhase.cpuMs / flvPhase.seconds) / o.viewers;

    // Latency: every part received in the measured window (not the joins' catch-up), against the publisher's write
    // of its first video frame.
    const g2g: number[] = [];
    const pdtError: number[] = [];
    for (const v of hls) {
      for (const p of v.stats.parts) {
        if (p.videoMs === undefined || p.receivedAt < hlsMeasuredFrom) continue;
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
    for (const p of [flvPhase, hlsPhase])
      if (p.generator.saturated)
        log(`!!! LOAD GENERATOR SATURATED in ${p.name}: its numbers are partly the generator's`);
    const report = {
      options: o,
      machine: { cores: cpus().length, loadavg: loadavg().map((x) => Number(x.toFixed(2))), pinned: pin },
      phases: [baseline, flvPhase, hlsPhase, trailing].map((p) => ({
        ...p,
        cpuMs: Math.round(p.cpuMs),
        cpuMsPerViewerSecond: Number(p.cpuMsPerViewerSecond.toFixed(3)),
        requestsPerViewerSecond: Number(p.requestsPerViewerSecond.toFixed(2)),
        bytesPerViewerSecond: Math.round(p.bytesPerViewerSecond),
        seconds: Number(p.seconds.toFixed(1)),
      })),
      hlsVsFlvCpu: Number((hlsPhase.cpuMsPerViewerSecond / flvPhase.cpuMsPerViewerSecond).toFixed(2)),
      /** Baseline-free: (HLS phase CPU rate - FLV phase CPU rate) / viewers. Negative: HLS costs less. */
      hlsMinusFlvCpuMsPerViewerSecond: Number(hlsMinusFlv.toFixed(3)),
      latency: {
        parts: g2g.length,
        publishToPartAvailableMs: { p50: pct(g2g, 50), p99: pct(g2g, 99) },
        pdtMinusPublisherClockMs: { p50: pct(pdtError, 50), p99: pct(pdtError, 99) },
      },
      hlsWindowBytes: windowBytes,
      hlsClientConnectionsPerViewer: Number((hls.reduce((n, v) => n + v.stats.connections, 0) / o.viewers).toFixed(2)),
      serverProfile: undefined as undefined | { file: string; flv: SelfTimeEntry[]; hls: SelfTimeEntry[] },
    };
    if (profileDir) {
      publisher.stop();
      server.kill('SIGTERM');
      await Promise.race([exited, sleep(SERVER_EXIT_MS)]);
      const file = mainThreadProfile(profileDir, pid);
      if (file) {
        const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
        report.serverProfile = {
          file,
          flv: topSelfTime(profile, PROFILE_TOP, flvPhase.windowUs),
          hls: topSelfTime(profile, PROFILE_TOP, hlsPhase.windowUs),
        };
      } else log(`no CPU profile was written to ${profileDir}`);
    }
    return report;
  } finally {
    publisher.stop();
    server.kill('SIGTERM');
  }
}

type BenchReport = Awaited<ReturnType<typeof runHlsBench>>;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Median and min–max of one number over runs. */
function spread(xs: number[], digits = 3): { median: number; min: number; max: number } {
  const r = (v: number): number => Number(v.toFixed(digits));
  return { median: r(median(xs)), min: r(Math.min(...xs)), max: r(Math.max(...xs)) };
}

/** Medians (min–max) over runs of what the target compares. */
export function summarizeRuns(reports: BenchReport[]): object {
  const phase = (r: BenchReport, name: string) => r.phases.find((p) => p.name === name)!;
  const of = (name: string, pick: (p: ReturnType<typeof phase>) => number, digits?: number) =>
    spread(
      reports.map((r) => pick(phase(r, name))),
      digits,
    );
  return {
    runs: reports.length,
    generatorSaturatedRuns: reports.filter((r) => r.phases.some((p) => p.generator.saturated)).length,
    flvCpuMsPerViewerSecond: of('HTTP-FLV', (p) => p.cpuMsPerViewerSecond),
    hlsCpuMsPerViewerSecond: of('LL-HLS', (p) => p.cpuMsPerViewerSecond),
    hlsVsFlvCpu: spread(
      reports.map((r) => r.hlsVsFlvCpu),
      2,
    ),
    hlsMinusFlvCpuMsPerViewerSecond: spread(reports.map((r) => r.hlsMinusFlvCpuMsPerViewerSecond)),
    baselineCpuMsPerSecond: spread(
      reports.map((r) => (r.phases[0]!.cpuMs / r.phases[0]!.seconds + r.phases[3]!.cpuMs / r.phases[3]!.seconds) / 2),
      0,
    ),
    hlsRequestsPerViewerSecond: of('LL-HLS', (p) => p.requestsPerViewerSecond, 2),
    hlsConnectionsAtEnd: of('LL-HLS', (p) => p.connections, 0),
    generatorCpuPercent: {
      flv: of('HTTP-FLV', (p) => p.generator.cpuPercent, 0),
      hls: of('LL-HLS', (p) => p.generator.cpuPercent, 0),
    },
    generatorLoopDelayP99Ms: {
      flv: of('HTTP-FLV', (p) => p.generator.loopDelayP99Ms, 1),
      hls: of('LL-HLS', (p) => p.generator.loopDelayP99Ms, 1),
    },
    publishToPartP50Ms: spread(
      reports.map((r) => r.latency.publishToPartAvailableMs.p50),
      0,
    ),
    loadavg1m: reports.map((r) => r.machine.loadavg[0]),
  };
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
    .option('--runs <n>', 'repeat the whole run; report medians with min-max', '1')
    .option('--no-pin', 'do not pin the server to CPU 0 and the load generator to CPU 1')
    .option(
      '--server-cpu-prof <dir>',
      'run the server under --cpu-prof (profile written to <dir>), report top self time',
    )
    .parse();
  const a = program.opts<Record<string, string>>();
  const [width, height] = a.size!.split('x').map(Number) as [number, number];
  const reports: BenchReport[] = [];
  for (let run = 0; run < Number(a.runs); run++) {
    const report = await runHlsBench({
      viewers: Number(a.viewers),
      seconds: Number(a.seconds),
      partMs: Number(a.partMs),
      segmentMs: Number(a.segmentMs),
      width,
      height,
      videoKbps: Number(a.videoKbps),
      ...(a.serverCpuProf ? { serverCpuProf: a.serverCpuProf } : {}),
      pin: (a.pin as unknown as boolean) !== false,
    });
    console.error(
      `run ${run + 1}: HLS/FLV CPU ${report.hlsVsFlvCpu}, load average ${report.machine.loadavg.join(' ')}`,
    );
    reports.push(report);
  }
  console.log(
    JSON.stringify(reports.length === 1 ? reports[0] : { summary: summarizeRuns(reports), reports }, null, 2),
  );
  process.exit(0);
}
