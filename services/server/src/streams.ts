import type { StreamHub } from '@rtmp-relay/hub';
import { streamLabel } from './streams/redact.js';
import { statsOf } from './streams/stats.js';

/** The JSON shape of a stream in the HTTP API. */
export function describeStream(hub: StreamHub): Record<string, unknown> {
  const s = hub.stats();
  const [app, ...rest] = s.key.split('/');
  return {
    key: s.key,
    /** What logs and per-stream metrics call this stream (the name is hashed there). */
    label: streamLabel(s.key),
    app,
    name: rest.join('/'),
    live: hub.isLive,
    publisher: s.publisherId ?? null,
    viewers: s.viewers,
    messagesIn: s.messagesIn,
    bytesIn: s.bytesIn,
    startedAt: s.startedAt ? new Date(s.startedAt).toISOString() : null,
    gopCache: { messages: s.gopMessages, bytes: s.gopBytes },
    media: statsOf(hub).snapshot(hub),
  };
}
