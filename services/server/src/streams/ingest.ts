import type { StreamHub } from '@rtmp-relay/hub';
import { MessageType, splitAggregate, type RtmpMessage } from '@rtmp-relay/rtmp';
import { statsOf } from './stats.js';

/** Something that can check a data message against the AMF limits of the connection it arrived on. */
export interface DataChecker {
  decodeData(msg: RtmpMessage): unknown;
}

/**
 * Media from a source (a publisher, or an edge's upstream pull) into its hub: aggregates split, data messages held
 * to the source connection's AMF limits (they are cached and replayed to every joiner). A decode error throws, and
 * the connection it came from closes with that reason. Every message also feeds the stream's live stats.
 */
export function ingest(hub: StreamHub, msg: RtmpMessage, checker: DataChecker): void {
  if (msg.type === MessageType.DataAmf0 || msg.type === MessageType.DataAmf3) checker.decodeData(msg);
  const stats = statsOf(hub);
  if (msg.type === MessageType.Aggregate) {
    for (const sub of splitAggregate(msg)) {
      stats.record(sub);
      hub.push(sub);
    }
  } else {
    stats.record(msg);
    hub.push(msg);
  }
}
