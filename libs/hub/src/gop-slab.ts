/** Smallest slab: a low-bitrate stream's GOP (300 kbit/s for 2 s is 75 KB) fits in one or two. */
const SLAB_MIN_BYTES = 64 * 1024;
/** Largest slab: a long high-bitrate GOP takes several rather than one that outlives most of its frames. */
const SLAB_MAX_BYTES = 4 * 1024 * 1024;
/** Headroom over the last GOP's size, so a GOP a little larger than the one before still fits in one slab. */
const SLAB_HEADROOM = 1.25;
const EMPTY = Buffer.alloc(0);

/** Where a hub message's chunks are written; see GopSlab. */
export interface ChunkAllocator {
  /** `bytes` of fresh memory, never handed out again; `startsGop` for a keyframe. */
  allocate(bytes: number, startsGop: boolean): Buffer;
}

/**
 * Bump allocator for one stream's media frames: a GOP's frames are serialized back to back into one slab (a few
 * for a GOP longer than the last one), so the GOP cache and the join burst share the same bytes. A joiner is
 * written views of the slabs: no per-GOP copy for late joiners, and one allocation per GOP instead of one per frame.
 *
 * A keyframe starts a new slab sized from the GOP before, so a slab holds one GOP and is freed with it: the cache
 * drops the GOP at the next keyframe and the slab goes once no viewer has its bytes queued. What a slab wastes is
 * its unused tail (the headroom), about a quarter of a GOP.
 */
export class GopSlab implements ChunkAllocator {
  private slab: Buffer = EMPTY;
  private used = 0;
  /** Bytes of the GOP being written, to size the next GOP's slab. */
  private gopBytes = 0;
  private slabBytes = SLAB_MIN_BYTES;

  allocate(bytes: number, startsGop: boolean): Buffer {
    if (startsGop) {
      if (this.gopBytes > 0) {
        this.slabBytes = Math.min(SLAB_MAX_BYTES, Math.max(SLAB_MIN_BYTES, Math.ceil(this.gopBytes * SLAB_HEADROOM)));
      }
      this.gopBytes = 0;
      this.slab = EMPTY; // the previous GOP's slab stays alive only through the messages that still hold it
      this.used = 0;
    }
    this.gopBytes += bytes;
    if (this.used + bytes > this.slab.length) {
      // Its own backing store (not the shared pool), so its lifetime is exactly its frames'.
      this.slab = Buffer.allocUnsafeSlow(Math.max(this.slabBytes, bytes));
      this.used = 0;
    }
    const out = this.slab.subarray(this.used, this.used + bytes);
    this.used += bytes;
    return out;
  }

  /** Bytes of the slab being filled (for tests and metrics). */
  get currentSlabBytes(): number {
    return this.slab.length;
  }
}
