/**
 * Redis and NATS as containers (testcontainers), for machines with a container runtime (a laptop with Docker, the
 * public CI). The same ServiceHandle as the local processes of services.ts: a fixed host port per service (so
 * restart() comes back where clients reconnect), url without credentials, stop/kill/restart.
 * testcontainers is imported only here, and only when containers are used.
 */
import type { StartedTestContainer } from 'testcontainers';
import type { ServiceHandle } from './services.js';

/** The images the chart's bundled Redis and NATS run (helm/rtmp-relay/values.yaml). */
export const REDIS_IMAGE = 'redis:7.2-alpine';
export const NATS_IMAGE = 'nats:2.10-alpine';
const REDIS_PORT = 6379;
const NATS_PORT = 4222;
const STOP_TIMEOUT_S = 5;
const STARTUP_TIMEOUT_MS = 60_000;

const started = new Set<StartedTestContainer>();

interface Spec {
  scheme: 'redis' | 'nats';
  containerPort: number;
  /** Builds a container bound to `hostPort`. */
  build(hostPort: number): Promise<{ start(): Promise<StartedTestContainer> }>;
}

async function startContainer(spec: Spec, hostPort: number): Promise<ServiceHandle> {
  let current: StartedTestContainer | undefined;
  const up = async () => {
    current = await (await spec.build(hostPort)).start();
    started.add(current);
  };
  const down = async (timeout: number) => {
    const c = current;
    current = undefined;
    if (!c) return;
    started.delete(c);
    await c.stop({ timeout, remove: true }).catch(() => undefined);
  };
  await up();
  return {
    url: `${spec.scheme}://127.0.0.1:${hostPort}`,
    port: hostPort,
    stop: () => down(STOP_TIMEOUT_S),
    kill: () => down(0),
    restart: async () => {
      await down(0);
      await up();
    },
  };
}

/** Redis, optionally with a password (`--requirepass`). */
export function startRedisContainer(hostPort: number, password?: string): Promise<ServiceHandle> {
  return startContainer(
    {
      scheme: 'redis',
      containerPort: REDIS_PORT,
      build: async () => {
        const { RedisContainer } = await import('@testcontainers/redis');
        const c = new RedisContainer(REDIS_IMAGE)
          .withExposedPorts({ container: REDIS_PORT, host: hostPort })
          .withStartupTimeout(STARTUP_TIMEOUT_MS);
        return password ? c.withPassword(password) : c;
      },
    },
    hostPort,
  );
}

/** NATS with JetStream; `args` are nats-server flags (auth). */
export function startNatsContainer(hostPort: number, args: string[] = []): Promise<ServiceHandle> {
  return startContainer(
    {
      scheme: 'nats',
      containerPort: NATS_PORT,
      build: async () => {
        const { GenericContainer, Wait } = await import('testcontainers');
        return new GenericContainer(NATS_IMAGE)
          .withCommand(['--jetstream', '-p', String(NATS_PORT), ...args])
          .withExposedPorts({ container: NATS_PORT, host: hostPort })
          .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
          .withStartupTimeout(STARTUP_TIMEOUT_MS);
      },
    },
    hostPort,
  );
}

/** Stops and removes every container started here. */
export async function stopAllContainers(): Promise<void> {
  const all = [...started];
  started.clear();
  await Promise.all(all.map((c) => c.stop({ timeout: 0, remove: true }).catch(() => undefined)));
}
