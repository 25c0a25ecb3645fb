/**
 * Configuration of every role (standalone, origin, edge): one zod schema, fed from environment variables
 * (SCREAMING_SNAKE) and CLI flags of the same name in kebab-case (`RTMP_PORT` <-> `--rtmp-port`).
 * Precedence: flags > env > defaults. `SETTINGS` is the single source of truth for names, help and validation.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { DEFAULT_HUB_OPTIONS, type HubOptions } from '@rtmp-relay/hub';
import {
  DEFAULT_AMF_LIMITS,
  DEFAULT_CHUNK_READER_LIMITS,
  DEFAULT_MESSAGE_SIZE_LIMITS,
  maxMessageSizeBy,
  type ConnectionLimits,
} from '@rtmp-relay/rtmp';
import { z } from 'zod';
import { EDGE_TIERS, EDGE_UPSTREAMS } from './cluster/tiers.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface Setting {
  /** Environment variable, SCREAMING_SNAKE: `RTMP_PORT`. */
  readonly env: string;
  /** CLI flag without dashes, kebab-case of `env`: `rtmp-port`. */
  readonly flag: string;
  /** Field of `Config`, camelCase of `env`: `rtmpPort`. */
  readonly key: keyof Config;
  readonly description: string;
  /** Default as shown in help ('' when computed at load time, see description). */
  readonly defaultText: string;
  /** The flag takes an optional value (`--allow-takeover` alone means true). */
  readonly boolean: boolean;
  /** Parses one raw value (string from env or flags, boolean from a bare flag) into the typed field; has the default. */
  readonly schema: z.ZodType;
}

/** A readable list of every problem found, one per line: `RTMP_PORT (--rtmp-port): expected ..., got 'abc'`. */
export class ConfigError extends Error {
  constructor(readonly issues: readonly string[]) {
    super(`invalid configuration:\n${issues.map((i) => `  ${i}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Value parsers. Each accepts the raw string (or a boolean for bare flags) and reports one readable expectation.

type Raw = string | number | boolean;
const MAX_MS = 24 * 3600 * 1000;
const MAX_BYTES = 2 ** 40;
const raw = z.union([z.string(), z.number(), z.boolean()]);

function fail(ctx: z.RefinementCtx, message: string): never {
  ctx.addIssue({ code: 'custom', message });
  return z.NEVER as never;
}

function int(
  min: number,
  max: number,
  expectation = max >= MAX_BYTES ? `expected an integer >= ${min}` : `expected an integer ${min}-${max}`,
) {
  return raw.transform((v: Raw, ctx): number => {
    const s = typeof v === 'string' ? v.trim() : v;
    const n = typeof s === 'number' ? s : typeof s === 'string' && /^[+-]?\d+$/.test(s) ? Number(s) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) return fail(ctx, expectation);
    return n;
  });
}

const TRUE = new Set(['true', '1', 'yes']);
const FALSE = new Set(['false', '0', 'no']);
function bool() {
  return raw.transform((v: Raw, ctx): boolean => {
    if (typeof v === 'boolean') return v;
    const s = String(v).trim().toLowerCase();
    if (TRUE.has(s)) return true;
    if (FALSE.has(s)) return false;
    return fail(ctx, 'expected a boolean (true/false/1/0/yes/no)');
  });
}

const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
function host() {
  return raw.transform((v: Raw, ctx): string => {
    const s = String(v).trim();
    if (isIP(s) !== 0 || HOSTNAME_RE.test(s)) return s;
    return fail(ctx, 'expected an IP address or host name (:: for all interfaces)');
  });
}

function oneOf<T extends string>(values: readonly T[]) {
  return raw.transform((v: Raw, ctx): T => {
    const s = String(v).trim().toLowerCase();
    if ((values as readonly string[]).includes(s)) return s as T;
    return fail(ctx, `expected one of ${values.join(', ')}`);
  });
}

const NODE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
function nodeId() {
  return raw.transform((v: Raw, ctx): string => {
    const s = String(v).trim();
    if (NODE_ID_RE.test(s)) return s;
    return fail(ctx, 'expected 1-128 characters of letters, digits, ".", "_" or "-", starting with a letter or digit');
  });
}

/** `<hostname>-<4 hex>`: unique enough across restarts of the same pod name. */
export function defaultNodeId(): string {
  const h =
    hostname()
      .replace(/[^A-Za-z0-9._-]/g, '-')
      .replace(/^[^A-Za-z0-9]+/, '')
      .slice(0, 100) || 'node';
  return `${h}-${randomBytes(2).toString('hex')}`;
}

/** A URL with one of `protocols`, or '' for "not configured". */
function url(protocols: readonly string[]) {
  return raw.transform((v: Raw, ctx): string => {
    const s = String(v).trim();
    if (s === '') return s;
    try {
      const u = new URL(s);
      if (protocols.includes(u.protocol)) return s;
    } catch {
      // fall through to the readable error
    }
    return fail(ctx, `expected a URL (${protocols.join(' or ')}//...), or empty`);
  });
}

/** A comma-separated list of URLs (NATS takes several seed servers), or ''. */
function urlList(protocols: readonly string[]) {
  const one = url(protocols);
  return raw.transform((v: Raw, ctx): string => {
    const parts = String(v)
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean);
    for (const part of parts) {
      const r = one.safeParse(part);
      if (!r.success)
        return fail(ctx, `expected one or more URLs (${protocols.join(' or ')}//...), comma-separated, or empty`);
    }
    return parts.join(',');
  });
}

/** Free text (secrets, tokens, prefixes); '' means not configured. */
function text(maxLength = 4096) {
  return raw.transform((v: Raw, ctx): string => {
    const s = String(v);
    if (s.length <= maxLength) return s;
    return fail(ctx, `expected at most ${maxLength} characters`);
  });
}

const ms = (min = 0, max = MAX_MS) => int(min, max);
const bytes = (min = 0, max = MAX_BYTES) => int(min, max);
const port = () => int(0, 65535, 'expected an integer 1-65535'); // 0 (any free port) is accepted for tests
/** A port, or '' / 'off' for "no separate listener" (null). */
function optionalPort() {
  const p = port();
  return raw.transform((v: Raw, ctx): number | null => {
    const s = typeof v === 'string' ? v.trim().toLowerCase() : v;
    if (s === '' || s === 'off') return null;
    const r = p.safeParse(s);
    return r.success ? r.data : fail(ctx, "expected a port 1-65535, or 'off'");
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The settings. Order here is the order of --help.

interface Def<S extends z.ZodType = z.ZodType> {
  schema: S;
  default: unknown;
  description: string;
}

function def<S extends z.ZodType>(schema: S, dflt: z.output<S> | (() => z.output<S>), description: string): Def<S> {
  return { schema, default: dflt, description };
}

/** The hub's own defaults: the settings default to them rather than repeating the numbers. */
const HUB = DEFAULT_HUB_OPTIONS;

const DEFS = {
  rtmpHost: def(host(), '::', 'RTMP listen address (:: is dual-stack on Linux)'),
  rtmpPort: def(port(), 1935, 'RTMP listen port'),
  httpHost: def(host(), '::', 'HTTP listen address (health, metrics, API)'),
  httpPort: def(port(), 8080, 'HTTP listen port'),
  logLevel: def(oneOf(LOG_LEVELS), 'info', `log level: ${LOG_LEVELS.join(', ')}`),
  nodeId: def(nodeId(), defaultNodeId, 'node id in logs, metrics and the cluster (default: <hostname>-<4 random hex>)'),
  chunkSize: def(int(128, 65536), HUB.chunkSize, 'outgoing RTMP chunk size, 128-65536'),
  writeBatchMs: def(
    ms(0, 1000),
    HUB.batchWindowMs,
    'merge this many ms of messages into one write per viewer, always (0 = adaptive, see ADAPTIVE_BATCH_MS)',
  ),
  adaptiveBatchMs: def(
    ms(0, 1000),
    HUB.adaptiveBatchMs,
    'with WRITE_BATCH_MS 0: write at once while the event loop is idle, merge this many ms per viewer while busy (0 = never)',
  ),
  adaptiveBatchBusyPercent: def(
    int(1, 100),
    Math.round(HUB.adaptiveBusyUtilization * 100),
    'event loop utilization (percent) from which adaptive batching merges writes',
  ),
  audioCoalesceMs: def(
    ms(0, 1000),
    HUB.audioCoalesceMs,
    'audio waits up to this long for the next video frame and goes out in the same write (0 = at once)',
  ),
  gopCacheMaxBytes: def(bytes(), HUB.gopCacheMaxBytes, 'GOP cache bound in bytes per stream (0 disables the cache)'),
  gopCacheMaxMessages: def(int(0, 1_000_000), HUB.gopCacheMaxMessages, 'GOP cache bound in messages per stream'),
  headerCacheMaxEntries: def(
    int(1, 1024),
    HUB.headerCacheMaxEntries,
    'sequence headers (codecs, tracks) cached per stream for joiners',
  ),
  headerCacheMaxBytes: def(bytes(1), HUB.headerCacheMaxBytes, 'bytes of sequence headers cached per stream'),
  audioOnlyCacheMs: def(ms(), HUB.audioOnlyCacheMs, 'audio kept for late joiners of audio-only streams'),
  streamMetricsTopN: def(
    int(0, 10_000),
    20,
    'per-stream Prometheus series for this many streams with the most viewers (0 = none): a cardinality guard',
  ),
  allowTakeover: def(bool(), HUB.allowTakeover, 'a new publisher of a live key replaces the current one'),
  unpublishGraceMs: def(
    ms(),
    HUB.unpublishGraceMs,
    'viewers wait this long for the publisher to come back before the stream ends',
  ),
  playWaitMs: def(
    ms(),
    3000,
    "a play waits this long for a stream that is not live yet before StreamNotFound (an edge still connecting to a live stream's origin waits up to CONNECT_TIMEOUT_MS more)",
  ),
  viewerSoftBacklogBytes: def(
    bytes(1),
    HUB.viewerSoftBacklogBytes,
    'past this viewer backlog, non-key video is dropped',
  ),
  viewerSoftBacklogMs: def(ms(1), HUB.viewerSoftBacklogMs, 'past this viewer backlog age, non-key video is dropped'),
  viewerHardBacklogBytes: def(
    bytes(1),
    HUB.viewerHardBacklogBytes,
    'past this viewer backlog, the viewer is disconnected',
  ),
  viewerHardBacklogMs: def(ms(1), HUB.viewerHardBacklogMs, 'past this viewer backlog age, the viewer is disconnected'),
  handshakeTimeoutMs: def(ms(1), 10_000, 'the RTMP handshake must complete within this'),
  connectTimeoutMs: def(ms(1), 10_000, 'the first command after the handshake must be connect, within this'),
  idleTimeoutMs: def(ms(), 60_000, 'close connections that sent nothing for this long (0 disables)'),
  pingIntervalMs: def(ms(), 30_000, 'ping idle peers this often (0 disables); must be below IDLE_TIMEOUT_MS'),
  maxConnections: def(int(1, 10_000_000), 20_000, 'RTMP connections accepted at once; more are rejected'),
  maxStreamsPerConnection: def(int(1, 1024), 8, 'createStream calls allowed per connection'),
  minChunkSize: def(
    int(1, 65536),
    DEFAULT_CHUNK_READER_LIMITS.minChunkSize,
    'smallest Set Chunk Size accepted from peers',
  ),
  maxChunkStreams: def(
    int(2, 65599),
    DEFAULT_CHUNK_READER_LIMITS.maxChunkStreams,
    'distinct chunk stream ids one connection may use',
  ),
  maxVideoMessageBytes: def(
    int(1, 0xffffff),
    DEFAULT_MESSAGE_SIZE_LIMITS.video,
    'largest video (and aggregate) message accepted',
  ),
  maxAudioMessageBytes: def(int(1, 0xffffff), DEFAULT_MESSAGE_SIZE_LIMITS.audio, 'largest audio message accepted'),
  maxDataMessageBytes: def(
    int(1, 0xffffff),
    DEFAULT_MESSAGE_SIZE_LIMITS.data,
    'largest command or data message accepted',
  ),
  maxPartialBytes: def(
    bytes(1),
    DEFAULT_CHUNK_READER_LIMITS.maxPartialBytes,
    'bytes of incomplete messages one connection may hold',
  ),
  amfMaxDepth: def(int(1, 1024), DEFAULT_AMF_LIMITS.maxDepth, 'deepest AMF nesting accepted in commands and metadata'),
  amfMaxItems: def(
    int(1, 1_000_000),
    DEFAULT_AMF_LIMITS.maxItems,
    'most AMF items (array elements, object properties) accepted in one value',
  ),
  shutdownTimeoutMs: def(ms(), 10_000, 'on shutdown, force-close connections still open after this'),
  drainDelayMs: def(ms(), 0, 'on shutdown, stay not-ready this long before closing the listeners'),
  drainReconnectBatch: def(
    int(1, 1_000_000),
    20,
    'origin drain: most publishers moved per wave: E-RTMP ones asked to reconnect to another origin (paced for at most 5 s, then the rest are asked at once), then the others handed off (paced while the drain is within its bound)',
  ),
  drainReconnectIntervalMs: def(
    ms(0, 60_000),
    250,
    'origin drain: time between waves (reconnect requests, then hand-offs); a wave of requests goes earlier once every stream of the previous one has moved (0 = no pacing)',
  ),
  drainMoveLeadMs: def(
    ms(0, 10_000),
    2000,
    "origin drain: an E-RTMP publisher is asked to reconnect once every edge pulling its stream has its next pull waiting at the target origin, or after this (at most half the drain's 5 s wait; 0 = ask at once)",
  ),
  redisUrl: def(url(['redis:', 'rediss:']), '', 'Redis for stream ownership and the node registry (origin, edge)'),
  natsUrl: def(
    urlList(['nats:', 'tls:']),
    '',
    'NATS servers (comma-separated) for control events (origin, edge); without NATS edges fall back to Redis',
  ),
  advertiseHost: def(
    text(253),
    '',
    'host other nodes reach this one at (e.g. the pod IP; default: the first non-internal IPv4)',
  ),
  ingestPublicUrl: def(
    url(['rtmp:', 'rtmps:']),
    '',
    "origin drain: E-RTMP publishers are asked to reconnect to <this URL>/<app> (the public ingest address) instead of another origin's pod address",
  ),
  clusterPrefix: def(
    text(64),
    'rtmp',
    'prefix of Redis keys and NATS subjects (several clusters can share Redis and NATS)',
  ),
  leaseMs: def(ms(500), 5000, 'stream ownership lease in Redis; refreshed every third of it while live'),
  heartbeatMs: def(ms(100), 2000, 'node registry refresh and load events interval'),
  publishWhileRedisDown: def(
    oneOf(['reject', 'allow'] as const),
    'reject',
    'new publishes while Redis is unreachable: reject, or allow unregistered (claimed when Redis returns)',
  ),
  pullLingerMs: def(ms(), 5000, 'edge: keep an upstream pull this long after its last viewer left'),
  pullFailoverWaitMs: def(
    ms(),
    15_000,
    'edge: keep viewers attached this long after an upstream broke, while the stream moves',
  ),
  pullRetryMaxMs: def(ms(50), 2000, 'edge: longest backoff between upstream pull attempts'),
  edgeTier: def(
    oneOf(EDGE_TIERS),
    'leaf',
    'edge: tier in a two-tier layout; a parent pulls from the origin and serves leaves (and its own viewers)',
  ),
  edgeUpstream: def(
    oneOf(EDGE_UPSTREAMS),
    'origin',
    'edge (leaf): pull from the origin, or from the parent chosen by rendezvous hashing of the stream key (origin when none is live)',
  ),
  routeMaxViewers: def(
    int(1, 10_000_000),
    2000,
    'viewer routing (/api/cluster/route, /play/): fill an edge carrying the stream up to this many viewers, then spill',
  ),
  reconcileMs: def(ms(1000), 30_000, 'slow periodic re-read of Redis that repairs lost NATS events'),
  apiToken: def(text(), '', 'bearer token required by the cluster HTTP API (/api/*) when set'),
  publishSecret: def(
    text(),
    '',
    'HMAC secret for signed publish URLs (?expires=&token=); publishes need a valid token when set',
  ),
  playSecret: def(text(), '', 'HMAC secret for signed play URLs'),
  requirePlayToken: def(bool(), false, 'plays need a valid signed token (checked locally, no webhook per viewer)'),
  hookOnPublish: def(url(['http:', 'https:']), '', 'blocking webhook before a publish: 2xx allows'),
  hookOnPlay: def(
    url(['http:', 'https:']),
    '',
    'blocking webhook before a play (when play tokens are not used): 2xx allows',
  ),
  hookOnPublishDone: def(url(['http:', 'https:']), '', 'notify-only webhook after a publish ends'),
  hookOnPlayDone: def(url(['http:', 'https:']), '', 'notify-only webhook after a play ends'),
  hookTimeoutMs: def(ms(1), 3000, 'webhook timeout; a timeout denies unless HOOK_FAIL_OPEN'),
  hookFailOpen: def(bool(), false, 'allow when a blocking webhook fails or times out'),
  clusterSecret: def(
    text(),
    '',
    'HMAC secret edges sign their upstream pulls with; origins then serve plays only to holders of it (not viewers)',
  ),
  rtmpsHost: def(host(), '::', 'RTMPS (RTMP over TLS) listen address'),
  rtmpsPort: def(port(), 1936, 'RTMPS listen port; the listener runs when TLS_CERT_FILE and TLS_KEY_FILE are set'),
  tlsCertFile: def(text(), '', 'PEM certificate (chain) for RTMPS; reloaded when the file changes'),
  tlsKeyFile: def(text(), '', 'PEM private key for RTMPS; reloaded when the file changes'),
  adminHost: def(host(), '::', 'admin listen address (/metrics, /api) when ADMIN_PORT is set'),
  adminPort: def(optionalPort(), null, "serve /metrics and /api on this separate port only ('off': on the HTTP port)"),
  maxConnectionsPerIp: def(
    int(0, 10_000_000),
    256,
    'RTMP connections one client IP may hold at once (0 = no cap; authenticated cluster pulls do not count)',
  ),
  authFailLimit: def(
    int(0, 1_000_000),
    20,
    'failed publish/play authorizations one IP may have per AUTH_FAIL_WINDOW_MS before it is refused (0 = no limit)',
  ),
  authFailWindowMs: def(ms(1000), 60_000, 'window of AUTH_FAIL_LIMIT'),
  maxHttpConnections: def(int(1, 10_000_000), 20_000, 'HTTP and WebSocket connections accepted at once'),
  hlsSegmentMs: def(
    ms(500, 30_000),
    2000,
    'HLS: target segment duration (segments start at keyframes: a longer GOP wins)',
  ),
  hlsPartMs: def(ms(100, 5000), 500, 'LL-HLS: target partial segment duration'),
  hlsWindowSegments: def(int(3, 1000), 10, 'HLS: complete segments kept in memory and listed, per stream'),
  hlsLingerMs: def(ms(1000), 10_000, 'HLS: keep packaging a stream this long after its last HLS request'),
  redisUsername: def(text(256), '', 'Redis ACL user (overrides the one in REDIS_URL)'),
  redisPassword: def(text(), '', 'Redis password (overrides the one in REDIS_URL)'),
  redisTlsCaFile: def(text(), '', 'PEM CA bundle to verify Redis over TLS (rediss://)'),
  natsUser: def(text(256), '', 'NATS user (with NATS_PASSWORD); credentials in NATS_URL work too'),
  natsPassword: def(text(), '', 'NATS password'),
  natsToken: def(text(), '', 'NATS authentication token'),
  natsCredsFile: def(text(), '', 'NATS credentials file (JWT + NKey seed)'),
  natsTlsCaFile: def(text(), '', 'PEM CA bundle to verify NATS over TLS'),
  natsTlsCertFile: def(text(), '', 'PEM client certificate for NATS mutual TLS'),
  natsTlsKeyFile: def(text(), '', 'PEM client key for NATS mutual TLS'),
} satisfies Record<string, Def>;

/** The validated configuration of every role: one field per setting, typed by the setting's parser. */
export type Config = { -readonly [K in keyof typeof DEFS]: z.output<(typeof DEFS)[K]['schema']> };

function envName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
}

function formatDefault(v: unknown): string {
  if (v === null) return 'off';
  return typeof v === 'function' ? '' : String(v);
}

export const SETTINGS: ReadonlyArray<Setting> = Object.freeze(
  (Object.keys(DEFS) as (keyof Config)[]).map((key): Setting => {
    const d = DEFS[key];
    const env = envName(key);
    const isBool = typeof d.default === 'boolean';
    return Object.freeze({
      env,
      flag: env.toLowerCase().replaceAll('_', '-'),
      key,
      description: d.description,
      defaultText: formatDefault(d.default),
      boolean: isBool,
      schema: (d.schema as z.ZodType<unknown, Raw>).default(d.default as never),
    });
  }),
);

// ---------------------------------------------------------------------------------------------------------------
// Cross-field checks: each names every variable involved.

const label = (key: keyof Config): string => {
  const s = SETTINGS.find((x) => x.key === key)!;
  return `${s.env} (--${s.flag})`;
};

const WILDCARD_HOSTS = new Set(['::', '0.0.0.0', '']);

function crossFieldIssues(c: Config): string[] {
  const out: string[] = [];
  const below = (soft: keyof Config, hard: keyof Config) => {
    if ((c[soft] as number) >= (c[hard] as number))
      out.push(`${label(soft)}: must be less than ${label(hard)}, got ${c[soft]} >= ${c[hard]}`);
  };
  below('viewerSoftBacklogBytes', 'viewerHardBacklogBytes');
  below('viewerSoftBacklogMs', 'viewerHardBacklogMs');
  if (c.pingIntervalMs > 0 && c.idleTimeoutMs > 0) below('pingIntervalMs', 'idleTimeoutMs');
  for (const k of ['maxVideoMessageBytes', 'maxAudioMessageBytes', 'maxDataMessageBytes'] as const) {
    if (c[k] > c.maxPartialBytes)
      out.push(`${label(k)}: must not exceed ${label('maxPartialBytes')}, got ${c[k]} > ${c.maxPartialBytes}`);
  }
  // Corked bytes count as backlog: a batch window as long as the soft age bound would drop frames of healthy viewers.
  if (c.writeBatchMs > 0) below('writeBatchMs', 'viewerSoftBacklogMs');
  if (c.adaptiveBatchMs > 0) below('adaptiveBatchMs', 'viewerSoftBacklogMs');
  if (c.requirePlayToken && !c.playSecret) out.push(`${label('requirePlayToken')}: needs ${label('playSecret')}`);
  if (Boolean(c.tlsCertFile) !== Boolean(c.tlsKeyFile))
    out.push(`${label('tlsCertFile')} and ${label('tlsKeyFile')}: set both or neither`);
  if (Boolean(c.natsTlsCertFile) !== Boolean(c.natsTlsKeyFile))
    out.push(`${label('natsTlsCertFile')} and ${label('natsTlsKeyFile')}: set both or neither`);
  if (c.heartbeatMs >= c.leaseMs * 4) out.push(`${label('heartbeatMs')}: should be well below 4 x ${label('leaseMs')}`);
  const hostsOverlap = c.rtmpHost === c.httpHost || WILDCARD_HOSTS.has(c.rtmpHost) || WILDCARD_HOSTS.has(c.httpHost);
  if (c.rtmpPort !== 0 && c.rtmpPort === c.httpPort && hostsOverlap)
    out.push(`${label('rtmpPort')}: must differ from ${label('httpPort')}, both are ${c.rtmpPort}`);
  return out;
}

/** Each setting's parser with its default: the object shape of the whole config, typed from DEFS. */
const CONFIG_SHAPE = Object.fromEntries(SETTINGS.map((s) => [s.key, s.schema])) as {
  [K in keyof Config]: z.ZodType<Config[K], Raw | undefined>;
};

/** The whole-config schema (every role): per-field parsing, then the cross-field checks. */
export const configSchema = z.object(CONFIG_SHAPE).superRefine((c, ctx) => {
  for (const message of crossFieldIssues(c)) ctx.addIssue({ code: 'custom', message, path: [] });
});

// ---------------------------------------------------------------------------------------------------------------

function camel(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Settings whose values are credentials: never echoed in errors. */
const SECRET_SETTING_RE = /SECRET|PASSWORD|TOKEN|_USER$|USERNAME/;

/** `scheme://user:pass@host` → `scheme://***@host` in any value (URLs may carry credentials). */
function redactUrlCredentials(v: unknown): unknown {
  return typeof v === 'string' ? v.replace(/(\w+:\/\/)[^/@,\s]*@/g, '$1***@') : v;
}

function show(v: unknown): string {
  return typeof v === 'string' ? `'${v}'` : String(v);
}

/**
 * Flags win over env, env over defaults. `flags` keys may be kebab (`rtmp-port`, as on the command line) or camelCase
 * (`rtmpPort`, as commander's `opts()` returns them); unknown keys are ignored. Empty env values count as unset.
 * Throws ConfigError listing every problem.
 */
export function loadConfig(
  opts: { env?: NodeJS.ProcessEnv; flags?: Record<string, string | boolean | undefined> } = {},
): Config {
  const env = opts.env ?? {};
  const flags = opts.flags ?? {};
  const input: Record<string, Raw | undefined> = {};
  for (const s of SETTINGS) {
    const fromFlag = flags[s.flag] ?? flags[camel(s.flag)];
    const fromEnv = env[s.env];
    if (fromFlag !== undefined) input[s.key] = fromFlag;
    else if (fromEnv !== undefined && fromEnv.trim() !== '') input[s.key] = fromEnv;
  }
  const result = configSchema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    const key = issue.path[0];
    const s = SETTINGS.find((x) => x.key === key);
    if (!s) return issue.message;
    const got = SECRET_SETTING_RE.test(s.env) ? '(value hidden)' : show(redactUrlCredentials(input[s.key]));
    return `${s.env} (--${s.flag}): ${issue.message}, got ${got}`;
  });
  throw new ConfigError(issues);
}

export function configToHubOptions(c: Config): HubOptions {
  return {
    chunkSize: c.chunkSize,
    gopCacheMaxBytes: c.gopCacheMaxBytes,
    gopCacheMaxMessages: c.gopCacheMaxMessages,
    headerCacheMaxEntries: c.headerCacheMaxEntries,
    headerCacheMaxBytes: c.headerCacheMaxBytes,
    audioOnlyCacheMs: c.audioOnlyCacheMs,
    viewerSoftBacklogBytes: c.viewerSoftBacklogBytes,
    viewerSoftBacklogMs: c.viewerSoftBacklogMs,
    viewerHardBacklogBytes: c.viewerHardBacklogBytes,
    viewerHardBacklogMs: c.viewerHardBacklogMs,
    batchWindowMs: c.writeBatchMs,
    adaptiveBatchMs: c.adaptiveBatchMs,
    adaptiveBusyUtilization: c.adaptiveBatchBusyPercent / 100,
    audioCoalesceMs: c.audioCoalesceMs,
    allowTakeover: c.allowTakeover,
    unpublishGraceMs: c.unpublishGraceMs,
  };
}

export function configToConnectionLimits(c: Config): ConnectionLimits {
  return {
    handshakeTimeoutMs: c.handshakeTimeoutMs,
    chunk: {
      minChunkSize: c.minChunkSize,
      maxChunkStreams: c.maxChunkStreams,
      maxPartialBytes: c.maxPartialBytes,
      maxMessageSize: maxMessageSizeBy({
        video: c.maxVideoMessageBytes,
        audio: c.maxAudioMessageBytes,
        data: c.maxDataMessageBytes,
      }),
    },
    amf: { maxDepth: c.amfMaxDepth, maxItems: c.amfMaxItems },
  };
}
