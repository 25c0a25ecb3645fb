/**
 * The k6 suites' routing helper (loadtest/k6/lib/route.js, ROUTE=1): URL building and answer parsing, and the same
 * functions against the real route API of a small cluster (real Redis and NATS, an origin and two edges in this
 * process), so the suites and the server agree on the API.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  clusterEnv,
  startInProcessNode,
  type ClusterNode,
} from '../../services/server/test/support/cluster-harness.js';
import { waitFor } from '../../services/server/test/support/processes.js';
import { startNats, startRedis, stopAllServices } from '../../services/server/test/support/services.js';
import { routeApiUrl, routedEdge, viewerBase } from '../k6/lib/route.js';

describe('k6 route helper', () => {
  it('builds the route API URL for a stream and protocol', () => {
    assert.equal(
      routeApiUrl('http://edge:8080/', 'live/a b', 'ws-flv'),
      'http://edge:8080/api/cluster/route?stream=live%2Fa%20b&protocol=ws-flv',
    );
    assert.equal(routeApiUrl('ws://n:1', 'live/x'), 'http://n:1/api/cluster/route?stream=live%2Fx&protocol=http-flv');
    assert.throws(() => routeApiUrl('http://n:1', 'live/x', 'hls'), /unknown route protocol/);
  });

  it("takes the edge's base URL from an answer, and labels what is not one", () => {
    const ok = { status: 200, body: '{"url":"ws://10.0.0.7:8080/live/x.flv","nodeId":"e7","reason":"warm"}' };
    assert.deepEqual(routedEdge(ok), { base: 'http://10.0.0.7:8080', nodeId: 'e7', reason: 'warm' });
    assert.deepEqual(routedEdge({ status: 503, body: '{}' }), { error: 'route_503' });
    assert.deepEqual(routedEdge({ status: 200, body: 'not json' }), { error: 'route_bad_json' });
    assert.deepEqual(routedEdge({ status: 200, body: '{"url":"rtmp://e:1935/live/x"}' }), { error: 'route_bad_url' });
  });
});

describe('k6 viewerBase', () => {
  it('plays from the target without routing, from the routed edge with it', () => {
    const asked: string[] = [];
    const get = (url: string) => {
      asked.push(url);
      return { status: 200, body: '{"url":"http://e2:8080/live/x.flv","nodeId":"e2","reason":"warm"}' };
    };
    assert.deepEqual(viewerBase(false, 'http://n1:8080', 'live/x', 'http-flv', get), { base: 'http://n1:8080' });
    assert.deepEqual(asked, []);
    assert.equal(viewerBase(true, 'http://n1:8080', 'live/x', 'http-flv', get).base, 'http://e2:8080');
    assert.deepEqual(asked, ['http://n1:8080/api/cluster/route?stream=live%2Fx&protocol=http-flv']);
  });
});

describe('k6 route helper against a real cluster', { timeout: 60_000 }, () => {
  const nodes: ClusterNode[] = [];

  before(async () => {
    const [redis, nats] = await Promise.all([startRedis(), startNats()]);
    const env = clusterEnv(redis.url, nats.url, { HEARTBEAT_MS: '150' });
    nodes.push(await startInProcessNode('origin', 'k6-origin', env));
    for (const id of ['k6-edge-1', 'k6-edge-2']) nodes.push(await startInProcessNode('edge', id, env));
    await waitFor(
      'two ready edges in the registry',
      async () => {
        const list = await nodes[0]!.json<{ nodes: Array<{ role: string; ready?: boolean }> }>('/api/cluster/nodes');
        return list.nodes.filter((n) => n.role === 'edge' && n.ready).length === 2;
      },
      10_000,
    );
  });

  after(async () => {
    for (const n of nodes.reverse()) await n.stop();
    await stopAllServices();
  });

  it("asks the origin's route API and gets one of the edges' HTTP base URLs", async () => {
    const origin = nodes[0]!;
    const res = await fetch(routeApiUrl(`http://127.0.0.1:${origin.httpPort}`, 'live/k6', 'http-flv'));
    const routed = routedEdge({ status: res.status, body: await res.text() });
    const edge = nodes.slice(1).find((n) => n.id === routed.nodeId);
    assert.ok(edge, `routed to ${JSON.stringify(routed)}`);
    assert.equal(routed.base, `http://127.0.0.1:${edge.httpPort}`);
    assert.equal(routed.reason, 'cold');
  });
});
