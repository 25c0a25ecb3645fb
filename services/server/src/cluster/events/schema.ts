/**
 * The wire schema of the cluster control events (protocol version 1): versioned JSON payloads validated with zod.
 * Subjects, payload fields, their meanings and the compatibility rules are documented once, in docs/ARCHITECTURE.md
 * ("NATS subjects"); this file is their executable form.
 *
 * Redis stays the source of truth (ownership leases and epochs). These events only make nodes react at once
 * instead of on their next timeout or retry, so a lost event costs a slower path, never a wrong one. Consumers
 * must therefore be idempotent and fence by `epoch` (ignore a stream event whose epoch is lower than the one they
 * already know for that key); `at` is informational (sender clock, ms since the Unix epoch), not for ordering.
 */
import { z } from 'zod';

import { NODE_ROLES, type Role } from '../../roles.js';
import { EDGE_TIERS } from '../tiers.js';

/** The role of a node as carried in node events. */
export type NodeRole = Role;

export const PROTOCOL_VERSION = 1 as const;
export const DEFAULT_PREFIX = 'rtmp';

/** Node ids as they appear in admin subjects: subject tokens without wildcards or whitespace; `all` is reserved. */
const SUBJECT_TOKENS_RE = /^[^\s.*>]+(?:\.[^\s.*>]+)*$/;

export function isValidAdminNodeId(nodeId: string): boolean {
  return nodeId !== 'all' && SUBJECT_TOKENS_RE.test(nodeId);
}

const id = z.string().min(1).max(1024);
const count = z.number().int().nonnegative();
const time = z.number().int().nonnegative();
const epoch = z.number().int().nonnegative();
const adminNodeId = id.refine(
  isValidAdminNodeId,
  'not usable in a subject (whitespace, "*", ">", empty part or "all")',
);

const base = { v: z.literal(PROTOCOL_VERSION), at: time };

export const StreamPublishedSchema = z.object({
  ...base,
  type: z.literal('stream.published'),
  key: id,
  app: z.string().max(1024),
  name: z.string().max(1024),
  nodeId: id,
  addr: id,
  epoch,
});
export const StreamUnpublishedSchema = z.object({
  ...base,
  type: z.literal('stream.unpublished'),
  key: id,
  nodeId: id,
  epoch,
});
export const StreamMovedSchema = z.object({
  ...base,
  type: z.literal('stream.moved'),
  key: id,
  fromNodeId: id.optional(),
  nodeId: id,
  addr: id,
  epoch,
});
/**
 * A drain asked the stream's publisher to reconnect to another origin (E-RTMP ReconnectRequest): edges pulling it from
 * `fromNodeId` may open their next upstream at `addr` ahead of the move (its play waits there until the publisher
 * arrives), so the switch costs no connection set-up. Advisory: the move itself is still `stream.moved` (or Redis).
 */
export const StreamMovingSchema = z.object({
  ...base,
  type: z.literal('stream.moving'),
  key: id,
  fromNodeId: id,
  /** The RTMP address (host:port) of the origin the publisher was sent to. */
  addr: id,
  /** The current owner's epoch (a stale event, for an older epoch, is ignored). */
  epoch,
});

/**
 * An edge's answer to `stream.moving`: its next upstream at the announced address is connected and its play waits
 * there for the publisher (`ready`), or could not be opened (`ready: false`). `nodeId` is the edge, `fromNodeId` and
 * `epoch` the draining origin's copy the move is of. The draining origin sends the publisher its ReconnectRequest once
 * every edge pulling the stream has answered (or a bound passed): a publisher that arrives before the edges' next
 * pulls leaves their viewers a connection set-up's gap. Advisory, like `stream.moving`.
 */
export const StreamStandbySchema = z.object({
  ...base,
  type: z.literal('stream.standby'),
  key: id,
  fromNodeId: id,
  nodeId: id,
  epoch,
  ready: z.boolean(),
});

export const NodeLoadSchema = z.object({
  viewers: count,
  streams: count,
  publishers: count,
  egressBps: z.number().nonnegative(),
});
const nodeFields = {
  ...base,
  nodeId: id,
  role: z.enum(NODE_ROLES),
  rtmpAddr: id,
  httpAddr: id,
  version: z.string().max(256).optional(),
  load: NodeLoadSchema.optional(),
  /** Whether the sender reaches Redis now: origins tell a global Redis outage from their own partition by it. */
  redisUp: z.boolean().optional(),
  /** Edges: tier in a two-tier layout (cluster/tiers.ts); absent: leaf. */
  tier: z.enum(EDGE_TIERS).optional(),
};
export const NodeUpSchema = z.object({ ...nodeFields, type: z.literal('node.up') });
export const NodeDownSchema = z.object({ ...nodeFields, type: z.literal('node.down') });
export const NodeLoadEventSchema = z.object({ ...nodeFields, type: z.literal('node.load') });

export const ADMIN_TYPES = [
  'admin.kick_publisher',
  'admin.kick_viewer',
  'admin.drop_stream',
  'admin.release_stream',
] as const;
export type AdminType = (typeof ADMIN_TYPES)[number];
const adminFields = {
  ...base,
  key: id,
  /** Destination node; omitted: every node (subject `admin.all`). */
  target: adminNodeId.optional(),
  /** kick_viewer: one viewer connection; omitted: every viewer of `key`. */
  sessionId: id.optional(),
  reason: z.string().max(1024).optional(),
  from: z.string().max(1024).optional(),
};
export const AdminKickPublisherSchema = z.object({ ...adminFields, type: z.literal('admin.kick_publisher') });
export const AdminKickViewerSchema = z.object({ ...adminFields, type: z.literal('admin.kick_viewer') });
export const AdminDropStreamSchema = z.object({ ...adminFields, type: z.literal('admin.drop_stream') });
export const AdminReleaseStreamSchema = z.object({ ...adminFields, type: z.literal('admin.release_stream') });

export const ControlEventSchema = z.discriminatedUnion('type', [
  StreamPublishedSchema,
  StreamUnpublishedSchema,
  StreamMovedSchema,
  StreamMovingSchema,
  StreamStandbySchema,
  NodeUpSchema,
  NodeDownSchema,
  NodeLoadEventSchema,
  AdminKickPublisherSchema,
  AdminKickViewerSchema,
  AdminDropStreamSchema,
  AdminReleaseStreamSchema,
]);

export type StreamPublished = z.infer<typeof StreamPublishedSchema>;
export type StreamUnpublished = z.infer<typeof StreamUnpublishedSchema>;
export type StreamMoved = z.infer<typeof StreamMovedSchema>;
export type StreamMoving = z.infer<typeof StreamMovingSchema>;
export type StreamStandby = z.infer<typeof StreamStandbySchema>;
export type NodeLoad = z.infer<typeof NodeLoadSchema>;
export type NodeUp = z.infer<typeof NodeUpSchema>;
export type NodeDown = z.infer<typeof NodeDownSchema>;
export type NodeLoadEvent = z.infer<typeof NodeLoadEventSchema>;
export type AdminKickPublisher = z.infer<typeof AdminKickPublisherSchema>;
export type AdminKickViewer = z.infer<typeof AdminKickViewerSchema>;
export type AdminDropStream = z.infer<typeof AdminDropStreamSchema>;
export type AdminReleaseStream = z.infer<typeof AdminReleaseStreamSchema>;

/** Every control event (discriminated by `type`). */
export type ControlEvent = z.infer<typeof ControlEventSchema>;
export type ControlEventType = ControlEvent['type'];
export type EventOf<T extends ControlEventType> = Extract<ControlEvent, { type: T }>;
export type StreamEvent = StreamPublished | StreamUnpublished | StreamMoved | StreamMoving | StreamStandby;
export type NodeEvent = NodeUp | NodeDown | NodeLoadEvent;
export type AdminEvent = EventOf<AdminType>;

export const CONTROL_EVENT_TYPES: readonly ControlEventType[] = [
  'stream.published',
  'stream.unpublished',
  'stream.moved',
  'stream.moving',
  'stream.standby',
  'node.up',
  'node.down',
  'node.load',
  ...ADMIN_TYPES,
];

export function isAdminEvent(event: ControlEvent): event is AdminEvent {
  return event.type.startsWith('admin.');
}

/** The fields a caller supplies to build an event: everything but `v` and `type`; `at` defaults to now. */
export type EventFields<T extends ControlEventType> = Omit<EventOf<T>, 'v' | 'type' | 'at'> & { at?: number };

/** Builds a v1 event: `controlEvent('stream.published', { key, app, name, nodeId, addr, epoch })`. */
export function controlEvent<T extends ControlEventType>(type: T, fields: EventFields<T>): EventOf<T> {
  const { at, ...rest } = fields;
  return { v: PROTOCOL_VERSION, type, ...rest, at: at ?? Date.now() } as unknown as EventOf<T>;
}
