import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { MessageType, RtmpClient, type RtmpMessage } from '@rtmp-relay/rtmp';
import { connect as natsConnect, nkeys, type ConnectionOptions, type NatsConnection } from 'nats';
import {
  ConnectionSettingsError,
  natsConnectOptions,
  redactUrl,
  redisConnectOptions,
} from '../src/cluster/connections.js';
import { loadConfig, type Config } from '../src/config.js';
import { clusterEnv, startInProcessNode, type ClusterNode } from './support/cluster-harness.js';
import { start, stopAll, waitFor, type Running } from './support/processes.js';
import { startNats, startRedis, stopAllServices, type ServiceHandle } from './support/services.js';
import { makeCa, makeServerCert, type TestCa } from './support/tls-certs.js';

/**
 * Authenticating to Redis and NATS: the option builders (unit), then an origin and an edge against real
 * redis-server / nats-server processes that require a password, an ACL user, a token, an NKey (creds file) or TLS;
 * and nodes with wrong credentials, which must not become ready and must say why (without printing the secret).
 */

const SRC_CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const READY_MS = 15_000;
const EVENT_MS = 5_000;
const PLAY_MS = 10_000;
const FRAME_INTERVAL_MS = 40;
const KEYFRAME_EVERY = 10;
const CASE_TIMEOUT_MS = 60_000;

const tmp = mkdtempSync(join(tmpdir(), 'dependency-auth-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The settings with their defaults, plus `env` (as the CLI would load them). */
const settings = (env: Record<string, string>) => loadConfig({ env });
/** Settings loadConfig itself would reject (its cross-checks): the builders must still refuse them on their own. */
const unchecked = (values: Partial<Config>): Config => ({ ...loadConfig({ env: {} }), ...values });

function file(name: string, content: string | Uint8Array): string {
  const path = join(tmp, name);
  writeFileSync(path, content);
  return path;
}

/** A .creds file as `nsc` writes it: a user JWT and the user's NKey seed. */
function credsFile(name: string, jwt: string, seed: string): string {
  return file(
    name,
    `-----BEGIN NATS USER JWT-----\n${jwt}\n------END NATS USER JWT------\n\n` +
      '************************* IMPORTANT *************************\n' +
      'NKEY Seed printed below can be used to sign and prove identity.\n\n' +
      `-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`,
  );
}

/**
 * A stand-in user JWT: servers without an operator (plain NKey users) authenticate by the NKey signature alone and
 * ignore it; the client only needs it to be present.
 */
const PLACEHOLDER_JWT = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.placeholder';

describe('connection options (unit)', () => {
  it('NATS: credentials embedded in NATS_URL become user/pass and leave the server list', () => {
    const o = natsConnectOptions(settings({ NATS_URL: 'nats://relay:p%40ss@n1:4222, nats://relay:p%40ss@n2:4223' }));
    assert.deepEqual(o.servers, ['n1:4222', 'n2:4223']);
    assert.equal(o.user, 'relay');
    assert.equal(o.pass, 'p@ss');
    assert.equal(o.token, undefined);
    assert.equal(o.tls, undefined);
    assert.ok(!JSON.stringify(o.servers).includes('p@ss') && !JSON.stringify(o.servers).includes('relay'));
  });

  it('NATS: a lone user name in the URL is a token; settings override the URL', () => {
    const token = natsConnectOptions(settings({ NATS_URL: 'nats://s3cr3t-token@n1' }));
    assert.deepEqual([token.servers, token.token, token.user], [['n1'], 's3cr3t-token', undefined]);

    const user = natsConnectOptions(settings({ NATS_URL: 'nats://u:p@n1:4222', NATS_USER: 'other' }));
    assert.deepEqual([user.user, user.pass], ['other', 'p']);
    const pass = natsConnectOptions(unchecked({ natsUrl: 'nats://u@n1:4222', natsPassword: 'fromsecret' }));
    assert.deepEqual([pass.user, pass.pass, pass.token], ['u', 'fromsecret', undefined]);
    const tok = natsConnectOptions(settings({ NATS_URL: 'nats://u:p@n1:4222', NATS_TOKEN: 't' }));
    assert.deepEqual([tok.token, tok.user, tok.pass], ['t', undefined, undefined]);
    const settingsOnly = natsConnectOptions(settings({ NATS_URL: 'nats://n1', NATS_USER: 'a', NATS_PASSWORD: 'b' }));
    assert.deepEqual([settingsOnly.user, settingsOnly.pass], ['a', 'b']);
  });

  it('NATS: conflicting or incomplete settings are readable errors that do not echo secrets', () => {
    assert.throws(
      () => natsConnectOptions(settings({ NATS_URL: 'nats://n1', NATS_USER: 'u', NATS_TOKEN: 'tok' })),
      (err: Error) =>
        err instanceof ConnectionSettingsError && /NATS_USER\/NATS_PASSWORD and NATS_TOKEN/.test(err.message),
    );
    assert.throws(
      () => natsConnectOptions(unchecked({ natsUrl: 'nats://n1', natsPassword: 'pw' })),
      /NATS_PASSWORD: set without a user/,
    );
    assert.throws(
      () => natsConnectOptions(settings({ NATS_URL: 'nats://u:secret1@n1,nats://u:secret2@n2' })),
      (err: Error) =>
        /different credentials/.test(err.message) &&
        !err.message.includes('secret1') &&
        !err.message.includes('secret2'),
    );
    assert.throws(
      () => natsConnectOptions(unchecked({ natsUrl: 'tls://n1', natsTlsCertFile: '/x.pem' })),
      /NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE: set both/,
    );
  });

  it('NATS: TLS for tls:// URLs or TLS files; every file is checked at start', () => {
    assert.deepEqual(natsConnectOptions(settings({ NATS_URL: 'tls://n1:4443' })).tls, {});
    const ca = file('nats-ca.pem', 'ca');
    const cert = file('nats-client.pem', 'cert');
    const key = file('nats-client.key', 'key');
    const o = natsConnectOptions(
      settings({ NATS_URL: 'nats://n1', NATS_TLS_CA_FILE: ca, NATS_TLS_CERT_FILE: cert, NATS_TLS_KEY_FILE: key }),
    );
    assert.deepEqual(o.tls, { caFile: ca, certFile: cert, keyFile: key });
    const missing = join(tmp, 'no-such-ca.pem');
    assert.throws(
      () => natsConnectOptions(settings({ NATS_URL: 'tls://n1', NATS_TLS_CA_FILE: missing })),
      (err: Error) => err.message.startsWith(`NATS_TLS_CA_FILE: cannot read ${missing}`) && /ENOENT/.test(err.message),
    );
    assert.throws(
      () =>
        natsConnectOptions(settings({ NATS_URL: 'tls://n1', NATS_TLS_CERT_FILE: cert, NATS_TLS_KEY_FILE: missing })),
      /^ConnectionSettingsError: NATS_TLS_KEY_FILE: cannot read/,
    );
  });

  it('NATS: a creds file becomes an authenticator that sends the JWT and signs the nonce with the seed', () => {
    const user = nkeys.createUser();
    const seed = new TextDecoder().decode(user.getSeed());
    const o = natsConnectOptions(
      settings({ NATS_URL: 'nats://n1', NATS_CREDS_FILE: credsFile('unit.creds', PLACEHOLDER_JWT, seed) }),
    );
    assert.equal(typeof o.authenticator, 'function');
    const nonce = 'abcdef0123456789';
    const auth = (o.authenticator as (nonce?: string) => { jwt?: string; nkey?: string; sig?: string })(nonce);
    assert.equal(auth.jwt, PLACEHOLDER_JWT);
    assert.equal(auth.nkey, user.getPublicKey());
    const sig = Buffer.from(auth.sig!, 'base64url');
    assert.ok(nkeys.fromPublic(user.getPublicKey()).verify(new TextEncoder().encode(nonce), sig), 'signature verifies');

    assert.throws(
      () => natsConnectOptions(settings({ NATS_URL: 'nats://n1', NATS_CREDS_FILE: file('bad.creds', 'not creds') })),
      /NATS_CREDS_FILE: .*bad\.creds is not a NATS credentials file/,
    );
    assert.throws(
      () => natsConnectOptions(settings({ NATS_URL: 'nats://n1', NATS_CREDS_FILE: join(tmp, 'absent.creds') })),
      /NATS_CREDS_FILE: cannot read .*absent\.creds/,
    );
    assert.throws(
      () => natsConnectOptions(settings({ NATS_URL: 'nats://u:p@n1', NATS_CREDS_FILE: 'x', NATS_TOKEN: 't' })),
      /NATS_TOKEN and NATS_CREDS_FILE/,
    );
  });

  it('Redis: address, database and credentials from the URL; REDIS_USERNAME/REDIS_PASSWORD override them', () => {
    assert.deepEqual(redisConnectOptions(settings({ REDIS_URL: 'redis://app:p%3Aw@r1:6390/2' })), {
      host: 'r1',
      port: 6390,
      db: 2,
      username: 'app',
      password: 'p:w',
    });
    assert.deepEqual(redisConnectOptions(settings({ REDIS_URL: 'redis://:only@[::1]' })), {
      host: '::1',
      port: 6379,
      password: 'only',
    });
    assert.deepEqual(
      redisConnectOptions(
        settings({ REDIS_URL: 'redis://app:old@r1', REDIS_USERNAME: 'relay', REDIS_PASSWORD: 'new' }),
      ),
      { host: 'r1', port: 6379, username: 'relay', password: 'new' },
    );
    assert.throws(
      () => redisConnectOptions(settings({ REDIS_URL: 'redis://r1', REDIS_USERNAME: 'relay' })),
      /REDIS_USERNAME: an ACL user needs a password/,
    );
  });

  it('Redis: TLS for rediss:// or a CA file; the CA is read at start', () => {
    assert.deepEqual(redisConnectOptions(settings({ REDIS_URL: 'rediss://r1:6380' })).tls, {});
    const ca = file('redis-ca.pem', 'PEM CA');
    const o = redisConnectOptions(settings({ REDIS_URL: 'redis://r1', REDIS_TLS_CA_FILE: ca }));
    assert.equal(Buffer.from(o.tls!.ca as Buffer).toString(), 'PEM CA');
    assert.throws(
      () => redisConnectOptions(settings({ REDIS_URL: 'rediss://r1', REDIS_TLS_CA_FILE: join(tmp, 'nope.pem') })),
      /^ConnectionSettingsError: REDIS_TLS_CA_FILE: cannot read .*nope\.pem: ENOENT/,
    );
  });

  it('redactUrl hides passwords and tokens', () => {
    assert.equal(redactUrl('nats://u:secret@h:4222'), 'nats://u:***@h:4222');
    assert.equal(redactUrl('nats://secrettoken@h:4222'), 'nats://***@h:4222');
    assert.equal(redactUrl('rediss://:secret@h:6380/1'), 'rediss://:***@h:6380/1');
    assert.equal(redactUrl('not a url secret'), '***');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Real servers

const AVC_HEADER = Buffer.from([0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1]);
const AAC_HEADER = Buffer.from([0xaf, 0x00, 0x12, 0x10]);
/** One coded AVC frame whose body names the frame: what a viewer receives must be byte-identical. */
const frame = (n: number): Buffer =>
  Buffer.concat([Buffer.from([n % KEYFRAME_EVERY === 0 ? 0x17 : 0x27, 0x01, 0, 0, 0]), Buffer.from(`frame-${n}`)]);

/** A synthetic publisher: sequence headers, then numbered frames every FRAME_INTERVAL_MS until stopped. */
async function publishSynthetic(url: string): Promise<{ stop(): void }> {
  const pub = await RtmpClient.connect(url, { readTimeoutMs: 0, connectTimeoutMs: 5000 });
  await pub.publish();
  pub.sendMedia(MessageType.Video, 0, AVC_HEADER);
  pub.sendMedia(MessageType.Audio, 0, AAC_HEADER);
  let n = 0;
  const timer = setInterval(() => {
    pub.sendMedia(MessageType.Video, n * FRAME_INTERVAL_MS, frame(n));
    n++;
  }, FRAME_INTERVAL_MS);
  return {
    stop: () => {
      clearInterval(timer);
      pub.close();
    },
  };
}

/** Plays `url` until a coded frame arrives; returns it (number and whether the bytes are exactly those sent). */
async function playOneFrame(url: string): Promise<{ n: number; intact: boolean }> {
  const viewer = await RtmpClient.connect(url, { readTimeoutMs: PLAY_MS, connectTimeoutMs: 5000 });
  try {
    const got = new Promise<{ n: number; intact: boolean }>((resolve) => {
      viewer.on('media', (m: RtmpMessage) => {
        if (m.type !== MessageType.Video || m.payload[1] !== 0x01) return;
        const match = /^frame-(\d+)$/.exec(m.payload.subarray(5).toString());
        if (match) resolve({ n: Number(match[1]), intact: m.payload.equals(frame(Number(match[1]))) });
      });
    });
    await viewer.play(undefined, PLAY_MS);
    return await waitForPromise(got, PLAY_MS, `a frame from ${url}`);
  } finally {
    viewer.close();
  }
}

interface Dependencies {
  redisUrl: string;
  natsUrl: string;
  /** Node settings beyond REDIS_URL/NATS_URL (credentials, TLS files). */
  env?: Record<string, string>;
  /** How the test's own NATS client logs in, to watch the events on the bus. */
  watcher: ConnectionOptions;
}

/**
 * An origin and an edge on `deps` become ready (Redis and NATS both connected), a publish on the origin is announced
 * on NATS (seen by an independent subscriber with the same kind of credentials) and plays byte-exact through the edge.
 */
async function assertClusterWorks(label: string, deps: Dependencies): Promise<void> {
  const env = clusterEnv(deps.redisUrl, deps.natsUrl, { HEARTBEAT_MS: '500', ...deps.env });
  const nodes: ClusterNode[] = [];
  let watcher: NatsConnection | undefined;
  let publisher: { stop(): void } | undefined;
  try {
    nodes.push(await startInProcessNode('origin', `${label}-origin`, env));
    nodes.push(await startInProcessNode('edge', `${label}-edge`, env));
    const [origin, edge] = nodes as [ClusterNode, ClusterNode];
    await waitFor(
      `${label}: origin and edge ready`,
      async () => (await Promise.all(nodes.map((n) => n.http('/readyz')))).every((r) => r.status === 200),
      READY_MS,
    );
    for (const n of nodes) {
      assert.equal(await n.metric('rtmp_redis_up'), 1, `${n.id}: Redis up`);
      assert.equal(await n.metric('rtmp_nats_up'), 1, `${n.id}: NATS up`);
    }

    watcher = await natsConnect({ ...deps.watcher, timeout: EVENT_MS });
    const key = `live/${label}`;
    const announced = new Promise<Record<string, unknown>>((resolve) => {
      const sub = watcher!.subscribe('rtmp.v1.stream.published');
      void (async () => {
        for await (const m of sub) {
          const event = m.json<Record<string, unknown>>();
          if (event.key === key) return resolve(event);
        }
      })();
    });
    await watcher.flush();

    publisher = await publishSynthetic(origin.rtmpUrl(key));
    const event = await waitForPromise(announced, EVENT_MS, `${label}: stream.published for ${key} on NATS`);
    assert.equal(event.nodeId, origin.id);

    const started = performance.now();
    const played = await playOneFrame(edge.rtmpUrl(key));
    assert.ok(played.intact, `${label}: frame ${played.n} arrived through the edge byte-exact`);
    console.log(`${label}: first frame through the edge after ${Math.round(performance.now() - started)} ms`);
  } finally {
    publisher?.stop();
    await watcher?.close().catch(() => undefined);
    await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
  }
}

async function waitForPromise<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Host:port of a test server's URL, with credentials spliced in. */
const withCreds = (url: string, creds: string): string => url.replace('://', `://${creds}@`);

describe('origin + edge against Redis and NATS that require authentication', () => {
  const servers: ServiceHandle[] = [];
  const track = async (s: Promise<ServiceHandle>): Promise<ServiceHandle> => {
    const handle = await s;
    servers.push(handle);
    return handle;
  };
  let redis: ServiceHandle;

  before(async () => {
    redis = await track(startRedis({ args: ['--requirepass', 'redis-pw'], auth: { password: 'redis-pw' } }));
  });

  after(async () => {
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    await stopAllServices();
  });

  it('(a) NATS user/password from NATS_USER/NATS_PASSWORD', { timeout: CASE_TIMEOUT_MS }, async () => {
    const nats = await track(startNats({ args: ['--user', 'relay', '--pass', 'nats-pw'] }));
    await assertClusterWorks('nats-settings', {
      redisUrl: withCreds(redis.url, ':redis-pw'),
      natsUrl: nats.url,
      env: { NATS_USER: 'relay', NATS_PASSWORD: 'nats-pw' },
      watcher: { servers: nats.url, user: 'relay', pass: 'nats-pw' },
    });
  });

  it('(b) NATS user/password in NATS_URL (nats://user:pass@host)', { timeout: CASE_TIMEOUT_MS }, async () => {
    const nats = await track(startNats({ args: ['--user', 'relay', '--pass', 'p@ss:word'] }));
    await assertClusterWorks('nats-url', {
      redisUrl: withCreds(redis.url, ':redis-pw'),
      natsUrl: withCreds(nats.url, `relay:${encodeURIComponent('p@ss:word')}`),
      watcher: { servers: nats.url, user: 'relay', pass: 'p@ss:word' },
    });
  });

  it('(c) NATS token, from NATS_TOKEN and from nats://<token>@host', { timeout: CASE_TIMEOUT_MS }, async () => {
    const nats = await track(startNats({ args: ['--auth', 'nats-token-1'] }));
    const watcher = { servers: nats.url, token: 'nats-token-1' };
    await assertClusterWorks('nats-token', {
      redisUrl: withCreds(redis.url, ':redis-pw'),
      natsUrl: nats.url,
      env: { NATS_TOKEN: 'nats-token-1' },
      watcher,
    });
    await assertClusterWorks('nats-token-url', {
      redisUrl: withCreds(redis.url, ':redis-pw'),
      natsUrl: withCreds(nats.url, 'nats-token-1'),
      watcher,
    });
  });

  it('(d) Redis requirepass via REDIS_PASSWORD and via the URL', { timeout: CASE_TIMEOUT_MS }, async () => {
    const nats = await track(startNats());
    await assertClusterWorks('redis-password-setting', {
      redisUrl: redis.url,
      natsUrl: nats.url,
      env: { REDIS_PASSWORD: 'redis-pw' },
      watcher: { servers: nats.url },
    });
    await assertClusterWorks('redis-password-url', {
      redisUrl: withCreds(redis.url, ':redis-pw'),
      natsUrl: nats.url,
      watcher: { servers: nats.url },
    });
  });

  it(
    '(e) Redis ACL user limited to the cluster prefix, via REDIS_USERNAME/REDIS_PASSWORD',
    { timeout: CASE_TIMEOUT_MS },
    async () => {
      // The default user is off: only `relay` gets in, and only to keys under `rtmp:`.
      const acl = await track(
        startRedis({
          args: ['--user', 'default', 'off', '--user', 'relay', 'on', '>relay-pw', '~rtmp:*', '+@all'],
          auth: { username: 'relay', password: 'relay-pw' },
        }),
      );
      const nats = await track(startNats());
      await assertClusterWorks('redis-acl', {
        redisUrl: acl.url,
        natsUrl: nats.url,
        env: { REDIS_USERNAME: 'relay', REDIS_PASSWORD: 'relay-pw' },
        watcher: { servers: nats.url },
      });
    },
  );

  it('(f) NATS NKey user via NATS_CREDS_FILE', { timeout: CASE_TIMEOUT_MS }, async () => {
    const user = nkeys.createUser();
    const conf = file('nkey-server.conf', `authorization { users = [ { nkey: ${user.getPublicKey()} } ] }\n`);
    const nats = await track(startNats({ args: ['-c', conf] }));
    const seed = new TextDecoder().decode(user.getSeed());
    const creds = credsFile('relay.creds', PLACEHOLDER_JWT, seed);
    const { authenticator } = natsConnectOptions(settings({ NATS_URL: nats.url, NATS_CREDS_FILE: creds }));
    await assertClusterWorks('nats-creds', {
      redisUrl: withCreds(redis.url, ':redis-pw'),
      natsUrl: nats.url,
      env: { NATS_CREDS_FILE: creds },
      watcher: { servers: nats.url, authenticator: authenticator! },
    });
  });
});

describe('origin + edge over TLS to Redis and NATS', () => {
  let ca: TestCa;
  let server: { certFile: string; keyFile: string };
  let client: { certFile: string; keyFile: string };

  before(async () => {
    const dir = mkdtempSync(join(tmp, 'pki-'));
    ca = await makeCa(dir);
    await makeServerCert(dir, ca, 'server');
    await makeServerCert(dir, ca, 'client');
    server = { certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server.key') };
    client = { certFile: join(dir, 'client.pem'), keyFile: join(dir, 'client.key') };
  });

  after(async () => {
    await stopAllServices();
  });

  it(
    'NATS with mutual TLS (tls://, NATS_TLS_CA_FILE, client certificate) and a password',
    { timeout: CASE_TIMEOUT_MS },
    async () => {
      const tlsArgs = ['--tls', '--tlscert', server.certFile, '--tlskey', server.keyFile];
      const nats = await startNats({
        args: [...tlsArgs, '--tlsverify', '--tlscacert', ca.certFile, '--user', 'relay', '--pass', 'nats-pw'],
      });
      const redis = await startRedis();
      const tlsUrl = nats.url.replace('nats://', 'tls://');
      await assertClusterWorks('nats-mtls', {
        redisUrl: redis.url,
        natsUrl: withCreds(tlsUrl, 'relay:nats-pw'),
        env: {
          NATS_TLS_CA_FILE: ca.certFile,
          NATS_TLS_CERT_FILE: client.certFile,
          NATS_TLS_KEY_FILE: client.keyFile,
        },
        watcher: {
          servers: nats.url,
          user: 'relay',
          pass: 'nats-pw',
          tls: { caFile: ca.certFile, certFile: client.certFile, keyFile: client.keyFile },
        },
      });
    },
  );

  it('Redis over TLS (rediss://, REDIS_TLS_CA_FILE) with a password', { timeout: CASE_TIMEOUT_MS }, async (t) => {
    let redis: ServiceHandle;
    try {
      redis = await startRedis({
        tls: { certFile: server.certFile, keyFile: server.keyFile, caFile: ca.certFile },
        args: ['--requirepass', 'redis-pw'],
        auth: { password: 'redis-pw' },
      });
    } catch (err) {
      // Some redis-server builds have no TLS: say so loudly rather than pass silently.
      if (!/tls|Bad directive/i.test(String(err))) throw err;
      console.log(`SKIPPED Redis TLS: this redis-server has no TLS support (${String(err).split('\n')[0]})`);
      t.skip('redis-server without TLS support');
      return;
    }
    assert.ok(redis.url.startsWith('rediss://'));
    const nats = await startNats();
    await assertClusterWorks('redis-tls', {
      redisUrl: withCreds(redis.url, ':redis-pw'),
      natsUrl: nats.url,
      env: { REDIS_TLS_CA_FILE: ca.certFile },
      watcher: { servers: nats.url },
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Wrong credentials: real `rtmp-relay edge` processes (from source) so their logs can be read

interface SpawnedNode {
  proc: Running;
  output(): string;
}

/** `rtmp-relay <role>` from the sources (tsx), logging at `logLevel` to a buffer the test reads. */
function spawnFromSource(role: 'origin' | 'edge', id: string, env: Record<string, string>): SpawnedNode {
  const proc = start(process.execPath, ['--conditions=source', '--import', 'tsx', SRC_CLI, role], {
    timeoutMs: CASE_TIMEOUT_MS,
    env: { ...process.env, ...env, NODE_ID: id },
  });
  let out = '';
  proc.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return { proc, output: () => out };
}

/** The HTTP port from the node's start line. */
async function httpPortOf(node: SpawnedNode): Promise<number> {
  return Number(
    await waitFor(
      'the start line',
      () => /rtmp-relay \w+: rtmp:\/\/.*http:\/\/[^:]+:(\d+)\//.exec(node.output())?.[1],
      READY_MS,
    ),
  );
}

describe('wrong credentials: the node does not become ready and says why', () => {
  const servers: ServiceHandle[] = [];
  let redis: ServiceHandle;
  let nats: ServiceHandle;

  before(async () => {
    [redis, nats] = await Promise.all([
      startRedis({ args: ['--requirepass', 'right-redis-pw'], auth: { password: 'right-redis-pw' } }),
      startNats({ args: ['--user', 'relay', '--pass', 'right-nats-pw'] }),
    ]);
    servers.push(redis, nats);
  });

  after(async () => {
    await stopAll();
    await Promise.all(servers.map((s) => s.stop().catch(() => undefined)));
    await stopAllServices();
  });

  /** Waits for `logged` in the output, then checks /readyz says 503 and the secret never appears. */
  async function assertNotReady(node: SpawnedNode, logged: RegExp, secret: string): Promise<void> {
    try {
      const port = await httpPortOf(node);
      await waitFor(`a log line matching ${logged}`, () => logged.test(node.output()), READY_MS);
      const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(5000) });
      assert.equal(res.status, 503, 'not ready');
    } finally {
      await node.proc.stop();
    }
    // Shutdown lines included.
    assert.ok(!node.output().includes(secret), `the secret ${secret} appears in the logs:\n${node.output()}`);
  }

  it(
    'a wrong NATS password in NATS_URL: "Authorization Violation" logged, password not',
    { timeout: CASE_TIMEOUT_MS },
    async () => {
      const node = spawnFromSource(
        'edge',
        'wrong-nats',
        clusterEnv(withCreds(redis.url, ':right-redis-pw'), withCreds(nats.url, 'relay:wrong-nats-pw'), {
          LOG_LEVEL: 'debug',
        }),
      );
      await assertNotReady(node, /"err":"[^"]*Authorization Violation[^"]*".*"msg":"nats error"/i, 'wrong-nats-pw');
    },
  );

  it('a wrong NATS token: "Authorization Violation" logged', { timeout: CASE_TIMEOUT_MS }, async () => {
    const node = spawnFromSource(
      'edge',
      'wrong-token',
      clusterEnv(withCreds(redis.url, ':right-redis-pw'), nats.url, {
        NATS_TOKEN: 'wrong-token-1',
        LOG_LEVEL: 'debug',
      }),
    );
    await assertNotReady(node, /"err":"[^"]*Authorization Violation[^"]*".*"msg":"nats error"/i, 'wrong-token-1');
  });

  it(
    'a wrong REDIS_PASSWORD: WRONGPASS logged at error level, password not',
    { timeout: CASE_TIMEOUT_MS },
    async () => {
      const node = spawnFromSource(
        'origin',
        'wrong-redis',
        clusterEnv(redis.url, withCreds(nats.url, 'relay:right-nats-pw'), {
          REDIS_PASSWORD: 'wrong-redis-pw',
          LOG_LEVEL: 'warn',
        }),
      );
      await assertNotReady(
        node,
        /"level":"error".*"err":"WRONGPASS[^"]*".*"msg":"redis connection error"/,
        'wrong-redis-pw',
      );
    },
  );

  it(
    'a missing NATS_CREDS_FILE: the node fails at start naming the setting',
    { timeout: CASE_TIMEOUT_MS },
    async () => {
      const missing = join(tmp, 'missing.creds');
      const node = spawnFromSource(
        'edge',
        'missing-creds',
        clusterEnv(withCreds(redis.url, ':right-redis-pw'), nats.url, { NATS_CREDS_FILE: missing }),
      );
      const r = await node.proc.exited;
      assert.equal(r.code, 1, node.output());
      assert.match(node.output(), new RegExp(`failed to start: NATS_CREDS_FILE: cannot read ${missing}: ENOENT`));
    },
  );

  it(
    'a missing REDIS_TLS_CA_FILE: the node fails at start naming the setting',
    { timeout: CASE_TIMEOUT_MS },
    async () => {
      const missing = join(tmp, 'missing-ca.pem');
      const node = spawnFromSource(
        'origin',
        'missing-ca',
        clusterEnv(redis.url.replace('redis://', 'rediss://'), nats.url, { REDIS_TLS_CA_FILE: missing }),
      );
      const r = await node.proc.exited;
      assert.equal(r.code, 1, node.output());
      assert.match(node.output(), new RegExp(`failed to start: REDIS_TLS_CA_FILE: cannot read ${missing}: ENOENT`));
    },
  );
});
