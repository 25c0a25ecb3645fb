/** The NATS subjects of the control events (the table is in docs/ARCHITECTURE.md, "NATS subjects"). */
import {
  DEFAULT_PREFIX,
  PROTOCOL_VERSION,
  isAdminEvent,
  isValidAdminNodeId,
  type ControlEvent,
  type ControlEventType,
} from './schema.js';

const PREFIX_RE = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;

export function assertValidPrefix(prefix: string): void {
  if (!PREFIX_RE.test(prefix)) {
    throw new TypeError(
      `invalid control subject prefix ${JSON.stringify(prefix)}: expected dot-separated [A-Za-z0-9_-] tokens`,
    );
  }
}

/** The subjects of one prefix. */
export function subjects(prefix: string = DEFAULT_PREFIX) {
  assertValidPrefix(prefix);
  const root = `${prefix}.v${PROTOCOL_VERSION}`;
  return {
    root,
    streamPublished: `${root}.stream.published`,
    streamUnpublished: `${root}.stream.unpublished`,
    streamMoved: `${root}.stream.moved`,
    streamMoving: `${root}.stream.moving`,
    streamStandby: `${root}.stream.standby`,
    nodeUp: `${root}.node.up`,
    nodeDown: `${root}.node.down`,
    nodeLoad: `${root}.node.load`,
    /** Commands for one node. */
    admin(nodeId: string): string {
      if (!isValidAdminNodeId(nodeId))
        throw new TypeError(`node id ${JSON.stringify(nodeId)} is not usable in an admin subject`);
      return `${root}.admin.${nodeId}`;
    },
    /** Commands for every node. */
    adminAll: `${root}.admin.all`,
    /** Every admin command, whatever its destination (monitoring). */
    adminAny: `${root}.admin.>`,
    /** Everything of this version (monitoring). */
    any: `${root}.>`,
  };
}

/** The subject an event is published on. Throws a TypeError for an admin `target` not usable in a subject. */
export function subjectFor(event: ControlEvent, prefix: string = DEFAULT_PREFIX): string {
  assertValidPrefix(prefix);
  const root = `${prefix}.v${PROTOCOL_VERSION}`;
  if (isAdminEvent(event)) {
    if (event.target === undefined) return `${root}.admin.all`;
    return subjects(prefix).admin(event.target);
  }
  // Stream and node event types are their subject suffixes.
  return `${root}.${event.type}`;
}

/** The subject `on(type)` listens on: the event's own subject, or every admin subject for admin types. */
export function subscriptionSubjectFor(type: ControlEventType, prefix: string): string {
  const s = subjects(prefix);
  return type.startsWith('admin.') ? s.adminAny : `${s.root}.${type}`;
}
