/**
 * The processes of a cluster run: redis-server, nats-server (with its monitoring port) and rtmp-relay origins and
 * edges (the built CLI), each on free loopback ports, every one tracked and killed when the run ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, type WriteStream } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeHandle, Role, UsageSource } from './cluster.js';
import { UsageError } from './options.js';
import { readProc, type ProcSample } from './procinfo.js';
import { RELAY_NODE_FLAGS } from '../node-flags.js';

export type { Role } from './cluster.js';

/** The built `rtmp-relay` CLI (`npx tsc -b`). */
export const CLI = fileURLToPath(new URL('../../../services/server/dist/cli.js', import.meta.url));

/**
 * Node's arguments for a relay node (the bench's standalone node too): the shipped Node flags (as the image runs
 * it), optionally the profiler.
 */
export function relayNodeArgs(role: Role | 'standalone', id: string, cpuProfDir?: string): string[] {
  const profile = cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`, `--cpu-prof-name=${id}.cpuprofile`] : [];
  return [...profile, ...RELAY_NODE_FLAGS, CLI, role];
}

const READY_TIMEOUT_MS = 15_000;
const POLL_MS = 25;
const OUTPUT_CAP = 256 * 1024;
const KILL_AFTER_MS = 5000;
/** The machine's own services' ports: never used. */
const RESERVED = new Set([6379, 4222, 6222, 8222]);

const tracked = new Set<ChildProcess>();
const killTracked = (): void => {
  for (const c of tracked) c.kill('SIGKILL');
};
process.once('exit', killTracked);
let signalsHandled = false;
/**
 * Ctrl-C or a SIGTERM ends the run without 'exit': every node, Redis and NATS of the run outlived it. Installed at
 * the first spawn, so that importing this module (the bench does, for CLI) changes no signal handling.
 */
function killTrackedOnSignals(): void {
  if (signalsHandled) return;
  signalsHandled = true;
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      killTracked();
      process.exit(code);
    });
  }
}

export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const a = s.address();
        s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
      });
    });
    if (port > 0 && !RESERVED.has(port)) return port;
  }
}

export async function waitUntil<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs: number,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** A tracked child process with its (capped) output. */
export class Proc {
  private out = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    tracked.add(child);
    killTrackedOnSignals();
    // CLUSTER_LOAD_LOG_DIR keeps every process's whole output (the in-memory copy is capped) for reading afterwards.
    const logDir = process.env.CLUSTER_LOAD_LOG_DIR;
    let file: WriteStream | undefined;
    if (logDir) {
      mkdirSync(logDir, { recursive: true });
      file = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
    }
    const append = (d: Buffer): void => {
      file?.write(d);
      this.out += d.toString();
      if (this.out.length > OUTPUT_CAP) this.out = this.out.slice(-OUTPUT_CAP / 2);
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    this.exited = new Promise((resolve) =>
      child.on('close', (code, signal) => {
        tracked.delete(child);
        file?.end();
        resolve({ code, signal });
      }),
    );
  }

  static start(name: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv): Proc {
    return new Proc(name, spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env }));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  output(): string {
    return this.out;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child.kill(sig);
  }

  /** `sig` (default SIGTERM), SIGKILL after KILL_AFTER_MS; resolves once gone. */
  async stop(sig: NodeJS.Signals = 'SIGTERM', killAfterMs = KILL_AFTER_MS): Promise<void> {
    if (!this.running) return;
    this.child.kill(sig);
    const t = setTimeout(() => this.child.kill('SIGKILL'), killAfterMs);
    await this.exited;
    clearTimeout(t);
  }
}

/** A Redis server to talk to: loopback by port, or any host with optional credentials and database. */
export interface RedisEndpoint {
  host: string;
  port: number;
  username?: string | undefined;
  password?: string | undefined;
  db?: number | undefined;
}

/** `redis://[user:password@]host:port[/db]` (plain TCP only: the measurements speak RESP themselves). */
export function parseRedisUrl(url: string): RedisEndpoint {
  const u = new URL(url);
  if (u.protocol !== 'redis:')
    throw new UsageError(`--redis-url ${url}: only redis:// (no TLS) is supported for measurements`);
  const db = u.pathname.replace(/^\//, '');
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: Number(u.port || 6379),
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: db ? Number(db) : undefined,
  };
}

const encodeCommand = (args: string[]): string =>
  `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;

/**
 * Sends one Redis command (after AUTH / SELECT when the endpoint has them) and returns its raw reply text (enough
 * for PING, INFO, SCAN, DBSIZE). A port alone means 127.0.0.1 without credentials.
 */
export function redisCommand(target: number | RedisEndpoint, args: string[], timeoutMs = 2000): Promise<string> {
  const ep: RedisEndpoint = typeof target === 'number' ? { host: '127.0.0.1', port: target } : target;
  const prelude: string[][] = [];
  if (ep.password !== undefined) prelude.push(ep.username ? ['AUTH', ep.username, ep.password] : ['AUTH', ep.password]);
  if (ep.db !== undefined) prelude.push(['SELECT', String(ep.db)]);
  return new Promise((resolve, reject) => {
    const sock = connect(ep.port, ep.host);
    const payload = [...prelude, args].map(encodeCommand).join('');
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`redis ${args[0]}: timeout`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(payload));
    sock.on('data', (d) => {
      buf += d.toString();
      const replies = splitReplies(buf);
      if (replies.length < prelude.length + 1) return;
      clearTimeout(timer);
      sock.destroy();
      const failed = replies.slice(0, prelude.length).find((r) => r.startsWith('-'));
      if (failed) reject(new Error(`redis ${failed.trim()}`));
      else resolve(replies[prelude.length]!);
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** The whole RESP replies at the start of `buf`, in order (an incomplete last one is left out). */
function splitReplies(buf: string): string[] {
  const out: string[] = [];
  let at = 0;
  for (;;) {
    const end = replyEnd(buf, at);
    if (end < 0) return out;
    out.push(buf.slice(at, end));
    at = end;
  }
}

/** End offset of the RESP reply that starts at `start` (simple types, bulk strings, arrays), or -1 if incomplete. */
function replyEnd(buf: string, start: number): number {
  const parse = (i: number): number => {
    const eol = buf.indexOf('\r\n', i);
    if (eol < 0) return -1;
    const t = buf[i];
    const n = Number(buf.slice(i + 1, eol));
    if (t === '+' || t === '-' || t === ':') return eol + 2;
    if (t === '$') {
      if (n < 0) return eol + 2;
      const end = eol + 2 + n + 2;
      return buf.length >= end ? end : -1; // ASCII replies: byte = char offsets
    }
    if (t === '*') {
      let j = eol + 2;
      for (let k = 0; k < n; k++) {
        j = parse(j);
        if (j < 0) return -1;
      }
      return j;
    }
    return -1;
  };
  return parse(start);
}

/** `total_commands_processed` from INFO stats (NaN when Redis does not answer). */
export async function redisTotalCommands(target: number | RedisEndpoint): Promise<number> {
  const info = await redisCommand(target, ['INFO', 'stats']).catch(() => '');
  return Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? NaN);
}

/** Every key matching `match` (SCAN until the cursor comes back to 0). */
export async function redisScan(target: number | RedisEndpoint, match: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next = '0', ...batch] = bulkStrings(
      await redisCommand(target, ['SCAN', cursor, 'MATCH', match, 'COUNT', '1000']),
    );
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

/** Bulk strings of a RESP reply, in order (flattened). */
export function bulkStrings(reply: string): string[] {
  const out: string[] = [];
  const re = /\$(\d+)\r\n/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(reply))) {
    const start = m.index + m[0].length;
    out.push(reply.slice(start, start + Number(m[1])));
    re.lastIndex = start + Number(m[1]) + 2;
  }
  return out;
}

export class RedisServer {
  private proc: Proc | undefined;
  private dir = '';

  private constructor(readonly port: number) {}

  static async start(): Promise<RedisServer> {
    const r = new RedisServer(await freePort());
    await r.launch();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.proc?.pid ?? -1;
  }

  private async launch(): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), 'cluster-load-redis-'));
    this.proc = Proc.start('redis', 'redis-server', [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      this.dir,
    ]);
    const proc = this.proc;
    await waitUntil(
      'redis-server to answer PING',
      async () => {
        if (!proc.running) throw new Error(`redis-server exited: ${proc.output()}`);
        return (await redisCommand(this.port, ['PING'], 500).catch(() => '')).startsWith('+PONG');
      },
      READY_TIMEOUT_MS,
    );
  }

  async stop(): Promise<void> {
    await this.proc?.stop('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Crash and come back empty on the same port after `downMs`. */
  async restart(downMs = 0): Promise<void> {
    await this.stop();
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.launch();
  }
}

export class NatsServer {
  private proc: Proc | undefined;

  private constructor(
    readonly port: number,
    readonly monitorPort: number,
  ) {}

  static async start(): Promise<NatsServer> {
    const n = new NatsServer(await freePort(), await freePort());
    await n.launch();
    return n;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.proc?.pid ?? -1;
  }

  private async launch(): Promise<void> {
    this.proc = Proc.start('nats', 'nats-server', [
      '-a',
      '127.0.0.1',
      '-p',
      String(this.port),
      '-m',
      String(this.monitorPort),
    ]);
    const proc = this.proc;
    await waitUntil(
      'nats-server monitoring to answer',
      async () => {
        if (!proc.running) throw new Error(`nats-server exited: ${proc.output()}`);
        return (await this.monitor('healthz').catch(() => undefined)) !== undefined;
      },
      READY_TIMEOUT_MS,
    );
  }

  /** GET /<path> on the monitoring port (varz, subsz, connz, healthz) as JSON. */
  async monitor<T = Record<string, unknown>>(path: string): Promise<T> {
    const res = await fetch(`http://127.0.0.1:${this.monitorPort}/${path}`, { signal: AbortSignal.timeout(2000) });
    return (await res.json()) as T;
  }

  async stop(): Promise<void> {
    await this.proc?.stop('SIGKILL');
  }

  async restart(downMs = 0): Promise<void> {
    await this.stop();
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.launch();
  }
}

/** One rtmp-relay process; ports are read from its start line. */
export class RelayNode implements NodeHandle {
  readonly usageSource: UsageSource = 'proc';

  private constructor(
    readonly id: string,
    readonly role: Role,
    readonly proc: Proc,
    readonly rtmpPort: number,
    readonly httpPort: number,
  ) {}

  /** `cpuProfDir`: run under V8's sampling profiler, writing `<dir>/<id>.cpuprofile` when the node exits. */
  static async start(role: Role, id: string, env: Record<string, string>, cpuProfDir?: string): Promise<RelayNode> {
    const proc = Proc.start(`${role}:${id}`, process.execPath, relayNodeArgs(role, id, cpuProfDir), {
      ...process.env,
      ...env,
      NODE_ID: id,
    });
    const ports = await waitUntil(
      `${role} ${id} to start`,
      () => {
        if (!proc.running) throw new Error(`${role} ${id} exited before starting:\n${proc.output().slice(-4000)}`);
        const m = /rtmp-relay \w+: rtmp:\/\/[^:]+:(\d+)\/live\/<key>.*http:\/\/[^:]+:(\d+)\//.exec(proc.output());
        return m ? { rtmp: Number(m[1]), http: Number(m[2]) } : undefined;
      },
      READY_TIMEOUT_MS,
    );
    const node = new RelayNode(id, role, proc, ports.rtmp, ports.http);
    await waitUntil(`${id} ready`, () => node.ready(), READY_TIMEOUT_MS);
    return node;
  }

  get rtmpAddr(): string {
    return `127.0.0.1:${this.rtmpPort}`;
  }

  get publicHttp(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  get alive(): boolean {
    return this.proc.running;
  }

  url(key: string): string {
    return `rtmp://${this.rtmpAddr}/${key}`;
  }

  async usage(): Promise<ProcSample> {
    return readProc(this.proc.pid);
  }

  async ready(): Promise<boolean> {
    const res = await fetch(`http://127.0.0.1:${this.httpPort}/readyz`, { signal: AbortSignal.timeout(1000) }).catch(
      () => undefined,
    );
    await res?.body?.cancel();
    return res?.status === 200;
  }

  async json<T>(path: string): Promise<T> {
    const res = await fetch(`http://127.0.0.1:${this.httpPort}${path}`, { signal: AbortSignal.timeout(3000) });
    return (await res.json()) as T;
  }

  async metrics(): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.httpPort}/metrics`, { signal: AbortSignal.timeout(3000) });
    return res.text();
  }
}

/** Sum of the samples of `name` whose labels include `labels`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}
