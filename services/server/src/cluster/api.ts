/**
 * What the cluster offers the node's HTTP /api routes: a cluster-wide view and control, backed by Redis (truth) and
 * NATS (commands). Declared here, in the domain, so the HTTP layer depends on the cluster and never the reverse;
 * cluster/runtime.ts implements it.
 */
export interface ClusterApi {
  listNodes(): Promise<unknown[]>;
  listStreams(): Promise<unknown[]>;
  getStream(key: string): Promise<unknown | undefined>;
  /** Kick a stream's publisher, its viewers (optionally one session), or drop the stream, wherever it is. */
  kick(cmd: KickCommand): Promise<void>;
}

/** A kick request: the publisher, the viewers (or one viewer session), or the whole stream. */
export interface KickCommand {
  key: string;
  what: 'publisher' | 'viewers' | 'stream';
  sessionId?: string;
  reason?: string;
}
