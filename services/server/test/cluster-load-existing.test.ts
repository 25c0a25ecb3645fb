import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_OPTIONS, type ExistingClusterTarget } from '../../../loadtest/src/cluster-load/options.js';
import { redisTotalCommands, parseRedisUrl } from '../../../loadtest/src/cluster-load/processes.js';
import { runClusterLoad } from '../../../loadtest/src/cluster-load/runner.js';
import { clusterEnv, spawnNode, type ProcessNode } from './support/cluster-harness.js';
import { stopAll } from './support/processes.js';
import { startNats, startRedis, stopAllServices, type ServiceHandle } from './support/services.js';

/**
 * The cluster scenario runner pointed at a cluster it did not start (--origins-at, --edges-at, --api-at,
 * --api-token, --redis-url): 1 origin and 2 edges started here with the test helpers, behind an API token. The runner
 * publishes to the origin, its viewers play on the edges through the route API, and it reads every node's CPU and
 * RSS from /metrics. Rolling updates are refused in that mode.
 */

const TOKEN = 'cluster-load-test-token';
const STREAMS = 2;
const VIEWERS = 8;

describe('cluster-load against an existing cluster (small)', () => {
  let redis: ServiceHandle;
  let nats: ServiceHandle;
  const nodes: ProcessNode[] = [];
  let target: ExistingClusterTarget;

  before(async () => {
    [redis, nats] = await Promise.all([startRedis(), startNats()]);
    const env = clusterEnv(redis.url, nats.url, {
      API_TOKEN: TOKEN,
      MAX_CONNECTIONS_PER_IP: '0',
      LEASE_MS: '3000',
      PULL_LINGER_MS: '1000',
      HEARTBEAT_MS: '300',
    });
    nodes.push(
      ...(await Promise.all([
        spawnNode('origin', 'x-origin', env),
        spawnNode('edge', 'x-edge-1', env),
        spawnNode('edge', 'x-edge-2', env),
      ])),
    );
    const at = (port: number) => ({ host: '127.0.0.1', port });
    target = {
      originsAt: [at(nodes[0]!.rtmpPort)],
      edgesAt: nodes.slice(1).map((n) => at(n.rtmpPort)),
      // In another order than the RTMP addresses: the runner matches them by GET /api/node.
      apiAt: [...nodes].reverse().map((n) => at(n.httpPort)),
      routeAt: [],
      apiToken: TOKEN,
      redisUrl: redis.url,
      natsMonitorUrl: undefined,
      clusterPrefix: 'rtmp',
      allowRemote: false,
    };
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await stopAll();
    await stopAllServices();
  });

  it('plays media on its edges and reads CPU/RSS per node from /metrics', { timeout: 60_000 }, async () => {
    const lines: string[] = [];
    const r = await runClusterLoad({
      ...DEFAULT_OPTIONS,
      streams: STREAMS,
      viewers: VIEWERS,
      hotStreams: 0,
      rampPerSecond: 40,
      durationS: 2,
      probes: 0,
      lb: 'route',
      leaseMs: 3000,
      pullLingerMs: 1000,
      timeLimitS: 40,
      progress: false,
      target,
      log: (l) => lines.push(l),
    });
    const context = `${lines.join('\n')}\n${JSON.stringify({ ...r, options: undefined }, null, 1).slice(0, 5000)}`;
    assert.match(r.cluster, /^existing cluster/, context);
    assert.equal(r.steadyFailures, 0, context);
    assert.equal(r.viewers.up, VIEWERS, context);
    assert.equal(r.delivery.viewersMeasured, VIEWERS, context);
    assert.ok(r.delivery.deliveredPercent.min >= 99, context);
    assert.ok(r.latencyMs.count > 0, context);
    assert.equal(r.pulls.pairsWithExactlyOnePull, r.pulls.pairsWithViewers, context);
    // Every viewer was routed to one of the two edges, known by the ids their /api/node gave.
    assert.deepEqual(Object.keys(r.balance.viewersPerEdge).sort(), ['x-edge-1', 'x-edge-2'], context);
    assert.equal(r.balance.routeFailures, 0, context);
    // CPU and RSS of every node, from its Prometheus metrics.
    assert.deepEqual(r.nodes.map((n) => n.id).sort(), ['x-edge-1', 'x-edge-2', 'x-origin'], context);
    for (const n of r.nodes) {
      assert.equal(n.source, 'metrics', context);
      assert.ok(Number.isFinite(n.cpuPercent) && n.cpuPercent >= 0, `${n.id} CPU ${n.cpuPercent}\n${context}`);
      assert.ok(n.rssStartMiB > 20 && n.rssMiB > 20, `${n.id} RSS ${n.rssStartMiB} → ${n.rssMiB}\n${context}`);
    }
    assert.ok(r.nodes.find((n) => n.role === 'origin')!.cpuPercent > 0, context);
    // Redis measured through --redis-url; NATS not given: not measured.
    assert.ok(r.redisCommandsPerSecPerStream > 0, context);
    assert.ok(Number.isNaN(r.natsMsgsPerSecPerStream), context);
    assert.ok(r.leaks.ok, context);
    // The token is not in the report.
    assert.ok(!JSON.stringify(r.options).includes(TOKEN), 'API token in the report');
  });

  it('refuses rolling updates and non-loopback addresses without --allow-remote', async () => {
    const base = { ...DEFAULT_OPTIONS, progress: false, log: () => {} };
    await assert.rejects(
      runClusterLoad({ ...base, target, rolling: true }),
      /--rolling stop and start node processes: not possible against an existing cluster/,
    );
    await assert.rejects(
      runClusterLoad({ ...base, target: { ...target, edgesAt: [{ host: '192.0.2.7', port: 1935 }] } }),
      /refusing to load 192\.0\.2\.7 \(--edges-at\)/,
    );
  });

  it('--redis-url with credentials: AUTH before the command, a wrong password rejected', async () => {
    const authed = await startRedis({ args: ['--requirepass', 's3cret'], auth: { password: 's3cret' } });
    const url = new URL(authed.url);
    url.password = 's3cret';
    assert.ok((await redisTotalCommands(parseRedisUrl(url.toString()))) > 0);
    url.password = 'wrong';
    assert.ok(Number.isNaN(await redisTotalCommands(parseRedisUrl(url.toString()))));
  });
});
