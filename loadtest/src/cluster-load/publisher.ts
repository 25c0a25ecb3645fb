/**
 * Publishers of a cluster run: one paced FLV per stream on one continuous timeline, driven by one shared clock, and
 * reconnecting the way OBS does (back-off, same key, through the ingest address: an origin picked at random, as a
 * Kubernetes Service's proxy picks a ready pod). Publishers that speak E-RTMP v2
 * (capsEx Reconnect) follow a server's ReconnectRequest make-before-break: publish at the new address, then close.
 * They run in the runner's thread or, by default, in a worker thread of their own (publisher-worker.ts).
 */
import { CapsEx, MessageType, RtmpClient } from '@rtmp-relay/rtmp';
import type { FlvSource } from '../source.js';
import { ReasonCounter } from '../stats.js';
import { prng } from '../prng.js';
import type { TimestampWindow } from '../viewer.js';

export interface PublisherOptions {
  /** rtmp://host:port bases of the origins (read at every connect: the runner keeps it current). */
  origins: () => string[];
  /** Advertise capsEx Reconnect and follow ReconnectRequest. */
  ertmp: boolean;
  /** First back-off after a lost connection (OBS: its "retry delay"); doubles up to 4x. */
  reconnectDelayMs: number;
  connectTimeoutMs: number;
  /** Called with each video timestamp sent and performance.now() then (publish-to-view latency). */
  onVideoSent?: (ts: number, at: number) => void;
  /** The window to count in (e.g. in shared memory); default: a plain object. */
  window?: TimestampWindow;
}

const CLOCK_MS = 10;
const MAX_BACKOFF_FACTOR = 4;

const all = new Set<StreamPublisher>();
let clock: NodeJS.Timeout | undefined;

function ensureClock(): void {
  if (clock) return;
  clock = setInterval(() => {
    const now = performance.now();
    for (const p of all) p.tick(now);
  }, CLOCK_MS);
}

export function stopClock(): void {
  clearInterval(clock);
  clock = undefined;
}

export class StreamPublisher {
  /** Shared with this stream's viewers: media inside (t0, t1] is what "delivered" is measured on. */
  readonly window: TimestampWindow;
  /** Audio + video payload bytes sent with a timestamp inside the window. */
  windowBytes = 0;
  readonly failures = new ReasonCounter();
  connects = 0;
  reconnectRequests = 0;
  /** Time from a ReconnectRequest to publishing at the new address, ms. */
  readonly switchMs: number[] = [];
  /**
   * Time from losing a connection to publishing again through a reconnect, ms: the encoder's own reconnect (its
   * back-off, then TCP, handshake, connect and publish), which the relay's share of a viewer's gap is measured against.
   */
  readonly awayMs: number[] = [];
  /** performance.now() of the connection loss a reconnect has not yet made good (NaN while publishing or stopped). */
  lostAt = NaN;
  /** performance.now() of the last publish start. */
  liveAt = NaN;
  private client: RtmpClient | undefined;
  /** The connection a ReconnectRequest is moving us away from, while the move is under way. */
  private following: RtmpClient | undefined;
  private startAt = NaN;
  /** Timeline position (ms after startAt) where the source's current pass began. */
  private base = 0;
  private index = 0;
  private loop = 0;
  private wanted = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoff: number;
  /** Picks the origin of each connect (seeded: runs are comparable). */
  private readonly originRand: () => number;

  constructor(
    readonly key: string,
    readonly source: FlvSource,
    private readonly opts: PublisherOptions,
    seed: number,
  ) {
    this.backoff = opts.reconnectDelayMs;
    this.originRand = prng(seed);
    this.window = opts.window ?? { t0: Infinity, t1: Infinity };
  }

  get ertmp(): boolean {
    return this.opts.ertmp;
  }

  get live(): boolean {
    return this.client !== undefined && !this.client.closed;
  }

  /** performance.now() where the stream's timeline starts (NaN before the first start). */
  get startedAt(): number {
    return this.startAt;
  }

  /** Current stream timestamp (continuous across reconnects). */
  get timestamp(): number {
    return Number.isNaN(this.startAt) ? 0 : Math.max(0, Math.round(performance.now() - this.startAt));
  }

  start(): void {
    this.wanted = true;
    all.add(this);
    ensureClock();
    if (Number.isNaN(this.startAt)) this.startAt = performance.now();
    void this.connect();
  }

  /**
   * Stops publishing: `clean` sends FCUnpublish + deleteStream; otherwise the TCP connection is reset. Resolves once
   * the socket has closed (its last bytes flushed), at once when there was no connection.
   */
  stop(clean: boolean): Promise<void> {
    this.wanted = false;
    this.lostAt = NaN;
    clearTimeout(this.retryTimer);
    const c = this.client;
    this.client = undefined;
    if (!c) return Promise.resolve();
    const socket = c.connection.socket;
    const closed = socket.closed
      ? Promise.resolve()
      : new Promise<void>((resolve) => socket.once('close', () => resolve()));
    if (clean) c.close();
    else socket.resetAndDestroy();
    return closed;
  }

  /** Drops the TCP connection but keeps wanting to publish (an encoder's network blip): it reconnects. */
  drop(): void {
    this.client?.connection.socket.resetAndDestroy();
  }

  private pickOrigin(): string | undefined {
    const list = this.opts.origins();
    if (list.length === 0) return undefined;
    // At random, not in turn: a rotation keyed on the stream's index put every E-RTMP publisher (even indexes) on
    // one origin and moved every legacy one to the same replacement in a rolling update.
    return list[Math.floor(this.originRand() * list.length)];
  }

  private async connect(url?: string): Promise<void> {
    if (!this.wanted) return;
    const base = url ?? `${this.pickOrigin()}/${this.key}`;
    try {
      const client = await this.open(base);
      if (!this.wanted) {
        client.close();
        return;
      }
      this.adopt(client);
      this.backoff = this.opts.reconnectDelayMs;
      if (!Number.isNaN(this.lostAt)) this.awayMs.push(this.liveAt - this.lostAt);
      this.lostAt = NaN;
    } catch (err) {
      this.failures.add(reasonOf(err as Error));
      this.scheduleRetry();
    }
  }

  private async open(url: string): Promise<RtmpClient> {
    const client = await RtmpClient.connect(url, {
      connectTimeoutMs: this.opts.connectTimeoutMs,
      readTimeoutMs: 0,
      chunkSize: 4096,
      ...(this.opts.ertmp ? { capsEx: CapsEx.Reconnect } : {}),
    });
    try {
      await client.publish(undefined, this.opts.connectTimeoutMs);
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  private adopt(client: RtmpClient): void {
    const old = this.client;
    this.client = client;
    this.connects++;
    this.liveAt = performance.now();
    const ts = this.timestamp;
    if (this.source.metadata) client.sendMetadata(this.source.metadata);
    for (const h of this.source.headers) client.sendMedia(h.type, ts, h.data);
    this.skipToNow();
    client.on('close', () => {
      // Replaced or stopped; or being replaced: the new origin's takeover closes this one before our publish returns.
      if (this.client !== client || this.following === client) return;
      this.client = undefined;
      this.lostAt = performance.now();
      this.failures.add('connection_lost');
      this.scheduleRetry();
    });
    client.on('reconnectRequest', ({ tcUrl }) => void this.follow(client, client.reconnectUrl(tcUrl)));
    if (old && old !== client) old.close();
  }

  /** Make-before-break: publish at the new address, then close the old connection. */
  private async follow(from: RtmpClient, url: string): Promise<void> {
    if (this.following) return;
    this.reconnectRequests++;
    this.following = from;
    const asked = performance.now();
    try {
      const next = await this.open(url);
      if (this.client !== from || !this.wanted) {
        next.close();
        return;
      }
      this.adopt(next);
      this.switchMs.push(performance.now() - asked);
    } catch (err) {
      this.failures.add(`reconnect_request:${reasonOf(err as Error)}`);
    } finally {
      this.following = undefined;
      // The old connection went while we switched and the switch failed: reconnect the usual way.
      if (this.client === from && from.closed) {
        this.client = undefined;
        this.lostAt = performance.now();
        this.failures.add('connection_lost');
        this.scheduleRetry();
      }
    }
  }

  private scheduleRetry(): void {
    if (!this.wanted) return;
    clearTimeout(this.retryTimer);
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.opts.reconnectDelayMs * MAX_BACKOFF_FACTOR);
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  /**
   * After a (re)connect the source restarts at its first frame (a keyframe) now, as an encoder starts a new
   * connection with an IDR frame; timestamps continue the stream's timeline.
   */
  private skipToNow(): void {
    this.base = performance.now() - this.startAt;
    this.loop = 0;
    this.index = 0;
  }

  tick(now: number): void {
    const client = this.client;
    if (!client || client.closed) return;
    const { tags, loopMs } = this.source;
    for (;;) {
      const tag = tags[this.index]!;
      const rel = this.base + this.loop * loopMs + tag.offset;
      if (this.startAt + rel > now) return;
      const ts = Math.round(rel) >>> 0;
      if (tag.type === MessageType.Video) this.opts.onVideoSent?.(ts, now);
      if (ts > this.window.t0 && ts <= this.window.t1) this.windowBytes += tag.data.length;
      client.sendMedia(tag.type, ts, tag.data);
      if (++this.index >= tags.length) {
        this.index = 0;
        this.loop++;
      }
    }
  }

  /** Stops cleanly and leaves the shared clock; resolves as stop() does. */
  dispose(): Promise<void> {
    const closed = this.stop(true);
    all.delete(this);
    if (all.size === 0) stopClock();
    return closed;
  }
}

function reasonOf(err: Error): string {
  const m = /(NetStream\.\w+\.\w+|ECONNREFUSED|ECONNRESET|timed out|registry_unavailable)/.exec(err.message);
  return m ? m[1]!.replace(' ', '_') : (err.message.split(':')[0] ?? 'error').slice(0, 40);
}
