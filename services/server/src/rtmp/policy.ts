import type { StreamHub } from '@rtmp-relay/hub';

/** Who asks to publish or play, as hooks and authorization see it. */
export interface StreamRequest {
  app: string;
  /** Stream name without the query. */
  name: string;
  /** `app/name`: the hub and registry key. */
  key: string;
  query: URLSearchParams;
  clientIp: string;
  sessionId: string;
}

export type PublishDecision =
  { allow: true } | { allow: false; status: 'BadName' | 'Denied'; reason: string; description: string };

export type PlayDecision =
  { allow: true } | { allow: false; status: 'StreamNotFound' | 'Denied'; reason: string; description: string };

/**
 * Where roles differ: the standalone node allows everything and waits for local publishers; origins authorize and
 * claim ownership in Redis; edges authorize and pull from the owning origin. The session calls these around the
 * protocol work it does the same way in every role.
 */
export interface StreamPolicy {
  /** Before a publisher is attached (authorization, cluster ownership claim). */
  beforePublish(req: StreamRequest): Promise<PublishDecision>;
  /** The publisher is attached and the hub is live. */
  published(req: StreamRequest, hub: StreamHub): void;
  /** The publisher left (unpublish, disconnect, or replaced). */
  unpublished(req: StreamRequest, hub: StreamHub): void;
  /** Before a play: authorization, and making sure the stream is (or becomes) live here within the wait. */
  beforePlay(req: StreamRequest): Promise<PlayDecision>;
  /** A viewer attached / left (edges keep pulls alive by these). */
  viewerJoined(req: StreamRequest, hub: StreamHub): void;
  viewerLeft(req: StreamRequest, hub: StreamHub): void;
}

/** The standalone node: everyone may publish and play; a play waits `playWaitMs` for a local publisher. */
export class LocalStreamPolicy implements StreamPolicy {
  constructor(
    private readonly waitForLive: (key: string, timeoutMs: number) => Promise<boolean>,
    private readonly playWaitMs: number,
  ) {}

  async beforePublish(): Promise<PublishDecision> {
    return { allow: true };
  }

  published(): void {}
  unpublished(): void {}

  async beforePlay(req: StreamRequest): Promise<PlayDecision> {
    const live = await this.waitForLive(req.key, this.playWaitMs);
    return live
      ? { allow: true }
      : { allow: false, status: 'StreamNotFound', reason: 'not_found', description: `${req.name} is not live.` };
  }

  viewerJoined(): void {}
  viewerLeft(): void {}
}
