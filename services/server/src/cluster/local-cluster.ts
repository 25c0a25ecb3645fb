import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, createWriteStream, mkdtempSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config.js';

/**
 * `rtmp-relay cluster`: a whole cluster on this machine for trying things out — redis-server and nats-server on
 * free ports, two origins and two edges (this same CLI as child processes), and the URLs to publish and play.
 * Ports: origins at RTMP_PORT and RTMP_PORT+1, edges at +10 and +11 (HTTP_PORT likewise); 0 picks free ports.
 */

interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<number | null>;
}

const SEARCH_DIRS = ['/usr/sbin', '/usr/local/sbin', '/usr/bin'];

function findBinary(name: string, debianPackage: string): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...SEARCH_DIRS];
  for (const dir of dirs) {
    const path = join(dir, name);
    try {
      accessSync(path, fsConstants.X_OK);
      return path;
    } catch {
      // keep looking
    }
  }
  throw new Error(`${name} not found on PATH: install it (Debian/Ubuntu: apt-get install ${debianPackage})`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function waitTcp(port: number, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`${what} did not start listening on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function waitReady(httpPort: number, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${httpPort}/readyz`, { signal: AbortSignal.timeout(1000) }).catch(
      () => undefined,
    );
    if (res?.status === 200) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/**
 * The Node flags this process runs with, for its nodes: `npm run cluster` starts it with the flags the image runs
 * nodes with (package.json), so the demo's nodes run like the image's. Debugger flags stay with this process (a
 * second node on the same inspector port would fail to start).
 */
function nodeFlagsForChildren(): string[] {
  return process.execArgv.filter((a) => !/^--inspect(-brk|-port|-wait)?(=|$)/.test(a));
}

export async function runLocalCluster(
  config: Config,
  print: (line: string) => void,
): Promise<{ stop(): Promise<void>; exited: Promise<string> }> {
  const redisBin = findBinary('redis-server', 'redis-server');
  const natsBin = findBinary('nats-server', 'nats-server');
  const logDir = mkdtempSync(join(tmpdir(), 'rtmp-relay-cluster-'));
  const children: Child[] = [];
  const cli = fileURLToPath(new URL('../cli.js', import.meta.url));

  const launch = (name: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv): Child => {
    const log = createWriteStream(join(logDir, `${name}.log`));
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    proc.stdout!.pipe(log);
    proc.stderr!.pipe(log);
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const child = { name, proc, exited };
    children.push(child);
    return child;
  };

  const stop = async (): Promise<void> => {
    // Nodes first (they release leases and announce node.down), then NATS and Redis.
    const nodes = children.filter((c) => c.name !== 'redis' && c.name !== 'nats');
    const infra = children.filter((c) => c.name === 'redis' || c.name === 'nats');
    for (const group of [nodes, infra]) {
      await Promise.all(
        group.map(async (c) => {
          if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
          c.proc.kill('SIGTERM');
          const timer = setTimeout(() => c.proc.kill('SIGKILL'), config.shutdownTimeoutMs + 5000);
          await c.exited;
          clearTimeout(timer);
        }),
      );
    }
  };

  try {
    const pick = async (base: number, offset: number): Promise<number> => (base === 0 ? freePort() : base + offset);
    const redisPort = await freePort();
    const natsPort = await freePort();
    launch('redis', redisBin, ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
    launch('nats', natsBin, ['-a', '127.0.0.1', '-p', String(natsPort)]);
    await Promise.all([waitTcp(redisPort, 'redis-server', 10_000), waitTcp(natsPort, 'nats-server', 10_000)]);
    const redisUrl = `redis://127.0.0.1:${redisPort}`;
    const natsUrl = `nats://127.0.0.1:${natsPort}`;

    const plan = [
      { name: 'origin-1', role: 'origin', offset: 0 },
      { name: 'origin-2', role: 'origin', offset: 1 },
      { name: 'edge-1', role: 'edge', offset: 10 },
      { name: 'edge-2', role: 'edge', offset: 11 },
    ] as const;
    const nodes: Array<{ name: string; role: string; rtmpPort: number; httpPort: number }> = [];
    for (const p of plan) {
      const rtmpPort = await pick(config.rtmpPort, p.offset);
      const httpPort = await pick(config.httpPort, p.offset);
      launch(p.name, process.execPath, [...nodeFlagsForChildren(), cli, p.role], {
        ...process.env,
        NODE_ID: p.name,
        RTMP_HOST: '127.0.0.1',
        HTTP_HOST: '127.0.0.1',
        ADVERTISE_HOST: '127.0.0.1',
        RTMP_PORT: String(rtmpPort),
        HTTP_PORT: String(httpPort),
        REDIS_URL: redisUrl,
        NATS_URL: natsUrl,
        LOG_LEVEL: config.logLevel,
      });
      nodes.push({ name: p.name, role: p.role, rtmpPort, httpPort });
    }
    await Promise.all(nodes.map((n) => waitReady(n.httpPort, n.name, 20_000)));

    const o1 = nodes[0]!;
    const e1 = nodes[2]!;
    const e2 = nodes[3]!;
    print(`rtmp-relay cluster: up (logs in ${logDir})`);
    print(`  redis     ${redisUrl}`);
    print(`  nats      ${natsUrl}`);
    for (const n of nodes)
      print(`  ${n.name.padEnd(9)} rtmp://127.0.0.1:${n.rtmpPort}   http://127.0.0.1:${n.httpPort}`);
    print(
      `  publish:  ffmpeg -re -f lavfi -i testsrc=size=1280x720:rate=30 -c:v libx264 -preset veryfast -tune zerolatency -g 60 -f flv rtmp://127.0.0.1:${o1.rtmpPort}/live/demo`,
    );
    print(
      `  play:     ffplay rtmp://127.0.0.1:${e1.rtmpPort}/live/demo   (or rtmp://127.0.0.1:${e2.rtmpPort}/live/demo)`,
    );
    print(`  streams:  curl http://127.0.0.1:${e1.httpPort}/api/cluster/streams`);
    print('  Ctrl-C stops everything.');
  } catch (err) {
    await stop();
    throw err;
  }

  // If any child dies on its own, report it; the caller stops the rest.
  const exited = Promise.race(
    children.map((c) => c.exited.then((code) => `${c.name} exited (code ${code}); its log is in ${logDir}`)),
  );
  return { stop, exited };
}
