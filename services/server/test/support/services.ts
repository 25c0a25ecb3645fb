/**
 * Real backing services for tests (never mocks): a throwaway redis-server or nats-server per call, each on its own
 * free loopback port, so tests never share state with the machine's own services on 6379/4222.
 *
 * - Ports: bind port 0 on 127.0.0.1, read the port, close; if the server then fails with "address in use" (someone
 *   grabbed the port in between), pick another port and try again.
 * - Readiness: by talking to the server (Redis: PING -> +PONG; NATS: the server's INFO line), bounded in time; a
 *   failure names the command line and the tail of the process's output.
 * - Every process is tracked; `stopAllServices()` (call it from after()) SIGKILLs all of them, and a process 'exit'
 *   hook does the same if a test run dies without it.
 * - `restart()` brings the server back on the same port with empty data (Redis runs with no persistence, in a fresh
 *   temporary --dir), to simulate a crash-and-restart of an in-memory Redis or a NATS server.
 *
 * One helper, two backends (container-runtime.ts decides once per test process): where a container runtime answers
 * (a laptop with Docker, the public CI) Redis and NATS run as containers through testcontainers
 * (container-services.ts: @testcontainers/redis, a NATS container with JetStream); elsewhere (the project's own
 * machines, which have no container engine) as the local processes below. Calls whose options name files on this
 * machine (TLS certificates, a NATS config file) always use local processes. RTMP_RELAY_TEST_SERVICES=processes or
 * =containers forces one backend.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { basename, delimiter, join } from 'node:path';
import { servicesMode } from './container-runtime.js';
import { startNatsContainer, startRedisContainer, stopAllContainers } from './container-services.js';

export interface ServiceHandle {
  /** redis://127.0.0.1:<port> (rediss:// with TLS) or nats://127.0.0.1:<port>; never with credentials */
  readonly url: string;
  readonly port: number;
  /** Graceful stop (SIGTERM, then SIGKILL after 5 s). Idempotent. */
  stop(): Promise<void>;
  /** Crash: SIGKILL, resolves once the process is gone. Idempotent. */
  kill(): Promise<void>;
  /** Stops the server if it is running and starts a fresh one on the same port, with empty data. */
  restart(): Promise<void>;
}

/** Ports the machine's own services use: never handed to a test server. */
const RESERVED_PORTS = new Set([6379, 4222, 6222, 8222]);
const READY_TIMEOUT_MS = 10_000;
const SPAWN_ATTEMPTS = 5;
const OUTPUT_CAP = 16 * 1024;

interface ServerSpec {
  /** Binary and the Debian package that provides it. */
  bin: string;
  debianPackage: string;
  scheme: string;
  args(port: number, dir: string): string[];
  /**
   * Resolves once the server answers on `port` and proves it is the instance started with `dir` (so a server that
   * grabbed the port in between is never mistaken for ours); rejects otherwise.
   */
  probe(port: number, dir: string): Promise<void>;
  /** True if the output says the port was already taken. */
  portInUse(output: string): boolean;
}

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<void>;
}

const running = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL');
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
}

function findBinary(bin: string, debianPackage: string): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const path = join(dir, bin);
    try {
      accessSync(path, fsConstants.X_OK);
      return path;
    } catch {
      // keep looking
    }
  }
  throw new Error(
    `${bin} not found on PATH or in /usr/sbin: install the Debian package "${debianPackage}" (apt-get install ${debianPackage})`,
  );
}

/** A port that was free on 127.0.0.1 a moment ago (the kernel's choice), never one of the standard ports. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.unref();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        const p = typeof address === 'object' && address ? address.port : 0;
        server.close(() => resolve(p));
      });
    });
    if (port > 0 && !RESERVED_PORTS.has(port)) return port;
  }
}

function spawnServer(path: string, args: string[]): Proc {
  const child = spawn(path, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  const append = (d: Buffer) => {
    output += d.toString();
    if (output.length > OUTPUT_CAP) output = output.slice(-OUTPUT_CAP);
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const exited = new Promise<void>((resolve) => {
    child.once('error', (err) => {
      output += `\nspawn error: ${String(err)}`;
    });
    child.once('close', () => {
      running.delete(child);
      resolve();
    });
  });
  return { child, output: () => output, exited };
}

function isAlive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

async function killProc(proc: Proc, signal: NodeJS.Signals): Promise<void> {
  if (isAlive(proc.child)) proc.child.kill(signal);
  const escalate = signal === 'SIGKILL' ? undefined : setTimeout(() => proc.child.kill('SIGKILL'), 5000);
  await proc.exited;
  if (escalate) clearTimeout(escalate);
}

/**
 * Connects to 127.0.0.1:port, sends `send` (if any) and resolves with what arrived once `complete(received)` holds,
 * bounded by `timeoutMs`.
 */
function talk(
  port: number,
  send: string | undefined,
  complete: (received: string) => boolean,
  timeoutMs: number,
  tlsCa?: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket: Socket =
      tlsCa === undefined ? connect({ host: '127.0.0.1', port }) : tlsConnect({ host: '127.0.0.1', port, ca: tlsCa });
    let received = '';
    let settled = false;
    const finish = (err: Error | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(received);
    };
    const timer = setTimeout(
      () => finish(new Error(`no complete answer on port ${port} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.once(tlsCa === undefined ? 'connect' : 'secureConnect', () => {
      if (send !== undefined) socket.write(send);
    });
    socket.on('data', (d: Buffer) => {
      received += d.toString();
      if (complete(received)) finish(undefined);
    });
    socket.once('error', (err) => finish(err));
    socket.once('close', () => finish(new Error(`connection to port ${port} closed before a complete answer`)));
  });
}

/** Starts `spec` on `port` and waits until it answers; on failure the process is killed and the error explains. */
async function startOnPort(spec: ServerSpec, path: string, port: number, dir: string): Promise<Proc> {
  const args = spec.args(port, dir);
  const proc = spawnServer(path, args);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError: unknown;
  for (;;) {
    if (!isAlive(proc.child)) break;
    try {
      await spec.probe(port, dir);
      return proc;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) break;
    await Promise.race([new Promise((r) => setTimeout(r, 25)), proc.exited]);
  }
  const alive = isAlive(proc.child);
  await killProc(proc, 'SIGKILL');
  const why = alive
    ? `not ready after ${READY_TIMEOUT_MS} ms (last probe: ${String(lastError)})`
    : `exited (code ${proc.child.exitCode}, signal ${proc.child.signalCode})`;
  const err = new Error(`${spec.bin} ${args.join(' ')}: ${why}\n--- output ---\n${proc.output().trim()}`);
  (err as Error & { portInUse?: boolean }).portInUse = spec.portInUse(proc.output());
  throw err;
}

async function startService(spec: ServerSpec): Promise<ServiceHandle> {
  const path = findBinary(spec.bin, spec.debianPackage);
  installExitHook();
  const newDir = () => {
    const dir = mkdtempSync(join(tmpdir(), `${spec.bin}-test-`));
    tempDirs.add(dir);
    return dir;
  };
  const dropDir = (dir: string) => {
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  };

  let port = 0;
  let dir = newDir();
  let proc: Proc | undefined;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      proc = await startOnPort(spec, path, port, dir);
      break;
    } catch (err) {
      if (!(err as { portInUse?: boolean }).portInUse || attempt >= SPAWN_ATTEMPTS) {
        dropDir(dir);
        throw err;
      }
    }
  }

  const halt = async (signal: NodeJS.Signals) => {
    if (proc) await killProc(proc, signal);
  };
  return {
    url: `${spec.scheme}://127.0.0.1:${port}`,
    port,
    stop: async () => {
      await halt('SIGTERM');
      dropDir(dir);
    },
    kill: () => halt('SIGKILL'),
    restart: async () => {
      await halt('SIGTERM');
      dropDir(dir);
      dir = newDir();
      // Same port is the point of restart(): if someone took it meanwhile, retry briefly, then give up.
      for (let attempt = 1; ; attempt++) {
        try {
          proc = await startOnPort(spec, path, port, dir);
          return;
        } catch (err) {
          if (!(err as { portInUse?: boolean }).portInUse || attempt >= SPAWN_ATTEMPTS) throw err;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    },
  };
}

/** RESP encoding of one command (arguments may contain spaces). */
function resp(...args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

/** Extra settings of a test redis-server. */
export interface RedisServiceOptions {
  /** Server arguments after ours, e.g. ['--requirepass', 's3cret'] or ['--user', 'app', 'on', '>pw', '~*', '+@all']. */
  args?: string[];
  /** Credentials the readiness probe sends (AUTH [username] password) when `args` require them. */
  auth?: { username?: string; password: string };
  /** TLS only (no plain port): PEM files; the probe trusts `caFile`, clients are not asked for certificates. */
  tls?: { certFile: string; keyFile: string; caFile: string };
}

function redisSpec(opts: RedisServiceOptions = {}): ServerSpec {
  const { auth, tls } = opts;
  const caPem = tls ? readFileSync(tls.caFile, 'utf8') : undefined;
  return {
    bin: 'redis-server',
    debianPackage: 'redis-server',
    scheme: tls ? 'rediss' : 'redis',
    // --dir: a fresh empty directory, so no stray dump.rdb is ever loaded and nothing is written elsewhere; it also
    // identifies the instance (CONFIG GET dir) during the readiness probe.
    args: (port, dir) => [
      ...(tls
        ? [
            '--port',
            '0',
            '--tls-port',
            String(port),
            '--tls-cert-file',
            tls.certFile,
            '--tls-key-file',
            tls.keyFile,
            '--tls-ca-cert-file',
            tls.caFile,
            '--tls-auth-clients',
            'no',
          ]
        : ['--port', String(port)]),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      ...(opts.args ?? []),
    ],
    probe: async (port, dir) => {
      const login = auth ? resp('AUTH', ...(auth.username ? [auth.username] : []), auth.password) : '';
      // After a successful AUTH (+OK), the CONFIG reply: an error line, or *2 $3 dir $<n> <path> (five lines).
      const reply = (r: string) => (auth && r.startsWith('+OK\r\n') ? r.slice(5) : r);
      const answer = reply(
        await talk(
          port,
          `${login}${resp('CONFIG', 'GET', 'dir')}`,
          (r) => {
            const rest = reply(r);
            return (rest.startsWith('-') && rest.includes('\r\n')) || rest.split('\r\n').length > 5;
          },
          1000,
          caPem,
        ),
      );
      if (!answer.startsWith('*')) throw new Error(`unexpected answer to CONFIG GET dir: ${JSON.stringify(answer)}`);
      if (!answer.includes(`\r\n${dir}\r\n`)) throw new Error(`port ${port} is answered by another redis-server`);
    },
    portInUse: (output) => /address already in use/i.test(output),
  };
}

/** Extra settings of a test nats-server. */
export interface NatsServiceOptions {
  /** Server arguments after ours, e.g. ['--user', 'u', '--pass', 'p'], ['--auth', 'token'], ['--tls', ...]. */
  args?: string[];
}

const natsSpec = (opts: NatsServiceOptions = {}): ServerSpec => ({
  bin: 'nats-server',
  debianPackage: 'nats-server',
  scheme: 'nats',
  // The server name (unique per instance) identifies it in the INFO greeting during the readiness probe.
  // The INFO greeting comes before authentication and TLS, so the probe needs neither.
  args: (port, dir) => ['-a', '127.0.0.1', '-p', String(port), '--server_name', basename(dir), ...(opts.args ?? [])],
  probe: async (port, dir) => {
    const answer = await talk(port, undefined, (r) => r.includes('\r\n'), 1000);
    if (!answer.startsWith('INFO ')) throw new Error(`unexpected NATS greeting: ${JSON.stringify(answer)}`);
    const info = JSON.parse(answer.slice(5, answer.indexOf('\r\n'))) as { server_name?: string };
    if (info.server_name !== basename(dir)) throw new Error(`port ${port} is answered by another nats-server`);
  },
  portInUse: (output) => /address already in use/i.test(output),
});

/** What a container can do for these options: a Redis password, NATS flags; undefined when only a process can. */
export type ContainerPlan = { kind: 'redis'; password?: string } | { kind: 'nats'; args: string[] };

export function redisContainerPlan(opts: RedisServiceOptions = {}): ContainerPlan | undefined {
  if (opts.tls || opts.auth?.username) return undefined;
  const args = opts.args ?? [];
  if (args.length === 0 && !opts.auth) return { kind: 'redis' };
  if (args.length === 2 && args[0] === '--requirepass' && opts.auth?.password === args[1])
    return { kind: 'redis', password: args[1] };
  return undefined;
}

/** Flags that point at files of this machine (config, TLS) keep NATS a local process. */
const NATS_FILE_FLAGS = new Set(['-c', '--config', '--tls', '--tlscert', '--tlskey', '--tlscacert', '--tlsverify']);

export function natsContainerPlan(opts: NatsServiceOptions = {}): ContainerPlan | undefined {
  const args = opts.args ?? [];
  return args.some((a) => NATS_FILE_FLAGS.has(a)) ? undefined : { kind: 'nats', args };
}

async function containersWanted(plan: ContainerPlan | undefined): Promise<boolean> {
  if (!plan) return false;
  const decision = await servicesMode();
  if (decision.mode !== 'containers') return false;
  // testcontainers finds the runtime through DOCKER_HOST when it is not at the default socket.
  process.env.DOCKER_HOST ??= decision.dockerHost;
  return true;
}

/** A private Redis (no persistence): a container or a local redis-server; `opts` adds authentication or TLS. */
export async function startRedis(opts?: RedisServiceOptions): Promise<ServiceHandle> {
  const plan = redisContainerPlan(opts);
  if (await containersWanted(plan))
    return startRedisContainer(await freePort(), plan?.kind === 'redis' ? plan.password : undefined);
  return startService(redisSpec(opts));
}

/**
 * A private NATS: a container (JetStream enabled) or a local nats-server (core NATS); `opts.args` adds auth or TLS.
 */
export async function startNats(opts?: NatsServiceOptions): Promise<ServiceHandle> {
  const plan = natsContainerPlan(opts);
  if (await containersWanted(plan)) return startNatsContainer(await freePort(), plan?.kind === 'nats' ? plan.args : []);
  return startService(natsSpec(opts));
}

/** SIGKILLs every server started by this module, removes their temporary directories and every container. */
export async function stopAllServices(): Promise<void> {
  await stopAllContainers();
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (!isAlive(child)) return resolve();
          child.once('close', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}
