/**
 * Which backing services the integration tests get: containers (testcontainers) when a container runtime answers,
 * locally installed redis-server / nats-server processes otherwise. Decided once per test process, fast: only
 * socket files that exist are pinged, each for at most PING_TIMEOUT_MS.
 *
 * RTMP_RELAY_TEST_SERVICES: `auto` (default) | `containers` (required: fail when no runtime answers, as on the public
 * CI) | `processes` (never containers).
 */
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { homedir } from 'node:os';
import { join } from 'node:path';

export type ServicesMode = 'containers' | 'processes';

/** A Docker-API endpoint: a unix socket, or host:port (DOCKER_HOST=tcp://...). */
export type Endpoint = { socketPath: string } | { host: string; port: number };

export interface Decision {
  mode: ServicesMode;
  /** Why, for the test log. */
  reason: string;
  /** The endpoint that answered (containers only), as DOCKER_HOST spells it. */
  dockerHost?: string;
}

export interface RuntimeProbe {
  env: Record<string, string | undefined>;
  exists(path: string): boolean;
  ping(endpoint: Endpoint, timeoutMs: number): Promise<boolean>;
}

export const PING_TIMEOUT_MS = 500;

const asDockerHost = (e: Endpoint): string =>
  'socketPath' in e ? `unix://${e.socketPath}` : `tcp://${e.host}:${e.port}`;

/** Where Docker, Docker Desktop, Colima, Rancher Desktop and Podman put their API socket; DOCKER_HOST first. */
export function candidateEndpoints(env: Record<string, string | undefined>, home = homedir()): Endpoint[] {
  const out: Endpoint[] = [];
  const dockerHost = env.DOCKER_HOST;
  if (dockerHost?.startsWith('unix://')) out.push({ socketPath: dockerHost.slice('unix://'.length) });
  else if (dockerHost?.startsWith('tcp://')) {
    const u = new URL(dockerHost.replace(/^tcp:/, 'http:'));
    out.push({ host: u.hostname, port: Number(u.port || 2375) });
  }
  const runtimeDir = env.XDG_RUNTIME_DIR;
  for (const path of [
    '/var/run/docker.sock',
    ...(runtimeDir ? [join(runtimeDir, 'docker.sock'), join(runtimeDir, 'podman/podman.sock')] : []),
    join(home, '.docker/run/docker.sock'),
    join(home, '.colima/default/docker.sock'),
    join(home, '.rd/docker.sock'),
    '/run/podman/podman.sock',
  ])
    if (!out.some((e) => 'socketPath' in e && e.socketPath === path)) out.push({ socketPath: path });
  return out;
}

export async function decideServicesMode(probe: RuntimeProbe): Promise<Decision> {
  const wanted = (probe.env.RTMP_RELAY_TEST_SERVICES ?? 'auto').toLowerCase();
  if (!['auto', 'containers', 'processes'].includes(wanted))
    throw new Error(`RTMP_RELAY_TEST_SERVICES=${wanted}: use auto, containers or processes`);
  if (wanted === 'processes') return { mode: 'processes', reason: 'RTMP_RELAY_TEST_SERVICES=processes' };
  const tried: string[] = [];
  for (const e of candidateEndpoints(probe.env)) {
    if ('socketPath' in e && !probe.exists(e.socketPath)) continue;
    tried.push(asDockerHost(e));
    if (await probe.ping(e, PING_TIMEOUT_MS))
      return { mode: 'containers', reason: `container runtime at ${asDockerHost(e)}`, dockerHost: asDockerHost(e) };
  }
  const why = tried.length ? `no answer from ${tried.join(', ')}` : 'no container runtime socket';
  if (wanted === 'containers') throw new Error(`RTMP_RELAY_TEST_SERVICES=containers, but ${why}`);
  return { mode: 'processes', reason: `${why}: local redis-server/nats-server processes` };
}

/** GET /_ping of the Docker API (Podman answers it too): true on 200 OK within the time. */
export function pingDockerApi(endpoint: Endpoint, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ ...endpoint, path: '/_ping', method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 && body.trim() === 'OK'));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

let decided: Promise<Decision> | undefined;

/** The decision for this test process (made once). */
export function servicesMode(): Promise<Decision> {
  decided ??= decideServicesMode({ env: process.env, exists: existsSync, ping: pingDockerApi });
  return decided;
}
