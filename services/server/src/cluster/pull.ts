import type { HubPublisher, StreamHub } from '@rtmp-relay/hub';
import { MessageType, RtmpClient, type RtmpMessage } from '@rtmp-relay/rtmp';
import pRetry, { AbortError } from 'p-retry';
import type { Logger } from 'pino';
import { inSpan } from '../tracing.js';

/** Where a stream lives now, as the registry says. */
export interface UpstreamOwner {
  nodeId: string;
  /** host:port of the owner's RTMP listener. */
  addr: string;
  epoch: number;
}

export interface PullDeps {
  resolveOwner(key: string): Promise<UpstreamOwner | undefined>;
  /** Resolves when an event says `key` was (re)published or moved, or after `ms` (a slow safety net), or on abort. */
  waitForOwnerEvent(key: string, ms: number, signal: AbortSignal): Promise<void>;
  /** Query string (e.g. a signed play token) added to the upstream play. */
  playQuery?(app: string, name: string): string;
  observer?: {
    pullStarted?(key: string, attempt: number): void;
    pullFailed?(key: string, reason: string): void;
    pullStopped?(key: string): void;
    /** Re-attached to a different owner than before (failover or takeover). */
    upstreamChanged?(key: string, from: UpstreamOwner, to: UpstreamOwner): void;
  };
}

export interface PullOptions {
  /** Keep the pull this long after the last viewer leaves. */
  lingerMs: number;
  connectTimeoutMs: number;
  /** An upstream that sends nothing for this long is considered broken. */
  readTimeoutMs: number;
  /** After the upstream broke (no goodbye), keep viewers attached this long while looking for the new owner. */
  failoverWaitMs: number;
  /** Without an owner in the registry, re-check at least this often even if no event arrives. */
  ownerRecheckMs: number;
  retryMinMs: number;
  retryMaxMs: number;
}

class StoppedError extends Error {}
/** Ends the current retry backoff early: an event announced a new owner. */
class WakeError extends Error {}

/**
 * One RTMP pull of one stream from its owning origin into the local hub, shared by every local viewer.
 * It acts as the hub's publisher. A pull that breaks re-resolves the owner and retries with backoff (never stuck on
 * a dead address); an upstream that ends normally (the publisher stopped) ends the stream for viewers after the
 * hub's grace; an upstream that breaks keeps viewers attached for `failoverWaitMs` while the new owner appears.
 */
export class UpstreamPull implements HubPublisher {
  readonly id: string;
  private refs = 0;
  private lingerTimer: NodeJS.Timeout | undefined;
  private failoverTimer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private client: RtmpClient | undefined;
  private current: UpstreamOwner | undefined;
  private attached = false;
  private running: Promise<void> | undefined;
  private stopped = false;
  private wake = new AbortController();
  private flushEarly: (() => void) | undefined;
  private inAttempt = false;

  constructor(
    readonly key: string,
    private readonly app: string,
    private readonly name: string,
    private readonly hub: StreamHub,
    private readonly deps: PullDeps,
    private readonly options: PullOptions,
    private readonly log: Logger,
    private readonly onStopped: (pull: UpstreamPull) => void,
  ) {
    this.id = `pull:${key}`;
  }

  get viewers(): number {
    return this.refs;
  }

  get upstream(): UpstreamOwner | undefined {
    return this.current;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** A viewer wants the stream: keep (or start) pulling. */
  acquire(): void {
    if (this.stopped) throw new Error(`pull ${this.key} already stopped`);
    this.refs++;
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    this.running ??= this.loop();
  }

  /** A viewer left: after the linger with no viewers, stop. */
  release(): void {
    this.refs = Math.max(0, this.refs - 1);
    if (this.refs > 0 || this.stopped) return;
    clearTimeout(this.lingerTimer);
    this.lingerTimer = setTimeout(() => this.stop('linger_expired'), this.options.lingerMs);
    this.lingerTimer.unref();
  }

  /** An event says the stream has a new owner: drop the current upstream at once if it is older. */
  ownerChanged(owner: UpstreamOwner): void {
    if (this.stopped) return;
    if (this.current && owner.epoch <= this.current.epoch && owner.addr === this.current.addr) return;
    this.log.info({ stream: this.key, addr: owner.addr, epoch: owner.epoch }, 'upstream owner changed: re-pulling');
    if (this.client) this.client.connection.close('owner_changed');
    // Only a backoff sleep is cut short: an attempt in flight sees the new owner itself (its owner wait is woken by
    // the same event), and aborting it would orphan the connection it is opening.
    else if (!this.inAttempt) this.wake.abort(new WakeError('owner changed'));
  }

  /** The hub replaced us (a local publisher took the key) or the node is shutting down. */
  kick(reason: string): void {
    this.attached = false;
    this.stop(reason);
  }

  stop(reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.lingerTimer);
    clearTimeout(this.failoverTimer);
    this.abort.abort(new StoppedError(reason));
    this.client?.close();
    if (this.attached) {
      this.attached = false;
      this.hub.detachPublisher(this);
    }
    this.log.info({ stream: this.key, reason }, 'pull stopped');
    this.deps.observer?.pullStopped?.(this.key);
    this.onStopped(this);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      if (this.wake.signal.aborted) this.wake = new AbortController();
      try {
        const client = await pRetry(
          (attempt) =>
            inSpan('cluster.pull_start', { 'rtmp.stream': this.key, 'rtmp.attempt': attempt }, () =>
              this.connectOnce(attempt),
            ),
          {
            retries: Number.POSITIVE_INFINITY,
            minTimeout: this.options.retryMinMs,
            maxTimeout: this.options.retryMaxMs,
            factor: 2,
            randomize: true,
            signal: AbortSignal.any([this.abort.signal, this.wake.signal]),
            onFailedAttempt: ({ error }) => {
              if (this.stopped) return;
              this.deps.observer?.pullFailed?.(this.key, reasonOf(error));
              this.log.warn({ stream: this.key, err: error.message }, 'pull attempt failed');
            },
          },
        );
        await this.flow(client);
      } catch (err) {
        if (this.stopped || err instanceof StoppedError || this.abort.signal.aborted) return;
        if (err instanceof WakeError || this.wake.signal.aborted) continue;
        this.log.error({ stream: this.key, err }, 'pull loop error');
      }
    }
  }

  /** Resolve the owner (waiting for one to appear) and start playing from it. */
  private async connectOnce(attempt: number): Promise<RtmpClient> {
    this.inAttempt = true;
    try {
      return await this.attemptOnce(attempt);
    } finally {
      this.inAttempt = false;
    }
  }

  private async attemptOnce(attempt: number): Promise<RtmpClient> {
    if (this.stopped) throw new AbortError(new StoppedError('stopped'));
    let owner = await this.deps.resolveOwner(this.key);
    while (!owner) {
      await this.deps.waitForOwnerEvent(this.key, this.options.ownerRecheckMs, this.abort.signal);
      if (this.stopped) throw new AbortError(new StoppedError('stopped'));
      owner = await this.deps.resolveOwner(this.key);
    }
    this.deps.observer?.pullStarted?.(this.key, attempt);
    const query = this.deps.playQuery?.(this.app, this.name) ?? '';
    const url = `rtmp://${owner.addr}/${this.app}/${this.name}${query ? `?${query}` : ''}`;
    const client = await RtmpClient.connect(url, {
      connectTimeoutMs: this.options.connectTimeoutMs,
      readTimeoutMs: this.options.readTimeoutMs,
      fourCcList: ['*'],
    });
    try {
      if (this.stopped) throw new AbortError(new StoppedError('stopped'));
      this.client = client;
      // Play.Start, the metadata and the sequence headers arrive in one read: hold them until the hub has reset
      // its caches for this upstream (attachPublisher), or they would be wiped right after arriving.
      let early: RtmpMessage[] | undefined = [];
      client.on('media', (msg) => {
        if (isSampleAccess(msg)) return; // the edge sends its own to its viewers
        if (early) early.push(msg);
        else this.hub.push(msg);
      });
      this.flushEarly = () => {
        const held = early ?? [];
        early = undefined;
        for (const msg of held) this.hub.push(msg);
      };
      await client.play(`${this.name}${query ? `?${query}` : ''}`, this.options.connectTimeoutMs);
    } catch (err) {
      client.close();
      this.client = undefined;
      throw err;
    }
    const previous = this.current;
    if (previous && (previous.addr !== owner.addr || previous.nodeId !== owner.nodeId))
      this.deps.observer?.upstreamChanged?.(this.key, previous, owner);
    this.current = owner;
    this.log.info({ stream: this.key, addr: owner.addr, epoch: owner.epoch, attempt }, 'pulling from origin');
    clearTimeout(this.failoverTimer);
    this.failoverTimer = undefined;
    // (Re-)attaching resets the hub's caches for the new upstream; its timeline continues.
    this.hub.attachPublisher(this);
    this.attached = true;
    this.flushEarly?.();
    this.flushEarly = undefined;
    return client;
  }

  /** Waits until the upstream ends (publisher stopped) or breaks, and reacts accordingly. */
  private flow(client: RtmpClient): Promise<void> {
    return new Promise((resolve) => {
      let ended = false;
      client.once('end', () => {
        ended = true;
        // The publisher stopped and the origin already waited its grace: end the stream for viewers now.
        if (this.attached) {
          this.attached = false;
          this.hub.detachPublisher(this, { immediate: true });
        }
        client.close();
      });
      client.once('close', (reason) => {
        if (this.client === client) this.client = undefined;
        if (!ended && !this.stopped) {
          this.log.warn({ stream: this.key, reason }, 'upstream broke: looking for the owner again');
          this.deps.observer?.pullFailed?.(this.key, reason);
          this.armFailoverDeadline();
        }
        resolve();
      });
    });
  }

  /** Viewers stay attached through a failover, but not forever. */
  private armFailoverDeadline(): void {
    if (this.failoverTimer || !this.attached) return;
    this.failoverTimer = setTimeout(() => {
      this.failoverTimer = undefined;
      if (this.attached && !this.client) {
        this.attached = false;
        this.hub.detachPublisher(this);
      }
    }, this.options.failoverWaitMs);
    this.failoverTimer.unref();
  }
}

const SAMPLE_ACCESS_PREFIX = Buffer.from('\x02\x00\x11|RtmpSampleAccess', 'latin1');

function isSampleAccess(msg: RtmpMessage): boolean {
  return (
    msg.type === MessageType.DataAmf0 &&
    msg.payload.subarray(0, SAMPLE_ACCESS_PREFIX.length).equals(SAMPLE_ACCESS_PREFIX)
  );
}

function reasonOf(err: Error): string {
  const m = /^(?:connection closed(?: during handshake)?: )?(\w+)/.exec(err.message);
  if (/timed out/.test(err.message)) return 'timeout';
  if (/ECONNREFUSED/.test(err.message)) return 'refused';
  if (/StreamNotFound/.test(err.message)) return 'not_found';
  return m?.[1]?.toLowerCase() ?? 'error';
}
