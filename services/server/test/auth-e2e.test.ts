import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { signStreamName } from '../src/auth/index.js';
import { ffmpegCountFrames, ffmpegPublish } from './support/media-tools.js';
import { start, stopAll, waitFor, type Running, startLinePorts } from './support/processes.js';
import { startNats, startRedis, stopAllServices } from './support/services.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const PUBLISH_SECRET = 'publish-secret-for-tests';
const PLAY_SECRET = 'play-secret-for-tests';

interface NodeProc {
  proc: Running;
  rtmpPort: number;
  httpPort: number;
  logs: () => string;
}

/** Starts `rtmp-relay <role>` as a process (as in production) and reads its ports from the start line. */
async function startCli(role: 'origin' | 'edge', env: Record<string, string>): Promise<NodeProc> {
  const proc = start(process.execPath, [CLI, role], {
    timeoutMs: 180_000,
    env: {
      ...process.env,
      RTMP_PORT: '0',
      HTTP_PORT: '0',
      RTMP_HOST: '127.0.0.1',
      HTTP_HOST: '127.0.0.1',
      ADVERTISE_HOST: '127.0.0.1',
      LOG_LEVEL: 'debug',
      SHUTDOWN_TIMEOUT_MS: '500',
      ...env,
    },
  });
  let stdout = '';
  let stderr = '';
  proc.child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const ports = await waitFor(
    `${role} start line`,
    () => {
      const ports = startLinePorts(stderr);
      return ports && { rtmpPort: ports.rtmp, httpPort: ports.http };
    },
    20_000,
  );
  await waitFor(
    `${role} ready`,
    async () => (await fetch(`http://127.0.0.1:${ports.httpPort}/readyz`).catch(() => undefined))?.status === 200,
    15_000,
  );
  return { proc, ...ports, logs: () => stdout + stderr };
}

const expiresIn = (s: number): number => Math.floor(Date.now() / 1000) + s;

describe('auth end to end: signed URLs, edge-signed pulls, webhooks, no secrets in logs', () => {
  let origin: NodeProc;
  let edge: NodeProc;
  let hook: Server;
  const hookCalls: Array<Record<string, unknown>> = [];
  let hookAllows = true;

  before(async () => {
    const [redis, nats] = await Promise.all([startRedis(), startNats()]);
    hook = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        hookCalls.push({ path: req.url, ...(JSON.parse(body) as Record<string, unknown>) });
        res.writeHead(req.url === '/on_publish' && !hookAllows ? 403 : 200).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    const hookBase = `http://127.0.0.1:${(hook.address() as { port: number }).port}`;
    const common = { REDIS_URL: redis.url, NATS_URL: nats.url, PLAY_SECRET, REQUIRE_PLAY_TOKEN: 'true' };
    origin = await startCli('origin', {
      ...common,
      NODE_ID: 'origin-auth',
      PUBLISH_SECRET,
      HOOK_ON_PUBLISH: `${hookBase}/on_publish`,
      HOOK_ON_PUBLISH_DONE: `${hookBase}/on_publish_done`,
    });
    edge = await startCli('edge', { ...common, NODE_ID: 'edge-auth' });
  });
  after(async () => {
    await stopAll();
    await stopAllServices();
    await new Promise((r) => hook?.close(r));
  });

  it('a publish without a token is denied; with a signed URL it is accepted and the webhook sees it', async () => {
    const denied = ffmpegPublish(`rtmp://127.0.0.1:${origin.rtmpPort}/live/secure`, { seconds: 20 });
    const d = await denied.exited;
    assert.notEqual(d.code, 0, 'FFmpeg could not publish without a token');
    assert.match(d.stderr, /Publish\.Denied|denied/i);

    const name = signStreamName({
      secret: PUBLISH_SECRET,
      action: 'publish',
      app: 'live',
      name: 'secure',
      expiresAt: expiresIn(600),
    });
    const pub = ffmpegPublish(`rtmp://127.0.0.1:${origin.rtmpPort}/live/${name}`, { seconds: 60 });
    await waitFor(
      'the on_publish hook call',
      () => hookCalls.find((c) => c['path'] === '/on_publish' && c['name'] === 'secure'),
      15_000,
    );
    const call = hookCalls.find((c) => c['path'] === '/on_publish' && c['name'] === 'secure')!;
    assert.equal(call['app'], 'live');
    assert.equal(call['key'], 'live/secure');
    assert.equal(call['nodeId'], 'origin-auth');
    assert.equal(typeof call['seq'], 'number');

    // Plays need a token on the edge; the edge signs its own token to pull from the origin (which requires one too).
    const noToken = await ffmpegCountFrames(`rtmp://127.0.0.1:${edge.rtmpPort}/live/secure`, 2);
    assert.equal(noToken.frames, 0, 'a play without a token decodes nothing');
    const playName = signStreamName({
      secret: PLAY_SECRET,
      action: 'play',
      app: 'live',
      name: 'secure',
      expiresAt: expiresIn(600),
    });
    const played = await ffmpegCountFrames(`rtmp://127.0.0.1:${edge.rtmpPort}/live/${playName}`, 2);
    assert.ok(played.frames >= 40, `decoded ${played.frames} frames with a signed play URL: ${played.stderr}`);
    await pub.stop('SIGINT');
    await waitFor(
      'the on_publish_done hook call',
      () => hookCalls.find((c) => c['path'] === '/on_publish_done' && c['name'] === 'secure'),
      15_000,
    );

    // Tokens and secrets never reach the logs.
    const token = new URLSearchParams(name.split('?')[1]).get('token')!;
    const playToken = new URLSearchParams(playName.split('?')[1]).get('token')!;
    for (const [who, n] of [
      ['origin', origin],
      ['edge', edge],
    ] as const) {
      const logs = n.logs();
      assert.ok(logs.length > 0, `${who} wrote logs`);
      for (const secret of [token, playToken, PUBLISH_SECRET, PLAY_SECRET])
        assert.ok(!logs.includes(secret), `${who} logs do not contain a token or secret`);
    }
  });

  it('the blocking webhook can deny a publish that carries a valid token', async () => {
    hookAllows = false;
    const name = signStreamName({
      secret: PUBLISH_SECRET,
      action: 'publish',
      app: 'live',
      name: 'hooked',
      expiresAt: expiresIn(600),
    });
    const r = await ffmpegPublish(`rtmp://127.0.0.1:${origin.rtmpPort}/live/${name}`, { seconds: 20 }).exited;
    hookAllows = true;
    assert.notEqual(r.code, 0, 'the hook denied the publish');
    assert.ok(hookCalls.some((c) => c['path'] === '/on_publish' && c['name'] === 'hooked'));
    const metrics = await (await fetch(`http://127.0.0.1:${origin.httpPort}/metrics`)).text();
    assert.match(metrics, /rtmp_auth_denied_total\{action="publish",reason="hook_denied"\} [1-9]/);
    assert.match(metrics, /rtmp_auth_denied_total\{action="publish",reason="token_missing"\} [1-9]/);
  });
});
