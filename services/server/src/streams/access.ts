import type { HubPublisher, HubRegistry, HubViewer, StreamHub } from '@rtmp-relay/hub';
import type { RtmpMessage } from '@rtmp-relay/rtmp';
import type { Logger } from 'pino';
import type { Authorizer, TokenVerifier } from '../auth/index.js';
import { inSpan } from '../tracing.js';
import type { AuthFailureLimiter } from './client-limits.js';
import { ingest, type DataChecker } from './ingest.js';
import { NAME_PROBLEM_TEXT, nameProblem } from './names.js';
import { streamLabel } from './redact.js';
import { statsOf } from './stats.js';
import type { Denial, PlayDecision, PublishDecision, StreamPolicy, StreamRequest } from './types.js';

/** 'hls': the one HLS packager per stream per node (its HLS viewers are counted by the HLS routes, hls_sessions). */
export type ViewerProtocol = 'rtmp' | 'http-flv' | 'ws-flv' | 'hls';

/** What the node counts; a narrow interface so this module has no metrics dependency. */
export interface StreamAccessObserver {
  publishStarted(key: string): void;
  publishStopped(key: string): void;
  viewerStarted(protocol: ViewerProtocol, key: string): void;
  viewerStopped(protocol: ViewerProtocol, key: string): void;
  publishRejected(reason: string): void;
  playRejected(reason: string): void;
}

export interface StreamAccessOptions {
  registry: HubRegistry;
  /** The role's policy, built before any listener opens; never replaced. */
  policy: StreamPolicy;
  /** Signed URLs and webhooks, in every role (standalone too); undefined when nothing is configured. */
  authorizer: Authorizer | undefined;
  /** Verifies `pull` tokens signed with CLUSTER_SECRET (edges pulling); undefined without a cluster secret. */
  clusterTokens: TokenVerifier | undefined;
  /** Origins with a cluster secret serve plays only to cluster peers: a viewer's play token is not enough. */
  playsNeedClusterToken: boolean;
  authFailures: AuthFailureLimiter;
  observer: StreamAccessObserver;
  log: Logger;
}

const RATE_LIMITED = 'auth_rate_limited';

/**
 * The one path to streams, for every protocol (RTMP sessions, HTTP-FLV and WebSocket-FLV plays, the edge's upstream
 * pull): admission (names, failed-auth rate limit, cluster credentials, signed URLs and webhooks, then the role's
 * policy), publisher attach/detach, viewer join/leave, and ingest (aggregate splitting, AMF limits on data). The same
 * checks, metrics and logs wherever a request comes from. A hub is created only for what was admitted.
 */
export class StreamAccess {
  constructor(private readonly o: StreamAccessOptions) {}

  get registry(): HubRegistry {
    return this.o.registry;
  }

  /** Authorization, limits and the role's policy (cluster claim) before a publisher may attach. */
  async admitPublish(req: StreamRequest): Promise<PublishDecision> {
    const decision = await inSpan('rtmp.publish', { 'rtmp.stream': streamLabel(req.key) }, async (span) => {
      const d = await this.decidePublish(req);
      span.setAttribute('rtmp.allowed', d.allow);
      if (!d.allow) span.setAttribute('rtmp.reason', d.reason);
      return d;
    });
    if (!decision.allow) this.rejected('publish', req, decision);
    return decision;
  }

  /** Authorization, limits and the role's policy (an edge's pull, the play wait) before a viewer may join. */
  async admitPlay(req: StreamRequest): Promise<PlayDecision> {
    const decision = await inSpan('rtmp.play', { 'rtmp.stream': streamLabel(req.key) }, async (span) => {
      const d = await this.decidePlay(req);
      span.setAttribute('rtmp.allowed', d.allow);
      if (!d.allow) span.setAttribute('rtmp.reason', d.reason);
      return d;
    });
    if (!decision.allow) this.rejected('play', req, decision);
    return decision;
  }

  /** Attaches an admitted publisher to its stream's hub; undefined when the key is busy (takeover not allowed). */
  startPublish(req: StreamRequest, publisher: HubPublisher): StreamHub | undefined {
    const hub = this.o.registry.getOrCreate(req.key);
    const takeover = hub.currentPublisher !== undefined;
    if (!hub.attachPublisher(publisher)) {
      this.o.observer.publishRejected('busy');
      this.dropIfIdle(hub);
      return undefined;
    }
    this.o.observer.publishStarted(req.key);
    this.o.policy.published(req, hub);
    this.o.log.info({ stream: streamLabel(req.key), session: req.sessionId, takeover }, 'publish start');
    return hub;
  }

  /**
   * The publisher left (unpublish, disconnect, kick). `detach: false` when the hub already let it go (replaced by a
   * takeover): the bookkeeping still runs once.
   */
  stopPublish(req: StreamRequest, hub: StreamHub, publisher: HubPublisher, reason: string): void {
    hub.detachPublisher(publisher);
    this.o.observer.publishStopped(req.key);
    this.o.policy.unpublished(req, hub);
    this.o.authorizer?.publishDone(req);
    this.o.log.info({ stream: streamLabel(req.key), session: req.sessionId, reason }, 'publish stop');
  }

  /** Media from a publisher into its hub (the same `ingest` an edge's pull uses). */
  ingest(hub: StreamHub, msg: RtmpMessage, checker: DataChecker): void {
    ingest(hub, msg, checker);
  }

  /** Adds an admitted viewer to its stream's hub. The returned function removes it again (idempotent). */
  join(req: StreamRequest, viewer: HubViewer, protocol: ViewerProtocol, clusterPeer = false): Membership {
    const hub = this.o.registry.getOrCreate(req.key);
    const stats = statsOf(hub);
    // An edge's pull feeds that edge's viewers: it is not a viewer of this node's stream stats.
    if (clusterPeer) stats.edgePulls++;
    else stats.viewers[protocol]++;
    this.o.observer.viewerStarted(protocol, req.key);
    this.o.policy.viewerJoined(req, hub);
    this.o.log.info({ stream: streamLabel(req.key), session: req.sessionId, protocol, clusterPeer }, 'play start');
    hub.addViewer(viewer);
    let joined = true;
    return {
      hub,
      leave: (removeFromHub = true) => {
        if (!joined) return;
        joined = false;
        if (removeFromHub) hub.removeViewer(viewer);
        if (clusterPeer) stats.edgePulls--;
        else stats.viewers[protocol]--;
        this.o.observer.viewerStopped(protocol, req.key);
        this.o.policy.viewerLeft(req, hub);
        if (!clusterPeer) this.o.authorizer?.playDone(req);
        this.o.log.debug({ stream: streamLabel(req.key), session: req.sessionId }, 'play stop');
      },
    };
  }

  private async decidePublish(req: StreamRequest): Promise<PublishDecision> {
    const problem = nameProblem(req.app, req.name);
    if (problem) return { allow: false, status: 'BadName', reason: problem, description: NAME_PROBLEM_TEXT[problem] };
    if (this.o.authFailures.isLimited(req.clientIp)) return rateLimited('Publish');
    if (this.o.authorizer) {
      const auth = await this.o.authorizer.authorizePublish(req);
      if (!auth.allow) return this.authFailed(req, auth);
    }
    return this.o.policy.beforePublish(req);
  }

  private async decidePlay(req: StreamRequest): Promise<PlayDecision> {
    const problem = nameProblem(req.app, req.name);
    if (problem)
      return { allow: false, status: 'StreamNotFound', reason: problem, description: NAME_PROBLEM_TEXT[problem] };
    if (this.o.authFailures.isLimited(req.clientIp)) return rateLimited('Play');
    const clusterPeer = this.o.clusterTokens?.verify(req.app, req.name, req.query).ok === true;
    if (!clusterPeer) {
      if (this.o.playsNeedClusterToken) {
        return this.authFailed(req, {
          allow: false,
          status: 'Denied',
          reason: 'cluster_token_required',
          description: 'Play denied: this node serves cluster peers only.',
        });
      }
      if (this.o.authorizer) {
        const auth = await this.o.authorizer.authorizePlay(req);
        if (!auth.allow) return this.authFailed(req, auth);
      }
    }
    const d = await this.o.policy.beforePlay(req);
    return d.allow ? { allow: true, clusterPeer } : d;
  }

  private authFailed<D extends Denial>(req: StreamRequest, denial: D): D {
    if (this.o.authFailures.recordFailure(req.clientIp))
      this.o.log.warn({ ip: req.clientIp }, 'failed authorizations over the limit: refusing this IP for a while');
    return denial;
  }

  private rejected(action: 'publish' | 'play', req: StreamRequest, d: Denial): void {
    if (action === 'publish') this.o.observer.publishRejected(d.reason);
    else this.o.observer.playRejected(d.reason);
    this.o.log.info(
      { stream: streamLabel(req.key), session: req.sessionId, ip: req.clientIp, reason: d.reason },
      `${action} rejected`,
    );
  }

  /** A hub made for a publish that then could not attach must not linger (hostile names would pile up). */
  private dropIfIdle(hub: StreamHub): void {
    if (!hub.isLive && hub.viewerCount === 0 && hub.currentPublisher === undefined) hub.close('unused');
  }
}

export interface Membership {
  hub: StreamHub;
  /** `removeFromHub: false` when the hub itself dropped the viewer (slow viewer, stream end). */
  leave(removeFromHub?: boolean): void;
}

function rateLimited(action: 'Publish' | 'Play'): Denial & { status: 'Denied' } {
  return {
    allow: false,
    status: 'Denied',
    reason: RATE_LIMITED,
    description: `${action} denied: too many failed attempts; try again later.`,
  };
}
