import type { StreamHub } from '@rtmp-relay/hub';

/** Who asks to publish or play, as admission, hooks and role policies see it (every protocol alike). */
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

/** `clusterPeer`: the play carried valid cluster credentials (an edge pulling): not a viewer of the public. */
export type PlayDecision =
  | { allow: true; clusterPeer?: boolean }
  | { allow: false; status: 'StreamNotFound' | 'Denied'; reason: string; description: string };

export type Denial = Extract<PublishDecision | PlayDecision, { allow: false }>;

/**
 * Where roles differ: the standalone node waits for local publishers; origins claim ownership in Redis; edges pull
 * from the owning origin. Authorization and limits are NOT here: StreamAccess applies them before any role policy,
 * so every role and every protocol gets the same checks.
 */
export interface StreamPolicy {
  /** Before a publisher is attached (cluster ownership claim). */
  beforePublish(req: StreamRequest): Promise<PublishDecision>;
  /** The publisher is attached and the hub is live. */
  published(req: StreamRequest, hub: StreamHub): void;
  /** The publisher left (unpublish, disconnect, or replaced). */
  unpublished(req: StreamRequest, hub: StreamHub): void;
  /** Before a play: making sure the stream is (or becomes) live here within the wait. */
  beforePlay(req: StreamRequest): Promise<PlayDecision>;
  /** A viewer attached / left (edges keep pulls alive by these). */
  viewerJoined(req: StreamRequest, hub: StreamHub): void;
  viewerLeft(req: StreamRequest, hub: StreamHub): void;
}
