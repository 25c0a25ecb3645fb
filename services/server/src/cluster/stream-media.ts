/**
 * Stream stats in the cluster: what each node's registry record says of its streams, and the cluster-wide view
 * `/api/cluster/streams/<key>` builds from every record.
 *
 * - An origin records what its live streams carry, measured at ingest (`media`): only the owner knows it.
 * - Every node records, per stream it has a hub for, its own viewers by protocol and what it sends them (`traffic`):
 *   egress and slow viewers happen wherever viewers are, so the cluster view sums them over the nodes.
 *
 * An edge's upstream pull is an RTMP viewer of the node it pulls from (origin or parent edge), and every edge whose
 * hub is fed (`upstream`) has exactly one. With CLUSTER_SECRET the upstream node knows them (signed pulls) and
 * counts them as `edgePulls`, not viewers; without it they look like viewers, and the cluster-wide RTMP count takes
 * out the relays not already counted as pulls. Egress keeps them: bytes sent to an edge are bytes the cluster sends.
 */
import type { StreamHub } from '@rtmp-relay/hub';
import type { NodeRecord } from './redis-registry.js';
import { statsOf, type StatsProtocol, type StreamStatsSnapshot } from '../streams/stats.js';

/** What an origin's record says of one live stream it owns. */
export type OwnerMedia = Pick<StreamStatsSnapshot, 'video' | 'audio' | 'ingestKbps' | 'uptimeSeconds'>;

/** What any node's record says of one stream it has a hub for. */
export type NodeTraffic = Pick<
  StreamStatsSnapshot,
  'viewers' | 'edgePulls' | 'egressBytesPerSecond' | 'droppedFrames' | 'slowViewersDisconnected'
> & {
  /** An edge whose hub is fed by a pull (one RTMP viewer of its upstream node). */
  upstream: boolean;
};

/** The record fields this module writes and reads. */
export interface StreamStatsFields {
  media?: Record<string, OwnerMedia>;
  traffic?: Record<string, NodeTraffic>;
}

/** The cluster-wide stats of one stream: the owner's media (null parts until it reports), every node's traffic summed. */
export interface ClusterStreamMedia extends Omit<NodeTraffic, 'upstream'> {
  video: OwnerMedia['video'];
  audio: OwnerMedia['audio'];
  ingestKbps: OwnerMedia['ingestKbps'] | null;
  uptimeSeconds: OwnerMedia['uptimeSeconds'];
  /** Each node's own traffic for the stream, by node id. */
  byNode: Record<string, NodeTraffic>;
}

/** The stats fields of a node's record: `media` for an origin's live streams, `traffic` for every hub. */
export function nodeStreamStats(hubs: readonly StreamHub[], role: string): StreamStatsFields {
  const media: Record<string, OwnerMedia> = {};
  const traffic: Record<string, NodeTraffic> = {};
  for (const hub of hubs) {
    const s = statsOf(hub).snapshot(hub);
    if (role === 'origin' && hub.isLive) {
      media[hub.key] = { video: s.video, audio: s.audio, ingestKbps: s.ingestKbps, uptimeSeconds: s.uptimeSeconds };
    }
    traffic[hub.key] = {
      viewers: s.viewers,
      edgePulls: s.edgePulls,
      egressBytesPerSecond: s.egressBytesPerSecond,
      droppedFrames: s.droppedFrames,
      slowViewersDisconnected: s.slowViewersDisconnected,
      upstream: role === 'edge' && hub.isLive,
    };
  }
  return role === 'origin' ? { media, traffic } : { traffic };
}

/** The cluster-wide stats of `key` from every node's record; null when no node reports the stream. */
export function clusterStreamMedia(
  nodes: ReadonlyArray<NodeRecord & StreamStatsFields>,
  key: string,
  ownerId: string,
): ClusterStreamMedia | null {
  const owner = nodes.find((n) => n.id === ownerId)?.media?.[key];
  const byNode: Record<string, NodeTraffic> = {};
  const viewers: Record<StatsProtocol, number> = { rtmp: 0, 'http-flv': 0, 'ws-flv': 0, hls: 0 };
  const egress = { last1s: 0, last10s: 0 };
  let droppedFrames = 0;
  let slowViewersDisconnected = 0;
  let relays = 0;
  let edgePulls = 0;
  for (const n of nodes) {
    const t = n.traffic?.[key];
    if (!t) continue;
    byNode[n.id] = t;
    for (const p of Object.keys(viewers) as StatsProtocol[]) viewers[p] += t.viewers[p] ?? 0;
    egress.last1s += t.egressBytesPerSecond.last1s;
    egress.last10s += t.egressBytesPerSecond.last10s;
    droppedFrames += t.droppedFrames;
    slowViewersDisconnected += t.slowViewersDisconnected;
    if (t.upstream) relays++;
    edgePulls += t.edgePulls ?? 0; // records of nodes older than the field: 0
  }
  if (!owner && Object.keys(byNode).length === 0) return null;
  viewers.rtmp = Math.max(0, viewers.rtmp - Math.max(0, relays - edgePulls));
  return {
    video: owner?.video ?? null,
    audio: owner?.audio ?? null,
    ingestKbps: owner?.ingestKbps ?? null,
    uptimeSeconds: owner?.uptimeSeconds ?? null,
    viewers,
    edgePulls,
    egressBytesPerSecond: egress,
    droppedFrames,
    slowViewersDisconnected,
    byNode,
  };
}
