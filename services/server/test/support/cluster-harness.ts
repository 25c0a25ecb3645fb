/**
 * Cluster test harness: origin and edge nodes, either in-process (`startNode`) or as real `rtmp-relay` processes
 * (the built CLI, so a test can SIGKILL one), with the same small helper surface (URLs, HTTP, metrics), plus
 * RTMP viewers that record what they receive and when.
 */
import { fileURLToPath } from 'node:url';
import { MessageType, RtmpClient, parseVideoTag, type RtmpMessage } from '@rtmp-relay/rtmp';
import { loadConfig } from '../../src/config.js';
import { startNode, type RunningNode } from '../../src/node.js';
import { type Running, type RunResult, start, startLinePorts, waitFor } from './processes.js';

/** The built `rtmp-relay` binary (npm test builds first). */
export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export type ClusterRole = 'origin' | 'edge';

export interface ClusterNode {
  readonly id: string;
  readonly role: ClusterRole;
  readonly rtmpPort: number;
  readonly httpPort: number;
  rtmpUrl(key: string): string;
  http(path: string, init?: RequestInit): Promise<Response>;
  json<T = any>(path: string): Promise<T>;
  /** Sum of the samples of `name` whose labels include `labels` (0 when absent). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** Graceful stop (in-process shutdown, or SIGTERM for a process). Idempotent. */
  stop(): Promise<void>;
}

export interface ProcessNode extends ClusterNode {
  readonly proc: Running;
  /** stdout + stderr so far (logs), for failure messages. */
  output(): string;
  /** SIGKILL, resolves once the process is gone. */
  kill(): Promise<RunResult>;
}

/** Env common to every node of a test cluster: loopback, free ports, quiet logs, fast leases and pulls. */
export function clusterEnv(
  redisUrl: string,
  natsUrl: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    REDIS_URL: redisUrl,
    NATS_URL: natsUrl,
    ADVERTISE_HOST: '127.0.0.1',
    RTMP_HOST: '127.0.0.1',
    HTTP_HOST: '127.0.0.1',
    RTMP_PORT: '0',
    HTTP_PORT: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    SHUTDOWN_TIMEOUT_MS: '500',
    ...extra,
  };
}

/** Sum of the samples of `name` in a Prometheus exposition whose labels include `labels`. */
export function parseMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

function helpers(httpPort: number, rtmpPort: number) {
  const base = `http://127.0.0.1:${httpPort}`;
  const http = (path: string, init?: RequestInit): Promise<Response> =>
    fetch(base + path, { signal: AbortSignal.timeout(5000), ...init });
  return {
    rtmpUrl: (key: string) => `rtmp://127.0.0.1:${rtmpPort}/${key}`,
    http,
    json: async <T>(path: string): Promise<T> => (await (await http(path)).json()) as T,
    metric: async (name: string, labels: Record<string, string> = {}) =>
      parseMetric(await (await http('/metrics')).text(), name, labels),
  };
}

/** An origin or edge in this process. */
export async function startInProcessNode(
  role: ClusterRole,
  id: string,
  env: Record<string, string>,
): Promise<ClusterNode> {
  const node: RunningNode = await startNode(loadConfig({ env: { ...env, NODE_ID: id } }), { role });
  let stopping: Promise<void> | undefined;
  return {
    id,
    role,
    rtmpPort: node.rtmpPort,
    httpPort: node.httpPort,
    ...helpers(node.httpPort, node.rtmpPort),
    stop: () => (stopping ??= node.shutdown('test')),
  };
}

/** An origin or edge as a real `rtmp-relay <role>` process; ports parsed from its start line on stderr. */
export async function spawnNode(role: ClusterRole, id: string, env: Record<string, string>): Promise<ProcessNode> {
  const proc = start(process.execPath, [CLI, role], {
    timeoutMs: 10 * 60_000,
    env: { ...process.env, ...env, NODE_ID: id },
  });
  let out = '';
  const append = (d: Buffer): void => {
    out += d.toString();
    if (out.length > 256 * 1024) out = out.slice(-128 * 1024);
  };
  proc.child.stdout!.on('data', append);
  proc.child.stderr!.on('data', append);
  let exited = false;
  void proc.exited.then(() => (exited = true));
  const ports = await waitFor(
    `${role} ${id} to print its start line`,
    () => {
      if (exited) throw new Error(`${role} ${id} exited before starting:\n${out}`);
      return startLinePorts(out);
    },
    15_000,
    20,
  );
  let stopping: Promise<void> | undefined;
  return {
    id,
    role,
    rtmpPort: ports.rtmp,
    httpPort: ports.http,
    ...helpers(ports.http, ports.rtmp),
    proc,
    output: () => out,
    kill: async () => {
      if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
      return proc.exited;
    },
    stop: () => (stopping ??= proc.stop('SIGTERM').then(() => undefined)),
  };
}

/** Cluster view of one stream from any node's API, or undefined (404). */
export async function clusterStream(
  node: ClusterNode,
  key: string,
): Promise<{ key: string; nodeId: string; addr: string; epoch: number; viewers: Record<string, number> } | undefined> {
  const res = await node.http(`/api/cluster/streams/${key}`);
  if (res.status === 404) {
    await res.body?.cancel();
    return undefined;
  }
  if (res.status !== 200) throw new Error(`GET /api/cluster/streams/${key}: ${res.status} ${await res.text()}`);
  return (await res.json()) as {
    key: string;
    nodeId: string;
    addr: string;
    epoch: number;
    viewers: Record<string, number>;
  };
}

/** The node's own (local hub) view of one stream, or undefined (404). */
export async function localStream(
  node: ClusterNode,
  key: string,
): Promise<{ live: boolean; viewers: number; startedAt: string | null } | undefined> {
  const res = await node.http(`/api/streams/${key}`);
  if (res.status === 404) {
    await res.body?.cancel();
    return undefined;
  }
  return (await res.json()) as { live: boolean; viewers: number; startedAt: string | null };
}

/** Waits until `key` is live on `node` (its local hub has a publisher). */
export async function waitLocalLive(node: ClusterNode, key: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(`${key} live on ${node.id}`, async () => (await localStream(node, key))?.live === true, timeoutMs, 25);
}

/** One received video message, as a viewer saw it. */
export interface VideoRecord {
  /** performance.now() at arrival */
  at: number;
  ts: number;
  key: boolean;
  seq: boolean;
}

/**
 * An RTMP viewer that records every video message (arrival time, timestamp, keyframe / sequence header), the end
 * of stream notifications and the connection's end.
 */
export class RecordingViewer {
  readonly video: VideoRecord[] = [];
  readonly ends: Array<{ at: number; reason: string }> = [];
  closedAt: number | undefined;
  closeReason: string | undefined;
  playStartedAt: number | undefined;
  /** Date.now() when Play.Start arrived (to compare with server-side wall-clock times). */
  playStartedWall: number | undefined;

  private constructor(
    readonly name: string,
    readonly client: RtmpClient,
  ) {
    client.on('media', (m: RtmpMessage) => {
      if (m.type !== MessageType.Video || m.payload.length === 0) return;
      const info = parseVideoTag(m.payload);
      this.video.push({ at: performance.now(), ts: m.timestamp, key: info.isKeyframe, seq: info.isSequenceHeader });
    });
    client.on('end', (reason) => this.ends.push({ at: performance.now(), reason }));
    client.on('close', (reason) => {
      this.closedAt ??= performance.now();
      this.closeReason ??= reason;
    });
  }

  /** Connects and plays; rejects like RtmpClient.play (e.g. `code` NetStream.Play.StreamNotFound). */
  static async open(
    name: string,
    url: string,
    opts: { playTimeoutMs?: number; readTimeoutMs?: number } = {},
  ): Promise<RecordingViewer> {
    const client = await RtmpClient.connect(url, {
      readTimeoutMs: opts.readTimeoutMs ?? 30_000,
      connectTimeoutMs: 5000,
    });
    const v = new RecordingViewer(name, client);
    try {
      await client.play(undefined, opts.playTimeoutMs ?? 10_000);
    } catch (err) {
      client.close();
      throw err;
    }
    v.playStartedAt = performance.now();
    v.playStartedWall = Date.now();
    return v;
  }

  get closed(): boolean {
    return this.client.closed;
  }

  /** Coded frames (not sequence headers) received at or after `since` (performance.now() time). */
  framesSince(since = 0): VideoRecord[] {
    return this.video.filter((r) => !r.seq && r.at >= since);
  }

  close(): void {
    this.client.close();
  }
}

/** Opens `count` viewers of `url` at once. */
export function openViewers(
  prefix: string,
  url: string,
  count: number,
  opts?: { readTimeoutMs?: number },
): Promise<RecordingViewer[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => RecordingViewer.open(`${prefix}#${i}`, url, opts)));
}

/** `promise`'s value, or undefined if it takes longer than `ms`. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Coded frames whose timestamp does not grow over the previous coded frame's (duplicates, jumps back). */
export function timestampRegressions(records: VideoRecord[]): Array<{ index: number; prev: number; ts: number }> {
  const out: Array<{ index: number; prev: number; ts: number }> = [];
  const coded = records.filter((r) => !r.seq);
  for (let i = 1; i < coded.length; i++) {
    if (coded[i]!.ts <= coded[i - 1]!.ts) out.push({ index: i, prev: coded[i - 1]!.ts, ts: coded[i]!.ts });
  }
  return out;
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
