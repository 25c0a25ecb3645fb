import type { HubMessage } from './hub-message.js';

/** Smallest arena: a low-bitrate stream's GOP (300 kbit/s for 2 s is 75 KB) fits in one or two. */
const ARENA_MIN_BYTES = 64 * 1024;
/** Headroom over the GOP before, so a GOP a little larger than the last still fits in its first arena. */
const ARENA_HEADROOM = 1.25;
const EMPTY = Buffer.alloc(0);

/**
 * The join sequence (metadata and sequence headers, then the cached GOP) as shared bytes, for RTMP joiners on the
 * primary stream id that take every track and codec: the most common viewer by far. Without it every joiner costs one
 * socket write per cached message (a few hundred Writable.write calls for a 2 s GOP); with it, two writes of Buffers
 * that every joiner of the same GOP shares (the kernel copies them either way).
 *
 * The GOP part is one arena per GOP generation: each cached message's chunks are appended once; a joiner gets a view
 * of the bytes written so far. Later appends only write past that view and a full arena is replaced, not reused, so
 * bytes a joiner still has queued never change. The arena exists only while joiners use it: it is built on the first
 * join of a GOP and dropped with the GOP, so a stream nobody joins pays nothing.
 *
 * A GOP is held once either way: a message copied into the arena is re-pointed at its bytes there (the same bytes, so
 * the per-message path and the forms built later see no difference), and its own Buffer is freed once no socket has
 * it queued. The first arena is sized from the GOP before, with a quarter of headroom.
 *
 * Which messages go in mirrors StreamHub.deliver for such a viewer: video frames start at a keyframe; everything
 * else goes in. Their FourCCs are collected: a joiner that doesn't accept one of them takes the per-message path.
 */
export class JoinBurst {
  private active = false;
  private arena: Buffer = EMPTY;
  private used = 0;
  /** Messages whose chunks are views of the arena, re-pointed when the arena is replaced. */
  private readonly members: HubMessage[] = [];
  /** Chunk bytes of this GOP generation's messages (joined or not), and of the generation before. */
  private gopChunkBytes = 0;
  private lastGopChunkBytes = 0;
  private awaiting = true;
  private readonly gopFourCcs = new Set<string>();
  private head: { bytes: Buffer; fourCcs: Set<string> } | undefined;

  /** A new GOP generation (keyframe, cache cleared, new publisher): drop the arena; rebuilt on the next join. */
  resetGop(): void {
    this.active = false;
    this.arena = EMPTY;
    this.used = 0;
    this.members.length = 0;
    if (this.gopChunkBytes > 0) this.lastGopChunkBytes = this.gopChunkBytes;
    this.gopChunkBytes = 0;
    this.awaiting = true;
    this.gopFourCcs.clear();
    this.head = undefined; // join headers are stamped no later than the GOP's first frame
  }

  /** Metadata or a sequence header changed. */
  invalidateHead(): void {
    this.head = undefined;
  }

  /** A message was added to the GOP cache. */
  appendGop(m: HubMessage): void {
    this.gopChunkBytes += m.chunks.length;
    if (this.active) this.add(m);
  }

  /**
   * The shared join bytes, or undefined when this joiner can't take them (a FourCC it didn't negotiate).
   * `headers` builds the head's messages (called only when the head changed); `gop` is the current cache.
   * `awaitingKeyframe` is what the joiner's slot must be left with.
   */
  take(
    headers: () => HubMessage[],
    gop: readonly HubMessage[],
    accepts: (fourCc: string) => boolean,
  ): { head: Buffer; gop: Buffer; awaitingKeyframe: boolean } | undefined {
    if (!this.active) {
      this.active = true;
      for (const m of gop) this.add(m);
    }
    if (!this.head) {
      const msgs = headers();
      const fourCcs = new Set<string>();
      for (const m of msgs) if (m.fourCc !== undefined) fourCcs.add(m.fourCc);
      this.head = { bytes: Buffer.concat(msgs.map((m) => m.chunks)), fourCcs };
    }
    for (const f of this.head.fourCcs) if (!accepts(f)) return undefined;
    for (const f of this.gopFourCcs) if (!accepts(f)) return undefined;
    return { head: this.head.bytes, gop: this.arena.subarray(0, this.used), awaitingKeyframe: this.awaiting };
  }

  private add(m: HubMessage): void {
    if (m.kind === 'video' && !m.isSequenceHeader && this.awaiting) {
      if (!m.isKeyframe) return;
      this.awaiting = false;
    }
    if (m.fourCc !== undefined) this.gopFourCcs.add(m.fourCc);
    const bytes = m.chunks;
    if (this.used + bytes.length > this.arena.length) this.grow(this.used + bytes.length);
    bytes.copy(this.arena, this.used);
    m.chunks = this.arena.subarray(this.used, this.used + bytes.length);
    this.members.push(m);
    this.used += bytes.length;
  }

  /** A larger arena with the bytes so far; members move to it, so the old one is freed with its queued writes. */
  private grow(needed: number): void {
    const expected = Math.ceil(ARENA_HEADROOM * Math.max(this.lastGopChunkBytes, this.gopChunkBytes));
    const next = Buffer.allocUnsafe(Math.max(ARENA_MIN_BYTES, expected, 2 * this.arena.length, needed));
    this.arena.copy(next, 0, 0, this.used);
    let at = 0;
    for (const member of this.members) {
      const length = member.chunks.length;
      member.chunks = next.subarray(at, at + length);
      at += length;
    }
    this.arena = next;
  }
}
