/**
 * The HTTP listeners' guards: the API token applies to every request the router sends to an /api route (however its
 * URL is spelled), /metrics and /api can live on a separate admin listener only, and connection cap and slow-client
 * timeouts hold.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { HubRegistry, type StreamHub } from '@rtmp-relay/hub';
import { MessageType } from '@rtmp-relay/rtmp';
import { Registry } from 'prom-client';
import WebSocket from 'ws';
import type { ClusterApi } from '../src/cluster/api.js';
import { startHttpServer, type HttpServerOptions, type RunningHttpServer } from '../src/http.js';
import { createLogger } from '../src/logger.js';
import { AuthFailureLimiter, LiveWaiters, LocalStreamPolicy, StreamAccess } from '../src/streams/index.js';
import { startTestNode, type NodeUnderTest } from './support/node-under-test.js';
import { waitFor } from './support/processes.js';

const TOKEN = 'guard-test-token';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const KICK_BODY = JSON.stringify({ key: 'live/foo', what: 'publisher' });
const REQUEST_BOUND_MS = 5000;

interface RawResponse {
  status: number;
  body: string;
}

/**
 * One request with the request target sent exactly as given (fetch and URL normalize dot segments and `//`; an
 * attacker's client does not).
 */
function rawRequest(
  port: number,
  method: string,
  target: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: target,
        agent: false,
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.setTimeout(REQUEST_BOUND_MS, () => req.destroy(new Error(`${method} ${target}: no answer`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** A cluster backend that records kicks (what the API would send over NATS). */
function recordingCluster(): ClusterApi & { kicks: unknown[] } {
  const kicks: unknown[] = [];
  return {
    kicks,
    listNodes: async () => [{ id: 'n1' }],
    listStreams: async () => [{ key: 'live/foo' }],
    getStream: async (key) => (key === 'live/foo' ? { key } : undefined),
    kick: async (cmd) => {
      kicks.push(cmd);
    },
  };
}

function baseOptions(overrides: Partial<HttpServerOptions> = {}): HttpServerOptions {
  return {
    host: '127.0.0.1',
    port: 0,
    logger: createLogger('silent'),
    register: new Registry(),
    isReady: () => true,
    listStreams: () => [{ key: 'live/foo' }],
    getStream: (key) => (key === 'live/foo' ? { key } : undefined),
    nodeInfo: () => ({ id: 'guard-node' }),
    ...overrides,
  };
}

/** Spellings of /api/cluster/kick that a router might map to the route, and that a text prefix check would not. */
const KICK_SPELLINGS = [
  '/api/cluster/kick',
  '/%61pi/cluster/kick',
  '/%61%70%69/cluster/kick',
  '/api/%63luster/kick',
  '/api/cluster/%6Bick',
  '/%2561pi/cluster/kick',
  '/API/cluster/kick',
  '/Api/cluster/kick',
  '//api/cluster/kick',
  '/api//cluster/kick',
  '/api/./cluster/kick',
  '/./api/cluster/kick',
  '/x/../api/cluster/kick',
  '/api/cluster/../cluster/kick',
  '/%2e/api/cluster/kick',
  '/api%2Fcluster%2Fkick',
  '/api%2fcluster/kick',
  '/api/cluster/kick/',
  '/api/cluster/kick?x=1',
  '/api/cluster/kick?',
  '/api/cluster/kick;x=1',
  '/api/cluster/kick%3Fx',
  '/api/cluster/kick#f',
  '/api/cluster/kick%00',
  '\\api\\cluster\\kick',
  'http://evil/api/cluster/kick',
  'http://evil/%61pi/cluster/kick',
];

const GET_SPELLINGS = [
  '/api/node',
  '/%61pi/node',
  '/api/nod%65',
  '//api/node',
  '/api/./node',
  '/x/../api/node',
  '/api/node/',
  '/api/node?x=1',
  '/api/streams',
  '/%61pi/streams',
  '/api/streams/live/foo',
  '/%61pi/streams/live/foo',
  '/api/streams/live%2Ffoo',
  '/api/cluster/nodes',
  '/%61pi/cluster/nodes',
  '/api/cluster/streams',
  '/%61pi/cluster/streams/live/foo',
  '/api%2Fcluster%2Fstreams',
];

describe('API token: every request routed to /api is guarded, however its URL is spelled', () => {
  const cluster = recordingCluster();
  let server: RunningHttpServer;

  before(async () => {
    server = await startHttpServer(baseOptions({ apiToken: TOKEN, cluster }));
  });
  after(async () => {
    await server?.close();
  });

  it('POST /%61pi/cluster/kick without the token is 401 and kicks nothing (today: 202, the publisher is kicked)', async () => {
    const res = await rawRequest(server.port, 'POST', '/%61pi/cluster/kick', {}, KICK_BODY);
    assert.equal(res.status, 401, res.body);
    assert.deepEqual(JSON.parse(res.body), { error: 'unauthorized' });
    assert.equal(cluster.kicks.length, 0);
  });

  it('no spelling of POST /api/cluster/kick is accepted without the token; those the router maps are 202 with it', async () => {
    const routed: string[] = [];
    for (const target of KICK_SPELLINGS) {
      cluster.kicks.length = 0;
      let denied: RawResponse;
      try {
        denied = await rawRequest(server.port, 'POST', target, {}, KICK_BODY);
      } catch (err) {
        // Node's parser may refuse a malformed target outright (connection closed): refused is fine too.
        assert.match(String(err), /socket hang up|ECONNRESET|Parse Error/, target);
        continue;
      }
      assert.equal(cluster.kicks.length, 0, `${target} without a token kicked`);
      assert.ok(denied.status === 401 || denied.status === 404 || denied.status === 400, `${target}: ${denied.status}`);

      const allowed = await rawRequest(server.port, 'POST', target, AUTH, KICK_BODY);
      if (allowed.status === 202) {
        routed.push(target);
        assert.equal(denied.status, 401, `${target} reaches the route, so it must be 401 without the token`);
        assert.deepEqual(JSON.parse(denied.body), { error: 'unauthorized' });
        assert.deepEqual(JSON.parse(allowed.body), { accepted: true });
        assert.deepEqual(cluster.kicks, [{ key: 'live/foo', what: 'publisher' }]);
      } else {
        assert.ok(allowed.status === 404 || allowed.status === 400, `${target} with a token: ${allowed.status}`);
        assert.equal(cluster.kicks.length, 0);
      }
    }
    // The plain path and the percent-encoded ones certainly reach the route (the router decodes); so do the query
    // string forms.
    for (const t of ['/api/cluster/kick', '/%61pi/cluster/kick', '/%61%70%69/cluster/kick', '/api/cluster/%6Bick']) {
      assert.ok(routed.includes(t), `${t} routed (${routed.join(' ')})`);
    }
    assert.ok(routed.includes('/api/cluster/kick?x=1'));
  });

  it('no spelling of a GET /api route answers without the token; those the router maps are 200 with it', async () => {
    const routed: string[] = [];
    for (const target of GET_SPELLINGS) {
      for (const method of ['GET', 'HEAD']) {
        const denied = await rawRequest(server.port, method, target);
        assert.ok(denied.status === 401 || denied.status === 404, `${method} ${target}: ${denied.status}`);
        assert.doesNotMatch(denied.body, /guard-node|live\/foo"|n1/, `${method} ${target} leaked data`);
        const allowed = await rawRequest(server.port, method, target, AUTH);
        if (allowed.status === 200) {
          if (method === 'GET') routed.push(target);
          assert.equal(
            denied.status,
            401,
            `${method} ${target} reaches the route, so it must be 401 without the token`,
          );
        } else {
          assert.equal(allowed.status, 404, `${method} ${target} with a token: ${allowed.status}`);
        }
      }
    }
    for (const t of ['/api/node', '/%61pi/node', '/api/nod%65', '/%61pi/streams/live/foo', '/%61pi/cluster/nodes']) {
      assert.ok(routed.includes(t), `${t} routed (${routed.join(' ')})`);
    }
    const node = await rawRequest(server.port, 'GET', '/%61pi/node', AUTH);
    assert.deepEqual(JSON.parse(node.body), { id: 'guard-node' });
  });

  it('a WebSocket upgrade to an encoded /api path without the token gets 401, not data', async () => {
    const socket = net.connect(server.port, '127.0.0.1');
    const received = await new Promise<string>((resolve, reject) => {
      let text = '';
      // Without a WebSocket route the server answers it as a plain request and may keep the connection: the status
      // line is enough.
      socket.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('\r\n\r\n')) socket.destroy();
      });
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
      socket.setTimeout(REQUEST_BOUND_MS, () => socket.destroy(new Error('no answer')));
      socket.write(
        'GET /%61pi/node HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
    });
    assert.doesNotMatch(received, /guard-node/);
    assert.match(received, /^HTTP\/1\.1 401/);
  });

  it('health, readiness and metrics stay open', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const res = await rawRequest(server.port, 'GET', path);
      assert.equal(res.status, 200, path);
    }
  });
});

describe('admin listener: /metrics and /api only there', () => {
  let server: RunningHttpServer;

  before(async () => {
    server = await startHttpServer(
      baseOptions({ apiToken: TOKEN, cluster: recordingCluster(), admin: { host: '127.0.0.1', port: 0 } }),
    );
  });
  after(async () => {
    await server?.close();
  });

  it('binds a second, free port', () => {
    assert.ok(server.adminPort !== undefined && server.adminPort > 0, `adminPort ${server.adminPort}`);
    assert.notEqual(server.adminPort, server.port);
  });

  it('the public port answers 404 for /metrics and every /api route, with or without the token', async () => {
    const paths = ['/metrics', '/api/node', '/api/streams', '/api/streams/live/foo', '/api/cluster/nodes'];
    for (const path of [...paths, '/%61pi/node', '/%6Detrics']) {
      for (const headers of [{}, AUTH]) {
        const res = await rawRequest(server.port, 'GET', path, headers);
        assert.equal(res.status, 404, `public ${path}`);
        assert.equal((JSON.parse(res.body) as { error: string }).error, 'not found');
      }
    }
    const kick = await rawRequest(server.port, 'POST', '/api/cluster/kick', AUTH, KICK_BODY);
    assert.equal(kick.status, 404);
  });

  it('the admin port serves /metrics and /api (token required), and health', async () => {
    const port = server.adminPort!;
    const metrics = await rawRequest(port, 'GET', '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^# TYPE http_connections_rejected_total counter$/m);
    assert.equal((await rawRequest(port, 'GET', '/api/node')).status, 401);
    assert.equal((await rawRequest(port, 'GET', '/%61pi/node')).status, 401);
    const node = await rawRequest(port, 'GET', '/api/node', AUTH);
    assert.equal(node.status, 200);
    assert.deepEqual(JSON.parse(node.body), { id: 'guard-node' });
    assert.equal((await rawRequest(port, 'POST', '/%61pi/cluster/kick', {}, KICK_BODY)).status, 401);
    assert.equal((await rawRequest(port, 'POST', '/api/cluster/kick', AUTH, KICK_BODY)).status, 202);
    for (const path of ['/healthz', '/readyz']) assert.equal((await rawRequest(port, 'GET', path)).status, 200, path);
  });

  it('health and readiness are on the public port; each index lists what its port serves', async () => {
    assert.deepEqual(JSON.parse((await rawRequest(server.port, 'GET', '/healthz')).body), { status: 'ok' });
    assert.deepEqual(JSON.parse((await rawRequest(server.port, 'GET', '/readyz')).body), { ready: true });
    const pub = JSON.parse((await rawRequest(server.port, 'GET', '/')).body) as { endpoints: string[] };
    assert.ok(!pub.endpoints.some((e) => e.includes('/api') || e === '/metrics'), pub.endpoints.join());
    const adm = JSON.parse((await rawRequest(server.adminPort!, 'GET', '/')).body) as { endpoints: string[] };
    assert.ok(adm.endpoints.includes('/metrics') && adm.endpoints.includes('POST /api/cluster/kick'));
  });

  it('close() closes both listeners', async () => {
    const s = await startHttpServer(baseOptions({ admin: { host: '127.0.0.1', port: 0 } }));
    assert.ok(s.adminPort);
    assert.equal((await rawRequest(s.adminPort, 'GET', '/healthz')).status, 200);
    await s.close();
    for (const port of [s.port, s.adminPort!]) {
      await assert.rejects(rawRequest(port, 'GET', '/healthz'), /ECONNREFUSED/, `port ${port} still open`);
    }
  });

  it('an admin port already in use fails the start and leaves no public listener behind', async () => {
    const taken = await startHttpServer(baseOptions());
    try {
      await assert.rejects(
        startHttpServer(baseOptions({ admin: { host: '127.0.0.1', port: taken.port } })),
        /EADDRINUSE/,
      );
    } finally {
      await taken.close();
    }
  });
});

/** Opens a TCP connection; resolves when it is connected (the server has accepted or is about to drop it). */
function openSocket(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
}

/** Resolves with what the server sent before closing the socket, or rejects after `ms`. */
function closedWithin(socket: net.Socket, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    if (socket.destroyed) return resolve(text);
    const timer = setTimeout(() => reject(new Error(`socket still open after ${ms} ms`)), ms);
    socket.on('data', (d: Buffer) => (text += d.toString()));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}

/** http_connections_rejected_total{listener, reason="max_connections"} from a metrics text. */
function rejectedSample(text: string, listener: string): number | undefined {
  const m = new RegExp(
    `^http_connections_rejected_total\\{listener="${listener}",reason="max_connections"\\} (\\d+)$`,
    'm',
  ).exec(text);
  return m ? Number(m[1]) : undefined;
}

describe('HTTP connection cap', () => {
  const MAX = 3;
  let server: RunningHttpServer;

  before(async () => {
    server = await startHttpServer(baseOptions({ maxConnections: MAX, admin: { host: '127.0.0.1', port: 0 } }));
  });
  after(async () => {
    await server?.close();
  });

  it('past maxConnections a new connection is closed unanswered and counted; a freed slot is usable again', async () => {
    const held = await Promise.all(Array.from({ length: MAX }, () => openSocket(server.port)));
    // The held connections are real HTTP clients: one answered request each keeps them open (keep-alive).
    for (const s of held) {
      const answered = new Promise<string>((resolve) => s.once('data', (d: Buffer) => resolve(d.toString())));
      s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.match(await answered, /^HTTP\/1\.1 200/);
    }
    const extra = await openSocket(server.port);
    extra.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(await closedWithin(extra, REQUEST_BOUND_MS), '', 'the over-cap connection got no answer');

    // The cap is per listener: the admin port still answers, and counts the public drop.
    const metrics = await rawRequest(server.adminPort!, 'GET', '/metrics');
    assert.equal(rejectedSample(metrics.body, 'public'), 1);

    held[0]!.destroy();
    await waitFor(
      'a freed slot on the public port',
      async () => (await rawRequest(server.port, 'GET', '/healthz').catch(() => undefined))?.status === 200,
      REQUEST_BOUND_MS,
    );
    for (const s of held) s.destroy();
  });
});

describe('slow clients (slowloris) are cut off; long responses are not', () => {
  const timeouts = { headersMs: 300, requestMs: 600, keepAliveMs: 300, checkIntervalMs: 100 };
  let server: RunningHttpServer;

  before(async () => {
    server = await startHttpServer(baseOptions({ timeouts }));
  });
  after(async () => {
    await server?.close();
  });

  it('a connection that never completes its headers gets 408 and is closed', async () => {
    const s = await openSocket(server.port);
    s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    const text = await closedWithin(s, REQUEST_BOUND_MS);
    assert.match(text, /^HTTP\/1\.1 408/);
  });

  it('a connection that sends nothing is closed', async () => {
    const s = await openSocket(server.port);
    await closedWithin(s, REQUEST_BOUND_MS);
  });

  it('a body trickled slower than requestTimeout gets 408 and is closed', async () => {
    const s = await openSocket(server.port);
    s.write(
      'POST /api/cluster/kick HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{',
    );
    const trickle = setInterval(() => s.writable && s.write(' '), timeouts.checkIntervalMs);
    try {
      const text = await closedWithin(s, REQUEST_BOUND_MS);
      assert.match(text, /^HTTP\/1\.1 408/);
    } finally {
      clearInterval(trickle);
    }
  });

  it('an idle keep-alive connection is closed after keepAliveTimeout', async () => {
    const s = await openSocket(server.port);
    const answered = new Promise<string>((resolve) => s.once('data', (d: Buffer) => resolve(d.toString())));
    s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(await answered, /^HTTP\/1\.1 200/);
    await closedWithin(s, REQUEST_BOUND_MS);
  });
});

/** A hub with a publisher that pushes a small video frame every FRAME_INTERVAL_MS, and HTTP-FLV/WS-FLV on top. */
describe('HTTP-FLV and WS-FLV under the slow-client bounds and the connection cap', () => {
  const timeouts = { headersMs: 300, requestMs: 600, keepAliveMs: 300, checkIntervalMs: 100 };
  /** Several requestTimeouts and check intervals: a play this long would have been cut if the bound applied to it. */
  const PLAY_MS = 4 * timeouts.requestMs;
  const FRAME_INTERVAL_MS = 40;
  const MAX = 3;
  const registry = new HubRegistry({ audioCoalesceMs: 0 });
  const noop = (): void => {};
  const access = new StreamAccess({
    registry,
    policy: new LocalStreamPolicy(new LiveWaiters(registry).waitForLive, 0),
    authorizer: undefined,
    clusterTokens: undefined,
    playsNeedClusterToken: false,
    authFailures: new AuthFailureLimiter(0, 60_000),
    observer: {
      publishStarted: noop,
      publishStopped: noop,
      viewerStarted: noop,
      viewerStopped: noop,
      publishRejected: noop,
      playRejected: noop,
    },
    log: createLogger('silent'),
  });
  let server: RunningHttpServer;
  let hub: StreamHub;
  let pusher: NodeJS.Timeout;

  before(async () => {
    hub = registry.getOrCreate('live/long');
    hub.attachPublisher({ id: 'pub', kick: noop });
    const push = (ts: number, payload: Buffer): void =>
      hub.push({ type: MessageType.Video, streamId: 1, timestamp: ts, payload });
    push(0, Buffer.from([0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 1])); // AVC sequence header
    push(0, Buffer.concat([Buffer.from([0x17, 1, 0, 0, 0]), Buffer.alloc(500, 1)])); // keyframe
    let ts = 0;
    pusher = setInterval(
      () => push((ts += FRAME_INTERVAL_MS), Buffer.from([0x27, 1, 0, 0, 0, 2, 2, 2])),
      FRAME_INTERVAL_MS,
    );
    server = await startFlvServer();
  });
  const startFlvServer = (): Promise<RunningHttpServer> =>
    startHttpServer(
      baseOptions({ flv: { access }, timeouts, maxConnections: MAX, admin: { host: '127.0.0.1', port: 0 } }),
    );
  after(async () => {
    clearInterval(pusher);
    await server?.close();
    hub?.close('test');
  });

  /** Opens a WS-FLV play; resolves once its first message arrived. */
  const wsPlay = (port = server.port): Promise<{ ws: WebSocket; messages: () => number }> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/live/long.flv`);
      let n = 0;
      ws.on('message', () => {
        if (++n === 1) resolve({ ws, messages: () => n });
      });
      ws.on('error', reject);
      ws.on('close', (code: number) => reject(new Error(`ws closed ${code} before its first message`)));
    });

  it('the public port still cuts slow requests here (the bounds are active)', async () => {
    const s = await openSocket(server.port);
    s.write('GET /live/long.flv HTTP/1.1\r\nHost: x\r\n');
    assert.match(await closedWithin(s, REQUEST_BOUND_MS), /^HTTP\/1\.1 408/);
  });

  it(`an HTTP-FLV and a WS-FLV play last ${PLAY_MS} ms (4 x requestTimeout) and keep receiving`, async () => {
    let httpBytes = 0;
    let httpEnded = false;
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.get(`http://127.0.0.1:${server.port}/live/long.flv`, { agent: false }, resolve);
      req.on('error', reject);
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'video/x-flv');
    res.on('data', (d: Buffer) => (httpBytes += d.length));
    res.on('end', () => (httpEnded = true));
    res.on('close', () => (httpEnded = true));
    const ws = await wsPlay();
    let wsClosed = false;
    ws.ws.on('close', () => (wsClosed = true));

    const started = performance.now();
    await waitFor(
      'the plays to outlast the request bounds',
      () => performance.now() - started >= PLAY_MS || httpEnded || wsClosed,
      PLAY_MS * 2,
    );
    assert.equal(httpEnded, false, 'the HTTP-FLV response was cut');
    assert.equal(wsClosed, false, 'the WS-FLV connection was cut');
    // Still flowing at the end, not just still open.
    const [b0, m0] = [httpBytes, ws.messages()];
    await waitFor('more media on both', () => httpBytes > b0 && ws.messages() > m0, REQUEST_BOUND_MS);
    res.destroy();
    ws.ws.terminate();
  });

  it('WebSocket-FLV connections count against maxConnections; the next connection is dropped and counted', async () => {
    // A server of its own: every slot free at the start.
    const capped = await startFlvServer();
    try {
      const plays = [];
      for (let i = 0; i < MAX; i++) plays.push(await wsPlay(capped.port));
      const extra = await openSocket(capped.port);
      extra.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.equal(await closedWithin(extra, REQUEST_BOUND_MS), '', 'the over-cap connection got no answer');
      await assert.rejects(wsPlay(capped.port), 'a fourth WS-FLV play is refused too');
      const metrics = await rawRequest(capped.adminPort!, 'GET', '/metrics');
      // baseOptions gives every server a fresh Registry: these are this server's drops alone.
      assert.equal(rejectedSample(metrics.body, 'public'), 2);
      // The plays are unaffected; closing one frees a slot.
      for (const p of plays) assert.equal(p.ws.readyState, WebSocket.OPEN);
      plays[0]!.ws.terminate();
      await waitFor(
        'a freed slot',
        async () => (await rawRequest(capped.port, 'GET', '/healthz').catch(() => undefined))?.status === 200,
        REQUEST_BOUND_MS,
      );
      for (const p of plays) p.ws.terminate();
    } finally {
      await capped.close();
    }
  });
});

describe('a node with ADMIN_PORT set', () => {
  let node: NodeUnderTest;

  before(async () => {
    node = await startTestNode({
      ADMIN_HOST: '127.0.0.1',
      ADMIN_PORT: '0',
      API_TOKEN: TOKEN,
      MAX_HTTP_CONNECTIONS: '50',
    });
  });
  after(async () => {
    await node?.shutdown('test');
  });

  it('serves /metrics and /api on the admin port only; health on both', async () => {
    assert.ok(node.adminPort !== undefined && node.adminPort !== node.httpPort, `adminPort ${node.adminPort}`);
    for (const path of ['/metrics', '/api/node', '/%61pi/node', '/api/streams']) {
      assert.equal((await rawRequest(node.httpPort, 'GET', path, AUTH)).status, 404, `public ${path}`);
    }
    assert.equal((await rawRequest(node.adminPort, 'GET', '/metrics')).status, 200);
    assert.equal((await rawRequest(node.adminPort, 'GET', '/%61pi/node')).status, 401);
    const info = await rawRequest(node.adminPort, 'GET', '/api/node', AUTH);
    assert.equal(info.status, 200);
    assert.equal((JSON.parse(info.body) as { role: string }).role, 'standalone');
    for (const port of [node.httpPort, node.adminPort]) {
      assert.equal((await rawRequest(port, 'GET', '/healthz')).status, 200);
      assert.equal((await rawRequest(port, 'GET', '/readyz')).status, 200);
    }
  });
});
