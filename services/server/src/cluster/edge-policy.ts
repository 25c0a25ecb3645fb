import type { HubRegistry } from '@rtmp-relay/hub';
import type { Logger } from 'pino';
import { streamLabel } from '../streams/redact.js';
import { inSpan } from '../tracing.js';
import type { PlayDecision, PublishDecision, StreamPolicy, StreamRequest } from '../streams/types.js';
import { controlEvent, type EventBus } from './events.js';
import type { PublishAuthorizer } from './origin-policy.js';
import {
  UpstreamPull,
  type AnnouncedMove,
  type PullDeps,
  type PullOptions,
  type StandbyOutcome,
  type UpstreamOwner,
} from './pull.js';
import type { StreamOwnership } from './redis-registry.js';

export interface EdgePolicyOptions {
  /** This edge's node id: it signs its answers to announced moves (`stream.standby`); absent: no answers. */
  nodeId?: string;
  playWaitMs: number;
  pull: PullOptions;
  /** Tiered edges (cluster/tiers.ts): where to pull a stream from, given its owner; absent: the owner itself. */
  upstream?: UpstreamChooser;
}

/** Maps a stream's owner (an origin) to the address to pull from: a parent edge, or the owner itself. */
export interface UpstreamChooser {
  choose(key: string, owner: UpstreamOwner): Promise<UpstreamOwner>;
  /** A pull from `nodeId` broke or was refused: prefer another upstream for a while. */
  failed(nodeId: string): void;
}

export interface EdgeObserver {
  pullStarted?(key: string, attempt: number): void;
  pullFailed?(key: string, reason: string): void;
  pullStopped?(key: string): void;
  resolveLatency?(seconds: number, found: boolean): void;
  failover?(key: string): void;
  /** A next upstream opened ahead of an announced move, and its outcome (pull.ts prepareMove). */
  standby?(key: string, outcome: StandbyOutcome): void;
}

/**
 * Edges serve plays only. A play of a stream that isn't here yet resolves its owner in Redis and opens ONE pull per
 * stream, however many viewers arrive at once (concurrent first viewers share the in-flight pull); the pull ends
 * a linger after the last viewer. Owner changes arrive over NATS and wake pulls at once; Redis stays the truth.
 */
export class EdgePolicy implements StreamPolicy {
  private readonly pulls = new Map<string, UpstreamPull>();
  private readonly ownerWaiters = new Map<string, Set<() => void>>();
  private readonly unsubscribes: Array<() => void> = [];
  private readonly deps: PullDeps;
  /** The upstream node each stream's latest pull attempt went to (what a failure blames). */
  private readonly lastUpstream = new Map<string, string>();

  constructor(
    private readonly ownership: StreamOwnership,
    bus: EventBus,
    private readonly registry: HubRegistry,
    private readonly waitForLive: (key: string, timeoutMs: number) => Promise<boolean>,
    private readonly options: EdgePolicyOptions,
    private readonly log: Logger,
    private readonly authorizer: PublishAuthorizer | undefined,
    private readonly observer: EdgeObserver = {},
    playQuery?: (app: string, name: string) => string,
  ) {
    this.deps = {
      resolveOwner: (key) => this.resolve(key),
      waitForOwnerEvent: (key, ms, signal) => this.waitForOwnerEvent(key, ms, signal),
      ...(playQuery ? { playQuery } : {}),
      ...(options.nodeId !== undefined
        ? { answerMove: (key, move, ready) => this.answerMove(bus, key, move, ready) }
        : {}),
      observer: {
        pullStarted: (key, attempt) => observer.pullStarted?.(key, attempt),
        pullFailed: (key, reason) => {
          const blamed = this.lastUpstream.get(key);
          if (blamed) this.options.upstream?.failed(blamed);
          observer.pullFailed?.(key, reason);
        },
        pullStopped: (key) => {
          this.lastUpstream.delete(key);
          observer.pullStopped?.(key);
        },
        upstreamChanged: (key) => observer.failover?.(key),
        standby: (key, outcome) => observer.standby?.(key, outcome),
      },
    };
    const onOwner = (e: { key: string; nodeId: string; addr: string; epoch: number }): void => {
      const owner = { nodeId: e.nodeId, addr: e.addr, epoch: e.epoch };
      const pull = this.pulls.get(e.key);
      // A leaf pulls through a parent: when the stream moves between origins and the parent stays the same, the
      // parent follows the move itself and the leaf keeps its connection (followedByParent).
      if (pull && this.options.upstream)
        void this.options.upstream.choose(e.key, owner).then(
          (up) => (up.nodeId === owner.nodeId ? pull.ownerChanged(up) : pull.followedByParent(up)),
          () => undefined,
        );
      else pull?.ownerChanged(owner);
      this.wakeOwnerWaiters(e.key);
    };
    this.unsubscribes.push(
      bus.on('stream.published', onOwner),
      bus.on('stream.moved', onOwner),
      bus.on('stream.moving', (e) =>
        this.pulls.get(e.key)?.prepareMove({ fromNodeId: e.fromNodeId, addr: e.addr, epoch: e.epoch }),
      ),
    );
  }

  /** Tells the draining origin whether our next upstream for `key` waits at the address it announced. */
  private answerMove(bus: EventBus, key: string, move: AnnouncedMove, ready: boolean): void {
    bus.publish(
      controlEvent('stream.standby', {
        key,
        fromNodeId: move.fromNodeId,
        nodeId: this.options.nodeId!,
        epoch: move.epoch,
        ready,
      }),
    );
  }

  private resolve(key: string): Promise<UpstreamOwner | undefined> {
    return inSpan('cluster.resolve', { 'rtmp.stream': streamLabel(key) }, async (span) => {
      const started = performance.now();
      const owner = await this.ownership.resolve(key);
      this.observer.resolveLatency?.((performance.now() - started) / 1000, owner !== undefined);
      span.setAttribute('rtmp.found', owner !== undefined);
      if (owner) span.setAttributes({ 'rtmp.owner': owner.nodeId, 'rtmp.epoch': owner.epoch });
      if (!owner) return undefined;
      // The stream must be live (an owner in Redis); the pull then goes to the owner or to the stream's parent.
      const upstream = await this.upstreamOf(key, { nodeId: owner.nodeId, addr: owner.addr, epoch: owner.epoch });
      this.lastUpstream.set(key, upstream.nodeId);
      if (upstream.nodeId !== owner.nodeId) span.setAttribute('rtmp.parent', upstream.nodeId);
      return upstream;
    });
  }

  private upstreamOf(key: string, owner: UpstreamOwner): Promise<UpstreamOwner> {
    return this.options.upstream ? this.options.upstream.choose(key, owner) : Promise.resolve(owner);
  }

  private waitForOwnerEvent(key: string, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let waiters = this.ownerWaiters.get(key);
      if (!waiters) this.ownerWaiters.set(key, (waiters = new Set()));
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        waiters!.delete(done);
        if (waiters!.size === 0) this.ownerWaiters.delete(key);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      waiters.add(done);
    });
  }

  private wakeOwnerWaiters(key: string): void {
    const waiters = this.ownerWaiters.get(key);
    if (waiters) for (const w of [...waiters]) w();
  }

  async beforePublish(req: StreamRequest): Promise<PublishDecision> {
    return {
      allow: false,
      status: 'Denied',
      reason: 'edge_no_publish',
      description: `This node serves plays only; publish ${req.name} to an origin.`,
    };
  }

  published(): void {}
  unpublished(): void {}

  async beforePlay(req: StreamRequest): Promise<PlayDecision> {
    if (this.authorizer) {
      const auth = await this.authorizer.authorizePlay(req);
      if (!auth.allow) return auth;
    }
    if (this.registry.get(req.key)?.isLive) return { allow: true };
    // Hold a reference while waiting so concurrent first viewers share this pull; viewerJoined takes its own.
    const pull = this.pullFor(req);
    pull.acquire();
    try {
      let live = await this.waitForLive(req.key, this.options.playWaitMs);
      // Live at its origin, still connecting here: wait out one more connect before answering StreamNotFound.
      if (!live && pull.seekingKnownOwner) live = await this.waitForLive(req.key, this.options.pull.connectTimeoutMs);
      return live
        ? { allow: true }
        : { allow: false, status: 'StreamNotFound', reason: 'not_found', description: `${req.name} is not live.` };
    } finally {
      pull.release();
    }
  }

  private pullFor(req: StreamRequest): UpstreamPull {
    let pull = this.pulls.get(req.key);
    if (!pull || pull.isStopped) {
      // The hub is looked up at every attach: the registry drops an idle one (an upstream that ended with no viewer
      // left) while the pull lingers, and the next viewer must find the live hub the pull re-attaches to.
      const hubFor = () => this.registry.getOrCreate(req.key);
      pull = new UpstreamPull(req.key, req.app, req.name, hubFor, this.deps, this.options.pull, this.log, (stopped) => {
        if (this.pulls.get(req.key) === stopped) this.pulls.delete(req.key);
      });
      this.pulls.set(req.key, pull);
    }
    return pull;
  }

  viewerJoined(req: StreamRequest): void {
    this.pullFor(req).acquire();
  }

  viewerLeft(req: StreamRequest): void {
    this.pulls.get(req.key)?.release();
    this.authorizer?.playDone?.(req);
  }

  /** Upstream pulls, for metrics and the API. */
  activePulls(): Array<{ key: string; viewers: number; upstream: UpstreamOwner | undefined }> {
    return [...this.pulls.values()].map((p) => ({ key: p.key, viewers: p.viewers, upstream: p.upstream }));
  }

  /** Shutdown: stop every pull. */
  close(): void {
    for (const u of this.unsubscribes) u();
    for (const pull of [...this.pulls.values()]) pull.stop('shutdown');
  }

  /** Slow periodic repair: a pull stuck on a stale owner re-checks Redis (lost NATS events). */
  async reconcile(): Promise<void> {
    for (const pull of [...this.pulls.values()]) {
      const owner = await this.resolve(pull.key).catch(() => undefined);
      if (owner && (!pull.upstream || owner.epoch > pull.upstream.epoch)) pull.ownerChanged(owner);
    }
  }
}
