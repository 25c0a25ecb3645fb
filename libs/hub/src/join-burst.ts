import type { HubMessage } from './hub-message.js';

/**
 * The join sequence (metadata and sequence headers, then the cached GOP) as shared bytes, for RTMP joiners on the
 * primary stream id that take every track and codec: the most common viewer by far. Without it every joiner costs one
 * socket write per cached message (a few hundred Writable.write calls for a 2 s GOP); with it, a few writes of
 * Buffers that every joiner of the same GOP shares (the kernel copies them either way).
 *
 * The GOP part is the cached messages' own chunks, merged into runs where they lie back to back in memory: the hub
 * writes a GOP's frames into one slab (GopSlab), so a GOP is usually one run, or a few. Nothing is copied; a joiner
 * gets views of bytes that never change. The runs are tracked only while joiners use them: from the first join of a
 * GOP until the GOP is dropped, so a stream nobody joins pays nothing.
 *
 * Which messages go in mirrors StreamHub.deliver for such a viewer: video frames start at a keyframe; everything
 * else goes in. Their FourCCs are collected: a joiner that doesn't accept one of them takes the per-message path.
 */
export class JoinBurst {
  private active = false;
  /** Runs of contiguous chunk bytes, in GOP order; the last one grows while its messages stay contiguous. */
  private readonly runs: Buffer[] = [];
  /** The runs as handed to joiners, shared until the next message is added. */
  private snapshot: readonly Buffer[] | undefined;
  private awaiting = true;
  private readonly gopFourCcs = new Set<string>();
  private head: { bytes: Buffer; fourCcs: Set<string> } | undefined;

  /** A new GOP generation (keyframe, cache cleared, new publisher): forget the runs; rebuilt on the next join. */
  resetGop(): void {
    this.active = false;
    this.runs.length = 0;
    this.snapshot = undefined;
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
    if (this.active) this.add(m);
  }

  /**
   * The shared join bytes, or undefined when this joiner can't take them (a FourCC it didn't negotiate).
   * `headers` builds the head's messages (called only when the head changed); `gop` is the current cache.
   * `awaitingKeyframe` is what the joiner's slot must be left with. Never modify the returned list.
   */
  take(
    headers: () => HubMessage[],
    gop: readonly HubMessage[],
    accepts: (fourCc: string) => boolean,
  ): { head: Buffer; gop: readonly Buffer[]; gopBytes: number; awaitingKeyframe: boolean } | undefined {
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
    const runs = (this.snapshot ??= this.runs.slice());
    let gopBytes = 0;
    for (const r of runs) gopBytes += r.length;
    return { head: this.head.bytes, gop: runs, gopBytes, awaitingKeyframe: this.awaiting };
  }

  private add(m: HubMessage): void {
    if (m.kind === 'video' && !m.isSequenceHeader && this.awaiting) {
      if (!m.isKeyframe) return;
      this.awaiting = false;
    }
    if (m.fourCc !== undefined) this.gopFourCcs.add(m.fourCc);
    this.snapshot = undefined;
    const bytes = m.chunks;
    const last = this.runs.length - 1;
    const run = this.runs[last];
    if (run && run.buffer === bytes.buffer && run.byteOffset + run.length === bytes.byteOffset) {
      // A new view, not a resized one: joiners may hold the old run.
      this.runs[last] = Buffer.from(run.buffer, run.byteOffset, run.length + bytes.length);
    } else {
      this.runs.push(bytes);
    }
  }
}
