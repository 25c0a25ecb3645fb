/**
 * How a node authenticates to Redis and NATS: pure builders from the settings to the client options, so the wiring
 * (runtime.ts) stays one call and the rules are unit-testable.
 *
 * NATS (`natsConnectOptions`):
 * - Servers come from NATS_URL (comma-separated `nats://` or `tls://`). Credentials embedded in them
 *   (`nats://user:pass@host`, or `nats://token@host`: a user name without a password is a token, as in the other
 *   NATS clients) are taken out of the URLs (nats.js ignores them) and sent as proper credentials. Every URL must
 *   carry the same credentials, or none.
 * - NATS_USER / NATS_PASSWORD override the URL's user / password one by one; NATS_TOKEN; NATS_CREDS_FILE (a
 *   `.creds` file: user JWT + NKey seed, read once at start). Only one method at a time: mixing them is an error.
 * - TLS when any URL is `tls://` or a TLS file is set; nats.js then refuses a server without TLS. The PEM files are
 *   given to nats.js by path (it re-reads them on every (re)connect, so a rotated certificate is picked up); they
 *   are checked to be readable here so a typo fails at start.
 *
 * Redis (`redisConnectOptions`): REDIS_URL (`redis://` or `rediss://[user[:pass]@]host[:port][/db]`),
 * REDIS_USERNAME / REDIS_PASSWORD override the URL's (ACL user or `requirepass`), TLS for `rediss://` or when
 * REDIS_TLS_CA_FILE is set (then the CA is read at start).
 *
 * Errors are thrown at start, name the setting and never contain a secret (URLs are redacted).
 */
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { credsAuthenticator } from 'nats';
import type { Config } from '../config.js';
import type { NatsConnectOptions } from './events.js';
import type { RedisConnectTarget } from './redis-registry.js';

/** Thrown for unusable connection settings; the message names the setting. */
export class ConnectionSettingsError extends Error {
  override name = 'ConnectionSettingsError';
}

const REDACTED = '***';
const DEFAULT_REDIS_PORT = 6379;
/** Any bytes do: the signature only proves the seed in a creds file can sign. */
const PROBE_NONCE = 'rtmp-relay-creds-check';

/** `url` with its password (or a lone user name: NATS token) replaced by `***`; safe to log. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = REDACTED;
    else if (u.username) u.username = REDACTED;
    return u.toString();
  } catch {
    // Not a URL: it may still hold a secret (user:pass@...), so show nothing of it.
    return REDACTED;
  }
}

/** Contents of `path` (a setting's value), or a readable error naming the setting. */
function readSettingFile(path: string, setting: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConnectionSettingsError(`${setting}: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Fails like readSettingFile when `path` cannot be read, without reading it. */
function checkReadable(path: string, setting: string): void {
  try {
    accessSync(path, fsConstants.R_OK);
  } catch (err) {
    throw new ConnectionSettingsError(`${setting}: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// NATS

type NatsSettings = Pick<
  Config,
  | 'natsUrl'
  | 'natsUser'
  | 'natsPassword'
  | 'natsToken'
  | 'natsCredsFile'
  | 'natsTlsCaFile'
  | 'natsTlsCertFile'
  | 'natsTlsKeyFile'
>;

interface ParsedNatsUrls {
  servers: string[];
  user: string;
  pass: string;
  tls: boolean;
}

function parseNatsUrls(natsUrl: string): ParsedNatsUrls {
  const urls = natsUrl
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (urls.length === 0) throw new ConnectionSettingsError('NATS_URL: no NATS server given');
  const servers: string[] = [];
  let creds: string | undefined;
  let tls = false;
  const out = { user: '', pass: '' };
  for (const raw of urls) {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new ConnectionSettingsError(`NATS_URL: not a URL: ${redactUrl(raw)}`);
    }
    if (u.protocol !== 'nats:' && u.protocol !== 'tls:')
      throw new ConnectionSettingsError(`NATS_URL: expected nats:// or tls://, got ${redactUrl(raw)}`);
    if (u.protocol === 'tls:') tls = true;
    const these = `${u.username}:${u.password}`;
    if (creds !== undefined && these !== creds)
      throw new ConnectionSettingsError(
        `NATS_URL: the servers carry different credentials (${urls.map(redactUrl).join(', ')}): use the same on all, or NATS_USER/NATS_PASSWORD/NATS_TOKEN`,
      );
    creds = these;
    out.user = decode(u.username);
    out.pass = decode(u.password);
    // host keeps IPv6 brackets and an explicit port; nats.js defaults the port to 4222.
    servers.push(u.host);
  }
  return { servers, ...out, tls };
}

/**
 * Options for nats.js `connect()` (servers, credentials, TLS) from the settings; merge the connection policy
 * (timeouts, reconnects) on top. Throws ConnectionSettingsError for unusable settings.
 */
export function natsConnectOptions(config: NatsSettings): NatsConnectOptions {
  const parsed = parseNatsUrls(config.natsUrl);
  const configured = [
    config.natsUser || config.natsPassword ? 'NATS_USER/NATS_PASSWORD' : '',
    config.natsToken ? 'NATS_TOKEN' : '',
    config.natsCredsFile ? 'NATS_CREDS_FILE' : '',
  ].filter(Boolean);
  if (configured.length > 1)
    throw new ConnectionSettingsError(`NATS authentication: set one method, got ${configured.join(' and ')}`);

  let user = '';
  let pass = '';
  let token = config.natsToken;
  // Settings win; the URL's credentials fill in only what NATS_USER/NATS_PASSWORD leave out.
  if (config.natsUser || config.natsPassword) {
    user = config.natsUser || parsed.user;
    pass = config.natsPassword || parsed.pass;
    if (!user) throw new ConnectionSettingsError('NATS_PASSWORD: set without a user (NATS_USER or in NATS_URL)');
  } else if (configured.length === 0) {
    // A lone user name in the URL is a token (nats://<token>@host), as in the other NATS clients.
    if (parsed.pass) {
      user = parsed.user;
      pass = parsed.pass;
    } else token = parsed.user;
  }

  const opts: NatsConnectOptions = { servers: parsed.servers };
  if (user) {
    opts.user = user;
    opts.pass = pass;
  }
  if (token) opts.token = token;
  if (config.natsCredsFile) {
    const creds = readSettingFile(config.natsCredsFile, 'NATS_CREDS_FILE');
    const authenticator = credsAuthenticator(new Uint8Array(creds));
    try {
      // Parses the JWT and signs with the seed: a broken file fails now, not at every connection attempt.
      authenticator(PROBE_NONCE);
    } catch (err) {
      throw new ConnectionSettingsError(
        `NATS_CREDS_FILE: ${config.natsCredsFile} is not a NATS credentials file (user JWT + NKey seed): ${(err as Error).message}`,
        { cause: err },
      );
    }
    opts.authenticator = authenticator;
  }

  const { natsTlsCaFile: caFile, natsTlsCertFile: certFile, natsTlsKeyFile: keyFile } = config;
  if (Boolean(certFile) !== Boolean(keyFile))
    throw new ConnectionSettingsError('NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE: set both (mutual TLS) or neither');
  if (parsed.tls || caFile || certFile) {
    const tls: NonNullable<NatsConnectOptions['tls']> = {};
    if (caFile) {
      checkReadable(caFile, 'NATS_TLS_CA_FILE');
      tls.caFile = caFile;
    }
    if (certFile && keyFile) {
      checkReadable(certFile, 'NATS_TLS_CERT_FILE');
      checkReadable(keyFile, 'NATS_TLS_KEY_FILE');
      tls.certFile = certFile;
      tls.keyFile = keyFile;
    }
    opts.tls = tls;
  }
  return opts;
}

// ---------------------------------------------------------------------------------------------------------------
// Redis

type RedisSettings = Pick<Config, 'redisUrl' | 'redisUsername' | 'redisPassword' | 'redisTlsCaFile'>;

/** What `redisConnectOptions` decides: where, as whom, over what (createRedis adds the connection policy). */
export type RedisConnectOptions = RedisConnectTarget;

/**
 * ioredis options (address, database, credentials, TLS) from the settings. Throws ConnectionSettingsError for
 * unusable settings.
 */
export function redisConnectOptions(config: RedisSettings): RedisConnectOptions {
  let u: URL;
  try {
    u = new URL(config.redisUrl);
  } catch {
    throw new ConnectionSettingsError(`REDIS_URL: not a URL: ${redactUrl(config.redisUrl)}`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new ConnectionSettingsError(`REDIS_URL: expected redis:// or rediss://, got ${redactUrl(config.redisUrl)}`);

  const opts: RedisConnectOptions = {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : DEFAULT_REDIS_PORT,
  };
  const db = u.pathname.replace(/^\//, '');
  if (db !== '') {
    if (!/^\d+$/.test(db))
      throw new ConnectionSettingsError(
        `REDIS_URL: the path must be a database number, got ${redactUrl(config.redisUrl)}`,
      );
    opts.db = Number(db);
  }
  const family = u.searchParams.get('family');
  if (family === '4' || family === '6') opts.family = Number(family);

  const username = config.redisUsername || decode(u.username);
  const password = config.redisPassword || decode(u.password);
  if (username && !password)
    throw new ConnectionSettingsError(
      'REDIS_USERNAME: an ACL user needs a password (REDIS_PASSWORD or redis://user:pass@host in REDIS_URL)',
    );
  if (username) opts.username = username;
  if (password) opts.password = password;

  if (u.protocol === 'rediss:' || config.redisTlsCaFile) {
    opts.tls = config.redisTlsCaFile ? { ca: readSettingFile(config.redisTlsCaFile, 'REDIS_TLS_CA_FILE') } : {};
  }
  return opts;
}

/** Redis replies that mean "these credentials are wrong or lack a permission": a configuration problem. */
const REDIS_AUTH_ERROR = /^(WRONGPASS|NOAUTH|NOPERM)\b|invalid (username-)?password/i;

export function isRedisAuthError(err: Error): boolean {
  return REDIS_AUTH_ERROR.test(err.message);
}

/**
 * ioredis reports "no connection to Redis" mostly with plain Errors that carry neither a class nor a code (offline
 * queue disabled, connection closed, command timeout), so their texts are recognised here, in the one place that
 * knows the client library; everything above switches on ClusterUnavailableError (cluster/api.ts).
 */
const REDIS_OFFLINE_MESSAGE = /isn't writeable|Connection is closed|Command timed out|not connected/i;

/** True when a Redis command failed because Redis could not be reached (an outage, not a bug or a bad reply). */
export function isRedisUnavailableError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return (err as NodeJS.ErrnoException).code === 'ECONNREFUSED' || REDIS_OFFLINE_MESSAGE.test(err.message);
}
