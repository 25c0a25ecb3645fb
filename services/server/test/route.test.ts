import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PendingRoutes, chooseEdge, edgeUrl, routePendingMs, type RouteNode } from '../src/cluster/route.js';
import { NodeRegistry, createRedis, waitForRedis, type NodeRecord } from '../src/cluster/redis-registry.js';
import { rendezvousOrder } from '../src/cluster/tiers.js';
import {
  clusterEnv,
  RecordingViewer,
  startInProcessNode,
  waitLocalLive,
  type ClusterNode,
} from './support/cluster-harness.js';
import { ffmpegCountFrames, ffmpegPublish } from './support/media-tools.js';
import { stopAll, waitFor, type Running } from './support/processes.js';
import { startNats, startRedis, stopAllServices, type ServiceHandle } from './support/services.js';

const node = (id: string, viewers: number, streams: Record<string, number> = {}, extra: Partial<RouteNode> = {}) =>
  ({
    id,
    role: 'edge',
    rtmpAddr: `${id}:1935`,
    httpAddr: `${id}:8080`,
    load: { viewers },
    streams,
    ready: true,
    draining: false,
    ...extra,
  }) satisfies RouteNode;

describe('route: choice over node records', () => {
  const key = 'live/a';
  const cap = { maxViewers: 10 };

  it('cold: the first edge in the key hash order; warm: the edge carrying the stream, until its cap; then spill', () => {
    const edges = ['e1', 'e2', 'e3'].map((id) => node(id, 0));
    const order = rendezvousOrder(key, edges).map((n) => n.id);
    assert.deepEqual(chooseEdge(edges, key, cap), { node: edges.find((e) => e.id === order[0]), reason: 'cold' });
    // The stream is on the LAST edge of the order: warm beats the hash order.
    const warm = edges.map((e) => (e.id === order[2] ? node(e.id, 9, { [key]: 9 }) : e));
    assert.equal(chooseEdge(warm, key, cap)?.node.id, order[2]);
    assert.equal(chooseEdge(warm, key, cap)?.reason, 'warm');
    const full = edges.map((e) => (e.id === order[2] ? node(e.id, 10, { [key]: 10 }) : e));
    assert.deepEqual([chooseEdge(full, key, cap)?.node.id, chooseEdge(full, key, cap)?.reason], [order[0], 'spill']);
    // A node's own declared cap wins over the default.
    const bigger = edges.map((e) => (e.id === order[2] ? node(e.id, 10, { [key]: 10 }, { maxViewers: 50 }) : e));
    assert.equal(chooseEdge(bigger, key, cap)?.node.id, order[2]);
  });

  it('never a draining or unready node, an origin or (while leaves exist) a parent; none left: undefined', () => {
    const nodes: RouteNode[] = [
      node('drain', 0, { [key]: 0 }, { draining: true }),
      node('unready', 0, { [key]: 0 }, { ready: false }),
      node('origin', 0, { [key]: 0 }, { role: 'origin' }),
      node('parent', 0, { [key]: 0 }, { tier: 'parent' }),
      node('leaf', 5),
    ];
    assert.deepEqual(chooseEdge(nodes, key, cap), { node: nodes[4], reason: 'cold' });
    assert.equal(chooseEdge(nodes.slice(0, 3), key, cap), undefined);
    // Only parents left: they take viewers.
    assert.equal(chooseEdge(nodes.slice(0, 4), key, cap)?.node.id, 'parent');
  });

  it('every edge full: the least loaded one', () => {
    const nodes = [node('a', 12), node('b', 10), node('c', 11)];
    assert.equal(chooseEdge(nodes, key, cap)?.node.id, 'b');
  });

  it('a burst through one router fills each edge to its cap although the records lag (pending routes)', () => {
    let now = 0;
    const pending = new PendingRoutes(1000, () => now);
    const records = ['e1', 'e2', 'e3'].map((id) => node(id, 0));
    const order = rendezvousOrder(key, records).map((n) => n.id);
    const sent: string[] = [];
    for (let i = 0; i < 25; i++) {
      const choice = chooseEdge(pending.apply(records), key, cap)!;
      pending.add(records.find((n) => n.id === choice.node.id)!);
      sent.push(choice.node.id);
    }
    // The records never changed (no heartbeat yet): still 10, 10, then the least loaded.
    assert.deepEqual(
      order.map((id) => sent.filter((s) => s === id).length),
      [10, 10, 5],
    );
    // The first edge's heartbeat now shows its 10 viewers: nothing of it is pending any more, no double count.
    const beat = records.map((n) => (n.id === order[0] ? node(n.id, 10, { [key]: 10 }) : n));
    assert.equal(pending.pending(beat.find((n) => n.id === order[0])!), 0);
    assert.equal(pending.pending(beat.find((n) => n.id === order[1])!), 10);
    // Routed viewers that never show up are forgotten after the TTL.
    now = 1001;
    assert.equal(pending.pending(records.find((n) => n.id === order[1])!), 0);
  });

  it('viewer URLs per protocol, query passed on', () => {
    const n = node('e', 0);
    assert.equal(edgeUrl(n, 'live', 'a', 'rtmp'), 'rtmp://e:1935/live/a');
    assert.equal(edgeUrl(n, 'live', 'a', 'http-flv', 'token=x'), 'http://e:8080/live/a.flv?token=x');
    assert.equal(edgeUrl(n, 'live', 'a', 'ws-flv'), 'ws://e:8080/live/a.flv');
  });
});

/**
 * On a real cluster (Redis, NATS, in-process origin O and edges E1-E3 with ROUTE_MAX_VIEWERS=2, FFmpeg publishers):
 * viewers follow what /api/cluster/route answers, one at a time (each waits for the edges' heartbeat to show it).
 */
const HEARTBEAT_MS = 150;
const MAX_VIEWERS = 2;

describe('route: 1 origin, 3 edges, 2 streams (real Redis, NATS, FFmpeg)', () => {
  let redis: ServiceHandle;
  let nats: ServiceHandle;
  let O: ClusterNode;
  const edges: ClusterNode[] = [];
  const viewers: RecordingViewer[] = [];
  const publishers: Running[] = [];
  let registryRedis: ReturnType<typeof createRedis> | undefined;

  interface Routed {
    url: string;
    nodeId: string;
    reason: string;
  }
  const route = async (key: string, protocol = 'rtmp'): Promise<Routed> => {
    const res = await O.http(`/api/cluster/route?stream=${key}&protocol=${protocol}`);
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()) as Routed;
  };
  type Rec = NodeRecord & { streams?: Record<string, number> };
  const records = async (): Promise<Rec[]> => (await O.json<{ nodes: Rec[] }>('/api/cluster/nodes')).nodes;
  /** Plays `key` where the router says, and waits until the chosen edge's record shows the new viewer. */
  const playRouted = async (key: string): Promise<Routed> => {
    const r = await route(key);
    const before = (await records()).find((n) => n.id === r.nodeId)?.streams?.[key] ?? 0;
    viewers.push(await RecordingViewer.open(`${r.nodeId}:${key}`, r.url));
    await waitFor(
      `${r.nodeId} record to show ${before + 1} viewers of ${key}`,
      async () => (await records()).find((n) => n.id === r.nodeId)?.streams?.[key] === before + 1,
      5000,
      25,
    );
    return r;
  };

  before(async () => {
    [redis, nats] = await Promise.all([startRedis(), startNats()]);
    const env = clusterEnv(redis.url, nats.url, {
      HEARTBEAT_MS: String(HEARTBEAT_MS),
      ROUTE_MAX_VIEWERS: String(MAX_VIEWERS),
      PULL_LINGER_MS: '30000',
    });
    O = await startInProcessNode('origin', 'O', env);
    for (let i = 1; i <= 3; i++) edges.push(await startInProcessNode('edge', `E${i}`, env));
    await waitFor(
      'three ready edges in the registry',
      async () => (await records()).filter((n) => n.role === 'edge' && (n as { ready?: boolean }).ready).length === 3,
      10_000,
    );
  });

  after(async () => {
    for (const v of viewers) v.close();
    await Promise.all(publishers.map((p) => p.stop()));
    registryRedis?.disconnect();
    for (const e of edges) await e.stop();
    await O?.stop();
    await stopAll();
    await stopAllServices();
  });

  it('viewers of a stream fill the warm edge up to its load, then spill; draining and unready records are never chosen', async () => {
    const [A, B] = ['live/route-a', 'live/route-b'];
    for (const key of [A, B]) publishers.push(ffmpegPublish(O.rtmpUrl(key), { seconds: 60 }));
    await Promise.all([A, B].map((k) => waitLocalLive(O, k)));

    const first = await playRouted(A);
    assert.equal(first.reason, 'cold');
    const second = await playRouted(A);
    assert.deepEqual([second.nodeId, second.reason], [first.nodeId, 'warm'], 'second viewer joins the warm edge');
    const third = await playRouted(A);
    assert.notEqual(third.nodeId, first.nodeId, 'warm edge full: spill');
    assert.equal(third.reason, 'spill');
    const fourth = await playRouted(A);
    assert.deepEqual([fourth.nodeId, fourth.reason], [third.nodeId, 'warm'], 'the spill edge is now warm');
    await waitFor('frames on every routed viewer', () => viewers.every((v) => v.framesSince().length >= 5), 15_000);

    // Stream B never lands on the full edge.
    const b = await route(B);
    assert.notEqual(b.nodeId, first.nodeId);

    // A draining record and an unready record that carry A with no viewers (the best warm choice otherwise).
    registryRedis = createRedis(redis.url);
    await waitForRedis(registryRedis, 5000);
    const registry = new NodeRegistry(registryRedis, { prefix: 'rtmp:', ttlMs: 60_000 });
    const fake = (id: string, extra: Record<string, unknown>) =>
      ({
        id,
        role: 'edge',
        rtmpAddr: `127.0.0.1:1`,
        httpAddr: `127.0.0.1:1`,
        version: 'test',
        startedAt: Date.now(),
        load: { viewers: 0, streams: 1, publishers: 0, egressBps: 0 },
        streams: { [A]: 0, [B]: 0 },
        ready: true,
        draining: false,
        ...extra,
      }) as NodeRecord;
    await registry.register(fake('drainer', { draining: true }));
    await registry.register(fake('unready', { ready: false }));
    for (let i = 0; i < 20; i++) {
      for (const key of [A, B, `live/other${i}`]) {
        const r = await route(key);
        assert.ok(!['drainer', 'unready'].includes(r.nodeId), `${key} routed to ${r.nodeId}`);
      }
    }
  });

  it('an edge that starts shutting down is never routed to during its drain delay', async () => {
    const key = 'live/route-a';
    const env = clusterEnv(redis.url, nats.url, {
      HEARTBEAT_MS: String(HEARTBEAT_MS),
      ROUTE_MAX_VIEWERS: String(MAX_VIEWERS),
      DRAIN_DELAY_MS: '3000',
    });
    const E4 = await startInProcessNode('edge', 'E4', env);
    edges.push(E4);
    // One viewer on E4: the only warm edge of `key` below its cap (the others hold 2 each), so routing picks it.
    viewers.push(await RecordingViewer.open('E4:direct', E4.rtmpUrl(key)));
    await waitFor('routing to pick E4 (warm, below its cap)', async () => (await route(key)).nodeId === 'E4', 5000, 25);
    const stopping = E4.stop();
    await waitFor(
      'E4 record to say draining',
      async () => (await records()).some((n) => n.id === 'E4' && (n as { draining?: boolean }).draining === true),
      2000,
      10,
    );
    let routedWhileRegistered = 0;
    while ((await records()).some((n) => n.id === 'E4')) {
      const r = await route(key);
      assert.notEqual(r.nodeId, 'E4', 'routed to a draining edge');
      routedWhileRegistered++;
    }
    await stopping;
    assert.ok(routedWhileRegistered >= 10, `asked ${routedWhileRegistered} times while E4 drained`);
  });

  it('GET /play/<app>/<name>.flv answers 302 to an edge, and FFmpeg plays through it', async () => {
    const key = 'live/route-a';
    const res = await O.http(`/play/${key}.flv?token=abc`, { redirect: 'manual' });
    assert.equal(res.status, 302);
    // A browser player on another origin can follow it only with CORS on the redirect itself.
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    const location = res.headers.get('location') ?? '';
    await res.body?.cancel();
    assert.match(location, /^http:\/\/127\.0\.0\.1:\d+\/live\/route-a\.flv\?token=abc$/);
    const rtmp = await O.http(`/play/${key}`, { redirect: 'manual' });
    assert.equal(rtmp.status, 302);
    assert.match(rtmp.headers.get('location') ?? '', /^rtmp:\/\/127\.0\.0\.1:\d+\/live\/route-a$/);
    assert.match(((await rtmp.json()) as Routed).url, /^rtmp:/);

    const { frames, code, stderr } = await ffmpegCountFrames(`http://127.0.0.1:${O.httpPort}/play/${key}.flv`, 3);
    assert.equal(code, 0, stderr);
    assert.ok(frames >= 30, `decoded ${frames} frames through the redirect`);

    const bad = await O.http('/api/cluster/route?stream=nope');
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
  });

  it('a burst of route requests for a new stream fills edges to ROUTE_MAX_VIEWERS before the heartbeats show it', async () => {
    const key = 'live/route-burst';
    // Route answers of the earlier tests that never became viewers count as pending until they expire (a TTL).
    await new Promise((r) => setTimeout(r, routePendingMs(HEARTBEAT_MS)));
    // Two more empty edges (records only: nobody connects in this test), so there is room on several edges.
    const registry = new NodeRegistry(registryRedis!, { prefix: 'rtmp:', ttlMs: 60_000 });
    for (const id of ['burst-1', 'burst-2'])
      await registry.register({
        id,
        role: 'edge',
        rtmpAddr: '127.0.0.1:1',
        httpAddr: '127.0.0.1:1',
        version: 'test',
        startedAt: Date.now(),
        load: { viewers: 0, streams: 0, publishers: 0, egressBps: 0 },
        ready: true,
        draining: false,
        maxViewers: MAX_VIEWERS,
      } as NodeRecord);
    const room = new Map(
      (await records())
        .filter((n) => n.role === 'edge' && n.ready !== false && n.draining !== true)
        .map((n) => [n.id, Math.max(0, MAX_VIEWERS - (n.load?.viewers ?? 0))] as const),
    );
    const total = [...room.values()].reduce((a, b) => a + b, 0);
    assert.ok(total >= 2 * MAX_VIEWERS, `the edges have room for ${total} viewers only`);
    const sent = new Map<string, number>();
    for (let i = 0; i < total; i++) {
      const r = await route(key);
      sent.set(r.nodeId, (sent.get(r.nodeId) ?? 0) + 1);
    }
    // The records did not change meanwhile (nobody connected); without counting what it routed, the router would
    // have sent every one of them to the first edge in the key's order.
    const seen = JSON.stringify({
      room: [...room],
      sent: [...sent],
      after: (await records()).map((n) => [n.id, n.load?.viewers]),
    });
    for (const [id, free] of room) assert.equal(sent.get(id) ?? 0, free, seen);
  });
});
