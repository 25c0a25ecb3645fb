import { RtmpProtocolError } from './errors.js';
import type { RtmpMessage } from './message.js';

const SUB_HEADER_SIZE = 11; // an FLV tag header
const BACK_POINTER_SIZE = 4;
const MAX_SUB_MESSAGES = 4096;

/**
 * Splits an aggregate message (type 22, spec 7.1.6) into its sub-messages. Each is an FLV tag header, data and a
 * back pointer; the aggregate's stream id applies, and timestamps are shifted by (aggregate ts - first sub ts).
 */
export function splitAggregate(msg: RtmpMessage): RtmpMessage[] {
  const out: RtmpMessage[] = [];
  const p = msg.payload;
  let o = 0;
  let shift: number | undefined;
  while (o < p.length) {
    if (p.length - o < SUB_HEADER_SIZE)
      throw new RtmpProtocolError('bad_aggregate', 'truncated aggregate sub-message header');
    const type = p[o]!;
    const size = p.readUIntBE(o + 1, 3);
    const ts = (p.readUIntBE(o + 4, 3) | (p[o + 7]! << 24)) >>> 0;
    const start = o + SUB_HEADER_SIZE;
    if (p.length - start < size)
      throw new RtmpProtocolError('bad_aggregate', 'aggregate sub-message longer than the aggregate');
    shift ??= (msg.timestamp - ts) | 0;
    out.push({ type, streamId: msg.streamId, timestamp: (ts + shift) >>> 0, payload: p.subarray(start, start + size) });
    if (out.length > MAX_SUB_MESSAGES) throw new RtmpProtocolError('bad_aggregate', 'too many aggregate sub-messages');
    o = start + size + BACK_POINTER_SIZE;
  }
  return out;
}
