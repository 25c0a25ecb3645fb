import type { HubRegistry } from '@rtmp-relay/hub';
import type { Logger } from 'pino';
import { streamLabel } from '../streams/redact.js';
import { inSpan } from '../tracing.js';
import type { PlayDecision, PublishDecision, StreamPolicy, StreamRequest } from '../streams/types.js';
import type { ReconnectablePublisher } from '../rtmp/session.js';
import { controlEvent, type AdminEvent, type EventBus } from './events.js';
import type { StreamOwnership } from './redis-registry.js';
import { StandbyAnswers } from './standby-answers.js';

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
  /** A stream this origin stopped serving because its lease could not be renewed in time. */
  leaseExpired?(): void;
}

export interface OriginPolicyOptions {
  nodeId: string;
  /** host:port edges pull from. */
  advertiseAddr: string;
  allowTakeover: boolean;
  leaseMs: number;
  playWaitMs: number;
  publishWhileRedisDown: 'reject' | 'allow';
  /**
   * True when Redis is down for the whole cluster since `since` (peers said so over NATS, none reached it): then no
   * other origin can claim our streams either, and self-fencing would only take every live stream down.
   */
  redisDownEverywhereSince?(since: number): boolean;
}

export interface DrainOptions {
  peerTcUrl: (app: string, key: string) => string | undefined;
  /** The RTMP address (host:port) of the origin a tcUrl names, when known: edges then prepare the move. */
  peerAddrOf?: (tcUrl: string) => string | undefined;
  /** How many edges pull `key` from this origin (each answers an announced move); absent: none waited for. */
  edgePullsOf?: (key: string) => number;
  /** Longest wait for the edges' answers before a publisher is asked to move (capped at half `reconnectWaitMs`). */
  moveLeadMs?: number;
  reconnectWaitMs: number;
  /** Most ReconnectRequests in one wave (at least 1). */
  reconnectBatch: number;
  /** Time between the starts of two waves (0: no pacing). */
  reconnectIntervalMs: number;
  /** Another origin is up to take the streams (a hand-off is then paced; else there is nothing to spread). */
  peersUp: boolean;
}

export interface DrainResult {
  reconnectRequested: number;
  handedOff: number;
  waves: number;
  handOffWaves: number;
  /** Moves whose publisher was asked after every edge answered. */
  movesPrepared: number;
  /** Moves whose publisher was asked when the lead's bound passed, before every edge answered. */
  leadExpired: number;
}

interface Ownership {
  req: StreamRequest;
  /** Undefined while unregistered (published while Redis was down): claimed on the next refresh pass. */
  epoch: number | undefined;
  previousNodeId: string | undefined;
  /** performance.now() when the last successful claim or refresh of `epoch` was sent (Redis counts from later). */
  renewedAt: number;
}

/**
 * An origin gives up a stream this share of the lease before Redis could expire it, so that it never serves a stream
 * Redis may already have handed to another origin. The deadline is checked twice per margin.
 */
const LEASE_SAFETY_FRACTION = 0.1;
const MIN_LEASE_CHECK_MS = 20;
/** How often a drain checks whether asked publishers have moved. */
const DRAIN_POLL_MS = 50;

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
  private leaseTimer: NodeJS.Timeout | undefined;
  private refreshing = false;
  private draining = false;
  private readonly standbyAnswers = new StandbyAnswers();
  private readonly unsubscribeAnswers: () => void;

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
    this.leaseTimer = setInterval(() => this.expireLeases(), this.leaseCheckMs);
    this.leaseTimer.unref();
    this.unsubscribeAdmin = bus.onAdmin(options.nodeId, (e) => this.onAdmin(e));
    this.unsubscribeAnswers = bus.on('stream.standby', (e) => {
      if (e.fromNodeId === options.nodeId) this.standbyAnswers.answer(e);
    });
  }

  private get me(): { nodeId: string; addr: string } {
    return { nodeId: this.options.nodeId, addr: this.options.advertiseAddr };
  }

  async beforePublish(req: StreamRequest): Promise<PublishDecision> {
    if (this.draining) {
      // Shutting down: the encoder retries, and the load balancer (this node is not ready) sends it elsewhere.
      return {
        allow: false,
        status: 'BadName',
        reason: 'draining',
        description: 'This server is shutting down; publish again.',
      };
    }
    if (this.authorizer) {
      const authorizer = this.authorizer;
      const auth = await inSpan('auth.publish', { 'rtmp.stream': streamLabel(req.key) }, () =>
        authorizer.authorizePublish(req),
      );
      if (!auth.allow) return auth;
    }
    let claim;
    const sentAt = performance.now();
    try {
      claim = await inSpan('cluster.claim', { 'rtmp.stream': streamLabel(req.key) }, () =>
        this.ownership.claim(req.key, this.me, { takeover: this.options.allowTakeover }),
      );
    } catch (err) {
      this.log.warn(
        { stream: streamLabel(req.key), err: (err as Error).message },
        'ownership claim failed: Redis unreachable',
      );
      if (this.options.publishWhileRedisDown === 'allow') {
        this.pending.set(req, { req, epoch: undefined, previousNodeId: undefined, renewedAt: sentAt });
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
    this.pending.set(req, { req, epoch: claim.epoch, previousNodeId, renewedAt: sentAt });
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
        this.log.warn(
          { stream: streamLabel(req.key), err: (err as Error).message },
          'lease release failed (it will expire)',
        ),
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

  /**
   * One pass for every owned stream: refresh (or claim, after an outage); a fenced stream loses its publisher.
   * Streams are refreshed concurrently (one slow answer must not delay the others past their deadline) and passes
   * never overlap (a hung Redis answers within its command timeout).
   */
  private async refreshAll(): Promise<void> {
    if (this.refreshing) return;
    this.refreshing = true;
    try {
      await Promise.all([...this.owned.values()].map((o) => this.refreshOne(o)));
    } finally {
      this.refreshing = false;
    }
  }

  private async refreshOne(o: Ownership): Promise<void> {
    const key = o.req.key;
    const sentAt = performance.now();
    try {
      if (o.epoch === undefined) {
        const claim = await this.ownership.claim(key, this.me, { takeover: false });
        if (this.owned.get(key) !== o) return; // fenced or unpublished meanwhile
        if (claim.ok) {
          o.epoch = claim.epoch;
          o.renewedAt = sentAt;
          this.observer.leaseRestored?.();
          this.announce(o.req, o);
        } else {
          this.fence(key, o, 'owned_elsewhere');
        }
        return;
      }
      const epoch = o.epoch;
      const result = await this.ownership.refresh(key, epoch, this.me);
      if (this.owned.get(key) !== o || o.epoch !== epoch) return;
      if (result === 'lost') {
        this.observer.leaseRefreshFailed?.('lost');
        this.fence(key, o, 'fenced');
        return;
      }
      o.renewedAt = sentAt;
      if (result === 'restored') {
        this.observer.leaseRestored?.();
        this.log.info({ stream: streamLabel(key), epoch }, 'lease restored after a Redis outage');
      }
    } catch (err) {
      this.observer.leaseRefreshFailed?.('error');
      this.log.warn({ stream: streamLabel(key), err: (err as Error).message }, 'lease refresh failed');
    }
  }

  private get leaseCheckMs(): number {
    return Math.max(MIN_LEASE_CHECK_MS, Math.floor((this.options.leaseMs * LEASE_SAFETY_FRACTION) / 2));
  }

  /**
   * Self-fencing: a stream whose lease was not renewed for (almost) a lease may already belong to another origin
   * (Redis expired it and someone claimed it while we could not reach Redis). Stop serving it before that can
   * happen: the publisher is kicked ('lease_expired') and viewers and edges are disconnected at once rather than
   * after the unpublish grace, so edges re-resolve (holding their viewers, as in a failover) and no viewer gets
   * frames from two owners. Streams published while Redis was down (no lease yet, PUBLISH_WHILE_REDIS_DOWN=allow)
   * are served by choice and not subject to this. Neither is a Redis outage that every peer reports too (over NATS):
   * only an origin that is cut off alone can lose its streams to another.
   */
  private expireLeases(): void {
    const now = performance.now();
    const deadline = this.options.leaseMs * (1 - LEASE_SAFETY_FRACTION);
    for (const o of [...this.owned.values()]) {
      if (o.epoch === undefined) continue;
      const age = now - o.renewedAt;
      if (age < deadline) continue;
      if (this.options.redisDownEverywhereSince?.(o.renewedAt)) continue; // nobody can claim it: keep serving
      const key = o.req.key;
      this.owned.delete(key);
      o.epoch = undefined;
      this.observer.leaseExpired?.();
      this.log.warn(
        { stream: streamLabel(key), sinceRenewalMs: Math.round(age), leaseMs: this.options.leaseMs },
        'lease not renewed in time: no longer serving this stream',
      );
      const hub = this.registry.get(key);
      hub?.currentPublisher?.kick('lease_expired');
      hub?.disconnectViewers('lease_expired');
    }
  }

  /** A newer owner exists: our publisher must go (its stream is served elsewhere now). */
  private fence(key: string, o: Ownership, reason: string): void {
    if (this.owned.get(key) !== o) return;
    this.owned.delete(key);
    o.epoch = undefined;
    this.log.warn({ stream: streamLabel(key), reason }, 'lost stream ownership: dropping the local publisher');
    this.registry.get(key)?.currentPublisher?.kick(reason);
  }

  private onAdmin(e: AdminEvent): void {
    const hub = this.registry.get(e.key);
    switch (e.type) {
      case 'admin.release_stream': {
        const o = this.owned.get(e.key);
        if (!o) return;
        this.owned.delete(e.key);
        this.log.info({ stream: streamLabel(e.key), by: e.from }, 'stream taken over by another origin');
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

  /**
   * Drain (SIGTERM): refuse new publishes and move every owned stream to another origin before the node stops.
   * 1. Publishers that negotiated E-RTMP v2 Reconnect get a `ReconnectRequest` naming another origin (`peerTcUrl`);
   *    they publish there while still publishing here, the new origin takes the stream over (epoch + 1, our copy is
   *    released by its `admin.release_stream`) and edges move with `stream.moved`: no gap. With the target's address
   *    known (`peerAddrOf`), `stream.moving` tells edges first, so they open their next pull there ahead of the move
   *    (pull.ts prepareMove), and the request waits until every edge pulling the stream (`edgePullsOf`) has
   *    answered that its next pull is waiting there (`stream.standby`), for at most `moveLeadMs` (see
   *    StandbyAnswers). The requests go out in waves of at most `reconnectBatch` (in publish order), one wave every
   *    `reconnectIntervalMs`, so that the receiving origin (and the edges re-pulling from it) is not swamped by every
   *    stream at once; the next wave goes earlier as soon as every stream of the previous one has moved away. Pacing
   *    lasts at most `reconnectWaitMs`: the streams not asked by then are asked together in one last wave.
   * 2. Streams still here `reconnectWaitMs` after the last wave was sent (legacy encoders, publishers that ignored
   *    the request) are handed off: the lease is released so any origin can claim at once, then edges' pulls are
   *    cut without an end-of-stream (so edges hold their viewers and wait for the new owner, as in a failover), then
   *    the publisher is disconnected and reconnects elsewhere. Hand-offs go in waves too (`handOffInWaves`), while
   *    the drain is within its bound; with no other origin up (`peersUp` false), all at once.
   * Bound: 2 x `reconnectWaitMs` plus one Redis round trip: pacing (<= `reconnectWaitMs`, the last wave's lead at
   * most half of it more), then the wait (to the bound), hand-off waves only within the bound, then the hand-off's
   * lease releases (Redis, concurrent, each bounded by the command timeout).
   */
  async drain(opts: DrainOptions): Promise<DrainResult> {
    this.draining = true;
    const drainEnd = performance.now() + 2 * opts.reconnectWaitMs;
    const batch = Math.max(1, Math.floor(opts.reconnectBatch));
    const pacingEnd = performance.now() + opts.reconnectWaitMs;
    const asked = new Set<string>();
    const lead = { prepared: 0, expired: 0 };
    let waves = 0;
    // Publish order: a snapshot, since owned streams leave the map while we pace.
    const queue = [...this.owned.values()];
    for (let next = 0; next < queue.length;) {
      const paced = performance.now() < pacingEnd;
      const wave: Ownership[] = [];
      while (next < queue.length && (!paced || wave.length < batch)) {
        const o = queue[next++]!;
        if (this.reconnectable(o)) wave.push(o); // not moved, fenced or gone meanwhile
      }
      const sent = await this.askToMove(wave, opts, lead);
      if (sent.length === 0) continue;
      waves++;
      for (const key of sent) asked.add(key);
      // Let this wave move (or the interval pass) before the next one.
      if (next < queue.length && performance.now() < pacingEnd)
        await this.waitForMoves(sent, Math.min(performance.now() + opts.reconnectIntervalMs, pacingEnd));
    }
    // Every stream asked gets the full wait, counted from the last wave, within the drain's bound.
    await this.waitForMoves([...asked], Math.min(performance.now() + opts.reconnectWaitMs, drainEnd));
    const moved = [...asked].filter((k) => !this.owned.has(k)).length;
    const rest = [...this.owned.values()];
    // With no other origin up there is no load to spread: interval 0 is the pacing's own off switch.
    const handOffWaves = await this.handOffInWaves(rest, batch, opts.peersUp ? opts.reconnectIntervalMs : 0, drainEnd);
    const result: DrainResult = {
      reconnectRequested: asked.size,
      handedOff: rest.length,
      waves,
      handOffWaves,
      movesPrepared: lead.prepared,
      leadExpired: lead.expired,
    };
    this.log.info({ ...result, movedByReconnect: moved }, 'drain: streams moved to other origins');
    return result;
  }

  /**
   * One wave of ReconnectRequests: each stream's move is announced (`stream.moving`), and its publisher asked once
   * its edges' next pulls wait at the target (or the lead's bound passed). Returns the keys whose publisher was asked.
   */
  private async askToMove(
    wave: readonly Ownership[],
    opts: DrainOptions,
    lead: { prepared: number; expired: number },
  ): Promise<string[]> {
    // At most half the wait: the publisher still needs the rest to move.
    const leadMs = Math.min(opts.moveLeadMs ?? 0, opts.reconnectWaitMs / 2);
    const leadEnd = performance.now() + leadMs;
    const sent = await Promise.all(
      wave.map(async (o) => {
        const key = o.req.key;
        const tcUrl = opts.peerTcUrl(o.req.app, key);
        if (!tcUrl) return undefined;
        const addr = opts.peerAddrOf?.(tcUrl);
        const epoch = o.epoch;
        if (addr && epoch !== undefined) {
          // Edges answer over NATS: without it none would, and the wait would only cost the lead. No lead: no wait.
          const expected = this.bus.connected && leadMs > 0 ? (opts.edgePullsOf?.(key) ?? 0) : 0;
          const answers = this.standbyAnswers.wait(key, epoch, expected, leadEnd);
          this.bus.publish(controlEvent('stream.moving', { key, fromNodeId: this.options.nodeId, addr, epoch }));
          const answered = await answers;
          if (expected > 0) {
            if (answered.timedOut) lead.expired++;
            else lead.prepared++;
          }
          if (!this.reconnectable(o)) return undefined; // moved, fenced or gone while the edges prepared
        }
        const requested = this.publisherOf(key)?.requestReconnect?.(
          tcUrl,
          'This server is shutting down; reconnect to continue.',
        );
        return requested ? key : undefined;
      }),
    );
    return sent.filter((key): key is string => key !== undefined);
  }

  /**
   * Hands streams off `batch` at a time, `intervalMs` apart, until `until` (performance.now()); the rest then go
   * together. Every publisher handed off comes back after its encoder's back-off, and each one's stream is then
   * claimed at the origin it lands on and re-pulled there by every edge that carried it. All at once, at a rolling
   * update of 200 streams that was 70 publishes and 170 pulls at two fresh origins within the same second: a pull
   * took 0.35 s at p50 and up to 1.1 s to open (docs/RELIABILITY.md). Returns the number of waves.
   */
  private async handOffInWaves(rest: Ownership[], batch: number, intervalMs: number, until: number): Promise<number> {
    let waves = 0;
    let paced = intervalMs > 0 && performance.now() < until;
    for (let i = 0; i < rest.length; waves++) {
      const wave = paced ? rest.slice(i, i + batch) : rest.slice(i);
      i += wave.length;
      await Promise.all(wave.map((o) => this.handOff(o)));
      if (i >= rest.length || !paced) continue;
      const left = until - performance.now();
      // Waking at the bound (a timer may fire a fraction of a millisecond early), the next wave is the rest.
      paced = left > intervalMs;
      if (left > 0) await new Promise((r) => setTimeout(r, Math.min(intervalMs, left)));
    }
    return waves;
  }

  /** Still owned here, and its publisher took E-RTMP Reconnect (a drain can ask it to move). */
  private reconnectable(o: Ownership): boolean {
    if (this.owned.get(o.req.key) !== o) return false;
    return this.publisherOf(o.req.key)?.canReconnect?.() === true;
  }

  /** The local publisher of `key`, with the E-RTMP Reconnect methods an RTMP session has (a pull has none). */
  private publisherOf(key: string): Partial<ReconnectablePublisher> | undefined {
    return this.registry.get(key)?.currentPublisher as Partial<ReconnectablePublisher> | undefined;
  }

  /** Until none of `keys` is owned here any more, or `until` (performance.now()). */
  private async waitForMoves(keys: readonly string[], until: number): Promise<void> {
    for (;;) {
      const left = until - performance.now();
      if (left <= 0 || !keys.some((k) => this.owned.has(k))) return;
      await new Promise((r) => setTimeout(r, Math.min(DRAIN_POLL_MS, left)));
    }
  }

  private async handOff(o: Ownership): Promise<void> {
    const key = o.req.key;
    if (this.owned.get(key) !== o) return;
    this.owned.delete(key);
    const epoch = o.epoch;
    o.epoch = undefined;
    // No stream.unpublished: this is a move. Edges find the next owner in Redis / by its stream.published.
    if (epoch !== undefined) await this.ownership.release(key, epoch).catch(() => false);
    const hub = this.registry.get(key);
    hub?.disconnectViewers('draining');
    hub?.currentPublisher?.kick('draining');
  }

  /** Shutdown: release every lease and announce it. */
  async releaseAll(): Promise<void> {
    this.closed = true;
    clearInterval(this.refreshTimer);
    clearInterval(this.leaseTimer);
    this.unsubscribeAdmin();
    this.unsubscribeAnswers();
    this.standbyAnswers.clear();
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
