/** One RTMP message as it travels above the chunk layer. */
export interface RtmpMessage {
  /** Message type id (see MessageType). */
  type: number;
  /** Message stream id: 0 for NetConnection traffic, >= 1 for NetStreams. */
  streamId: number;
  /** uint32 milliseconds; wraps every ~49.7 days (compare with serial-number arithmetic). */
  timestamp: number;
  payload: Buffer;
}

const UINT32_RANGE = 0x1_0000_0000;

/** Signed distance b - a between two uint32 timestamps, assuming they are within 2^31 ms (RTMP spec section 4). */
export function timestampDelta(a: number, b: number): number {
  return (b - a) | 0;
}

/** Adds a (possibly negative) delta to a uint32 timestamp, wrapping. */
export function addTimestamp(ts: number, delta: number): number {
  return (((ts + delta) % UINT32_RANGE) + UINT32_RANGE) % UINT32_RANGE;
}

/**
 * Unwraps a uint32 timestamp sequence into a monotonic-ish 64-bit timeline by accumulating signed 32-bit deltas,
 * the way GStreamer does: stable across the 2^32 wrap and tolerant of small backwards steps.
 */
export class TimestampUnwrapper {
  private last: number | undefined;
  private extended = 0;

  unwrap(ts: number): number {
    if (this.last === undefined) {
      this.extended = ts;
    } else {
      this.extended += timestampDelta(this.last, ts);
    }
    this.last = ts;
    return this.extended;
  }

  reset(): void {
    this.last = undefined;
    this.extended = 0;
  }
}
