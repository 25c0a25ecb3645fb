/**
 * Trust at the node's front door (issue "Trustworthy nodes"): every test here failed on the code before the streams/
 * admission module existed.
 *
 * - Start-up window: a publish that races an origin's start-up is refused or properly leased, never accepted
 *   unleased; a publish racing an edge's start-up is always refused.
 * - Standalone honours publish secrets, play tokens and webhooks.
 * - Names: hostile app names are refused with a clear error and never logged whole; stream keys never in info logs.
 * - Per-IP connection cap and failed-auth rate limit trigger, are counted and logged.
 * - Cluster credentials: a viewer's play token does not let anyone pull from an origin; an edge's pull does.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { RtmpClient, type AmfValue, type RtmpClientError } from '@rtmp-relay/rtmp';
import { signStreamName } from '../src/auth/index.js';
import { loadConfig } from '../src/config.js';
import { startNode, type RunningNode } from '../src/node.js';
import { clusterEnv, parseMetric, spawnNode } from './support/cluster-harness.js';
import { ffmpegCountFrames, ffmpegPublish } from './support/media-tools.js';
import { stopAll, waitFor } from './support/processes.js';
import { RawRtmpPeer } from './support/raw-rtmp.js';
import { startNats, startRedis, stopAllServices, type ServiceHandle } from './support/services.js';

const PUBLISH_SECRET = 'trust-publish-secret';
const PLAY_SECRET = 'trust-play-secret';
const CLUSTER_SECRET = 'trust-cluster-secret';
const inAMinute = (): number => Math.floor(Date.now() / 1000) + 60;

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Collects the node's JSON log lines (pino writes to stdout; the logger honours LOG_LEVEL). */
function captureLogs(): { lines: string[]; restore: () => void } {
  const lines: string[] = [];
  const original = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    if (text.startsWith('{"level"')) {
      lines.push(...text.split('\n').filter(Boolean));
      return true;
    }
    return (original as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write;
  return { lines, restore: () => (process.stdout.write = original) };
}

const baseEnv = (extra: Record<string, string> = {}): Record<string, string> => ({
  RTMP_HOST: '127.0.0.1',
  HTTP_HOST: '127.0.0.1',
  RTMP_PORT: '0',
  HTTP_PORT: '0',
  LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
  SHUTDOWN_TIMEOUT_MS: '300',
  PLAY_WAIT_MS: '300',
  ...extra,
});

async function node(role: 'standalone' | 'origin' | 'edge', env: Record<string, string>): Promise<RunningNode> {
  return startNode(loadConfig({ env }), { role });
}

/** Connects and publishes `name`; 'published' on Publish.Start, else the error code the server answered. */
async function tryPublish(url: string, name: string): Promise<{ outcome: string; client?: RtmpClient }> {
  let client: RtmpClient;
  try {
    client = await RtmpClient.connect(url, { connectTimeoutMs: 3000 });
  } catch (err) {
    return { outcome: `connect_failed: ${(err as Error).message}` };
  }
  try {
    await client.publish(name, 3000);
    return { outcome: 'published', client };
  } catch (err) {
    client.close();
    return { outcome: (err as RtmpClientError).status ?? (err as Error).message };
  }
}

async function metric(port: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) });
  return parseMetric(await res.text(), name, labels);
}

after(async () => {
  await stopAll();
  await stopAllServices();
});

describe('start-up window: no publish is accepted before the role policy applies', { timeout: 120_000 }, () => {
  let redis: ServiceHandle;
  let nats: ServiceHandle;
  before(async () => {
    [redis, nats] = await Promise.all([startRedis(), startNats()]);
  });

  /** Starts a node on a known port while a client hammers that port with publishes from the first accepted byte. */
  async function race(role: 'origin' | 'edge', i: number) {
    const port = await freePort();
    const name = `race-${role}-${i}`;
    const starting = node(
      role,
      baseEnv({
        RTMP_PORT: String(port),
        REDIS_URL: redis.url,
        NATS_URL: nats.url,
        ADVERTISE_HOST: '127.0.0.1',
        NODE_ID: `${role}-race-${i}`,
        CLUSTER_PREFIX: `race${i}${role}`,
      }),
    );
    const deadline = Date.now() + 10_000;
    let result: { outcome: string; client?: RtmpClient } = { outcome: 'never_connected' };
    while (Date.now() < deadline) {
      result = await tryPublish(`rtmp://127.0.0.1:${port}/live`, name);
      if (!result.outcome.startsWith('connect_failed')) break;
      await new Promise((r) => setImmediate(r)); // retry at once: the point is to land inside the window
    }
    const running = await starting;
    return { running, name, prefix: `race${i}${role}`, ...result };
  }

  it('origin: a racing publish is refused or holds a Redis lease (10 rounds)', async () => {
    const { createRedis } = await import('../src/cluster/redis-registry.js');
    const r = createRedis(redis.url);
    try {
      for (let i = 0; i < 10; i++) {
        const { running, name, prefix, outcome, client } = await race('origin', i);
        try {
          assert.ok(
            outcome === 'published' || outcome.startsWith('NetStream.Publish'),
            `round ${i}: unexpected outcome ${outcome}`,
          );
          if (outcome === 'published') {
            const lease = await r.hgetall(`${prefix}:stream:live/${name}`);
            assert.ok(lease.nodeId, `round ${i}: published without a lease in Redis`);
          }
        } finally {
          client?.close();
          await running.shutdown('test');
        }
      }
    } finally {
      r.disconnect();
    }
  });

  it('edge: a racing publish is always refused (5 rounds)', async () => {
    for (let i = 0; i < 5; i++) {
      const { running, outcome, client } = await race('edge', i);
      try {
        assert.equal(outcome, 'NetStream.Publish.Denied', `round ${i}`);
      } finally {
        client?.close();
        await running.shutdown('test');
      }
    }
  });

  it('an origin that cannot reach Redis starts not ready and refuses publishes (never serves them unleased)', async () => {
    // Redis that is not there: the node starts (after a bounded wait) but must not say ready.
    const deadPort = await freePort();
    const n = await node(
      'origin',
      baseEnv({ REDIS_URL: `redis://127.0.0.1:${deadPort}`, NODE_ID: 'origin-noredis', ADVERTISE_HOST: '127.0.0.1' }),
    );
    try {
      const res = await fetch(`http://127.0.0.1:${n.httpPort}/readyz`);
      assert.equal(res.status, 503);
      const { outcome } = await tryPublish(`rtmp://127.0.0.1:${n.rtmpPort}/live`, 'no-redis');
      assert.equal(outcome, 'NetStream.Publish.BadName', 'a publish without Redis is refused, never unleased');
    } finally {
      await n.shutdown('test');
    }
  });
});

describe('standalone honours secrets and hooks', { timeout: 120_000 }, () => {
  let hook: Server;
  let hookBase = '';
  const hookCalls: string[] = [];
  before(async () => {
    hook = createHttpServer((req, res) => {
      hookCalls.push(req.url ?? '');
      req.resume();
      req.on('end', () => res.writeHead(req.url === '/deny' ? 403 : 200).end());
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    hookBase = `http://127.0.0.1:${(hook.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => hook.close(() => r())));

  it('PUBLISH_SECRET: FFmpeg without a token is refused, with one it publishes; REQUIRE_PLAY_TOKEN gates plays', async () => {
    const n = await node(
      'standalone',
      baseEnv({ PUBLISH_SECRET, PLAY_SECRET, REQUIRE_PLAY_TOKEN: 'true', PLAY_WAIT_MS: '3000' }),
    );
    try {
      const denied = await tryPublish(`rtmp://127.0.0.1:${n.rtmpPort}/live`, 'cam');
      assert.equal(denied.outcome, 'NetStream.Publish.Denied');
      const key = signStreamName({
        secret: PUBLISH_SECRET,
        action: 'publish',
        app: 'live',
        name: 'cam',
        expiresAt: inAMinute(),
      });
      ffmpegPublish(`rtmp://127.0.0.1:${n.rtmpPort}/live/${key}`, { seconds: 30 });
      await waitFor(
        'cam live',
        async () => {
          const res = await fetch(`http://127.0.0.1:${n.httpPort}/api/streams/live/cam`);
          return res.status === 200 && ((await res.json()) as { live: boolean }).live;
        },
        20_000,
      );
      // A play without a token is refused; with one, FFmpeg decodes frames.
      const unsigned = await RtmpClient.connect(`rtmp://127.0.0.1:${n.rtmpPort}/live/cam`);
      await assert.rejects(unsigned.play('cam', 3000), /Play\.Failed|denied/i);
      unsigned.close();
      const playName = signStreamName({
        secret: PLAY_SECRET,
        action: 'play',
        app: 'live',
        name: 'cam',
        expiresAt: inAMinute(),
      });
      const { frames } = await ffmpegCountFrames(`rtmp://127.0.0.1:${n.rtmpPort}/live/${playName}`, 2);
      assert.ok(frames >= 10, `decoded ${frames} frames`);
      const flv = await fetch(`http://127.0.0.1:${n.httpPort}/live/cam.flv`);
      assert.equal(flv.status, 403, 'HTTP-FLV plays need the token too');
      await flv.body?.cancel();
      assert.ok((await metric(n.httpPort, 'rtmp_auth_denied_total', { action: 'publish' })) >= 1);
    } finally {
      await n.shutdown('test');
    }
  });

  it('HOOK_ON_PUBLISH: a 403 from the hook refuses the publish, a 2xx allows it', async () => {
    const denyNode = await node('standalone', baseEnv({ HOOK_ON_PUBLISH: `${hookBase}/deny` }));
    const allowNode = await node('standalone', baseEnv({ HOOK_ON_PUBLISH: `${hookBase}/allow` }));
    try {
      const denied = await tryPublish(`rtmp://127.0.0.1:${denyNode.rtmpPort}/live`, 'h1');
      assert.equal(denied.outcome, 'NetStream.Publish.Denied');
      const allowed = await tryPublish(`rtmp://127.0.0.1:${allowNode.rtmpPort}/live`, 'h2');
      assert.equal(allowed.outcome, 'published');
      allowed.client?.close();
      assert.deepEqual(hookCalls.slice(0, 2), ['/deny', '/allow']);
    } finally {
      await denyNode.shutdown('test');
      await allowNode.shutdown('test');
    }
  });
});

/** connect(app) + publish(name) over a raw peer: the onStatus code the server answered. */
async function rawPublish(port: number, app: string, name: string): Promise<string> {
  const peer = await RawRtmpPeer.openReady(port);
  try {
    await peer.connectApp(app, port);
    peer.sendCommand(0, 'createStream', 2, null);
    await peer.waitCommand((c) => c.transactionId === 2 && c.name === '_result');
    peer.sendCommand(1, 'publish', 3, null, name, 'live');
    const status = await peer.waitCommand((c) => c.name === 'onStatus' && c.streamId === 1);
    return String((status.args[1] as Record<string, AmfValue> | null)?.['code'] ?? '');
  } finally {
    peer.destroy();
  }
}

describe('names and logs', { timeout: 60_000 }, () => {
  it('a 512 KB app name with control characters and ../ is refused with a clear error and never logged whole', async () => {
    const logs = captureLogs();
    let n: RunningNode | undefined;
    try {
      n = await node('standalone', baseEnv({ LOG_LEVEL: 'info' }));
      const hostileApp = `../${'\u0001x'.repeat(128 * 1024)}`;
      assert.equal(await rawPublish(n.rtmpPort, hostileApp, 'k'), 'NetStream.Publish.BadName');
      // A normal publish with a secret-looking stream key: the key never appears in the logs.
      const secretKey = 'sk-live-7f3a9b2c41d0e8';
      const ok = await tryPublish(`rtmp://127.0.0.1:${n.rtmpPort}/live`, secretKey);
      assert.equal(ok.outcome, 'published');
      ok.client?.close();
      await waitFor('publish stop logged', () => logs.lines.some((l) => l.includes('"publish stop"')), 5000);
      const all = logs.lines.join('\n');
      assert.ok(!all.includes(secretKey), 'the stream key appears in the logs');
      assert.ok(all.includes('"publish start"'), 'publishes are still logged (by label)');
      assert.ok(!logs.lines.some((l) => l.length > 4096), 'a log line carries the hostile app name');
    } finally {
      logs.restore();
      await n?.shutdown('test');
    }
  });

  it('bad app names are refused with NetStream.Publish.BadName and counted', async () => {
    const n = await node('standalone', baseEnv());
    try {
      for (const app of ['a b', 'x/../y', 'live\u0000', 'a'.repeat(200)]) {
        assert.equal(
          await rawPublish(n.rtmpPort, app, 'k'),
          'NetStream.Publish.BadName',
          JSON.stringify(app.slice(0, 20)),
        );
      }
      assert.equal(await metric(n.httpPort, 'rtmp_publish_rejected_total', { reason: 'bad_app' }), 3);
      assert.equal(await metric(n.httpPort, 'rtmp_publish_rejected_total', { reason: 'app_too_long' }), 1);
    } finally {
      await n.shutdown('test');
    }
  });
});

describe('per-IP connection cap and failed-auth rate limit', { timeout: 60_000 }, () => {
  it('MAX_CONNECTIONS_PER_IP refuses the connection past the cap; others keep working', async () => {
    const n = await node('standalone', baseEnv({ MAX_CONNECTIONS_PER_IP: '5' }));
    const held: RtmpClient[] = [];
    try {
      for (let i = 0; i < 5; i++) held.push(await RtmpClient.connect(`rtmp://127.0.0.1:${n.rtmpPort}/live/x`));
      await assert.rejects(RtmpClient.connect(`rtmp://127.0.0.1:${n.rtmpPort}/live/x`, { connectTimeoutMs: 3000 }));
      assert.equal(
        await metric(n.httpPort, 'rtmp_connections_rejected_total', { reason: 'max_connections_per_ip' }),
        1,
      );
      held.pop()!.close();
      await waitFor('a slot frees up', async () => (await metric(n.httpPort, 'rtmp_connections')) === 4, 5000);
      held.push(await RtmpClient.connect(`rtmp://127.0.0.1:${n.rtmpPort}/live/x`));
    } finally {
      for (const c of held) c.close();
      await n.shutdown('test');
    }
  });

  it('AUTH_FAIL_LIMIT: after N bad tokens the IP is refused, even with a valid one, until the window passes', async () => {
    const n = await node('standalone', baseEnv({ PUBLISH_SECRET, AUTH_FAIL_LIMIT: '3', AUTH_FAIL_WINDOW_MS: '2000' }));
    try {
      for (let i = 0; i < 3; i++) {
        const r = await tryPublish(
          `rtmp://127.0.0.1:${n.rtmpPort}/live`,
          `x?expires=${inAMinute()}&token=${'A'.repeat(43)}`,
        );
        assert.equal(r.outcome, 'NetStream.Publish.Denied');
      }
      const good = signStreamName({
        secret: PUBLISH_SECRET,
        action: 'publish',
        app: 'live',
        name: 'x',
        expiresAt: inAMinute(),
      });
      const refused = await tryPublish(`rtmp://127.0.0.1:${n.rtmpPort}/live`, good);
      assert.ok(
        refused.outcome.startsWith('connect_failed') || refused.outcome === 'NetStream.Publish.Denied',
        refused.outcome,
      );
      assert.ok((await metric(n.httpPort, 'rtmp_connections_rejected_total', { reason: 'auth_rate_limited' })) >= 1);
      // After the window, the valid token works again.
      const later = await waitFor(
        'the window to pass',
        async () => {
          const r = await tryPublish(`rtmp://127.0.0.1:${n.rtmpPort}/live`, good);
          return r.outcome === 'published' ? r : undefined;
        },
        10_000,
        250,
      );
      later.client?.close();
    } finally {
      await n.shutdown('test');
    }
  });
});

describe(
  'cluster credentials: edges pull with CLUSTER_SECRET, viewers cannot pull from origins',
  { timeout: 120_000 },
  () => {
    let redis: ServiceHandle;
    let nats: ServiceHandle;
    let origin: RunningNode;
    let edge: RunningNode;
    before(async () => {
      [redis, nats] = await Promise.all([startRedis(), startNats()]);
      const cluster = {
        REDIS_URL: redis.url,
        NATS_URL: nats.url,
        ADVERTISE_HOST: '127.0.0.1',
        CLUSTER_SECRET,
        PLAY_SECRET,
        REQUIRE_PLAY_TOKEN: 'true',
        PLAY_WAIT_MS: '5000',
      };
      origin = await node('origin', baseEnv({ ...cluster, NODE_ID: 'origin-cs' }));
      edge = await node('edge', baseEnv({ ...cluster, NODE_ID: 'edge-cs' }));
      ffmpegPublish(`rtmp://127.0.0.1:${origin.rtmpPort}/live/cs`, { seconds: 60 });
      await waitFor(
        'cs live on the origin',
        async () => {
          const res = await fetch(`http://127.0.0.1:${origin.httpPort}/api/streams/live/cs`);
          return res.status === 200 && ((await res.json()) as { live: boolean }).live;
        },
        20_000,
      );
    });
    after(async () => {
      await edge?.shutdown('test');
      await origin?.shutdown('test');
    });

    it('a valid viewer play token is refused at the origin (cluster_token_required)', async () => {
      const playName = signStreamName({
        secret: PLAY_SECRET,
        action: 'play',
        app: 'live',
        name: 'cs',
        expiresAt: inAMinute(),
      });
      const c = await RtmpClient.connect(`rtmp://127.0.0.1:${origin.rtmpPort}/live/cs`);
      await assert.rejects(c.play(playName, 3000), /Play\.Failed|denied/i);
      c.close();
      assert.ok((await metric(origin.httpPort, 'rtmp_play_rejected_total', { reason: 'cluster_token_required' })) >= 1);
    });

    it('the same viewer token plays through the edge (its pull carries the cluster credentials)', async () => {
      const playName = signStreamName({
        secret: PLAY_SECRET,
        action: 'play',
        app: 'live',
        name: 'cs',
        expiresAt: inAMinute(),
      });
      const { frames } = await ffmpegCountFrames(`rtmp://127.0.0.1:${edge.rtmpPort}/live/${playName}`, 2);
      assert.ok(frames >= 10, `decoded ${frames} frames through the edge`);
    });
  },
);

describe('plays of unknown names leave nothing behind on an edge', { timeout: 120_000 }, () => {
  it('1000 RTMP and HTTP-FLV plays of random names: no hub, no pull, no node-record entry, bounded RSS', async () => {
    const [redis, nats] = await Promise.all([startRedis(), startNats()]);
    const edge = await spawnNode('edge', 'edge-unknown', clusterEnv(redis.url, nats.url, { PLAY_WAIT_MS: '300' }));
    try {
      const rss = (): number => {
        const status = readFileSync(`/proc/${edge.proc.child.pid}/status`, 'utf8');
        return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) * 1024;
      };
      // Warm up (JIT, buffers), then measure.
      const playRandom = async (i: number): Promise<string> => {
        const name = `ghost-${i}-${Math.random().toString(36).slice(2)}`;
        if (i % 2 === 0) {
          const res = await edge.http(`/live/${name}.flv`);
          await res.body?.cancel();
          return String(res.status);
        }
        const c = await RtmpClient.connect(edge.rtmpUrl(`live/${name}`));
        try {
          await c.play(name, 5000);
          return 'played';
        } catch (err) {
          return (err as RtmpClientError).status ?? 'error';
        } finally {
          c.close();
        }
      };
      const run = async (from: number, count: number): Promise<Map<string, number>> => {
        const outcomes = new Map<string, number>();
        const BATCH = 100;
        for (let i = from; i < from + count; i += BATCH) {
          const got = await Promise.all(Array.from({ length: BATCH }, (_, k) => playRandom(i + k)));
          for (const o of got) outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
        }
        return outcomes;
      };
      await run(0, 100);
      const before = rss();
      const outcomes = await run(100, 1000);
      assert.deepEqual(Object.fromEntries(outcomes), { '404': 500, 'NetStream.Play.StreamNotFound': 500 });
      await waitFor(
        'no hub and no pull left',
        async () => {
          const streams = (await edge.json<{ streams: unknown[] }>('/api/streams')).streams.length;
          return streams === 0 && (await edge.metric('rtmp_pulls_active')) === 0;
        },
        10_000,
      );
      const nodes = await edge.json<{ nodes: Array<{ id: string; streams?: Record<string, number> }> }>(
        '/api/cluster/nodes',
      );
      const record = nodes.nodes.find((n) => n.id === 'edge-unknown');
      assert.ok(record, 'the edge is registered');
      await waitFor(
        'the node record to forget the names',
        async () => {
          const again = await edge.json<{ nodes: Array<{ id: string; streams?: Record<string, number> }> }>(
            '/api/cluster/nodes',
          );
          return Object.keys(again.nodes.find((n) => n.id === 'edge-unknown')?.streams ?? {}).length === 0;
        },
        10_000,
      );
      const growth = rss() - before;
      log(`RSS growth after 1000 unknown plays: ${(growth / 1024 / 1024).toFixed(1)} MiB`);
      assert.ok(growth < 32 * 1024 * 1024, `RSS grew ${(growth / 1024 / 1024).toFixed(1)} MiB`);
    } finally {
      await edge.stop();
    }
  });
});

function log(msg: string): void {
  process.stderr.write(`# ${msg}\n`);
}
