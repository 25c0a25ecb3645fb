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

/** The cluster registry (Redis) can't be reached: the cluster API can't answer now (HTTP 503, not a bug). */
export class ClusterUnavailableError extends Error {
  readonly code = 'cluster_unavailable';
  constructor(cause: unknown) {
    super('cluster registry unavailable', { cause });
    this.name = 'ClusterUnavailableError';
  }
}

/** `api` with outages (as `isUnavailable` tells them) raised as ClusterUnavailableError, once, at this boundary. */
export function withUnavailableErrors(api: ClusterApi, isUnavailable: (err: unknown) => boolean): ClusterApi {
  const guard = async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (err) {
      throw isUnavailable(err) ? new ClusterUnavailableError(err) : err;
    }
  };
  return {
    listNodes: () => guard(() => api.listNodes()),
    listStreams: () => guard(() => api.listStreams()),
    getStream: (key) => guard(() => api.getStream(key)),
    kick: (cmd) => guard(() => api.kick(cmd)),
  };
}
