import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { RtmpClient } from '@rtmp-relay/rtmp';
import { loadConfig } from '../src/config.js';
import { startNode, type RunningNode } from '../src/node.js';
import { ffmpegPublish } from './support/media-tools.js';
import { stopAll, waitFor, type Running } from './support/processes.js';
import { startNats, startRedis, stopAllServices } from './support/services.js';

interface OpenApi {
  paths: Record<string, Record<string, { responses: Record<string, unknown>; security?: unknown[] }>>;
}

const spec = parse(readFileSync(new URL('../../../docs/openapi.yaml', import.meta.url), 'utf8')) as OpenApi;
const TOKEN = 'test-api-token';

/** docs/openapi.yaml against a live origin: every documented route answers with a documented status, /api needs the token. */
describe('cluster HTTP API matches docs/openapi.yaml', () => {
  let origin: RunningNode;
  let publisher: Running;
  let base: string;
  let redis: Awaited<ReturnType<typeof startRedis>>;

  before(async () => {
    let nats;
    [redis, nats] = await Promise.all([startRedis(), startNats()]);
    origin = await startNode(
      loadConfig({
        env: {
          REDIS_URL: redis.url,
          NATS_URL: nats.url,
          ADVERTISE_HOST: '127.0.0.1',
          RTMP_HOST: '127.0.0.1',
          HTTP_HOST: '127.0.0.1',
          RTMP_PORT: '0',
          HTTP_PORT: '0',
          LOG_LEVEL: 'silent',
          API_TOKEN: TOKEN,
          NODE_ID: 'origin-api',
          SHUTDOWN_TIMEOUT_MS: '500',
        },
      }),
      { role: 'origin' },
    );
    base = `http://127.0.0.1:${origin.httpPort}`;
    publisher = ffmpegPublish(`rtmp://127.0.0.1:${origin.rtmpPort}/live/demo`, { seconds: 60 });
    await waitFor(
      'the stream in the cluster API',
      async () => {
        const res = await fetch(`${base}/api/cluster/streams/live/demo`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        return res.status === 200;
      },
      15_000,
    );
  });
  after(async () => {
    await publisher?.stop();
    await stopAll();
    await origin?.shutdown('test');
    await stopAllServices();
  });

  const concrete = (path: string): string => path.replace('{app}', 'live').replace('{name}', 'demo');

  it('every documented GET answers 200 with the token, and /api/* answers 401 without it', async () => {
    for (const [path, ops] of Object.entries(spec.paths)) {
      if (!ops['get']) continue;
      const url = base + concrete(path);
      const ok = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(ok.status, 200, `GET ${path}`);
      assert.ok(ops['get'].responses['200'], `${path} documents 200`);
      if (path.startsWith('/api/')) {
        const denied = await fetch(url);
        assert.equal(denied.status, 401, `GET ${path} without a token`);
        assert.ok(ops['get'].responses['401'], `${path} documents 401`);
      } else {
        assert.deepEqual(ops['get'].security, [], `${path} is documented as open`);
      }
    }
  });

  it('the token guards the routes, not URL text: encoded spellings of /api need it too', async () => {
    const kick = JSON.stringify({ key: 'live/demo', what: 'publisher', reason: 'bypass' });
    for (const path of [
      '/%61pi/cluster/kick',
      '/%61%70%69/cluster/kick',
      '/api/cluster/%6Bick',
      '/api/cluster/kick?x=1',
    ]) {
      const res = await fetch(base + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: kick,
      });
      assert.equal(res.status, 401, `POST ${path} without a token`);
      assert.deepEqual(await res.json(), { error: 'unauthorized' });
    }
    for (const path of ['/%61pi/cluster/streams', '/%61pi/cluster/streams/live/demo', '/api/nod%65']) {
      const res = await fetch(base + path);
      assert.equal(res.status, 401, `GET ${path} without a token`);
      await res.body?.cancel();
    }
    // Nothing was kicked: the publisher is still live (a kick is dropped at once by the owning origin, this one).
    const live = await fetch(`${base}/api/cluster/streams/live/demo`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(live.status, 200);
    await live.body?.cancel();
    assert.equal(publisher.child.exitCode, null, 'the publisher is still running');
  });

  it('an admin kick of viewers reaches RTMP and HTTP-FLV viewers alike', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const rtmpViewer = await RtmpClient.connect(`rtmp://127.0.0.1:${origin.rtmpPort}/live/demo`);
    await rtmpViewer.play();
    const flv = await fetch(`${base}/live/demo.flv`);
    assert.equal(flv.status, 200);
    const reader = flv.body!.getReader();
    await reader.read();
    const kick = await fetch(`${base}/api/cluster/kick`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ key: 'live/demo', what: 'viewers' }),
    });
    assert.equal(kick.status, 202);
    await waitFor('the RTMP viewer to be disconnected', () => rtmpViewer.closed, 5000);
    const ended = await waitFor(
      'the HTTP-FLV response to end',
      async () => {
        for (;;) {
          const r = await reader.read().catch(() => ({ done: true }));
          if (r.done) return true;
        }
      },
      5000,
    );
    assert.equal(ended, true);
  });

  it('documented 404s and the kick command behave as documented', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    for (const path of ['/api/streams/{app}/{name}', '/api/cluster/streams/{app}/{name}']) {
      const res = await fetch(base + path.replace('{app}', 'live').replace('{name}', 'nope'), { headers: auth });
      assert.equal(res.status, 404, path);
      assert.ok(spec.paths[path]!['get']!.responses['404']);
    }
    const bad = await fetch(`${base}/api/cluster/kick`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ key: 'live/demo', what: 'everything' }),
    });
    assert.equal(bad.status, 400);
    const kick = await fetch(`${base}/api/cluster/kick`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ key: 'live/demo', what: 'publisher', reason: 'test' }),
    });
    assert.equal(kick.status, 202);
    assert.ok(spec.paths['/api/cluster/kick']!['post']!.responses['202']);
    // The kick travels over NATS to the owning origin (this one), which drops the FFmpeg publisher.
    const exit = await publisher.exited;
    assert.equal(exit.timedOut, false, 'the publisher was disconnected by the kick');
  });

  it('while Redis is down the node turns not-ready and the cluster API answers 503', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    await redis.kill();
    await waitFor('readyz 503', async () => (await fetch(`${base}/readyz`)).status === 503, 10_000);
    const res = await fetch(`${base}/api/cluster/streams`, { headers: auth });
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { error: 'cluster registry unavailable' });
    await redis.restart();
    await waitFor('readyz 200 again', async () => (await fetch(`${base}/readyz`)).status === 200, 15_000);
  });
});
