import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Authorizer, type AuthAction, type AuthDenyReason } from '../src/auth/authorizer.js';
import {
  createToken,
  redactQuery,
  safeEqual,
  signedQuery,
  signStreamName,
  signStreamUrl,
  tokenPayload,
  verifyToken,
  type CreateTokenOptions,
} from '../src/auth/tokens.js';
import { WebhookClient, type HookBody, type HookObservation } from '../src/auth/webhooks.js';
import type { StreamRequest } from '../src/streams/types.js';
import { createHmac } from 'node:crypto';

const NOW_S = 1_767_225_600; // 2026-01-01T00:00:00Z
const NOW_MS = NOW_S * 1000;
const SECRET = 'publish-secret-0123456789';

function req(name = 'cam1', query = '', app = 'live'): StreamRequest {
  return {
    app,
    name,
    key: `${app}/${name}`,
    query: new URLSearchParams(query),
    clientIp: '203.0.113.7',
    sessionId: 's-1',
  };
}

function tokenQuery(o: Partial<CreateTokenOptions> = {}): URLSearchParams {
  return new URLSearchParams(
    signedQuery({ secret: SECRET, action: 'publish', app: 'live', name: 'cam1', expiresAt: NOW_S + 60, ...o }),
  );
}

function verify(query: URLSearchParams, o: Partial<Parameters<typeof verifyToken>[0]> = {}) {
  return verifyToken({
    defaultSecret: SECRET,
    action: 'publish',
    app: 'live',
    name: 'cam1',
    query,
    nowMs: NOW_MS,
    ...o,
  });
}

describe('tokens', () => {
  it('signs HMAC-SHA256 over action:app/name:expires as unpadded base64url', () => {
    const token = createToken({ secret: SECRET, action: 'play', app: 'live', name: 'cam1', expiresAt: NOW_S });
    const expected = createHmac('sha256', SECRET).update(`play:live/cam1:${NOW_S}`).digest('base64url');
    assert.equal(token, expected);
    assert.equal(tokenPayload('play', 'live', 'cam1', NOW_S), `play:live/cam1:${NOW_S}`);
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    // A Date is rounded down to seconds.
    assert.equal(
      createToken({ secret: SECRET, action: 'play', app: 'live', name: 'cam1', expiresAt: new Date(NOW_MS + 999) }),
      token,
    );
    assert.throws(() => createToken({ secret: '', action: 'play', app: 'live', name: 'cam1', expiresAt: NOW_S }));
    assert.throws(() => createToken({ secret: SECRET, action: 'play', app: 'live', name: 'cam1', expiresAt: 1.5 }));
  });

  it('builds signed names and URLs', () => {
    const o = { secret: SECRET, action: 'publish', app: 'live', name: 'cam1', expiresAt: NOW_S } as const;
    const token = createToken(o);
    assert.equal(signedQuery(o), `expires=${NOW_S}&token=${token}`);
    assert.equal(signStreamName(o), `cam1?expires=${NOW_S}&token=${token}`);
    assert.equal(
      signStreamUrl({ ...o, baseUrl: 'rtmp://edge.example.com:1935/' }),
      `rtmp://edge.example.com:1935/live/cam1?expires=${NOW_S}&token=${token}`,
    );
  });

  it('verifies a valid token', () => {
    assert.deepEqual(verify(tokenQuery()), { ok: true });
    // Extra parameters do not matter.
    const q = tokenQuery();
    q.append('foo', 'bar');
    assert.deepEqual(verify(q), { ok: true });
    // Padded base64url (some encoders add '=') is accepted.
    const padded = tokenQuery();
    padded.set('token', `${padded.get('token')}=`);
    assert.deepEqual(verify(padded), { ok: true });
  });

  it('rejects a wrong secret', () => {
    assert.deepEqual(verify(tokenQuery({ secret: 'other-secret' })), { ok: false, reason: 'token_invalid' });
  });

  it('rejects a token for another name, app or action', () => {
    assert.deepEqual(verify(tokenQuery({ name: 'cam2' })), { ok: false, reason: 'token_invalid' });
    assert.deepEqual(verify(tokenQuery({ app: 'other' })), { ok: false, reason: 'token_invalid' });
    assert.deepEqual(verify(tokenQuery({ action: 'play' })), { ok: false, reason: 'token_invalid' });
    assert.deepEqual(verify(tokenQuery(), { name: 'cam1x' }), { ok: false, reason: 'token_invalid' });
    assert.deepEqual(verify(tokenQuery(), { action: 'play' }), { ok: false, reason: 'token_invalid' });
  });

  it('rejects a tampered expiry or token', () => {
    const q = tokenQuery();
    q.set('expires', String(NOW_S + 3600));
    assert.deepEqual(verify(q), { ok: false, reason: 'token_invalid' });
    const z = tokenQuery();
    z.set('expires', `0${NOW_S + 60}`); // same number, different signed string
    assert.deepEqual(verify(z), { ok: false, reason: 'token_invalid' });
    const t = tokenQuery();
    const tok = t.get('token')!;
    t.set('token', (tok[0] === 'A' ? 'B' : 'A') + tok.slice(1));
    assert.deepEqual(verify(t), { ok: false, reason: 'token_invalid' });
    for (const bad of ['-5', '1e12', 'abc', '', ' 1']) {
      const b = tokenQuery();
      b.set('expires', bad);
      assert.deepEqual(verify(b), { ok: false, reason: 'token_invalid' }, `expires=${bad}`);
    }
  });

  it('rejects duplicate token or expires parameters', () => {
    const q = tokenQuery();
    q.append('token', q.get('token')!);
    assert.deepEqual(verify(q), { ok: false, reason: 'token_invalid' });
    const e = tokenQuery();
    e.append('expires', e.get('expires')!);
    assert.deepEqual(verify(e), { ok: false, reason: 'token_invalid' });
  });

  it('rejects an expired token, within a clock skew allowance', () => {
    const q = tokenQuery({ expiresAt: NOW_S - 10 });
    assert.deepEqual(verify(q), { ok: true }, 'default skew is 30 s');
    assert.deepEqual(verify(q, { skewSeconds: 0 }), { ok: false, reason: 'token_expired' });
    assert.deepEqual(verify(q, { skewSeconds: 5 }), { ok: false, reason: 'token_expired' });
    assert.deepEqual(verify(q, { skewSeconds: 10 }), { ok: true });
    assert.deepEqual(verify(tokenQuery({ expiresAt: NOW_S - 31 })), { ok: false, reason: 'token_expired' });
    // An expired token with a bad signature is invalid, not expired.
    assert.deepEqual(verify(tokenQuery({ expiresAt: NOW_S - 3600, secret: 'x' })), {
      ok: false,
      reason: 'token_invalid',
    });
  });

  it('reports a missing token', () => {
    assert.deepEqual(verify(new URLSearchParams()), { ok: false, reason: 'token_missing' });
    assert.deepEqual(verify(new URLSearchParams(`expires=${NOW_S}`)), { ok: false, reason: 'token_missing' });
    assert.deepEqual(verify(new URLSearchParams(`expires=${NOW_S}&token=`)), { ok: false, reason: 'token_missing' });
    const q = tokenQuery();
    q.delete('expires');
    assert.deepEqual(verify(q), { ok: false, reason: 'token_invalid' });
  });

  it('selects the per-app secret, then the default, and fails closed without one', () => {
    const secrets = { live: 'live-secret', studio: 'studio-secret' };
    const liveQ = tokenQuery({ secret: 'live-secret' });
    assert.deepEqual(verify(liveQ, { secrets, defaultSecret: undefined }), { ok: true });
    // The default secret does not open an app that has its own.
    assert.deepEqual(verify(tokenQuery(), { secrets }), { ok: false, reason: 'token_invalid' });
    // Another app's secret does not work either.
    assert.deepEqual(verify(tokenQuery({ secret: 'studio-secret' }), { secrets }), {
      ok: false,
      reason: 'token_invalid',
    });
    // An app without its own secret uses the default.
    const otherQ = tokenQuery({ app: 'other' });
    assert.deepEqual(verify(otherQ, { secrets, app: 'other' }), { ok: true });
    // No secret for the app at all: denied.
    assert.deepEqual(verify(otherQ, { secrets, defaultSecret: undefined, app: 'other' }), {
      ok: false,
      reason: 'token_invalid',
    });
    // Prototype names are not secrets.
    const protoQ = tokenQuery({ app: 'constructor', secret: 'x' });
    assert.deepEqual(verify(protoQ, { secrets, defaultSecret: undefined, app: 'constructor' }), {
      ok: false,
      reason: 'token_invalid',
    });
  });

  it('compares in constant time without throwing on unequal lengths', () => {
    assert.equal(safeEqual('abc', 'abc'), true);
    assert.equal(safeEqual('abc', 'abd'), false);
    assert.equal(safeEqual('abc', 'abcd'), false);
    assert.equal(safeEqual('', 'abcd'), false);
    assert.equal(safeEqual('é', 'ee'), false); // same string length, different byte length
    for (const t of ['short', 'A'.repeat(42), 'A'.repeat(44), 'A'.repeat(1000), '%00', 'é'.repeat(43)]) {
      const q = tokenQuery();
      q.set('token', t);
      assert.deepEqual(verify(q), { ok: false, reason: 'token_invalid' });
    }
  });

  it('redacts credentials in queries for logs', () => {
    const q = tokenQuery();
    q.append('key', 'stream-key');
    q.append('secret', 's');
    q.append('sign', 'x');
    q.append('password', 'p');
    q.append('Auth', 'a');
    q.append('foo', 'bar');
    const out = redactQuery(q);
    assert.equal(out, `expires=${NOW_S + 60}&token=***&key=***&secret=***&sign=***&password=***&Auth=***&foo=bar`);
    assert.ok(!out.includes(q.get('token')!));
    assert.equal(redactQuery('?token=abc&x=1'), 'token=***&x=1');
    assert.equal(redactQuery(''), '');
    // The input is not modified.
    assert.notEqual(q.get('token'), '***');
  });
});

// ---------------------------------------------------------------------------------------------------------------

interface Received {
  path: string;
  headers: IncomingMessage['headers'];
  body: HookBody;
}

describe('webhooks', () => {
  const received: Received[] = [];
  const waiters: ((r: Received) => void)[] = [];
  let server: Server;
  let base = '';
  let refusedUrl = '';

  function handler(r: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    r.on('data', (c: Buffer) => chunks.push(c));
    r.on('end', () => {
      const rec: Received = {
        path: r.url ?? '',
        headers: r.headers,
        body: JSON.parse(Buffer.concat(chunks).toString()) as HookBody,
      };
      received.push(rec);
      for (const w of waiters.splice(0)) w(rec);
      const status = Number(/^\/status\/(\d+)/.exec(rec.path)?.[1] ?? 200);
      if (rec.path.startsWith('/slow')) return; // never answers; closed in after()
      if (rec.path.startsWith('/redirect')) {
        res.writeHead(307, { location: `${base}/status/200` }).end();
        return;
      }
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? '0' : 'no');
    });
  }

  before(async () => {
    server = createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // A port that refuses connections: listen, note it, close.
    const tmp = createServer();
    await new Promise<void>((resolve) => tmp.listen(0, '127.0.0.1', resolve));
    refusedUrl = `http://127.0.0.1:${(tmp.address() as AddressInfo).port}/hook`;
    await new Promise<void>((resolve) => tmp.close(() => resolve()));
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function client(
    urls: { onPublish?: string; onPlay?: string; onPublishDone?: string; onPlayDone?: string },
    o: { timeoutMs?: number; failOpen?: boolean } = {},
  ) {
    const observed: HookObservation[] = [];
    const warnings: object[] = [];
    const c = new WebhookClient({
      ...urls,
      timeoutMs: o.timeoutMs ?? 1000,
      failOpen: o.failOpen ?? false,
      nodeId: 'node-a',
      observer: (x) => observed.push(x),
      log: { warn: (obj) => warnings.push(obj) },
    });
    return { c, observed, warnings };
  }

  it('2xx allows', async () => {
    for (const s of [200, 204]) {
      const { c, observed } = client({ onPublish: `${base}/status/${s}` });
      const v = await c.call('on_publish', req());
      assert.equal(v.allow, true);
      assert.equal(v.status, s);
      assert.equal(observed.length, 1);
      assert.equal(observed[0]!.outcome, 'allowed');
      assert.equal(observed[0]!.allowed, true);
      assert.ok(observed[0]!.latencyMs >= 0);
    }
  });

  it('403 denies, even with failOpen', async () => {
    for (const failOpen of [false, true]) {
      const { c, observed } = client({ onPublish: `${base}/status/403` }, { failOpen });
      const v = await c.call('on_publish', req());
      assert.equal(v.allow, false);
      assert.equal(!v.allow && v.reason, 'hook_denied');
      assert.equal(v.status, 403);
      assert.equal(observed[0]!.outcome, 'rejected');
    }
  });

  it('a redirect is not followed and denies', async () => {
    const before = received.length;
    const { c } = client({ onPublish: `${base}/redirect` });
    const v = await c.call('on_publish', req());
    assert.equal(v.allow, false);
    assert.equal(v.status, 307);
    assert.equal(received.length, before + 1);
  });

  it('500 denies', async () => {
    const { c, observed, warnings } = client({ onPlay: `${base}/status/500` });
    const v = await c.call('on_play', req());
    assert.equal(v.allow, false);
    assert.equal(!v.allow && v.reason, 'hook_failed');
    assert.equal(observed[0]!.outcome, 'server_error');
    assert.equal(warnings.length, 1);
  });

  it('a hook slower than the timeout denies, within the timeout', async () => {
    const { c, observed } = client({ onPublish: `${base}/slow` }, { timeoutMs: 200 });
    const t0 = performance.now();
    const v = await c.call('on_publish', req());
    const elapsed = performance.now() - t0;
    assert.equal(v.allow, false);
    assert.equal(!v.allow && v.reason, 'hook_timeout');
    assert.equal(observed[0]!.outcome, 'timeout');
    assert.ok(elapsed >= 150 && elapsed < 1500, `took ${elapsed} ms`);
  });

  it('connection refused denies', async () => {
    const { c, observed } = client({ onPublish: refusedUrl });
    const v = await c.call('on_publish', req());
    assert.equal(v.allow, false);
    assert.equal(!v.allow && v.reason, 'hook_failed');
    assert.equal(observed[0]!.outcome, 'network_error');
    assert.equal(observed[0]!.status, undefined);
  });

  it('failOpen allows on 5xx, timeouts and network errors', async () => {
    for (const [url, outcome] of [
      [`${base}/status/503`, 'server_error'],
      [`${base}/slow`, 'timeout'],
      [refusedUrl, 'network_error'],
    ] as const) {
      const { c, observed } = client({ onPublish: url }, { failOpen: true, timeoutMs: 150 });
      const v = await c.call('on_publish', req());
      assert.equal(v.allow, true, url);
      assert.equal(v.allow && v.failedOpen, true);
      assert.equal(observed[0]!.outcome, outcome);
      assert.equal(observed[0]!.failedOpen, true);
    }
  });

  it('posts the documented body, with an increasing seq', async () => {
    const { c } = client({ onPublish: `${base}/status/200?hooksecret=s3cr3t`, onPlay: `${base}/status/200` });
    const start = received.length;
    const r1 = req('cam1', 'expires=1&token=abc&tag=a&tag=b');
    await c.call('on_publish', r1);
    await c.call('on_play', { ...req('cam2'), sessionId: 's-2', clientIp: '::1' });
    const [a, b] = received.slice(start);
    assert.ok(a && b);
    assert.equal(a.headers['content-type'], 'application/json');
    const { seq: seqA, at: atA, ...restA } = a.body;
    assert.deepEqual(restA, {
      action: 'on_publish',
      app: 'live',
      name: 'cam1',
      key: 'live/cam1',
      clientIp: '203.0.113.7',
      query: { expires: '1', token: 'abc', tag: ['a', 'b'] },
      nodeId: 'node-a',
      sessionId: 's-1',
    });
    assert.equal(b.body.action, 'on_play');
    assert.equal(b.body.key, 'live/cam2');
    assert.equal(b.body.sessionId, 's-2');
    assert.equal(b.body.clientIp, '::1');
    assert.ok(Number.isSafeInteger(seqA));
    assert.ok(b.body.seq > seqA, 'seq increases');
    assert.ok(Math.abs(Date.parse(atA) - Date.now()) < 60_000);
    assert.match(atA, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('seq keeps increasing over many calls', () => {
    const { c } = client({});
    let last = 0;
    for (let i = 0; i < 10_000; i++) {
      const s = c.body('on_play', req()).seq;
      assert.ok(s > last);
      last = s;
    }
  });

  it('done hooks fire and their failures do not throw', async () => {
    const { c, observed, warnings } = client(
      { onPublishDone: `${base}/status/200`, onPlayDone: refusedUrl },
      { timeoutMs: 300 },
    );
    const start = received.length;
    c.notify('on_publish_done', req());
    c.notify('on_play_done', req());
    await c.idle();
    const got = received.slice(start);
    assert.equal(got.length, 1);
    assert.equal(got[0]!.body.action, 'on_publish_done');
    const byEvent = Object.fromEntries(observed.map((o) => [o.event, o]));
    assert.equal(byEvent['on_publish_done']!.outcome, 'allowed');
    assert.equal(byEvent['on_play_done']!.outcome, 'network_error');
    assert.equal(warnings.length, 1);
    // Hook URLs are logged without their query; request queries are never logged.
    assert.ok(!JSON.stringify(warnings).includes('token'));

    // A slow done hook is cut by the timeout; a throwing observer/logger does not escape.
    const slow = new WebhookClient({
      onPublishDone: `${base}/slow`,
      timeoutMs: 100,
      nodeId: 'node-a',
      observer: () => {
        throw new Error('observer');
      },
      log: {
        warn: () => {
          throw new Error('log');
        },
      },
    });
    const t0 = performance.now();
    slow.notify('on_publish_done', req());
    await slow.idle();
    assert.ok(performance.now() - t0 < 1500);
  });

  it('logs hook URLs without their query', async () => {
    const { c, warnings } = client({ onPublish: `${base}/status/502?hooksecret=s3cr3t` });
    await c.call('on_publish', req('cam1', 'token=abc'));
    assert.equal(warnings.length, 1);
    const text = JSON.stringify(warnings);
    assert.ok(!text.includes('s3cr3t'));
    assert.ok(!text.includes('abc'));
  });

  it('rejects bad configuration', () => {
    assert.throws(() => new WebhookClient({ onPublish: 'not a url', nodeId: 'n' }));
    assert.throws(() => new WebhookClient({ onPublish: 'ftp://x/y', nodeId: 'n' }));
    assert.throws(() => new WebhookClient({ onPublish: `${base}/x`, timeoutMs: 0, nodeId: 'n' }));
  });

  // ---------------------------------------------------------------------------------------------------------------

  describe('Authorizer', () => {
    function playToken(name = 'cam1', secret = 'play-secret', expiresAt = NOW_S + 60): string {
      return signedQuery({ secret, action: 'play', app: 'live', name, expiresAt });
    }
    function pubToken(name = 'cam1', secret = SECRET, expiresAt = NOW_S + 60): string {
      return signedQuery({ secret, action: 'publish', app: 'live', name, expiresAt });
    }
    function observing() {
      const denied: { action: AuthAction; reason: AuthDenyReason }[] = [];
      const hooks: HookObservation[] = [];
      return {
        denied,
        hooks,
        observer: {
          onDenied: (d: (typeof denied)[number]) => denied.push(d),
          onHook: (h: HookObservation) => hooks.push(h),
        },
      };
    }

    it('with nothing configured allows everything without I/O', async () => {
      const a = new Authorizer({ requirePlayToken: false, nodeId: 'n' });
      const realFetch = globalThis.fetch;
      globalThis.fetch = (() => {
        throw new Error('no I/O expected');
      }) as typeof fetch;
      try {
        assert.deepEqual(await a.authorizePublish(req()), { allow: true });
        assert.deepEqual(await a.authorizePlay(req()), { allow: true });
        a.publishDone(req());
        a.playDone(req());
        await a.idle();
      } finally {
        globalThis.fetch = realFetch;
      }
    });

    it('publish: token required when secrets are configured', async () => {
      const o = observing();
      const a = new Authorizer({
        defaultPublishSecret: SECRET,
        requirePlayToken: false,
        nodeId: 'n',
        now: () => NOW_MS,
        observer: o.observer,
      });
      assert.deepEqual(await a.authorizePublish(req('cam1', pubToken())), { allow: true });
      const cases: [string, string][] = [
        ['', 'token_missing'],
        [pubToken('cam1', 'wrong'), 'token_invalid'],
        [pubToken('cam2'), 'token_invalid'],
        [playToken('cam1', SECRET), 'token_invalid'],
        [pubToken('cam1', SECRET, NOW_S - 3600), 'token_expired'],
      ];
      for (const [q, reason] of cases) {
        const r = req('cam1', q);
        const d = await a.authorizePublish(r);
        assert.equal(d.allow, false, q);
        if (d.allow) continue;
        assert.equal(d.status, 'Denied');
        assert.equal(d.reason, reason);
        assert.ok(!d.description.includes('cam1'), 'no name in description');
        const token = r.query.get('token');
        if (token) assert.ok(!d.description.includes(token), 'no token in description');
        assert.ok(!/authmod|code=403/.test(d.description));
      }
      assert.deepEqual(
        o.denied.map((d) => d.reason),
        cases.map(([, r]) => r),
      );
      assert.ok(o.denied.every((d) => d.action === 'publish'));
      // Play stays open (no play secrets, no hooks).
      assert.deepEqual(await a.authorizePlay(req()), { allow: true });
    });

    it('publish: per-app secrets', async () => {
      const a = new Authorizer({
        publishSecrets: { live: 'live-secret' },
        requirePlayToken: false,
        nodeId: 'n',
        now: () => NOW_MS,
      });
      assert.deepEqual(await a.authorizePublish(req('cam1', pubToken('cam1', 'live-secret'))), { allow: true });
      const other = signedQuery({
        secret: 'live-secret',
        action: 'publish',
        app: 'other',
        name: 'cam1',
        expiresAt: NOW_S + 60,
      });
      const d = await a.authorizePublish(req('cam1', other, 'other'));
      assert.equal(d.allow === false && d.reason, 'token_invalid', 'an app without a secret fails closed');
    });

    it('publish: token, then hook', async () => {
      const start = received.length;
      const o = observing();
      const a = new Authorizer({
        defaultPublishSecret: SECRET,
        requirePlayToken: false,
        hooks: { onPublish: `${base}/status/200`, timeoutMs: 1000, failOpen: false },
        nodeId: 'n',
        now: () => NOW_MS,
        observer: o.observer,
      });
      // A bad token never reaches the hook.
      const bad = await a.authorizePublish(req('cam1', 'token=x&expires=1'));
      assert.equal(bad.allow, false);
      assert.equal(received.length, start);
      assert.deepEqual(await a.authorizePublish(req('cam1', pubToken())), { allow: true });
      assert.equal(received.length, start + 1);
      assert.equal(
        received[start]!.body.query['token'],
        new URLSearchParams(pubToken()).get('token'),
        'the hook gets the params',
      );
      assert.equal(o.hooks.length, 1);
      assert.equal(o.hooks[0]!.event, 'on_publish');

      const denying = new Authorizer({
        requirePlayToken: false,
        hooks: { onPublish: `${base}/status/403`, timeoutMs: 1000, failOpen: false },
        nodeId: 'n',
        observer: o.observer,
      });
      const d = await denying.authorizePublish(req());
      assert.equal(d.allow === false && d.reason, 'hook_denied');
      assert.equal(d.allow === false && d.status, 'Denied');
      assert.deepEqual(o.denied.at(-1), { action: 'publish', reason: 'hook_denied' });

      const down = new Authorizer({
        requirePlayToken: false,
        hooks: { onPublish: refusedUrl, timeoutMs: 1000, failOpen: false },
        nodeId: 'n',
      });
      const e = await down.authorizePublish(req());
      assert.equal(e.allow === false && e.reason, 'hook_failed');
      const open = new Authorizer({
        requirePlayToken: false,
        hooks: { onPublish: refusedUrl, timeoutMs: 1000, failOpen: true },
        nodeId: 'n',
      });
      assert.deepEqual(await open.authorizePublish(req()), { allow: true });
    });

    it('play: token only when required, and then no on_play hook', async () => {
      const start = received.length;
      const o = observing();
      const a = new Authorizer({
        defaultPlaySecret: 'play-secret',
        requirePlayToken: true,
        hooks: { onPlay: `${base}/status/403`, timeoutMs: 1000, failOpen: false },
        nodeId: 'n',
        now: () => NOW_MS,
        observer: o.observer,
      });
      assert.deepEqual(await a.authorizePlay(req('cam1', playToken())), { allow: true });
      const missing = await a.authorizePlay(req('cam1'));
      assert.equal(missing.allow === false && missing.reason, 'token_missing');
      assert.equal(missing.allow === false && missing.status, 'Denied');
      const expired = await a.authorizePlay(req('cam1', playToken('cam1', 'play-secret', NOW_S - 3600)));
      assert.equal(expired.allow === false && expired.reason, 'token_expired');
      const publishTok = await a.authorizePlay(req('cam1', pubToken('cam1', 'play-secret')));
      assert.equal(publishTok.allow === false && publishTok.reason, 'token_invalid', 'a publish token does not play');
      assert.equal(received.length, start, 'no hook per viewer');
      assert.deepEqual(
        o.denied.map((d) => d.action),
        ['play', 'play', 'play'],
      );
      // Publish is open: no publish secrets, no on_publish hook.
      assert.deepEqual(await a.authorizePublish(req()), { allow: true });
    });

    it('play: on_play hook when tokens are not required', async () => {
      const allow = new Authorizer({
        requirePlayToken: false,
        hooks: { onPlay: `${base}/status/200`, timeoutMs: 1000, failOpen: false },
        nodeId: 'n',
      });
      const start = received.length;
      assert.deepEqual(await allow.authorizePlay(req()), { allow: true });
      assert.equal(received[start]!.body.action, 'on_play');
      const deny = new Authorizer({
        requirePlayToken: false,
        hooks: { onPlay: `${base}/status/401`, timeoutMs: 1000, failOpen: false },
        nodeId: 'n',
      });
      const d = await deny.authorizePlay(req());
      assert.equal(d.allow === false && d.reason, 'hook_denied');
      const slow = new Authorizer({
        requirePlayToken: false,
        hooks: { onPlay: `${base}/slow`, timeoutMs: 100, failOpen: false },
        nodeId: 'n',
      });
      const s = await slow.authorizePlay(req());
      assert.equal(s.allow === false && s.reason, 'hook_timeout');
    });

    it('done hooks', async () => {
      const o = observing();
      const a = new Authorizer({
        requirePlayToken: false,
        hooks: {
          onPublishDone: `${base}/status/200`,
          onPlayDone: `${base}/status/500`,
          timeoutMs: 1000,
          failOpen: false,
        },
        nodeId: 'n',
        observer: o.observer,
      });
      const start = received.length;
      a.publishDone(req());
      a.playDone(req());
      await a.idle();
      assert.deepEqual(
        received
          .slice(start)
          .map((r) => r.body.action)
          .sort(),
        ['on_play_done', 'on_publish_done'],
      );
      assert.deepEqual(o.hooks.map((h) => `${h.event}:${h.outcome}`).sort(), [
        'on_play_done:server_error',
        'on_publish_done:allowed',
      ]);
      assert.equal(o.denied.length, 0);
    });

    it('rejects configurations that would deny every play', () => {
      assert.throws(() => new Authorizer({ requirePlayToken: true, nodeId: 'n' }), /requirePlayToken/);
      assert.throws(() => new Authorizer({ requirePlayToken: false, defaultPublishSecret: '', nodeId: 'n' }));
      assert.throws(() => new Authorizer({ requirePlayToken: false, publishSecrets: { live: '' }, nodeId: 'n' }));
    });
  });
});
