/**
 * Signed stream keys / URL tokens: checked locally, in microseconds, with no I/O (cheap enough for every viewer).
 *
 * Format
 * ------
 * A token authorizes one action on one stream until a time:
 *
 *     payload = `${action}:${app}/${name}:${expires}`       action: 'publish' | 'play' | 'pull'
 *     token   = base64url(HMAC-SHA256(secret, payload))     43 characters, no padding
 *
 * `expires` is a Unix time in whole seconds (decimal digits). Both travel in the stream name's query:
 *
 *     rtmp://host/live/cam1?expires=1767225600&token=Qm9v...       (play URL)
 *     OBS: server rtmp://host/live, stream key cam1?expires=1767225600&token=Qm9v...   (publish)
 *
 * The secret is chosen per app (`secrets[app]`), else the default secret; an app with neither fails closed.
 * Verification recomputes the HMAC and compares in constant time, then checks `now <= expires + skew`.
 * Failures: 'token_missing' (no token), 'token_invalid' (malformed, wrong signature, wrong secret, wrong
 * action/app/name, or no secret for the app), 'token_expired' (valid signature, past its time).
 *
 * `app/name` is the hub key, so `a/b` + `c` and `a` + `b/c` sign the same string: they are the same stream.
 *
 * Never log tokens or secrets: use `redactQuery()` for anything that prints a query.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** `pull`: an edge's upstream play, signed with the cluster secret (never a viewer's). */
export type TokenAction = 'publish' | 'play' | 'pull';
export type TokenFailure = 'token_missing' | 'token_invalid' | 'token_expired';
export type TokenResult = { ok: true } | { ok: false; reason: TokenFailure };

/** Query parameter names. */
export const EXPIRES_PARAM = 'expires';
export const TOKEN_PARAM = 'token';

/** Default clock skew allowance: a token is accepted until `expires + 30 s`. */
export const DEFAULT_CLOCK_SKEW_SECONDS = 30;

/** Secrets for one action: per app, plus a fallback for apps not listed. */
export interface SecretSet {
  secrets?: Readonly<Record<string, string>>;
  defaultSecret?: string;
}

export interface CreateTokenOptions {
  secret: string;
  action: TokenAction;
  app: string;
  name: string;
  /** Unix time in seconds, or a Date (rounded down to whole seconds). */
  expiresAt: number | Date;
}

/** Unix seconds, validated: a non-negative safe integer. */
function toExpires(expiresAt: number | Date): number {
  const s = expiresAt instanceof Date ? Math.floor(expiresAt.getTime() / 1000) : expiresAt;
  if (!Number.isSafeInteger(s) || s < 0)
    throw new RangeError('expiresAt must be a non-negative integer of Unix seconds');
  return s;
}

/** The signed string: `${action}:${app}/${name}:${expires}`. */
export function tokenPayload(action: TokenAction, app: string, name: string, expires: number | string): string {
  return `${action}:${app}/${name}:${expires}`;
}

function sign(secret: string, payload: string): string {
  return createHmac('sha256', secret).update(payload, 'utf8').digest('base64url');
}

/** The token (base64url HMAC-SHA256, unpadded) for one action on one stream until `expiresAt`. */
export function createToken(opts: CreateTokenOptions): string {
  if (!opts.secret) throw new TypeError('secret must be a non-empty string');
  return sign(opts.secret, tokenPayload(opts.action, opts.app, opts.name, toExpires(opts.expiresAt)));
}

/** `expires=<s>&token=<sig>`: the query to append to the stream name. */
export function signedQuery(opts: CreateTokenOptions): string {
  const expires = toExpires(opts.expiresAt);
  const q = new URLSearchParams();
  q.set(EXPIRES_PARAM, String(expires));
  q.set(TOKEN_PARAM, createToken({ ...opts, expiresAt: expires }));
  return q.toString();
}

/** `name?expires=<s>&token=<sig>`: what an encoder puts in its "stream key" field for a publish. */
export function signStreamName(opts: CreateTokenOptions): string {
  return `${opts.name}?${signedQuery(opts)}`;
}

/**
 * A full signed URL: `${baseUrl}/${app}/${name}?expires=<s>&token=<sig>`, e.g.
 * `signStreamUrl({ baseUrl: 'rtmp://edge.example.com', secret, action: 'play', app: 'live', name: 'cam1',
 * expiresAt: Math.floor(Date.now() / 1000) + 3600 })`. App and name are used as given (not percent-encoded).
 */
export function signStreamUrl(opts: CreateTokenOptions & { baseUrl: string }): string {
  const base = opts.baseUrl.replace(/\/+$/, '');
  return `${base}/${opts.app}/${signStreamName(opts)}`;
}

/** The secret for `app`: its own, else the default, else undefined (fail closed). */
export function secretFor(set: SecretSet, app: string): string | undefined {
  const own = set.secrets && Object.hasOwn(set.secrets, app) ? set.secrets[app] : undefined;
  return own || set.defaultSecret || undefined;
}

/** Any secret configured at all (the per-app map is non-empty or there is a default). */
export function hasSecrets(set: SecretSet): boolean {
  return Boolean(set.defaultSecret) || Object.values(set.secrets ?? {}).some((s) => Boolean(s));
}

/** Throws on empty secrets, so a misconfiguration shows at start-up instead of as a silent hole or a lockout. */
export function validateSecretSet(set: SecretSet, label: string): void {
  if (set.defaultSecret !== undefined && set.defaultSecret === '')
    throw new TypeError(`${label}: default secret is empty`);
  for (const [app, secret] of Object.entries(set.secrets ?? {})) {
    if (typeof secret !== 'string' || secret === '') throw new TypeError(`${label}: secret for app '${app}' is empty`);
  }
}

/** Constant-time string equality; unequal lengths return false without throwing (and still do a compare). */
export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a, 'utf8');
  const bb = Buffer.from(b, 'utf8');
  if (ab.length !== bb.length) {
    timingSafeEqual(bb, bb); // same work as a real compare; the length itself is not secret (always 43)
    return false;
  }
  return timingSafeEqual(ab, bb);
}

const EXPIRES_RE = /^\d{1,15}$/;
/** base64url of 32 bytes, optionally with the '=' padding some encoders add. */
const TOKEN_RE = /^[A-Za-z0-9_-]{43}=?$/;

export interface VerifyTokenOptions extends SecretSet {
  action: TokenAction;
  app: string;
  name: string;
  query: URLSearchParams;
  /** Clock skew allowance in seconds (default 30). */
  skewSeconds?: number;
  /** Current time in ms (default Date.now()). */
  nowMs?: number;
}

/** Checks the `expires`/`token` query of a request. Never throws on client input. */
export function verifyToken(opts: VerifyTokenOptions): TokenResult {
  const tokens = opts.query.getAll(TOKEN_PARAM);
  if (tokens.length === 0 || (tokens.length === 1 && tokens[0] === '')) return { ok: false, reason: 'token_missing' };
  const expiresAll = opts.query.getAll(EXPIRES_PARAM);
  // One of each, well-formed: duplicates could make a hook and this check read different values.
  if (tokens.length !== 1 || expiresAll.length !== 1) return { ok: false, reason: 'token_invalid' };
  const token = tokens[0]!;
  const expires = expiresAll[0]!;
  if (!EXPIRES_RE.test(expires) || !TOKEN_RE.test(token)) return { ok: false, reason: 'token_invalid' };

  const secret = secretFor(opts, opts.app);
  if (!secret) return { ok: false, reason: 'token_invalid' };
  const expected = sign(secret, tokenPayload(opts.action, opts.app, opts.name, expires));
  if (!safeEqual(token.replace(/=$/, ''), expected)) return { ok: false, reason: 'token_invalid' };

  const skew = Math.max(0, opts.skewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS);
  const nowS = (opts.nowMs ?? Date.now()) / 1000;
  if (nowS > Number(expires) + skew) return { ok: false, reason: 'token_expired' };
  return { ok: true };
}

/**
 * A verifier bound to one action's secrets and a clock; what the Authorizer holds per action.
 * `configured` is false when there is no secret at all (nothing to check).
 */
export class TokenVerifier {
  readonly configured: boolean;

  constructor(
    private readonly action: TokenAction,
    private readonly set: SecretSet,
    private readonly skewSeconds = DEFAULT_CLOCK_SKEW_SECONDS,
    private readonly now: () => number = Date.now,
  ) {
    validateSecretSet(set, `${action} secrets`);
    if (!(skewSeconds >= 0)) throw new RangeError('skewSeconds must be >= 0');
    this.configured = hasSecrets(set);
  }

  verify(app: string, name: string, query: URLSearchParams): TokenResult {
    return verifyToken({
      ...this.set,
      action: this.action,
      app,
      name,
      query,
      skewSeconds: this.skewSeconds,
      nowMs: this.now(),
    });
  }
}

/** Parameter names whose values are credentials (matched case-insensitively, as substrings). */
const SECRET_PARAM_RE = /token|key|secret|sig|pass|pwd|auth|jwt|cred|hash|session/i;

/**
 * The query as a string for logs, with credential-like values (`token`, `key`, `secret`, `sign`, `password`,
 * `auth`, `jwt`, ...) replaced by `***`. Accepts a URLSearchParams or a raw query string (with or without '?').
 */
export function redactQuery(query: URLSearchParams | string): string {
  const src = typeof query === 'string' ? new URLSearchParams(query.startsWith('?') ? query.slice(1) : query) : query;
  const out = new URLSearchParams();
  for (const [k, v] of src) out.append(k, SECRET_PARAM_RE.test(k) ? '***' : v);
  return out.toString();
}
