#!/usr/bin/env node
/**
 * Fan-out benchmark: for each audience size N and each server, start the server pinned to one CPU, run the load
 * generator (one real-time publisher + N viewers) pinned to another, and record the server's CPU per
 * viewer-second and RSS per viewer over a steady window, delivery, TTFF, latency and failures.
 *
 *   npm run bench -- --viewers 1000,2000,3000 --seconds 15 --repeat 3 [--servers ours,ours-batch,nginx] [--quick]
 *
 * Servers: our standalone server in its default configuration (adaptive batching), with batching off
 * (WRITE_BATCH_MS=0 ADAPTIVE_BATCH_MS=0) and with a fixed window (--batch-ms, default 20), our edge role in its
 * default configuration (`ours-edge`: the publisher goes to an origin, viewers to the edge, which pulls the stream
 * once; Redis, NATS and the origin share the server's CPU: their CPU is not the edge's, only its core's), Node-Media-Server (the npm
 * package in this workspace) and nginx with the RTMP module (Debian's nginx + libnginx-mod-rtmp). Every process
 * started here is killed at the end of its run, and on SIGINT/SIGTERM.
 *
 * Each table row is the median of the valid runs of one (N, server), with the min-max beside it: a run is invalid
 * when other processes disturbed a pinned core (--max-noise) or when the load generator says it was saturated.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, cpus, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { FFMPEG_PLAYER_MODES, type FfmpegPlayerMode } from './ffmpeg-player.js';
import type { Report } from './loadgen.js';
import { isMainModule } from './main-module.js';
import { NODE_MALLOCS, nodeMallocEnv, type NodeMalloc, type NodeMallocChoice } from './node-flags.js';
import { CLI, relayNodeArgs } from './cluster-load/processes.js';
import { nmsVersion } from './nms-runner.js';
import { generateFlv, loadFlv } from './source.js';
import { clkTck } from './procstat.js';
import { fmt, jsonSafe, ratio } from './stats.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');
const NGINX = '/usr/sbin/nginx';
const NGINX_RTMP_MODULE = '/usr/lib/nginx/modules/ngx_rtmp_module.so';

export type ServerKind =
  'ours' | 'ours-off' | 'ours-batch' | 'ours-edge' | 'nms' | 'nginx' | 'ours-httpflv' | 'ours-wsflv';
/** The default set: ours by default and with batching on, against nginx-rtmp (NMS and batching off on request). */
export const ALL_SERVERS: ServerKind[] = ['ours', 'ours-batch', 'nginx'];
const RTMP_SERVERS: ServerKind[] = ['ours', 'ours-off', 'ours-batch', 'ours-edge', 'nms', 'nginx'];
/** Ours with batching off, viewers over HTTP-FLV / WebSocket-FLV (the publisher stays RTMP); on request only. */
export const FLV_SERVERS: ServerKind[] = ['ours-httpflv', 'ours-wsflv'];
const KNOWN_SERVERS: ServerKind[] = [...RTMP_SERVERS, ...FLV_SERVERS];

/** The viewers' protocol of a server kind. */
export function viewerProtocol(kind: ServerKind): 'rtmp' | 'http-flv' | 'ws-flv' {
  return kind === 'ours-httpflv' ? 'http-flv' : kind === 'ours-wsflv' ? 'ws-flv' : 'rtmp';
}

interface BenchOptions {
  viewers: number[];
  seconds: number;
  settle: number;
  warmup: number;
  ramp: number;
  servers: ServerKind[];
  batchMs: number;
  input: string | undefined;
  json: string;
  serverCpu: string;
  loadgenCpu: string;
  logLevel: string;
  keepTemp: boolean;
  repeat: number;
  retries: number;
  maxNoise: number;
  quietPercent: number;
  workers: number;
  ffmpegPlayers: number;
  ffmpegMode: FfmpegPlayerMode;
  /** Allocator our nodes run with: jemalloc as in the image, or system (asked for, or jemalloc missing: `warning`). */
  allocator: NodeMallocChoice;
}

interface RunningServer {
  kind: ServerKind;
  label: string;
  version: string;
  pid: number;
  rtmpPort: number;
  httpPort?: number;
  child: ChildProcess;
  dir: string;
  output: () => string;
  /** ours-edge: the origin's RTMP port (the publisher goes there, viewers to the edge). */
  publishPort?: number;
  /** Processes that support the server under test (ours-edge: redis-server, nats-server, the origin). */
  helpers?: ChildProcess[];
}

export interface RunResult {
  viewers: number;
  server: ServerKind;
  label: string;
  version: string;
  repeat: number;
  attempt?: number;
  /** The report's noise exceeded --max-noise: another workload shared the pinned cores. */
  noisy?: boolean;
  /** `uptime`'s 1-minute load average just before the run (other engineers' work shows here). */
  loadAverage?: number;
  /** Machine-wide busy percent (of one core) just before the run, with nothing of ours running. */
  idleBeforePercent?: number;
  /**
   * Spin-loop iterations per ms on the server's CPU just before the run. This VM's vCPUs slow down 2-3x when the
   * host is busy (and the lost time still shows up as process CPU time), so compare runs with similar speeds.
   */
  cpuSpeed?: number;
  report: Report | undefined;
  error: string | undefined;
  /** Our server's own counters after the run (drops, slow viewers), from /metrics. */
  serverMetrics?: string[];
  serverLogTail?: string;
}

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/** Kills a child's whole process group (nginx workers, taskset'd node), SIGTERM then SIGKILL. */
async function killGroup(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) {
    children.delete(child);
    return;
  }
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      try {
        child.kill(sig);
      } catch {
        /* gone */
      }
    }
  };
  signal('SIGTERM');
  const timer = setTimeout(() => signal('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
  // The group may still hold workers after the leader exited.
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    /* none left */
  }
  children.delete(child);
}

function killAllNow(): void {
  for (const c of children) {
    try {
      if (c.pid) process.kill(-c.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

function pinned(cpu: string, cmd: string, args: string[]): [string, string[]] {
  return cpu && existsSync('/usr/bin/taskset') ? ['taskset', ['-c', cpu, cmd, ...args]] : [cmd, args];
}

function startChild(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
): { child: ChildProcess; output: () => string } {
  const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  children.add(child);
  let out = '';
  const keep = (d: Buffer): void => {
    out += d.toString();
    if (out.length > 64 * 1024) out = out.slice(-32 * 1024);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.on('exit', () => children.delete(child));
  return { child, output: () => out };
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs = 15_000): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`server exited (${child.exitCode ?? child.signalCode}) before listening`);
    const ok = await new Promise<boolean>((r) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} not listening after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function nginxVersion(): string {
  const r = spawnSync(NGINX, ['-v'], { encoding: 'utf8' });
  const v = /nginx\/(\S+)/.exec(`${r.stderr}${r.stdout}`)?.[1] ?? '?';
  const d = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'libnginx-mod-rtmp'], { encoding: 'utf8' });
  const m = d.status === 0 ? d.stdout.trim().replace(/^\d+:/, '').replace(/\+.*$/, '') : '?';
  return `nginx ${v} + nginx-rtmp-module ${m}`;
}

async function startServer(kind: ServerKind, o: BenchOptions): Promise<RunningServer> {
  const rtmpPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), `bench-${kind}-`));
  tempDirs.add(dir);
  if (kind === 'ours-edge') return startEdgeCluster(rtmpPort, dir, o);
  if (kind === 'ours' || kind === 'ours-off' || kind === 'ours-batch' || FLV_SERVERS.includes(kind)) {
    if (!existsSync(CLI)) throw new Error(`${CLI} not found: run npm run build first`);
    const httpPort = await freePort();
    const batch = kind === 'ours-batch' ? o.batchMs : 0;
    // 'ours' runs the defaults (adaptive batching); the others set batching explicitly.
    const env = ourEnv(rtmpPort, httpPort, o);
    if (kind === 'ours-batch') env['WRITE_BATCH_MS'] = String(batch);
    else if (kind !== 'ours') {
      env['WRITE_BATCH_MS'] = '0';
      env['ADAPTIVE_BATCH_MS'] = '0';
    }
    const [cmd, args] = pinned(o.serverCpu, process.execPath, relayNodeArgs('standalone', 'bench'));
    const { child, output } = startChild(cmd, args, env, repoRoot);
    await waitForPort(rtmpPort, child);
    return {
      kind,
      label:
        kind === 'ours'
          ? 'ours default (adaptive)'
          : `ours batch=${batch}ms${kind === 'ours-httpflv' ? ' http-flv' : kind === 'ours-wsflv' ? ' ws-flv' : ''}`,
      version: 'standalone',
      pid: child.pid!,
      rtmpPort,
      httpPort,
      child,
      dir,
      output,
    };
  }
  if (kind === 'nms') {
    const runner = join(here, 'nms-runner.js');
    const [cmd, args] = pinned(o.serverCpu, process.execPath, [
      runner,
      String(rtmpPort),
      dir,
      o.logLevel === 'silent' ? 'error' : o.logLevel,
    ]);
    const { child, output } = startChild(cmd, args, process.env, dir);
    await waitForPort(rtmpPort, child);
    const version = nmsVersion();
    return {
      kind,
      label: `NMS ${version}`,
      version: `node-media-server ${version}`,
      pid: child.pid!,
      rtmpPort,
      child,
      dir,
      output,
    };
  }
  if (!existsSync(NGINX) || !existsSync(NGINX_RTMP_MODULE))
    throw new Error(`${NGINX} or ${NGINX_RTMP_MODULE} missing (apt-get install nginx libnginx-mod-rtmp)`);
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    [
      `load_module ${NGINX_RTMP_MODULE};`,
      'worker_processes 1;',
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'error.log')} warn;`,
      'worker_rlimit_nofile 20000;',
      'events { worker_connections 10000; }',
      'rtmp {',
      '  server {',
      `    listen 127.0.0.1:${rtmpPort};`,
      '    chunk_size 4096;',
      '    application live { live on; }',
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  const [cmd, args] = pinned(o.serverCpu, NGINX, ['-p', dir, '-c', conf, '-g', 'daemon off;']);
  const { child, output } = startChild(cmd, args, process.env, dir);
  await waitForPort(rtmpPort, child);
  const version = nginxVersion();
  return { kind, label: 'nginx-rtmp', version, pid: child.pid!, rtmpPort, child, dir, output };
}

/** Env of our node under the bench: loopback, given ports, the bench's log level, no per-IP cap. */
function ourEnv(rtmpPort: number, httpPort: number, o: BenchOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RTMP_HOST: '127.0.0.1',
    RTMP_PORT: String(rtmpPort),
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: String(httpPort),
    LOG_LEVEL: o.logLevel,
    // Every viewer comes from 127.0.0.1: the per-IP connection cap (a defence, 256) would refuse the audience.
    MAX_CONNECTIONS_PER_IP: '0',
    ...o.allocator.env,
  };
  delete env['WRITE_BATCH_MS'];
  delete env['ADAPTIVE_BATCH_MS'];
  return env;
}

/**
 * The edge role in its default configuration: the edge under test on the server CPU, with redis-server, nats-server
 * and an origin beside it (together they carry one stream in and one pull out: a few percent of that core, reported
 * as its noise; on the generator's core they would count against the generator's noise budget instead).
 * The publisher publishes to the origin; viewers play from the edge, whose first viewer starts its one pull.
 */
async function startEdgeCluster(edgePort: number, dir: string, o: BenchOptions): Promise<RunningServer> {
  if (!existsSync(CLI)) throw new Error(`${CLI} not found: run npm run build first`);
  const [redisPort, natsPort, originPort, originHttp, edgeHttp] = (await Promise.all(
    Array.from({ length: 5 }, () => freePort()),
  )) as [number, number, number, number, number];
  const helpers: ChildProcess[] = [];
  const redis = startChild(
    ...pinned(o.serverCpu, 'redis-server', [
      '--port',
      String(redisPort),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
    ]),
    process.env,
    dir,
  );
  helpers.push(redis.child);
  const nats = startChild(
    ...pinned(o.serverCpu, 'nats-server', ['-a', '127.0.0.1', '-p', String(natsPort)]),
    process.env,
    dir,
  );
  helpers.push(nats.child);
  await waitForPort(redisPort, redis.child);
  await waitForPort(natsPort, nats.child);
  const cluster = {
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    NATS_URL: `nats://127.0.0.1:${natsPort}`,
    ADVERTISE_HOST: '127.0.0.1',
  };
  const origin = startChild(
    ...pinned(o.serverCpu, process.execPath, relayNodeArgs('origin', 'bench-origin')),
    { ...ourEnv(originPort, originHttp, o), ...cluster, NODE_ID: 'bench-origin' },
    repoRoot,
  );
  helpers.push(origin.child);
  await waitForPort(originPort, origin.child);
  const edge = startChild(
    ...pinned(o.serverCpu, process.execPath, relayNodeArgs('edge', 'bench-edge')),
    { ...ourEnv(edgePort, edgeHttp, o), ...cluster, NODE_ID: 'bench-edge' },
    repoRoot,
  );
  try {
    await waitForPort(edgePort, edge.child);
  } catch (err) {
    for (const h of helpers) await killGroup(h);
    throw err;
  }
  return {
    kind: 'ours-edge',
    label: 'ours edge (default, pulling from an origin)',
    version: 'edge',
    pid: edge.child.pid!,
    rtmpPort: edgePort,
    httpPort: edgeHttp,
    publishPort: originPort,
    helpers,
    child: edge.child,
    dir,
    output: () => `${edge.output()}\n--- origin ---\n${origin.output()}`,
  };
}

async function scrapeOurMetrics(httpPort: number): Promise<string[]> {
  try {
    const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`, { signal: AbortSignal.timeout(3000) });
    const text = await res.text();
    return text
      .split('\n')
      .filter(
        (l) => !l.startsWith('#') && /drop|slow|rejected|error|bytes_out|viewers|pull/i.test(l) && !/ 0$/.test(l),
      );
  } catch (err) {
    return [`metrics unavailable: ${(err as Error).message}`];
  }
}

async function runLoadgen(
  server: RunningServer,
  n: number,
  o: BenchOptions,
  input: string,
  tag: string,
): Promise<Report> {
  const out = join(server.dir, `report-${n}.json`);
  const loadgen = join(here, 'loadgen.js');
  const duration = o.settle + o.seconds;
  const lgArgs = [
    loadgen,
    '--url',
    `rtmp://127.0.0.1:${server.rtmpPort}/live/bench`,
    ...(server.publishPort ? ['--publish-url', `rtmp://127.0.0.1:${server.publishPort}/live/bench`] : []),
    '--viewers',
    String(n),
    '--ramp',
    String(o.ramp),
    '--duration',
    String(duration),
    '--settle',
    String(o.settle),
    '--warmup',
    String(o.warmup),
    '--input',
    input,
    '--server-pid',
    String(server.pid),
    ...(o.serverCpu && /^\d+$/.test(o.serverCpu) ? ['--server-core', o.serverCpu] : []),
    ...(o.loadgenCpu && /^\d+$/.test(o.loadgenCpu) ? ['--loadgen-core', o.loadgenCpu] : []),
    ...(o.workers > 0 ? ['--workers', String(o.workers)] : []),
    ...(o.ffmpegPlayers > 0 && viewerProtocol(server.kind) === 'rtmp'
      ? ['--ffmpeg-players', String(o.ffmpegPlayers), '--ffmpeg-mode', o.ffmpegMode]
      : []),
    ...(viewerProtocol(server.kind) !== 'rtmp'
      ? ['--protocol', viewerProtocol(server.kind), '--http-url', `http://127.0.0.1:${server.httpPort}`]
      : []),
    '--json',
    out,
  ];
  const [cmd, args] = pinned(o.loadgenCpu, process.execPath, lgArgs);
  const { child } = startChild(cmd, args, process.env, repoRoot);
  child.stderr?.on('data', (d: Buffer) => {
    for (const line of d.toString().split('\n')) if (line.trim()) process.stderr.write(`  ${tag} ${line}\n`);
  });
  const limitMs = (o.warmup + n / o.ramp + 10 + duration + 90) * 1000;
  const timer = setTimeout(() => void killGroup(child, 2000), limitMs);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearTimeout(timer);
  if (!existsSync(out)) throw new Error(`load generator exited ${code} without a report`);
  return JSON.parse(readFileSync(out, 'utf8')) as Report;
}

function machine(): Record<string, unknown> {
  const c = cpus();
  return {
    cpus: availableParallelism(),
    cpuModel: c[0]?.model ?? '?',
    kernel: release(),
    node: process.version,
  };
}

const SPIN = `const t=performance.now();let n=0,x=0;while(performance.now()-t<300){for(let i=0;i<1e5;i++)x+=i%7;n++}console.log(n*1e5/300)`;

/** Spin-loop speed (iterations per ms) on one CPU: a gauge of how much of the vCPU the host is giving us. */
export function calibrate(cpu: string): number {
  const [cmd, args] = pinned(cpu, process.execPath, ['-e', SPIN]);
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  return Math.round(Number(r.stdout.trim()) || NaN); // iterations per ms
}

/** A run counts when it measured the server, nothing else disturbed it, and the load generator kept up. */
export function isValid(r: RunResult): boolean {
  const rep = r.report;
  return !!rep?.server && !r.noisy && !rep.loadgen.saturated && !rep.aborted;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** Median (mean of the two middle values for an even count), min and max of the finite values. */
export function spread(values: number[]): Spread {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const n = v.length;
  if (n === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const mid = n >> 1;
  return { median: n % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2, min: v[0]!, max: v[n - 1]!, n };
}

/**
 * The run that stands for a (N, server) row beside the medians: the valid run with the median server CPU (the lower
 * of the two middle ones for an even count). Without a valid run, the first run (the row then says so).
 */
export function medianRun(runs: RunResult[]): RunResult | undefined {
  const ok = runs
    .filter(isValid)
    .sort((a, b) => a.report!.server!.cpuMsPerViewerSecond - b.report!.server!.cpuMsPerViewerSecond);
  return ok.length ? ok[(ok.length - 1) >> 1] : runs[0];
}

const fmtSpread = (s: Spread, digits: number): string =>
  s.n === 0
    ? '-'
    : s.n === 1
      ? fmt(s.median, digits)
      : `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;

/** One markdown table per N: per server, medians of the valid runs with their min–max, and ratios against nginx-rtmp. */
export function formatTable(n: number, all: RunResult[]): string {
  const kinds = [...new Set(all.filter((r) => r.viewers === n).map((r) => r.server))];
  const runsOf = (k: ServerKind): RunResult[] => all.filter((r) => r.viewers === n && r.server === k);
  const validOf = (k: ServerKind): RunResult[] => runsOf(k).filter(isValid);
  const cpuOf = (k: ServerKind): Spread => spread(validOf(k).map((r) => r.report!.server!.cpuMsPerViewerSecond));
  // Without a valid nginx run, the ratio falls back (marked †) to nginx runs that only the generator's saturation made
  // invalid, with full delivery and no failure: the generator's lag stays in the kernel's receive queues
  // (socketQueues), so nginx's writes, and its CPU, are its own; its latency and TTFF are not.
  const serverOnlyValid = (r: RunResult): boolean =>
    !r.noisy &&
    !!r.report?.server &&
    !r.report.aborted &&
    r.report.viewers.failuresTotal === 0 &&
    r.report.delivery.ratio >= 0.995;
  const nginxValidCpu = kinds.includes('nginx') ? cpuOf('nginx').median : NaN;
  const nginxFallback = Number.isNaN(nginxValidCpu)
    ? spread(
        runsOf('nginx')
          .filter(serverOnlyValid)
          .map((r) => r.report!.server!.cpuMsPerViewerSecond),
      )
    : undefined;
  const nginxCpu = nginxFallback ? nginxFallback.median : nginxValidCpu;
  const dagger = nginxFallback && nginxFallback.n > 0 ? '†' : '';
  const head = [
    'server',
    'valid runs',
    'up',
    'failures',
    'delivered %',
    'stalls',
    'CPU ms/viewer-s, median (min–max)',
    'x nginx',
    'server CPU %',
    'core ms/viewer-s',
    'RSS KiB/viewer (MiB before the viewers → end)',
    'TTFF p50/p99 ms',
    'latency p99 ms, median (min–max)',
    'latency p50/p95 ms',
    'keyframe latency p50/p99 ms',
    'FFmpeg cross-check: video frames %, latency p50/p99 ms',
    'generator CPU % / loop delay p99 ms',
    'load avg',
  ];
  const body = kinds.map((k) => {
    const runs = runsOf(k);
    const valid = validOf(k);
    const r = medianRun(runs);
    const rep = r?.report;
    const label = r?.label ?? k;
    const invalid = runs.filter((x) => !isValid(x));
    const validCell = `${valid.length}/${runs.length}${invalid.length ? ` (${invalid.map(whyInvalid).join(', ')})` : ''}`;
    if (!rep) return [label, validCell, `ERROR: ${r?.error ?? '?'}`];
    const cpu = cpuOf(k);
    const s = rep.server;
    const vals = (f: (x: Report) => number): Spread => spread(valid.map((x) => f(x.report!)));
    const deliv = vals((x) => x.delivery.ratio * 100);
    const cc = rep.crossCheck;
    return [
      label,
      validCell,
      fmtSpread(
        vals((x) => x.viewers.upAtWindowStart),
        0,
      ),
      fmtSpread(
        vals((x) => x.viewers.failuresTotal),
        0,
      ),
      deliv.n ? `${fmt(deliv.median, 2)}${deliv.n > 1 ? ` (min ${fmt(deliv.min, 2)})` : ''}` : '-',
      fmtSpread(
        vals((x) => x.stalls.inWindow),
        0,
      ),
      valid.length ? fmtSpread(cpu, 3) : `${fmt(s?.cpuMsPerViewerSecond, 3)} (invalid)`,
      k === 'nginx' ? '1' : `${fmt(ratio(cpu.median, nginxCpu), 2)}${dagger}`,
      fmt(s?.cpuPercent, 0),
      fmt(s?.core?.msPerViewerSecond, 3),
      // The node's own size beside the per-viewer figure: an allocator that holds more at idle and less under load
      // (jemalloc) lowers the per-viewer figure without lowering the node.
      s ? `${fmt(s.rssPerViewerKiB, 1)} (${fmt(s.baselineRssKiB / 1024, 0)} → ${fmt(s.endRssKiB / 1024, 0)})` : '-',
      `${fmt(rep.ttffMs.p50, 0)}/${fmt(rep.ttffMs.p99, 0)}`,
      fmtSpread(
        vals((x) => x.latencyMs.p99),
        1,
      ),
      `${fmt(rep.latencyMs.p50, 1)}/${fmt(rep.latencyMs.p95, 1)}`,
      rep.latencyKeyframeMs ? `${fmt(rep.latencyKeyframeMs.p50, 0)}/${fmt(rep.latencyKeyframeMs.p99, 0)}` : '-',
      cc
        ? cc.results
            .map(
              (c) =>
                `${fmt(c.ratio * 100, 1)}%, ${fmt(c.latencyMs.p50, 0)}/${fmt(c.latencyMs.p99, 0)}${c.error ? ' ERR' : ''}`,
            )
            .join('; ')
        : '-',
      `${fmt(rep.loadgen.cpuPercent, 0)} / ${fmt(Math.max(rep.loadgen.eventLoopDelayP99Ms, rep.loadgen.workerEventLoopDelayP99Ms ?? 0), 0)}`,
      fmt(r?.loadAverage, 2),
    ];
  });
  const line = (row: string[]): string => `| ${row.join(' | ')} |`;
  return [
    `N=${n} viewers`,
    '',
    line(head),
    `|${head.map(() => '---').join('|')}|`,
    ...body.map((row) => line([...row, ...Array<string>(Math.max(0, head.length - row.length)).fill('')])),
    ...(dagger
      ? [
          '',
          `† against nginx-rtmp's median CPU over its ${nginxFallback!.n} run(s) invalid only by the generator's saturation ` +
            `(${fmt(nginxFallback!.median, 3)} ms/viewer-s, ${fmt(nginxFallback!.min, 3)}–${fmt(nginxFallback!.max, 3)}; ` +
            'full delivery, no failure, no foreign CPU): its CPU is its own, its latency and TTFF are not.',
        ]
      : []),
  ].join('\n');
}

function whyInvalid(r: RunResult): string {
  if (r.error || !r.report) return 'error';
  if (r.report.aborted) return 'aborted';
  if (r.report.loadgen.saturated) return 'generator saturated';
  if (r.noisy) return 'disturbed';
  return 'no server sample';
}

function loadAverage(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return NaN;
  }
}

async function runOne(
  kind: ServerKind,
  n: number,
  rep: number,
  o: BenchOptions,
  input: string,
  tag: string,
  versions: Record<string, string>,
): Promise<RunResult> {
  let server: RunningServer | undefined;
  const result: RunResult = {
    viewers: n,
    server: kind,
    label: kind,
    version: '',
    repeat: rep,
    report: undefined,
    error: undefined,
  };
  try {
    result.idleBeforePercent = await waitForQuiet(o.quietPercent, 120_000);
    result.cpuSpeed = calibrate(o.serverCpu);
    result.loadAverage = loadAverage();
    server = await startServer(kind, o);
    result.label = server.label;
    result.version = server.version;
    versions[kind] = server.version;
    process.stderr.write(`${tag} ${server.label} (${server.version}) pid ${server.pid} on port ${server.rtmpPort}\n`);
    result.report = await runLoadgen(server, n, o, input, tag);
    if (server.httpPort) result.serverMetrics = await scrapeOurMetrics(server.httpPort);
  } catch (err) {
    result.error = err instanceof Error ? err.message : String(err);
    process.stderr.write(`${tag} FAILED: ${result.error}\n`);
  } finally {
    if (server) {
      await killGroup(server.child);
      for (const h of server.helpers ?? []) await killGroup(h);
      result.serverLogTail = server.output().slice(-2000);
      if (!o.keepTemp) {
        rmSync(server.dir, { recursive: true, force: true });
        tempDirs.delete(server.dir);
      }
    }
  }
  return result;
}

/** Busy percent (of one core, all cores summed) over `ms`. */
async function machineBusy(ms: number): Promise<number> {
  const read = (): number => {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!; // 'cpu  user nice system idle iowait irq softirq steal ...'
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    return (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
  };
  const a = read();
  const t = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  return ((read() - a) * (1000 / clkTck()) * 100) / (performance.now() - t);
}

/**
 * Waits until the machine is quiet (other workloads, e.g. builds and tests, below `percent` of one core) or
 * `maxMs` passed; returns the last busy reading.
 */
async function waitForQuiet(percent: number, maxMs: number): Promise<number> {
  const deadline = Date.now() + maxMs;
  let busy = await machineBusy(1000);
  let said = false;
  while (busy > percent && Date.now() < deadline) {
    if (!said) process.stderr.write(`bench: machine busy (${busy.toFixed(0)}% of a core), waiting for quiet\n`);
    said = true;
    busy = await machineBusy(2000);
  }
  return Math.round(busy);
}

async function main(argv: string[]): Promise<number> {
  const program = new Command('bench')
    .description('RTMP fan-out benchmark: ours (batching off/on), Node-Media-Server, nginx-rtmp')
    .option('--viewers <list>', 'comma-separated audience sizes', '100,500,1000,2000')
    .option('--seconds <s>', 'steady window length per run', '20')
    .option('--settle <s>', 'seconds after the ramp before the window opens', '2')
    .option('--warmup <s>', 'publisher alone before the first viewer', '3')
    .option('--ramp <n>', 'viewers opened per second', '200')
    .option('--servers <list>', `comma-separated: ${KNOWN_SERVERS.join(',')}`, ALL_SERVERS.join(','))
    .option('--batch-ms <ms>', 'WRITE_BATCH_MS of the batching-on run of our server', '20')
    .option('--input <file>', 'FLV to publish (default: generated 720p30 ~2.6 Mbit/s)')
    .option('--json <file>', 'results file (default: rtmp-bench-<time>.json in the temp dir)')
    .option('--server-cpu <cpu>', 'CPU the server is pinned to', '0')
    .option('--loadgen-cpu <cpu>', 'CPU the load generator is pinned to', '1')
    .option('--log-level <level>', 'log level of the servers (ours: LOG_LEVEL; NMS: its logger)', 'warn')
    .option('--quick', 'CI smoke: N=100 only, 5 s window')
    .option('--repeat <n>', 'runs per (N, server), interleaved; tables show medians of the valid runs', '3')
    .option('--workers <n>', "load generator's worker threads for the viewers", '0')
    .option('--ffmpeg-players <n>', 'FFmpeg players reading through the load in every RTMP run (cross-check)', '2')
    .addOption(
      new Option(
        '--ffmpeg-mode <mode>',
        "FFmpeg players demux packets (a few % of a core each) or decode every frame (~20 % each, taken from the generator's core)",
      )
        .choices(FFMPEG_PLAYER_MODES)
        .default('packets'),
    )
    .option('--retries <n>', 'run a (N, server) again when other processes disturbed it (see --max-noise)', '2')
    .option('--max-noise <percent>', 'other processes on a pinned core above this make a run disturbed', '10')
    .option('--quiet-percent <percent>', 'before each run, wait (up to 2 min) until the machine is below this', '15')
    .option('--keep-temp', 'keep the per-run temp dirs (reports, nginx.conf, logs)')
    .addOption(
      new Option('--malloc <kind>', 'allocator of our nodes (the image preloads jemalloc)')
        .choices(NODE_MALLOCS)
        .default('jemalloc'),
    )
    .parse(argv);
  const raw = program.opts<Record<string, string | boolean | undefined>>();
  const quick = raw['quick'] === true;
  const o: BenchOptions = {
    viewers: quick
      ? [100]
      : String(raw['viewers'])
          .split(',')
          .map((s) => Number(s.trim()))
          .filter((x) => Number.isInteger(x) && x > 0),
    seconds: quick ? 5 : Number(raw['seconds']),
    settle: quick ? 1 : Number(raw['settle']),
    warmup: quick ? 2.5 : Number(raw['warmup']),
    ramp: Number(raw['ramp']),
    servers: String(raw['servers'])
      .split(',')
      .map((s) => s.trim()) as ServerKind[],
    batchMs: Number(raw['batchMs']),
    input: raw['input'] as string | undefined,
    json:
      typeof raw['json'] === 'string'
        ? raw['json']
        : join(tmpdir(), `rtmp-bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
    serverCpu: String(raw['serverCpu']),
    loadgenCpu: String(raw['loadgenCpu']),
    logLevel: String(raw['logLevel']),
    keepTemp: raw['keepTemp'] === true,
    repeat: quick ? 1 : Math.max(1, Math.floor(Number(raw['repeat']))),
    retries: Math.max(0, Math.floor(Number(raw['retries']))),
    maxNoise: Number(raw['maxNoise']),
    quietPercent: Number(raw['quietPercent']),
    workers: Math.max(0, Math.floor(Number(raw['workers']))),
    ffmpegPlayers: quick ? 0 : Math.max(0, Math.floor(Number(raw['ffmpegPlayers']))),
    ffmpegMode: raw['ffmpegMode'] as FfmpegPlayerMode,
    allocator: nodeMallocEnv(raw['malloc'] as NodeMalloc, existsSync),
  };
  if (o.allocator.warning) process.stderr.write(`bench: warning: ${o.allocator.warning}\n`);
  for (const s of o.servers)
    if (!KNOWN_SERVERS.includes(s)) throw new Error(`unknown server '${s}' (${KNOWN_SERVERS.join(', ')})`);
  if (availableParallelism() < 2) {
    process.stderr.write('bench: fewer than 2 CPUs, running without pinning\n');
    o.serverCpu = '';
    o.loadgenCpu = '';
  }
  const input = o.input ?? (await generateFlv({}, (l) => process.stderr.write(`${l}\n`)));
  const src = loadFlv(input);
  const versions: Record<string, string> = {};
  const results: RunResult[] = [];
  const startedAt = new Date().toISOString();
  const write = (): void => {
    const doc = {
      startedAt,
      finishedAt: new Date().toISOString(),
      command: `bench ${argv.slice(2).join(' ')}`,
      machine: { ...machine(), serverCpu: o.serverCpu, loadgenCpu: o.loadgenCpu },
      stream: { input, mbps: (src.bytesPerSecond * 8) / 1e6, loopSeconds: src.loopMs / 1000 },
      options: o,
      versions,
      results,
    };
    writeFileSync(o.json, `${JSON.stringify(doc, jsonSafe, 2)}\n`);
  };

  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) {
      killAllNow();
      process.exit(130);
    }
    interrupted = true;
    process.stderr.write('bench: interrupted, stopping the current run\n');
    for (const c of children) void killGroup(c, 2000);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', killAllNow);

  process.stderr.write(
    `bench: ${o.viewers.join(',')} viewers x ${o.servers.join(',')}, ${o.seconds} s window, stream ${((src.bytesPerSecond * 8) / 1e6).toFixed(2)} Mbit/s, ` +
      `server on CPU ${o.serverCpu || 'any'}, load generator on CPU ${o.loadgenCpu || 'any'}, our allocator ${o.allocator.malloc}\n`,
  );
  for (const n of o.viewers) {
    for (let rep = 1; rep <= o.repeat; rep++) {
      for (const kind of o.servers) {
        for (let attempt = 1; attempt <= o.retries + 1 && !interrupted; attempt++) {
          const tag = `[${kind} N=${n}${o.repeat > 1 ? ` #${rep}` : ''}${attempt > 1 ? ` retry ${attempt - 1}` : ''}]`;
          const result = await runOne(kind, n, rep, o, input, tag, versions);
          result.attempt = attempt;
          results.push(result);
          write();
          const noise = result.report?.noise;
          const noisy = noise !== undefined && Math.max(noise.serverCorePercent, noise.loadgenCorePercent) > o.maxNoise;
          result.noisy = noisy;
          if (result.report?.loadgen.saturated)
            process.stderr.write(
              `${tag} !!! INVALID: the load generator was saturated (${result.report.loadgen.warnings.join('; ')}) !!!\n`,
            );
          if (!noisy) break;
          process.stderr.write(
            `${tag} disturbed by other processes (${noise.serverCorePercent}% of the server's core, ${noise.loadgenCorePercent}% of the load generator's)` +
              `${attempt <= o.retries ? ': running it again' : ''}\n`,
          );
        }
      }
    }
    process.stderr.write(`\n${formatTable(n, results)}\n\n`);
  }
  write();
  const versionLine = Object.entries(versions)
    .map(([k, v]) => `${k}: ${v}`)
    .join('; ');
  process.stdout.write(
    `${o.viewers.map((n) => formatTable(n, results)).join('\n\n')}\n\nversions: ${versionLine}\nresults: ${o.json}\n`,
  );
  return interrupted ? 130 : results.some((r) => r.error) ? 1 : 0;
}

if (isMainModule(import.meta.url)) {
  main(process.argv).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
      killAllNow();
      process.exit(1);
    },
  );
}
