import type { HubRegistry } from '@rtmp-relay/hub';
import type { Logger } from 'pino';
import { inSpan } from '../tracing.js';
import type { PlayDecision, PublishDecision, StreamPolicy, StreamRequest } from '../rtmp/policy.js';
import { controlEvent, type AdminEvent, type EventBus } from './events.js';
import type { StreamOwnership } from './redis-registry.js';

/** Authorization the origin consults before claiming (tokens, webhooks); optional. */
export interface PublishAuthorizer {
  authorizePublish(req: StreamRequest): Promise<PublishDecision>;
  authorizePlay(req: StreamRequest): Promise<PlayDecision>;
  publishDone?(req: StreamRequest): void;
  playDone?(req: StreamRequest): void;
}

export interface OriginObserver {
  leaseRefreshFailed?(reason: 'lost' | 'error'): void;
  leaseRestored?(): void;
  takeover?(crossNode: boolean): void;
}

export interface OriginPolicyOptions {
  nodeId: string;
  /** host:port edges pull from. */
  advertiseAddr: string;
  allowTakeover: boolean;
  leaseMs: number;
  playWaitMs: number;
  publishWhileRedisDown: 'reject' | 'allow';
}

interface Ownership {
  req: StreamRequest;
  /** Undefined while unregistered (published while Redis was down): claimed on the next refresh pass. */
  epoch: number | undefined;
  previousNodeId: string | undefined;
}

/**
 * Origins own what is published to them: a Redis lease per stream, claimed before Publish.Start, refreshed every
 * third of the lease by one timer for all streams, released on unpublish, fenced by an epoch that only grows.
 * A takeover from another origin tells the old owner over NATS to drop its publisher.
 */
export class OriginPolicy implements StreamPolicy {
  /** By session request, so a replaced local publisher's unpublish can't release its successor's claim. */
  private readonly pending = new WeakMap<StreamRequest, Ownership>();
  private readonly owned = new Map<string, Ownership>();
  private refreshTimer: NodeJS.Timeout | undefined;
  private readonly unsubscribeAdmin: () => void;
  private closed = false;

  constructor(
    private readonly ownership: StreamOwnership,
    private readonly bus: EventBus,
    private readonly registry: HubRegistry,
    private readonly waitForLive: (key: string, timeoutMs: number) => Promise<boolean>,
    private readonly options: OriginPolicyOptions,
    private readonly log: Logger,
    private readonly authorizer: PublishAuthorizer | undefined,
    private readonly observer: OriginObserver = {},
  ) {
    this.refreshTimer = setInterval(() => void this.refreshAll(), Math.max(100, Math.floor(options.leaseMs / 3)));
    this.refreshTimer.unref();
    this.unsubscribeAdmin = bus.onAdmin(options.nodeId, (e) => this.onAdmin(e));
  }

  private get me(): { nodeId: string; addr: string } {
    return { nodeId: this.options.nodeId, addr: this.options.advertiseAddr };
  }

  async beforePublish(req: StreamRequest): Promise<PublishDecision> {
    if (this.authorizer) {
      const authorizer = this.authorizer;
      const auth = await inSpan('auth.publish', { 'rtmp.stream': req.key }, () => authorizer.authorizePublish(req));
      if (!auth.allow) return auth;
    }
    let claim;
    try {
      claim = await inSpan('cluster.claim', { 'rtmp.stream': req.key }, () =>
        this.ownership.claim(req.key, this.me, { takeover: this.options.allowTakeover }),
      );
    } catch (err) {
      this.log.warn({ stream: req.key, err: (err as Error).message }, 'ownership claim failed: Redis unreachable');
      if (this.options.publishWhileRedisDown === 'allow') {
        this.pending.set(req, { req, epoch: undefined, previousNodeId: undefined });
        return { allow: true };
      }
      return {
        allow: false,
        status: 'BadName',
        reason: 'registry_unavailable',
        description: 'The stream registry is unavailable; try again.',
      };
    }
    if (!claim.ok) {
      return {
        allow: false,
        status: 'BadName',
        reason: 'owned_elsewhere',
        description: `${req.name} is already being published.`,
      };
    }
    const previousNodeId = claim.previous?.nodeId;
    if (previousNodeId && previousNodeId !== this.options.nodeId) {
      // Cross-origin takeover: the old owner drops its publisher; its release is fenced off by our higher epoch.
      this.bus.publish(
        controlEvent('admin.release_stream', {
          key: req.key,
          target: previousNodeId,
          reason: 'taken_over',
          from: this.options.nodeId,
        }),
      );
      this.observer.takeover?.(true);
    } else if (claim.previous) {
      this.observer.takeover?.(false);
    }
    this.pending.set(req, { req, epoch: claim.epoch, previousNodeId });
    return { allow: true };
  }

  published(req: StreamRequest): void {
    const o = this.pending.get(req);
    if (!o) return;
    this.owned.set(req.key, o);
    if (o.epoch === undefined) return; // announced once claimed
    this.announce(req, o);
  }

  private announce(req: StreamRequest, o: Ownership): void {
    const epoch = o.epoch!;
    if (o.previousNodeId) {
      this.bus.publish(
        controlEvent('stream.moved', {
          key: req.key,
          fromNodeId: o.previousNodeId,
          nodeId: this.options.nodeId,
          addr: this.options.advertiseAddr,
          epoch,
        }),
      );
    } else {
      this.bus.publish(
        controlEvent('stream.published', {
          key: req.key,
          app: req.app,
          name: req.name,
          nodeId: this.options.nodeId,
          addr: this.options.advertiseAddr,
          epoch,
        }),
      );
    }
  }

  unpublished(req: StreamRequest): void {
    const o = this.pending.get(req);
    if (!o) return;
    this.pending.delete(req);
    if (this.owned.get(req.key) === o) this.owned.delete(req.key);
    this.authorizer?.publishDone?.(req);
    if (o.epoch === undefined || this.closed) return; // after shutdown's releaseAll, Redis is gone
    const epoch = o.epoch;
    this.ownership
      .release(req.key, epoch)
      .then((released) => {
        if (released)
          this.bus.publish(controlEvent('stream.unpublished', { key: req.key, nodeId: this.options.nodeId, epoch }));
      })
      .catch((err) =>
        this.log.warn({ stream: req.key, err: (err as Error).message }, 'lease release failed (it will expire)'),
      );
  }

  async beforePlay(req: StreamRequest): Promise<PlayDecision> {
    if (this.authorizer) {
      const auth = await this.authorizer.authorizePlay(req);
      if (!auth.allow) return auth;
    }
    const live = await this.waitForLive(req.key, this.options.playWaitMs);
    return live
      ? { allow: true }
      : { allow: false, status: 'StreamNotFound', reason: 'not_found', description: `${req.name} is not live.` };
  }

  viewerJoined(): void {}
  viewerLeft(req: StreamRequest): void {
    this.authorizer?.playDone?.(req);
  }

  /** Streams this origin owns (for the API and heartbeats). */
  ownedStreams(): Array<{ key: string; epoch: number | undefined }> {
    return [...this.owned.values()].map((o) => ({ key: o.req.key, epoch: o.epoch }));
  }

  /** One pass for every owned stream: refresh (or claim, after an outage); a fenced stream loses its publisher. */
  private async refreshAll(): Promise<void> {
    for (const o of [...this.owned.values()]) {
      const key = o.req.key;
      try {
        if (o.epoch === undefined) {
          const claim = await this.ownership.claim(key, this.me, { takeover: false });
          if (claim.ok) {
            o.epoch = claim.epoch;
            this.observer.leaseRestored?.();
            this.announce(o.req, o);
          } else {
            this.fence(key, o, 'owned_elsewhere');
          }
          continue;
        }
        const result = await this.ownership.refresh(key, o.epoch, this.me);
        if (result === 'restored') {
          this.observer.leaseRestored?.();
          this.log.info({ stream: key, epoch: o.epoch }, 'lease restored after a Redis outage');
        } else if (result === 'lost') {
          this.observer.leaseRefreshFailed?.('lost');
          this.fence(key, o, 'fenced');
        }
      } catch (err) {
        this.observer.leaseRefreshFailed?.('error');
        this.log.warn({ stream: key, err: (err as Error).message }, 'lease refresh failed');
      }
    }
  }

  /** A newer owner exists: our publisher must go (its stream is served elsewhere now). */
  private fence(key: string, o: Ownership, reason: string): void {
    if (this.owned.get(key) !== o) return;
    this.owned.delete(key);
    o.epoch = undefined;
    this.log.warn({ stream: key, reason }, 'lost stream ownership: dropping the local publisher');
    this.registry.get(key)?.currentPublisher?.kick(reason);
  }

  private onAdmin(e: AdminEvent): void {
    const hub = this.registry.get(e.key);
    switch (e.type) {
      case 'admin.release_stream': {
        const o = this.owned.get(e.key);
        if (!o) return;
        this.owned.delete(e.key);
        this.log.info({ stream: e.key, by: e.from }, 'stream taken over by another origin');
        hub?.currentPublisher?.kick('taken_over');
        return;
      }
      case 'admin.kick_publisher':
        hub?.currentPublisher?.kick(e.reason ?? 'kicked');
        return;
      case 'admin.drop_stream':
        hub?.close(e.reason ?? 'dropped');
        return;
      default:
        return; // kick_viewer is handled by the node (it knows the sessions)
    }
  }

  /** Shutdown: release every lease and announce it. */
  async releaseAll(): Promise<void> {
    this.closed = true;
    clearInterval(this.refreshTimer);
    this.unsubscribeAdmin();
    await Promise.all(
      [...this.owned.values()].map(async (o) => {
        if (o.epoch === undefined) return;
        const released = await this.ownership.release(o.req.key, o.epoch).catch(() => false);
        if (released)
          this.bus.publish(
            controlEvent('stream.unpublished', { key: o.req.key, nodeId: this.options.nodeId, epoch: o.epoch }),
          );
      }),
    );
    this.owned.clear();
  }

}
