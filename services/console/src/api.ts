/**
 * The node's HTTP API as the console reads it: GET only, with `Authorization: Bearer <token>` when a token is set
 * (nodes with API_TOKEN protect /api/*; /readyz stays open).
 */
import type {
  ClusterNodeRecord,
  ClusterStream,
  LocalStream,
  NodeInfo,
  Snapshot,
  StatsScope,
  StreamStats,
} from './model.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly path: string,
  ) {
    super(status === 401 ? 'unauthorized: this node needs an API token' : `GET ${path}: HTTP ${status}`);
  }
}

export class ApiClient {
  /** The role of the node, learned from the last poll. */
  private role: string | undefined;

  /** `root` is the node's base URL (the parent of /console/). */
  constructor(
    private readonly root: URL,
    private readonly token: () => string,
    private readonly timeoutMs = 4000,
  ) {}

  /** One poll: this node, its readiness and streams, and the cluster view when the node is in a cluster. */
  async snapshot(): Promise<Snapshot> {
    // Until the role is known (first poll), ask for the node first: a standalone node has no cluster API to ask.
    const first = this.role === undefined ? await this.get<NodeInfo>('api/node') : undefined;
    const askCluster = (first?.role ?? this.role) !== 'standalone';
    const [node, ready, streams, clusterNodes, clusterStreams] = await Promise.all([
      first ?? this.get<NodeInfo>('api/node'),
      this.ready(),
      this.get<{ streams: LocalStream[] }>('api/streams'),
      askCluster ? this.get<{ nodes: ClusterNodeRecord[] }>('api/cluster/nodes', true) : undefined,
      askCluster ? this.get<{ streams: ClusterStream[] }>('api/cluster/streams', true) : undefined,
    ]);
    this.role = node!.role;
    return {
      at: Date.now(),
      node: node!,
      ready,
      streams: streams?.streams ?? [],
      ...(clusterNodes ? { clusterNodes: clusterNodes.nodes } : {}),
      ...(clusterStreams ? { clusterStreams: clusterStreams.streams } : {}),
    };
  }

  /**
   * A stream's live stats: cluster-wide from an origin or edge (the owner's measurements, viewers and egress summed
   * over the nodes), else (standalone, or no owner known) this node's own; undefined when neither knows the stream.
   */
  async streamStats(key: string): Promise<{ scope: StatsScope; stats: StreamStats } | undefined> {
    const path = key
      .split('/')
      .map((p) => encodeURIComponent(p))
      .join('/');
    if (this.role !== undefined && this.role !== 'standalone') {
      const cluster = await this.get<{ media: StreamStats | null }>(`api/cluster/streams/${path}`, true);
      if (cluster?.media) return { scope: 'cluster', stats: cluster.media };
    }
    const local = await this.get<LocalStream>(`api/streams/${path}`, true);
    return local?.media ? { scope: 'node', stats: local.media } : undefined;
  }

  private async ready(): Promise<boolean | undefined> {
    try {
      const res = await fetch(new URL('readyz', this.root), {
        signal: AbortSignal.timeout(this.timeoutMs),
        cache: 'no-store',
      });
      await res.body?.cancel();
      return res.status === 200;
    } catch {
      return undefined;
    }
  }

  /** JSON of GET `path` (relative to the node root); with `optional`, a 404 is undefined rather than an error. */
  async get<T>(path: string, optional = false): Promise<T | undefined> {
    const token = this.token();
    const res = await fetch(new URL(path, this.root), {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      signal: AbortSignal.timeout(this.timeoutMs),
      cache: 'no-store',
    });
    if (optional && res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new HttpError(res.status, `/${path}`);
    }
    return (await res.json()) as T;
  }
}
