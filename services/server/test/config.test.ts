import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MessageType } from '@rtmp-relay/rtmp';
import {
  ConfigError,
  configToConnectionLimits,
  configToHubOptions,
  loadConfig,
  SETTINGS,
  type Config,
} from '../src/config.js';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

describe('config', () => {
  it('has defaults for every setting', () => {
    const c = loadConfig({ env: {} });
    const expected: Omit<Config, 'nodeId'> = {
      rtmpHost: '::',
      rtmpPort: 1935,
      httpHost: '::',
      httpPort: 8080,
      logLevel: 'info',
      chunkSize: 4096,
      writeBatchMs: 0,
      adaptiveBatchMs: 20,
      adaptiveBatchBusyPercent: 50,
      audioCoalesceMs: 40,
      gopCacheMaxBytes: 33554432,
      gopCacheMaxMessages: 4096,
      headerCacheMaxEntries: 16,
      headerCacheMaxBytes: 4 * 1024 * 1024,
      audioOnlyCacheMs: 1000,
      streamMetricsTopN: 20,
      allowTakeover: true,
      unpublishGraceMs: 1000,
      playWaitMs: 3000,
      viewerSoftBacklogBytes: 2097152,
      viewerSoftBacklogMs: 1500,
      viewerHardBacklogBytes: 8388608,
      viewerHardBacklogMs: 8000,
      handshakeTimeoutMs: 10000,
      connectTimeoutMs: 10000,
      idleTimeoutMs: 60000,
      pingIntervalMs: 30000,
      maxConnections: 20000,
      maxStreamsPerConnection: 8,
      minChunkSize: 128,
      maxChunkStreams: 64,
      maxVideoMessageBytes: 16777215,
      maxAudioMessageBytes: 1048576,
      maxDataMessageBytes: 1048576,
      maxPartialBytes: 33554432,
      amfMaxDepth: 32,
      amfMaxItems: 1024,
      shutdownTimeoutMs: 10000,
      drainDelayMs: 0,
      drainReconnectBatch: 20,
      drainReconnectIntervalMs: 250,
      drainMoveLeadMs: 2000,
      redisUrl: '',
      natsUrl: '',
      advertiseHost: '',
      ingestPublicUrl: '',
      clusterPrefix: 'rtmp',
      leaseMs: 5000,
      heartbeatMs: 2000,
      publishWhileRedisDown: 'reject',
      pullLingerMs: 5000,
      pullFailoverWaitMs: 15000,
      pullRetryMaxMs: 2000,
      edgeTier: 'leaf',
      edgeUpstream: 'origin',
      routeMaxViewers: 2000,
      reconcileMs: 30000,
      apiToken: '',
      publishSecret: '',
      playSecret: '',
      requirePlayToken: false,
      hookOnPublish: '',
      hookOnPlay: '',
      hookOnPublishDone: '',
      hookOnPlayDone: '',
      hookTimeoutMs: 3000,
      hookFailOpen: false,
      clusterSecret: '',
      rtmpsHost: '::',
      rtmpsPort: 1936,
      tlsCertFile: '',
      tlsKeyFile: '',
      adminHost: '::',
      adminPort: null,
      maxConnectionsPerIp: 256,
      authFailLimit: 20,
      authFailWindowMs: 60_000,
      maxHttpConnections: 20_000,
      hlsSegmentMs: 2000,
      hlsPartMs: 500,
      hlsWindowSegments: 10,
      hlsLingerMs: 10_000,
      redisUsername: '',
      redisPassword: '',
      redisTlsCaFile: '',
      natsUser: '',
      natsPassword: '',
      natsToken: '',
      natsCredsFile: '',
      natsTlsCaFile: '',
      natsTlsCertFile: '',
      natsTlsKeyFile: '',
    };
    const { nodeId, ...rest } = c;
    assert.deepEqual(rest, expected);
    assert.match(nodeId, /^[A-Za-z0-9][A-Za-z0-9._-]*-[0-9a-f]{4}$/);
    assert.equal(Object.keys(c).length, SETTINGS.length);
  });

  it('defaults to the same values as the libraries', async () => {
    const { DEFAULT_HUB_OPTIONS } = await import('@rtmp-relay/hub');
    assert.deepEqual(configToHubOptions(loadConfig({ env: {} })), DEFAULT_HUB_OPTIONS);
  });

  it('never echoes credentials in configuration errors', () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ NATS_URL: 'nats://relay:s3cret-pw@nats:4222,not a url' }, 's3cret-pw'],
      [{ REDIS_URL: 'http://relay:s3cret-pw@redis:6379' }, 's3cret-pw'],
      [{ API_TOKEN: `s3cret-${'x'.repeat(5000)}` }, 's3cret-'],
      [{ NATS_PASSWORD: `s3cret-${'x'.repeat(5000)}` }, 's3cret-'],
    ];
    for (const [env, secret] of cases) {
      assert.throws(
        () => loadConfig({ env }),
        (err: Error) => err instanceof ConfigError && !err.message.includes(secret) && /got /.test(err.message),
      );
    }
  });

  it('parses env values', () => {
    const c = loadConfig({
      env: {
        RTMP_PORT: '1936',
        HTTP_HOST: '127.0.0.1',
        LOG_LEVEL: 'DEBUG',
        NODE_ID: 'edge-1',
        ALLOW_TAKEOVER: 'no',
        WRITE_BATCH_MS: ' 20 ',
        GOP_CACHE_MAX_BYTES: '0',
        UNRELATED: 'x',
      },
    });
    assert.equal(c.rtmpPort, 1936);
    assert.equal(c.httpHost, '127.0.0.1');
    assert.equal(c.logLevel, 'debug');
    assert.equal(c.nodeId, 'edge-1');
    assert.equal(c.allowTakeover, false);
    assert.equal(c.writeBatchMs, 20);
    assert.equal(c.gopCacheMaxBytes, 0);
  });

  it('accepts every boolean spelling', () => {
    for (const [v, expected] of [
      ['true', true],
      ['1', true],
      ['yes', true],
      ['YES', true],
      ['false', false],
      ['0', false],
      ['no', false],
      ['False', false],
    ] as const) {
      assert.equal(loadConfig({ env: { ALLOW_TAKEOVER: v } }).allowTakeover, expected, v);
    }
    assert.equal(loadConfig({ env: { ALLOW_TAKEOVER: 'no' }, flags: { 'allow-takeover': true } }).allowTakeover, true);
  });

  it('treats empty env values as unset', () => {
    assert.equal(loadConfig({ env: { RTMP_PORT: '', NODE_ID: '  ' } }).rtmpPort, 1935);
  });

  it('lets flags win over env, in kebab or camelCase', () => {
    const env = { RTMP_PORT: '1936', HTTP_PORT: '8081', CHUNK_SIZE: '8192' };
    const c = loadConfig({ env, flags: { 'rtmp-port': '1937', httpPort: '8082', 'log-level': undefined } });
    assert.equal(c.rtmpPort, 1937);
    assert.equal(c.httpPort, 8082);
    assert.equal(c.chunkSize, 8192); // env still applies where no flag is given
    assert.equal(c.logLevel, 'info');
  });

  it('accepts port 0 (any free port)', () => {
    const c = loadConfig({ flags: { 'rtmp-port': '0', 'http-port': '0' } });
    assert.equal(c.rtmpPort, 0);
    assert.equal(c.httpPort, 0);
  });

  it('maps env and flag names one to one (SCREAMING_SNAKE <-> kebab-case <-> camelCase key)', () => {
    const envs = new Set<string>();
    const flags = new Set<string>();
    const keys = new Set<string>();
    for (const s of SETTINGS) {
      assert.match(s.env, /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/, s.env);
      assert.match(s.flag, /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/, s.flag);
      assert.equal(s.flag, s.env.toLowerCase().replaceAll('_', '-'));
      assert.equal(s.env, s.flag.toUpperCase().replaceAll('-', '_'));
      assert.equal(
        s.key,
        s.flag.replace(/-([a-z0-9])/g, (_, ch: string) => ch.toUpperCase()),
      );
      assert.ok(s.description.length > 10, `${s.env} has a description`);
      envs.add(s.env);
      flags.add(s.flag);
      keys.add(s.key);
    }
    assert.equal(envs.size, SETTINGS.length);
    assert.equal(flags.size, SETTINGS.length);
    assert.equal(keys.size, SETTINGS.length);
    // The settings named in the service spec (the k8s manifests cross-check against SETTINGS too).
    for (const env of [
      'RTMP_HOST',
      'RTMP_PORT',
      'HTTP_HOST',
      'HTTP_PORT',
      'LOG_LEVEL',
      'NODE_ID',
      'CHUNK_SIZE',
      'WRITE_BATCH_MS',
      'GOP_CACHE_MAX_BYTES',
      'GOP_CACHE_MAX_MESSAGES',
      'AUDIO_ONLY_CACHE_MS',
      'ALLOW_TAKEOVER',
      'UNPUBLISH_GRACE_MS',
      'PLAY_WAIT_MS',
      'VIEWER_SOFT_BACKLOG_BYTES',
      'VIEWER_SOFT_BACKLOG_MS',
      'VIEWER_HARD_BACKLOG_BYTES',
      'VIEWER_HARD_BACKLOG_MS',
      'HANDSHAKE_TIMEOUT_MS',
      'CONNECT_TIMEOUT_MS',
      'IDLE_TIMEOUT_MS',
      'PING_INTERVAL_MS',
      'MAX_CONNECTIONS',
      'MAX_STREAMS_PER_CONNECTION',
      'MIN_CHUNK_SIZE',
      'MAX_CHUNK_STREAMS',
      'MAX_VIDEO_MESSAGE_BYTES',
      'MAX_AUDIO_MESSAGE_BYTES',
      'MAX_DATA_MESSAGE_BYTES',
      'MAX_PARTIAL_BYTES',
      'AMF_MAX_DEPTH',
      'AMF_MAX_ITEMS',
      'SHUTDOWN_TIMEOUT_MS',
      'DRAIN_DELAY_MS',
      'DRAIN_RECONNECT_BATCH',
      'DRAIN_RECONNECT_INTERVAL_MS',
      'DRAIN_MOVE_LEAD_MS',
    ]) {
      assert.ok(envs.has(env), `${env} is in SETTINGS`);
    }
    // Every setting is settable through its env var and through its flag.
    const config = loadConfig({ env: {} }) as unknown as Record<string, unknown>;
    for (const s of SETTINGS) assert.ok(s.key in config, `${s.key} is a Config field`);
  });

  it('reports bad values readably, naming the variable and the flag', () => {
    const err = configError(() => loadConfig({ env: { RTMP_PORT: 'abc' } }));
    assert.match(err.message, /RTMP_PORT \(--rtmp-port\): expected an integer 1-65535, got 'abc'/);
    assert.deepEqual(err.issues, ["RTMP_PORT (--rtmp-port): expected an integer 1-65535, got 'abc'"]);
  });

  it('lists every bad value, one per line, whether from env or flags', () => {
    const err = configError(() =>
      loadConfig({
        env: { CHUNK_SIZE: '64', LOG_LEVEL: 'loud', ALLOW_TAKEOVER: 'maybe' },
        flags: { 'http-port': '70000', 'write-batch-ms': '1.5', 'rtmp-host': 'not a host' },
      }),
    );
    const lines = err.message.split('\n');
    assert.equal(lines.length, 1 + 6, err.message);
    assert.match(err.message, /CHUNK_SIZE \(--chunk-size\): expected an integer 128-65536, got '64'/);
    assert.match(
      err.message,
      /LOG_LEVEL \(--log-level\): expected one of fatal, error, warn, info, debug, trace, silent, got 'loud'/,
    );
    assert.match(err.message, /ALLOW_TAKEOVER \(--allow-takeover\): expected a boolean .*, got 'maybe'/);
    assert.match(err.message, /HTTP_PORT \(--http-port\): expected an integer 1-65535, got '70000'/);
    assert.match(err.message, /WRITE_BATCH_MS \(--write-batch-ms\): expected an integer 0-1000, got '1.5'/);
    assert.match(err.message, /RTMP_HOST \(--rtmp-host\): expected an IP address or host name/);
  });

  it('rejects negative and non-decimal numbers', () => {
    for (const v of ['-1', '1e3', '0x10', '12abc', '']) {
      if (v === '') continue; // empty means unset
      const err = configError(() => loadConfig({ flags: { 'idle-timeout-ms': v } }));
      assert.match(err.message, /IDLE_TIMEOUT_MS \(--idle-timeout-ms\): expected an integer/);
    }
  });

  it('checks soft < hard bounds and other cross-field rules', () => {
    let err = configError(() =>
      loadConfig({ env: { VIEWER_SOFT_BACKLOG_BYTES: '9000000', VIEWER_HARD_BACKLOG_BYTES: '8000000' } }),
    );
    assert.match(
      err.message,
      /VIEWER_SOFT_BACKLOG_BYTES \(--viewer-soft-backlog-bytes\): must be less than VIEWER_HARD_BACKLOG_BYTES \(--viewer-hard-backlog-bytes\), got 9000000 >= 8000000/,
    );
    err = configError(() => loadConfig({ flags: { 'viewer-soft-backlog-ms': '8000' } }));
    assert.match(err.message, /VIEWER_SOFT_BACKLOG_MS .*must be less than VIEWER_HARD_BACKLOG_MS/);
    err = configError(() => loadConfig({ env: { PING_INTERVAL_MS: '60000' } }));
    assert.match(err.message, /PING_INTERVAL_MS .*must be less than IDLE_TIMEOUT_MS/);
    assert.equal(loadConfig({ env: { PING_INTERVAL_MS: '60000', IDLE_TIMEOUT_MS: '0' } }).idleTimeoutMs, 0);
    err = configError(() => loadConfig({ env: { MAX_PARTIAL_BYTES: '1000000' } }));
    assert.match(err.message, /MAX_VIDEO_MESSAGE_BYTES .*must not exceed MAX_PARTIAL_BYTES/);
    err = configError(() => loadConfig({ env: { RTMP_PORT: '8080' } }));
    assert.match(err.message, /RTMP_PORT \(--rtmp-port\): must differ from HTTP_PORT \(--http-port\)/);
    assert.equal(loadConfig({ env: { RTMP_PORT: '0', HTTP_PORT: '0' } }).rtmpPort, 0);
  });

  it('maps to hub options and connection limits', () => {
    const c = loadConfig({
      env: {
        WRITE_BATCH_MS: '5',
        ALLOW_TAKEOVER: 'false',
        HANDSHAKE_TIMEOUT_MS: '2000',
        MAX_VIDEO_MESSAGE_BYTES: '5000000',
        MAX_AUDIO_MESSAGE_BYTES: '100000',
        MAX_DATA_MESSAGE_BYTES: '200000',
        MIN_CHUNK_SIZE: '256',
        AMF_MAX_DEPTH: '8',
      },
    });
    const hub = configToHubOptions(c);
    assert.equal(hub.batchWindowMs, 5);
    assert.equal(hub.allowTakeover, false);
    assert.equal(hub.chunkSize, 4096);
    const limits = configToConnectionLimits(c);
    assert.equal(limits.handshakeTimeoutMs, 2000);
    assert.equal(limits.chunk.minChunkSize, 256);
    assert.equal(limits.chunk.maxChunkStreams, 64);
    assert.equal(limits.chunk.maxPartialBytes, 33554432);
    assert.deepEqual(limits.amf, { maxDepth: 8, maxItems: 1024 });
    const size = limits.chunk.maxMessageSize!;
    assert.equal(size(MessageType.Video), 5000000);
    assert.equal(size(MessageType.Aggregate), 5000000);
    assert.equal(size(MessageType.Audio), 100000);
    assert.equal(size(MessageType.CommandAmf0), 200000);
    assert.equal(size(MessageType.DataAmf0), 200000);
    assert.ok(size(MessageType.SetChunkSize) <= 64);
  });
});

describe('cluster settings', () => {
  it('validates URLs and names the variable in the error', () => {
    assert.throws(
      () => loadConfig({ env: { REDIS_URL: 'http://x' } }),
      /REDIS_URL \(--redis-url\): expected a URL \(redis: or rediss:\/\/\.\.\.\)/,
    );
    const c = loadConfig({ env: { REDIS_URL: 'redis://127.0.0.1:6390', NATS_URL: 'nats://127.0.0.1:4333' } });
    assert.equal(c.redisUrl, 'redis://127.0.0.1:6390');
    assert.equal(c.natsUrl, 'nats://127.0.0.1:4333');
    assert.equal(
      loadConfig({ env: { NATS_URL: 'nats://a:4222, nats://b:4222' } }).natsUrl,
      'nats://a:4222,nats://b:4222',
    );
    assert.throws(
      () => loadConfig({ env: { NATS_URL: 'nats://a:4222,http://b' } }),
      /NATS_URL \(--nats-url\): expected one or more URLs/,
    );
  });

  it('REQUIRE_PLAY_TOKEN needs PLAY_SECRET', () => {
    assert.throws(
      () => loadConfig({ env: { REQUIRE_PLAY_TOKEN: 'true' } }),
      /REQUIRE_PLAY_TOKEN \(--require-play-token\): needs PLAY_SECRET/,
    );
  });

  it('drain pacing: a wave has at least one publisher, the interval may be 0 (no pacing)', () => {
    const c = loadConfig({ flags: { 'drain-reconnect-batch': '5' }, env: { DRAIN_RECONNECT_INTERVAL_MS: '0' } });
    assert.equal(c.drainReconnectBatch, 5);
    assert.equal(c.drainReconnectIntervalMs, 0);
    assert.throws(
      () => loadConfig({ env: { DRAIN_RECONNECT_BATCH: '0' } }),
      /DRAIN_RECONNECT_BATCH \(--drain-reconnect-batch\): expected an integer 1-1000000, got '0'/,
    );
    assert.throws(
      () => loadConfig({ env: { DRAIN_RECONNECT_INTERVAL_MS: '-1' } }),
      /DRAIN_RECONNECT_INTERVAL_MS \(--drain-reconnect-interval-ms\): expected an integer 0-60000/,
    );
    assert.equal(loadConfig({ env: {} }).drainMoveLeadMs, 2000);
    assert.equal(loadConfig({ flags: { 'drain-move-lead-ms': '0' }, env: {} }).drainMoveLeadMs, 0);
    assert.throws(
      () => loadConfig({ env: { DRAIN_MOVE_LEAD_MS: '10001' } }),
      /DRAIN_MOVE_LEAD_MS \(--drain-move-lead-ms\): expected an integer 0-10000/,
    );
  });
});
