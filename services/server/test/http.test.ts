import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { startHttpServer } from '../src/http.js';
import { createLogger } from '../src/logger.js';
import { createMetrics, HotCounters } from '../src/metrics.js';

const METRIC_NAMES = [
  'rtmp_connections',
  'rtmp_connections_total',
  'rtmp_connections_rejected_total',
  'rtmp_publishers',
  'rtmp_viewers',
  'rtmp_streams',
  'rtmp_bytes_in_total',
  'rtmp_bytes_out_total',
  'rtmp_messages_in_total',
  'rtmp_messages_dropped_total',
  'rtmp_slow_viewers_disconnected_total',
  'rtmp_connection_errors_total',
  'rtmp_publish_rejected_total',
  'rtmp_play_rejected_total',
];

/** The value of one sample line (`name{labels} value`) in Prometheus text, or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

describe('http server', () => {
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(chunk.toString());
      cb();
    },
  });
  const logger = createLogger('info', { nodeId: 'test-node', role: 'standalone' }, sink);
  const hot = new HotCounters();
  const metrics = createMetrics(new Registry(), hot);
  const streams = new Map<string, object>([
    ['live/foo', { key: 'live/foo', live: true, viewers: 2 }],
    ['live/bar', { key: 'live/bar', live: false, viewers: 0 }],
  ]);
  let ready = true;
  let server: { port: number; close(): Promise<void> };
  let base = '';

  before(async () => {
    server = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      logger,
      register: metrics.register,
      isReady: () => ready,
      listStreams: () => [...streams.values()],
      getStream: (key) => streams.get(key),
      nodeInfo: () => ({ id: 'test-node', role: 'standalone' }),
    });
    base = `http://127.0.0.1:${server.port}`;
  });

  after(async () => {
    await server.close();
  });

  it('binds an ephemeral port when asked for port 0', () => {
    assert.ok(server.port > 0 && server.port < 65536);
  });

  it('GET /healthz', async () => {
    const res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await res.json(), { status: 'ok' });
  });

  it('GET /readyz flips between 200 and 503', async () => {
    let res = await fetch(`${base}/readyz`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await res.json(), { ready: true });
    ready = false;
    res = await fetch(`${base}/readyz`);
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { ready: false });
    ready = true;
    res = await fetch(`${base}/readyz`);
    assert.equal(res.status, 200);
    await res.body?.cancel();
  });

  it('GET /metrics serves Prometheus text with every metric', async () => {
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), metrics.register.contentType);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    for (const name of METRIC_NAMES) assert.match(text, new RegExp(`^# TYPE ${name} (counter|gauge)$`, 'm'), name);
    assert.match(text, /^process_cpu_user_seconds_total /m, 'default process metrics');
    assert.match(text, /^nodejs_heap_size_used_bytes /m);
    assert.equal(sample(text, 'rtmp_viewers{protocol="rtmp"}'), 0);
  });

  it('GET /metrics reports HotCounters deltas and direct metrics after each scrape', async () => {
    const scrape = async () => (await fetch(`${base}/metrics`)).text();
    await scrape(); // baseline
    hot.bytesOut += 1000;
    hot.bytesIn += 500;
    hot.messageIn('video', 100);
    hot.messageIn('video', 100);
    hot.messageIn('audio', 10);
    hot.dropped('video', 'slow_viewer');
    hot.dropped('video', 'slow_viewer');
    metrics.connections.inc();
    metrics.connectionsRejected.inc({ reason: 'max_connections' });
    let text = await scrape();
    const before = {
      out: sample(text, 'rtmp_bytes_out_total'),
      in: sample(text, 'rtmp_bytes_in_total'),
    };
    assert.equal(before.out, 1000);
    assert.equal(before.in, 500);
    assert.equal(sample(text, 'rtmp_messages_in_total{kind="video"}'), 2);
    assert.equal(sample(text, 'rtmp_messages_in_total{kind="audio"}'), 1);
    assert.equal(sample(text, 'rtmp_messages_in_total{kind="data"}'), 0);
    assert.equal(sample(text, 'rtmp_messages_dropped_total{kind="video",reason="slow_viewer"}'), 2);
    assert.equal(sample(text, 'rtmp_connections'), 1);
    assert.equal(sample(text, 'rtmp_connections_rejected_total{reason="max_connections"}'), 1);

    // A scrape with no new activity does not double count.
    text = await scrape();
    assert.equal(sample(text, 'rtmp_bytes_out_total'), 1000);
    assert.equal(sample(text, 'rtmp_messages_in_total{kind="video"}'), 2);
    assert.equal(sample(text, 'rtmp_messages_dropped_total{kind="video",reason="slow_viewer"}'), 2);

    hot.bytesOut += 24;
    hot.messageIn('data');
    hot.dropped('audio', 'slow_viewer');
    text = await scrape();
    assert.equal(sample(text, 'rtmp_bytes_out_total'), 1024);
    assert.equal(sample(text, 'rtmp_messages_in_total{kind="data"}'), 1);
    assert.equal(sample(text, 'rtmp_messages_dropped_total{kind="audio",reason="slow_viewer"}'), 1);
  });

  it('GET /api/streams lists streams', async () => {
    const res = await fetch(`${base}/api/streams`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await res.json(), { streams: [...streams.values()] });
  });

  it('GET /api/streams/<app>/<name> returns one stream, 404 JSON when unknown', async () => {
    let res = await fetch(`${base}/api/streams/live/foo`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), streams.get('live/foo'));

    res = await fetch(`${base}/api/streams/live/nope`);
    assert.equal(res.status, 404);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await res.json(), { error: 'stream not found', key: 'live/nope' });

    res = await fetch(`${base}/api/streams/`);
    assert.equal(res.status, 404);
    await res.body?.cancel();
  });

  it('GET /api/node', async () => {
    const res = await fetch(`${base}/api/node`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { id: 'test-node', role: 'standalone' });
  });

  it('unknown paths get a 404 JSON error', async () => {
    const res = await fetch(`${base}/nope`);
    assert.equal(res.status, 404);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(((await res.json()) as { error: string }).error, 'not found');
  });

  it('does not log requests (fastify bound at warn level)', () => {
    assert.equal(logLines.filter((l) => l.includes('"reqId"') || l.includes('incoming request')).length, 0);
  });

  it('logs JSON lines carrying the base fields', () => {
    logger.info('hello');
    const line = JSON.parse(logLines.at(-1)!) as Record<string, unknown>;
    assert.equal(line.msg, 'hello');
    assert.equal(line.level, 'info');
    assert.equal(line.nodeId, 'test-node');
    assert.equal(line.role, 'standalone');
  });
});

describe('http server lifecycle', () => {
  it('close() is idempotent and frees the port', async () => {
    const logger = createLogger('silent');
    const opts = {
      host: '127.0.0.1',
      port: 0,
      logger,
      register: new Registry(),
      isReady: () => true,
      listStreams: () => [],
      getStream: () => undefined,
      nodeInfo: () => ({}),
    };
    const a = await startHttpServer(opts);
    await Promise.all([a.close(), a.close()]);
    const b = await startHttpServer({ ...opts, port: a.port });
    assert.equal(b.port, a.port);
    await b.close();
  });
});
