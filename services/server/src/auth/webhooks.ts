/**
 * HTTP hooks, SRS/nginx-rtmp style.
 *
 * Blocking: `on_publish`, `on_play`. The node POSTs a JSON body (below) and waits:
 *   - 2xx                                  allow
 *   - any other status (1xx/3xx/4xx)       deny ('hook_denied'); redirects are not followed
 *   - 5xx, a network error                 deny ('hook_failed'), or allow when `failOpen`
 *   - no response within `timeoutMs`       deny ('hook_timeout'), or allow when `failOpen`
 * Notify-only: `on_publish_done`, `on_play_done`: fire-and-forget with the same timeout; failures are reported to
 * the observer and logged, never thrown.
 *
 * Body (application/json):
 *   { action: 'on_publish' | 'on_play' | 'on_publish_done' | 'on_play_done', app, name, key, clientIp,
 *     query: { param: value | [values...] },   // as received: the hook may need the token; never log it
 *     nodeId, sessionId, seq, at }             // seq: increasing per node; at: ISO time of the call
 * `seq` is seeded from the wall clock in microseconds and then only grows (max(last + 1, now_us)), so it also
 * keeps growing across restarts of a node whose clock is sane; hooks may arrive out of order, `seq` sorts them.
 *
 * Logs carry the hook URL's origin and path only (a query there may hold a secret), never the request query.
 */
import { performance } from 'node:perf_hooks';
import type { StreamRequest } from '../streams/types.js';

export type HookEvent = 'on_publish' | 'on_play' | 'on_publish_done' | 'on_play_done';
export type BlockingHookEvent = 'on_publish' | 'on_play';
export type NotifyHookEvent = 'on_publish_done' | 'on_play_done';

/** What happened on the wire. */
export type HookOutcome = 'allowed' | 'rejected' | 'server_error' | 'network_error' | 'timeout';
/** Why a blocking hook denied. */
export type HookDenyReason = 'hook_denied' | 'hook_failed' | 'hook_timeout';

export const DEFAULT_HOOK_TIMEOUT_MS = 3000;

export interface HookBody {
  action: HookEvent;
  app: string;
  name: string;
  key: string;
  clientIp: string;
  query: Record<string, string | string[]>;
  nodeId: string;
  sessionId: string;
  seq: number;
  at: string;
}

/** One hook call, for metrics: a latency histogram by event/outcome, and fail-open counts. */
export interface HookObservation {
  event: HookEvent;
  outcome: HookOutcome;
  /** HTTP status when there was a response. */
  status?: number;
  latencyMs: number;
  /** Blocking hooks: the verdict (after failOpen). Notify hooks: whether the call succeeded (2xx). */
  allowed: boolean;
  /** A blocking hook failed (5xx, network, timeout) and was allowed because of failOpen. */
  failedOpen: boolean;
}

export type HookVerdict =
  | { allow: true; outcome: HookOutcome; status?: number; latencyMs: number; failedOpen: boolean }
  | { allow: false; outcome: HookOutcome; status?: number; latencyMs: number; reason: HookDenyReason };

/** The subset of a pino logger used here. */
export interface HookLogger {
  warn(obj: object, msg?: string): void;
}

export interface HookUrls {
  onPublish?: string;
  onPlay?: string;
  onPublishDone?: string;
  onPlayDone?: string;
}

export interface HookSettings extends HookUrls {
  /** Per call, including reading the status line (default 3000). */
  timeoutMs?: number;
  /** Allow when a blocking hook fails (5xx, network error, timeout); a non-2xx, non-5xx answer still denies. */
  failOpen?: boolean;
}

export interface WebhookClientOptions extends HookSettings {
  nodeId: string;
  observer?: (o: HookObservation) => void;
  log?: HookLogger;
}

const URL_FIELD: Record<HookEvent, keyof HookUrls> = {
  on_publish: 'onPublish',
  on_play: 'onPlay',
  on_publish_done: 'onPublishDone',
  on_play_done: 'onPlayDone',
};

/** The query as a JSON object: single values as strings, repeated parameters as arrays. */
export function queryObject(query: URLSearchParams): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const k of new Set(query.keys())) {
    const all = query.getAll(k);
    out[k] = all.length === 1 ? all[0]! : all;
  }
  return out;
}

/** `origin + pathname` of a hook URL, for logs. */
function logUrl(u: URL): string {
  return `${u.origin}${u.pathname}`;
}

function parseHookUrl(field: string, raw: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new TypeError(`hooks.${field}: not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`hooks.${field}: must be http(s)`);
  return u;
}

export class WebhookClient {
  private readonly urls = new Map<HookEvent, URL>();
  private readonly timeoutMs: number;
  private readonly failOpen: boolean;
  private readonly nodeId: string;
  private readonly observer: ((o: HookObservation) => void) | undefined;
  private readonly log: HookLogger | undefined;
  private lastSeq = 0;
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(opts: WebhookClientOptions) {
    for (const [event, field] of Object.entries(URL_FIELD) as [HookEvent, keyof HookUrls][]) {
      const raw = opts[field];
      if (raw) this.urls.set(event, parseHookUrl(field, raw));
    }
    const timeoutMs = opts.timeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError('hooks.timeoutMs must be > 0');
    this.timeoutMs = timeoutMs;
    this.failOpen = opts.failOpen ?? false;
    this.nodeId = opts.nodeId;
    this.observer = opts.observer;
    this.log = opts.log;
  }

  has(event: HookEvent): boolean {
    return this.urls.has(event);
  }

  /** Next sequence number: strictly increasing, seeded from wall-clock microseconds. */
  private nextSeq(): number {
    this.lastSeq = Math.max(this.lastSeq + 1, Date.now() * 1000);
    return this.lastSeq;
  }

  body(event: HookEvent, req: StreamRequest): HookBody {
    return {
      action: event,
      app: req.app,
      name: req.name,
      key: req.key,
      clientIp: req.clientIp,
      query: queryObject(req.query),
      nodeId: this.nodeId,
      sessionId: req.sessionId,
      seq: this.nextSeq(),
      at: new Date().toISOString(),
    };
  }

  /**
   * A blocking hook. Never rejects. Without a URL for `event`, allows at once (no I/O).
   */
  async call(event: BlockingHookEvent, req: StreamRequest): Promise<HookVerdict> {
    const url = this.urls.get(event);
    if (!url) return { allow: true, outcome: 'allowed', latencyMs: 0, failedOpen: false };
    const { outcome, status, latencyMs } = await this.post(url, this.body(event, req));
    let verdict: HookVerdict;
    if (outcome === 'allowed') {
      verdict = { allow: true, outcome, status, latencyMs, failedOpen: false };
    } else if (outcome === 'rejected') {
      verdict = { allow: false, outcome, status, latencyMs, reason: 'hook_denied' };
    } else if (this.failOpen) {
      verdict = { allow: true, outcome, status, latencyMs, failedOpen: true };
    } else {
      verdict = {
        allow: false,
        outcome,
        status,
        latencyMs,
        reason: outcome === 'timeout' ? 'hook_timeout' : 'hook_failed',
      };
    }
    if (outcome !== 'allowed' && outcome !== 'rejected') {
      this.warn(
        {
          hook: event,
          url: logUrl(url),
          key: req.key,
          outcome,
          status,
          latencyMs: Math.round(latencyMs),
          failOpen: this.failOpen,
        },
        'hook failed',
      );
    }
    this.observe({
      event,
      outcome,
      status,
      latencyMs,
      allowed: verdict.allow,
      failedOpen: verdict.allow && verdict.failedOpen,
    });
    return verdict;
  }

  /** A notify-only hook: fire-and-forget; failures are observed and logged, never thrown. No URL: nothing. */
  notify(event: NotifyHookEvent, req: StreamRequest): void {
    const url = this.urls.get(event);
    if (!url) return;
    const body = this.body(event, req);
    const p = this.post(url, body)
      .then(({ outcome, status, latencyMs }) => {
        if (outcome !== 'allowed') {
          this.warn(
            { hook: event, url: logUrl(url), key: req.key, outcome, status, latencyMs: Math.round(latencyMs) },
            'hook failed',
          );
        }
        this.observe({ event, outcome, status, latencyMs, allowed: outcome === 'allowed', failedOpen: false });
      })
      .catch(() => {}) // post() does not reject; an observer or logger that throws must not either
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  /** Resolves when every notify hook started so far has finished (graceful shutdown, tests). */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  private async post(url: URL, body: HookBody): Promise<{ outcome: HookOutcome; status?: number; latencyMs: number }> {
    const signal = AbortSignal.timeout(this.timeoutMs);
    const t0 = performance.now();
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/plain, */*' },
        body: JSON.stringify(body),
        redirect: 'manual',
        signal,
      });
      const latencyMs = performance.now() - t0;
      // The verdict is the status; drop the body so the connection can be reused or closed.
      res.body?.cancel().catch(() => {});
      const status = res.status;
      const outcome: HookOutcome =
        status >= 200 && status < 300 ? 'allowed' : status >= 500 ? 'server_error' : 'rejected';
      return { outcome, status, latencyMs };
    } catch {
      const latencyMs = performance.now() - t0;
      return { outcome: signal.aborted ? 'timeout' : 'network_error', latencyMs };
    }
  }

  private observe(o: HookObservation): void {
    if (o.status === undefined) delete o.status;
    try {
      this.observer?.(o);
    } catch {
      // metrics must never break authorization
    }
  }

  private warn(obj: Record<string, unknown>, msg: string): void {
    if (obj['status'] === undefined) delete obj['status'];
    try {
      this.log?.warn(obj, msg);
    } catch {
      // nor logging
    }
  }
}
