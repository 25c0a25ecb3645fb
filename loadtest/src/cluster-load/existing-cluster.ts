/**
 * An existing cluster the runner is pointed at (`--origins-at`, `--edges-at`, `--api-at`, ...): publishers go to the
 * origins' RTMP addresses, viewers to the edges', stats come from each node's admin HTTP listener. Nothing here can
 * stop or start a node, and a node's CPU and RSS come from its Prometheus /metrics (prom-client's default
 * process_cpu_seconds_total and process_resident_memory_bytes), since its /proc is not ours to read.
 */
import type { ClusterUnderTest, NodeHandle, Role } from './cluster.js';
import { UsageError, type ExistingClusterTarget } from './options.js';
import type { ProcSample } from './procinfo.js';
import { metricValue, parseRedisUrl, redisScan, redisTotalCommands } from './processes.js';
import { checkLoopback, formatHostPort, urlHost, type HostPort } from './targets.js';

const HTTP_TIMEOUT_MS = 3000;

/** What GET /api/node answers (node.ts nodeInfo). */
interface NodeInfo {
  id: string;
  role: string;
  rtmpPort: number;
}

class ExistingNode implements NodeHandle {
  readonly alive = true;
  readonly usageSource = 'metrics' as const;

  constructor(
    readonly id: string,
    readonly role: Role,
    readonly rtmp: HostPort,
    private readonly api: string,
    readonly publicHttp: string | undefined,
    private readonly token: string | undefined,
  ) {}

  get rtmpAddr(): string {
    return formatHostPort(this.rtmp);
  }

  url(key: string): string {
    return `rtmp://${this.rtmpAddr}/${key}`;
  }

  async json<T>(path: string): Promise<T> {
    return (await (await this.get(path)).json()) as T;
  }

  async metrics(): Promise<string> {
    return (await this.get('/metrics')).text();
  }

  async usage(): Promise<ProcSample> {
    const text = await this.metrics().catch(() => '');
    return metricsSample(text);
  }

  private async get(path: string): Promise<Response> {
    return adminGet(this.api, path, this.token);
  }
}

/** CPU time and RSS from prom-client's default process metrics (NaN when the node does not export them). */
export function metricsSample(text: string): ProcSample {
  const has = (name: string): boolean => new RegExp(`^${name}(\\{| )`, 'm').test(text);
  return {
    at: performance.now(),
    cpuMs: has('process_cpu_seconds_total') ? metricValue(text, 'process_cpu_seconds_total') * 1000 : NaN,
    rssKiB: has('process_resident_memory_bytes') ? metricValue(text, 'process_resident_memory_bytes') / 1024 : NaN,
  };
}

async function adminGet(base: string, path: string, token: string | undefined): Promise<Response> {
  const res = await fetch(`${base}${path}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  if (res.status === 401) {
    await res.body?.cancel();
    throw new UsageError(`${base}${path}: 401 (${token ? 'wrong --api-token' : 'the API needs --api-token'})`);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`${base}${path}: HTTP ${res.status}`);
  }
  return res;
}

const httpBase = (a: HostPort): string => `http://${formatHostPort(a)}`;

/** Every address of the target, checked against the loopback rule (`log` gets the --allow-remote warning). */
export function checkTargetAddresses(t: ExistingClusterTarget, log: (line: string) => void): void {
  const hosts = [
    ...t.originsAt.map((a) => ({ host: a.host, flag: '--origins-at' })),
    ...t.edgesAt.map((a) => ({ host: a.host, flag: '--edges-at' })),
    ...t.apiAt.map((a) => ({ host: a.host, flag: '--api-at' })),
    ...t.routeAt.map((a) => ({ host: a.host, flag: '--route-at' })),
    ...(t.redisUrl ? [{ host: urlHost(t.redisUrl, '--redis-url'), flag: '--redis-url' }] : []),
    ...(t.natsMonitorUrl
      ? [{ host: urlHost(t.natsMonitorUrl, '--nats-monitor-url'), flag: '--nats-monitor-url' }]
      : []),
  ];
  checkLoopback(hosts, t.allowRemote, log);
}

/**
 * Matches each RTMP address to the admin address of the same node: GET /api/node on every --api-at address gives
 * the node's id, role and RTMP port; an RTMP address takes the API node of its role with its port (on the same host
 * when several share the port).
 */
async function identify(
  t: ExistingClusterTarget,
): Promise<Array<{ rtmp: HostPort; role: Role; info: NodeInfo; api: HostPort }>> {
  const infos = await Promise.all(
    t.apiAt.map(async (api) => ({
      api,
      info: (await (await adminGet(httpBase(api), '/api/node', t.apiToken)).json()) as NodeInfo,
    })),
  );
  const wanted: Array<{ rtmp: HostPort; role: Role }> = [
    ...t.originsAt.map((rtmp) => ({ rtmp, role: 'origin' as const })),
    ...t.edgesAt.map((rtmp) => ({ rtmp, role: 'edge' as const })),
  ];
  return wanted.map(({ rtmp, role }) => {
    const samePort = infos.filter((x) => x.info.role === role && x.info.rtmpPort === rtmp.port);
    const match = samePort.length === 1 ? samePort[0] : samePort.find((x) => x.api.host === rtmp.host);
    if (!match)
      throw new UsageError(
        `no --api-at address is the ${role} at ${formatHostPort(rtmp)} (GET /api/node answered: ` +
          `${infos.map((x) => `${formatHostPort(x.api)} → ${x.info.role} ${x.info.id} rtmpPort ${x.info.rtmpPort}`).join('; ')})`,
      );
    return { rtmp, role, ...match };
  });
}

export async function connectExistingCluster(
  t: ExistingClusterTarget,
  log: (line: string) => void,
): Promise<ClusterUnderTest> {
  if (t.originsAt.length === 0 || t.edgesAt.length === 0)
    throw new UsageError('an existing cluster needs --origins-at and --edges-at (and --api-at for its stats)');
  checkTargetAddresses(t, log);
  const found = await identify(t);
  // The route API is on the public listener: --route-at, else the admin addresses (one listener without ADMIN_PORT).
  const routeAt = (t.routeAt.length ? t.routeAt : t.apiAt).map(httpBase);
  const nodes = found.map(
    (f) =>
      new ExistingNode(
        f.info.id,
        f.role,
        f.rtmp,
        httpBase(f.api),
        t.routeAt.length ? undefined : httpBase(f.api),
        t.apiToken,
      ),
  );
  const redisEp = t.redisUrl ? parseRedisUrl(t.redisUrl) : undefined;
  const natsBase = t.natsMonitorUrl?.replace(/\/+$/, '');
  return {
    origins: nodes.filter((n) => n.role === 'origin'),
    edges: nodes.filter((n) => n.role === 'edge'),
    prefix: t.clusterPrefix,
    redis: redisEp && { totalCommands: () => redisTotalCommands(redisEp), keys: (match) => redisScan(redisEp, match) },
    nats: natsBase
      ? {
          monitor: async <T>(path: string): Promise<T> => {
            const res = await fetch(`${natsBase}/${path}`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
            return (await res.json()) as T;
          },
        }
      : undefined,
    routeBases: () => routeAt,
    lifecycle: undefined,
    description:
      `existing cluster: ${nodes.map((n) => `${n.role} ${n.id} @ ${n.rtmpAddr}`).join(', ')}; ` +
      `Redis ${redisEp ? formatHostPort(redisEp) : 'not measured'}, NATS ${natsBase ?? 'not measured'}; ` +
      'node CPU/RSS from /metrics',
    close: async () => {},
  };
}
